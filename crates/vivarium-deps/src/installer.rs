//! Installs a lock as a read-only layer `cache_root/layers/<lock digest>/`: wheels are fetched
//! (wheel cache, wheelhouse or index; sha256 checked against the lock), unpacked into a
//! staging folder beside the final one, made read-only and renamed into place in one step.
//! A layer that exists is complete and is reused as is; losing the rename to a concurrent
//! install of the same lock is success; a failed install leaves nothing behind.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use pep508_rs::PackageName;

use crate::DepsConfig;
use crate::error::DepsError;
use crate::hashing::{is_sha256_hex, sha256_hex};
use crate::index::IndexClient;
use crate::lock::{Lock, LockedPackage};
use crate::progress::Progress;
use crate::tags::WheelName;
use crate::unpack::{Budget, unpack};

/// Installs `lock` under `cache_root` and returns the layer folder.
pub(crate) fn install(
    lock: &Lock,
    cache_root: &Path,
    config: &DepsConfig,
) -> Result<PathBuf, DepsError> {
    let layers = cache_root.join("layers");
    let final_dir = layers.join(lock.digest());
    if final_dir.is_dir() {
        tracing::debug!(layer = %final_dir.display(), "reusing installed dependency layer");
        return Ok(final_dir);
    }
    if lock.packages.len() > config.max_packages {
        return Err(DepsError::TooManyPackages {
            count: lock.packages.len(),
            limit: config.max_packages,
        });
    }
    validate(lock)?;
    fs::create_dir_all(&layers).map_err(DepsError::io("creating", &layers))?;
    remove_stale_staging(&layers);
    let staging = Staging::new(&layers)?;
    fill(lock, cache_root, config, staging.path())?;
    set_read_only(staging.path())?;
    staging.publish(&final_dir)
}

/// Downloads and unpacks every wheel of `lock` into `dir`.
fn fill(lock: &Lock, cache_root: &Path, config: &DepsConfig, dir: &Path) -> Result<(), DepsError> {
    let client = IndexClient::new(config)?;
    let progress = Progress::bar(config.progress, lock.packages.len() as u64, "installing");
    let mut budget = Budget::new(config.max_layer_bytes);
    for package in &lock.packages {
        progress.message(&format!("installing {} {}", package.name, package.version));
        let bytes = wheel_bytes(package, &client, cache_root)?;
        unpack(&package.wheel, &package.name, &bytes, dir, &mut budget)?;
        progress.step();
    }
    Ok(())
}

/// Refuses locks `resolve` could not have produced (they may come from storage).
fn validate(lock: &Lock) -> Result<(), DepsError> {
    let mut seen = HashSet::new();
    for package in &lock.packages {
        let bad = |reason: String| DepsError::BadLock { reason };
        let name = PackageName::from_str(&package.name)
            .map_err(|e| bad(format!("\"{}\" is not a package name ({e})", package.name)))?;
        if name.as_ref() != package.name || !seen.insert(name.clone()) {
            return Err(bad(format!(
                "\"{}\" is not normalized or appears twice",
                package.name
            )));
        }
        let wheel = WheelName::parse(&package.wheel)
            .filter(|w| w.name == name && w.fits_sandbox(lock.python))
            .ok_or_else(|| {
                bad(format!(
                    "\"{}\" is not a pure-Python wheel of {name} that loads on Python {}",
                    package.wheel, lock.python
                ))
            })?;
        if wheel.version.to_string() != package.version && !versions_equal(&wheel, &package.version)
        {
            return Err(bad(format!(
                "{} does not hold version {}",
                package.wheel, package.version
            )));
        }
        if !is_sha256_hex(&package.sha256) {
            return Err(bad(format!(
                "the sha256 of {} is not 64 lowercase hex digits",
                package.wheel
            )));
        }
    }
    Ok(())
}

fn versions_equal(wheel: &WheelName, version: &str) -> bool {
    pep440_rs::Version::from_str(version).is_ok_and(|v| v == wheel.version)
}

