//! Triggers (manual test runs, the alert engine, Logs-page transforms) and the run history.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vivarium_auth::Verb;
use vivarium_sandbox::{ActionError, Input, LogLine, ResultShape};
use vivarium_store::{Action, Refusal, Run, RunFilter, RunOutcome, Trigger};

use super::Shared;
use super::extract::ApiJson;
use super::live_logs::{streamed_run, wants_event_stream};
use super::paging::{first_page, store_page};
use super::paths::{ActionIdPath, OrgPath, RunIdPath};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::executor::{RunReport, RunRequest};
use crate::identity::Caller;

/// The body of a manual run.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TestRun {
    /// The records `main` receives.
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
        OrgPath,
        ActionIdPath,
    ),
    request_body = TestRun,
    responses(
        (status = 200, description = "The run finished, whatever its outcome: result, error, logs and resource use. With `Accept: text/event-stream` the answer is a stream instead: a `log` event (a LogLine) per line as the action writes it, then one `result` event (this RunAnswer, whatever the outcome) or one `error` event (an ErrorBody: the run was not performed)", content(
            (RunAnswer = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Malformed JSON, or the action could not be prepared to run", body = ErrorBody),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = RunFailureBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The JSON lacks inputs, or it is not an array", body = ErrorBody),
    ),
)]
pub async fn test_run(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TestRun>,
) -> ApiResult<Response> {
    let action = runnable(&state, &org, &id, &caller).await?;
    let request = run_request(action, Trigger::Manual, None, body.inputs);
    if wants_event_stream(&headers) {
        return Ok(streamed_run(state, request));
    }
    let report = state.executor.run(request).await?;
    if let Some(refused) = RunFailureBody::refusal(&report) {
        return Ok(refused.into_response());
    }
    Ok(Json(RunAnswer::of(report, true)).into_response())
}

/// The alert engine's body: the rendered template, where it came from, and a trace id.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertRun {
    /// The rendered alert template: an object (one input) or an array (the inputs).
    inputs: Value,
    /// Where the call came from (`Alerts`).
    #[serde(default)]
    trigger_source: Option<String>,
    /// The alert's trace id, kept with the run.
    #[serde(default)]
    trace_id: Option<String>,
}

/// `POST /api/{org}/actions/{id}/alert`: the alert engine's entry. An object becomes
/// `[object]`, an array is passed as is; the return value is ignored. A failing action
/// answers 422, so that the alert's history shows the failure.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/alert",
    tag = "triggers",
    operation_id = "alert_action",
    summary = "Run an action for the alert engine",
    params(
        OrgPath,
        ActionIdPath,
    ),
    request_body = AlertRun,
    responses(
        (status = 200, description = "The action succeeded; the answer has no result", body = RunAnswer),
        (status = 400, description = "Malformed JSON, inputs neither an object nor an array, or the action could not be prepared to run", body = ErrorBody),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = RunFailureBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The action failed: the message names the outcome and the error, run_id and outcome identify the run; or the JSON lacks inputs, or has wrong types", body = RunFailureBody),
    ),
)]
pub async fn alert(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<AlertRun>,
) -> ApiResult<Response> {
    tracing::debug!(source = ?body.trigger_source, "alert trigger");
    let inputs = alert_inputs(body.inputs)?;
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = run(&state, action, Trigger::Alert, body.trace_id, inputs).await?;
    Ok(alert_answer(report))
}

/// `POST /api/{org}/actions/{id}/webhook`: the entry for OpenObserve's webhook destination,
/// which sends the rendered alert template itself as the body: an object becomes one input,
/// an array the inputs. Answers as the alert entry does.
#[utoipa::path(
    post,
    path = "/api/{org}/actions/{id}/webhook",
    tag = "triggers",
    operation_id = "webhook_action",
    summary = "Run an action for a webhook alert destination",
    params(
        OrgPath,
        ActionIdPath,
    ),
    request_body(
        description = "The rendered alert template, as JSON: an object or an array; any Content-Type",
        content(
            (Value = "application/json"),
            (String = "text/plain"),
        ),
    ),
    responses(
        (status = 200, description = "The action succeeded; the answer has no result", body = RunAnswer),
        (status = 400, description = "The body is not a JSON object or array, or the action could not be prepared to run", body = ErrorBody),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = RunFailureBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The action failed: the message names the outcome and the error, run_id and outcome identify the run", body = RunFailureBody),
    ),
)]
pub async fn webhook(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let template: Value = serde_json::from_slice(&body).map_err(|_| not_json_for_actions())?;
    let inputs = alert_inputs(template)?;
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = run(&state, action, Trigger::Webhook, None, inputs).await?;
    Ok(alert_answer(report))
}

