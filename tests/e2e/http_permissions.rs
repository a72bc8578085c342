//! Permissions over HTTP: an action's service account must hold GET on the action script
//! before any guest instance is created, and callers may do only what their roles grant.

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::Server;
use crate::common::zips::zip_main;
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

const ECHO: &str =
    "def main(data, logger):\n    logger.info('ran on %d records', len(data))\n    return data\n";

/// The 403 a refused run answers, with the run's id.
#[track_caller]
fn expect_refused_run(
    reply: &crate::common::client::Reply,
    id: &str,
    message_prefix: &str,
) -> String {
    reply.expect_status(403);
    let body = reply.json();
    assert_eq!(body["code"], json!(403), "{body}");
    assert_eq!(body["outcome"], json!("permission_denied"), "{body}");
    let expected = format!(
        "{message_prefix}service account {RUNNER} has no GET permission on action script {id}; grant it through a role"
    );
    assert_eq!(body["message"], json!(expected), "{body}");
    body["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {body}"))
        .to_string()
}

/// Runs `id` through all three triggers, each refused; answers the refused runs' ids.
#[track_caller]
fn all_triggers_refused(server: &Server, id: &str) -> Vec<String> {
    let root = Creds::root();
    let manual = server.test_run(ORG, &root, id, &json!([{"n": 1}]));
    let alert = server.post(
        &format!("/api/{ORG}/actions/{id}/alert"),
        &root,
        &json!({"inputs": {"n": 1}, "trigger_source": "Alerts", "trace_id": "t-refused"}),
    );
    let transform = server.post(
        &format!("/api/{ORG}/actions/{id}/transform"),
        &root,
        &json!({"hits": [{"n": 1}]}),
    );
    vec![
        expect_refused_run(&manual, id, ""),
        expect_refused_run(&alert, id, ""),
        expect_refused_run(&transform, id, ""),
    ]
}

/// Checks that each of `run_ids` is in the history as a refused run that used no fuel.
#[track_caller]
fn refused_in_history(server: &Server, id: &str, run_ids: &[String]) {
    let history = server.runs(ORG, id);
    let runs = history["runs"].as_array().expect("runs");
    for run_id in run_ids {
        let run = runs
            .iter()
            .find(|r| r["id"] == json!(run_id))
            .unwrap_or_else(|| panic!("run {run_id} is not in the history {history}"));
        assert_eq!(run["outcome"], json!("permission_denied"), "{run}");
        assert_eq!(run["fuel_used"], json!(0), "{run}");
        assert_eq!(run["peak_memory_bytes"], json!(0), "{run}");
        assert_eq!(run["error_type"], json!("PermissionDenied"), "{run}");
        assert_eq!(run["output_count"], Value::Null, "{run}");
        let full = server
            .get(
                &format!("/api/{ORG}/actions/{id}/runs/{run_id}"),
                &Creds::root(),
            )
            .ok_json();
        assert_eq!(full["logs"], json!([]), "no guest, no logs: {full}");
    }
    let triggers: Vec<&Value> = run_ids
        .iter()
        .map(|run_id| {
            &runs
                .iter()
                .find(|r| r["id"] == json!(run_id))
                .expect("found above")["trigger"]
        })
        .collect();
    assert_eq!(
        triggers,
        vec![&json!("manual"), &json!("alert"), &json!("logs")],
        "one refused run per trigger"
    );
}

