//! The scheduler's queries.

use crate::sql::tests::fixtures::{ACME, GLOBEX, scheduled, two_orgs};
use crate::{Action, ExecutionKind, MetadataStore};

pub(crate) async fn claim_schedule_is_compare_and_set(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&scheduled(ACME, "a1", ExecutionKind::Repeat, Some(1_000)))
        .await
        .unwrap();

    assert!(
        store
            .claim_schedule(ACME, "a1", 1_000, Some(2_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_schedule(ACME, "a1", 1_000, Some(3_000))
            .await
            .unwrap(),
        "stale expected value"
    );
    assert_eq!(
        store
            .get_action(ACME, "a1")
            .await
            .unwrap()
            .unwrap()
            .next_run_at,
        Some(2_000)
    );
    assert!(
        !store
            .claim_schedule(GLOBEX, "a1", 2_000, Some(3_000))
            .await
            .unwrap(),
        "other organization"
    );
    assert!(
        !store
            .claim_schedule(ACME, "ghost", 2_000, Some(3_000))
            .await
            .unwrap(),
        "absent action"
    );

    assert!(store.claim_schedule(ACME, "a1", 2_000, None).await.unwrap());
    assert_eq!(
        store
            .get_action(ACME, "a1")
            .await
            .unwrap()
            .unwrap()
            .next_run_at,
        None
    );
    assert!(
        !store
            .claim_schedule(ACME, "a1", 2_000, Some(4_000))
            .await
            .unwrap(),
        "no firing left"
    );
}

pub(crate) async fn concurrent_claims_let_one_win(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&scheduled(ACME, "a1", ExecutionKind::Repeat, Some(1_000)))
        .await
        .unwrap();
    let claims = (0..8).map(|i| store.claim_schedule(ACME, "a1", 1_000, Some(2_000 + i)));
    let won: Vec<bool> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(|claim| claim.unwrap())
        .collect();
    assert_eq!(won.iter().filter(|won| **won).count(), 1, "{won:?}");
    let winner = won.iter().position(|won| *won).unwrap() as i64;
    assert_eq!(
        store
            .get_action(ACME, "a1")
            .await
            .unwrap()
            .unwrap()
            .next_run_at,
        Some(2_000 + winner)
    );
}

pub(crate) async fn due_actions_are_unpaused_scheduled_and_due(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let once = scheduled(ACME, "once-due", ExecutionKind::Once, Some(100));
    let repeat = scheduled(GLOBEX, "repeat-due", ExecutionKind::Repeat, Some(50));
    let paused = Action {
        paused: true,
        ..scheduled(ACME, "paused", ExecutionKind::Repeat, Some(10))
    };
    let service = scheduled(ACME, "service", ExecutionKind::Service, Some(10));
    let future = scheduled(ACME, "future", ExecutionKind::Repeat, Some(1_000));
    let unscheduled = scheduled(ACME, "unscheduled", ExecutionKind::Repeat, None);
    for action in [&once, &repeat, &paused, &service, &future, &unscheduled] {
        store.insert_action(action).await.unwrap();
    }

    assert_eq!(
        store.due_actions(500).await.unwrap(),
        [repeat.clone(), once.clone()]
    );
    assert_eq!(
        store.due_actions(100).await.unwrap(),
        [repeat.clone(), once],
        "due exactly at now"
    );
    assert_eq!(store.due_actions(99).await.unwrap(), [repeat]);
    assert_eq!(store.due_actions(49).await.unwrap(), []);
    let ids: Vec<String> = store
        .due_actions(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|action| action.id)
        .collect();
    assert_eq!(ids, ["repeat-due", "once-due", "future"]);
}
