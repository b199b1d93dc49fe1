//! The transparency log of nix-hash-collection: every accepted attestation is a leaf of an
//! RFC 6962 / RFC 9162 Merkle tree, served as C2SP tlog-tiles with C2SP tlog-checkpoint
//! checkpoints signed as C2SP signed-notes.
//!
//! The Merkle arithmetic (stored-hash layout, proofs) and the note format come from
//! `tlog_tiles` and `signed_note` (Cloudflare's ports of Go's `golang.org/x/mod/sumdb`);
//! this crate adds the attestation leaf ([`leaf`]), the C2SP tile paths and entry bundles
//! ([`tiles`]), checkpoint signing with the deployment's log key ([`checkpoint`]), and the
//! sequencing step a server runs ([`append_stored_hashes`]). No I/O, builds for wasm32.
//!
//! Storage layout a server keeps: every leaf's bytes by index, and every *stored hash*
//! (the Go sumdb layout: for each leaf `n`, the hashes of the complete subtrees it closes,
//! at indexes `stored_hash_index(level, n >> level)`). A hash tile is a run of 256 stored
//! hashes at one level ([`tiles::TileId::stored_hash_indexes`]); nothing else is kept.

pub mod checkpoint;
pub mod client;
pub mod leaf;
pub mod serve;
pub mod tiles;

pub use checkpoint::{verify_checkpoint, CheckpointError, KeyError, LogSigner, VerifiedCheckpoint};
pub use client::{check_consistency, check_fork, check_inclusion, verify_log, ClientError, LogReport};
pub use leaf::{Leaf, LeafError, LeafReferences, MAX_LEAF_BYTES};
pub use tiles::{decode_bundle, encode_bundle, BadTilePath, BundleError, TileId, TILE_HEIGHT, TILE_WIDTH};
pub use tlog_tiles::{
    check_record, check_tree, node_hash, prove_record, prove_tree, stored_hash_count, stored_hash_index,
    sub_tree_index, tree_hash, Error as TreeError, Hash, HashReader, EMPTY_HASH, HASH_SIZE,
};

/// RFC 6962 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data)
}

/// The stored-hash indexes whose hashes a server must read before appending to a tree of
/// `size` leaves: the roots of the complete subtrees that make up the tree (at most 64).
pub fn frontier_indexes(size: u64) -> Vec<u64> {
    if size == 0 {
        return Vec::new();
    }
    sub_tree_index(0, size, Vec::new())
}

/// Sequencing: the stored hashes to write, from index `stored_hash_index(0, old_size)` on,
/// when the leaves with hashes `leaf_hashes` are appended to a tree of `old_size` leaves.
/// `frontier` is the hashes at [`frontier_indexes`]`(old_size)`, in that order.
/// Also returns the new tree's root hash.
pub fn append_stored_hashes(
    old_size: u64,
    frontier: &[Hash],
    leaf_hashes: &[Hash],
) -> Result<(Vec<Hash>, Hash), TreeError> {
    let fidx = frontier_indexes(old_size);
    if fidx.len() != frontier.len() {
        return Err(TreeError::InvalidInput(format!(
            "frontier of a tree of {old_size} has {} hashes, got {}",
            fidx.len(),
            frontier.len()
        )));
    }
    struct Reader<'a> {
        fidx: &'a [u64],
        frontier: &'a [Hash],
        base: u64,
        new: &'a [Hash],
    }
    impl HashReader for Reader<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
            indexes
                .iter()
                .map(|&i| {
                    if i >= self.base {
                        self.new.get((i - self.base) as usize).copied().ok_or(TreeError::IndexesNotInTree)
                    } else {
                        self.fidx
                            .iter()
                            .position(|&f| f == i)
                            .map(|p| self.frontier[p])
                            .ok_or(TreeError::IndexesNotInTree)
                    }
                })
                .collect()
        }
    }
    let base = stored_hash_index(0, old_size);
    let mut new: Vec<Hash> = Vec::with_capacity(leaf_hashes.len() * 2 + 1);
    for (k, h) in leaf_hashes.iter().enumerate() {
        let n = old_size + k as u64;
        let r = Reader { fidx: &fidx, frontier, base, new: &new };
        let add = tlog_tiles::stored_hashes_for_record_hash(n, *h, &r)?;
        new.extend(add);
    }
    let size = old_size + leaf_hashes.len() as u64;
    let r = Reader { fidx: &fidx, frontier, base, new: &new };
    let root = tree_hash(size, &r)?;
    Ok((new, root))
}

/// Hex of a hash, for messages and JSON.
pub fn hash_hex(h: &Hash) -> String {
    nhc_core::hex::encode(&h.0)
}
