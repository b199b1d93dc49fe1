//! The spool: signed attestation requests that are not delivered yet, one file per
//! build, written durably (temporary file, fsync, rename, fsync of the directory).
//!
//! Layout of the spool directory (mode 0700):
//! - `<time>-<random>.json`: the exact request body for `POST /v1/attestations`;
//!   names sort in the order the items were made.
//! - `.tmp-*`: an item being written (never read by `nhc flush`).
//! - `rejected/<name>.json` and `rejected/<name>.reason`: items the server refused
//!   with a 4xx, with the reason as JSON; `nhc flush --retry-rejected` requeues them.
//! - `mismatch/<name>.json` and `mismatch/<name>.reason`: requests for outputs whose
//!   files no longer matched Nix's record (`--verify`); kept for inspection, never sent.
//!
//! Directories are created with mode 0700 and their parent is synced, so a new
//! directory and the first item in it survive a crash together.
//!
//! `nhc flush` takes each item with an exclusive `flock` and checks that the file is
//! still linked under its name, so two flushes never send the same item at the same
//! time, and a flush killed half-way leaves nothing locked behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log;

pub const REJECTED: &str = "rejected";
pub const MISMATCH: &str = "mismatch";

fn ctx(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
thread_local! {
    /// Tests: the directories synced by this thread, and whether syncing one fails.
    static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
    static FAIL_DIR_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
        if FAIL_DIR_SYNC.with(|f| f.get()) {
            return Err(ctx(dir)(io::Error::other("injected failure")));
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(ctx(dir))
}

/// Syncs `dir` after a change that is already made (a rename, a removal): a failure
/// only means the change might not survive a crash, so it is a warning, not an error.
fn fsync_dir_after(dir: &Path, what: &str) {
    if let Err(e) = fsync_dir(dir) {
        log::warn(&format!("{what}, but syncing the directory failed ({e}); it may not survive a power loss"));
    }
}

/// Creates `dir` (mode 0700) and any missing parents, syncing the parent of each
/// one created so that the new entries are durable.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur);
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            // Made at the same time by another process: it syncs it too.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(ctx(d)(e)),
        }
        let parent = match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fsync_dir(parent)?;
    }
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ctx(dir)(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory")))
    }
}

/// A fresh item name: nanoseconds since the epoch, then 64 random bits.
pub fn new_item_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut r = [0u8; 8];
    if getrandom::fill(&mut r).is_err() {
        // Fall back to the pid: still unique together with the time.
        r = u64::from(std::process::id()).to_le_bytes();
    }
    format!("{nanos:020}-{:016x}.json", u64::from_le_bytes(r))
}

/// Writes `data` to `dir/name` so that the file either does not exist or is
/// complete, and survives a crash once this returns (if only the final sync of the
/// directory fails, the file is there and this warns and succeeds).
pub fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<PathBuf> {
    let tmp = dir.join(format!(".tmp-{name}"));
    let fin = dir.join(name);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, &fin)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(e.kind(), format!("{}: {e}", fin.display())));
    }
    fsync_dir_after(dir, &format!("{} is written", fin.display()));
    Ok(fin)
}

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

impl Spool {
    /// Opens the spool, creating it (mode 0700) if missing.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        create_dir_durably(dir)?;
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
    pub fn add(&self, body: &[u8]) -> io::Result<PathBuf> {
        write_durably(&self.dir, &new_item_name(), body)
    }

    /// Writes a body straight to `rejected/` with its reason.
    pub fn add_rejected(&self, body: &[u8], reason: &serde_json::Value) -> io::Result<PathBuf> {
        add_with_reason(&self.rejected_dir(), body, reason)
    }

    /// Keeps the request for an output that failed verification in `mismatch/`, with
    /// the reason; nothing ever sends it.
    pub fn add_mismatch(&self, body: &[u8], reason: &serde_json::Value) -> io::Result<PathBuf> {
        add_with_reason(&self.mismatch_dir(), body, reason)
    }

