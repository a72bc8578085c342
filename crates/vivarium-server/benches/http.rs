//! HTTP load on the test route (`POST /api/{org}/actions/test/{id}`), made by an external load
//! generator (`oha`, in its own process): the user guide's example over 100 records at
//! concurrency 1, 2 and 8 against the bare sandbox call measured in the same run, and a
//! trivial action at concurrency 8; each with the service's CPU time per request and how it
//! splits between its threads; then, when `VIVARIUM_BENCH_SOAK` names a duration, a soak at
//! concurrency 8 in ten windows (p99 and resident memory of each); then what three state
//! operations add to a trivial run, on SQLite and (when `VIVARIUM_TEST_POSTGRES_URL` names a
//! server) PostgreSQL. Every request must end in a successful run, as the run history counts
//! them. Run with `cargo xtask bench`; `VIVARIUM_BENCH_REQUESTS` sets the requests per
//! concurrency level.

mod load;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use load::{Amount, CpuUse, Measured, Result, Target};
use serde_json::{Value, json};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, OutcomeKind, PrepareOptions, ResultShape, Sandbox,
};
use vivarium_server::ServerConfig;

const ROOT_EMAIL: &str = "bench@example.com";
const ROOT_PASSWORD: &str = "bench-password-not-secret";
const CONCURRENCY: [usize; 3] = [1, 2, 8];

/// The targets of issue 19, each against its baseline from the same run.
const MOST_C1_OVERHEAD: f64 = 1.3;
const LEAST_SEED_RPS_AT_8: f64 = 400.0;
const MOST_SEED_P99_AT_8: Duration = Duration::from_millis(20);
const LEAST_TRIVIAL_RPS_AT_8: f64 = 1200.0;

/// Rounds of the alternated comparison at concurrency 1.
const ALTERNATED_ROUNDS: usize = 7;

/// Windows a soak is cut into, each reported on its own.
const SOAK_WINDOWS: u32 = 10;

/// Thread groups under this share of the service's CPU are left out of the split.
const SHARE_FLOOR: f64 = 0.01;

