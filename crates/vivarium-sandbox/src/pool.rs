//! The warm pool: fresh instances of the pre-initialized interpreter, made ahead of time on a
//! background thread so that a call only takes one. Every instance is used by one call and
//! then dropped with its store, on another background thread, so that the call does not wait
//! for its memory to be reset; no instance is ever reused. Instances come from wasmtime's
//! pooling allocator, whose copy-on-write memory images make a new instance share the
//! snapshot's pages until it writes to them.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use wasmtime::{InstancePre, Memory, Store, TypedFunc};

use crate::error::SandboxError;
use crate::sandbox::CallState;
use crate::working_set::WorkingSet;

/// The reactor's export that runs one call on a pre-initialized instance.
const RUN_EXPORT: &str = "vivarium_run";
/// The reactor's export that writes the call's result again as its JSON document.
const REPLY_JSON_EXPORT: &str = "vivarium_reply_json";

/// Fuel and epoch ticks for making an instance: far more than filling its table takes.
const INSTANTIATION_BUDGET: u64 = 1 << 40;

/// The exports of the reactor a call uses.
pub(crate) struct ReactorExports {
    /// Its linear memory.
    pub(crate) memory: Memory,
    /// Runs the call.
    pub(crate) run: TypedFunc<(), i32>,
    /// After `run`, writes the result as the JSON document (when the host could not read it
    /// from its marshal form).
    pub(crate) reply_json: TypedFunc<(), i32>,
}

/// A fresh instance, not yet given its call: a placeholder WASI context (no stdin, no
/// mounts, no environment) that the call replaces before anything runs.
pub(crate) struct ReadyInstance {
    /// The instance's own store.
    pub(crate) store: Store<CallState>,
    /// Its exports.
    pub(crate) exports: ReactorExports,
}

/// Ready instances, refilled in the background up to a configured count, and used ones,
/// dropped in the background.
pub(crate) struct WarmPool {
    instance_pre: InstancePre<CallState>,
    ready: Mutex<Receiver<ReadyInstance>>,
    /// Where used stores (and their memory) go to be dropped; `None` when the dropping thread
    /// did not start.
    retired: Option<SyncSender<(Store<CallState>, Memory)>>,
}

impl WarmPool {
    /// A pool keeping up to `size` instances of `instance_pre` ready (none: every call makes
    /// its own, as the pool does when it runs dry).
    pub(crate) fn new(instance_pre: InstancePre<CallState>, size: usize) -> Arc<Self> {
        let (sender, receiver) = sync_channel(size);
        let working_set = Arc::new(WorkingSet::new());
        let pool = Arc::new(Self {
            instance_pre: instance_pre.clone(),
            ready: Mutex::new(receiver),
            retired: start_dropper(retired_backlog(size), working_set.clone()),
        });
        if size > 0 {
            start_filler(instance_pre, sender, working_set);
        }
        pool
    }

    /// A ready instance from the pool, or a new one when the pool is empty.
    pub(crate) async fn take(&self) -> Result<ReadyInstance, SandboxError> {
        let pooled = self
            .ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_recv();
        match pooled {
            Ok(ready) => Ok(ready),
            Err(_) => instantiate(&self.instance_pre).await,
        }
    }
}

impl WarmPool {
    /// Drops a used store in the background (learning which pages of its `memory` the call
    /// wrote, then resetting its memory slot for the next instance), or here when the
    /// background thread is behind or absent.
    pub(crate) fn retire(&self, store: Store<CallState>, memory: Memory) {
        if let Some(retired) = &self.retired {
            // When the thread is behind, the store comes back in the error, dropped here.
            drop(retired.try_send((store, memory)));
        }
    }

    /// The instance slots a pool of `size` may hold at once besides its calls' own: the
    /// ready instances, the one being made, and the used ones waiting to be dropped.
    pub(crate) fn slots_needed(size: usize) -> usize {
        size + 1 + retired_backlog(size)
    }
}

/// How many used stores may wait for the dropping thread.
fn retired_backlog(size: usize) -> usize {
    size.max(1)
}

/// Starts the thread that drops used stores, with room for `backlog` of them waiting; it
/// shows each to `working_set` first.
fn start_dropper(
    backlog: usize,
    working_set: Arc<WorkingSet>,
) -> Option<SyncSender<(Store<CallState>, Memory)>> {
    let (sender, receiver) = sync_channel::<(Store<CallState>, Memory)>(backlog);
    let spawned = std::thread::Builder::new()
        .name("vivarium-retire".into())
        .spawn(move || {
            for (store, memory) in receiver {
                working_set.observe(memory.data(&store));
                drop(store);
            }
        });
    match spawned {
        Ok(_) => Some(sender),
        Err(error) => {
            tracing::warn!(%error, "used instances are dropped by their calls");
            None
        }
    }
}

/// Makes instances on a thread of its own until the pool is full, waits, and stops when the
/// pool is dropped (its receiver gone). Each instance has the pages calls write copied
/// ahead (see [`WorkingSet`]).
fn start_filler(
    instance_pre: InstancePre<CallState>,
    sender: SyncSender<ReadyInstance>,
    working_set: Arc<WorkingSet>,
) {
    let spawned = std::thread::Builder::new()
        .name("vivarium-warm-pool".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
                tracing::error!("the warm pool has no async runtime; calls instantiate on demand");
                return;
            };
            loop {
                let mut ready = match runtime.block_on(instantiate(&instance_pre)) {
                    Ok(ready) => ready,
                    Err(error) => {
                        tracing::error!(%error, "the warm pool could not make an instance");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        continue;
                    }
                };
                working_set.touch(ready.exports.memory.data_mut(&mut ready.store));
                if sender.send(ready).is_err() {
                    return;
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "the warm pool did not start; calls instantiate on demand");
    }
}

/// A new instance with a placeholder WASI context and no memory limit yet (the call sets it).
async fn instantiate(instance_pre: &InstancePre<CallState>) -> Result<ReadyInstance, SandboxError> {
    let mut store = Store::new(instance_pre.module().engine(), CallState::unassigned());
    store.limiter(|state| &mut state.memory);
    // Filling the table evaluates its elements' initializers, which costs fuel and checks the
    // epoch; the call sets its own fuel and deadline before any guest code runs.
    store
        .set_fuel(INSTANTIATION_BUDGET)
        .map_err(|e| SandboxError::Setup(e.to_string()))?;
    store.set_epoch_deadline(INSTANTIATION_BUDGET);
    let instance = instance_pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| SandboxError::Setup(format!("instantiating the snapshot: {e:#}")))?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| SandboxError::Setup("the snapshot exports no memory".into()))?;
    let mut export = |name: &str| {
        instance
            .get_typed_func::<(), i32>(&mut store, name)
            .map_err(|e| SandboxError::Setup(format!("the snapshot has no {name}: {e:#}")))
    };
    let exports = ReactorExports {
        memory,
        run: export(RUN_EXPORT)?,
        reply_json: export(REPLY_JSON_EXPORT)?,
    };
    Ok(ReadyInstance { store, exports })
}
