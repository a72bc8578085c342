//! Operating the service: health, readiness and metrics; 429 under saturation; restarts
//! keep everything; the scheduler; crashes and failures leave nothing half-stored; a graceful
//! shutdown lets running calls finish; configuration through the environment.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crate::common::api::Api;
use crate::common::client::{Creds, ROOT_EMAIL, ROOT_PASSWORD};
use crate::common::files::data_dir;
use crate::common::forms::{Form, service_action};
use crate::common::process::{Options, Server};
use crate::common::wait_for;
use crate::common::zips::{pseudo_random, zip_entries, zip_main};
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

const ECHO: &str = "def main(data, logger):\n    logger.info('echo')\n    return data\n";
const SCHEDULED: &str =
    "import logging\n\ndef main():\n    logging.getLogger('action').info('tick')\n    return []\n";

/// Gives the runner service account GET on every action script.
fn add_runner(server: &Server) -> Creds {
    server.create_runner(ORG, &Creds::root(), RUNNER)
}

/// Every file under `dir`, recursively (none when absent).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn health_readiness_and_metrics_after_runs() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    add_runner(&server);

    let health = server.request("GET", "/healthz", &[], None);
    health.expect_status(200);
    assert_eq!(health.text(), "ok");
    let ready = server.request("GET", "/readyz", &[], None);
    ready.expect_status(200);
    assert_eq!(ready.text(), "ready");

    let echo = server.create_action(ORG, &root, &service_action("echo", &zip_main(ECHO), RUNNER));
    let failing = server.create_action(
        ORG,
        &root,
        &service_action(
            "failing",
            &zip_main("def main(data, logger):\n    raise RuntimeError('boom')\n"),
            RUNNER,
        ),
    );
    server.create_service_account(ORG, &root, "nobody@example.com");
    let denied = server.create_action(
        ORG,
        &root,
        &service_action("denied", &zip_main(ECHO), "nobody@example.com"),
    );

    let start = server.metrics();
    let instances = start.instances();
    assert_eq!(start.runs("ok", "manual"), 0.0, "{}", start.text);

    for _ in 0..2 {
        let answer = server
            .test_run(ORG, &root, &echo, &json!([{"n": 1}]))
            .ok_json();
        assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    }
    let failed = server.test_run(ORG, &root, &failing, &json!([])).ok_json();
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");
    assert_eq!(failed["error"]["type"], json!("RuntimeError"), "{failed}");
    assert_eq!(failed["error"]["message"], json!("boom"), "{failed}");
    server
        .post(
            &format!("/api/{ORG}/actions/{echo}/alert"),
            &root,
            &json!({"inputs": {"n": 1}, "trigger_source": "Alerts", "trace_id": "t1"}),
        )
        .ok_json();
    server
        .post(
            &format!("/api/{ORG}/actions/{echo}/transform"),
            &root,
            &json!({"hits": [{"n": 1}]}),
        )
        .ok_json();
    server
        .test_run(ORG, &root, &denied, &json!([]))
        .expect_status(403);

    let reply = server.request("GET", "/metrics", &[], None);
    reply.expect_status(200);
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/openmetrics-text"),
        "{reply}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.text.trim_end().ends_with("# EOF"),
        "{}",
        metrics.text
    );
    for (outcome, trigger, expected) in [
        ("ok", "manual", 2.0),
        ("script_error", "manual", 1.0),
        ("ok", "alert", 1.0),
        ("ok", "logs", 1.0),
        ("permission_denied", "manual", 1.0),
    ] {
        assert_eq!(
            metrics.runs(outcome, trigger),
            expected,
            "runs_total{{outcome={outcome},trigger={trigger}}} in:\n{}",
            metrics.text
        );
    }
    assert_eq!(metrics.runs("ok", "schedule"), 0.0);
    assert_eq!(
        metrics.instances(),
        instances + 5.0,
        "one guest per run that started"
    );
    assert_eq!(metrics.value("vivarium_runs_rejected_total", &[]), 0.0);
    assert_eq!(metrics.get("vivarium_runs_in_progress", &[]), Some(0.0));
    assert_eq!(metrics.get("vivarium_run_queue_depth", &[]), Some(0.0));
    assert_eq!(
        metrics.get("vivarium_run_duration_seconds_count", &[]),
        Some(5.0),
        "{}",
        metrics.text
    );
    assert!(
        metrics.value("vivarium_run_fuel_total", &[]) > 0.0,
        "{}",
        metrics.text
    );
}