#[test]
fn a_service_account_without_get_on_the_action_never_starts_a_guest() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_service_account(ORG, &root, RUNNER);
    let guarded = server.create_action(
        ORG,
        &root,
        &service_action("guarded", &zip_main(ECHO), RUNNER),
    );
    let other = server.create_action(
        ORG,
        &root,
        &service_action(
            "other",
            &zip_main("def main(data, logger):\n    return [{'other': True}]\n"),
            RUNNER,
        ),
    );
    let start = server.metrics();
    let instances = start.instances();
    let mut refused_runs = 0.0;

    // (a) No role at all.
    let runs_a = all_triggers_refused(&server, &guarded);
    refused_in_history(&server, &guarded, &runs_a);
    refused_runs += 3.0;
    let metrics = server.metrics();
    assert_eq!(metrics.instances(), instances, "no guest for refused runs");
    assert_eq!(
        metrics.runs("permission_denied", "manual")
            + metrics.runs("permission_denied", "alert")
            + metrics.runs("permission_denied", "logs"),
        refused_runs
    );
    let listed = server.actions(ORG);
    let summary = listed
        .iter()
        .find(|a| a["id"] == json!(guarded))
        .expect("listed");
    assert_eq!(summary["status"], json!("errored"), "{summary}");
    assert_eq!(summary["last_successful_at"], Value::Null, "{summary}");

    // (b) A role granting every verb but GET.
    server.create_role(
        ORG,
        &root,
        "everything_but_get",
        &[
            ("LIST", "_all"),
            ("POST", "_all"),
            ("PUT", "_all"),
            ("DELETE", "_all"),
        ],
        &[RUNNER],
    );
    let runs_b = all_triggers_refused(&server, &guarded);
    refused_in_history(&server, &guarded, &runs_b);
    refused_runs += 3.0;
    let metrics = server.metrics();
    assert_eq!(metrics.instances(), instances, "no guest for refused runs");
    assert_eq!(
        metrics.runs("permission_denied", "manual"),
        refused_runs / 3.0
    );

    // (c) GET on another action only: that one runs, this one does not.
    server.create_role(ORG, &root, "other_only", &[("GET", &other)], &[RUNNER]);
    let runs_c = all_triggers_refused(&server, &guarded);
    refused_in_history(&server, &guarded, &runs_c);
    refused_runs += 3.0;
    assert_eq!(
        server.metrics().instances(),
        instances,
        "no guest for refused runs"
    );
    let ran = server
        .test_run(ORG, &root, &other, &json!([{"n": 1}]))
        .ok_json();
    assert_eq!(ran["outcome"], json!("ok"), "{ran}");
    assert_eq!(ran["result"], json!([{"other": true}]));
    let metrics = server.metrics();
    assert_eq!(
        metrics.instances(),
        instances + 1.0,
        "one guest for one run"
    );
    assert_eq!(
        metrics.runs("permission_denied", "manual"),
        refused_runs / 3.0
    );
    assert_eq!(
        metrics.runs("permission_denied", "alert"),
        refused_runs / 3.0
    );
    assert_eq!(
        metrics.runs("permission_denied", "logs"),
        refused_runs / 3.0
    );

    let history = server.runs(ORG, &guarded);
    assert_eq!(
        history["total"],
        json!(9),
        "every refusal is recorded: {history}"
    );

    // Granting GET on this one action makes it run.
    server.create_role(
        ORG,
        &root,
        "guarded_reader",
        &[("GET", &guarded)],
        &[RUNNER],
    );
    let answer = server
        .test_run(ORG, &root, &guarded, &json!([{"n": 1}, {"n": 2}]))
        .ok_json();
    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    assert_eq!(answer["result"], json!([{"n": 1}, {"n": 2}]));
    assert!(answer["fuel_used"].as_i64().unwrap_or(0) > 0, "{answer}");
    assert_eq!(answer["logs"][0]["message"], json!("ran on 2 records"));
    let metrics = server.metrics();
    assert_eq!(metrics.instances(), instances + 2.0);
    assert_eq!(metrics.runs("ok", "manual"), 2.0);
    let history = server.runs(ORG, &guarded);
    assert_eq!(history["total"], json!(10));
    assert_eq!(
        history["runs"][0]["outcome"],
        json!("ok"),
        "newest first: {history}"
    );
    assert_eq!(history["runs"][0]["id"], answer["run_id"]);
    let summary = server.action(ORG, &guarded);
    assert_eq!(summary["status"], json!("ready"), "{summary}");
    assert!(
        summary["last_successful_at"].as_i64().is_some(),
        "{summary}"
    );

    // Taking the grant away refuses it again.
    server
        .put(
            &format!("/api/{ORG}/roles/guarded_reader"),
            &root,
            &json!({"remove_users": [RUNNER]}),
        )
        .ok_json();
    let reply = server.test_run(ORG, &root, &guarded, &json!([]));
    expect_refused_run(&reply, &guarded, "");
    assert_eq!(server.metrics().instances(), instances + 2.0);
}

