//! Sweeping the blob store: action ZIPs and dependency wheels no stored action references,
//! and the temporary files of interrupted writes, go once they are old enough.
//!
//! They come from uploads, replacements and deletes the service was killed in the middle of
//! (the ZIP is stored before the action's record, and a replaced or deleted action's ZIP is
//! removed after it), and are never read. A blob is removed only when no action of its
//! organization references it and it was last written before the sweep's threshold: an
//! upload stores its ZIP before recording the action, and the threshold is what keeps a
//! sweep from taking the ZIP of an upload still between the two on another replica, and the
//! organization's [`BlobGate`] on this one. The listing is read before
//! the references, and each candidate's time is read again just before it is removed, so a
//! ZIP stored again meanwhile (the same content uploaded anew) is kept.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use vivarium_deps::Lock;
use vivarium_store::{BlobKey, BlobStore, MetadataStore, StoreError};

use crate::blob_gate::BlobGate;

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobsSwept {
    /// Action ZIPs no action referenced.
    pub zips: usize,
    /// Dependency wheels no action's lock referenced.
    pub wheels: usize,
    /// Temporary files of interrupted writes.
    pub staging: usize,
}

/// What one organization's actions reference.
struct InUse {
    zips: HashSet<String>,
    /// `None` when a lock could not be read: then no wheel of the organization is removed.
    wheels: Option<HashSet<String>>,
}

impl InUse {
    async fn of(meta: &dyn MetadataStore, org: &str) -> Result<Self, StoreError> {
        let zips = meta.zip_digests_in_use(org).await?;
        let mut wheels = HashSet::new();
        for text in meta.dependency_locks_in_use(org).await? {
            match serde_json::from_str::<Lock>(&text) {
                Ok(lock) => wheels.extend(lock.packages.into_iter().map(|p| p.sha256)),
                Err(error) => {
                    tracing::warn!(%org, %error, "a stored dependency lock is unreadable; its organization's wheels are kept");
                    return Ok(Self { zips, wheels: None });
                }
            }
        }
        Ok(Self {
            zips,
            wheels: Some(wheels),
        })
    }

    /// The keys of `listed` that are strays.
    fn strays(&self, listed: Vec<BlobKey>) -> Vec<BlobKey> {
        listed
            .into_iter()
            .filter(|key| self.is_stray(key))
            .collect()
    }

    /// Whether `key` is a ZIP or a wheel nothing references (other blobs are never swept).
    fn is_stray(&self, key: &BlobKey) -> bool {
        if let Some(digest) = key.action_zip_digest() {
            return !self.zips.contains(digest);
        }
        match (key.wheel_digest(), &self.wheels) {
            (Some(digest), Some(wheels)) => !wheels.contains(digest),
            _ => false,
        }
    }
}

/// Removes what no action references and was written more than `min_age` ago, each
/// organization's strays under its `gate` (so that no upload of this process is between
/// storing a blob and recording its reference meanwhile).
///
/// # Errors
///
/// The first store failure; what was removed before it stays removed.
pub async fn sweep_blobs(
    meta: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    gate: &BlobGate,
    min_age: Duration,
) -> Result<BlobsSwept, StoreError> {
    let cutoff = SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut swept = BlobsSwept::default();
    for org in meta.list_orgs().await? {
        let listed = blobs.list_org(&org.name).await?;
        let strays = InUse::of(meta, &org.name).await?.strays(listed);
        if strays.is_empty() {
            continue;
        }
        let _removing = gate.removing(&org.name).await;
        let in_use = InUse::of(meta, &org.name).await?;
        for key in in_use.strays(strays) {
            if is_older(blobs, &key, cutoff).await? {
                blobs.delete(&key).await?;
                tracing::info!(org = %org.name, key = key.as_str(), "removed a blob no action references");
                swept.count(&key);
            }
        }
    }
    swept.staging = blobs.remove_stale_uploads(cutoff).await?;
    Ok(swept)
}

