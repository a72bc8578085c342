//! The records the service keeps. Timestamps are microseconds since the Unix epoch, as
//! OpenObserve's API reports them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vivarium_auth::{GrantForm, Sealed};
use vivarium_sandbox::{LogLine, OutcomeKind};

/// An organization: the unit of tenancy. Nothing crosses from one to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Org {
    /// Its identifier, used in every route as `/api/{org}`.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// The URL of the cluster its actions belong to, given to their runs as
    /// `ORIGIN_CLUSTER_URL` instead of the service's; `None` to use the service's.
    pub origin_cluster_url: Option<String>,
}

/// A person who logs in with an email and a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login, unique across the service.
    pub email: String,
    /// Argon2 PHC hash of the password.
    pub password_hash: String,
    /// The root user administers every organization.
    pub is_root: bool,
    /// When it was created.
    pub created_at: i64,
}

/// What a user may do in an organization before roles are considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// May do everything in the organization, including managing identities and roles.
    Admin,
    /// May do what the roles assigned to them grant.
    Member,
}

serde_plain::derive_display_from_serialize!(OrgRole);

/// A user's membership of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    /// The member's email.
    pub email: String,
    /// Their standing in the organization.
    pub role: OrgRole,
}

/// A non-human identity that actions run as, authenticated by a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The organization it belongs to.
    pub org: String,
    /// Its email, unique within the organization.
    pub email: String,
    /// Display name parts, optional.
    pub first_name: String,
    /// Display name parts, optional.
    pub last_name: String,
    /// SHA-256 of its current token; the token itself is never stored.
    pub token_hash: String,
    /// When it was created.
    pub created_at: i64,
}

/// A named set of grants, assigned to users and service accounts of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Role {
    /// Name, unique within the organization.
    pub name: String,
    /// What the role allows, sorted, each in the form it was granted in (Vivarium's or
    /// OpenObserve's).
    pub permissions: Vec<GrantForm>,
    /// Emails of the users and service accounts holding it, sorted.
    pub principals: Vec<String>,
    /// When it was created.
    pub created_at: i64,
}

/// One atomic change to a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleChange {
    /// Grants to add, in either form (already present ones are kept once).
    #[serde(default)]
    pub add: Vec<GrantForm>,
    /// Grants to remove, in the form they were granted in (absent ones are ignored).
    #[serde(default)]
    pub remove: Vec<GrantForm>,
    /// Emails to assign the role to.
    #[serde(default)]
    pub add_users: Vec<String>,
    /// Emails to take the role from.
    #[serde(default)]
    pub remove_users: Vec<String>,
}

/// When an action runs: on demand (the UI's "Real Time"), once at a time, or on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionKind {
    /// Real time: run by triggers (manual, alerts, Logs page).
    Service,
    /// Once, at the time its cron expression next names.
    Once,
    /// Repeatedly on its cron schedule (UTC).
    Repeat,
}

serde_plain::derive_display_from_serialize!(ExecutionKind);
serde_plain::derive_fromstr_from_deserialize!(ExecutionKind);

/// Where an action stands, following its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Stored and runnable; the last run (if any) succeeded.
    Ready,
    /// A run is in progress.
    Running,
    /// The last run failed.
    Errored,
    /// A `once` action that has run successfully.
    Completed,
}

serde_plain::derive_display_from_serialize!(ActionStatus);
serde_plain::derive_fromstr_from_deserialize!(ActionStatus);

