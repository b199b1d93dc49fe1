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

use crate::convert::Get;
use crate::error::store_error;
use crate::{on_pool, Pool};

/// Upper bound of attestations in one transaction.
const MAX_BATCH_ROWS: usize = 20_000;

struct Job {
    submission: Submission,
    reply: oneshot::Sender<StoreResult<InsertCounts>>,
}

pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(pool: Pool) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, rx));
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

async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>) {
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
        match insert_batch(&pool, &submissions).await {
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
                    let result = insert_batch(&pool, &[&job.submission]).await.map(|c| c[0]);
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Inserts all submissions in one transaction and returns each one's counts.
async fn insert_batch(pool: &Pool, submissions: &[&Submission]) -> StoreResult<Vec<InsertCounts>> {
    // The first occurrence of a key in the batch is the one sent to the database;
    // later ones are duplicates without asking it.
    let mut first_seen: HashSet<(&str, &str, String)> = HashSet::new();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut derivations: Vec<serde_json::Value> = Vec::new();
    let mut candidate: Vec<Vec<Option<(String, String, String)>>> = Vec::with_capacity(submissions.len());
    for s in submissions {
        let mut mine = Vec::with_capacity(s.attestations.len());
        for a in &s.attestations {
            let hash = a.nar_hash.to_string();
            if let (Some(drv), Some(out)) = (&a.drv_path, &a.output_name) {
                derivations.push(serde_json::json!([drv.as_str(), out.as_str(), a.output_path.as_str()]));
            }
            if first_seen.insert((a.output_path.as_str(), s.builder.as_str(), hash.clone())) {
                rows.push(serde_json::json!([
                    a.output_path.as_str(),
                    s.builder.as_str(),
                    hash,
                    a.output_path.hash_part(),
                    a.nar_size as i64,
                    a.references.to_space_separated(),
                    a.signature.to_string(),
                    a.drv_path.as_ref().map(|d| d.as_str()),
                    a.output_name.as_ref().map(|o| o.as_str()),
                    s.submitted_at,
                ]));
                mine.push(Some((a.output_path.as_str().to_owned(), s.builder.as_str().to_owned(), hash)));
            } else {
                mine.push(None);
            }
        }
        candidate.push(mine);
    }
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Internal(e.to_string()))?;
    let derivations = serde_json::to_string(&derivations).map_err(|e| StoreError::Internal(e.to_string()))?;

    let inserted: HashSet<(String, String, String)> = on_pool!(pool, p, sql = (SQLITE_INSERT, PG_INSERT) => {
        let mut tx = p.begin_with(crate::begin_write(pool)).await.map_err(store_error)?;
        let returned = sqlx::query(sql).bind(&rows).fetch_all(&mut *tx).await.map_err(store_error)?;
        let keys = returned
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)))
            .collect::<StoreResult<HashSet<_>>>()?;
        let drv_sql = match pool { Pool::Sqlite(_) => SQLITE_DERIVATIONS, Pool::Postgres(_) => PG_DERIVATIONS };
        sqlx::query(drv_sql).bind(&derivations).execute(&mut *tx).await.map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        keys
    });

    Ok(candidate
        .into_iter()
        .map(|mine| {
            let stored = mine.iter().filter(|k| k.as_ref().is_some_and(|k| inserted.contains(k))).count() as u64;
            InsertCounts { stored, duplicates: mine.len() as u64 - stored }
        })
        .collect())
}

// The batch travels as one JSON parameter, so the statement text never changes
// with the batch size (one prepared statement, no parameter limits).
// SQLite needs the `WHERE true` to parse an upsert on INSERT ... SELECT.
const SQLITE_INSERT: &str = "INSERT INTO attestations \
    (output_path, builder, nar_hash, hash_part, nar_size, refs, signature, drv_path, output_name, submitted_at) \
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9 \
    FROM json_each($1) WHERE true \
    ON CONFLICT (output_path, builder, nar_hash) DO NOTHING \
    RETURNING output_path, builder, nar_hash";

const PG_INSERT: &str = "INSERT INTO attestations \
    (output_path, builder, nar_hash, hash_part, nar_size, refs, signature, drv_path, output_name, submitted_at) \
    SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, (v ->> 4)::bigint, \
           v ->> 5, v ->> 6, v ->> 7, v ->> 8, (v ->> 9)::bigint \
    FROM json_array_elements($1::json) AS v \
    ON CONFLICT (output_path, builder, nar_hash) DO NOTHING \
    RETURNING output_path, builder, nar_hash";

const SQLITE_DERIVATIONS: &str = "INSERT INTO derivation_outputs (drv_path, output_name, output_path) \
    SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1) WHERE true \
    ON CONFLICT (drv_path, output_name, output_path) DO NOTHING";

const PG_DERIVATIONS: &str = "INSERT INTO derivation_outputs (drv_path, output_name, output_path) \
    SELECT v ->> 0, v ->> 1, v ->> 2 FROM json_array_elements($1::json) AS v \
    ON CONFLICT (drv_path, output_name, output_path) DO NOTHING";
