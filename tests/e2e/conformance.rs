//! Conformance of the interpreter built from source: a chosen subset of CPython's own
//! regression tests (its `Lib/test`, kept by the build), and one of numpy's own tests on the
//! numpy profile (with pytest from the public index), run inside the sandbox, through
//! `vivarium run`, on the pre-initialized interpreter (whatever `VIVARIUM_RUNTIME` says). Each module runs as an action whose
//! `main()` loads it with `unittest` and returns the counts and every failure.
//!
//! What is skipped, and why, is listed in [`SKIPPED`]; CPython's own decorators skip what
//! WASI cannot do (subprocesses, threads, signals, sockets), and those are counted, not hidden.

use std::path::Path;

use crate::common::cli::run_on;
use crate::common::wheels::pyproject;
use crate::common::{CACHE_DIR, ensure_built_runtime};
use serde_json::{Value, json};

/// The limits of each conformance call: the snapshot runtime, and the most time and fuel a
/// call may have (a suite runs thousands of tests).
const SUITE_LIMITS: &[&str] = &[
    "--runtime",
    "snapshot",
    "--timeout",
    "15m",
    "--fuel",
    "1000000000000",
    "--memory",
    "4GiB",
];

/// The modules run, each an importable name under the `test` package.
const MODULES: &[&str] = &[
    "test.test_json",
    "test.test_re",
    "test.test_datetime",
    "test.test_collections",
    "test.test_decimal",
    "test.test_logging",
    "test.test_base64",
    "test.test_csv",
];

/// Tests left out, as test id prefix and why (an id matches by prefix). None today: the tests
/// that write files, left out while actions had no writable folder, run in the call's `/tmp`.
const SKIPPED: &[(&str, &str)] = &[];

/// The action: loads one module's tests, runs them with a runner whose output stays in memory,
/// and reports counts, failures and errors (with their tracebacks' last lines). They run in
/// the call's `/tmp` (where the files they write, named relative to the working folder, go),
/// and the root logger is without the runner's own handler while they run (test_logging checks
/// that it starts with none).
const CONFORMANCE_MAIN: &str = r#"
import io, logging, os, unittest

def main(data, logger):
    os.chdir("/tmp")
    root = logging.getLogger()
    handlers, root.handlers[:] = root.handlers[:], []
    try:
        return run(data)
    finally:
        root.handlers[:] = handlers

def run(data):
    name, skipped = data[0]["module"], data[0]["skipped"]
    suite = unittest.defaultTestLoader.loadTestsFromName(name)
    kept = unittest.TestSuite()
    left_out = []
    def walk(item):
        if isinstance(item, unittest.TestSuite):
            for child in item:
                walk(child)
        elif any(item.id().startswith(prefix) for prefix in skipped):
            left_out.append(item.id())
        else:
            kept.addTest(item)
    walk(suite)
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(kept)
    def describe(pairs):
        return [{"test": test.id(), "detail": text.strip().splitlines()[-1:]} for test, text in pairs]
    return [{
        "module": name,
        "run": result.testsRun,
        "skipped_by_cpython": len(result.skipped),
        "left_out": left_out,
        "failures": describe(result.failures),
        "errors": describe(result.errors),
        "unexpected_successes": len(result.unexpectedSuccesses),
    }]
"#;

