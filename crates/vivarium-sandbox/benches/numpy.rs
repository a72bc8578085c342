//! numpy in the sandbox, all measured in one run: a summary of 10,000 log records (latency
//! percentiles, a histogram, error counts per level) computed with numpy on the numpy
//! profile, the same computation in pure Python in the sandbox (standard profile), and with
//! numpy in a native `python3` subprocess per call (numpy installed once into a virtual
//! environment under `target/`, the version the runtime provides); then the fixed cost of a
//! call on each profile (a trivial action) and the sizes and compile time of the numpy
//! profile. Run with `cargo xtask bench`; `VIVARIUM_BENCH_CALLS` sets the number of measured
//! calls.

mod profiled;
mod timing;

use std::path::Path;

use profiled::{
    BenchResult, action, compile_time, mib, native_python, run_ok, sandbox, snapshot_size,
};
use serde_json::{Value, json};
use timing::{measure, native_call, p50, plain_call, row};
use vivarium_runtime::BuiltInterpreter;
use vivarium_sandbox::{ActionEnv, Profile, Sandbox};

/// Records summarised by each call.
const RECORDS: usize = 10_000;
/// Calls made before measuring, so that every pool slot has been used once.
const WARMUP: usize = 20;

/// The summary with numpy.
const NUMPY_MAIN: &str = r#"
import numpy as np

def main(data, logger):
    latency = np.fromiter((r["latency_ms"] for r in data), dtype=np.float64, count=len(data))
    levels = np.array([r["level"] for r in data])
    p50, p90, p99 = np.percentile(latency, [50, 90, 99])
    counts, _ = np.histogram(latency, bins=10, range=(0, 1000))
    names, per_level = np.unique(levels, return_counts=True)
    return [{"p50": float(p50), "p90": float(p90), "p99": float(p99),
             "histogram": counts.tolist(), "mean": float(latency.mean()),
             "levels": dict(zip(names.tolist(), per_level.tolist()))}]
"#;

/// Linear algebra, where a native numpy has OpenBLAS and the sandbox's has `lapack_lite`: a
/// 256×256 matrix product and a solve.
const LINALG_MAIN: &str = r#"
import numpy as np

def main(data, logger):
    rng = np.random.default_rng(7)
    a = rng.random((256, 256)) + 256 * np.eye(256)
    b = rng.random(256)
    product = a @ a
    x = np.linalg.solve(a, b)
    return [{"trace": float(np.trace(product)), "residual": float(np.abs(a @ x - b).max())}]
"#;

/// The same summary in pure Python.
const PURE_MAIN: &str = r#"
import collections

def percentile(ordered, q):
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

