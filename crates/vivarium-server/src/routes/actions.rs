//! The action routes of OpenObserve's API: list, upload (create or replace), get, update,
//! delete, bulk delete, download, and pause/resume for scheduled actions.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vivarium_auth::Verb;
use vivarium_package::PackageLimits;
use vivarium_store::{Action, ActionStatus, BlobKey, ExecutionKind};

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::executor::now_micros;
use crate::extract::ApiJson;
use crate::identity::Caller;
use crate::scheduler::{Schedule, next_run};
use crate::shared_wheels;
use crate::validate;

/// `GET /api/{org}/actions`: the organization's actions, newest first.
#[utoipa::path(
    get,
    path = "/api/{org}/actions",
    tag = "actions",
    operation_id = "list_actions",
    summary = "List actions",
    params(
        ("org" = String, Path, description = "The organization"),
    ),
    responses(
        (status = 200, description = "The organization's actions, newest first", body = Vec<crate::openapi::ActionSummary>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks LIST on action_scripts, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Shared>,
    Path(org): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::List, None)
        .await?;
    let actions = state.meta.list_actions(&org).await?;
    Ok(Json(Value::Array(actions.iter().map(summary).collect())))
}

/// `GET /api/{org}/actions/{id}`.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "get_action",
    summary = "Read an action",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    responses(
        (status = 200, description = "The action with its settings", body = crate::openapi::ActionDetails),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    Ok(Json(details(&find(&state, &org, &id).await?)))
}