#[test]
fn cpython_regression_subset_passes_in_the_sandbox() {
    ensure_built_runtime();
    let tests = Path::new(CACHE_DIR).join("python-src/out/test");
    assert!(
        tests.is_dir(),
        "the build keeps Lib/test at {}",
        tests.display()
    );
    let action = tempfile::tempdir().expect("action folder");
    copy_tree(&tests, &action.path().join("test"));
    std::fs::write(action.path().join("main.py"), CONFORMANCE_MAIN).expect("main.py");
    let skipped: Vec<&str> = SKIPPED.iter().map(|(prefix, _)| *prefix).collect();

    let mut failed = Vec::new();
    for module in MODULES {
        let outcome = run_on(
            action.path(),
            &json!([{"module": module, "skipped": skipped}]),
            SUITE_LIMITS,
        );
        let report: Value = outcome.success_json();
        let report = &report[0];
        eprintln!(
            "{module}: {} run, {} skipped by CPython, {} left out, {} failures, {} errors",
            report["run"],
            report["skipped_by_cpython"],
            report["left_out"].as_array().map_or(0, Vec::len),
            report["failures"].as_array().map_or(0, Vec::len),
            report["errors"].as_array().map_or(0, Vec::len),
        );
        assert!(
            report["run"].as_u64().unwrap_or(0) > 0,
            "{module} ran nothing: {report}"
        );
        for kind in ["failures", "errors"] {
            if report[kind]
                .as_array()
                .is_some_and(|found| !found.is_empty())
            {
                failed.push(format!("{module} {kind}: {}", report[kind]));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Copies `from` into `to` (a fresh folder), files and sub-folders.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a folder");
    for entry in std::fs::read_dir(from).expect("listing the tests") {
        let entry = entry.expect("listing the tests");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a test file");
        }
    }
}

/// One package's own tests as the conformance run runs them on its profile.
struct PytestRun {
    /// The package, imported by the action (which puts it on the package's profile).
    package: &'static str,
    /// The suites, each run as one call, as `pytest --pyargs` names them.
    suites: &'static [&'static [&'static str]],
    /// Tests left out, as a pytest `-k` expression, and why. The package's own markers skip
    /// what WebAssembly cannot do or an optional package not installed; those are counted as
    /// skipped, not left out.
    skipped: &'static [(&'static str, &'static str)],
    /// pytest arguments of the package's own (its options, markers left out).
    args: &'static [&'static str],
    /// The pure-Python packages the suites run with, from the public index. hypothesis is
    /// held at its last release with a pure-Python wheel (6.155.7; later ones are compiled).
    dependencies: &'static [&'static str],
}

/// numpy's: the core array tests (numeric, indexing, shapes, item selection, iteration), the
/// ufunc loops of `test_umath`, and the linalg, fft and random packages whole.
/// `test_multiarray` and `test_ufunc` are not among them: they import `ctypes` at module
/// level, and WASI has no `_ctypes`.
const NUMPY_RUN: PytestRun = PytestRun {
    package: "numpy",
    suites: &[
        &[
            "numpy._core.tests.test_numeric",
            "numpy._core.tests.test_umath",
            "numpy._core.tests.test_indexing",
            "numpy._core.tests.test_shape_base",
            "numpy._core.tests.test_item_selection",
            "numpy._core.tests.test_nditer",
        ],
        &["numpy.linalg"],
        &["numpy.fft"],
        &["numpy.random"],
    ],
    skipped: &[
        (
            "test_ctypes",
            "ctypes: WASI has no dynamic loading, so CPython's _ctypes is not built",
        ),
        (
            "test_debug_print",
            "pytest's capfd captures file descriptors with dup(), which WASI lacks",
        ),
        (
            "TestSpecialFloats and test_exp",
            "they expect FloatingPointError from np.exp overflow: WebAssembly has no floating-point exception flags",
        ),
    ],
    args: &[],
    dependencies: &["pytest>=8", "hypothesis==6.155.7"],
};

/// pandas': what actions over log records lean on (frames from records and back, group-bys,
/// resampling, merges, quantiles, rolling windows, string methods, dates from text, JSON) and
/// the time-series machinery underneath. As for an installed pandas, the tests of network
/// and databases are left out by their markers.
const PANDAS_RUN: PytestRun = PytestRun {
    package: "pandas",
    suites: &[
        &[
            "pandas.tests.frame.methods.test_to_dict",
            "pandas.tests.frame.constructors",
            "pandas.tests.frame.methods.test_quantile",
            "pandas.tests.series.methods.test_quantile",
        ],
        &[
            "pandas.tests.groupby.test_counting",
            "pandas.tests.groupby.aggregate",
        ],
        &["pandas.tests.resample.test_datetime_index"],
        &["pandas.tests.reshape.merge.test_merge"],
        &["pandas.tests.tslibs"],
        &[
            "pandas.tests.tools.test_to_datetime",
            "pandas.tests.strings",
        ],
        &[
            "pandas.tests.io.json.test_pandas",
            "pandas.tests.io.json.test_ujson",
        ],
        &[
            "pandas.tests.window.test_rolling",
            "pandas.tests.groupby.test_groupby",
        ],
    ],
    skipped: &[
        (
            "test_no_timezone_data",
            "it runs a Python subprocess, which WASI cannot start",
        ),
        (
            "test_read_json_with_very_long_file_path and bz2",
            "CPython's bz2 needs libbz2, which the recipe does not build",
        ),
        (
            "test_v12_compat or test_round_trip_exception",
            "they read data files that pandas' source distribution does not ship",
        ),
    ],
    args: &["-m", "not network and not db"],
    dependencies: &["pytest>=8.3.4", "hypothesis==6.155.7"],
};

/// The action, after a line importing the package under test (what puts the action on its
/// profile: pytest imports the tests by name): runs one suite with pytest in the call's
/// `/tmp`, with the plugins that need what the sandbox lacks turned off (the cache and the log
/// file plugins write outside `/tmp`, fd capture needs `dup`, faulthandler a file
/// descriptor) and its temporary folders given (else it asks `os.getuid`, which WASI lacks),
/// and reports the outcome of every test.
const PYTEST_MAIN: &str = r#"
import contextlib, io, os

class Tally:
    def __init__(self):
        self.counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
        self.failures = []

    def pytest_runtest_logreport(self, report):
        if hasattr(report, "wasxfail"):
            kind = "xfailed" if report.skipped else "xpassed"
        elif report.when == "call" or report.outcome != "passed":
            kind = report.outcome
        else:
            return
        self.counts[kind] += 1
        if kind == "failed":
            lines = str(report.longrepr).strip().splitlines()
            self.failures.append({"test": report.nodeid, "detail": lines[-1:]})

def main(data, logger):
    import pytest
    os.chdir("/tmp")
    suite, skipped = data[0]["suite"], data[0]["skipped"]
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:logging", "-p", "no:faulthandler",
            "--capture=sys", "--rootdir=/tmp", "--basetemp=/tmp/pytest", *data[0]["args"],
            "--pyargs", *suite]
    if skipped:
        args += ["-k", " and ".join("not (%s)" % expression for expression in skipped)]
    tally = Tally()
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args, plugins=[tally])
    return [{"exit": int(code), **tally.counts, "failures": tally.failures}]
