//! The monitor (`nhc log verify`): every entry bundle and every hash tile of a verified
//! checkpoint's tree, streamed.
//!
//! Bundles are fetched, decoded, hashed and their builder signatures checked by a few
//! worker threads, each bundle on its own; one thread takes the results in order and
//! folds the leaf hashes into the tree's frontier (at most 64 hashes), checking every
//! hash tile (level 0 against the bundle, higher levels against the subtree hashes as
//! they complete) and finally the root against the checkpoint. Memory is the frontier,
//! up to 256 hashes per tile level, and a bounded window of bundles in flight: constant
//! in the number of entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use nhc_core::{BuilderName, PublicKey};
use nhc_tlog::tiles::TileId;
use nhc_tlog::{decode_bundle, leaf_hash, node_hash, Hash, Leaf, VerifiedCheckpoint, HASH_SIZE, TILE_WIDTH};

use super::fetch::{FetchError, LogHttp};

/// How many problems of a kind are described (the rest are counted).
pub const EXAMPLES: usize = 5;

/// Builders' keys by name, as `GET /v1/builders` lists them.
pub type Keys = HashMap<BuilderName, Vec<PublicKey>>;

/// Something wrong with the log itself (exit status 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An entry bundle or hash tile inside the tree is missing (404).
    Missing { path: String },
    /// An entry bundle holds another number of entries than the tree says.
    BundleSize { path: String, got: usize, expected: u16 },
    /// A bundle or tile that cannot be decoded.
    BadTile { path: String, reason: String },
    /// An entry that is not a leaf of the documented format.
    BadEntry { index: u64, reason: String },
    /// A hash tile that disagrees with the entries.
    TileMismatch { path: String, position: u64 },
    /// The entries do not hash to the checkpoint's root.
    RootMismatch { size: u64, computed: String, claimed: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { path } => write!(f, "{path} is missing (404) although the checkpoint covers it"),
            Problem::BundleSize { path, got, expected } => {
                write!(f, "{path} holds {got} entries, the checkpoint says {expected} (an entry was removed or added)")
            }
            Problem::BadTile { path, reason } => write!(f, "{path}: {reason}"),
            Problem::BadEntry { index, reason } => write!(f, "entry {index} is not a valid leaf: {reason}"),
            Problem::TileMismatch { path, position } => {
                write!(f, "hash tile {path} disagrees with the entries at position {position} (a changed entry)")
            }
            Problem::RootMismatch { size, computed, claimed } => write!(
                f,
                "the entries hash to root {computed}, the checkpoint of size {size} says {claimed} (the log was \
                 changed after it was signed)"
            ),
        }
    }
}

/// A leaf whose signature could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigIssue {
    pub index: u64,
    pub builder: BuilderName,
    pub what: &'static str,
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub bundles: u64,
    pub hash_tiles: u64,
    pub problems: Vec<Problem>,
    /// Problems beyond the first [`EXAMPLES`] kept.
    pub more_problems: u64,
    pub signatures_checked: u64,
    pub bad_signatures: u64,
    /// Leaves whose builder or key name `/v1/builders` does not list.
    pub unknown_keys: u64,
    /// Leaves with a digest of their references: the signature cannot be checked.
    pub unchecked: u64,
    /// The first few bad or unknown signatures.
    pub sig_examples: Vec<SigIssue>,
}

impl Report {
    fn problem(&mut self, p: Problem) {
        if self.problems.len() < EXAMPLES {
            self.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }

    /// Whether anything is wrong (the exit status is 1 then).
    pub fn failed(&self) -> bool {
        !self.problems.is_empty() || self.bad_signatures > 0 || self.unknown_keys > 0
    }
}

/// What a worker made of one bundle.
struct Done {
    hashes: Vec<Hash>,
    problems: Vec<Problem>,
    sigs: SigCounts,
}

#[derive(Default)]
struct SigCounts {
    checked: u64,
    bad: u64,
    unknown: u64,
    unchecked: u64,
    examples: Vec<SigIssue>,
}

/// Options of [`verify`].
pub struct Options<'k> {
    /// Workers (and so HTTP requests in flight).
    pub concurrency: usize,
    /// `None`: signatures are not checked.
    pub keys: Option<&'k Keys>,
}

