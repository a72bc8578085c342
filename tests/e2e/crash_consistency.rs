//! Crash consistency: `vivarium serve` is killed with SIGKILL again and again while several
//! client threads keep uploads, replacements, deletes and runs in flight, and is restarted on
//! the same data after each kill. After every restart:
//! - an action whose upload or replacement was answered is listed, and downloads byte for byte
//!   as its last answered ZIP, or as the ZIP of a replacement still in flight at the kill;
//! - an action whose delete was answered is gone;
//! - every answered run is in its action's run history (read page by page) with the outcome it
//!   was answered with, unless the action was deleted since;
//! - nothing is half-stored: every listed action downloads, and the blob folder holds no file
//!   but the ZIPs the listed actions reference (by `zip_sha256`): what interrupted writes
//!   left is swept at start;
//! - no action is `running`.
//!
//! A request without an answer (in flight at the kill, or sent after it) may or may not have
//! taken effect; whichever it was, what the restart shows becomes what later rounds expect.
//! Each client thread owns its actions (no other thread changes or runs them), so "the last
//! answered version" is well defined; every ZIP carries a `data.txt` naming its thread, round
//! and sequence number, so no two versions have the same bytes and failure messages can name
//! the versions they saw. The kill comes 200 to 800 ms into each round, at moments drawn from
//! a fixed seed.
//!
//! The rounds run on SQLite (the default data folder), and on PostgreSQL (a fresh schema of
//! `VIVARIUM_TEST_POSTGRES_URL`; reported ignored where the backends are not configured, as the
//! replica tests are). Both keep the ZIPs in the data folder. Each round prints what it did
//! (run with `--nocapture` to see it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Cursor, Read};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::api::{Api, blob_files};
use crate::common::client::{Creds, HttpClient, Reply, base64};
use crate::common::files::data_dir;
use crate::common::forms::{Form, service_action};
use crate::common::postgres::Schema;
use crate::common::process::{Options, Server};
use crate::common::zips::{pseudo_random, zip_entries};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";
/// Kills (each followed by a restart and the checks) per test.
const ROUNDS: u64 = 8;
/// Client threads, each with its own actions.
const WORKERS: usize = 4;
/// Most actions one client thread keeps at a time.
const MAX_OWNED: usize = 5;
/// Seeds the kill moments and each thread's choice of operations.
const SEED: u64 = 0x00C0_FFEE_5EED;
/// The kill comes between these many milliseconds into a round (inclusive).
const KILL_AFTER_MS: (u64, u64) = (200, 800);
/// Incompressible bytes every ZIP carries, so that storing one takes a moment.
const PADDING_BYTES: usize = 96 * 1024;
/// Runs per page when reading a history (small, so that the paging is exercised).
const RUNS_PER_PAGE: usize = 20;

/// Fails when a record asks it to, so that runs end with more than one outcome.
const MAIN: &str = "def main(data, logger):\n    for record in data:\n        if record.get('fail'):\n            raise ValueError('asked to fail')\n    logger.info('ran')\n    return data\n";

#[test]
fn answered_writes_survive_repeated_crashes_on_sqlite() {
    crash_rounds("SQLite", Options::default(), Recovery::AtStart);
}

#[test]
#[cfg_attr(
    not(vivarium_backends),
    ignore = "needs PostgreSQL: run `eval \"$(.ci/backends)\"` first"
)]
fn answered_writes_survive_repeated_crashes_on_postgresql() {
    let schema = Schema::create("vivarium_crash");
    let replica_timeout = Duration::from_secs(2);
    // One replica only, restarted before it serves: nothing can be between storing a ZIP
    // and recording its action when the start's sweep runs, so it may take every stray at
    // once, as it does on SQLite.
    let options = Options::default()
        .config(
            "heartbeat_interval = \"300ms\"\nreplica_timeout = \"2s\"\nblob_sweep_min_age = \"0s\"",
        )
        .env("VIVARIUM_DATABASE_URL", &schema.database_url)
        .env("VIVARIUM_SECRETS_KEY", &base64(&[7; 32]));
    crash_rounds(
        "PostgreSQL",
        options,
        Recovery::AfterReplicaTimeout(replica_timeout),
    );
}

