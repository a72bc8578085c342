//! A sandbox over a verified, precompiled interpreter: the pre-initialized snapshot of the
//! interpreter built from source (the default), or the pinned prebuilt one. Whatever is
//! missing is made on first need (fetched or built, snapshotted, compiled) and cached.

use std::path::Path;
use std::str::FromStr;

use vivarium_runtime::{
    BuiltInterpreter, FetchOptions, InstalledInterpreter, PINNED, RuntimeError, load_or_compile,
};

use crate::error::SandboxError;
use crate::pool::WarmPool;
use crate::profile::Profile;
use crate::sandbox::{Sandbox, new_engine, new_pooling_engine};
use crate::snapshot::ensure_snapshot;

/// Why no sandbox could be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The interpreter could not be fetched, built, verified or compiled.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The engine, the snapshot or the linking failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The runtime has no such profile.
    #[error("{0}")]
    Unavailable(String),
}

/// Which interpreter runs the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// CPython built from source by the project's recipe, pre-initialized into a snapshot,
    /// with a warm pool of fresh instances: calls start in microseconds.
    #[default]
    Snapshot,
    /// The pinned prebuilt CPython 3.12, started afresh by every call.
    Pinned,
}

impl RuntimeChoice {
    /// The CPython version the runtime runs (major, minor, patch): what dependencies are
    /// resolved for.
    pub fn python_version(self) -> (u16, u16, u16) {
        match self {
            Self::Snapshot => (3, 13, 5),
            Self::Pinned => (3, 12, 0),
        }
    }

    /// The name configurations use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Pinned => "pinned",
        }
    }
}

impl FromStr for RuntimeChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "snapshot" => Ok(Self::Snapshot),
            "pinned" => Ok(Self::Pinned),
            other => Err(format!(
                "unknown runtime {other:?}: choose \"snapshot\" (built from source, the default) or \"pinned\""
            )),
        }
    }
}

/// How to prepare a sandbox.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Which interpreter.
    pub runtime: RuntimeChoice,
    /// Which profile of it (only the snapshot runtime has others than the standard one).
    pub profile: Profile,
    /// Where the pinned interpreter is downloaded from, and whether to show progress (also
    /// used for the from-source build's progress).
    pub fetch: FetchOptions,
    /// Fresh instances kept ready by the snapshot runtime's warm pool.
    pub pool_size: usize,
    /// Calls that may run at once (sizes the pooling allocator beside the pool).
    pub max_concurrent_calls: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            runtime: RuntimeChoice::default(),
            profile: Profile::default(),
            fetch: FetchOptions::default(),
            pool_size: 4,
            max_concurrent_calls: 64,
        }
    }
}

/// The sandbox for `options.runtime` and `options.profile`, with everything it needs cached
/// in `cache_dir` (made first when missing: downloaded or built, snapshotted, compiled; once
/// per machine).
pub fn prepare(cache_dir: &Path, options: &PrepareOptions) -> Result<Sandbox, PrepareError> {
    match (options.runtime, options.profile) {
        (RuntimeChoice::Pinned, Profile::Standard) => prepare_pinned(cache_dir, &options.fetch),
        (RuntimeChoice::Pinned, other) => Err(PrepareError::Unavailable(format!(
            "the {} profile needs the snapshot runtime (built from source); the pinned interpreter has only the standard library",
            other.name()
        ))),
        (RuntimeChoice::Snapshot, _) => prepare_snapshot(cache_dir, options),
    }
}

fn prepare_pinned(cache_dir: &Path, fetch: &FetchOptions) -> Result<Sandbox, PrepareError> {
    let interpreter = InstalledInterpreter::ensure(cache_dir, &PINNED, fetch)?;
    let engine = new_engine()?;
    let compiled = load_or_compile(&engine, &interpreter.source(), cache_dir)?;
    Ok(Sandbox::new(engine, &compiled.module)?)
}

fn prepare_snapshot(cache_dir: &Path, options: &PrepareOptions) -> Result<Sandbox, PrepareError> {
    let built = BuiltInterpreter::ensure(cache_dir, options.fetch.progress)?;
    let snapshot = ensure_snapshot(cache_dir, &built, options.profile)?;
    let live = WarmPool::slots_needed(options.pool_size) + options.max_concurrent_calls + 1;
    let engine = new_pooling_engine(u32::try_from(live).unwrap_or(u32::MAX))?;
    let compiled = load_or_compile(&engine, &snapshot, cache_dir)?;
    Ok(Sandbox::from_snapshot(
        engine,
        &compiled.module,
        &snapshot.sha256,
        built.stdlib.clone(),
        cache_dir,
        options.pool_size,
    )?)
}