/// The inputs of a rendered alert template: an object becomes `[object]`, an array is
/// passed as is; anything else gets O2's message.
fn alert_inputs(template: Value) -> ApiResult<Vec<Value>> {
    match template {
        Value::Array(items) => Ok(items),
        object @ Value::Object(_) => Ok(vec![object]),
        _ => Err(not_json_for_actions()),
    }
}

fn not_json_for_actions() -> ApiError {
    ApiError::bad_request("Message should be valid JSON for actions")
}

/// What the alert engine (or a webhook destination) is answered: the run without its result
/// when the action succeeded, else the failure with a non-2xx status.
fn alert_answer(report: RunReport) -> Response {
    match RunFailureBody::failure(&report) {
        Some(failed) => failed.into_response(),
        None => Json(RunAnswer::of(report, false)).into_response(),
    }
}

/// The Logs page's body: the hits of the search.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TransformRun {
    /// The hits of the search, as records.
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
        OrgPath,
        ActionIdPath,
    ),
    request_body = TransformRun,
    responses(
        (status = 200, description = "The action succeeded: the records it returned replace the hits", body = TransformAnswer),
        (status = 400, description = "Malformed JSON, or the action could not be prepared to run", body = ErrorBody),
        (status = 403, description = "The caller lacks POST on the action or is no member of the organization (code and message only); or the action's service account lacks GET on it, a refusal recorded as a run with outcome permission_denied (run_id and outcome given)", body = RunFailureBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
        (status = 422, description = "The action failed: the message names the outcome and the error, run_id and outcome identify the run; or the JSON lacks hits", body = RunFailureBody),
    ),
)]
pub async fn transform(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<TransformRun>,
) -> ApiResult<Response> {
    let action = runnable(&state, &org, &id, &caller).await?;
    let report = run(&state, action, Trigger::Logs, None, body.hits).await?;
    if let Some(failed) = RunFailureBody::failure(&report) {
        return Ok(failed.into_response());
    }
    let answer = TransformAnswer {
        run_id: report.run.id,
        outcome: report.run.outcome,
        logs: report.run.logs,
        hits: report.result.unwrap_or_default(),
    };
    Ok(Json(answer).into_response())
}

/// Runs `action` on `inputs` for `trigger`.
async fn run(
    state: &Shared,
    action: Action,
    trigger: Trigger,
    trace_id: Option<String>,
    inputs: Vec<Value>,
) -> ApiResult<RunReport> {
    let request = run_request(action, trigger, trace_id, inputs);
    Ok(state.executor.run(request).await?)
}

/// The run of `action` on `inputs` for `trigger`; a trigger that passes records expects
/// records back, the others anything JSON.
fn run_request(
    action: Action,
    trigger: Trigger,
    trace_id: Option<String>,
    inputs: Vec<Value>,
) -> RunRequest {
    let shape = match trigger {
        Trigger::Manual | Trigger::Logs => ResultShape::Records,
        Trigger::Alert | Trigger::Webhook | Trigger::Schedule => ResultShape::Any,
    };
    RunRequest {
        action,
        trigger,
        trace_id,
        input: Input::Data(Value::Array(inputs)),
        shape,
    }
}

/// The action, once the caller is known to hold POST on it (running it is a POST).
async fn runnable(state: &Shared, org: &str, id: &str, caller: &Caller) -> ApiResult<Action> {
    state.action_for(org, caller, Verb::Post, id).await
}

/// Paging and filters of the run history: `?page=1&per_page=20` (at most 100 a page),
/// optionally `&outcome=ok` and `&trigger=schedule`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunPaging {
    /// Only runs that ended this way (`ok`, `error`, `out_of_fuel`, `permission_denied`, ...).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    outcome: Option<RunOutcome>,
    /// Only runs started by this trigger (`manual`, `alert`, `logs`, `schedule`, `webhook`).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    trigger: Option<Trigger>,
    #[serde(default = "first_page")]
    #[param(minimum = 1, default = 1)]
    page: u32,
    #[serde(default = "default_per_page")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    per_page: u32,
}

