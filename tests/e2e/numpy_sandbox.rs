//! numpy inside the sandbox, through `vivarium run`: an action that imports numpy runs on the
//! numpy profile (the reactor with numpy built in, numpy imported into its snapshot), with
//! the same limits and a fresh instance per call as any other.

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::cli::run_source;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::Server;
use crate::common::provided::{
    assert_requirement_resolves_to_the_provided, assert_unmet_requirement_is_refused,
};
use crate::common::zips::zip_entries;

/// Records with a `latency_ms` field from 1 to 100, and a level on every tenth.
fn latency_records() -> Value {
    let records: Vec<Value> = (1..=100)
        .map(|n| {
            let level = if n % 10 == 0 { "error" } else { "info" };
            json!({"latency_ms": n, "level": level})
        })
        .collect();
    Value::Array(records)
}

#[test]
fn numpy_summarises_log_records_inside_the_sandbox() {
    let source = r#"
import numpy as np

def main(data, logger):
    latency = np.array([r["latency_ms"] for r in data], dtype=np.float64)
    errors = np.array([r["level"] == "error" for r in data])
    counts, edges = np.histogram(latency, bins=4, range=(0.5, 100.5))
    slow = latency[latency > 90]
    return [{
        "version": np.__version__,
        "p50": float(np.percentile(latency, 50)),
        "p99": float(np.percentile(latency, 99)),
        "histogram": counts.tolist(),
        "edges": edges.tolist(),
        "slow": int(slow.size),
        "slow_mean": float(slow.mean()),
        "error_latency_sum": float(latency[errors].sum()),
        "solve": np.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0])).round(6).tolist(),
        "fft": np.abs(np.fft.rfft(np.ones(8))).round(6).tolist(),
    }]
"#;
    let outcome = run_source(source, &latency_records(), &[]);
    let result = outcome.success_json();
    let summary = &result[0];
    assert!(
        summary["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{}",
        outcome.dump()
    );
    assert_eq!(summary["p50"], json!(50.5));
    assert_eq!(summary["p99"], json!(99.01));
    assert_eq!(summary["histogram"], json!([25, 25, 25, 25]));
    assert_eq!(summary["edges"], json!([0.5, 25.5, 50.5, 75.5, 100.5]));
    assert_eq!(summary["slow"], json!(10));
    assert_eq!(summary["slow_mean"], json!(95.5));
    assert_eq!(summary["error_latency_sum"], json!(550.0));
    assert_eq!(summary["solve"], json!([0.8, 1.4]));
    assert_eq!(summary["fft"], json!([8.0, 0.0, 0.0, 0.0, 0.0]));
}

#[test]
fn numpy_random_numbers_differ_on_every_call() {
    let source = r#"
import numpy as np

def main(data, logger):
    return [{"generator": np.random.default_rng().random(4).tolist(),
             "legacy": np.random.random(4).tolist()}]
"#;
    let draws: Vec<Value> = (0..3)
        .map(|_| run_source(source, &json!([{}]), &[]).success_json()[0].clone())
        .collect();
    for kind in ["generator", "legacy"] {
        let values: Vec<&Value> = draws.iter().map(|draw| &draw[kind]).collect();
        assert_ne!(values[0], values[1], "{kind}: {values:?}");
        assert_ne!(values[1], values[2], "{kind}: {values:?}");
        assert_ne!(values[0], values[2], "{kind}: {values:?}");
    }
}

