//! Keeping the cache bounded: what nothing has used for a while is evicted, and past a size
//! cap the least recently used goes first.
//!
//! The cache holds, per interpreter and per action, things that can always be made again:
//! compiled modules (`compiled/`), snapshots (`snapshots/`), bytecode (`bytecode/<snapshot>/`),
//! extracted actions (`actions/`) and dependency layers (`layers/`). Each entry's last use is
//! its modification time, which [`touch`] sets when a process uses it (at most once an hour
//! per entry and process, so calls do not pay for it). An entry used in the last
//! [`EvictionPolicy::min_idle`] is never evicted, whatever the cap: another process (or a call
//! of this one) may be using it. The interpreter's build folders (`python-src/`) and the
//! pinned interpreter (`runtime/`) are not swept: they are what the caches are made from.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The folders swept, each entry directly inside one of them (for `bytecode`, inside each
/// of its folders) being one unit of eviction.
const SWEPT: &[&str] = &["compiled", "snapshots", "actions", "layers"];
/// The folder whose sub-folders hold one bytecode folder per action.
const BYTECODE: &str = "bytecode";
/// How often one process records a use of the same entry.
const TOUCH_INTERVAL: Duration = Duration::from_secs(3600);

/// When entries are evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// The cache's largest size in bytes: past it, the least recently used entries go first.
    pub max_bytes: u64,
    /// Entries unused for this long go whatever the size.
    pub max_idle: Duration,
    /// Entries used more recently than this always stay.
    pub min_idle: Duration,
}

impl EvictionPolicy {
    /// The defaults: 10 GiB, 30 days unused, nothing used in the last hour.
    pub const DEFAULT: Self = Self {
        max_bytes: 10 << 30,
        max_idle: Duration::from_secs(30 * 24 * 3600),
        min_idle: Duration::from_secs(3600),
    };
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed.
    pub evicted: usize,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Bytes the swept folders hold afterwards.
    pub kept_bytes: u64,
}

/// Records that `entry` (a cache entry, file or folder) is in use, so that sweeps keep it.
/// Best effort: a failure only makes the entry look older.
pub fn touch(entry: &Path) {
    static TOUCHED: Mutex<Option<HashMap<PathBuf, Instant>>> = Mutex::new(None);
    {
        let mut touched = TOUCHED.lock().unwrap_or_else(|p| p.into_inner());
        let touched = touched.get_or_insert_with(HashMap::new);
        if touched
            .get(entry)
            .is_some_and(|at| at.elapsed() < TOUCH_INTERVAL)
        {
            return;
        }
        touched.insert(entry.to_path_buf(), Instant::now());
    }
    if let Err(error) = fs::File::open(entry).and_then(|file| file.set_modified(SystemTime::now()))
    {
        tracing::debug!(%error, entry = %entry.display(), "could not record a cache entry's use");
    }
}

/// Evicts from `cache_dir` what `policy` says may go.
pub fn sweep(cache_dir: &Path, policy: &EvictionPolicy) -> Swept {
    sweep_at(cache_dir, policy, SystemTime::now())
}

/// The file whose modification time says when [`sweep_if_due`] last swept a cache.
const LAST_SWEEP: &str = ".last-sweep";

/// Sweeps `cache_dir` as [`sweep`] does unless a sweep started there less than `every` ago
/// (by any process): for tools that run briefly and often, such as `vivarium run`, which have
/// no hourly task of their own. Answers what was swept, or `None` when none was due.
pub fn sweep_if_due(cache_dir: &Path, policy: &EvictionPolicy, every: Duration) -> Option<Swept> {
    let stamp = cache_dir.join(LAST_SWEEP);
    let last = fs::metadata(&stamp).and_then(|meta| meta.modified()).ok();
    let due = last.is_none_or(|at| at.elapsed().is_ok_and(|since| since >= every));
    if !due {
        return None;
    }
    if let Err(error) = fs::write(&stamp, b"") {
        tracing::debug!(%error, stamp = %stamp.display(), "could not record a cache sweep");
        return None;
    }
    Some(sweep(cache_dir, policy))
}

