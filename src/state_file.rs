//! `vivarium run`'s state: an action's durable state kept in a JSON file, by default one per
//! action under the cache folder (`state/NAME-DIGEST.json`), or the file `--state` names.
//! A call reads the file as it was when the call started; when the run succeeds its writes
//! are committed by the service's own rules ([`vivarium_store::state_rules`]) over the file
//! as it is then, under an exclusive lock, so that two runs at once never lose a count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use vivarium_sandbox::{
    StateAccess, StateEntry, StateFuture, StateQuotas, StateReader, StateUsage, StateWrite,
    value_bytes,
};
use vivarium_store::StateRefusal;
use vivarium_store::state_rules::{Commit, Held, touched_keys};

use crate::exit::{Exit, Failure};

/// The state file of one action.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    quotas: StateQuotas,
}

/// What the file holds: the action's entries by key.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    entries: BTreeMap<String, FileEntry>,
}

/// One entry, as the service's state API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    value: Value,
    version: i64,
    /// When it expires, in microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// When it was last written, in microseconds since the epoch.
    updated_at: i64,
}

impl FileEntry {
    fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now)
    }
}

impl StateFile {
    /// The file `explicit` names, or the action's own under `cache`: named after the
    /// action's file or folder and a digest of its full path, so that two actions never share
    /// one.
    pub fn for_action(
        explicit: Option<&Path>,
        cache: &Path,
        action: &Path,
    ) -> Result<Self, Failure> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => cache.join("state").join(default_name(action)?),
        };
        Ok(Self {
            path,
            quotas: StateQuotas::DEFAULT,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The call's access to the state as the file holds it now.
    pub fn access(&self) -> Result<StateAccess, Failure> {
        let now = now_micros();
        let entries: BTreeMap<String, StateEntry> = self
            .load()?
            .entries
            .into_iter()
            .filter(|(_, entry)| entry.live_at(now))
            .map(|(key, entry)| {
                let stored = StateEntry {
                    value: entry.value,
                    version: entry.version,
                };
                (key, stored)
            })
            .collect();
        Ok(StateAccess {
            reader: Arc::new(Snapshot(entries)),
            quotas: self.quotas,
        })
    }

    /// Commits a successful run's `writes` over the file as it is now; answers the keys they
    /// changed, or the refusal (and then the file is unchanged).
    pub fn commit(
        &self,
        writes: &[StateWrite],
    ) -> Result<Result<Vec<String>, StateRefusal>, Failure> {
        let _lock = self.lock()?;
        let now = now_micros();
        let mut document = self.load()?;
        document.entries.retain(|_, entry| entry.live_at(now));
        let found = usage(
            document
                .entries
                .iter()
                .map(|(key, entry)| (key, &entry.value)),
        );
        let held = touched_keys(writes)
            .into_iter()
            .filter_map(|key| {
                let entry = document.entries.get(key)?;
                Some((key.to_string(), held(key, entry)))
            })
            .collect();
        let rules = Commit {
            quotas: &self.quotas,
            now,
        };
        let applied = match rules.apply(found, &held, writes) {
            Ok(applied) => applied,
            Err(refusal) => return Ok(Err(refusal)),
        };
        for (key, after) in &applied.changed {
            match after {
                Some(next) => document.entries.insert(
                    key.clone(),
                    FileEntry {
                        value: next.held.entry.value.clone(),
                        version: next.held.entry.version,
                        expires_at: next.held.expires_at,
                        updated_at: now,
                    },
                ),
                None => document.entries.remove(key),
            };
        }
        self.store(&document)?;
        Ok(Ok(applied.changed.into_keys().collect()))
    }

    /// The file's document; none yet when it does not exist.
    fn load(&self) -> Result<Document, Failure> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Document::default());
            }
            Err(error) => return Err(self.unusable(format!("cannot be read: {error}"))),
        };
        serde_json::from_slice(&text).map_err(|error| {
            self.unusable(format!(
                "is not a state file of the form {{\"entries\": {{\"KEY\": {{\"value\": ..., \
                 \"version\": 1, \"updated_at\": MICROS}}}}}} ({error}); fix it, or delete it to \
                 start from no state"
            ))
        })
    }

    /// Replaces the file with `document`, whole or not at all.
    fn store(&self, document: &Document) -> Result<(), Failure> {
        let folder = self.folder();
        let text = serde_json::to_vec_pretty(document)
            .map_err(|error| self.unusable(format!("cannot be written: {error}")))?;
        let mut temporary = tempfile::NamedTempFile::new_in(&folder)
            .map_err(|error| self.unusable(format!("cannot be written: {error}")))?;
        temporary
            .write_all(&text)
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|error| self.unusable(format!("cannot be written: {error}")))?;
        temporary
            .persist(&self.path)
            .map_err(|error| self.unusable(format!("cannot be written: {}", error.error)))?;
        Ok(())
    }

    /// Holds the file's lock (a file beside it) until dropped, waiting for another run's.
    fn lock(&self) -> Result<File, Failure> {
        let folder = self.folder();
        std::fs::create_dir_all(&folder)
            .map_err(|error| self.unusable(format!("has no folder: {error}")))?;
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let file = File::create(folder.join(name))
            .map_err(|error| self.unusable(format!("cannot be locked: {error}")))?;
        file.lock()
            .map_err(|error| self.unusable(format!("cannot be locked: {error}")))?;
        Ok(file)
    }

    fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn unusable(&self, problem: String) -> Failure {
        Failure {
            code: Exit::BadStateFile,
            message: format!("the state file {} {problem}", self.path.display()),
        }
    }
}

