//! Runs and what they do to their action.

use crate::sql::tests::fixtures::{ACME, GLOBEX, action, failed_run, run, two_orgs};
use crate::{ActionStatus, MetadataStore, Page, Run, RunFilter, RunWrite, StoreError, Trigger};
use vivarium_sandbox::OutcomeKind;

pub(crate) async fn record_run_moves_the_action(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();

    let success = run(ACME, "a1", "r1", 1_000);
    store
        .record_run(&success, ActionStatus::Completed)
        .await
        .unwrap();
    let after_success = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (
            after_success.last_run_at,
            after_success.last_successful_at,
            after_success.status
        ),
        (Some(1_000), Some(1_000), ActionStatus::Completed)
    );

    let failure = failed_run(ACME, "a1", "r2", 2_000);
    store
        .record_run(&failure, ActionStatus::Errored)
        .await
        .unwrap();
    let after_failure = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (
            after_failure.last_run_at,
            after_failure.last_successful_at,
            after_failure.status
        ),
        (Some(2_000), Some(1_000), ActionStatus::Errored)
    );

    assert_eq!(
        store.get_run(ACME, "a1", "r1").await.unwrap(),
        Some(success)
    );
    assert_eq!(
        store.get_run(ACME, "a1", "r2").await.unwrap(),
        Some(failure)
    );
}

pub(crate) async fn late_runs_do_not_move_times_back(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .record_run(&failed_run(ACME, "a1", "r2", 2_000), ActionStatus::Errored)
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 1_500), ActionStatus::Ready)
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r0", 1_000), ActionStatus::Ready)
        .await
        .unwrap();
    let moved = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (moved.last_run_at, moved.last_successful_at, moved.status),
        (Some(2_000), Some(1_500), ActionStatus::Ready)
    );
}

pub(crate) async fn record_run_is_all_or_nothing(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 1_000), ActionStatus::Ready)
        .await
        .unwrap();

    let duplicate = store
        .record_run(&failed_run(ACME, "a1", "r1", 5_000), ActionStatus::Errored)
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let unchanged = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (unchanged.last_run_at, unchanged.status),
        (Some(1_000), ActionStatus::Ready)
    );

    let wrong_org = store
        .record_run(&run(GLOBEX, "a1", "r9", 9_000), ActionStatus::Errored)
        .await;
    assert!(
        matches!(wrong_org, Err(StoreError::NotFound(_))),
        "{wrong_org:?}"
    );
    let no_action = store
        .record_run(&run(ACME, "ghost", "r8", 9_000), ActionStatus::Errored)
        .await;
    assert!(
        matches!(no_action, Err(StoreError::NotFound(_))),
        "{no_action:?}"
    );
    let page = Page {
        offset: 0,
        limit: 10,
    };
    assert_eq!(
        store
            .list_runs(ACME, "a1", RunFilter::default(), page)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(
        store
            .list_runs(GLOBEX, "a1", RunFilter::default(), page)
            .await
            .unwrap(),
        (vec![], 0)
    );
    assert_eq!(
        store
            .get_action(ACME, "a1")
            .await
            .unwrap()
            .unwrap()
            .last_run_at,
        Some(1_000)
    );
}

pub(crate) async fn runs_are_paged_newest_first_with_a_total(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .insert_action(&action(ACME, "a2", "other", 100))
        .await
        .unwrap();
    for started_at in [30, 10, 50, 20, 40] {
        let id = format!("r{started_at}");
        store
            .record_run(&run(ACME, "a1", &id, started_at), ActionStatus::Ready)
            .await
            .unwrap();
    }
    store
        .record_run(&run(ACME, "a2", "x1", 60), ActionStatus::Ready)
        .await
        .unwrap();

    let ids = |runs: Vec<Run>| runs.into_iter().map(|run| run.id).collect::<Vec<_>>();
    let (first, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 0,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (ids(first), total),
        (vec!["r50".to_string(), "r40".to_string()], 5)
    );
    let (second, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 2,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (ids(second), total),
        (vec!["r30".to_string(), "r20".to_string()], 5)
    );
    let (last, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 4,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(last), total), (vec!["r10".to_string()], 5));
    let (beyond, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 10,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!((beyond.len(), total), (0, 5));

    assert_eq!(
        store
            .list_runs(
                GLOBEX,
                "a1",
                RunFilter::default(),
                Page {
                    offset: 0,
                    limit: 10
                }
            )
            .await
            .unwrap(),
        (vec![], 0)
    );
    assert_eq!(store.get_run(GLOBEX, "a1", "r10").await.unwrap(), None);
    assert_eq!(store.get_run(ACME, "a2", "r10").await.unwrap(), None);
    assert_eq!(
        store
            .get_run(ACME, "a1", "r10")
            .await
            .unwrap()
            .map(|run| run.started_at),
        Some(10)
    );
}