/// How the backend closes the runs a crash interrupted.
#[derive(Debug, Clone, Copy)]
enum Recovery {
    /// At start: with SQLite no other process can be running them.
    AtStart,
    /// Once the killed process has been silent for `replica_timeout`: on a shared database the
    /// restarted server is a new replica, whose heartbeat closes the silent one's runs.
    AfterReplicaTimeout(Duration),
}

/// Runs [`ROUNDS`] rounds of traffic, each ended by a SIGKILL and followed by a restart on the
/// same data and the checks; fails naming the backend, the round and every problem seen.
fn crash_rounds(backend: &str, options: Options, recovery: Recovery) {
    let data = data_dir();
    let mut server = Server::start_with(data.path(), options.clone());
    server.create_runner(ORG, &Creds::root(), RUNNER);
    let mut model = Model::new();
    let mut totals = Tally::default();
    let mut kill_moments = Rng::new(SEED);
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(
            KILL_AFTER_MS.0 + kill_moments.below(KILL_AFTER_MS.1 - KILL_AFTER_MS.0 + 1),
        );
        let base = format!("http://{}", server.addr);
        let owned = std::mem::take(&mut model.owned);
        let reports: Vec<WorkerReport> = thread::scope(|scope| {
            let handles: Vec<_> = owned
                .into_iter()
                .enumerate()
                .map(|(worker, actions)| {
                    let base = &base;
                    scope.spawn(move || work(base, worker, round, actions))
                })
                .collect();
            thread::sleep(kill_after);
            server.kill();
            handles
                .into_iter()
                .enumerate()
                .map(|(worker, handle)| {
                    handle.join().unwrap_or_else(|_| {
                        panic!("client thread {worker} of round {round} panicked (see above)")
                    })
                })
                .collect()
        });

        let mut tally = Tally::default();
        let mut problems = Vec::new();
        for report in reports {
            tally.add(&report.tally);
            problems.extend(report.problems);
            model.deleted.extend(report.deleted);
            model.pending_creates.extend(report.pending_create);
            model.owned.push(report.owned);
        }
        let killed = std::mem::replace(
            &mut server,
            Server::start_with(data.path(), options.clone()),
        );
        let seen = verify(&server, &mut model, round, recovery, &mut problems);
        eprintln!(
            "crash_consistency [{backend}] round {round}: killed {kill_after:?} in; {tally}; \
             after the restart: {seen}"
        );
        assert!(
            problems.is_empty(),
            "{backend}, round {round} (killed {kill_after:?} in; {tally}): {} problem(s) after \
             the restart:\n- {}\n--- the killed server's output:{}\n--- the restarted server's \
             output:{}",
            problems.len(),
            problems.join("\n- "),
            killed.dump(),
            server.dump()
        );
        totals.add(&tally);
    }
    eprintln!("crash_consistency [{backend}] all {ROUNDS} rounds: {totals}");
    assert!(
        totals.uploads > 0 && totals.replacements > 0 && totals.deletes > 0 && totals.runs > 0,
        "{backend}: every kind of operation should have been answered at least once over the \
         {ROUNDS} rounds (or the checks proved little), but the rounds did: {totals}"
    );
}

/// An action the test knows of, owned by one client thread: only that thread changes or
/// runs it.
#[derive(Debug, Clone)]
struct Tracked {
    id: String,
    name: String,
    /// The ZIP of its last answered upload or replacement (or the one a restart showed).
    zip: Vec<u8>,
    /// The ZIP of a replacement in flight at the kill: acceptable too after the restart.
    replacing: Option<Vec<u8>>,
    /// A delete was in flight at the kill: the action may be gone after the restart.
    deleting: bool,
    /// Its runs answered 200 (or seen recorded after a restart): run id to outcome.
    runs: BTreeMap<String, String>,
    /// Run requests without an answer since the last restart (each may have been recorded).
    unanswered_runs: usize,
}

impl Tracked {
    fn new(id: String, name: String, zip: Vec<u8>) -> Self {
        Self {
            id,
            name,
            zip,
            replacing: None,
            deleting: false,
            runs: BTreeMap::new(),
            unanswered_runs: 0,
        }
    }
}

/// An upload (creation) in flight at the kill: the action may exist after the restart.
#[derive(Debug)]
struct PendingCreate {
    worker: usize,
    name: String,
    zip: Vec<u8>,
}

/// An action that is gone: its delete was answered, or a restart showed it gone after a delete
/// without an answer. It must stay gone.
#[derive(Debug)]
struct Deleted {
    id: String,
    name: String,
    round: u64,
    answered: bool,
}

