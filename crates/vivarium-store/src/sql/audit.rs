//! The audit log: one row per change asked of the API.

use sqlx::any::AnyRow;

use super::SqlStore;
use super::codec::column;
use super::errors::backend;
use crate::error::StoreError;
use crate::model::{AuditEvent, Page};

/// Appends `event`.
pub(super) async fn record(db: &SqlStore, event: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events
         (org, id, at, actor, actor_kind, operation, method, path, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&event.org)
    .bind(&event.id)
    .bind(event.at)
    .bind(&event.actor)
    .bind(&event.actor_kind)
    .bind(&event.operation)
    .bind(&event.method)
    .bind(&event.path)
    .bind(i64::from(event.status))
    .execute(db.pool())
    .await
    .map_err(backend("recording an audit event"))?;
    Ok(())
}

/// The organization's events, newest first.
pub(super) async fn list(
    db: &SqlStore,
    org: &str,
    page: Page,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT org, id, at, actor, actor_kind, operation, method, path, status
         FROM audit_events WHERE org = $1 ORDER BY at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(org)
    .bind(i64::from(page.limit))
    .bind(i64::from(page.offset))
    .fetch_all(db.pool())
    .await
    .map_err(backend("reading the audit log"))?;
    rows.iter().map(event_from_row).collect()
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let status: i64 = column(row, "status")?;
    Ok(AuditEvent {
        org: column(row, "org")?,
        id: column(row, "id")?,
        at: column(row, "at")?,
        actor: column(row, "actor")?,
        actor_kind: column(row, "actor_kind")?,
        operation: column(row, "operation")?,
        method: column(row, "method")?,
        path: column(row, "path")?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::Backend(format!("audit status {status} is no HTTP status")))?,
    })
}
