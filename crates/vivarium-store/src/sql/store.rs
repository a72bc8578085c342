//! [`MetadataStore`] for [`SqlStore`]: each method hands over to the module for its records.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use vivarium_auth::{Grant, Sealed};
use vivarium_sandbox::{StateEntry, StateQuotas, StateUsage, StateWrite};

use super::{
    SqlStore, accounts, actions, audit, orgs, replicas, roles, runs, secrets, sessions, state,
};
use crate::error::StoreError;
use crate::meta::MetadataStore;
use crate::model::{
    Action, ActionStatus, AuditEvent, ConsoleSession, Membership, Org, OrgRole, Page, Role,
    RoleChange, Run, RunFilter, RunPoint, RunWrite, SecretInfo, SecretRecord, ServiceAccount,
    StateRefusal, StoredState, User,
};

#[async_trait]
impl MetadataStore for SqlStore {
    async fn ensure_org(&self, org: &str) -> Result<Org, StoreError> {
        orgs::ensure_org(self, org).await
    }

    async fn org_exists(&self, org: &str) -> Result<bool, StoreError> {
        orgs::org_exists(self, org).await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        orgs::list_orgs(self).await
    }

    async fn set_origin_cluster_url(&self, org: &str, url: Option<&str>) -> Result<(), StoreError> {
        orgs::set_origin_cluster_url(self, org, url).await
    }

    async fn origin_cluster_url(&self, org: &str) -> Result<Option<String>, StoreError> {
        orgs::origin_cluster_url(self, org).await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        orgs::create_user(self, user).await
    }

    async fn find_user(&self, email: &str) -> Result<Option<User>, StoreError> {
        orgs::find_user(self, email).await
    }

    async fn has_root_user(&self) -> Result<bool, StoreError> {
        orgs::has_root_user(self).await
    }

    async fn set_user_password(&self, email: &str, password_hash: &str) -> Result<(), StoreError> {
        orgs::set_user_password(self, email, password_hash).await
    }

    async fn set_membership(
        &self,
        org: &str,
        email: &str,
        role: OrgRole,
    ) -> Result<(), StoreError> {
        orgs::set_membership(self, org, email, role).await
    }

    async fn membership(&self, org: &str, email: &str) -> Result<Option<OrgRole>, StoreError> {
        orgs::membership(self, org, email).await
    }

    async fn list_members(&self, org: &str) -> Result<Vec<Membership>, StoreError> {
        orgs::list_members(self, org).await
    }

    async fn remove_member(&self, org: &str, email: &str) -> Result<(), StoreError> {
        orgs::remove_member(self, org, email).await
    }

    async fn create_service_account(&self, account: &ServiceAccount) -> Result<(), StoreError> {
        accounts::create(self, account).await
    }

    async fn get_service_account(
        &self,
        org: &str,
        email: &str,
    ) -> Result<Option<ServiceAccount>, StoreError> {
        accounts::get(self, org, email).await
    }

    async fn list_service_accounts(&self, org: &str) -> Result<Vec<ServiceAccount>, StoreError> {
        accounts::list(self, org).await
    }

    async fn set_service_account_token(
        &self,
        org: &str,
        email: &str,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        accounts::set_token(self, org, email, token_hash).await
    }

    async fn delete_service_account(&self, org: &str, email: &str) -> Result<(), StoreError> {
        accounts::delete(self, org, email).await
    }

    async fn create_role(
        &self,
        org: &str,
        name: &str,
        created_at: i64,
    ) -> Result<Role, StoreError> {
        roles::create(self, org, name, created_at).await
    }

    async fn get_role(&self, org: &str, name: &str) -> Result<Option<Role>, StoreError> {
        roles::get(self, org, name).await
    }

    async fn list_roles(&self, org: &str) -> Result<Vec<Role>, StoreError> {
        roles::list(self, org).await
    }

    async fn delete_role(&self, org: &str, name: &str) -> Result<(), StoreError> {
        roles::delete(self, org, name).await
    }

    async fn update_role(
        &self,
        org: &str,
        name: &str,
        change: &RoleChange,
    ) -> Result<Role, StoreError> {
        roles::update(self, org, name, change).await
    }

    async fn grants_of(&self, org: &str, email: &str) -> Result<Vec<Grant>, StoreError> {
        roles::grants_of(self, org, email).await
    }

    async fn insert_action(&self, action: &Action) -> Result<(), StoreError> {
        actions::insert(self, action).await
    }

    async fn get_action(&self, org: &str, id: &str) -> Result<Option<Action>, StoreError> {
        actions::get(self, org, id).await
    }

    async fn list_actions(&self, org: &str) -> Result<Vec<Action>, StoreError> {
        actions::list(self, org).await
    }

    async fn update_action(&self, action: &Action) -> Result<(), StoreError> {
        actions::update(self, action).await
    }

    async fn reset_running_actions(&self, status: ActionStatus) -> Result<u64, StoreError> {
        actions::reset_running(self, status).await
    }

    async fn set_action_status(
        &self,
        org: &str,
        id: &str,
        status: ActionStatus,
    ) -> Result<(), StoreError> {
        actions::set_status(self, org, id, status).await
    }

