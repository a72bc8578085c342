//! Replicas sharing one database: heartbeats, and closing the runs of a replica that stopped.

use crate::sql::tests::fixtures::{ACME, action, run, two_orgs};
use crate::{ActionStatus, MetadataStore, RunWrite, StoreError};

/// Marks ACME's action `id` running on `replica`, as the run journal does.
async fn mark_running(
    store: &dyn MetadataStore,
    id: &str,
    replica: &str,
) -> Result<(), StoreError> {
    let mark = RunWrite::Started {
        org: ACME.into(),
        action_id: id.into(),
        replica: replica.into(),
    };
    store.commit_run_writes(&[mark]).await
}

/// The stored status of ACME's action `id`.
async fn status_of(store: &dyn MetadataStore, id: &str) -> ActionStatus {
    store
        .get_action(ACME, id)
        .await
        .unwrap()
        .expect("the action exists")
        .status
}

pub(crate) async fn a_silent_replicas_runs_are_closed_and_a_live_ones_kept(
    store: &dyn MetadataStore,
) {
    two_orgs(store).await;
    for id in ["on-dead", "on-live", "idle"] {
        store.insert_action(&action(ACME, id, id, 1)).await.unwrap();
    }
    store.heartbeat("dead", 1_000).await.unwrap();
    store.heartbeat("live", 1_000).await.unwrap();
    mark_running(store, "on-dead", "dead").await.unwrap();
    mark_running(store, "on-live", "live").await.unwrap();
    store.heartbeat("live", 5_000).await.unwrap();

    let moved = store
        .recover_silent_replicas(4_000, ActionStatus::Errored)
        .await
        .unwrap();

    assert_eq!(moved, 1);
    assert_eq!(status_of(store, "on-dead").await, ActionStatus::Errored);
    assert_eq!(status_of(store, "on-live").await, ActionStatus::Running);
    assert_eq!(status_of(store, "idle").await, ActionStatus::Ready);
    let again = store
        .recover_silent_replicas(4_000, ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(again, 0, "a closed run is closed once");
}

pub(crate) async fn a_replica_that_never_beat_counts_as_silent(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "a1", 1))
        .await
        .unwrap();
    mark_running(store, "a1", "ghost").await.unwrap();
    let moved = store
        .recover_silent_replicas(0, ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(status_of(store, "a1").await, ActionStatus::Errored);
}

pub(crate) async fn a_recorded_run_clears_the_running_replica(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "a1", 1))
        .await
        .unwrap();
    mark_running(store, "a1", "gone").await.unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 10), ActionStatus::Ready)
        .await
        .unwrap();
    let moved = store
        .recover_silent_replicas(i64::MAX, ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(moved, 0, "the run finished; nothing is left to close");
    assert_eq!(status_of(store, "a1").await, ActionStatus::Ready);
}

pub(crate) async fn heartbeats_move_forward_and_marking_needs_the_action(
    store: &dyn MetadataStore,
) {
    two_orgs(store).await;
    store.heartbeat("r1", 1_000).await.unwrap();
    store.heartbeat("r1", 2_000).await.unwrap();
    store
        .insert_action(&action(ACME, "a1", "a1", 1))
        .await
        .unwrap();
    mark_running(store, "a1", "r1").await.unwrap();
    let kept = store
        .recover_silent_replicas(1_500, ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(kept, 0, "the second beat keeps r1 alive past 1500");
    let missing = mark_running(store, "ghost", "r1").await;
    assert!(
        matches!(missing, Err(crate::StoreError::NotFound(_))),
        "{missing:?}"
    );
}
