/*
 * Vivarium reactor shim: the entry points the host calls on vivarium-python.wasm.
 *
 * The module is linked with -mexec-model=reactor, so it exports `_initialize` (wasi-libc's
 * constructors) instead of `_start`, plus the functions below. The host calls, on one
 * instance:
 *
 *   _initialize()      once, first (runs the C constructors);
 *   vivarium_init()    once per module image: starts CPython and loads the guest runner read
 *                      from stdin. Usually run under Wizer, whose snapshot becomes the image;
 *   vivarium_run()     once per fresh instance of that image: refreshes the environment and
 *                      the random seed, then calls vivarium_runner.main();
 *   vivarium_reply_json()  at most once, after vivarium_run(), when the host asks for the
 *                      call's result as a JSON document (vivarium_runner.reply_json()).
 *
 * Each returns 0 on success, otherwise a process-style exit code (after printing the Python
 * traceback or a message on stderr). Neither calls exit(): a SystemExit becomes the return
 * value instead.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/libc-environ.h>

#define RUNNER_MODULE "vivarium_runner"
#define RUNNER_FILENAME "<vivarium-runner>"
#define STDLIB_DIR L"/usr/local/lib/python3.13"

extern char **environ;

/* Set once vivarium_init() succeeded; vivarium_run() refuses to run before that. */
static int initialized = 0;

/* ------------------------------------------------------------------------------------------ */
/* The builtin module _vivarium.                                                               */
/* ------------------------------------------------------------------------------------------ */

/* _vivarium.environ() -> dict of bytes to bytes: the C environment as it is now, in the same
 * form as posix.environ (which is what os.environ and os.environb are built on). */
