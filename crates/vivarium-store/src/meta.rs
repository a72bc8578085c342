//! The metadata store: every read and write of the service's records goes through this trait.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use vivarium_auth::{Grant, ResourceKind, Sealed, Verb};
use vivarium_sandbox::{StateEntry, StateQuotas, StateUsage, StateWrite};

use crate::error::StoreError;
use crate::model::{
    Action, ActionStatus, AuditEvent, ConsoleSession, Membership, Org, OrgRole, Page, Role,
    RoleChange, Run, RunFilter, RunPoint, RunWrite, SecretInfo, SecretRecord, ServiceAccount,
    StateRefusal, StoredState, User,
};

/// Metadata persistence. Every method scoped to an organization takes its name and never
/// reads or writes another organization's rows.
///
/// Records belong to an existing organization: creating one (a membership, service account,
/// role or action) in an organization that [`ensure_org`](Self::ensure_org) never created
/// fails with `NotFound`.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Creates the organization if it does not exist.
    async fn ensure_org(&self, org: &str) -> Result<Org, StoreError>;
    /// Whether the organization exists.
    async fn org_exists(&self, org: &str) -> Result<bool, StoreError>;
    /// Every organization, by name.
    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError>;
    /// Sets (`Some`) or clears (`None`) the organization's own origin cluster URL; `NotFound`
    /// when the organization does not exist.
    async fn set_origin_cluster_url(&self, org: &str, url: Option<&str>) -> Result<(), StoreError>;
    /// The organization's own origin cluster URL; `None` when it has none (or does not exist).
    async fn origin_cluster_url(&self, org: &str) -> Result<Option<String>, StoreError>;

    /// Stores a new user; `Conflict` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// A user by email.
    async fn find_user(&self, email: &str) -> Result<Option<User>, StoreError>;
    /// Whether a root user exists.
    async fn has_root_user(&self) -> Result<bool, StoreError>;
    /// Replaces a user's password hash and ends their console sessions; `NotFound` when
    /// there is no such user.
    async fn set_user_password(&self, email: &str, password_hash: &str) -> Result<(), StoreError>;
    /// Makes `email` a member of `org` with `role` (replacing an existing membership);
    /// `NotFound` when the organization or the user does not exist.
    async fn set_membership(&self, org: &str, email: &str, role: OrgRole)
    -> Result<(), StoreError>;
    /// A user's membership of `org`.
    async fn membership(&self, org: &str, email: &str) -> Result<Option<OrgRole>, StoreError>;
    /// The members of `org`, by email.
    async fn list_members(&self, org: &str) -> Result<Vec<Membership>, StoreError>;
    /// Ends a membership and the user's role assignments in `org`; `NotFound` when absent.
    async fn remove_member(&self, org: &str, email: &str) -> Result<(), StoreError>;

    /// Stores a new service account; `Conflict` when the email is taken in `org`.
    async fn create_service_account(&self, account: &ServiceAccount) -> Result<(), StoreError>;
    /// A service account by email.
    async fn get_service_account(
        &self,
        org: &str,
        email: &str,
    ) -> Result<Option<ServiceAccount>, StoreError>;
    /// The organization's service accounts, by email.
    async fn list_service_accounts(&self, org: &str) -> Result<Vec<ServiceAccount>, StoreError>;
    /// Replaces a service account's token hash; `NotFound` when absent.
    async fn set_service_account_token(
        &self,
        org: &str,
        email: &str,
        token_hash: &str,
    ) -> Result<(), StoreError>;
    /// Deletes a service account and its role assignments; `NotFound` when absent.
    async fn delete_service_account(&self, org: &str, email: &str) -> Result<(), StoreError>;

    /// Stores a new empty role; `Conflict` when the name is taken in `org`.
    async fn create_role(&self, org: &str, name: &str, created_at: i64)
    -> Result<Role, StoreError>;
    /// A role with its grants and principals.
    async fn get_role(&self, org: &str, name: &str) -> Result<Option<Role>, StoreError>;
    /// The organization's roles, by name.
    async fn list_roles(&self, org: &str) -> Result<Vec<Role>, StoreError>;
    /// Deletes a role with its grants and assignments; `NotFound` when absent.
    async fn delete_role(&self, org: &str, name: &str) -> Result<(), StoreError>;
    /// Applies `change` atomically and returns the role as it now is; `NotFound` when absent.
    /// Additions apply before removals, so a grant or email both added and removed ends up
    /// absent. Emails are not checked against members or service accounts.
    async fn update_role(
        &self,
        org: &str,
        name: &str,
        change: &RoleChange,
    ) -> Result<Role, StoreError>;
    /// Every grant of every role assigned to `email` in `org`, sorted, each once.
    async fn grants_of(&self, org: &str, email: &str) -> Result<Vec<Grant>, StoreError>;
    /// Whether the roles of `email` in `org` allow `verb` on `resource`: on the object
    /// `object`, or on the kind as a whole when `None` (listing, creating).
    async fn principal_may(
        &self,
        org: &str,
        email: &str,
        verb: Verb,
        resource: ResourceKind,
        object: Option<&str>,
    ) -> Result<bool, StoreError> {
        let grants = self.grants_of(org, email).await?;
        Ok(vivarium_auth::allows(&grants, verb, resource, object))
    }

    /// Stores a new action; `Conflict` when its name is taken in its organization (or its id
    /// anywhere).
    async fn insert_action(&self, action: &Action) -> Result<(), StoreError>;
    /// An action by id.
    async fn get_action(&self, org: &str, id: &str) -> Result<Option<Action>, StoreError>;
    /// The organization's actions, newest first.
    async fn list_actions(&self, org: &str) -> Result<Vec<Action>, StoreError>;
    /// Replaces an action's stored fields (matched by org and id); `NotFound` when absent,
    /// `Conflict` when a rename collides. `created_at`, `created_by`, `status`, `last_run_at`
    /// and `last_successful_at` are kept as stored: the first two never change, the others
    /// follow the runs ([`record_run`](Self::record_run), [`set_action_status`](Self::set_action_status)),
    /// so an edit racing a run cannot undo it.
    async fn update_action(&self, action: &Action) -> Result<(), StoreError>;
    /// Moves every action marked running to `status` and says how many: for a process that
    /// owns the database alone, after a crash left runs that will never finish.
    async fn reset_running_actions(&self, status: ActionStatus) -> Result<u64, StoreError>;
    /// Sets an action's status only; `NotFound` when absent.
    async fn set_action_status(
        &self,
        org: &str,
        id: &str,
        status: ActionStatus,
    ) -> Result<(), StoreError>;
    /// Records that `replica` is alive at `now` (microseconds since the epoch).
    async fn heartbeat(&self, replica: &str, now: i64) -> Result<(), StoreError>;
    /// Moves actions left running by replicas silent since before `cutoff` (no heartbeat at
    /// or after it) to `status`, forgets those replicas, and says how many actions moved.
    async fn recover_silent_replicas(
        &self,
        cutoff: i64,
        status: ActionStatus,
    ) -> Result<u64, StoreError>;
    /// Deletes an action with its runs, its secrets and its state, all at once; `NotFound` when
    /// absent.
    async fn delete_action(&self, org: &str, id: &str) -> Result<(), StoreError>;
    /// How many actions of `org` use the ZIP with `digest` (to know when its blob can go).
    async fn count_zip_users(&self, org: &str, digest: &str) -> Result<u64, StoreError>;
    /// The digests of the ZIPs `org`'s actions use (what the blob sweep keeps).
    async fn zip_digests_in_use(&self, org: &str) -> Result<HashSet<String>, StoreError>;
    /// The dependency locks (as stored, JSON) of `org`'s actions that have one (their wheels
    /// are what the blob sweep keeps).
    async fn dependency_locks_in_use(&self, org: &str) -> Result<Vec<String>, StoreError>;

    /// Stores a run and, in the same transaction, moves its action's `last_run_at`,
    /// `last_successful_at` (on success) and `status` to `status`. The times only move
    /// forward (to the run's `started_at`), so runs recorded out of order keep the latest.
    /// `NotFound` when the action is absent from the run's organization, `Conflict` when the
    /// run id is taken; either way nothing changes.
    async fn record_run(&self, run: &Run, status: ActionStatus) -> Result<(), StoreError>;
    /// Commits `writes` in order in one transaction, all or none: one commit (one fsync) for
    /// the runs of many callers. Fails as the first failing write would alone (`NotFound`
    /// when its action is absent, `Conflict` when a run id is taken), and then nothing
    /// changes.
    async fn commit_run_writes(&self, writes: &[RunWrite]) -> Result<(), StoreError>;
    /// A page of an action's runs that `filter` keeps, newest first, and how many it keeps
    /// in all.
    async fn list_runs(
        &self,
        org: &str,
        action_id: &str,
        filter: RunFilter,
        page: Page,
    ) -> Result<(Vec<Run>, u64), StoreError>;
    /// The runs of `org`'s actions that started at or after `since` (microseconds), oldest
    /// first, at most `limit` of the newest of them: what the dashboard charts.
    async fn run_points(
        &self,
        org: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RunPoint>, StoreError>;

    /// Appends an event to its organization's audit log.
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The organization's audit log, newest first.
    async fn list_audit(&self, org: &str, page: Page) -> Result<Vec<AuditEvent>, StoreError>;

    /// Stores a new console session, and forgets the sessions that expired before it began.
    async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError>;
    /// The session whose secret hashes to `secret_hash`, if it exists and has not expired
    /// at `now`.
    async fn find_session(
        &self,
        secret_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError>;
    /// Ends a session (signing out); ending one that is gone is not an error.
    async fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError>;
    /// One run.
    async fn get_run(
        &self,
        org: &str,
        action_id: &str,
        run_id: &str,
    ) -> Result<Option<Run>, StoreError>;

    /// Stores a secret (`action_id` empty: the organization's), or replaces the value of the one
    /// at its place, keeping its `created_at`. `NotFound` when the organization, or the
    /// action it names, does not exist.
    async fn put_secret(&self, secret: &SecretRecord) -> Result<(), StoreError>;
    /// Deletes a secret; whether it existed.
    async fn delete_secret(
        &self,
        org: &str,
        action_id: &str,
        name: &str,
    ) -> Result<bool, StoreError>;
    /// The names and times (never the values) of the organization's secrets (`action_id`
    /// empty) or of one action's, by name.
    async fn list_secrets(&self, org: &str, action_id: &str)
    -> Result<Vec<SecretInfo>, StoreError>;
    /// The sealed secrets a run of the action sees: the organization's, then the action's,
    /// each group by name.
    async fn secrets_for_run(
        &self,
        org: &str,
        action_id: &str,
    ) -> Result<Vec<SecretRecord>, StoreError>;
    /// Every sealed secret of every organization (to seal them again after a key rotation).
    async fn all_secrets(&self) -> Result<Vec<SecretRecord>, StoreError>;
    /// Replaces the sealed value at `secret`'s place with `secret.sealed`, only if it still is
    /// `previous`; whether it was replaced (not when the value changed or went meanwhile).
    async fn reseal_secret(
        &self,
        secret: &SecretRecord,
        previous: &Sealed,
    ) -> Result<bool, StoreError>;

    /// The live entry under `key` of an action's state at `now` (an expired one is absent).
    async fn state_get(
        &self,
        org: &str,
        action_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<StateEntry>, StoreError>;
    /// The live keys of an action's state at `now` that start with `prefix` (taken literally:
    /// `%` and `_` are characters like any other), sorted.
    async fn state_keys(
        &self,
        org: &str,
        action_id: &str,
        prefix: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// How many live keys an action's state holds at `now`, and their bytes (each key's length
    /// plus its value's JSON text length).
    async fn state_usage(
        &self,
        org: &str,
        action_id: &str,
        now: i64,
    ) -> Result<StateUsage, StoreError>;
    /// The live entries of an action's state at `now`, by key.
    async fn state_list(
        &self,
        org: &str,
        action_id: &str,
        now: i64,
    ) -> Result<Vec<StoredState>, StoreError>;
    /// Applies a run's state `writes`, in order, and records the run as
    /// [`record_run`](Self::record_run) does, with the keys they changed as its
    /// `state_changes`, all in one transaction at `now`: a key's version
    /// is 1 when first written and one more at each write; an `if_version` must name the stored
    /// version (0 when absent or expired); an increment adds to the integer stored at commit
    /// (absent counts as 0), so concurrent runs never lose a count; a `ttl` expires the key
    /// that long after `now` (a set without one clears any expiry, an increment without one
    /// keeps it). The resulting state is held to `quotas`.
    ///
    /// Answers the keys the writes changed, sorted, each once; or, when a write is refused, the
    /// refusal, and then nothing changed and no run was recorded (the caller records the run
    /// again with a failure). `NotFound` when the action is absent from the run's organization,
    /// `Conflict` when the run id is taken; either way nothing changes. Without writes it is
    /// [`record_run`](Self::record_run).
    async fn record_run_with_state(
        &self,
        run: &Run,
        status: ActionStatus,
        writes: &[StateWrite],
        quotas: &StateQuotas,
        now: i64,
    ) -> Result<Result<Vec<String>, StateRefusal>, StoreError>;
    /// Stores `value` under `key` in an action's state at `now` (an operator's or owner's
    /// write), expiring after `ttl` when given, held to `quotas`; answers the entry as stored,
    /// or the refusal (and then nothing changed). `NotFound` when the action is absent.
    #[allow(clippy::too_many_arguments)]
    async fn state_put(
        &self,
        org: &str,
        action_id: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        quotas: &StateQuotas,
        now: i64,
    ) -> Result<Result<StateEntry, StateRefusal>, StoreError>;
    /// Removes `key` from an action's state; whether an entry was stored under it (an expired
    /// one the sweep had not removed yet counts).
    async fn state_delete(&self, org: &str, action_id: &str, key: &str)
    -> Result<bool, StoreError>;
    /// Removes every entry of an action's state; how many were stored (expired ones the sweep
    /// had not removed yet count).
    async fn state_clear(&self, org: &str, action_id: &str) -> Result<u64, StoreError>;
    /// Removes the entries of every action's state expired at `now`; how many.
    async fn sweep_expired_state(&self, now: i64) -> Result<u64, StoreError>;

    /// Scheduled actions (`once`, `repeat`) not paused whose `next_run_at` is at or before
    /// `now`, across every organization, soonest first.
    async fn due_actions(&self, now: i64) -> Result<Vec<Action>, StoreError>;
    /// Moves a scheduled action's next firing time, only if it still is `expected` (so that
    /// one firing is claimed once); returns whether this call moved it.
    async fn claim_schedule(
        &self,
        org: &str,
        id: &str,
        expected: i64,
        next: Option<i64>,
    ) -> Result<bool, StoreError>;
}
