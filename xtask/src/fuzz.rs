//! `cargo xtask fuzz`: runs the coverage-guided fuzz targets in `fuzz/` with libFuzzer through
//! cargo-fuzz, on the stable toolchain.
//!
//! cargo-fuzz needs nightly only for its sanitizers; `--sanitizer none` builds with
//! libFuzzer's coverage instrumentation alone, which stable rustc accepts. The code under test
//! is safe Rust, so what the fuzzer looks for are panics (every broken invariant of a
//! harness is one), aborts, timeouts and runaway memory, with debug assertions and overflow
//! checks on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{cargo_install, cargo_program};

/// The cargo-fuzz release installed when none is on the machine.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// An input running longer than this is reported as a hang.
const INPUT_TIMEOUT_SECS: u64 = 10;
/// Resident memory past which the run stops and the input is reported.
const RSS_LIMIT_MB: u64 = 2048;

/// Fuzzes `target` (or every target, one after another, for `all`) for `time` each.
///
/// Each target's working corpus is `target/fuzz-corpus/<target>/` (kept between runs, never
/// committed); its committed seeds in `fuzz/seeds/<target>/` are read alongside. A crash
/// leaves its input under `fuzz/artifacts/<target>/` and fails the task.
pub fn run(root: &Path, target: &str, time: Duration) -> anyhow::Result<()> {
    ensure_cargo_fuzz(root)?;
    let targets = if target == "all" {
        list_targets(root)?
    } else {
        vec![target.to_string()]
    };
    for target in &targets {
        fuzz_one(root, target, time)?;
    }
    Ok(())
}

fn fuzz_one(root: &Path, target: &str, time: Duration) -> anyhow::Result<()> {
    let seeds = root.join("fuzz/seeds").join(target);
    if !seeds.is_dir() {
        bail!(
            "no fuzz target {target:?} has seeds at {}; `cargo fuzz list` names the targets",
            seeds.display()
        );
    }
    let corpus = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("could not create {}", corpus.display()))?;
    eprintln!("fuzzing {target} for {}", humantime::format_duration(time));
    let status = Command::new(cargo_program())
        .args(["fuzz", "run", "--sanitizer", "none", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={}", time.as_secs().max(1)))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .current_dir(root)
        .status()
        .context("could not start cargo fuzz")?;
    if !status.success() {
        bail!(
            "fuzz target {target} failed ({status}): its input is under fuzz/artifacts/{target}/; \
             once fixed, copy it into fuzz/seeds/{target}/ so the tests replay it"
        );
    }
    Ok(())
}

fn list_targets(root: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new(cargo_program())
        .args(["fuzz", "list"])
        .current_dir(root)
        .output()
        .context("could not start cargo fuzz list")?;
    if !output.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect())
}

/// Installs cargo-fuzz when `cargo fuzz` is not available.
fn ensure_cargo_fuzz(root: &Path) -> anyhow::Result<()> {
    let present = Command::new(cargo_program())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if present {
        return Ok(());
    }
    cargo_install(root, "cargo-fuzz", CARGO_FUZZ_VERSION, None)
}
