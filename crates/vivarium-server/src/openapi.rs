//! The service's OpenAPI document, served without credentials at `GET /api/openapi.json`.
//!
//! Each handler carries a `#[utoipa::path]` annotation and its request types derive
//! `ToSchema`. What handlers build with `json!`, the multipart upload form, and the types of
//! other crates (`vivarium-store`, `vivarium-auth`) are described here by schema structs that
//! mirror their wire shape; the tests below keep the mirrors and the routes honest.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::routes::{actions, iam, ops, secrets, triggers};

/// The name of the HTTP Basic security scheme in the document.
pub const BASIC_AUTH: &str = "basic";

const DESCRIPTION: &str = "Vivarium runs user-written Python actions (ZIPs holding `main.py`) \
inside CPython compiled to WebAssembly, each call in a fresh sandbox with its own fuel, memory \
and time limits, behind an OpenObserve-compatible actions API. Organizations isolate tenants: \
every route under `/api/{org}` takes HTTP Basic credentials (`email:password` for users, \
`email:token` for service accounts) and checks the caller's organization membership and role \
grants; actions run by hand, for the alert engine, as Logs-page transforms or on a cron \
schedule (UTC), and every run is kept with its outcome, logs and resource use. Every error \
answers `{\"code\": <HTTP status>, \"message\": \"...\"}`, and timestamps are microseconds \
since the Unix epoch.";

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vivarium",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
    ),
    paths(
        actions::list,
        actions::upload,
        actions::bulk_delete,
        actions::download,
        actions::get,
        actions::update,
        actions::delete,
        actions::pause,
        actions::resume,
        triggers::test_run,
        triggers::alert,
        triggers::transform,
        triggers::list_runs,
        triggers::get_run,
        secrets::list_org,
        secrets::put_org,
        secrets::delete_org,
        secrets::list_action,
        secrets::put_action,
        secrets::delete_action,
        iam::list_orgs,
        iam::create_org,
        iam::update_org,
        iam::list_users,
        iam::create_user,
        iam::delete_user,
        iam::list_service_accounts,
        iam::create_service_account,
        iam::get_service_account,
        iam::rotate_service_account,
        iam::delete_service_account,
        iam::list_roles,
        iam::create_role,
        iam::get_role,
        iam::update_role,
        iam::delete_role,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        document,
    ),
    components(responses(Unauthorized, PayloadTooLarge, UnsupportedMediaType, TooManyRuns)),
    modifiers(&SecuritySchemes),
    security(("basic" = [])),
    tags(
        (name = "actions", description = "Upload, read, change, download, pause and delete actions."),
        (name = "triggers", description = "Run an action: by hand, for the alert engine, or as a Logs-page transform."),
        (name = "runs", description = "The run history of an action: outcomes, resource use, logs and tracebacks."),
        (name = "secrets", description = "Secrets of an organization and of one action, given to runs as environment variables: stored sealed, never shown again, masked in run logs."),
        (name = "iam", description = "Organizations, users, service accounts (tokens shown once), roles and their grants."),
        (name = "operations", description = "Health, readiness, Prometheus metrics and this document; no credentials needed."),
    ),
)]
pub struct ApiDoc;

/// Registers the HTTP Basic scheme the document's security requirements name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "HTTP Basic credentials: `email:password` for users (the root user included), \
                 `email:token` for service accounts.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BASIC_AUTH, SecurityScheme::Http(scheme));
    }
}

/// Built once: the document does not change while the process runs.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// `GET /api/openapi.json`: this service's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openapi_document",
    summary = "The OpenAPI document",
    security(),
    responses(
        (status = 200, description = "The OpenAPI document of every route", body = Value),
    ),
)]
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

// ---------------------------------------------------------------------------------------------
// Shapes of the answers handlers build with `json!`, of the upload form, and mirrors of the
// records of other crates. They are never constructed: only their `ToSchema` derives are read.

/// Every failure: the HTTP status again, and what went wrong and what to do.
#[derive(ToSchema)]
#[schema(example = json!({"code": 404, "message": "action 0197c0de-0000-7000-8000-000000000000 not found"}))]
#[allow(dead_code)]
pub struct ErrorBody {
    /// The HTTP status of the answer.
    code: u16,
    /// What went wrong, for the user.
    message: String,
}

