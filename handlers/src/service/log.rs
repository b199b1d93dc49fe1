//! The transparency log's server side (docs/api.md, "Transparency log"): what an
//! entry is, the sequencing step that turns entries into stored hashes and a signed
//! checkpoint, and the reads behind `/log/`. Entries are numbered with the attestations
//! (the storage's `insert_attestations`), so nothing acknowledged can be missing from a
//! later checkpoint, whatever happens to the sequencer.

use nhc_core::BuilderName;
use nhc_storage::{AttestationRecord, LogAppend, LogCheckpoint, LogEntry, NewAttestation};
use nhc_tlog::serve::{LogRequest, MAX_SEQUENCE_BATCH};
use nhc_tlog::{append_stored_hashes, frontier_indexes, leaf_hash, stored_hash_index, Hash};

use crate::error::ApiError;
use crate::state::AppState;

pub use nhc_tlog::LogSigner;

/// Parses a log key (the signed-note secret key `PRIVATE+KEY+<origin>+<id>+<base64>`,
/// as `nhc-server log-key` prints it), with a message that says what it should be.
pub fn parse_key(text: &str) -> Result<LogSigner, String> {
    LogSigner::parse(text).map_err(|e| format!("the transparency log key: {e}"))
}

/// A new random log key for `origin` (the checkpoints' origin line, e.g.
/// `nhc.example.org/log`): the secret key and its verifier key.
pub fn new_key(origin: &str) -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let secret = LogSigner::secret_from_seed(origin, seed).map_err(|_| {
        format!("{origin:?} cannot name a log: use a host name and path such as nhc.example.org/log (no spaces or '+')")
    })?;
    let verifier = parse_key(&secret)?.verifier_key().to_owned();
    Ok((secret, verifier))
}

/// The leaf of an attestation as accepted: what the log commits to (docs/formats.md),
/// with the builder's signature and the time of acceptance. Made from the same fields
/// when the attestation is accepted (its receipt) and whenever its entry is read.
pub fn leaf(builder: &BuilderName, a: &NewAttestation, submitted_at: i64) -> Vec<u8> {
    nhc_tlog::Leaf::new(
        builder.clone(),
        a.output_path.clone(),
        a.nar_hash,
        a.nar_size,
        a.references.clone(),
        a.signature.clone(),
        a.drv_path.clone(),
        a.output_name.clone(),
        submitted_at,
    )
    .encode()
}

/// An entry's leaf bytes, made from the stored attestation (or as stored).
fn entry_leaf(entry: LogEntry) -> Vec<u8> {
    match entry {
        LogEntry::Leaf(text) => text.into_bytes(),
        LogEntry::Attestation(r) => {
            let AttestationRecord {
                builder,
                drv_path,
                output_name,
                output_path,
                nar_hash,
                nar_size,
                references,
                signature,
                submitted_at,
                log_index: _,
            } = r;
            let a = NewAttestation { output_path, nar_hash, nar_size, references, signature, drv_path, output_name };
            leaf(&builder, &a, submitted_at)
        }
    }
}

/// The leaf hashes of the entries this process stored, by log index, for the
/// sequencer: each was computed from the accepted attestation for its receipt, so the
/// sequencer need not read the rows back and rebuild the leaves (most of its cost).
/// The index comes from storage, after the commit, so an entry here is stored; a run
/// of the log that is not here (another process's entries, the time before a restart,
/// entries offered past [`LeafFeed::CAPACITY`]) is read from storage as before.
#[derive(Debug, Default)]
pub struct LeafFeed {
    hashes: std::sync::Mutex<std::collections::BTreeMap<u64, Hash>>,
}

impl LeafFeed {
    /// Entries held at most (about 3 MB), however far the sequencer falls behind.
    pub const CAPACITY: usize = 1 << 16;

    /// Holds these entries' hashes until the sequencer takes them; past the capacity
    /// the rest are left to be read from storage.
    pub fn offer(&self, entries: impl IntoIterator<Item = (u64, Hash)>) {
        let Ok(mut held) = self.hashes.lock() else { return };
        for (index, hash) in entries {
            if held.len() >= Self::CAPACITY {
                break;
            }
            held.insert(index, hash);
        }
    }

