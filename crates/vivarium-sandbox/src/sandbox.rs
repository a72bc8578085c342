//! One call: a fresh store and instance of the interpreter per call, with the action folder
//! mounted read-only, only the action's environment, and fuel, memory and time capped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use vivarium_egress::Egress;

use crate::bytecode::{BytecodeCache, COMPILE_LIMITS};
use crate::env::ActionEnv;
use crate::error::SandboxError;
use crate::host_call::{self, CpuSlot, HostCalls};
use crate::limits::{Limits, human_bytes};
use crate::live_logs::LogSink;
use crate::outcome::{Ending, Evidence, Outcome, Reply, ResultShape, classify};
use crate::output::CappedOutput;
use crate::pool::{ReactorExports, WarmPool};
use crate::protocol::{
    Input, RUNNER_SOURCE, ReplyForm, RequestFlags, compile_request, guest_request, parse_logs,
    request_json_len,
};
use crate::scratch::{self, SCRATCH_MOUNT, ScratchFolder, ScratchGuard, ScratchUsage};
use crate::snapshot::{MOUNTS_IN_ORDER, empty_dir};
use crate::state::StateAccess;
use vivarium_marshal::{MARSHAL_TAG, decode_result};

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
/// The envelope of a successful result document, around the result.
const SUCCESS_ENVELOPE: &str = r#"{"ok":true,"result":}"#;
/// The host stack the guest's C code may use: the 16 MiB CPython's own WASI build runs its
/// tests with, so that deep Python recursion ends as `RecursionError`, not as a trap.
const WASM_STACK_BYTES: usize = 16 << 20;
/// What the host itself needs on the stack an async call runs on, beyond the guest's share.
const ASYNC_STACK_HEADROOM: usize = 1 << 20;
/// How much of a finished instance's memory, table and stack stays mapped for the next
/// instance in its slot where Linux has `PAGEMAP_SCAN` (6.7 and later): restored to the
/// snapshot's bytes (only the pages the call dirtied) instead of being unmapped, so the next
/// call does not page-fault its way back in. Without it wasmtime would copy back this many
/// bytes of every slot whether the call touched them or not, so nothing is kept.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;
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

/// The engine of the pre-initialized interpreter: as [`new_engine`], plus the pooling
/// allocator with copy-on-write memory images, sized for `instances` live at once (the warm
/// pool and the calls running) of at most the largest memory a call may be given.
pub fn new_pooling_engine(instances: u32) -> Result<Engine, SandboxError> {
    let keep_resident = if PoolingAllocationConfig::is_pagemap_scan_available() {
        KEEP_RESIDENT_BYTES
    } else {
        0
    };
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances)
        .max_memory_size(usize::try_from(Limits::MAX.memory_bytes).unwrap_or(usize::MAX))
        .table_elements(MAX_TABLE_ELEMENTS)
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident)
        .async_stack_keep_resident(keep_resident);
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(WASM_STACK_BYTES);
    config.async_stack_size(WASM_STACK_BYTES + ASYNC_STACK_HEADROOM);
    config.memory_init_cow(true);
    // Fill the function table entry by entry as calls use them. Filling all 5,903 entries
    // when an instance is made (in the warm pool's thread) kept that work off the call's
    // path, but every instance paid for entries its call never used: the warm pool's thread
    // took 7% of the service's CPU at concurrency 8 (14% with trivial calls), mostly for
    // that, and 1-2% without it (issue 19). On two cores the whole cost is what counts:
    // trivial runs at concurrency 8 went from about 690 to 800 per second, and the bare
    // call did not measurably change.
    config.table_lazy_init(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).map_err(|e| SandboxError::Setup(format!("{e:#}")))
}

/// Checks that `input` fits `limits` before anything else is done for a call (the sandbox
/// checks again when it runs).
pub fn check_input_size(input: &Input, limits: &Limits) -> Result<(), SandboxError> {
    let size = request_json_len(input);
    if size > limits.input_bytes {
        return Err(SandboxError::InputTooLarge {
            size: human_bytes(size as u64),
            limit: human_bytes(limits.input_bytes as u64),
        });
    }
    Ok(())
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
    /// Where the action may send requests; `None` means no network at all.
    pub egress: Option<&'a Egress>,
    /// The CPU slot the call holds, given back while it waits on the network; `None` when
    /// the caller does not bound running calls.
    pub cpu_slot: Option<Arc<dyn CpuSlot>>,
    /// The action's durable state; `None`: `vivarium.state` raises that there is none.
    pub state: Option<StateAccess>,
    /// Where the call's log lines go as the guest writes them, for watching it live; `None`
    /// when nobody watches (the recorded logs hold them either way).
    pub log_sink: Option<Arc<dyn LogSink>>,
}

