//! Bytecode compiled ahead for an action's own modules. The pre-initialized interpreter has the
//! standard library loaded, but an action's `main.py` (and its helpers and dependencies) come
//! from read-only folders without `.pyc` files, so each call would compile them again: several
//! milliseconds of a call whose fixed cost is about one.
//!
//! On an action's first call, a compile-only call (the runner's `{"vivarium": "compile"}`,
//! which executes none of the action's code) answers the bytecode of every Python file under
//! `/action` and `/deps`. It is stored here, one folder per action folder and layer, and later
//! calls mount that folder read-only at [`BYTECODE_MOUNT`]. Each file is a hash-checked `.pyc`
//! (PEP 552): the runner uses it only when it was compiled from exactly the source it finds, so
//! a folder whose files changed since is still run from its source, never from stale code.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::SandboxError;
use crate::limits::Limits;
use crate::sandbox::{ACTION_MOUNT, DEPENDENCY_MOUNT};

/// Where a call's precompiled bytecode appears inside the guest: the bytecode of
/// `/action/main.py` is `/pycache/action/main.pyc`.
pub const BYTECODE_MOUNT: &str = "/pycache";
/// The caps of a compile-only call: the defaults, with room for the bytecode of a large
/// dependency layer in its answer.
pub(crate) const COMPILE_LIMITS: Limits = Limits {
    result_bytes: 128 << 20,
    ..Limits::DEFAULT
};

/// The bytecode folders of one snapshot, under `cache_dir/bytecode/`.
#[derive(Debug, Clone)]
pub(crate) struct BytecodeCache {
    root: PathBuf,
    /// Folders whose compile-only call failed in this process (shared by clones).
    failed: Arc<Mutex<HashSet<PathBuf>>>,
}

impl BytecodeCache {
    /// The cache for the snapshot whose image has digest `snapshot_sha256` (bytecode is
    /// specific to the interpreter that compiled it).
    pub(crate) fn new(cache_dir: &Path, snapshot_sha256: &str) -> Self {
        let name = snapshot_sha256.get(..16).unwrap_or(snapshot_sha256);
        Self {
            root: cache_dir.join("bytecode").join(name),
            failed: Arc::default(),
        }
    }

    /// Whether compiling `folder` already failed in this process.
    pub(crate) fn failed_before(&self, folder: &Path) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(folder)
    }

    /// Notes that compiling `folder` failed, so that its calls stop trying until a restart.
    pub(crate) fn remember_failure(&self, folder: PathBuf) {
        self.failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(folder);
    }

    /// The folder holding the bytecode of `action_dir` with `layer`, whether or not it has
    /// been compiled yet. Server folders are named by their content's digest, so the folder
    /// of a path is the folder of that content.
    pub(crate) fn folder(&self, action_dir: &Path, layer: Option<&Path>) -> PathBuf {
        let mut digest = Sha256::new();
        for path in [Some(action_dir), layer].into_iter().flatten() {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            digest.update(absolute.as_os_str().as_encoded_bytes());
            digest.update([0]);
        }
        self.root.join(hex::encode(digest.finalize()))
    }

    /// Stores the compile-only call's answer (`.py` path under `/` to base64 `.pyc` bytes)
    /// as `folder`, all at once: a folder is either complete or absent. Another call that
    /// stored it first wins; its bytecode is the same.
    pub(crate) fn store(&self, folder: &Path, compiled: &Value) -> Result<(), SandboxError> {
        let files = compiled.as_object().ok_or_else(|| {
            SandboxError::Setup("the compile-only call answered no table of files".into())
        })?;
        fs::create_dir_all(&self.root).map_err(|e| io("creating", &self.root, &e))?;
        let staging =
            tempfile::tempdir_in(&self.root).map_err(|e| io("staging in", &self.root, &e))?;
        for (source, pyc) in files {
            let target = staging.path().join(bytecode_path(source)?);
            let bytes = pyc
                .as_str()
                .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
                .ok_or_else(|| {
                    SandboxError::Setup(format!("the bytecode of {source} is not base64"))
                })?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| io("creating", parent, &e))?;
            }
            fs::write(&target, bytes).map_err(|e| io("writing", &target, &e))?;
        }
        let staged = staging.keep();
        if let Err(error) = fs::rename(&staged, folder) {
            let _ = fs::remove_dir_all(&staged);
            if !folder.is_dir() {
                return Err(io("renaming into", folder, &error));
            }
        }
        Ok(())
    }
}