/// 401, shared by every authenticated route.
#[derive(ToResponse)]
#[response(
    description = "No valid credentials (none, malformed, or not matching a user or a service account \
                   of the organization)",
    headers(("WWW-Authenticate" = String, description = "`Basic realm=\"vivarium\"`")),
)]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// 413, shared by the routes that take a body.
#[derive(ToResponse)]
#[response(description = "The request body is larger than the service accepts (`max_body_bytes`)")]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);

/// 415, shared by the routes that take a JSON body.
#[derive(ToResponse)]
#[response(description = "The Content-Type is not `application/json`")]
#[allow(dead_code)]
pub struct UnsupportedMediaType(ErrorBody);

/// 429, shared by the routes that run an action.
#[derive(ToResponse)]
#[response(
    description = "Too many runs are running or waiting, for the service or for the organization; \
                   retry after the time given",
    headers(("Retry-After" = u64, description = "Seconds after which a retry may succeed")),
)]
#[allow(dead_code)]
pub struct TooManyRuns(ErrorBody);

/// A failure that concerns a recorded run: the error shape plus the run's id and outcome.
/// A refusal of the caller (rather than of the action's service account) carries only
/// `code` and `message`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunError {
    /// The HTTP status of the answer.
    code: u16,
    /// What went wrong.
    message: String,
    /// The recorded run, when one was recorded.
    #[serde(default)]
    run_id: String,
    /// How the run ended, when one was recorded.
    #[serde(default)]
    outcome: Outcome,
}

/// A confirmation: `code` is 200.
#[derive(ToSchema)]
#[schema(example = json!({"code": 200, "message": "Action deleted"}))]
#[allow(dead_code)]
pub struct StatusMessage {
    /// Always 200.
    code: u16,
    /// What was done.
    message: String,
}

/// How an action is triggered: on demand (`service`, the UI's "Real Time"), once at the time
/// its cron expression next names, or repeatedly on its cron schedule (UTC).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ExecutionKind {
    /// Run by triggers (manual, alerts, Logs page).
    Service,
    /// Once, at the time its cron expression next names.
    Once,
    /// Repeatedly on its cron schedule.
    Repeat,
}

/// Where an action stands, following its runs.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ActionStatus {
    /// Runnable; the last run (if any) succeeded.
    Ready,
    /// A run is in progress.
    Running,
    /// The last run failed.
    Errored,
    /// A `once` action that has run successfully.
    Completed,
}

/// What started a run.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Trigger {
    /// `POST /api/{org}/actions/test/{id}`.
    Manual,
    /// The alert engine.
    Alert,
    /// A Logs-page transform.
    Logs,
    /// The scheduler.
    Schedule,
}

/// How a run ended: a sandbox outcome, or `permission_denied` when the action's service
/// account lacked GET on the action and no interpreter was started.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Outcome {
    /// `main` returned a valid result.
    Ok,
    /// The action's code raised an exception.
    ScriptError,
    /// No usable `main`.
    BadAction,
    /// `main` returned something that is not JSON, or not the records the trigger expects.
    BadResult,
    /// The result was larger than the result limit.
    ResultTooLarge,
    /// The run used all its fuel.
    OutOfFuel,
    /// The run asked for more memory than its limit.
    OutOfMemory,
    /// The run took longer than its time limit.
    Timeout,
    /// The interpreter itself failed.
    RuntimeFault,
    /// The action's service account may not run it.
    PermissionDenied,
}

/// An action as listed.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActionSummary {
    /// Its id (a UUID).
    id: String,
    /// Unique within the organization, at most 32 characters.
    name: String,
    /// Free text.
    description: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
    /// When it last ran.
    #[schema(required = true)]
    last_run_at: Option<i64>,
    /// When it last ran successfully.
    #[schema(required = true)]
    last_successful_at: Option<i64>,
    /// Who uploaded it.
    created_by: String,
    /// Where it stands.
    status: ActionStatus,
    /// How it is triggered.
    execution_details_type: ExecutionKind,
    /// A paused scheduled action does not fire.
    paused: bool,
    /// When the scheduler fires it next (`once` and `repeat` only).
    #[schema(required = true)]
    next_run_at: Option<i64>,
}

