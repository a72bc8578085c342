//! Scale-out: two replicas of `vivarium serve`, on different ports and with their own local
//! caches, sharing one PostgreSQL database and one S3-compatible bucket. An action uploaded
//! through one runs through the other (its ZIP and dependency wheels come from the bucket); a
//! repeat schedule fires once per period across both; killing one replica mid-run loses no
//! stored data, the other keeps serving and closes the interrupted run.
//!
//! They need `VIVARIUM_TEST_POSTGRES_URL` and `VIVARIUM_TEST_S3_URL` (with the `AWS_*`
//! variables of the S3 server); `.ci/backends` starts both servers and prints them:
//! `eval "$(.ci/backends)"`, then the test command. Built without them, these tests are
//! reported as ignored (the build script decides, see `build.rs`); run anyway (`--ignored`)
//! or with `VIVARIUM_TEST_REQUIRE_BACKENDS` set, they fail naming what is missing.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::{Options, Server};
use crate::common::wheels::{CLOSED_INDEX, pyproject, wheel, wheelhouse};
use crate::common::zips::{zip_entries, zip_main};
use crate::common::{CACHE_DIR, wait_for};
use serde_json::{Value, json};
use tempfile::TempDir;

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

/// Tells the schemas and prefixes of one test process apart.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// One test's share of the backends: a fresh PostgreSQL schema and a fresh bucket prefix.
struct SharedState {
    /// The server URL, without the schema option (for dropping the schema).
    server: String,
    schema: String,
    /// What the replicas are given.
    database_url: String,
    blob_store: String,
}