impl Deleted {
    /// `action`, deleted in `round` (with an answer, or found gone after the restart).
    fn of(action: Tracked, round: u64, answered: bool) -> Self {
        Self {
            id: action.id,
            name: action.name,
            round,
            answered,
        }
    }
}

/// What the test expects of the stored data.
struct Model {
    /// Each client thread's actions.
    owned: Vec<Vec<Tracked>>,
    deleted: Vec<Deleted>,
    pending_creates: Vec<PendingCreate>,
}

impl Model {
    fn new() -> Self {
        Self {
            owned: vec![Vec::new(); WORKERS],
            deleted: Vec::new(),
            pending_creates: Vec::new(),
        }
    }
}

/// How many operations of each kind a round (or the whole test) did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    uploads: u32,
    replacements: u32,
    deletes: u32,
    runs: u32,
    failed_runs: u32,
    busy_runs: u32,
    unanswered_uploads: u32,
    unanswered_replacements: u32,
    unanswered_deletes: u32,
    unanswered_runs: u32,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.uploads += other.uploads;
        self.replacements += other.replacements;
        self.deletes += other.deletes;
        self.runs += other.runs;
        self.failed_runs += other.failed_runs;
        self.busy_runs += other.busy_runs;
        self.unanswered_uploads += other.unanswered_uploads;
        self.unanswered_replacements += other.unanswered_replacements;
        self.unanswered_deletes += other.unanswered_deletes;
        self.unanswered_runs += other.unanswered_runs;
    }

    fn answered(&self) -> u32 {
        self.uploads + self.replacements + self.deletes + self.runs + self.busy_runs
    }

    fn unanswered(&self) -> u32 {
        self.unanswered_uploads
            + self.unanswered_replacements
            + self.unanswered_deletes
            + self.unanswered_runs
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} operations answered ({} uploads, {} replacements, {} deletes, {} runs of which \
             {} script_error, {} refused as busy), {} without an answer ({} uploads, {} \
             replacements, {} deletes, {} runs)",
            self.answered(),
            self.uploads,
            self.replacements,
            self.deletes,
            self.runs,
            self.failed_runs,
            self.busy_runs,
            self.unanswered(),
            self.unanswered_uploads,
            self.unanswered_replacements,
            self.unanswered_deletes,
            self.unanswered_runs
        )
    }
}

/// What one client thread did in a round.
#[derive(Debug, Default)]
struct WorkerReport {
    owned: Vec<Tracked>,
    deleted: Vec<Deleted>,
    pending_create: Option<PendingCreate>,
    tally: Tally,
    /// Answers that were neither a success nor an expected refusal.
    problems: Vec<String>,
}

/// What a client thread does next.
#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Replace(usize),
    Delete(usize),
    Run(usize),
}

/// The next operation, on one of the thread's `owned` actions when it is not a creation.
fn pick(rng: &mut Rng, owned: usize) -> Op {
    if owned == 0 {
        return Op::Create;
    }
    let index = rng.below(owned as u64) as usize;
    match rng.below(100) {
        0..=19 if owned < MAX_OWNED => Op::Create,
        0..=44 => Op::Replace(index),
        45..=59 => Op::Delete(index),
        _ => Op::Run(index),
    }
}

/// One client thread's round: operations on its own actions, one after the other, until a
/// request gets no answer (the server was killed).
/// Sends `form` to the upload route; `Err` when no answer came.
fn upload(client: &HttpClient, headers: &[(&str, &str)], form: &Form) -> Result<Reply, String> {
    let (content_type, body) = form.encode();
    client.send(
        "POST",
        &format!("/api/{ORG}/actions/upload"),
        headers,
        Some((&content_type, body)),
    )
}

