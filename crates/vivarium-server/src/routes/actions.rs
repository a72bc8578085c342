//! The action routes of OpenObserve's API: list, upload (create or replace), get, update,
//! delete, bulk delete, download, and pause/resume for scheduled actions.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vivarium_auth::Verb;
use vivarium_deps::{HeldBack, Lock, LockedPackage};
use vivarium_form::FormError;
use vivarium_store::{Action, ActionStatus, ExecutionKind};

use super::Shared;
use super::answers::StatusMessage;
use super::extract::ApiJson;
use super::paths::{ActionIdPath, OrgPath};
use crate::catalog::{NewAction, SettingsChange, Upload};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::Caller;

/// `GET /api/{org}/actions`: the organization's actions, newest first.
#[utoipa::path(
    get,
    path = "/api/{org}/actions",
    tag = "actions",
    operation_id = "list_actions",
    summary = "List actions",
    params(
        OrgPath,
    ),
    responses(
        (status = 200, description = "The organization's actions, newest first", body = Vec<ActionSummary>),
        (status = 403, description = "The caller lacks LIST on action_scripts, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<ActionSummary>>> {
    state
        .require_on_actions(&org, &caller, Verb::List, None)
        .await?;
    let actions = state.meta.list_actions(&org).await?;
    Ok(Json(actions.iter().map(ActionSummary::of).collect()))
}

/// `GET /api/{org}/actions/{id}`.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "get_action",
    summary = "Read an action",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action with its settings", body = ActionDetails),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ActionDetails>> {
    let action = state.action_for(&org, &caller, Verb::Get, &id).await?;
    Ok(Json(ActionDetails::of(&action)))
}

/// `GET /api/{org}/actions/download/{id}`: the stored ZIP.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/download/{id}",
    tag = "actions",
    operation_id = "download_action",
    summary = "Download an action's ZIP",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The stored ZIP", body = ZipFile, content_type = "application/zip", headers(("Content-Disposition" = String, description = "attachment; filename=\"<the uploaded file name>\""))),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn download(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<ZipFile> {
    let action = state.action_for(&org, &caller, Verb::Get, &id).await?;
    let bytes = state.catalog.zip(&action).await?;
    Ok(ZipFile(StoredZip {
        bytes,
        file_name: action.zip_file_name,
    }))
}

/// `POST /api/{org}/actions/upload`: creates an action, or with an `id` field replaces its ZIP
/// (and any settings sent along). Answers `{"uuid": id}`.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/upload",
    tag = "actions",
    operation_id = "upload_action",
    summary = "Create an action, or replace its ZIP",
    params(
        OrgPath,
    ),
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "The action's ZIP and settings"),
    responses(
        (status = 200, description = "The created or replaced action's id", body = UploadAnswer),
        (status = 400, description = "Not a multipart form; a missing or invalid field (name, execution_details, cron_expr, environment_variables, allowed_hosts, service_account: it must exist); an unknown id; or a ZIP that is missing, empty or refused", body = ErrorBody),
        (status = 403, description = "The caller lacks POST on action_scripts (create) or PUT on the action (replace), or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 409, description = "Another action of the organization has this name", body = ErrorBody),
        (status = 413, description = "The upload is larger than the service accepts", body = ErrorBody),
    ),
)]
pub async fn upload(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadAnswer>> {
    let form = read_form(&headers, body, state.config.max_body_bytes).await?;
    let (id, settings, upload) = form.into_parts();
    let action = match id {
        Some(id) => {
            state
                .require_on_actions(&org, &caller, Verb::Put, Some(&id))
                .await?;
            let change = settings.as_change()?;
            state.catalog.replace(&org, &id, change, upload).await?
        }
        None => {
            state
                .require_on_actions(&org, &caller, Verb::Post, None)
                .await?;
            let uploader = &caller.email;
            state
                .catalog
                .create(&org, uploader, settings, upload)
                .await?
        }
    };
    let lock = lock_of(&action);
    Ok(Json(UploadAnswer {
        uuid: action.id,
        dependencies: lock.packages,
        held_back: lock.held_back,
    }))
}

/// The name of the upload form's file part.
const FILE_FIELD: &str = "file";

async fn read_form(headers: &HeaderMap, body: Body, body_limit: usize) -> ApiResult<UploadForm> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let mut form = vivarium_form::read(
        body.into_data_stream(),
        content_type,
        FILE_FIELD,
        body_limit,
    )
    .await
    .map_err(|refusal| form_error(refusal, body_limit))?;
    let file = form.take_file().map(|part| Upload {
        bytes: part.bytes,
        part_name: part.file_name,
        filename: None,
    });
    let mut text = |name| form.take_text(name);
    Ok(UploadForm {
        filename: text("filename"),
        name: text("name"),
        owner: text("owner"),
        description: text("description"),
        execution_details: text("execution_details"),
        cron_expr: text("cron_expr"),
        environment_variables: text("environment_variables"),
        allowed_hosts: text("allowed_hosts"),
        service_account: text("service_account"),
        id: text("id"),
        file: file.unwrap_or_default(),
    })
}

