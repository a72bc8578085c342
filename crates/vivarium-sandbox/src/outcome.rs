//! How a call ended, classified into kinds a user (and a dashboard) can act on.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vivarium_egress::AuditRecord;
use wasmtime::Trap;
use wasmtime_wasi::I32Exit;

use crate::limits::{Limits, human_bytes};
use crate::protocol::{
    GuestDocument, GuestError, LogLine, MAX_NESTING, ProtocolError, parse_document,
};
use crate::scratch::ScratchUsage;
use crate::state::StateWrite;

/// The class of a call's ending. Each is reported under its own name (its serde wire name,
/// also its `Display`) and CLI exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// `main` returned a valid result.
    Ok,
    /// The action's code raised an exception (at import or in `main`).
    ScriptError,
    /// The action does not have the shape Vivarium runs: no `main`, not callable, wrong arity.
    BadAction,
    /// `main` returned something that is not JSON, or not the records the trigger expects.
    BadResult,
    /// The result document is larger than the result limit.
    ResultTooLarge,
    /// The call used all its fuel.
    OutOfFuel,
    /// The call asked for more memory than its limit.
    OutOfMemory,
    /// The call ran longer than its time limit.
    Timeout,
    /// The interpreter itself failed: a trap, a crash, or a broken guest protocol.
    RuntimeFault,
}

impl OutcomeKind {
    /// Every kind, in a stable order (for `--help` and metrics).
    pub const ALL: [OutcomeKind; 9] = [
        Self::Ok,
        Self::ScriptError,
        Self::BadAction,
        Self::BadResult,
        Self::ResultTooLarge,
        Self::OutOfFuel,
        Self::OutOfMemory,
        Self::Timeout,
        Self::RuntimeFault,
    ];
}

serde_plain::derive_display_from_serialize!(OutcomeKind);

/// What a failed call reports: the Python exception type (or a Vivarium name for limits),
/// a message a user understands, and the user's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActionError {
    /// `KeyError`, `ContractError`, `OutOfFuel`, ...
    #[serde(rename = "type")]
    pub type_name: String,
    /// What happened, in words.
    pub message: String,
    /// The user's frames, outermost first; empty when there are none.
    pub traceback: Vec<String>,
}

impl ActionError {
    fn host(type_name: &str, message: String) -> Self {
        Self {
            type_name: type_name.into(),
            message,
            traceback: Vec::new(),
        }
    }
}

impl From<GuestError> for ActionError {
    fn from(error: GuestError) -> Self {
        Self {
            type_name: error.type_name,
            message: error.message,
            traceback: error.traceback,
        }
    }
}

/// What records a trigger expects back from `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultShape {
    /// A list of JSON objects (the Logs page and manual runs replace records with them).
    Records,
    /// Anything JSON (alerts and schedules ignore or store the value as is).
    Any,
}

/// The full account of one call.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// How it ended.
    pub kind: OutcomeKind,
    /// What `main` returned, when `kind` is `Ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when `kind` is not `Ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// Log records, in order, capped by the log limit.
    pub logs: Vec<LogLine>,
    /// Whether log output was cut at the limit.
    pub logs_truncated: bool,
    /// Fuel consumed, interpreter start-up included.
    pub fuel_used: u64,
    /// Largest linear memory the call reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall-clock time from instantiation to the end of the call.
    #[serde(serialize_with = "serialize_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// The call's outbound requests, allowed or refused, in order (their audit lines are in
    /// `logs`).
    #[serde(skip)]
    pub egress: Vec<AuditRecord>,
    /// The call's writes to its action's state, in order, for the host to commit when the
    /// run succeeded.
    #[serde(skip)]
    pub state_writes: Vec<StateWrite>,
    /// What the call left in its scratch folder (`/tmp`) when it ended.
    pub scratch: ScratchUsage,
}

fn serialize_millis<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// How the guest's execution ended, as the host saw it.
pub(crate) enum Ending {
    /// `_start` returned or the guest exited: the error, if any, from wasmtime.
    Finished(Option<wasmtime::Error>),
    /// The host's wall-clock watchdog fired while the guest was blocked (for example sleeping).
    WatchdogExpired,
}

/// What the guest answered.
pub(crate) enum Reply {
    /// What it wrote on stdout (its result document, if all went well), and how many bytes
    /// past the cap were dropped.
    Written { bytes: Vec<u8>, dropped: u64 },
    /// The result the host read from its marshal form (see [`crate::marshal`]).
    Read(Value),
}

