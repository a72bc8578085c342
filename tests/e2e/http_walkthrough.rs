//! The user guide's walk-through over HTTP, against the real `vivarium serve`: a service
//! account, a role granting it GET on every action script, the example action uploaded as a
//! real-time action, a test run on the Kubernetes log records, its history, the list, and the
//! service account's token (Basic auth, refusals, rotation).

use std::collections::BTreeSet;

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::{data_dir, fixtures, k8s_logs};
use crate::common::forms::Form;
use crate::common::process::Server;
use serde_json::{Value, json};

const ORG: &str = "default";
const ACCOUNT: &str = "action_script@gmail.com";

pub(crate) fn seed_records() -> Vec<Value> {
    let text = std::fs::read_to_string(k8s_logs()).expect("reading the seed records");
    serde_json::from_str::<Value>(&text)
        .expect("the seed records are JSON")
        .as_array()
        .expect("the seed records are an array")
        .clone()
}

/// The distinct values of `key` in the records.
fn distinct(records: &[Value], key: &str) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r[key].as_str().expect("a string field").to_string())
        .collect()
}

/// A JSON list of strings as a set, checking it has no duplicates.
fn string_set(value: &Value) -> BTreeSet<String> {
    let list = value
        .as_array()
        .unwrap_or_else(|| panic!("{value} is not a list"));
    let set: BTreeSet<String> = list
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(set.len(), list.len(), "{value} has duplicates");
    set
}

/// The record with every string value upper-cased, other values untouched.
fn upper_cased(record: &Value) -> Value {
    let object = record.as_object().expect("records are objects");
    Value::Object(
        object
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(text) => Value::String(text.to_uppercase()),
                    other => other.clone(),
                };
                (key.clone(), value)
            })
            .collect(),
    )
}

/// Checks the example's answer: the upper-cased records, then the summary.
pub(crate) fn check_example_result(result: &Value, records: &[Value]) {
    let result = result
        .as_array()
        .unwrap_or_else(|| panic!("the result {result} is not a list"));
    assert_eq!(
        result.len(),
        records.len() + 1,
        "the records plus a summary"
    );
    for (index, (got, original)) in result.iter().zip(records).enumerate() {
        assert_eq!(*got, upper_cased(original), "record {index}");
    }
    let summary = &result[records.len()];
    let keys: BTreeSet<&str> = summary
        .as_object()
        .expect("the summary is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "distinct_pod_names",
            "distinct_pod_count",
            "distinct_docker_ids",
            "distinct_docker_count",
            "distinct_pod_ids",
            "distinct_pod_id_count",
        ])
    );
    assert_eq!(summary["distinct_pod_count"], json!(3));
    assert_eq!(summary["distinct_docker_count"], json!(3));
    assert_eq!(summary["distinct_pod_id_count"], json!(3));
    assert_eq!(
        string_set(&summary["distinct_pod_names"]),
        distinct(records, "kubernetes_pod_name")
    );
    assert_eq!(
        string_set(&summary["distinct_docker_ids"]),
        distinct(records, "kubernetes_docker_id")
    );
    assert_eq!(
        string_set(&summary["distinct_pod_ids"]),
        distinct(records, "kubernetes_pod_id")
    );
}

/// The (logger, level, message) of each log line.
fn log_lines(logs: &Value) -> Vec<(String, String, String)> {
    logs.as_array()
        .unwrap_or_else(|| panic!("logs {logs} are not a list"))
        .iter()
        .map(|line| {
            let field = |key: &str| {
                line[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("log line {line} lacks {key}"))
                    .to_string()
            };
            (field("logger"), field("level"), field("message"))
        })
        .collect()
}

fn expected_log_lines() -> Vec<(String, String, String)> {
    vec![
        (
            "action".to_string(),
            "INFO".to_string(),
            "Starting transformation".to_string(),
        ),
        (
            "action".to_string(),
            "INFO".to_string(),
            "Distinct pod names: 3, docker IDs: 3".to_string(),
        ),
    ]
}