/// Fires six runs at once at a server sized for one running and one waiting: some are
/// refused with 429 and `Retry-After`, some run.
fn saturate(server: &Server) {
    let root = Creds::root();
    add_runner(server);
    let sleeper = server.create_action(
        ORG,
        &root,
        &service_action(
            "sleeper",
            &zip_main(
                "import time\n\ndef main(data, logger):\n    time.sleep(3)\n    return data\n",
            ),
            RUNNER,
        ),
    );

    const CALLS: usize = 6;
    let barrier = std::sync::Barrier::new(CALLS);
    let replies: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..CALLS)
            .map(|n| {
                let (root, sleeper, barrier) = (&root, &sleeper, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    server.test_run(ORG, root, sleeper, &json!([{"call": n}]))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a caller thread"))
            .collect()
    });

    let mut accepted = 0;
    let mut refused = 0;
    for reply in &replies {
        match reply.status {
            200 => {
                let answer = reply.json();
                assert_eq!(answer["outcome"], json!("ok"), "{reply}");
                accepted += 1;
            }
            429 => {
                assert_eq!(reply.header("retry-after"), Some("1"), "{reply}");
                assert_eq!(
                    reply.json(),
                    json!({"code": 429, "message": "2 runs are already running or waiting; retry shortly"}),
                    "{reply}"
                );
                refused += 1;
            }
            _ => panic!("neither accepted nor refused: {reply}"),
        }
    }
    assert!(accepted >= 1, "at least one call ran: {replies:?}");
    assert!(refused >= 1, "at least one call was refused: {replies:?}");
    let metrics = server.metrics();
    assert_eq!(
        metrics.value("vivarium_runs_rejected_total", &[]),
        refused as f64
    );
    assert_eq!(metrics.runs("ok", "manual"), accepted as f64);
    assert_eq!(server.runs(ORG, &sleeper)["total"], json!(accepted));

    // Once the queue drains, calls are accepted again.
    let answer = server
        .test_run(ORG, &root, &sleeper, &json!([{"call": "after"}]))
        .ok_json();
    assert_eq!(answer["result"], json!([{"call": "after"}]));
}

#[test]
fn saturation_answers_429_with_retry_after() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("max_concurrent_runs = 1\nrun_queue_capacity = 1"),
    );
    saturate(&server);
}

/// Known product bug: the numeric flags of `vivarium serve` (`--max-concurrent-runs`,
/// `--run-queue-capacity`) make it exit at once with `invalid type: found map, expected usize
/// for key "default.max_concurrent_runs"` (the flags go through `serde_json::Value`, whose
/// numbers serialize as maps with the workspace's `arbitrary_precision` feature).
#[test]
fn saturation_through_the_command_line_flags() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().args(&["--max-concurrent-runs", "1", "--run-queue-capacity", "1"]),
    );
    saturate(&server);
}

