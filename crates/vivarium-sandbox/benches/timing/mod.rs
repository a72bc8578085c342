//! What the sandbox benchmarks share: timing calls after a warm-up, the percentile table,
//! and the guest runner run by a native `python3` as the baseline.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vivarium_sandbox::{ActionEnv, Call, Input, Limits, RUNNER_SOURCE, ResultShape};

/// A call of the action in `folder` on `data`, with the default limits and nothing else.
pub fn plain_call<'a>(folder: &'a Path, data: &Value, env: &'a ActionEnv) -> Call<'a> {
    Call {
        action_dir: folder,
        input: Input::Data(data.clone()),
        env,
        limits: Limits::DEFAULT,
        shape: ResultShape::Records,
        dependency_layer: None,
        egress: None,
        cpu_slot: None,
        state: None,
        log_sink: None,
    }
}

/// The median of `sorted`, in seconds.
pub fn p50(sorted: &[Duration]) -> f64 {
    percentile(sorted, 0.5).as_secs_f64()
}

/// Times `calls` runs of `one` after `warmup` unmeasured ones; answers the sorted times.
pub fn measure(
    warmup: usize,
    calls: usize,
    mut one: impl FnMut() -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    for _ in 0..warmup {
        one()?;
    }
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        one()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The `p` quantile (0 to 1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Prints one table row: p50, p99 and mean of `sorted`.
pub fn row(name: &str, sorted: &[Duration]) {
    let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
    println!(
        "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        ms(mean)
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Runs the guest runner on `action` in a native `python` subprocess started with `flags`,
/// with `request` on its stdin, as the sandbox would; fails unless it reports success.
pub fn native_call(
    python: &Path,
    flags: &[&str],
    action: &Path,
    request: &[u8],
) -> Result<(), String> {
    let mut child = Command::new(python)
        .args(flags)
        .args(["-c", RUNNER_SOURCE])
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 did not start: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request)
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.stdout.starts_with(br#"{"ok":true"#) {
        return Err(format!(
            "the native call failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}
