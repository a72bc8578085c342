//! Each action's durable state: read as it is at a moment (an expired entry is absent),
//! written by the runs that commit it with their record and by operators, and swept of
//! expired entries.
//!
//! Every write of an action's state (except the sweep's) first locks the action's row: on
//! PostgreSQL with `SELECT ... FOR NO KEY UPDATE`, the lock recording a run takes on that row
//! anyway (so runs of one action already commit one after the other); on SQLite the database
//! write lock `BEGIN IMMEDIATE` takes holds it. Commits of one action's state therefore
//! apply one after another: an increment adds to what the previous commit left, a
//! compare-and-set compares with the version it replaces, the quotas count the whole
//! resulting state, a delete cannot slip between a commit's read of a key and its write, and
//! writes of several keys in any order cannot deadlock. What the writes leave is decided by the
//! commit rules shared with `vivarium run`'s state file ([`crate::state_rules`]); this module
//! reads what they need and stores what they leave. The sweep removes only entries every
//! reader already treats as absent.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};
use vivarium_sandbox::{StateEntry, StateQuotas, StateUsage, StateWrite};

use super::actions::not_found;
use super::codec::{column, count, json_column};
use super::errors::{WriteContext, backend};
use super::{Backend, SqlStore, runs};
use crate::error::StoreError;
use crate::model::{ActionStatus, Run, StateRefusal, StoredState};
use crate::state_rules::{Applied, Commit, Held, Next, touched_keys};

/// The live entry under a key at `$4`, with what a commit needs to replace it.
const GET: &str = "SELECT value, version, bytes, expires_at FROM action_state
     WHERE org = $1 AND action_id = $2 AND key = $3
       AND (expires_at IS NULL OR expires_at > $4)";

/// The live keys at `$4` starting with `$3`. The prefix is compared as text, character for
/// character, rather than with `LIKE` (where `%` and `_` are wildcards, and SQLite ignores
/// case) or a range of keys (which PostgreSQL orders by the database's collation, where a
/// key starting with the prefix may sort outside the range).
const KEYS: &str = "SELECT key FROM action_state
     WHERE org = $1 AND action_id = $2 AND substr(key, 1, length($3)) = $3
       AND (expires_at IS NULL OR expires_at > $4)";

/// How many live keys at `$3` and their bytes (`SUM` is cast: PostgreSQL sums `BIGINT`s
/// as `NUMERIC`).
const USAGE: &str = "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS bytes
     FROM action_state
     WHERE org = $1 AND action_id = $2 AND (expires_at IS NULL OR expires_at > $3)";

/// The live entries at `$3`.
const LIST: &str = "SELECT key, value, version, expires_at, updated_at FROM action_state
     WHERE org = $1 AND action_id = $2 AND (expires_at IS NULL OR expires_at > $3)";

