//! The spool: signed attestation requests that are not delivered yet, one file per
//! request, written durably (see [`crate::durable`]).
//!
//! Layout of the spool directory (mode 0700):
//! - `<time>-<random>.json`: the exact request body for `POST /v1/attestations`;
//!   names sort in the order the items were made.
//! - `<time>-<random>.retry`: how often sending the item beside it failed with a
//!   server error, and when to try again ([`Failures`]).
//! - `.tmp-*`: a file being written (never read).
//! - `rejected/<name>.json` and `rejected/<name>.reason`: items the server refused
//!   with a 4xx, with the [`Reason`]; `nhc flush --retry-rejected` requeues them.
//! - `mismatch/<name>.json` and `mismatch/<name>.reason`: requests for outputs whose
//!   files no longer matched Nix's record (`--verify`); kept for inspection, never sent.
//!
//! Directories are created with mode 0700 and their parent is synced, so a new
//! directory and the first item in it survive a crash together.
//!
//! `nhc flush` ([`flush`]) takes each item with an exclusive `flock` and checks that
//! the file is still linked under its name, so two flushes never send the same item
//! at the same time, and a flush killed half-way leaves nothing locked behind.

pub mod flush;
mod reason;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub use reason::{unix_now, Failures, Reason, Recorded, VerifyMismatch, Why};

use crate::durable::{self, FsError};

pub const REJECTED: &str = "rejected";
pub const MISMATCH: &str = "mismatch";

pub struct Spool {
    dir: PathBuf,
}

/// An item this process holds the lock on.
pub struct Claimed {
    pub path: PathBuf,
    pub name: String,
    pub body: Vec<u8>,
    _lock: File,
}

/// What `requeue_rejected` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Moved back into the spool.
    pub requeued: usize,
    /// Failed verification: moved to `mismatch/`, never sent.
    pub mismatches: usize,
    /// Left in `rejected/` because their reason could not be read.
    pub unreadable: usize,
}

/// `<dir>/<name without .json><ext>`: the file kept beside an item.
fn beside(dir: &Path, item_name: &str, ext: &str) -> PathBuf {
    dir.join(format!("{}{ext}", item_name.strip_suffix(".json").unwrap_or(item_name)))
}

