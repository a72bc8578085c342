//! The executor's slots: at most `cpu` calls run guest code at once, and a call waiting on
//! the network gives its CPU slot back until its answer is in, so that runnable calls are
//! not held up by slow peers. At most `cpu + waiting` calls are live at once (running or
//! waiting), which is what the sandbox's instance pool is sized for.
//!
//! Live places and CPU slots are handed out fairly between organizations: while they are
//! short, a freed one goes to the next organization, in turn after the one served last, that
//! has a call waiting. An organization flooding the service therefore delays another's call
//! by at most one call of its own at each step, instead of by its whole queue.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use vivarium_sandbox::CpuSlot;

/// The slots of one executor.
pub struct Slots {
    cpu: Arc<FairGate>,
    live: Arc<FairGate>,
}

/// A call's place: live for the whole call, with a CPU slot it may give back while waiting.
pub struct Taken {
    _live: Place,
    /// The CPU slot, shared with the sandbox's host calls.
    pub cpu: Arc<CpuShare>,
}

/// Places, handed out in turn between the organizations waiting for one.
#[derive(Debug)]
struct FairGate {
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    free: usize,
    /// The calls waiting for a place, by organization, oldest first.
    waiting: BTreeMap<String, VecDeque<oneshot::Sender<Place>>>,
    /// The organization the last handed-over place went to.
    last_served: Option<String>,
}

/// A live place, given back to its gate on drop (to the next waiting organization in turn).
#[derive(Debug)]
struct Place {
    gate: Option<Arc<FairGate>>,
}

impl FairGate {
    fn new(places: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GateState {
                free: places,
                waiting: BTreeMap::new(),
                last_served: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a call of `org`: at once when one is free and nobody waits, else when the
    /// turn comes to `org`.
    async fn enter(self: &Arc<Self>, org: &str) -> Result<Place, SlotsClosed> {
        let waiting = {
            let mut state = self.state();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Ok(Place {
                    gate: Some(self.clone()),
                });
            }
            let (sender, receiver) = oneshot::channel();
            state
                .waiting
                .entry(org.to_string())
                .or_default()
                .push_back(sender);
            receiver
        };
        waiting.await.map_err(|_| SlotsClosed)
    }

    /// Hands a freed place to the next organization in turn, or keeps it free.
    fn leave(self: &Arc<Self>) {
        let mut state = self.state();
        while let Some(org) = next_in_turn(&state) {
            let Some(queue) = state.waiting.get_mut(&org) else {
                continue;
            };
            let sender = queue.pop_front();
            if queue.is_empty() {
                state.waiting.remove(&org);
            }
            let Some(sender) = sender else { continue };
            let place = Place {
                gate: Some(self.clone()),
            };
            match sender.send(place) {
                Ok(()) => {
                    state.last_served = Some(org);
                    return;
                }
                // The caller gave up waiting: the place goes to the next one, not back
                // through this gate's lock.
                Err(mut unsent) => unsent.gate = None,
            }
        }
        state.free += 1;
    }
}

/// The first organization after the last one served (wrapping around) with a call waiting.
fn next_in_turn(state: &GateState) -> Option<String> {
    let after = match &state.last_served {
        Some(last) => state
            .waiting
            .range::<String, _>((Bound::Excluded(last), Bound::Unbounded))
            .next(),
        None => None,
    };
    after
        .or_else(|| state.waiting.iter().next())
        .map(|(org, _)| org.clone())
}

/// The executor's slots are gone (it is shutting down): no place will come.
#[derive(Debug, thiserror::Error)]
#[error("the executor is no longer handing out run slots")]
pub struct SlotsClosed;

/// A call's CPU slot, released while the call waits on the network.
#[derive(Debug)]
pub struct CpuShare {
    slots: Arc<FairGate>,
    /// The organization whose turn it takes when it asks for a slot again.
    org: String,
    held: Mutex<Option<Place>>,
}

impl Slots {
    /// `cpu` calls running guest code at once, and `waiting` more waiting on the network.
    pub fn new(cpu: usize, waiting: usize) -> Self {
        let cpu = cpu.max(1);
        Self {
            cpu: FairGate::new(cpu),
            live: FairGate::new(cpu + waiting),
        }
    }

    /// Waits for a live place (in turn with the other organizations waiting), then for a
    /// CPU slot.
    pub async fn take(&self, org: &str) -> Result<Taken, SlotsClosed> {
        let live = self.live.enter(org).await?;
        let cpu = self.cpu.enter(org).await?;
        Ok(Taken {
            _live: live,
            cpu: Arc::new(CpuShare {
                slots: self.cpu.clone(),
                org: org.to_string(),
                held: Mutex::new(Some(cpu)),
            }),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.leave();
        }
    }
}

impl CpuShare {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<Place>> {
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
            if let Ok(place) = self.slots.enter(&self.org).await {
                *self.held() = Some(place);
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
        let first = slots.take("acme").await.unwrap();
        first.cpu.release();
        // The CPU slot is free for a second call while the first waits.
        let second = slots.take("acme").await.unwrap();
        // A third finds no live place: one is running and one is waiting.
        assert_eq!(slots.live.state().free, 0);
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

    #[tokio::test]
    async fn a_flooding_organization_delays_another_by_one_call_at_most() {
        let gate = FairGate::new(1);
        let held = gate.enter("flood").await.unwrap();
        let (served, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        let queue = |org: &'static str, n: usize| {
            let (gate, served) = (gate.clone(), served.clone());
            tokio::spawn(async move {
                let place = gate.enter(org).await.unwrap();
                served.send(format!("{org}{n}")).unwrap();
                tokio::task::yield_now().await;
                drop(place);
            })
        };
        for n in 0..5 {
            waiters.push(queue("flood", n));
            tokio::task::yield_now().await;
        }
        waiters.push(queue("quiet", 0));
        tokio::task::yield_now().await;
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        drop(served);
        let mut seen = Vec::new();
        while let Some(name) = order.recv().await {
            seen.push(name);
        }
        // The quiet organization waited behind one of the flood's calls, not all five.
        assert_eq!(
            seen,
            ["flood0", "quiet0", "flood1", "flood2", "flood3", "flood4"]
        );
    }

    #[tokio::test]
    async fn a_place_given_up_while_waiting_goes_to_the_next_caller() {
        let gate = FairGate::new(1);
        let held = gate.enter("a").await.unwrap();
        let gave_up = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter("a").await.map(drop) }
        });
        tokio::task::yield_now().await;
        gave_up.abort();
        let patient = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter("b").await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(held);
        patient.await.unwrap().unwrap();
        assert_eq!(gate.state().free, 1, "the place came back once");
    }
}