/// Stores an entry, over the row of the key if there is one (an expired one not swept yet).
const UPSERT: &str = "INSERT INTO action_state
         (org, action_id, key, value, version, bytes, expires_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (org, action_id, key) DO UPDATE SET value = excluded.value,
         version = excluded.version, bytes = excluded.bytes,
         expires_at = excluded.expires_at, updated_at = excluded.updated_at";

/// Removes one key.
const DELETE_KEY: &str = "DELETE FROM action_state WHERE org = $1 AND action_id = $2 AND key = $3";

/// Removes every key of an action.
const CLEAR: &str = "DELETE FROM action_state WHERE org = $1 AND action_id = $2";

/// Removes every entry expired at `$1`.
const SWEEP: &str = "DELETE FROM action_state WHERE expires_at <= $1";

/// Finds the action, on SQLite, where the transaction's write lock already serializes writers.
const FIND_ACTION: &str = "SELECT id FROM actions WHERE org = $1 AND id = $2";

/// Finds and locks the action's row, on PostgreSQL, until the transaction ends. `NO KEY`:
/// the lock an `UPDATE` of its run fields takes, which lets rows referring to it be written.
const LOCK_ACTION: &str = "SELECT id FROM actions WHERE org = $1 AND id = $2 FOR NO KEY UPDATE";

/// The live entry under `key` at `now`.
pub(super) async fn get(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    key: &str,
    now: i64,
) -> Result<Option<StateEntry>, StoreError> {
    let mut conn = db.conn().await?;
    Ok(read_live(&mut conn, org, action_id, key, now)
        .await?
        .map(|live| live.entry))
}

/// The live keys at `now` starting with `prefix`, sorted (in Rust, so both databases sort
/// alike: by bytes).
pub(super) async fn keys(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    prefix: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(KEYS)
        .bind(org)
        .bind(action_id)
        .bind(prefix)
        .bind(now)
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing state keys"))?;
    let mut keys = rows
        .iter()
        .map(|row| column(row, "key"))
        .collect::<Result<Vec<String>, _>>()?;
    keys.sort();
    Ok(keys)
}

/// How much state the action keeps at `now`.
pub(super) async fn usage(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    now: i64,
) -> Result<StateUsage, StoreError> {
    let mut conn = db.conn().await?;
    read_usage(&mut conn, org, action_id, now).await
}

/// The live entries at `now`, by key.
pub(super) async fn list(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    now: i64,
) -> Result<Vec<StoredState>, StoreError> {
    let rows = sqlx::query(LIST)
        .bind(org)
        .bind(action_id)
        .bind(now)
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing an action's state"))?;
    let mut entries = rows
        .iter()
        .map(stored_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

/// Applies `writes` to the run's action's state and records `run` with the keys they changed
/// (its `state_changes`), in one transaction; on a refusal rolls it all back and answers it.
/// Without writes, records the run alone.
pub(super) async fn record_run(
    db: &SqlStore,
    run: &Run,
    status: ActionStatus,
    writes: &[StateWrite],
    quotas: &StateQuotas,
    now: i64,
) -> Result<Result<Vec<String>, StateRefusal>, StoreError> {
    if writes.is_empty() {
        runs::record(db, run, status).await?;
        return Ok(Ok(Vec::new()));
    }
    let scope = Scope {
        org: &run.org,
        action_id: &run.action_id,
        quotas,
        now,
    };
    let (mut tx, applied) = match scope.begin_applying(db, writes).await? {
        Ok(applied) => applied,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let changed: Vec<String> = applied.changed.into_keys().collect();
    let run = Run {
        state_changes: changed.clone(),
        ..run.clone()
    };
    runs::record_in(&mut tx, &run, status).await?;
    tx.commit()
        .await
        .map_err(backend("recording a run with its state"))?;
    Ok(Ok(changed))
}

/// Applies one `write` (an operator's set) to an action's state, held to `quotas`; answers the
/// entry it leaves, or the refusal (and then nothing changed). `NotFound` when the action is
/// absent.
pub(super) async fn put(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    write: StateWrite,
    quotas: &StateQuotas,
    now: i64,
) -> Result<Result<StateEntry, StateRefusal>, StoreError> {
    let scope = Scope {
        org,
        action_id,
        quotas,
        now,
    };
    let (tx, applied) = match scope
        .begin_applying(db, std::slice::from_ref(&write))
        .await?
    {
        Ok(applied) => applied,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let entry = applied
        .last
        .ok_or_else(|| StoreError::Backend(format!("storing {:?} left no entry", write.key())))?;
    tx.commit()
        .await
        .map_err(backend("writing an action's state"))?;
    Ok(Ok(entry))
}

/// Removes `key` from an action's state; whether a row was there.
pub(super) async fn delete(
    db: &SqlStore,
    org: &str,
    action_id: &str,
    key: &str,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    if !lock_action(&mut tx, db.backend, org, action_id).await? {
        return Ok(false);
    }
    let done = sqlx::query(DELETE_KEY)
        .bind(org)
        .bind(action_id)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(backend("deleting a state key"))?;
    tx.commit().await.map_err(backend("deleting a state key"))?;
    Ok(done.rows_affected() > 0)
}

/// Removes every key of an action's state; how many rows there were.
pub(super) async fn clear(db: &SqlStore, org: &str, action_id: &str) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    if !lock_action(&mut tx, db.backend, org, action_id).await? {
        return Ok(0);
    }
    let done = sqlx::query(CLEAR)
        .bind(org)
        .bind(action_id)
        .execute(&mut *tx)
        .await
        .map_err(backend("clearing an action's state"))?;
    tx.commit()
        .await
        .map_err(backend("clearing an action's state"))?;
    Ok(done.rows_affected())
}

/// Removes every entry expired at `now`; how many.
pub(super) async fn sweep(db: &SqlStore, now: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(SWEEP)
        .bind(now)
        .execute(db.pool())
        .await
        .map_err(backend("sweeping expired state"))?;
    Ok(done.rows_affected())
}

/// Whether the action exists, locking its row for the rest of the transaction on
/// PostgreSQL (SQLite's transactions hold the database's write lock from their start).
async fn lock_action(
    conn: &mut AnyConnection,
    kind: Backend,
    org: &str,
    action_id: &str,
) -> Result<bool, StoreError> {
    let statement = match kind {
        Backend::Postgres => LOCK_ACTION,
        Backend::Sqlite { .. } => FIND_ACTION,
    };
    let row = sqlx::query(statement)
        .bind(org)
        .bind(action_id)
        .fetch_optional(conn)
        .await
        .map_err(backend("locking an action"))?;
    Ok(row.is_some())
}

/// The live entry under `key` at `now`.
async fn read_live(
    conn: &mut AnyConnection,
    org: &str,
    action_id: &str,
    key: &str,
    now: i64,
) -> Result<Option<Held>, StoreError> {
    let row = sqlx::query(GET)
        .bind(org)
        .bind(action_id)
        .bind(key)
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(backend("reading a state key"))?;
    row.as_ref()
        .map(|row| {
            Ok(Held {
                entry: StateEntry {
                    value: json_column(row, "value")?,
                    version: column(row, "version")?,
                },
                bytes: unsigned(row, "bytes")?,
                expires_at: column(row, "expires_at")?,
            })
        })
        .transpose()
}

/// How much state the action keeps at `now`.
async fn read_usage(
    conn: &mut AnyConnection,
    org: &str,
    action_id: &str,
    now: i64,
) -> Result<StateUsage, StoreError> {
    let row = sqlx::query(USAGE)
        .bind(org)
        .bind(action_id)
        .bind(now)
        .fetch_one(conn)
        .await
        .map_err(backend("measuring an action's state"))?;
    Ok(StateUsage {
        keys: count(&row)?,
        bytes: unsigned(&row, "bytes")?,
    })
}

/// Why applying writes stopped: a refusal to answer, or a store failure.
enum Stop {
    /// A write was refused.
    Refused(StateRefusal),
    /// The store failed.
    Failed(StoreError),
}

impl From<StateRefusal> for Stop {
    fn from(refusal: StateRefusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        Self::Failed(err)
    }
}

/// The action whose state writes apply, the limits they are held to, and when they apply.
struct Scope<'a> {
    /// The organization.
    org: &'a str,
    /// The action.
    action_id: &'a str,
    /// The limits on the resulting state.
    quotas: &'a StateQuotas,
    /// When the writes apply.
    now: i64,
}

impl Scope<'_> {
    /// Starts a transaction, locks the action (`NotFound` when absent) and applies `writes`
    /// in it, for the caller to go on with and commit; on a refusal rolls it back and answers
    /// the refusal.
    async fn begin_applying(
        &self,
        db: &SqlStore,
        writes: &[StateWrite],
    ) -> Result<Result<(Transaction<'static, Any>, Applied), StateRefusal>, StoreError> {
        let mut tx = db.begin().await?;
        if !lock_action(&mut tx, db.backend, self.org, self.action_id).await? {
            return Err(StoreError::NotFound(not_found(self.org, self.action_id)));
        }
        match self.apply(&mut tx, writes).await {
            Ok(applied) => Ok(Ok((tx, applied))),
            Err(Stop::Refused(refusal)) => {
                tx.rollback()
                    .await
                    .map_err(backend("rolling back refused state writes"))?;
                Ok(Err(refusal))
            }
            Err(Stop::Failed(err)) => Err(err),
        }
    }

    /// Reads what `writes` touch, applies them by the commit rules, and stores what they
    /// leave, in the caller's transaction (which holds the action's lock). On a refusal
    /// nothing was stored.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        writes: &[StateWrite],
    ) -> Result<Applied, Stop> {
        let found = read_usage(conn, self.org, self.action_id, self.now).await?;
        let mut held = BTreeMap::new();
        for key in touched_keys(writes) {
            if let Some(live) = read_live(conn, self.org, self.action_id, key, self.now).await? {
                held.insert(key.to_string(), live);
            }
        }
        let rules = Commit {
            quotas: self.quotas,
            now: self.now,
        };
        let applied = rules.apply(found, &held, writes)?;
        for (key, after) in &applied.changed {
            match after {
                Some(next) => self.store(conn, key, next).await?,
                None if held.contains_key(key) => self.remove(conn, key).await?,
                None => {}
            }
        }
        Ok(applied)
    }

    /// Stores `next` under `key`.
    async fn store(
        &self,
        conn: &mut AnyConnection,
        key: &str,
        next: &Next,
    ) -> Result<(), StoreError> {
        let missing = not_found(self.org, self.action_id);
        let context = WriteContext {
            doing: "writing a state key",
            taken: &missing,
            missing: &missing,
        };
        sqlx::query(UPSERT)
            .bind(self.org)
            .bind(self.action_id)
            .bind(key)
            .bind(&next.text)
            .bind(next.held.entry.version)
            .bind(signed(next.held.bytes))
            .bind(next.held.expires_at)
            .bind(self.now)
            .execute(conn)
            .await
            .map_err(|err| context.classify(err))?;
        Ok(())
    }

    /// Removes `key`.
    async fn remove(&self, conn: &mut AnyConnection, key: &str) -> Result<(), StoreError> {
        sqlx::query(DELETE_KEY)
            .bind(self.org)
            .bind(self.action_id)
            .bind(key)
            .execute(conn)
            .await
            .map_err(backend("deleting a state key"))?;
        Ok(())
    }
}

/// A byte count as the `BIGINT` stored for it.
fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// A `BIGINT` byte count column.
fn unsigned(row: &AnyRow, name: &str) -> Result<u64, StoreError> {
    let n: i64 = column(row, name)?;
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("negative {name} {n}")))
}

/// A state row as an operator sees it.
fn stored_from_row(row: &AnyRow) -> Result<StoredState, StoreError> {
    Ok(StoredState {
        key: column(row, "key")?,
        value: json_column(row, "value")?,
        version: column(row, "version")?,
        expires_at: column(row, "expires_at")?,
        updated_at: column(row, "updated_at")?,
    })
}
