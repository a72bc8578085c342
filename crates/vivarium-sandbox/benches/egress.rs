//! What outbound HTTP costs, all measured in one run against one local HTTP server:
//! - the per-request cost of `requests.get` inside the sandbox (through the host call), from
//!   calls making 20 requests each, less a call making none, divided by 20;
//! - the same `requests.get` in a native `python3` (the baseline), timed inside the process;
//! - a trivial call with no egress and the same call with an allowlist that it does not use,
//!   measured alternately, which must cost the same.
//!
//! `requests` comes into the sandbox from a `pyproject.toml` through the dependency resolver
//! (the public index, or `VIVARIUM_PACKAGE_INDEX`); the native baseline uses the `requests`
//! its `python3` has. Run with `cargo xtask bench`; `VIVARIUM_BENCH_CALLS` sets the number of
//! measured calls.

#[allow(
    dead_code,
    reason = "this bench times its native baseline inside python3, and builds its calls with egress"
)]
mod timing;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timing::{measure, p50, row};
use vivarium_egress::{Author, Egress, EgressClient, EgressLimits, OperatorEgress, SystemLookup};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, OutcomeKind, PrepareOptions, ResultShape, RuntimeChoice,
    Sandbox,
};

/// Requests each measured call makes.
const REQUESTS: usize = 20;
/// Calls made first, so that every pooling slot has been used once.
const WARMUP: usize = 40;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let calls: usize = std::env::var("VIVARIUM_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let port = start_server()?;
    let origin = format!("http://127.0.0.1:{port}");
    let cache = vivarium_runtime::cache_dir(None)?;
    let sandbox = vivarium_sandbox::prepare(
        &cache,
        &PrepareOptions {
            runtime: RuntimeChoice::Snapshot,
            pool_size: 8,
            max_concurrent_calls: 2,
            ..PrepareOptions::default()
        },
    )?;
    let action = tempfile::tempdir()?;
    std::fs::write(action.path().join("main.py"), guest_source(&origin))?;
    std::fs::write(
        action.path().join("pyproject.toml"),
        "[project]\nname = \"bench\"\nversion = \"0\"\ndependencies = [\"requests==2.32.5\", \"urllib3==2.5.0\"]\n",
    )?;
    let layer = dependency_layer(action.path(), &cache)?;
    let egress = egress_for(&origin)?;
    let env = ActionEnv::default();
    let with_requests = bench_call(action.path(), &env, &layer, REQUESTS, Some(&egress));
    let none = bench_call(action.path(), &env, &layer, 0, Some(&egress));
    let sandboxed = measure(WARMUP, calls, || {
        run_ok(&sandbox, &with_requests).map_err(text)
    })?;
    let baseline = measure(WARMUP, calls, || run_ok(&sandbox, &none).map_err(text))?;
    let trivial = tempfile::tempdir()?;
    std::fs::write(
        trivial.path().join("main.py"),
        "def main(data, logger):\n    return data\n",
    )?;
    let plain = Call {
        action_dir: trivial.path(),
        dependency_layer: None,
        egress: None,
        ..none.clone()
    };
    let allowed = Call {
        egress: Some(&egress),
        ..plain.clone()
    };
    let (without, unused) = measure_pair(
        calls,
        || run_ok(&sandbox, &plain),
        || run_ok(&sandbox, &allowed),
    )?;
    let native = native_per_request(&origin, calls)?;

    let per_request = (p50(&sandboxed) - p50(&baseline)) * 1000.0 / REQUESTS as f64;
    println!(
        "\nOutbound HTTP: requests.get to a local server, {calls} calls of {REQUESTS} requests each"
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    row(
        &format!("sandbox call making {REQUESTS} requests"),
        &sandboxed,
    );
    row("sandbox call making none (requests imported)", &baseline);
    row("trivial action, no egress", &without);
    row("trivial action, an allowlist it does not use", &unused);
    println!(
        "\nper request: sandbox {per_request:.3} ms, native python3 {native:.3} ms: {:.2}x native",
        per_request / native
    );
    println!(
        "trivial call with an unused allowlist / with no egress (p50, measured alternately): {:.3}",
        p50(&unused) / p50(&without)
    );
    Ok(())
}

/// A call of the bench action making `count` requests.
fn bench_call<'a>(
    action: &'a Path,
    env: &'a ActionEnv,
    layer: &'a Path,
    count: usize,
    egress: Option<&'a Egress>,
) -> Call<'a> {
    Call {
        action_dir: action,
        input: Input::Data(serde_json::json!([{ "count": count }])),
        env,
        limits: Limits::DEFAULT,
        shape: ResultShape::Any,
        dependency_layer: Some(layer),
        egress,
        cpu_slot: None,
        state: None,
        log_sink: None,
    }
}

