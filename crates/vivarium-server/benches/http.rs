//! HTTP load on the test route (`POST /api/{org}/actions/test/{id}`) with the user guide's
//! example over 100 records, at concurrency 1, 2 and 8, against the bare sandbox call measured
//! in the same run; then what three state operations add to a trivial run, on SQLite and (when
//! `VIVARIUM_TEST_POSTGRES_URL` names a server) PostgreSQL. Run with `cargo xtask bench`;
//! `VIVARIUM_BENCH_REQUESTS` sets the requests per concurrency level.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vivarium_sandbox::{ActionEnv, Call, Input, Limits, OutcomeKind, PrepareOptions, ResultShape};
use vivarium_server::ServerConfig;

const ROOT_EMAIL: &str = "bench@example.com";
const ROOT_PASSWORD: &str = "bench-password-not-secret";
const CONCURRENCY: [usize; 3] = [1, 2, 8];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let requests: usize = std::env::var("VIVARIUM_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let records = hundred_records(&root.join("fixtures/records/k8s_logs.json"))?;
    let cache = vivarium_runtime::cache_dir(None)?;
    let bare = bare_sandbox(
        &cache,
        &root.join("fixtures/actions/uppercase_distinct"),
        &records,
        requests,
    )?;

    let data = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let cache_dir = cache.clone();
    let config = base_config(data.path(), &cache);
    let server = runtime.block_on(vivarium_server::start(config))?;
    let base = format!("http://{}/api/default", server.addr);
    let action = set_up(&base, &root.join("fixtures/actions/uppercase_distinct.zip"))?;
    let body = Arc::new(serde_json::to_vec(&json!({ "inputs": records }))?);
    let url = Arc::new(format!("{base}/actions/test/{action}"));
    parallel(&url, &body, 2, WARM_UP_REQUESTS)?;

    println!(
        "\nHTTP test route, user guide example over 100 records, {requests} requests per level"
    );
    println!(
        "bare sandbox call in-process: p50 {:.1} ms, p99 {:.1} ms\n",
        ms(pct(&bare, 0.5)),
        ms(pct(&bare, 0.99))
    );
    println!("| concurrency | requests/s | p50 | p99 | p50 overhead over the bare call |");
    println!("|---|---|---|---|---|");
    for concurrency in CONCURRENCY {
        let started = Instant::now();
        let latencies = parallel(&url, &body, concurrency, requests)?;
        let elapsed = started.elapsed();
        let rps = latencies.len() as f64 / elapsed.as_secs_f64();
        let p50 = pct(&latencies, 0.5);
        println!(
            "| {concurrency} | {rps:.1} | {:.1} ms | {:.1} ms | {:.2}x |",
            ms(p50),
            ms(pct(&latencies, 0.99)),
            p50.as_secs_f64() / pct(&bare, 0.5).as_secs_f64()
        );
    }
    let trivial = set_up_named(&base, "trivial", &trivial_zip(data.path())?)?;
    let trivial_url = Arc::new(format!("{base}/actions/test/{trivial}"));
    let trivial_body = Arc::new(serde_json::to_vec(&json!({ "inputs": [{"n": 1}] }))?);
    parallel(
        &trivial_url,
        &trivial_body,
        TRIVIAL_CONCURRENCY,
        WARM_UP_REQUESTS,
    )?;
    let started = Instant::now();
    let latencies = parallel(
        &trivial_url,
        &trivial_body,
        TRIVIAL_CONCURRENCY,
        requests * 4,
    )?;
    let rps = latencies.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "\ntrivial action (returns its input) at concurrency {TRIVIAL_CONCURRENCY}: {rps:.0} runs/s (target at least 300), p50 {:.2} ms, p99 {:.2} ms",
        ms(pct(&latencies, 0.5)),
        ms(pct(&latencies, 0.99))
    );
    runtime.block_on(server.shutdown())?;

    println!(
        "\nstate: a trivial run against one with three state operations (get, incr, set), concurrency 1"
    );
    println!("| database | no state: p50 | three operations: p50 | ratio |");
    println!("|---|---|---|---|");
    let embedded = tempfile::tempdir()?;
    state_cost(
        &runtime,
        "SQLite",
        base_config(embedded.path(), &cache_dir),
        requests,
    )?;
    match std::env::var("VIVARIUM_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let shared = tempfile::tempdir()?;
            let config = ServerConfig {
                database_url: Some(url),
                secrets_key: Some(BENCH_SECRETS_KEY.to_string().into()),
                ..base_config(shared.path(), &cache_dir)
            };
            state_cost(&runtime, "PostgreSQL", config, requests)?;
        }
        _ => println!(
            "| PostgreSQL | not measured: set VIVARIUM_TEST_POSTGRES_URL (`eval \"$(.ci/backends)\"`) | | |"
        ),
    }
    Ok(())
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
    database: &str,
    config: ServerConfig,
    requests: usize,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = runtime.block_on(vivarium_server::start(config))?;
    let base = format!("http://{}/api/default", server.addr);
    // A database kept from an earlier bench run (PostgreSQL) has the account and actions.
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let plain = set_up(&base, &source_zip(dir.path(), "plain", TRIVIAL_MAIN)?).or_else(|_| {
        set_up_named(
            &base,
            &format!("plain{tag}"),
            &source_zip(dir.path(), "plain", TRIVIAL_MAIN)?,
        )
    })?;
    let stateful = set_up_named(
        &base,
        &format!("stateful{tag}"),
        &source_zip(dir.path(), "stateful", STATEFUL_MAIN)?,
    )?;
    let body = Arc::new(serde_json::to_vec(&json!({ "inputs": [{"n": 1}] }))?);
    let mut p50 = Vec::new();
    for id in [&plain, &stateful] {
        let url = Arc::new(format!("{base}/actions/test/{id}"));
        parallel(&url, &body, 1, WARM_UP_REQUESTS)?;
        p50.push(pct(&parallel(&url, &body, 1, requests * 2)?, 0.5));
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

fn bare_sandbox(
    cache: &Path,
    action: &Path,
    records: &Value,
    calls: usize,
) -> Result<Vec<Duration>> {
    let sandbox = vivarium_sandbox::prepare(cache, &PrepareOptions::default())?;
    let env = ActionEnv::default();
    let call = Call {
        action_dir: action,
        input: Input::Data(records.clone()),
        env: &env,
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
        let outcome = sandbox.run(&call)?;
        if outcome.kind != OutcomeKind::Ok {
            return Err(format!("the bare call failed: {:?}", outcome.error).into());
        }
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
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

/// `total` requests spread over `concurrency` client threads; every latency, sorted.
fn parallel(
    url: &Arc<String>,
    body: &Arc<Vec<u8>>,
    concurrency: usize,
    total: usize,
) -> Result<Vec<Duration>> {
    let per_thread = total.div_ceil(concurrency);
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let agent = agent();
                let mut times = Vec::with_capacity(per_thread);
                for _ in 0..per_thread {
                    let started = Instant::now();
                    let mut response = agent
                        .post(url.as_str())
                        .header("Authorization", &basic_auth())
                        .header("Content-Type", "application/json")
                        .send(body.as_slice())?;
                    let text = response
                        .body_mut()
                        .with_config()
                        .limit(64 * 1024 * 1024)
                        .read_to_string()?;
                    if !text.contains("\"outcome\":\"ok\"") {
                        return Err(
                            format!("a run failed: {}", &text[..text.len().min(300)]).into()
                        );
                    }
                    times.push(started.elapsed());
                }
                Ok(times)
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        all.extend(thread.join().map_err(|_| "a client thread panicked")??);
    }
    all.sort();
    Ok(all)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