/// The wheel's bytes, from the wheel cache or fetched, checked against the lock's sha256.
fn wheel_bytes(
    package: &LockedPackage,
    client: &IndexClient,
    cache_root: &Path,
) -> Result<Vec<u8>, DepsError> {
    let cached = cached_wheel(cache_root, package);
    if let Ok(bytes) = fs::read(&cached) {
        if sha256_hex(&bytes) == package.sha256 {
            return Ok(bytes);
        }
        tracing::warn!(file = %cached.display(), "cached wheel is damaged; fetching it again");
    }
    let name = PackageName::from_str(&package.name).map_err(|e| DepsError::BadLock {
        reason: format!("\"{}\" is not a package name ({e})", package.name),
    })?;
    let file =
        client
            .find_file(&name, &package.wheel)?
            .ok_or_else(|| DepsError::WheelNotAvailable {
                package: package.name.clone(),
                wheel: package.wheel.clone(),
            })?;
    let bytes = client.fetch(&file)?;
    let actual = sha256_hex(&bytes);
    if actual != package.sha256 {
        return Err(DepsError::HashMismatch {
            file: package.wheel.clone(),
            expected: package.sha256.clone(),
            actual,
        });
    }
    store_in_cache(&cached, &bytes);
    Ok(bytes)
}

/// Where the verified wheel of `package` is kept under `cache_root`.
pub(crate) fn cached_wheel(cache_root: &Path, package: &LockedPackage) -> PathBuf {
    cache_root
        .join("wheels")
        .join(format!("{}.whl", package.sha256))
}

/// Keeps `bytes` as the cached wheel of `package` once they match the lock's sha256.
pub(crate) fn adopt_wheel(
    cache_root: &Path,
    package: &LockedPackage,
    bytes: &[u8],
) -> Result<(), DepsError> {
    let actual = sha256_hex(bytes);
    if actual != package.sha256 {
        return Err(DepsError::HashMismatch {
            file: package.wheel.clone(),
            expected: package.sha256.clone(),
            actual,
        });
    }
    store_in_cache(&cached_wheel(cache_root, package), bytes);
    Ok(())
}

/// Keeps a verified wheel for later installs; failing to is not an error.
fn store_in_cache(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    let stored = fs::create_dir_all(dir)
        .and_then(|()| tempfile::NamedTempFile::new_in(dir))
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, bytes)?;
            file.persist(path).map(drop).map_err(|e| e.error)
        });
    if let Err(error) = stored {
        tracing::debug!(file = %path.display(), %error, "could not cache a wheel");
    }
}

/// Name prefix of staging folders in `layers/` (never a lock digest, which is hex).
const STAGING_PREFIX: &str = ".staging-";

/// A staging folder beside the final layer; removed on drop unless published.
struct Staging {
    path: PathBuf,
    published: bool,
}

impl Staging {
    fn new(layers: &Path) -> Result<Self, DepsError> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(layers)
            .map_err(DepsError::io("creating a staging folder in", layers))?;
        Ok(Self {
            path: dir.keep(),
            published: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staging folder to `final_dir`; if a concurrent install got there first,
    /// its layer is used and this one is dropped.
    fn publish(mut self, final_dir: &Path) -> Result<PathBuf, DepsError> {
        match fs::rename(&self.path, final_dir) {
            Ok(()) => {
                self.published = true;
                Ok(final_dir.to_path_buf())
            }
            Err(_) if final_dir.is_dir() => Ok(final_dir.to_path_buf()),
            Err(error) => Err(DepsError::Io {
                action: "moving the finished layer to",
                path: final_dir.to_path_buf(),
                error,
            }),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        set_writable(&self.path);
        if let Err(error) = fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "could not remove a staging folder");
        }
    }
}

/// Staging folders older than this were left by a process that died mid-install.
const STALE_STAGING: Duration = Duration::from_secs(24 * 60 * 60);

/// Removes staging folders left behind by crashed installs (best effort).
fn remove_stale_staging(layers: &Path) {
    let Ok(entries) = fs::read_dir(layers) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if stale
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
        {
            drop(Staging {
                path: entry.path(),
                published: false,
            });
        }
    }
}

/// Makes every file 0o444 and every folder 0o555, deepest first.
fn set_read_only(dir: &Path) -> Result<(), DepsError> {
    for entry in fs::read_dir(dir).map_err(DepsError::io("listing", dir))? {
        let path = entry.map_err(DepsError::io("listing", dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(DepsError::io("inspecting", &path))?;
        if meta.is_dir() {
            set_read_only(&path)?;
        } else {
            set_mode(&path, 0o444)?;
        }
    }
    set_mode(dir, 0o555)
}

/// Gives the owner write access again everywhere (for removal); errors are ignored.
fn set_writable(dir: &Path) {
    let _ = set_mode(dir, 0o755);
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                set_writable(&path);
            }
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), DepsError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(DepsError::io("setting permissions of", path))
}

#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) -> Result<(), DepsError> {
    let mut permissions = fs::metadata(path)
        .map_err(DepsError::io("inspecting", path))?
        .permissions();
    permissions.set_readonly(mode & 0o200 == 0);
    fs::set_permissions(path, permissions).map_err(DepsError::io("setting permissions of", path))
}
