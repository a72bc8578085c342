//! The executor's slots: at most `cpu` calls run guest code at once, and a call waiting on
//! the network gives its CPU slot back until its answer is in, so that runnable calls are
//! not held up by slow peers. At most `cpu + waiting` calls are live at once (running or
//! waiting), which is what the sandbox's instance pool is sized for.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use vivarium_sandbox::CpuSlot;

/// The slots of one executor.
pub struct Slots {
    cpu: Arc<Semaphore>,
    live: Arc<Semaphore>,
}

/// A call's place: live for the whole call, with a CPU slot it may give back while waiting.
pub struct Taken {
    _live: OwnedSemaphorePermit,
    /// The CPU slot, shared with the sandbox's host calls.
    pub cpu: Arc<CpuShare>,
}

/// A call's CPU slot, released while the call waits on the network.
#[derive(Debug)]
pub struct CpuShare {
    slots: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slots {
    /// `cpu` calls running guest code at once, and `waiting` more waiting on the network.
    pub fn new(cpu: usize, waiting: usize) -> Self {
        let cpu = cpu.max(1);
        Self {
            cpu: Arc::new(Semaphore::new(cpu)),
            live: Arc::new(Semaphore::new(cpu + waiting)),
        }
    }

    /// Waits for a live place, then for a CPU slot.
    pub async fn take(&self) -> Result<Taken, AcquireError> {
        let live = self.live.clone().acquire_owned().await?;
        let cpu = self.cpu.clone().acquire_owned().await?;
        Ok(Taken {
            _live: live,
            cpu: Arc::new(CpuShare {
                slots: self.cpu.clone(),
                held: Mutex::new(Some(cpu)),
            }),
        })
    }
}

impl CpuShare {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CpuSlot for CpuShare {
    fn release(&self) {
        self.held().take();
    }

    fn reacquire(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Ok(permit) = self.slots.clone().acquire_owned().await {
                *self.held() = Some(permit);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_call_lets_another_run_and_waits_for_a_slot_to_resume() {
        let slots = Slots::new(1, 1);
        let first = slots.take().await.unwrap();
        first.cpu.release();
        // The CPU slot is free for a second call while the first waits.
        let second = slots.take().await.unwrap();
        // A third finds no live place: one is running and one is waiting.
        assert!(slots.live.clone().try_acquire_owned().is_err());
        let resumed = tokio::spawn({
            let cpu = first.cpu.clone();
            async move { cpu.reacquire().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !resumed.is_finished(),
            "the first waits while the second runs"
        );
        drop(second);
        resumed.await.unwrap();
        assert!(first.cpu.held().is_some());
    }
}
