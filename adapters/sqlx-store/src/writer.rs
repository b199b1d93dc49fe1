//! One writer task per store. Submissions that arrive while a transaction runs wait
//! in a queue and go into the next transaction together (group commit): SQLite has
//! a single writer anyway, and one commit (one fsync) for many submissions is what
//! makes thousands of small submissions per second possible. Each submission still
//! gets its own counts, and a batch that fails is retried one submission at a time
//! so that one bad submission cannot fail its neighbours.

use nhc_storage::{InsertCounts, StoreError, StoreResult, Submission};
use tokio::sync::{mpsc, oneshot};

use crate::exec::PoolExecutor;

/// Upper bound of attestations in one transaction: beyond a few thousand, a bigger
/// batch saves little and its parameters cost memory.
const MAX_BATCH_ROWS: usize = 5_000;

struct Job {
    submission: Submission,
    reply: oneshot::Sender<StoreResult<InsertCounts>>,
}

pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// `db`: on a SQLite file, a connection of the writer's own with a larger page
    /// cache (random inserts into the primary key then find the index's upper levels
    /// in memory); otherwise the pool that reads use.
    pub(crate) fn spawn(db: PoolExecutor) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(db, rx));
        Writer { queue }
    }

    /// Queues a submission for the next transaction and waits for its counts.
    pub(crate) async fn insert(&self, submission: Submission) -> StoreResult<InsertCounts> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { submission, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Internal("the database writer dropped a submission".into()))?
    }
}

async fn run(db: PoolExecutor, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut rows = first.submission.attestations.len();
        let mut jobs = vec![first];
        while rows < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(job) => {
                    rows += job.submission.attestations.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let submissions: Vec<&Submission> = jobs.iter().map(|j| &j.submission).collect();
        match nhc_sql::insert_submissions(&db, &submissions).await {
            Ok(counts) => {
                for (job, c) in jobs.into_iter().zip(counts) {
                    let _ = job.reply.send(Ok(c));
                }
            }
            Err(e) if jobs.len() == 1 => {
                let _ = jobs.pop().map(|j| j.reply.send(Err(e)));
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "batched insert failed; retrying one by one");
                for job in jobs {
                    let result = nhc_sql::insert_submissions(&db, &[&job.submission]).await.and_then(|mut c| {
                        c.pop().ok_or_else(|| StoreError::Internal("no counts for a submission".into()))
                    });
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