/// The interpreter, linked and ready to be instantiated afresh for each call.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    flavor: Flavor,
    instantiations: Arc<AtomicU64>,
}

/// How a call gets its fresh instance and starts it.
#[derive(Clone)]
enum Flavor {
    /// The pinned command-style interpreter: a new instance runs `_start`, which starts
    /// CPython and the runner given on its command line.
    Command(InstancePre<CallState>),
    /// The pre-initialized snapshot: a new instance from the warm pool runs `vivarium_run`.
    Snapshot {
        pool: Arc<WarmPool>,
        /// The standard library mounted at [`STDLIB_MOUNT`](crate::STDLIB_MOUNT).
        stdlib: PathBuf,
        /// An empty folder, mounted at `/deps` for an action without a layer and at
        /// `/pycache` for one without bytecode.
        empty: PathBuf,
        /// The bytecode compiled for each action, mounted at `/pycache`.
        bytecode: BytecodeCache,
    },
}

/// What one instance's store holds: its WASI context, its memory cap, its host calls and
/// the guard over its scratch folder.
pub(crate) struct CallState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) memory: MemoryCap,
    pub(crate) host: HostCalls,
    pub(crate) scratch: ScratchGuard,
}

impl CallState {
    /// A store's state before its call is known: no mounts, no cap on memory, no host calls.
    pub(crate) fn unassigned() -> Self {
        Self {
            wasi: WasiCtxBuilder::new().build_p1(),
            memory: MemoryCap::new(u64::MAX),
            host: HostCalls::default(),
            scratch: ScratchGuard::default(),
        }
    }
}

