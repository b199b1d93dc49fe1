//! What storage keeps of a diff report (docs/api.md, "Diff reports").

use nhc_core::diff::DiffFormat;
use nhc_core::{BuilderName, NarHash, Signature, StorePath};

/// A verified report to store. The report is kept in pieces of at most
/// [`DIFF_CHUNK_BYTES`] (D1 refuses a row over 2 MB).
#[derive(Debug, Clone)]
pub struct NewDiff {
    pub id: i64,
    pub meta: DiffRecord,
    /// The gzip report.
    pub report: Vec<u8>,
}

/// A stored report's description (everything but the report itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRecord {
    pub id: i64,
    pub output_path: StorePath,
    pub builder: BuilderName,
    pub nar_hash_a: NarHash,
    pub nar_hash_b: NarHash,
    pub format: DiffFormat,
    /// SHA-256 hex of the gzip report.
    pub report_sha256: String,
    /// Bytes of the gzip report.
    pub size: u64,
    pub signature: Signature,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// What one builder has stored: what the per-builder limits are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffUsage {
    /// Bytes of all its reports.
    pub bytes: u64,
    /// Its reports on the path asked.
    pub on_path: u64,
}

/// A report is stored in pieces of this many bytes (before base64): a piece in
/// base64 stays well under D1's 2,000,000-byte limit on a value and a row.
pub const DIFF_CHUNK_BYTES: usize = 512 * 1024;
