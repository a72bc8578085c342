//! Actions and their schedule.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::SqlStore;
use super::codec::{
    column, count, flag, flag_value, from_wire_name, json_column, to_json, wire_name,
};
use super::errors::{WriteContext, backend, require_one};
use crate::error::StoreError;
use crate::model::{Action, ActionStatus};

/// The columns an [`Action`] is read from, as a `SELECT` list.
macro_rules! action_columns {
    () => {
        "id, org, name, description, execution, cron_expr, environment_variables, zip_file_name, \
         zip_digest, zip_size, service_account, owner, created_by, created_at, updated_at, \
         last_run_at, last_successful_at, status, paused, next_run_at, dependency_lock, \
         allowed_hosts"
    };
}

/// Stores a new action; `Conflict` when its id or its name (in its organization) is taken,
/// `NotFound` when its organization does not exist.
pub(super) async fn insert(db: &SqlStore, action: &Action) -> Result<(), StoreError> {
    let taken = format!("action {:?} in organization {:?}", action.name, action.org);
    let missing = format!("organization {:?}", action.org);
    let context = WriteContext {
        doing: "storing an action",
        taken: &taken,
        missing: &missing,
    };
    sqlx::query(concat!(
        "INSERT INTO actions (",
        action_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
    ))
    .bind(&action.id)
    .bind(&action.org)
    .bind(&action.name)
    .bind(&action.description)
    .bind(wire_name(&action.execution)?)
    .bind(action.cron_expr.as_deref())
    .bind(to_json(&action.environment_variables)?)
    .bind(&action.zip_file_name)
    .bind(&action.zip_digest)
    .bind(action.zip_size)
    .bind(&action.service_account)
    .bind(&action.owner)
    .bind(&action.created_by)
    .bind(action.created_at)
    .bind(action.updated_at)
    .bind(action.last_run_at)
    .bind(action.last_successful_at)
    .bind(wire_name(&action.status)?)
    .bind(flag_value(action.paused))
    .bind(action.next_run_at)
    .bind(action.dependency_lock.as_deref())
    .bind(to_json(&action.allowed_hosts)?)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    Ok(())
}

/// An action of `org` by id.
pub(super) async fn get(db: &SqlStore, org: &str, id: &str) -> Result<Option<Action>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        action_columns!(),
        " FROM actions WHERE org = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(backend("reading an action"))?;
    row.as_ref().map(action_from_row).transpose()
}

/// The actions of `org`, newest first (ties by name).
pub(super) async fn list(db: &SqlStore, org: &str) -> Result<Vec<Action>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        action_columns!(),
        " FROM actions WHERE org = $1 ORDER BY created_at DESC, name"
    ))
    .bind(org)
    .fetch_all(db.pool())
    .await
    .map_err(backend("listing actions"))?;
    rows.iter().map(action_from_row).collect()
}

/// Replaces an action's settings, ZIP, status and schedule (matched by org and id); keeps
/// its creation fields and the run history fields `record_run` moves. `NotFound` when
/// absent, `Conflict` when the new name is taken.
pub(super) async fn update(db: &SqlStore, action: &Action) -> Result<(), StoreError> {
    let taken = format!("action {:?} in organization {:?}", action.name, action.org);
    let context = WriteContext {
        doing: "updating an action",
        taken: &taken,
        missing: &taken,
    };
    let done = sqlx::query(
        "UPDATE actions SET name = $3, description = $4, execution = $5, cron_expr = $6,
             environment_variables = $7, zip_file_name = $8, zip_digest = $9, zip_size = $10,
             service_account = $11, owner = $12, updated_at = $13, paused = $14,
             next_run_at = $15, dependency_lock = $16, allowed_hosts = $17
         WHERE org = $1 AND id = $2",
    )
    .bind(&action.org)
    .bind(&action.id)
    .bind(&action.name)
    .bind(&action.description)
    .bind(wire_name(&action.execution)?)
    .bind(action.cron_expr.as_deref())
    .bind(to_json(&action.environment_variables)?)
    .bind(&action.zip_file_name)
    .bind(&action.zip_digest)
    .bind(action.zip_size)
    .bind(&action.service_account)
    .bind(&action.owner)
    .bind(action.updated_at)
    .bind(flag_value(action.paused))
    .bind(action.next_run_at)
    .bind(action.dependency_lock.as_deref())
    .bind(to_json(&action.allowed_hosts)?)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    require_one(done.rows_affected(), || not_found(&action.org, &action.id))
}

/// Sets an action's status; `NotFound` when absent from `org`.
pub(super) async fn set_status(
    db: &SqlStore,
    org: &str,
    id: &str,
    status: ActionStatus,
) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE actions SET status = $3, running_on = NULL WHERE org = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .bind(wire_name(&status)?)
            .execute(db.pool())
            .await
            .map_err(backend("setting an action's status"))?;
    require_one(done.rows_affected(), || not_found(org, id))
}