"#;

#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "installs pytest from the public package index: set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn numpy_test_subset_passes_in_the_sandbox() {
    run_pytest_suites(&NUMPY_RUN);
}

#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "installs pytest from the public package index: set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn pandas_test_subset_passes_in_the_sandbox() {
    run_pytest_suites(&PANDAS_RUN);
}

/// Runs each suite of `run` as one call of the pytest action, and fails naming every suite
/// with a failure.
fn run_pytest_suites(run: &PytestRun) {
    let package = run.package;
    ensure_built_runtime();
    let action = tempfile::tempdir().expect("action folder");
    let main = format!("import {package}\n{PYTEST_MAIN}");
    std::fs::write(action.path().join("main.py"), main).expect("main.py");
    std::fs::write(
        action.path().join("pyproject.toml"),
        pyproject(run.dependencies),
    )
    .expect("pyproject.toml");
    let skipped: Vec<&str> = run
        .skipped
        .iter()
        .map(|(expression, _)| *expression)
        .collect();
    let mut failed = Vec::new();
    for suite in run.suites {
        let outcome = run_on(
            action.path(),
            &json!([{"suite": suite, "skipped": skipped, "args": run.args}]),
            SUITE_LIMITS,
        );
        let report = &outcome.success_json()[0];
        eprintln!(
            "{}: {} passed, {} skipped by {package}, {} xfailed, {} xpassed, {} failed (exit {})",
            suite.join(" "),
            report["passed"],
            report["skipped"],
            report["xfailed"],
            report["xpassed"],
            report["failed"],
            report["exit"],
        );
        assert!(
            report["passed"].as_u64().unwrap_or(0) > 0,
            "{suite:?} ran nothing: {report}"
        );
        if report["failed"].as_u64() != Some(0) || report["exit"] != json!(0) {
            failed.push(format!("{suite:?}: {report}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
