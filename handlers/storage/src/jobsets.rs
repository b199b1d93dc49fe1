//! What storage keeps of jobsets and evaluations (DESIGN.md, "Jobsets and
//! evaluations"). Ids are chosen by the handlers (random, or derived from the path),
//! below 2^53 so that they survive D1's numbers (doubles).

use nhc_core::jobset::{Edge, JobsetName, Rev, Summary};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, StorePath};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsetRecord {
    pub id: i64,
    pub name: JobsetName,
    pub description: String,
    pub created_at: i64,
}

/// A jobset token found by its id.
#[derive(Debug, Clone)]
pub struct JobsetTokenRecord {
    pub jobset: JobsetName,
    pub secret_hash: String,
    pub revoked: bool,
}

/// One path of an upload: its id in `store_paths` (see the handlers' `path_id`).
#[derive(Debug, Clone)]
pub struct NewEvaluationItem {
    pub path_id: i64,
    pub path: StorePath,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
}

/// An evaluation to store; it replaces one of the same jobset and rev, atomically.
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    pub id: i64,
    pub jobset_id: i64,
    pub rev: Rev,
    pub created_at: i64,
    /// Distinct paths, in the upload's order (their position is `ord`).
    pub items: Vec<NewEvaluationItem>,
    pub edges: Vec<Edge>,
}

/// What `put_evaluation` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
    /// Two different paths have the same id (a 53-bit hash): nothing was stored.
    PathIdCollision,
}

/// An evaluation's row, with its cached summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationRecord {
    pub id: i64,
    pub rev: Rev,
    pub created_at: i64,
    pub paths: u64,
    pub summary: Summary,
    /// When `summary` was computed (microseconds); 0 = never.
    pub summary_at: i64,
}

/// One attestation of an evaluation's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationVote {
    pub builder: BuilderName,
    pub nar_hash: NarHash,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
}

/// A path of an evaluation with one of its attestations: one row per attestation,
/// or one without a vote when nobody attested the path. Ordered by `ord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationRow {
    pub ord: u64,
    pub path: StorePath,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    pub vote: Option<EvaluationVote>,
}