/// An action with all its settings.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActionDetails {
    /// Its id (a UUID).
    id: String,
    /// Unique within the organization, at most 32 characters.
    name: String,
    /// Free text.
    description: String,
    /// Passed to every run.
    environment_variables: std::collections::BTreeMap<String, String>,
    /// The origins its runs may send requests to (`[METHODS ]scheme://host[:port]`, `*.suffix`
    /// wildcards); empty for no network.
    allowed_hosts: Vec<String>,
    /// How it is triggered.
    execution_details: ExecutionKind,
    /// Cron expression (UTC) of `once` and `repeat` actions; null for `service`.
    #[schema(required = true)]
    cron_expr: Option<String>,
    /// The uploaded file's name.
    zip_file_name: String,
    /// SHA-256 of the stored ZIP, in hex.
    zip_sha256: String,
    /// Size of the stored ZIP in bytes.
    zip_size: i64,
    /// Email of the service account its runs use.
    service_account: String,
    /// The `owner` field of the upload.
    owner: String,
    /// Who uploaded it.
    created_by: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
    /// When its settings or ZIP last changed.
    updated_at: i64,
    /// When it last ran.
    #[schema(required = true)]
    last_run_at: Option<i64>,
    /// When it last ran successfully.
    #[schema(required = true)]
    last_successful_at: Option<i64>,
    /// Where it stands.
    status: ActionStatus,
    /// A paused scheduled action does not fire.
    paused: bool,
    /// When the scheduler fires it next (`once` and `repeat` only).
    #[schema(required = true)]
    next_run_at: Option<i64>,
    /// The locked pyproject.toml dependencies installed for its runs (empty when none).
    dependencies: Vec<LockedPackage>,
}

/// The multipart form of `POST /api/{org}/actions/upload`. Without `id` it creates an action:
/// `name`, `execution_details`, `service_account` and `file` are required, and `cron_expr`
/// too for `once` and `repeat`. With `id` it replaces that action's ZIP (`file` is required)
/// and any other setting sent along; the execution type cannot change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActionUpload {
    /// The action's ZIP: `main.py` at its root or inside one top-level folder.
    #[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
    file: Vec<u8>,
    /// The name to keep for the ZIP; defaults to the file part's own name, then `action.zip`.
    #[serde(default)]
    filename: String,
    /// Unique within the organization: 1 to 32 characters, without white space or any of
    /// `: # ? & % ' " /`.
    #[serde(default)]
    name: String,
    /// Who owns the action; defaults to the caller.
    #[serde(default)]
    owner: String,
    /// How the action is triggered.
    #[serde(default)]
    execution_details: ExecutionKind,
    /// Free text.
    #[serde(default)]
    description: String,
    /// Cron expression in UTC (five fields, or six with seconds), for `once` and `repeat`.
    #[serde(default)]
    cron_expr: String,
    /// The environment variables of every run: a JSON object of string values, encoded as a
    /// string, e.g. `{"LEVEL": "debug"}`; keys match `^[A-Z][A-Z0-9_]*$`.
    #[serde(default)]
    #[schema(
        content_media_type = "application/json",
        example = r#"{"LEVEL": "debug"}"#
    )]
    environment_variables: String,
    /// The origins its runs may send requests to: a JSON list of strings, encoded as a
    /// string, e.g. `["https://hooks.slack.com", "POST https://api.example.com:8443"]`. No IP
    /// literals or localhost names; empty or absent for no network.
    #[serde(default)]
    #[schema(
        content_media_type = "application/json",
        example = r#"["https://hooks.slack.com"]"#
    )]
    allowed_hosts: String,
    /// Email of an existing service account of the organization; runs use its rights.
    #[serde(default)]
    service_account: String,
    /// The id of an existing action whose ZIP to replace.
    #[serde(default)]
    id: String,
}

/// The answer of an upload: the action's id.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadAnswer {
    /// The created or replaced action's id.
    uuid: String,
    /// The pyproject.toml dependencies resolved and installed for it (empty when none).
    dependencies: Vec<LockedPackage>,
}

/// One resolved dependency: a pure-Python wheel, pinned by its SHA-256.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LockedPackage {
    /// Normalized package name.
    name: String,
    /// The version chosen.
    version: String,
    /// The wheel's file name.
    wheel: String,
    /// The wheel's SHA-256, in hex.
    sha256: String,
}

/// A stored action ZIP.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
#[allow(dead_code)]
pub struct ZipFile(Vec<u8>);

/// What a bulk delete did with each id.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkDeleteResult {
    /// The ids deleted.
    successful: Vec<String>,
    /// The ids not deleted.
    unsuccessful: Vec<String>,
    /// Why each unsuccessful id failed (`id: reason`, joined by `; `), or null.
    #[schema(required = true)]
    err: Option<String>,
}

/// A log record of a run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogRecord {
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, or `RAW` for bytes that were not a record.
    level: String,
    /// The Python logger's name (`action`, `print`, `stderr`, a module's name), or `vivarium`.
    logger: String,
    /// The formatted message.
    message: String,
    /// When it was logged, RFC 3339 in UTC.
    #[serde(default)]
    time: String,
    /// A formatted exception attached to the record.
    #[serde(default)]
    exc: String,
}