/// Where the call's `/tmp` comes from: a fresh folder of its own, writable and guarded, or
/// (for the compile-only call, which writes nothing) the empty read-only one.
enum ScratchMount<'a> {
    Fresh(&'a ScratchFolder),
    Empty(&'a Path),
}

/// Why the guest runs.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// To call the action's `main`, with its precompiled bytecode mounted when there is some.
    Call { bytecode: Option<&'a Path> },
    /// To compile the action's files ahead of its calls (none of its code runs).
    Compile,
}

/// A fresh instance's store and how to start it.
enum Prepared {
    /// Instantiate, then run `_start`.
    Start(Store<CallState>, InstancePre<CallState>),
    /// Already instantiated: run `vivarium_run`.
    Run(Store<CallState>, ReactorExports),
}

impl Prepared {
    fn store(&mut self) -> &mut Store<CallState> {
        match self {
            Self::Start(store, _) | Self::Run(store, _) => store,
        }
    }
}

impl Sandbox {
    /// Links WASI into the command-style `module` (compiled for `engine`, see [`new_engine`])
    /// and starts the clock that enforces time limits; the clock stops when the engine is
    /// dropped.
    pub fn new(engine: Engine, module: &Module) -> Result<Self, SandboxError> {
        let instance_pre = link(&engine, module)?;
        start_epoch_clock(&engine);
        Ok(Self {
            engine,
            flavor: Flavor::Command(instance_pre),
            instantiations: Arc::default(),
        })
    }

    /// Links WASI into the pre-initialized `snapshot` (compiled for an engine from
    /// [`new_pooling_engine`]), mounting `stdlib` at [`STDLIB_MOUNT`](crate::STDLIB_MOUNT) in
    /// every call, and keeps up to `pool_size` fresh instances ready. Empty mounts and the
    /// actions' bytecode are kept under `cache_dir`, the bytecode per snapshot digest.
    pub fn from_snapshot(
        engine: Engine,
        snapshot: &Module,
        snapshot_sha256: &str,
        stdlib: PathBuf,
        cache_dir: &Path,
        pool_size: usize,
    ) -> Result<Self, SandboxError> {
        let instance_pre = link(&engine, snapshot)?;
        start_epoch_clock(&engine);
        Ok(Self {
            engine,
            flavor: Flavor::Snapshot {
                pool: WarmPool::new(instance_pre, pool_size),
                stdlib,
                empty: empty_dir(cache_dir)?,
                bytecode: BytecodeCache::new(cache_dir, snapshot_sha256),
            },
            instantiations: Arc::default(),
        })
    }

    /// Which interpreter this sandbox runs: `snapshot` or `pinned`.
    pub fn runtime_name(&self) -> &'static str {
        match self.flavor {
            Flavor::Command(_) => "pinned",
            Flavor::Snapshot { .. } => "snapshot",
        }
    }

    /// How this sandbox's guests answer a result: the pre-initialized interpreter outlives its
    /// call, so it can be asked again for JSON when the marshal form will not do.
    fn reply_form(&self) -> ReplyForm {
        match self.flavor {
            Flavor::Command(_) => ReplyForm::Json,
            Flavor::Snapshot { .. } => ReplyForm::Marshal,
        }
    }

    /// How many guest instances this sandbox (and its clones) has created: one per call that
    /// got past validation. A run refused before that leaves it unchanged, and the
    /// compile-only call an action's first call makes is not counted.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    /// Runs one call to completion on the current thread and classifies how it ended.
    /// Blocks: call it from a blocking context (a plain thread, or `spawn_blocking`).
    pub fn run(&self, call: &Call<'_>) -> Result<Outcome, SandboxError> {
        call.limits.validate()?;
        check_input_size(&call.input, &call.limits)?;
        let wants_network = call.egress.is_some_and(|egress| egress.policy.allows_any());
        if wants_network && matches!(self.flavor, Flavor::Command(_)) {
            return Err(SandboxError::EgressNeedsSnapshot);
        }
        let flags = RequestFlags {
            layer: call.dependency_layer.is_some(),
            reply: self.reply_form(),
        };
        let request = guest_request(&call.input, flags);
        let runtime = call_runtime()?;
        let bytecode = self.bytecode_for(call, runtime);
        let purpose = Purpose::Call {
            bytecode: bytecode.as_deref(),
        };
        runtime.block_on(self.run_on_this_thread(call, request, purpose))
    }

    /// The folder of bytecode compiled for `call`'s action (snapshot runtime only), made by a
    /// compile-only call on the action's first call. When that fails, the call goes on
    /// without (its modules are compiled as they are imported), and so do the folder's later
    /// calls in this process: a failing compile is not paid again by every call.
    fn bytecode_for(&self, call: &Call<'_>, runtime: &tokio::runtime::Runtime) -> Option<PathBuf> {
        let Flavor::Snapshot { bytecode, .. } = &self.flavor else {
            return None;
        };
        let folder = bytecode.folder(call.action_dir, call.dependency_layer);
        if folder.is_dir() {
            vivarium_runtime::eviction::touch(&folder);
            return Some(folder);
        }
        if bytecode.failed_before(&folder) {
            return None;
        }
        let compile = Call {
            limits: COMPILE_LIMITS,
            shape: ResultShape::Any,
            egress: None,
            state: None,
            log_sink: None,
            ..call.clone()
        };
        let outcome = runtime.block_on(self.run_on_this_thread(
            &compile,
            compile_request(call.dependency_layer.is_some()),
            Purpose::Compile,
        ));
        let stored = match outcome {
            Ok(Outcome {
                result: Some(compiled),
                ..
            }) => bytecode.store(&folder, &compiled),
            Ok(outcome) => Err(SandboxError::Setup(format!("{:?}", outcome.error))),
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => Some(folder),
            Err(error) => {
                tracing::warn!(%error, action = %call.action_dir.display(), "the action's bytecode was not compiled ahead; its calls compile it");
                bytecode.remember_failure(folder);
                None
            }
        }
    }

    /// Runs the guest once for `purpose` with `request` on stdin; it executes on the calling
    /// thread (its file operations block it) and yields at every epoch tick.
    async fn run_on_this_thread(
        &self,
        call: &Call<'_>,
        request: Vec<u8>,
        purpose: Purpose<'_>,
    ) -> Result<Outcome, SandboxError> {
        let stdout = CappedOutput::new(call.limits.result_bytes + ENVELOPE_BYTES);
        let stderr = match (&purpose, &call.log_sink) {
            (Purpose::Call { .. }, Some(sink)) => {
                CappedOutput::watched(call.limits.log_bytes, sink.clone())
            }
            _ => CappedOutput::new(call.limits.log_bytes),
        };
        let (bytecode, folder) = match purpose {
            Purpose::Call { bytecode } => (bytecode, Some(ScratchFolder::create()?)),
            Purpose::Compile => (None, None),
        };
        let scratch_mount = match (&folder, &self.flavor) {
            (Some(folder), _) => ScratchMount::Fresh(folder),
            (None, Flavor::Snapshot { empty, .. }) => ScratchMount::Empty(empty),
            (None, Flavor::Command(_)) => {
                return Err(SandboxError::Setup(
                    "the pinned interpreter compiles nothing ahead".into(),
                ));
            }
        };
        let (wasi, scratch_fd) =
            self.wasi_context(call, request, bytecode, scratch_mount, &stdout, &stderr)?;
        let mut prepared = self.fresh_instance(wasi, call.limits.memory_bytes).await?;
        if let Purpose::Call { .. } = purpose {
            self.instantiations.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = Instant::now() + call.limits.timeout;
        let store = prepared.store();
        if let Some(folder) = &folder {
            store.data_mut().scratch =
                ScratchGuard::new(folder.path(), scratch_fd, scratch_cap(&call.limits));
        }
        let egress = call.egress.map(|egress| egress.for_call(deadline));
        let state = call.state.as_ref().map(StateAccess::session);
        store.data_mut().host =
            HostCalls::new(egress, call.cpu_slot.clone(), state, stderr.clone());
        let memory_refused = store.data().memory.refused.clone();
        store
            .set_fuel(call.limits.fuel)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);

        let started = Instant::now();
        let watchdog = started + call.limits.timeout + WATCHDOG_GRACE;
        let ending = self.execute(&mut prepared, watchdog).await;
        let result_budget = call.limits.result_bytes + ENVELOPE_BYTES - SUCCESS_ENVELOPE.len();
        let (ending, reply) =
            settle_reply(&mut prepared, ending, &stdout, result_budget, watchdog).await;
        let duration = started.elapsed();
        let store = prepared.store();

        let fuel_used = call
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let peak_memory_bytes = store.data().memory.peak;
        let (audit_lines, audit): (Vec<_>, Vec<_>) = store
            .data_mut()
            .host
            .take_audit()
            .into_iter()
            .map(|placed| ((placed.offset, placed.line), placed.record))
            .unzip();
        let state_writes = store.data_mut().host.take_state_writes();
        let scratch = scratch_used(&store.data().scratch);
        self.retire(prepared);
        drop(folder);
        let (stderr_bytes, stderr_dropped) = stderr.take();
        let (kind, result, error) = classify(Evidence {
            ending,
            reply,
            memory_refused: memory_refused.load(Ordering::Relaxed),
            limits: call.limits,
            shape: call.shape,
        });
        Ok(Outcome {
            kind,
            result,
            error,
            logs: parse_logs(
                &stderr_bytes,
                stderr_dropped,
                call.limits.log_bytes,
                &audit_lines,
            ),
            logs_truncated: stderr_dropped > 0,
            fuel_used,
            peak_memory_bytes,
            duration,
            egress: audit,
            state_writes,
            scratch,
        })
    }

    /// Drops a finished call's store: in the background for pooled instances, whose memory
    /// slot is reset on drop.
    fn retire(&self, prepared: Prepared) {
        match (prepared, &self.flavor) {
            (Prepared::Run(store, exports), Flavor::Snapshot { pool, .. }) => {
                pool.retire(store, exports.memory)
            }
            (other, _) => drop(other),
        }
    }

    /// A store for one call holding `wasi`, with memory capped at `memory_limit`, and its
    /// instance: taken from the warm pool, or instantiated when the call starts.
    async fn fresh_instance(
        &self,
        wasi: WasiP1Ctx,
        memory_limit: u64,
    ) -> Result<Prepared, SandboxError> {
        match &self.flavor {
            Flavor::Command(instance_pre) => {
                let state = CallState {
                    wasi,
                    memory: MemoryCap::new(memory_limit),
                    ..CallState::unassigned()
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|state| &mut state.memory);
                Ok(Prepared::Start(store, instance_pre.clone()))
            }
            Flavor::Snapshot { pool, .. } => {
                let mut ready = pool.take().await?;
                let state = ready.store.data_mut();
                state.wasi = wasi;
                state.memory.limit = memory_limit;
                Ok(Prepared::Run(ready.store, ready.exports))
            }
        }
    }

    async fn execute(&self, prepared: &mut Prepared, watchdog: Instant) -> Ending {
        let run = async {
            match prepared {
                Prepared::Start(store, instance_pre) => {
                    let instance = instance_pre.instantiate_async(&mut *store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                    start.call_async(&mut *store, ()).await
                }
                Prepared::Run(store, exports) => {
                    exit_status(exports.run.call_async(&mut *store, ()).await?)
                }
            }
        };
        ending_within(watchdog, run).await
    }

    /// The call's WASI context and the descriptor of its `/tmp`: its input on stdin, capped
    /// stdout and stderr, its environment and its mounts, as the flavor's interpreter expects
    /// them.
    fn wasi_context(
        &self,
        call: &Call<'_>,
        request: Vec<u8>,
        bytecode: Option<&Path>,
        scratch: ScratchMount<'_>,
        stdout: &CappedOutput,
        stderr: &CappedOutput,
    ) -> Result<(WasiP1Ctx, u32), SandboxError> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .allow_blocking_current_thread(true)
            .stdin(MemoryInputPipe::new(request))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for (key, value) in scratch_env(call.env).chain(call.env.iter()) {
            builder.env(key, value);
        }
        let scratch = match scratch {
            ScratchMount::Fresh(folder) => (folder.path(), FsPerms::ReadWrite),
            ScratchMount::Empty(empty) => (empty, FsPerms::ReadOnly),
        };
        let mut mounts = Mounts::new(&mut builder);
        match &self.flavor {
            Flavor::Command(_) => {
                mounts.builder.args(&command_args(call));
                mounts.add(call.action_dir, ACTION_MOUNT, FsPerms::ReadOnly)?;
                if let Some(layer) = call.dependency_layer {
                    mounts.add(layer, DEPENDENCY_MOUNT, FsPerms::ReadOnly)?;
                }
                mounts.add(scratch.0, SCRATCH_MOUNT, scratch.1)?;
            }
            Flavor::Snapshot { stdlib, empty, .. } => {
                mounts.builder.args(&["python"]);
                let layer = call.dependency_layer.unwrap_or(empty);
                let bytecode = bytecode.unwrap_or(empty);
                let read_only = |host| (host, FsPerms::ReadOnly);
                let hosts: [(&Path, FsPerms); MOUNTS_IN_ORDER.len()] = [
                    read_only(stdlib.as_path()),
                    read_only(call.action_dir),
                    read_only(layer),
                    read_only(bytecode),
                    scratch,
                ];
                for (guest, (host, perms)) in MOUNTS_IN_ORDER.into_iter().zip(hosts) {
                    mounts.add(host, guest, perms)?;
                }
            }
        }
        let scratch_fd = mounts.descriptor_of(SCRATCH_MOUNT)?;
        Ok((builder.build_p1(), scratch_fd))
    }
}