fn work(base: &str, worker: usize, round: u64, mut owned: Vec<Tracked>) -> WorkerReport {
    let client = HttpClient::new(base.to_string());
    let auth = Creds::root().header();
    let headers = [("authorization", auth.as_str())];
    let mut rng = Rng::new(SEED ^ (round << 16) ^ ((worker as u64) << 8));
    let mut report = WorkerReport::default();
    for seq in 0u64.. {
        match pick(&mut rng, owned.len()) {
            Op::Create => {
                let name = format!("w{worker}-r{round}-s{seq}");
                let zip = action_zip(worker, round, seq);
                let sent = upload(&client, &headers, &service_action(&name, &zip, RUNNER));
                let Ok(reply) = sent else {
                    report.tally.unanswered_uploads += 1;
                    report.pending_create = Some(PendingCreate { worker, name, zip });
                    break;
                };
                match answered_uuid(&reply) {
                    Ok(id) => {
                        report.tally.uploads += 1;
                        owned.push(Tracked::new(id, name, zip));
                    }
                    Err(problem) => report
                        .problems
                        .push(format!("round {round}: creating {name}: {problem}")),
                }
            }
            Op::Replace(index) => {
                let target = &mut owned[index];
                let zip = action_zip(worker, round, seq);
                let form = Form::new().text("id", &target.id).file(
                    "file",
                    &format!("{}.zip", target.name),
                    &zip,
                );
                let sent = upload(&client, &headers, &form);
                let Ok(reply) = sent else {
                    report.tally.unanswered_replacements += 1;
                    target.replacing = Some(zip);
                    break;
                };
                match answered_uuid(&reply) {
                    Ok(id) if id == target.id => {
                        report.tally.replacements += 1;
                        target.zip = zip;
                    }
                    Ok(other) => report.problems.push(format!(
                        "round {round}: replacing the ZIP of {} ({}) answered another id, {other}",
                        target.name, target.id
                    )),
                    Err(problem) => report.problems.push(format!(
                        "round {round}: replacing the ZIP of {} ({}) with {}: {problem}",
                        target.name,
                        target.id,
                        label(&zip)
                    )),
                }
            }
            Op::Delete(index) => {
                let path = format!("/api/{ORG}/actions/{}", owned[index].id);
                let Ok(reply) = client.send("DELETE", &path, &headers, None) else {
                    report.tally.unanswered_deletes += 1;
                    owned[index].deleting = true;
                    break;
                };
                if reply.status == 200 {
                    report.tally.deletes += 1;
                    report
                        .deleted
                        .push(Deleted::of(owned.remove(index), round, true));
                } else {
                    report.problems.push(format!(
                        "round {round}: deleting {} answered {reply}",
                        owned[index].name
                    ));
                }
            }
            Op::Run(index) => {
                let target = &mut owned[index];
                let fail = rng.below(4) == 0;
                let body = json!({
                    "inputs": [{"worker": worker, "round": round, "seq": seq, "fail": fail}]
                });
                let sent = client.send(
                    "POST",
                    &format!("/api/{ORG}/actions/test/{}", target.id),
                    &headers,
                    Some(("application/json", body.to_string().into_bytes())),
                );
                let Ok(reply) = sent else {
                    report.tally.unanswered_runs += 1;
                    target.unanswered_runs += 1;
                    break;
                };
                match reply.status {
                    200 => match answered_run(&reply) {
                        Ok((run_id, outcome)) => {
                            report.tally.runs += 1;
                            if outcome != "ok" {
                                report.tally.failed_runs += 1;
                            }
                            target.runs.insert(run_id, outcome);
                        }
                        Err(problem) => report
                            .problems
                            .push(format!("round {round}: running {}: {problem}", target.name)),
                    },
                    // Refused before it ran: nothing is recorded.
                    429 => report.tally.busy_runs += 1,
                    _ => report.problems.push(format!(
                        "round {round}: running {} answered {reply}",
                        target.name
                    )),
                }
            }
        }
    }
    report.owned = owned;
    report
}

/// The `uuid` of a successful upload's answer.
fn answered_uuid(reply: &Reply) -> Result<String, String> {
    let body = ok_json(reply)?;
    body["uuid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("answered without a uuid: {reply}"))
}

/// The run id and outcome of a run's answer.
fn answered_run(reply: &Reply) -> Result<(String, String), String> {
    let body = ok_json(reply)?;
    match (body["run_id"].as_str(), body["outcome"].as_str()) {
        (Some(id), Some(outcome)) => Ok((id.to_string(), outcome.to_string())),
        _ => Err(format!("answered without a run_id and an outcome: {reply}")),
    }
}

/// The JSON body of a 200 answer.
fn ok_json(reply: &Reply) -> Result<Value, String> {
    if reply.status != 200 {
        return Err(format!("answered {reply}"));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("answered non-JSON ({e}): {reply}"))
}

/// What one verification saw.
#[derive(Debug, Default)]
struct Seen {
    actions: usize,
    runs: usize,
    blobs: usize,
    created_without_answer: usize,
    deleted_without_answer: usize,
    replaced_without_answer: usize,
    /// How long the checks waited for the killed replica's runs to be closed (PostgreSQL).
    waited: Option<Duration>,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} actions listed and downloaded, {} recorded runs read, {} blobs; of the requests \
             without an answer, {} uploads, {} replacements and {} deletes had taken effect",
            self.actions,
            self.runs,
            self.blobs,
            self.created_without_answer,
            self.replaced_without_answer,
            self.deleted_without_answer
        )?;
        match self.waited {
            Some(waited) => write!(f, "; waited {waited:?} for no action to be running"),
            None => Ok(()),
        }
    }
}