#[test]
fn the_user_guide_walk_through() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    let records = seed_records();
    assert_eq!(records.len(), 12, "the seed file's records");

    // The service account: its token is shown once, never again.
    let created = server
        .post(
            &format!("/api/{ORG}/service_accounts"),
            &root,
            &json!({"email": ACCOUNT, "first_name": "Action", "last_name": "Script"}),
        )
        .ok_json();
    assert_eq!(created["email"], json!(ACCOUNT));
    assert_eq!(created["first_name"], json!("Action"));
    assert_eq!(created["last_name"], json!("Script"));
    assert!(created["created_at"].as_i64().unwrap_or(0) > 0, "{created}");
    let token = created["token"].as_str().expect("a token").to_string();
    assert!(token.len() >= 16, "a token of some length: {token:?}");
    let account = Creds::new(ACCOUNT, &token);

    let shown = server
        .get(&format!("/api/{ORG}/service_accounts/{ACCOUNT}"), &root)
        .ok_json();
    assert_eq!(
        shown,
        json!({
            "email": ACCOUNT,
            "first_name": "Action",
            "last_name": "Script",
            "created_at": created["created_at"],
        }),
        "no token once created"
    );
    let listed = server
        .get(&format!("/api/{ORG}/service_accounts"), &root)
        .ok_json();
    assert_eq!(listed, json!({"data": [shown]}));

    // The role: GET on every action script, assigned to the service account.
    let role = server
        .post(
            &format!("/api/{ORG}/roles"),
            &root,
            &json!({"role": "action_runner"}),
        )
        .ok_json();
    assert_eq!(role["name"], json!("action_runner"));
    assert_eq!(role["permissions"], json!([]));
    assert_eq!(role["principals"], json!([]));
    let role = server
        .put(
            &format!("/api/{ORG}/roles/action_runner"),
            &root,
            &json!({
                "add": [{"resource": "action_scripts", "object": "_all", "verb": "GET"}],
                "add_users": [ACCOUNT],
            }),
        )
        .ok_json();
    assert_eq!(
        role["permissions"],
        json!([{"resource": "action_scripts", "object": "_all", "verb": "GET"}])
    );
    assert_eq!(role["principals"], json!([ACCOUNT]));
    assert_eq!(
        server
            .get(&format!("/api/{ORG}/roles/action_runner"), &root)
            .ok_json(),
        role
    );
    let roles = server.get(&format!("/api/{ORG}/roles"), &root).ok_json();
    assert_eq!(roles, json!([role]));

    // The example action, uploaded as the committed ZIP, real-time.
    let zip = std::fs::read(fixtures().join("actions").join("uppercase_distinct.zip"))
        .expect("reading the example ZIP");
    let form = Form::new()
        .text("name", "uppercase_distinct")
        .text("owner", "root@example.com")
        .text(
            "description",
            "Upper-cases records and counts distinct pods",
        )
        .text("execution_details", "service")
        .text("service_account", ACCOUNT)
        .text("environment_variables", "{}")
        .text("filename", "uppercase_distinct.zip")
        .file("file", "uppercase_distinct.zip", &zip);
    let id = server.create_action(ORG, &root, &form);
    assert!(!id.is_empty());

    let details = server.action(ORG, &id);
    for (key, expected) in [
        ("id", json!(id)),
        ("name", json!("uppercase_distinct")),
        (
            "description",
            json!("Upper-cases records and counts distinct pods"),
        ),
        ("environment_variables", json!({})),
        ("execution_details", json!("service")),
        ("cron_expr", Value::Null),
        ("zip_file_name", json!("uppercase_distinct.zip")),
        ("zip_size", json!(zip.len())),
        ("service_account", json!(ACCOUNT)),
        ("owner", json!("root@example.com")),
        ("created_by", json!("root@example.com")),
        ("status", json!("ready")),
        ("last_run_at", Value::Null),
        ("last_successful_at", Value::Null),
        ("paused", json!(false)),
        ("next_run_at", Value::Null),
    ] {
        assert_eq!(details[key], expected, "{key} of {details}");
    }

    let download = server.get(&format!("/api/{ORG}/actions/download/{id}"), &root);
    download.expect_status(200);
    assert_eq!(download.header("content-type"), Some("application/zip"));
    assert_eq!(download.body, zip, "the downloaded ZIP is the uploaded one");

    let before = server.actions(ORG);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["id"], json!(id));
    assert_eq!(before[0]["name"], json!("uppercase_distinct"));
    assert_eq!(before[0]["status"], json!("ready"));
    assert_eq!(before[0]["execution_details_type"], json!("service"));
    assert_eq!(before[0]["created_by"], json!("root@example.com"));
    assert_eq!(before[0]["last_run_at"], Value::Null);
    assert_eq!(before[0]["last_successful_at"], Value::Null);

    // The test run on the Kubernetes log records.
    let answer = server
        .test_run(ORG, &root, &id, &Value::Array(records.clone()))
        .ok_json();
    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    assert_eq!(answer["error"], Value::Null);
    assert_eq!(answer["logs_truncated"], json!(false));
    check_example_result(&answer["result"], &records);
    assert_eq!(log_lines(&answer["logs"]), expected_log_lines());
    let run_id = answer["run_id"].as_str().expect("a run id").to_string();
    let fuel = answer["fuel_used"].as_i64().expect("fuel used");
    assert!(fuel > 0, "{answer}");
    assert!(answer["peak_memory_bytes"].as_i64().unwrap_or(0) > 0);
    assert!(answer["duration_ms"].as_f64().unwrap_or(-1.0) > 0.0);

    // The run in the history, with its two log lines.
    let history = server.runs(ORG, &id);
    assert_eq!(history["total"], json!(1), "{history}");
    assert_eq!(history["page"], json!(1));
    assert_eq!(history["per_page"], json!(100));
    let run = &history["runs"][0];
    assert_eq!(run["id"], json!(run_id));
    assert_eq!(run["action_id"], json!(id));
    assert_eq!(run["trigger"], json!("manual"));
    assert_eq!(run["trace_id"], Value::Null);
    assert_eq!(run["outcome"], json!("ok"));
    assert_eq!(run["error_type"], Value::Null);
    assert_eq!(run["error_message"], Value::Null);
    assert_eq!(run["input_count"], json!(records.len()));
    assert_eq!(run["output_count"], json!(records.len() + 1));
    assert_eq!(run["fuel_used"], json!(fuel));
    assert_eq!(run["logs_truncated"], json!(false));
    assert!(run.get("logs").is_none(), "the list leaves logs out: {run}");

    let full = server
        .get(&format!("/api/{ORG}/actions/{id}/runs/{run_id}"), &root)
        .ok_json();
    assert_eq!(log_lines(&full["logs"]), expected_log_lines());
    assert_eq!(full["traceback"], json!([]));
    assert_eq!(full["outcome"], json!("ok"));
    assert_eq!(full["id"], json!(run_id));

    // The list shows the run.
    let after = server.actions(ORG);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["status"], json!("ready"));
    let created_at = after[0]["created_at"].as_i64().expect("created_at");
    let last_run = after[0]["last_run_at"]
        .as_i64()
        .expect("last_run_at is set");
    let last_ok = after[0]["last_successful_at"]
        .as_i64()
        .expect("last_successful_at is set");
    assert!(last_run >= created_at, "{after:?}");
    assert_eq!(last_ok, last_run, "the only run succeeded: {after:?}");

    // The service account's token is a Basic password: it may read the action (GET on
    // every action script) but nothing its role does not grant, nor administer.
    let read = server
        .get(&format!("/api/{ORG}/actions/{id}"), &account)
        .ok_json();
    assert_eq!(read["id"], json!(id));
    let download = server.get(&format!("/api/{ORG}/actions/download/{id}"), &account);
    download.expect_status(200);
    assert_eq!(download.body, zip);
    for (method, path, body) in [
        ("GET", format!("/api/{ORG}/actions"), None),
        ("GET", format!("/api/{ORG}/service_accounts"), None),
        (
            "POST",
            format!("/api/{ORG}/service_accounts"),
            Some(json!({"email": "another@example.com"})),
        ),
        ("GET", format!("/api/{ORG}/roles"), None),
        (
            "PUT",
            format!("/api/{ORG}/roles/action_runner"),
            Some(
                json!({"add": [{"resource": "action_scripts", "object": "_all", "verb": "POST"}]}),
            ),
        ),
        ("GET", format!("/api/{ORG}/users"), None),
        (
            "POST",
            format!("/api/{ORG}/users"),
            Some(
                json!({"email": "x@example.com", "password": "long-enough-password", "role": "admin"}),
            ),
        ),
        (
            "PUT",
            format!("/api/{ORG}/service_accounts/{ACCOUNT}?rotateToken=true"),
            None,
        ),
        (
            "POST",
            format!("/api/{ORG}/actions/test/{id}"),
            Some(json!({"inputs": []})),
        ),
        ("DELETE", format!("/api/{ORG}/actions/{id}"), None),
    ] {
        server
            .call(method, &path, Some(&account), body.as_ref())
            .expect_error(403, "Unauthorized Access");
    }
    server
        .get("/api/organizations", &account)
        .expect_error(401, "Unauthorized Access");

    // Rotation: the new token works at once, the old one no more.
    let rotated = server
        .call(
            "PUT",
            &format!("/api/{ORG}/service_accounts/{ACCOUNT}?rotateToken=true"),
            Some(&root),
            None,
        )
        .ok_json();
    assert_eq!(rotated["email"], json!(ACCOUNT));
    let new_token = rotated["token"].as_str().expect("a new token").to_string();
    assert_ne!(new_token, token, "a new token");
    server
        .get(&format!("/api/{ORG}/actions/{id}"), &account)
        .expect_error(401, "Unauthorized Access");
    let renewed = Creds::new(ACCOUNT, &new_token);
    server
        .get(&format!("/api/{ORG}/actions/{id}"), &renewed)
        .ok_json();
    server
        .call(
            "PUT",
            &format!("/api/{ORG}/service_accounts/{ACCOUNT}"),
            Some(&root),
            None,
        )
        .expect_error(
            400,
            "nothing to change: pass ?rotateToken=true to issue a new token",
        );

    // The action runs as the account, whatever its token: it still runs after rotation.
    let again = server
        .test_run(ORG, &root, &id, &Value::Array(records.clone()))
        .ok_json();
    assert_eq!(again["outcome"], json!("ok"), "{again}");
    check_example_result(&again["result"], &records);
    assert_eq!(server.runs(ORG, &id)["total"], json!(2));
}