/// `HOME` and `TMPDIR` pointing at the call's `/tmp`, unless the action sets them itself.
fn scratch_env<'a>(env: &'a ActionEnv) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    ["HOME", "TMPDIR"]
        .into_iter()
        .filter(|key| env.iter().all(|(set, _)| set != *key))
        .map(|key| (key, SCRATCH_MOUNT))
}

/// The scratch cap `limits` give.
fn scratch_cap(limits: &Limits) -> ScratchUsage {
    ScratchUsage {
        bytes: limits.scratch_bytes,
        files: limits.scratch_files,
    }
}

/// What the call left in its scratch folder (nothing, when it cannot be measured).
fn scratch_used(guard: &ScratchGuard) -> ScratchUsage {
    guard.usage().unwrap_or_else(|| {
        tracing::warn!("a call's scratch folder could not be measured; its run records none");
        ScratchUsage::default()
    })
}

/// A call's preopened folders, numbered as WASI numbers them: from descriptor 3 (after
/// stdin, stdout and stderr), in the order they are added.
struct Mounts<'a> {
    builder: &'a mut WasiCtxBuilder,
    added: Vec<&'static str>,
}

impl<'a> Mounts<'a> {
    /// WASI's first preopen descriptor.
    const FIRST_DESCRIPTOR: u32 = 3;

