//! Scheduled actions: `once` and `repeat` actions fire on their cron expression (UTC),
//! calling `main()` with no arguments. Each firing is claimed in the database before it runs,
//! so a firing happens once even when several replicas share the database. The same loop
//! removes expired state keys once a minute.

use std::sync::Arc;
use std::time::Duration;

use vivarium_sandbox::{Input, ResultShape};
use vivarium_store::{Action, ExecutionKind, MetadataStore, Trigger};

pub use vivarium_schedule::Schedule;

use crate::clock::now_micros;
use crate::executor::{Executor, RunRequest};

/// When a scheduled action fires next after `now`, or `None` for a real-time action.
pub fn next_run(execution: ExecutionKind, cron_expr: Option<&str>, now: i64) -> Option<i64> {
    match execution {
        ExecutionKind::Service => None,
        ExecutionKind::Once if cron_expr.is_none() => Some(now),
        ExecutionKind::Once | ExecutionKind::Repeat => {
            Schedule::parse(cron_expr?).ok()?.next_after(now)
        }
    }
}

/// Fires due actions every `interval` until the task is dropped.
pub async fn run_scheduler(
    meta: Arc<dyn MetadataStore>,
    executor: Arc<Executor>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut swept_at = 0;
    loop {
        ticker.tick().await;
        let now = now_micros();
        if now - swept_at >= STATE_SWEEP_INTERVAL_MICROS {
            sweep_expired_state(meta.as_ref(), now).await;
            swept_at = now;
        }
        match meta.due_actions(now).await {
            Ok(due) => {
                for action in due {
                    fire(meta.clone(), executor.clone(), action, now).await;
                }
            }
            Err(error) => tracing::error!(%error, "could not read due schedules"),
        }
    }
}

/// How often expired state keys are removed (reads already treat them as absent).
const STATE_SWEEP_INTERVAL_MICROS: i64 = 60_000_000;

/// Removes the state keys of every action that expired by `now`.
async fn sweep_expired_state(meta: &dyn MetadataStore, now: i64) {
    match meta.sweep_expired_state(now).await {
        Ok(0) => {}
        Ok(swept) => tracing::debug!(swept, "expired state keys removed"),
        Err(error) => tracing::warn!(%error, "could not remove expired state keys"),
    }
}

async fn fire(meta: Arc<dyn MetadataStore>, executor: Arc<Executor>, action: Action, now: i64) {
    let Some(expected) = action.next_run_at else {
        return;
    };
    let next = match action.execution {
        ExecutionKind::Repeat => next_run(action.execution, action.cron_expr.as_deref(), now),
        ExecutionKind::Once | ExecutionKind::Service => None,
    };
    match meta
        .claim_schedule(&action.org, &action.id, expected, next)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::error!(%error, action = %action.id, "could not claim a schedule");
            return;
        }
    }
    tokio::spawn(async move {
        let (org, id) = (action.org.clone(), action.id.clone());
        let request = RunRequest {
            action,
            trigger: Trigger::Schedule,
            trace_id: None,
            input: Input::Scheduled,
            shape: ResultShape::Any,
        };
        match executor.run(request).await {
            Ok(report) => {
                tracing::info!(%org, action = %id, outcome = %report.run.outcome, "scheduled run finished")
            }
            Err(error) => {
                tracing::warn!(%org, action = %id, %error, "scheduled run not performed")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_actions_have_no_next_run() {
        assert_eq!(next_run(ExecutionKind::Service, Some("* * * * *"), 0), None);
        assert!(next_run(ExecutionKind::Repeat, Some("* * * * *"), 0).is_some());
    }
}
