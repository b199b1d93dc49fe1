//! The server's side of the `/log/` routes, without I/O: which object a path names, whether
//! it exists in a tree of the current size, and how long it may be cached. The storage
//! reads (stored hashes by index, leaves by index) are the caller's.

use crate::tiles::{BadTilePath, TileId};

/// Longest path (after `/log/`) worth parsing: a tile path is at most 64 bytes.
pub const MAX_LOG_PATH: usize = 64;

/// Tiles and entry bundles never change once the tree covers them: cache them for a year.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The checkpoint moves every few seconds.
pub const CACHE_CHECKPOINT: &str = "public, max-age=2";
/// The key changes only with a redeployment.
pub const CACHE_KEY: &str = "public, max-age=300";

/// What a path under `/log/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRequest {
    /// `checkpoint`: the latest signed checkpoint (`text/plain; charset=utf-8`).
    Checkpoint,
    /// `key`: the log's verifier key (`text/plain; charset=utf-8`).
    Key,
    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (`application/octet-stream`).
    Tile(TileId),
}

impl LogRequest {
    /// Parses the part of the URL path after `/log/`.
    pub fn parse(path: &str) -> Result<LogRequest, BadTilePath> {
        if path.len() > MAX_LOG_PATH {
            return Err(BadTilePath(path.chars().take(80).collect()));
        }
        match path {
            "checkpoint" => Ok(LogRequest::Checkpoint),
            "key" => Ok(LogRequest::Key),
            _ => TileId::parse(path).map(LogRequest::Tile),
        }
    }

    pub fn cache_control(&self) -> &'static str {
        match self {
            LogRequest::Checkpoint => CACHE_CHECKPOINT,
            LogRequest::Key => CACHE_KEY,
            LogRequest::Tile(_) => CACHE_IMMUTABLE,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            LogRequest::Checkpoint | LogRequest::Key => "text/plain; charset=utf-8",
            LogRequest::Tile(_) => "application/octet-stream",
        }
    }
}

/// How many entries one sequencing step takes at most: bounds a transaction (and, on the
/// Worker, one D1 batch) however far behind the sequencer is.
pub const MAX_SEQUENCE_BATCH: u64 = 4096;
