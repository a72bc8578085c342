//! Host calls: how the guest asks the host for what the sandbox does not give it directly
//! (an HTTP exchange, the action's durable state). One mechanism serves every operation:
//!
//! - `vivarium.host_call(op, ptr, len) -> i64` reads a marshalled request from the guest's
//!   memory, performs operation `op` (an async host function: the guest's fiber is suspended
//!   while the host waits, and the call's watchdog can drop the wait, which cancels it), and
//!   keeps the marshalled answer on the host. It returns the answer's length, or a negative
//!   [`CallStatus`].
//! - `vivarium.host_take(ptr, len) -> i32` copies the kept answer into a buffer the guest
//!   allocated for it, so that the answer counts against the call's memory cap; the host
//!   keeps nothing afterwards.
//!
//! The snapshot is taken with stubs of both that trap ([`add_trapping_stubs`]): nothing of
//! any call's host-call state exists when the image is made.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use vivarium_egress::{AuditRecord, CallEgress, ErrorCode, Failure};
use wasmtime::{Caller, Extern, Linker};

use crate::error::SandboxError;
use crate::output::CappedOutput;
use crate::protocol::{EGRESS_LOGGER, LogLine};
use crate::sandbox::CallState;
use crate::state::{StateFailure, StateSession, StateWrite};
use vivarium_marshal::{decode_exchange_request, encode_exchange_reply};

/// The import module of the host calls.
pub(crate) const HOST_MODULE: &str = "vivarium";
/// `host_call(op: i32, ptr: i32, len: i32) -> i64`.
const CALL: &str = "host_call";
/// `host_take(ptr: i32, len: i32) -> i32`.
const TAKE: &str = "host_take";

/// The operations, by number (the shim's `_vivarium.host_call` passes them through).
const OP_HTTP_SEND: i32 = 1;
/// A state operation (`vivarium.state`): JSON in, JSON out.
const OP_STATE: i32 = 2;

/// Fuel one state operation costs, so that a loop of them is bounded like any other work.
const FUEL_PER_STATE_OPERATION: u64 = 200_000;

/// Why a host call returned no answer (negative results of `host_call` and `host_take`).
#[repr(i64)]
enum CallStatus {
    /// No such operation.
    UnknownOperation = -1,
    /// The pointer and length do not lie inside the guest's memory.
    OutOfBounds = -2,
    /// `host_take` without an answer kept, or with a buffer of another size.
    NothingToTake = -3,
}