/// Everything the classifier looks at.
pub(crate) struct Evidence {
    pub ending: Ending,
    pub reply: Reply,
    pub memory_refused: bool,
    pub limits: Limits,
    pub shape: ResultShape,
}

/// Decides the kind, result and error of a call from what the host observed.
pub(crate) fn classify(evidence: Evidence) -> (OutcomeKind, Option<Value>, Option<ActionError>) {
    let limits = evidence.limits;
    let failure = |kind, error| (kind, None, Some(error));
    let trap = match &evidence.ending {
        Ending::WatchdogExpired => return failure(OutcomeKind::Timeout, timeout_error(&limits)),
        Ending::Finished(Some(error)) => error.downcast_ref::<Trap>().copied(),
        Ending::Finished(None) => None,
    };
    match trap {
        Some(Trap::OutOfFuel) => return failure(OutcomeKind::OutOfFuel, fuel_error(&limits)),
        Some(Trap::Interrupt) => return failure(OutcomeKind::Timeout, timeout_error(&limits)),
        _ => {}
    }
    if let Reply::Written { dropped: 1.., .. } = evidence.reply {
        let message = format!(
            "the action's result is larger than the {} result limit",
            human_bytes(limits.result_bytes as u64)
        );
        return failure(
            OutcomeKind::ResultTooLarge,
            ActionError::host("ResultTooLarge", message),
        );
    }
    let document = match evidence.reply {
        Reply::Read(value) => Ok(GuestDocument::Success(value)),
        Reply::Written { bytes, .. } => parse_document(&bytes),
    };
    if evidence.memory_refused && !matches!(document, Ok(GuestDocument::Success(_))) {
        return failure(OutcomeKind::OutOfMemory, memory_error(&limits));
    }
    match (document, &evidence.ending) {
        (Ok(GuestDocument::Success(value)), _) => check_shape(value, evidence.shape),
        (Ok(GuestDocument::Failure(error)), _) => classify_guest_error(error),
        (Err(ProtocolError::TooDeep), _) => failure(
            OutcomeKind::BadResult,
            ActionError::host(
                "ResultTooDeep",
                format!(
                    "main() returned a value nested deeper than {MAX_NESTING} levels; flatten it"
                ),
            ),
        ),
        (Err(ProtocolError::Malformed(protocol)), Ending::Finished(Some(error))) => {
            failure(OutcomeKind::RuntimeFault, fault_error(error, protocol))
        }
        (Err(ProtocolError::Malformed(protocol)), _) => failure(
            OutcomeKind::RuntimeFault,
            ActionError::host("ProtocolError", protocol),
        ),
    }
}

fn classify_guest_error(error: GuestError) -> (OutcomeKind, Option<Value>, Option<ActionError>) {
    let kind = match error.phase.as_str() {
        "contract" => OutcomeKind::BadAction,
        "result" => OutcomeKind::BadResult,
        _ => OutcomeKind::ScriptError,
    };
    (kind, None, Some(error.into()))
}

