//! [`ObjectBlobStore`]: blobs in any `object_store` backend (a local folder, or an
//! S3-compatible bucket shared by replicas), behind [`BlobStore`].

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::blob::{BlobKey, BlobStore};
use crate::error::StoreError;
use crate::location::BlobLocation;

/// The blob store over an `object_store` backend. Cloning shares the backend.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    /// Where the blobs live.
    store: Arc<dyn ObjectStore>,
    /// The folder, for a folder store (where interrupted writes leave temporary files).
    folder: Option<PathBuf>,
}

impl ObjectBlobStore {
    /// The blob store at `location`, checked with one listing request so that a wrong bucket,
    /// endpoint or credential fails at start rather than at the first upload.
    pub async fn open(location: &BlobLocation) -> Result<Self, StoreError> {
        let store = match location {
            BlobLocation::Folder(dir) => Self::local(dir)?,
            BlobLocation::S3 { bucket, prefix } => {
                Self::s3(AmazonS3Builder::from_env(), bucket, prefix)?
            }
        };
        store.check(location).await?;
        Ok(store)
    }

    /// Objects in `bucket` under `prefix`; `settings` carries endpoint, region and
    /// credentials (from the `AWS_*` environment variables, `AWS_ALLOW_HTTP` for a plain-HTTP
    /// endpoint).
    fn s3(settings: AmazonS3Builder, bucket: &str, prefix: &str) -> Result<Self, StoreError> {
        let bucket_store = settings.with_bucket_name(bucket).build().map_err(|err| {
            StoreError::Backend(format!("configuring S3 bucket {bucket:?}: {err}"))
        })?;
        if prefix.is_empty() {
            return Ok(Self::from_store(Arc::new(bucket_store)));
        }
        Ok(Self::from_store(Arc::new(PrefixStore::new(
            bucket_store,
            prefix,
        ))))
    }

    /// Lists at most one object, to prove the backend answers.
    async fn check(&self, location: &BlobLocation) -> Result<(), StoreError> {
        match self.store.list(None).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(err)) => Err(StoreError::Backend(format!(
                "the blob store {location} does not answer: {err}"
            ))),
        }
    }

    /// Blobs as files under `dir`, which is created if missing. Writes go to a temporary file
    /// renamed into place (atomic) and are flushed to disk before the rename returns, so a
    /// crash never leaves a partial ZIP under a key.
    pub fn local(dir: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|err| {
            StoreError::Backend(format!("creating blob folder {}: {err}", dir.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|err| {
                StoreError::Backend(format!("opening blob folder {}: {err}", dir.display()))
            })?
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            folder: Some(dir.to_path_buf()),
        })
    }

    /// Blobs in an already configured backend (such as an S3 bucket).
    pub fn from_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            folder: None,
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), StoreError> {
        let path = location(key.as_str())?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|err| backend("storing", key, err))?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes, StoreError> {
        let path = location(key.as_str())?;
        let found = self
            .store
            .get(&path)
            .await
            .map_err(|err| read_error(key, err))?;
        found.bytes().await.map_err(|err| read_error(key, err))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let path = location(key.as_str())?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(backend("deleting", key, err)),
        }
    }

    async fn list_org(&self, org: &str) -> Result<Vec<BlobKey>, StoreError> {
        if org.is_empty() || org.contains('/') {
            // Either would widen the listing beyond one organization's blobs.
            return Err(StoreError::Backend(format!(
                "invalid organization name {org:?}"
            )));
        }
        let prefix = location(&format!("orgs/{org}"))?;
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|err| {
                StoreError::Backend(format!("listing blobs of organization {org:?}: {err}"))
            })?;
        let mut keys: Vec<BlobKey> = listed
            .into_iter()
            .map(|meta| BlobKey::from_listed(meta.location.to_string()))
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(keys)
    }

    async fn modified(&self, key: &BlobKey) -> Result<Option<SystemTime>, StoreError> {
        let path = location(key.as_str())?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(SystemTime::from(meta.last_modified))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(backend("reading the time of", key, err)),
        }
    }

    async fn remove_stale_uploads(&self, older_than: SystemTime) -> Result<usize, StoreError> {
        let Some(folder) = self.folder.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || remove_staging_files(&folder, older_than))
            .await
            .map_err(|err| StoreError::Backend(format!("sweeping the blob folder: {err}")))
    }
}

/// Removes, under `folder`, the temporary files of writes that never finished (the folder
/// store writes `<key>#<n>` and renames it into place) last written before `older_than`.
fn remove_staging_files(folder: &FsPath, older_than: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            removed += remove_staging_files(&path, older_than);
            continue;
        }
        let staged = entry
            .file_name()
            .to_str()
            .and_then(|name| name.rsplit_once('#'))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let stale = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified < older_than);
        if staged && stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The backend path of a key, refusing keys that are not plain relative paths.
fn location(key: &str) -> Result<Path, StoreError> {
    Path::parse(key).map_err(|err| StoreError::Backend(format!("invalid blob key {key:?}: {err}")))
}