/// Whether `key` was last written before `cutoff` (a blob gone meanwhile is not).
async fn is_older(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    cutoff: SystemTime,
) -> Result<bool, StoreError> {
    let modified = blobs.modified(key).await?;
    Ok(modified.is_some_and(|modified| modified < cutoff))
}

impl BlobsSwept {
    fn count(&mut self, key: &BlobKey) {
        if key.wheel_digest().is_some() {
            self.wheels += 1;
        } else {
            self.zips += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;
    use sha2::{Digest, Sha256};
    use vivarium_store::{BlobLocation, ObjectBlobStore, ServiceAccount, SqlStore};

    use super::*;
    use crate::catalog::{Catalog, NewAction, Upload};

    const ORG: &str = "acme";
    const RUNNER: &str = "runner@acme.test";
    /// Actions each uploader creates, deletes and creates again while sweeps run.
    const ROUNDS: usize = 40;

    /// An action ZIP whose `main.py` carries `tag`, so every tag is its own blob.
    fn action_zip(tag: &str) -> Bytes {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer
            .start_file("main.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        write!(
            writer,
            "# {tag}\ndef main(data, logger):\n    return data\n"
        )
        .unwrap();
        Bytes::from(writer.finish().unwrap().into_inner())
    }

    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn service_action(name: &str) -> NewAction {
        NewAction {
            name: Some(name.to_string()),
            execution_details: Some("service".to_string()),
            service_account: Some(RUNNER.to_string()),
            ..NewAction::default()
        }
    }

    fn upload(bytes: &Bytes) -> Upload {
        Upload {
            bytes: bytes.clone(),
            ..Upload::default()
        }
    }

    /// Sets the blob's file back two hours, past the sweep's threshold.
    fn backdate(blob_dir: &Path, key: &BlobKey) {
        let old = SystemTime::now() - Duration::from_secs(2 * 3600);
        let file = std::fs::File::options()
            .write(true)
            .open(blob_dir.join(key.as_str()))
            .unwrap();
        file.set_modified(old).unwrap();
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        blob_dir: std::path::PathBuf,
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        gate: Arc<BlobGate>,
        catalog: Arc<Catalog>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
        let meta: Arc<dyn MetadataStore> = Arc::new(SqlStore::connect(&url).await.unwrap());
        let blob_dir = dir.path().join("blobs");
        std::fs::create_dir_all(&blob_dir).unwrap();
        let location = BlobLocation::Folder(blob_dir.clone());
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::open(&location).await.unwrap());
        meta.ensure_org(ORG).await.unwrap();
        let runner = ServiceAccount {
            org: ORG.to_string(),
            email: RUNNER.to_string(),
            first_name: String::new(),
            last_name: String::new(),
            token_hash: String::new(),
            created_at: 0,
        };
        meta.create_service_account(&runner).await.unwrap();
        let gate = Arc::new(BlobGate::default());
        let catalog = Arc::new(Catalog::new(
            meta.clone(),
            blobs.clone(),
            dir.path().join("cache"),
            vivarium_deps::DepsConfig::default(),
            vivarium_egress::Allowlist::default(),
            gate.clone(),
        ));
        Fixture {
            _dir: dir,
            blob_dir,
            meta,
            blobs,
            gate,
            catalog,
        }
    }

    /// Two uploaders share a few ZIP contents: while one deletes or replaces its action
    /// (which releases the ZIP), the other creates one with the same bytes. Other contents
    /// were left behind by an interrupted upload long ago, and some of them are uploaded
    /// again. Sweeps run all the while. Every action must have its ZIP once it is recorded,
    /// and every old stray that nothing uploaded again must go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweeps_and_releases_never_take_the_zip_of_a_concurrent_upload() {
        let fx = fixture().await;
        let revived: Arc<Vec<Bytes>> = Arc::new(
            (0..ROUNDS)
                .map(|n| action_zip(&format!("revived {n}")))
                .collect(),
        );
        let abandoned: Vec<Bytes> = (0..8)
            .map(|n| action_zip(&format!("abandoned {n}")))
            .collect();
        for bytes in revived.iter().chain(&abandoned) {
            let key = BlobKey::action_zip(ORG, &digest(bytes));
            fx.blobs.put(&key, bytes.clone()).await.unwrap();
            backdate(&fx.blob_dir, &key);
        }
        let shared: Arc<Vec<Bytes>> =
            Arc::new((0..2).map(|n| action_zip(&format!("shared {n}"))).collect());
        let uploaders: Vec<_> = ["left", "right"]
            .into_iter()
            .map(|side| {
                let (catalog, shared, revived) =
                    (fx.catalog.clone(), shared.clone(), revived.clone());
                tokio::spawn(async move {
                    for n in 0..ROUNDS {
                        let name = format!("{side}-{n}");
                        let bytes = &shared[n % shared.len()];
                        let action = catalog
                            .create(ORG, RUNNER, service_action(&name), upload(bytes))
                            .await
                            .unwrap();
                        assert_has_its_zip(&catalog, &action).await;
                        if side == "right" {
                            catalog.delete(ORG, &action.id).await.unwrap();
                            continue;
                        }
                        let change = crate::catalog::SettingsChange::default();
                        let replaced = catalog
                            .replace(ORG, &action.id, change, upload(&revived[n]))
                            .await
                            .unwrap();
                        assert_has_its_zip(&catalog, &replaced).await;
                    }
                })
            })
            .collect();
        let mut swept = BlobsSwept::default();
        while uploaders.iter().any(|task| !task.is_finished()) {
            let pass = sweep_blobs(fx.meta.as_ref(), fx.blobs.as_ref(), &fx.gate, MIN_AGE).await;
            swept.zips += pass.unwrap().zips;
        }
        for task in uploaders {
            task.await.unwrap();
        }
        let last = sweep_blobs(fx.meta.as_ref(), fx.blobs.as_ref(), &fx.gate, MIN_AGE).await;
        swept.zips += last.unwrap().zips;

        let actions = fx.meta.list_actions(ORG).await.unwrap();
        assert_eq!(actions.len(), ROUNDS);
        for action in &actions {
            assert_has_its_zip(&fx.catalog, action).await;
        }
        for bytes in &abandoned {
            let key = BlobKey::action_zip(ORG, &digest(bytes));
            assert_eq!(
                fx.blobs.modified(&key).await.unwrap(),
                None,
                "{key:?} was kept"
            );
        }
        assert!(swept.zips >= abandoned.len(), "{swept:?}");
    }