#[test]
fn numpy_arrays_round_trip_through_save_and_load() {
    let source = r#"
import io
import numpy as np

def main(data, logger):
    original = np.arange(12, dtype=np.int32).reshape(3, 4)
    buffer = io.BytesIO()
    np.save(buffer, original)
    buffer.seek(0)
    from_memory = np.load(buffer)
    np.save("/tmp/array.npy", original * 2)
    from_file = np.load("/tmp/array.npy")
    try:
        original.tofile("/tmp/array.bin")
        refused = None
    except OSError as error:
        refused = str(error)
    return [{"memory": from_memory.tolist(), "dtype": str(from_memory.dtype),
             "file": from_file.tolist(), "tofile": refused}]
"#;
    let outcome = run_source(source, &json!([{}]), &[]);
    let result = &outcome.success_json()[0];
    assert_eq!(
        result["memory"],
        json!([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    );
    assert_eq!(result["dtype"], json!("int32"));
    assert_eq!(
        result["file"],
        json!([[0, 2, 4, 6], [8, 10, 12, 14], [16, 18, 20, 22]])
    );
    let refusal = result["tofile"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("use np.save/np.load"),
        "tofile on a file says what to use instead: {}",
        outcome.dump()
    );
}

#[test]
fn a_numpy_memory_bomb_runs_out_of_memory() {
    let source = r#"
import numpy as np

def main(data, logger):
    hoard = []
    while True:
        hoard.append(np.ones(1 << 20))
"#;
    let outcome = run_source(source, &json!([{}]), &["--memory", "96MiB"]);
    outcome.assert_failure(
        15,
        "error[out_of_memory]: the action used more than 96 MiB of memory",
    );
}

#[test]
fn only_actions_that_import_numpy_carry_it() {
    let probe = "import sys\n\ndef main(data, logger):\n    return [{\"numpy\": \"numpy\" in sys.modules}]\n";
    let without = run_source(probe, &json!([{}]), &[]).success_json();
    assert_eq!(without, json!([{"numpy": false}]));
    let with = format!("import numpy\n{probe}");
    assert_eq!(
        run_source(&with, &json!([{}]), &[]).success_json(),
        json!([{"numpy": true}])
    );
}

#[test]
fn the_service_runs_numpy_actions_beside_standard_ones() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_runner("default", &root, "runner@example.com");
    let numpy_main = "import numpy as np\n\ndef main(data, logger):\n    \
                      values = np.array([r['latency_ms'] for r in data])\n    \
                      return [{'p50': float(np.median(values)), 'numpy': True}]\n";
    let plain_main = "import sys\n\ndef main(data, logger):\n    \
                      return [{'numpy': 'numpy' in sys.modules}]\n";
    let mut ids = Vec::new();
    for (name, main) in [("with_numpy", numpy_main), ("plain", plain_main)] {
        let zip = zip_entries(
            &[("main.py", main.as_bytes())],
            zip::CompressionMethod::Deflated,
        );
        let form = service_action(name, &zip, "runner@example.com");
        ids.push(server.create_action("default", &root, &form));
    }
    for _ in 0..2 {
        let run = server
            .test_run("default", &root, &ids[0], &latency_records())
            .ok_json();
        assert_eq!(
            run["result"],
            json!([{"p50": 50.5, "numpy": true}]),
            "{run}"
        );
        let run = server
            .test_run("default", &root, &ids[1], &json!([{}]))
            .ok_json();
        assert_eq!(run["result"], json!([{"numpy": false}]), "{run}");
    }
}

#[test]
fn a_pyproject_requirement_on_numpy_resolves_to_the_numpy_provided() {
    assert_requirement_resolves_to_the_provided("numpy", ">=2", "2.");
}

#[test]
fn a_numpy_requirement_the_runtime_cannot_meet_is_refused_naming_its_version() {
    assert_unmet_requirement_is_refused("numpy", "2.");
}

#[test]
fn numpy_imported_by_a_computed_name_is_refused_saying_how_to_get_it() {
    let source = "import importlib\n\ndef main(data, logger):\n    \
                  return [importlib.import_module('num' + 'py').__version__]\n";
    let outcome = run_source(source, &json!([{}]), &[]);
    outcome.assert_failure(10, "numpy runs on the numpy profile");
    outcome.assert_stderr_contains("listing numpy in pyproject.toml");
}