#[test]
fn a_restart_keeps_everything() {
    let data = data_dir();
    let mut first = Server::start(data.path());
    let root = Creds::root();
    let account = add_runner(&first);
    let member = first.create_user(ORG, &root, "member@example.com", "member");
    first.create_role(
        ORG,
        &root,
        "listers",
        &[("LIST", "_all")],
        &["member@example.com"],
    );
    first
        .post("/api/organizations", &root, &json!({"name": "acme"}))
        .ok_json();
    let zip = zip_main(ECHO);
    let id = first.create_action(
        ORG,
        &root,
        &service_action("kept", &zip, RUNNER)
            .text("environment_variables", r#"{"KEPT": "yes"}"#)
            .text("description", "survives restarts"),
    );
    let run = first
        .test_run(ORG, &root, &id, &json!([{"n": 1}]))
        .ok_json();
    assert_eq!(run["outcome"], json!("ok"), "{run}");
    let run_id = run["run_id"].as_str().expect("a run id").to_string();

    let snapshot = |server: &Server| {
        json!({
            "orgs": server.get("/api/organizations", &root).ok_json(),
            "actions": server.actions(ORG),
            "action": server.action(ORG, &id),
            "runs": server.runs(ORG, &id),
            "run": server.get(&format!("/api/{ORG}/actions/{id}/runs/{run_id}"), &root).ok_json(),
            "accounts": server.get(&format!("/api/{ORG}/service_accounts"), &root).ok_json(),
            "roles": server.get(&format!("/api/{ORG}/roles"), &root).ok_json(),
            "users": server.get(&format!("/api/{ORG}/users"), &root).ok_json(),
        })
    };
    let before = snapshot(&first);
    let status = first.terminate();
    assert!(
        status.success(),
        "a clean exit on SIGTERM: {status}{}",
        first.dump()
    );
    assert!(first.stdout().contains("Shutting down"), "{}", first.dump());

    let second = Server::start(data.path());
    assert_eq!(snapshot(&second), before, "everything survived the restart");
    assert!(
        !second.stderr().contains("root user created"),
        "the root user is not created again{}",
        second.dump()
    );
    // Every credential still works: root, the member, the service account's old token.
    second
        .get(&format!("/api/{ORG}/actions"), &member)
        .ok_json();
    second
        .get(&format!("/api/{ORG}/actions/{id}"), &member)
        .expect_error(403, "Unauthorized Access");
    let read = second
        .get(&format!("/api/{ORG}/actions/{id}"), &account)
        .ok_json();
    assert_eq!(read["name"], json!("kept"));
    let download = second.get(&format!("/api/{ORG}/actions/download/{id}"), &root);
    download.expect_status(200);
    assert_eq!(download.body, zip);
    second
        .get(
            &format!("/api/{ORG}/actions"),
            &Creds::new(ROOT_EMAIL, "not-the-root-password"),
        )
        .expect_error(401, "Unauthorized Access");
    let again = second
        .test_run(ORG, &root, &id, &json!([{"n": 2}]))
        .ok_json();
    assert_eq!(again["result"], json!([{"n": 2}]));
    assert_eq!(second.runs(ORG, &id)["total"], json!(2));
}

#[test]
fn a_repeat_schedule_fires_and_stops_when_paused() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("scheduler_interval = \"500ms\""),
    );
    let root = Creds::root();
    add_runner(&server);
    let id = server.create_action(
        ORG,
        &root,
        &service_action("ticker", &zip_main(SCHEDULED), RUNNER)
            .set("execution_details", "repeat")
            .text("cron_expr", "*/2 * * * * *"),
    );
    let details = server.action(ORG, &id);
    assert_eq!(details["execution_details"], json!("repeat"));
    assert_eq!(details["cron_expr"], json!("*/2 * * * * *"));
    assert!(details["next_run_at"].as_i64().is_some(), "{details}");

    let scheduled_runs = |server: &Server| -> Vec<Value> {
        server.runs(ORG, &id)["runs"]
            .as_array()
            .expect("runs")
            .clone()
    };
    let fired = wait_for(Duration::from_secs(60), "two scheduled runs", || {
        let runs = scheduled_runs(&server);
        (runs.len() >= 2).then_some(runs)
    });
    for run in &fired {
        assert_eq!(run["trigger"], json!("schedule"), "{run}");
        assert_eq!(run["outcome"], json!("ok"), "{run}");
        assert_eq!(run["input_count"], json!(0), "{run}");
    }
    let full = server
        .get(
            &format!(
                "/api/{ORG}/actions/{id}/runs/{}",
                fired[0]["id"].as_str().unwrap()
            ),
            &root,
        )
        .ok_json();
    assert_eq!(full["logs"][0]["message"], json!("tick"), "{full}");
    assert!(server.metrics().runs("ok", "schedule") >= 2.0);

    let paused = server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/pause"),
            Some(&root),
            None,
        )
        .ok_json();
    assert_eq!(paused["paused"], json!(true), "{paused}");
    let paused_at = paused["updated_at"].as_i64().expect("updated_at");
    assert_eq!(server.actions(ORG)[0]["paused"], json!(true));

    // Three periods later, no run started after the pause (a firing claimed just before it
    // may start a moment later).
    thread::sleep(Duration::from_secs(6));
    server.wait_for_runs_in_progress(0);
    let after_pause = scheduled_runs(&server);
    let late: Vec<&Value> = after_pause
        .iter()
        .filter(|run| run["started_at"].as_i64().unwrap_or(0) > paused_at + 1_000_000)
        .collect();
    assert!(late.is_empty(), "runs started while paused: {late:?}");
    let count = after_pause.len();
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        scheduled_runs(&server).len(),
        count,
        "no firing while paused"
    );

    // Resuming fires it again.
    let resumed = server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/resume"),
            Some(&root),
            None,
        )
        .ok_json();
    assert_eq!(resumed["paused"], json!(false));
    assert!(resumed["next_run_at"].as_i64().is_some(), "{resumed}");
    wait_for(Duration::from_secs(60), "a run after resuming", || {
        (scheduled_runs(&server).len() > count).then_some(())
    });
    server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/pause"),
            Some(&root),
            None,
        )
        .ok_json();
}