/// Fetches and checks one bundle with its level-0 tile. A fetch error other than 404
/// is the network's, not the log's: it stops the run.
fn bundle(http: &LogHttp, n: u64, width: u16, keys: Option<&Keys>) -> Result<Done, FetchError> {
    let mut done = Done { hashes: Vec::with_capacity(width.into()), problems: Vec::new(), sigs: SigCounts::default() };
    let path = TileId::entries(n, width).path();
    let data = match http.tile(&path) {
        Ok(d) => d,
        Err(FetchError::NotFound { .. }) => {
            done.problems.push(Problem::Missing { path });
            return Ok(done);
        }
        Err(e) => return Err(e),
    };
    let entries = match decode_bundle(&data) {
        Ok(e) => e,
        Err(e) => {
            done.problems.push(Problem::BadTile { path, reason: e.to_string() });
            return Ok(done);
        }
    };
    if entries.len() != usize::from(width) {
        done.problems.push(Problem::BundleSize { path, got: entries.len(), expected: width });
        return Ok(done);
    }
    let first = n * TILE_WIDTH;
    let mut batch: Vec<(u64, &PublicKey, String, Leaf)> = Vec::new();
    for (k, e) in entries.iter().enumerate() {
        let index = first + k as u64;
        done.hashes.push(leaf_hash(e));
        let leaf = match Leaf::decode(e) {
            Ok(l) => l,
            Err(err) => {
                done.problems.push(Problem::BadEntry { index, reason: err.to_string() });
                continue;
            }
        };
        let Some(keys) = keys else { continue };
        let key = keys.get(&leaf.builder).and_then(|ks| ks.iter().find(|k| k.name() == leaf.signature.key_name()));
        match (key, leaf.fingerprint()) {
            (None, _) => {
                done.sigs.unknown += 1;
                if done.sigs.examples.len() < EXAMPLES {
                    done.sigs.examples.push(SigIssue { index, builder: leaf.builder.clone(), what: "unknown key" });
                }
            }
            (Some(_), None) => done.sigs.unchecked += 1,
            (Some(k), Some(fp)) => batch.push((index, k, fp, leaf)),
        }
    }
    // One batch verification per bundle; one by one only when it fails.
    let items: Vec<(&PublicKey, &str, &nhc_core::Signature)> =
        batch.iter().map(|(_, k, fp, l)| (*k, fp.as_str(), &l.signature)).collect();
    done.sigs.checked = items.len() as u64;
    if nhc_core::verify_all(&items).is_err() {
        for (index, k, fp, l) in &batch {
            if !k.verifies(fp, &l.signature) {
                done.sigs.bad += 1;
                if done.sigs.examples.len() < EXAMPLES {
                    done.sigs.examples.push(SigIssue {
                        index: *index,
                        builder: l.builder.clone(),
                        what: "bad signature",
                    });
                }
            }
        }
    }
    if !done.problems.is_empty() {
        return Ok(done);
    }
    let tpath = TileId::hashes(0, n, width).path();
    match http.tile(&tpath) {
        Ok(tile) => {
            if tile.len() != done.hashes.len() * HASH_SIZE {
                done.problems.push(Problem::BadTile { path: tpath, reason: format!("{} bytes", tile.len()) });
            } else if let Some(k) = tile.chunks(HASH_SIZE).zip(&done.hashes).position(|(t, h)| t != h.0) {
                done.problems.push(Problem::TileMismatch { path: tpath, position: first + k as u64 });
            }
        }
        Err(FetchError::NotFound { .. }) => done.problems.push(Problem::Missing { path: tpath }),
        Err(e) => return Err(e),
    }
    Ok(done)
}

/// The tree's frontier and the hashes of the current tile at each level above 0.
struct Tree {
    /// Complete subtrees, largest (leftmost) first: (height, hash).
    frontier: Vec<(u8, Hash)>,
    /// Per tile level k ≥ 1: the subtree hashes of height 8k of the current tile.
    levels: Vec<Vec<Hash>>,
    /// Per tile level: the index of the current tile.
    next_tile: Vec<u64>,
}

impl Tree {
    fn push(&mut self, h: Hash, http: &LogHttp, report: &mut Report) -> Result<(), FetchError> {
        self.frontier.push((0, h));
        while self.frontier.len() >= 2 {
            let (hr, r) = self.frontier[self.frontier.len() - 1];
            let (hl, l) = self.frontier[self.frontier.len() - 2];
            if hl != hr {
                break;
            }
            self.frontier.truncate(self.frontier.len() - 2);
            let height = hr + 1;
            let node = node_hash(l, r);
            self.frontier.push((height, node));
            if height % 8 == 0 {
                let level = usize::from(height / 8);
                if self.levels.len() < level {
                    self.levels.resize(level, Vec::new());
                    self.next_tile.resize(level, 0);
                }
                self.levels[level - 1].push(node);
                if self.levels[level - 1].len() as u64 == TILE_WIDTH {
                    self.check_tile(level, http, report)?;
                }
            }
        }
        Ok(())
    }

