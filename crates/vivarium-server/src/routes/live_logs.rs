//! Live logs as server-sent events: a run's lines while it is in flight (then its record),
//! the recorded lines of a run that has ended, and a manual run streamed as it goes. The
//! console watches runs through these routes, and API clients can too.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::ToSchema;
use vivarium_auth::Verb;
use vivarium_sandbox::LogLine;
use vivarium_store::Run;

use super::Shared;
use super::paths::{ActionIdPath, OrgPath, RunIdPath};
use super::triggers::{RunAnswer, RunSummary};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::executor::{RunReport, RunRequest};
use crate::identity::Caller;
use crate::live::{LiveEvent, Watch};

/// The media type of a server-sent-events stream, which a client asks for in `Accept`.
const EVENT_STREAM: &str = "text/event-stream";

/// The event names of the streams, each written here once.
mod names {
    /// A log line (a `LogLine`).
    pub const LOG: &str = "log";
    /// A watched run ended and is recorded (a `RunSummary`).
    pub const END: &str = "end";
    /// A manual run ended (a `RunAnswer`).
    pub const RESULT: &str = "result";
    /// The run was not performed (a `RunNotPerformed` or an `ErrorBody`).
    pub const ERROR: &str = "error";
    /// The watcher fell behind and missed lines (a `MissedLines`); the record has them.
    pub const MISSED: &str = "missed";
}

/// Whether the client asked for a server-sent-events stream.
pub(super) fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains(EVENT_STREAM))
}

/// A run's log lines as JSON, for a client that did not ask for a stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunLogs {
    /// The run's id.
    run_id: String,
    /// Whether the run is still in flight (its lines so far), or has ended (all its lines).
    running: bool,
    /// The lines, oldest first, secrets masked.
    logs: Vec<LogLine>,
}

/// Why a watched run was not performed (the `error` event of a watch).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunNotPerformed {
    /// What went wrong.
    message: String,
}

/// How many lines a watcher missed because it read too slowly (the `missed` event).
#[derive(Debug, Serialize, ToSchema)]
pub struct MissedLines {
    /// Lines the stream skipped; the run's record holds them once it has ended.
    missed: u64,
}

/// `GET /api/{org}/actions/{id}/runs/{run_id}/logs`: the run's log lines. With
/// `Accept: text/event-stream`, a stream: the lines so far, each line as it is written, and
/// the record when the run ends; a run that has ended streams its recorded lines and record.
#[utoipa::path(
    get,
    path = "/api/{org}/actions/{id}/runs/{run_id}/logs",
    tag = "runs",
    operation_id = "run_logs",
    summary = "Read or watch a run's log lines",
    params(
        OrgPath,
        ActionIdPath,
        RunIdPath,
    ),
    responses(
        (status = 200, description = "The run's lines. As JSON: a RunLogs. As `text/event-stream`: a `log` event (a LogLine) per line, then an `end` event (the RunSummary) once the run is recorded, or an `error` event (a RunNotPerformed) if it was not performed; a `missed` event (a MissedLines) says the stream skipped lines because the client read too slowly", content(
            (RunLogs = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 403, description = "The caller lacks GET on the action, or is no member of the organization", body = ErrorBody),
        (status = 404, description = "No such organization, or no such run in flight or in the history", body = ErrorBody),
    ),
)]
pub async fn run_logs(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(ActionIdPath { id }): Path<ActionIdPath>,
    Path(RunIdPath { run_id }): Path<RunIdPath>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state
        .require_on_actions(&org, &caller, Verb::Get, Some(&id))
        .await?;
    let streamed = wants_event_stream(&headers);
    // In flight is looked at first: a run leaves that list only once it is recorded.
    if let Some(watch) = state.executor.live().watch(&org, &id, &run_id) {
        if streamed {
            return Ok(event_stream(watched(watch)));
        }
        let logs = watch.backlog;
        return Ok(Json(RunLogs {
            run_id,
            running: true,
            logs,
        })
        .into_response());
    }
    let run = state
        .meta
        .get_run(&org, &id, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id}")))?;
    if streamed {
        return Ok(event_stream(recorded(run)));
    }
    Ok(Json(RunLogs {
        run_id,
        running: false,
        logs: run.logs,
    })
    .into_response())
}