/// Checks the restarted `server` against `model`, adds what is wrong to `problems`, and
/// updates the model to what the restart showed (for the requests that had no answer).
fn verify(
    server: &Server,
    model: &mut Model,
    round: u64,
    recovery: Recovery,
    problems: &mut Vec<String>,
) -> Seen {
    let mut seen = Seen::default();
    // The ZIPs of the requests that had no answer, to tell where a stray blob came from.
    let mut unanswered: Vec<(Vec<u8>, String)> = model
        .pending_creates
        .iter()
        .map(|pending| {
            let what = format!("the upload creating {}, which had no answer", pending.name);
            (pending.zip.clone(), what)
        })
        .collect();
    for action in model.owned.iter().flatten() {
        if let Some(zip) = &action.replacing {
            let what = format!(
                "the replacement of the ZIP of {} ({}), which had no answer",
                action.name, action.id
            );
            unanswered.push((zip.clone(), what));
            let what = format!(
                "the upload of {} ({}) that a replacement without an answer was replacing",
                action.name, action.id
            );
            unanswered.push((action.zip.clone(), what));
        }
        if action.deleting {
            let what = format!(
                "the upload of {} ({}), whose delete had no answer",
                action.name, action.id
            );
            unanswered.push((action.zip.clone(), what));
        }
    }
    if let Recovery::AfterReplicaTimeout(timeout) = recovery {
        // The killed replica's runs are closed once it has been silent for `timeout`; wait
        // for that (generously) before reading anything. An action still running past the
        // wait is reported below.
        let started = Instant::now();
        let deadline = started + timeout * 5 + Duration::from_secs(10);
        while Instant::now() < deadline
            && listed_actions(server)
                .is_ok_and(|listed| listed.values().any(|a| a["status"] == json!("running")))
        {
            thread::sleep(Duration::from_millis(200));
        }
        seen.waited = Some(started.elapsed());
    }
    let listed = match listed_actions(server) {
        Ok(listed) => listed,
        Err(problem) => {
            problems.push(format!("round {round}: listing the actions: {problem}"));
            return seen;
        }
    };
    seen.actions = listed.len();
    let mut referenced = BTreeSet::new();
    let mut known = BTreeSet::new();

    for worker in 0..WORKERS {
        for mut action in std::mem::take(&mut model.owned[worker]) {
            let Some(summary) = listed.get(&action.id) else {
                if action.deleting {
                    seen.deleted_without_answer += 1;
                    model.deleted.push(Deleted::of(action, round, false));
                } else {
                    problems.push(lost(server, &action, round));
                }
                continue;
            };
            known.insert(action.id.clone());
            action.deleting = false;
            let had_replacement = action.replacing.is_some();
            let zip_before = action.zip.clone();
            seen.runs += check_action(
                server,
                &mut action,
                summary,
                round,
                problems,
                &mut referenced,
            );
            if had_replacement && action.zip != zip_before {
                seen.replaced_without_answer += 1;
            }
            model.owned[worker].push(action);
        }
    }

    for pending in std::mem::take(&mut model.pending_creates) {
        let found = listed
            .iter()
            .find(|(id, summary)| summary["name"] == json!(pending.name) && !known.contains(*id));
        let Some((id, summary)) = found else {
            continue;
        };
        seen.created_without_answer += 1;
        known.insert(id.clone());
        let mut action = Tracked::new(id.clone(), pending.name, pending.zip);
        seen.runs += check_action(
            server,
            &mut action,
            summary,
            round,
            problems,
            &mut referenced,
        );
        model.owned[pending.worker].push(action);
    }

    for (id, summary) in &listed {
        if known.contains(id) {
            continue;
        }
        let what = match model.deleted.iter().find(|gone| &gone.id == id) {
            Some(gone) if gone.answered => {
                format!("its delete was answered 200 in round {}", gone.round)
            }
            Some(gone) => format!(
                "it was gone after the restart of round {} (its delete had no answer)",
                gone.round
            ),
            None => "no client was answered about it, nor had a request in flight for it".into(),
        };
        problems.push(format!(
            "round {round}: action {id} is listed but {what}: {summary}"
        ));
    }

    for gone in &model.deleted {
        let reply = server.get(&format!("/api/{ORG}/actions/{}", gone.id), &Creds::root());
        if reply.status != 404 {
            let how = if gone.answered {
                "was answered 200"
            } else {
                "had no answer but the action was gone after that restart"
            };
            problems.push(format!(
                "round {round}: action {} ({}), whose delete in round {} {how}, is back: {reply}",
                gone.name, gone.id, gone.round
            ));
        }
    }

    let blobs = blob_files(server.data_dir(), ORG);
    seen.blobs = blobs.len();
    for blob in &blobs {
        let name = blob
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name
            .strip_suffix(".zip")
            .is_some_and(|digest| referenced.contains(digest))
        {
            continue;
        }
        let contents = std::fs::read(blob).unwrap_or_default();
        let origin = unanswered
            .iter()
            .find(|(zip, _)| *zip == contents)
            .map(|(_, what)| format!(", sent by {what}"))
            .unwrap_or_default();
        problems.push(format!(
            "round {round}: the blob folder holds {} ({} bytes, {}{origin}), which no listed \
             action references (their zip_sha256: {referenced:?})",
            blob.display(),
            contents.len(),
            label(&contents)
        ));
    }
    seen
}

