"""Vivarium guest runner: runs one action call inside CPython on WASI.

The command-style interpreter runs this file as its program, with the action's folder as its
first argument (``/action`` in the sandbox; a native folder when benchmarking against a native
``python3``) and, when the action has installed dependencies, their layer as the second
(``/deps``). The pre-initialized interpreter imports it once as ``vivarium_runner`` while its
snapshot is taken, and calls ``main()`` once per fresh instance. Protocol (see design.md):

* stdin: one JSON object (or the same object in marshal form, after the byte ``m``). Its
  "layer" is true when an installed dependency layer is mounted at /deps. With a "data" key,
  ``main(data, logger)`` is called; without it (scheduled actions) ``main()`` is called with
  no arguments.
* stdout: exactly one JSON document, ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error": {"type", "message", "traceback", "phase"}}``. When the request's
  "reply" is "marshal" (the pre-initialized interpreter), a successful result is written
  instead as the byte ``m`` and ``marshal.dumps(result)``, several times faster than JSON; the
  host reads the types JSON has from it, and for anything else calls ``reply_json()`` on the
  same instance, which writes the JSON document after all.
* stderr: JSON lines ``{"level", "logger", "message", "time", "exc"?}``. Whatever the user's
  code prints becomes log lines too, never part of the result.

A request of ``{"vivarium": "compile"}`` runs no action code: the runner compiles every Python
file under ``/action`` and ``/deps`` and answers their bytecode, which the host stores and
mounts read-only at ``/pycache`` for the action's later calls (see ``CachedSourceLoader``).

Everything this runner needs is imported before the action's folder joins ``sys.path``, so an
action's own module named ``json`` or ``logging`` cannot replace them.
"""

import base64
import datetime
import importlib.util
import json
import logging
import marshal
import os
import sys
import time
import traceback
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    SourceFileLoader,
    SourcelessFileLoader,
)

# The action's folder, its bundled dependencies, and the installed layer of its
# pyproject.toml dependencies when it has one; set by _locate_mounts() at the start of a call.
ACTION_ROOT = "/action"
DEPENDENCIES = ACTION_ROOT + "/dependencies"
LAYER = []
SANDBOX_LAYER = "/deps"
RUNNER_FILES = ("<string>", "<frozen ", "<vivarium-runner>")
# Where the host mounts the bytecode it had compiled for this action: the file compiled from
# /action/main.py is /pycache/action/main.pyc.
BYTECODE_ROOT = "/pycache"
# What a compile request compiles at most; the rest is compiled when imported, as without it.
COMPILE_MOST_FILES = 4096
COMPILE_MOST_SOURCE_BYTES = 1 << 20
# The result document carries no optional spaces (json.dumps writes about a sixth faster).
COMPACT = (",", ":")
# The first byte of a message in marshal form: a request the host wrote that way (only the
# types json.loads produces; it is read several times faster; any other request is JSON), and
# a successful result when the request asks for that form.
MARSHAL_TAG = b"m"
# A hash-based .pyc whose source hash is checked when it is loaded (PEP 552).
CHECKED_HASH_FLAGS = (3).to_bytes(4, "little")

_result_stream = sys.stdout
_log_stream = sys.stderr
# What main() returned, kept for reply_json() when it was answered in marshal form.
_held_result = None


class ContractError(Exception):
    """The action does not have the shape Vivarium runs: no callable main of the right arity."""


def _timestamp(created):
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % millis


def _emit_log(level, logger_name, message, created, exc=None):
    entry = {
        "level": level,
        "logger": logger_name,
        "message": message,
        "time": _timestamp(created),
    }
    if exc:
        entry["exc"] = exc
    _log_stream.write(json.dumps(entry, default=str) + "\n")
    _log_stream.flush()


class JsonLineHandler(logging.Handler):
    """Sends every log record to the host as one JSON line on stderr."""

    def emit(self, record):
        try:
            exc = None
            if record.exc_info:
                exc = "".join(traceback.format_exception(*record.exc_info))
            _emit_log(record.levelname, record.name, record.getMessage(), record.created, exc)
        except Exception:
            self.handleError(record)


class LineToLog:
    """A text stream that turns each written line into a log record (for print())."""

    def __init__(self, logger_name, level):
        self._logger_name = logger_name
        self._level = level
        self._pending = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            _emit_log(self._level, self._logger_name, line, time.time())
        return len(text)

    def flush(self):
        if self._pending:
            _emit_log(self._level, self._logger_name, self._pending, time.time())
            self._pending = ""

    def isatty(self):
        return False

    def writable(self):
        return True