impl SharedState {
    /// A fresh share; fails the test, saying what is missing and how to start it, when the
    /// backends are not configured.
    #[track_caller]
    fn create() -> Self {
        let server = backend("VIVARIUM_TEST_POSTGRES_URL", "PostgreSQL");
        let bucket = backend("VIVARIUM_TEST_S3_URL", "an S3-compatible bucket");
        let tag = format!(
            "{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let schema = format!("vivarium_replicas_{tag}");
        psql(&server, &format!("CREATE SCHEMA {schema}"));
        let separator = if server.contains('?') { '&' } else { '?' };
        Self {
            database_url: format!("{server}{separator}options=-c%20search_path%3D{schema}"),
            blob_store: format!("{}/replicas-{tag}", bucket.trim_end_matches('/')),
            server,
            schema,
        }
    }
}

/// The value of `variable`, naming `what` the replicas share; fails the test when it is unset.
#[track_caller]
fn backend(variable: &str, what: &str) -> String {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{variable} is not set: these tests need {what}; start the backends with \
             `eval \"$(.ci/backends)\"` (as root, or with PostgreSQL installed), then run the \
             tests again"
        ),
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        psql(
            &self.server,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

/// Runs one SQL statement with `psql` (installed with the PostgreSQL server).
fn psql(server: &str, statement: &str) {
    let output = Command::new("psql")
        .arg(server)
        .args(["-v", "ON_ERROR_STOP=1", "-qc", statement])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {statement:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A replica's own data and cache folders. The cache borrows the interpreters, the snapshot and
/// their compiled forms from the tests' shared cache (to spare a build and a compile), and keeps its own
/// extracted actions, wheels and layers, so everything an action needs must come from the
/// shared store.
struct ReplicaDirs {
    data: TempDir,
    cache: TempDir,
}

impl ReplicaDirs {
    fn new() -> Self {
        let cache = tempfile::Builder::new()
            .prefix("vivarium-replica-cache-")
            .tempdir()
            .expect("cache folder");
        for shared in ["runtime", "compiled", "python-src", "snapshots"] {
            let target = Path::new(CACHE_DIR).join(shared);
            std::fs::create_dir_all(&target).expect("shared cache folder");
            std::os::unix::fs::symlink(&target, cache.path().join(shared)).expect("symlink");
        }
        Self {
            data: data_dir(),
            cache,
        }
    }

    /// What this replica extracted or installed, by cache folder (`actions`, `wheels`, ...).
    fn cached(&self, folder: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.cache.path().join(folder)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        names
    }
}

/// Starts a replica on `dirs` sharing `state` (and the secrets key every replica of one
/// database needs), with fast heartbeats and scheduling, and `extra` configuration lines.
fn replica(state: &SharedState, dirs: &ReplicaDirs, extra: &str) -> Server {
    let config = format!(
        "heartbeat_interval = \"300ms\"\nreplica_timeout = \"2s\"\nscheduler_interval = \"200ms\"\n{extra}\n"
    );
    Server::start_with(
        dirs.data.path(),
        Options::default()
            .config(&config)
            .env("VIVARIUM_DATABASE_URL", &state.database_url)
            .env("VIVARIUM_BLOB_STORE", &state.blob_store)
            .env(
                "VIVARIUM_SECRETS_KEY",
                &crate::common::client::base64(&[7; 32]),
            )
            .env(
                "VIVARIUM_CACHE_DIR",
                &dirs.cache.path().display().to_string(),
            ),
    )
}

/// Gives the runner service account GET on every action script (through `server`).
fn add_runner(server: &Server) {
    let root = Creds::root();
    server.create_runner(ORG, &root, RUNNER);
}

const GREET_MAIN: &str = "import greeting\n\ndef main(data, logger):\n    logger.info('greeting')\n    return [{'greeting': greeting.greet(r['who'])} for r in data]\n";

#[test]
#[cfg_attr(
    not(vivarium_backends),
    ignore = "needs PostgreSQL and S3: run `eval \"$(.ci/backends)\"` first"
)]
fn an_action_uploaded_through_one_replica_runs_through_the_other() {
    let state = SharedState::create();
    let house = wheelhouse(&[
        wheel("greeting", "1.0", &["helper>=2"], "py3-none-any"),
        wheel("helper", "2.1", &[], "py3-none-any"),
    ]);
    let (first_dirs, second_dirs) = (ReplicaDirs::new(), ReplicaDirs::new());
    let first = replica(
        &state,
        &first_dirs,
        &format!(
            "package_index = \"{CLOSED_INDEX}\"\nwheelhouse = {:?}",
            house.path().display().to_string()
        ),
    );
    // The second replica reaches neither the index nor the wheelhouse: the wheels it installs
    // can only come from the shared store.
    let second = replica(
        &state,
        &second_dirs,
        &format!("package_index = \"{CLOSED_INDEX}\""),
    );
    add_runner(&first);
    let root = Creds::root();
    let project = pyproject(&["greeting"]);
    let zip = zip_entries(
        &[
            ("main.py", GREET_MAIN.as_bytes()),
            ("pyproject.toml", project.as_bytes()),
        ],
        zip::CompressionMethod::Deflated,
    );
    let id = first.create_action(ORG, &root, &service_action("greeter", &zip, RUNNER));
    assert!(
        first.blob_files(ORG).is_empty(),
        "ZIPs go to the bucket, not the data folder"
    );
    assert!(second_dirs.cached("actions").is_empty());

    let listed: Vec<Value> = second.actions(ORG);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let run = second
        .test_run(ORG, &root, &id, &json!([{"who": "replica two"}]))
        .ok_json();
    assert_eq!(run["outcome"], json!("ok"), "{run}");
    assert_eq!(
        run["result"],
        json!([{"greeting": "hello replica two from greeting"}])
    );
    assert_eq!(
        second_dirs.cached("actions").len(),
        1,
        "extracted on a miss"
    );
    assert_eq!(
        second_dirs.cached("wheels").len(),
        2,
        "both wheels came from the shared store"
    );

    let downloaded = second
        .call(
            "GET",
            &format!("/api/{ORG}/actions/download/{id}"),
            Some(&root),
            None,
        )
        .body;
    assert_eq!(downloaded, zip, "the ZIP round-trips through the bucket");
    let history = first.runs(ORG, &id);
    assert_eq!(history["total"], json!(1), "{history}");
}

#[test]
#[cfg_attr(
    not(vivarium_backends),
    ignore = "needs PostgreSQL and S3: run `eval \"$(.ci/backends)\"` first"
)]
fn a_repeat_schedule_fires_once_per_period_across_replicas() {
    let state = SharedState::create();
    let (first_dirs, second_dirs) = (ReplicaDirs::new(), ReplicaDirs::new());
    let first = replica(&state, &first_dirs, "");
    let second = replica(&state, &second_dirs, "");
    add_runner(&first);
    let root = Creds::root();
    let id = first.create_action(
        ORG,
        &root,
        &service_action("ticker", &zip_main("def main():\n    return []\n"), RUNNER)
            .set("execution_details", "repeat")
            .text("cron_expr", "* * * * * *"),
    );
    let fired = wait_for(Duration::from_secs(90), "six scheduled runs", || {
        let total = first.runs(ORG, &id)["total"].as_u64().unwrap_or(0);
        (total >= 6).then_some(total)
    });
    second
        .call(
            "POST",
            &format!("/api/{ORG}/actions/{id}/pause"),
            Some(&root),
            None,
        )
        .ok_json();
    for server in [&first, &second] {
        server.wait_for_runs_in_progress(0);
    }

    let runs = first.runs(ORG, &id)["runs"]
        .as_array()
        .expect("runs")
        .clone();
    assert!(runs.len() as u64 >= fired);
    let mut starts: Vec<i64> = runs
        .iter()
        .map(|run| run["started_at"].as_i64().expect("started_at"))
        .collect();
    starts.sort_unstable();
    let periods = (starts[starts.len() - 1] - starts[0]) / 1_000_000 + 1;
    assert!(
        starts.len() as i64 <= periods + 1,
        "{} runs within {periods} one-second periods: a firing ran twice ({starts:?})",
        starts.len()
    );
    let by_replica: Vec<f64> = [&first, &second]
        .iter()
        .map(|server| server.metrics().runs("ok", "schedule"))
        .collect();
    assert_eq!(
        by_replica.iter().sum::<f64>() as usize,
        runs.len(),
        "every recorded run was fired by exactly one replica: {by_replica:?}"
    );
}