/// A call's share of the CPU, which it gives back while it waits on the network so that a
/// runnable call can use it (the service bounds running calls with it).
pub trait CpuSlot: Send + Sync + std::fmt::Debug {
    /// The call starts waiting: its slot may go to another call.
    fn release(&self);
    /// The call's answer is in: it waits for a slot again before the guest resumes.
    fn reacquire(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What one call's host calls keep: the call's egress, its CPU slot, its state session, the
/// answer not taken yet, the audit records, and the stderr stream the audit lines are placed
/// in.
#[derive(Default)]
pub(crate) struct HostCalls {
    egress: Option<CallEgress>,
    cpu: Option<Arc<dyn CpuSlot>>,
    state: Option<StateSession>,
    answer: Option<Vec<u8>>,
    audit: Vec<PlacedAudit>,
    stderr: Option<CappedOutput>,
}

/// An audit record and where in the guest's stderr it happened.
pub(crate) struct PlacedAudit {
    /// Bytes of stderr kept when the request was made.
    pub(crate) offset: usize,
    /// The log line for the run's logs.
    pub(crate) line: LogLine,
    /// The record itself, for the caller's metrics.
    pub(crate) record: AuditRecord,
}

impl HostCalls {
    /// The host calls of a call with `egress` (none: no network at all) whose guest writes
    /// its logs to `stderr`.
    pub(crate) fn new(
        egress: Option<CallEgress>,
        cpu: Option<Arc<dyn CpuSlot>>,
        state: Option<StateSession>,
        stderr: CappedOutput,
    ) -> Self {
        Self {
            egress,
            cpu,
            state,
            answer: None,
            audit: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The largest request the host copies out of the guest's memory: what the call's limits
    /// let through, plus room for the method, URL and framing (a request with no network is
    /// refused whatever its body, so it needs only that room).
    fn most_request_bytes(&self) -> usize {
        const FRAMING: usize = 64 * 1024;
        self.egress.as_ref().map_or(FRAMING, |egress| {
            let limits = egress.limits();
            limits.request_body_bytes + limits.header_bytes + FRAMING
        })
    }

    /// The audit records of the call, in order.
    pub(crate) fn take_audit(&mut self) -> Vec<PlacedAudit> {
        std::mem::take(&mut self.audit)
    }

    /// The call's state writes, in order, for the host to commit with the run.
    pub(crate) fn take_state_writes(&mut self) -> Vec<StateWrite> {
        self.state
            .take()
            .map(StateSession::into_writes)
            .unwrap_or_default()
    }

    /// The largest state request the host copies out of the guest's memory: a value at its
    /// quota, a key, and room for the framing.
    fn most_state_request_bytes(&self) -> usize {
        const FRAMING: usize = 4 * 1024;
        self.state.as_ref().map_or(FRAMING, |state| {
            usize::try_from(state.most_request_bytes()).unwrap_or(usize::MAX) + FRAMING
        })
    }
}

/// Adds the host calls to the linker of a call's instances.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> Result<(), SandboxError> {
    linker
        .func_wrap_async(
            HOST_MODULE,
            CALL,
            |mut caller: Caller<'_, CallState>, (op, ptr, len): (i32, i32, i32)| {
                Box::new(async move { host_call(&mut caller, op, ptr, len).await })
            },
        )
        .and_then(|linker| {
            linker.func_wrap(
                HOST_MODULE,
                TAKE,
                |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| {
                    host_take(&mut caller, ptr, len)
                },
            )
        })
        .map(drop)
        .map_err(|e| SandboxError::Setup(format!("linking the host calls: {e:#}")))
}

/// Adds stubs of the host calls that trap, for the linker that takes the snapshot: the
/// initialization must never make one.
pub(crate) fn add_trapping_stubs<T: 'static>(linker: &mut Linker<T>) -> Result<(), SandboxError> {
    linker
        .func_wrap(
            HOST_MODULE,
            CALL,
            |_: i32, _: i32, _: i32| -> wasmtime::Result<i64> {
                Err(wasmtime::Error::msg(
                    "host calls are not available while the snapshot is taken",
                ))
            },
        )
        .and_then(|linker| {
            linker.func_wrap(
                HOST_MODULE,
                TAKE,
                |_: i32, _: i32| -> wasmtime::Result<i32> {
                    Err(wasmtime::Error::msg(
                        "host calls are not available while the snapshot is taken",
                    ))
                },
            )
        })
        .map(drop)
        .map_err(|e| SandboxError::Setup(format!("linking the host-call stubs: {e:#}")))
}

async fn host_call(
    caller: &mut Caller<'_, CallState>,
    op: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i64> {
    let most = caller.data().host.most_request_bytes();
    let answer = match op {
        OP_HTTP_SEND if usize::try_from(len).is_ok_and(|len| len > most) => {
            refuse_unread(caller, len, most)
        }
        OP_HTTP_SEND => {
            let Some(request) = read_guest(caller, ptr, len) else {
                return Ok(CallStatus::OutOfBounds as i64);
            };
            http_send(caller, &request).await?
        }
        OP_STATE => {
            let most = caller.data().host.most_state_request_bytes();
            if usize::try_from(len).is_ok_and(|len| len > most) {
                state_answer(Err(StateFailure::Quota(format!(
                    "the state request is {len} bytes, over the {most} a value at its quota takes"
                ))))
            } else {
                let Some(request) = read_guest(caller, ptr, len) else {
                    return Ok(CallStatus::OutOfBounds as i64);
                };
                state_operation(caller, &request).await?
            }
        }
        _ => return Ok(CallStatus::UnknownOperation as i64),
    };
    let length = i64::try_from(answer.len()).unwrap_or(i64::MAX);
    caller.data_mut().host.answer = Some(answer);
    Ok(length)
}

fn host_take(caller: &mut Caller<'_, CallState>, ptr: i32, len: i32) -> i32 {
    let Some(answer) = caller.data_mut().host.answer.take() else {
        return CallStatus::NothingToTake as i32;
    };
    if usize::try_from(len).ok() != Some(answer.len()) {
        return CallStatus::NothingToTake as i32;
    }
    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory) else {
        return CallStatus::OutOfBounds as i32;
    };
    let written = usize::try_from(ptr)
        .ok()
        .and_then(|start| memory.write(&mut *caller, start, &answer).ok());
    match written {
        Some(()) => 0,
        None => CallStatus::OutOfBounds as i32,
    }
}

/// The `len` bytes at `ptr` in the guest's memory, if they lie inside it.
fn read_guest(caller: &mut Caller<'_, CallState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    memory.data(&*caller).get(start..end).map(<[u8]>::to_vec)
}

/// The answer to a request too large to copy out of the guest: refused unread, audited.
fn refuse_unread(caller: &mut Caller<'_, CallState>, len: i32, most: usize) -> Vec<u8> {
    let failure = Failure::new(
        ErrorCode::HttpRequestBodySize,
        "request_too_large",
        format!(
            "the request is {len} bytes, over the {most} this call's limits let through (egress request_body_bytes and header_bytes)"
        ),
    );
    let record = AuditRecord {
        method: "?".into(),
        origin: "<not read>".into(),
        status: None,
        traffic: Default::default(),
        elapsed: std::time::Duration::ZERO,
        rule: None,
        failure: Some(failure.clone()),
    };
    place_audit(caller, record);
    encode_exchange_reply(&Err(failure))
}

/// One HTTP exchange: charged in fuel, decided by the call's policy, audited.
async fn http_send(
    caller: &mut Caller<'_, CallState>,
    request: &[u8],
) -> wasmtime::Result<Vec<u8>> {
    let started = Instant::now();
    let request = match decode_exchange_request(request) {
        Ok(request) => request,
        Err(problem) => {
            let failure = Failure::new(
                ErrorCode::InternalError,
                "bad_request",
                format!("the guest's request is malformed: {problem}"),
            );
            return Ok(encode_exchange_reply(&Err(failure)));
        }
    };
    let Some(mut egress) = caller.data_mut().host.egress.take() else {
        let failure = Failure::new(
            ErrorCode::HttpRequestDenied,
            "no_network",
            "this action has no network: give it allowed hosts (the upload's allowed_hosts field, PUT /api/{org}/actions/{id}, or vivarium run --allow-host)",
        );
        let record = AuditRecord {
            method: request.method.clone(),
            origin: vivarium_egress::origin_of(&request.url),
            status: None,
            traffic: Default::default(),
            elapsed: started.elapsed(),
            rule: None,
            failure: Some(failure.clone()),
        };
        place_audit(caller, record);
        return Ok(encode_exchange_reply(&Err(failure)));
    };
    let fuel = caller.get_fuel()?;
    caller.set_fuel(fuel.saturating_sub(egress.fuel_per_request()))?;
    let cpu = caller.data().host.cpu.clone();
    if let Some(cpu) = &cpu {
        cpu.release();
    }
    let (reply, record) = egress.exchange(&request).await;
    if let Some(cpu) = &cpu {
        cpu.reacquire().await;
    }
    caller.data_mut().host.egress = Some(egress);
    place_audit(caller, record);
    Ok(encode_exchange_reply(&reply))
}

/// A state operation as the guest's `vivarium.state` sends it.
#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum StateRequest {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: serde_json::Value,
        ttl: Option<String>,
        if_version: Option<i64>,
    },
    Incr {
        key: String,
        delta: i64,
        ttl: Option<String>,
    },
    Delete {
        key: String,
        if_version: Option<i64>,
    },
    Keys {
        prefix: String,
    },
}

