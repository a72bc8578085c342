//! Extraction into the content-addressed cache: `<cache_root>/actions/<sha256>/`.
//!
//! An archive is extracted into a staging folder next to its final place, sealed read-only and
//! renamed into place in one step, so the final name only ever holds a complete extraction. A
//! failure at any point removes the staging folder; losing the rename to another process that
//! extracted the same archive simply means using its folder.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use crate::content;
use crate::scan::{self, Archive, Plan, Planned};
use crate::{ACTIONS_DIR, ActionDir, PackageError, PackageLimits};

/// Mode of extracted files: read-only for everyone.
const FILE_MODE: u32 = 0o444;
/// Mode of extracted folders: listable and enterable, not writable.
const DIR_MODE: u32 = 0o555;
/// Mode given to staging folders before deleting them.
const WRITABLE_DIR_MODE: u32 = 0o755;

/// Validates `bytes` as an action archive and extracts it (once) into the cache.
///
/// The final folder is `cache_root/actions/<sha256 of bytes>/` and holds `main.py` at its top
/// (a single top-level folder in the archive is stripped). If that folder already exists it is
/// reused without re-extracting: it can only have been created by a complete, validated
/// extraction of the same bytes. The structural checks (names, types, declared sizes) still run
/// first, so tightened limits apply to cached archives too. Files are made `0o444` and folders
/// `0o555`. Safe to call concurrently, from threads or processes, for the same archive.
///
/// # Errors
///
/// Every refusal of [`inspect_zip`](crate::inspect_zip) (nothing is left under the final name
/// when one happens mid-way), and [`PackageError::Io`] when the cache cannot be written.
pub fn extract_zip(
    bytes: &[u8],
    cache_root: &Path,
    limits: &PackageLimits,
) -> Result<ActionDir, PackageError> {
    let mut archive = scan::open(bytes, limits, "the upload")?;
    let plan = scan::plan(&mut archive, bytes, limits)?;
    let actions = cache_root.join(ACTIONS_DIR);
    let final_dir = actions.join(&plan.digest);
    if final_dir.is_dir() {
        tracing::debug!(digest = %plan.digest, root = %final_dir.display(), "reusing extracted action");
        return action_dir(&final_dir, plan.digest);
    }
    fs::create_dir_all(&actions).map_err(|error| {
        PackageError::io(
            format!("could not create the cache folder {}", actions.display()),
            error,
        )
    })?;
    let staging = Staging::create(&actions)?;
    write_entries(&mut archive, &plan, limits, &staging.path)?;
    seal(&plan.entries, &staging.path)?;
    staging.install(&final_dir, &plan.digest)?;
    sync_dir(&actions)?;
    action_dir(&final_dir, plan.digest)
}

/// The result for a final folder, as an absolute path.
fn action_dir(root: &Path, digest: String) -> Result<ActionDir, PackageError> {
    let root = fs::canonicalize(root).map_err(|error| {
        PackageError::io(format!("could not resolve {}", root.display()), error)
    })?;
    Ok(ActionDir {
        root,
        digest: Some(digest),
    })
}

/// Creates every planned folder and file under `root`, enforcing limits on the real bytes.
fn write_entries(
    archive: &mut Archive<'_>,
    plan: &Plan,
    limits: &PackageLimits,
    root: &Path,
) -> Result<(), PackageError> {
    let mut total: u64 = 0;
    for entry in &plan.entries {
        let target = root.join(entry.relative());
        if entry.is_dir {
            create_dirs(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            create_dirs(parent)?;
        }
        total = total.saturating_add(write_file(archive, entry, limits, total, &target)?);
    }
    Ok(())
}

/// `create_dir_all` with a clear error.
fn create_dirs(path: &Path) -> Result<(), PackageError> {
    fs::create_dir_all(path).map_err(|error| {
        PackageError::io(format!("could not create folder {}", path.display()), error)
    })
}

/// Writes one entry to a new file (never overwriting or following anything) and syncs it.
fn write_file(
    archive: &mut Archive<'_>,
    entry: &Planned,
    limits: &PackageLimits,
    total_before: u64,
    target: &Path,
) -> Result<u64, PackageError> {
    let failed = |error| PackageError::io(format!("could not write {}", target.display()), error);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(failed)?;
    let mut out = BufWriter::new(file);
    let size = content::copy_entry(archive, entry, limits, total_before, &mut out)?;
    let file = out
        .into_inner()
        .map_err(|error| failed(error.into_error()))?;
    file.sync_all().map_err(failed)?;
    Ok(size)
}

/// Makes files `0o444` and folders `0o555`, children before parents, syncing each folder.
fn seal(entries: &[Planned], root: &Path) -> Result<(), PackageError> {
    for entry in entries.iter().filter(|e| !e.is_dir) {
        set_mode(&root.join(entry.relative()), FILE_MODE)?;
    }
    for dir in folders_deepest_first(entries) {
        let path = root.join(&dir);
        set_mode(&path, DIR_MODE)?;
        sync_dir(&path)?;
    }
    set_mode(root, DIR_MODE)?;
    sync_dir(root)
}

/// Every folder the plan creates (explicit entries and parents of entries), deepest first.
fn folders_deepest_first(entries: &[Planned]) -> Vec<String> {
    let mut folders = BTreeSet::new();
    for entry in entries {
        let own = usize::from(entry.is_dir);
        let depth = entry.components.len().saturating_sub(1) + own;
        for end in 1..=depth {
            folders.insert(entry.components[..end].join("/"));
        }
    }
    let mut folders: Vec<String> = folders.into_iter().collect();
    folders.sort_by_key(|folder| std::cmp::Reverse(folder.matches('/').count()));
    folders
}

/// Sets permission bits (on non-Unix systems only the read-only flag).
fn set_mode(path: &Path, mode: u32) -> Result<(), PackageError> {
    apply_mode(path, mode).map_err(|error| {
        PackageError::io(
            format!("could not set permissions of {}", path.display()),
            error,
        )
    })
}

/// Sets Unix permission bits.
#[cfg(unix)]
fn apply_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Sets the read-only flag when `mode` grants no write permission.
#[cfg(not(unix))]
fn apply_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    fs::set_permissions(path, permissions)
}

