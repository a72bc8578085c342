//! What an OpenObserve client sends, replayed against `vivarium serve`: O2's UI creating,
//! editing, listing, pausing and bulk-deleting actions, its service-account picker and role
//! editor, its alert engine with object and array templates, the webhook destination of
//! open-source O2, and the refusals O2 lacks.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::Form;
use crate::common::process::{Options, Server};
use crate::common::wait_for;
use crate::common::wheels::{CLOSED_INDEX, pyproject, wheel, wheelhouse};
use crate::common::zips::{zip_entries, zip_main};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";
const OWNER: &str = "alice@example.com";
const ECHO: &str =
    "def main(data, logger):\n    logger.info('got %d', len(data))\n    return data\n";
const FAILING: &str = "def main(data, logger):\n    raise ValueError('no such host')\n";
const SCHEDULED: &str = "def main():\n    return [{'fired': True}]\n";

/// The multipart form O2's UI sends to create an action (or, with `id`, to replace its ZIP).
fn o2_form(name: &str, execution: &str, zip: &[u8]) -> Form {
    Form::new()
        .text("name", name)
        .text("description", "made by O2's UI")
        .text("execution_details", execution)
        .text("service_account", RUNNER)
        .text("owner", OWNER)
        .text("environment_variables", "{}")
        .text("filename", &format!("{name}.zip"))
        .file("file", &format!("{name}.zip"), zip)
}

/// A server with a runner account holding, through O2's role editor, every right on every
/// action of the organization.
fn o2_server(data: &std::path::Path, options: Options) -> Server {
    let server = Server::start_with(data, options);
    let root = Creds::root();
    server.create_service_account(ORG, &root, RUNNER);
    server
        .post(
            &format!("/api/{ORG}/roles"),
            &root,
            &json!({"role": "o2-runner"}),
        )
        .ok_json();
    let o2_grant =
        json!({"object": format!("action_scripts:_all_{ORG}"), "permission": "AllowAll"});
    let role = server
        .put(
            &format!("/api/{ORG}/roles/o2-runner"),
            &root,
            &json!({"add": [o2_grant.clone()], "add_users": [RUNNER]}),
        )
        .ok_json();
    assert_eq!(role["permissions"], json!([o2_grant]), "{role}");
    server
}

fn create(server: &Server, form: &Form) -> String {
    let answer = server.upload(ORG, &Creds::root(), form).ok_json();
    answer["uuid"].as_str().expect("uuid").to_string()
}

#[test]
fn o2s_ui_creates_edits_lists_and_deletes_actions() {
    let data = data_dir();
    let server = o2_server(data.path(), Options::default());
    let root = Creds::root();

    let picker = server
        .get(&format!("/api/{ORG}/service_accounts"), &root)
        .ok_json();
    assert_eq!(picker["data"][0]["email"], json!(RUNNER), "{picker}");
    assert!(picker["data"][0].get("token").is_none(), "{picker}");
    let config = server.get("/config", &root).ok_json();
    assert_eq!(config["actions_enabled"], json!(true));

    let id = create(&server, &o2_form("echo", "service", &zip_main(ECHO)));
    let listed = server.actions(ORG);
    let row = listed
        .iter()
        .find(|a| a["id"] == json!(id))
        .expect("listed");
    assert_eq!(
        row["created_by"],
        json!(OWNER),
        "O2's Created By is the owner"
    );
    assert_eq!(row["execution_details_type"], json!("service"));
    assert_eq!(row["last_successful_at"], Value::Null);

    let mut edited = server.action(ORG, &id);
    edited["description"] = json!("edited without a new ZIP");
    edited["some_field_o2_adds"] = json!({"anything": 1});
    let answer = server
        .put(&format!("/api/{ORG}/actions/{id}"), &root, &edited)
        .ok_json();
    assert_eq!(answer["uuid"], json!(id), "{answer}");
    assert_eq!(
        server.action(ORG, &id)["description"],
        json!("edited without a new ZIP")
    );

    let new_zip = zip_main("def main(data, logger):\n    return [{'v': 2}]\n");
    let replaced = server
        .upload(
            ORG,
            &root,
            &o2_form("echo", "service", &new_zip).text("id", &id),
        )
        .ok_json();
    assert_eq!(replaced["uuid"], json!(id));
    let downloaded = server.get(&format!("/api/{ORG}/actions/download/{id}"), &root);
    assert_eq!(downloaded.body, new_zip);
    let run = server
        .test_run(ORG, &root, &id, &json!([{"n": 1}]))
        .ok_json();
    assert_eq!(run["result"], json!([{"v": 2}]), "{run}");

    server
        .get(&format!("/api/{ORG}/actions/not-a-uuid"), &root)
        .expect_status(404);
    let other = create(&server, &o2_form("other", "service", &zip_main(ECHO)));
    let bulk = server
        .call(
            "DELETE",
            &format!("/api/{ORG}/actions/bulk"),
            Some(&root),
            Some(&json!({"ids": [id, other, "not-a-uuid"]})),
        )
        .ok_json();
    assert_eq!(bulk["successful"], json!([id, other]), "{bulk}");
    assert_eq!(bulk["unsuccessful"], json!(["not-a-uuid"]), "{bulk}");
    assert!(server.actions(ORG).is_empty());
}

