//! pandas inside the sandbox, through `vivarium run` and the service: an action that imports
//! pandas (or lists it in `pyproject.toml`) runs on the pandas profile (the reactor with numpy
//! and pandas built in, both imported into its snapshot), with the same limits and a fresh
//! instance per call as any other. The records are shaped like the Kubernetes logs
//! OpenObserve collects (the fields of `fixtures/records/k8s_logs.json`).

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::cli::{run_on, run_source};
use crate::common::client::Creds;
use crate::common::files::{data_dir, write_action};
use crate::common::forms::service_action;
use crate::common::process::Server;
use crate::common::provided::{
    assert_requirement_resolves_to_the_provided, assert_unmet_requirement_is_refused,
};
use crate::common::zips::zip_entries;

/// The pods the records come from, one in three records each.
const PODS: [&str; 3] = [
    "ingest-7c9f8d6b5-x2k4q",
    "querier-5d8b7c6f4-m9p2z",
    "router-6f7d8c9b5-q4w7e",
];
/// 2025-11-26T05:00:00Z in microseconds, OpenObserve's `_timestamp` unit.
const START_MICROS: i64 = 1_764_133_200_000_000;

/// `count` Kubernetes log records, one every 1.5 s from [`START_MICROS`], from the [`PODS`] in
/// turn, with a `duration_ms` of `n % 100 + 1` (missing on every seventh) and an error level
/// on every tenth.
fn kubernetes_records(count: usize) -> Value {
    let records: Vec<Value> = (0..count)
        .map(|n| {
            let mut record = json!({
                "_timestamp": START_MICROS + n as i64 * 1_500_000,
                "kubernetes_namespace_name": "openobserve",
                "kubernetes_pod_name": PODS[n % PODS.len()],
                "kubernetes_container_name": "app",
                "level": if n % 10 == 9 { "error" } else { "info" },
                "log": format!("handled request {n}"),
            });
            if n % 7 != 6 {
                record["duration_ms"] = json!(n % 100 + 1);
            }
            record
        })
        .collect();
    Value::Array(records)
}

#[test]
fn pandas_groups_kubernetes_records_by_pod_and_takes_percentiles() {
    let source = r#"
import pandas as pd

def main(data, logger):
    frame = pd.DataFrame(data)
    counts = frame.groupby("kubernetes_pod_name").size().to_dict()
    errors = frame[frame["level"] == "error"].groupby("kubernetes_pod_name").size().to_dict()
    duration = frame["duration_ms"]
    return [{
        "version": pd.__version__,
        "counts": counts,
        "errors": errors,
        "p50": duration.quantile(0.5),
        "p90": duration.quantile(0.9),
        "p99": duration.quantile(0.99),
        "missing": int(duration.isna().sum()),
    }]
"#;
    let outcome = run_source(source, &kubernetes_records(300), &[]);
    let summary = &outcome.success_json()[0];
    assert!(
        summary["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        outcome.dump()
    );
    let counts: serde_json::Map<String, Value> = PODS
        .iter()
        .map(|pod| (pod.to_string(), json!(100)))
        .collect();
    assert_eq!(summary["counts"], Value::Object(counts));
    assert_eq!(
        summary["errors"],
        json!({PODS[0]: 10, PODS[1]: 10, PODS[2]: 10})
    );
    // The durations present (n % 7 != 6) are 1..=100 three times, less the 43 missing.
    let mut present: Vec<f64> = (0..300)
        .filter(|n| n % 7 != 6)
        .map(|n| f64::from(n % 100 + 1))
        .collect();
    present.sort_by(f64::total_cmp);
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        assert_eq!(summary[name], json!(linear_quantile(&present, q)), "{name}");
    }
    assert_eq!(summary["missing"], json!(300 - present.len()));
}

/// The quantile `q` of sorted `values` as pandas computes it by default (linear
/// interpolation between the closest ranks).
fn linear_quantile(values: &[f64], q: f64) -> f64 {
    let rank = q * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    values[low] + (values[high] - values[low]) * (rank - low as f64)
}

#[test]
fn pandas_resamples_records_by_minute() {
    let source = r#"
import pandas as pd

def main(data, logger):
    frame = pd.DataFrame(data)
    frame["time"] = pd.to_datetime(frame["_timestamp"], unit="us", utc=True)
    per_minute = frame.set_index("time").resample("1min").agg(
        records=("log", "size"), errors=("level", lambda levels: int((levels == "error").sum())),
        slowest=("duration_ms", "max"))
    return per_minute.reset_index().to_dict("records")
"#;
    // 100 records 1.5 s apart: 40 in each of the first two minutes, 20 in the third.
    let outcome = run_source(source, &kubernetes_records(100), &[]);
    assert_eq!(
        outcome.success_json(),
        json!([
            {"time": "2025-11-26T05:00:00+00:00", "records": 40, "errors": 4, "slowest": 40.0},
            {"time": "2025-11-26T05:01:00+00:00", "records": 40, "errors": 4, "slowest": 80.0},
            {"time": "2025-11-26T05:02:00+00:00", "records": 20, "errors": 2, "slowest": 100.0},
        ]),
        "{}",
        outcome.dump()
    );
}

