//! Egress through the real `vivarium serve`: `allowed_hosts` validated at upload and by PUT
//! (nothing stored on a refusal), shown with the action; a Slack-style alert action posting
//! to an operator's internal host; refusals in the run's logs and in the metrics.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::server::{Creds, Options, Server, data_dir, service_action, zip_main};
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

/// A fake webhook on loopback recording every body posted to it; returns its port.
fn start_webhook() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let recorded = posted.clone();
    let app = Router::new().route(
        "/services/{a}/{b}/{c}",
        post(move |body: Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, posted)
}

fn server(data: &std::path::Path, internal: &str) -> Server {
    let server = Server::start_with(
        data,
        Options::default().config(&format!("egress_internal_hosts = [\"{internal}\"]\n")),
    );
    let root = Creds::root();
    server.create_service_account(ORG, &root, RUNNER);
    server.create_role(ORG, &root, "runners", &[("GET", "_all")], &[RUNNER]);
    server
}

const SLACK_ALERT: &str = r#"
import json, os, urllib.request

def main(data, logger):
    alert = data[0]
    body = json.dumps({"text": "%s fired" % alert["alert_name"]}).encode()
    request = urllib.request.Request(os.environ["WEBHOOK"], data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        logger.info("webhook answered %s", answer.read().decode())
    try:
        urllib.request.urlopen("https://elsewhere.example.com/", timeout=5)
    except OSError as error:
        logger.warning("refused: %s", error)
    return []
"#;

#[test]
fn allowed_hosts_are_validated_stored_shown_and_enforced() {
    let (port, posted) = start_webhook();
    let internal = format!("http://localhost:{port}");
    let data = data_dir();
    let server = server(data.path(), &internal);
    let root = Creds::root();
    let form = |hosts: &str| {
        service_action("slack_alert", &zip_main(SLACK_ALERT), RUNNER)
            .text("allowed_hosts", hosts)
            .text(
                "environment_variables",
                &json!({"WEBHOOK": format!("{internal}/services/T/B/X")}).to_string(),
            )
    };
    server
        .upload(ORG, &root, &form(r#"["http://127.0.0.1:9"]"#))
        .expect_error(400, "Invalid allowed_hosts: allowed host \"http://127.0.0.1:9\": IP literals cannot be allowed by an action; use the host's name, or ask the operator to list it in egress_internal_hosts");
    server
        .upload(ORG, &root, &form("https://hooks.slack.com"))
        .expect_error(400, r#"Invalid JSON in allowed_hosts: give a list of strings such as ["https://hooks.slack.com", "POST https://api.example.com:8443"]"#);
    server
        .upload(ORG, &root, &form(r#"["https://hooks.slack.com/services"]"#))
        .expect_error(400, "Invalid allowed_hosts: allowed host \"https://hooks.slack.com/services\": paths, queries and fragments are not allowed; give only scheme://host[:port]");
    assert!(
        server.actions(ORG).is_empty(),
        "a refused upload stores nothing"
    );

    // The operator's internal host may be named as the operator wrote it.
    let id = server.create_action(
        ORG,
        &root,
        &form(&json!([internal, "POST https://hooks.slack.com"]).to_string()),
    );
    let action = server.action(ORG, &id);
    assert_eq!(
        action["allowed_hosts"],
        json!([internal, "POST https://hooks.slack.com"])
    );

    let reply = server.post(
        &format!("/api/{ORG}/actions/{id}/alert"),
        &root,
        &json!({"inputs": {"alert_name": "disk_full"}, "trigger_source": "Alerts"}),
    );
    reply.expect_status(200);
    assert_eq!(
        *posted.lock().unwrap(),
        [json!({"text": "disk_full fired"})]
    );
    let runs = server.runs(ORG, &id);
    let run_id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let run = server
        .get(&format!("/api/{ORG}/actions/{id}/runs/{run_id}"), &root)
        .ok_json();
    let messages: Vec<String> = run["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            format!(
                "{} {}",
                line["logger"].as_str().unwrap_or(""),
                line["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let joined = messages.join("\n");
    assert!(
        joined.contains(&format!(
            "vivarium.egress POST http://localhost:{port} -> 200"
        )),
        "{joined}"
    );
    assert!(joined.contains("webhook answered ok"), "{joined}");
    assert!(
        joined.contains(
            "vivarium.egress GET https://elsewhere.example.com refused (HTTP-request-denied"
        ),
        "{joined}"
    );
    let metrics = server.metrics();
    assert_eq!(
        metrics.value(
            "vivarium_egress_requests_total",
            &[("outcome", "allowed"), ("reason", "none")]
        ),
        1.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.value(
            "vivarium_egress_requests_total",
            &[("outcome", "refused"), ("reason", "not_allowed")]
        ),
        1.0
    );

    // PUT changes the list; a bad list is refused and changes nothing.
    server
        .put(&format!("/api/{ORG}/actions/{id}"), &root, &json!({"allowed_hosts": ["http://localhost:1"]}))
        .expect_error(400, "Invalid allowed_hosts: allowed host \"http://localhost:1\": localhost names cannot be allowed by an action; ask the operator to list the host in egress_internal_hosts");
    assert_eq!(
        server.action(ORG, &id)["allowed_hosts"],
        json!([internal, "POST https://hooks.slack.com"])
    );
    server
        .put(
            &format!("/api/{ORG}/actions/{id}"),
            &root,
            &json!({"allowed_hosts": []}),
        )
        .expect_status(200);
    assert_eq!(server.action(ORG, &id)["allowed_hosts"], json!([]));
    server
        .post(
            &format!("/api/{ORG}/actions/{id}/alert"),
            &root,
            &json!({"inputs": {"alert_name": "cpu"}}),
        )
        .expect_status(200);
    assert_eq!(
        posted.lock().unwrap().len(),
        1,
        "without allowed hosts the action has no network"
    );
}
