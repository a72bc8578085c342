//! Secrets of an organization (its administrators manage them) and of one action (GET on it
//! to list them, PUT to change them). Values are write-only: no answer, log line or listing
//! ever holds one, and they are stored sealed ([`vivarium_auth::Keyring`]).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use vivarium_auth::{SecretPlace, Verb};
use vivarium_store::{SecretInfo, SecretRecord};

use super::Shared;
use super::answers::{DataList, StatusMessage};
use super::extract::ApiJson;
use super::paths::{ActionIdPath, OrgPath, SecretNamePath};
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::{Caller, require_admin};
use crate::secrets::{check_name, check_value};

/// The body of `PUT .../secrets/{name}`. `Debug` never shows the value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value: a non-empty string of at most 64 KiB, without NUL characters. It is never
    /// shown again.
    #[schema(example = "xoxb-0000-example")]
    value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// `GET /api/{org}/secrets` (administrators): the organization's secrets, without values.
#[utoipa::path(
    get,
    path = "/api/{org}/secrets",
    tag = "secrets",
    operation_id = "list_org_secrets",
    summary = "List the organization's secrets",
    params(
        OrgPath,
    ),
    responses(
        (status = 200, description = "The names and times of the organization's secrets, by name (never their values)", body = DataList<SecretInfo>),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list_org(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<DataList<SecretInfo>>> {
    require_admin(&caller)?;
    list(&state, &org, "").await
}

/// `PUT /api/{org}/secrets/{name}` (administrators): stores or replaces a secret every
/// action of the organization sees.
#[utoipa::path(
    put,
    path = "/api/{org}/secrets/{name}",
    tag = "secrets",
    operation_id = "put_org_secret",
    summary = "Store an organization's secret",
    params(
        OrgPath,
        SecretNamePath,
    ),
    request_body = SecretValue,
    responses(
        (status = 200, description = "The secret is stored, sealed", body = StatusMessage),
        (status = 400, description = "An invalid name, or an empty, oversized (over 64 KiB) or NUL-holding value", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 422, description = "The JSON lacks value, has unknown fields, or value is not a string", body = ErrorBody),
    ),
)]
pub async fn put_org(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(SecretNamePath { name }): Path<SecretNamePath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<Json<StatusMessage>> {
    require_admin(&caller)?;
    put(&state, &org, "", &name, &body).await
}

/// `DELETE /api/{org}/secrets/{name}` (administrators).
#[utoipa::path(
    delete,
    path = "/api/{org}/secrets/{name}",
    tag = "secrets",
    operation_id = "delete_org_secret",
    summary = "Delete an organization's secret",
    params(
        OrgPath,
        SecretNamePath,
    ),
    responses(
        (status = 200, description = "The secret is deleted", body = StatusMessage),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or secret", body = ErrorBody),
    ),
)]
pub async fn delete_org(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(SecretNamePath { name }): Path<SecretNamePath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    require_admin(&caller)?;
    delete(&state, &org, "", &name).await
}

/// `GET /api/{org}/actions/{id}/secrets` (GET on the action): its own secrets, without values.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/secrets",
    tag = "secrets",
    operation_id = "list_action_secrets",
    summary = "List an action's secrets",
    params(
        OrgPath,
        ActionIdPath,
    ),
    responses(
        (status = 200, description = "The names and times of the action's own secrets, by name (never their values; the organization's are listed at /api/{org}/secrets)", body = DataList<SecretInfo>),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn list_action(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<DataList<SecretInfo>>> {
    state.action_for(&org, &caller, Verb::Get, &id).await?;
    list(&state, &org, &id).await
}

/// `PUT /api/{org}/actions/{id}/secrets/{name}` (PUT on the action): stores or replaces a
/// secret only this action sees; it wins over the organization's of the same name.
#[utoipa::path(
    put,
    path = "/api/{org}/actions/{id}/secrets/{name}",
    tag = "secrets",
    operation_id = "put_action_secret",
    summary = "Store an action's secret",
    params(
        OrgPath,
        ActionIdPath,
        SecretNamePath,
    ),
    request_body = SecretValue,
    responses(
        (status = 200, description = "The secret is stored, sealed", body = StatusMessage),
        (status = 400, description = "An invalid name, or an empty, oversized (over 64 KiB) or NUL-holding value", body = ErrorBody),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The JSON lacks value, has unknown fields, or value is not a string", body = ErrorBody),
    ),
)]
pub async fn put_action(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(SecretNamePath { name }): Path<SecretNamePath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<Json<StatusMessage>> {
    state.action_for(&org, &caller, Verb::Put, &id).await?;
    put(&state, &org, &id, &name, &body).await
}

/// `DELETE /api/{org}/actions/{id}/secrets/{name}` (PUT on the action: it changes the action).
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/{id}/secrets/{name}",
    tag = "secrets",
    operation_id = "delete_action_secret",
    summary = "Delete an action's secret",
    params(
        OrgPath,
        ActionIdPath,
        SecretNamePath,
    ),
    responses(
        (status = 200, description = "The secret is deleted", body = StatusMessage),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization, action or secret", body = ErrorBody),
    ),
)]
pub async fn delete_action(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(SecretNamePath { name }): Path<SecretNamePath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    state.action_for(&org, &caller, Verb::Put, &id).await?;
    delete(&state, &org, &id, &name).await
}

/// The secrets of `org` (`action_id` empty) or of one of its actions, as listed.
async fn list(state: &Shared, org: &str, action_id: &str) -> ApiResult<Json<DataList<SecretInfo>>> {
    let data = state.meta.list_secrets(org, action_id).await?;
    Ok(Json(DataList { data }))
}

/// Checks, seals and stores a secret at its place.
async fn put(
    state: &Shared,
    org: &str,
    action_id: &str,
    name: &str,
    body: &SecretValue,
) -> ApiResult<Json<StatusMessage>> {
    check_name(name)?;
    check_value(&body.value)?;
    let place = SecretPlace {
        org,
        action_id,
        name,
    };
    let sealed = state
        .keyring
        .seal(place, &body.value)
        .map_err(|e| ApiError::internal(format!("{place} could not be sealed: {e}")))?;
    let now = now_micros();
    state
        .meta
        .put_secret(&SecretRecord {
            org: org.to_string(),
            action_id: action_id.to_string(),
            name: name.to_string(),
            sealed,
            created_at: now,
            updated_at: now,
        })
        .await?;
    tracing::info!(%org, action = %action_id, %name, "secret saved");
    Ok(Json(StatusMessage::done("Secret saved")))
}

/// Deletes a secret; 404 when there is none at that place.
async fn delete(
    state: &Shared,
    org: &str,
    action_id: &str,
    name: &str,
) -> ApiResult<Json<StatusMessage>> {
    if !state.meta.delete_secret(org, action_id, name).await? {
        return Err(ApiError::not_found(format!("secret {name}")));
    }
    tracing::info!(%org, action = %action_id, %name, "secret deleted");
    Ok(Json(StatusMessage::done("Secret deleted")))
}