/// What a failed run raised.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunFailure {
    /// The error's type, e.g. `ValueError`.
    #[serde(rename = "type")]
    #[schema(required = true)]
    kind: Option<String>,
    /// The error's message.
    #[schema(required = true)]
    message: Option<String>,
    /// The user's frames, when the action raised.
    traceback: Vec<String>,
}

/// The answer of a run: its outcome, result, logs and resource use. The alert trigger leaves
/// `result` out.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunAnswer {
    /// The recorded run's id.
    run_id: String,
    /// How the run ended.
    outcome: Outcome,
    /// What `main` returned (the records, for a manual run); null when it failed.
    #[serde(default)]
    result: Option<Value>,
    /// What the action raised; null when it succeeded.
    #[schema(required = true)]
    error: Option<RunFailure>,
    /// The run's log records.
    logs: Vec<LogRecord>,
    /// Whether the logs were cut at the limit.
    logs_truncated: bool,
    /// How long the run took, in milliseconds.
    duration_ms: f64,
    /// Fuel consumed.
    fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    peak_memory_bytes: i64,
}

/// The answer of a successful transform: the records the action returned replace the hits.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TransformAnswer {
    /// The records the action returned.
    hits: Vec<Value>,
    /// The recorded run's id.
    run_id: String,
    /// Always `ok`.
    outcome: Outcome,
    /// The run's log records.
    logs: Vec<LogRecord>,
}

/// A run as listed in the history.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunSummary {
    /// Its id (a UUID).
    id: String,
    /// The action that ran.
    action_id: String,
    /// What started it.
    trigger: Trigger,
    /// The caller's trace id (alerts send one).
    #[schema(required = true)]
    trace_id: Option<String>,
    /// When it started (µs since the epoch).
    started_at: i64,
    /// How long it took, in milliseconds.
    duration_ms: f64,
    /// Fuel consumed.
    fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    peak_memory_bytes: i64,
    /// How it ended.
    outcome: Outcome,
    /// The error's type, when it failed.
    #[schema(required = true)]
    error_type: Option<String>,
    /// The error's message, when it failed.
    #[schema(required = true)]
    error_message: Option<String>,
    /// Records passed in.
    input_count: i64,
    /// Records returned, when it succeeded with a list.
    #[schema(required = true)]
    output_count: Option<i64>,
    /// Whether the logs were cut at the limit.
    logs_truncated: bool,
}

/// One page of an action's run history, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunPage {
    /// The runs of this page.
    runs: Vec<RunSummary>,
    /// Runs in the whole history.
    total: u64,
    /// This page's number, from 1.
    page: u32,
    /// Runs per page.
    per_page: u32,
}

/// One run with its logs and traceback.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunDetails {
    /// Its id (a UUID).
    id: String,
    /// The action that ran.
    action_id: String,
    /// What started it.
    trigger: Trigger,
    /// The caller's trace id (alerts send one).
    #[schema(required = true)]
    trace_id: Option<String>,
    /// When it started (µs since the epoch).
    started_at: i64,
    /// How long it took, in milliseconds.
    duration_ms: f64,
    /// Fuel consumed.
    fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    peak_memory_bytes: i64,
    /// How it ended.
    outcome: Outcome,
    /// The error's type, when it failed.
    #[schema(required = true)]
    error_type: Option<String>,
    /// The error's message, when it failed.
    #[schema(required = true)]
    error_message: Option<String>,
    /// Records passed in.
    input_count: i64,
    /// Records returned, when it succeeded with a list.
    #[schema(required = true)]
    output_count: Option<i64>,
    /// Whether the logs were cut at the limit.
    logs_truncated: bool,
    /// The run's log records.
    logs: Vec<LogRecord>,
    /// The user's frames, when the action raised.
    traceback: Vec<String>,
}

/// An organization (mirrors `vivarium_store::Org`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Org {
    /// Its name, used in every route as `/api/{org}`.
    name: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
    /// The URL given to its actions' runs as `ORIGIN_CLUSTER_URL`; null when they get the
    /// service's.
    #[schema(required = true)]
    origin_cluster_url: Option<String>,
}

