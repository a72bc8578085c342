//! Triggers (manual test runs, the alert engine, Logs-page transforms) and the run history.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use vivarium_auth::Verb;
use vivarium_sandbox::{Input, ResultShape};
use vivarium_store::{Action, Page, Run, Trigger};

use super::Shared;
use super::actions::find;
use crate::error::{ApiError, ApiResult};
use crate::executor::{PERMISSION_DENIED, RunReport, RunRequest};
use crate::extract::ApiJson;
use crate::identity::Caller;

/// The body of a manual run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TestRun {
    inputs: Vec<Value>,
}

/// `POST /api/{org}/actions/test/{id}`: runs the action on `inputs` and answers with the
/// result, the run id, the logs and the outcome.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/test/{id}",
    tag = "triggers",
    operation_id = "test_action",
    summary = "Run an action by hand",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    request_body = TestRun,
    responses(
        (status = 200, description = "The run finished, whatever its outcome: result, error, logs and resource use", body = crate::openapi::RunAnswer),
        (status = 400, description = "Malformed JSON, or the action could not be prepared to run", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = crate::openapi::RunError),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, description = "The JSON lacks inputs, or it is not an array", body = crate::openapi::ErrorBody),
        (status = 429, response = crate::openapi::TooManyRuns),
    ),
)]
pub async fn test_run(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<TestRun>,
) -> ApiResult<Response> {
    let input = Input::Data(Value::Array(body.inputs));
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = state
        .executor
        .run(RunRequest {
            action,
            trigger: Trigger::Manual,
            trace_id: None,
            input,
            shape: ResultShape::Records,
        })
        .await?;
    Ok(answer(&report, full_answer(&report)))
}

/// The alert engine's body: the rendered template, where it came from, and a trace id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AlertRun {
    inputs: Value,
    #[serde(default)]
    trigger_source: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
}

/// `POST /api/{org}/actions/{id}/alert`: the alert engine's entry. An object becomes
/// `[object]`, an array is passed as is; the return value is ignored.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/alert",
    tag = "triggers",
    operation_id = "alert_action",
    summary = "Run an action for the alert engine",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    request_body = AlertRun,
    responses(
        (status = 200, description = "The run finished, whatever its outcome; the answer has no result", body = crate::openapi::RunAnswer),
        (status = 400, description = "Malformed JSON, inputs neither an object nor an array, or the action could not be prepared to run", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = crate::openapi::RunError),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, description = "The JSON lacks inputs, or has wrong types", body = crate::openapi::ErrorBody),
        (status = 429, response = crate::openapi::TooManyRuns),
    ),
)]
pub async fn alert(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<AlertRun>,
) -> ApiResult<Response> {
    let inputs = match body.inputs {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(ApiError::bad_request(
                "Message should be valid JSON for actions",
            ));
        }
    };
    tracing::debug!(source = ?body.trigger_source, "alert trigger");
    let input = Input::Data(Value::Array(inputs));
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = state
        .executor
        .run(RunRequest {
            action,
            trigger: Trigger::Alert,
            trace_id: body.trace_id,
            input,
            shape: ResultShape::Any,
        })
        .await?;
    let mut answer_body = full_answer(&report);
    if let Some(object) = answer_body.as_object_mut() {
        object.remove("result");
    }
    Ok(answer(&report, answer_body))
}

/// The Logs page's body: the hits of the search.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TransformRun {
    hits: Vec<Value>,
}

