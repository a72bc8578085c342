//! Outbound HTTP from inside the sandbox, end to end: `vivarium run` with `--allow-host`,
//! actions using `urllib.request` and `http.client` unchanged against local HTTP and HTTPS
//! fakes, OpenObserve's log pusher against a fake cluster checking the Basic auth decoded
//! from `ORIGIN_CLUSTER_TOKEN`, and every refusal raised inside the action with the library's
//! own exception and an audit line. None of it needs the internet but the `requests` test,
//! which installs `requests` from the public index: ignored unless the tests were built with
//! `VIVARIUM_TEST_PUBLIC_INDEX=1` (as `.ci/run` does).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use serde_json::{Value, json};

/// What the fake cluster received on its ingestion route.
#[derive(Default)]
struct Received {
    ingested: Vec<(String, String, Value)>,
}

type Shared = Arc<Mutex<Received>>;

const USER: &str = "bot@example.com";
const PASSWORD: &str = "s3cret-pa55";

/// Starts the fake on its own runtime thread and returns its port.
fn start_fake(tls: Option<&rcgen_tls::Tls>) -> (u16, Shared) {
    let received = Shared::default();
    let app = Router::new()
        .route("/echo", any(echo))
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [("location", "http://169.254.169.254/latest/meta-data")],
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "late"
            }),
        )
        .route(
            "/services/{a}/{b}/{c}",
            post(|body: Bytes| async move {
                if body.starts_with(b"{") {
                    "ok"
                } else {
                    "invalid_payload"
                }
            }),
        )
        .route("/api/{org}/{stream}/_json", post(ingest))
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = tls.map(|tls| (tls.cert_der.clone(), tls.key_der.clone()));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            match tls {
                None => {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(listener, app).await.unwrap();
                }
                Some((cert, key)) => {
                    let config = axum_server::tls_rustls::RustlsConfig::from_der(vec![cert], key)
                        .await
                        .unwrap();
                    axum_server::from_tcp_rustls(listener, config)
                        .serve(app.into_make_service())
                        .await
                        .unwrap();
                }
            }
        });
    });
    (port, received)
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.to_string(),
        "host": header("host"),
        "user_agent": header("user-agent"),
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn ingest(
    State(received): State<Shared>,
    Path((org, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let expected = format!("Basic {}", token());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 401, "message": "Unauthorized Access"})),
        );
    }
    let records: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let count = records.as_array().map_or(0, Vec::len);
    received
        .lock()
        .unwrap()
        .ingested
        .push((org, stream.clone(), records));
    (
        StatusCode::OK,
        axum::Json(
            json!({"code": 200, "status": [{"name": stream, "successful": count, "failed": 0}]}),
        ),
    )
}

/// A test CA and a certificate for 127.0.0.1 signed by it.
mod rcgen_tls {
    pub struct Tls {
        pub ca_pem: String,
        pub cert_der: Vec<u8>,
        pub key_der: Vec<u8>,
    }

