//! Dependencies of Vivarium actions: an action declares them in `pyproject.toml`
//! (`[project].dependencies`, PEP 621/508); they are resolved on the host, once per distinct
//! set, against a PEP 503/691 index and an optional local wheelhouse, into a [`Lock`] of
//! pure-Python wheels; the lock is installed as a read-only "layer" folder that the sandbox
//! mounts and puts on `sys.path`.
//!
//! Only pure-Python wheels are accepted (`py3-none-any` and kin): the sandbox runs CPython
//! compiled to WebAssembly/WASI, which cannot load compiled extension modules, and Vivarium
//! runs no build backends, so sdists are refused too. Vivarium has more than one interpreter
//! (CPython 3.13 by default, the pinned 3.12), so dependencies are resolved for the one that
//! will import them, [`DepsConfig::python`]: markers are evaluated for it in the sandbox
//! (`sys_platform == "wasi"`, `python_version == "3.13"`), never for the host, every
//! `requires-python` must admit it, and the lock records it ([`Lock::python`]).
//!
//! ```no_run
//! # fn main() -> Result<(), vivarium_deps::DepsError> {
//! use vivarium_deps::{DepsConfig, TargetPython, install, requirements_from_pyproject, resolve};
//! let config = DepsConfig {
//!     python: TargetPython::CPYTHON_3_12,
//!     ..DepsConfig::default()
//! };
//! let pyproject = "[project]\nrequires-python = \">=3.10\"\ndependencies = [\"six\"]\n";
//! let requirements = requirements_from_pyproject(pyproject)?;
//! let lock = resolve(&requirements, &config)?;
//! assert_eq!(lock.python, TargetPython::CPYTHON_3_12);
//! let layer = install(&lock, std::path::Path::new("/var/cache/vivarium"), &config)?;
//! println!("mount {} and put it on sys.path", layer.display());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod candidates;
mod environment;
mod error;
mod graph;
mod hashing;
mod html;
mod http;
mod index;
mod installer;
mod lock;
mod metadata;
mod newest;
mod progress;
mod pyproject;
mod record;
mod report;
mod resolver;
mod simple;
mod tags;
mod unpack;
mod wheelhouse;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use environment::TargetPython;
pub use error::DepsError;
pub use lock::{HeldBack, Lock, LockedPackage, ProvidedPackage};
pub use pyproject::{Requirements, requirements_from_pyproject};

/// The public Python package index's Simple API.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple";

/// Where distributions come from and how much may be installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepsConfig {
    /// Base URL of a PEP 503/691 Simple API (project pages at `<index_url>/<name>/`).
    /// Default: [`DEFAULT_INDEX_URL`].
    pub index_url: String,
    /// A local folder of `.whl` files, consulted before the index; with it, resolving and
    /// installing work offline (an unreachable index is then skipped). Default: none.
    pub wheelhouse: Option<PathBuf>,
    /// Most bytes an installed layer may hold (uncompressed). Default: 200 MiB.
    pub max_layer_bytes: u64,
    /// Most packages a lock may hold. Default: 100.
    pub max_packages: usize,
    /// Total time limit of each HTTP request (page, metadata or wheel). Default: 120 s.
    pub download_timeout: Duration,
    /// Show a progress spinner/bar on stderr when it is a terminal. Default: off (servers);
    /// command-line tools turn it on.
    pub progress: bool,
    /// The interpreter the action runs on, for which [`resolve`] resolves: markers,
    /// `requires-python` (the project's and every package's) and wheel tags are evaluated for
    /// it, and the lock records it. [`install`] installs a lock for the Python the lock names,
    /// whatever this says. Default: [`TargetPython::CPYTHON_3_13`].
    pub python: TargetPython,
    /// The packages that interpreter provides built in (numpy): a requirement on one is
    /// satisfied by its version, or refused naming it when it does not satisfy the
    /// requirement; it is recorded in [`Lock::provided`] and never installed. Default: none.
    pub provided: Vec<ProvidedPackage>,
}

impl Default for DepsConfig {
    fn default() -> Self {
        Self {
            index_url: DEFAULT_INDEX_URL.to_string(),
            wheelhouse: None,
            max_layer_bytes: 200 * 1024 * 1024,
            max_packages: 100,
            download_timeout: Duration::from_secs(120),
            progress: false,
            python: TargetPython::CPYTHON_3_13,
            provided: Vec::new(),
        }
    }
}

