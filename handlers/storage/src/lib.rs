//! The storage trait every deployment implements (one SQL storage in `nhc-sql`, run by
//! sqlx on SQLite and PostgreSQL and by D1 in the Worker). It speaks in domain types;
//! rules about what is valid, who may submit and how statuses are computed stay in
//! the handlers. No HTTP here: storages do not depend on the web framework.

use async_trait::async_trait;
use nhc_core::fingerprint::References;
use nhc_core::jobset::{JobsetName, Rev, Summary};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};

mod diffs;
mod jobsets;
mod log;
pub use diffs::{DiffRecord, DiffUsage, NewDiff, DIFF_CHUNK_BYTES};
pub use jobsets::{
    status_bit, status_mask, EvaluationItemRow, EvaluationRecord, ItemQuery, JobsetRecord, JobsetTokenRecord,
    NewEvaluation, NewEvaluationItem, PutOutcome, ALL_STATUSES,
};
pub use log::{
    LogAppend, LogCheckpoint, LogEntry, LogPosition, MAX_LOG_ENTRIES_READ, MAX_LOG_READ, MAX_LOG_READ_REFERENCE_BYTES,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out: 503, worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was hit (a builder name, key name or key that exists): 409.
    #[error("{0}")]
    Conflict(String),
    /// Anything else: a bug or corrupt data, 500.
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A builder to create, with its first token.
#[derive(Debug, Clone)]
pub struct NewBuilder {
    pub name: BuilderName,
    pub public_keys: Vec<PublicKey>,
    pub token: NewToken,
    pub created_at: i64,
}

/// What storage keeps of a token: its lookup id and the SHA-256 (hex) of its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub secret_hash: String,
}

#[derive(Debug, Clone)]
pub struct BuilderRecord {
    pub name: BuilderName,
    pub public_keys: Vec<PublicKey>,
    pub created_at: i64,
}

/// A token found by its id.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub builder: BuilderName,
    pub secret_hash: String,
    pub revoked: bool,
    /// The builder's registered keys.
    pub public_keys: Vec<PublicKey>,
}

/// One verified output of a submission.
#[derive(Debug, Clone)]
pub struct NewAttestation {
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub signature: Signature,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
}

/// A verified submission: stored all together or not at all.
#[derive(Debug, Clone)]
pub struct Submission {
    pub builder: BuilderName,
    pub attestations: Vec<NewAttestation>,
    pub submitted_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertCounts {
    pub stored: u64,
    pub duplicates: u64,
    /// Where the log put each stored attestation, in log order.
    pub log: Vec<LogPosition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRecord {
    pub builder: BuilderName,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub signature: Signature,
    /// Microseconds since the epoch.
    pub submitted_at: i64,
    /// Its index in the transparency log (None: stored before the log existed).
    pub log_index: Option<u64>,
}

/// One builder's vote on one output path: enough to compute a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub output_path: StorePath,
    pub builder: BuilderName,
    pub nar_hash: NarHash,
}

/// What a path's status is computed from (`StatusSummary::from_counts`): its distinct
/// (builder, NAR hash) pairs, distinct builders and distinct NAR hashes. All zero for
/// a path nobody attested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoteCounts {
    pub attestations: usize,
    pub builders: usize,
    pub distinct_hashes: usize,
}

impl VoteCounts {
    /// Counts one path's `(builder, hash)` votes; repeated votes count once.
    pub fn count<B: Ord, H: Ord>(votes: impl IntoIterator<Item = (B, H)>) -> Self {
        let mut pairs: Vec<(B, H)> = votes.into_iter().collect();
        pairs.sort_unstable();
        pairs.dedup();
        // Sorted by builder first: a builder's pairs are adjacent.
        let builders = pairs.iter().enumerate().filter(|(i, (b, _))| *i == 0 || pairs[i - 1].0 != *b).count();
        let mut hashes: Vec<&H> = pairs.iter().map(|(_, h)| h).collect();
        hashes.sort_unstable();
        hashes.dedup();
        VoteCounts { attestations: pairs.len(), builders, distinct_hashes: hashes.len() }
    }
}

/// A path recorded as a derivation's output, with one attestation of that path
/// when somebody attested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationOutputVote {
    pub output_name: OutputName,
    pub output_path: StorePath,
    /// One attestation of the path, by anyone (None when nobody attested it).
    pub vote: Option<OutputPathVote>,
}

/// One builder's attestation of a path named as a derivation's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPathVote {
    pub builder: BuilderName,
    pub nar_hash: NarHash,
    /// When this attestation named this derivation output (None: it named another
    /// derivation, or none, e.g. a fixed-output path built from another deriver).
    pub claimed_at: Option<i64>,
}

/// Position in a path's attestations, oldest first: the last row of a page. Within one
/// path, (builder, NAR hash) is unique, so the order is total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCursor {
    pub submitted_at: i64,
    pub builder: BuilderName,
    pub nar_hash: NarHash,
}