#[test]
fn a_once_action_runs_once_and_completes() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("scheduler_interval = \"500ms\""),
    );
    let root = Creds::root();
    add_runner(&server);
    let id = server.create_action(
        ORG,
        &root,
        &service_action("one_shot", &zip_main(SCHEDULED), RUNNER)
            .set("execution_details", "once")
            .text("cron_expr", "*/2 * * * * *"),
    );
    let details = wait_for(
        Duration::from_secs(60),
        "the once action to complete",
        || {
            let details = server.action(ORG, &id);
            (details["status"] == json!("completed")).then_some(details)
        },
    );
    assert_eq!(details["next_run_at"], Value::Null, "{details}");
    assert!(
        details["last_successful_at"].as_i64().is_some(),
        "{details}"
    );
    // Several periods later, still exactly one run.
    thread::sleep(Duration::from_secs(5));
    let history = server.runs(ORG, &id);
    assert_eq!(history["total"], json!(1), "{history}");
    assert_eq!(history["runs"][0]["trigger"], json!("schedule"));
    assert_eq!(history["runs"][0]["outcome"], json!("ok"));
    let listed = server.actions(ORG);
    assert_eq!(listed[0]["status"], json!("completed"));
    assert_eq!(listed[0]["execution_details_type"], json!("once"));

    // Pausing and resuming a completed action does not arm it again.
    server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/pause"),
            Some(&root),
            None,
        )
        .ok_json();
    let resumed = server
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/resume"),
            Some(&root),
            None,
        )
        .ok_json();
    assert_eq!(resumed["status"], json!("completed"), "{resumed}");
    assert_eq!(resumed["next_run_at"], Value::Null, "{resumed}");
    thread::sleep(Duration::from_secs(3));
    assert_eq!(server.runs(ORG, &id)["total"], json!(1));
}

#[test]
fn a_crash_mid_upload_leaves_nothing_half_stored() {
    let data = data_dir();
    let mut first = Server::start(data.path());
    let root = Creds::root();
    add_runner(&first);
    let big = zip_entries(
        &[
            ("main.py", ECHO.as_bytes()),
            ("data.bin", &pseudo_random(8 * 1024 * 1024)),
        ],
        zip::CompressionMethod::Stored,
    );
    let (content_type, body) = service_action("crashed", &big, RUNNER).encode();
    let head = format!(
        "POST /api/{ORG}/actions/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        first.addr,
        root.header(),
        body.len()
    );
    // One upload cut in the middle of the file, one cut just before the final boundary
    // (every field read, the form not finished).
    let mut half = TcpStream::connect(first.addr).expect("connecting");
    half.write_all(head.as_bytes()).expect("sending the head");
    half.write_all(&body[..body.len() / 2])
        .expect("sending half");
    half.flush().expect("flushing");
    let mut almost = TcpStream::connect(first.addr).expect("connecting");
    almost.write_all(head.as_bytes()).expect("sending the head");
    almost
        .write_all(&body[..body.len() - 8])
        .expect("sending all but the end");
    almost.flush().expect("flushing");
    thread::sleep(Duration::from_secs(1));
    first.kill();
    drop((half, almost));

    let blobs = data.path().join("blobs");
    assert_eq!(
        files_under(&blobs),
        Vec::<PathBuf>::new(),
        "no blob after the crash"
    );
    let second = Server::start(data.path());
    assert_eq!(
        second.actions(ORG),
        Vec::<Value>::new(),
        "no action after the crash"
    );
    assert_eq!(second.blob_files(ORG), Vec::<PathBuf>::new());
    assert_eq!(files_under(&blobs), Vec::<PathBuf>::new());

    // The same upload, complete, works and stores one blob.
    let id = second.create_action(ORG, &root, &service_action("crashed", &big, RUNNER));
    let blobs_now = second.blob_files(ORG);
    assert_eq!(blobs_now.len(), 1, "{blobs_now:?}");
    let sha = second.action(ORG, &id)["zip_sha256"]
        .as_str()
        .expect("a digest")
        .to_string();
    assert!(
        blobs_now[0].ends_with(format!("{sha}.zip")),
        "{blobs_now:?}"
    );
    assert_eq!(std::fs::read(&blobs_now[0]).expect("the blob"), big);
}