    /// Compares the level's collected hashes with its tile (full or partial).
    fn check_tile(&mut self, level: usize, http: &LogHttp, report: &mut Report) -> Result<(), FetchError> {
        let hashes = std::mem::take(&mut self.levels[level - 1]);
        let n = self.next_tile[level - 1];
        self.next_tile[level - 1] += 1;
        if hashes.is_empty() {
            return Ok(());
        }
        let path = TileId::hashes(level as u8, n, hashes.len() as u16).path();
        report.hash_tiles += 1;
        match http.tile(&path) {
            Ok(tile) if tile.len() != hashes.len() * HASH_SIZE => {
                report.problem(Problem::BadTile { path, reason: format!("{} bytes", tile.len()) })
            }
            Ok(tile) => {
                if let Some(k) = tile.chunks(HASH_SIZE).zip(&hashes).position(|(t, h)| t != h.0) {
                    report.problem(Problem::TileMismatch { path, position: n * TILE_WIDTH + k as u64 });
                }
            }
            Err(FetchError::NotFound { .. }) => report.problem(Problem::Missing { path }),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn root(&self) -> Hash {
        let mut it = self.frontier.iter().rev();
        let Some(&(_, mut r)) = it.next() else { return nhc_tlog::EMPTY_HASH };
        for &(_, l) in it {
            r = node_hash(l, r);
        }
        r
    }
}

/// Checks the whole log of `cp`. `progress(entries done)` is called after each bundle.
pub fn verify(
    http: &LogHttp,
    cp: &VerifiedCheckpoint,
    opts: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, FetchError> {
    let bundles = cp.size.div_ceil(TILE_WIDTH);
    let width_of = |n: u64| (cp.size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
    let workers = opts.concurrency.max(1);
    // Bundles taken but not yet folded: bounds memory whatever the order they finish in.
    let window = (workers as u64) * 4;
    let next = AtomicU64::new(0);
    let folded = Mutex::new(0u64);
    let wake = Condvar::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut report = Report::default();
    let mut tree = Tree { frontier: Vec::new(), levels: Vec::new(), next_tile: Vec::new() };
    let result = std::thread::scope(|s| -> Result<(), FetchError> {
        let (tx, rx) = mpsc::channel::<(u64, Result<Done, FetchError>)>();
        for _ in 0..workers.min(bundles.max(1) as usize) {
            let tx = tx.clone();
            let (next, folded, wake, stop) = (&next, &folded, &wake, &stop);
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= bundles || stop.load(Ordering::Relaxed) {
                    break;
                }
                {
                    let Ok(mut f) = folded.lock() else { break };
                    while n >= *f + window && !stop.load(Ordering::Relaxed) {
                        f = match wake.wait(f) {
                            Ok(f) => f,
                            Err(_) => return,
                        };
                    }
                }
                let r = bundle(http, n, width_of(n), opts.keys);
                if tx.send((n, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<u64, Result<Done, FetchError>> = BTreeMap::new();
        let mut at = 0u64;
        let finish = |e: FetchError| {
            stop.store(true, Ordering::Relaxed);
            wake.notify_all();
            Err(e)
        };
        while at < bundles {
            let Some(r) = pending.remove(&at) else {
                match rx.recv() {
                    Ok((n, r)) => {
                        pending.insert(n, r);
                        continue;
                    }
                    Err(_) => break,
                }
            };
            let done = match r {
                Ok(d) => d,
                Err(e) => return finish(e),
            };
            report.bundles += 1;
            let sigs = done.sigs;
            report.signatures_checked += sigs.checked;
            report.bad_signatures += sigs.bad;
            report.unknown_keys += sigs.unknown;
            report.unchecked += sigs.unchecked;
            for e in sigs.examples {
                if report.sig_examples.len() < EXAMPLES {
                    report.sig_examples.push(e);
                }
            }
            let whole = done.problems.is_empty();
            for p in done.problems {
                report.problem(p);
            }
            if !whole {
                // Without this bundle's hashes the tree cannot be recomputed.
                stop.store(true, Ordering::Relaxed);
                wake.notify_all();
                return Ok(());
            }
            report.entries += done.hashes.len() as u64;
            for h in done.hashes {
                if let Err(e) = tree.push(h, http, &mut report) {
                    return finish(e);
                }
            }
            at += 1;
            if let Ok(mut f) = folded.lock() {
                *f = at;
            }
            wake.notify_all();
            progress(report.entries);
        }
        if at < bundles {
            // The workers stopped without a result for every bundle (cannot happen
            // unless a lock was poisoned): never report a partial check as a whole one.
            return Err(FetchError::Unexpected { url: http.base(), message: format!("bundle {at} was not checked") });
        }
        Ok(())
    });
    result?;
    if !report.problems.is_empty() {
        return Ok(report);
    }
    // The partial tiles at the right edge of each level.
    for level in 1..=tree.levels.len() {
        tree.check_tile(level, http, &mut report)?;
    }
    let root = tree.root();
    if root != cp.root {
        report.problem(Problem::RootMismatch {
            size: cp.size,
            computed: nhc_tlog::hash_hex(&root),
            claimed: nhc_tlog::hash_hex(&cp.root),
        });
    }
    Ok(report)
}
