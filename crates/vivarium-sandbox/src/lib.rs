//! One sandboxed action call: CPython on WASI under wasmtime, with the guest protocol, the
//! per-call limits and the classification of how the call ended.
//!
//! The host stays unharmed whatever the guest does: every limit ends the call with its own
//! [`OutcomeKind`], and the guest sees only its read-only action folder, a scratch `/tmp` of
//! its own (capped, and removed when the call ends) and its own environment variables.

mod bytecode;
mod env;
mod error;
mod host_call;
mod limits;
mod live_logs;
mod outcome;
mod output;
mod pool;
mod prepare;
mod profile;
mod protocol;
mod sandbox;
mod scratch;
mod snapshot;
mod state;
mod working_set;

pub use bytecode::BYTECODE_MOUNT;
pub use env::{ActionEnv, ORIGIN_CLUSTER_TOKEN, ORIGIN_CLUSTER_URL, is_valid_key};
pub use error::SandboxError;
pub use host_call::CpuSlot;
pub use limits::{Limits, human_bytes};
pub use live_logs::LogSink;
pub use outcome::{ActionError, Outcome, OutcomeKind, ResultShape};
pub use prepare::{PrepareError, PrepareOptions, RuntimeChoice, prepare};
pub use profile::Profile;
pub use protocol::{Input, LogLine, RUNNER_SOURCE};
pub use sandbox::{
    ACTION_MOUNT, Call, DEPENDENCY_MOUNT, Sandbox, check_input_size, new_engine, new_pooling_engine,
};
pub use scratch::{SCRATCH_MOUNT, ScratchUsage};
pub use snapshot::{STDLIB_MOUNT, ensure_snapshot};
pub use state::{
    StateAccess, StateEntry, StateFailure, StateFuture, StateQuotas, StateReader, StateSession,
    StateUsage, StateWrite, parse_ttl, value_bytes,
};