#[test]
#[cfg_attr(
    not(vivarium_backends),
    ignore = "needs PostgreSQL and S3: run `eval \"$(.ci/backends)\"` first"
)]
fn killing_a_replica_mid_run_loses_nothing_and_the_other_keeps_serving() {
    let state = SharedState::create();
    let (first_dirs, second_dirs) = (ReplicaDirs::new(), ReplicaDirs::new());
    let mut first = replica(&state, &first_dirs, "");
    let second = replica(&state, &second_dirs, "");
    add_runner(&first);
    let root = Creds::root();
    let sleeper_zip =
        zip_main("import time\n\ndef main(data, logger):\n    time.sleep(6)\n    return data\n");
    let sleeper = first.create_action(ORG, &root, &service_action("sleeper", &sleeper_zip, RUNNER));
    let echo = first.create_action(
        ORG,
        &root,
        &service_action(
            "echo",
            &zip_main("def main(data, logger):\n    return data\n"),
            RUNNER,
        ),
    );
    let caller = first.post_without_waiting(
        &format!("/api/{ORG}/actions/test/{sleeper}"),
        &root,
        "{\"inputs\": [{\"n\": 1}]}",
    );
    first.wait_for_runs_in_progress(1);
    // The mark is committed while the run goes on, so it may land a moment after it starts.
    wait_for(Duration::from_secs(10), "the action marked running", || {
        (second.action(ORG, &sleeper)["status"] == json!("running")).then_some(())
    });
    first.kill();
    caller.join().expect("the caller thread");

    let listed: Vec<String> = second
        .actions(ORG)
        .iter()
        .filter_map(|action| action["name"].as_str().map(String::from))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let run = second
        .test_run(ORG, &root, &echo, &json!([{"still": "serving"}]))
        .ok_json();
    assert_eq!(run["result"], json!([{"still": "serving"}]), "{run}");
    let third = second.create_action(
        ORG,
        &root,
        &service_action(
            "after-the-crash",
            &zip_main("def main(data, logger):\n    return []\n"),
            RUNNER,
        ),
    );
    assert!(!third.is_empty());
    let downloaded = second
        .call(
            "GET",
            &format!("/api/{ORG}/actions/download/{sleeper}"),
            Some(&root),
            None,
        )
        .body;
    assert_eq!(downloaded, sleeper_zip);

    let status = wait_for(
        Duration::from_secs(30),
        "the surviving replica to close the interrupted run",
        || {
            let status = second.action(ORG, &sleeper)["status"].clone();
            (status != json!("running")).then_some(status)
        },
    );
    assert_eq!(status, json!("errored"));
}

#[test]
#[cfg_attr(
    not(vivarium_backends),
    ignore = "needs PostgreSQL and S3: run `eval \"$(.ci/backends)\"` first"
)]
fn counters_kept_in_state_never_lose_a_count_across_replicas() {
    let state = SharedState::create();
    let (first_dirs, second_dirs) = (ReplicaDirs::new(), ReplicaDirs::new());
    let first = replica(&state, &first_dirs, "");
    let second = replica(&state, &second_dirs, "");
    add_runner(&first);
    let root = Creds::root();
    let counter = "from vivarium import state\n\ndef main(data, logger):\n    return [{'count': state.incr('count')}]\n";
    let id = first.create_action(
        ORG,
        &root,
        &service_action("counter", &zip_main(counter), RUNNER),
    );
    const RUNS_PER_REPLICA: usize = 8;
    std::thread::scope(|scope| {
        for server in [&first, &second] {
            for _ in 0..RUNS_PER_REPLICA {
                let id = &id;
                let root = &root;
                scope.spawn(move || {
                    let answer = server.test_run(ORG, root, id, &json!([])).ok_json();
                    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
                });
            }
        }
    });
    let listed = second
        .get(&format!("/api/{ORG}/actions/{id}/state"), &root)
        .ok_json();
    assert_eq!(listed["data"][0]["key"], json!("count"), "{listed}");
    assert_eq!(
        listed["data"][0]["value"],
        json!(2 * RUNS_PER_REPLICA),
        "every increment counted: {listed}"
    );
}