/// Most runs one page of the history holds.
const MOST_RUNS_PER_PAGE: u32 = 100;

fn default_per_page() -> u32 {
    20
}

/// `GET /api/{org}/actions/{id}/runs`: the action's runs, newest first, optionally only
/// those of one outcome or trigger.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/runs",
    tag = "runs",
    operation_id = "list_runs",
    summary = "List an action's runs",
    params(
        OrgPath,
        ActionIdPath,
        RunPaging,
    ),
    responses(
        (status = 200, description = "One page of the run history that the filters keep, newest first", body = RunPage),
        (status = 400, description = "Invalid paging (page starts at 1 and per_page is between 1 and 100), or an unknown outcome or trigger", body = ErrorBody),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or action", body = ErrorBody),
    ),
)]
pub async fn list_runs(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Extension(caller): Extension<Caller>,
    paging: Result<Query<RunPaging>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let Query(paging) =
        paging.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let page = store_page(paging.page, paging.per_page, MOST_RUNS_PER_PAGE)?;
    state.action_for(&org, &caller, Verb::Get, &id).await?;
    let filter = RunFilter {
        outcome: paging.outcome,
        trigger: paging.trigger,
    };
    let (runs, total) = state.meta.list_runs(&org, &id, filter, page).await?;
    Ok(Json(RunPage {
        runs: runs.into_iter().map(RunSummary::of).collect(),
        total,
        page: paging.page,
        per_page: paging.per_page,
    }))
}

/// `GET /api/{org}/actions/{id}/runs/{run_id}`: one run with its logs and traceback.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/runs/{run_id}",
    tag = "runs",
    operation_id = "get_run",
    summary = "Read one run with its logs",
    params(
        OrgPath,
        ActionIdPath,
        RunIdPath,
    ),
    responses(
        (status = 200, description = "The run with its logs and traceback", body = RunDetails),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization or run", body = ErrorBody),
    ),
)]
pub async fn get_run(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(RunIdPath { run_id }): Path<RunIdPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<RunDetails>> {
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    let run = state
        .meta
        .get_run(&org, &id, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id}")))?;
    Ok(Json(RunDetails::of(run)))
}

/// The answer of a run: its outcome, result, logs and resource use. The alert and webhook
/// entries leave `result` out.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunAnswer {
    /// The recorded run's id.
    run_id: String,
    /// How the run ended.
    outcome: RunOutcome,
    /// What `main` returned (the records, for a manual run); null when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Option<Value>>,
    /// What the action raised; null when it succeeded.
    error: Option<ActionError>,
    /// The run's log records.
    logs: Vec<LogLine>,
    /// Whether the logs were cut at the limit.
    logs_truncated: bool,
    /// How long the run took, in milliseconds.
    duration_ms: f64,
    /// Fuel consumed.
    fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    peak_memory_bytes: i64,
}

impl RunAnswer {
    /// The answer of `report`, with `main`'s result when `with_result`.
    pub(super) fn of(report: RunReport, with_result: bool) -> Self {
        let run = report.run;
        Self {
            error: error_of(&run),
            result: with_result.then_some(report.result),
            run_id: run.id,
            outcome: run.outcome,
            logs: run.logs,
            logs_truncated: run.logs_truncated,
            duration_ms: run.duration_ms,
            fuel_used: run.fuel_used,
            peak_memory_bytes: run.peak_memory_bytes,
        }
    }
}

/// What a failed run raised, as the run record keeps it.
fn error_of(run: &Run) -> Option<ActionError> {
    if run.error_type.is_none() && run.error_message.is_none() {
        return None;
    }
    Some(ActionError {
        type_name: run.error_type.clone().unwrap_or_default(),
        message: run.error_message.clone().unwrap_or_default(),
        traceback: run.traceback.clone(),
    })
}

/// A failure that concerns a recorded run: the error shape plus the run's id and outcome.
/// A refusal of the caller (rather than of the action's service account) carries only
/// `code` and `message`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunFailureBody {
    /// The HTTP status of the answer.
    code: u16,
    /// What went wrong.
    message: String,
    /// The recorded run.
    run_id: String,
    /// How the run ended.
    outcome: RunOutcome,
}

