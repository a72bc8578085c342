//! Actions.

use std::collections::BTreeMap;

use crate::sql::tests::fixtures::{ACME, GLOBEX, action, run, two_orgs};
use crate::{Action, ActionStatus, ExecutionKind, MetadataStore, Page, RunFilter, StoreError};

pub(crate) async fn actions_are_scoped_to_their_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let etl = action(ACME, "a1", "etl", 100);
    store.insert_action(&etl).await.unwrap();
    let same_name_elsewhere = action(GLOBEX, "g1", "etl", 100);
    store.insert_action(&same_name_elsewhere).await.unwrap();

    assert_eq!(
        store.get_action(ACME, "a1").await.unwrap(),
        Some(etl.clone())
    );
    assert_eq!(store.get_action(GLOBEX, "a1").await.unwrap(), None);
    assert_eq!(
        store.list_actions(GLOBEX).await.unwrap(),
        [same_name_elsewhere]
    );

    let renamed = Action {
        name: "stolen".into(),
        org: GLOBEX.into(),
        ..etl.clone()
    };
    let update = store.update_action(&renamed).await;
    assert!(matches!(update, Err(StoreError::NotFound(_))), "{update:?}");
    let status = store
        .set_action_status(GLOBEX, "a1", ActionStatus::Errored)
        .await;
    assert!(matches!(status, Err(StoreError::NotFound(_))), "{status:?}");
    let delete = store.delete_action(GLOBEX, "a1").await;
    assert!(matches!(delete, Err(StoreError::NotFound(_))), "{delete:?}");
    assert!(!store.claim_schedule(GLOBEX, "a1", 0, None).await.unwrap());
    assert_eq!(store.get_action(ACME, "a1").await.unwrap(), Some(etl));
}

pub(crate) async fn action_names_and_ids_are_unique(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    let same_name = store.insert_action(&action(ACME, "a2", "etl", 200)).await;
    assert!(
        matches!(same_name, Err(StoreError::Conflict(ref what)) if what.contains("etl")),
        "{same_name:?}"
    );
    let same_id = store
        .insert_action(&action(GLOBEX, "a1", "other", 200))
        .await;
    assert!(
        matches!(same_id, Err(StoreError::Conflict(_))),
        "{same_id:?}"
    );
    let no_org = store
        .insert_action(&action("ghost", "a3", "etl", 200))
        .await;
    assert!(
        matches!(no_org, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{no_org:?}"
    );
    assert_eq!(store.list_actions(ACME).await.unwrap().len(), 1);
    assert_eq!(store.list_actions(GLOBEX).await.unwrap(), []);
}

pub(crate) async fn actions_list_newest_first(store: &dyn MetadataStore) {
    two_orgs(store).await;
    for (id, created_at) in [("old", 100), ("new", 300), ("mid", 200)] {
        store
            .insert_action(&action(ACME, id, id, created_at))
            .await
            .unwrap();
    }
    let ids: Vec<String> = store
        .list_actions(ACME)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["new", "mid", "old"]);
}

pub(crate) async fn optional_action_fields_round_trip(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let full = Action {
        execution: ExecutionKind::Repeat,
        cron_expr: Some("0 3 * * *".into()),
        environment_variables: BTreeMap::new(),
        last_run_at: Some(900),
        last_successful_at: Some(800),
        status: ActionStatus::Errored,
        paused: true,
        next_run_at: Some(1_700_000_000_000_000),
        ..action(ACME, "a1", "nightly", 100)
    };
    store.insert_action(&full).await.unwrap();
    assert_eq!(store.get_action(ACME, "a1").await.unwrap(), Some(full));
}

