//! Secrets, kept sealed: stored or replaced, listed without their values, loaded for a run,
//! and sealed again after a key rotation.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use vivarium_auth::Sealed;

use super::SqlStore;
use super::codec::column;
use super::errors::{WriteContext, backend};
use crate::error::StoreError;
use crate::model::{SecretInfo, SecretRecord};

/// The columns a [`SecretRecord`] is read from, as a `SELECT` list.
macro_rules! secret_columns {
    () => {
        "org, action_id, name, key_id, nonce, ciphertext, created_at, updated_at"
    };
}

/// Stores `secret`, or replaces the value of the one at its place (keeping its `created_at`).
/// `NotFound` when its organization does not exist, or its action when it has one: the row is
/// written only if the action is there.
pub(super) async fn put(db: &SqlStore, secret: &SecretRecord) -> Result<(), StoreError> {
    let missing = owner(&secret.org, &secret.action_id);
    let context = WriteContext {
        doing: "storing a secret",
        taken: &missing,
        missing: &missing,
    };
    let done = sqlx::query(concat!(
        "INSERT INTO secrets (",
        secret_columns!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7, $8",
        " WHERE $2 = '' OR EXISTS (SELECT 1 FROM actions WHERE org = $1 AND id = $2)",
        " ON CONFLICT (org, action_id, name) DO UPDATE SET key_id = excluded.key_id,",
        " nonce = excluded.nonce, ciphertext = excluded.ciphertext,",
        " updated_at = excluded.updated_at"
    ))
    .bind(&secret.org)
    .bind(&secret.action_id)
    .bind(&secret.name)
    .bind(&secret.sealed.key_id)
    .bind(&secret.sealed.nonce)
    .bind(&secret.sealed.ciphertext)
    .bind(secret.created_at)
    .bind(secret.updated_at)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(missing));
    }
    Ok(())
}

/// Deletes a secret; whether it existed.
pub(super) async fn delete(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM secrets WHERE org = $1 AND action_id = $2 AND name = $3")
        .bind(org)
        .bind(action_id)
        .bind(name)
        .execute(db.pool())
        .await
        .map_err(backend("deleting a secret"))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes every secret of an action, in the caller's transaction (the action's deletion).
pub(super) async fn delete_for_action(
    conn: &mut AnyConnection,
    org: &str,
    action_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM secrets WHERE org = $1 AND action_id = $2")
        .bind(org)
        .bind(action_id)
        .execute(conn)
        .await
        .map_err(backend("deleting an action's secrets"))?;
    Ok(())
}

/// The names and times of the secrets of `org` (`action_id` empty) or of one of its
/// actions, sorted by name (in Rust, so both databases sort alike).
pub(super) async fn list(
    db: &SqlStore,
    org: &str,
    action_id: &str,
) -> Result<Vec<SecretInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, created_at, updated_at FROM secrets WHERE org = $1 AND action_id = $2",
    )
    .bind(org)
    .bind(action_id)
    .fetch_all(db.pool())
    .await
    .map_err(backend("listing secrets"))?;
    let mut secrets = rows
        .iter()
        .map(|row| {
            Ok(SecretInfo {
                name: column(row, "name")?,
                created_at: column(row, "created_at")?,
                updated_at: column(row, "updated_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(secrets)
}

/// The sealed secrets a run of `action_id` sees: the organization's, then the action's, each
/// group by name.
pub(super) async fn for_run(
    db: &SqlStore,
    org: &str,
    action_id: &str,
) -> Result<Vec<SecretRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        secret_columns!(),
        " FROM secrets WHERE org = $1 AND (action_id = '' OR action_id = $2)"
    ))
    .bind(org)
    .bind(action_id)
    .fetch_all(db.pool())
    .await
    .map_err(backend("loading a run's secrets"))?;
    sorted(rows)
}

/// Every sealed secret of every organization, by organization, action and name.
pub(super) async fn all(db: &SqlStore) -> Result<Vec<SecretRecord>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", secret_columns!(), " FROM secrets"))
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing every secret"))?;
    sorted(rows)
}

/// Replaces a secret's sealed value with `secret`'s, only if it still is `previous` (so that a
/// value stored meanwhile is not overwritten); whether it was replaced. `updated_at` is kept:
/// the value is the same.
pub(super) async fn reseal(
    db: &SqlStore,
    secret: &SecretRecord,
    previous: &Sealed,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET key_id = $4, nonce = $5, ciphertext = $6
         WHERE org = $1 AND action_id = $2 AND name = $3 AND key_id = $7 AND nonce = $8",
    )
    .bind(&secret.org)
    .bind(&secret.action_id)
    .bind(&secret.name)
    .bind(&secret.sealed.key_id)
    .bind(&secret.sealed.nonce)
    .bind(&secret.sealed.ciphertext)
    .bind(&previous.key_id)
    .bind(&previous.nonce)
    .execute(db.pool())
    .await
    .map_err(backend("sealing a secret again"))?;
    Ok(done.rows_affected() == 1)
}

/// Rows as records, organization-wide secrets before an action's, then by name.
fn sorted(rows: Vec<AnyRow>) -> Result<Vec<SecretRecord>, StoreError> {
    let mut secrets = rows
        .iter()
        .map(secret_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    secrets.sort_by(|a, b| (&a.org, &a.action_id, &a.name).cmp(&(&b.org, &b.action_id, &b.name)));
    Ok(secrets)
}

/// A secret row.
fn secret_from_row(row: &AnyRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        org: column(row, "org")?,
        action_id: column(row, "action_id")?,
        name: column(row, "name")?,
        sealed: Sealed {
            key_id: column(row, "key_id")?,
            nonce: column(row, "nonce")?,
            ciphertext: column(row, "ciphertext")?,
        },
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
    })
}

/// How the organization or action a secret belongs to is named when it is missing.
fn owner(org: &str, action_id: &str) -> String {
    if action_id.is_empty() {
        format!("organization {org:?}")
    } else {
        super::actions::not_found(org, action_id)
    }
}