    /// The waiting items, oldest first.
    pub fn items(&self) -> io::Result<Vec<PathBuf>> {
        list_items(&self.dir)
    }

    pub fn rejected_items(&self) -> io::Result<Vec<PathBuf>> {
        list_items_if_any(&self.rejected_dir())
    }

    pub fn mismatch_items(&self) -> io::Result<Vec<PathBuf>> {
        list_items_if_any(&self.mismatch_dir())
    }

    /// Takes `path` for this process: `None` when another process holds it or it is
    /// gone (delivered by someone else).
    pub fn claim(&self, path: &Path) -> io::Result<Option<Claimed>> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ctx(path)(e)),
        };
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(ctx(path)(e));
        }
        // The holder before us may have finished with it (unlinked or moved it)
        // between our open and our lock.
        let ours = f.metadata().map_err(ctx(path))?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() && ours.nlink() > 0 => {}
            _ => return Ok(None),
        }
        let mut body = Vec::new();
        f.read_to_end(&mut body).map_err(ctx(path))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("item.json").to_owned();
        Ok(Some(Claimed { path: path.to_path_buf(), name, body, _lock: f }))
    }

    /// Removes a delivered item.
    pub fn remove(&self, item: Claimed) -> io::Result<()> {
        fs::remove_file(&item.path).map_err(ctx(&item.path))?;
        fsync_dir_after(&self.dir, &format!("{} is removed", item.path.display()));
        Ok(())
    }

    /// Moves an item to `rejected/` next to its reason.
    pub fn reject(&self, item: Claimed, reason: &serde_json::Value) -> io::Result<PathBuf> {
        let rej = self.rejected_dir();
        create_dir_durably(&rej)?;
        write_reason(&rej, &item.name, reason)?;
        let dest = rej.join(&item.name);
        fs::rename(&item.path, &dest).map_err(ctx(&item.path))?;
        let moved = format!("{} is moved to {}", item.path.display(), dest.display());
        fsync_dir_after(&rej, &moved);
        fsync_dir_after(&self.dir, &moved);
        Ok(dest)
    }

    /// Moves every rejected item back into the spool (after fixing what was wrong).
    /// Items whose reason is a failed verification (put in `rejected/` by older
    /// versions) are moved to `mismatch/` instead: they must never be sent.
    /// Returns how many were requeued and how many were moved to `mismatch/`.
    pub fn requeue_rejected(&self) -> io::Result<(usize, usize)> {
        let rej = self.rejected_dir();
        let (mut n, mut mismatches) = (0, 0);
        for item in self.rejected_items()? {
            let Some(name) = item.file_name() else { continue };
            let name_s = name.to_string_lossy().into_owned();
            let reason = reason_path(&rej, &name_s);
            if is_verify_mismatch(&reason) {
                let mis = self.mismatch_dir();
                create_dir_durably(&mis)?;
                let _ = fs::rename(&reason, reason_path(&mis, &name_s));
                fs::rename(&item, mis.join(name)).map_err(ctx(&item))?;
                fsync_dir_after(&mis, &format!("{} is moved to {}", item.display(), mis.display()));
                mismatches += 1;
                continue;
            }
            let dest = self.dir.join(name);
            fs::rename(&item, &dest).map_err(ctx(&item))?;
            let _ = fs::remove_file(reason);
            n += 1;
        }
        if n + mismatches > 0 {
            fsync_dir_after(&self.dir, "the rejected items are requeued");
            fsync_dir_after(&rej, "the rejected items are requeued");
        }
        Ok((n, mismatches))
    }

    /// Removes `.tmp-*` files older than `max_age_secs` (left by a killed writer).
    pub fn clean_stale_temporaries(&self, max_age_secs: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(".tmp-") {
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

fn add_with_reason(dir: &Path, body: &[u8], reason: &serde_json::Value) -> io::Result<PathBuf> {
    create_dir_durably(dir)?;
    let name = new_item_name();
    write_reason(dir, &name, reason)?;
    write_durably(dir, &name, body)
}

/// Whether the reason file says the item failed local verification.
fn is_verify_mismatch(reason: &Path) -> bool {
    fs::read(reason)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("verify_mismatch").is_some())
}

fn list_items_if_any(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match list_items(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        r => r,
    }
}

fn reason_path(dir: &Path, item_name: &str) -> PathBuf {
    dir.join(format!("{}.reason", item_name.strip_suffix(".json").unwrap_or(item_name)))
}

fn write_reason(dir: &Path, item_name: &str, reason: &serde_json::Value) -> io::Result<()> {
    let path = reason_path(dir, item_name);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("item.reason").to_owned();
    let mut text = serde_json::to_vec_pretty(reason).unwrap_or_default();
    text.push(b'\n');
    // Replace any earlier reason (an item rejected, requeued and rejected again).
    let _ = fs::remove_file(&path);
    write_durably(dir, &name, &text).map(|_| ())
}

fn list_items(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(ctx(dir))? {
        let e = e.map_err(ctx(dir))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
        let dest = s.reject(cb, &serde_json::json!({"status": 400})).unwrap();
        assert!(dest.exists());
        assert!(s.items().unwrap().is_empty());
        assert_eq!(s.rejected_items().unwrap(), vec![dest.clone()]);
        let reason = dest.with_extension("reason");
        assert!(fs::read_to_string(&reason).unwrap().contains("400"));
        assert_eq!(s.requeue_rejected().unwrap(), (1, 0));
        assert_eq!(s.items().unwrap().len(), 1);
        assert!(!reason.exists());
        let r = s.add_rejected(b"x", &serde_json::json!({"why": "verify"})).unwrap();
        assert!(r.starts_with(s.rejected_dir()));
    }

    /// Verify mismatches are kept apart: `--retry-rejected` must never send them, also
    /// those an older version put in `rejected/`.
    #[test]
    fn verify_mismatches_are_never_requeued() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::open(t.path()).unwrap();
        let m = s.add_mismatch(b"{\"m\":1}", &serde_json::json!({"verify_mismatch": {}})).unwrap();
        assert!(m.starts_with(s.mismatch_dir()));
        assert_eq!(s.mismatch_items().unwrap(), vec![m.clone()]);
        assert!(m.with_extension("reason").exists());
        let legacy = s.add_rejected(b"{\"l\":1}", &serde_json::json!({"verify_mismatch": {"x": 1}})).unwrap();
        let refused = s.add_rejected(b"{\"r\":1}", &serde_json::json!({"http_status": 400})).unwrap();
        assert_eq!(s.requeue_rejected().unwrap(), (1, 1));
        let queued: Vec<Vec<u8>> = s.items().unwrap().iter().map(|p| fs::read(p).unwrap()).collect();
        assert_eq!(queued, vec![b"{\"r\":1}".to_vec()]);
        assert!(!refused.exists() && !legacy.exists());
        assert!(s.rejected_items().unwrap().is_empty());
        let kept = s.mismatch_items().unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|p| p.with_extension("reason").exists()));
        assert!(kept.contains(&s.mismatch_dir().join(legacy.file_name().unwrap())));
        assert_eq!(s.requeue_rejected().unwrap(), (0, 0));
        assert_eq!(s.items().unwrap().len(), 1);
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
        s.add_rejected(b"{}", &serde_json::json!({})).unwrap();
        s.add_mismatch(b"{}", &serde_json::json!({})).unwrap();
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
        assert!(Spool::open(&file).is_err());
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
        let rejected = s.reject(c, &serde_json::json!({}));
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

    #[test]
    fn names_are_unique_and_ordered() {
        let names: Vec<String> = (0..200).map(|_| new_item_name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
        assert!(names.windows(2).all(|w| w[0][..20] <= w[1][..20]));
    }
}