/// The problem of an action the model expects that the restarted server does not list.
fn lost(server: &Server, action: &Tracked, round: u64) -> String {
    let details = server.get(&format!("/api/{ORG}/actions/{}", action.id), &Creds::root());
    let replacing = action
        .replacing
        .as_deref()
        .map(|zip| format!(" (a replacement with {} was in flight)", label(zip)))
        .unwrap_or_default();
    format!(
        "round {round}: action {} ({}), last answered with {}{replacing} and never deleted, is \
         not listed after the restart; reading it answers {details}",
        action.name,
        action.id,
        label(&action.zip)
    )
}

/// Checks one listed action: its status, its download against the versions the model
/// accepts, its run history against the answered runs. Updates the model to what it saw and
/// answers how many recorded runs it read.
fn check_action(
    server: &Server,
    action: &mut Tracked,
    summary: &Value,
    round: u64,
    problems: &mut Vec<String>,
    referenced: &mut BTreeSet<String>,
) -> usize {
    let root = Creds::root();
    let who = format!("round {round}: action {} ({})", action.name, action.id);
    if summary["status"] == json!("running") {
        problems.push(format!(
            "{who} is listed as running after the restart, with nothing running: {summary}"
        ));
    }
    let details = server.get(&format!("/api/{ORG}/actions/{}", action.id), &root);
    match ok_json(&details) {
        Ok(details) => match details["zip_sha256"].as_str() {
            Some(digest) => {
                referenced.insert(digest.to_string());
            }
            None => problems.push(format!("{who}: its details have no zip_sha256: {details}")),
        },
        Err(problem) => problems.push(format!("{who} is listed, but reading it {problem}")),
    }

    let download = server.get(&format!("/api/{ORG}/actions/download/{}", action.id), &root);
    if download.status != 200 {
        problems.push(format!(
            "{who} is listed but does not download (half-stored?): {download}"
        ));
    } else if download.body == action.zip {
        action.replacing = None;
    } else if action.replacing.as_deref() == Some(download.body.as_slice()) {
        action.zip = download.body;
        action.replacing = None;
    } else {
        let replacing = action
            .replacing
            .as_deref()
            .map(|zip| {
                format!(
                    ", nor the replacement in flight at the kill, {}",
                    label(zip)
                )
            })
            .unwrap_or_default();
        problems.push(format!(
            "{who} downloads {} bytes, {}, which is not its last answered version, {}{replacing}",
            download.body.len(),
            label(&download.body),
            label(&action.zip)
        ));
    }

    let history = match run_history(server, &action.id) {
        Ok(history) => history,
        Err(problem) => {
            problems.push(format!("{who}: {problem}"));
            return 0;
        }
    };
    for (run_id, outcome) in &action.runs {
        match history.get(run_id) {
            None => problems.push(format!(
                "{who}: the run {run_id}, answered (or seen recorded) with outcome {outcome}, is \
                 not in its history of {} runs",
                history.len()
            )),
            Some(recorded) if recorded != outcome => problems.push(format!(
                "{who}: the run {run_id} was answered with outcome {outcome} but is recorded \
                 with {recorded}"
            )),
            Some(_) => {}
        }
    }
    let unknown: Vec<&String> = history
        .keys()
        .filter(|id| !action.runs.contains_key(*id))
        .collect();
    if unknown.len() > action.unanswered_runs {
        problems.push(format!(
            "{who}: its history has {} runs no client was answered about, but only {} run \
             requests had no answer: {unknown:?}",
            unknown.len(),
            action.unanswered_runs
        ));
    }
    let read = history.len();
    // What is recorded now must stay recorded.
    action.runs = history;
    action.unanswered_runs = 0;
    read
}

