//! What a tlog-tiles client checks, with tiles fetched by a caller-supplied function
//! (`fetch(path)`, e.g. an HTTP GET of `<log URL>/<path>`): the whole log against a
//! checkpoint (the monitor, `nhc log verify`), one leaf's inclusion and one checkpoint's
//! consistency with an older one (the auditor, `nhc audit`), and forks.
//!
//! Every hash tile a proof uses is authenticated against the checkpoint's root before use
//! (`tlog_tiles::TileHashReader`), so a lying server is caught, not believed.

use std::cell::RefCell;

use tlog_tiles::{Tile, TileHashReader, TileReader};

use crate::checkpoint::VerifiedCheckpoint;
use crate::tiles::{decode_bundle, TileId, TILE_HEIGHT, TILE_WIDTH};
use crate::{append_stored_hashes, frontier_indexes, leaf_hash, stored_hash_index, Hash, Leaf, HASH_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("fetching {path}: {reason}")]
    Fetch { path: String, reason: String },
    #[error("{path}: {reason}")]
    BadTile { path: String, reason: String },
    #[error("entry {index}: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error("the entries hash to root {computed}, the checkpoint of size {size} says {claimed}")]
    RootMismatch { size: u64, computed: String, claimed: String },
    #[error("hash tile {path} disagrees with the entries at position {position}")]
    TileMismatch { path: String, position: u64 },
    #[error("fork: two checkpoints of size {size} with roots {a} and {b}")]
    Fork { size: u64, a: String, b: String },
    #[error("entry {index} is not in the tree of size {size} (or its leaf was changed): {reason}")]
    NotIncluded { index: u64, size: u64, reason: String },
    #[error("the checkpoint of size {new} is not an extension of the one of size {old}: {reason}")]
    Inconsistent { old: u64, new: u64, reason: String },
    #[error("the log shrank: a checkpoint of size {new} after one of size {old}")]
    Shrank { old: u64, new: u64 },
}

/// Two verified checkpoints of one log: the same size must mean the same root.
pub fn check_fork(a: &VerifiedCheckpoint, b: &VerifiedCheckpoint) -> Result<(), ClientError> {
    if a.size == b.size && a.root != b.root {
        return Err(ClientError::Fork { size: a.size, a: crate::hash_hex(&a.root), b: crate::hash_hex(&b.root) });
    }
    Ok(())
}

/// Reads tiles through `fetch`, remembering the first error (the `TileReader` trait has one
/// error type of its own).
struct FetchReader<'f, F: FnMut(&str) -> Result<Vec<u8>, String>> {
    fetch: RefCell<&'f mut F>,
    error: RefCell<Option<ClientError>>,
}

impl<F: FnMut(&str) -> Result<Vec<u8>, String>> TileReader for FetchReader<'_, F> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            let path = TileId::from_tile(t).path();
            let data = (self.fetch.borrow_mut())(&path).map_err(|reason| {
                *self.error.borrow_mut() = Some(ClientError::Fetch { path: path.clone(), reason });
                tlog_tiles::Error::InvalidTile
            })?;
            if data.len() != t.width() as usize * HASH_SIZE {
                *self.error.borrow_mut() = Some(ClientError::BadTile {
                    path,
                    reason: format!("{} bytes, expected {}", data.len(), t.width() as usize * HASH_SIZE),
                });
                return Err(tlog_tiles::Error::InvalidTile);
            }
            out.push(data);
        }
        Ok(out)
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// Checks that the leaf with hash `leaf` is entry `index` of the checkpoint's tree.
pub fn check_inclusion<F: FnMut(&str) -> Result<Vec<u8>, String>>(
    cp: &VerifiedCheckpoint,
    index: u64,
    leaf: Hash,
    fetch: &mut F,
) -> Result<(), ClientError> {
    if index >= cp.size {
        return Err(ClientError::NotIncluded { index, size: cp.size, reason: "index past the tree".into() });
    }
    let reader = FetchReader { fetch: RefCell::new(fetch), error: RefCell::new(None) };
    let thr = TileHashReader::new(cp.size, cp.root, &reader);
    let proof = tlog_tiles::prove_record(cp.size, index, &thr).map_err(|e| {
        reader.error.borrow_mut().take().unwrap_or(ClientError::NotIncluded {
            index,
            size: cp.size,
            reason: format!("tiles do not match the checkpoint: {e}"),
        })
    })?;
    tlog_tiles::check_record(&proof, cp.size, cp.root, index, leaf).map_err(|e| ClientError::NotIncluded {
        index,
        size: cp.size,
        reason: e.to_string(),
    })
}