#[test]
fn a_failed_upload_leaves_no_extra_blob() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    add_runner(&server);
    let first_zip = zip_main(ECHO);
    let other_zip = zip_main("def main(data, logger):\n    return []\n");
    let id = server.create_action(ORG, &root, &service_action("dup", &first_zip, RUNNER));
    let sha = server.action(ORG, &id)["zip_sha256"]
        .as_str()
        .expect("a digest")
        .to_string();
    let only_first = |server: &Server| {
        let blobs = server.blob_files(ORG);
        assert_eq!(blobs.len(), 1, "{blobs:?}");
        assert!(blobs[0].ends_with(format!("{sha}.zip")), "{blobs:?}");
    };
    only_first(&server);

    // A duplicate name with another ZIP: refused after its ZIP was stored, then removed.
    server
        .upload(ORG, &root, &service_action("dup", &other_zip, RUNNER))
        .expect_error(
            409,
            "action \"dup\" in organization \"default\" already exists",
        );
    only_first(&server);
    // A duplicate name with the same ZIP: refused, and the existing action keeps its ZIP.
    server
        .upload(ORG, &root, &service_action("dup", &first_zip, RUNNER))
        .expect_error(
            409,
            "action \"dup\" in organization \"default\" already exists",
        );
    only_first(&server);
    let download = server.get(&format!("/api/{ORG}/actions/download/{id}"), &root);
    download.expect_status(200);
    assert_eq!(download.body, first_zip);
    // Refused before storing anything.
    server
        .upload(
            ORG,
            &root,
            &service_action("ghostly", &other_zip, "ghost@example.com"),
        )
        .expect_status(400);
    server
        .upload(
            ORG,
            &root,
            &Form::new()
                .text("id", &id)
                .text("execution_details", "once")
                .text("cron_expr", "* * * * *")
                .file("file", "other.zip", &other_zip),
        )
        .expect_error(400, "Execution type of an action cannot be changed");
    only_first(&server);
    assert_eq!(server.actions(ORG).len(), 1);
    let answer = server
        .test_run(ORG, &root, &id, &json!([{"n": 1}]))
        .ok_json();
    assert_eq!(answer["result"], json!([{"n": 1}]));
}

#[test]
fn sigterm_lets_a_running_call_finish() {
    let data = data_dir();
    let mut server = Server::start(data.path());
    let root = Creds::root();
    add_runner(&server);
    let id = server.create_action(
        ORG,
        &root,
        &service_action(
            "slow",
            &zip_main(
                "import time\n\ndef main(data, logger):\n    time.sleep(2)\n    return [{'done': True}]\n",
            ),
            RUNNER,
        ),
    );
    let reply = thread::scope(|scope| {
        let (server_ref, root_ref, id_ref) = (&server, &root, &id);
        let call = scope.spawn(move || server_ref.test_run(ORG, root_ref, id_ref, &json!([])));
        server_ref.wait_for_runs_in_progress(1);
        server_ref.sigterm();
        call.join().expect("the caller thread")
    });
    let answer = reply.ok_json();
    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    assert_eq!(answer["result"], json!([{"done": true}]));
    let status = server.wait_exit();
    assert!(status.success(), "a clean exit: {status}{}", server.dump());
    assert!(
        server.stdout().contains("Shutting down"),
        "{}",
        server.dump()
    );

    let restarted = Server::start(data.path());
    let history = restarted.runs(ORG, &id);
    assert_eq!(
        history["total"],
        json!(1),
        "the run was recorded: {history}"
    );
    assert_eq!(history["runs"][0]["id"], answer["run_id"]);
    assert_eq!(history["runs"][0]["outcome"], json!("ok"));
    assert_eq!(restarted.action(ORG, &id)["status"], json!("ready"));
}