pub(crate) async fn update_action_replaces_settings_and_keeps_history(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .insert_action(&action(ACME, "a2", "taken", 100))
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 150), ActionStatus::Ready)
        .await
        .unwrap();

    let edited = Action {
        name: "etl-v2".into(),
        description: "second version".into(),
        execution: ExecutionKind::Once,
        cron_expr: Some("30 12 * * *".into()),
        environment_variables: BTreeMap::from([("ONLY".into(), "this".into())]),
        zip_file_name: "v2.zip".into(),
        zip_digest: "digest-v2".into(),
        zip_size: 8_192,
        service_account: "other-bot@example.com".into(),
        owner: "new-owner@example.com".into(),
        updated_at: 400,
        dependency_lock: Some(r#"{"packages":[]}"#.into()),
        allowed_hosts: vec!["POST https://hooks.slack.com".into()],
        paused: true,
        next_run_at: Some(5_000),
        // Fields the update must leave alone:
        status: ActionStatus::Running,
        created_by: "someone-else@example.com".into(),
        created_at: 999,
        last_run_at: None,
        last_successful_at: None,
        ..action(ACME, "a1", "etl", 100)
    };
    store.update_action(&edited).await.unwrap();
    let expected = Action {
        created_by: "creator@example.com".into(),
        created_at: 100,
        status: ActionStatus::Ready,
        last_run_at: Some(150),
        last_successful_at: Some(150),
        ..edited.clone()
    };
    assert_eq!(
        store.get_action(ACME, "a1").await.unwrap(),
        Some(expected.clone())
    );

    let collision = store
        .update_action(&Action {
            name: "taken".into(),
            ..edited
        })
        .await;
    assert!(
        matches!(collision, Err(StoreError::Conflict(ref what)) if what.contains("taken")),
        "{collision:?}"
    );
    assert_eq!(store.get_action(ACME, "a1").await.unwrap(), Some(expected));
    let missing = store.update_action(&action(ACME, "nope", "nope", 1)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub(crate) async fn set_action_status_changes_only_the_status(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let etl = action(ACME, "a1", "etl", 100);
    store.insert_action(&etl).await.unwrap();
    store
        .set_action_status(ACME, "a1", ActionStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        store.get_action(ACME, "a1").await.unwrap(),
        Some(Action {
            status: ActionStatus::Running,
            ..etl
        })
    );
    let missing = store
        .set_action_status(ACME, "nope", ActionStatus::Ready)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub(crate) async fn zip_users_are_counted_per_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let shared = |org: &str, id: &str| Action {
        zip_digest: "d1".into(),
        ..action(org, id, id, 100)
    };
    store.insert_action(&shared(ACME, "a1")).await.unwrap();
    store.insert_action(&shared(ACME, "a2")).await.unwrap();
    store.insert_action(&shared(GLOBEX, "g1")).await.unwrap();
    store
        .insert_action(&action(ACME, "a3", "a3", 100))
        .await
        .unwrap();

    assert_eq!(store.count_zip_users(ACME, "d1").await.unwrap(), 2);
    assert_eq!(store.count_zip_users(GLOBEX, "d1").await.unwrap(), 1);
    assert_eq!(store.count_zip_users(ACME, "digest-a3").await.unwrap(), 1);
    assert_eq!(store.count_zip_users(ACME, "d2").await.unwrap(), 0);
    store.delete_action(ACME, "a1").await.unwrap();
    assert_eq!(store.count_zip_users(ACME, "d1").await.unwrap(), 1);
    let in_use = store.zip_digests_in_use(ACME).await.unwrap();
    let mut in_use: Vec<String> = in_use.into_iter().collect();
    in_use.sort();
    assert_eq!(in_use, ["d1", "digest-a3"]);
    let globex = store.zip_digests_in_use(GLOBEX).await.unwrap();
    assert_eq!(globex.into_iter().collect::<Vec<_>>(), ["d1"]);
    assert!(store.zip_digests_in_use("nobody").await.unwrap().is_empty());
    assert!(
        store
            .dependency_locks_in_use(ACME)
            .await
            .unwrap()
            .is_empty()
    );
    let locked = Action {
        dependency_lock: Some("{\"packages\": []}".into()),
        ..action(ACME, "a4", "a4", 100)
    };
    store.insert_action(&locked).await.unwrap();
    assert_eq!(
        store.dependency_locks_in_use(ACME).await.unwrap(),
        ["{\"packages\": []}"]
    );
}

pub(crate) async fn deleting_an_action_deletes_its_runs(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .insert_action(&action(ACME, "a2", "other", 100))
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r1", 10), ActionStatus::Ready)
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a1", "r2", 20), ActionStatus::Ready)
        .await
        .unwrap();
    store
        .record_run(&run(ACME, "a2", "r3", 30), ActionStatus::Ready)
        .await
        .unwrap();

    store.delete_action(ACME, "a1").await.unwrap();
    assert_eq!(store.get_action(ACME, "a1").await.unwrap(), None);
    assert_eq!(store.get_run(ACME, "a1", "r1").await.unwrap(), None);
    store
        .insert_action(&action(ACME, "a1", "etl", 200))
        .await
        .unwrap();
    let page = Page {
        offset: 0,
        limit: 10,
    };
    assert_eq!(
        store
            .list_runs(ACME, "a1", RunFilter::default(), page)
            .await
            .unwrap(),
        (vec![], 0)
    );
    assert_eq!(
        store
            .list_runs(ACME, "a2", RunFilter::default(), page)
            .await
            .unwrap()
            .1,
        1
    );
    let again = store.delete_action(ACME, "nope").await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
}