    fn new(builder: &'a mut WasiCtxBuilder) -> Self {
        Self {
            builder,
            added: Vec::new(),
        }
    }

    /// Preopens `host` at `guest` with `perms`.
    fn add(
        &mut self,
        host: &Path,
        guest: &'static str,
        perms: FsPerms,
    ) -> Result<(), SandboxError> {
        self.builder
            .preopened_dir(host, guest, perms)
            .map_err(|e| SandboxError::ActionFolder {
                path: host.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
        self.added.push(guest);
        Ok(())
    }

    /// The descriptor the folder preopened at `guest` gets.
    fn descriptor_of(&self, guest: &str) -> Result<u32, SandboxError> {
        self.added
            .iter()
            .position(|added| *added == guest)
            .and_then(|index| u32::try_from(index).ok())
            .map(|index| Self::FIRST_DESCRIPTOR + index)
            .ok_or_else(|| SandboxError::Setup(format!("nothing is mounted at {guest}")))
    }
}

/// Links WASI into `module`.
fn link(engine: &Engine, module: &Module) -> Result<InstancePre<CallState>, SandboxError> {
    let mut linker: Linker<CallState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state| &mut state.wasi)
        .map_err(|e| SandboxError::Setup(format!("{e:#}")))?;
    scratch::add_to_linker(&mut linker)?;
    host_call::add_to_linker(&mut linker)?;
    linker
        .instantiate_pre(module)
        .map_err(|e| SandboxError::Setup(format!("the interpreter module cannot be linked: {e:#}")))
}

/// The async runtime blocking callers run their calls on: shared, so that the threads WASI
/// file operations hop to are made once, not for every call. The guest itself runs on the
/// caller's thread (`block_on`).
fn call_runtime() -> Result<&'static tokio::runtime::Runtime, SandboxError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("vivarium-wasi")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| SandboxError::Setup(format!("no async runtime for calls: {e}")))
}

