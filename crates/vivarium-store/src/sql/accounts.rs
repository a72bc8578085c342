//! Service accounts.

use sqlx::any::AnyRow;

use super::SqlStore;
use super::codec::column;
use super::errors::{WriteContext, backend, require_one};
use crate::error::StoreError;
use crate::model::ServiceAccount;

/// Stores a new service account; `Conflict` when its email is taken in its organization,
/// `NotFound` when the organization does not exist.
pub(super) async fn create(db: &SqlStore, account: &ServiceAccount) -> Result<(), StoreError> {
    let taken = format!(
        "service account {:?} in organization {:?}",
        account.email, account.org
    );
    let missing = format!("organization {:?}", account.org);
    let context = WriteContext {
        doing: "creating a service account",
        taken: &taken,
        missing: &missing,
    };
    sqlx::query(
        "INSERT INTO service_accounts (org, email, first_name, last_name, token_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&account.org)
    .bind(&account.email)
    .bind(&account.first_name)
    .bind(&account.last_name)
    .bind(&account.token_hash)
    .bind(account.created_at)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    Ok(())
}

/// A service account of `org` by email.
pub(super) async fn get(
    db: &SqlStore,
    org: &str,
    email: &str,
) -> Result<Option<ServiceAccount>, StoreError> {
    let row = sqlx::query(
        "SELECT org, email, first_name, last_name, token_hash, created_at
         FROM service_accounts WHERE org = $1 AND email = $2",
    )
    .bind(org)
    .bind(email)
    .fetch_optional(db.pool())
    .await
    .map_err(backend("reading a service account"))?;
    row.as_ref().map(account_from_row).transpose()
}

/// The service accounts of `org`, sorted by email.
pub(super) async fn list(db: &SqlStore, org: &str) -> Result<Vec<ServiceAccount>, StoreError> {
    let rows = sqlx::query(
        "SELECT org, email, first_name, last_name, token_hash, created_at
         FROM service_accounts WHERE org = $1",
    )
    .bind(org)
    .fetch_all(db.pool())
    .await
    .map_err(backend("listing service accounts"))?;
    let mut accounts = rows
        .iter()
        .map(account_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    accounts.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(accounts)
}

/// A service account row.
fn account_from_row(row: &AnyRow) -> Result<ServiceAccount, StoreError> {
    Ok(ServiceAccount {
        org: column(row, "org")?,
        email: column(row, "email")?,
        first_name: column(row, "first_name")?,
        last_name: column(row, "last_name")?,
        token_hash: column(row, "token_hash")?,
        created_at: column(row, "created_at")?,
    })
}

/// Replaces a service account's token hash; `NotFound` when absent from `org`.
pub(super) async fn set_token(
    db: &SqlStore,
    org: &str,
    email: &str,
    token_hash: &str,
) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE service_accounts SET token_hash = $3 WHERE org = $1 AND email = $2")
            .bind(org)
            .bind(email)
            .bind(token_hash)
            .execute(db.pool())
            .await
            .map_err(backend("replacing a token"))?;
    require_one(done.rows_affected(), || not_found(org, email))
}

/// Deletes a service account and takes every role of `org` from it, in one transaction;
/// `NotFound` when absent from `org`.
pub(super) async fn delete(db: &SqlStore, org: &str, email: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM service_accounts WHERE org = $1 AND email = $2")
        .bind(org)
        .bind(email)
        .execute(&mut *tx)
        .await
        .map_err(backend("deleting a service account"))?;
    require_one(done.rows_affected(), || not_found(org, email))?;
    super::roles::unassign_everywhere(&mut tx, org, email).await?;
    tx.commit()
        .await
        .map_err(backend("deleting a service account"))
}

/// How a missing service account is named.
fn not_found(org: &str, email: &str) -> String {
    format!("service account {email:?} in organization {org:?}")
}
