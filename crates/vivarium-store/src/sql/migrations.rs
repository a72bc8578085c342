//! The schema, as one ordered list of versioned steps. Each step runs in its own transaction
//! and is recorded in `schema_migrations`, so starting again applies only what is new.
//!
//! Every statement is portable between SQLite and PostgreSQL. Steps are never edited once
//! released: a change to the schema is a new step at the end of [`MIGRATIONS`].

use sqlx::AnyConnection;

use super::errors::backend;
use super::{Backend, SqlStore, codec, now_micros};
use crate::error::StoreError;

/// One schema step: its version (sorting after every earlier one) and its statements.
pub(super) type Migration = (&'static str, &'static [&'static str]);

/// Every schema step, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    ("0001_initial", INITIAL),
    ("0002_dependency_lock", DEPENDENCY_LOCK),
    ("0003_replicas", REPLICAS),
    ("0004_allowed_hosts", ALLOWED_HOSTS),
    ("0005_secrets", SECRETS),
    ("0006_grant_forms", GRANT_FORMS),
    ("0007_action_state", ACTION_STATE),
    ("0008_run_scratch", RUN_SCRATCH),
    ("0009_console", CONSOLE),
    ("0010_audit", AUDIT),
];

/// The first schema: identities, roles, actions and their runs.
const INITIAL: &[&str] = &[
    "CREATE TABLE orgs (
        name TEXT NOT NULL PRIMARY KEY,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE users (
        email TEXT NOT NULL PRIMARY KEY,
        password_hash TEXT NOT NULL,
        is_root BIGINT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE memberships (
        org TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
        email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (org, email)
    )",
    "CREATE TABLE service_accounts (
        org TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (org, email)
    )",
    "CREATE TABLE roles (
        org TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (org, name)
    )",
    "CREATE TABLE role_grants (
        org TEXT NOT NULL,
        role TEXT NOT NULL,
        resource TEXT NOT NULL,
        object TEXT NOT NULL,
        verb TEXT NOT NULL,
        PRIMARY KEY (org, role, resource, object, verb),
        FOREIGN KEY (org, role) REFERENCES roles (org, name) ON DELETE CASCADE
    )",
    "CREATE TABLE role_principals (
        org TEXT NOT NULL,
        role TEXT NOT NULL,
        email TEXT NOT NULL,
        PRIMARY KEY (org, role, email),
        FOREIGN KEY (org, role) REFERENCES roles (org, name) ON DELETE CASCADE
    )",
    "CREATE INDEX role_principals_by_email ON role_principals (org, email)",
    "CREATE TABLE actions (
        id TEXT NOT NULL PRIMARY KEY,
        org TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        execution TEXT NOT NULL,
        cron_expr TEXT,
        environment_variables TEXT NOT NULL,
        zip_file_name TEXT NOT NULL,
        zip_digest TEXT NOT NULL,
        zip_size BIGINT NOT NULL,
        service_account TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_run_at BIGINT,
        last_successful_at BIGINT,
        status TEXT NOT NULL,
        paused BIGINT NOT NULL,
        next_run_at BIGINT,
        UNIQUE (org, id),
        UNIQUE (org, name)
    )",
    "CREATE INDEX actions_by_next_run ON actions (next_run_at)",
    "CREATE INDEX actions_by_digest ON actions (org, zip_digest)",
    "CREATE TABLE runs (
        id TEXT NOT NULL PRIMARY KEY,
        org TEXT NOT NULL,
        action_id TEXT NOT NULL,
        trigger_kind TEXT NOT NULL,
        trace_id TEXT,
        started_at BIGINT NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL,
        fuel_used BIGINT NOT NULL,
        peak_memory_bytes BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        error_type TEXT,
        error_message TEXT,
        traceback TEXT NOT NULL,
        logs TEXT NOT NULL,
        logs_truncated BIGINT NOT NULL,
        input_count BIGINT NOT NULL,
        output_count BIGINT,
        FOREIGN KEY (org, action_id) REFERENCES actions (org, id) ON DELETE CASCADE
    )",
    "CREATE INDEX runs_by_action ON runs (org, action_id, started_at DESC)",
];

/// The table recording applied steps.
const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// Serializes migrators on PostgreSQL (several replicas may start at once); on SQLite the
/// `BEGIN IMMEDIATE` of each step's transaction already does. The key is arbitrary but fixed.
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7370626572)";

/// Brings the database's schema up to date: creates the ledger, then applies, in order,
/// each step it does not record.
pub(super) async fn apply(store: &SqlStore) -> Result<(), StoreError> {
    run_locked(store, CREATE_LEDGER).await?;
    for migration in MIGRATIONS {
        apply_step(store, migration).await?;
    }
    Ok(())
}

/// Runs one statement in a transaction holding the migration lock.
async fn run_locked(store: &SqlStore, statement: &'static str) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    lock(store.backend, &mut tx).await?;
    sqlx::query(statement)
        .execute(&mut *tx)
        .await
        .map_err(backend("creating schema_migrations"))?;
    tx.commit()
        .await
        .map_err(backend("creating schema_migrations"))
}

/// Applies one step, unless the ledger already records it, and records it, all in one
/// transaction, so a failed step leaves nothing behind.
async fn apply_step(store: &SqlStore, (version, statements): &Migration) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    lock(store.backend, &mut tx).await?;
    if is_applied(&mut tx, version).await? {
        return Ok(());
    }
    for statement in *statements {
        let doing = format!("applying migration {version}");
        sqlx::query(*statement)
            .execute(&mut *tx)
            .await
            .map_err(backend(&doing))?;
    }
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
        .bind(*version)
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(backend("recording a migration"))?;
    tracing::info!(version, "applied database migration");
    tx.commit().await.map_err(backend("committing a migration"))
}

