//! The mark that an action is running on this replica, written only for runs that last.
//!
//! The mark exists so that, if this replica dies mid-run, another one can tell the run will
//! never finish and close it ([`crate::replicas`]). A run that ends within [`MARK_AFTER`] has
//! no use for it: its record, committed before its trigger is answered, moves the action's
//! status anyway. So the mark is written only once a run has gone on that long, sparing most
//! runs a database write; and when it is written, it is committed before anything else is
//! written about the run.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vivarium_store::{RunJournal, RunWrite, StoreError};

/// How long a run goes on before its action is marked running: far below the time after
/// which a silent replica's runs are closed (seconds to minutes), far above most runs.
pub const MARK_AFTER: Duration = Duration::from_secs(1);

/// A mark armed for one run: written through the journal if the run is still going after
/// [`MARK_AFTER`].
pub struct RunningMark {
    /// Dropped to call the mark off.
    call_off: oneshot::Sender<()>,
    written: JoinHandle<Result<(), StoreError>>,
}

impl RunningMark {
    /// Arms `mark` (a [`RunWrite::Started`]) for a run starting now.
    pub fn arm(journal: &RunJournal, mark: RunWrite) -> Self {
        let (call_off, called_off) = oneshot::channel::<()>();
        let journal = journal.clone();
        let written = tokio::spawn(async move {
            tokio::select! {
                _ = called_off => Ok(()),
                () = tokio::time::sleep(MARK_AFTER) => journal.commit(mark).await,
            }
        });
        Self { call_off, written }
    }

    /// Calls the mark off if it was not written yet, else waits until it is committed, so
    /// that what is written next about the run lands after it. Answers the mark's failure
    /// (its action deleted meanwhile, the database down).
    pub async fn settle(self) -> Result<(), StoreError> {
        drop(self.call_off);
        self.written
            .await
            .map_err(|e| StoreError::Backend(format!("the running mark's task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vivarium_store::{MetadataStore, SqlStore};

    use super::*;

    /// A journal over a real store holding the organization but no action, so that a mark
    /// that is written fails with `NotFound` and one that is not stays silent.
    async fn journal() -> RunJournal {
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        store.ensure_org("acme").await.unwrap();
        RunJournal::start(Arc::new(store))
    }

    fn mark() -> RunWrite {
        RunWrite::Started {
            org: "acme".into(),
            action_id: "gone".into(),
            replica: "r1".into(),
        }
    }

    #[tokio::test]
    async fn a_run_settled_at_once_writes_no_mark() {
        let mark = RunningMark::arm(&journal().await, mark());
        assert!(mark.settle().await.is_ok(), "nothing was written");
    }

    #[tokio::test]
    async fn a_run_past_the_delay_is_marked_and_settling_answers_the_write() {
        let mark = RunningMark::arm(&journal().await, mark());
        tokio::time::sleep(MARK_AFTER + Duration::from_millis(500)).await;
        let settled = mark.settle().await;
        assert!(
            matches!(settled, Err(StoreError::NotFound(_))),
            "the mark was written, and its failure answered: {settled:?}"
        );
    }
}
