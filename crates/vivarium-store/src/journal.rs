//! Group commit of runs' writes: the marks that actions are running and the runs' records,
//! from every caller at once, go to the database through one writer that commits whatever
//! has queued up while the previous commit was being made durable. Under load many runs share
//! one transaction (one fsync on SQLite, one round trip on PostgreSQL) instead of paying for
//! two each; alone, a write is committed at once, as before.
//!
//! Each caller still waits for its own write to be durable, and gets that write's own result:
//! when a shared commit fails, its writes are committed again one by one, so one run whose
//! action was deleted meanwhile does not fail its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::meta::MetadataStore;
use crate::model::RunWrite;

/// The most writes one transaction takes: enough to absorb a burst of runs, few enough that a
/// transaction stays short.
const MOST_WRITES_PER_COMMIT: usize = 128;

/// A write waiting for the writer, with where its result goes.
struct Queued {
    write: RunWrite,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue to a store's run writer. Cloning it shares the writer; the writer stops when the
/// last clone is dropped, after committing what was queued.
#[derive(Clone)]
pub struct RunJournal {
    queue: mpsc::UnboundedSender<Queued>,
}

impl RunJournal {
    /// Starts the writer for `store` as a task of the current Tokio runtime (so this must be
    /// called from within one).
    pub fn start(store: Arc<dyn MetadataStore>) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_queued(store, queued));
        Self { queue }
    }

    /// Commits `write`, waiting until it is durable. Writes are made in the order their
    /// commits were first polled, whatever they share a transaction with.
    pub async fn commit(&self, write: RunWrite) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Queued { write, done })
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

/// The error of a write the writer can no longer make (the runtime is shutting down).
fn writer_gone() -> StoreError {
    StoreError::Backend("the run writer has stopped; the write was not made".into())
}

/// The writer: takes every write queued since its last commit and commits them together,
/// until every queue handle is gone.
async fn write_queued(store: Arc<dyn MetadataStore>, mut queued: mpsc::UnboundedReceiver<Queued>) {
    let mut batch = Vec::with_capacity(MOST_WRITES_PER_COMMIT);
    while queued.recv_many(&mut batch, MOST_WRITES_PER_COMMIT).await > 0 {
        commit_batch(store.as_ref(), std::mem::take(&mut batch)).await;
    }
}

/// Commits `batch` in one transaction and answers each write; when that fails, commits each
/// write alone so that each gets its own result.
async fn commit_batch(store: &dyn MetadataStore, batch: Vec<Queued>) {
    let (writes, answers): (Vec<RunWrite>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.write, queued.done))
        .unzip();
    let together = store.commit_run_writes(&writes).await;
    if together.is_ok() || writes.len() == 1 {
        for done in answers {
            answer(done, together.clone());
        }
        return;
    }
    for (write, done) in writes.iter().zip(answers) {
        let alone = store.commit_run_writes(std::slice::from_ref(write)).await;
        answer(done, alone);
    }
}

/// Sends a write's result to its caller; one that stopped waiting has nothing to learn, but a
/// failure it will not see is logged.
fn answer(done: oneshot::Sender<Result<(), StoreError>>, result: Result<(), StoreError>) {
    if let Err(Err(error)) = done.send(result) {
        tracing::error!(%error, "a run write nobody waited for failed");
    }
}
