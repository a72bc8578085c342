//! Replicas sharing the database: their heartbeats, and closing the runs of a replica that
//! stopped (crashed, killed, cut off) so its actions do not stay "running" forever.

use super::SqlStore;
use super::codec::wire_name;
use super::errors::backend;
use crate::error::StoreError;
use crate::model::ActionStatus;

/// Records `replica` as alive at `now`, registering it on its first beat.
pub(super) async fn heartbeat(db: &SqlStore, replica: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO replicas (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
    )
    .bind(replica)
    .bind(now)
    .execute(db.pool())
    .await
    .map_err(backend("recording a replica's heartbeat"))?;
    Ok(())
}

/// Moves actions running on a replica with no heartbeat at or after `cutoff` (or none at
/// all) to `status`, then forgets those replicas; one transaction, so two replicas
/// recovering at once move each action once.
pub(super) async fn recover_silent(
    db: &SqlStore,
    cutoff: i64,
    status: ActionStatus,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let moved = sqlx::query(
        "UPDATE actions SET status = $1, running_on = NULL
         WHERE status = $2 AND running_on IS NOT NULL
           AND running_on NOT IN (SELECT id FROM replicas WHERE heartbeat_at >= $3)",
    )
    .bind(wire_name(&status)?)
    .bind(wire_name(&ActionStatus::Running)?)
    .bind(cutoff)
    .execute(&mut *tx)
    .await
    .map_err(backend("closing the runs of stopped replicas"))?;
    sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(backend("forgetting stopped replicas"))?;
    tx.commit()
        .await
        .map_err(backend("closing the runs of stopped replicas"))?;
    Ok(moved.rows_affected())
}