#[test]
fn the_per_organization_cap_leaves_other_organizations_running() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default()
            .config("max_concurrent_runs = 2\nrun_queue_capacity = 4\nper_org_max_runs = 1"),
    );
    let root = Creds::root();
    add_runner(&server);
    server
        .post("/api/organizations", &root, &json!({"name": "acme"}))
        .ok_json();
    server.create_runner("acme", &root, RUNNER);
    let sleeper = server.create_action(
        ORG,
        &root,
        &service_action(
            "sleeper",
            &zip_main(
                "import time\n\ndef main(data, logger):\n    time.sleep(3)\n    return data\n",
            ),
            RUNNER,
        ),
    );
    let echo = server.create_action(ORG, &root, &service_action("echo", &zip_main(ECHO), RUNNER));
    let acme_echo = server.create_action(
        "acme",
        &root,
        &service_action("echo", &zip_main(ECHO), RUNNER),
    );

    let slow = thread::scope(|scope| {
        let (server_ref, root_ref, sleeper_ref) = (&server, &root, &sleeper);
        let slow = scope.spawn(move || server_ref.test_run(ORG, root_ref, sleeper_ref, &json!([])));
        server.wait_for_runs_in_progress(1);
        let refused = server.test_run(ORG, &root, &echo, &json!([{"n": 1}]));
        refused.expect_error(
            429,
            "organization default already has 1 runs running or waiting; retry shortly",
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        let other = server
            .test_run("acme", &root, &acme_echo, &json!([{"org": "acme"}]))
            .ok_json();
        assert_eq!(other["result"], json!([{"org": "acme"}]), "{other}");
        slow.join().expect("the slow caller")
    });
    assert_eq!(slow.ok_json()["outcome"], json!("ok"));
    let answer = server
        .test_run(ORG, &root, &echo, &json!([{"n": 2}]))
        .ok_json();
    assert_eq!(answer["result"], json!([{"n": 2}]));
    assert_eq!(
        server.metrics().value("vivarium_runs_rejected_total", &[]),
        1.0
    );
}

/// Known product bug: a crash during a run leaves the action `running` for ever after a
/// restart (no run is in progress any more), with no trace of the interrupted run.
#[test]
fn a_crash_during_a_run_does_not_leave_the_action_running() {
    let data = data_dir();
    let mut first = Server::start(data.path());
    let root = Creds::root();
    add_runner(&first);
    let id = first.create_action(
        ORG,
        &root,
        &service_action(
            "interrupted",
            &zip_main(
                "import time\n\ndef main(data, logger):\n    time.sleep(5)\n    return data\n",
            ),
            RUNNER,
        ),
    );
    let caller = first.post_without_waiting(
        &format!("/api/{ORG}/actions/test/{id}"),
        &root,
        "{\"inputs\": []}",
    );
    first.wait_for_runs_in_progress(1);
    // The mark is committed while the run goes on, so it may land a moment after it starts.
    wait_for(Duration::from_secs(10), "the action marked running", || {
        (first.action(ORG, &id)["status"] == json!("running")).then_some(())
    });
    first.kill();
    caller.join().expect("the caller thread");

    let second = Server::start(data.path());
    let details = second.action(ORG, &id);
    assert_ne!(
        details["status"],
        json!("running"),
        "nothing runs after a restart: {details}"
    );
}

/// The configuration's per-run limits (file keys `run_*`).
const LIMITS: &str = "run_timeout = \"4s\"\nrun_fuel = 2000000000\nrun_log_bytes = 4096\nrun_result_bytes = 2048\nrun_input_bytes = 2048";