/// One state operation: charged in fuel, performed on the call's session (reads go to the
/// store; the CPU slot is kept, as a store read is short).
async fn state_operation(
    caller: &mut Caller<'_, CallState>,
    request: &[u8],
) -> wasmtime::Result<Vec<u8>> {
    let fuel = caller.get_fuel()?;
    caller.set_fuel(fuel.saturating_sub(FUEL_PER_STATE_OPERATION))?;
    let request: StateRequest = match serde_json::from_slice(request) {
        Ok(request) => request,
        Err(problem) => {
            let failure =
                StateFailure::Invalid(format!("the state request is malformed: {problem}"));
            return Ok(state_answer(Err(failure)));
        }
    };
    let Some(mut session) = caller.data_mut().host.state.take() else {
        let failure = StateFailure::Unavailable(
            "this call has no state: state is kept for actions the service runs, and by vivarium run".into(),
        );
        return Ok(state_answer(Err(failure)));
    };
    let answer = perform(&mut session, request).await;
    caller.data_mut().host.state = Some(session);
    Ok(state_answer(answer))
}

/// Performs `request` on `session`; answers what the guest's function returns.
async fn perform(
    session: &mut StateSession,
    request: StateRequest,
) -> Result<serde_json::Value, StateFailure> {
    use serde_json::to_value;
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|e| StateFailure::Invalid(e.to_string()))
    };
    match request {
        StateRequest::Get { key } => json(to_value(session.get(&key).await?)),
        StateRequest::Set {
            key,
            value,
            ttl,
            if_version,
        } => {
            let ttl = parse_ttl(ttl.as_deref())?;
            json(to_value(session.set(&key, value, ttl, if_version).await?))
        }
        StateRequest::Incr { key, delta, ttl } => {
            let ttl = parse_ttl(ttl.as_deref())?;
            json(to_value(session.incr(&key, delta, ttl).await?))
        }
        StateRequest::Delete { key, if_version } => {
            json(to_value(session.delete(&key, if_version).await?))
        }
        StateRequest::Keys { prefix } => json(to_value(session.keys(&prefix).await?)),
    }
}

