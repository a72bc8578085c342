//! Tests of the SQL store: the repository suite on every backend, then what only SQLite has.

mod fixtures;
mod harness;
mod suite;

use futures_util::future::join_all;
use sqlx::Row;

use crate::sql::migrations::MIGRATIONS;
use crate::sql::{SQLITE_POOL_SIZE, SqlStore};
use crate::{MetadataStore, StoreError};
use harness::{TestDb, on_every_backend};

on_every_backend! {
    store: [
        ensure_org_creates_once_and_lists_by_name,
        users_are_unique_by_email,
        passwords_change_only_for_existing_users,
        memberships_are_scoped_to_their_org,
        memberships_need_an_existing_org_and_user,
        service_accounts_are_scoped_to_their_org,
        service_account_changes_stay_in_their_org,
        roles_are_scoped_to_their_org,
        role_updates_are_sorted_and_deduplicated,
        role_updates_add_and_remove_in_one_change,
        concurrent_role_updates_all_apply,
        grants_of_unions_the_roles_of_a_principal,
        openobserve_grants_read_back_as_written_and_grant_their_verbs,
        deleting_a_role_drops_its_grants_and_assignments,
        removing_a_member_drops_their_assignments_in_that_org,
        deleting_a_service_account_drops_its_assignments_in_that_org,
        actions_are_scoped_to_their_org,
        action_names_and_ids_are_unique,
        actions_list_newest_first,
        optional_action_fields_round_trip,
        update_action_replaces_settings_and_keeps_history,
        set_action_status_changes_only_the_status,
        zip_users_are_counted_per_org,
        deleting_an_action_deletes_its_runs,
        record_run_moves_the_action,
        late_runs_do_not_move_times_back,
        record_run_is_all_or_nothing,
        run_writes_commit_in_order_all_or_nothing,
        runs_are_paged_newest_first_with_a_total,
        runs_are_filtered_by_outcome_and_trigger,
        run_points_are_the_newest_of_the_org_since_a_time,
        sessions_hold_until_they_expire_or_end,
        audit_events_list_newest_first_per_org,
        a_new_password_ends_the_users_sessions,
        claim_schedule_is_compare_and_set,
        concurrent_claims_let_one_win,
        due_actions_are_unpaused_scheduled_and_due,
        a_silent_replicas_runs_are_closed_and_a_live_ones_kept,
        a_replica_that_never_beat_counts_as_silent,
        a_recorded_run_clears_the_running_replica,
        heartbeats_move_forward_and_marking_needs_the_action,
        secrets_are_put_replaced_listed_and_deleted,
        secrets_need_their_org_and_action,
        a_run_sees_its_orgs_secrets_and_its_own,
        deleting_an_action_deletes_its_secrets,
        resealing_is_compare_and_set,
        origin_cluster_urls_are_set_cleared_and_listed,
        state_writes_follow_versions_and_reads_see_them,
        no_writes_record_the_run_alone,
        a_failed_compare_and_set_refuses_the_whole_commit,
        incrementing_a_non_integer_is_refused,
        expired_entries_are_absent_and_swept,
        quotas_hold_at_commit,
        key_prefixes_are_literal,
        state_is_scoped_to_its_action_and_org,
        operators_put_delete_and_clear_state,
        deleting_an_action_deletes_its_state,
    ],
    db: [
        reopening_keeps_data_and_applies_no_migration_twice,
        placeholders_bind_by_number,
        concurrent_increments_all_count,
        the_journal_answers_each_write_with_its_own_result,
    ],
}

#[test]
fn migration_versions_are_unique_and_ascending() {
    let versions: Vec<&str> = MIGRATIONS.iter().map(|(version, _)| *version).collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );
    assert!(
        MIGRATIONS
            .iter()
            .all(|(_, statements)| !statements.is_empty())
    );
}

#[tokio::test]
async fn every_pooled_sqlite_connection_has_wal_full_sync_foreign_keys_and_busy_timeout() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let mut held = Vec::new();
    for _ in 0..SQLITE_POOL_SIZE {
        held.push(store.pool().acquire().await.unwrap());
    }
    for conn in &mut held {
        let mode = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode.try_get::<String, _>(0).unwrap(), "wal");
        let synchronous = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(synchronous.try_get::<i64, _>(0).unwrap(), 2, "FULL");
        let keys = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(keys.try_get::<i64, _>(0).unwrap(), 1);
        let timeout = sqlx::query("PRAGMA busy_timeout")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(timeout.try_get::<i64, _>(0).unwrap(), 5_000);
    }
    drop(held);
    store.close().await;
}

#[tokio::test]
async fn in_memory_sqlite_keeps_one_database_for_the_store() {
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    let orgs = ["a", "b", "c", "d", "e", "f"];
    for created in join_all(orgs.iter().map(|org| store.ensure_org(org))).await {
        created.unwrap();
    }
    let names: Vec<String> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|org| org.name)
        .collect();
    assert_eq!(names, orgs);
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_their_password() {
    let refused = SqlStore::connect("mysql://root:hunter2@db.internal/state").await;
    let Err(StoreError::Backend(message)) = refused else {
        panic!("expected a backend error, got {refused:?}")
    };
    assert!(
        message.contains("mysql://root:***@db.internal/state"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn sqlite_files_in_missing_folders_fail_with_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("missing").join("state.db").display()
    );
    let failed = SqlStore::connect(&url).await;
    let Err(StoreError::Backend(message)) = failed else {
        panic!("expected a backend error, got {failed:?}")
    };
    assert!(message.starts_with("connecting to sqlite://"), "{message}");
    assert!(message.contains("missing"), "{message}");
}

#[tokio::test]
#[cfg_attr(
    not(vivarium_postgres),
    ignore = "needs PostgreSQL: run eval \"$(.ci/backends)\" first"
)]
async fn postgres_authentication_failures_do_not_show_the_password() {
    let mut url = url::Url::parse(&harness::postgres_server()).unwrap();
    url.set_password(Some("wrong-secret-4711")).unwrap();
    let failed = SqlStore::connect(url.as_str()).await;
    let Err(StoreError::Backend(message)) = failed else {
        panic!("expected a backend error, got {failed:?}")
    };
    assert!(!message.contains("wrong-secret-4711"), "{message}");
    assert!(message.contains(":***@"), "{message}");
}
