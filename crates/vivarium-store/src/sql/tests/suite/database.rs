//! Tests that need the database itself rather than the trait.

use sqlx::Row;

use crate::sql::migrations::{self, MIGRATIONS};
use crate::sql::tests::fixtures::{ACME, action, grant, run, two_orgs};
use crate::sql::tests::harness::TestDb;
use crate::{ActionStatus, MetadataStore, Page, RoleChange, RunFilter};
use vivarium_auth::{ObjectScope, Verb};

pub(crate) async fn reopening_keeps_data_and_applies_no_migration_twice(db: &TestDb) {
    let store = db.open().await;
    two_orgs(&store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 1_000), ActionStatus::Completed)
        .await
        .unwrap();
    store.create_role(ACME, "ops", 5).await.unwrap();
    let change = RoleChange {
        add: vec![grant(Verb::Get, ObjectScope::All).into()],
        add_users: vec!["amy@example.com".into()],
        ..RoleChange::default()
    };
    let role = store.update_role(ACME, "ops", &change).await.unwrap();
    let action_before = store.get_action(ACME, "a1").await.unwrap();
    let ledger = migrations::applied(&store).await.unwrap();
    let versions: Vec<&str> = ledger.iter().map(|(version, _)| version.as_str()).collect();
    let expected: Vec<&str> = MIGRATIONS.iter().map(|(version, _)| *version).collect();
    assert_eq!(versions, expected);
    store.close().await;

    let reopened = db.open().await;
    assert_eq!(
        migrations::applied(&reopened).await.unwrap(),
        ledger,
        "same versions, same application times"
    );
    assert_eq!(
        reopened.get_action(ACME, "a1").await.unwrap(),
        action_before
    );
    assert_eq!(
        action_before.map(|a| (a.last_run_at, a.status)),
        Some((Some(1_000), ActionStatus::Completed))
    );
    let (runs, total) = reopened
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 0,
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!((runs, total), (vec![run(ACME, "a1", "r1", 1_000)], 1));
    assert_eq!(reopened.get_role(ACME, "ops").await.unwrap(), Some(role));
    let orgs: Vec<String> = reopened
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|org| org.name)
        .collect();
    assert_eq!(orgs, ["acme", "globex"]);
    reopened.close().await;
}

pub(crate) async fn placeholders_bind_by_number(db: &TestDb) {
    let store = db.open().await;
    let row = sqlx::query("SELECT $2 || '-' || $1 || '-' || $2 AS joined, $3 + 1 AS next")
        .bind("first")
        .bind("second")
        .bind(41_i64)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        row.try_get::<String, _>("joined").unwrap(),
        "second-first-second"
    );
    assert_eq!(row.try_get::<i64, _>("next").unwrap(), 42);
    store.close().await;
}
