//! Validation over HTTP: every refusal of the upload and update routes with its message,
//! replacing an action's ZIP, bulk deletion, the alert and transform triggers' payloads, and
//! the body size limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::{Creds, Form, Options, Server, data_dir, service_action, zip_main};
use common::zip_entries;
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

const ECHO: &str = "def main(data, logger):\n    return data\n";

/// A server with a service account allowed to run every action.
fn server_with_runner(data: &std::path::Path, options: Options) -> Server {
    let server = Server::start_with(data, options);
    let root = Creds::root();
    server.create_service_account(ORG, &root, RUNNER);
    server.create_role(ORG, &root, "runners", &[("GET", "_all")], &[RUNNER]);
    server
}

/// A complete, valid upload form for a `service` action.
fn valid_form() -> Form {
    service_action("valid_name", &zip_main(ECHO), RUNNER)
        .text("description", "a description")
        .text("environment_variables", r#"{"API_KEY": "secret"}"#)
}

#[test]
fn uploads_are_validated_with_the_contract_messages() {
    let data = data_dir();
    let server = server_with_runner(data.path(), Options::default());
    let root = Creds::root();
    let refused = |form: Form, message: &str| {
        server.upload(ORG, &root, &form).expect_error(400, message);
    };
    let refused_prefix = |form: Form, prefix: &str| {
        server
            .upload(ORG, &root, &form)
            .expect_error_prefix(400, prefix)
    };

    // Not a multipart body at all.
    server
        .post(
            &format!("/api/{ORG}/actions/upload"),
            &root,
            &json!({"name": "x"}),
        )
        .expect_error(400, "Invalid Content-Type");
    server
        .request(
            "POST",
            &format!("/api/{ORG}/actions/upload"),
            &[("authorization", &root.header())],
            None,
        )
        .expect_error(400, "Invalid Content-Type");

    // Names.
    refused(
        valid_form().without("name"),
        "Name field is missing or empty",
    );
    refused(
        valid_form().set("name", ""),
        "Name field is missing or empty",
    );
    refused(
        valid_form().set("name", "   "),
        "Name field is missing or empty",
    );
    refused(
        valid_form().set("name", &"a".repeat(33)),
        "Name must be at most 32 characters long",
    );
    for bad in [
        "a:b", "a#b", "a?b", "a&b", "a%b", "a'b", "a\"b", "a/b", "a b", "a\tb",
    ] {
        refused(
            valid_form().set("name", bad),
            "Name cannot contain spaces or any of these characters: : # ? & % ' \" /",
        );
    }

    // Execution details and schedules.
    refused(
        valid_form().without("execution_details"),
        "Missing mandatory fields: execution_details",
    );
    refused(
        valid_form().set("execution_details", "daily"),
        "Invalid execution details",
    );
    refused(
        valid_form().set("execution_details", "once"),
        "Cron expression is required for scheduled actions (once or repeat)",
    );
    refused(
        valid_form()
            .set("execution_details", "repeat")
            .set("cron_expr", "   "),
        "Cron expression is required for scheduled actions (once or repeat)",
    );
    refused_prefix(
        valid_form()
            .set("execution_details", "repeat")
            .set("cron_expr", "not a cron"),
        "Invalid cron expression \"not a cron\"",
    );
    refused_prefix(
        valid_form()
            .set("execution_details", "once")
            .set("cron_expr", "61 * * * *"),
        "Invalid cron expression \"61 * * * *\"",
    );

    // Environment variables.
    for bad_json in ["{nope", r#"{"KEY": 1}"#, r#"["KEY"]"#, r#""KEY=1""#] {
        refused(
            valid_form().set("environment_variables", bad_json),
            "Invalid JSON in environment variables",
        );
    }
    for bad_key in [
        r#"{"lower": "x"}"#,
        r#"{"1ABC": "x"}"#,
        r#"{"WITH-DASH": "x"}"#,
        r#"{"": "x"}"#,
    ] {
        refused(
            valid_form().set("environment_variables", bad_key),
            "Environment variable keys must be uppercase and alphanumeric",
        );
    }

    // The service account.
    refused(
        valid_form().without("service_account"),
        "Missing mandatory fields: service_account",
    );
    refused(
        valid_form().set("service_account", " "),
        "Missing mandatory fields: service_account",
    );
    refused(
        valid_form().set("service_account", "ghost@example.com"),
        "service account ghost@example.com does not exist in organization default; create it first",
    );

    // The file.
    refused(valid_form().without("file"), "File is missing or empty");
    refused(
        valid_form().without("file").file("file", "empty.zip", b""),
        "File is missing or empty",
    );
    refused_prefix(
        valid_form()
            .without("file")
            .file("file", "text.zip", b"this is not a zip at all"),
        "the action ZIP was refused: ",
    );
    let no_main = zip_entries(
        &[("helper.py", b"X = 1\n")],
        zip::CompressionMethod::Deflated,
    );
    refused_prefix(
        valid_form()
            .without("file")
            .file("file", "no_main.zip", &no_main),
        "the action ZIP was refused: ",
    );
    let escaping = zip_entries(
        &[("main.py", ECHO.as_bytes()), ("../evil.py", b"X = 1\n")],
        zip::CompressionMethod::Deflated,
    );
    let message = refused_prefix(
        valid_form()
            .without("file")
            .file("file", "escaping.zip", &escaping),
        "the action ZIP was refused: ",
    );
    assert!(message.contains("../evil.py"), "names the entry: {message}");

    // Replacing an action that does not exist.
    refused(
        valid_form().text("id", "00000000-0000-0000-0000-000000000000"),
        "Invalid ID",
    );

    // None of these stored anything.
    assert_eq!(server.actions(ORG), Vec::<Value>::new());
    assert_eq!(server.blob_files(ORG), Vec::<std::path::PathBuf>::new());

    // The valid form, and a name of exactly 32 characters, are accepted.
    let id = server.create_action(ORG, &root, &valid_form());
    let details = server.action(ORG, &id);
    assert_eq!(details["name"], json!("valid_name"));
    assert_eq!(details["description"], json!("a description"));
    assert_eq!(
        details["environment_variables"],
        json!({"API_KEY": "secret"})
    );
    assert_eq!(details["zip_file_name"], json!("valid_name.zip"));
    let long = "b".repeat(32);
    server.create_action(ORG, &root, &valid_form().set("name", &long));
    // A duplicate name is a conflict.
    server.upload(ORG, &root, &valid_form()).expect_error(
        409,
        "action \"valid_name\" in organization \"default\" already exists",
    );
    assert_eq!(server.actions(ORG).len(), 2);
}

#[test]
fn updates_are_validated_and_applied() {
    let data = data_dir();
    let server = server_with_runner(data.path(), Options::default());
    let root = Creds::root();
    server.create_service_account(ORG, &root, "other@example.com");
    let service = server.create_action(ORG, &root, &valid_form());
    let yearly = server.create_action(
        ORG,
        &root,
        &service_action("yearly", &zip_main("def main():\n    pass\n"), RUNNER)
            .set("execution_details", "repeat")
            .text("cron_expr", "0 0 1 1 *"),
    );
    let update =
        |id: &str, body: Value| server.put(&format!("/api/{ORG}/actions/{id}"), &root, &body);
    let before = server.action(ORG, &service);

    update(&service, json!({"name": ""})).expect_error(400, "Name field is missing or empty");
    update(&service, json!({"name": "c".repeat(33)}))
        .expect_error(400, "Name must be at most 32 characters long");
    update(&service, json!({"name": "has space"})).expect_error(
        400,
        "Name cannot contain spaces or any of these characters: : # ? & % ' \" /",
    );
    update(&service, json!({"environment_variables": {"lower": "x"}})).expect_error(
        400,
        "Environment variable keys must be uppercase and alphanumeric",
    );
    update(&service, json!({"execution_details": "once"}))
        .expect_error(400, "Execution type of an action cannot be changed");
    update(
        &service,
        json!({"execution_details": "repeat", "cron_expr": "* * * * *"}),
    )
    .expect_error(400, "Execution type of an action cannot be changed");
    update(&service, json!({"execution_details": "weekly"}))
        .expect_error(400, "Invalid execution details");
    update(&service, json!({"service_account": "ghost@example.com"})).expect_error(
        400,
        "service account ghost@example.com does not exist in organization default; create it first",
    );
    update(&service, json!({"unknown_field": 1})).expect_error_prefix(422, "invalid JSON body: ");
    update(&yearly, json!({"execution_details": "service"}))
        .expect_error(400, "Execution type of an action cannot be changed");
    update(&yearly, json!({"cron_expr": ""})).expect_error(
        400,
        "Cron expression is required for scheduled actions (once or repeat)",
    );
    update(&yearly, json!({"cron_expr": "every day"}))
        .expect_error_prefix(400, "Invalid cron expression \"every day\"");
    update(
        "00000000-0000-0000-0000-000000000000",
        json!({"description": "x"}),
    )
    .expect_error(404, "action 00000000-0000-0000-0000-000000000000 not found");
    assert_eq!(
        server.action(ORG, &service),
        before,
        "refused updates change nothing"
    );

    // Valid updates are applied and answered.
    let updated = update(
        &service,
        json!({
            "name": "renamed",
            "description": "new description",
            "environment_variables": {"GREETING": "hello"},
            "service_account": "other@example.com",
            "execution_details": "service",
        }),
    )
    .ok_json();
    for (key, expected) in [
        ("name", json!("renamed")),
        ("description", json!("new description")),
        ("environment_variables", json!({"GREETING": "hello"})),
        ("service_account", json!("other@example.com")),
        ("execution_details", json!("service")),
        ("zip_sha256", before["zip_sha256"].clone()),
        ("created_at", before["created_at"].clone()),
    ] {
        assert_eq!(updated[key], expected, "{key} of {updated}");
    }
    assert_eq!(server.action(ORG, &service), updated);
    let scheduled = update(&yearly, json!({"cron_expr": "0 0 1 6 *"})).ok_json();
    assert_eq!(scheduled["cron_expr"], json!("0 0 1 6 *"));
    assert!(scheduled["next_run_at"].as_i64().is_some(), "{scheduled}");
    // A name taken by another action is a conflict.
    update(&yearly, json!({"name": "renamed"})).expect_error(
        409,
        "action \"renamed\" in organization \"default\" already exists",
    );

    // Pausing applies to scheduled actions only.
    server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{service}/pause"),
            Some(&root),
            None,
        )
        .expect_error(
            400,
            "only scheduled actions (once, repeat) can be paused or resumed",
        );
}