fn main() -> Result<()> {
    let requests: usize = std::env::var("VIVARIUM_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let soak = soak_duration()?;
    let oha = load::load_generator()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let records = hundred_records(&root.join("fixtures/records/k8s_logs.json"))?;
    let cache = vivarium_runtime::cache_dir(None)?;
    let data = tempfile::tempdir()?;
    let seed_bare = Bare::new(
        &cache,
        &root.join("fixtures/actions/uppercase_distinct"),
        &records,
    )?;
    let bare = seed_bare.measure(requests)?;
    let trivial_dir = data.path().join("trivial-folder");
    std::fs::create_dir_all(&trivial_dir)?;
    std::fs::write(trivial_dir.join("main.py"), TRIVIAL_MAIN)?;
    let bare_trivial = Bare::new(&cache, &trivial_dir, &json!([{"n": 1}]))?.measure(requests)?;

    let runtime = tokio::runtime::Runtime::new()?;
    let server = runtime.block_on(vivarium_server::start(base_config(data.path(), &cache)))?;
    let bench = Bench::new(oha, format!("http://{}/api/default", server.addr));
    let seed = bench.action(
        set_up(
            &bench.base,
            &root.join("fixtures/actions/uppercase_distinct.zip"),
        )?,
        &json!({ "inputs": records }),
        data.path(),
    )?;
    let trivial = bench.action(
        set_up_named(&bench.base, "trivial", &trivial_zip(data.path())?)?,
        &json!({ "inputs": [{"n": 1}] }),
        data.path(),
    )?;
    bench.load(&seed, 2, Amount::Requests(WARM_UP_REQUESTS))?;
    bench.load(&trivial, 2, Amount::Requests(WARM_UP_REQUESTS))?;

    println!(
        "\nHTTP test route through oha (its own process), user guide example over 100 records"
    );
    println!(
        "bare sandbox call in-process: p50 {:.2} ms, p99 {:.2} ms; trivial p50 {:.2} ms\n",
        ms(pct(&bare, 0.5)),
        ms(pct(&bare, 0.99)),
        ms(pct(&bare_trivial, 0.5))
    );
    println!(
        "| action | concurrency | requests | requests/s | p50 | p99 | p50 over the bare call | service CPU per request |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut seed_at = Vec::new();
    for concurrency in CONCURRENCY {
        let measured = bench.load(&seed, concurrency, Amount::Requests(requests * concurrency))?;
        print_row("seed", concurrency, &measured, pct(&bare, 0.5));
        seed_at.push(measured);
    }
    let trivial_at_8 = bench.load(
        &trivial,
        TRIVIAL_CONCURRENCY,
        Amount::Requests(requests * TRIVIAL_CONCURRENCY),
    )?;
    print_row(
        "trivial",
        TRIVIAL_CONCURRENCY,
        &trivial_at_8,
        pct(&bare_trivial, 0.5),
    );

    println!("\nthe service's CPU by thread group (share of its CPU time):");
    for (measured, what) in seed_at.iter().zip(["seed c=1", "seed c=2", "seed c=8"]) {
        print_shares(what, &measured.cpu);
    }
    print_shares("trivial c=8", &trivial_at_8.cpu);

    let alternated = alternated(&seed_bare, &bench, &seed, requests.div_ceil(4))?;
    println!(
        "\nseed at concurrency 1 alternating with the bare call, {ALTERNATED_ROUNDS} rounds: p50 {:.2} ms against {:.2} ms, median ratio {:.2}x",
        ms(alternated.http_p50),
        ms(alternated.bare_p50),
        alternated.ratio
    );
    print_targets(&alternated, &seed_at[2], &trivial_at_8, pct(&bare, 0.5));
    if let Some(soak) = soak {
        run_soak(&bench, &seed, soak)?;
    }
    runtime.block_on(server.shutdown())?;

    println!(
        "\nstate: a trivial run against one with three state operations (get, incr, set), concurrency 1"
    );
    println!("| database | no state: p50 | three operations: p50 | ratio |");
    println!("|---|---|---|---|");
    let embedded = tempfile::tempdir()?;
    state_cost(
        &runtime,
        &bench.oha,
        "SQLite",
        base_config(embedded.path(), &cache),
        requests,
    )?;
    match std::env::var("VIVARIUM_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let shared = tempfile::tempdir()?;
            let config = ServerConfig {
                database_url: Some(url),
                secrets_key: Some(BENCH_SECRETS_KEY.to_string().into()),
                ..base_config(shared.path(), &cache)
            };
            state_cost(&runtime, &bench.oha, "PostgreSQL", config, requests)?;
        }
        _ => println!(
            "| PostgreSQL | not measured: set VIVARIUM_TEST_POSTGRES_URL (`eval \"$(.ci/backends)\"`) | | |"
        ),
    }
    Ok(())
}

/// The soak's length from `VIVARIUM_BENCH_SOAK` (such as `10m`), if set.
fn soak_duration() -> Result<Option<Duration>> {
    match std::env::var("VIVARIUM_BENCH_SOAK") {
        Ok(text) if !text.is_empty() => {
            Ok(Some(humantime::parse_duration(&text).map_err(|e| {
                format!("VIVARIUM_BENCH_SOAK={text:?} is no duration (such as 10m): {e}")
            })?))
        }
        _ => Ok(None),
    }
}

/// An action the bench loads: its id, its test route and the body posted to it.
struct Loaded {
    id: String,
    url: String,
    body: PathBuf,
}

/// The load generator and the service it drives.
struct Bench {
    oha: PathBuf,
    base: String,
    authorization: String,
}

impl Bench {
    fn new(oha: PathBuf, base: String) -> Self {
        Self {
            oha,
            base,
            authorization: basic_auth(),
        }
    }

    /// The action `id`, to be posted `body` (written to a file under `dir`).
    fn action(&self, id: String, body: &Value, dir: &Path) -> Result<Loaded> {
        let file = dir.join(format!("{id}.json"));
        std::fs::write(&file, serde_json::to_vec(body)?)?;
        Ok(Loaded {
            url: format!("{}/actions/test/{id}", self.base),
            id,
            body: file,
        })
    }

    /// Loads `action` with `concurrency` connections for `amount`; fails unless every request
    /// was answered 200 and recorded as a successful run.
    fn load(&self, action: &Loaded, concurrency: usize, amount: Amount) -> Result<Measured> {
        let before = self.successful_runs(&action.id)?;
        let target = Target {
            url: &action.url,
            body: &action.body,
            authorization: &self.authorization,
        };
        let measured = load::measure(&self.oha, &target, concurrency, amount)?;
        let succeeded = self.successful_runs(&action.id)? - before;
        if measured.failed > 0 || succeeded != measured.ok {
            return Err(format!(
                "of {} requests, {} were not answered 200 and {} ended in a successful run",
                measured.ok + measured.failed,
                measured.failed,
                succeeded
            )
            .into());
        }
        Ok(measured)
    }

    /// How many successful runs the action's history holds.
    fn successful_runs(&self, id: &str) -> Result<u64> {
        let url = format!("{}/actions/{id}/runs?outcome=ok&per_page=1", self.base);
        let mut response = agent()
            .get(&url)
            .header("Authorization", &self.authorization)
            .call()?;
        let page: Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
        page["total"]
            .as_u64()
            .ok_or_else(|| format!("{url} answered no total: {page}").into())
    }
}

fn print_row(action: &str, concurrency: usize, measured: &Measured, bare_p50: Duration) {
    println!(
        "| {action} | {concurrency} | {} | {:.1} | {:.2} ms | {:.2} ms | {:.2}x | {:.2} ms |",
        measured.ok,
        measured.requests_per_sec,
        ms(measured.p50),
        ms(measured.p99),
        measured.p50.as_secs_f64() / bare_p50.as_secs_f64(),
        ms(measured.cpu.total()) / measured.ok.max(1) as f64
    );
}

fn print_shares(what: &str, cpu: &CpuUse) {
    let shares: Vec<String> = cpu
        .shares(SHARE_FLOOR)
        .iter()
        .map(|(group, share)| format!("{group} {:.0}%", share * 100.0))
        .collect();
    println!("- {what}: {}", shares.join(", "));
}

/// Prints each target with what was measured and its baseline from this run.
fn print_targets(seed_1: &Alternated, seed_8: &Measured, trivial_8: &Measured, bare_p50: Duration) {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let overhead = seed_1.ratio;
    println!("\n| target | measured | baseline (this run) | verdict |");
    println!("|---|---|---|---|");
    println!(
        "| seed c=1 p50 at most {MOST_C1_OVERHEAD}x the bare call (alternated) | {:.2} ms ({overhead:.2}x) | bare call p50 {:.2} ms | {} |",
        ms(seed_1.http_p50),
        ms(seed_1.bare_p50),
        verdict(overhead <= MOST_C1_OVERHEAD)
    );
    println!(
        "| seed c=8 at least {LEAST_SEED_RPS_AT_8} requests/s | {:.1}/s | bare call: {:.0} calls/s on one core | {} |",
        seed_8.requests_per_sec,
        1.0 / bare_p50.as_secs_f64(),
        verdict(seed_8.requests_per_sec >= LEAST_SEED_RPS_AT_8)
    );
    println!(
        "| seed c=8 p99 at most {} ms | {:.2} ms | bare call p50 {:.2} ms | {} |",
        MOST_SEED_P99_AT_8.as_millis(),
        ms(seed_8.p99),
        ms(bare_p50),
        verdict(seed_8.p99 <= MOST_SEED_P99_AT_8)
    );
    println!(
        "| trivial c=8 at least {LEAST_TRIVIAL_RPS_AT_8} runs/s | {:.1}/s | seed c=8 {:.1}/s | {} |",
        trivial_8.requests_per_sec,
        seed_8.requests_per_sec,
        verdict(trivial_8.requests_per_sec >= LEAST_TRIVIAL_RPS_AT_8)
    );
}

/// The seed example at concurrency 8 for `soak`, in windows: p99 and resident memory of
/// each, and their drift from the first window to the last.
fn run_soak(bench: &Bench, seed: &Loaded, soak: Duration) -> Result<()> {
    let window = soak / SOAK_WINDOWS;
    println!(
        "\nsoak: the seed example at concurrency 8 for {}, in {SOAK_WINDOWS} windows",
        humantime::format_duration(soak)
    );
    println!("| window | requests/s | p50 | p99 | resident memory |");
    println!("|---|---|---|---|---|");
    let mut seen = Vec::new();
    for n in 1..=SOAK_WINDOWS {
        let measured = bench.load(seed, 8, Amount::Time(window))?;
        let resident = load::resident_bytes()?;
        println!(
            "| {n} | {:.1} | {:.2} ms | {:.2} ms | {:.1} MiB |",
            measured.requests_per_sec,
            ms(measured.p50),
            ms(measured.p99),
            mib(resident)
        );
        seen.push((measured.p99, resident));
    }
    if let (Some(first), Some(last)) = (seen.first(), seen.last()) {
        println!(
            "drift from the first window to the last: p99 {:.2} -> {:.2} ms, resident memory {:.1} -> {:.1} MiB",
            ms(first.0),
            ms(last.0),
            mib(first.1),
            mib(last.1)
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A key for the PostgreSQL bench's secrets (32 bytes of 7, in base64): a bench stores none.
const BENCH_SECRETS_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The bench service's settings over `data`, sharing the interpreter cache `cache`.
fn base_config(data: &Path, cache: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0"
            .parse()
            .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
        data_dir: data.to_path_buf(),
        cache_dir: Some(cache.to_path_buf()),
        run_queue_capacity: 256,
        per_org_max_runs: 256,
        root_user_email: Some(ROOT_EMAIL.into()),
        root_user_password: Some(ROOT_PASSWORD.into()),
        ..ServerConfig::default()
    }
}

/// The p50 of a trivial run and of one making three state operations, through a service on
/// `config`'s database, measured in turn on the same service.
fn state_cost(
    runtime: &tokio::runtime::Runtime,
    oha: &Path,
    database: &str,
    config: ServerConfig,
    requests: usize,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = runtime.block_on(vivarium_server::start(config))?;
    let bench = Bench::new(
        oha.to_path_buf(),
        format!("http://{}/api/default", server.addr),
    );
    let base = &bench.base;
    // A database kept from an earlier bench run (PostgreSQL) has the account and actions.
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let plain = set_up(base, &source_zip(dir.path(), "plain", TRIVIAL_MAIN)?).or_else(|_| {
        set_up_named(
            base,
            &format!("plain{tag}"),
            &source_zip(dir.path(), "plain", TRIVIAL_MAIN)?,
        )
    })?;
    let stateful = set_up_named(
        base,
        &format!("stateful{tag}"),
        &source_zip(dir.path(), "stateful", STATEFUL_MAIN)?,
    )?;
    let body = json!({ "inputs": [{"n": 1}] });
    let mut p50 = Vec::new();
    for id in [plain, stateful] {
        let action = bench.action(id, &body, dir.path())?;
        bench.load(&action, 1, Amount::Requests(WARM_UP_REQUESTS))?;
        p50.push(bench.load(&action, 1, Amount::Requests(requests * 2))?.p50);
    }
    println!(
        "| {database} | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(p50[0]),
        ms(p50[1]),
        p50[1].as_secs_f64() / p50[0].as_secs_f64()
    );
    runtime.block_on(server.shutdown())?;
    Ok(())
}

/// An action that returns its input.
const TRIVIAL_MAIN: &str = "def main(data, logger):\n    return data\n";

/// An action that reads, counts and writes its state once each, then returns its input.
const STATEFUL_MAIN: &str = "from vivarium import state\n\ndef main(data, logger):\n    state.get('last')\n    state.incr('runs')\n    state.set('last', data[0])\n    return data\n";

/// Requests made before measuring each action: enough for every slot of the pooling allocator
/// to have been used once, as in a service that has been up for a while.
const WARM_UP_REQUESTS: usize = 64;

/// Concurrency of the trivial-action load.
const TRIVIAL_CONCURRENCY: usize = 8;

/// A ZIP holding a `main.py` that returns its input, written under `dir`.
fn trivial_zip(dir: &Path) -> Result<std::path::PathBuf> {
    source_zip(dir, "trivial", TRIVIAL_MAIN)
}

/// A ZIP `name.zip` under `dir` holding `main` as its `main.py`.
fn source_zip(dir: &Path, name: &str, main: &str) -> Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join(format!("{name}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path)?);
    zip.start_file("main.py", zip::write::SimpleFileOptions::default())?;
    zip.write_all(main.as_bytes())?;
    zip.finish()?;
    Ok(path)
}

fn hundred_records(path: &Path) -> Result<Value> {
    let fixture: Vec<Value> = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(Value::Array(
        fixture.iter().cycle().take(100).cloned().collect(),
    ))
}

/// An action called in-process on a sandbox of its own, with no service around it: the
/// baseline the HTTP route is held to.
struct Bare {
    sandbox: Sandbox,
    folder: PathBuf,
    input: Value,
    env: ActionEnv,
}

impl Bare {
    /// The action in `folder`, to be called with `input`.
    fn new(cache: &Path, folder: &Path, input: &Value) -> Result<Self> {
        Ok(Self {
            sandbox: vivarium_sandbox::prepare(cache, &PrepareOptions::default())?,
            folder: folder.to_path_buf(),
            input: input.clone(),
            env: ActionEnv::default(),
        })
    }

    /// The latencies of `calls` calls, sorted; fails unless each succeeds.
    fn measure(&self, calls: usize) -> Result<Vec<Duration>> {
        let call = Call {
            action_dir: &self.folder,
            input: Input::Data(self.input.clone()),
            env: &self.env,
            limits: Limits::DEFAULT,
            shape: ResultShape::Records,
            dependency_layer: None,
            egress: None,
            cpu_slot: None,
            state: None,
            log_sink: None,
        };
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            let outcome = self.sandbox.run(&call)?;
            if outcome.kind != OutcomeKind::Ok {
                return Err(format!("the bare call failed: {:?}", outcome.error).into());
            }
            times.push(started.elapsed());
        }
        times.sort();
        Ok(times)
    }
}

/// The bare call and the HTTP route at concurrency 1, as medians over rounds that alternate
/// between them.
struct Alternated {
    bare_p50: Duration,
    http_p50: Duration,
    /// The median of the rounds' ratios of the HTTP p50 to the bare p50.
    ratio: f64,
}

/// Measures `bare` and `action`'s route at concurrency 1 in [`ALTERNATED_ROUNDS`] rounds of
/// `per_round` each, one after the other, so that the machine's drift (on the VM this was
/// written on, the same call's speed moved by up to 2x over seconds) touches both alike.
fn alternated(bare: &Bare, bench: &Bench, action: &Loaded, per_round: usize) -> Result<Alternated> {
    let (mut bare_p50s, mut http_p50s, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ALTERNATED_ROUNDS {
        let bare_p50 = pct(&bare.measure(per_round)?, 0.5);
        let http_p50 = bench.load(action, 1, Amount::Requests(per_round))?.p50;
        ratios.push(http_p50.as_secs_f64() / bare_p50.as_secs_f64());
        bare_p50s.push(bare_p50);
        http_p50s.push(http_p50);
    }
    bare_p50s.sort();
    http_p50s.sort();
    ratios.sort_by(f64::total_cmp);
    Ok(Alternated {
        bare_p50: pct(&bare_p50s, 0.5),
        http_p50: pct(&http_p50s, 0.5),
        ratio: ratios[ratios.len() / 2],
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn basic_auth() -> String {
    use base64::Engine;
    let credentials = format!("{ROOT_EMAIL}:{ROOT_PASSWORD}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value> {
    let mut response = agent
        .post(url)
        .header("Authorization", &basic_auth())
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body)?.as_slice())?;
    let status = response.status();
    let text = response.body_mut().read_to_string()?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// Creates the service account, its role and the action; returns the action's id.
fn set_up(base: &str, zip: &Path) -> Result<String> {
    let agent = agent();
    let account = "action_script@example.com";
    post_json(
        &agent,
        &format!("{base}/service_accounts"),
        &json!({ "email": account }),
    )?;
    post_json(
        &agent,
        &format!("{base}/roles"),
        &json!({ "role": "runner" }),
    )?;
    let grant = json!({ "add": [{ "resource": "action_scripts", "object": "_all", "verb": "GET" }], "add_users": [account] });
    let mut response = agent
        .put(&format!("{base}/roles/runner"))
        .header("Authorization", &basic_auth())
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&grant)?.as_slice())?;
    response.body_mut().read_to_string()?;
    set_up_named(base, "bench", zip)
}

/// Uploads the action `name` from `zip`, run by the bench's service account; returns its id.
fn set_up_named(base: &str, name: &str, zip: &Path) -> Result<String> {
    let agent = agent();
    let account = "action_script@example.com";
    let boundary = "vivarium-bench-boundary";
    let mut form = Vec::new();
    for (name, value) in [
        ("name", name),
        ("execution_details", "service"),
        ("service_account", account),
    ] {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"action.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes(),
    );
    form.extend_from_slice(&std::fs::read(zip)?);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = agent
        .post(&format!("{base}/actions/upload"))
        .header("Authorization", &basic_auth())
        .header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send(form.as_slice())?;
    let created: Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
    created["uuid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("upload failed: {created}").into())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
