//! Console sessions: the hash of each session's secret, its user and its expiry.

use sqlx::any::AnyRow;

use super::SqlStore;
use super::codec::column;
use super::errors::{WriteContext, backend};
use crate::error::StoreError;
use crate::model::ConsoleSession;

/// Stores `session` after deleting the sessions that expired before it began, so the table
/// holds live sessions only; `NotFound` when its user does not exist.
pub(super) async fn create(db: &SqlStore, session: &ConsoleSession) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(session.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend("forgetting expired sessions"))?;
    let missing = format!("user {:?}", session.email);
    let context = WriteContext {
        doing: "creating a session",
        taken: "a session with this secret",
        missing: &missing,
    };
    sqlx::query(
        "INSERT INTO console_sessions (secret_hash, email, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&session.secret_hash)
    .bind(&session.email)
    .bind(session.created_at)
    .bind(session.expires_at)
    .execute(&mut *tx)
    .await
    .map_err(|err| context.classify(err))?;
    tx.commit().await.map_err(backend("creating a session"))
}

/// The live session whose secret hashes to `secret_hash`.
pub(super) async fn find(
    db: &SqlStore,
    secret_hash: &str,
    now: i64,
) -> Result<Option<ConsoleSession>, StoreError> {
    let row = sqlx::query(
        "SELECT secret_hash, email, created_at, expires_at FROM console_sessions
         WHERE secret_hash = $1 AND expires_at > $2",
    )
    .bind(secret_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await
    .map_err(backend("reading a session"))?;
    row.as_ref().map(session_from_row).transpose()
}

/// Deletes the session, if it is there.
pub(super) async fn delete(db: &SqlStore, secret_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE secret_hash = $1")
        .bind(secret_hash)
        .execute(db.pool())
        .await
        .map_err(backend("ending a session"))?;
    Ok(())
}

fn session_from_row(row: &AnyRow) -> Result<ConsoleSession, StoreError> {
    Ok(ConsoleSession {
        secret_hash: column(row, "secret_hash")?,
        email: column(row, "email")?,
        created_at: column(row, "created_at")?,
        expires_at: column(row, "expires_at")?,
    })
}