fn check_shape(
    value: Value,
    shape: ResultShape,
) -> (OutcomeKind, Option<Value>, Option<ActionError>) {
    if shape == ResultShape::Any {
        return (OutcomeKind::Ok, Some(value), None);
    }
    let problem = match &value {
        Value::Array(items) => items
            .iter()
            .position(|item| !item.is_object())
            .map(|index| {
                format!(
                    "main() must return a list of dicts (records); item {index} is {}",
                    json_type(&items[index])
                )
            }),
        other => Some(format!(
            "main() must return a list of dicts (records); it returned {}",
            json_type(other)
        )),
    };
    match problem {
        None => (OutcomeKind::Ok, Some(value), None),
        Some(message) => (
            OutcomeKind::BadResult,
            None,
            Some(ActionError::host("BadResultShape", message)),
        ),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a str",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

fn timeout_error(limits: &Limits) -> ActionError {
    ActionError::host(
        "Timeout",
        format!(
            "the action ran longer than its {:?} time limit",
            limits.timeout
        ),
    )
}

fn fuel_error(limits: &Limits) -> ActionError {
    ActionError::host(
        "OutOfFuel",
        format!(
            "the action used all of its {} units of fuel (CPU work); it may loop forever, or needs a higher fuel limit",
            limits.fuel
        ),
    )
}

fn memory_error(limits: &Limits) -> ActionError {
    ActionError::host(
        "OutOfMemory",
        format!(
            "the action used more than {} of memory",
            human_bytes(limits.memory_bytes)
        ),
    )
}

fn fault_error(error: &wasmtime::Error, protocol: String) -> ActionError {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return ActionError::host(
            "InterpreterExit",
            format!(
                "the interpreter exited with status {} before reporting a result ({protocol})",
                exit.0
            ),
        );
    }
    let message = match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow | Trap::MemoryOutOfBounds) => format!(
            "the interpreter crashed ({}); this usually means recursion too deep for the interpreter's stack",
            error.root_cause()
        ),
        _ => format!("the interpreter failed: {error:#}"),
    };
    ActionError::host("RuntimeFault", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(stdout: &str) -> Evidence {
        Evidence {
            ending: Ending::Finished(None),
            reply: Reply::Written {
                bytes: stdout.as_bytes().to_vec(),
                dropped: 0,
            },
            memory_refused: false,
            limits: Limits::DEFAULT,
            shape: ResultShape::Records,
        }
    }

    #[test]
    fn records_are_ok() {
        let (kind, result, _) = classify(evidence(r#"{"ok": true, "result": [{"a": 1}]}"#));
        assert_eq!(kind, OutcomeKind::Ok);
        assert_eq!(result, Some(serde_json::json!([{"a": 1}])));
    }

    #[test]
    fn a_non_list_is_a_bad_result_when_records_are_expected() {
        let (kind, _, error) = classify(evidence(r#"{"ok": true, "result": "text"}"#));
        assert_eq!(kind, OutcomeKind::BadResult);
        assert!(error.unwrap().message.contains("returned a str"));
    }

    #[test]
    fn anything_goes_when_any_shape_is_expected() {
        let mut evidence = evidence(r#"{"ok": true, "result": 42}"#);
        evidence.shape = ResultShape::Any;
        assert_eq!(classify(evidence).0, OutcomeKind::Ok);
    }

    #[test]
    fn a_refused_grow_wins_over_the_guest_memory_error() {
        let mut evidence = evidence(
            r#"{"ok": false, "error": {"phase": "call", "type": "MemoryError", "message": "", "traceback": []}}"#,
        );
        evidence.memory_refused = true;
        let (kind, _, error) = classify(evidence);
        assert_eq!(kind, OutcomeKind::OutOfMemory);
        assert_eq!(
            error.unwrap().message,
            "the action used more than 256 MiB of memory"
        );
    }

    #[test]
    fn an_overflowing_result_is_too_large() {
        let mut evidence = evidence("{");
        evidence.reply = Reply::Written {
            bytes: b"{".to_vec(),
            dropped: 10,
        };
        assert_eq!(classify(evidence).0, OutcomeKind::ResultTooLarge);
    }

    #[test]
    fn a_result_read_from_its_marshal_form_is_checked_like_a_document() {
        let mut evidence = evidence("");
        evidence.reply = Reply::Read(serde_json::json!([{"a": 1}, 2]));
        let (kind, _, error) = classify(evidence);
        assert_eq!(kind, OutcomeKind::BadResult);
        assert!(error.unwrap().message.contains("item 1 is a number"));
    }

    #[test]
    fn guest_phases_map_to_kinds() {
        for (phase, kind) in [
            ("contract", OutcomeKind::BadAction),
            ("result", OutcomeKind::BadResult),
            ("call", OutcomeKind::ScriptError),
            ("import", OutcomeKind::ScriptError),
        ] {
            let doc = format!(
                r#"{{"ok": false, "error": {{"phase": "{phase}", "type": "X", "message": "m"}}}}"#
            );
            assert_eq!(classify(evidence(&doc)).0, kind, "{phase}");
        }
    }

    #[test]
    fn traps_map_to_limits() {
        let mut fuel = evidence("");
        fuel.ending = Ending::Finished(Some(wasmtime::Error::new(Trap::OutOfFuel)));
        assert_eq!(classify(fuel).0, OutcomeKind::OutOfFuel);
        let mut interrupt = evidence("");
        interrupt.ending = Ending::Finished(Some(wasmtime::Error::new(Trap::Interrupt)));
        assert_eq!(classify(interrupt).0, OutcomeKind::Timeout);
        let mut watchdog = evidence("");
        watchdog.ending = Ending::WatchdogExpired;
        assert_eq!(classify(watchdog).0, OutcomeKind::Timeout);
    }

    #[test]
    fn a_silent_crash_is_a_runtime_fault() {
        let mut crash = evidence("");
        crash.ending = Ending::Finished(Some(wasmtime::Error::new(Trap::MemoryOutOfBounds)));
        let (kind, _, error) = classify(crash);
        assert_eq!(kind, OutcomeKind::RuntimeFault);
        assert!(error.unwrap().message.contains("recursion"));
    }
}
