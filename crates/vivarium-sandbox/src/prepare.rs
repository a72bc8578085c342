//! A sandbox over the verified, precompiled interpreter: fetched and compiled on first need,
//! mapped from the compile cache afterwards.

use std::path::Path;

use vivarium_runtime::{FetchOptions, InstalledInterpreter, PINNED, RuntimeError, load_or_compile};

use crate::error::SandboxError;
use crate::sandbox::{Sandbox, new_engine};

/// Why no sandbox could be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The interpreter could not be fetched, verified or compiled.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The engine or the linking failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The sandbox for the pinned interpreter cached in `cache_dir`, downloading and compiling it
/// first when needed (once per machine).
pub fn prepare(cache_dir: &Path, options: &FetchOptions) -> Result<Sandbox, PrepareError> {
    let interpreter = InstalledInterpreter::ensure(cache_dir, &PINNED, options)?;
    let engine = new_engine()?;
    let compiled = load_or_compile(&engine, &interpreter, cache_dir)?;
    Ok(Sandbox::new(engine, &compiled.module)?)
}
