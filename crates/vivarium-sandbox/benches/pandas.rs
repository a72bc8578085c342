//! pandas in the sandbox, all measured in one run: an action summarising 10,000 Kubernetes log
//! records with a DataFrame (per pod: count and duration percentiles; per minute: count and
//! errors, by resampling) on the pandas profile, against the same action run by a native
//! `python3` with pandas in a subprocess per call (the versions the runtime provides,
//! installed once into a virtual environment under `target/`); then the fixed cost of a call
//! on the pandas profile and on the standard one (a trivial action), and the pandas profile's
//! sizes, compile time and the recipe's pandas build time. Run with `cargo xtask bench`;
//! `VIVARIUM_BENCH_CALLS` sets the number of measured calls.

mod profiled;
mod timing;

use std::path::Path;

use profiled::{
    BenchResult, action, compile_time, mib, native_python, run_ok, sandbox, snapshot_size,
};
use serde_json::{Value, json};
use timing::{measure, native_call, p50, plain_call, row};
use vivarium_runtime::BuiltInterpreter;
use vivarium_sandbox::{ActionEnv, Profile};

/// Records summarised by each call.
const RECORDS: usize = 10_000;
/// Calls made before measuring, so that every pool slot has been used once.
const WARMUP: usize = 10;

/// The summary with pandas.
const PANDAS_MAIN: &str = r#"
import pandas as pd

def main(data, logger):
    frame = pd.DataFrame(data)
    frame["time"] = pd.to_datetime(frame["_timestamp"], unit="us", utc=True)
    per_pod = frame.groupby("kubernetes_pod_name")["duration_ms"].agg(
        ["count", "median", lambda took: took.quantile(0.99)])
    per_pod.columns = ["records", "p50", "p99"]
    per_minute = frame.set_index("time").resample("1min").agg(
        records=("log", "size"), errors=("level", lambda levels: int((levels == "error").sum())))
    return [{"per_pod": per_pod.reset_index().to_dict("records"),
             "per_minute": per_minute.reset_index().to_dict("records")}]
"#;

fn main() -> BenchResult<()> {
    let calls: usize = std::env::var("VIVARIUM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cache = vivarium_runtime::cache_dir(None)?;
    let standard = sandbox(&cache, Profile::Standard)?;
    let pandas = sandbox(&cache, Profile::Pandas)?;
    let built = BuiltInterpreter::find(&cache).ok_or("the interpreter is not built")?;
    let records = kubernetes_records();
    let env = ActionEnv::default();

    let pandas_action = action(PANDAS_MAIN)?;
    let with_pandas = measure(WARMUP, calls, || {
        run_ok(&pandas, &plain_call(pandas_action.path(), &records, &env)).map(drop)
    })?;
    let python = native_python(
        &root,
        &[
            format!("pandas=={}", built.pandas_version),
            format!("numpy=={}", built.numpy_version),
        ],
        "pandas",
    )?;
    let request = serde_json::to_vec(&json!({ "data": records }))?;
    let native = measure(WARMUP, calls, || {
        native_call(&python, &["-I", "-B"], pandas_action.path(), &request)
    })?;
    let one = json!([{"n": 1}]);
    let trivial_pandas = action("import pandas\n\ndef main(data, logger):\n    return data\n")?;
    let pandas_fixed = measure(WARMUP, calls, || {
        run_ok(&pandas, &plain_call(trivial_pandas.path(), &one, &env)).map(drop)
    })?;
    let trivial = action("def main(data, logger):\n    return data\n")?;
    let standard_fixed = measure(WARMUP, calls, || {
        run_ok(&standard, &plain_call(trivial.path(), &one, &env)).map(drop)
    })?;
    let compile = compile_time(&cache, &built, Profile::Pandas)?;

    println!(
        "\npandas {} (numpy {}): a summary of {RECORDS} Kubernetes log records, {calls} calls each",
        built.pandas_version, built.numpy_version
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    row(
        "pandas profile, the DataFrame summary (fresh instance per call)",
        &with_pandas,
    );
    row(
        "native python3 + pandas subprocess per call (baseline)",
        &native,
    );
    row(
        "pandas profile, a trivial action: the fixed cost of a call",
        &pandas_fixed,
    );
    row(
        "standard profile, a trivial action (for comparison)",
        &standard_fixed,
    );
    println!(
        "\nnative subprocess p50 / pandas profile p50: {:.1}x; fixed cost, pandas profile / standard profile: {:.2}x",
        p50(&native) / p50(&with_pandas),
        p50(&pandas_fixed) / p50(&standard_fixed)
    );
    println!(
        "modules: pandas reactor {:.1} MiB (numpy reactor {:.1} MiB); pandas snapshot {:.1} MiB, compiled in {compile:.1?}",
        mib(std::fs::metadata(&built.pandas_reactor.path)?.len()),
        mib(std::fs::metadata(&built.numpy_reactor.path)?.len()),
        mib(snapshot_size(&cache, &built, Profile::Pandas)?),
    );
    println!("{}", recipe_times(&cache)?);
    Ok(())
}

/// What the recipe's last run recorded of pandas' steps (a step already done in an earlier
/// run counts only its check).
fn recipe_times(cache: &Path) -> BenchResult<String> {
    let info_path = BuiltInterpreter::location(cache).join("build-info.json");
    let info: Value = serde_json::from_slice(&std::fs::read(info_path)?)?;
    let seconds = &info["build_seconds"];
    Ok(format!(
        "recipe's last run: pandas build {} s, pandas reactor link {} s, total {} s ({})",
        seconds["pandas"],
        seconds["link_pandas_reactor"],
        seconds["this_run_total"],
        seconds["note"].as_str().unwrap_or_default()
    ))
}

/// Kubernetes log records, one every 100 ms, from 12 pods in turn, with a duration (1 to
/// 997 ms, spread by a fixed rule) and an error level on every twentieth.
fn kubernetes_records() -> Value {
    let records: Vec<Value> = (0..RECORDS)
        .map(|n| {
            json!({
                "_timestamp": 1_764_133_200_000_000_i64 + n as i64 * 100_000,
                "kubernetes_namespace_name": "openobserve",
                "kubernetes_pod_name": format!("ingest-7c9f8d6b5-{:02}", n % 12),
                "kubernetes_container_name": "ingester",
                "level": if n % 20 == 0 { "error" } else { "info" },
                "duration_ms": (n * 7919) % 997 + 1,
                "log": format!("handled request {n}"),
            })
        })
        .collect();
    Value::Array(records)
}