/// A manual run performed while its lines stream to the client: `log` events, then its
/// `result` or why it was not performed. The run goes on (and is recorded) if the client
/// leaves.
pub(super) fn streamed_run(state: Shared, request: RunRequest) -> Response {
    let handle = state.executor.register(&request);
    let events = handle.watch().events;
    let run = tokio::spawn(async move { state.executor.run_registered(request, handle).await });
    let ending = stream::once(async move {
        match run.await {
            Ok(Ok(report)) => result_event(report),
            Ok(Err(error)) => error_body_event(error.into()),
            Err(panicked) => error_body_event(ApiError::internal(panicked)),
        }
    });
    event_stream(lines_until_end(events).chain(ending))
}

/// The events of a run in flight: its lines so far, the lines that follow, and its end.
fn watched(watch: Watch) -> impl Stream<Item = Event> {
    let backlog = stream::iter(watch.backlog).map(|line| json_event(names::LOG, &line));
    let following = stream::unfold(Some(watch.events), |events| async move {
        let mut events = events?;
        let (event, more) = match events.recv().await {
            Ok(LiveEvent::Line(line)) => (json_event(names::LOG, &line), true),
            Ok(LiveEvent::Ended(run)) => (end_event(*run), false),
            Ok(LiveEvent::Failed(message)) => (
                json_event(names::ERROR, &RunNotPerformed { message }),
                false,
            ),
            Err(RecvError::Lagged(missed)) => (missed_event(missed), true),
            Err(RecvError::Closed) => return None,
        };
        Some((event, more.then_some(events)))
    });
    backlog.chain(following)
}

/// The `log` events of a run's lines until it ends (its end is told by the caller).
fn lines_until_end(events: broadcast::Receiver<LiveEvent>) -> BoxStream<'static, Event> {
    stream::unfold(events, |mut events| async move {
        match events.recv().await {
            Ok(LiveEvent::Line(line)) => Some((json_event(names::LOG, &line), events)),
            Err(RecvError::Lagged(missed)) => Some((missed_event(missed), events)),
            Ok(LiveEvent::Ended(_) | LiveEvent::Failed(_)) | Err(RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// The events of a recorded run: its lines, then its end.
fn recorded(mut run: Run) -> impl Stream<Item = Event> {
    let lines = std::mem::take(&mut run.logs);
    stream::iter(lines)
        .map(|line| json_event(names::LOG, &line))
        .chain(stream::once(async move { end_event(run) }))
}

fn end_event(run: Run) -> Event {
    json_event(names::END, &RunSummary::of(run))
}

fn result_event(report: RunReport) -> Event {
    json_event(names::RESULT, &RunAnswer::of(report, true))
}

fn error_body_event(error: ApiError) -> Event {
    json_event(names::ERROR, &error.body())
}

fn missed_event(missed: u64) -> Event {
    json_event(names::MISSED, &MissedLines { missed })
}

/// An event named `name` carrying `data` as JSON.
fn json_event(name: &'static str, data: &impl Serialize) -> Event {
    let json = serde_json::to_string(data).unwrap_or_else(|error| {
        tracing::error!(%error, "an event could not be written as JSON");
        "null".to_string()
    });
    Event::default().event(name).data(json)
}

/// `events` as a server-sent-events answer, kept alive while the run is quiet.
fn event_stream(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_stream_is_what_the_accept_header_asks_for() {
        let mut headers = HeaderMap::new();
        assert!(!wants_event_stream(&headers));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_event_stream(&headers));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json;q=0.5"),
        );
        assert!(wants_event_stream(&headers));
    }
}