/// Checks that `new` extends `old` (an append-only history), proving it from `new`'s tiles.
pub fn check_consistency<F: FnMut(&str) -> Result<Vec<u8>, String>>(
    old: &VerifiedCheckpoint,
    new: &VerifiedCheckpoint,
    fetch: &mut F,
) -> Result<(), ClientError> {
    if new.size < old.size {
        return Err(ClientError::Shrank { old: old.size, new: new.size });
    }
    check_fork(old, new)?;
    if old.size == 0 || old.size == new.size {
        return Ok(());
    }
    let reader = FetchReader { fetch: RefCell::new(fetch), error: RefCell::new(None) };
    let thr = TileHashReader::new(new.size, new.root, &reader);
    let proof = tlog_tiles::prove_tree(new.size, old.size, &thr).map_err(|e| {
        reader.error.borrow_mut().take().unwrap_or(ClientError::Inconsistent {
            old: old.size,
            new: new.size,
            reason: format!("tiles do not match the checkpoint: {e}"),
        })
    })?;
    tlog_tiles::check_tree(&proof, new.size, new.root, old.size, old.root).map_err(|e| ClientError::Inconsistent {
        old: old.size,
        new: new.size,
        reason: e.to_string(),
    })
}

/// What [`verify_log`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    pub entries: u64,
    pub bundles: u64,
}

/// The monitor: downloads every entry bundle of the checkpoint's tree, recomputes the root
/// and compares it with the checkpoint; checks every level-0 hash tile against the entries;
/// hands every decoded leaf to `each` (which checks its builder signature) with its index.
pub fn verify_log<F, E>(cp: &VerifiedCheckpoint, fetch: &mut F, mut each: E) -> Result<LogReport, ClientError>
where
    F: FnMut(&str) -> Result<Vec<u8>, String>,
    E: FnMut(u64, &Leaf) -> Result<(), String>,
{
    let mut size = 0u64;
    // Only the frontier and the current tile's stored hashes are kept: memory stays small.
    let mut frontier: Vec<Hash> = Vec::new();
    let mut root = crate::EMPTY_HASH;
    let mut report = LogReport::default();
    while size < cp.size {
        let n = size / TILE_WIDTH;
        let width = (cp.size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
        let id = TileId::entries(n, width);
        let path = id.path();
        let data = fetch(&path).map_err(|reason| ClientError::Fetch { path: path.clone(), reason })?;
        let entries =
            decode_bundle(&data).map_err(|e| ClientError::BadTile { path: path.clone(), reason: e.to_string() })?;
        if entries.len() != usize::from(width) {
            return Err(ClientError::BadTile { path, reason: format!("{} entries, expected {width}", entries.len()) });
        }
        let mut hashes = Vec::with_capacity(entries.len());
        for (k, e) in entries.iter().enumerate() {
            let index = size + k as u64;
            let leaf = Leaf::decode(e).map_err(|err| ClientError::BadEntry { index, reason: err.to_string() })?;
            each(index, &leaf).map_err(|reason| ClientError::BadEntry { index, reason })?;
            hashes.push(leaf_hash(e));
        }
        // The level-0 hash tile must hold exactly these leaf hashes.
        let tpath = TileId::hashes(0, n, width).path();
        let tile = fetch(&tpath).map_err(|reason| ClientError::Fetch { path: tpath.clone(), reason })?;
        if tile.len() != hashes.len() * HASH_SIZE {
            return Err(ClientError::BadTile { path: tpath, reason: format!("{} bytes", tile.len()) });
        }
        if let Some(k) = hashes.iter().enumerate().position(|(k, h)| tile[k * HASH_SIZE..(k + 1) * HASH_SIZE] != h.0) {
            return Err(ClientError::TileMismatch { path: tpath, position: size + k as u64 });
        }
        let (new, r) = append_stored_hashes(size, &frontier, &hashes)
            .map_err(|e| ClientError::BadTile { path: path.clone(), reason: e.to_string() })?;
        let base = stored_hash_index(0, size);
        let old_idx = frontier_indexes(size);
        size += hashes.len() as u64;
        frontier = frontier_indexes(size)
            .iter()
            .map(|&i| {
                if i >= base {
                    new[(i - base) as usize]
                } else {
                    frontier[old_idx.iter().position(|&o| o == i).unwrap_or(0)]
                }
            })
            .collect();
        root = r;
        report.entries += hashes.len() as u64;
        report.bundles += 1;
    }
    if root != cp.root {
        return Err(ClientError::RootMismatch {
            size: cp.size,
            computed: crate::hash_hex(&root),
            claimed: crate::hash_hex(&cp.root),
        });
    }
    Ok(report)
}