impl Spool {
    /// Opens the spool, creating it (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Spool, FsError> {
        durable::create_dir(dir)?;
        Ok(Spool { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    pub fn mismatch_dir(&self) -> PathBuf {
        self.dir.join(MISMATCH)
    }

    /// Adds a request body; returns the item's path.
    pub fn add(&self, body: &[u8]) -> Result<PathBuf, FsError> {
        durable::write(&self.dir, &durable::unique_name(".json"), body)
    }

    /// Writes a body straight to `rejected/` with its reason.
    pub fn add_rejected(&self, body: &[u8], reason: &Reason) -> Result<PathBuf, FsError> {
        add_with_reason(&self.rejected_dir(), body, reason)
    }

    /// Keeps the request for an output that failed verification in `mismatch/`, with
    /// the reason; nothing ever sends it.
    pub fn add_mismatch(&self, body: &[u8], reason: &Reason) -> Result<PathBuf, FsError> {
        add_with_reason(&self.mismatch_dir(), body, reason)
    }

    /// The waiting items, oldest first.
    pub fn items(&self) -> Result<Vec<PathBuf>, FsError> {
        list(&self.dir, ".json")
    }

    pub fn rejected_items(&self) -> Result<Vec<PathBuf>, FsError> {
        list_if_any(&self.rejected_dir(), ".json")
    }

    #[cfg(test)]
    pub fn mismatch_items(&self) -> Result<Vec<PathBuf>, FsError> {
        list_if_any(&self.mismatch_dir(), ".json")
    }

    /// The recorded failures of the waiting items, by item name (unreadable records
    /// count as none).
    pub fn failures(&self) -> Result<BTreeMap<String, Failures>, FsError> {
        let mut out = BTreeMap::new();
        for path in list(&self.dir, ".retry")? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let item = format!("{}.json", name.strip_suffix(".retry").unwrap_or(name));
            if let Some(f) = Failures::read(&path) {
                out.insert(item, f);
            }
        }
        Ok(out)
    }

    /// The recorded failures of a claimed item.
    pub fn failures_of(&self, item: &Claimed) -> Option<Failures> {
        Failures::read(&beside(&self.dir, &item.name, ".retry"))
    }

    /// Records, beside a claimed item, that sending it failed again.
    pub fn record_failure(&self, item: &Claimed, failures: &Failures) -> Result<PathBuf, FsError> {
        let path = beside(&self.dir, &item.name, ".retry");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("item.retry");
        durable::write(&self.dir, name, &failures.to_json())
    }

    /// Takes `path` for this process: `None` when another process holds it or it is
    /// gone (delivered by someone else).
    pub fn claim(&self, path: &Path) -> Result<Option<Claimed>, FsError> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::io(path)(e)),
        };
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(FsError::io(path)(e));
        }
        // The holder before us may have finished with it (unlinked or moved it)
        // between our open and our lock.
        let ours = f.metadata().map_err(FsError::io(path))?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() && ours.nlink() > 0 => {}
            _ => return Ok(None),
        }
        let mut body = Vec::new();
        f.read_to_end(&mut body).map_err(FsError::io(path))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("item.json").to_owned();
        Ok(Some(Claimed { path: path.to_path_buf(), name, body, _lock: f }))
    }

    /// Drops the record of failures of an item that left the spool.
    fn forget_failures(&self, item_name: &str) {
        let _ = fs::remove_file(beside(&self.dir, item_name, ".retry"));
    }

    /// Removes a delivered item.
    pub fn remove(&self, item: Claimed) -> Result<(), FsError> {
        fs::remove_file(&item.path).map_err(FsError::io(&item.path))?;
        self.forget_failures(&item.name);
        durable::sync_dir_after(&self.dir, &format!("{} is removed", item.path.display()));
        Ok(())
    }

    /// Moves an item to `rejected/` next to its reason.
    pub fn reject(&self, item: Claimed, reason: &Reason) -> Result<PathBuf, FsError> {
        let rej = self.rejected_dir();
        durable::create_dir(&rej)?;
        write_reason(&rej, &item.name, reason)?;
        let dest = rej.join(&item.name);
        fs::rename(&item.path, &dest).map_err(FsError::io(&item.path))?;
        self.forget_failures(&item.name);
        let moved = format!("{} is moved to {}", item.path.display(), dest.display());
        durable::sync_dir_after(&rej, &moved);
        durable::sync_dir_after(&self.dir, &moved);
        Ok(dest)
    }

    /// Moves every rejected item back into the spool (after fixing what was wrong).
    /// Items whose reason is a failed verification (put in `rejected/` by older
    /// versions) are moved to `mismatch/` instead: they must never be sent. Items
    /// whose reason cannot be read stay where they are.
    pub fn requeue_rejected(&self) -> Result<Requeued, FsError> {
        let rej = self.rejected_dir();
        let mut done = Requeued::default();
        for item in self.rejected_items()? {
            let Some(name) = item.file_name().and_then(|n| n.to_str()) else { continue };
            let reason = beside(&rej, name, ".reason");
            match Reason::read(&reason) {
                Ok(Some(Reason { why: Why::VerifyMismatch { .. }, .. })) => {
                    let mis = self.mismatch_dir();
                    durable::create_dir(&mis)?;
                    let _ = fs::rename(&reason, beside(&mis, name, ".reason"));
                    fs::rename(&item, mis.join(name)).map_err(FsError::io(&item))?;
                    durable::sync_dir_after(&mis, &format!("{} is moved to {}", item.display(), mis.display()));
                    done.mismatches += 1;
                }
                Ok(_) => {
                    fs::rename(&item, self.dir.join(name)).map_err(FsError::io(&item))?;
                    let _ = fs::remove_file(reason);
                    done.requeued += 1;
                }
                Err(e) => {
                    crate::log::warn(&format!("{e}; {} stays in {}", item.display(), rej.display()));
                    done.unreadable += 1;
                }
            }
        }
        if done.requeued + done.mismatches > 0 {
            durable::sync_dir_after(&self.dir, "the rejected items are requeued");
            durable::sync_dir_after(&rej, "the rejected items are requeued");
        }
        Ok(done)
    }

    /// Removes `.tmp-*` files older than `max_age_secs` (left by a killed writer) and
    /// records of failures whose item is gone.
    pub fn clean_stale(&self, max_age_secs: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".retry") {
                if !self.dir.join(format!("{stem}.json")).exists() {
                    let _ = fs::remove_file(e.path());
                }
                continue;
            }
            if !name.starts_with(".tmp-") {
                continue;
            }
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > max_age_secs);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn add_with_reason(dir: &Path, body: &[u8], reason: &Reason) -> Result<PathBuf, FsError> {
    durable::create_dir(dir)?;
    let name = durable::unique_name(".json");
    write_reason(dir, &name, reason)?;
    durable::write(dir, &name, body)
}

