//! `vivarium runtime fetch|info`, and getting a ready sandbox for a run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vivarium_deps::ProvidedPackage;
use vivarium_runtime::{BuiltInterpreter, FetchOptions, InstalledInterpreter, PINNED, Progress};
use vivarium_sandbox::{PrepareError, PrepareOptions, Profile, RuntimeChoice, Sandbox};

use crate::cli::{Cli, RuntimeCommand};
use crate::exit::{Exit, Failure};

/// The cache folder chosen by flag, environment or the user's default.
pub fn cache_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    vivarium_runtime::cache_dir(cli.cache_dir.as_deref())
        .map_err(|e| Failure::new(Exit::RuntimeUnavailable, e))
}

/// A sandbox over the verified, precompiled interpreter `runtime` names, in `profile`, made
/// on first need, for one call (no warm pool).
pub fn ready_sandbox(
    cache_dir: &Path,
    runtime: RuntimeChoice,
    profile: Profile,
    fetch: &FetchOptions,
) -> Result<Sandbox, Failure> {
    let options = PrepareOptions {
        runtime,
        profile,
        fetch: fetch.clone(),
        pool_size: 0,
        max_concurrent_calls: 1,
    };
    vivarium_sandbox::prepare(cache_dir, &options).map_err(|error| match error {
        PrepareError::Runtime(e) => Failure::new(Exit::RuntimeUnavailable, e),
        PrepareError::Unavailable(e) => Failure::new(Exit::RuntimeUnavailable, anyhow::anyhow!(e)),
        PrepareError::Sandbox(e) => Failure::new(Exit::Internal, e),
    })
}

/// What `runtime` provides built in (numpy and pandas, on the snapshot runtime) for
/// resolving the dependencies of the action in `action_root`: read from the build, made first
/// when missing; nothing when the action has no `pyproject.toml` to resolve.
pub fn provided_packages(
    cache_dir: &Path,
    runtime: RuntimeChoice,
    action_root: &Path,
) -> Result<Vec<ProvidedPackage>, Failure> {
    let resolves = action_root.join(vivarium_package::PYPROJECT_FILE).is_file();
    if runtime == RuntimeChoice::Pinned || !resolves {
        return Ok(Vec::new());
    }
    let built = BuiltInterpreter::ensure(cache_dir, Progress::Bar)
        .map_err(|e| Failure::new(Exit::RuntimeUnavailable, e))?;
    Ok(Profile::provided_by(&built)
        .into_iter()
        .map(|(name, version)| ProvidedPackage {
            name: name.to_string(),
            version,
        })
        .collect())
}

/// Runs a `runtime` subcommand.
pub fn run(cli: &Cli, command: &RuntimeCommand) -> Result<Exit, Failure> {
    let cache = cache_dir(cli)?;
    match command {
        RuntimeCommand::Fetch { from, index } => fetch(&cache, from.as_deref(), index),
        RuntimeCommand::Info => info(&cache),
        RuntimeCommand::Build => build(&cache),
    }
}

fn build(cache: &Path) -> Result<Exit, Failure> {
    let options = FetchOptions {
        progress: Progress::Bar,
        ..FetchOptions::default()
    };
    for profile in Profile::ALL {
        ready_sandbox(cache, RuntimeChoice::Snapshot, profile, &options)?;
    }
    let built = BuiltInterpreter::find(cache).ok_or_else(|| {
        Failure::new(
            Exit::RuntimeUnavailable,
            anyhow::anyhow!("the build left no interpreter behind"),
        )
    })?;
    println!(
        "Python {} is built from source, pre-initialized and precompiled: {}",
        built.version,
        built.reactor.path.display()
    );
    Ok(Exit::Success)
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
    ready_sandbox(cache, RuntimeChoice::Pinned, Profile::Standard, &options)?;
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
