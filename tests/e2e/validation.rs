//! The rules the service checks before it stores or runs anything, with their statuses and
//! messages: uploads and updates of actions, trigger payloads, deletion's answer, and the body
//! size limit. The router runs in-process ([`InProcess`]); nothing here needs a process or a
//! socket. Each test builds the service from the shared interpreter cache, which it fails
//! without.

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::forms::{Form, service_action};
use crate::common::in_process::InProcess;
use crate::common::zips::{pseudo_random, zip_entries, zip_main};
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

const ECHO: &str = "def main(data, logger):\n    return data\n";

/// The service with a service account allowed to run every action.
fn with_runner(server: InProcess) -> InProcess {
    server.create_runner(ORG, &Creds::root(), RUNNER);
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
    let server = with_runner(InProcess::start());
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
        valid_form().set("execution_details", "repeat"),
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
    let server = with_runner(InProcess::start());
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
    update(&service, json!({"name": 5})).expect_error_prefix(422, "invalid JSON body: ");
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
    let mut updated = updated.as_object().expect("an object").clone();
    assert_eq!(
        updated.remove("uuid"),
        Some(json!(service)),
        "answered with its uuid"
    );
    let updated = Value::Object(updated);
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
fn the_single_delete_answers_the_contract_message() {
    let server = with_runner(InProcess::start());
    let root = Creds::root();
    let id = server.create_action(ORG, &root, &valid_form());
    let answer = server
        .delete(&format!("/api/{ORG}/actions/{id}"), &root)
        .ok_json();
    assert_eq!(answer, json!({"code": 200, "message": "Action deleted"}));
}

#[test]
fn trigger_payloads_of_the_wrong_shape_are_refused_and_record_no_run() {
    let server = with_runner(InProcess::start());
    let root = Creds::root();
    let id = server.create_action(ORG, &root, &valid_form());
    for bad in [json!("a string"), json!(42), json!(true), Value::Null] {
        server
            .post(
                &format!("/api/{ORG}/actions/{id}/alert"),
                &root,
                &json!({"inputs": bad, "trigger_source": "Alerts", "trace_id": "trace-bad"}),
            )
            .expect_error(400, "Message should be valid JSON for actions");
    }
    server
        .post(
            &format!("/api/{ORG}/actions/{id}/transform"),
            &root,
            &json!({"records": []}),
        )
        .expect_error_prefix(422, "invalid JSON body: ");
    assert_eq!(server.runs(ORG, &id)["total"], json!(0));
}

/// With `max_body_bytes = 1 MiB`, a larger JSON trigger body and a larger upload are refused
/// with 413 naming that limit (not another), nothing is run or stored, and an upload under the
/// limit is accepted.
#[test]
fn bodies_over_the_configured_limit_are_refused_with_413() {
    let server = with_runner(InProcess::start_with("max_body_bytes = 1048576"));
    let root = Creds::root();
    let id = server.create_action(ORG, &root, &valid_form());

    // A JSON trigger body of 2 MiB.
    let records: Vec<Value> = (0..2048)
        .map(|n| json!({"n": n, "padding": "x".repeat(1024)}))
        .collect();
    server
        .test_run(ORG, &root, &id, &Value::Array(records))
        .expect_error(
            413,
            "the request body is larger than the 1 MiB request limit of this service",
        );
    assert_eq!(server.runs(ORG, &id)["total"], json!(0));

    // A 2 MiB upload.
    let big = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("data.bin", &pseudo_random(2 * 1024 * 1024)),
        ],
        zip::CompressionMethod::Stored,
    );
    let message = server
        .upload(ORG, &root, &service_action("too_big", &big, RUNNER))
        .expect_error_prefix(413, "the upload is larger than the 1 MiB request limit");
    assert!(!message.contains("50 MiB"), "{message}");
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

/// Every operation the OpenAPI document lists is served by the router: without credentials a
/// guarded one answers 401 (not 404 or 405), a public one answers at all; and one route the
/// document does not list is not served.
#[test]
fn every_documented_operation_is_routed_and_guarded_as_documented() {
    let server = InProcess::start();
    let document = server
        .call("GET", "/api/openapi.json", None, None)
        .ok_json();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{org}", ORG)
            .replace("{id}", "0197c0de-0000-7000-8000-000000000000")
            .replace("{run_id}", "0197c0de-0000-7000-8000-000000000001")
            .replace("{email}", "nobody@example.com")
            .replace("{role}", "nobody")
            .replace("{name}", "NOBODY");
        for (method, operation) in item.as_object().expect("a path item") {
            let public = operation.get("security") == Some(&json!([]));
            let reply = server.call(&method.to_uppercase(), &concrete, None, None);
            if public {
                assert!(
                    ![404, 405].contains(&reply.status),
                    "{method} {path} is documented but not served: {reply}"
                );
            } else {
                assert_eq!(reply.status, 401, "{method} {path}: {reply}");
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} operations checked");
    let undocumented = server.call("GET", &format!("/api/{ORG}/not-a-route"), None, None);
    assert_eq!(undocumented.status, 404, "{undocumented}");
}
