//! Triggers (manual test runs, the alert engine, Logs-page transforms) and the run history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vivarium_auth::{ResourceKind, Verb};
use vivarium_sandbox::{Input, ResultShape};
use vivarium_store::{Page, Run, Trigger};

use super::Shared;
use super::actions::find;
use crate::error::{ApiError, ApiResult};
use crate::executor::{PERMISSION_DENIED, RunReport, RunRequest};
use crate::extract::ApiJson;
use crate::identity::require;

/// The body of a manual run.
#[derive(Debug, Deserialize)]
pub struct TestRun {
    inputs: Vec<Value>,
}

/// `POST /api/{org}/actions/test/{id}`: runs the action on `inputs` and answers with the
/// result, the run id, the logs and the outcome.
pub async fn test_run(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TestRun>,
) -> ApiResult<Response> {
    let input = Input::Data(Value::Array(body.inputs));
    let report = trigger(
        &state,
        &org,
        &id,
        &headers,
        Trigger::Manual,
        None,
        input,
        ResultShape::Records,
    )
    .await?;
    Ok(answer(&report, full_answer(&report)))
}

/// The alert engine's body: the rendered template, where it came from, and a trace id.
#[derive(Debug, Deserialize)]
pub struct AlertRun {
    inputs: Value,
    #[serde(default)]
    trigger_source: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
}

/// `POST /api/{org}/actions/{id}/alert`: the alert engine's entry. An object becomes
/// `[object]`, an array is passed as is; the return value is ignored.
pub async fn alert(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
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
    let report = trigger(
        &state,
        &org,
        &id,
        &headers,
        Trigger::Alert,
        body.trace_id,
        input,
        ResultShape::Any,
    )
    .await?;
    let mut answer_body = full_answer(&report);
    if let Some(object) = answer_body.as_object_mut() {
        object.remove("result");
    }
    Ok(answer(&report, answer_body))
}

/// The Logs page's body: the hits of the search.
#[derive(Debug, Deserialize)]
pub struct TransformRun {
    hits: Vec<Value>,
}

/// `POST /api/{org}/actions/{id}/transform`: the records the action returns replace the
/// hits; a failing action fails the request with its message.
pub async fn transform(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TransformRun>,
) -> ApiResult<Response> {
    let input = Input::Data(Value::Array(body.hits));
    let report = trigger(
        &state,
        &org,
        &id,
        &headers,
        Trigger::Logs,
        None,
        input,
        ResultShape::Records,
    )
    .await?;
    if report.run.succeeded() {
        let body = json!({ "hits": report.result, "run_id": report.run.id, "outcome": report.run.outcome });
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

#[allow(clippy::too_many_arguments)]
async fn trigger(
    state: &Shared,
    org: &str,
    id: &str,
    headers: &HeaderMap,
    trigger: Trigger,
    trace_id: Option<String>,
    input: Input,
    shape: ResultShape,
) -> ApiResult<RunReport> {
    let caller = state.caller(headers, org).await?;
    require(
        state.meta.as_ref(),
        org,
        &caller,
        Verb::Post,
        ResourceKind::ActionScripts,
        Some(id),
    )
    .await?;
    let action = find(state, org, id).await?;
    state
        .executor
        .run(RunRequest {
            action,
            trigger,
            trace_id,
            input,
            shape,
        })
        .await
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
#[derive(Debug, Deserialize)]
pub struct RunPaging {
    #[serde(default = "first_page")]
    page: u32,
    #[serde(default = "default_per_page")]
    per_page: u32,
}

fn first_page() -> u32 {
    1
}

fn default_per_page() -> u32 {
    20
}

/// `GET /api/{org}/actions/{id}/runs`: the action's runs, newest first.
pub async fn list_runs(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    paging: Result<Query<RunPaging>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(paging) =
        paging.map_err(|e| ApiError::bad_request(format!("invalid paging: {}", e.body_text())))?;
    if paging.page == 0 || paging.per_page == 0 || paging.per_page > 100 {
        return Err(ApiError::bad_request(
            "page starts at 1 and per_page is between 1 and 100",
        ));
    }
    let caller = state.caller(&headers, &org).await?;
    require(
        state.meta.as_ref(),
        &org,
        &caller,
        Verb::Get,
        ResourceKind::ActionScripts,
        Some(&id),
    )
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
pub async fn get_run(
    State(state): State<Shared>,
    Path((org, id, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let caller = state.caller(&headers, &org).await?;
    require(
        state.meta.as_ref(),
        &org,
        &caller,
        Verb::Get,
        ResourceKind::ActionScripts,
        Some(&id),
    )
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
