//! The [`Storage`] trait implemented once, over any [`Executor`]: every query, its
//! parameters and the decoding of its rows. A driver only runs statements.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use nhc_core::jobset::{JobsetName, Rev, Summary};
use nhc_core::{BuilderName, DrvPath, StorePath};
use nhc_storage::{
    AttestationRecord, BuilderRecord, Cursor, DerivationOutputVote, DiffRecord, DiffUsage, EvaluationItemRow,
    EvaluationRecord, InsertCounts, ItemQuery, JobsetRecord, JobsetTokenRecord, LogAppend, LogCheckpoint, NewBuilder,
    NewDiff, NewEvaluation, NewToken, PathCursor, PutOutcome, Storage, StoreError, StoreResult, Submission,
    TokenRecord, Vote, VoteCounts,
};

use crate::batch::{json_array_chunks, json_arrays, AttestationKey, InsertBatch};
use crate::exec::{Executor, Param, Statement};
use crate::{rows, statements as sql};

/// The storage on a SQL database reached through `E`.
pub struct SqlStorage<E> {
    exec: E,
}

impl<E: Executor> SqlStorage<E> {
    pub fn new(exec: E) -> Self {
        SqlStorage { exec }
    }

    /// The driver, for what is not storage (migrations, closing, its name).
    pub fn executor(&self) -> &E {
        &self.exec
    }

    async fn exists(&self, statement: &'static str, name: &BuilderName) -> StoreResult<bool> {
        Ok(!self.exec.query(statement, &[Param::Text(name.as_str())]).await?.is_empty())
    }

    /// True when a builder of that name exists and is not deleted.
    async fn live(&self, name: &BuilderName) -> StoreResult<bool> {
        self.exists(sql::BUILDER_LIVE, name).await
    }
}

impl<E: Executor> SqlStorage<E> {
    /// The votes on `paths` as (index in `paths`, builder, NAR hash), unparsed: one
    /// statement for any number of paths (several where the database limits a
    /// parameter's size), the list travelling as one JSON parameter.
    async fn vote_rows(&self, paths: &[&StorePath]) -> StoreResult<Vec<(usize, String, String)>> {
        let texts: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
        let mut found = Vec::new();
        for (start, list) in json_array_chunks(&texts, self.exec.max_param_bytes())? {
            for row in self.exec.query(self.exec.dialect().votes_of_paths, &[Param::Text(&list)]).await? {
                let (i, builder, nar_hash) = rows::vote_row(row)?;
                match start.checked_add(i).filter(|&i| i < paths.len()) {
                    Some(i) => found.push((i, builder, nar_hash)),
                    None => {
                        return Err(StoreError::Internal(format!("a vote for path {i} of a list of {}", paths.len())))
                    }
                }
            }
        }
        Ok(found)
    }
}

/// The conflict when a builder name is taken (deleted builders keep theirs).
fn name_taken(name: &BuilderName) -> StoreError {
    StoreError::Conflict(format!("a builder named {name} exists or existed"))
}

/// The conflict when a key name or key is registered to some builder.
fn key_taken(key: &nhc_core::PublicKey) -> StoreError {
    StoreError::Conflict(format!("the key {} (its name or its key) is registered already", key.name()))
}

/// Stores submissions in one transaction and returns each one's counts: the
/// default of [`Executor::insert_submission`], and what the sqlx group-commit
/// writer runs for a whole batch.
pub async fn insert_submissions<E: Executor + ?Sized>(
    exec: &E,
    submissions: &[&Submission],
) -> StoreResult<Vec<InsertCounts>> {
    let batch = InsertBatch::new(submissions, exec.max_param_bytes())?;
    let dialect = exec.dialect();
    let mut statements = Vec::with_capacity(1 + batch.attestations.len() + batch.derivations.len());
    if let Some(lock) = dialect.lock_log {
        statements.push(Statement::new(lock, vec![]));
    }
    // Each chunk numbers its rows on from the log's end, which the chunk before moved.
    let first_insert = statements.len();
    for rows in &batch.attestations {
        statements.push(Statement::new(dialect.insert_attestations, vec![Param::Text(rows)]));
    }
    for rows in &batch.derivations {
        statements.push(Statement::new(dialect.insert_derivation_outputs, vec![Param::Text(rows)]));
    }
    let results = exec.transaction(&statements).await?;
    if results.len() != statements.len() {
        return Err(StoreError::Internal("the transaction returned fewer results than statements".into()));
    }
    let mut inserted: HashSet<AttestationKey> = HashSet::new();
    let mut indexes: HashMap<AttestationKey, u64> = HashMap::new();
    for rows in results.into_iter().skip(first_insert).take(batch.attestations.len()) {
        for row in rows {
            let (key, index) = rows::log_index(row)?;
            inserted.insert(key.clone());
            indexes.insert(key, index);
        }
    }
    Ok(batch.counts(&inserted, &indexes))
}