/// Takes the migration lock for the rest of the transaction on PostgreSQL.
async fn lock(kind: Backend, conn: &mut AnyConnection) -> Result<(), StoreError> {
    if kind == Backend::Postgres {
        sqlx::query(PG_LOCK)
            .execute(conn)
            .await
            .map_err(backend("locking migrations"))?;
    }
    Ok(())
}

/// Whether the ledger records `version`.
async fn is_applied(conn: &mut AnyConnection, version: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1")
        .bind(version)
        .fetch_one(conn)
        .await
        .map_err(backend("reading schema_migrations"))?;
    Ok(codec::count(&row)? > 0)
}

/// The versions the ledger records with when each was applied, oldest first.
#[cfg(test)]
pub(super) async fn applied(store: &SqlStore) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .map_err(backend("reading schema_migrations"))?;
    rows.iter()
        .map(|row| {
            Ok((
                codec::column(row, "version")?,
                codec::column(row, "applied_at")?,
            ))
        })
        .collect()
}

/// The resolved pyproject.toml dependencies of an action (a JSON lock; NULL when it has none).
const DEPENDENCY_LOCK: &[&str] = &["ALTER TABLE actions ADD COLUMN dependency_lock TEXT"];

/// Replicas sharing one database: each one's last sign of life, and which replica an action
/// is running on, so that the runs of a replica that stopped can be told apart and closed.
const REPLICAS: &[&str] = &[
    "CREATE TABLE replicas (
        id TEXT NOT NULL PRIMARY KEY,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
    )",
    "ALTER TABLE actions ADD COLUMN running_on TEXT",
];

/// The origins an action may send requests to (a JSON list of allowlist entries; an empty
/// list, the default for existing actions, means no network).
const ALLOWED_HOSTS: &[&str] =
    &["ALTER TABLE actions ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '[]'"];

/// Secrets of organizations (`action_id` empty) and of actions, sealed (`key_id` names the
/// key, `nonce` and `ciphertext` are base64), and an organization's own origin cluster URL
/// (NULL: the service's).
const SECRETS: &[&str] = &[
    "CREATE TABLE secrets (
        org TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
        action_id TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        ciphertext TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (org, action_id, name)
    )",
    "ALTER TABLE orgs ADD COLUMN origin_cluster_url TEXT",
];

/// Each grant row remembers the form it was granted in (`vivarium`, or the OpenObserve
/// permission it came from, such as `AllowAll`), so that a role reads back as it was
/// written; the same verb may then be held through two forms.
const GRANT_FORMS: &[&str] = &[
    "CREATE TABLE role_grants_by_form (
        org TEXT NOT NULL,
        role TEXT NOT NULL,
        resource TEXT NOT NULL,
        object TEXT NOT NULL,
        verb TEXT NOT NULL,
        form TEXT NOT NULL,
        PRIMARY KEY (org, role, resource, object, verb, form),
        FOREIGN KEY (org, role) REFERENCES roles (org, name) ON DELETE CASCADE
    )",
    "INSERT INTO role_grants_by_form (org, role, resource, object, verb, form)
        SELECT org, role, resource, object, verb, 'vivarium' FROM role_grants",
    "DROP TABLE role_grants",
    "ALTER TABLE role_grants_by_form RENAME TO role_grants",
];

/// Each action's durable state: a JSON value (as text) per key, its version (1 when first
/// written, one more at each write), its size (key and JSON text bytes, for the quotas) and
/// when it expires (NULL: never). It goes with its action; the sweep finds expired entries by
/// `expires_at`.
const ACTION_STATE: &[&str] = &[
    "CREATE TABLE action_state (
        org TEXT NOT NULL,
        action_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        expires_at BIGINT,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (org, action_id, key),
        FOREIGN KEY (org, action_id) REFERENCES actions (org, id) ON DELETE CASCADE
    )",
    "CREATE INDEX action_state_by_expiry ON action_state (expires_at)",
    "ALTER TABLE runs ADD COLUMN state_changes TEXT NOT NULL DEFAULT '[]'",
];

/// What each run left in its scratch folder `/tmp` when it ended: disk blocks' bytes and
/// entries (0 for runs recorded before there was one).
const RUN_SCRATCH: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN scratch_bytes BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN scratch_files BIGINT NOT NULL DEFAULT 0",
];

/// The console's sessions (the SHA-256 of each secret, never the secret), gone with their
/// user; and an index for the dashboard, which reads an organization's runs by time.
const CONSOLE: &[&str] = &[
    "CREATE TABLE console_sessions (
        secret_hash TEXT NOT NULL PRIMARY KEY,
        email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    )",
    "CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at)",
    "CREATE INDEX runs_by_org_and_time ON runs (org, started_at)",
];

/// The audit log: every change asked of the API, per organization.
const AUDIT: &[&str] = &[
    "CREATE TABLE audit_events (
        org TEXT NOT NULL,
        id TEXT NOT NULL,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        operation TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status BIGINT NOT NULL,
        PRIMARY KEY (org, id)
    )",
    "CREATE INDEX audit_events_by_time ON audit_events (org, at)",
];