/// Flushes a folder's entries to disk, so a crash cannot leave a renamed but empty folder.
fn sync_dir(path: &Path) -> Result<(), PackageError> {
    let synced = if cfg!(unix) {
        File::open(path).and_then(|dir| dir.sync_all())
    } else {
        Ok(())
    };
    synced.map_err(|error| PackageError::io(format!("could not sync {}", path.display()), error))
}

/// A staging folder that is deleted when dropped unless it was installed.
struct Staging {
    path: PathBuf,
    armed: bool,
}

impl Staging {
    /// Creates a fresh staging folder in `parent` (same file system as the final folder).
    fn create(parent: &Path) -> Result<Self, PackageError> {
        let dir = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(parent)
            .map_err(|error| {
                PackageError::io(
                    format!("could not create a staging folder in {}", parent.display()),
                    error,
                )
            })?;
        Ok(Self {
            path: dir.keep(),
            armed: true,
        })
    }

    /// Renames the staging folder to `final_dir`. If another extraction of the same archive
    /// got there first, ours is deleted and theirs is used.
    fn install(mut self, final_dir: &Path, digest: &str) -> Result<(), PackageError> {
        match fs::rename(&self.path, final_dir) {
            Ok(()) => {
                self.armed = false;
                tracing::info!(%digest, root = %final_dir.display(), "extracted action");
                Ok(())
            }
            Err(_) if final_dir.is_dir() => {
                tracing::debug!(%digest, "another extraction of the same action won the race");
                Ok(())
            }
            Err(error) => Err(PackageError::io(
                format!(
                    "could not move the extracted action to {}",
                    final_dir.display()
                ),
                error,
            )),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed
            && let Err(error) = discard(&self.path)
        {
            tracing::warn!(path = %self.path.display(), %error, "could not remove staging folder");
        }
    }
}

/// Deletes a (possibly sealed) folder tree: folders are made writable first, parents before
/// children, without following symbolic links.
pub(crate) fn discard(root: &Path) -> io::Result<()> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        apply_mode(&dir, WRITABLE_DIR_MODE)?;
        for child in fs::read_dir(&dir)? {
            let child = child?;
            if child.file_type()?.is_dir() {
                pending.push(child.path());
            }
        }
    }
    fs::remove_dir_all(root)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::Barrier;

    use super::*;
    use crate::testutil::{Cache, minimal, replace_all, stored, zip_of, zip_with};

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Names in `cache/actions/`, staging folders included.
    fn cached(cache: &Path) -> Vec<String> {
        match fs::read_dir(cache.join(ACTIONS_DIR)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn extraction_is_read_only_and_content_addressed() {
        let cache = Cache::new();
        let bytes = zip_of(&[
            ("main.py", b"print('hi')\n"),
            ("pkg/", b""),
            ("pkg/sub/mod.py", b"X = 1\n"),
        ]);
        let action = extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap();
        let digest = scan::sha256_hex(&bytes);
        assert_eq!(action.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(
            action.root,
            cache
                .path()
                .join(ACTIONS_DIR)
                .join(&digest)
                .canonicalize()
                .unwrap()
        );
        assert_eq!(
            fs::read(action.root.join("main.py")).unwrap(),
            b"print('hi')\n"
        );
        assert_eq!(mode(&action.root.join("main.py")), 0o444);
        assert_eq!(mode(&action.root.join("pkg/sub/mod.py")), 0o444);
        assert_eq!(mode(&action.root.join("pkg/sub")), 0o555);
        assert_eq!(mode(&action.root.join("pkg")), 0o555);
        assert_eq!(mode(&action.root), 0o555);
        assert_eq!(cached(cache.path()), [digest]);
    }

    #[test]
    fn single_folder_is_stripped_and_junk_is_not_extracted() {
        let cache = Cache::new();
        let bytes = zip_of(&[
            ("real_time_action_script/", b""),
            ("real_time_action_script/main.py", b"print('hi')\n"),
            ("real_time_action_script/.DS_Store", b"junk"),
            ("__MACOSX/real_time_action_script/._main.py", b"junk"),
        ]);
        let action = extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap();
        let mut names: Vec<String> = fs::read_dir(&action.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["main.py"]);
    }

    #[test]
    fn re_extraction_reuses_the_folder() {
        let cache = Cache::new();
        let bytes = minimal();
        let limits = PackageLimits::default();
        let first = extract_zip(&bytes, cache.path(), &limits).unwrap();
        let inode = fs::metadata(first.root.join("main.py")).unwrap().ino();
        let second = extract_zip(&bytes, cache.path(), &limits).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            fs::metadata(second.root.join("main.py")).unwrap().ino(),
            inode
        );
        assert_eq!(cached(cache.path()).len(), 1);
    }

    #[test]
    fn cache_hit_still_applies_structural_limits() {
        let cache = Cache::new();
        let bytes = zip_of(&[("main.py", b""), ("a.py", b"")]);
        extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap();
        let tight = PackageLimits {
            max_entries: 1,
            ..PackageLimits::default()
        };
        let error = extract_zip(&bytes, cache.path(), &tight).unwrap_err();
        assert!(matches!(
            error,
            PackageError::TooManyEntries { count: 2, limit: 1 }
        ));
    }

    #[test]
    fn concurrent_extraction_yields_one_folder() {
        let cache = Cache::new();
        let bytes = zip_of(&[("main.py", b"print('hi')\n"), ("lib/a.py", &[b'#'; 4096])]);
        let threads = 8;
        let barrier = Barrier::new(threads);
        let roots: Vec<PathBuf> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        extract_zip(&bytes, cache.path(), &PackageLimits::default())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap().root)
                .collect()
        });
        assert!(roots.iter().all(|root| *root == roots[0]));
        assert_eq!(cached(cache.path()), [scan::sha256_hex(&bytes)]);
        assert_eq!(fs::read(roots[0].join("lib/a.py")).unwrap(), [b'#'; 4096]);
    }

    #[test]
    fn failure_midway_leaves_nothing_behind() {
        let cache = Cache::new();
        let mut bytes = zip_with(
            &[
                ("main.py", b"x = 1\n"),
                ("lib/", b""),
                ("lib/data.txt", b"hello world"),
            ],
            stored(),
        );
        replace_all(&mut bytes, b"hello world", b"hellO world");
        let error = extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap_err();
        assert!(
            matches!(error, PackageError::CorruptEntry { ref entry, .. } if entry == "lib/data.txt")
        );
        assert!(cached(cache.path()).is_empty());
    }

    #[test]
    fn refused_archive_creates_nothing() {
        let cache = Cache::new();
        let bytes = zip_of(&[("app.py", b"")]);
        let error = extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap_err();
        assert!(matches!(error, PackageError::MissingMain));
        assert!(!cache.path().join(ACTIONS_DIR).exists());
    }

    #[test]
    fn discard_removes_a_sealed_tree() {
        let parent = Cache::new();
        let staging = Staging::create(parent.path()).unwrap();
        let path = staging.path.clone();
        fs::create_dir_all(path.join("a/b")).unwrap();
        fs::write(path.join("a/b/f.py"), b"").unwrap();
        let entries = vec![Planned {
            index: 0,
            name: "a/b/f.py".to_owned(),
            components: vec!["a".into(), "b".into(), "f.py".into()],
            is_dir: false,
            size: 0,
            compressed: 0,
        }];
        seal(&entries, &path).unwrap();
        assert_eq!(mode(&path.join("a/b")), 0o555);
        drop(staging);
        assert!(!path.exists());
    }

    #[test]
    fn folders_are_sealed_deepest_first() {
        let planned = |components: &[&str], is_dir| Planned {
            index: 0,
            name: String::new(),
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            is_dir,
            size: 0,
            compressed: 0,
        };
        let entries = [
            planned(&["a"], true),
            planned(&["a", "b", "c.py"], false),
            planned(&["d", "e"], true),
            planned(&["top.py"], false),
        ];
        assert_eq!(folders_deepest_first(&entries), ["a/b", "d/e", "a", "d"]);
    }
}