fn sweep_at(cache_dir: &Path, policy: &EvictionPolicy, now: SystemTime) -> Swept {
    let mut entries = entries(cache_dir);
    entries.sort_by_key(|entry| entry.used);
    let mut kept_bytes: u64 = entries.iter().map(|entry| entry.bytes).sum();
    let mut swept = Swept::default();
    for entry in entries {
        let idle = now.duration_since(entry.used).unwrap_or_default();
        let over_cap = kept_bytes > policy.max_bytes;
        if idle < policy.min_idle || (idle < policy.max_idle && !over_cap) {
            continue;
        }
        if remove(&entry.members) {
            swept.evicted += 1;
            swept.freed_bytes += entry.bytes;
            kept_bytes = kept_bytes.saturating_sub(entry.bytes);
        }
    }
    swept.kept_bytes = kept_bytes;
    swept
}

/// One unit of eviction: an entry and the files beside it that belong to it (a compiled
/// module's digest and lock share its name up to the first dot).
#[derive(Debug)]
struct Entry {
    members: Vec<PathBuf>,
    used: SystemTime,
    bytes: u64,
}

fn entries(cache_dir: &Path) -> Vec<Entry> {
    let mut folders: Vec<PathBuf> = SWEPT.iter().map(|name| cache_dir.join(name)).collect();
    folders.extend(children(&cache_dir.join(BYTECODE)));
    folders.iter().flat_map(|folder| grouped(folder)).collect()
}

/// The entries of one swept folder, files grouped by their name up to the first dot.
fn grouped(folder: &Path) -> Vec<Entry> {
    let mut groups: HashMap<String, Entry> = HashMap::new();
    for path in children(folder) {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let stem = name.split('.').next().unwrap_or(name).to_string();
        let (used, bytes) = (modified(&path), size(&path));
        let entry = groups.entry(stem).or_insert(Entry {
            members: Vec::new(),
            used,
            bytes: 0,
        });
        entry.members.push(path);
        entry.used = entry.used.max(used);
        entry.bytes += bytes;
    }
    groups.into_values().collect()
}

fn children(folder: &Path) -> Vec<PathBuf> {
    fs::read_dir(folder)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default()
}

fn modified(path: &Path) -> SystemTime {
    fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Bytes under `path`, folders included, links not followed.
fn size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    children(path).iter().map(|child| size(child)).sum()
}

/// Removes an entry's members: each folder is first renamed aside, so that a reader sees it
/// whole or not at all, and made writable (extracted actions are read-only).
fn remove(members: &[PathBuf]) -> bool {
    members.iter().all(|member| {
        let removed = if member.is_dir() {
            remove_folder(member)
        } else {
            fs::remove_file(member)
        };
        match removed {
            Ok(()) => true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
            Err(error) => {
                tracing::warn!(%error, entry = %member.display(), "could not evict a cache entry");
                false
            }
        }
    })
}

fn remove_folder(folder: &Path) -> std::io::Result<()> {
    let aside = folder.with_file_name(format!(
        ".evicted-{}-{}",
        std::process::id(),
        folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("entry")
    ));
    fs::rename(folder, &aside)?;
    make_writable(&aside);
    fs::remove_dir_all(&aside)
}

