//! Overload and fairness: ten times the configured capacity from one organization for a
//! while, and another organization calling one at a time meanwhile. The excess is refused
//! with 429 and `Retry-After`, every admitted run is in the history, and the quiet
//! organization is never refused. The latencies and the server's peak resident memory are
//! printed (run with `--nocapture`), not asserted: tests hold no timing assertions.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::{Options, Server};
use crate::common::zips::zip_main;
use serde_json::{Value, json};

const FLOOD: &str = "default";
const QUIET: &str = "quiet";
const RUNNER: &str = "runner@example.com";
const WORK: &str =
    "import time\n\ndef main(data, logger):\n    time.sleep(0.05)\n    return data\n";
/// Two running and four waiting: a capacity of six runs; one organization holds four.
const CAPACITY: &str = "max_concurrent_runs = 2\nrun_queue_capacity = 4\nper_org_max_runs = 4";
const CAPACITY_RUNS: usize = 6;
const FLOOD_FOR: Duration = Duration::from_secs(4);
const QUIET_CALLS: usize = 20;

/// The action every run calls, in `org`.
fn work_action(server: &Server, org: &str) -> String {
    let root = Creds::root();
    server.create_runner(org, &root, RUNNER);
    server.create_action(org, &root, &service_action("work", &zip_main(WORK), RUNNER))
}

/// `QUIET_CALLS` calls one after another; their latencies, each answered 200.
fn quiet_calls(server: &Server, id: &str) -> Vec<Duration> {
    let root = Creds::root();
    (0..QUIET_CALLS)
        .map(|n| {
            let started = Instant::now();
            let reply = server.test_run(QUIET, &root, id, &json!([{ "n": n }]));
            assert_eq!(
                reply.status, 200,
                "the quiet organization was refused: {reply}"
            );
            started.elapsed()
        })
        .collect()
}

/// One flooding client: calls back to back until `FLOOD_FOR` has passed; answers how many
/// were admitted and refused, and checks each refusal.
fn flood_client(server: &Server, id: &str) -> (usize, usize) {
    let (root, started) = (Creds::root(), Instant::now());
    let (mut admitted, mut refused) = (0, 0);
    while started.elapsed() < FLOOD_FOR {
        let reply = server.test_run(FLOOD, &root, id, &json!([{ "flood": true }]));
        match reply.status {
            200 => admitted += 1,
            429 => {
                let retry: Option<u64> = reply.header("retry-after").and_then(|v| v.parse().ok());
                assert!(
                    retry.is_some_and(|s| s >= 1),
                    "a 429 without Retry-After: {reply}"
                );
                refused += 1;
            }
            _ => panic!("neither admitted nor refused: {reply}"),
        }
    }
    (admitted, refused)
}

fn percentile(latencies: &[Duration], pct: usize) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

fn peak_rss_kib(server: &Server) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()?)).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn history_total(server: &Server, org: &str, id: &str) -> u64 {
    let runs: Value = server
        .get(
            &format!("/api/{org}/actions/{id}/runs?per_page=1"),
            &Creds::root(),
        )
        .ok_json();
    runs["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total: {runs}"))
}

#[test]
fn ten_times_the_capacity_is_refused_with_retry_after_and_loses_no_admitted_run() {
    let data = data_dir();
    let server = Server::start_with(data.path(), Options::default().config(CAPACITY));
    server
        .post(
            "/api/organizations",
            &Creds::root(),
            &json!({ "name": QUIET }),
        )
        .expect_status(200);
    let (flood_id, quiet_id) = (work_action(&server, FLOOD), work_action(&server, QUIET));
    let idle = quiet_calls(&server, &quiet_id);

    let clients = 10 * CAPACITY_RUNS;
    let (flooded, during) = thread::scope(|scope| {
        let floods: Vec<_> = (0..clients)
            .map(|_| scope.spawn(|| flood_client(&server, &flood_id)))
            .collect();
        thread::sleep(Duration::from_millis(300));
        let during = quiet_calls(&server, &quiet_id);
        let flooded = floods
            .into_iter()
            .map(|client| client.join().expect("a flooding client"))
            .fold((0, 0), |(a, r), (ca, cr)| (a + ca, r + cr));
        (flooded, during)
    });
    let (admitted, refused) = flooded;
    assert!(
        refused > 0,
        "ten times the capacity was all admitted ({admitted})"
    );
    assert_eq!(
        history_total(&server, FLOOD, &flood_id),
        admitted as u64,
        "every admitted run is in the history"
    );
    assert_eq!(
        history_total(&server, QUIET, &quiet_id),
        2 * QUIET_CALLS as u64
    );
    println!(
        "overload: {clients} clients for {FLOOD_FOR:?} against a capacity of {CAPACITY_RUNS}: \
         {admitted} admitted, {refused} refused with 429; the quiet organization's calls \
         idle p50 {:?} p99 {:?}, during the flood p50 {:?} p99 {:?}; server peak RSS {:?} KiB",
        percentile(&idle, 50),
        percentile(&idle, 99),
        percentile(&during, 50),
        percentile(&during, 99),
        peak_rss_kib(&server),
    );
}
