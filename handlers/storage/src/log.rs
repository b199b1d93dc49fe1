//! What storage keeps of the transparency log: the entries (an attestation's row is its
//! entry, numbered when it is stored), the stored hashes and the signed checkpoints
//! (written by the sequencer, `nhc_handlers::service::log`).

use nhc_core::{NarHash, StorePath};

use crate::AttestationRecord;

/// The most entries or hashes one log read returns: a sequencing step, or a tile (256).
pub const MAX_LOG_READ: usize = 8192;
/// The most entries one read of entries returns: an entry bundle's worth.
pub const MAX_LOG_ENTRIES_READ: u64 = 256;
/// The most bytes of references one read of entries returns, unless its first entry alone
/// has more (a row holds at most a request's worth): a builder's long reference lists
/// cannot make one public read of a bundle, or a sequencing step, hold more than this.
pub const MAX_LOG_READ_REFERENCE_BYTES: usize = 16 * 1024 * 1024;

/// Where the log put one stored attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub index: u64,
}

/// One log entry as storage has it. The handlers make its leaf (`nhc_tlog::Leaf`).
// Nearly every entry is the large variant: boxing it would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// The attestation (stored, or kept for the log after its builder was purged): its
    /// leaf is made from these fields, the same as when it was accepted.
    Attestation(AttestationRecord),
    /// The leaf's text, as logs begun before entries were made from rows stored it.
    Leaf(String),
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckpoint {
    /// Leaves in the tree.
    pub size: u64,
    pub root: [u8; 32],
    /// The C2SP signed note, as served at `/log/checkpoint`.
    pub note: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// One sequencing step: the stored hashes it computed and the checkpoint of the
/// grown tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend {
    pub first_hash_index: u64,
    pub hashes: Vec<[u8; 32]>,
    pub checkpoint: LogCheckpoint,
}