fn form_error(refusal: FormError, body_limit: usize) -> ApiError {
    match refusal {
        FormError::NotMultipart => ApiError::bad_request("Invalid Content-Type"),
        FormError::TooLarge { .. } => {
            let limit = vivarium_sandbox::human_bytes(body_limit as u64);
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is larger than the {limit} request limit of this service; make the action ZIP smaller"
                ),
            )
        }
        FormError::Malformed(why) => {
            ApiError::bad_request(format!("the multipart body could not be read: {why}"))
        }
    }
}

/// The settings `PUT /api/{org}/actions/{id}` may change; fields it does not know (O2's UI
/// sends the whole action back) are ignored, as OpenObserve does.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionUpdate {
    /// A new name (the rules of the upload's).
    name: Option<String>,
    /// A new description.
    description: Option<String>,
    /// New environment variables, replacing the old ones.
    environment_variables: Option<BTreeMap<String, String>>,
    /// The origins its runs may send requests to: `[METHODS ]scheme://host[:port]`, with
    /// `*.suffix` wildcards; `[]` for no network.
    allowed_hosts: Option<Vec<String>>,
    /// A new cron expression (UTC), for scheduled actions.
    cron_expr: Option<String>,
    /// Another service account of the organization.
    service_account: Option<String>,
    /// The action's own execution type; it cannot change.
    #[schema(value_type = Option<ExecutionKind>)]
    execution_details: Option<String>,
}

impl From<ActionUpdate> for SettingsChange {
    fn from(update: ActionUpdate) -> Self {
        Self {
            name: update.name,
            description: update.description,
            environment_variables: update.environment_variables,
            allowed_hosts: update.allowed_hosts,
            cron_expr: update.cron_expr,
            service_account: update.service_account,
            execution_details: update.execution_details,
        }
    }
}

/// `PUT /api/{org}/actions/{id}`: changes settings; the execution type cannot change.
#[utoipa::path(
    put,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "update_action",
    summary = "Change an action's settings",
    params(
        OrgPath,
        ActionIdPath,
    ),
    request_body = ActionUpdate,
    responses(
        (status = 200, description = "The action as it now is", body = ActionUpdated),
        (status = 400, description = "Malformed JSON; an invalid name, environment, allowed host, cron expression or execution type (it cannot change); or an unknown service account", body = ErrorBody),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 409, description = "Another action of the organization has this name", body = ErrorBody),
        (status = 422, description = "The JSON has fields of the wrong types", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(change): ApiJson<ActionUpdate>,
) -> ApiResult<Json<ActionUpdated>> {
    state
        .require_on_actions(&org, &caller, Verb::Put, Some(&id))
        .await?;
    let action = state.catalog.update(&org, &id, change.into()).await?;
    Ok(Json(ActionUpdated {
        uuid: action.id.clone(),
        action: ActionDetails::of(&action),
    }))
}

/// `DELETE /api/{org}/actions/{id}`.
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "delete_action",
    summary = "Delete an action",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action is deleted", body = StatusMessage),
        (status = 403, description = "The caller lacks DELETE on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    state
        .require_on_actions(&org, &caller, Verb::Delete, Some(&id))
        .await?;
    state.catalog.delete(&org, &id).await?;
    Ok(Json(StatusMessage::done("Action deleted")))
}

/// The body of a bulk delete.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkDelete {
    /// The ids of the actions to delete.
    ids: Vec<String>,
}

