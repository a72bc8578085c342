"""Vivarium's stand-in for mmap, on the pandas profile only.

WASI preview 1 has no memory-mapped files, so CPython's mmap module is not built for
wasm32-wasip1. pandas imports mmap when it starts, to recognise mapped files among its inputs
(`isinstance(x, mmap.mmap)`) and to map a file when asked to (`read_csv(memory_map=True)`).
This module keeps CPython's access constants and a `mmap` type that nothing can construct:
the check stays false, and mapping a file fails with an OSError that says what to do.
"""

import errno

ACCESS_DEFAULT = 0
ACCESS_READ = 1
ACCESS_WRITE = 2
ACCESS_COPY = 3


class mmap:
    """A memory-mapped file, which the sandbox cannot make."""

    def __new__(cls, *args, **kwargs):
        raise OSError(
            errno.ENOTSUP,
            "memory-mapped files are not available in the sandbox (WASI has no mmap); "
            "read the file instead (for pandas, leave memory_map off)",
        )
