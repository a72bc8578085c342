//! Runs: each action's history.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::SqlStore;
use super::actions::not_found;
use super::codec::{
    column, count, flag, flag_value, from_wire_name, json_column, to_json, wire_name,
};
use super::errors::{WriteContext, backend, require_one};
use crate::error::StoreError;
use crate::model::{ActionStatus, Page, Run, RunFilter, RunPoint, RunWrite};

/// The columns a [`Run`] is read from, as a `SELECT` list.
macro_rules! run_columns {
    () => {
        "id, org, action_id, trigger_kind, trace_id, started_at, duration_ms, fuel_used, \
         peak_memory_bytes, outcome, error_type, error_message, traceback, logs, logs_truncated, \
         input_count, output_count, state_changes, scratch_bytes, scratch_files"
    };
}

/// Moves the action's run fields after a run. The times only move forward, so runs recorded
/// out of order (concurrent runs finishing) keep the latest; `$4` is 1 for a success.
const MOVE_ACTION: &str = "UPDATE actions SET
        last_run_at = CASE
            WHEN last_run_at IS NULL OR last_run_at < $3 THEN $3
            ELSE last_run_at END,
        last_successful_at = CASE
            WHEN $4 = 1 AND (last_successful_at IS NULL OR last_successful_at < $3) THEN $3
            ELSE last_successful_at END,
        status = $5,
        running_on = NULL
    WHERE org = $1 AND id = $2";

/// Stores `run` and moves its action's `last_run_at`, `last_successful_at` (on success) and
/// `status` in one transaction; `NotFound` when the action is absent from the run's
/// organization, `Conflict` when the run id is taken.
pub(super) async fn record(
    db: &SqlStore,
    run: &Run,
    status: ActionStatus,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    record_in(&mut tx, run, status).await?;
    tx.commit().await.map_err(backend("recording a run"))
}

/// Commits `writes` in order in one transaction: all of them, or none when one fails (with
/// that write's error).
pub(super) async fn commit_writes(db: &SqlStore, writes: &[RunWrite]) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    for write in writes {
        match write {
            RunWrite::Started {
                org,
                action_id,
                replica,
            } => super::actions::mark_running(&mut tx, org, action_id, replica).await?,
            RunWrite::Finished { run, status } => record_in(&mut tx, run, *status).await?,
        }
    }
    tx.commit().await.map_err(backend("committing runs"))
}

/// Does what [`record`] does in the caller's transaction (which commits it with whatever
/// else it changed, such as the run's state writes).
pub(super) async fn record_in(
    conn: &mut AnyConnection,
    run: &Run,
    status: ActionStatus,
) -> Result<(), StoreError> {
    let moved = sqlx::query(MOVE_ACTION)
        .bind(&run.org)
        .bind(&run.action_id)
        .bind(run.started_at)
        .bind(flag_value(run.succeeded()))
        .bind(wire_name(&status)?)
        .execute(&mut *conn)
        .await
        .map_err(backend("recording a run"))?;
    require_one(moved.rows_affected(), || {
        not_found(&run.org, &run.action_id)
    })?;
    insert(conn, run).await
}

/// Inserts a run row.
async fn insert(conn: &mut AnyConnection, run: &Run) -> Result<(), StoreError> {
    let taken = format!("run {:?}", run.id);
    let missing = not_found(&run.org, &run.action_id);
    let context = WriteContext {
        doing: "recording a run",
        taken: &taken,
        missing: &missing,
    };
    sqlx::query(concat!(
        "INSERT INTO runs (",
        run_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    ))
    .bind(&run.id)
    .bind(&run.org)
    .bind(&run.action_id)
    .bind(wire_name(&run.trigger)?)
    .bind(run.trace_id.as_deref())
    .bind(run.started_at)
    .bind(run.duration_ms)
    .bind(run.fuel_used)
    .bind(run.peak_memory_bytes)
    .bind(wire_name(&run.outcome)?)
    .bind(run.error_type.as_deref())
    .bind(run.error_message.as_deref())
    .bind(to_json(&run.traceback)?)
    .bind(to_json(&run.logs)?)
    .bind(flag_value(run.logs_truncated))
    .bind(run.input_count)
    .bind(run.output_count)
    .bind(to_json(&run.state_changes)?)
    .bind(run.scratch_bytes)
    .bind(run.scratch_files)
    .execute(conn)
    .await
    .map_err(|err| context.classify(err))?;
    Ok(())
}

