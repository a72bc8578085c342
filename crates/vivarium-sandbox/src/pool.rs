//! The warm pool: fresh instances of the pre-initialized interpreter, made ahead of time on a
//! background thread so that a call only takes one. Every instance is used by one call and
//! then dropped with its store; none is ever reset and reused. Instances come from wasmtime's
//! pooling allocator, whose copy-on-write memory images make a new instance share the
//! snapshot's pages until it writes to them.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use wasmtime::{InstancePre, Store, TypedFunc};
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::SandboxError;
use crate::sandbox::{CallState, MemoryCap};

/// The reactor's export that runs one call on a pre-initialized instance.
const RUN_EXPORT: &str = "vivarium_run";

/// A fresh instance, not yet given its call: a placeholder WASI context (no stdin, no
/// mounts, no environment) that the call replaces before anything runs.
pub(crate) struct ReadyInstance {
    /// The instance's own store.
    pub(crate) store: Store<CallState>,
    /// Its `vivarium_run` export.
    pub(crate) run: TypedFunc<(), i32>,
}

/// Ready instances, refilled in the background up to a configured count.
pub(crate) struct WarmPool {
    instance_pre: InstancePre<CallState>,
    ready: Mutex<Receiver<ReadyInstance>>,
}

impl WarmPool {
    /// A pool keeping up to `size` instances of `instance_pre` ready (none: every call makes
    /// its own, as the pool does when it runs dry).
    pub(crate) fn new(instance_pre: InstancePre<CallState>, size: usize) -> Arc<Self> {
        let (sender, receiver) = sync_channel(size);
        let pool = Arc::new(Self {
            instance_pre: instance_pre.clone(),
            ready: Mutex::new(receiver),
        });
        if size > 0 {
            start_filler(instance_pre, sender);
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

/// Makes instances on a thread of its own until the pool is full, waits, and stops when the
/// pool is dropped (its receiver gone).
fn start_filler(instance_pre: InstancePre<CallState>, sender: SyncSender<ReadyInstance>) {
    let spawned = std::thread::Builder::new()
        .name("vivarium-warm-pool".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
                tracing::error!("the warm pool has no async runtime; calls instantiate on demand");
                return;
            };
            loop {
                let ready = match runtime.block_on(instantiate(&instance_pre)) {
                    Ok(ready) => ready,
                    Err(error) => {
                        tracing::error!(%error, "the warm pool could not make an instance");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        continue;
                    }
                };
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
    let state = CallState {
        wasi: WasiCtxBuilder::new().build_p1(),
        memory: MemoryCap::new(u64::MAX),
    };
    let mut store = Store::new(instance_pre.module().engine(), state);
    store.limiter(|state| &mut state.memory);
    let instance = instance_pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| SandboxError::Setup(format!("instantiating the snapshot: {e:#}")))?;
    let run = instance
        .get_typed_func::<(), i32>(&mut store, RUN_EXPORT)
        .map_err(|e| SandboxError::Setup(format!("the snapshot has no {RUN_EXPORT}: {e:#}")))?;
    Ok(ReadyInstance { store, run })
}