/// A secret as listed: never its value (mirrors `vivarium_store::SecretInfo`).
#[derive(ToSchema)]
#[schema(example = json!({"name": "ORIGIN_CLUSTER_TOKEN", "created_at": 1_751_000_000_000_000_i64, "updated_at": 1_751_000_000_000_000_i64}))]
#[allow(dead_code)]
pub struct SecretInfo {
    /// Its name, the environment variable runs see it as.
    name: String,
    /// When it was first stored (µs since the epoch).
    created_at: i64,
    /// When its value last changed (µs since the epoch).
    updated_at: i64,
}

/// Secrets, by name.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SecretList {
    /// The secrets.
    data: Vec<SecretInfo>,
}

/// A user's standing in an organization (mirrors `vivarium_store::OrgRole`).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OrgRole {
    /// May do everything in the organization, including managing identities and roles.
    Admin,
    /// May do what the roles assigned to them grant.
    Member,
}

/// A user's membership of an organization (mirrors `vivarium_store::Membership`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Membership {
    /// The member's email.
    email: String,
    /// Their standing in the organization.
    role: OrgRole,
}

/// A service account: a non-human identity that actions run as.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ServiceAccount {
    /// Its email, unique within the organization.
    email: String,
    /// Display name part.
    first_name: String,
    /// Display name part.
    last_name: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
}

/// A new service account with its token, shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ServiceAccountWithToken {
    /// Its email, unique within the organization.
    email: String,
    /// Display name part.
    first_name: String,
    /// Display name part.
    last_name: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
    /// The token (the Basic password of `email:token`); it is never shown again.
    token: String,
}

/// A rotated token, shown this once; the old token stopped working.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRotation {
    /// The service account.
    email: String,
    /// Its new token.
    token: String,
}

/// What is done to a resource (mirrors `vivarium_auth::Verb`).
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum Verb {
    /// Read one object (for action scripts: fetch and run it).
    Get,
    /// Create, or run an action by hand.
    Post,
    /// Change or replace.
    Put,
    /// Remove.
    Delete,
    /// See what exists; only with object `_all`.
    List,
}

/// A kind of resource that grants name (mirrors `vivarium_auth::ResourceKind`).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ResourceKind {
    /// Action scripts: the uploaded ZIPs and their settings.
    ActionScripts,
    /// Log streams.
    Streams,
}

/// One permission: `verb` on `resource`, for every object (`_all`) or one by id (mirrors
/// `vivarium_auth::Grant`).
#[derive(ToSchema)]
#[schema(example = json!({"resource": "action_scripts", "object": "_all", "verb": "GET"}))]
#[allow(dead_code)]
pub struct Grant {
    /// The kind of resource.
    resource: ResourceKind,
    /// `_all` (the default) or one object's id (1 to 128 characters).
    #[serde(default)]
    #[schema(default = "_all")]
    object: String,
    /// What may be done.
    verb: Verb,
}

/// A named set of grants, held by users and service accounts (mirrors `vivarium_store::Role`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Role {
    /// Unique within the organization.
    name: String,
    /// What the role allows, sorted.
    permissions: Vec<Grant>,
    /// Emails of the users and service accounts holding it, sorted.
    principals: Vec<String>,
    /// When it was created (µs since the epoch).
    created_at: i64,
}