#[test]
fn the_alert_engine_and_the_webhook_destination_run_actions_and_see_failures() {
    let data = data_dir();
    let server = o2_server(data.path(), Options::default());
    let root = Creds::root();
    let echo = create(&server, &o2_form("echo", "service", &zip_main(ECHO)));
    let failing = create(&server, &o2_form("failing", "service", &zip_main(FAILING)));
    let alert = |id: &str, inputs: Value| {
        server.post(
            &format!("/api/{ORG}/actions/{id}/alert"),
            &root,
            &json!({"inputs": inputs, "trigger_source": "Alerts", "trace_id": "t-1"}),
        )
    };

    let object = alert(&echo, json!({"alert_name": "cpu"})).ok_json();
    assert_eq!(object["outcome"], json!("ok"), "{object}");
    assert!(
        object.get("result").is_none(),
        "the alert entry ignores the result"
    );
    let array = alert(&echo, json!([{"a": 1}, {"a": 2}])).ok_json();
    assert_eq!(array["logs"][0]["message"], json!("got 2"), "{array}");
    let failed = alert(&failing, json!({"alert_name": "cpu"}));
    let failed = failed.expect_status(422).json();
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");
    assert!(failed["run_id"].is_string(), "{failed}");
    alert(&echo, json!("text")).expect_error(400, "Message should be valid JSON for actions");

    let authorization = root.header();
    let webhook = |id: &str, body: &[u8]| {
        server.request(
            "POST",
            &format!("/api/{ORG}/actions/{id}/webhook"),
            &[("authorization", &authorization)],
            Some(("text/plain", body.to_vec())),
        )
    };
    let raw_object = webhook(&echo, br#"{"alert_name": "disk", "rows": 3}"#).ok_json();
    assert_eq!(
        raw_object["logs"][0]["message"],
        json!("got 1"),
        "{raw_object}"
    );
    let raw_array = webhook(&echo, br#"[{"a": 1}, {"a": 2}, {"a": 3}]"#).ok_json();
    assert_eq!(
        raw_array["logs"][0]["message"],
        json!("got 3"),
        "{raw_array}"
    );
    webhook(&echo, b"\"just text\"").expect_error(400, "Message should be valid JSON for actions");
    webhook(&echo, b"not json").expect_error(400, "Message should be valid JSON for actions");
    let failed = webhook(&failing, b"{}").expect_status(422).json();
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");

    let history = server.runs(ORG, &echo);
    let triggers: Vec<&str> = history["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["trigger"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        triggers,
        ["webhook", "webhook", "alert", "alert"],
        "{history}"
    );
}

#[test]
fn a_once_action_without_cron_runs_right_after_it_is_saved_and_schedules_pause_on_o2s_paths() {
    let data = data_dir();
    let server = o2_server(data.path(), Options::default());
    let root = Creds::root();
    let now = create(&server, &o2_form("now", "once", &zip_main(SCHEDULED)));
    let later = create(
        &server,
        &o2_form("later", "once", &zip_main(SCHEDULED)).text("cron_expr", "0 0 1 1 *"),
    );
    let ran = wait_for(Duration::from_secs(30), "the once action to run", || {
        let action = server.action(ORG, &now);
        (action["status"] == json!("completed")).then_some(action)
    });
    assert_eq!(ran["cron_expr"], Value::Null, "{ran}");
    assert_eq!(ran["next_run_at"], Value::Null, "{ran}");
    let history = server.runs(ORG, &now);
    assert_eq!(history["total"], json!(1), "it runs once: {history}");
    assert_eq!(history["runs"][0]["trigger"], json!("schedule"));
    let waiting = server.action(ORG, &later);
    assert!(waiting["next_run_at"].as_i64().is_some(), "{waiting}");
    assert_eq!(server.runs(ORG, &later)["total"], json!(0));

    let repeat = create(
        &server,
        &o2_form("repeat", "repeat", &zip_main(SCHEDULED)).text("cron_expr", "0 0 1 1 *"),
    );
    let paused = server
        .get(&format!("/api/{ORG}/actions/pause/{repeat}"), &root)
        .ok_json();
    assert_eq!(paused["paused"], json!(true), "{paused}");
    let resumed = server
        .get(&format!("/api/{ORG}/actions/resume/{repeat}"), &root)
        .ok_json();
    assert_eq!(resumed["paused"], json!(false), "{resumed}");
    let refused = create_refused(&server, &o2_form("no-cron", "repeat", &zip_main(SCHEDULED)));
    assert!(refused.contains("Cron expression is required"), "{refused}");
}

/// The message of an upload that is refused with 400.
fn create_refused(server: &Server, form: &Form) -> String {
    let reply = server.upload(ORG, &Creds::root(), form);
    let body = reply.expect_status(400).json();
    body["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn compiled_extensions_and_compiled_only_releases_are_refused_by_name() {
    let house = wheelhouse(&[
        wheel("fastcore", "0.0.1", &[], "py3-none-any"),
        wheel("fastcore", "2.5", &[], "cp312-cp312-manylinux_2_17_x86_64"),
    ]);
    let config = format!(
        "package_index = \"{CLOSED_INDEX}\"\nwheelhouse = {:?}\n",
        house.path().display().to_string()
    );
    let data = data_dir();
    let server = o2_server(data.path(), Options::default().config(&config));

    let with_so = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("dependencies/numpy/__init__.py", b""),
            (
                "dependencies/numpy/_core/_umath.cpython-312-x86_64-linux-gnu.so",
                b"\x7fELF",
            ),
        ],
        zip::CompressionMethod::Deflated,
    );
    let refused = create_refused(&server, &o2_form("native", "service", &with_so));
    assert!(
        refused.contains("_umath.cpython-312-x86_64-linux-gnu.so"),
        "{refused}"
    );
    assert!(refused.contains("numpy"), "{refused}");
    assert!(refused.contains("pure-Python"), "{refused}");

    let project = pyproject(&["fastcore"]);
    let requires_compiled = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("pyproject.toml", project.as_bytes()),
        ],
        zip::CompressionMethod::Deflated,
    );
    let refused = create_refused(&server, &o2_form("compiled", "service", &requires_compiled));
    assert!(refused.contains("fastcore"), "{refused}");
    assert!(
        refused.contains("2.5"),
        "the newest release is named: {refused}"
    );
    assert!(
        refused.contains("cp312-cp312-manylinux"),
        "its wheels are named: {refused}"
    );
    assert!(server.actions(ORG).is_empty(), "nothing was stored");

    let held = pyproject(&["fastcore<0.1"]);
    let held_back = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("pyproject.toml", held.as_bytes()),
        ],
        zip::CompressionMethod::Deflated,
    );
    let answer = server
        .upload(ORG, &Creds::root(), &o2_form("held", "service", &held_back))
        .ok_json();
    assert_eq!(
        answer["dependencies"][0]["version"],
        json!("0.0.1"),
        "{answer}"
    );
    assert_eq!(
        answer["held_back"][0]["name"],
        json!("fastcore"),
        "{answer}"
    );
    assert_eq!(answer["held_back"][0]["newest"], json!("2.5"), "{answer}");
    let id = answer["uuid"].as_str().expect("uuid");
    assert_eq!(server.action(ORG, id)["held_back"], answer["held_back"]);
}
