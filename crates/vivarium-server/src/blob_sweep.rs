//! Sweeping the blob store: action ZIPs no stored action references, and the temporary files
//! of interrupted writes, go once they are old enough.
//!
//! They come from uploads, replacements and deletes the service was killed in the middle of
//! (the ZIP is stored before the action's record, and a replaced or deleted action's ZIP is
//! removed after it), and are never read. A blob is removed only when no action of its
//! organization references it and it was last written before the sweep's threshold: an
//! upload stores its ZIP before recording the action, and the threshold is what keeps a
//! sweep from taking the ZIP of an upload still between the two. The listing is read before
//! the references, and each candidate's time is read again just before it is removed, so a
//! ZIP stored again meanwhile (the same content uploaded anew) is kept.

use std::time::{Duration, SystemTime};

use vivarium_store::{BlobStore, MetadataStore, StoreError};

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobsSwept {
    /// Action ZIPs no action referenced.
    pub zips: usize,
    /// Temporary files of interrupted writes.
    pub staging: usize,
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
        let in_use = meta.zip_digests_in_use(&org.name).await?;
        for key in listed {
            let Some(digest) = key.action_zip_digest() else {
                continue;
            };
            if in_use.contains(digest) {
                continue;
            }
            let old_enough = blobs
                .modified(&key)
                .await?
                .is_some_and(|modified| modified < cutoff);
            if old_enough {
                blobs.delete(&key).await?;
                tracing::info!(org = %org.name, key = key.as_str(), "removed a ZIP no action references");
                swept.zips += 1;
            }
        }
    }
    swept.staging = blobs.remove_stale_uploads(cutoff).await?;
    Ok(swept)
}
