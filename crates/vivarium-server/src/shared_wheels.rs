//! The wheels of an action's dependency lock, shared through the blob store: the replica that
//! accepts an upload stores them there, and a replica whose cache lacks the layer fills its
//! wheel cache from there (each wheel checked against the lock's sha256) before installing,
//! so replicas never depend on reaching the package index after the upload.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use vivarium_deps::{Lock, LockedPackage};
use vivarium_store::{BlobKey, BlobStore, StoreError};

/// Whether `digest` is a lowercase hex SHA-256, the only thing a blob key may be built from.
fn is_sha256(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The blob key of a locked package's wheel in `org`, refusing a lock with a malformed hash.
fn wheel_key(org: &str, package: &LockedPackage) -> anyhow::Result<BlobKey> {
    if !is_sha256(&package.sha256) {
        anyhow::bail!(
            "the lock of {} carries a malformed sha256 {:?}",
            package.name,
            package.sha256
        );
    }
    Ok(BlobKey::wheel(org, &package.sha256))
}

/// Stores every wheel of `lock`, read from this replica's wheel cache (where installing it
/// left them), in the blob store. Keys are content hashes, so storing twice is harmless.
pub async fn publish(
    blobs: &Arc<dyn BlobStore>,
    org: &str,
    lock: &Lock,
    cache_dir: &std::path::Path,
) -> anyhow::Result<()> {
    for package in &lock.packages {
        let key = wheel_key(org, package)?;
        let path = vivarium_deps::cached_wheel(cache_dir, package);
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("reading installed wheel {}", path.display()))?;
        blobs.put(&key, Bytes::from(bytes)).await?;
    }
    Ok(())
}

/// Fills this replica's wheel cache with the wheels of `lock` it lacks, from the blob store.
/// A wheel the store does not have (an action uploaded before wheels were shared) is left to
/// the installer, which fetches it from the index; one whose bytes do not match the lock is
/// an error, never installed.
pub async fn fetch_missing(
    blobs: &Arc<dyn BlobStore>,
    org: &str,
    lock: &Lock,
    cache_dir: &std::path::Path,
) -> anyhow::Result<()> {
    for package in &lock.packages {
        if vivarium_deps::cached_wheel(cache_dir, package).is_file() {
            continue;
        }
        let bytes = match blobs.get(&wheel_key(org, package)?).await {
            Ok(bytes) => bytes,
            Err(StoreError::NotFound(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        let (cache, package) = (cache_dir.to_path_buf(), package.clone());
        tokio::task::spawn_blocking(move || vivarium_deps::adopt_wheel(&cache, &package, &bytes))
            .await?
            .context("the shared copy of a wheel is corrupt")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivarium_store::ObjectBlobStore;

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    fn package(bytes: &[u8]) -> LockedPackage {
        LockedPackage {
            name: "six".into(),
            version: "1.16.0".into(),
            wheel: "six-1.16.0-py2.py3-none-any.whl".into(),
            sha256: sha256_hex(bytes),
        }
    }

    fn blob_store(dir: &std::path::Path) -> Arc<dyn BlobStore> {
        Arc::new(ObjectBlobStore::local(&dir.join("blobs")).unwrap())
    }

    #[tokio::test]
    async fn a_published_wheel_reaches_another_replicas_cache_verified() {
        let shared = tempfile::tempdir().unwrap();
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let blobs = blob_store(shared.path());
        let wheel = b"PK\x03\x04 a wheel".to_vec();
        let lock = Lock::new(vec![package(&wheel)]);
        vivarium_deps::adopt_wheel(first.path(), &lock.packages[0], &wheel).unwrap();

        publish(&blobs, "acme", &lock, first.path()).await.unwrap();
        fetch_missing(&blobs, "acme", &lock, second.path())
            .await
            .unwrap();

        let filled = vivarium_deps::cached_wheel(second.path(), &lock.packages[0]);
        assert_eq!(std::fs::read(filled).unwrap(), wheel);
    }

    #[tokio::test]
    async fn a_tampered_shared_wheel_is_refused_and_not_cached() {
        let shared = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let blobs = blob_store(shared.path());
        let lock = Lock::new(vec![package(b"the real wheel")]);
        blobs
            .put(
                &BlobKey::wheel("acme", &lock.packages[0].sha256),
                Bytes::from_static(b"a swapped wheel"),
            )
            .await
            .unwrap();

        let refused = fetch_missing(&blobs, "acme", &lock, cache.path()).await;

        let error = format!("{:#}", refused.unwrap_err());
        assert!(error.contains("corrupt"), "{error}");
        assert!(!vivarium_deps::cached_wheel(cache.path(), &lock.packages[0]).exists());
    }

    #[tokio::test]
    async fn a_wheel_missing_from_the_store_is_left_to_the_installer() {
        let shared = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let lock = Lock::new(vec![package(b"never shared")]);
        fetch_missing(&blob_store(shared.path()), "acme", &lock, cache.path())
            .await
            .unwrap();
        assert!(!vivarium_deps::cached_wheel(cache.path(), &lock.packages[0]).exists());
    }

    #[tokio::test]
    async fn a_malformed_lock_hash_never_becomes_a_key() {
        let shared = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let mut bad = package(b"x");
        bad.sha256 = "../../etc".into();
        let refused = fetch_missing(
            &blob_store(shared.path()),
            "acme",
            &Lock::new(vec![bad]),
            cache.path(),
        )
        .await;
        let error = refused.unwrap_err().to_string();
        assert!(error.contains("malformed sha256"), "{error}");
    }
}