/// The guest: `count` GETs with `requests` (imported at call time, like an action does).
fn guest_source(origin: &str) -> String {
    format!(
        "import requests\n\ndef main(data, logger):\n    for _ in range(data[0]['count']):\n        requests.get('{origin}/ping', timeout=5).raise_for_status()\n    return data[0]['count']\n"
    )
}

/// The action's installed dependency layer.
fn dependency_layer(action: &Path, cache: &Path) -> BenchResult<PathBuf> {
    let (major, minor, patch) = RuntimeChoice::Snapshot.python_version();
    let config = vivarium_deps::DepsConfig {
        index_url: std::env::var("VIVARIUM_PACKAGE_INDEX")
            .unwrap_or_else(|_| vivarium_deps::DEFAULT_INDEX_URL.to_string()),
        python: vivarium_deps::TargetPython::new(major, minor, patch),
        ..vivarium_deps::DepsConfig::default()
    };
    let lock = vivarium_deps::lock_for_action(action, cache, &config)?
        .ok_or("the bench action declares dependencies")?;
    Ok(vivarium_deps::install(&lock, cache, &config)?)
}

/// An egress allowing the local server as an internal host.
fn egress_for(origin: &str) -> BenchResult<Egress> {
    let operator = OperatorEgress::new(&[origin.to_string()], EgressLimits::DEFAULT)?;
    let client = EgressClient::new(None, Arc::new(SystemLookup))?;
    Ok(Egress::for_action(
        &[origin.to_string()],
        Author::Action,
        None,
        Arc::new(operator),
        client,
    )?)
}

/// The per-request time of `requests.get` in a native `python3`, in milliseconds.
fn native_per_request(origin: &str, rounds: usize) -> BenchResult<f64> {
    let script = format!(
        "import time, requests\nsession = requests.Session()\nfor _ in range(20):\n    session.get('{origin}/ping', timeout=5)\ntimes = []\nfor _ in range({rounds}):\n    started = time.perf_counter()\n    for _ in range({REQUESTS}):\n        requests.get('{origin}/ping', timeout=5).raise_for_status()\n    times.append((time.perf_counter() - started) / {REQUESTS})\ntimes.sort()\nprint(times[len(times) // 2] * 1000)\n"
    );
    let output = Command::new("python3").args(["-c", &script]).output()?;
    if !output.status.success() {
        return Err(format!(
            "the native baseline needs python3 with requests: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// A local HTTP server answering `/ping`, on its own thread; returns its port.
fn start_server() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let served = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|runtime| {
                runtime.block_on(async move {
                    let app =
                        axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => axum::serve(listener, app).await.map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    }
                })
            });
        if let Err(error) | Ok(Err(error)) = served.map_err(|e| e.to_string()) {
            eprintln!("the bench server stopped: {error}");
        }
    });
    Ok(port)
}

/// A benchmark error as the shared timing helpers take it.
fn text(error: Box<dyn std::error::Error>) -> String {
    error.to_string()
}

fn run_ok(sandbox: &Sandbox, call: &Call<'_>) -> BenchResult<()> {
    let outcome = sandbox.run(call)?;
    if outcome.kind != OutcomeKind::Ok {
        return Err(format!("the call ended as {}: {:?}", outcome.kind, outcome.error).into());
    }
    Ok(())
}

/// Two paths measured alternately, so that drift in the machine's load falls on both.
fn measure_pair(
    calls: usize,
    mut first: impl FnMut() -> BenchResult<()>,
    mut second: impl FnMut() -> BenchResult<()>,
) -> BenchResult<(Vec<Duration>, Vec<Duration>)> {
    for _ in 0..WARMUP {
        first()?;
        second()?;
    }
    let (mut a, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let started = Instant::now();
        first()?;
        a.push(started.elapsed());
        let started = Instant::now();
        second()?;
        b.push(started.elapsed());
    }
    a.sort();
    b.sort();
    Ok((a, b))
}
