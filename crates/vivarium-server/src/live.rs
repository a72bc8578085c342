//! The runs in flight on this replica and their log lines as the guest writes them, so that
//! a run can be watched live (`GET .../runs/{run_id}/logs` as server-sent events). A run is
//! registered when it is admitted and leaves once its record is stored, so a watcher finds it
//! here or in the run history, never in neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use vivarium_sandbox::{LogLine, LogSink};
use vivarium_store::{Run, Trigger};

use crate::mask::SecretMask;

/// Events a watcher may fall behind by before its stream is cut (it then reads the run from
/// the history once it has ended).
const WATCHER_BACKLOG: usize = 1024;

/// What is known of a run from the moment it is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRunInfo {
    /// The id its record will have.
    pub id: String,
    /// The organization.
    pub org: String,
    /// The action running.
    pub action_id: String,
    /// What started it.
    pub trigger: Trigger,
    /// When it was admitted (µs since the epoch); the record's `started_at`.
    pub started_at: i64,
}

/// What a watcher receives after the lines logged before it came.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// The action logged a line (its secrets masked).
    Line(LogLine),
    /// The run ended and is recorded as this.
    Ended(Box<Run>),
    /// The run was not performed, for this reason (nothing is recorded).
    Failed(String),
}

/// A watcher's view: the lines logged so far, then the events that follow.
pub struct Watch {
    /// The lines logged before the watcher came.
    pub backlog: Vec<LogLine>,
    /// The events that follow; it closes after the last.
    pub events: broadcast::Receiver<LiveEvent>,
}

/// The runs in flight on this replica.
#[derive(Default)]
pub struct LiveRuns {
    runs: Arc<Mutex<HashMap<String, Arc<LiveRun>>>>,
}

impl LiveRuns {
    /// Registers a run that was just admitted; it stays listed until the handle is dropped.
    pub fn register(&self, info: LiveRunInfo) -> LiveHandle {
        let run = Arc::new(LiveRun {
            info,
            watched: Mutex::default(),
        });
        lock(&self.runs).insert(run.info.id.clone(), run.clone());
        LiveHandle {
            run,
            registry: self.runs.clone(),
        }
    }

    /// A watch of run `run_id` of action `action_id` in `org`, if it is in flight here.
    pub fn watch(&self, org: &str, action_id: &str, run_id: &str) -> Option<Watch> {
        let run = lock(&self.runs).get(run_id).cloned()?;
        (run.info.org == org && run.info.action_id == action_id).then(|| run.watch())
    }

    /// The runs of action `action_id` in `org` in flight here, oldest first.
    pub fn in_flight(&self, org: &str, action_id: &str) -> Vec<LiveRunInfo> {
        let mut runs: Vec<LiveRunInfo> = lock(&self.runs)
            .values()
            .filter(|run| run.info.org == org && run.info.action_id == action_id)
            .map(|run| run.info.clone())
            .collect();
        runs.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        runs
    }

    /// How many runs of `org` are in flight here (running or waiting for a slot).
    pub fn in_flight_in_org(&self, org: &str) -> usize {
        lock(&self.runs)
            .values()
            .filter(|run| run.info.org == org)
            .count()
    }
}

/// One run in flight: what it is, the lines it logged so far, and the channel of its
/// watchers.
struct LiveRun {
    info: LiveRunInfo,
    watched: Mutex<Watched>,
}

/// A run's lines and, once someone watches it, the channel they listen on. The channel is
/// made by the first watcher: most runs are never watched, and a run should not pay for one.
#[derive(Default)]
struct Watched {
    lines: Vec<LogLine>,
    events: Option<broadcast::Sender<LiveEvent>>,
}

impl LiveRun {
    /// Taken under one lock with the lines, so that no line falls between the backlog and
    /// the subscription.
    fn watch(&self) -> Watch {
        let mut watched = lock(&self.watched);
        let events = watched
            .events
            .get_or_insert_with(|| broadcast::channel(WATCHER_BACKLOG).0)
            .subscribe();
        Watch {
            backlog: watched.lines.clone(),
            events,
        }
    }