/// A time to live such as `90s` or `1h`.
fn parse_ttl(ttl: Option<&str>) -> Result<Option<std::time::Duration>, StateFailure> {
    ttl.map(|text| crate::state::parse_ttl(text).map_err(StateFailure::Invalid))
        .transpose()
}

/// The guest's answer to a state operation: `{"ok": value}` or `{"error": {"kind", "message"}}`.
fn state_answer(answer: Result<serde_json::Value, StateFailure>) -> Vec<u8> {
    let document = match answer {
        Ok(value) => serde_json::json!({ "ok": value }),
        Err(failure) => {
            let kind = match failure {
                StateFailure::Quota(_) => "quota",
                StateFailure::Invalid(_) => "invalid",
                StateFailure::Unavailable(_) => "unavailable",
            };
            serde_json::json!({ "error": { "kind": kind, "message": failure.to_string() } })
        }
    };
    document.to_string().into_bytes()
}

/// Keeps `record` with its place in the guest's stderr, and tells the host's own log.
fn place_audit(caller: &mut Caller<'_, CallState>, record: AuditRecord) {
    let message = record.message();
    let level = if record.failure.is_some() {
        "WARNING"
    } else {
        "INFO"
    };
    tracing::debug!(outcome = record.outcome(), %message, "egress");
    let host = &mut caller.data_mut().host;
    let offset = host.stderr.as_ref().map_or(0, CappedOutput::kept_len);
    let line = LogLine {
        level: level.into(),
        logger: EGRESS_LOGGER.into(),
        message,
        time: Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string()),
        exc: None,
    };
    host.audit.push(PlacedAudit {
        offset,
        line,
        record,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Engine, Module, Store};

    #[test]
    fn the_snapshot_linker_traps_any_host_call() {
        let engine = Engine::default();
        let wasm = wat::parse_str(
            r#"(module
                (import "vivarium" "host_call" (func $call (param i32 i32 i32) (result i64)))
                (import "vivarium" "host_take" (func $take (param i32 i32) (result i32)))
                (func (export "call") (result i64) (call $call (i32.const 1) (i32.const 0) (i32.const 0)))
                (func (export "take") (result i32) (call $take (i32.const 0) (i32.const 0))))"#,
        )
        .unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut linker: Linker<()> = Linker::new(&engine);
        add_trapping_stubs(&mut linker).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let call = instance
            .get_typed_func::<(), i64>(&mut store, "call")
            .unwrap();
        let error = call.call(&mut store, ()).unwrap_err();
        assert!(format!("{error:#}").contains("not available while the snapshot is taken"));
        let take = instance
            .get_typed_func::<(), i32>(&mut store, "take")
            .unwrap();
        assert!(take.call(&mut store, ()).is_err());
    }
}
