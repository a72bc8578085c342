//! What the numpy and pandas benchmarks share: a sandbox of one profile with a warm pool,
//! actions in temporary folders, calls that must succeed, a native `python3` with the
//! packages the runtime provides (the baseline), and the size and compile time of a
//! profile's snapshot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vivarium_runtime::BuiltInterpreter;
use vivarium_sandbox::{Call, OutcomeKind, PrepareOptions, Profile, Sandbox};

/// What a benchmark's steps answer.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A sandbox of `profile`, with a warm pool.
pub fn sandbox(cache: &Path, profile: Profile) -> BenchResult<Sandbox> {
    let options = PrepareOptions {
        profile,
        pool_size: 8,
        max_concurrent_calls: 4,
        ..PrepareOptions::default()
    };
    Ok(vivarium_sandbox::prepare(cache, &options)?)
}

/// A folder holding `main.py` with `source`.
pub fn action(source: &str) -> BenchResult<tempfile::TempDir> {
    let folder = tempfile::tempdir()?;
    std::fs::write(folder.path().join("main.py"), source)?;
    Ok(folder)
}

/// Runs `call`, which must succeed; answers its result.
pub fn run_ok(sandbox: &Sandbox, call: &Call<'_>) -> Result<Option<Value>, String> {
    let outcome = sandbox.run(call).map_err(|e| e.to_string())?;
    if outcome.kind != OutcomeKind::Ok {
        return Err(format!("the call failed: {:?}", outcome.error));
    }
    Ok(outcome.result)
}

/// A `python3` with `requirements` (`name==version`): a virtual environment under
/// `target/bench-python/`, made once per set, which must import `module`.
pub fn native_python(root: &Path, requirements: &[String], module: &str) -> BenchResult<PathBuf> {
    let venv = root
        .join("target/bench-python")
        .join(requirements.join("+"));
    let python = venv.join("bin/python3");
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|status| status.success())
    };
    if python.is_file() && imports(&python) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()?;
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(requirements)
        .status()?;
    if !made.success() || !installed.success() || !imports(&python) {
        let wanted = requirements.join(" ");
        return Err(format!("could not install {wanted} into {}", venv.display()).into());
    }
    Ok(python)
}

/// How long Cranelift takes to compile `profile`'s snapshot (what its first use after an
/// interpreter build pays; later starts load it from the compile cache).
pub fn compile_time(
    cache: &Path,
    built: &BuiltInterpreter,
    profile: Profile,
) -> BenchResult<Duration> {
    let snapshot = vivarium_sandbox::ensure_snapshot(cache, built, profile)?;
    let bytes = std::fs::read(&snapshot.path)?;
    let engine = vivarium_sandbox::new_pooling_engine(8)?;
    let started = Instant::now();
    wasmtime::Module::new(&engine, &bytes)?;
    Ok(started.elapsed())
}

/// The size of `profile`'s snapshot.
pub fn snapshot_size(cache: &Path, built: &BuiltInterpreter, profile: Profile) -> BenchResult<u64> {
    let snapshot = vivarium_sandbox::ensure_snapshot(cache, built, profile)?;
    Ok(std::fs::metadata(&snapshot.path)?.len())
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