impl RunFailureBody {
    /// 403 when the action's service account was refused; `None` for a run that ran.
    fn refusal(report: &RunReport) -> Option<Self> {
        let RunOutcome::Refused(Refusal::PermissionDenied) = report.run.outcome else {
            return None;
        };
        Some(Self {
            code: StatusCode::FORBIDDEN.as_u16(),
            message: report.run.error_message.clone().unwrap_or_default(),
            run_id: report.run.id.clone(),
            outcome: report.run.outcome,
        })
    }

    /// The refusal, or 422 naming the outcome and the error when the action failed; `None`
    /// when it succeeded.
    fn failure(report: &RunReport) -> Option<Self> {
        if report.run.succeeded() {
            return None;
        }
        Self::refusal(report).or_else(|| {
            Some(Self {
                code: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
                message: format!(
                    "the action failed ({}): {}",
                    report.run.outcome,
                    report.run.error_message.clone().unwrap_or_default()
                ),
                run_id: report.run.id.clone(),
                outcome: report.run.outcome,
            })
        })
    }
}

impl IntoResponse for RunFailureBody {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        (status, Json(self)).into_response()
    }
}

/// The answer of a successful transform: the records the action returned replace the hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransformAnswer {
    /// The records the action returned.
    hits: Value,
    /// The recorded run's id.
    run_id: String,
    /// Always `ok`.
    outcome: RunOutcome,
    /// The run's log records.
    logs: Vec<LogLine>,
}

/// A run as listed in the history.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    /// Its id (a UUID).
    pub(crate) id: String,
    /// The action that ran.
    pub(crate) action_id: String,
    /// What started it.
    pub(crate) trigger: Trigger,
    /// The caller's trace id (alerts send one).
    pub(crate) trace_id: Option<String>,
    /// When it started (µs since the epoch).
    pub(crate) started_at: i64,
    /// How long it took, in milliseconds.
    pub(crate) duration_ms: f64,
    /// Fuel consumed.
    pub(crate) fuel_used: i64,
    /// Largest linear memory reached, in bytes.
    pub(crate) peak_memory_bytes: i64,
    /// How it ended.
    pub(crate) outcome: RunOutcome,
    /// The error's type, when it failed.
    pub(crate) error_type: Option<String>,
    /// The error's message, when it failed.
    pub(crate) error_message: Option<String>,
    /// Records passed in.
    pub(crate) input_count: i64,
    /// Records returned, when it succeeded with a list.
    pub(crate) output_count: Option<i64>,
    /// Whether the logs were cut at the limit.
    pub(crate) logs_truncated: bool,
    /// The keys of the action's state the run changed, sorted.
    pub(crate) state_changes: Vec<String>,
    /// Bytes of disk blocks the run left in its scratch folder `/tmp` when it ended.
    pub(crate) scratch_bytes: i64,
    /// Files, folders and links the run left in its scratch folder when it ended.
    pub(crate) scratch_files: i64,
}

impl RunSummary {
    /// The summary of `run` as the history lists it.
    pub(crate) fn of(run: Run) -> Self {
        Self {
            id: run.id,
            action_id: run.action_id,
            trigger: run.trigger,
            trace_id: run.trace_id,
            started_at: run.started_at,
            duration_ms: run.duration_ms,
            fuel_used: run.fuel_used,
            peak_memory_bytes: run.peak_memory_bytes,
            outcome: run.outcome,
            error_type: run.error_type,
            error_message: run.error_message,
            input_count: run.input_count,
            output_count: run.output_count,
            logs_truncated: run.logs_truncated,
            state_changes: run.state_changes,
            scratch_bytes: run.scratch_bytes,
            scratch_files: run.scratch_files,
        }
    }
}

/// One page of an action's run history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    /// The runs of this page.
    runs: Vec<RunSummary>,
    /// Runs the filters keep in the whole history.
    total: u64,
    /// This page's number, from 1.
    page: u32,
    /// Runs per page.
    per_page: u32,
}

/// One run with its logs and traceback.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetails {
    /// The run as listed.
    #[serde(flatten)]
    pub(crate) summary: RunSummary,
    /// The run's log records.
    pub(crate) logs: Vec<LogLine>,
    /// The user's frames, when the action raised.
    pub(crate) traceback: Vec<String>,
}

impl RunDetails {
    /// The answer for the stored record.
    pub(crate) fn of(mut run: Run) -> Self {
        let logs = std::mem::take(&mut run.logs);
        let traceback = std::mem::take(&mut run.traceback);
        Self {
            summary: RunSummary::of(run),
            logs,
            traceback,
        }
    }
}