/// `GET /api/{org}/actions/download/{id}`: the stored ZIP.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/download/{id}",
    tag = "actions",
    operation_id = "download_action",
    summary = "Download an action's ZIP",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    responses(
        (status = 200, description = "The stored ZIP", body = crate::openapi::ZipFile, content_type = "application/zip", headers(("Content-Disposition" = String, description = "attachment; filename=\"<the uploaded file name>\""))),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn download(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    let action = find(&state, &org, &id).await?;
    let bytes = state
        .blobs
        .get(&BlobKey::action_zip(&org, &action.zip_digest))
        .await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        action.zip_file_name.replace(['"', '\\'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}

/// The fields of the upload form.
#[derive(Debug, Default)]
struct UploadForm {
    id: Option<String>,
    name: Option<String>,
    owner: Option<String>,
    description: Option<String>,
    execution_details: Option<String>,
    cron_expr: Option<String>,
    environment_variables: Option<String>,
    allowed_hosts: Option<String>,
    service_account: Option<String>,
    filename: Option<String>,
    file: Option<(Option<String>, Bytes)>,
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
        ("org" = String, Path, description = "The organization"),
    ),
    request_body(content = crate::openapi::ActionUpload, content_type = "multipart/form-data", description = "The action's ZIP and settings"),
    responses(
        (status = 200, description = "The created or replaced action's id", body = crate::openapi::UploadAnswer),
        (status = 400, description = "Not a multipart form; a missing or invalid field (name, execution_details, cron_expr, environment_variables, allowed_hosts, service_account: it must exist); an unknown id; or a ZIP that is missing, empty or refused", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks POST on action_scripts (create) or PUT on the action (replace), or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization", body = crate::openapi::ErrorBody),
        (status = 409, description = "Another action of the organization has this name", body = crate::openapi::ErrorBody),
        (status = 413, description = "The upload is larger than the service accepts", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn upload(
    State(state): State<Shared>,
    Path(org): Path<String>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let multipart = multipart.map_err(|_| ApiError::bad_request("Invalid Content-Type"))?;
    let form = read_form(multipart, state.config.max_body_bytes).await?;
    let id = match form.id.clone() {
        Some(id) => replace(&state, &org, &caller, id, form).await?,
        None => create(&state, &org, &caller, form).await?,
    };
    let action = find(&state, &org, &id).await?;
    Ok(Json(
        json!({ "uuid": id, "dependencies": dependencies(&action) }),
    ))
}

async fn read_form(mut multipart: Multipart, body_limit: usize) -> ApiResult<UploadForm> {
    let multipart_error = |error| multipart_error(error, body_limit);
    let mut form = UploadForm::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = field.file_name().map(str::to_string);
            form.file = Some((file_name, field.bytes().await.map_err(multipart_error)?));
            continue;
        }
        let text = field.text().await.map_err(multipart_error)?;
        let slot = match name.as_str() {
            "id" => &mut form.id,
            "name" => &mut form.name,
            "owner" => &mut form.owner,
            "description" => &mut form.description,
            "execution_details" => &mut form.execution_details,
            "cron_expr" => &mut form.cron_expr,
            "environment_variables" => &mut form.environment_variables,
            "allowed_hosts" => &mut form.allowed_hosts,
            "service_account" => &mut form.service_account,
            "filename" => &mut form.filename,
            _ => continue,
        };
        *slot = Some(text);
    }
    Ok(form)
}

fn multipart_error(error: axum::extract::multipart::MultipartError, body_limit: usize) -> ApiError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = vivarium_sandbox::human_bytes(body_limit as u64);
        return ApiError::new(
            status,
            format!(
                "the upload is larger than the {limit} request limit of this service; make the action ZIP smaller"
            ),
        );
    }
    ApiError::new(
        status,
        format!(
            "the multipart body could not be read: {}",
            error.body_text()
        ),
    )
}

/// A validated ZIP ready to store.
struct Package {
    bytes: Bytes,
    digest: String,
    file_name: String,
}

fn validate_package(form: &UploadForm) -> ApiResult<Package> {
    let Some((file_name, bytes)) = form.file.clone().filter(|(_, bytes)| !bytes.is_empty()) else {
        return Err(ApiError::bad_request("File is missing or empty"));
    };
    let manifest = vivarium_package::inspect_zip(&bytes, &PackageLimits::default())
        .map_err(|e| ApiError::bad_request(format!("the action ZIP was refused: {e}")))?;
    let file_name = form
        .filename
        .clone()
        .filter(|f| !f.trim().is_empty())
        .or(file_name)
        .unwrap_or_else(|| "action.zip".into());
    debug_assert_eq!(manifest.digest, hex::encode(Sha256::digest(&bytes)));
    Ok(Package {
        bytes,
        digest: manifest.digest,
        file_name,
    })
}

async fn create(state: &Shared, org: &str, caller: &Caller, form: UploadForm) -> ApiResult<String> {
    state
        .require_on_actions(org, caller, Verb::Post, None)
        .await?;
    let name = form.name.clone().unwrap_or_default();
    validate::action_name(&name)?;
    let execution = form
        .execution_details
        .as_deref()
        .map(|text| {
            ExecutionKind::parse(text.trim())
                .ok_or_else(|| ApiError::bad_request("Invalid execution details"))
        })
        .transpose()?
        .ok_or_else(|| ApiError::bad_request("Missing mandatory fields: execution_details"))?;
    let cron_expr = check_schedule(execution, form.cron_expr.as_deref())?;
    let environment_variables =
        validate::environment_json(form.environment_variables.as_deref().unwrap_or(""))?;
    let allowed_hosts = validate::allowed_hosts(
        &validate::allowed_hosts_json(form.allowed_hosts.as_deref().unwrap_or(""))?,
        state.executor.internal_hosts(),
    )?;
    let service_account = form
        .service_account
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("Missing mandatory fields: service_account"))?;
    let service_account = check_service_account(state, org, &service_account).await?;
    let package = validate_package(&form)?;
    let dependency_lock = resolve_dependencies(state, org, &package).await?;
    let now = now_micros();
    let action = Action {
        id: uuid::Uuid::now_v7().to_string(),
        org: org.to_string(),
        name,
        description: form.description.clone().unwrap_or_default(),
        execution,
        next_run_at: next_run(execution, cron_expr.as_deref(), now),
        dependency_lock,
        cron_expr,
        environment_variables,
        allowed_hosts,
        zip_file_name: package.file_name.clone(),
        zip_digest: package.digest.clone(),
        zip_size: package.bytes.len() as i64,
        service_account,
        owner: form.owner.clone().unwrap_or_else(|| caller.email.clone()),
        created_by: caller.email.clone(),
        created_at: now,
        updated_at: now,
        last_run_at: None,
        last_successful_at: None,
        status: ActionStatus::Ready,
        paused: false,
    };
    store_zip(state, org, &package).await?;
    if let Err(error) = state.meta.insert_action(&action).await {
        release_zip(state, org, &package.digest).await;
        return Err(error.into());
    }
    tracing::info!(%org, id = %action.id, name = %action.name, "action created");
    Ok(action.id)
}

async fn replace(
    state: &Shared,
    org: &str,
    caller: &Caller,
    id: String,
    form: UploadForm,
) -> ApiResult<String> {
    state
        .require_on_actions(org, caller, Verb::Put, Some(&id))
        .await?;
    let Some(mut action) = state.meta.get_action(org, &id).await? else {
        return Err(ApiError::bad_request("Invalid ID"));
    };
    apply_settings(state, org, &mut action, form.settings()?).await?;
    let package = validate_package(&form)?;
    action.dependency_lock = resolve_dependencies(state, org, &package).await?;
    let previous_digest = std::mem::replace(&mut action.zip_digest, package.digest.clone());
    action.zip_file_name = package.file_name.clone();
    action.zip_size = package.bytes.len() as i64;
    store_zip(state, org, &package).await?;
    if let Err(error) = state.meta.update_action(&action).await {
        release_zip(state, org, &package.digest).await;
        return Err(error.into());
    }
    release_zip(state, org, &previous_digest).await;
    tracing::info!(%org, %id, "action ZIP replaced");
    Ok(id)
}

impl UploadForm {
    /// The settings a replacing upload sends along, in the shape of a `PUT` body.
    fn settings(&self) -> ApiResult<ActionUpdate> {
        let non_blank =
            |field: &Option<String>| field.clone().filter(|text| !text.trim().is_empty());
        Ok(ActionUpdate {
            name: non_blank(&self.name),
            description: self.description.clone(),
            environment_variables: self
                .environment_variables
                .as_deref()
                .map(validate::environment_json)
                .transpose()?,
            allowed_hosts: self
                .allowed_hosts
                .as_deref()
                .map(validate::allowed_hosts_json)
                .transpose()?,
            cron_expr: self.cron_expr.clone(),
            service_account: non_blank(&self.service_account),
            execution_details: non_blank(&self.execution_details),
        })
    }
}

/// Applies a settings change after checking every rule; the execution type cannot change.
async fn apply_settings(
    state: &Shared,
    org: &str,
    action: &mut Action,
    change: ActionUpdate,
) -> ApiResult<()> {
    if let Some(text) = change.execution_details.as_deref() {
        let requested = ExecutionKind::parse(text.trim())
            .ok_or_else(|| ApiError::bad_request("Invalid execution details"))?;
        if requested != action.execution {
            return Err(ApiError::bad_request(
                "Execution type of an action cannot be changed",
            ));
        }
    }
    if let Some(name) = change.name {
        validate::action_name(&name)?;
        action.name = name;
    }
    if let Some(vars) = change.environment_variables {
        validate::environment(&vars)?;
        action.environment_variables = vars;
    }
    if let Some(entries) = change.allowed_hosts {
        action.allowed_hosts = validate::allowed_hosts(&entries, state.executor.internal_hosts())?;
    }
    if let Some(account) = change.service_account {
        action.service_account = check_service_account(state, org, &account).await?;
    }
    if let Some(description) = change.description {
        action.description = description;
    }
    if let Some(cron) = change.cron_expr {
        action.cron_expr = check_schedule(action.execution, Some(&cron))?;
        action.next_run_at = next_run(action.execution, action.cron_expr.as_deref(), now_micros());
    }
    action.updated_at = now_micros();
    Ok(())
}

/// Resolves and installs the dependencies the package's pyproject.toml declares (unless it
/// brings a `dependencies/` folder), so that a bad set fails the upload, not the first run.
/// Returns the lock as JSON, `None` when there is nothing to install.
async fn resolve_dependencies(
    state: &Shared,
    org: &str,
    package: &Package,
) -> ApiResult<Option<String>> {
    let (bytes, cache, deps) = (
        package.bytes.clone(),
        state.config.cache_dir(),
        state.config.deps_config(),
    );
    let lock = tokio::task::spawn_blocking(move || -> ApiResult<Option<vivarium_deps::Lock>> {
        let folder = vivarium_package::extract_zip(&bytes, &cache, &PackageLimits::default())
            .map_err(|e| ApiError::bad_request(format!("the action ZIP was refused: {e}")))?;
        let refused = |e: vivarium_deps::DepsError| {
            ApiError::bad_request(format!("the action's dependencies were refused: {e}"))
        };
        let Some(lock) =
            vivarium_deps::lock_for_action(&folder.root, &cache, &deps).map_err(refused)?
        else {
            return Ok(None);
        };
        vivarium_deps::install(&lock, &cache, &deps).map_err(refused)?;
        Ok(Some(lock))
    })
    .await
    .map_err(ApiError::internal)??;
    let Some(lock) = lock else {
        return Ok(None);
    };
    shared_wheels::publish(&state.blobs, org, &lock, &state.config.cache_dir()).await?;
    serde_json::to_string(&lock)
        .map(Some)
        .map_err(ApiError::internal)
}

fn check_schedule(execution: ExecutionKind, cron_expr: Option<&str>) -> ApiResult<Option<String>> {
    match execution {
        ExecutionKind::Service => Ok(None),
        ExecutionKind::Once | ExecutionKind::Repeat => {
            let expression = cron_expr.unwrap_or_default().trim().to_string();
            Schedule::parse(&expression).map_err(ApiError::bad_request)?;
            Ok(Some(expression))
        }
    }
}

/// The service account's stored (lower-cased) email, or 400 when the organization has none
/// by that email.
async fn check_service_account(state: &Shared, org: &str, email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    if state.meta.get_service_account(org, &email).await?.is_some() {
        return Ok(email);
    }
    Err(ApiError::bad_request(format!(
        "service account {email} does not exist in organization {org}; create it first"
    )))
}

async fn store_zip(state: &Shared, org: &str, package: &Package) -> ApiResult<()> {
    state
        .blobs
        .put(
            &BlobKey::action_zip(org, &package.digest),
            package.bytes.clone(),
        )
        .await?;
    Ok(())
}

/// Deletes a ZIP blob once no action of the organization uses it any more.
async fn release_zip(state: &Shared, org: &str, digest: &str) {
    match state.meta.count_zip_users(org, digest).await {
        Ok(0) => {
            if let Err(error) = state.blobs.delete(&BlobKey::action_zip(org, digest)).await {
                tracing::warn!(%error, %digest, "could not delete an unused ZIP");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, %digest, "could not count the users of a ZIP"),
    }
}

/// The settings `PUT /api/{org}/actions/{id}` may change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionUpdate {
    name: Option<String>,
    description: Option<String>,
    environment_variables: Option<BTreeMap<String, String>>,
    /// The origins its runs may send requests to: `[METHODS ]scheme://host[:port]`, with
    /// `*.suffix` wildcards; `[]` for no network.
    allowed_hosts: Option<Vec<String>>,
    cron_expr: Option<String>,
    service_account: Option<String>,
    #[schema(value_type = Option<crate::openapi::ExecutionKind>)]
    execution_details: Option<String>,
}

/// `PUT /api/{org}/actions/{id}`: changes settings; the execution type cannot change.
#[utoipa::path(
    put,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "update_action",
    summary = "Change an action's settings",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    request_body = ActionUpdate,
    responses(
        (status = 200, description = "The action as it now is", body = crate::openapi::ActionDetails),
        (status = 400, description = "Malformed JSON; an invalid name, environment, allowed host, cron expression or execution type (it cannot change); or an unknown service account", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
        (status = 409, description = "Another action of the organization has this name", body = crate::openapi::ErrorBody),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    ApiJson(change): ApiJson<ActionUpdate>,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::Put, Some(&id))
        .await?;
    let mut action = find(&state, &org, &id).await?;
    apply_settings(&state, &org, &mut action, change).await?;
    state.meta.update_action(&action).await?;
    Ok(Json(details(&action)))
}

/// `DELETE /api/{org}/actions/{id}`.
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/{id}",
    tag = "actions",
    operation_id = "delete_action",
    summary = "Delete an action",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    responses(
        (status = 200, description = "The action is deleted", body = crate::openapi::StatusMessage),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks DELETE on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::Delete, Some(&id))
        .await?;
    remove(&state, &org, &id).await?;
    Ok(Json(json!({ "code": 200, "message": "Action deleted" })))
}

