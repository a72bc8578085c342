//! A PostgreSQL database for one test: a fresh schema on the server `VIVARIUM_TEST_POSTGRES_URL`
//! names (`.ci/backends` starts one and prints it), dropped when the test ends, and the
//! database URL a `vivarium serve` is given to use only that schema.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells the schemas of one test process apart.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh schema, dropped (with everything in it) on drop.
pub struct Schema {
    /// The server URL, without the schema option (for dropping the schema).
    server: String,
    /// The schema's name.
    pub name: String,
    /// The URL that makes every connection use the schema (`VIVARIUM_DATABASE_URL`).
    pub database_url: String,
}

impl Schema {
    /// A fresh schema named `{prefix}_{pid}_{n}`; fails the test, saying how to start a
    /// server, when `VIVARIUM_TEST_POSTGRES_URL` is not set.
    #[track_caller]
    pub fn create(prefix: &str) -> Self {
        let server = match std::env::var("VIVARIUM_TEST_POSTGRES_URL") {
            Ok(value) if !value.is_empty() => value,
            _ => panic!(
                "VIVARIUM_TEST_POSTGRES_URL is not set: this test needs PostgreSQL; start it with \
                 `eval \"$(.ci/backends)\"` (as root, or with PostgreSQL installed), then run the \
                 test again"
            ),
        };
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        psql(&server, &format!("CREATE SCHEMA {name}"));
        let separator = if server.contains('?') { '&' } else { '?' };
        Self {
            database_url: format!("{server}{separator}options=-c%20search_path%3D{name}"),
            server,
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(
            &self.server,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs one SQL statement on `server` with `psql` (installed with the PostgreSQL server).
#[track_caller]
pub fn psql(server: &str, statement: &str) {
    let output = Command::new("psql")
        .arg(server)
        .args(["-v", "ON_ERROR_STOP=1", "-qc", statement])
        .output()
        .unwrap_or_else(|e| panic!("cannot start psql for {statement:?}: {e}"));
    assert!(
        output.status.success(),
        "psql {statement:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