/// A stored action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Unique id (a UUID).
    pub id: String,
    /// The organization it belongs to.
    pub org: String,
    /// Name, unique within the organization, at most 32 characters.
    pub name: String,
    /// Free text.
    pub description: String,
    /// How it is triggered.
    pub execution: ExecutionKind,
    /// Cron expression (UTC) for `once` and `repeat`; `None` for `service`.
    pub cron_expr: Option<String>,
    /// Environment variables passed to every run.
    pub environment_variables: BTreeMap<String, String>,
    /// The uploaded file's name, for display and download.
    pub zip_file_name: String,
    /// SHA-256 of the stored ZIP; its blob key derives from it.
    pub zip_digest: String,
    /// Size of the stored ZIP in bytes.
    pub zip_size: i64,
    /// Email of the service account runs use; its roles decide whether a run may start.
    pub service_account: String,
    /// The `owner` field of the upload.
    pub owner: String,
    /// Who uploaded it.
    pub created_by: String,
    /// When it was created.
    pub created_at: i64,
    /// When its settings or ZIP last changed.
    pub updated_at: i64,
    /// When it last ran.
    pub last_run_at: Option<i64>,
    /// When it last ran successfully.
    pub last_successful_at: Option<i64>,
    /// Where it stands.
    pub status: ActionStatus,
    /// A paused scheduled action does not fire.
    pub paused: bool,
    /// When the scheduler fires it next (`once` and `repeat` only).
    pub next_run_at: Option<i64>,
    /// The resolved pyproject.toml dependencies, as the JSON of a lock (name, version, wheel,
    /// SHA-256 per package); `None` when the action needs no dependency layer.
    pub dependency_lock: Option<String>,
    /// The origins its runs may send requests to, as written (`[METHODS ]scheme://host[:port]`,
    /// validated at upload); empty means no network.
    pub allowed_hosts: Vec<String>,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `POST /actions/test/{id}`.
    Manual,
    /// The alert engine.
    Alert,
    /// A Logs-page transform.
    Logs,
    /// The scheduler.
    Schedule,
    /// A webhook destination (`POST /api/{org}/actions/{id}/webhook`) sending the rendered
    /// alert template itself.
    Webhook,
}

serde_plain::derive_display_from_serialize!(Trigger);
serde_plain::derive_fromstr_from_deserialize!(Trigger);

/// One run of an action, kept for its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Unique id (a UUID).
    pub id: String,
    /// The organization.
    pub org: String,
    /// The action that ran.
    pub action_id: String,
    /// What started it.
    pub trigger: Trigger,
    /// The caller's trace id, when given (alerts send one).
    pub trace_id: Option<String>,
    /// When it started.
    pub started_at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Fuel consumed.
    pub fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    pub peak_memory_bytes: i64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The error's type, when it failed.
    pub error_type: Option<String>,
    /// The error's message, when it failed.
    pub error_message: Option<String>,
    /// The user's frames, when the action raised.
    pub traceback: Vec<String>,
    /// Its log records, in order.
    pub logs: Vec<LogLine>,
    /// Whether logs were cut at the limit.
    pub logs_truncated: bool,
    /// Records passed in.
    pub input_count: i64,
    /// Records returned, when it succeeded with a list.
    pub output_count: Option<i64>,
    /// The keys of the action's state the run changed (committed with it), sorted.
    #[serde(default)]
    pub state_changes: Vec<String>,
    /// Bytes of disk blocks the run left in its scratch folder `/tmp` when it ended.
    #[serde(default)]
    pub scratch_bytes: i64,
    /// Files, folders and links the run left in its scratch folder when it ended.
    #[serde(default)]
    pub scratch_files: i64,
}

impl Run {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == RunOutcome::Ran(OutcomeKind::Ok)
    }
}

/// One write of a run's life to the database, as the run journal batches them: the mark that
/// an action is running on a replica, then the run's record.
#[derive(Debug, Clone, PartialEq)]
pub enum RunWrite {
    /// Marks an action running on a replica, so that if that replica stops, another one can
    /// tell the run will never finish; `NotFound` when the action is absent.
    Started {
        /// The organization.
        org: String,
        /// The action that started.
        action_id: String,
        /// The replica it runs on.
        replica: String,
    },
    /// What [`MetadataStore::record_run`](crate::MetadataStore::record_run) writes.
    Finished {
        /// The run's record.
        run: Box<Run>,
        /// The action's status after it.
        status: ActionStatus,
    },
}

/// How a run ended: the sandbox's outcome kind when the action ran, the host's refusal to
/// start it, or the host's failure to commit what a successful call did. On the wire and in
/// the database, the kind's own name (`ok`, `out_of_fuel`, ...), `permission_denied` or
/// `state_conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RunOutcome {
    /// The sandbox ran the action and classified its ending.
    Ran(OutcomeKind),
    /// The host refused to start the action.
    Refused(Refusal),
    /// The call succeeded but what it did could not be committed, so the run changed nothing.
    Uncommitted(CommitFailure),
}

/// Why a successful call's effects were not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommitFailure {
    /// The store refused the call's state writes: a compare-and-set found another version,
    /// an increment found no integer, or a quota was passed at commit.
    StateConflict,
}

