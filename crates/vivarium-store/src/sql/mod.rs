//! [`SqlStore`]: the metadata store on SQLite or PostgreSQL, through one portable set of
//! queries run by `sqlx`'s `Any` driver.
//!
//! The SQL sticks to what both databases understand: `$n` placeholders (SQLite reads them as
//! numbered parameters), `TEXT`, `BIGINT` (booleans as 0/1, timestamps as microseconds),
//! `DOUBLE PRECISION`, JSON kept as `TEXT`, and `INSERT ... ON CONFLICT`.

mod accounts;
mod actions;
mod audit;
mod codec;
mod errors;
mod migrations;
mod orgs;
mod redact;
mod replicas;
mod roles;
mod runs;
mod secrets;
mod sessions;
mod state;
mod store;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use crate::error::StoreError;
use errors::backend;

use redact::redact_url;

/// Connections in a pool over a SQLite file. SQLite runs one writer at a time whatever the
/// pool size; a few connections let reads go on (WAL) while a write holds the lock.
pub(crate) const SQLITE_POOL_SIZE: u32 = 4;

/// Connections in a pool over PostgreSQL.
const POSTGRES_POOL_SIZE: u32 = 10;

/// Statements run on every new SQLite connection. `journal_mode` is a property of the file
/// (set once, kept); `synchronous` (FULL: every commit is on disk, WAL included, before it is
/// answered, so an answered write survives a power cut), `busy_timeout` (how long to wait for
/// another connection's write lock, here 5 s) and `foreign_keys` (off by default in SQLite)
/// belong to each connection.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
];

/// Which database a URL names, which decides the pool's shape and how transactions begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// A SQLite file, or an in-memory database when `in_memory`.
    Sqlite {
        /// `sqlite::memory:` and `mode=memory` databases live as long as their connection.
        in_memory: bool,
    },
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend named by `url`'s scheme.
    fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            Ok(Self::Sqlite { in_memory })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Backend(format!(
                "unsupported database URL {} (expected sqlite:... or postgres://...)",
                redact_url(url)
            )))
        }
    }

    /// The pool settings that suit the backend.
    fn pool_options(self) -> AnyPoolOptions {
        match self {
            // Each connection to `sqlite::memory:` through `Any` opens its own database, so
            // the pool keeps exactly one connection alive for the store's lifetime.
            Self::Sqlite { in_memory: true } => AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(|conn, _meta| Box::pin(apply_sqlite_pragmas(conn))),
            Self::Sqlite { in_memory: false } => AnyPoolOptions::new()
                .max_connections(SQLITE_POOL_SIZE)
                .after_connect(|conn, _meta| Box::pin(apply_sqlite_pragmas(conn))),
            Self::Postgres => AnyPoolOptions::new().max_connections(POSTGRES_POOL_SIZE),
        }
    }
}

/// Sets WAL journaling, the busy timeout and foreign-key enforcement on a new SQLite
/// connection (sqlx's own SQLite defaults are not relied upon).
async fn apply_sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in SQLITE_PRAGMAS {
        sqlx::query(*pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The metadata store over a SQL database: SQLite (`sqlite://path?mode=rwc`,
/// `sqlite::memory:`) or PostgreSQL (`postgres://...`), chosen by URL. Cloning shares the
/// connection pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// The connection pool.
    pool: AnyPool,
    /// Which database the pool talks to.
    backend: Backend,
}

impl SqlStore {
    /// Connects to the database at `url` and brings its schema up to date, so the store is
    /// ready for use. Errors name the URL with any password replaced by `***`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = backend
            .pool_options()
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|err| {
                StoreError::Backend(format!("connecting to {}: {err}", redact_url(url)))
            })?;
        let store = Self { pool, backend };
        migrations::apply(&store).await?;
        Ok(store)
    }

    /// Closes every connection, waiting for those in use to come back. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for queries that need no transaction.
    fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One connection from the pool, for several reads in a row.
    async fn conn(&self) -> Result<PoolConnection<Any>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(backend("acquiring a connection"))
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction that reads before writing waits for other writers
    /// (up to the busy timeout) instead of failing when it upgrades its lock.
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let started = match self.backend {
            Backend::Sqlite { .. } => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        started.map_err(backend("starting a transaction"))
    }
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