/// Where the bytecode of the guest file `source` (`action/main.py`) goes in a bytecode
/// folder (`action/main.pyc`). Only Python files under the action's and the layer's mounts
/// are accepted: the answer comes from the guest, so nothing it names may reach elsewhere.
fn bytecode_path(source: &str) -> Result<PathBuf, SandboxError> {
    let refused = || SandboxError::Setup(format!("the compile-only call named {source:?}"));
    let path = Path::new(source);
    let mut components = path.components();
    let mount = components.next().ok_or_else(refused)?;
    let under_a_mount = [ACTION_MOUNT, DEPENDENCY_MOUNT]
        .iter()
        .any(|guest| Path::new(guest.trim_start_matches('/')).as_os_str() == mount.as_os_str());
    let plain = components.all(|part| matches!(part, Component::Normal(_)));
    if !under_a_mount || !plain || path.extension().is_none_or(|ext| ext != "py") {
        return Err(refused());
    }
    Ok(PathBuf::from(format!("{source}c")))
}

fn io(doing: &str, path: &Path, error: &std::io::Error) -> SandboxError {
    SandboxError::Setup(format!("{doing} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_goes_beside_its_mount_path() {
        assert_eq!(
            bytecode_path("action/pkg/helpers.py").ok(),
            Some(PathBuf::from("action/pkg/helpers.pyc"))
        );
        assert_eq!(
            bytecode_path("deps/six.py").ok(),
            Some(PathBuf::from("deps/six.pyc"))
        );
    }

    #[test]
    fn names_outside_the_mounts_are_refused() {
        for hostile in [
            "/etc/passwd.py",
            "../outside.py",
            "action/../../outside.py",
            "usr/local/lib/python3.13/os.py",
            "action/main.txt",
            "action",
            "",
            "actionx/main.py",
        ] {
            assert!(bytecode_path(hostile).is_err(), "{hostile} was accepted");
        }
    }

    #[test]
    fn a_stored_answer_appears_whole_and_a_hostile_one_leaves_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let bytecode = BytecodeCache::new(cache.path(), "0123456789abcdef0123");
        let folder = bytecode.folder(Path::new("/srv/actions/a"), None);
        let answer = serde_json::json!({"action/main.py": "AAEC", "action/pkg/x.py": "AwQ="});
        bytecode.store(&folder, &answer).unwrap();
        assert_eq!(fs::read(folder.join("action/main.pyc")).unwrap(), [0, 1, 2]);
        assert_eq!(fs::read(folder.join("action/pkg/x.pyc")).unwrap(), [3, 4]);

        let other = bytecode.folder(Path::new("/srv/actions/b"), None);
        let hostile = serde_json::json!({"action/main.py": "AAEC", "../../escape.py": "AAEC"});
        assert!(bytecode.store(&other, &hostile).is_err());
        assert!(!other.exists());
        let leftovers = fs::read_dir(bytecode.root.clone()).unwrap().count();
        assert_eq!(leftovers, 1, "only the first folder remains");
    }

    #[test]
    fn a_failure_is_remembered_for_its_folder_only() {
        let bytecode = BytecodeCache::new(Path::new("/cache"), "feedfacefeedface");
        let (failing, other) = (
            bytecode.folder(Path::new("/a"), None),
            bytecode.folder(Path::new("/b"), None),
        );
        bytecode.clone().remember_failure(failing.clone());
        assert!(bytecode.failed_before(&failing), "clones share what failed");
        assert!(!bytecode.failed_before(&other));
    }

    #[test]
    fn folders_differ_by_action_and_layer() {
        let bytecode = BytecodeCache::new(Path::new("/cache"), "feedfacefeedface");
        let plain = bytecode.folder(Path::new("/a"), None);
        assert_ne!(plain, bytecode.folder(Path::new("/b"), None));
        assert_ne!(
            plain,
            bytecode.folder(Path::new("/a"), Some(Path::new("/layer")))
        );
        assert_eq!(plain, bytecode.folder(Path::new("/a"), None));
    }
}
