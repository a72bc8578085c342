//! Per-call latency of the seed example over 100 records: the sandbox in-process (a fresh
//! instance per call) against the same runner in a native `python3` subprocess per call.
//! Run with `cargo xtask bench`; `VIVARIUM_BENCH_CALLS` sets the number of measured calls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vivarium_runtime::{FetchOptions, InstalledInterpreter, PINNED, load_or_compile};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, OutcomeKind, RUNNER_SOURCE, ResultShape, Sandbox, new_engine,
};

const RECORDS: usize = 100;
const WARMUP: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::var("VIVARIUM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let action = root.join("fixtures/actions/uppercase_distinct");
    let records = hundred_records(&root.join("fixtures/records/k8s_logs.json"))?;
    let cache = vivarium_runtime::cache_dir(None)?;

    let engine = new_engine()?;
    let interpreter = InstalledInterpreter::ensure(&cache, &PINNED, &FetchOptions::default())?;
    let load_started = Instant::now();
    let compiled = load_or_compile(&engine, &interpreter, &cache)?;
    let load_time = load_started.elapsed();
    let sandbox = Sandbox::new(engine, &compiled.module)?;

    let env = ActionEnv::default();
    let call = Call {
        action_dir: &action,
        input: Input::Data(records.clone()),
        env: &env,
        limits: Limits::DEFAULT,
        shape: ResultShape::Records,
        dependency_layer: None,
    };
    let mut fuel = 0;
    let sandboxed = measure(calls, || {
        let outcome = sandbox.run(&call).map_err(|e| e.to_string())?;
        if outcome.kind != OutcomeKind::Ok {
            return Err(format!("the sandboxed call failed: {:?}", outcome.error));
        }
        fuel = outcome.fuel_used;
        Ok(())
    })?;
    let layer = tempfile::tempdir()?;
    std::fs::create_dir_all(layer.path().join("unused"))?;
    std::fs::write(layer.path().join("unused/__init__.py"), "")?;
    let with_layer = Call {
        dependency_layer: Some(layer.path()),
        ..call.clone()
    };
    let layered = measure(calls, || {
        let outcome = sandbox.run(&with_layer).map_err(|e| e.to_string())?;
        if outcome.kind != OutcomeKind::Ok {
            return Err(format!("the call with a layer failed: {:?}", outcome.error));
        }
        Ok(())
    })?;
    let request = serde_json::to_vec(&serde_json::json!({ "data": records }))?;
    let python = native_python()?;
    let native = measure(calls, || native_call(&python, &action, &request))?;

    println!(
        "\nSeed example over {RECORDS} records, {calls} calls each after {WARMUP} warm-up calls"
    );
    println!(
        "module load from the compile cache: {load_time:.2?} (compiled now: {})",
        compiled.compiled_now
    );
    println!("fuel per sandboxed call: {fuel}\n");
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    row(
        "vivarium sandbox, fresh instance per call (in-process)",
        &sandboxed,
    );
    row("same, with a dependency layer mounted at /deps", &layered);
    row("native python3 subprocess per call (baseline)", &native);
    let ratio = percentile(&sandboxed, 0.5).as_secs_f64() / percentile(&native, 0.5).as_secs_f64();
    println!("\nratio sandbox p50 / native p50: {ratio:.2} (below 1 means the sandbox is faster)");
    Ok(())
}

fn hundred_records(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let fixture: Vec<Value> = serde_json::from_slice(&std::fs::read(path)?)?;
    let records = fixture.iter().cycle().take(RECORDS).cloned().collect();
    Ok(Value::Array(records))
}

/// The real `python3` executable, so that launcher shims (pyenv's, say) do not count.
fn native_python() -> Result<PathBuf, String> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|e| format!("python3 is needed for the baseline: {e}"))?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if path.is_empty() {
        return Err("python3 did not report its executable".into());
    }
    Ok(PathBuf::from(path))
}

fn native_call(python: &Path, action: &Path, request: &[u8]) -> Result<(), String> {
    let mut child = Command::new(python)
        .args(["-I", "-S", "-B", "-c", RUNNER_SOURCE])
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 did not start: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request)
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.stdout.starts_with(br#"{"ok": true"#) {
        return Err(format!(
            "the native call failed: {}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(())
}

fn measure(
    calls: usize,
    mut one: impl FnMut() -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    for _ in 0..WARMUP {
        one()?;
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        one()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn row(name: &str, sorted: &[Duration]) {
    let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
    println!(
        "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        ms(mean)
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
