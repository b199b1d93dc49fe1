//! One writer task per store. Submissions that arrive while a transaction runs wait
//! in a queue and go into the next transaction together (group commit): SQLite has
//! a single writer anyway, and one commit (one fsync) for many submissions is what
//! makes thousands of small submissions per second possible. Each submission still
//! gets its own counts, and a batch that fails is retried one submission at a time
//! so that one bad submission cannot fail its neighbours.
//!
//! When a write fails as "unavailable" (an I/O or connection error, a lock held too
//! long), the writer checks at once with a write of its own. If that fails too, the
//! writer counts as broken: `/health` says so, submissions get 503 at once, and the
//! writer reopens its connection (SQLite) or waits for the pool to reconnect
//! (PostgreSQL), trying again with a growing pause, until a write succeeds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nhc_sql::{Executor, Statement};
use nhc_storage::{InsertCounts, StoreError, StoreResult, Submission};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::exec::PoolExecutor;
use crate::lite::LitePool;
use crate::Pool;

/// Upper bound of attestations in one transaction: beyond a few thousand, a bigger
/// batch saves little and its parameters cost memory.
const MAX_BATCH_ROWS: usize = 5_000;

/// The pauses between attempts to recover a broken writer.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// A write that changes nothing but takes the write lock and writes a page: it fails
/// when writing fails.
const WRITE_PROBE: &str = "UPDATE schema_meta SET value = value WHERE key = 'version'";

struct Job {
    submission: Submission,
    reply: oneshot::Sender<StoreResult<InsertCounts>>,
}

/// How the writer gets a new connection after losing one.
pub(crate) enum Reopen {
    /// A SQLite file: a new connection of its own with these options (which do not
    /// create the file: a database that vanished is not replaced by an empty one).
    Sqlite { options: Box<SqliteConnectOptions>, acquire_timeout: Duration },
    /// A pool that replaces broken connections itself (PostgreSQL), or that cannot
    /// be reopened (SQLite in memory): the writer only tries again.
    Same,
}

impl Reopen {
    async fn open(&self, current: &PoolExecutor) -> StoreResult<PoolExecutor> {
        match self {
            Reopen::Same => Ok(current.clone()),
            Reopen::Sqlite { options, acquire_timeout } => LitePool::open(options, 1, *acquire_timeout)
                .await
                .map(|p| PoolExecutor { pool: Pool::Sqlite(Arc::new(p)) })
                .map_err(crate::error::store_error),
        }
    }
}

/// Why the writer cannot write now (None: it can, as far as it knows).
type Fault = Arc<Mutex<Option<String>>>;

pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
    fault: Fault,
}

impl Writer {
    /// `db`: on a SQLite file, a connection of the writer's own with a larger page
    /// cache (random inserts into the primary key then find the index's upper levels
    /// in memory); otherwise the pool that reads use.
    pub(crate) fn spawn(db: PoolExecutor, reopen: Reopen) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        let fault = Fault::default();
        tokio::spawn(run(db, reopen, rx, fault.clone()));
        Writer { queue, fault }
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

    /// Why submissions cannot be stored now, if the writer knows it cannot write.
    pub(crate) fn fault(&self) -> Option<String> {
        if self.queue.is_closed() {
            return Some("the database writer has stopped".into());
        }
        self.fault.lock().map(|f| f.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

fn set_fault(fault: &Fault, value: Option<String>) {
    match fault.lock() {
        Ok(mut f) => *f = value,
        Err(p) => *p.into_inner() = value,
    }
}

async fn run(mut db: PoolExecutor, reopen: Reopen, mut rx: mpsc::Receiver<Job>, fault: Fault) {
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
        let results: Vec<StoreResult<InsertCounts>> = match nhc_sql::insert_submissions(&db, &submissions).await {
            Ok(counts) => counts.into_iter().map(Ok).collect(),
            Err(e) if jobs.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "batched insert failed; retrying one by one");
                let mut results = Vec::with_capacity(jobs.len());
                let mut unavailable = false;
                for job in &jobs {
                    let result = if unavailable {
                        // The database failed a neighbour: do not wait on it again.
                        Err(StoreError::Unavailable("the database cannot be written to now".into()))
                    } else {
                        nhc_sql::insert_submissions(&db, &[&job.submission]).await.and_then(|mut c| {
                            c.pop().ok_or_else(|| StoreError::Internal("no counts for a submission".into()))
                        })
                    };
                    unavailable |= matches!(result, Err(StoreError::Unavailable(_)));
                    results.push(result);
                }
                results
            }
        };
        // Whether the writer is broken is known before anyone hears of the failure:
        // a client that got 503 and asks `/health` then hears the same.
        let mut broken = false;
        if results.iter().any(|r| matches!(r, Err(StoreError::Unavailable(_)))) {
            if let Err(e) = probe(&db).await {
                tracing::error!(error = %e, "the database writer cannot write; reconnecting");
                set_fault(&fault, Some(e.to_string()));
                broken = true;
            }
        }
        let mut results = results.into_iter();
        for job in jobs {
            let result =
                results.next().unwrap_or_else(|| Err(StoreError::Internal("no counts for a submission".into())));
            let _ = job.reply.send(result);
        }
        if broken {
            match recover(&db, &reopen, &mut rx, &fault).await {
                Some(new) => db = new,
                None => return,
            }
        }
    }
}

/// Whether a write succeeds on `db`.
async fn probe(db: &PoolExecutor) -> StoreResult<()> {
    db.transaction(&[Statement::new(WRITE_PROBE, Vec::new())]).await.map(|_| ())
}

/// Reopens and probes with a growing pause until a write succeeds; meanwhile every
/// submission is answered "unavailable" at once. `None` when the store is closing.
async fn recover(
    db: &PoolExecutor,
    reopen: &Reopen,
    rx: &mut mpsc::Receiver<Job>,
    fault: &Fault,
) -> Option<PoolExecutor> {
    let mut pause = FIRST_PAUSE;
    loop {
        let until = Instant::now() + pause;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                job = rx.recv() => {
                    let job = job?;
                    let why = fault.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
                    let _ = job.reply.send(Err(StoreError::Unavailable(format!(
                        "the database writer is reconnecting: {why}"
                    ))));
                }
            }
        }
        let attempt = match reopen.open(db).await {
            Ok(candidate) => probe(&candidate).await.map(|()| candidate),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(candidate) => {
                tracing::warn!("the database writer can write again");
                set_fault(fault, None);
                return Some(candidate);
            }
            Err(e) => {
                tracing::debug!(error = %e, pause_ms = pause.as_millis() as u64, "the database writer still cannot write");
                set_fault(fault, Some(e.to_string()));
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}