def _pyc_header(source):
    """The .pyc header that binds bytecode to exactly ``source`` on this interpreter."""
    return importlib.util.MAGIC_NUMBER + CHECKED_HASH_FLAGS + importlib.util.source_hash(source)


def _cached_code(path, source):
    """The code object compiled from ``source`` found under BYTECODE_ROOT for ``path``, or
    None when there is none or it was compiled from other source or by another interpreter."""
    try:
        with open(BYTECODE_ROOT + path + "c", "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    header = _pyc_header(source)
    if data[: len(header)] != header:
        return None
    try:
        return marshal.loads(memoryview(data)[len(header) :])
    except (EOFError, ValueError, TypeError):
        return None


class CachedSourceLoader(SourceFileLoader):
    """Loads the action's modules (and its dependencies') from the bytecode the host compiled
    for them when it matches their source; compiles the source otherwise, as CPython does."""

    def get_code(self, fullname):
        path = self.get_filename(fullname)
        source = self.get_data(path)
        code = _cached_code(path, source)
        return code if code is not None else self.source_to_code(source, path)


_LOADERS = (
    (CachedSourceLoader, SOURCE_SUFFIXES),
    (SourcelessFileLoader, BYTECODE_SUFFIXES),
    (ExtensionFileLoader, EXTENSION_SUFFIXES),
)
_find_with_cache = FileFinder.path_hook(*_LOADERS)


def _action_path_hook(path):
    """Finds modules under the action's folder and its layer with CachedSourceLoader; other
    paths (the standard library) keep CPython's own finder."""
    for root in [ACTION_ROOT] + LAYER:
        if path == root or path.startswith(root + "/"):
            return _find_with_cache(path)
    raise ImportError("not a folder of the action")


sys.path_hooks.insert(0, _action_path_hook)


def _sources(roots):
    """The Python files under ``roots`` worth compiling ahead, at most COMPILE_MOST_FILES."""
    found = []
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    found.append(folder + "/" + name)
                    if len(found) == COMPILE_MOST_FILES:
                        return found
    return found


def _compile_mounts():
    """The bytecode of every Python file of the action and its layer, as .pyc bytes in base64
    keyed by path (without the leading slash); files that do not compile are left out (their
    import reports the error when a call makes it)."""
    compiled = {}
    for path in _sources([ACTION_ROOT] + LAYER):
        try:
            with open(path, "rb") as stream:
                source = stream.read(COMPILE_MOST_SOURCE_BYTES + 1)
            if len(source) > COMPILE_MOST_SOURCE_BYTES:
                continue
            code = compile(source, path, "exec", dont_inherit=True)
        except (OSError, SyntaxError, ValueError):
            continue
        pyc = _pyc_header(source) + marshal.dumps(code)
        compiled[path.lstrip("/")] = base64.b64encode(pyc).decode("ascii")
    return json.dumps({"ok": True, "result": compiled})


# Made once, when the runner is loaded (for the pre-initialized interpreter, while its snapshot
# is taken), rather than by every call.
_LOG_HANDLER = JsonLineHandler()
_ACTION_LOGGER = logging.getLogger("action")
_PRINTED = LineToLog("print", "INFO")
_WARNED = LineToLog("stderr", "WARNING")


def _make_logger():
    root = logging.getLogger()
    root.handlers[:] = [_LOG_HANDLER]
    root.setLevel(logging.DEBUG)
    return _ACTION_LOGGER


def _user_frames(tb):
    """The frames of the action's own code (and its dependencies), as Python formats them;
    all frames but the runner's when none of them is the action's."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(RUNNER_FILES)]
    own = [f for f in frames if f.filename.startswith(tuple([ACTION_ROOT + "/"] + [p + "/" for p in LAYER]))]
    return [line.rstrip("\n") for line in traceback.format_list(own or frames)]


def _error(phase, kind, message, frames=()):
    return {
        "ok": False,
        "error": {"phase": phase, "type": kind, "message": message, "traceback": list(frames)},
    }


def _exception_error(phase, exc):
    frames = _user_frames(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        frames.append('  File "%s", line %s' % (exc.filename, exc.lineno))
    message = str(exc) if str(exc) else type(exc).__name__
    return _error(phase, type(exc).__name__, message, frames)


def _accepts(function, count):
    """Whether ``function`` can be called with ``count`` positional arguments."""
    code = getattr(function, "__code__", None)
    if code is None:
        return True
    positional = code.co_argcount
    defaults = len(getattr(function, "__defaults__", None) or ())
    keyword_only_required = code.co_kwonlyargcount - len(getattr(function, "__kwdefaults__", None) or {})
    takes_varargs = bool(code.co_flags & 0x04)
    if hasattr(function, "__self__"):
        positional -= 1
    if keyword_only_required > 0:
        return False
    return positional - defaults <= count and (count <= positional or takes_varargs)


def _signature(function):
    code = getattr(function, "__code__", None)
    if code is None:
        return "(...)"
    names = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    if hasattr(function, "__self__") and names:
        names.pop(0)
    return "(" + ", ".join(names) + ")"


def _load_main(arity):
    import importlib

    module = importlib.import_module("main")
    entry = getattr(module, "main", None)
    expected = "main(data, logger)" if arity == 2 else "main()"
    if entry is None:
        raise ContractError("main.py does not define %s" % expected)
    if not callable(entry):
        raise ContractError("main in main.py is not a function (it is of type %s)" % type(entry).__name__)
    if not _accepts(entry, arity):
        raise ContractError("main must be defined as %s; it is defined as main%s" % (expected, _signature(entry)))
    return entry


def _find_unserializable(value, path="result"):
    """Path and type name of the first value json cannot encode, or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if value == value and value not in (float("inf"), float("-inf")) else (path, "float " + repr(value))
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_unserializable(item, "%s[%d]" % (path, index))
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return ("%s key %r" % (path, key), type(key).__name__)
            found = _find_unserializable(item, "%s[%r]" % (path, key))
            if found:
                return found
        return None
    return (path, type(value).__name__)


_DATETIMES = (datetime.datetime, datetime.date, datetime.time)


def _as_json_types(value):
    """`value` with what JSON lacks converted by the result rules: NaN, and the missing values
    of numpy and pandas (NaT, NA), become None; dates and times (pandas' Timestamp is a
    datetime, and numpy's datetime64) their ISO 8601 text; numpy's other scalars their
    Python number or bool. Anything else (infinities, durations...) is left for json.dumps
    to refuse. Dict keys are converted likewise. Made only when the plain encoding failed,
    so that DataFrame.to_dict("records") can be returned as it is."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, (list, tuple)):
        return [_as_json_types(item) for item in value]
    if isinstance(value, dict):
        return {_as_json_key(key): _as_json_types(item) for key, item in value.items()}
    if isinstance(value, _DATETIMES):
        return None if value != value else value.isoformat()
    module = kind.__module__
    if module == "numpy" and kind.__name__ == "datetime64":
        return None if value != value else str(value)
    if module == "numpy" and kind.__name__ != "timedelta64" and hasattr(value, "item"):
        return _as_json_types(value.item())
    if module.startswith("pandas.") and kind.__name__ in ("NaTType", "NAType"):
        return None
    return value


def _as_json_key(key):
    """A dict key converted as values are (a resampled Series' to_dict() is keyed by its
    Timestamps), when the conversion gives a key JSON has."""
    converted = _as_json_types(key) if not isinstance(key, (str, int, float)) else key
    return converted if isinstance(converted, (str, int, float, bool)) else key


def _encode_result(value):
    try:
        return json.dumps({"ok": True, "result": value}, allow_nan=False, separators=COMPACT)
    except (TypeError, ValueError):
        pass
    except RecursionError as exc:
        return json.dumps(_error("result", "ResultNotSerializable",
                                 "main() returned a value that cannot be encoded as JSON: %s" % exc))
    try:
        value = _as_json_types(value)
    except RecursionError:
        pass  # a cycle, which json.dumps names below
    try:
        return json.dumps({"ok": True, "result": value}, allow_nan=False, separators=COMPACT)
    except (TypeError, ValueError, RecursionError) as exc:
        try:
            found = _find_unserializable(value) if not isinstance(exc, RecursionError) else None
        except RecursionError:
            found = None  # a cycle, which json.dumps names
        if found:
            message = "main() returned a value that is not JSON-serializable: %s at %s" % (found[1], found[0])
        else:
            message = "main() returned a value that cannot be encoded as JSON: %s" % exc
        return json.dumps(_error("result", "ResultNotSerializable", message))


def _reply(value, form):
    """The result document for `value`: in marshal form when the request asked for it and
    marshal takes the value (not instances of other classes, nor subclasses of its types),
    else as JSON."""
    global _held_result
    if form == "marshal":
        try:
            encoded = MARSHAL_TAG + marshal.dumps(value)
        except Exception:
            pass
        else:
            _held_result = value
            return encoded
    return _encode_result(value)


def _run(request):
    calls_with_data = "data" in request
    arity = 2 if calls_with_data else 0
    try:
        entry = _load_main(arity)
    except ContractError as exc:
        return json.dumps(_error("contract", "ContractError", str(exc)))
    except BaseException as exc:
        return json.dumps(_exception_error("import", exc))
    try:
        if calls_with_data:
            value = entry(request["data"], _ACTION_LOGGER)
        else:
            value = entry()
    except BaseException as exc:
        return json.dumps(_exception_error("call", exc))
    return _reply(value, request.get("reply"))


def _write_document(document):
    if isinstance(document, bytes):
        _result_stream.flush()
        _result_stream.buffer.write(document)
        _result_stream.buffer.flush()
    else:
        _result_stream.write(document)
        _result_stream.flush()


def reply_json():
    """Writes the result main() returned in this instance's call as the JSON document (its
    marshal form held something JSON does not have, such as a tuple key or NaN, so the
    json module decides what it becomes, or which error)."""
    _write_document(_encode_result(_held_result))


def _read_request():
    raw = sys.stdin.buffer.read()
    if raw[:1] == MARSHAL_TAG:
        request = marshal.loads(memoryview(raw)[1:])
    else:
        request = json.loads(raw)
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    return request


def _locate_mounts(request):
    """From the arguments when given (the command-style interpreter, native benchmarks), else
    the sandbox's fixed mounts: the pre-initialized interpreter imports this module once,
    before any call, and always mounts /deps, which holds a layer when the request says so."""
    global ACTION_ROOT, DEPENDENCIES, LAYER
    if len(sys.argv) > 1:
        ACTION_ROOT, LAYER = sys.argv[1], sys.argv[2:3]
    else:
        LAYER = [SANDBOX_LAYER] if request.get("layer") else []
    DEPENDENCIES = ACTION_ROOT + "/dependencies"


def warm_up(rounds=3):
    """Runs the runner's own per-call work on sample records a few times, its output thrown
    away. The pre-initialized interpreter calls this before its snapshot is taken: CPython
    rewrites a function's bytecode in place during its first runs (specialization), and in a
    snapshot every call would redo that, copying each page of code it writes to. Leaves the
    logging, streams and modules as it found them."""
    global _log_stream, _held_result
    import io

    root = logging.getLogger()
    saved = (_log_stream, root.handlers[:], root.level, set(sys.modules))
    sample = [{"name": "warm", "count": 1, "ratio": 0.5, "ok": True, "none": None, "tags": ["a"]}]
    try:
        for _ in range(rounds):
            _log_stream = io.StringIO()
            request = marshal.loads(marshal.dumps({"data": sample * 4}))
            json.loads(json.dumps(request))
            _make_logger().info("warming up %s", "the runner")
            _PRINTED.write("a printed line\n")
            _accepts(warm_up, 2)
            _cached_code(BYTECODE_ROOT + "/warm-up.py", b"")
            importlib.import_module("colorsys")
            sys.modules.pop("colorsys", None)
            _encode_result(request["data"])
            _reply(request["data"], "marshal")
            _error("call", "Warm", "up")
    finally:
        _log_stream, root.handlers[:], level, modules = saved
        _held_result = None
        root.setLevel(level)
        for name in set(sys.modules) - modules:
            del sys.modules[name]


def main():
    request = _read_request()
    _locate_mounts(request)
    if request.get("vivarium") == "compile":
        _write_document(_compile_mounts())
        return
    _make_logger()
    sys.stdout = _PRINTED
    sys.stderr = _WARNED
    sys.path[0:0] = [ACTION_ROOT, DEPENDENCIES] + LAYER
    try:
        os.chdir(ACTION_ROOT)
    except OSError:
        pass
    document = _run(request)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    _write_document(document)


if __name__ == "__main__":
    main()
