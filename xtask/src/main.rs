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
        Task::Bench { calls } => bench(&root, calls),
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

fn bench(root: &Path, calls: usize) -> anyhow::Result<()> {
    let calls = calls.to_string();
    let envs = [
        ("VIVARIUM_BENCH_CALLS", calls.as_str()),
        ("VIVARIUM_BENCH_REQUESTS", calls.as_str()),
    ];
    for (package, bench) in BENCHES {
        cargo(root, &["bench", "-p", package, "--bench", bench], &envs)?;
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
