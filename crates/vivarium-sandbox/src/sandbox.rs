//! One call: a fresh store and instance of the interpreter per call, with the action folder
//! mounted read-only, only the action's environment, and fuel, memory and time capped.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::env::ActionEnv;
use crate::error::SandboxError;
use crate::limits::{Limits, human_bytes};
use crate::outcome::{Ending, Evidence, Outcome, ResultShape, classify};
use crate::protocol::{Input, RUNNER_SOURCE, encode_request, parse_logs};

/// Where the action's folder appears inside the guest.
pub const ACTION_MOUNT: &str = "/action";
/// Where an action's installed dependency layer appears inside the guest (on `sys.path`).
pub const DEPENDENCY_MOUNT: &str = "/deps";
/// How often the epoch advances; the time limit is enforced to about this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How long past the time limit the host waits for a guest blocked in a host call.
const WATCHDOG_GRACE: Duration = Duration::from_millis(250);
/// Room in the stdout cap for the envelope around the result.
const ENVELOPE_BYTES: usize = 64;
/// Most table elements an instance may grow to (the interpreter starts with 5,903).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The wasmtime engine every sandboxed call uses: fuel metering and epoch interruption on.
/// Compiled modules are tied to this configuration, so build the compile cache with it.
pub fn new_engine() -> Result<Engine, SandboxError> {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|e| SandboxError::Setup(format!("{e:#}")))
}

/// Checks that `input` fits `limits` before anything else is done for a call (the sandbox
/// checks again when it runs).
pub fn check_input_size(input: &Input, limits: &Limits) -> Result<(), SandboxError> {
    request_within_limit(encode_request(input), limits).map(drop)
}

/// The encoded request, or the error saying how far over the input limit it is.
fn request_within_limit(request: Vec<u8>, limits: &Limits) -> Result<Vec<u8>, SandboxError> {
    let size = request.len();
    if size > limits.input_bytes {
        return Err(SandboxError::InputTooLarge {
            size: human_bytes(size as u64),
            limit: human_bytes(limits.input_bytes as u64),
        });
    }
    Ok(request)
}

/// One request to run an action.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The folder holding `main.py`, mounted read-only at `/action`.
    pub action_dir: &'a Path,
    /// What `main` is called with.
    pub input: Input,
    /// The action's environment variables (and nothing of the host's).
    pub env: &'a ActionEnv,
    /// The caps for this call.
    pub limits: Limits,
    /// What the trigger expects `main` to return.
    pub shape: ResultShape,
    /// The action's installed dependency layer, mounted read-only at `/deps`, if it has one.
    pub dependency_layer: Option<&'a Path>,
}

/// The interpreter, linked and ready to be instantiated afresh for each call.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    instance_pre: InstancePre<CallState>,
    instantiations: Arc<AtomicU64>,
}

struct CallState {
    wasi: WasiP1Ctx,
    memory: MemoryCap,
}

