//! Tests that need the database itself rather than the trait.

use futures_util::future::join_all;
use sqlx::Row;

use crate::sql::migrations::{self, MIGRATIONS};
use crate::sql::tests::fixtures::{ACME, action, grant, run, two_orgs};
use crate::sql::tests::harness::TestDb;
use crate::{
    ActionStatus, MetadataStore, Page, RoleChange, RunFilter, RunJournal, RunWrite, StoreError,
};
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

pub(crate) async fn the_journal_answers_each_write_with_its_own_result(db: &TestDb) {
    let store = std::sync::Arc::new(db.open().await);
    two_orgs(store.as_ref()).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "taken", 1), ActionStatus::Ready)
        .await
        .unwrap();
    let journal = RunJournal::start(store.clone());
    let finished = |action_id: &str, id: &str, started_at: i64| RunWrite::Finished {
        run: Box::new(run(ACME, action_id, id, started_at)),
        status: ActionStatus::Ready,
    };

    // Queued before the writer first runs, so that they meet in one commit that fails and is
    // retried write by write.
    let mut writes: Vec<RunWrite> = (0..40)
        .map(|i| finished("a1", &format!("r{i:02}"), 100 + i))
        .collect();
    writes.push(finished("ghost", "on-a-ghost", 500));
    writes.push(finished("a1", "taken", 600));
    let results = join_all(writes.into_iter().map(|write| journal.commit(write))).await;
    let (ghost, duplicate) = (&results[40], &results[41]);
    assert!(results[..40].iter().all(Result::is_ok), "{results:?}");
    assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    // A mark queued just before a record lands before it, so the record has the last word.
    let mark = journal.commit(RunWrite::Started {
        org: ACME.into(),
        action_id: "a1".into(),
        replica: "r1".into(),
    });
    let (marked, recorded) = tokio::join!(mark, journal.commit(finished("a1", "last", 700)));
    marked.unwrap();
    recorded.unwrap();
    let action = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (action.last_run_at, action.status),
        (Some(700), ActionStatus::Ready)
    );
    let (_, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 0,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 42, "the pre-recorded run, the 40 and the last");
    store.close().await;
}