/// Resolves `requirements` for [`DepsConfig::python`] (transitively, markers evaluated for
/// that Python in the sandbox, extras honoured) to the newest versions that satisfy every
/// constraint and publish a pure-Python wheel that loads on it.
///
/// A project `requires-python` that excludes that Python is refused with
/// [`DepsError::ProjectRequiresPython`]. Empty requirements give an empty lock without
/// touching the network. Conflicts come back as [`DepsError::Conflict`] with the chain of
/// requirements that clash; packages that cannot run in the sandbox are refused by name.
///
/// A package is not silently held back below its newest release: when that release publishes
/// compiled wheels only and no requirement on the package excludes it, the package is refused
/// with [`DepsError::NewestReleaseCompiled`] rather than resolved to an older release that
/// happens to have one. Every package locked below its newest release, for whatever reason, is
/// listed in [`Lock::held_back`] with that reason.
pub fn resolve(requirements: &Requirements, config: &DepsConfig) -> Result<Lock, DepsError> {
    requirements.check_python(config.python)?;
    if requirements.is_empty() {
        return Ok(Lock::for_python(config.python, Vec::new()));
    }
    let client = index::IndexClient::new(config)?;
    let progress = progress::Progress::spinner(config.progress, "resolving dependencies");
    resolver::resolve(
        requirements,
        config.python,
        &config.provided,
        &client,
        &progress,
        config.max_packages,
    )
}

/// Installs `lock` as the read-only layer `cache_root/layers/<lock digest>/` and returns it.
///
/// The layer holds the purelib contents of every wheel at its root (package folders and
/// `*.dist-info`), so mounting it and adding it to `sys.path` makes the packages importable.
/// A layer already present is returned at once; concurrent installs of the same lock end with
/// one layer; a failed install leaves nothing behind.
pub fn install(lock: &Lock, cache_root: &Path, config: &DepsConfig) -> Result<PathBuf, DepsError> {
    installer::install(lock, cache_root, config)
}

/// Where [`install`] keeps the verified wheel of `package` under `cache_root` (it may not
/// exist): a replica reads it to share the wheel, and fills it with [`adopt_wheel`].
pub fn cached_wheel(cache_root: &Path, package: &LockedPackage) -> PathBuf {
    installer::cached_wheel(cache_root, package)
}

/// Keeps `bytes`, fetched from elsewhere than the index (a store shared by replicas), as the
/// cached wheel of `package`, so that [`install`] uses it; refused with
/// [`DepsError::HashMismatch`] unless they match the lock's sha256.
pub fn adopt_wheel(
    cache_root: &Path,
    package: &LockedPackage,
    bytes: &[u8],
) -> Result<(), DepsError> {
    installer::adopt_wheel(cache_root, package, bytes)
}

/// The layer folder `install` would create for `lock` under `cache_root` (it may not exist).
pub fn layer_path(lock: &Lock, cache_root: &Path) -> PathBuf {
    cache_root.join("layers").join(lock.digest())
}

/// The lock an action's dependencies need, or `None` when it needs no layer: its package
/// carries a ready `dependencies/` folder (which takes precedence, and needs no network), or
/// has no `pyproject.toml`, or declares no dependencies there. A `requires-python` there that
/// excludes [`DepsConfig::python`] is refused, dependencies or not.
pub fn lock_for_action(
    action_root: &Path,
    cache_root: &Path,
    config: &DepsConfig,
) -> Result<Option<Lock>, DepsError> {
    if action_root.join("dependencies").is_dir() {
        return Ok(None);
    }
    let pyproject = action_root.join("pyproject.toml");
    let text = match std::fs::read_to_string(&pyproject) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(DepsError::io("reading", &pyproject)(error)),
    };
    let requirements = requirements_from_pyproject(&text)?;
    requirements.check_python(config.python)?;
    if requirements.is_empty() {
        return Ok(None);
    }
    resolve_cached(&requirements, cache_root, config).map(Some)
}

