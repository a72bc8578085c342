//! Changing actions and triggering them over HTTP, against the real `vivarium serve`:
//! replacing an action's ZIP, deletion one by one and in bulk, and the alert and transform
//! triggers' payloads and answers. The refusals' rules and messages are checked in-process
//! ([`crate::validation`]).

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::{Form, service_action};
use crate::common::process::Server;
use crate::common::zips::zip_main;
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

/// A server with a service account allowed to run every action.
fn server_with_runner(data: &std::path::Path) -> Server {
    let server = Server::start(data);
    server.create_runner(ORG, &Creds::root(), RUNNER);
    server
}

#[test]
fn an_upload_with_an_id_replaces_the_zip_and_the_behaviour() {
    let data = data_dir();
    let server = server_with_runner(data.path());
    let root = Creds::root();
    let version = |n: u32| {
        zip_main(&format!(
            "def main(data, logger):\n    return [{{'version': {n}}}]\n"
        ))
    };
    let (v1, v2) = (version(1), version(2));
    let id = server.create_action(ORG, &root, &service_action("versioned", &v1, RUNNER));
    let run = |expected: u32| {
        let answer = server.test_run(ORG, &root, &id, &json!([])).ok_json();
        assert_eq!(answer["result"], json!([{"version": expected}]), "{answer}");
    };
    run(1);
    let first = server.action(ORG, &id);

    let replaced = server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .text("execution_details", "service")
                .file("file", "v2.zip", &v2),
        )
        .ok_json();
    assert_eq!(
        replaced,
        json!({"uuid": id, "dependencies": [], "held_back": []})
    );
    let download = server.get(&format!("/api/{ORG}/actions/download/{id}"), &root);
    download.expect_status(200);
    assert_eq!(download.body, v2, "the new ZIP is served");
    let second = server.action(ORG, &id);
    assert_eq!(second["zip_file_name"], json!("v2.zip"));
    assert_eq!(second["zip_size"], json!(v2.len()));
    assert_ne!(second["zip_sha256"], first["zip_sha256"]);
    assert_eq!(
        second["name"],
        json!("versioned"),
        "settings not sent are kept"
    );
    assert_eq!(second["service_account"], json!(RUNNER));
    assert_eq!(second["created_at"], first["created_at"]);
    run(2);
    let second = server.action(ORG, &id);
    assert_eq!(server.actions(ORG).len(), 1, "replaced, not added");
    let blobs = server.blob_files(ORG);
    let sha = second["zip_sha256"].as_str().expect("a digest");
    assert_eq!(blobs.len(), 1, "the old ZIP is gone: {blobs:?}");
    assert!(blobs[0].ends_with(format!("{sha}.zip")), "{blobs:?}");

    // Refused replacements change nothing.
    server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .text("execution_details", "repeat")
                .text("cron_expr", "* * * * *")
                .file("file", "v1.zip", &v1),
        )
        .expect_error(400, "Execution type of an action cannot be changed");
    server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .file("file", "bad.zip", b"not a zip"),
        )
        .expect_error_prefix(400, "the action ZIP was refused: ");
    server
        .upload(
            ORG,
            &root,
            &Form::new().text("id", &id).text("name", "no_file"),
        )
        .expect_error(400, "File is missing or empty");
    server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .text("name", "bad name")
                .file("file", "v1.zip", &v1),
        )
        .expect_error(
            400,
            "Name cannot contain spaces or any of these characters: : # ? & % ' \" /",
        );
    assert_eq!(server.action(ORG, &id), second);
    assert_eq!(
        server
            .get(&format!("/api/{ORG}/actions/download/{id}"), &root)
            .body,
        v2
    );
    assert_eq!(server.blob_files(ORG), blobs);
    run(2);

    // Back to the first ZIP, renamed along the way.
    server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .text("name", "versioned_again")
                .file("file", "v1.zip", &v1),
        )
        .ok_json();
    let third = server.action(ORG, &id);
    assert_eq!(third["name"], json!("versioned_again"));
    assert_eq!(third["zip_sha256"], first["zip_sha256"]);
    run(1);
    assert_eq!(server.blob_files(ORG).len(), 1);
    assert_eq!(server.runs(ORG, &id)["total"], json!(4));
}