#[test]
fn callers_may_do_only_what_their_roles_grant() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_service_account(ORG, &root, RUNNER);
    server.create_role(ORG, &root, "runner", &[("GET", "_all")], &[RUNNER]);
    let first = server.create_action(
        ORG,
        &root,
        &service_action("first", &zip_main(ECHO), RUNNER),
    );
    let second = server.create_action(
        ORG,
        &root,
        &service_action("second", &zip_main(ECHO), RUNNER),
    );
    let member = server.create_user(ORG, &root, "member@example.com", "member");
    let denied = |method: &str, path: &str, body: Option<Value>| {
        server
            .call(method, path, Some(&member), body.as_ref())
            .expect_error(403, "Unauthorized Access");
    };
    let upload_denied = || {
        server
            .upload(
                ORG,
                &member,
                &service_action("by_member", &zip_main(ECHO), RUNNER),
            )
            .expect_error(403, "Unauthorized Access");
    };

    // No role: nothing at all.
    denied("GET", &format!("/api/{ORG}/actions"), None);
    denied("GET", &format!("/api/{ORG}/actions/{first}"), None);
    denied(
        "POST",
        &format!("/api/{ORG}/actions/test/{first}"),
        Some(json!({"inputs": [{"n": 1}]})),
    );
    upload_denied();

    // LIST only: the list, nothing else.
    server.create_role(
        ORG,
        &root,
        "lister",
        &[("LIST", "_all")],
        &["member@example.com"],
    );
    let listed = server
        .get(&format!("/api/{ORG}/actions"), &member)
        .ok_json();
    let mut names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| a["name"].as_str().expect("a name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["first", "second"]);
    denied("GET", &format!("/api/{ORG}/actions/{first}"), None);
    denied("GET", &format!("/api/{ORG}/actions/download/{first}"), None);
    denied("GET", &format!("/api/{ORG}/actions/{first}/runs"), None);
    denied(
        "POST",
        &format!("/api/{ORG}/actions/test/{first}"),
        Some(json!({"inputs": [{"n": 1}]})),
    );
    denied(
        "PUT",
        &format!("/api/{ORG}/actions/{first}"),
        Some(json!({"description": "changed"})),
    );
    denied("DELETE", &format!("/api/{ORG}/actions/{first}"), None);
    upload_denied();
    // Members never administer identities or roles.
    denied("GET", &format!("/api/{ORG}/roles"), None);
    denied("GET", &format!("/api/{ORG}/service_accounts"), None);
    denied("GET", &format!("/api/{ORG}/users"), None);
    server
        .get("/api/organizations", &member)
        .expect_error(403, "Unauthorized Access");

    // POST on one action: that one may be run by hand, not the other; the run records.
    server.create_role(
        ORG,
        &root,
        "first_runner",
        &[("POST", &first)],
        &["member@example.com"],
    );
    let ran = server
        .test_run(ORG, &member, &first, &json!([{"n": 1}]))
        .ok_json();
    assert_eq!(ran["outcome"], json!("ok"), "{ran}");
    assert_eq!(ran["result"], json!([{"n": 1}]));
    denied(
        "POST",
        &format!("/api/{ORG}/actions/test/{second}"),
        Some(json!({"inputs": [{"n": 1}]})),
    );
    upload_denied();

    // POST on every action script allows uploading; the upload records its author.
    server.create_role(
        ORG,
        &root,
        "creator",
        &[("POST", "_all")],
        &["member@example.com"],
    );
    let created = server.create_action(
        ORG,
        &member,
        &service_action("by_member", &zip_main(ECHO), RUNNER),
    );
    let details = server.action(ORG, &created);
    assert_eq!(details["created_by"], json!("member@example.com"));
    assert_eq!(details["owner"], json!("member@example.com"));
    denied("GET", &format!("/api/{ORG}/actions/{created}"), None);
}