/// One atomic change to a role; additions apply before removals (mirrors
/// `vivarium_store::RoleChange`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RoleChange {
    /// Grants to add (present ones are kept once).
    #[serde(default)]
    add: Vec<Grant>,
    /// Grants to remove (absent ones are ignored).
    #[serde(default)]
    remove: Vec<Grant>,
    /// Emails of users or service accounts of the organization to assign the role to.
    #[serde(default)]
    add_users: Vec<String>,
    /// Emails to take the role from.
    #[serde(default)]
    remove_users: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    /// Every route that `routes::router` registers, as (method, path).
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
        ("get", "/api/organizations"),
        ("post", "/api/organizations"),
        ("put", "/api/organizations/{org}"),
        ("get", "/api/{org}/actions"),
        ("post", "/api/{org}/actions/upload"),
        ("delete", "/api/{org}/actions/bulk"),
        ("get", "/api/{org}/actions/download/{id}"),
        ("post", "/api/{org}/actions/test/{id}"),
        ("get", "/api/{org}/actions/{id}"),
        ("put", "/api/{org}/actions/{id}"),
        ("delete", "/api/{org}/actions/{id}"),
        ("post", "/api/{org}/actions/{id}/pause"),
        ("post", "/api/{org}/actions/{id}/resume"),
        ("post", "/api/{org}/actions/{id}/alert"),
        ("post", "/api/{org}/actions/{id}/transform"),
        ("get", "/api/{org}/actions/{id}/runs"),
        ("get", "/api/{org}/actions/{id}/runs/{run_id}"),
        ("get", "/api/{org}/actions/{id}/secrets"),
        ("put", "/api/{org}/actions/{id}/secrets/{name}"),
        ("delete", "/api/{org}/actions/{id}/secrets/{name}"),
        ("get", "/api/{org}/secrets"),
        ("put", "/api/{org}/secrets/{name}"),
        ("delete", "/api/{org}/secrets/{name}"),
        ("get", "/api/{org}/service_accounts"),
        ("post", "/api/{org}/service_accounts"),
        ("get", "/api/{org}/service_accounts/{email}"),
        ("put", "/api/{org}/service_accounts/{email}"),
        ("delete", "/api/{org}/service_accounts/{email}"),
        ("get", "/api/{org}/roles"),
        ("post", "/api/{org}/roles"),
        ("get", "/api/{org}/roles/{role}"),
        ("put", "/api/{org}/roles/{role}"),
        ("delete", "/api/{org}/roles/{role}"),
        ("get", "/api/{org}/users"),
        ("post", "/api/{org}/users"),
        ("delete", "/api/{org}/users/{email}"),
    ];

    /// The routes anyone may call.
    const PUBLIC: &[&str] = &["/healthz", "/readyz", "/metrics", "/api/openapi.json"];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
    }

    /// Every (method, path, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(operation) = item.get(*method) {
                    found.push((method.to_string(), path.clone(), operation.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        let missing: Vec<_> = expected.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&expected).collect();
        assert!(
            missing.is_empty(),
            "routes without documentation: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "documented routes that do not exist: {extra:?}"
        );
    }

    /// A guard against [`ROUTES`] drifting from `routes/mod.rs`: every path literal registered
    /// there is one of the listed paths (at the root or under `/api/{org}`), and every listed
    /// path is registered there.
    #[test]
    fn the_route_list_matches_the_router_source() {
        let source = include_str!("routes/mod.rs");
        let listed: BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
        let mut registered = BTreeSet::new();
        for (index, _) in source.match_indices(".route(") {
            let rest = source[index + ".route(".len()..].trim_start();
            let literal = rest
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
                .expect("a route path literal");
            let nested = format!("/api/{{org}}{literal}");
            assert!(
                listed.contains(literal) || listed.contains(nested.as_str()),
                "routes/mod.rs registers {literal}, which the expected route list lacks"
            );
            registered.insert(literal.to_string());
            registered.insert(nested);
        }
        for path in listed {
            assert!(
                registered.contains(path),
                "{path} is listed but routes/mod.rs does not register it"
            );
        }
    }

    #[test]
    fn operations_have_unique_ids_tags_and_success_responses() {
        let doc = document();
        let tags: BTreeSet<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|tag| tag["name"].as_str().expect("tag name"))
            .collect();
        assert_eq!(
            tags,
            BTreeSet::from([
                "actions",
                "triggers",
                "runs",
                "secrets",
                "iam",
                "operations"
            ])
        );
        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&doc) {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            let op_tags = operation["tags"].as_array().expect("tags of the operation");
            assert!(
                op_tags
                    .iter()
                    .all(|tag| tags.contains(tag.as_str().unwrap_or_default())),
                "{method} {path} has an undeclared tag"
            );
            assert!(
                operation["responses"].get("200").is_some(),
                "{method} {path} documents no 200"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true);
                assert!(
                    declared,
                    "{method} {path} does not declare path parameter {name}"
                );
            }
        }
    }

    /// A response, or the shared response component it refers to.
    fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/responses/")
                    .unwrap_or_else(|| panic!("unexpected response reference {reference}"));
                &doc["components"]["responses"][name]
            }
            None => response,
        }
    }

    #[test]
    fn errors_use_the_error_shape() {
        let doc = document();
        for (method, path, operation) in operations(&doc) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !status.starts_with('4') {
                    continue;
                }
                let response = resolve(&doc, response);
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} answers {status} without a description"
                );
                let reference = response["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    reference == "#/components/schemas/ErrorBody"
                        || reference == "#/components/schemas/RunError",
                    "{method} {path} answers {status} with {reference:?}"
                );
            }
        }
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["properties"]["code"]["type"], "integer");
        assert_eq!(error["properties"]["message"]["type"], "string");
        assert_eq!(error["required"], json!(["code", "message"]));
    }

    #[test]
    fn authenticated_routes_answer_401_and_their_statuses() {
        let doc = document();
        let statuses = |method: &str, path: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .cloned()
                .collect()
        };
        for (method, path) in ROUTES {
            if !PUBLIC.contains(path) {
                assert!(statuses(method, path).contains("401"), "{method} {path}");
            }
        }
        let has = |method: &str, path: &str, wanted: &[&str]| {
            let found = statuses(method, path);
            for status in wanted {
                assert!(found.contains(*status), "{method} {path} lacks {status}");
            }
        };
        has(
            "post",
            "/api/{org}/actions/upload",
            &["400", "403", "404", "409", "413"],
        );
        has(
            "put",
            "/api/{org}/actions/{id}",
            &["400", "409", "413", "415", "422"],
        );
        has(
            "post",
            "/api/{org}/actions/test/{id}",
            &["403", "404", "422", "429"],
        );
        has(
            "post",
            "/api/{org}/actions/{id}/transform",
            &["403", "422", "429"],
        );
        has("post", "/api/{org}/roles", &["409"]);
        for path in [
            "/api/{org}/actions/test/{id}",
            "/api/{org}/actions/{id}/alert",
            "/api/{org}/actions/{id}/transform",
        ] {
            let retry = resolve(&doc, &doc["paths"][path]["post"]["responses"]["429"]);
            assert!(retry["headers"].get("Retry-After").is_some(), "{path}");
        }
        let unauthorized = resolve(
            &doc,
            &doc["paths"]["/api/{org}/actions"]["get"]["responses"]["401"],
        );
        assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
    }

    #[test]
    fn upload_takes_a_multipart_form_with_a_binary_file() {
        let doc = document();
        let body = &doc["paths"]["/api/{org}/actions/upload"]["post"]["requestBody"];
        let schema = &body["content"]["multipart/form-data"]["schema"];
        let reference = schema["$ref"].as_str().expect("a schema reference");
        let name = reference.rsplit('/').next().unwrap_or_default();
        let form = &doc["components"]["schemas"][name];
        let fields: BTreeSet<&str> = form["properties"]
            .as_object()
            .expect("form fields")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "name",
                "owner",
                "file",
                "filename",
                "execution_details",
                "description",
                "cron_expr",
                "environment_variables",
                "allowed_hosts",
                "service_account",
                "id",
            ])
        );
        let file = &form["properties"]["file"];
        assert_eq!(file["type"], "string");
        assert_eq!(file["format"], "binary");
        assert_eq!(form["required"], json!(["file"]));
        let execution = &doc["components"]["schemas"]["ExecutionKind"];
        assert_eq!(execution["enum"], json!(["service", "once", "repeat"]));
    }

    #[test]
    fn basic_auth_guards_every_route_but_the_public_ones() {
        let doc = document();
        let scheme = &doc["components"]["securitySchemes"][BASIC_AUTH];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "basic");
        assert_eq!(doc["security"], json!([{ BASIC_AUTH: [] }]));
        for (method, path, operation) in operations(&doc) {
            let security = operation.get("security");
            if PUBLIC.contains(&path.as_str()) {
                assert_eq!(security, Some(&json!([])), "{method} {path} must be public");
            } else {
                assert!(
                    security.is_none(),
                    "{method} {path} must keep the document's Basic requirement"
                );
            }
        }
    }

    #[test]
    fn info_names_the_service_and_its_version() {
        let doc = document();
        assert_eq!(doc["info"]["title"], "Vivarium");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap_or_default()
                .len()
                > 100
        );
        assert!(
            doc["openapi"]
                .as_str()
                .unwrap_or_default()
                .starts_with("3.")
        );
    }

    #[test]
    fn every_schema_reference_resolves() {
        fn walk(value: &Value, doc: &Value, count: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let (kind, name) = reference
                            .strip_prefix("#/components/")
                            .and_then(|rest| rest.split_once('/'))
                            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
                        assert!(
                            doc["components"][kind].get(name).is_some(),
                            "dangling reference {reference}"
                        );
                        *count += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, count));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, count)),
                _ => {}
            }
        }
        let doc = document();
        let mut count = 0;
        walk(&doc, &doc, &mut count);
        assert!(count > 50, "only {count} references");
    }

    /// The property names of a schema component.
    fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    fn variants(doc: &Value, name: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("schema {name} is no enum"))
            .iter()
            .map(|v| v.as_str().expect("a string variant").to_string())
            .collect()
    }

    /// The mirrors of other crates' records describe what those records serialize to.
    #[test]
    fn mirrors_match_the_records_of_other_crates() {
        use vivarium_auth::{
            Grant as RealGrant, ObjectScope, ResourceKind as RealKind, Verb as RealVerb,
        };
        use vivarium_store::{
            Membership as RealMembership, Org as RealOrg, OrgRole as RealOrgRole, Role as RealRole,
            RoleChange as RealRoleChange, SecretInfo as RealSecretInfo,
        };

        let doc = document();
        let grant = RealGrant {
            resource: RealKind::ActionScripts,
            object: ObjectScope::All,
            verb: RealVerb::Get,
        };
        let grant_json = serde_json::to_value(&grant).expect("grant");
        assert_eq!(keys(&grant_json), properties(&doc, "Grant"));
        let role = RealRole {
            name: "runner".into(),
            permissions: vec![grant.clone()],
            principals: vec!["bot@example.com".into()],
            created_at: 1,
        };
        assert_eq!(
            keys(&serde_json::to_value(&role).expect("role")),
            properties(&doc, "Role")
        );
        let change = RealRoleChange::default();
        assert_eq!(
            keys(&serde_json::to_value(&change).expect("change")),
            properties(&doc, "RoleChange")
        );
        let org = RealOrg {
            name: "default".into(),
            created_at: 1,
            origin_cluster_url: None,
        };
        assert_eq!(
            keys(&serde_json::to_value(&org).expect("org")),
            properties(&doc, "Org")
        );
        let secret = RealSecretInfo {
            name: "TOKEN".into(),
            created_at: 1,
            updated_at: 2,
        };
        assert_eq!(
            keys(&serde_json::to_value(&secret).expect("secret")),
            properties(&doc, "SecretInfo")
        );
        let membership = RealMembership {
            email: "a@example.com".into(),
            role: RealOrgRole::Admin,
        };
        assert_eq!(
            keys(&serde_json::to_value(&membership).expect("membership")),
            properties(&doc, "Membership")
        );

        let wire = |value: Value| value.as_str().expect("a string").to_string();
        let org_roles: BTreeSet<String> = [RealOrgRole::Admin, RealOrgRole::Member]
            .into_iter()
            .map(|r| wire(serde_json::to_value(r).expect("org role")))
            .collect();
        assert_eq!(org_roles, variants(&doc, "OrgRole"));
        let verbs: BTreeSet<String> = [
            RealVerb::Get,
            RealVerb::Post,
            RealVerb::Put,
            RealVerb::Delete,
            RealVerb::List,
        ]
        .into_iter()
        .map(|v| wire(serde_json::to_value(v).expect("verb")))
        .collect();
        assert_eq!(verbs, variants(&doc, "Verb"));
        let kinds: BTreeSet<String> = [RealKind::ActionScripts, RealKind::Streams]
            .into_iter()
            .map(|k| k.as_str().to_string())
            .collect();
        assert_eq!(kinds, variants(&doc, "ResourceKind"));
    }

    /// The enums of the answers list exactly the wire names the service produces.
    #[test]
    fn answer_enums_match_the_service() {
        use vivarium_store::{
            ActionStatus as RealStatus, ExecutionKind as RealExecution, Trigger as RealTrigger,
        };

        let doc = document();
        let mut outcomes: BTreeSet<String> = vivarium_sandbox::OutcomeKind::ALL
            .iter()
            .map(|kind| kind.as_str().to_string())
            .collect();
        outcomes.insert(crate::executor::PERMISSION_DENIED.to_string());
        assert_eq!(outcomes, variants(&doc, "Outcome"));
        let executions: BTreeSet<String> = [
            RealExecution::Service,
            RealExecution::Once,
            RealExecution::Repeat,
        ]
        .into_iter()
        .map(|k| k.as_str().to_string())
        .collect();
        assert_eq!(executions, variants(&doc, "ExecutionKind"));
        let statuses: BTreeSet<String> = [
            RealStatus::Ready,
            RealStatus::Running,
            RealStatus::Errored,
            RealStatus::Completed,
        ]
        .into_iter()
        .map(|s| s.as_str().to_string())
        .collect();
        assert_eq!(statuses, variants(&doc, "ActionStatus"));
        let triggers: BTreeSet<String> = [
            RealTrigger::Manual,
            RealTrigger::Alert,
            RealTrigger::Logs,
            RealTrigger::Schedule,
        ]
        .into_iter()
        .map(|t| t.as_str().to_string())
        .collect();
        assert_eq!(triggers, variants(&doc, "Trigger"));
    }
}