#[test]
fn deletion_one_by_one_and_in_bulk() {
    let data = data_dir();
    let server = server_with_runner(data.path());
    let root = Creds::root();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            server.create_action(
                ORG,
                &root,
                &service_action(
                    &format!("action_{n}"),
                    &zip_main(&format!(
                        "def main(data, logger):\n    return [{{'n': {n}}}]\n"
                    )),
                    RUNNER,
                ),
            )
        })
        .collect();
    assert_eq!(server.blob_files(ORG).len(), 3);
    let missing = "00000000-0000-0000-0000-00000000dead";

    let answer = server
        .call(
            "DELETE",
            &format!("/api/{ORG}/actions/bulk"),
            Some(&root),
            Some(&json!({"ids": [ids[0], missing, ids[1]]})),
        )
        .ok_json();
    assert_eq!(
        answer,
        json!({
            "successful": [ids[0], ids[1]],
            "unsuccessful": [missing],
            "err": format!("{missing}: action {missing} not found"),
        })
    );
    let left = server.actions(ORG);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], json!(ids[2]));
    assert_eq!(
        server.blob_files(ORG).len(),
        1,
        "deleted actions' ZIPs are gone"
    );

    let all_fine = server
        .call(
            "DELETE",
            &format!("/api/{ORG}/actions/bulk"),
            Some(&root),
            Some(&json!({"ids": []})),
        )
        .ok_json();
    assert_eq!(
        all_fine,
        json!({"successful": [], "unsuccessful": [], "err": null})
    );

    server
        .delete(&format!("/api/{ORG}/actions/{}", ids[2]), &root)
        .ok_json();
    server
        .delete(&format!("/api/{ORG}/actions/{}", ids[2]), &root)
        .expect_error(404, &format!("action {} not found", ids[2]));
    assert_eq!(server.actions(ORG), Vec::<Value>::new());
    assert_eq!(server.blob_files(ORG), Vec::<std::path::PathBuf>::new());
    server
        .get(&format!("/api/{ORG}/actions/{}/runs", ids[0]), &root)
        .expect_error(404, &format!("action {} not found", ids[0]));
}