    async fn assert_has_its_zip(catalog: &Catalog, action: &vivarium_store::Action) {
        let stored = catalog.zip(action).await.unwrap_or_else(|error| {
            panic!("{} lost its ZIP: {error}", action.name);
        });
        assert_eq!(digest(&stored), action.zip_digest, "{}", action.name);
    }

    /// The threshold of the sweeps above: the abandoned ZIPs are older, the uploads younger.
    const MIN_AGE: Duration = Duration::from_secs(3600);

    fn set(digests: &[&str]) -> HashSet<String> {
        digests.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_unreferenced_zips_and_wheels_are_strays() {
        let in_use = InUse {
            zips: set(&["z1"]),
            wheels: Some(set(&["w1"])),
        };
        assert!(!in_use.is_stray(&BlobKey::action_zip("acme", "z1")));
        assert!(in_use.is_stray(&BlobKey::action_zip("acme", "z2")));
        assert!(!in_use.is_stray(&BlobKey::wheel("acme", "w1")));
        assert!(in_use.is_stray(&BlobKey::wheel("acme", "w2")));
    }

    #[test]
    fn an_unreadable_lock_keeps_every_wheel() {
        let in_use = InUse {
            zips: set(&[]),
            wheels: None,
        };
        assert!(!in_use.is_stray(&BlobKey::wheel("acme", "w2")));
        assert!(in_use.is_stray(&BlobKey::action_zip("acme", "z2")));
    }
}