#[test]
fn an_upload_with_an_id_replaces_the_zip_and_the_behaviour() {
    let data = data_dir();
    let server = server_with_runner(data.path(), Options::default());
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
    assert_eq!(replaced, json!({"uuid": id, "dependencies": []}));
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
    let server = server_with_runner(data.path(), Options::default());
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
fn the_single_delete_answers_the_contract_message() {
    let data = data_dir();
    let server = server_with_runner(data.path(), Options::default());
    let root = Creds::root();
    let id = server.create_action(ORG, &root, &valid_form());
    let answer = server
        .delete(&format!("/api/{ORG}/actions/{id}"), &root)
        .ok_json();
    assert_eq!(answer, json!({"code": 200, "message": "Action deleted"}));
}

#[test]
fn alert_payload_shapes_and_trace_ids() {
    let data = data_dir();
    let server = server_with_runner(data.path(), Options::default());
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

    for bad in [json!("a string"), json!(42), json!(true), Value::Null] {
        alert(json!({"inputs": bad, "trigger_source": "Alerts", "trace_id": "trace-bad"}))
            .expect_error(400, "Message should be valid JSON for actions");
    }

    let history = server.runs(ORG, &id);
    assert_eq!(
        history["total"],
        json!(3),
        "refused payloads record no run: {history}"
    );
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
    let server = server_with_runner(data.path(), Options::default());
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

    transform(&id, json!({"records": []})).expect_error_prefix(422, "invalid JSON body: ");

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

/// Sends `head` then `body` over a raw connection (ignoring a refusal mid-body) and answers
/// the status line and the rest of the response.
fn raw_exchange(server: &Server, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    stream.write_all(head.as_bytes()).expect("sending the head");
    for chunk in body.chunks(64 * 1024) {
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = stream.flush();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
                    let length = headers
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(usize::MAX);
                    if rest.len() >= length {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[test]
fn bodies_over_the_configured_limit_are_refused_with_413() {
    let data = data_dir();
    let server = server_with_runner(
        data.path(),
        Options::default().config("max_body_bytes = 1048576"),
    );
    let root = Creds::root();
    let id = server.create_action(ORG, &root, &valid_form());

    // A JSON trigger body of 2 MiB.
    let records: Vec<Value> = (0..2048)
        .map(|n| json!({"n": n, "padding": "x".repeat(1024)}))
        .collect();
    let body = json!({ "inputs": records }).to_string();
    let head = format!(
        "POST /api/{ORG}/actions/test/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        root.header(),
        body.len()
    );
    let (status, text) = raw_exchange(&server, &head, body.as_bytes());
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        response_json(&text),
        json!({"code": 413, "message": "the request body is larger than the 1 MiB request limit of this service"})
    );
    assert_eq!(server.runs(ORG, &id)["total"], json!(0));

    // A 2 MiB upload (sent raw, since the service may answer before reading it all).
    let big = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("data.bin", &pseudo_random(2 * 1024 * 1024)),
        ],
        zip::CompressionMethod::Stored,
    );
    let (content_type, body) = service_action("too_big", &big, RUNNER).encode();
    let head = format!(
        "POST /api/{ORG}/actions/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        root.header(),
        body.len()
    );
    let (status, text) = raw_exchange(&server, &head, &body);
    assert_eq!(status, 413, "{text}");
    let answer = response_json(&text);
    assert_eq!(answer["code"], json!(413), "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the upload is larger than the 1 MiB request limit"),
        "{answer}"
    );
    assert_eq!(server.actions(ORG).len(), 1, "nothing stored");
    assert_eq!(server.blob_files(ORG).len(), 1, "no blob stored");

    // Under the limit, the same route works.
    let small = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("data.bin", &pseudo_random(512 * 1024)),
        ],
        zip::CompressionMethod::Stored,
    );
    server.create_action(ORG, &root, &service_action("small_enough", &small, RUNNER));
}

/// With `max_body_bytes = 1 MiB`, the 413 of an upload names that limit, not another.
#[test]
fn the_upload_413_names_the_limit_in_force() {
    let data = data_dir();
    let server = server_with_runner(
        data.path(),
        Options::default().config("max_body_bytes = 1048576"),
    );
    let big = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("data.bin", &pseudo_random(2 * 1024 * 1024)),
        ],
        zip::CompressionMethod::Stored,
    );
    let (content_type, body) = service_action("too_big", &big, RUNNER).encode();
    let head = format!(
        "POST /api/{ORG}/actions/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        Creds::root().header(),
        body.len()
    );
    let (status, text) = raw_exchange(&server, &head, &body);
    assert_eq!(status, 413, "{text}");
    let answer = response_json(&text);
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("50 MiB") && (message.contains("1 MiB") || message.contains("1048576")),
        "the message names the limit in force (max_body_bytes = 1 MiB), not another: {message:?}"
    );
}

/// The JSON body of a raw response.
#[track_caller]
fn response_json(text: &str) -> Value {
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {text}"))
}

/// Incompressible bytes, reproducibly.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