    async fn heartbeat(&self, replica: &str, now: i64) -> Result<(), StoreError> {
        replicas::heartbeat(self, replica, now).await
    }

    async fn recover_silent_replicas(
        &self,
        cutoff: i64,
        status: ActionStatus,
    ) -> Result<u64, StoreError> {
        replicas::recover_silent(self, cutoff, status).await
    }

    async fn delete_action(&self, org: &str, id: &str) -> Result<(), StoreError> {
        actions::delete(self, org, id).await
    }

    async fn count_zip_users(&self, org: &str, digest: &str) -> Result<u64, StoreError> {
        actions::count_zip_users(self, org, digest).await
    }

    async fn zip_digests_in_use(&self, org: &str) -> Result<HashSet<String>, StoreError> {
        actions::zip_digests_in_use(self, org).await
    }

    async fn dependency_locks_in_use(&self, org: &str) -> Result<Vec<String>, StoreError> {
        actions::dependency_locks_in_use(self, org).await
    }

    async fn record_run(&self, run: &Run, status: ActionStatus) -> Result<(), StoreError> {
        runs::record(self, run, status).await
    }

    async fn commit_run_writes(&self, writes: &[RunWrite]) -> Result<(), StoreError> {
        runs::commit_writes(self, writes).await
    }

    async fn list_runs(
        &self,
        org: &str,
        action_id: &str,
        filter: RunFilter,
        page: Page,
    ) -> Result<(Vec<Run>, u64), StoreError> {
        runs::list(self, org, action_id, filter, page).await
    }

    async fn run_points(
        &self,
        org: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RunPoint>, StoreError> {
        runs::points(self, org, since, limit).await
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        audit::record(self, event).await
    }

    async fn list_audit(&self, org: &str, page: Page) -> Result<Vec<AuditEvent>, StoreError> {
        audit::list(self, org, page).await
    }

    async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        sessions::create(self, session).await
    }

    async fn find_session(
        &self,
        secret_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        sessions::find(self, secret_hash, now).await
    }

    async fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError> {
        sessions::delete(self, secret_hash).await
    }

    async fn get_run(
        &self,
        org: &str,
        action_id: &str,
        run_id: &str,
    ) -> Result<Option<Run>, StoreError> {
        runs::get(self, org, action_id, run_id).await
    }

    async fn put_secret(&self, secret: &SecretRecord) -> Result<(), StoreError> {
        secrets::put(self, secret).await
    }

    async fn delete_secret(
        &self,
        org: &str,
        action_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        secrets::delete(self, org, action_id, name).await
    }

    async fn list_secrets(
        &self,
        org: &str,
        action_id: &str,
    ) -> Result<Vec<SecretInfo>, StoreError> {
        secrets::list(self, org, action_id).await
    }

    async fn secrets_for_run(
        &self,
        org: &str,
        action_id: &str,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        secrets::for_run(self, org, action_id).await
    }

    async fn all_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        secrets::all(self).await
    }

    async fn reseal_secret(
        &self,
        secret: &SecretRecord,
        previous: &Sealed,
    ) -> Result<bool, StoreError> {
        secrets::reseal(self, secret, previous).await
    }

    async fn state_get(
        &self,
        org: &str,
        action_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<StateEntry>, StoreError> {
        state::get(self, org, action_id, key, now).await
    }

    async fn state_keys(
        &self,
        org: &str,
        action_id: &str,
        prefix: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        state::keys(self, org, action_id, prefix, now).await
    }

    async fn state_usage(
        &self,
        org: &str,
        action_id: &str,
        now: i64,
    ) -> Result<StateUsage, StoreError> {
        state::usage(self, org, action_id, now).await
    }

    async fn state_list(
        &self,
        org: &str,
        action_id: &str,
        now: i64,
    ) -> Result<Vec<StoredState>, StoreError> {
        state::list(self, org, action_id, now).await
    }

    async fn record_run_with_state(
        &self,
        run: &Run,
        status: ActionStatus,
        writes: &[StateWrite],
        quotas: &StateQuotas,
        now: i64,
    ) -> Result<Result<Vec<String>, StateRefusal>, StoreError> {
        state::record_run(self, run, status, writes, quotas, now).await
    }

    async fn state_put(
        &self,
        org: &str,
        action_id: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        quotas: &StateQuotas,
        now: i64,
    ) -> Result<Result<StateEntry, StateRefusal>, StoreError> {
        let write = StateWrite::Set {
            key: key.to_string(),
            value,
            ttl,
            if_version: None,
        };
        state::put(self, org, action_id, write, quotas, now).await
    }

    async fn state_delete(
        &self,
        org: &str,
        action_id: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        state::delete(self, org, action_id, key).await
    }

    async fn state_clear(&self, org: &str, action_id: &str) -> Result<u64, StoreError> {
        state::clear(self, org, action_id).await
    }

    async fn sweep_expired_state(&self, now: i64) -> Result<u64, StoreError> {
        state::sweep(self, now).await
    }

    async fn due_actions(&self, now: i64) -> Result<Vec<Action>, StoreError> {
        actions::due(self, now).await
    }

    async fn claim_schedule(
        &self,
        org: &str,
        id: &str,
        expected: i64,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        actions::claim_schedule(self, org, id, expected, next).await
    }
}