#[test]
fn pandas_merges_the_records_with_a_list_shipped_in_the_action() {
    let owners = json!([
        {"kubernetes_pod_name": PODS[0], "team": "ingestion"},
        {"kubernetes_pod_name": PODS[1], "team": "query"},
    ]);
    let main = r#"
import json
import pathlib
import pandas as pd

def main(data, logger):
    owners = pd.DataFrame(json.loads((pathlib.Path(__file__).parent / "owners.json").read_text()))
    merged = pd.DataFrame(data).merge(owners, on="kubernetes_pod_name", how="left")
    teams = merged.groupby("team", dropna=False).size()
    return [{"team": team, "records": int(count)} for team, count in teams.items()]
"#;
    let action = write_action(&[("main.py", main), ("owners.json", &owners.to_string())]);
    let outcome = run_on(action.path(), &kubernetes_records(30), &[]);
    assert_eq!(
        outcome.success_json(),
        json!([
            {"team": "ingestion", "records": 10},
            {"team": "query", "records": 10},
            {"team": null, "records": 10},
        ]),
        "an unmatched pod's NaN team comes back as null: {}",
        outcome.dump()
    );
}

#[test]
fn to_dict_records_comes_back_with_timestamps_as_iso_text_and_missing_values_as_null() {
    let source = r#"
import pandas as pd

def main(data, logger):
    frame = pd.DataFrame(data)[["_timestamp", "kubernetes_pod_name", "duration_ms"]]
    frame["time"] = pd.to_datetime(frame["_timestamp"], unit="us", utc=True)
    frame.loc[1, "time"] = pd.NaT
    frame["day"] = frame["time"].dt.date
    return frame.drop(columns="_timestamp").to_dict("records")
"#;
    let outcome = run_source(source, &kubernetes_records(7), &[]);
    let records = outcome.success_json();
    assert_eq!(
        records[0],
        json!({"kubernetes_pod_name": PODS[0], "duration_ms": 1.0,
               "time": "2025-11-26T05:00:00+00:00", "day": "2025-11-26"}),
        "{}",
        outcome.dump()
    );
    assert_eq!(records[1]["time"], Value::Null, "NaT is null");
    assert_eq!(records[1]["day"], Value::Null);
    assert_eq!(records[2]["time"], json!("2025-11-26T05:00:03+00:00"));
    assert_eq!(records[6]["duration_ms"], Value::Null, "NaN is null");
}

#[test]
fn a_result_json_cannot_hold_is_still_a_bad_result_naming_it() {
    let source = r#"
import pandas as pd

def main(data, logger):
    return [{"took": pd.Timedelta("5min")}]
"#;
    run_source(source, &json!([{}]), &[]).assert_failure(
        12,
        "error[bad_result]: main() returned a value that is not JSON-serializable: Timedelta at result[0]['took']",
    );
}

#[test]
fn pandas_reads_a_csv_file_shipped_in_the_action() {
    let main = r#"
import pathlib
import pandas as pd

def main(data, logger):
    limits = pd.read_csv(pathlib.Path(__file__).parent / "limits.csv")
    return limits.sort_values("limit_ms", ascending=False).to_dict("records")
"#;
    let csv = "pod,limit_ms\ningest,250\nquerier,900\nrouter,40\n";
    let action = write_action(&[("main.py", main), ("limits.csv", csv)]);
    let outcome = run_on(action.path(), &json!([{}]), &[]);
    assert_eq!(
        outcome.success_json(),
        json!([
            {"pod": "querier", "limit_ms": 900},
            {"pod": "ingest", "limit_ms": 250},
            {"pod": "router", "limit_ms": 40},
        ]),
        "{}",
        outcome.dump()
    );
}

#[test]
fn what_wasi_lacks_fails_with_a_message_saying_why() {
    let main = r#"
import pathlib
import pandas as pd

def main(data, logger):
    path = pathlib.Path(__file__).parent / "limits.csv"
    try:
        pd.read_csv(str(path), memory_map=True)
        mapped = None
    except OSError as error:
        mapped = str(error)
    import ctypes
    try:
        ctypes.CDLL("libc.so.6")
        foreign = None
    except AttributeError as error:
        foreign = str(error)
    return [{"memory_map": mapped, "ctypes": foreign}]
"#;
    let action = write_action(&[("main.py", main), ("limits.csv", "pod,limit_ms\na,1\n")]);
    let outcome = run_on(action.path(), &json!([{}]), &[]);
    let result = &outcome.success_json()[0];
    let mapped = result["memory_map"].as_str().unwrap_or_default();
    assert!(
        mapped.contains("memory-mapped files are not available in the sandbox"),
        "{}",
        outcome.dump()
    );
    let foreign = result["ctypes"].as_str().unwrap_or_default();
    assert!(
        foreign.contains("ctypes.CDLL is not available in the sandbox"),
        "{}",
        outcome.dump()
    );
}