/// The organization's listed actions, by id.
fn listed_actions(server: &Server) -> Result<BTreeMap<String, Value>, String> {
    let reply = server.get(&format!("/api/{ORG}/actions"), &Creds::root());
    let body = ok_json(&reply)?;
    let actions = body
        .as_array()
        .ok_or_else(|| format!("the action list is not an array: {reply}"))?;
    let mut listed = BTreeMap::new();
    for action in actions {
        let id = action["id"]
            .as_str()
            .ok_or_else(|| format!("a listed action has no id: {action}"))?;
        if listed.insert(id.to_string(), action.clone()).is_some() {
            return Err(format!("the action {id} is listed twice: {reply}"));
        }
    }
    Ok(listed)
}

/// An action's whole run history, page by page: run id to outcome.
fn run_history(server: &Server, id: &str) -> Result<BTreeMap<String, String>, String> {
    let mut runs = BTreeMap::new();
    for page in 1.. {
        let reply = server.get(
            &format!("/api/{ORG}/actions/{id}/runs?page={page}&per_page={RUNS_PER_PAGE}"),
            &Creds::root(),
        );
        let body = ok_json(&reply).map_err(|problem| format!("its run history {problem}"))?;
        let (Some(total), Some(listed)) = (body["total"].as_u64(), body["runs"].as_array()) else {
            return Err(format!("its run history has no total or runs: {reply}"));
        };
        for run in listed {
            let (Some(run_id), Some(outcome)) = (run["id"].as_str(), run["outcome"].as_str())
            else {
                return Err(format!("a run of its history has no id or outcome: {run}"));
            };
            if runs
                .insert(run_id.to_string(), outcome.to_string())
                .is_some()
            {
                return Err(format!(
                    "the run {run_id} is listed twice in its history (page {page})"
                ));
            }
        }
        if listed.is_empty() || runs.len() as u64 >= total {
            if runs.len() as u64 != total {
                return Err(format!(
                    "its run history says {total} runs but its pages list {}",
                    runs.len()
                ));
            }
            break;
        }
    }
    Ok(runs)
}

/// A ZIP no other upload of the test has: `main.py`, a `data.txt` naming the thread, round and
/// sequence number, and incompressible padding.
fn action_zip(worker: usize, round: u64, seq: u64) -> Vec<u8> {
    let data = format!("worker {worker} round {round} seq {seq}\n");
    let padding = pseudo_random(PADDING_BYTES);
    zip_entries(
        &[
            ("main.py", MAIN.as_bytes()),
            ("data.txt", data.as_bytes()),
            ("padding.bin", &padding),
        ],
        zip::CompressionMethod::Stored,
    )
}

/// Which of the test's ZIPs `bytes` is, by its `data.txt`, for messages.
fn label(bytes: &[u8]) -> String {
    let data = || -> Option<String> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
        let mut file = archive.by_name("data.txt").ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        Some(text.trim().to_string())
    };
    match data() {
        Some(text) => format!("the ZIP of \"{text}\""),
        None => format!("{} bytes that are no whole ZIP of this test", bytes.len()),
    }
}

/// A small reproducible generator (xorshift64*), for the kill moments and the operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
