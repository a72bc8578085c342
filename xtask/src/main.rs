//! `cargo xtask ci | bench | fuzz | fixtures | build-python`: the project's chores, in Rust so they
//! run anywhere cargo does.

mod build_python;
mod fixtures;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Project chores.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// What CI runs: formatting, lints (warnings are errors) and the whole test suite.
    Ci,
    /// Benchmarks in release mode, with ratios against their baselines measured in the same run.
    Bench {
        /// Calls (and HTTP requests) measured per configuration.
        #[arg(long, default_value_t = 60)]
        calls: usize,
        /// Also soak the HTTP route at concurrency 8 for this long (such as `10m`), reporting
        /// p99 and resident memory in ten windows.
        #[arg(long, value_parser = humantime::parse_duration)]
        soak: Option<Duration>,
    },
    /// Fuzzes a target in `fuzz/` (coverage-guided, libFuzzer through cargo-fuzz, installed
    /// when missing) for a set time; `all` runs every target, one after another.
    Fuzz {
        /// A target's name (`cargo fuzz list` names them), or `all`.
        target: String,
        /// How long to fuzz each target, such as `60s` or `20m`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        time: Duration,
    },
    /// Rebuilds the committed fixture ZIPs from their folders.
    Fixtures,
    /// Builds CPython 3.13 for wasm32-wasip1 from source (python-wasm/build.sh): the reactor
    /// vivarium-python.wasm, python.wasm, the byte-compiled stdlib and CPython's tests.
    ///
    /// Downloads (pinned by SHA-256) and intermediate builds are cached in the work folder, so
    /// a rerun skips what is done. A first build takes about 5 minutes on 2 cores, plus 110 MB
    /// of downloads.
    BuildPython {
        /// Output folder [default: ${VIVARIUM_CACHE_DIR:-$HOME/.cache/vivarium}/python-src/out]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Work folder: downloads, toolchain, builds [default:
        /// ${VIVARIUM_CACHE_DIR:-$HOME/.cache/vivarium}/python-src/work]
        #[arg(long, value_name = "DIR")]
        work: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    match Cli::parse().task {
        Task::Ci => ci(&root),
        Task::Bench { calls, soak } => bench(&root, calls, soak),
        Task::Fuzz { target, time } => fuzz::run(&root, &target, time),
        Task::Fixtures => fixtures::rebuild_all(&root),
        Task::BuildPython { out, work } => build_python::run(&root, out, work),
    }
}

/// The benchmarks `cargo xtask bench` runs, in order, by package.
const BENCHES: &[(&str, &str)] = &[
    ("vivarium-sandbox", "calls"),
    ("vivarium-sandbox", "egress"),
    ("vivarium-sandbox", "numpy"),
    ("vivarium-sandbox", "pandas"),
    ("vivarium-server", "http"),
];

/// The release of oha, the HTTP load generator the HTTP bench drives the service with from
/// its own process.
const OHA_VERSION: &str = "1.16.0";

fn bench(root: &Path, calls: usize, soak: Option<Duration>) -> anyhow::Result<()> {
    let oha = ensure_oha(root)?;
    let calls = calls.to_string();
    let soak = soak.map(|soak| humantime::format_duration(soak).to_string());
    let oha = oha.to_string_lossy();
    let mut envs = vec![
        ("VIVARIUM_BENCH_CALLS", calls.as_str()),
        ("VIVARIUM_BENCH_REQUESTS", calls.as_str()),
        ("VIVARIUM_BENCH_OHA", &oha),
    ];
    if let Some(soak) = &soak {
        envs.push(("VIVARIUM_BENCH_SOAK", soak));
    }
    for (package, bench) in BENCHES {
        cargo(root, &["bench", "-p", package, "--bench", bench], &envs)?;
    }
    Ok(())
}

/// oha under `target/tools`, installed there from crates.io when missing; its path.
fn ensure_oha(root: &Path) -> anyhow::Result<PathBuf> {
    let tools = root.join("target").join("tools");
    let oha = tools.join("bin").join("oha");
    let installed = Command::new(&oha)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(OHA_VERSION));
    if !installed {
        cargo_install(root, "oha", OHA_VERSION, Some(&tools))?;
    }
    Ok(oha)
}

/// `cargo install --locked name@version`, into `into` when given (else cargo's own bin).
fn cargo_install(
    root: &Path,
    name: &str,
    version: &str,
    into: Option<&Path>,
) -> anyhow::Result<()> {
    eprintln!("installing {name} {version}");
    let mut command = Command::new(cargo_program());
    command.args(["install", "--locked", name, "--version", version]);
    if let Some(into) = into {
        command.arg("--root").arg(into);
    }
    let status = command
        .current_dir(root)
        .status()
        .context("could not start cargo install")?;
    if !status.success() {
        bail!("cargo install {name} failed ({status})");
    }
    Ok(())
}

fn ci(root: &Path) -> anyhow::Result<()> {
    cargo(root, &["fmt", "--all", "--check"], &[])?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cargo(root, &["test", "--workspace"], &[])
}

fn cargo(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = cargo_program();
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The cargo running this task, for the tasks that run cargo.
fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