#[test]
fn alert_payload_shapes_and_trace_ids() {
    let data = data_dir();
    let server = server_with_runner(data.path());
    let root = Creds::root();
    let source = "import json\n\ndef main(data, logger):\n    logger.info(json.dumps(data, sort_keys=True))\n    return {'seen': len(data)}\n";
    let id = server.create_action(
        ORG,
        &root,
        &service_action("alerted", &zip_main(source), RUNNER),
    );
    let alert = |body: Value| server.post(&format!("/api/{ORG}/actions/{id}/alert"), &root, &body);

    let object = alert(json!({
        "inputs": {"alert": "cpu", "value": 97},
        "trigger_source": "Alerts",
        "trace_id": "trace-object",
    }))
    .ok_json();
    assert_eq!(object["outcome"], json!("ok"), "{object}");
    assert!(
        object.get("result").is_none(),
        "no result for alerts: {object}"
    );
    assert_eq!(
        object["logs"][0]["message"],
        json!(r#"[{"alert": "cpu", "value": 97}]"#),
        "an object arrives as a list of one"
    );

    let array = alert(json!({
        "inputs": [{"alert": "cpu"}, {"alert": "disk"}],
        "trigger_source": "Alerts",
        "trace_id": "trace-array",
    }))
    .ok_json();
    assert_eq!(array["outcome"], json!("ok"), "{array}");
    assert_eq!(
        array["logs"][0]["message"],
        json!(r#"[{"alert": "cpu"}, {"alert": "disk"}]"#)
    );

    let untraced = alert(json!({"inputs": []})).ok_json();
    assert_eq!(untraced["outcome"], json!("ok"), "{untraced}");

    let history = server.runs(ORG, &id);
    assert_eq!(history["total"], json!(3), "{history}");
    let runs = history["runs"].as_array().expect("runs");
    let by_id = |run_id: &Value| {
        runs.iter()
            .find(|r| r["id"] == *run_id)
            .unwrap_or_else(|| panic!("{run_id} not in {history}"))
    };
    let first = by_id(&object["run_id"]);
    assert_eq!(first["trigger"], json!("alert"));
    assert_eq!(first["trace_id"], json!("trace-object"));
    assert_eq!(first["input_count"], json!(1));
    let second = by_id(&array["run_id"]);
    assert_eq!(second["trace_id"], json!("trace-array"));
    assert_eq!(second["input_count"], json!(2));
    let third = by_id(&untraced["run_id"]);
    assert_eq!(third["trace_id"], Value::Null);
    assert_eq!(third["input_count"], json!(0));
    let full = server
        .get(
            &format!(
                "/api/{ORG}/actions/{id}/runs/{}",
                object["run_id"].as_str().unwrap()
            ),
            &root,
        )
        .ok_json();
    assert_eq!(full["trace_id"], json!("trace-object"));
}

#[test]
fn transform_success_and_failure() {
    let data = data_dir();
    let server = server_with_runner(data.path());
    let root = Creds::root();
    let source = "def main(data, logger):\n    for hit in data:\n        if hit.get('poison'):\n            raise ValueError('poisoned hit ' + str(hit['id']))\n    return [dict(hit, seen=True) for hit in data]\n";
    let id = server.create_action(
        ORG,
        &root,
        &service_action("transformer", &zip_main(source), RUNNER),
    );
    let not_a_list = server.create_action(
        ORG,
        &root,
        &service_action(
            "not_a_list",
            &zip_main("def main(data, logger):\n    return {'hits': data}\n"),
            RUNNER,
        ),
    );
    let transform = |id: &str, body: Value| {
        server.post(&format!("/api/{ORG}/actions/{id}/transform"), &root, &body)
    };

    let answer = transform(&id, json!({"hits": [{"id": 1}, {"id": 2}]})).ok_json();
    assert_eq!(
        answer["hits"],
        json!([{"id": 1, "seen": true}, {"id": 2, "seen": true}])
    );
    assert_eq!(answer["outcome"], json!("ok"));
    let ok_run = answer["run_id"].as_str().expect("a run id").to_string();

    let failed = transform(&id, json!({"hits": [{"id": 1}, {"id": 7, "poison": true}]}));
    failed.expect_status(422);
    let body = failed.json();
    assert_eq!(body["code"], json!(422), "{body}");
    assert_eq!(body["outcome"], json!("script_error"), "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(
        message.starts_with("the action failed (script_error): ")
            && message.contains("poisoned hit 7"),
        "{body}"
    );
    let failed_run = body["run_id"].as_str().expect("a run id").to_string();

    let shape = transform(&not_a_list, json!({"hits": [{"id": 1}]}));
    shape.expect_status(422);
    let shape = shape.json();
    assert_eq!(shape["outcome"], json!("bad_result"), "{shape}");
    assert!(
        shape["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the action failed (bad_result): "),
        "{shape}"
    );

    let history = server.runs(ORG, &id);
    assert_eq!(history["total"], json!(2), "{history}");
    let newest = &history["runs"][0];
    assert_eq!(newest["id"], json!(failed_run));
    assert_eq!(newest["trigger"], json!("logs"));
    assert_eq!(newest["outcome"], json!("script_error"));
    assert_eq!(newest["error_type"], json!("ValueError"));
    assert_eq!(history["runs"][1]["id"], json!(ok_run));
    assert_eq!(history["runs"][1]["output_count"], json!(2));
    let full = server
        .get(&format!("/api/{ORG}/actions/{id}/runs/{failed_run}"), &root)
        .ok_json();
    let traceback = full["traceback"].as_array().expect("a traceback");
    assert!(
        traceback
            .iter()
            .any(|frame| frame.as_str().unwrap_or_default().contains("main.py")),
        "the user's frame is in the traceback: {full}"
    );
    assert_eq!(server.action(ORG, &id)["status"], json!("errored"));
}