    /// The hashes of entries `from`, `from + 1`, … as far as they are held without a
    /// gap (at most `max`), taken out; entries before `from` (sequenced already, from
    /// storage or by another process) are dropped.
    pub fn take_run(&self, from: u64, max: u64) -> Vec<Hash> {
        let Ok(mut held) = self.hashes.lock() else { return Vec::new() };
        let rest = held.split_off(&from);
        *held = rest;
        let mut run = Vec::new();
        while (run.len() as u64) < max {
            match held.remove(&(from + run.len() as u64)) {
                Some(h) => run.push(h),
                None => break,
            }
        }
        run
    }
}

/// Steps one read of `/log/checkpoint` may take where the log is sequenced on read
/// (the Worker, the Lambda): 4 × 4,096 entries, a bounded amount of work per request.
pub const MAX_STEPS_ON_READ: u32 = 4;

/// What one sequencing step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The tree's size after the step.
    pub size: u64,
    /// Entries the step added to the tree (0: it was current).
    pub added: u64,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("transparency log: {e}"))
}

fn no_log() -> ApiError {
    ApiError::NotFound("this deployment keeps no transparency log (its log key, NHC_LOG_KEY, is not set)".to_owned())
}

/// One sequencing step: the entries after the latest checkpoint (at most
/// [`MAX_SEQUENCE_BATCH`]) are hashed into the tree, and the grown tree's checkpoint
/// is signed and stored with the new hashes in one transaction. Deterministic, so two
/// sequencers running at once compute and store the same thing. Makes the first
/// (empty) checkpoint when there is none.
pub async fn step(state: &AppState, signer: &LogSigner) -> Result<Step, ApiError> {
    let store = &state.store;
    let latest = store.log_latest_checkpoint().await?;
    let old = latest.as_ref().map_or(0, |c| c.size);
    // Read by bounded pieces, each leaf hashed as it comes. Entries are gapless when
    // committed; a gap here would be a bug or a hand edit: stop before it, and say so.
    let end = old + MAX_SEQUENCE_BATCH;
    // What this process stored itself is at hand; the rest is read.
    let mut leaves: Vec<Hash> = state.log_feed.take_run(old, MAX_SEQUENCE_BATCH);
    let mut next = old + leaves.len() as u64;
    'read: while next < end {
        let entries = store.log_entries(next, end).await?;
        if entries.is_empty() {
            break;
        }
        for (i, entry) in entries {
            if i != next {
                tracing::error!(after = old, "transparency log: entry {next} is missing; sequencing stops before it");
                break 'read;
            }
            leaves.push(leaf_hash(&entry_leaf(entry)));
            next += 1;
        }
    }
    if leaves.is_empty() && latest.is_some() {
        return Ok(Step { size: old, added: 0 });
    }
    let want = frontier_indexes(old);
    let found = store.log_hashes(&want).await?;
    let frontier = want
        .iter()
        .map(|i| {
            found
                .iter()
                .find(|(j, _)| j == i)
                .map(|(_, h)| Hash(*h))
                .ok_or_else(|| internal(format!("stored hash {i} of the tree of size {old} is missing")))
        })
        .collect::<Result<Vec<Hash>, ApiError>>()?;
    let (hashes, root) = append_stored_hashes(old, &frontier, &leaves).map_err(internal)?;
    let size = old + leaves.len() as u64;
    let note = String::from_utf8(signer.sign(size, &root)).map_err(internal)?;
    let append = LogAppend {
        first_hash_index: stored_hash_index(0, old),
        hashes: hashes.into_iter().map(|h| h.0).collect(),
        checkpoint: LogCheckpoint { size, root: root.0, note, created_at: state.now() },
    };
    if store.log_append(&append).await? {
        tracing::debug!(size, added = leaves.len(), "transparency log: checkpoint");
    }
    Ok(Step { size, added: leaves.len() as u64 })
}

/// Sequences until the tree holds every entry, at most `max_steps` steps; the tree's
/// size after it. `None` when the deployment has no log key.
pub async fn catch_up(state: &AppState, max_steps: u32) -> Result<Option<u64>, ApiError> {
    let Some(signer) = state.log.clone() else { return Ok(None) };
    let mut size = 0;
    for _ in 0..max_steps.max(1) {
        let s = step(state, &signer).await?;
        size = s.size;
        if s.added < MAX_SEQUENCE_BATCH {
            break;
        }
    }
    Ok(Some(size))
}