pub(crate) async fn runs_are_filtered_by_outcome_and_trigger(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    let runs = [
        run(ACME, "a1", "ok-manual", 10),
        failed_run(ACME, "a1", "error-alert", 20),
        Run {
            trigger: Trigger::Alert,
            ..run(ACME, "a1", "ok-alert", 30)
        },
    ];
    for run in &runs {
        store.record_run(run, ActionStatus::Ready).await.unwrap();
    }
    let page = Page {
        offset: 0,
        limit: 10,
    };
    let listed = |filter| async move {
        let (runs, total) = store.list_runs(ACME, "a1", filter, page).await.unwrap();
        (
            runs.into_iter().map(|run| run.id).collect::<Vec<_>>(),
            total,
        )
    };
    let ok = Some(OutcomeKind::Ok.into());
    assert_eq!(
        listed(RunFilter {
            outcome: ok,
            trigger: None
        })
        .await,
        (vec!["ok-alert".to_string(), "ok-manual".to_string()], 2)
    );
    assert_eq!(
        listed(RunFilter {
            outcome: None,
            trigger: Some(Trigger::Alert)
        })
        .await,
        (vec!["ok-alert".to_string(), "error-alert".to_string()], 2)
    );
    assert_eq!(
        listed(RunFilter {
            outcome: ok,
            trigger: Some(Trigger::Alert)
        })
        .await,
        (vec!["ok-alert".to_string()], 1)
    );
    assert_eq!(
        listed(RunFilter {
            outcome: Some(OutcomeKind::Timeout.into()),
            trigger: None
        })
        .await,
        (vec![], 0)
    );
}

pub(crate) async fn run_points_are_the_newest_of_the_org_since_a_time(store: &dyn MetadataStore) {
    two_orgs(store).await;
    for (org, id) in [(ACME, "a1"), (GLOBEX, "g1")] {
        store
            .insert_action(&action(org, id, "etl", 100))
            .await
            .unwrap();
    }
    for started_at in [10, 20, 30, 40] {
        let id = format!("r{started_at}");
        store
            .record_run(&run(ACME, "a1", &id, started_at), ActionStatus::Ready)
            .await
            .unwrap();
    }
    store
        .record_run(&failed_run(GLOBEX, "g1", "g", 35), ActionStatus::Ready)
        .await
        .unwrap();
    let points = store.run_points(ACME, 20, 2).await.unwrap();
    assert_eq!(
        points
            .iter()
            .map(|point| (point.started_at, point.outcome))
            .collect::<Vec<_>>(),
        vec![(30, OutcomeKind::Ok.into()), (40, OutcomeKind::Ok.into())]
    );
    assert_eq!(points[0].action_id, "a1");
    assert_eq!(points[0].duration_ms, 12.5);
}

/// The mark that `action_id` of ACME runs on replica `r1`, as a journal write.
fn started(action_id: &str) -> RunWrite {
    RunWrite::Started {
        org: ACME.into(),
        action_id: action_id.into(),
        replica: "r1".into(),
    }
}

/// `run`'s record, leaving its action `status`, as a journal write.
fn finished(run: Run, status: ActionStatus) -> RunWrite {
    RunWrite::Finished {
        run: Box::new(run),
        status,
    }
}

pub(crate) async fn run_writes_commit_in_order_all_or_nothing(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();

    let together = [
        started("a1"),
        finished(run(ACME, "a1", "r1", 1_000), ActionStatus::Ready),
    ];
    store.commit_run_writes(&together).await.unwrap();
    let after = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (after.last_run_at, after.status),
        (Some(1_000), ActionStatus::Ready),
        "the record, committed after the mark, leaves the action ready"
    );
    let still_running = store
        .recover_silent_replicas(i64::MAX, ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(still_running, 0, "the record cleared the running replica");

    let with_a_ghost = [
        finished(run(ACME, "a1", "r2", 2_000), ActionStatus::Completed),
        finished(run(ACME, "ghost", "r3", 3_000), ActionStatus::Completed),
    ];
    let refused = store.commit_run_writes(&with_a_ghost).await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    let with_a_duplicate = [
        started("a1"),
        finished(failed_run(ACME, "a1", "r1", 4_000), ActionStatus::Errored),
    ];
    let refused = store.commit_run_writes(&with_a_duplicate).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    let unchanged = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(
        (unchanged.last_run_at, unchanged.status),
        (Some(1_000), ActionStatus::Ready),
        "neither refused commit changed the action, the mark included"
    );
    assert_eq!(store.get_run(ACME, "a1", "r2").await.unwrap(), None);
    let (runs, total) = store
        .list_runs(
            ACME,
            "a1",
            RunFilter::default(),
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = runs.iter().map(|run| run.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["r1"], 1));
}