static PyObject *
vivarium_environ(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) {
        const char *equals = strchr(*entry, '=');
        if (equals == NULL || equals == *entry) {
            continue; /* like posix.environ: skip entries without a name */
        }
        PyObject *key = PyBytes_FromStringAndSize(*entry, equals - *entry);
        PyObject *value = PyBytes_FromString(equals + 1);
        /* The first definition of a name wins, as in posix.environ. */
        int failed = key == NULL || value == NULL || PyDict_SetDefault(result, key, value) == NULL;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

/* _vivarium.immortalize(object): makes `object` immortal (PEP 683): its reference count is
 * never written again, and it is never freed. Used on the whole heap while the snapshot is
 * taken, so that an instance made from it does not copy a page of the image each time it
 * takes or drops a reference to an object on that page; instances are thrown away after one
 * call, so nothing they hold needs freeing. */
static PyObject *
vivarium_immortalize(PyObject *Py_UNUSED(module), PyObject *object)
{
    Py_SET_REFCNT(object, _Py_IMMORTAL_REFCNT);
    Py_RETURN_NONE;
}

/* The host calls (see crates/vivarium-sandbox/src/host_call.rs): host_call performs operation
 * OP on the marshalled request and keeps the answer on the host, returning its length or a
 * negative status; host_take copies the kept answer into a buffer of exactly that length. */
__attribute__((import_module("vivarium"), import_name("host_call"))) extern long long
vivarium_import_host_call(int op, const void *request, int length);
__attribute__((import_module("vivarium"), import_name("host_take"))) extern int
vivarium_import_host_take(void *buffer, int length);

/* _vivarium.host_call(op, request) -> bytes: the host's marshalled answer. The answer is
 * copied into a bytes object allocated here, inside the guest's memory, so that it counts
 * against the call's memory cap: an answer too large for it raises MemoryError. */
static PyObject *
vivarium_host_call(PyObject *Py_UNUSED(module), PyObject *args)
{
    int op;
    Py_buffer request;
    if (!PyArg_ParseTuple(args, "iy*:host_call", &op, &request)) {
        return NULL;
    }
    if (request.len > INT_MAX) {
        PyBuffer_Release(&request);
        PyErr_SetString(PyExc_OverflowError, "host_call: the request is larger than 2 GiB");
        return NULL;
    }
    long long length = vivarium_import_host_call(op, request.buf, (int)request.len);
    PyBuffer_Release(&request);
    if (length < 0 || length > INT_MAX) {
        PyErr_Format(PyExc_RuntimeError, "host_call: operation %d failed with status %lld", op,
                     length);
        return NULL;
    }
    PyObject *answer = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (answer == NULL) {
        return NULL;
    }
    int status = vivarium_import_host_take(PyBytes_AS_STRING(answer), (int)length);
    if (status != 0) {
        Py_DECREF(answer);
        PyErr_Format(PyExc_RuntimeError, "host_take: status %d", status);
        return NULL;
    }
    return answer;
}

static PyMethodDef vivarium_methods[] = {
    {"host_call", vivarium_host_call, METH_VARARGS,
     "host_call(op, request)\n--\n\nPerforms host operation op on the marshalled request; returns "
     "the marshalled answer."},
    {"environ", vivarium_environ, METH_NOARGS,
     "environ()\n--\n\nThe current C environment as a dict of bytes to bytes."},
    {"immortalize", vivarium_immortalize, METH_O,
     "immortalize(object)\n--\n\nMakes object immortal: its reference count is never written again."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef vivarium_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_vivarium",
    .m_doc = "Helpers of the Vivarium reactor shim.",
    .m_size = -1,
    .m_methods = vivarium_methods,
};

static PyObject *
PyInit__vivarium(void)
{
    return PyModule_Create(&vivarium_module);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers.                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Flushes sys.stdout, sys.stderr and the original streams behind them (the runner may have
 * replaced the sys attributes). Errors while flushing are ignored. */
static void
flush_std_streams(void)
{
    static const char *const names[] = {"stdout", "stderr", "__stdout__", "__stderr__"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        PyObject *stream = PySys_GetObject(names[i]); /* borrowed */
        if (stream == NULL || stream == Py_None) {
            continue;
        }
        PyObject *result = PyObject_CallMethod(stream, "flush", NULL);
        if (result == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(result);
    }
}

/* Turns the pending Python exception into an exit code, the way CPython's main does, but
 * without exiting: SystemExit(None) -> 0, SystemExit(int) -> that int, SystemExit(other) ->
 * str(other) on stderr and 1; any other exception -> traceback on stderr and 1. */
static int
exit_code_from_exception(void)
{
    if (!PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyErr_Print(); /* would exit() on SystemExit, hence the branch above */
        return 1;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *code = PyObject_GetAttrString(exc, "code");
    int status = 1;
    if (code == NULL) {
        PyErr_Clear();
    }
    else if (code == Py_None) {
        status = 0;
    }
    else if (PyLong_Check(code)) {
        int overflow = 0;
        long value = PyLong_AsLongAndOverflow(code, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else if (!overflow) {
            status = (int)value;
        }
    }
    else {
        /* Like CPython: print the object (its str) to sys.stderr, then exit with 1. */
        PyObject *stderr_stream = PySys_GetObject("stderr"); /* borrowed */
        if (stderr_stream != NULL && stderr_stream != Py_None &&
            PyFile_WriteObject(code, stderr_stream, Py_PRINT_RAW) == 0) {
            if (PyFile_WriteString("\n", stderr_stream) != 0) {
                PyErr_Clear();
            }
        }
        else {
            PyErr_Clear();
            PyObject_Print(code, stderr, Py_PRINT_RAW);
            fputc('\n', stderr);
        }
    }
    Py_XDECREF(code);
    Py_DECREF(exc);
    return status;
}

/* Reads all of fd 0 with read(2) into a NUL-terminated malloc'ed buffer; NULL on error. */
static char *
read_all_stdin(size_t *length)
{
    size_t capacity = 64 * 1024, used = 0;
    char *buffer = malloc(capacity);
    if (buffer == NULL) {
        return NULL;
    }
    for (;;) {
        if (capacity - used < 2) {
            char *bigger = realloc(buffer, capacity * 2);
            if (bigger == NULL) {
                free(buffer);
                return NULL;
            }
            buffer = bigger;
            capacity *= 2;
        }
        ssize_t got = read(0, buffer + used, capacity - used - 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            fprintf(stderr, "vivarium_init: reading the runner from stdin failed: %s\n",
                    strerror(errno));
            free(buffer);
            return NULL;
        }
        if (got == 0) {
            break;
        }
        used += (size_t)got;
    }
    buffer[used] = '\0';
    *length = used;
    return buffer;
}

/* The extension modules linked into this reactor besides CPython's own: numpy's in the numpy
 * reactor, none in the default one. python-wasm/build.sh generates the table for each. */
extern struct _inittab vivarium_extra_inittab[];

/* Starts CPython with an isolated configuration whose only sys.path entry is the stdlib. */
static int
start_python(void)
{
    PyStatus status;
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        goto fail_without_config;
    }

    PyConfig config;
    /* Isolated: isolated=1, use_environment=0, user_site_directory=0,
     * install_signal_handlers=0, parse_argv=0, safe_path=1. */
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.user_site_directory = 0;
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.pathconfig_warnings = 0;

    static wchar_t *const argv[] = {L"python"};
    status = PyConfig_SetArgv(&config, 1, argv);
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    status = PyConfig_SetString(&config, &config.program_name, L"python");
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    status = PyConfig_SetString(&config, &config.home, L"/usr/local");
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    /* sys.path is exactly the stdlib directory (no zip, no lib-dynload). */
    config.module_search_paths_set = 1;
    status = PyWideStringList_Append(&config.module_search_paths, STDLIB_DIR);
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    if (PyImport_ExtendInittab(vivarium_extra_inittab) != 0 ||
        PyImport_AppendInittab("_vivarium", PyInit__vivarium) != 0) {
        fprintf(stderr, "vivarium_init: cannot register the built-in modules\n");
        PyConfig_Clear(&config);
        return 1;
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status)) {
        goto fail;
    }
    PyConfig_Clear(&config);
    return 0;

fail:
    PyConfig_Clear(&config);
fail_without_config:
    fprintf(stderr, "vivarium_init: starting Python failed: %s%s%s\n",
            status.func ? status.func : "", status.func ? ": " : "",
            status.err_msg ? status.err_msg : "(no message)");
    return status.exitcode ? status.exitcode : 1;
}

/* Compiles SOURCE and executes it as the module vivarium_runner (in sys.modules). */
static int
load_runner(const char *source)
{
    PyObject *code = Py_CompileStringExFlags(source, RUNNER_FILENAME, Py_file_input, NULL, -1);
    if (code == NULL) {
        return -1;
    }
    /* A new module object, registered in sys.modules (strong reference). */
    PyObject *module = PyImport_AddModuleRef(RUNNER_MODULE);
    if (module == NULL) {
        Py_DECREF(code);
        return -1;
    }
    PyObject *globals = PyModule_GetDict(module); /* borrowed */
    int rc = -1;
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0) {
        PyObject *result = PyEval_EvalCode(code, globals, globals);
        if (result != NULL) {
            rc = 0;
            Py_DECREF(result);
        }
    }
    if (rc != 0) {
        /* Like a failed import: do not leave a half-initialized module behind. */
        PyObject *saved = PyErr_GetRaisedException();
        if (PyMapping_DelItemString(PyImport_GetModuleDict(), RUNNER_MODULE) != 0) {
            PyErr_Clear();
        }
        PyErr_SetRaisedException(saved);
    }
    Py_DECREF(module);
    Py_DECREF(code);
    return rc;
}

/* Rebuilds os.environ (and os.environb) from the C environment and re-seeds `random`. */
static int
refresh_process_state(void)
{
    PyObject *fresh = vivarium_environ(NULL, NULL);
    if (fresh == NULL) {
        return -1;
    }
    /* os.environ keeps its data in os.environ._data, a dict of bytes to bytes on POSIX that
     * os.environb shares; replacing its content in place updates both without calling
     * putenv/unsetenv (the C environment is already the fresh one). */
    PyObject *os = PyImport_ImportModule("os");
    PyObject *os_environ = os ? PyObject_GetAttrString(os, "environ") : NULL;
    PyObject *data = os_environ ? PyObject_GetAttrString(os_environ, "_data") : NULL;
    int rc = -1;
    if (data != NULL && PyDict_Check(data)) {
        PyDict_Clear(data);
        rc = PyDict_Update(data, fresh);
    }
    else if (data != NULL) {
        PyErr_SetString(PyExc_TypeError, "os.environ._data is not a dict");
    }
    Py_XDECREF(data);
    Py_XDECREF(os_environ);
    Py_XDECREF(os);
    Py_DECREF(fresh);
    if (rc != 0) {
        return -1;
    }

    /* The snapshot captured the state `random` (and, in the numpy reactor, numpy's global
     * RandomState) was seeded with at init; each module loaded is seeded again from the
     * system's entropy (`seed()` with no argument does that for both). A module first
     * imported later is seeded at its import, in this instance. */
    static const char *const reseeded[] = {"random", "numpy.random"};
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    for (size_t i = 0; i < sizeof reseeded / sizeof reseeded[0]; i++) {
        PyObject *module = NULL;
        if (PyDict_GetItemStringRef(modules, reseeded[i], &module) < 0) {
            return -1;
        }
        if (module == NULL) {
            continue;
        }
        PyObject *result = PyObject_CallMethod(module, "seed", NULL);
        Py_DECREF(module);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The exports.                                                                                */
/* ------------------------------------------------------------------------------------------ */

__attribute__((export_name("vivarium_init"))) int
vivarium_init(void)
{
    if (initialized || Py_IsInitialized()) {
        fprintf(stderr, "vivarium_init: called more than once\n");
        return 1;
    }
    int rc = start_python();
    if (rc != 0) {
        fflush(stderr);
        return rc;
    }

    size_t length = 0;
    char *source = read_all_stdin(&length);
    if (source == NULL) {
        if (errno == ENOMEM) {
            fprintf(stderr, "vivarium_init: out of memory reading the runner\n");
        }
        fflush(stderr);
        return 1;
    }
    rc = load_runner(source) == 0 ? 0 : exit_code_from_exception();
    /* Leave no copy of the runner source in the heap of the image. */
    memset(source, 0, length);
    free(source);

    flush_std_streams();
    if (rc == 0) {
        initialized = 1;
    }
    return rc;
}

/* Calls vivarium_runner.FUNCTION() on an initialized instance and flushes the streams; 0 on
 * success, otherwise an exit code as from exit_code_from_exception(). */
static int
call_runner(const char *export, const char *function)
{
    if (!initialized) {
        fprintf(stderr, "%s: vivarium_init has not succeeded on this image\n", export);
        fflush(stderr);
        return 1;
    }
    PyObject *runner = PyImport_ImportModule(RUNNER_MODULE);
    PyObject *result = runner ? PyObject_CallMethod(runner, function, NULL) : NULL;
    int rc = result == NULL ? exit_code_from_exception() : 0;
    Py_XDECREF(result);
    Py_XDECREF(runner);
    flush_std_streams();
    fflush(stdout);
    fflush(stderr);
    return rc;
}

__attribute__((export_name("vivarium_run"))) int
vivarium_run(void)
{
    if (initialized) {
        /* wasi-libc read the environment once (at _initialize, when the image was made); read
         * it again from this instance's WASI context. */
        __wasilibc_deinitialize_environ();
        __wasilibc_initialize_environ();
        if (refresh_process_state() != 0) {
            int rc = exit_code_from_exception();
            flush_std_streams();
            fflush(stderr);
            return rc;
        }
    }
    return call_runner("vivarium_run", "main");
}

/* Called by the host after vivarium_run() on the same instance, when it could not take the
 * result from its compact (marshal) form: writes it again as the JSON result document. */
__attribute__((export_name("vivarium_reply_json"))) int
vivarium_reply_json(void)
{
    return call_runner("vivarium_reply_json", "reply_json");
}