#[test]
fn a_pandas_memory_bomb_runs_out_of_memory() {
    let source = r#"
import pandas as pd

def main(data, logger):
    frames = []
    while True:
        frames.append(pd.DataFrame({"x": range(1 << 18)}))
"#;
    let outcome = run_source(source, &json!([{}]), &["--memory", "128MiB"]);
    outcome.assert_failure(
        15,
        "error[out_of_memory]: the action used more than 128 MiB of memory",
    );
}

#[test]
fn every_call_starts_from_pandas_as_the_snapshot_left_it() {
    let source = r#"
import pandas as pd

def main(data, logger):
    seen = {"max_rows": pd.get_option("display.max_rows"),
            "marker": getattr(pd, "_left_by_a_call", None)}
    pd.set_option("display.max_rows", 7)
    pd._left_by_a_call = "yes"
    return [seen]
"#;
    let action = write_action(&[("main.py", source)]);
    for _ in 0..2 {
        let outcome = run_on(action.path(), &json!([{}]), &[]);
        assert_eq!(
            outcome.success_json(),
            json!([{"max_rows": 60, "marker": null}]),
            "{}",
            outcome.dump()
        );
    }
}

#[test]
fn only_actions_that_import_pandas_carry_it() {
    let probe = "import sys\n\ndef main(data, logger):\n    \
                 return [{name: name in sys.modules for name in ('numpy', 'pandas')}]\n";
    assert_eq!(
        run_source(probe, &json!([{}]), &[]).success_json(),
        json!([{"numpy": false, "pandas": false}])
    );
    let with_numpy = format!("import numpy\n{probe}");
    assert_eq!(
        run_source(&with_numpy, &json!([{}]), &[]).success_json(),
        json!([{"numpy": true, "pandas": false}])
    );
    let with_pandas = format!("import pandas\n{probe}");
    assert_eq!(
        run_source(&with_pandas, &json!([{}]), &[]).success_json(),
        json!([{"numpy": true, "pandas": true}])
    );
}

#[test]
fn pandas_imported_by_a_computed_name_is_refused_saying_how_to_get_it() {
    for header in ["", "import numpy\n"] {
        let source = format!(
            "{header}import importlib\n\ndef main(data, logger):\n    \
             return [importlib.import_module('pan' + 'das').__version__]\n"
        );
        let outcome = run_source(&source, &json!([{}]), &[]);
        outcome.assert_failure(10, "pandas runs on the pandas profile");
        outcome.assert_stderr_contains("listing pandas in pyproject.toml");
    }
}

#[test]
fn a_pyproject_requirement_on_pandas_resolves_to_the_pandas_provided() {
    assert_requirement_resolves_to_the_provided("pandas", ">=3", "3.");
}

#[test]
fn a_pandas_requirement_the_runtime_cannot_meet_is_refused_naming_its_version() {
    assert_unmet_requirement_is_refused("pandas", "3.");
}

#[test]
fn the_service_runs_pandas_actions_beside_numpy_and_standard_ones() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_runner("default", &root, "runner@example.com");
    let mains = [
        (
            "with_pandas",
            "import pandas as pd\n\ndef main(data, logger):\n    \
             frame = pd.DataFrame(data)\n    \
             return frame.groupby('kubernetes_pod_name').size().reset_index(name='n').to_dict('records')\n",
        ),
        (
            "with_numpy",
            "import sys\nimport numpy as np\n\ndef main(data, logger):\n    \
             return [{'pandas': 'pandas' in sys.modules, 'n': int(np.size(data))}]\n",
        ),
        (
            "plain",
            "import sys\n\ndef main(data, logger):\n    \
             return [{'numpy': 'numpy' in sys.modules}]\n",
        ),
    ];
    let mut ids = Vec::new();
    for (name, main) in mains {
        let zip = zip_entries(
            &[("main.py", main.as_bytes())],
            zip::CompressionMethod::Deflated,
        );
        let form = service_action(name, &zip, "runner@example.com");
        ids.push(server.create_action("default", &root, &form));
    }
    let records = kubernetes_records(6);
    let expected = [
        json!([{"kubernetes_pod_name": PODS[0], "n": 2}, {"kubernetes_pod_name": PODS[1], "n": 2},
               {"kubernetes_pod_name": PODS[2], "n": 2}]),
        json!([{"pandas": false, "n": 6}]),
        json!([{"numpy": false}]),
    ];
    for _ in 0..2 {
        for (id, expected) in ids.iter().zip(&expected) {
            let run = server.test_run("default", &root, id, &records).ok_json();
            assert_eq!(&run["result"], expected, "{run}");
        }
    }
}