/// The default file's name for the action at `action`: its name, then a digest of its full
/// path.
fn default_name(action: &Path) -> Result<String, Failure> {
    let full = std::fs::canonicalize(action).map_err(|error| Failure {
        code: Exit::BadPackage,
        message: format!("the action {} cannot be found: {error}", action.display()),
    })?;
    let digest = hex::encode(Sha256::digest(full.as_os_str().as_encoded_bytes()));
    let stem = full
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "action".into());
    Ok(format!("{stem}-{}.json", &digest[..16]))
}

/// A stored entry as the commit rules read it.
fn held(key: &str, entry: &FileEntry) -> Held {
    Held {
        entry: StateEntry {
            value: entry.value.clone(),
            version: entry.version,
        },
        bytes: key.len() as u64 + value_bytes(&entry.value),
        expires_at: entry.expires_at,
    }
}

/// How much of the quotas `entries` (keys and their values) use.
fn usage<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> StateUsage {
    entries.fold(StateUsage::default(), |usage, (key, value)| StateUsage {
        keys: usage.keys + 1,
        bytes: usage.bytes + key.len() as u64 + value_bytes(value),
    })
}

/// Microseconds since the epoch, as the service stores times.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// The live entries as the call started, read by the call.
struct Snapshot(BTreeMap<String, StateEntry>);

impl StateReader for Snapshot {
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
        Box::pin(std::future::ready(Ok(self.0.get(key).cloned())))
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StateFuture<'a, Vec<String>> {
        let keys = self
            .0
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect();
        Box::pin(std::future::ready(Ok(keys)))
    }

    fn usage(&self) -> StateFuture<'_, StateUsage> {
        let found = usage(self.0.iter().map(|(key, entry)| (key, &entry.value)));
        Box::pin(std::future::ready(Ok(found)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file_in(folder: &Path) -> StateFile {
        StateFile::for_action(Some(&folder.join("state.json")), folder, folder).unwrap()
    }

    fn incr(key: &str, delta: i64) -> StateWrite {
        StateWrite::Incr {
            key: key.into(),
            delta,
            ttl: None,
        }
    }

    #[test]
    fn commits_add_up_and_the_next_call_reads_them() {
        let folder = tempfile::tempdir().unwrap();
        let file = file_in(folder.path());
        assert_eq!(file.commit(&[incr("n", 2)]).unwrap().unwrap(), vec!["n"]);
        file.commit(&[incr("n", 3)]).unwrap().unwrap();
        let access = file.access().unwrap();
        let entry = futures_ready(access.reader.get("n")).unwrap();
        assert_eq!(
            entry,
            StateEntry {
                value: json!(5),
                version: 2
            }
        );
    }

    #[test]
    fn a_refused_commit_leaves_the_file_as_it_was() {
        let folder = tempfile::tempdir().unwrap();
        let file = file_in(folder.path());
        file.commit(&[incr("n", 1)]).unwrap().unwrap();
        let before = std::fs::read(file.path()).unwrap();
        let conflict = StateWrite::Set {
            key: "n".into(),
            value: json!(9),
            ttl: None,
            if_version: Some(7),
        };
        let refusal = file.commit(&[incr("m", 1), conflict]).unwrap().unwrap_err();
        assert!(
            matches!(refusal, StateRefusal::Conflict { found: 1, .. }),
            "{refusal}"
        );
        assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }

    #[test]
    fn a_broken_file_is_refused_and_kept() {
        let folder = tempfile::tempdir().unwrap();
        let file = file_in(folder.path());
        std::fs::write(file.path(), b"{\"entries\": [1]}").unwrap();
        let failure = file.commit(&[incr("n", 1)]).unwrap_err();
        assert_eq!(failure.code, Exit::BadStateFile);
        assert!(failure.message.contains("delete it"), "{}", failure.message);
        assert_eq!(std::fs::read(file.path()).unwrap(), b"{\"entries\": [1]}");
    }

    #[test]
    fn expired_entries_are_absent_and_dropped_at_the_next_commit() {
        let folder = tempfile::tempdir().unwrap();
        let file = file_in(folder.path());
        let past = FileEntry {
            value: json!(1),
            version: 1,
            expires_at: Some(1),
            updated_at: 0,
        };
        let document = Document {
            entries: BTreeMap::from([("old".to_string(), past)]),
        };
        file.store(&document).unwrap();
        assert_eq!(
            futures_ready(file.access().unwrap().reader.get("old")),
            None
        );
        file.commit(&[incr("n", 1)]).unwrap().unwrap();
        assert!(!file.load().unwrap().entries.contains_key("old"));
    }

    #[test]
    fn the_default_file_is_the_action_s_own() {
        let cache = tempfile::tempdir().unwrap();
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first = StateFile::for_action(None, cache.path(), one.path()).unwrap();
        let second = StateFile::for_action(None, cache.path(), two.path()).unwrap();
        assert_ne!(first.path(), second.path());
        assert!(first.path().starts_with(cache.path().join("state")));
    }

    /// Reads a reader's answer, which the file's reader has ready at once.
    fn futures_ready<T>(future: StateFuture<'_, T>) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(future).unwrap()
    }
}
