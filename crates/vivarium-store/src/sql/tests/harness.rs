//! Test databases: a SQLite file in a temporary folder, and, when
//! `VIVARIUM_TEST_POSTGRES_URL` names a server, a fresh PostgreSQL schema per test (dropped
//! afterwards, even when the test fails), so tests run in parallel without seeing each other.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use tempfile::TempDir;

use crate::sql::SqlStore;

/// The variable naming a PostgreSQL server to test against.
const POSTGRES_URL_VAR: &str = "VIVARIUM_TEST_POSTGRES_URL";

/// Why a PostgreSQL test is ignored in a build without a server configured.
const NEEDS_POSTGRES: &str =
    "needs PostgreSQL: run eval \"$(.ci/backends)\" (it sets VIVARIUM_TEST_POSTGRES_URL) first";

/// The PostgreSQL server the environment names; fails the test, saying how to start one,
/// when none is named.
pub(crate) fn postgres_server() -> String {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| panic!("{POSTGRES_URL_VAR} is not set: {NEEDS_POSTGRES}"))
}

/// Tells schemas of one test process apart.
static SCHEMA_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where one test keeps its state.
pub(crate) struct TestDb {
    /// The URL a store connects to.
    pub(crate) url: String,
    /// The SQLite file's folder, deleted on drop.
    _dir: Option<TempDir>,
    /// The PostgreSQL server's URL and the schema made for this test.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite database in a file of a new temporary folder.
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("state.db").display()
        );
        Self {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new, empty schema on the PostgreSQL server named by the environment; fails the test
    /// when none is named (the build reports such tests as ignored unless one is).
    pub(crate) async fn postgres() -> Self {
        let server = postgres_server();
        let schema = format!(
            "vivarium_test_{}_{}",
            std::process::id(),
            SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        admin(
            &server,
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        )
        .await;
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        Self {
            url,
            _dir: None,
            postgres: Some((server, schema)),
        }
    }

    /// A store over the database, migrated.
    pub(crate) async fn open(&self) -> SqlStore {
        SqlStore::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the PostgreSQL schema; the SQLite folder goes when `self` drops.
    pub(crate) async fn cleanup(self) {
        if let Some((server, schema)) = &self.postgres {
            admin(server, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }
}

/// Runs `sql` on its own connection to `server`.
async fn admin(server: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("administer PostgreSQL");
    conn.close().await.expect("close the admin connection");
}

/// Declares each listed test once per backend: `store` tests take `&dyn MetadataStore`,
/// `db` tests take the `&TestDb` (to reopen it, or reach the pool). PostgreSQL tests return
/// at once when no server is configured.
macro_rules! on_every_backend {
    (store: [$($store_test:ident),* $(,)?], db: [$($db_test:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $store_test() {
                    let db = $crate::sql::tests::harness::TestDb::sqlite().await;
                    $crate::sql::tests::harness::run_store_test(db, |store| {
                        Box::pin($crate::sql::tests::suite::$store_test(store))
                    })
                    .await;
                }
            )*
            $(
                #[tokio::test]
                async fn $db_test() {
                    let db = $crate::sql::tests::harness::TestDb::sqlite().await;
                    $crate::sql::tests::harness::run_db_test(db, |db| {
                        Box::pin($crate::sql::tests::suite::$db_test(db))
                    })
                    .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(not(vivarium_postgres), ignore = "needs PostgreSQL: run eval \"$(.ci/backends)\" first")]
                async fn $store_test() {
                    let db = $crate::sql::tests::harness::TestDb::postgres().await;
                    $crate::sql::tests::harness::run_store_test(db, |store| {
                        Box::pin($crate::sql::tests::suite::$store_test(store))
                    })
                    .await;
                }
            )*
            $(
                #[tokio::test]
                #[cfg_attr(not(vivarium_postgres), ignore = "needs PostgreSQL: run eval \"$(.ci/backends)\" first")]
                async fn $db_test() {
                    let db = $crate::sql::tests::harness::TestDb::postgres().await;
                    $crate::sql::tests::harness::run_db_test(db, |db| {
                        Box::pin($crate::sql::tests::suite::$db_test(db))
                    })
                    .await;
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

/// A test future borrowing what it tests.
pub(crate) type TestFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Opens a store on `db`, runs `test` on it, then cleans up, failing afterwards if it failed.
pub(crate) async fn run_store_test(
    db: TestDb,
    test: for<'a> fn(&'a dyn crate::MetadataStore) -> TestFuture<'a>,
) {
    let store = db.open().await;
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(test(&store))).await;
    store.close().await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `test` on `db`, then cleans up, failing afterwards if it failed.
pub(crate) async fn run_db_test(db: TestDb, test: for<'a> fn(&'a TestDb) -> TestFuture<'a>) {
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(test(&db))).await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