impl Sandbox {
    /// Links WASI into `module` (compiled for `engine`, see [`new_engine`]) and starts the
    /// clock that enforces time limits; the clock stops when the engine is dropped.
    pub fn new(engine: Engine, module: &Module) -> Result<Self, SandboxError> {
        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state| &mut state.wasi)
            .map_err(|e| SandboxError::Setup(format!("{e:#}")))?;
        let instance_pre = linker.instantiate_pre(module).map_err(|e| {
            SandboxError::Setup(format!("the interpreter module cannot be linked: {e:#}"))
        })?;
        start_epoch_clock(&engine);
        Ok(Self {
            engine,
            instance_pre,
            instantiations: Arc::default(),
        })
    }

    /// How many guest instances this sandbox (and its clones) has created: one per call that
    /// got past validation. A run refused before that leaves it unchanged.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    /// Runs one call to completion on the current thread and classifies how it ended.
    /// Blocks: call it from a blocking context (a plain thread, or `spawn_blocking`).
    pub fn run(&self, call: &Call<'_>) -> Result<Outcome, SandboxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SandboxError::Setup(format!("no async runtime for the call: {e}")))?;
        runtime.block_on(self.run_async(call))
    }

    /// Runs one call; the guest executes on the calling task and yields at every epoch tick.
    pub async fn run_async(&self, call: &Call<'_>) -> Result<Outcome, SandboxError> {
        call.limits.validate()?;
        let request = request_within_limit(encode_request(&call.input), &call.limits)?;
        let stdout = crate::output::CappedOutput::new(call.limits.result_bytes + ENVELOPE_BYTES);
        let stderr = crate::output::CappedOutput::new(call.limits.log_bytes);
        let wasi = wasi_context(call, request, &stdout, &stderr)?;
        let memory = MemoryCap::new(call.limits.memory_bytes);
        let memory_refused = memory.refused.clone();
        let mut store = Store::new(&self.engine, CallState { wasi, memory });
        store.limiter(|state| &mut state.memory);
        store
            .set_fuel(call.limits.fuel)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let deadline = Instant::now() + call.limits.timeout;
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);

        let started = Instant::now();
        let ending = self
            .execute(&mut store, call.limits.timeout + WATCHDOG_GRACE)
            .await;
        let duration = started.elapsed();

        let fuel_used = call
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let peak_memory_bytes = store.data().memory.peak;
        let (stdout_bytes, stdout_dropped) = stdout.take();
        let (stderr_bytes, stderr_dropped) = stderr.take();
        let (kind, result, error) = classify(Evidence {
            ending,
            stdout: stdout_bytes,
            stdout_dropped,
            memory_refused: memory_refused.load(Ordering::Relaxed),
            limits: call.limits,
            shape: call.shape,
        });
        Ok(Outcome {
            kind,
            result,
            error,
            logs: parse_logs(&stderr_bytes, stderr_dropped, call.limits.log_bytes),
            logs_truncated: stderr_dropped > 0,
            fuel_used,
            peak_memory_bytes,
            duration,
        })
    }

    async fn execute(&self, store: &mut Store<CallState>, watchdog: Duration) -> Ending {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let run = async {
            let instance = self.instance_pre.instantiate_async(&mut *store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            start.call_async(&mut *store, ()).await
        };
        match tokio::time::timeout(watchdog, run).await {
            Err(_) => Ending::WatchdogExpired,
            Ok(Ok(())) => Ending::Finished(None),
            Ok(Err(error)) if is_clean_exit(&error) => Ending::Finished(None),
            Ok(Err(error)) => Ending::Finished(Some(error)),
        }
    }
}

fn is_clean_exit(error: &wasmtime::Error) -> bool {
    matches!(error.downcast_ref::<wasmtime_wasi::I32Exit>(), Some(exit) if exit.0 == 0)
}

fn wasi_context(
    call: &Call<'_>,
    request: Vec<u8>,
    stdout: &crate::output::CappedOutput,
    stderr: &crate::output::CappedOutput,
) -> Result<WasiP1Ctx, SandboxError> {
    let mut args = vec![
        "python",
        "-I",
        "-S",
        "-B",
        "-c",
        RUNNER_SOURCE,
        ACTION_MOUNT,
    ];
    if call.dependency_layer.is_some() {
        args.push(DEPENDENCY_MOUNT);
    }
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&args)
        .stdin(MemoryInputPipe::new(request))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    for (key, value) in call.env.iter() {
        builder.env(key, value);
    }
    builder
        .preopened_dir(call.action_dir, ACTION_MOUNT, FsPerms::ReadOnly)
        .map_err(|e| SandboxError::ActionFolder {
            path: call.action_dir.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
    if let Some(layer) = call.dependency_layer {
        builder
            .preopened_dir(layer, DEPENDENCY_MOUNT, FsPerms::ReadOnly)
            .map_err(|e| SandboxError::ActionFolder {
                path: layer.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
    }
    Ok(builder.build_p1())
}

/// Advances the engine's epoch every tick until the engine is gone.
fn start_epoch_clock(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("vivarium-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::error!(%error, "the epoch clock did not start; time limits rely on the watchdog"));
}

/// Caps linear memory, remembers the peak, and notes whether a grow was refused so that the
/// call is reported as out of memory whatever the guest made of the refusal.
struct MemoryCap {
    limit: u64,
    peak: u64,
    refused: Arc<AtomicBool>,
}

impl MemoryCap {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            peak: 0,
            refused: Arc::default(),
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.refused.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
