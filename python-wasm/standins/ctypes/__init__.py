"""Vivarium's stand-in for ctypes, on the pandas profile only.

WASI preview 1 has no shared libraries and no foreign function interface, so CPython's
_ctypes cannot be built for wasm32-wasip1. pandas imports ctypes when it starts (in
pandas.errors and its DataFrame interchange protocol) but only uses it on Windows or for
foreign memory buffers, neither of which exists in the sandbox. This module lets that import
succeed, and every use of ctypes fails with an AttributeError that says why.
"""


def __getattr__(name):
    raise AttributeError(
        f"ctypes.{name} is not available in the sandbox: WASI has no foreign function "
        "interface, so this ctypes is a stand-in that only lets `import ctypes` succeed",
        name=name,
        obj=__name__,
    )