fn write_reason(dir: &Path, item_name: &str, reason: &Reason) -> Result<(), FsError> {
    let path = beside(dir, item_name, ".reason");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("item.reason");
    // Replaces any earlier reason (an item rejected, requeued and rejected again).
    durable::write(dir, name, &reason.to_json()).map(|_| ())
}

fn list_if_any(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, FsError> {
    match list(dir, ext) {
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        r => r,
    }
}

/// The regular files of `dir` named `*<ext>` (not hidden), sorted by name.
fn list(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, FsError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(FsError::io(dir))? {
        let e = e.map_err(FsError::io(dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(ext) {
            continue;
        }
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::durable::{FAIL_DIR_SYNC, SYNCED};
    use nhc_core::{NarHash, StorePath};
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn refused(status: u16) -> Reason {
        Reason::now(Why::Refused { server: "http://x".into(), http_status: status, error: None, response: None })
    }

    pub(crate) fn mismatch() -> Reason {
        let recorded = Recorded { nar_hash: NarHash::from_bytes([1; 32]), nar_size: 1 };
        Reason::now(Why::VerifyMismatch {
            verify_mismatch: VerifyMismatch {
                output_path: StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap(),
                recorded: recorded.clone(),
                on_disk: Recorded { nar_size: 2, ..recorded },
            },
        })
    }

    #[test]
    fn add_claim_remove_reject() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/spool");
        let s = Spool::open(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let a = s.add(b"{\"a\":1}").unwrap();
        let b = s.add(b"{\"b\":2}").unwrap();
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(s.items().unwrap(), vec![a.clone(), b.clone()]);

        let ca = s.claim(&a).unwrap().unwrap();
        assert_eq!(ca.body, b"{\"a\":1}");
        // Held: a second claimer (another open file description) skips it.
        assert!(s.claim(&a).unwrap().is_none());
        s.remove(ca).unwrap();
        assert!(s.claim(&a).unwrap().is_none());

        let cb = s.claim(&b).unwrap().unwrap();
        let dest = s.reject(cb, &refused(400)).unwrap();
        assert!(dest.exists());
        assert!(s.items().unwrap().is_empty());
        assert_eq!(s.rejected_items().unwrap(), vec![dest.clone()]);
        let reason = dest.with_extension("reason");
        assert!(fs::read_to_string(&reason).unwrap().contains("\"http_status\": 400"));
        assert!(matches!(Reason::read(&reason), Ok(Some(Reason { why: Why::Refused { http_status: 400, .. }, .. }))));
        assert_eq!(s.requeue_rejected().unwrap(), Requeued { requeued: 1, ..Requeued::default() });
        assert_eq!(s.items().unwrap().len(), 1);
        assert!(!reason.exists());
        let r = s.add_rejected(b"x", &refused(413)).unwrap();
        assert!(r.starts_with(s.rejected_dir()));
    }

    /// Verify mismatches are kept apart: `--retry-rejected` must never send them, also
    /// those an older version put in `rejected/`; nor an item whose reason is unreadable.
    #[test]
    fn verify_mismatches_are_never_requeued() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path()).unwrap();
        let m = s.add_mismatch(b"{\"m\":1}", &mismatch()).unwrap();
        assert!(m.starts_with(s.mismatch_dir()));
        assert_eq!(s.mismatch_items().unwrap(), vec![m.clone()]);
        assert!(m.with_extension("reason").exists());
        let legacy = s.add_rejected(b"{\"l\":1}", &mismatch()).unwrap();
        let refused_item = s.add_rejected(b"{\"r\":1}", &refused(400)).unwrap();
        let garbled = s.add_rejected(b"{\"g\":1}", &refused(400)).unwrap();
        fs::write(garbled.with_extension("reason"), "{\"verify_mismatch\": ").unwrap();
        assert_eq!(s.requeue_rejected().unwrap(), Requeued { requeued: 1, mismatches: 1, unreadable: 1 });
        let queued: Vec<Vec<u8>> = s.items().unwrap().iter().map(|p| fs::read(p).unwrap()).collect();
        assert_eq!(queued, vec![b"{\"r\":1}".to_vec()]);
        assert!(!refused_item.exists() && !legacy.exists());
        assert_eq!(s.rejected_items().unwrap(), vec![garbled]);
        let kept = s.mismatch_items().unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|p| p.with_extension("reason").exists()));
        assert!(kept.contains(&s.mismatch_dir().join(legacy.file_name().unwrap())));
        assert_eq!(s.requeue_rejected().unwrap(), Requeued { unreadable: 1, ..Requeued::default() });
        assert_eq!(s.items().unwrap().len(), 1);
    }

    /// The reasons that older versions wrote are read by the one type.
    #[test]
    fn reasons_of_every_kind_read_back() {
        let t = tempfile::tempdir().unwrap();
        for (text, want) in [
            (
                r#"{"error":{"error":"bad_signature","message":"no"},"http_status":400,"rejected_at":"2025-01-01T00:00:00Z","response":null,"server":"http://h"}"#,
                "refused",
            ),
            (r#"{"invalid_item":"expected value at line 1","rejected_at":"2025-01-01T00:00:00Z"}"#, "invalid"),
            (
                r#"{"rejected_at":"2025-01-01T00:00:00Z","verify_mismatch":{"output_path":"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello","recorded":{"nar_hash":"sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h","nar_size":120},"on_disk":{"nar_hash":"sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h","nar_size":121}}}"#,
                "mismatch",
            ),
        ] {
            let p = t.path().join("r.reason");
            fs::write(&p, text).unwrap();
            let r = Reason::read(&p).unwrap().unwrap();
            let got = match &r.why {
                Why::Refused { error: Some(e), http_status: 400, .. } if e.error == "bad_signature" => "refused",
                Why::InvalidItem { .. } => "invalid",
                Why::VerifyMismatch { verify_mismatch: m } if m.on_disk.nar_size == 121 => "mismatch",
                w => panic!("{w:?}"),
            };
            assert_eq!(got, want);
            // And what is written reads back the same.
            fs::write(&p, r.to_json()).unwrap();
            assert_eq!(format!("{:?}", Reason::read(&p).unwrap().unwrap()), format!("{r:?}"));
        }
        assert!(Reason::read(&t.path().join("none.reason")).unwrap().is_none());
    }

    #[test]
    fn new_directories_are_synced_into_their_parent() {
        let t = tempfile::tempdir().unwrap();
        SYNCED.with(|v| v.borrow_mut().clear());
        let dir = t.path().join("a/b");
        let s = Spool::open(&dir).unwrap();
        let synced = SYNCED.with(|v| v.borrow().clone());
        assert_eq!(synced, vec![t.path().to_path_buf(), t.path().join("a")]);
        assert_eq!(fs::metadata(t.path().join("a")).unwrap().permissions().mode() & 0o777, 0o700);
        SYNCED.with(|v| v.borrow_mut().clear());
        s.add_rejected(b"{}", &refused(400)).unwrap();
        s.add_mismatch(b"{}", &mismatch()).unwrap();
        let synced = SYNCED.with(|v| v.borrow().clone());
        for d in [&dir, &s.rejected_dir(), &s.mismatch_dir()] {
            assert!(synced.contains(d), "{d:?} not synced: {synced:?}");
        }
        // Opening an existing spool syncs nothing.
        SYNCED.with(|v| v.borrow_mut().clear());
        Spool::open(&dir).unwrap();
        assert!(SYNCED.with(|v| v.borrow().is_empty()));
        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(Spool::open(&file), Err(FsError::NotADirectory(_))));
    }

    /// Once the item is renamed into place it is in the spool: a failed sync of the
    /// directory afterwards must not report it lost (the hook would then print it as
    /// LOST while `nhc flush` later sends it).
    #[test]
    fn a_failed_directory_sync_after_the_rename_is_only_a_warning() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path()).unwrap();
        fs::create_dir(s.rejected_dir()).unwrap();
        FAIL_DIR_SYNC.with(|f| f.set(true));
        let a = s.add(b"{}");
        let c = s.claim(a.as_ref().unwrap()).unwrap().unwrap();
        let rejected = s.reject(c, &refused(400));
        FAIL_DIR_SYNC.with(|f| f.set(false));
        let a = a.unwrap();
        assert!(!a.exists());
        assert!(rejected.unwrap().exists());
        // Creating a directory still needs its parent synced.
        FAIL_DIR_SYNC.with(|f| f.set(true));
        let r = Spool::open(&t.path().join("new"));
        FAIL_DIR_SYNC.with(|f| f.set(false));
        assert!(r.is_err());
    }

    #[test]
    fn a_claim_of_an_item_finished_by_another_process_is_void() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path()).unwrap();
        let a = s.add(b"{}").unwrap();
        // Another flush opened the item, then the first one finished it.
        let early = File::open(&a).unwrap();
        let first = s.claim(&a).unwrap().unwrap();
        s.remove(first).unwrap();
        // Locking the unlinked file now succeeds, but the name check refuses it.
        assert_eq!(unsafe { libc::flock(early.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        assert!(s.claim(&a).unwrap().is_none());
    }

    /// Failures are kept beside their item, leave with it, and orphans are cleaned.
    #[test]
    fn failures_are_recorded_beside_the_item() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path()).unwrap();
        let a = s.add(b"{}").unwrap();
        let b = s.add(b"{}").unwrap();
        let ca = s.claim(&a).unwrap().unwrap();
        assert_eq!(s.failures_of(&ca), None);
        let f = Failures::after(None, 1000, "HTTP 500".into());
        s.record_failure(&ca, &f).unwrap();
        assert_eq!(s.failures_of(&ca), Some(f.clone()));
        let name = a.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(s.failures().unwrap(), BTreeMap::from([(name, f)]));
        assert_eq!(s.items().unwrap(), vec![a.clone(), b.clone()], "a record is not an item");
        s.remove(ca).unwrap();
        assert!(s.failures().unwrap().is_empty());
        // A record whose item is gone (a crash between the two removals) is cleaned.
        let cb = s.claim(&b).unwrap().unwrap();
        s.record_failure(&cb, &Failures::after(None, 1000, "HTTP 502".into())).unwrap();
        drop(cb);
        fs::remove_file(&b).unwrap();
        s.clean_stale(3600);
        assert!(s.failures().unwrap().is_empty());
        assert!(fs::read_dir(t.path()).unwrap().next().is_none());
    }
}