/// Why the host refused to start a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The action's service account lacks GET on the action; no interpreter was started.
    PermissionDenied,
}

impl RunOutcome {
    /// Every outcome a run can have, in a stable order (for metrics and documentation).
    pub fn all() -> impl Iterator<Item = RunOutcome> {
        OutcomeKind::ALL.into_iter().map(Self::Ran).chain([
            Self::Refused(Refusal::PermissionDenied),
            Self::Uncommitted(CommitFailure::StateConflict),
        ])
    }
}

impl From<OutcomeKind> for RunOutcome {
    fn from(kind: OutcomeKind) -> Self {
        Self::Ran(kind)
    }
}

serde_plain::derive_display_from_serialize!(RunOutcome);
serde_plain::derive_fromstr_from_deserialize!(RunOutcome);

/// Which runs of an action a history listing keeps; `None` keeps every value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs that ended this way.
    pub outcome: Option<RunOutcome>,
    /// Only runs started by this trigger.
    pub trigger: Option<Trigger>,
}

/// What the dashboard needs of one run: which action, when, how long, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPoint {
    /// The action that ran.
    pub action_id: String,
    /// When it started, in microseconds since the epoch.
    pub started_at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// A console session: who signed in, and until when it holds. The store keeps only the
/// SHA-256 of the session's secret, so a copy of the database signs nobody in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the secret the browser's cookie carries.
    pub secret_hash: String,
    /// The signed-in user's email.
    pub email: String,
    /// When it was created, in microseconds since the epoch.
    pub created_at: i64,
    /// When it stops holding, in microseconds since the epoch.
    pub expires_at: i64,
}

/// One change asked of the API, for the organization's audit log: who asked, what, when,
/// and how it ended. It names what was changed by its path, never by a body (bodies carry
/// passwords, tokens and secret values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Unique within the organization.
    pub id: String,
    /// The organization it happened in.
    #[serde(skip)]
    pub org: String,
    /// When, in microseconds since the epoch.
    pub at: i64,
    /// The caller's email.
    pub actor: String,
    /// What kind of caller: `root`, `admin`, `member` or `service_account`.
    pub actor_kind: String,
    /// The API operation (the OpenAPI `operationId`), such as `rotate_service_account_token`.
    pub operation: String,
    /// The HTTP method.
    pub method: String,
    /// The request path, which names what was changed.
    pub path: String,
    /// The answer's HTTP status: 2xx when the change was made.
    pub status: u16,
}

/// A page of a listing: `offset` items skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u32,
    /// Items to return at most.
    pub limit: u32,
}

/// A secret as stored: where it lives and its value sealed there (the plaintext is never
/// stored). A run of an action sees its organization's secrets and its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The organization.
    pub org: String,
    /// The action it belongs to, or empty for the whole organization.
    pub action_id: String,
    /// Its name, the environment variable it becomes.
    pub name: String,
    /// The value, sealed for this place.
    pub sealed: Sealed,
    /// When it was first stored.
    pub created_at: i64,
    /// When its value last changed.
    pub updated_at: i64,
}

/// What a listing shows of a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// When it was first stored.
    pub created_at: i64,
    /// When its value last changed.
    pub updated_at: i64,
}

/// Why the store refused to commit an action's state writes: nothing they would have changed
/// was changed, and the run they came with was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    /// A compare-and-set found another version than the one it named: another run (or an
    /// operator) changed the key since this run read it.
    #[error(
        "the state key {key:?} is at version {found}, not the version {expected} the write \
         expected (0 means absent): it changed since the run read it; read it again and retry"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The version the write named.
        expected: i64,
        /// The version stored at commit (0 when absent or expired).
        found: i64,
    },
    /// An increment found a value that is not an integer under its key at commit.
    #[error(
        "incr needs an integer under the state key {key:?}, which holds another kind of value \
         at commit; set it to an integer first, or count under another key"
    )]
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// The writes would pass a limit (the message names the key and the limit).
    #[error("{0}")]
    Quota(String),
}

/// An entry of an action's stored state, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredState {
    /// The key.
    pub key: String,
    /// The JSON value.
    pub value: serde_json::Value,
    /// How many writes made it (1 for the first).
    pub version: i64,
    /// When it expires; `None` when it does not.
    pub expires_at: Option<i64>,
    /// When it was last written.
    pub updated_at: i64,
}
