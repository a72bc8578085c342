//! An action's durable state over the API: its owner or an operator reads it (GET on the
//! action), writes or removes one key, or clears it all (PUT on the action). Runs change it
//! through `vivarium.state`, committed with the run.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vivarium_auth::Verb;
use vivarium_sandbox::{StateEntry, parse_ttl};
use vivarium_store::StoredState;

use super::Shared;
use super::answers::{DataList, StatusMessage};
use super::extract::ApiJson;
use super::paths::{ActionIdPath, OrgPath, StateKeyPath};
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::Caller;

/// `GET /api/{org}/actions/{id}/state`: the live entries of the action's state, by key.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/state",
    tag = "state",
    operation_id = "list_action_state",
    summary = "Read an action's state",
    params(OrgPath, ActionIdPath),
    responses(
        (status = 200, description = "The live entries, by key, with their versions and expiry", body = DataList<StoredState>),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<DataList<StoredState>>> {
    state.action_for(&org, &caller, Verb::Get, &id).await?;
    let data = state.meta.state_list(&org, &id, now_micros()).await?;
    Ok(Json(DataList { data }))
}

/// The body of `PUT .../state/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateValue {
    /// The JSON value to store.
    value: Value,
    /// How long the key lives, such as `90s` or `1h`; absent: it does not expire.
    #[serde(default)]
    ttl: Option<String>,
}

/// `PUT /api/{org}/actions/{id}/state/{key}`: stores one key, as `state.set` does.
#[utoipa::path(
    put,
    path = "/api/{org}/actions/{id}/state/{key}",
    tag = "state",
    operation_id = "put_action_state",
    summary = "Store one key of an action's state",
    params(OrgPath, ActionIdPath, StateKeyPath),
    request_body = StateValue,
    responses(
        (status = 200, description = "The entry as stored, with its new version", body = StateEntry),
        (status = 400, description = "A bad ttl, or a write past a quota (keys, bytes, value or key size)", body = ErrorBody),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The JSON lacks value, or has unknown fields", body = ErrorBody),
    ),
)]
pub async fn put(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(StateKeyPath { key }): Path<StateKeyPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<StateValue>,
) -> ApiResult<Json<StateEntry>> {
    state.action_for(&org, &caller, Verb::Put, &id).await?;
    let ttl = body
        .ttl
        .as_deref()
        .map(parse_ttl)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let quotas = state.config.state;
    let stored = state
        .meta
        .state_put(&org, &id, &key, body.value, ttl, &quotas, now_micros())
        .await?;
    let entry = stored.map_err(|refusal| ApiError::bad_request(refusal.to_string()))?;
    Ok(Json(entry))
}

/// `DELETE /api/{org}/actions/{id}/state/{key}`: removes one key.
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/{id}/state/{key}",
    tag = "state",
    operation_id = "delete_action_state_key",
    summary = "Remove one key of an action's state",
    params(OrgPath, ActionIdPath, StateKeyPath),
    responses(
        (status = 200, description = "The key is removed", body = StatusMessage),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization, action or key", body = ErrorBody),
    ),
)]
pub async fn delete_key(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(StateKeyPath { key }): Path<StateKeyPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    state.action_for(&org, &caller, Verb::Put, &id).await?;
    if !state.meta.state_delete(&org, &id, &key).await? {
        return Err(ApiError::not_found(format!("state key {key:?}")));
    }
    Ok(Json(StatusMessage::done("State key deleted")))
}

/// What clearing an action's state removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateCleared {
    /// How many keys were removed.
    cleared: u64,
}

/// `DELETE /api/{org}/actions/{id}/state`: removes every key of the action's state.
#[utoipa::path(
    delete,
    path = "/api/{org}/actions/{id}/state",
    tag = "state",
    operation_id = "clear_action_state",
    summary = "Clear an action's state",
    params(OrgPath, ActionIdPath),
    responses(
        (status = 200, description = "How many keys were removed", body = StateCleared),
        (status = 403, description = "The caller lacks PUT on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn clear(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StateCleared>> {
    state.action_for(&org, &caller, Verb::Put, &id).await?;
    let cleared = state.meta.state_clear(&org, &id).await?;
    tracing::info!(%org, action = %id, cleared, "action state cleared");
    Ok(Json(StateCleared { cleared }))
}
