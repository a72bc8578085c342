//! Per-action state: reads, commits with runs, expiry, quotas, scoping and concurrency.

use std::time::Duration;

use serde_json::{Value, json};
use vivarium_sandbox::{StateEntry, StateQuotas, StateUsage, StateWrite};

use crate::sql::tests::fixtures::{ACME, GLOBEX, action, failed_run, run, two_orgs};
use crate::sql::tests::harness::TestDb;
use crate::{
    ActionStatus, MetadataStore, Page, Run, RunFilter, StateRefusal, StoreError, StoredState,
};

/// A second, in microseconds.
const SECOND: i64 = 1_000_000;

/// A set with neither time to live nor compare-and-set.
fn set(key: &str, value: Value) -> StateWrite {
    StateWrite::Set {
        key: key.to_string(),
        value,
        ttl: None,
        if_version: None,
    }
}

/// A set only if `key` is at `version`.
fn set_if(key: &str, value: Value, version: i64) -> StateWrite {
    StateWrite::Set {
        key: key.to_string(),
        value,
        ttl: None,
        if_version: Some(version),
    }
}

/// A set living for `ttl`.
fn set_for(key: &str, value: Value, ttl: Duration) -> StateWrite {
    StateWrite::Set {
        key: key.to_string(),
        value,
        ttl: Some(ttl),
        if_version: None,
    }
}

/// An increment without time to live.
fn incr(key: &str, delta: i64) -> StateWrite {
    StateWrite::Incr {
        key: key.to_string(),
        delta,
        ttl: None,
    }
}

/// A delete, only if `key` is at `version` when given.
fn delete(key: &str, if_version: Option<i64>) -> StateWrite {
    StateWrite::Delete {
        key: key.to_string(),
        if_version,
    }
}

/// An entry as read back.
fn entry(value: Value, version: i64) -> Option<StateEntry> {
    Some(StateEntry { value, version })
}

/// Both organizations, with the action `a1` in acme.
async fn one_action(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
}

/// Commits `writes` with a new successful run `run_id` of acme's `a1`, at `now`.
async fn commit(
    store: &dyn MetadataStore,
    run_id: &str,
    writes: &[StateWrite],
    quotas: &StateQuotas,
    now: i64,
) -> Result<Vec<String>, StateRefusal> {
    store
        .record_run_with_state(
            &run(ACME, "a1", run_id, now),
            ActionStatus::Ready,
            writes,
            quotas,
            now,
        )
        .await
        .unwrap()
}

/// How many runs acme's `a1` has.
async fn run_count(store: &dyn MetadataStore) -> u64 {
    let page = Page {
        offset: 0,
        limit: 100,
    };
    store
        .list_runs(ACME, "a1", RunFilter::default(), page)
        .await
        .unwrap()
        .1
}

