//! The spool: signed attestation requests that are not delivered yet, one file per
//! build, written durably (temporary file, fsync, rename, fsync of the directory).
//!
//! Layout of the spool directory (mode 0700):
//! - `<time>-<random>.json`: the exact request body for `POST /v1/attestations`;
//!   names sort in the order the items were made.
//! - `.tmp-*`: an item being written (never read by `nhc flush`).
//! - `rejected/<name>.json` and `rejected/<name>.reason`: items the server refused
//!   with a 4xx (or that failed local verification), with the reason as JSON.
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

pub const REJECTED: &str = "rejected";

fn ctx(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(ctx(dir))
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
/// complete, and survives a crash once this returns.
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
    fsync_dir(dir)?;
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
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(ctx(dir))?;
        Ok(Spool { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join(REJECTED)
    }

    /// Adds a request body; returns the item's path.
    pub fn add(&self, body: &[u8]) -> io::Result<PathBuf> {
        write_durably(&self.dir, &new_item_name(), body)
    }

    /// Writes a body straight to `rejected/` with its reason.
    pub fn add_rejected(&self, body: &[u8], reason: &serde_json::Value) -> io::Result<PathBuf> {
        let rej = self.rejected_dir();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&rej).map_err(ctx(&rej))?;
        let name = new_item_name();
        write_reason(&rej, &name, reason)?;
        write_durably(&rej, &name, body)
    }

    /// The waiting items, oldest first.
    pub fn items(&self) -> io::Result<Vec<PathBuf>> {
        list_items(&self.dir)
    }

    pub fn rejected_items(&self) -> io::Result<Vec<PathBuf>> {
        match list_items(&self.rejected_dir()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            r => r,
        }
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
        fsync_dir(&self.dir)
    }

    /// Moves an item to `rejected/` next to its reason.
    pub fn reject(&self, item: Claimed, reason: &serde_json::Value) -> io::Result<PathBuf> {
        let rej = self.rejected_dir();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&rej).map_err(ctx(&rej))?;
        write_reason(&rej, &item.name, reason)?;
        let dest = rej.join(&item.name);
        fs::rename(&item.path, &dest).map_err(ctx(&item.path))?;
        fsync_dir(&rej)?;
        fsync_dir(&self.dir)?;
        Ok(dest)
    }

    /// Moves every rejected item back into the spool (after fixing what was wrong).
    pub fn requeue_rejected(&self) -> io::Result<usize> {
        let rej = self.rejected_dir();
        let mut n = 0;
        for item in self.rejected_items()? {
            let Some(name) = item.file_name() else { continue };
            let dest = self.dir.join(name);
            fs::rename(&item, &dest).map_err(ctx(&item))?;
            let _ = fs::remove_file(reason_path(&rej, &name.to_string_lossy()));
            n += 1;
        }
        if n > 0 {
            fsync_dir(&self.dir)?;
            fsync_dir(&rej)?;
        }
        Ok(n)
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
        assert_eq!(s.requeue_rejected().unwrap(), 1);
        assert_eq!(s.items().unwrap().len(), 1);
        assert!(!reason.exists());
        let r = s.add_rejected(b"x", &serde_json::json!({"why": "verify"})).unwrap();
        assert!(r.starts_with(s.rejected_dir()));
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