/// The guest's answer to its call: its result read from the marshal form when it wrote one
/// and the host can read it within `result_budget` bytes of JSON; otherwise, after asking
/// the same instance for its JSON document when it wrote the marshal form, what it wrote.
async fn settle_reply(
    prepared: &mut Prepared,
    ending: Ending,
    stdout: &CappedOutput,
    result_budget: usize,
    watchdog: Instant,
) -> (Ending, Reply) {
    let (bytes, dropped) = stdout.take();
    let marshalled =
        matches!(ending, Ending::Finished(None)) && bytes.first() == Some(&MARSHAL_TAG);
    let Prepared::Run(store, exports) = prepared else {
        return (ending, Reply::Written { bytes, dropped });
    };
    if !marshalled {
        return (ending, Reply::Written { bytes, dropped });
    }
    if let Some(result) = (dropped == 0)
        .then(|| decode_result(&bytes[1..], result_budget))
        .flatten()
    {
        return (ending, Reply::Read(result));
    }
    let reply_json = async { exit_status(exports.reply_json.call_async(&mut *store, ()).await?) };
    let ending = ending_within(watchdog, reply_json).await;
    let (bytes, dropped) = stdout.take();
    (ending, Reply::Written { bytes, dropped })
}

/// How `guest` ended, or that the host's watchdog fired first (at `watchdog`).
async fn ending_within(
    watchdog: Instant,
    guest: impl Future<Output = wasmtime::Result<()>>,
) -> Ending {
    match tokio::time::timeout_at(watchdog.into(), guest).await {
        Err(_) => Ending::WatchdogExpired,
        Ok(Ok(())) => Ending::Finished(None),
        Ok(Err(error)) if is_clean_exit(&error) => Ending::Finished(None),
        Ok(Err(error)) => Ending::Finished(Some(error)),
    }
}

/// A reactor export's exit code as the guest's ending: 0 is a clean finish.
fn exit_status(code: i32) -> wasmtime::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(code))),
    }
}

fn is_clean_exit(error: &wasmtime::Error) -> bool {
    matches!(error.downcast_ref::<wasmtime_wasi::I32Exit>(), Some(exit) if exit.0 == 0)
}

/// The command line of the command-style interpreter: the runner and its mounts.
fn command_args(call: &Call<'_>) -> Vec<&'static str> {
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
    args
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
pub(crate) struct MemoryCap {
    pub(crate) limit: u64,
    peak: u64,
    refused: Arc<AtomicBool>,
}

impl MemoryCap {
    pub(crate) fn new(limit: u64) -> Self {
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