#[test]
fn run_limits_and_environment_from_the_configuration_apply() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default()
            .config(LIMITS)
            .env("HOST_ONLY_SECRET", "must-not-leak"),
    );
    let root = Creds::root();
    add_runner(&server);
    let action = |name: &str, source: &str| {
        server.create_action(ORG, &root, &service_action(name, &zip_main(source), RUNNER))
    };
    let run = |id: &str, inputs: Value| server.test_run(ORG, &root, id, &inputs).ok_json();

    let started = std::time::Instant::now();
    let slow = action(
        "slow",
        "import time\n\ndef main(data, logger):\n    time.sleep(60)\n    return data\n",
    );
    let answer = run(&slow, json!([]));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the time limit stopped the run ({:?})",
        started.elapsed()
    );
    assert_eq!(answer["outcome"], json!("timeout"), "{answer}");
    assert_eq!(
        answer["error"]["message"],
        json!("the action ran longer than its 4s time limit")
    );
    assert_eq!(
        server.runs(ORG, &slow)["runs"][0]["outcome"],
        json!("timeout")
    );
    assert_eq!(server.action(ORG, &slow)["status"], json!("errored"));

    let busy = action(
        "busy",
        "def main(data, logger):\n    while True:\n        pass\n",
    );
    let answer = run(&busy, json!([]));
    assert_eq!(answer["outcome"], json!("out_of_fuel"), "{answer}");
    assert!(
        answer["fuel_used"].as_i64().unwrap_or(0) <= 2_000_000_000,
        "{answer}"
    );

    let chatty = action(
        "chatty",
        "def main(data, logger):\n    for i in range(1000):\n        logger.info('line %d of many', i)\n    return data\n",
    );
    let answer = run(&chatty, json!([{"n": 1}]));
    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    assert_eq!(answer["logs_truncated"], json!(true), "{answer}");
    assert_eq!(
        server.runs(ORG, &chatty)["runs"][0]["logs_truncated"],
        json!(true)
    );

    let large = action(
        "large",
        "def main(data, logger):\n    return [{'x': 'y' * 5000}]\n",
    );
    let answer = run(&large, json!([]));
    assert_eq!(answer["outcome"], json!("result_too_large"), "{answer}");

    let env_source = "import os\n\ndef main(data, logger):\n    return [dict(os.environ)]\n";
    let env = server.create_action(
        ORG,
        &root,
        &service_action("env", &zip_main(env_source), RUNNER)
            .text("environment_variables", r#"{"API_KEY": "secret"}"#),
    );
    assert_eq!(
        run(&env, json!([]))["result"],
        json!([{"HOME": "/tmp", "TMPDIR": "/tmp", "API_KEY": "secret"}])
    );
    server
        .put(
            &format!("/api/{ORG}/actions/{env}"),
            &root,
            &json!({"environment_variables": {"OTHER": "value"}}),
        )
        .ok_json();
    assert_eq!(
        run(&env, json!([]))["result"],
        json!([{"HOME": "/tmp", "TMPDIR": "/tmp", "OTHER": "value"}])
    );

    server
        .test_run(ORG, &root, &env, &json!([{"x": "y".repeat(5000)}]))
        .expect_error(
            413,
            "the input is 4.9 KiB but the limit is 2 KiB; send fewer records per call or raise the input limit",
        );
    assert_eq!(server.runs(ORG, &env)["total"], json!(2), "no run recorded");
}

/// Known product bug: an input over `run_input_bytes` is refused (413) without any run being
/// recorded, yet the action's status becomes `errored` ("the last run failed") although its
/// last run succeeded.
#[test]
fn an_input_over_the_limit_leaves_the_action_status_alone() {
    let data = data_dir();
    let server = Server::start_with(data.path(), Options::default().config(LIMITS));
    let root = Creds::root();
    add_runner(&server);
    let id = server.create_action(ORG, &root, &service_action("echo", &zip_main(ECHO), RUNNER));
    server
        .test_run(ORG, &root, &id, &json!([{"n": 1}]))
        .ok_json();
    let before = server.action(ORG, &id);
    assert_eq!(before["status"], json!("ready"));
    server
        .test_run(ORG, &root, &id, &json!([{"x": "y".repeat(5000)}]))
        .expect_status(413);
    let after = server.action(ORG, &id);
    assert_eq!(server.runs(ORG, &id)["total"], json!(1), "no run recorded");
    assert_eq!(after["last_run_at"], before["last_run_at"]);
    assert_eq!(
        after["status"],
        json!("ready"),
        "the last (and only) run succeeded: {after}"
    );
}