/// A read failure: `NotFound` when the blob is absent.
fn read_error(key: &BlobKey, err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => {
            StoreError::NotFound(format!("blob {}", key.as_str()))
        }
        other => backend("reading", key, other),
    }
}

/// A backend failure while `doing` something to `key`.
fn backend(doing: &str, key: &BlobKey, err: object_store::Error) -> StoreError {
    StoreError::Backend(format!("{doing} blob {}: {err}", key.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU64, Ordering};

    /// A blob store in a fresh folder (nested, so `local` must create it).
    fn store() -> (tempfile::TempDir, ObjectBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectBlobStore::local(&dir.path().join("blobs").join("zips")).unwrap();
        (dir, store)
    }

    /// Tells S3 prefixes of one test process apart.
    static PREFIX_SEQ: AtomicU64 = AtomicU64::new(0);

    /// A fresh, empty store under a new prefix of the bucket `VIVARIUM_TEST_S3_URL` names;
    /// fails the test, saying how to start a server, when it names none (the build reports
    /// the S3 tests as ignored unless it does).
    async fn s3_store() -> (String, ObjectBlobStore) {
        let base = std::env::var("VIVARIUM_TEST_S3_URL")
            .ok()
            .filter(|base| !base.is_empty())
            .unwrap_or_else(|| {
                panic!("VIVARIUM_TEST_S3_URL is not set: run eval \"$(.ci/backends)\" first")
            });
        let url = format!(
            "{}/run-{}-{}",
            base.trim_end_matches('/'),
            std::process::id(),
            PREFIX_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let location: BlobLocation = url.parse().unwrap();
        (url, ObjectBlobStore::open(&location).await.unwrap())
    }

    /// Each of `tests` (an `async fn(backend: &str, store: &ObjectBlobStore)`) on a fresh
    /// folder, and on a fresh S3 prefix (ignored in a build without S3 configured).
    macro_rules! on_every_blob_backend {
        ($($test:ident),* $(,)?) => {
            mod folder {
                $(
                    #[tokio::test]
                    async fn $test() {
                        let (_dir, store) = super::store();
                        super::$test("folder", &store).await;
                    }
                )*
            }
            mod s3 {
                $(
                    #[tokio::test]
                    #[cfg_attr(not(vivarium_s3), ignore = "needs an S3-compatible server: run eval \"$(.ci/backends)\" first")]
                    async fn $test() {
                        let (url, store) = super::s3_store().await;
                        super::$test(&url, &store).await;
                    }
                )*
            }
        };
    }

    on_every_blob_backend!(
        putting_the_same_blob_twice_is_not_an_error,
        concurrent_puts_of_one_blob_from_two_stores_never_conflict,
        missing_blobs_are_not_found_and_deleting_them_is_fine,
        list_org_lists_only_that_org_sorted,
        a_blob_tells_when_it_was_written,
    );

    async fn a_blob_tells_when_it_was_written(backend: &str, store: &ObjectBlobStore) {
        let key = BlobKey::action_zip("acme", "ab12");
        assert_eq!(store.modified(&key).await.unwrap(), None, "{backend}");
        let before = SystemTime::now() - std::time::Duration::from_secs(5);
        store.put(&key, Bytes::from_static(b"zip")).await.unwrap();
        let written = store.modified(&key).await.unwrap().expect("a time");
        assert!(written > before, "{backend}: {written:?}");
        assert_eq!(
            store.remove_stale_uploads(SystemTime::now()).await.unwrap(),
            0
        );
        assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"zip"));
    }

    #[tokio::test]
    async fn an_interrupted_writes_temporary_file_goes_once_stale_and_blobs_stay() {
        let (dir, store) = store();
        let key = BlobKey::action_zip("acme", "ab12");
        store.put(&key, Bytes::from_static(b"kept")).await.unwrap();
        let folder = dir.path().join("blobs/zips/orgs/acme/actions");
        std::fs::write(folder.join("cd34.zip#1"), b"half").unwrap();
        std::fs::write(folder.join("odd#name.zip"), b"not staging").unwrap();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(7200);
        for name in ["cd34.zip#1", "odd#name.zip", "ab12.zip"] {
            let file = std::fs::File::open(folder.join(name)).unwrap();
            file.set_modified(long_ago).unwrap();
        }
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(
            store.remove_stale_uploads(long_ago).await.unwrap(),
            0,
            "not older than the cutoff"
        );
        assert_eq!(store.remove_stale_uploads(hour_ago).await.unwrap(), 1);
        assert_eq!(
            files_under(dir.path()),
            [
                "blobs/zips/orgs/acme/actions/ab12.zip",
                "blobs/zips/orgs/acme/actions/odd#name.zip"
            ]
        );
    }

    /// Every file under `dir`, relative, sorted.
    fn files_under(dir: &FsPath) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(
                        path.strip_prefix(dir)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        found.sort();
        found
    }

    #[tokio::test]
    async fn put_then_get_returns_the_bytes_from_a_file_under_the_folder() {
        let (dir, store) = store();
        let key = BlobKey::action_zip("acme", "ab12");
        store
            .put(&key, Bytes::from_static(b"PK\x03\x04zip"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&key).await.unwrap(),
            Bytes::from_static(b"PK\x03\x04zip")
        );
        let root = dir.path().join("blobs").join("zips");
        assert_eq!(
            files_under(&root),
            ["orgs/acme/actions/ab12.zip"],
            "no temporary file left behind"
        );
        assert_eq!(
            std::fs::read(root.join("orgs/acme/actions/ab12.zip")).unwrap(),
            b"PK\x03\x04zip"
        );
    }

    async fn putting_the_same_blob_twice_is_not_an_error(backend: &str, store: &ObjectBlobStore) {
        let key = BlobKey::action_zip("acme", "ab12");
        store.put(&key, Bytes::from_static(b"same")).await.unwrap();
        store.put(&key, Bytes::from_static(b"same")).await.unwrap();
        assert_eq!(
            store.get(&key).await.unwrap(),
            Bytes::from_static(b"same"),
            "{backend}"
        );
        assert_eq!(store.list_org("acme").await.unwrap(), [key], "{backend}");
    }

    async fn concurrent_puts_of_one_blob_from_two_stores_never_conflict(
        backend: &str,
        store: &ObjectBlobStore,
    ) {
        let twin = store.clone();
        let key = BlobKey::wheel("acme", "cd34");
        let bytes = Bytes::from(vec![7u8; 256 * 1024]);
        let (first, second) = tokio::join!(
            store.put(&key, bytes.clone()),
            twin.put(&key, bytes.clone())
        );
        first.unwrap();
        second.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), bytes, "{backend}");
    }

    async fn missing_blobs_are_not_found_and_deleting_them_is_fine(
        backend: &str,
        store: &ObjectBlobStore,
    ) {
        let key = BlobKey::action_zip("acme", "ab12");
        let missing = store.get(&key).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(ref what)) if what.contains("orgs/acme/actions/ab12.zip")),
            "{backend}: {missing:?}"
        );
        store.delete(&key).await.unwrap();

        store.put(&key, Bytes::from_static(b"zip")).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(
            matches!(store.get(&key).await, Err(StoreError::NotFound(_))),
            "{backend}"
        );
        store.delete(&key).await.unwrap();
        assert_eq!(store.list_org("acme").await.unwrap(), [], "{backend}");
    }

    async fn list_org_lists_only_that_org_sorted(backend: &str, store: &ObjectBlobStore) {
        for (org, digest) in [
            ("acme", "ff"),
            ("acme", "01"),
            ("acme2", "aa"),
            ("globex", "01"),
        ] {
            store
                .put(
                    &BlobKey::action_zip(org, digest),
                    Bytes::from(format!("{org}/{digest}")),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            store.list_org("acme").await.unwrap(),
            [
                BlobKey::action_zip("acme", "01"),
                BlobKey::action_zip("acme", "ff")
            ],
            "{backend}"
        );
        assert_eq!(
            store.list_org("globex").await.unwrap(),
            [BlobKey::action_zip("globex", "01")]
        );
        assert_eq!(store.list_org("empty").await.unwrap(), []);
        for widening in ["", "acme/actions", ".."] {
            let refused = store.list_org(widening).await;
            assert!(
                matches!(refused, Err(StoreError::Backend(_))),
                "{widening:?}: {refused:?}"
            );
        }
        assert_eq!(
            store
                .get(&BlobKey::action_zip("globex", "01"))
                .await
                .unwrap(),
            Bytes::from("globex/01")
        );
    }

    #[tokio::test]
    async fn an_unreachable_s3_endpoint_fails_the_check_and_names_the_bucket() {
        let location: BlobLocation = "s3://vivarium-nowhere/x".parse().unwrap();
        let settings = AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:9")
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_retry(object_store::RetryConfig {
                max_retries: 1,
                retry_timeout: std::time::Duration::from_secs(2),
                ..Default::default()
            });
        let store = ObjectBlobStore::s3(settings, "vivarium-nowhere", "x").unwrap();
        let checked = store.check(&location).await;
        let Err(StoreError::Backend(message)) = checked else {
            panic!("expected a backend error, got {checked:?}")
        };
        assert!(message.contains("s3://vivarium-nowhere/x"), "{message}");
        assert!(message.contains("does not answer"), "{message}");
    }

    #[tokio::test]
    async fn keys_that_climb_out_of_the_folder_are_refused() {
        let (dir, store) = store();
        let escaping = BlobKey::action_zip("..", "ab12");
        let refused = store.put(&escaping, Bytes::from_static(b"zip")).await;
        assert!(
            matches!(refused, Err(StoreError::Backend(ref why)) if why.contains("invalid blob key")),
            "{refused:?}"
        );
        assert_eq!(files_under(dir.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_second_store_on_the_folder_sees_the_blobs() {
        let (dir, store) = store();
        let key = BlobKey::action_zip("acme", "ab12");
        store.put(&key, Bytes::from_static(b"kept")).await.unwrap();
        let reopened = ObjectBlobStore::local(&dir.path().join("blobs").join("zips")).unwrap();
        assert_eq!(
            reopened.get(&key).await.unwrap(),
            Bytes::from_static(b"kept")
        );
    }
}