    pub fn make() -> Tls {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Tls {
            ca_pem: ca.pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

fn origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `--allow-host ORIGIN --internal-host ORIGIN`: the fake listens on loopback, which only
/// an internal host may reach.
fn allow_internal(origin: &str) -> Vec<String> {
    vec![
        "--allow-host".into(),
        origin.into(),
        "--internal-host".into(),
        origin.into(),
    ]
}

fn run(source: &str, extra: &[String]) -> crate::common::cli::Outcome {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    crate::common::cli::run_source(source, &json!([{"n": 1}]), &extra)
}

const URLLIB_ACTION: &str = r#"
import json, os, urllib.request

def main(data, logger):
    base = os.environ["BASE"]
    with urllib.request.urlopen(base + "/echo?x=1", timeout=5) as answer:
        got = json.load(answer)
    request = urllib.request.Request(base + "/echo", data=b'{"a": 1}', method="POST",
                                     headers={"Content-Type": "application/json", "Host": "169.254.169.254"})
    with urllib.request.urlopen(request) as answer:
        posted = json.load(answer)
        status = answer.status
    return [{"get": got, "post": posted, "status": status}]
"#;

#[test]
fn urllib_gets_and_posts_through_the_host_with_an_audit_line_per_request() {
    let (port, _) = start_fake(None);
    let mut extra = allow_internal(&origin(port));
    extra.extend(["--env".into(), format!("BASE={}", origin(port))]);
    let outcome = run(URLLIB_ACTION, &extra);
    let result = outcome.success_json();
    let record = &result[0];
    assert_eq!(record["get"]["method"], "GET");
    assert_eq!(record["get"]["path"], "/echo?x=1");
    assert_eq!(record["post"]["method"], "POST");
    assert_eq!(record["post"]["body"], r#"{"a": 1}"#);
    // Host comes from the URL, whatever the action set.
    assert_eq!(record["post"]["host"], format!("127.0.0.1:{port}"));
    assert_eq!(record["status"], 200);
    let audits: Vec<&str> = outcome
        .stderr_lines()
        .into_iter()
        .filter(|line| line.contains("vivarium.egress"))
        .collect();
    assert_eq!(audits.len(), 2, "{}", outcome.stderr);
    assert!(
        audits[0].contains(&format!("GET http://127.0.0.1:{port} -> 200")),
        "{}",
        audits[0]
    );
    assert!(audits[1].contains("allowed by"), "{}", audits[1]);
}

#[test]
fn http_client_connections_work_unchanged() {
    let (port, _) = start_fake(None);
    let source = format!(
        r#"
import http.client, json

def main(data, logger):
    connection = http.client.HTTPConnection("127.0.0.1", {port}, timeout=5)
    connection.request("PUT", "/echo", body="hello", headers={{"X-Test": "1"}})
    response = connection.getresponse()
    first = json.loads(response.read())
    connection.request("GET", "/echo?again=1")
    second = json.loads(connection.getresponse().read())
    return [{{"first": first, "second": second, "status": response.status}}]
"#
    );
    let result = run(&source, &allow_internal(&origin(port))).success_json();
    assert_eq!(result[0]["first"]["method"], "PUT");
    assert_eq!(result[0]["first"]["body"], "hello");
    assert_eq!(result[0]["second"]["path"], "/echo?again=1");
    assert_eq!(result[0]["status"], 200);
}

const REFUSAL_ACTION: &str = r#"
import os, socket, urllib.error, urllib.request, http.client
import vivarium.http

def main(data, logger):
    outcomes = []
    for url in os.environ["URLS"].split():
        try:
            urllib.request.urlopen(url, timeout=5)
            outcomes.append({"url": url, "ok": True})
        except urllib.error.URLError as error:
            reason = error.reason
            outcomes.append({"url": url, "type": type(reason).__name__,
                             "connection_error": isinstance(reason, ConnectionError),
                             "egress": isinstance(reason, vivarium.http.EgressError),
                             "code": getattr(reason, "code", None), "message": str(reason)})
    try:
        http.client.HTTPSConnection("example.com").request("GET", "/")
    except ConnectionRefusedError as error:
        outcomes.append({"url": "http.client", "type": type(error).__name__, "message": str(error)})
    return outcomes
"#;

#[test]
fn without_allowed_hosts_an_action_has_no_network_at_all() {
    let (port, _) = start_fake(None);
    let extra = vec!["--env".into(), format!("URLS={}/echo", origin(port))];
    let outcome = run(REFUSAL_ACTION, &extra);
    let result = outcome.success_json();
    assert_eq!(result[0]["type"], "RequestRefused", "{result}");
    assert_eq!(result[0]["connection_error"], true);
    assert_eq!(result[0]["egress"], true);
    assert_eq!(result[0]["code"], "HTTP-request-denied");
    let message = result[0]["message"].as_str().unwrap();
    assert!(message.contains("allowed hosts"), "{message}");
    assert!(message.contains("--allow-host"), "{message}");
    assert_eq!(result[1]["type"], "RequestRefused");
    assert!(
        outcome.stderr.contains("refused (HTTP-request-denied"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn private_addresses_metadata_and_redirects_to_them_are_refused_with_their_rule() {
    let (port, _) = start_fake(None);
    let allowed = origin(port);
    let urls = format!(
        "{allowed}/echo http://169.254.169.254/latest/meta-data {allowed}/redirect https://evil.example.com/"
    );
    // Allowed, but not an internal host: loopback is refused after the name is checked.
    let extra = vec![
        "--allow-host".into(),
        allowed.clone(),
        "--allow-host".into(),
        "http://169.254.169.254".into(),
        "--env".into(),
        format!("URLS={urls}"),
    ];
    let result = run(REFUSAL_ACTION, &extra).success_json();
    let codes: Vec<&str> = result
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|o| o["code"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        codes,
        [
            "destination-IP-prohibited",
            "destination-IP-prohibited",
            "destination-IP-prohibited",
            "HTTP-request-denied"
        ],
        "{result}"
    );
    assert!(
        result[0]["message"]
            .as_str()
            .unwrap()
            .contains("egress_internal_hosts")
    );
    assert!(result[1]["message"].as_str().unwrap().contains("metadata"));
    // With the fake internal, the redirect itself is answered, and urllib's next hop, to the
    // metadata address, is refused.
    let mut extra = allow_internal(&allowed);
    extra.extend(["--env".into(), format!("URLS={allowed}/redirect")]);
    let outcome = run(REFUSAL_ACTION, &extra);
    let result = outcome.success_json();
    assert_eq!(result[0]["code"], "HTTP-request-denied", "{result}");
    assert!(
        result[0]["message"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254")
    );
    assert!(outcome.stderr.contains("-> 302"), "{}", outcome.stderr);
}

#[test]
fn https_is_verified_by_the_host_against_the_given_root() {
    let tls = rcgen_tls::make();
    let (port, _) = start_fake(Some(&tls));
    let ca = crate::common::files::write_bytes(tls.ca_pem.as_bytes());
    let secure = format!("https://127.0.0.1:{port}");
    let source = r#"
import json, os, urllib.request

def main(data, logger):
    with urllib.request.urlopen(os.environ["BASE"] + "/echo") as answer:
        return [json.load(answer)]
"#;
    let mut extra = allow_internal(&secure);
    extra.extend(["--env".into(), format!("BASE={secure}")]);
    let untrusted = run(source, &extra);
    untrusted.assert_code(10);
    untrusted.assert_stderr_contains("TLS-certificate-error");
    extra.extend(["--egress-ca".into(), ca.path().display().to_string()]);
    let result = run(source, &extra).success_json();
    assert_eq!(result[0]["method"], "GET");
}

#[test]
fn the_watchdog_cancels_a_request_still_waiting_at_the_time_limit() {
    let (port, _) = start_fake(None);
    let source = format!(
        r#"
import urllib.request

def main(data, logger):
    urllib.request.urlopen("http://127.0.0.1:{port}/slow", timeout=60)
    return []
"#
    );
    let mut extra = allow_internal(&origin(port));
    extra.extend(["--timeout".into(), "1s".into()]);
    let outcome = run(&source, &extra);
    assert_ne!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("HTTP-response-timeout") || outcome.stderr.contains("time limit"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.elapsed < Duration::from_secs(15),
        "{:?}",
        outcome.elapsed
    );
}

/// OpenObserve's scheduled "log pusher", as its documentation writes it but with urllib:
/// reads ORIGIN_CLUSTER_URL, decodes ORIGIN_CLUSTER_TOKEN, POSTs records with Basic auth.
const LOG_PUSHER_URLLIB: &str = r#"
import base64, json, os, urllib.request

def main(data, logger):
    url = os.environ["ORIGIN_CLUSTER_URL"]
    token = os.environ["ORIGIN_CLUSTER_TOKEN"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(f"{url}/api/default/pushed/_json", method="POST",
                                     data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": "Basic " + auth})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return [json.load(answer)]
"#;

fn token() -> String {
    crate::common::client::base64(format!("{USER}:{PASSWORD}").as_bytes())
}

#[test]
fn the_log_pusher_reaches_the_origin_cluster_without_any_allowed_host() {
    let (port, received) = start_fake(None);
    let extra = vec![
        "--env".into(),
        format!("ORIGIN_CLUSTER_URL={}", origin(port)),
        "--env".into(),
        format!("ORIGIN_CLUSTER_TOKEN={}", token()),
    ];
    let outcome = run(LOG_PUSHER_URLLIB, &extra);
    let result = outcome.success_json();
    assert_eq!(result[0]["status"][0]["successful"], 1, "{result}");
    let ingested = &received.lock().unwrap().ingested;
    assert_eq!(ingested.len(), 1);
    assert_eq!(ingested[0].1, "pushed");
    assert_eq!(ingested[0].2, json!([{"n": 1}]));
    assert!(
        outcome.stderr.contains("allowed by origin_cluster_url"),
        "{}",
        outcome.stderr
    );
}

/// The same with `requests` from the action's pyproject.toml, as OpenObserve's docs write it,
/// plus a Slack-style post.
const LOG_PUSHER_REQUESTS: &str = r#"
import base64, os, requests

def main(data, logger):
    url = os.environ["ORIGIN_CLUSTER_URL"]
    user, password = base64.b64decode(os.environ["ORIGIN_CLUSTER_TOKEN"]).decode().split(":", 1)
    response = requests.post(f"{url}/api/default/pushed/_json", json=data, auth=(user, password), timeout=10)
    response.raise_for_status()
    slack = requests.post(f"{url}/services/T000/B000/XXXX", json={"text": "alert fired"})
    try:
        requests.get("https://not-allowed.example.com/", timeout=3)
        refused = None
    except requests.exceptions.ConnectionError as error:
        refused = str(error)
    try:
        requests.get(f"{url}/slow", timeout=0.5)
        timed_out = None
    except requests.exceptions.ReadTimeout as error:
        timed_out = type(error).__name__
    return [{"ingest": response.json(), "slack": slack.text, "refused": refused, "timed_out": timed_out}]
"#;

#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "installs requests from the public package index: set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn requests_from_pyproject_runs_the_log_pusher_and_a_slack_post_unchanged() {
    let (port, received) = start_fake(None);
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("main.py"), LOG_PUSHER_REQUESTS).unwrap();
    std::fs::write(
        folder.path().join("pyproject.toml"),
        "[project]\nname = \"pusher\"\nversion = \"0\"\ndependencies = [\"requests==2.32.5\", \"urllib3==2.5.0\"]\n",
    )
    .unwrap();
    let outcome = crate::common::cli::run_on(
        folder.path(),
        &json!([{"n": 1}]),
        &[
            "--env",
            &format!("ORIGIN_CLUSTER_URL={}", origin(port)),
            "--env",
            &format!("ORIGIN_CLUSTER_TOKEN={}", token()),
        ],
    );
    let result = outcome.success_json();
    assert_eq!(
        result[0]["ingest"]["status"][0]["successful"], 1,
        "{result}"
    );
    assert_eq!(result[0]["slack"], "ok");
    let refused = result[0]["refused"].as_str().unwrap();
    assert!(refused.contains("HTTP-request-denied"), "{refused}");
    assert_eq!(result[0]["timed_out"], "ReadTimeout");
    assert_eq!(received.lock().unwrap().ingested.len(), 1);
}

/// The egress of a call lives and dies with it: a policy, a budget and a pending answer
/// never carry over into the next call, which gets a fresh instance of the snapshot.
#[test]
fn egress_state_lives_and_dies_with_its_call() {
    crate::common::ensure_shared_runtime();
    let (port, _) = start_fake(None);
    let sandbox = vivarium_sandbox::prepare(
        std::path::Path::new(crate::common::CACHE_DIR),
        &vivarium_sandbox::PrepareOptions {
            pool_size: 1,
            max_concurrent_calls: 2,
            ..Default::default()
        },
    )
    .expect("the snapshot sandbox");
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("main.py"),
        format!(
            r#"
import urllib.request
calls = []

def main(data, logger):
    calls.append(1)
    try:
        urllib.request.urlopen("http://127.0.0.1:{port}/echo", timeout=5).read()
        return [{{"ok": True, "calls": len(calls)}}]
    except OSError as error:
        return [{{"ok": False, "calls": len(calls), "code": getattr(error.reason, "code", None)}}]
"#
        ),
    )
    .unwrap();
    let origin = origin(port);
    let limits = vivarium_egress::EgressLimits {
        requests_per_call: 1,
        ..vivarium_egress::EgressLimits::DEFAULT
    };
    let operator =
        vivarium_egress::OperatorEgress::new(std::slice::from_ref(&origin), limits).unwrap();
    let client =
        vivarium_egress::EgressClient::new(None, Arc::new(vivarium_egress::SystemLookup)).unwrap();
    let allowed = vivarium_egress::Egress::for_action(
        std::slice::from_ref(&origin),
        vivarium_egress::Author::Action,
        None,
        Arc::new(operator),
        client,
    )
    .unwrap();
    let env = vivarium_sandbox::ActionEnv::default();
    let call = |egress: Option<&vivarium_egress::Egress>| {
        sandbox
            .run(&vivarium_sandbox::Call {
                action_dir: folder.path(),
                input: vivarium_sandbox::Input::Data(json!([])),
                env: &env,
                limits: vivarium_sandbox::Limits::DEFAULT,
                shape: vivarium_sandbox::ResultShape::Records,
                dependency_layer: None,
                egress,
                cpu_slot: None,
                state: None,
                log_sink: None,
            })
            .expect("the call")
    };
    let first = call(Some(&allowed));
    assert_eq!(
        first.result,
        Some(json!([{"ok": true, "calls": 1}])),
        "{first:?}"
    );
    assert_eq!(first.egress.len(), 1);
    let second = call(None);
    assert_eq!(
        second.result,
        Some(json!([{"ok": false, "calls": 1, "code": "HTTP-request-denied"}])),
        "{second:?}"
    );
    assert_eq!(second.egress[0].outcome(), "refused");
    // A budget of one request per call is one per call, not one in all.
    let third = call(Some(&allowed));
    assert_eq!(
        third.result,
        Some(json!([{"ok": true, "calls": 1}])),
        "{third:?}"
    );
}

/// On the pinned interpreter, which has no host calls, an action with allowed hosts is
/// refused before it starts, with a message saying what to do.
#[test]
fn egress_needs_the_snapshot_runtime() {
    let outcome = crate::common::cli::vivarium()
        .args(["--runtime", "pinned", "run"])
        .arg(crate::common::files::uppercase_distinct())
        .arg("--input")
        .arg(crate::common::files::k8s_logs())
        .args(["--allow-host", "https://hooks.slack.com"])
        .output();
    outcome.assert_failure(2, "egress needs the snapshot runtime");
}

/// On a machine without system CA roots, the command still starts and https still verifies,
/// against the compiled-in Mozilla roots (which the test CA is not among).
#[test]
fn https_works_on_a_machine_without_system_roots() {
    let tls = rcgen_tls::make();
    let (port, _) = start_fake(Some(&tls));
    let secure = format!("https://127.0.0.1:{port}");
    let source = r#"
import json, urllib.request

def main(data, logger):
    with urllib.request.urlopen(data[0]["url"]) as answer:
        return [json.load(answer)]
"#;
    let records = json!([{"url": format!("{secure}/echo")}]);
    let input = crate::common::files::write_json(&records);
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("main.py"), source).unwrap();
    let outcome = crate::common::cli::vivarium()
        .host_env("SSL_CERT_FILE", "/nonexistent/vivarium-test-roots.pem")
        .host_env("SSL_CERT_DIR", "/nonexistent/vivarium-test-roots")
        .arg("run")
        .arg(folder.path())
        .arg("--input")
        .arg(input.path())
        .args(allow_internal(&secure))
        .output();
    outcome.assert_code(10);
    outcome.assert_stderr_contains("TLS-certificate-error");
}

/// A request larger than the call's limits let through (8 MiB of body by default) is refused
/// without the host copying it out of the guest's memory.
#[test]
fn an_oversized_request_is_refused_unread() {
    let source = r#"
import urllib.error, urllib.request

def main(data, logger):
    try:
        urllib.request.urlopen("https://hooks.slack.com/x", data=b"x" * 9_000_000)
    except urllib.error.URLError as error:
        return [{"code": error.reason.code, "message": str(error.reason)}]
    return []
"#;
    let outcome = run(source, &[]);
    let result = outcome.success_json();
    assert_eq!(result[0]["code"], "HTTP-request-body-size", "{result}");
    assert!(
        outcome.stderr.contains("? <not read> refused"),
        "{}",
        outcome.stderr
    );
}