/// Every key is also a `VIVARIUM_<KEY>` environment variable (the root login of every test
/// server comes from there too).
#[test]
fn environment_variables_configure_the_service() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default()
            .env("VIVARIUM_MAX_BODY_BYTES", "1024")
            .env("VIVARIUM_RUN_TIMEOUT", "3s"),
    );
    assert!(
        !server.stdout().contains("Root user created"),
        "the root login comes from the environment, no password is generated{}",
        server.dump()
    );
    let root = Creds::root();
    server.get(&format!("/api/{ORG}/actions"), &root).ok_json();
    server
        .get(
            &format!("/api/{ORG}/actions"),
            &Creds::new(ROOT_EMAIL, &format!("{ROOT_PASSWORD}-wrong")),
        )
        .expect_error(401, "Unauthorized Access");
    server
        .post(
            &format!("/api/{ORG}/service_accounts"),
            &root,
            &json!({"email": "padded@example.com", "first_name": "x".repeat(2048)}),
        )
        .expect_error(
            413,
            "the request body is larger than the 1 KiB request limit of this service",
        );
    add_runner(&server);
    let slow = server.create_action(
        ORG,
        &root,
        &service_action(
            "slow",
            &zip_main(
                "import time\n\ndef main(data, logger):\n    time.sleep(60)\n    return data\n",
            ),
            RUNNER,
        ),
    );
    let answer = server.test_run(ORG, &root, &slow, &json!([])).ok_json();
    assert_eq!(
        answer["error"]["message"],
        json!("the action ran longer than its 3s time limit"),
        "{answer}"
    );
}

/// The configured scratch cap holds for the service's runs, and a run's record keeps what the
/// call left in its `/tmp`.
#[test]
fn the_scratch_cap_is_configured_and_the_run_record_counts_what_was_left() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("run_scratch_files = 3\n"),
    );
    add_runner(&server);
    let main = r#"import errno

def main(data, logger):
    made = 0
    try:
        for n in range(10):
            open(f"/tmp/f{n}", "w").write("x")
            made += 1
    except OSError as error:
        assert error.errno == errno.ENOSPC
    return [{"made": made}]
"#;
    let id = server.create_action(
        ORG,
        &Creds::root(),
        &service_action("scratch", &zip_main(main), RUNNER),
    );
    let answer = server
        .test_run(ORG, &Creds::root(), &id, &json!([]))
        .ok_json();
    assert_eq!(answer["result"], json!([{"made": 3}]), "{answer}");
    let history = server.runs(ORG, &id);
    let run = &history["runs"][0];
    assert_eq!(run["scratch_files"], json!(3), "{history}");
    assert!(
        run["scratch_bytes"].as_i64().is_some_and(|bytes| bytes > 0),
        "{history}"
    );
}

#[test]
fn the_service_evicts_cache_entries_nothing_used_for_longer_than_the_idle_limit() {
    let cache = Path::new(crate::common::CACHE_DIR);
    let stale = cache.join("actions").join(format!(
        "{:064x}",
        u128::from(std::process::id()) << 64 | 0x5eed
    ));
    std::fs::create_dir_all(&stale).expect("creating a stale entry");
    std::fs::write(stale.join("main.py"), ECHO).expect("writing it");
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    std::fs::File::open(&stale)
        .and_then(|folder| folder.set_modified(long_ago))
        .expect("ageing it");
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("cache_max_idle = \"2days\""),
    );
    wait_for(
        Duration::from_secs(30),
        "the stale entry's eviction",
        || (!stale.exists()).then_some(()),
    );
    // What the service uses stays: it still runs an action.
    let root = Creds::root();
    add_runner(&server);
    let id = server.create_action(
        ORG,
        &root,
        &service_action("fresh", &zip_main(ECHO), RUNNER),
    );
    server
        .test_run(ORG, &root, &id, &json!([{"a": 1}]))
        .expect_status(200);
}
