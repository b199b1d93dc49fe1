//! One writer task per store. Submissions that arrive while a transaction runs wait
//! in a queue and go into the next transaction together (group commit): SQLite has
//! a single writer anyway, and one commit (one fsync) for many submissions is what
//! makes thousands of small submissions per second possible. Each submission still
//! gets its own counts, and a batch that fails is retried one submission at a time
//! so that one bad submission cannot fail its neighbours.

use std::collections::HashSet;

use nhc_handlers::storage::{InsertCounts, StoreResult, Submission};
use nhc_handlers::StoreError;
use tokio::sync::{mpsc, oneshot};

use nhc_sql::batch::{InsertBatch, Key};

use crate::convert;
use crate::error::store_error;
use crate::{on_pool, Pool};
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection; // begin_with on a SQLite connection

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

/// Where the writer writes. On a SQLite file it keeps a connection of its own with a
/// larger page cache: random inserts into the primary key then find the index's
/// upper levels in memory, which a pooled connection's small cache, shared with
/// reads, does not keep.
pub(crate) enum WriterDb {
    Own(SqliteConnection),
    Shared(Pool),
}

impl Writer {
    pub(crate) fn spawn(db: WriterDb) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(db, rx));
        Writer { queue }
    }

    pub(crate) async fn submit(&self, submission: Submission) -> StoreResult<InsertCounts> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { submission, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Internal("the database writer dropped a submission".into()))?
    }
}

async fn run(mut db: WriterDb, mut rx: mpsc::Receiver<Job>) {
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
        match insert_batch(&mut db, &submissions).await {
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
                    let result = insert_batch(&mut db, &[&job.submission]).await.map(|c| c[0]);
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Inserts all submissions in one transaction and returns each one's counts.
async fn insert_batch(db: &mut WriterDb, submissions: &[&Submission]) -> StoreResult<Vec<InsertCounts>> {
    let batch = InsertBatch::new(submissions, nhc_sql::batch::UNLIMITED)?;
    // The same statements on whichever executor: `$p` is used once, to begin.
    macro_rules! insert {
        ($p:expr, $dialect:expr) => {{
            let dialect: &nhc_sql::Dialect = $dialect;
            let mut tx = $p.begin_with(dialect.begin_write).await.map_err(store_error)?;
            let mut keys: HashSet<Key> = HashSet::new();
            for rows in &batch.attestations {
                let returned = sqlx::query(dialect.insert_attestations)
                    .bind(rows)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(store_error)?;
                for r in &returned {
                    keys.insert(convert::key(r)?.key());
                }
            }
            for rows in &batch.derivations {
                sqlx::query(dialect.insert_derivation_outputs)
                    .bind(rows)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
            }
            tx.commit().await.map_err(store_error)?;
            keys
        }};
    }
    let inserted = match db {
        WriterDb::Own(conn) => insert!(conn, &nhc_sql::SQLITE),
        WriterDb::Shared(pool) => {
            let dialect = pool.dialect();
            on_pool!(pool, p => insert!(p, dialect))
        }
    };
    Ok(batch.counts(&inserted))
}