    /// Keeps `line` for later watchers and tells the present ones.
    fn add_line(&self, line: LogLine) {
        let mut watched = lock(&self.watched);
        if let Some(events) = &watched.events {
            // No watcher left is not a failure: the event is simply not seen.
            let _ = events.send(LiveEvent::Line(line.clone()));
        }
        watched.lines.push(line);
    }

    /// Tells the watchers, if any, the event that ends the run; `event` is made only then.
    fn end(&self, event: impl FnOnce() -> LiveEvent) {
        if let Some(events) = &lock(&self.watched).events {
            let _ = events.send(event());
        }
    }
}

/// The executor's hold on a registered run: it publishes the run's lines and its end, and
/// takes it off the list when dropped.
pub struct LiveHandle {
    run: Arc<LiveRun>,
    registry: Arc<Mutex<HashMap<String, Arc<LiveRun>>>>,
}

impl LiveHandle {
    /// What was registered.
    pub fn info(&self) -> &LiveRunInfo {
        &self.run.info
    }

    /// A watch of this run, for the trigger that started it.
    pub fn watch(&self) -> Watch {
        self.run.watch()
    }

    /// The sink the sandbox writes the run's lines to, each masked by `mask` first.
    pub fn sink(&self, mask: SecretMask) -> Arc<dyn LogSink> {
        Arc::new(MaskedSink {
            run: self.run.clone(),
            mask,
        })
    }

    /// Tells the watchers the run is recorded as `run` (call after storing it).
    pub fn ended(self, run: &Run) {
        self.run.end(|| LiveEvent::Ended(Box::new(run.clone())));
    }

    /// Tells the watchers the run was not performed, and why.
    pub fn failed(self, reason: String) {
        self.run.end(|| LiveEvent::Failed(reason));
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        lock(&self.registry).remove(&self.run.info.id);
    }
}

/// Hands the sandbox's lines to a run's watchers with its secrets masked.
struct MaskedSink {
    run: Arc<LiveRun>,
    mask: SecretMask,
}

impl std::fmt::Debug for MaskedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedSink")
            .field("run", &self.run.info.id)
            .finish_non_exhaustive()
    }
}

impl LogSink for MaskedSink {
    fn line(&self, mut line: LogLine) {
        self.mask.mask_line(&mut line);
        self.run.add_line(line);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> LiveRunInfo {
        LiveRunInfo {
            id: id.to_string(),
            org: "acme".to_string(),
            action_id: "a1".to_string(),
            trigger: Trigger::Alert,
            started_at: 1,
        }
    }

    fn line(message: &str) -> LogLine {
        LogLine::host("INFO", message.to_string())
    }

    #[test]
    fn a_watcher_gets_the_backlog_then_the_lines_that_follow_masked() {
        let live = LiveRuns::default();
        let handle = live.register(info("r1"));
        let sink = handle.sink(SecretMask::new(["s3cret"]));
        sink.line(line("first s3cret"));
        let mut watch = live.watch("acme", "a1", "r1").unwrap();
        sink.line(line("second"));
        assert_eq!(watch.backlog[0].message, "first ***");
        match watch.events.try_recv().unwrap() {
            LiveEvent::Line(line) => assert_eq!(line.message, "second"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_run_is_found_only_in_its_org_and_action_and_leaves_when_dropped() {
        let live = LiveRuns::default();
        let handle = live.register(info("r1"));
        assert!(live.watch("globex", "a1", "r1").is_none());
        assert!(live.watch("acme", "a2", "r1").is_none());
        assert_eq!(live.in_flight("acme", "a1"), vec![info("r1")]);
        let mut watch = live.watch("acme", "a1", "r1").unwrap();
        handle.failed("busy".to_string());
        assert!(matches!(watch.events.try_recv(), Ok(LiveEvent::Failed(_))));
        assert!(live.watch("acme", "a1", "r1").is_none());
        assert!(live.in_flight("acme", "a1").is_empty());
    }
}
