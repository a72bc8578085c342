//! Orders, within one process, the operations that make blobs referenced against the ones
//! that remove blobs nothing references.
//!
//! An upload stores its ZIP (and its dependencies' wheels) before it records the action that
//! references them; a removal counts the references and then deletes. Without an order, a
//! removal may count between an upload's store and its record (the same content uploaded
//! again, or a wheel another action installed), and delete what is about to be referenced.
//! Uploads hold an organization's gate shared from their first stored blob to their record;
//! removals hold it exclusively while they count and delete. Across replicas, the blob
//! sweep's age threshold is what keeps them apart (see `blob_sweep`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// One gate per organization, so an upload in one never waits for a removal in another.
#[derive(Default)]
pub struct BlobGate {
    orgs: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

impl BlobGate {
    /// Held by an operation from the first blob of `org` it stores until it has recorded the
    /// reference to it; many may hold it at once.
    pub async fn referencing(&self, org: &str) -> OwnedRwLockReadGuard<()> {
        self.of(org).read_owned().await
    }

    /// Held by a removal of blobs of `org` while it counts their references and deletes
    /// them; it waits for the uploads in flight, and new ones wait for it.
    pub async fn removing(&self, org: &str) -> OwnedRwLockWriteGuard<()> {
        self.of(org).write_owned().await
    }

    fn of(&self, org: &str) -> Arc<RwLock<()>> {
        let mut orgs = self.orgs.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(orgs.entry(org.to_string()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_removal_waits_for_the_uploads_of_its_organization_only() {
        let gate = Arc::new(BlobGate::default());
        let upload = gate.referencing("acme").await;
        let other = tokio::time::timeout(Duration::from_secs(5), gate.removing("globex")).await;
        assert!(other.is_ok(), "another organization's removal went ahead");
        let waiting = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { drop(gate.removing("acme").await) })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the removal went ahead of the upload"
        );
        drop(upload);
        waiting.await.unwrap();
    }
}