/// Runs the sequencer every `interval` until the process ends (nhc-server). A step
/// that fails is logged and retried at the next tick.
#[cfg(not(target_arch = "wasm32"))]
pub async fn run_sequencer(state: AppState, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = catch_up(&state, u32::MAX).await {
            tracing::warn!("transparency log: sequencing failed, trying again in {interval:?}: {e}");
        }
    }
}

/// An object under `/log/`: its bytes and what to say about them.
pub struct LogObject {
    pub request: LogRequest,
    pub body: Vec<u8>,
}

/// What `GET /log/<path>` answers.
pub async fn read(state: &AppState, path: &str) -> Result<LogObject, ApiError> {
    let Some(signer) = state.log.clone() else { return Err(no_log()) };
    let request = LogRequest::parse(path).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let body = match request {
        LogRequest::Key => format!("{}\n", signer.verifier_key()).into_bytes(),
        LogRequest::Checkpoint => {
            if state.log_sequence_on_read {
                catch_up(state, MAX_STEPS_ON_READ).await?;
            }
            match state.store.log_latest_checkpoint().await? {
                Some(c) => c.note.into_bytes(),
                // No sequencer ran yet (a fresh nhc-server): make the first one now.
                None => {
                    catch_up(state, 1).await?;
                    state
                        .store
                        .log_latest_checkpoint()
                        .await?
                        .ok_or_else(|| internal("no checkpoint after a sequencing step"))?
                        .note
                        .into_bytes()
                }
            }
        }
        LogRequest::Tile(tile) => {
            let size = state.store.log_latest_checkpoint().await?.map_or(0, |c| c.size);
            if !tile.exists_in(size) {
                return Err(ApiError::NotFound(format!("{path} is past the log's latest checkpoint (size {size})")));
            }
            if let Some(range) = tile.entry_range() {
                // Leaves are at most 64 KiB each; the rows behind them may be larger, so
                // they are read by bounded pieces and made into leaves as they come.
                let mut leaves: Vec<Vec<u8>> = Vec::new();
                let mut next = range.start;
                while next < range.end {
                    let entries = state.store.log_entries(next, range.end).await?;
                    if entries.first().is_none_or(|(i, _)| *i != next) {
                        return Err(internal(format!("entry {next} of bundle {range:?} is missing")));
                    }
                    for (i, entry) in entries {
                        if i != next {
                            break;
                        }
                        leaves.push(entry_leaf(entry));
                        next += 1;
                    }
                }
                nhc_tlog::encode_bundle(leaves.iter().map(Vec::as_slice)).map_err(internal)?
            } else {
                let indexes =
                    tile.stored_hash_indexes().ok_or_else(|| ApiError::NotFound(format!("{path}: no such tile")))?;
                let found = state.store.log_hashes(&indexes).await?;
                let mut by_index: std::collections::HashMap<u64, [u8; 32]> = found.into_iter().collect();
                let mut body = Vec::with_capacity(indexes.len() * 32);
                for i in &indexes {
                    let h = by_index.remove(i).ok_or_else(|| internal(format!("stored hash {i} is missing")))?;
                    body.extend_from_slice(&h);
                }
                body
            }
        }
    };
    Ok(LogObject { request, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> Hash {
        Hash([i as u8; 32])
    }

    /// The sequencer gets the run that starts where the tree ends and nothing past a
    /// gap; what is before the tree's end is dropped, what is after the gap stays.
    #[test]
    fn the_feed_gives_the_run_from_the_tree_end() {
        let feed = LeafFeed::default();
        feed.offer([3, 4, 5, 7, 8].map(|i| (i, h(i))));
        assert_eq!(feed.take_run(2, 10), []);
        assert_eq!(feed.take_run(4, 10), [h(4), h(5)]);
        assert_eq!(feed.take_run(6, 10), []);
        assert_eq!(feed.take_run(7, 1), [h(7)]);
        assert_eq!(feed.take_run(8, 10), [h(8)]);
        assert_eq!(feed.take_run(0, 10), []);
    }

    /// However far the sequencer falls behind, the feed holds at most its capacity;
    /// what did not fit is read from storage instead.
    #[test]
    fn the_feed_is_bounded() {
        let feed = LeafFeed::default();
        let n = LeafFeed::CAPACITY as u64 + 10;
        feed.offer((0..n).map(|i| (i, h(i))));
        let run = feed.take_run(0, u64::MAX);
        assert_eq!(run.len(), LeafFeed::CAPACITY);
        assert_eq!(feed.take_run(LeafFeed::CAPACITY as u64, 10), []);
    }
}
