//! What storage keeps of jobsets and evaluations (DESIGN.md, "Jobsets and
//! evaluations"). Ids are chosen by the handlers (random, or derived from the path),
//! below 2^53 so that they survive D1's numbers (doubles).

use nhc_core::jobset::{Edge, JobsetName, Rev, Summary};
use nhc_core::{BuilderName, DrvPath, OutputName, ReproStatus, StorePath};

use crate::VoteCounts;

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
    /// When `summary` was computed (microseconds). Valid when positive; a
    /// submission that touches one of the paths negates it (then decrements it), so
    /// that `-summary_at` is about when the now invalid summary was computed and a
    /// computation that started before cannot store its result; 0 = never computed.
    pub summary_at: i64,
}

/// Which paths of an evaluation [`crate::Storage::evaluation_items`] returns.
#[derive(Debug, Clone, Copy)]
pub struct ItemQuery<'a> {
    pub evaluation_id: i64,
    /// Positions `from..to`.
    pub from: u64,
    pub to: u64,
    /// The live statuses wanted, as a [`status_mask`].
    pub statuses: u8,
    /// Only paths containing this text.
    pub text: Option<&'a str>,
    /// Only paths this builder has not attested.
    pub not_by: Option<&'a BuilderName>,
    pub limit: u32,
}

/// Every status in a [`status_mask`].
pub const ALL_STATUSES: u8 = 0b1_1111;

/// The bit of a status in the masks of [`ItemQuery`] (the SQL computes the same
/// code from the counts: see the SQL storage's `STATUS_CODE`).
pub fn status_bit(s: ReproStatus) -> u8 {
    1 << match s {
        ReproStatus::Reproduced => 0,
        ReproStatus::PartiallyReproduced => 1,
        ReproStatus::NotReproduced => 2,
        ReproStatus::OneBuilder => 3,
        ReproStatus::NoBuilds => 4,
    }
}

/// The mask of these statuses; all of them when empty.
pub fn status_mask(statuses: &[ReproStatus]) -> u8 {
    if statuses.is_empty() {
        return ALL_STATUSES;
    }
    statuses.iter().fold(0, |m, s| m | status_bit(*s))
}

/// A path of an evaluation with its vote counts (the status follows with
/// `StatusSummary::from_counts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationItemRow {
    pub ord: u64,
    pub path: StorePath,
    /// What the upload said.
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    /// What an attestation of the path said (the least, when several differ).
    pub voted_drv_path: Option<DrvPath>,
    pub voted_output_name: Option<OutputName>,
    pub counts: VoteCounts,
}
