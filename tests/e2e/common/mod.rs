//! Helpers shared by the end-to-end tests, by job: driving the `vivarium` command line
//! ([`cli`]), files and folders ([`files`]), action ZIPs ([`zips`]) and upload forms
//! ([`forms`]), the interpreter cache ([`cache`]), wheels ([`wheels`]), the packages the
//! runtime provides ([`provided`]); a `vivarium serve`
//! process ([`process`]), the HTTP client ([`client`]) and the API's calls ([`api`]) it and
//! the in-process router ([`in_process`]) share, metrics ([`metrics`]), a PostgreSQL schema
//! per test ([`postgres`]), and a real browser for the console ([`browser`]).
//!
//! Every invocation uses one shared cache folder under `CARGO_TARGET_TMPDIR`, so the interpreter
//! is downloaded and compiled once for the whole suite (the binary locks around both, so tests
//! running in parallel may hit a cold cache safely).

pub mod api;
pub mod browser;
pub mod cache;
pub mod cli;
pub mod client;
pub mod files;
pub mod forms;
pub mod in_process;
pub mod metrics;
pub mod postgres;
pub mod process;
pub mod provided;
pub mod wheels;
pub mod zips;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The cache folder every test shares. Never delete or modify it from a test.
pub const CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/vivarium-cache");

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vivarium");

/// Makes sure the shared cache holds the interpreter the tests run (the pre-initialized one
/// built from source, unless `VIVARIUM_RUNTIME=pinned`), before any test's watchdog starts.
pub fn ensure_shared_runtime() {
    if !pinned_runtime() {
        ensure_built_runtime();
    }
}

/// Whether the tests run on the pinned interpreter (`VIVARIUM_RUNTIME=pinned`, as `.ci/run`
/// sets for its second pass) rather than the one built from source.
pub fn pinned_runtime() -> bool {
    std::env::var("VIVARIUM_RUNTIME").is_ok_and(|runtime| runtime.trim() == "pinned")
}

/// Makes sure the shared cache holds the pre-initialized interpreter built from source,
/// whichever runtime the other tests run on: on a fresh machine the first test builds it
/// (about five minutes), the others wait on the build's lock. Once per test process; a build
/// that fails fails the test.
pub fn ensure_built_runtime() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        let output = Command::new(BIN)
            .args(["runtime", "build"])
            .env("VIVARIUM_CACHE_DIR", CACHE_DIR)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        assert!(
            output.status.success(),
            "`vivarium runtime build` failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Waits up to `limit` for `child` to exit and answers its status; past the limit, kills and
/// reaps it and answers `None`.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The first `max` bytes of `text` (cut at a character boundary), with how many were left
/// out, for failure messages.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &text[..end], text.len() - end)
}

/// Polls `probe` until it answers `Some`, failing with `what` after `timeout`.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "gave up after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