#[async_trait]
impl<E: Executor> Storage for SqlStorage<E> {
    async fn health(&self) -> StoreResult<()> {
        if let Some(why) = self.exec.write_fault() {
            return Err(StoreError::Unavailable(format!("the database writer cannot write: {why}")));
        }
        self.exec.query(sql::HEALTH, &[]).await.map(|_| ())
    }

    async fn create_builder(&self, b: &NewBuilder) -> StoreResult<()> {
        // Checked first for a message that names the clash; the unique constraints
        // still decide a race (drivers map them to Conflict as well).
        if self.exists(sql::BUILDER_EXISTS, &b.name).await? {
            return Err(name_taken(&b.name));
        }
        for key in &b.public_keys {
            let key_base64 = key.key_base64();
            let clash =
                self.exec.query(sql::KEY_TAKEN, &[Param::Text(key.name().as_str()), Param::Text(&key_base64)]).await?;
            if !clash.is_empty() {
                return Err(key_taken(key));
            }
        }
        let name = Param::Text(b.name.as_str());
        let at = Param::Int(b.created_at);
        let keys: Vec<String> = b.public_keys.iter().map(|k| k.key_base64()).collect();
        let mut statements = vec![Statement::new(sql::INSERT_BUILDER, vec![name, at])];
        for (key, key_base64) in b.public_keys.iter().zip(&keys) {
            statements.push(Statement::new(
                sql::INSERT_KEY,
                vec![Param::Text(key.name().as_str()), Param::Text(key_base64), name, at],
            ));
        }
        statements.push(Statement::new(
            sql::INSERT_TOKEN,
            vec![Param::Text(&b.token.id), Param::Text(&b.token.secret_hash), name, at],
        ));
        self.exec.transaction(&statements).await.map(|_| ())
    }

    async fn list_builders(&self) -> StoreResult<Vec<BuilderRecord>> {
        rows::builders(self.exec.query(sql::LIST_BUILDERS, &[]).await?)
    }

    async fn builder_known(&self, name: &BuilderName) -> StoreResult<bool> {
        self.exists(sql::BUILDER_EXISTS, name).await
    }

    async fn add_token(&self, name: &BuilderName, token: &NewToken, created_at: i64) -> StoreResult<bool> {
        if !self.live(name).await? {
            return Ok(false);
        }
        let params = [
            Param::Text(&token.id),
            Param::Text(&token.secret_hash),
            Param::Text(name.as_str()),
            Param::Int(created_at),
        ];
        self.exec.query(sql::INSERT_TOKEN, &params).await?;
        Ok(true)
    }

    async fn revoke_tokens(&self, name: &BuilderName, at: i64) -> StoreResult<Option<u64>> {
        if !self.live(name).await? {
            return Ok(None);
        }
        let revoked = self.exec.query(sql::REVOKE_TOKENS, &[Param::Text(name.as_str()), Param::Int(at)]).await?;
        Ok(Some(revoked.len() as u64))
    }

    async fn delete_builder(&self, name: &BuilderName, purge: bool, at: i64) -> StoreResult<bool> {
        let exists = if purge { self.builder_known(name).await? } else { self.live(name).await? };
        if !exists {
            return Ok(false);
        }
        let n = Param::Text(name.as_str());
        let statements: Vec<Statement> = if purge {
            // Moving the builder's logged rows must not race an append of its own
            // (PostgreSQL): an attestation stored between the copy and the delete would
            // leave the log with a hole. Appenders take the same lock.
            let lock = self.exec.dialect().lock_log.map(|l| Statement::new(l, vec![]));
            lock.into_iter().chain(sql::PURGE.iter().map(|s| Statement::new(s, vec![n]))).collect()
        } else {
            vec![
                Statement::new(sql::DELETE_TOKENS, vec![n]),
                Statement::new(sql::MARK_DELETED, vec![n, Param::Int(at)]),
            ]
        };
        self.exec.transaction(&statements).await?;
        if purge {
            // Its attestations are gone: every cached summary may be wrong.
            self.exec.query(crate::jobsets::INVALIDATE_ALL, &[]).await?;
        }
        Ok(true)
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        rows::token(self.exec.query(sql::FIND_TOKEN, &[Param::Text(id)]).await?)
    }