/// Marks an action running on `replica`.
pub(super) async fn mark_running(
    conn: &mut AnyConnection,
    org: &str,
    id: &str,
    replica: &str,
) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE actions SET status = $3, running_on = $4 WHERE org = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .bind(wire_name(&ActionStatus::Running)?)
            .bind(replica)
            .execute(conn)
            .await
            .map_err(backend("marking an action running"))?;
    require_one(done.rows_affected(), || not_found(org, id))
}

/// Moves every action still marked running to `status`; returns how many moved.
pub(super) async fn reset_running(db: &SqlStore, status: ActionStatus) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE actions SET status = $1, running_on = NULL WHERE status = $2")
        .bind(wire_name(&status)?)
        .bind(wire_name(&ActionStatus::Running)?)
        .execute(db.pool())
        .await
        .map_err(backend("resetting interrupted actions"))?;
    Ok(done.rows_affected())
}

/// Deletes an action and its secrets in one transaction; its runs and its state go with it
/// (their foreign keys cascade). `NotFound` when absent from `org`, and then nothing changes.
pub(super) async fn delete(db: &SqlStore, org: &str, id: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM actions WHERE org = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend("deleting an action"))?;
    require_one(done.rows_affected(), || not_found(org, id))?;
    super::secrets::delete_for_action(&mut tx, org, id).await?;
    tx.commit().await.map_err(backend("deleting an action"))
}

/// How many actions of `org` use the ZIP with `digest`.
pub(super) async fn count_zip_users(
    db: &SqlStore,
    org: &str,
    digest: &str,
) -> Result<u64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM actions WHERE org = $1 AND zip_digest = $2")
        .bind(org)
        .bind(digest)
        .fetch_one(db.pool())
        .await
        .map_err(backend("counting a ZIP's users"))?;
    count(&row)
}

/// The digests of the ZIPs `org`'s actions use.
pub(super) async fn zip_digests_in_use(
    db: &SqlStore,
    org: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let rows = sqlx::query("SELECT DISTINCT zip_digest FROM actions WHERE org = $1")
        .bind(org)
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing the ZIPs in use"))?;
    rows.iter().map(|row| column(row, "zip_digest")).collect()
}

/// The dependency locks of `org`'s actions that have one.
pub(super) async fn dependency_locks_in_use(
    db: &SqlStore,
    org: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT dependency_lock FROM actions WHERE org = $1 AND dependency_lock IS NOT NULL",
    )
    .bind(org)
    .fetch_all(db.pool())
    .await
    .map_err(backend("listing the dependency locks in use"))?;
    rows.iter()
        .map(|row| column(row, "dependency_lock"))
        .collect()
}

/// Scheduled actions of every organization, not paused, due at `now`; soonest first.
pub(super) async fn due(db: &SqlStore, now: i64) -> Result<Vec<Action>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        action_columns!(),
        " FROM actions WHERE paused = 0 AND execution IN ('once', 'repeat')",
        " AND next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY next_run_at, id"
    ))
    .bind(now)
    .fetch_all(db.pool())
    .await
    .map_err(backend("finding due actions"))?;
    rows.iter().map(action_from_row).collect()
}

/// Moves `next_run_at` from `expected` to `next` in one compare-and-set statement; whether
/// this call moved it (false when another claimed it first, or the action is absent).
pub(super) async fn claim_schedule(
    db: &SqlStore,
    org: &str,
    id: &str,
    expected: i64,
    next: Option<i64>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE actions SET next_run_at = $3 WHERE org = $1 AND id = $2 AND next_run_at = $4",
    )
    .bind(org)
    .bind(id)
    .bind(next)
    .bind(expected)
    .execute(db.pool())
    .await
    .map_err(backend("claiming a schedule"))?;
    Ok(done.rows_affected() == 1)
}

/// An action row.
fn action_from_row(row: &AnyRow) -> Result<Action, StoreError> {
    Ok(Action {
        id: column(row, "id")?,
        org: column(row, "org")?,
        name: column(row, "name")?,
        description: column(row, "description")?,
        execution: from_wire_name(column(row, "execution")?)?,
        cron_expr: column(row, "cron_expr")?,
        environment_variables: json_column(row, "environment_variables")?,
        zip_file_name: column(row, "zip_file_name")?,
        zip_digest: column(row, "zip_digest")?,
        zip_size: column(row, "zip_size")?,
        service_account: column(row, "service_account")?,
        owner: column(row, "owner")?,
        created_by: column(row, "created_by")?,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
        last_run_at: column(row, "last_run_at")?,
        last_successful_at: column(row, "last_successful_at")?,
        status: from_wire_name(column(row, "status")?)?,
        paused: flag(row, "paused")?,
        next_run_at: column(row, "next_run_at")?,
        dependency_lock: column(row, "dependency_lock")?,
        allowed_hosts: json_column(row, "allowed_hosts")?,
    })
}

/// How a missing action is named.
pub(super) fn not_found(org: &str, id: &str) -> String {
    format!("action {id:?} in organization {org:?}")
}