/// `DELETE /api/{org}/actions/bulk`: deletes what it may, reports each id's fate.
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/bulk",
    tag = "actions",
    operation_id = "bulk_delete_actions",
    summary = "Delete several actions",
    params(
        OrgPath,
    ),
    request_body = BulkDelete,
    responses(
        (status = 200, description = "What became of each id: ids the caller may not delete, or that do not exist, are reported as unsuccessful", body = BulkDeleteResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The caller is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 422, description = "The JSON lacks ids, or they are not strings", body = ErrorBody),
    ),
)]
pub async fn bulk_delete(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkDelete>,
) -> ApiResult<Json<BulkDeleteResult>> {
    let (mut successful, mut unsuccessful, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for id in body.ids {
        let outcome = match state
            .require_on_actions(&org, &caller, Verb::Delete, Some(&id))
            .await
        {
            Ok(()) => state
                .catalog
                .delete(&org, &id)
                .await
                .map_err(ApiError::from),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => successful.push(id),
            Err(error) => {
                errors.push(format!("{id}: {}", error.message));
                unsuccessful.push(id);
            }
        }
    }
    let err = (!errors.is_empty()).then(|| errors.join("; "));
    Ok(Json(BulkDeleteResult {
        successful,
        unsuccessful,
        err,
    }))
}

/// `POST /api/{org}/actions/{id}/pause`: a paused scheduled action does not fire.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/pause",
    tag = "actions",
    operation_id = "pause_action",
    summary = "Pause a scheduled action",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action as it now is", body = ActionDetails),
        (status = 400, description = "Only scheduled actions (once, repeat) can be paused", body = ErrorBody),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ActionDetails>> {
    set_paused(&state, &org, &id, &caller, true).await
}

/// `GET /api/{org}/actions/pause/{id}`: OpenObserve's path for pausing.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/pause/{id}",
    tag = "actions",
    operation_id = "pause_action_o2",
    summary = "Pause a scheduled action (OpenObserve's path)",
    description = "OpenObserve's path for `POST /api/{org}/actions/{id}/pause`, which answers the same.",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action as it now is", body = ActionDetails),
    ),
)]
pub async fn pause_o2(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ActionDetails>> {
    set_paused(&state, &org, &id, &caller, true).await
}

/// `POST /api/{org}/actions/{id}/resume`: fires again from the next time its schedule names.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/resume",
    tag = "actions",
    operation_id = "resume_action",
    summary = "Resume a paused scheduled action",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action as it now is, with its next run time", body = ActionDetails),
        (status = 400, description = "Only scheduled actions (once, repeat) can be resumed", body = ErrorBody),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ActionDetails>> {
    set_paused(&state, &org, &id, &caller, false).await
}

/// `GET /api/{org}/actions/resume/{id}`: OpenObserve's path for resuming.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/resume/{id}",
    tag = "actions",
    operation_id = "resume_action_o2",
    summary = "Resume a scheduled action (OpenObserve's path)",
    description = "OpenObserve's path for `POST /api/{org}/actions/{id}/resume`, which answers the same.",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The action as it now is", body = ActionDetails),
    ),
)]
pub async fn resume_o2(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ActionDetails>> {
    set_paused(&state, &org, &id, &caller, false).await
}

async fn set_paused(
    state: &Shared,
    org: &str,
    id: &str,
    caller: &Caller,
    paused: bool,
) -> ApiResult<Json<ActionDetails>> {
    state
        .require_on_actions(org, caller, Verb::Put, Some(id))
        .await?;
    let action = state.catalog.set_paused(org, id, paused).await?;
    Ok(Json(ActionDetails::of(&action)))
}

/// How an action is listed (O2's columns, plus Vivarium's schedule state).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSummary {
    /// Its id (a UUID).
    pub(crate) id: String,
    /// Unique within the organization, at most 32 characters.
    pub(crate) name: String,
    /// Free text.
    pub(crate) description: String,
    /// When it was created (µs since the epoch).
    pub(crate) created_at: i64,
    /// When it last ran.
    pub(crate) last_run_at: Option<i64>,
    /// When it last ran successfully.
    pub(crate) last_successful_at: Option<i64>,
    /// Its owner: the upload's `owner`, else who uploaded it (O2's "Created By").
    pub(crate) created_by: String,
    /// Where it stands.
    pub(crate) status: ActionStatus,
    /// How it is triggered.
    pub(crate) execution_details_type: ExecutionKind,
    /// A paused scheduled action does not fire.
    pub(crate) paused: bool,
    /// When the scheduler fires it next (`once` and `repeat` only).
    pub(crate) next_run_at: Option<i64>,
}