/// [`resolve`], remembered under `cache_root/locks/` per distinct set of requirements, source
/// (index and wheelhouse) and target Python: a second action with the same set for the same
/// Python gets the same lock, and so the same layer, at once and without asking the index
/// again.
pub fn resolve_cached(
    requirements: &Requirements,
    cache_root: &Path,
    config: &DepsConfig,
) -> Result<Lock, DepsError> {
    requirements.check_python(config.python)?;
    let locks = cache_root.join("locks");
    let path = locks.join(format!("{}.json", resolution_key(requirements, config)));
    if let Some(lock) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Lock>(&text).ok())
        .filter(|lock| lock.python == config.python)
    {
        return Ok(lock);
    }
    let lock = resolve(requirements, config)?;
    remember_lock(&locks, &path, &lock)?;
    Ok(lock)
}

/// Names the rules [`resolve`] follows; changed whenever they change what a set of
/// requirements resolves to, so that locks remembered under older rules are resolved again
/// (rules 2: a newest release without a pure-Python wheel is refused, held-back packages are
/// recorded).
const RESOLUTION_RULES: &str = "vivarium-deps resolution rules 2\n";

/// What a resolution depends on: the rules, the requirements, the Python resolved for (its
/// full version: `python_full_version` markers and `requires-python` can tell patch levels
/// apart) and where distributions come from.
fn resolution_key(requirements: &Requirements, config: &DepsConfig) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(RESOLUTION_RULES.as_bytes());
    hasher.update(requirements.digest().as_bytes());
    hasher.update(b"\n");
    hasher.update(format!("cpython-{}-wasi", config.python).as_bytes());
    hasher.update(b"\n");
    hasher.update(config.index_url.as_bytes());
    hasher.update(b"\n");
    if let Some(wheelhouse) = &config.wheelhouse {
        hasher.update(wheelhouse.to_string_lossy().as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Stores a lock atomically (temporary file, then rename), so readers never see half of one.
fn remember_lock(locks: &Path, path: &Path, lock: &Lock) -> Result<(), DepsError> {
    use std::io::Write;
    std::fs::create_dir_all(locks).map_err(DepsError::io("creating", locks))?;
    let json = serde_json::to_vec(lock).map_err(|e| DepsError::Internal {
        reason: format!("encoding a lock: {e}"),
    })?;
    let mut temp = tempfile::NamedTempFile::new_in(locks)
        .map_err(DepsError::io("creating a file in", locks))?;
    temp.write_all(&json)
        .map_err(DepsError::io("writing", temp.path()))?;
    temp.persist(path)
        .map_err(|e| DepsError::io("storing", path)(e.error))?;
    Ok(())
}

/// What the fuzz targets (`fuzz/` at the workspace's root) reach that this crate otherwise
/// keeps to itself: the readers of what a package index sends.
pub mod fuzzing {
    /// The download URLs of the files a project page lists, read as the resolver reads a
    /// page fetched from `page_url` (PEP 691 JSON when `json`, else PEP 503 HTML).
    ///
    /// # Errors
    ///
    /// Why the page cannot be read, as the resolver would report it.
    pub fn listed_urls(page_url: &str, body: &str, json: bool) -> Result<Vec<String>, String> {
        let files = crate::simple::parse_page(page_url, body, json)?;
        Ok(files.into_iter().map(|file| file.url).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_python_is_part_of_the_resolution_key() {
        let requirements = Requirements::parse(["six", "attrs>=23"]).unwrap();
        let on_3_13 = DepsConfig::default();
        let on_3_12 = DepsConfig {
            python: TargetPython::CPYTHON_3_12,
            ..DepsConfig::default()
        };
        assert_eq!(on_3_13.python, TargetPython::CPYTHON_3_13);
        assert_ne!(
            resolution_key(&requirements, &on_3_13),
            resolution_key(&requirements, &on_3_12)
        );
        let patched = DepsConfig {
            python: TargetPython::new(3, 13, 6),
            ..DepsConfig::default()
        };
        assert_ne!(
            resolution_key(&requirements, &on_3_13),
            resolution_key(&requirements, &patched)
        );
        assert_eq!(
            resolution_key(&requirements, &on_3_13),
            resolution_key(&requirements, &DepsConfig::default())
        );
    }

    #[test]
    fn empty_requirements_lock_for_the_target() {
        let config = DepsConfig {
            python: TargetPython::CPYTHON_3_12,
            index_url: "http://127.0.0.1:9/simple".into(),
            ..DepsConfig::default()
        };
        let lock = resolve(&Requirements::default(), &config).unwrap();
        assert!(lock.is_empty());
        assert_eq!(lock.python, TargetPython::CPYTHON_3_12);
    }
}
