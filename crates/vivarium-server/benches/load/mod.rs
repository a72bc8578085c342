//! Load from outside the service's process: `oha` (installed by `cargo xtask bench`, its path
//! in `VIVARIUM_BENCH_OHA`) drives the routes, so the client's CPU is not counted as the
//! service's and does not share its threads; and what the service itself spends, read from
//! this process's threads in `/proc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// A bench's fallible result.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The external load generator's program.
pub fn load_generator() -> Result<PathBuf> {
    let path = std::env::var_os("VIVARIUM_BENCH_OHA").map(PathBuf::from).ok_or(
        "VIVARIUM_BENCH_OHA is not set: run the bench with `cargo xtask bench`, which installs oha",
    )?;
    if !path.is_file() {
        return Err(format!(
            "VIVARIUM_BENCH_OHA names {}, which is no file",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// Where load goes: a `POST` of a JSON body with a `Basic` authorization.
pub struct Target<'a> {
    /// The route's URL.
    pub url: &'a str,
    /// A file holding the request body.
    pub body: &'a Path,
    /// The `Authorization` header's value.
    pub authorization: &'a str,
}

/// How much load one measurement makes.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    /// This many requests in all.
    Requests(usize),
    /// Requests for this long.
    Time(Duration),
}

/// What one measurement saw.
#[derive(Debug)]
pub struct Measured {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise, or not answered.
    pub failed: u64,
    /// Answered requests per second over the measurement.
    pub requests_per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
    /// The service's CPU time over the measurement, by thread group.
    pub cpu: CpuUse,
}

/// Drives `target` with `concurrency` connections (kept alive) for `amount`, with `oha`.
pub fn measure(
    oha: &Path,
    target: &Target,
    concurrency: usize,
    amount: Amount,
) -> Result<Measured> {
    let mut command = Command::new(oha);
    command
        .args(["--no-tui", "--output-format", "json", "-m", "POST"])
        .arg("-H")
        .arg(format!("Authorization: {}", target.authorization))
        .args(["-H", "Content-Type: application/json", "-D"])
        .arg(target.body)
        .arg("-c")
        .arg(concurrency.to_string());
    match amount {
        Amount::Requests(n) => command.arg("-n").arg(n.to_string()),
        // Requests in flight at the deadline are finished, not aborted (and counted failed).
        Amount::Time(time) => command
            .arg("-z")
            .arg(format!("{}ms", time.as_millis()))
            .arg("--wait-ongoing-requests-after-deadline"),
    };
    command.arg(target.url);
    let before = CpuUse::now()?;
    let output = command.output()?;
    let cpu = CpuUse::now()?.since(&before);
    if !output.status.success() {
        return Err(format!(
            "oha failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let report: Value = serde_json::from_slice(&output.stdout)?;
    parse_report(&report, cpu)
}

/// Reads oha's JSON report (latencies in seconds).
fn parse_report(report: &Value, cpu: CpuUse) -> Result<Measured> {
    let seconds = |value: &Value| -> Result<Duration> {
        let secs = value
            .as_f64()
            .ok_or_else(|| format!("oha's report lacks a latency: {report}"))?;
        Ok(Duration::from_secs_f64(secs.max(0.0)))
    };
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .ok_or_else(|| format!("oha's report lacks statusCodeDistribution: {report}"))?;
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let ok = statuses.get("200").map_or(0, count);
    let other: u64 = statuses
        .iter()
        .filter(|(code, _)| code.as_str() != "200")
        .map(|(_, n)| count(n))
        .sum();
    let errors: u64 = report["errorDistribution"]
        .as_object()
        .map_or(0, |errors| errors.values().map(count).sum());
    let elapsed = report["summary"]["total"]
        .as_f64()
        .ok_or_else(|| format!("oha's report lacks summary.total: {report}"))?;
    Ok(Measured {
        ok,
        failed: other + errors,
        requests_per_sec: ok as f64 / elapsed.max(f64::EPSILON),
        p50: seconds(&report["latencyPercentiles"]["p50"])?,
        p99: seconds(&report["latencyPercentiles"]["p99"])?,
        cpu,
    })
}

/// CPU time (user and system) of this process's threads, summed by thread name with the
/// numbered ones folded (`tokio-runtime-worker`, `vivarium-wasi`, ...).
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    by_group: BTreeMap<String, Duration>,
}

impl CpuUse {
    /// The CPU time every live thread of this process has used so far.
    pub fn now() -> Result<Self> {
        let ticks_per_sec = clock_ticks_per_sec();
        let mut by_group = BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task")? {
            let task = task?.path();
            let (Ok(name), Ok(stat)) = (
                std::fs::read_to_string(task.join("comm")),
                std::fs::read_to_string(task.join("stat")),
            ) else {
                continue; // The thread ended while being read.
            };
            let ticks = thread_ticks(&stat).ok_or_else(|| format!("unreadable stat: {stat}"))?;
            *by_group
                .entry(thread_group(name.trim()))
                .or_insert(Duration::ZERO) += Duration::from_secs_f64(ticks as f64 / ticks_per_sec);
        }
        Ok(Self { by_group })
    }

    /// What was used between `earlier` and this reading (threads that ended meanwhile lose
    /// their share; the service's threads are long-lived).
    pub fn since(&self, earlier: &CpuUse) -> CpuUse {
        let by_group = self
            .by_group
            .iter()
            .map(|(group, &now)| {
                let before = earlier.by_group.get(group).copied().unwrap_or_default();
                (group.clone(), now.saturating_sub(before))
            })
            .collect();
        CpuUse { by_group }
    }

    /// All of it.
    pub fn total(&self) -> Duration {
        self.by_group.values().sum()
    }

    /// Each group's share of the total, largest first, leaving out those under `floor`.
    pub fn shares(&self, floor: f64) -> Vec<(String, f64)> {
        let total = self.total().as_secs_f64().max(f64::EPSILON);
        let mut shares: Vec<_> = self
            .by_group
            .iter()
            .map(|(group, used)| (group.clone(), used.as_secs_f64() / total))
            .filter(|(_, share)| *share >= floor)
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares
    }
}

/// utime + stime from a `/proc/.../stat` line (fields 14 and 15, counted after the name,
/// which may itself hold spaces and parentheses).
fn thread_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(field(14)? + field(15)?)
}

/// A thread's name with a trailing number and separator folded away, so that the workers
/// of one pool count together.
fn thread_group(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '#')
        .to_string()
}

/// The kernel's clock ticks per second, in which `/proc` counts CPU time (100 on every Linux
/// this runs on; `getconf CLK_TCK` says), asked once.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// This process's resident memory, in bytes.
pub fn resident_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or("/proc/self/status has no VmRSS")?;
    Ok(kib * 1024)
}