    async fn insert_attestations(&self, submission: Submission) -> StoreResult<InsertCounts> {
        let paths: Vec<String> = submission.attestations.iter().map(|a| a.output_path.to_string()).collect();
        let counts = self.exec.insert_submission(submission).await?;
        // After the commit: a summary computed since cannot have missed these.
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.invalidate_summaries_of(&paths).await?;
        Ok(counts)
    }

    async fn attestations_of_path(
        &self,
        path: &StorePath,
        cursor: Option<&PathCursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>> {
        let (hash_part, path, limit) =
            (Param::Text(path.hash_part()), Param::Text(path.as_str()), Param::Int(i64::from(limit)));
        let found = match cursor {
            None => self.exec.query(sql::PATH_PAGE_FIRST, &[hash_part, path, limit]).await?,
            Some(c) => {
                let hash = c.nar_hash.to_string();
                let params = [
                    hash_part,
                    path,
                    limit,
                    Param::Int(c.submitted_at),
                    Param::Text(c.builder.as_str()),
                    Param::Text(&hash),
                ];
                self.exec.query(sql::PATH_PAGE_AFTER, &params).await?
            }
        };
        rows::attestations(found)
    }

    async fn votes_of_paths(&self, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
        let mut distinct: Vec<&StorePath> = paths.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut votes = Vec::new();
        for (i, builder, nar_hash) in self.vote_rows(&distinct).await? {
            votes.push(rows::vote(distinct[i], &builder, &nar_hash)?);
        }
        Ok(votes)
    }

    async fn builder_votes_of_paths(&self, builder: &BuilderName, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
        let paths: Vec<&str> = paths.iter().map(StorePath::as_str).collect();
        let mut votes = Vec::new();
        for list in json_arrays(&paths, self.exec.max_param_bytes())? {
            let params = [Param::Text(&list), Param::Text(builder.as_str())];
            for row in self.exec.query(self.exec.dialect().builder_votes_of_paths, &params).await? {
                votes.push(rows::path_vote(row)?);
            }
        }
        Ok(votes)
    }

    async fn vote_counts(&self, paths: &[StorePath]) -> StoreResult<Vec<VoteCounts>> {
        let paths: Vec<&StorePath> = paths.iter().collect();
        if let Some(counts) = self.exec.native_vote_counts(&paths).await {
            return counts;
        }
        let mut found = self.vote_rows(&paths).await?;
        // The rows come path by path already; sorting groups them whatever the plan.
        found.sort_unstable();
        let mut counts = vec![VoteCounts::default(); paths.len()];
        for votes in found.chunk_by(|a, b| a.0 == b.0) {
            if let Some(c) = counts.get_mut(votes[0].0) {
                *c = VoteCounts::count(votes.iter().map(|(_, b, h)| (b, h)));
            }
        }
        Ok(counts)
    }

    async fn derivation_votes(&self, drv: &DrvPath) -> StoreResult<Vec<DerivationOutputVote>> {
        let found = self.exec.query(sql::DERIVATION_VOTES, &[Param::Text(drv.as_str())]).await?;
        found.into_iter().map(rows::derivation_output_vote).collect()
    }

    async fn attestations_by_hash_part(
        &self,
        hash_part: &str,
        builder: Option<&BuilderName>,
    ) -> StoreResult<Vec<AttestationRecord>> {
        let mut found =
            rows::attestations(self.exec.query(sql::ATTESTATIONS_BY_HASH_PART, &[Param::Text(hash_part)]).await?)?;
        if let Some(b) = builder {
            found.retain(|r| &r.builder == b);
        }
        Ok(found)
    }

    async fn builder_attestations(
        &self,
        builder: &BuilderName,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>> {
        let (name, limit) = (Param::Text(builder.as_str()), Param::Int(i64::from(limit)));
        let found = match cursor {
            None => self.exec.query(sql::BUILDER_PAGE_FIRST, &[name, limit]).await?,
            Some(c) => {
                let hash = c.nar_hash.to_string();
                let params =
                    [name, limit, Param::Int(c.submitted_at), Param::Text(c.output_path.as_str()), Param::Text(&hash)];
                self.exec.query(sql::BUILDER_PAGE_AFTER, &params).await?
            }
        };
        rows::attestations(found)
    }

    // Jobsets: in `crate::jobsets`.

    async fn create_jobset(&self, jobset: &JobsetRecord) -> StoreResult<()> {
        self.jobset_create(jobset).await
    }

    async fn list_jobsets(&self) -> StoreResult<Vec<JobsetRecord>> {
        self.jobset_list().await
    }

    async fn find_jobset(&self, name: &JobsetName) -> StoreResult<Option<JobsetRecord>> {
        self.jobset_find(name).await
    }

    async fn delete_jobset(&self, name: &JobsetName) -> StoreResult<bool> {
        self.jobset_delete(name).await
    }

    async fn add_jobset_token(&self, name: &JobsetName, token: &NewToken, created_at: i64) -> StoreResult<bool> {
        self.jobset_add_token(name, token, created_at).await
    }

    async fn find_jobset_token(&self, id: &str) -> StoreResult<Option<JobsetTokenRecord>> {
        self.jobset_find_token(id).await
    }

    async fn put_evaluation(&self, evaluation: &NewEvaluation) -> StoreResult<PutOutcome> {
        self.evaluation_put(evaluation).await
    }

    async fn evaluations(&self, jobset_id: i64, limit: u32) -> StoreResult<Vec<EvaluationRecord>> {
        self.evaluation_list(jobset_id, limit).await
    }

    async fn find_evaluation(&self, jobset_id: i64, rev: &Rev) -> StoreResult<Option<EvaluationRecord>> {
        self.evaluation_find(jobset_id, rev).await
    }

    async fn evaluation_items(&self, query: &ItemQuery<'_>) -> StoreResult<Vec<EvaluationItemRow>> {
        self.evaluation_items_in(query).await
    }

    async fn evaluation_summary(&self, evaluation_id: i64, from: u64, to: u64) -> StoreResult<Summary> {
        self.evaluation_summary_in(evaluation_id, from, to).await
    }

    async fn evaluation_only_in(
        &self,
        evaluation_id: i64,
        other_id: i64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(StorePath, VoteCounts)>> {
        self.evaluation_only_in_range(evaluation_id, other_id, from, to).await
    }

    async fn store_summary(&self, evaluation_id: i64, summary: &Summary, at: i64, if_at: i64) -> StoreResult<bool> {
        self.evaluation_store_summary(evaluation_id, summary, at, if_at).await
    }

    async fn stale_evaluations(&self, limit: u32) -> StoreResult<Vec<EvaluationRecord>> {
        self.evaluation_stale(limit).await
    }

    async fn evaluation_dependents(
        &self,
        evaluation_id: i64,
        ords: &[u64],
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(u64, u64)>> {
        self.evaluation_dependents_in(evaluation_id, ords, from, to).await
    }

    // Diff reports: in `crate::diffs`.

    async fn diff_usage(&self, builder: &BuilderName, path: &StorePath) -> StoreResult<DiffUsage> {
        self.diff_usage_of(builder, path).await
    }

    async fn insert_diff(&self, diff: &NewDiff) -> StoreResult<bool> {
        self.diff_insert(diff).await
    }

    async fn diffs_of_path(&self, path: &StorePath, limit: u32) -> StoreResult<Vec<DiffRecord>> {
        self.diffs_of(path, limit).await
    }

    async fn diff_report(&self, path: &StorePath, id: i64) -> StoreResult<Option<(DiffRecord, Vec<u8>)>> {
        self.diff_with_report(path, id).await
    }

    async fn log_latest_checkpoint(&self) -> StoreResult<Option<LogCheckpoint>> {
        self.latest_checkpoint().await
    }

    async fn log_entries(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, nhc_storage::LogEntry)>> {
        self.entries(from, to).await
    }

    async fn log_hashes(&self, indexes: &[u64]) -> StoreResult<Vec<(u64, [u8; 32])>> {
        self.hashes(indexes).await
    }

    async fn log_append(&self, append: &LogAppend) -> StoreResult<bool> {
        self.append(append).await
    }
}