pub(crate) async fn state_writes_follow_versions_and_reads_see_them(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    assert_eq!(store.state_get(ACME, "a1", "seen", 0).await.unwrap(), None);

    let changed = commit(
        store,
        "r1",
        &[
            set("seen", json!({"ids": [1, 2]})),
            incr("count", 2),
            set("seen", json!({"ids": [1, 2, 3]})),
            delete("never", None),
        ],
        &quotas,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(changed, ["count", "seen"], "sorted, once each");
    assert_eq!(
        store.state_get(ACME, "a1", "seen", 1_000).await.unwrap(),
        entry(json!({"ids": [1, 2, 3]}), 2)
    );
    assert_eq!(
        store.state_get(ACME, "a1", "count", 1_000).await.unwrap(),
        entry(json!(2), 1)
    );
    let recorded = store.get_run(ACME, "a1", "r1").await.unwrap();
    let expected = Run {
        state_changes: changed.clone(),
        ..run(ACME, "a1", "r1", 1_000)
    };
    assert_eq!(
        recorded,
        Some(expected),
        "the run lists the keys it changed"
    );
    let moved = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(moved.last_successful_at, Some(1_000));

    let changed = commit(
        store,
        "r2",
        &[incr("count", -5), set_if("seen", json!(null), 2)],
        &quotas,
        2_000,
    )
    .await
    .unwrap();
    assert_eq!(changed, ["count", "seen"]);
    assert_eq!(
        store.state_get(ACME, "a1", "count", 2_000).await.unwrap(),
        entry(json!(-3), 2)
    );
    assert_eq!(
        store.state_get(ACME, "a1", "seen", 2_000).await.unwrap(),
        entry(json!(null), 3),
        "a JSON null is a value, not an absence"
    );
    let seen_bytes = "seen".len() + "null".len();
    let count_bytes = "count".len() + "-3".len();
    assert_eq!(
        store.state_usage(ACME, "a1", 2_000).await.unwrap(),
        StateUsage {
            keys: 2,
            bytes: (seen_bytes + count_bytes) as u64
        }
    );
    assert_eq!(
        store.state_list(ACME, "a1", 2_000).await.unwrap(),
        [
            StoredState {
                key: "count".into(),
                value: json!(-3),
                version: 2,
                expires_at: None,
                updated_at: 2_000,
            },
            StoredState {
                key: "seen".into(),
                value: json!(null),
                version: 3,
                expires_at: None,
                updated_at: 2_000,
            },
        ]
    );

    let changed = commit(
        store,
        "r3",
        &[delete("seen", Some(3)), set_if("seen", json!("again"), 0)],
        &quotas,
        3_000,
    )
    .await
    .unwrap();
    assert_eq!(changed, ["seen"]);
    assert_eq!(
        store.state_get(ACME, "a1", "seen", 3_000).await.unwrap(),
        entry(json!("again"), 1),
        "a key deleted and written again starts over"
    );
    assert_eq!(
        store.state_keys(ACME, "a1", "", 3_000).await.unwrap(),
        ["count", "seen"]
    );
}

pub(crate) async fn no_writes_record_the_run_alone(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    assert_eq!(commit(store, "r1", &[], &quotas, 1_000).await, Ok(vec![]));
    assert_eq!(run_count(store).await, 1);

    let duplicate = store
        .record_run_with_state(
            &run(ACME, "a1", "r1", 2_000),
            ActionStatus::Ready,
            &[set("k", json!(1))],
            &quotas,
            2_000,
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(
        store.state_get(ACME, "a1", "k", 2_000).await.unwrap(),
        None,
        "a run that cannot be recorded commits no state"
    );
    let missing = store
        .record_run_with_state(
            &run(ACME, "ghost", "r2", 2_000),
            ActionStatus::Ready,
            &[set("k", json!(1))],
            &quotas,
            2_000,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub(crate) async fn a_failed_compare_and_set_refuses_the_whole_commit(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    commit(store, "r1", &[set("cursor", json!(10))], &quotas, 1_000)
        .await
        .unwrap();

    let refused = commit(
        store,
        "r2",
        &[
            set("other", json!("x")),
            incr("count", 1),
            set_if("cursor", json!(20), 7),
        ],
        &quotas,
        2_000,
    )
    .await;
    assert_eq!(
        refused,
        Err(StateRefusal::Conflict {
            key: "cursor".into(),
            expected: 7,
            found: 1
        })
    );
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("\"cursor\"") && message.contains('7') && message.contains('1'),
        "{message}"
    );
    assert_eq!(store.get_run(ACME, "a1", "r2").await.unwrap(), None);
    assert_eq!(run_count(store).await, 1);
    assert_eq!(
        store.state_keys(ACME, "a1", "", 2_000).await.unwrap(),
        ["cursor"],
        "the writes before the refused one are undone"
    );
    assert_eq!(
        store.state_get(ACME, "a1", "cursor", 2_000).await.unwrap(),
        entry(json!(10), 1)
    );
    let unmoved = store.get_action(ACME, "a1").await.unwrap().unwrap();
    assert_eq!(unmoved.last_run_at, Some(1_000));

    store
        .record_run(&failed_run(ACME, "a1", "r2", 2_000), ActionStatus::Errored)
        .await
        .unwrap();
    assert_eq!(
        run_count(store).await,
        2,
        "the run is recorded again as failed"
    );

    let absent = commit(store, "r3", &[delete("nothing", Some(1))], &quotas, 3_000).await;
    assert_eq!(
        absent,
        Err(StateRefusal::Conflict {
            key: "nothing".into(),
            expected: 1,
            found: 0
        })
    );
    let taken = commit(
        store,
        "r4",
        &[set_if("cursor", json!(0), 0)],
        &quotas,
        3_000,
    )
    .await;
    assert!(
        matches!(taken, Err(StateRefusal::Conflict { found: 1, .. })),
        "{taken:?}"
    );
}

pub(crate) async fn incrementing_a_non_integer_is_refused(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    let values = [json!("3"), json!(1.5), json!({"n": 1}), json!(null)];
    for (i, value) in values.into_iter().enumerate() {
        commit(
            store,
            &format!("set{i}"),
            &[set("n", value)],
            &quotas,
            1_000,
        )
        .await
        .unwrap();
        let refused = commit(store, &format!("incr{i}"), &[incr("n", 1)], &quotas, 1_000).await;
        assert_eq!(refused, Err(StateRefusal::NotAnInteger { key: "n".into() }));
    }
    commit(store, "big", &[set("n", json!(i64::MAX))], &quotas, 1_000)
        .await
        .unwrap();
    let overflow = commit(store, "over", &[incr("n", 1)], &quotas, 1_000).await;
    assert!(
        matches!(overflow, Err(StateRefusal::Quota(ref m)) if m.contains("64-bit")),
        "{overflow:?}"
    );
    assert_eq!(
        store.state_get(ACME, "a1", "n", 1_000).await.unwrap(),
        entry(json!(i64::MAX), 5)
    );
}

pub(crate) async fn expired_entries_are_absent_and_swept(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    let minute = Duration::from_secs(60);
    commit(
        store,
        "r1",
        &[
            set_for("session", json!("s1"), minute),
            StateWrite::Incr {
                key: "hits".into(),
                delta: 1,
                ttl: Some(minute),
            },
            set("kept", json!(true)),
        ],
        &quotas,
        0,
    )
    .await
    .unwrap();
    let expires = 60 * SECOND;
    let listed = store.state_list(ACME, "a1", 0).await.unwrap();
    let expiries: Vec<_> = listed
        .iter()
        .map(|e| (e.key.as_str(), e.expires_at))
        .collect();
    assert_eq!(
        expiries,
        [
            ("hits", Some(expires)),
            ("kept", None),
            ("session", Some(expires))
        ]
    );

    commit(store, "r2", &[incr("hits", 1)], &quotas, 30 * SECOND)
        .await
        .unwrap();
    assert_eq!(
        store.state_list(ACME, "a1", 30 * SECOND).await.unwrap()[0].expires_at,
        Some(expires),
        "an increment without a ttl keeps the expiry"
    );
    let live_before = store.state_get(ACME, "a1", "session", expires - 1).await;
    assert_eq!(live_before.unwrap(), entry(json!("s1"), 1));

    assert_eq!(
        store
            .state_get(ACME, "a1", "session", expires)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.state_keys(ACME, "a1", "", expires).await.unwrap(),
        ["kept"]
    );
    assert_eq!(
        store.state_usage(ACME, "a1", expires).await.unwrap(),
        StateUsage {
            keys: 1,
            bytes: ("kept".len() + "true".len()) as u64
        }
    );
    assert_eq!(
        store.state_list(ACME, "a1", expires).await.unwrap().len(),
        1
    );

    let refused = commit(
        store,
        "r3",
        &[set_if("session", json!("s2"), 1)],
        &quotas,
        expires,
    )
    .await;
    assert_eq!(
        refused,
        Err(StateRefusal::Conflict {
            key: "session".into(),
            expected: 1,
            found: 0
        }),
        "an expired key is at version 0"
    );
    commit(
        store,
        "r4",
        &[set_if("session", json!("s2"), 0), incr("hits", 5)],
        &quotas,
        expires,
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .state_get(ACME, "a1", "session", expires)
            .await
            .unwrap(),
        entry(json!("s2"), 1),
        "writing over an expired key starts it over"
    );
    assert_eq!(
        store.state_get(ACME, "a1", "hits", expires).await.unwrap(),
        entry(json!(5), 1),
        "an increment of an expired key starts from 0"
    );
    assert_eq!(
        store.state_list(ACME, "a1", expires).await.unwrap()[0].expires_at,
        None,
        "and keeps no expiry it had no more"
    );

    commit(
        store,
        "r5",
        &[
            set_for("short", json!(1), Duration::from_secs(1)),
            set_for("kept", json!(false), minute),
        ],
        &quotas,
        expires,
    )
    .await
    .unwrap();
    commit(store, "r6", &[set("kept", json!(true))], &quotas, expires)
        .await
        .unwrap();
    assert_eq!(
        store.state_list(ACME, "a1", expires).await.unwrap()[1].expires_at,
        None,
        "a set without a ttl clears the expiry"
    );
    assert_eq!(
        store.sweep_expired_state(expires + SECOND).await.unwrap(),
        1,
        "only the short-lived key is expired now"
    );
    assert_eq!(
        store.state_keys(ACME, "a1", "", 0).await.unwrap(),
        ["hits", "kept", "session"],
        "swept entries are gone even for a reader of the past"
    );
    assert_eq!(
        store.sweep_expired_state(expires + SECOND).await.unwrap(),
        0
    );
}

pub(crate) async fn quotas_hold_at_commit(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas {
        keys_per_action: 2,
        value_bytes: 16,
        bytes_per_action: 18,
        key_bytes: 8,
    };
    let big = commit(store, "r1", &[set("a", json!("x".repeat(20)))], &quotas, 1).await;
    assert!(
        matches!(big, Err(StateRefusal::Quota(ref m)) if m.contains("\"a\"") && m.contains("16")),
        "{big:?}"
    );
    let long_key = commit(store, "r2", &[set("ninechars", json!(1))], &quotas, 1).await;
    assert!(
        matches!(long_key, Err(StateRefusal::Quota(ref m)) if m.contains('8')),
        "{long_key:?}"
    );
    let empty_key = commit(store, "r3", &[set("", json!(1))], &quotas, 1).await;
    assert!(
        matches!(empty_key, Err(StateRefusal::Quota(_))),
        "{empty_key:?}"
    );

    commit(
        store,
        "r4",
        &[set("a", json!(1)), set("b", json!(2))],
        &quotas,
        1,
    )
    .await
    .unwrap();
    let third = commit(store, "r5", &[set("c", json!(3))], &quotas, 1).await;
    assert!(
        matches!(third, Err(StateRefusal::Quota(ref m))
            if m.contains("\"c\"") && m.contains("3 keys") && m.contains(" 2 ")),
        "{third:?}"
    );
    assert_eq!(
        commit(
            store,
            "r6",
            &[set("c", json!(3)), delete("a", None)],
            &quotas,
            1
        )
        .await,
        Ok(vec!["a".to_string(), "c".to_string()]),
        "the quotas hold for the resulting state, not for each step"
    );

    let bytes = commit(
        store,
        "r7",
        &[set("b", json!("0123456789abcd"))],
        &quotas,
        1,
    )
    .await;
    assert!(
        matches!(bytes, Err(StateRefusal::Quota(ref m))
            if m.contains("\"b\"") && m.contains("19 bytes of state") && m.contains("18")),
        "{bytes:?}"
    );
    assert_eq!(
        store.state_usage(ACME, "a1", 1).await.unwrap(),
        StateUsage { keys: 2, bytes: 4 },
        "refused commits change nothing"
    );
    assert_eq!(run_count(store).await, 2);

    let put = store
        .state_put(ACME, "a1", "d", json!(4), None, &quotas, 1)
        .await
        .unwrap();
    assert!(matches!(put, Err(StateRefusal::Quota(_))), "{put:?}");
    let put = store
        .state_put(ACME, "a1", "b", json!("x".repeat(17)), None, &quotas, 1)
        .await
        .unwrap();
    assert!(matches!(put, Err(StateRefusal::Quota(_))), "{put:?}");
    assert_eq!(
        store.state_get(ACME, "a1", "b", 1).await.unwrap(),
        entry(json!(2), 1)
    );

    let lowered = StateQuotas {
        keys_per_action: 1,
        ..quotas
    };
    assert_eq!(
        commit(store, "r8", &[incr("b", 1)], &lowered, 1).await,
        Ok(vec!["b".to_string()]),
        "a state kept over lowered quotas may still change without growing"
    );
}

pub(crate) async fn key_prefixes_are_literal(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    let keys = [
        "100%",
        "100%_done",
        "100x",
        "1000",
        "a_b",
        "a_b:1",
        "aXb",
        "a\\b",
        "A_b",
        "é_1",
        "é",
    ];
    let writes: Vec<StateWrite> = keys.iter().map(|key| set(key, json!(1))).collect();
    commit(store, "r1", &writes, &quotas, 1).await.unwrap();
    let matching = |prefix: &'static str| async move {
        store.state_keys(ACME, "a1", prefix, 1).await.unwrap()
    };
    assert_eq!(matching("100%").await, ["100%", "100%_done"]);
    assert_eq!(matching("100%_").await, ["100%_done"]);
    assert_eq!(matching("a_b").await, ["a_b", "a_b:1"]);
    assert_eq!(matching("a_").await, ["a_b", "a_b:1"]);
    assert_eq!(matching("a\\").await, ["a\\b"]);
    assert_eq!(matching("A").await, ["A_b"], "prefixes are case-sensitive");
    assert_eq!(matching("é").await, ["é", "é_1"]);
    assert_eq!(matching("%").await, Vec::<String>::new());
    assert_eq!(matching("_").await, Vec::<String>::new());
    let mut sorted = keys.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(
        matching("").await,
        sorted,
        "sorted by bytes on every backend"
    );
}

pub(crate) async fn state_is_scoped_to_its_action_and_org(store: &dyn MetadataStore) {
    one_action(store).await;
    store
        .insert_action(&action(ACME, "a2", "other", 100))
        .await
        .unwrap();
    store
        .insert_action(&action(GLOBEX, "g1", "etl", 100))
        .await
        .unwrap();
    let quotas = StateQuotas::DEFAULT;
    commit(store, "r1", &[set("k", json!("a1's"))], &quotas, 1)
        .await
        .unwrap();
    for (org, action_id) in [(ACME, "a2"), (GLOBEX, "a1"), (GLOBEX, "g1")] {
        assert_eq!(store.state_get(org, action_id, "k", 1).await.unwrap(), None);
        assert!(
            store
                .state_keys(org, action_id, "", 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .state_list(org, action_id, 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.state_usage(org, action_id, 1).await.unwrap(),
            StateUsage::default()
        );
        assert!(!store.state_delete(org, action_id, "k").await.unwrap());
        assert_eq!(store.state_clear(org, action_id).await.unwrap(), 0);
    }
    let elsewhere = store
        .state_put(GLOBEX, "a1", "k", json!(1), None, &quotas, 1)
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "{elsewhere:?}"
    );
    let other = store
        .record_run_with_state(
            &run(ACME, "a2", "r2", 2),
            ActionStatus::Ready,
            &[incr("k", 1)],
            &quotas,
            2,
        )
        .await
        .unwrap();
    assert_eq!(other, Ok(vec!["k".to_string()]));
    assert_eq!(
        store.state_get(ACME, "a1", "k", 2).await.unwrap(),
        entry(json!("a1's"), 1)
    );
    assert_eq!(
        store.state_get(ACME, "a2", "k", 2).await.unwrap(),
        entry(json!(1), 1)
    );
}

pub(crate) async fn operators_put_delete_and_clear_state(store: &dyn MetadataStore) {
    one_action(store).await;
    let quotas = StateQuotas::DEFAULT;
    let put = store
        .state_put(ACME, "a1", "mode", json!({"fast": true}), None, &quotas, 10)
        .await
        .unwrap();
    assert_eq!(
        put,
        Ok(StateEntry {
            value: json!({"fast": true}),
            version: 1
        })
    );
    let again = store
        .state_put(
            ACME,
            "a1",
            "mode",
            json!("slow"),
            Some(Duration::from_secs(2)),
            &quotas,
            20,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Ok(StateEntry {
            value: json!("slow"),
            version: 2
        })
    );
    assert_eq!(
        store.state_list(ACME, "a1", 20).await.unwrap(),
        [StoredState {
            key: "mode".into(),
            value: json!("slow"),
            version: 2,
            expires_at: Some(20 + 2 * SECOND),
            updated_at: 20,
        }]
    );
    let missing = store
        .state_put(ACME, "ghost", "mode", json!(1), None, &quotas, 20)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    commit(
        store,
        "r1",
        &[set("a", json!(1)), set("b", json!(2))],
        &quotas,
        30,
    )
    .await
    .unwrap();
    assert!(store.state_delete(ACME, "a1", "a").await.unwrap());
    assert!(!store.state_delete(ACME, "a1", "a").await.unwrap());
    assert!(!store.state_delete(ACME, "ghost", "a").await.unwrap());
    assert_eq!(
        store.state_keys(ACME, "a1", "", 30).await.unwrap(),
        ["b", "mode"]
    );
    assert_eq!(store.state_clear(ACME, "a1").await.unwrap(), 2);
    assert!(store.state_list(ACME, "a1", 30).await.unwrap().is_empty());
    assert_eq!(store.state_clear(ACME, "a1").await.unwrap(), 0);
}

pub(crate) async fn deleting_an_action_deletes_its_state(store: &dyn MetadataStore) {
    one_action(store).await;
    store
        .insert_action(&action(ACME, "a2", "other", 100))
        .await
        .unwrap();
    let quotas = StateQuotas::DEFAULT;
    commit(
        store,
        "r1",
        &[set("k", json!(1)), set("j", json!(2))],
        &quotas,
        1,
    )
    .await
    .unwrap();
    store
        .state_put(ACME, "a2", "k", json!(3), None, &quotas, 1)
        .await
        .unwrap()
        .unwrap();
    store.delete_action(ACME, "a1").await.unwrap();
    store
        .insert_action(&action(ACME, "a1", "etl", 200))
        .await
        .unwrap();
    assert!(store.state_list(ACME, "a1", 1).await.unwrap().is_empty());
    assert_eq!(
        store.state_usage(ACME, "a1", 1).await.unwrap(),
        StateUsage::default()
    );
    assert_eq!(
        store.state_get(ACME, "a2", "k", 1).await.unwrap(),
        entry(json!(3), 1),
        "another action's state stays"
    );
}

/// Runs acme's `a1` `runs` times at once (run ids starting with `batch`), each committing
/// `writes(i)`, spread over `stores`.
async fn at_once(
    stores: &[&dyn MetadataStore],
    batch: &str,
    runs: usize,
    writes: impl Fn(usize) -> Vec<StateWrite>,
) -> Vec<Result<Vec<String>, StateRefusal>> {
    let quotas = StateQuotas::DEFAULT;
    let commits = (0..runs).map(|i| {
        let store = stores[i % stores.len()];
        let run = run(ACME, "a1", &format!("{batch}-{i:02}"), 1_000 + i as i64);
        let writes = writes(i);
        async move {
            store
                .record_run_with_state(&run, ActionStatus::Ready, &writes, &quotas, 5_000)
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(commits).await
}

pub(crate) async fn concurrent_increments_all_count(db: &TestDb) {
    let first = db.open().await;
    let second = db.open().await;
    one_action(&first).await;
    let stores: [&dyn MetadataStore; 2] = [&first, &second];

    let counted = at_once(&stores, "count", 20, |i| {
        vec![incr("count", 1), set(&format!("seen-{i:02}"), json!(i))]
    })
    .await;
    assert!(counted.iter().all(Result::is_ok), "{counted:?}");
    assert_eq!(
        second.state_get(ACME, "a1", "count", 5_000).await.unwrap(),
        entry(json!(20), 20)
    );
    assert_eq!(run_count(&first).await, 20);

    let claims = at_once(&stores, "claim", 8, |i| vec![set_if("owner", json!(i), 0)]).await;
    let won = claims.iter().filter(|claim| claim.is_ok()).count();
    assert_eq!(won, 1, "one compare-and-set wins: {claims:?}");
    assert!(
        claims
            .iter()
            .filter_map(|claim| claim.as_ref().err())
            .all(|refusal| matches!(refusal, StateRefusal::Conflict { found: 1, .. })),
        "{claims:?}"
    );
    first.close().await;
    second.close().await;
}