/// Position in a builder's attestations, newest first: the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub submitted_at: i64,
    pub output_path: StorePath,
    pub nar_hash: NarHash,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Answers when the database does.
    async fn health(&self) -> StoreResult<()>;

    /// Creates a builder with its keys and first token. `Conflict` when the name
    /// (also of a deleted builder), a key name or a key is taken.
    async fn create_builder(&self, builder: &NewBuilder) -> StoreResult<()>;

    /// Builders that are not deleted, oldest first, with their keys.
    async fn list_builders(&self) -> StoreResult<Vec<BuilderRecord>>;

    /// True when the name belongs to a builder, deleted or not (its attestations may remain).
    async fn builder_known(&self, name: &BuilderName) -> StoreResult<bool>;

    /// Adds a token to a live builder; false when there is none of that name.
    async fn add_token(&self, name: &BuilderName, token: &NewToken, created_at: i64) -> StoreResult<bool>;

    /// Revokes every active token of a live builder; `None` when there is none of that name.
    async fn revoke_tokens(&self, name: &BuilderName, at: i64) -> StoreResult<Option<u64>>;

    /// Deletes a builder and its tokens. Without `purge` the name and keys stay
    /// reserved and its attestations remain; with `purge` everything of it goes.
    /// False when there was no such builder (a deleted one counts only for a purge).
    async fn delete_builder(&self, name: &BuilderName, purge: bool, at: i64) -> StoreResult<bool>;

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>>;

    /// Stores a verified submission in one transaction. An attestation whose
    /// (output path, builder, NAR hash) exists is a duplicate and changes nothing.
    async fn insert_attestations(&self, submission: Submission) -> StoreResult<InsertCounts>;

    /// Attestations of this output path, oldest first (by time, then builder, then
    /// NAR hash), strictly after `cursor`, at most `limit`.
    async fn attestations_of_path(
        &self,
        path: &StorePath,
        cursor: Option<&PathCursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>>;

    /// Every (path, builder, hash) vote for these paths; at most 10,000 paths.
    async fn votes_of_paths(&self, paths: &[StorePath]) -> StoreResult<Vec<Vote>>;

    /// The (path, builder, hash) votes of one builder for these paths: what the cap on
    /// distinct hashes per (builder, path) is checked against. One primary-key range
    /// per distinct path asked.
    async fn builder_votes_of_paths(&self, builder: &BuilderName, paths: &[StorePath]) -> StoreResult<Vec<Vote>>;

    /// The counts of each path asked, in the order asked (a path asked twice gets its
    /// counts twice); at most 10,000 paths. The default counts [`Storage::votes_of_paths`];
    /// a store can count without building a record per vote.
    async fn vote_counts(&self, paths: &[StorePath]) -> StoreResult<Vec<VoteCounts>> {
        let mut index: std::collections::HashMap<&StorePath, Vec<(BuilderName, NarHash)>> =
            paths.iter().map(|p| (p, Vec::new())).collect();
        for v in self.votes_of_paths(paths).await? {
            if let Some(list) = index.get_mut(&v.output_path) {
                list.push((v.builder, v.nar_hash));
            }
        }
        Ok(paths
            .iter()
            .map(|p| index.get(p).map(|votes| VoteCounts::count(votes.iter().map(|(b, h)| (b, h)))).unwrap_or_default())
            .collect())
    }

    /// The outputs recorded for a derivation, each with its votes (one row per vote,
    /// or one row without a vote when nobody attested that output).
    async fn derivation_votes(&self, drv: &DrvPath) -> StoreResult<Vec<DerivationOutputVote>>;

    /// Attestations of the output paths with this 32-character hash part, oldest first,
    /// optionally of one builder only.
    async fn attestations_by_hash_part(
        &self,
        hash_part: &str,
        builder: Option<&BuilderName>,
    ) -> StoreResult<Vec<AttestationRecord>>;

    /// A builder's attestations, newest first, strictly after `cursor`.
    async fn builder_attestations(
        &self,
        builder: &BuilderName,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>>;

    // Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations").

    /// Creates a jobset; `Conflict` when the name is taken.
    async fn create_jobset(&self, jobset: &JobsetRecord) -> StoreResult<()>;

    /// Every jobset, by name.
    async fn list_jobsets(&self) -> StoreResult<Vec<JobsetRecord>>;

    async fn find_jobset(&self, name: &JobsetName) -> StoreResult<Option<JobsetRecord>>;

    /// Deletes a jobset with its evaluations and tokens; false when there is none.
    async fn delete_jobset(&self, name: &JobsetName) -> StoreResult<bool>;

    /// Adds an upload token to a jobset; false when there is none of that name.
    async fn add_jobset_token(&self, name: &JobsetName, token: &NewToken, created_at: i64) -> StoreResult<bool>;

    async fn find_jobset_token(&self, id: &str) -> StoreResult<Option<JobsetTokenRecord>>;

    /// Stores an evaluation in one transaction, replacing the jobset's evaluation of
    /// the same rev: readers see the old one or the new one, never a part.
    async fn put_evaluation(&self, evaluation: &NewEvaluation) -> StoreResult<PutOutcome>;

    /// A jobset's evaluations, newest first, at most `limit`.
    async fn evaluations(&self, jobset_id: i64, limit: u32) -> StoreResult<Vec<EvaluationRecord>>;

    async fn find_evaluation(&self, jobset_id: i64, rev: &Rev) -> StoreResult<Option<EvaluationRecord>>;

    /// The paths of an evaluation that [`ItemQuery`] selects, each with its vote
    /// counts, ordered by position; at most `limit`.
    async fn evaluation_items(&self, query: &ItemQuery<'_>) -> StoreResult<Vec<EvaluationItemRow>>;

    /// The live summary of the paths at positions `from..to` of an evaluation.
    async fn evaluation_summary(&self, evaluation_id: i64, from: u64, to: u64) -> StoreResult<Summary>;

    /// The paths at positions `from..to` of `evaluation_id` that `other_id` does not
    /// hold, with their vote counts, ordered by position (a diff's unpaired side).
    async fn evaluation_only_in(
        &self,
        evaluation_id: i64,
        other_id: i64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(StorePath, VoteCounts)>>;

    /// Caches an evaluation's summary, computed at `at`, if its `summary_at` is still
    /// `if_at` (what it was when the computation started: a submission in between
    /// invalidated it); true when stored.
    async fn store_summary(&self, evaluation_id: i64, summary: &Summary, at: i64, if_at: i64) -> StoreResult<bool>;

    /// Evaluations whose cached summary is invalid (`summary_at <= 0`), at most `limit`.
    async fn stale_evaluations(&self, limit: u32) -> StoreResult<Vec<EvaluationRecord>>;

    /// For the positions `ords` of an evaluation, how many of the upload's dependency
    /// edges lead to each (how many of its paths depend on it directly), counting the
    /// edges from positions `from..to` only (callers go over the evaluation in
    /// bounded ranges): `(ord, count)`, positions without such an edge left out.
    async fn evaluation_dependents(
        &self,
        evaluation_id: i64,
        ords: &[u64],
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(u64, u64)>>;

    // Diff reports (docs/api.md, "Diff reports").

    /// A builder's stored bytes of reports, and its number of reports on `path`.
    async fn diff_usage(&self, builder: &BuilderName, path: &StorePath) -> StoreResult<DiffUsage>;

    /// Stores a report and its pieces in one transaction. False when a report with
    /// this id exists (the same upload again): nothing changes.
    async fn insert_diff(&self, diff: &NewDiff) -> StoreResult<bool>;

    /// The reports on a path, newest first, at most `limit`.
    async fn diffs_of_path(&self, path: &StorePath, limit: u32) -> StoreResult<Vec<DiffRecord>>;

    /// One report on a path with its gzip bytes; `None` when there is no such report
    /// on that path.
    async fn diff_report(&self, path: &StorePath, id: i64) -> StoreResult<Option<(DiffRecord, Vec<u8>)>>;

    // The transparency log (docs/api.md, "Transparency log"). `insert_attestations`
    // gives every attestation it stores the log's next index, in the same transaction:
    // gapless, in acceptance order. Purging keeps the logged ones readable here.

    /// The checkpoint of the largest tree stored, if any.
    async fn log_latest_checkpoint(&self) -> StoreResult<Option<LogCheckpoint>>;

    /// The entries at indexes `from..to` that exist, in order, as far as one read goes:
    /// at most [`MAX_LOG_ENTRIES_READ`] and [`MAX_LOG_READ_REFERENCE_BYTES`] of references
    /// (at least one entry when one exists). Callers read on from the last one returned.
    async fn log_entries(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, LogEntry)>>;

    /// The stored hashes at these indexes (the Go sumdb layout, see `nhc-tlog`), as
    /// (index, hash) in no particular order; missing ones are left out. At most
    /// [`MAX_LOG_READ`] indexes.
    async fn log_hashes(&self, indexes: &[u64]) -> StoreResult<Vec<(u64, [u8; 32])>>;

    /// Stores a sequencing step in one transaction: the stored hashes from
    /// `first_hash_index` on (existing ones are kept: every sequencer computes the
    /// same) and the checkpoint. False when a checkpoint of that size existed.
    async fn log_append(&self, append: &LogAppend) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::VoteCounts;

    fn count(votes: &[(&str, &str)]) -> (usize, usize, usize) {
        let c = VoteCounts::count(votes.iter().copied());
        (c.attestations, c.builders, c.distinct_hashes)
    }

    #[test]
    fn counts_distinct_pairs_builders_and_hashes() {
        assert_eq!(count(&[]), (0, 0, 0));
        assert_eq!(count(&[("b", "h1"), ("a", "h1"), ("a", "h1")]), (2, 2, 1));
        assert_eq!(count(&[("a", "h2"), ("b", "h1"), ("a", "h1")]), (3, 2, 2));
        assert_eq!(count(&[("c", "h3"), ("a", "h1"), ("b", "h2")]), (3, 3, 3));
    }
}
