//! The blob store: action ZIPs and the wheels of their dependency locks, content-addressed
//! under their organization.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;

/// Where a blob lives: `orgs/{org}/actions/{sha256}.zip` or `orgs/{org}/wheels/{sha256}.whl`. Keys are built only from a validated
/// organization name and a hex digest, so they cannot point outside their prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// The key of an action ZIP of `org` with SHA-256 `digest` (lowercase hex).
    pub fn action_zip(org: &str, digest: &str) -> Self {
        Self(format!("orgs/{org}/actions/{digest}.zip"))
    }

    /// The key of a dependency wheel of `org` with SHA-256 `digest` (lowercase hex), kept so
    /// that every replica installs an action's lock from the shared store, not the index.
    pub fn wheel(org: &str, digest: &str) -> Self {
        Self(format!("orgs/{org}/wheels/{digest}.whl"))
    }

    /// A key as a blob store listed it (already under an organization's prefix).
    pub(crate) fn from_listed(path: String) -> Self {
        Self(path)
    }

    /// The key as a path-like string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest of the action ZIP this key names, or `None` for any other blob.
    pub fn action_zip_digest(&self) -> Option<&str> {
        self.digest_in("/actions/", ".zip")
    }

    /// The digest of the dependency wheel this key names, or `None` for any other blob.
    pub fn wheel_digest(&self) -> Option<&str> {
        self.digest_in("/wheels/", ".whl")
    }

    fn digest_in(&self, folder: &str, extension: &str) -> Option<&str> {
        let rest = self.0.strip_prefix("orgs/")?;
        let (_, file) = rest.split_once(folder)?;
        file.strip_suffix(extension)
            .filter(|digest| !digest.contains('/'))
    }
}

/// Blob persistence. Writes are atomic and idempotent: storing the same key twice with the
/// same content is not an error, so concurrent uploads of one ZIP never conflict.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`.
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), StoreError>;
    /// The bytes under `key`; `NotFound` when absent.
    async fn get(&self, key: &BlobKey) -> Result<Bytes, StoreError>;
    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError>;
    /// Every key under `orgs/{org}/` (for sweeping blobs no action references).
    async fn list_org(&self, org: &str) -> Result<Vec<BlobKey>, StoreError>;
    /// When the blob under `key` was last written; `None` when absent.
    async fn modified(&self, key: &BlobKey) -> Result<Option<SystemTime>, StoreError>;
    /// Removes what interrupted writes left behind before `older_than` (a folder store's
    /// temporary files; nothing elsewhere); answers how many.
    async fn remove_stale_uploads(&self, older_than: SystemTime) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_action_zip_keys_name_a_zip_digest() {
        assert_eq!(
            BlobKey::action_zip("acme", "ab12").action_zip_digest(),
            Some("ab12")
        );
        assert_eq!(BlobKey::wheel("acme", "ab12").action_zip_digest(), None);
        assert_eq!(BlobKey::wheel("acme", "ab12").wheel_digest(), Some("ab12"));
        assert_eq!(BlobKey::action_zip("acme", "ab12").wheel_digest(), None);
        let nested = BlobKey::from_listed("orgs/acme/actions/x/ab12.zip".into());
        assert_eq!(nested.action_zip_digest(), None);
    }
}
