//! This replica's life in the shared database: a heartbeat every `heartbeat_interval`, and,
//! on each beat, closing the runs of replicas silent for longer than `replica_timeout`, so
//! an action whose replica was killed mid-run does not stay "running" forever.

use std::sync::Arc;
use std::time::Duration;

use vivarium_store::{ActionStatus, MetadataStore, StoreError};

use crate::clock::now_micros;

/// A replica name for this start: unique, and telling operators which process it was.
pub fn generated_id() -> String {
    format!(
        "replica-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

/// Records one heartbeat of `replica`, then closes the runs of silent replicas.
pub async fn beat(
    meta: &dyn MetadataStore,
    replica: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let now = now_micros();
    meta.heartbeat(replica, now).await?;
    let timeout = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
    let closed = meta
        .recover_silent_replicas(now.saturating_sub(timeout), ActionStatus::Errored)
        .await?;
    if closed > 0 {
        tracing::warn!(
            closed,
            "actions left running by a replica that stopped were marked errored"
        );
    }
    Ok(())
}

/// Beats forever; a failed beat is logged and retried at the next interval.
pub async fn keep_alive(
    meta: Arc<dyn MetadataStore>,
    replica: String,
    interval: Duration,
    timeout: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = beat(meta.as_ref(), &replica, timeout).await {
            tracing::error!(%error, %replica, "heartbeat failed");
        }
    }
}