impl ActionSummary {
    /// The answer for the stored record.
    pub(crate) fn of(action: &Action) -> Self {
        Self {
            id: action.id.clone(),
            name: action.name.clone(),
            description: action.description.clone(),
            created_at: action.created_at,
            last_run_at: action.last_run_at,
            last_successful_at: action.last_successful_at,
            created_by: action.owner.clone(),
            status: action.status,
            execution_details_type: action.execution,
            paused: action.paused,
            next_run_at: action.next_run_at,
        }
    }
}

/// An action with all its settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDetails {
    /// Its id (a UUID).
    pub(crate) id: String,
    /// Unique within the organization, at most 32 characters.
    pub(crate) name: String,
    /// Free text.
    pub(crate) description: String,
    /// Passed to every run.
    pub(crate) environment_variables: BTreeMap<String, String>,
    /// The origins its runs may send requests to (`[METHODS ]scheme://host[:port]`, `*.suffix`
    /// wildcards); empty for no network.
    pub(crate) allowed_hosts: Vec<String>,
    /// How it is triggered.
    pub(crate) execution_details: ExecutionKind,
    /// Cron expression (UTC) of `once` and `repeat` actions; null for `service`, and for a
    /// `once` action saved without one (it runs right after it is saved).
    pub(crate) cron_expr: Option<String>,
    /// The uploaded file's name.
    pub(crate) zip_file_name: String,
    /// SHA-256 of the stored ZIP, in hex.
    pub(crate) zip_sha256: String,
    /// Size of the stored ZIP in bytes.
    pub(crate) zip_size: i64,
    /// Email of the service account its runs use.
    pub(crate) service_account: String,
    /// Its owner: the upload's `owner`, else who uploaded it.
    pub(crate) owner: String,
    /// The same owner, under the name O2's list shows it.
    pub(crate) created_by: String,
    /// Who uploaded it.
    pub(crate) uploaded_by: String,
    /// When it was created (µs since the epoch).
    pub(crate) created_at: i64,
    /// When its settings or ZIP last changed.
    pub(crate) updated_at: i64,
    /// When it last ran.
    pub(crate) last_run_at: Option<i64>,
    /// When it last ran successfully.
    pub(crate) last_successful_at: Option<i64>,
    /// Where it stands.
    pub(crate) status: ActionStatus,
    /// A paused scheduled action does not fire.
    pub(crate) paused: bool,
    /// When the scheduler fires it next (`once` and `repeat` only).
    pub(crate) next_run_at: Option<i64>,
    /// The locked pyproject.toml dependencies installed for its runs (empty when none).
    pub(crate) dependencies: Vec<LockedPackage>,
    /// The locked packages that are not their project's newest release, and why.
    pub(crate) held_back: Vec<HeldBack>,
}

impl ActionDetails {
    /// The answer for the stored record.
    pub(crate) fn of(action: &Action) -> Self {
        let lock = lock_of(action);
        Self {
            id: action.id.clone(),
            name: action.name.clone(),
            description: action.description.clone(),
            environment_variables: action.environment_variables.clone(),
            allowed_hosts: action.allowed_hosts.clone(),
            execution_details: action.execution,
            cron_expr: action.cron_expr.clone(),
            zip_file_name: action.zip_file_name.clone(),
            zip_sha256: action.zip_digest.clone(),
            zip_size: action.zip_size,
            service_account: action.service_account.clone(),
            owner: action.owner.clone(),
            created_by: action.owner.clone(),
            uploaded_by: action.created_by.clone(),
            created_at: action.created_at,
            updated_at: action.updated_at,
            last_run_at: action.last_run_at,
            last_successful_at: action.last_successful_at,
            status: action.status,
            paused: action.paused,
            next_run_at: action.next_run_at,
            dependencies: lock.packages,
            held_back: lock.held_back,
        }
    }
}

/// The answer of `PUT /api/{org}/actions/{id}`: O2's `uuid`, with the action as it now is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionUpdated {
    /// The action's id.
    uuid: String,
    /// The action with its settings.
    #[serde(flatten)]
    action: ActionDetails,
}

