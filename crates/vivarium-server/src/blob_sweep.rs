//! Sweeping the blob store: action ZIPs and dependency wheels no stored action references,
//! and the temporary files of interrupted writes, go once they are old enough.
//!
//! They come from uploads, replacements and deletes the service was killed in the middle of
//! (the ZIP is stored before the action's record, and a replaced or deleted action's ZIP is
//! removed after it), and are never read. A blob is removed only when no action of its
//! organization references it and it was last written before the sweep's threshold: an
//! upload stores its ZIP before recording the action, and the threshold is what keeps a
//! sweep from taking the ZIP of an upload still between the two. The listing is read before
//! the references, and each candidate's time is read again just before it is removed, so a
//! ZIP stored again meanwhile (the same content uploaded anew) is kept.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use vivarium_deps::Lock;
use vivarium_store::{BlobKey, BlobStore, MetadataStore, StoreError};

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

/// Removes what no action references and was written more than `min_age` ago.
///
/// # Errors
///
/// The first store failure; what was removed before it stays removed.
pub async fn sweep_blobs(
    meta: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    min_age: Duration,
) -> Result<BlobsSwept, StoreError> {
    let cutoff = SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut swept = BlobsSwept::default();
    for org in meta.list_orgs().await? {
        let listed = blobs.list_org(&org.name).await?;
        let in_use = InUse::of(meta, &org.name).await?;
        for key in listed {
            if !in_use.is_stray(&key) {
                continue;
            }
            let old_enough = blobs
                .modified(&key)
                .await?
                .is_some_and(|modified| modified < cutoff);
            if old_enough {
                blobs.delete(&key).await?;
                tracing::info!(org = %org.name, key = key.as_str(), "removed a blob no action references");
                if key.wheel_digest().is_some() {
                    swept.wheels += 1;
                } else {
                    swept.zips += 1;
                }
            }
        }
    }
    swept.staging = blobs.remove_stale_uploads(cutoff).await?;
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

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