async fn remove(state: &Shared, org: &str, id: &str) -> ApiResult<()> {
    let action = find(state, org, id).await?;
    state.meta.delete_action(org, id).await?;
    release_zip(state, org, &action.zip_digest).await;
    tracing::info!(%org, %id, "action deleted");
    Ok(())
}

/// The body of a bulk delete.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BulkDelete {
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
        ("org" = String, Path, description = "The organization"),
    ),
    request_body = BulkDelete,
    responses(
        (status = 200, description = "What became of each id: ids the caller may not delete, or that do not exist, are reported as unsuccessful", body = crate::openapi::BulkDeleteResult),
        (status = 400, description = "Malformed JSON", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization", body = crate::openapi::ErrorBody),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, description = "The JSON lacks ids, or they are not strings", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn bulk_delete(
    State(state): State<Shared>,
    Path(org): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<BulkDelete>,
) -> ApiResult<Json<Value>> {
    let (mut successful, mut unsuccessful, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for id in body.ids {
        let outcome = match state
            .require_on_actions(&org, &caller, Verb::Delete, Some(&id))
            .await
        {
            Ok(()) => remove(&state, &org, &id).await,
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
    Ok(Json(
        json!({ "successful": successful, "unsuccessful": unsuccessful, "err": err }),
    ))
}

/// `POST /api/{org}/actions/{id}/pause`: a paused scheduled action does not fire.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/pause",
    tag = "actions",
    operation_id = "pause_action",
    summary = "Pause a scheduled action",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    responses(
        (status = 200, description = "The action as it now is", body = crate::openapi::ActionDetails),
        (status = 400, description = "Only scheduled actions (once, repeat) can be paused", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn pause(
    state: State<Shared>,
    path: Path<(String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    set_paused(state, path, caller, true).await
}

/// `POST /api/{org}/actions/{id}/resume`: fires again from the next time its schedule names.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/resume",
    tag = "actions",
    operation_id = "resume_action",
    summary = "Resume a paused scheduled action",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    responses(
        (status = 200, description = "The action as it now is, with its next run time", body = crate::openapi::ActionDetails),
        (status = 400, description = "Only scheduled actions (once, repeat) can be resumed", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn resume(
    state: State<Shared>,
    path: Path<(String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    set_paused(state, path, caller, false).await
}

async fn set_paused(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    caller: Caller,
    paused: bool,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::Put, Some(&id))
        .await?;
    let mut action = find(&state, &org, &id).await?;
    if action.execution == ExecutionKind::Service {
        return Err(ApiError::bad_request(
            "only scheduled actions (once, repeat) can be paused or resumed",
        ));
    }
    action.paused = paused;
    if !paused && action.status != ActionStatus::Completed {
        action.next_run_at = next_run(action.execution, action.cron_expr.as_deref(), now_micros());
    }
    action.updated_at = now_micros();
    state.meta.update_action(&action).await?;
    Ok(Json(details(&action)))
}

/// The action, or 404.
pub async fn find(state: &Shared, org: &str, id: &str) -> ApiResult<Action> {
    state
        .meta
        .get_action(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("action {id}")))
}

fn summary(action: &Action) -> Value {
    json!({
        "id": action.id,
        "name": action.name,
        "description": action.description,
        "created_at": action.created_at,
        "last_run_at": action.last_run_at,
        "last_successful_at": action.last_successful_at,
        "created_by": action.created_by,
        "status": action.status.as_str(),
        "execution_details_type": action.execution.as_str(),
        "paused": action.paused,
        "next_run_at": action.next_run_at,
    })
}

fn details(action: &Action) -> Value {
    json!({
        "id": action.id,
        "name": action.name,
        "description": action.description,
        "environment_variables": action.environment_variables,
        "allowed_hosts": action.allowed_hosts,
        "execution_details": action.execution.as_str(),
        "cron_expr": action.cron_expr,
        "zip_file_name": action.zip_file_name,
        "zip_sha256": action.zip_digest,
        "zip_size": action.zip_size,
        "service_account": action.service_account,
        "owner": action.owner,
        "created_by": action.created_by,
        "created_at": action.created_at,
        "updated_at": action.updated_at,
        "last_run_at": action.last_run_at,
        "last_successful_at": action.last_successful_at,
        "status": action.status.as_str(),
        "paused": action.paused,
        "next_run_at": action.next_run_at,
        "dependencies": dependencies(action),
    })
}

/// The locked packages of an action, as the API shows them (empty when it has none).
fn dependencies(action: &Action) -> Value {
    action
        .dependency_lock
        .as_deref()
        .and_then(|lock| serde_json::from_str::<Value>(lock).ok())
        .and_then(|lock| lock.get("packages").cloned())
        .unwrap_or_else(|| json!([]))
}