/// The multipart form of `POST /api/{org}/actions/upload`. Without `id` it creates an action:
/// `name`, `execution_details`, `service_account` and `file` are required, and `cron_expr`
/// too for `repeat` (a `once` action without one runs right after it is saved). With `id` it
/// replaces that action's ZIP (`file` is required) and any other setting sent along; the
/// execution type cannot change. Unknown fields are ignored.
#[derive(Debug, Default, ToSchema)]
#[schema(as = ActionUpload)]
pub struct UploadForm {
    /// The action's ZIP: `main.py` at its root or inside one top-level folder.
    #[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
    file: Upload,
    /// The name to keep for the ZIP; defaults to the file part's own name, then `action.zip`.
    filename: Option<String>,
    /// Unique within the organization: 1 to 32 characters, without white space or any of
    /// `: # ? & % ' " /`.
    name: Option<String>,
    /// Who owns the action (shown as `created_by`); defaults to the caller.
    owner: Option<String>,
    /// How the action is triggered.
    #[schema(value_type = Option<ExecutionKind>)]
    execution_details: Option<String>,
    /// Free text.
    description: Option<String>,
    /// Cron expression in UTC (five fields, or six with seconds), for `once` and `repeat`.
    cron_expr: Option<String>,
    /// The environment variables of every run: a JSON object of string values, encoded as a
    /// string, e.g. `{"LEVEL": "debug"}`; keys match `^[A-Z][A-Z0-9_]*$`.
    #[schema(
        content_media_type = "application/json",
        example = r#"{"LEVEL": "debug"}"#
    )]
    environment_variables: Option<String>,
    /// The origins its runs may send requests to: a JSON list of strings, encoded as a
    /// string, e.g. `["https://hooks.slack.com", "POST https://api.example.com:8443"]`. No IP
    /// literals or localhost names; empty or absent for no network.
    #[schema(
        content_media_type = "application/json",
        example = r#"["https://hooks.slack.com"]"#
    )]
    allowed_hosts: Option<String>,
    /// Email of an existing service account of the organization; runs use its rights.
    service_account: Option<String>,
    /// The id of an existing action whose ZIP to replace.
    id: Option<String>,
}

impl UploadForm {
    /// The id to replace (if any), the settings, and the ZIP.
    fn into_parts(self) -> (Option<String>, NewAction, Upload) {
        let settings = NewAction {
            name: self.name,
            owner: self.owner,
            description: self.description,
            execution_details: self.execution_details,
            cron_expr: self.cron_expr,
            environment_variables: self.environment_variables,
            allowed_hosts: self.allowed_hosts,
            service_account: self.service_account,
        };
        let upload = Upload {
            filename: self.filename,
            ..self.file
        };
        (self.id, settings, upload)
    }
}

/// The answer of an upload: the action's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAnswer {
    /// The created or replaced action's id.
    uuid: String,
    /// The pyproject.toml dependencies resolved and installed for it (empty when none).
    dependencies: Vec<LockedPackage>,
    /// The locked packages that are not their project's newest release, and why.
    held_back: Vec<HeldBack>,
}

/// A stored action ZIP, sent as an attachment under its uploaded name.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
pub struct ZipFile(StoredZip);

/// The bytes of a stored ZIP and the name it was uploaded under.
struct StoredZip {
    bytes: Bytes,
    file_name: String,
}

impl IntoResponse for ZipFile {
    fn into_response(self) -> Response {
        let StoredZip { bytes, file_name } = self.0;
        let disposition = format!(
            "attachment; filename=\"{}\"",
            file_name.replace(['"', '\\'], "_")
        );
        let headers = [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ];
        (headers, bytes).into_response()
    }
}

/// What a bulk delete did with each id.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteResult {
    /// The ids deleted.
    successful: Vec<String>,
    /// The ids not deleted.
    unsuccessful: Vec<String>,
    /// Why each unsuccessful id failed (`id: reason`, joined by `; `), or null.
    err: Option<String>,
}

/// The lock of an action's dependencies, as the API shows it (empty when it has none).
fn lock_of(action: &Action) -> Lock {
    action
        .dependency_lock
        .as_deref()
        .and_then(|lock| serde_json::from_str::<Lock>(lock).ok())
        .unwrap_or_else(|| Lock::new(Vec::new()))
}
