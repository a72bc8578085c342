//! An action's durable state as its runs see it: the metadata store, scoped to the action
//! and read at the time of each read (expired keys are absent). Writes are not made here: the
//! sandbox buffers them and the executor commits them with the run.

use std::sync::Arc;

use vivarium_sandbox::{StateEntry, StateFuture, StateReader, StateUsage};
use vivarium_store::MetadataStore;

use crate::clock::now_micros;

/// Reads one action's state from the metadata store.
pub struct StoreStateReader {
    meta: Arc<dyn MetadataStore>,
    org: String,
    action_id: String,
}

impl StoreStateReader {
    /// The reader of the state of action `action_id` of `org`.
    pub fn new(meta: Arc<dyn MetadataStore>, org: &str, action_id: &str) -> Self {
        Self {
            meta,
            org: org.to_string(),
            action_id: action_id.to_string(),
        }
    }
}

impl StateReader for StoreStateReader {
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
        Box::pin(async move {
            self.meta
                .state_get(&self.org, &self.action_id, key, now_micros())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StateFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.meta
                .state_keys(&self.org, &self.action_id, prefix, now_micros())
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn usage(&self) -> StateFuture<'_, StateUsage> {
        Box::pin(async move {
            self.meta
                .state_usage(&self.org, &self.action_id, now_micros())
                .await
                .map_err(|e| e.to_string())
        })
    }
}