/// Keeps the runs of one action that a [`RunFilter`] keeps: `$1` organization, `$2` action,
/// `$3` outcome and `$4` trigger, each of the last two NULL when the filter leaves it open.
macro_rules! filtered_runs {
    () => {
        " FROM runs WHERE org = $1 AND action_id = $2 \
         AND (CAST($3 AS TEXT) IS NULL OR outcome = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR trigger_kind = $4)"
    };
}

/// A page of an action's runs that `filter` keeps, newest first, with how many it keeps in
/// all.
pub(super) async fn list(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    filter: RunFilter,
    page: Page,
) -> Result<(Vec<Run>, u64), StoreError> {
    let outcome = filter.outcome.map(|o| wire_name(&o)).transpose()?;
    let trigger = filter.trigger.map(|t| wire_name(&t)).transpose()?;
    let mut conn = db.conn().await?;
    let total = sqlx::query(concat!("SELECT COUNT(*) AS n", filtered_runs!()))
        .bind(org)
        .bind(action_id)
        .bind(outcome.as_deref())
        .bind(trigger.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(backend("counting runs"))?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        filtered_runs!(),
        " ORDER BY started_at DESC, id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(org)
    .bind(action_id)
    .bind(outcome.as_deref())
    .bind(trigger.as_deref())
    .bind(i64::from(page.limit))
    .bind(i64::from(page.offset))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend("listing runs"))?;
    let runs = rows
        .iter()
        .map(run_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((runs, count(&total)?))
}

/// The newest `limit` runs of `org` since `since`, oldest first, as the dashboard reads them.
pub(super) async fn points(
    db: &SqlStore,
    org: &str,
    since: i64,
    limit: u32,
) -> Result<Vec<RunPoint>, StoreError> {
    let rows = sqlx::query(
        "SELECT action_id, started_at, duration_ms, outcome FROM runs
         WHERE org = $1 AND started_at >= $2 ORDER BY started_at DESC, id DESC LIMIT $3",
    )
    .bind(org)
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await
    .map_err(backend("reading recent runs"))?;
    let mut points = rows
        .iter()
        .map(|row| {
            Ok(RunPoint {
                action_id: column(row, "action_id")?,
                started_at: column(row, "started_at")?,
                duration_ms: column(row, "duration_ms")?,
                outcome: from_wire_name(column(row, "outcome")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    points.reverse();
    Ok(points)
}

/// One run of an action of `org`.
pub(super) async fn get(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    run_id: &str,
) -> Result<Option<Run>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE org = $1 AND action_id = $2 AND id = $3"
    ))
    .bind(org)
    .bind(action_id)
    .bind(run_id)
    .fetch_optional(db.pool())
    .await
    .map_err(backend("reading a run"))?;
    row.as_ref().map(run_from_row).transpose()
}

/// A run row.
fn run_from_row(row: &AnyRow) -> Result<Run, StoreError> {
    Ok(Run {
        id: column(row, "id")?,
        org: column(row, "org")?,
        action_id: column(row, "action_id")?,
        trigger: from_wire_name(column(row, "trigger_kind")?)?,
        trace_id: column(row, "trace_id")?,
        started_at: column(row, "started_at")?,
        duration_ms: column(row, "duration_ms")?,
        fuel_used: column(row, "fuel_used")?,
        peak_memory_bytes: column(row, "peak_memory_bytes")?,
        outcome: from_wire_name(column(row, "outcome")?)?,
        error_type: column(row, "error_type")?,
        error_message: column(row, "error_message")?,
        traceback: json_column(row, "traceback")?,
        logs: json_column(row, "logs")?,
        logs_truncated: flag(row, "logs_truncated")?,
        input_count: column(row, "input_count")?,
        output_count: column(row, "output_count")?,
        state_changes: json_column(row, "state_changes")?,
        scratch_bytes: column(row, "scratch_bytes")?,
        scratch_files: column(row, "scratch_files")?,
    })
}
