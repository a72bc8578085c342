//! Egress through the real `vivarium serve`: `allowed_hosts` validated at upload and by PUT
//! (nothing stored on a refusal), shown with the action; a Slack-style alert action posting
//! to an operator's internal host; refusals in the run's logs and in the metrics.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::{Options, Server};
use crate::common::zips::zip_main;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
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
    (serve_on_loopback(app), posted)
}

/// Serves `app` on a loopback port from its own runtime thread; returns the port.
fn serve_on_loopback(app: Router) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

fn server(data: &std::path::Path, internal: &str) -> Server {
    let server = Server::start_with(
        data,
        Options::default().config(&format!("egress_internal_hosts = [\"{internal}\"]\n")),
    );
    let root = Creds::root();
    server.create_runner(ORG, &root, RUNNER);
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
    let failed = server
        .post(
            &format!("/api/{ORG}/actions/{id}/alert"),
            &root,
            &json!({"inputs": {"alert_name": "cpu"}}),
        )
        .expect_status(422)
        .json();
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP-request-denied")),
        "{failed}"
    );
    assert_eq!(
        posted.lock().unwrap().len(),
        1,
        "without allowed hosts the action has no network"
    );
}

/// Whether the holding fake may answer, and how many requests it holds; with its signal.
type Gate = Arc<(Mutex<(bool, usize)>, std::sync::Condvar)>;

/// A fake whose `/hold` answers only once its gate is opened, counting who is waiting.
fn start_holding_fake() -> (u16, Gate) {
    let gate = Arc::new((Mutex::new((false, 0)), std::sync::Condvar::new()));
    let held = gate.clone();
    let app = Router::new().route(
        "/hold",
        axum::routing::get(move || {
            let held = held.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let (lock, signal) = &*held;
                    let mut state = lock.lock().unwrap();
                    state.1 += 1;
                    signal.notify_all();
                    while !state.0 {
                        state = signal.wait(state).unwrap();
                    }
                })
                .await
                .unwrap();
                "released"
            }
        }),
    );
    (serve_on_loopback(app), gate)
}

#[test]
fn a_run_waiting_on_the_network_gives_its_slot_to_a_runnable_one() {
    let (port, gate) = start_holding_fake();
    let internal = format!("http://localhost:{port}");
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config(&format!(
            "egress_internal_hosts = [\"{internal}\"]\nmax_concurrent_runs = 1\nmax_runs_waiting_on_network = 1\nrun_timeout = \"30s\"\n"
        )),
    );
    let root = Creds::root();
    server.create_runner(ORG, &root, RUNNER);
    let waiter = server.create_action(
        ORG,
        &root,
        &service_action(
            "waiter",
            &zip_main(&format!(
                "import urllib.request\n\ndef main(data, logger):\n    return [{{'got': urllib.request.urlopen('{internal}/hold', timeout=30).read().decode()}}]\n"
            )),
            RUNNER,
        )
        .text("allowed_hosts", &json!([internal]).to_string()),
    );
    let quick = server.create_action(
        ORG,
        &root,
        &service_action(
            "quick",
            &zip_main("def main(data, logger):\n    return data\n"),
            RUNNER,
        ),
    );
    let waiting = server.post_without_waiting(
        &format!("/api/{ORG}/actions/test/{waiter}"),
        &root,
        r#"{"inputs": [{"n": 1}]}"#,
    );
    {
        let (lock, signal) = &*gate;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut state = lock.lock().unwrap();
        while state.1 == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiting run never reached the fake{}",
                server.dump()
            );
            state = signal
                .wait_timeout(state, std::time::Duration::from_secs(1))
                .unwrap()
                .0;
        }
    }
    // The only slot's call is waiting on /hold: a runnable call still runs now.
    let answer = server.post(
        &format!("/api/{ORG}/actions/test/{quick}"),
        &root,
        &json!({"inputs": [{"n": 2}]}),
    );
    answer.expect_status(200);
    assert!(
        !gate.0.lock().unwrap().0,
        "the quick run finished while the other waited"
    );
    {
        let (lock, signal) = &*gate;
        lock.lock().unwrap().0 = true;
        signal.notify_all();
    }
    // The waiting run resumes once its answer is in (its request's connection stays open, so
    // it is not joined).
    drop(waiting);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let runs = loop {
        let runs = server.runs(ORG, &waiter);
        if runs["total"] == 1 || std::time::Instant::now() > deadline {
            break runs;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(runs["runs"][0]["outcome"], "ok", "{runs}");
}

/// OpenObserve's log pusher through the service: `origin_cluster_url` from the operator, the
/// token from the organization's `ORIGIN_CLUSTER_TOKEN` secret, no allowed host needed; the
/// fake cluster checks the Basic auth and the token never shows in the run.
#[test]
fn the_log_pusher_reaches_the_configured_cluster_with_the_secret_token() {
    let ingested = Arc::new(Mutex::new(Vec::new()));
    let seen = ingested.clone();
    let app = Router::new().route(
        "/api/{org}/{stream}/_json",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().push((
                    auth,
                    serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
                ));
                axum::Json(json!({"code": 200}))
            }
        }),
    );
    let port = serve_on_loopback(app);
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config(&format!(
            "origin_cluster_url = \"http://127.0.0.1:{port}\"\n"
        )),
    );
    let root = Creds::root();
    server.create_runner(ORG, &root, RUNNER);
    let token = crate::common::client::base64(b"bot@example.com:pa55-w0rd");
    server
        .put(
            &format!("/api/{ORG}/secrets/ORIGIN_CLUSTER_TOKEN"),
            &root,
            &json!({"value": token}),
        )
        .expect_status(200);
    let pusher = "import base64, json, os, urllib.request\n\ndef main(data, logger):\n    url = os.environ['ORIGIN_CLUSTER_URL']\n    user, password = base64.b64decode(os.environ['ORIGIN_CLUSTER_TOKEN']).decode().split(':', 1)\n    auth = base64.b64encode(f'{user}:{password}'.encode()).decode()\n    logger.info('pushing with %s', os.environ['ORIGIN_CLUSTER_TOKEN'])\n    request = urllib.request.Request(url + '/api/default/pushed/_json', data=json.dumps(data).encode(), method='POST', headers={'Authorization': 'Basic ' + auth})\n    urllib.request.urlopen(request, timeout=5).read()\n    return data\n";
    let id = server.create_action(
        ORG,
        &root,
        &service_action("pusher", &zip_main(pusher), RUNNER),
    );
    let answer = server.test_run(ORG, &root, &id, &json!([{"level": "info"}]));
    answer.expect_status(200);
    let seen = ingested.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, format!("Basic {token}"));
    assert_eq!(seen[0].1, json!([{"level": "info"}]));
    let run_id = server.runs(ORG, &id)["runs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = server
        .get(&format!("/api/{ORG}/actions/{id}/runs/{run_id}"), &root)
        .ok_json();
    let logs = run["logs"].to_string();
    assert!(logs.contains("allowed by origin_cluster_url"), "{logs}");
    assert!(logs.contains("pushing with ***"), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
}