def main(data, logger):
    latency = sorted(float(r["latency_ms"]) for r in data)
    counts = [0] * 10
    for value in latency:
        if 0 <= value <= 1000:
            counts[min(int(value // 100), 9)] += 1
    levels = collections.Counter(r["level"] for r in data)
    return [{"p50": percentile(latency, 50), "p90": percentile(latency, 90),
             "p99": percentile(latency, 99), "histogram": counts,
             "mean": sum(latency) / len(latency), "levels": dict(sorted(levels.items()))}]
"#;

fn main() -> BenchResult<()> {
    let calls: usize = std::env::var("VIVARIUM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cache = vivarium_runtime::cache_dir(None)?;
    let standard = sandbox(&cache, Profile::Standard)?;
    let numpy = sandbox(&cache, Profile::Numpy)?;
    let built = BuiltInterpreter::find(&cache).ok_or("the interpreter is not built")?;
    let records = log_records();

    let numpy_action = action(NUMPY_MAIN)?;
    let pure_action = action(PURE_MAIN)?;
    let trivial_numpy = action("import numpy\n\ndef main(data, logger):\n    return data\n")?;
    let trivial = action("def main(data, logger):\n    return data\n")?;
    let env = ActionEnv::default();
    let summary =
        |sandbox: &Sandbox, folder: &Path| run_ok(sandbox, &plain_call(folder, &records, &env));
    if summary(&numpy, numpy_action.path())? != summary(&standard, pure_action.path())? {
        return Err("numpy and pure Python disagree on the summary".into());
    }
    let with_numpy = measure(WARMUP, calls, || {
        summary(&numpy, numpy_action.path()).map(drop)
    })?;
    let pure = measure(WARMUP, calls, || {
        summary(&standard, pure_action.path()).map(drop)
    })?;
    let one = json!([{"n": 1}]);
    let numpy_fixed = measure(WARMUP, calls, || {
        run_ok(&numpy, &plain_call(trivial_numpy.path(), &one, &env)).map(drop)
    })?;
    let standard_fixed = measure(WARMUP, calls, || {
        run_ok(&standard, &plain_call(trivial.path(), &one, &env)).map(drop)
    })?;
    let python = native_python(&root, &[format!("numpy=={}", built.numpy_version)], "numpy")?;
    let request = serde_json::to_vec(&json!({ "data": records }))?;
    let native = measure(WARMUP, calls, || {
        native_call(&python, &["-I", "-B"], numpy_action.path(), &request)
    })?;
    let linalg_action = action(LINALG_MAIN)?;
    let linalg = measure(WARMUP, calls, || {
        run_ok(&numpy, &plain_call(linalg_action.path(), &one, &env)).map(drop)
    })?;
    let one_request = serde_json::to_vec(&json!({ "data": one }))?;
    let native_linalg = measure(WARMUP, calls, || {
        native_call(&python, &["-I", "-B"], linalg_action.path(), &one_request)
    })?;
    let compile = compile_time(&cache, &built, Profile::Numpy)?;

    println!(
        "\nnumpy {}: a summary of {RECORDS} log records, {calls} calls each",
        built.numpy_version
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    row(
        "numpy profile, numpy summary (fresh instance per call)",
        &with_numpy,
    );
    row("standard profile, the same summary in pure Python", &pure);
    row(
        "native python3 + numpy subprocess per call (baseline)",
        &native,
    );
    row(
        "numpy profile, a trivial action: the fixed cost of a call",
        &numpy_fixed,
    );
    row(
        "standard profile, a trivial action (for comparison)",
        &standard_fixed,
    );
    row(
        "numpy profile, 256x256 product and solve (lapack_lite, no BLAS)",
        &linalg,
    );
    row(
        "native python3 + numpy (OpenBLAS) subprocess, the same",
        &native_linalg,
    );
    println!(
        "\npure Python p50 / numpy p50: {:.1}x; native subprocess p50 / numpy p50: {:.1}x",
        p50(&pure) / p50(&with_numpy),
        p50(&native) / p50(&with_numpy)
    );
    println!(
        "fixed cost, numpy profile / standard profile: {:.2}x",
        p50(&numpy_fixed) / p50(&standard_fixed)
    );
    println!(
        "linear algebra without BLAS: sandbox p50 - fixed cost = {:.1} ms; native subprocess p50 = {:.1} ms (process start included)",
        (p50(&linalg) - p50(&numpy_fixed)) * 1000.0,
        p50(&native_linalg) * 1000.0
    );
    println!(
        "modules: standard reactor {:.1} MiB, numpy reactor {:.1} MiB; numpy snapshot {:.1} MiB, compiled in {compile:.1?}",
        mib(std::fs::metadata(&built.reactor.path)?.len()),
        mib(std::fs::metadata(&built.numpy_reactor.path)?.len()),
        mib(snapshot_size(&cache, &built, Profile::Numpy)?),
    );
    Ok(())
}

/// Records with a latency (0 to 999 ms, spread by a fixed rule) and a level.
fn log_records() -> Value {
    let levels = ["info", "info", "info", "warn", "error"];
    let records: Vec<Value> = (0..RECORDS)
        .map(
            |n| json!({"latency_ms": (n * 7919) % 1000, "level": levels[n % levels.len()], "n": n}),
        )
        .collect();
    Value::Array(records)
}