fn make_writable(folder: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(folder, fs::Permissions::from_mode(0o755));
    for child in children(folder) {
        if child.is_dir() && !child.is_symlink() {
            make_writable(&child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn file(path: &Path, bytes: usize, age: Duration) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![0u8; bytes]).unwrap();
        set_age(path, age);
    }

    fn set_age(path: &Path, age: Duration) {
        let file = fs::File::open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn read_only_action(cache: &Path, name: &str, age: Duration) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let folder = cache.join("actions").join(name);
        file(&folder.join("pkg/mod.py"), 100, age);
        file(&folder.join("main.py"), 100, age);
        for dir in [folder.join("pkg"), folder.clone()] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
            set_age(&dir, age);
        }
        folder
    }

    #[test]
    fn a_due_sweep_runs_once_per_interval_across_calls() {
        let cache = tempfile::tempdir().unwrap();
        let old = read_only_action(cache.path(), "old", 40 * DAY);
        let first = sweep_if_due(cache.path(), &EvictionPolicy::DEFAULT, DAY);
        assert_eq!(first.map(|swept| swept.evicted), Some(1));
        assert!(!old.exists());
        read_only_action(cache.path(), "older", 50 * DAY);
        assert_eq!(
            sweep_if_due(cache.path(), &EvictionPolicy::DEFAULT, DAY),
            None
        );
        set_age(&cache.path().join(LAST_SWEEP), 2 * DAY);
        let later = sweep_if_due(cache.path(), &EvictionPolicy::DEFAULT, DAY);
        assert_eq!(later.map(|swept| swept.evicted), Some(1));
    }

    #[test]
    fn entries_unused_past_the_idle_limit_go_and_recent_ones_stay() {
        let cache = tempfile::tempdir().unwrap();
        let old = read_only_action(cache.path(), "old", 40 * DAY);
        let recent = read_only_action(cache.path(), "recent", DAY);
        let bytecode = cache.path().join("bytecode/snap/aaaa");
        file(&bytecode.join("main.pyc"), 10, 40 * DAY);
        set_age(&bytecode, 40 * DAY);
        let pythons = cache.path().join("python-src/out/python.wasm");
        file(&pythons, 10, 400 * DAY);
        let swept = sweep(cache.path(), &EvictionPolicy::DEFAULT);
        assert_eq!(swept.evicted, 2, "{swept:?}");
        assert!(!old.exists() && !bytecode.exists());
        assert!(recent.join("main.py").is_file() && pythons.is_file());
        let leftovers: Vec<_> = children(&cache.path().join("actions"));
        assert_eq!(leftovers, [recent], "nothing is left aside");
    }

    #[test]
    fn past_the_cap_the_least_recently_used_go_first_but_never_one_in_use() {
        let cache = tempfile::tempdir().unwrap();
        let compiled = cache.path().join("compiled");
        for (name, age) in [
            ("a", 5 * DAY),
            ("b", 3 * DAY),
            ("c", 2 * HOUR),
            ("d", HOUR / 2),
        ] {
            file(&compiled.join(format!("{name}.cwasm")), 1000, age);
            file(&compiled.join(format!("{name}.cwasm.sha256")), 64, age);
        }
        let policy = EvictionPolicy {
            max_bytes: 2200,
            ..EvictionPolicy::DEFAULT
        };
        let swept = sweep(cache.path(), &policy);
        assert_eq!(swept.evicted, 2, "{swept:?}");
        let mut left: Vec<String> = children(&compiled)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["c.cwasm", "c.cwasm.sha256", "d.cwasm", "d.cwasm.sha256"]
        );
        let tight = EvictionPolicy {
            max_bytes: 0,
            ..EvictionPolicy::DEFAULT
        };
        let again = sweep(cache.path(), &tight);
        assert_eq!(
            again.evicted, 1,
            "c goes, d was used within the hour: {again:?}"
        );
        assert!(compiled.join("d.cwasm").is_file());
    }

    #[test]
    fn a_touched_entry_counts_as_just_used() {
        let cache = tempfile::tempdir().unwrap();
        let layer = cache.path().join("layers/abc");
        file(&layer.join("six.py"), 10, 40 * DAY);
        set_age(&layer, 40 * DAY);
        touch(&layer);
        assert_eq!(sweep(cache.path(), &EvictionPolicy::DEFAULT).evicted, 0);
        assert!(layer.is_dir());
    }
}
