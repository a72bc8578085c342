//! Per-call latency of the seed example over 100 records, all measured in one run: the
//! pre-initialized interpreter built from source (fresh instance per call from the warm pool),
//! the pinned prebuilt interpreter started afresh per call (the previous path), and the same
//! runner in a native `python3` subprocess per call; then the resident memory each extra live
//! instance of the snapshot costs. Run with `cargo xtask bench`; `VIVARIUM_BENCH_CALLS` sets
//! the number of measured calls.

mod timing;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use timing::{measure, native_call, p50, plain_call, row};
use vivarium_runtime::FetchOptions;
use vivarium_sandbox::{
    ActionEnv, Call, Input, OutcomeKind, PrepareOptions, RuntimeChoice, Sandbox,
};

const RECORDS: usize = 100;
/// Calls made first on each path: enough for every slot of the pooling allocator (the warm
/// pool, the calls it allows and the instances waiting to be dropped) to have been used once,
/// as in a service that has been up for a while.
const WARMUP: usize = 60;
/// Instances held live at once to measure what each one costs in resident memory.
const LIVE_INSTANCES: usize = 16;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let calls: usize = std::env::var("VIVARIUM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let action = root.join("fixtures/actions/uppercase_distinct");
    let records = hundred_records(&root.join("fixtures/records/k8s_logs.json"))?;
    let cache = vivarium_runtime::cache_dir(None)?;

    let load_started = Instant::now();
    let snapshot = sandbox(&cache, RuntimeChoice::Snapshot)?;
    let load_time = load_started.elapsed();
    let pinned = sandbox(&cache, RuntimeChoice::Pinned)?;

    let env = ActionEnv::default();
    let call = plain_call(&action, &records, &env);
    let mut fuel = (0, 0);
    let fast = measure(WARMUP, calls, || {
        run_ok(&snapshot, &call).map(|used| fuel.0 = used)
    })?;
    let previous = measure(WARMUP, calls, || {
        run_ok(&pinned, &call).map(|used| fuel.1 = used)
    })?;
    let layer = tempfile::tempdir()?;
    std::fs::create_dir_all(layer.path().join("unused"))?;
    std::fs::write(layer.path().join("unused/__init__.py"), "")?;
    let with_layer = Call {
        dependency_layer: Some(layer.path()),
        egress: None,
        ..call.clone()
    };
    let layered = measure(WARMUP, calls, || run_ok(&snapshot, &with_layer).map(drop))?;
    let trivial_dir = tempfile::tempdir()?;
    std::fs::write(
        trivial_dir.path().join("main.py"),
        "def main(data, logger):\n    return data\n",
    )?;
    let trivial_call = Call {
        action_dir: trivial_dir.path(),
        input: Input::Data(serde_json::json!([{"n": 1}])),
        ..call.clone()
    };
    let trivial = measure(WARMUP, calls, || run_ok(&snapshot, &trivial_call).map(drop))?;
    let request = serde_json::to_vec(&serde_json::json!({ "data": records }))?;
    let python = native_python()?;
    let native = measure(WARMUP, calls, || {
        native_call(&python, &["-I", "-S", "-B"], &action, &request)
    })?;
    let per_instance = resident_cost_per_instance(&snapshot)?;

    println!(
        "\nSeed example over {RECORDS} records, {calls} calls each after {WARMUP} warm-up calls"
    );
    println!("snapshot sandbox ready (build, snapshot and compile caches warm) in {load_time:.2?}");
    println!("fuel per call: snapshot {} / pinned {}\n", fuel.0, fuel.1);
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    row(
        "snapshot (built from source, pre-initialized), fresh instance per call",
        &fast,
    );
    row("same, with a dependency layer mounted at /deps", &layered);
    row(
        "snapshot, a trivial action (returns one record): the fixed cost of a call",
        &trivial,
    );
    row(
        "pinned interpreter started per call (previous path)",
        &previous,
    );
    row("native python3 subprocess per call (baseline)", &native);
    println!(
        "\nnative p50 / snapshot p50: {:.1}x faster (target 15x)",
        p50(&native) / p50(&fast)
    );
    println!(
        "previous p50 / snapshot p50: {:.1}x faster (target 50x)",
        p50(&previous) / p50(&fast)
    );
    println!(
        "resident memory per extra live instance: {:.2} MiB (target at most 10 MiB; {LIVE_INSTANCES} held at once)",
        per_instance / (1024.0 * 1024.0)
    );
    Ok(())
}

/// A sandbox over `runtime`, with a warm pool for the snapshot.
fn sandbox(cache: &Path, runtime: RuntimeChoice) -> BenchResult<Sandbox> {
    let options = PrepareOptions {
        runtime,
        fetch: FetchOptions::default(),
        pool_size: 8,
        max_concurrent_calls: LIVE_INSTANCES + 2,
        ..PrepareOptions::default()
    };
    Ok(vivarium_sandbox::prepare(cache, &options)?)
}

/// Runs `call`, which must succeed; answers the fuel it used.
fn run_ok(sandbox: &Sandbox, call: &Call<'_>) -> Result<u64, String> {
    let outcome = sandbox.run(call).map_err(|e| e.to_string())?;
    if outcome.kind != OutcomeKind::Ok {
        return Err(format!("the sandboxed call failed: {:?}", outcome.error));
    }
    Ok(outcome.fuel_used)
}

/// Holds [`LIVE_INSTANCES`] calls live at once (each sleeping in the guest after touching its
/// imports) and answers the resident memory each adds, in bytes, over the process at rest.
fn resident_cost_per_instance(sandbox: &Sandbox) -> BenchResult<f64> {
    let action = tempfile::tempdir()?;
    std::fs::write(
        action.path().join("main.py"),
        "import json, logging, time\n\ndef main(data, logger):\n    logger.info(json.dumps(data))\n    time.sleep(1.5)\n    return data\n",
    )?;
    let env = ActionEnv::default();
    let call = plain_call(action.path(), &serde_json::json!([{"n": 1}]), &env);
    run_ok(sandbox, &call)?;
    std::thread::sleep(Duration::from_millis(500));
    let at_rest = resident_bytes()?;
    let during = std::thread::scope(|scope| -> BenchResult<u64> {
        let running: Vec<_> = (0..LIVE_INSTANCES)
            .map(|_| scope.spawn(|| run_ok(sandbox, &call)))
            .collect();
        std::thread::sleep(Duration::from_millis(900));
        let during = resident_bytes()?;
        for handle in running {
            handle.join().map_err(|_| "a call panicked")??;
        }
        Ok(during)
    })?;
    Ok(during.saturating_sub(at_rest) as f64 / LIVE_INSTANCES as f64)
}

/// This process's resident set size, from `/proc/self/statm`.
fn resident_bytes() -> BenchResult<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no resident size in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

fn hundred_records(path: &Path) -> BenchResult<Value> {
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