/// `POST /api/{org}/actions/{id}/transform`: the records the action returns replace the
/// hits; a failing action fails the request with its message.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/transform",
    tag = "triggers",
    operation_id = "transform_action",
    summary = "Transform Logs-page hits with an action",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
    ),
    request_body = TransformRun,
    responses(
        (status = 200, description = "The action succeeded: the records it returned replace the hits", body = crate::openapi::TransformAnswer),
        (status = 400, description = "Malformed JSON, or the action could not be prepared to run", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = crate::openapi::RunError),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, description = "The action failed: the message names the outcome and the error, run_id and outcome identify the run; or the JSON lacks hits", body = crate::openapi::RunError),
        (status = 429, response = crate::openapi::TooManyRuns),
    ),
)]
pub async fn transform(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<TransformRun>,
) -> ApiResult<Response> {
    let input = Input::Data(Value::Array(body.hits));
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = state
        .executor
        .run(RunRequest {
            action,
            trigger: Trigger::Logs,
            trace_id: None,
            input,
            shape: ResultShape::Records,
        })
        .await?;
    if report.run.succeeded() {
        let body = json!({
            "hits": report.result,
            "run_id": report.run.id,
            "outcome": report.run.outcome,
            "logs": report.run.logs,
        });
        return Ok(Json(body).into_response());
    }
    let status = if report.run.outcome == PERMISSION_DENIED {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let message = format!(
        "the action failed ({}): {}",
        report.run.outcome,
        report.run.error_message.clone().unwrap_or_default()
    );
    let body = json!({ "code": status.as_u16(), "message": message, "run_id": report.run.id, "outcome": report.run.outcome });
    Ok((status, Json(body)).into_response())
}

/// The action, once the caller is known to hold POST on it (running it is a POST).
async fn runnable(state: &Shared, org: &str, id: &str, caller: &Caller) -> ApiResult<Action> {
    state
        .require_on_actions(org, caller, Verb::Post, Some(id))
        .await?;
    find(state, org, id).await
}

fn full_answer(report: &RunReport) -> Value {
    let run = &report.run;
    json!({
        "run_id": run.id,
        "outcome": run.outcome,
        "result": report.result,
        "error": error_of(run),
        "logs": run.logs,
        "logs_truncated": run.logs_truncated,
        "duration_ms": run.duration_ms,
        "fuel_used": run.fuel_used,
        "peak_memory_bytes": run.peak_memory_bytes,
    })
}

/// 200 with the body, or 403 in the API's error shape (plus the run id) when the action's
/// service account was refused.
fn answer(report: &RunReport, body: Value) -> Response {
    if report.run.outcome != PERMISSION_DENIED {
        return Json(body).into_response();
    }
    let message = report.run.error_message.clone().unwrap_or_default();
    let body = json!({ "code": 403, "message": message, "run_id": report.run.id, "outcome": PERMISSION_DENIED });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

fn error_of(run: &Run) -> Value {
    match (&run.error_type, &run.error_message) {
        (None, None) => Value::Null,
        (kind, message) => json!({ "type": kind, "message": message, "traceback": run.traceback }),
    }
}

/// Paging of the run history: `?page=1&per_page=20` (at most 100 a page).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunPaging {
    #[serde(default = "first_page")]
    #[param(minimum = 1, default = 1)]
    page: u32,
    #[serde(default = "default_per_page")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    per_page: u32,
}

fn first_page() -> u32 {
    1
}

fn default_per_page() -> u32 {
    20
}

/// `GET /api/{org}/actions/{id}/runs`: the action's runs, newest first.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/runs",
    tag = "runs",
    operation_id = "list_runs",
    summary = "List an action's runs",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
        RunPaging,
    ),
    responses(
        (status = 200, description = "One page of the run history, newest first", body = crate::openapi::RunPage),
        (status = 400, description = "Invalid paging: page starts at 1 and per_page is between 1 and 100", body = crate::openapi::ErrorBody),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or action", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn list_runs(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    paging: Result<Query<RunPaging>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(paging) =
        paging.map_err(|e| ApiError::bad_request(format!("invalid paging: {}", e.body_text())))?;
    if paging.page == 0 || paging.per_page == 0 || paging.per_page > 100 {
        return Err(ApiError::bad_request(
            "page starts at 1 and per_page is between 1 and 100",
        ));
    }
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    find(&state, &org, &id).await?;
    let page = Page {
        offset: (paging.page - 1).saturating_mul(paging.per_page),
        limit: paging.per_page,
    };
    let (runs, total) = state.meta.list_runs(&org, &id, page).await?;
    let runs: Vec<Value> = runs.iter().map(run_summary).collect();
    Ok(Json(
        json!({ "runs": runs, "total": total, "page": paging.page, "per_page": paging.per_page }),
    ))
}

/// `GET /api/{org}/actions/{id}/runs/{run_id}`: one run with its logs and traceback.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/runs/{run_id}",
    tag = "runs",
    operation_id = "get_run",
    summary = "Read one run with its logs",
    params(
        ("org" = String, Path, description = "The organization"),
        ("id" = String, Path, description = "The action's id"),
        ("run_id" = String, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "The run with its logs and traceback", body = crate::openapi::RunDetails),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such organization or run", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get_run(
    State(state): State<Shared>,
    Path((org, id, run_id)): Path<(String, String, String)>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    let run = state
        .meta
        .get_run(&org, &id, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id}")))?;
    let mut body = run_summary(&run);
    if let Some(object) = body.as_object_mut() {
        object.insert("logs".into(), Value::Array(run.logs.clone()));
        object.insert("traceback".into(), json!(run.traceback));
    }
    Ok(Json(body))
}

fn run_summary(run: &Run) -> Value {
    json!({
        "id": run.id,
        "action_id": run.action_id,
        "trigger": run.trigger.as_str(),
        "trace_id": run.trace_id,
        "started_at": run.started_at,
        "duration_ms": run.duration_ms,
        "fuel_used": run.fuel_used,
        "peak_memory_bytes": run.peak_memory_bytes,
        "outcome": run.outcome,
        "error_type": run.error_type,
        "error_message": run.error_message,
        "input_count": run.input_count,
        "output_count": run.output_count,
        "logs_truncated": run.logs_truncated,
    })
}
