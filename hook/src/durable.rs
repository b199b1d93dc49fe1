//! Files written so that each is either complete or absent, and survives a crash
//! once written: a temporary file beside the target, `fsync`, `rename` (or a hard
//! link when the target must not be replaced), `fsync` of the directory. The spool
//! and `nhc keygen` write through here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log;

/// What went wrong with a file or directory.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: exists (--force replaces it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: is a directory", .0.display())]
    IsADirectory(PathBuf),
    #[error("{}: exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: the directory {} does not exist", .path.display(), .dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
}

impl FsError {
    /// An I/O error about `path`.
    pub fn io(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
        move |source| FsError::Io { path: path.to_path_buf(), source }
    }

    /// Whether it says that the file is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: the directories synced by this thread, and whether syncing one fails.
    pub(crate) static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
    pub(crate) static FAIL_DIR_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The directory a file named by `path` is in.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    #[cfg(test)]
    {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
        if FAIL_DIR_SYNC.with(|f| f.get()) {
            return Err(FsError::io(dir)(io::Error::other("injected failure")));
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(FsError::io(dir))
}

/// Syncs `dir` after a change that is already made (a rename, a removal): a failure
/// only means the change might not survive a crash, so it is a warning, not an error.
pub fn sync_dir_after(dir: &Path, what: &str) {
    if let Err(e) = sync_dir(dir) {
        log::warn(&format!("{what}, but syncing the directory failed ({e}); it may not survive a power loss"));
    }
}

/// Creates `dir` (mode 0700) and any missing parents, syncing the parent of each
/// one created so that the new entries are durable.
pub fn create_dir(dir: &Path) -> Result<(), FsError> {
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
            Err(e) => return Err(FsError::io(d)(e)),
        }
        sync_dir(dir_of(d))?;
    }
    if dir.is_dir() {
        Ok(())
    } else {
        Err(FsError::NotADirectory(dir.to_path_buf()))
    }
}

/// A fresh unique name: nanoseconds since the epoch, then 64 random bits, then
/// `suffix`. Names made later sort later.
pub fn unique_name(suffix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut r = [0u8; 8];
    if getrandom::fill(&mut r).is_err() {
        // Fall back to the pid: still unique together with the time.
        r = u64::from(std::process::id()).to_le_bytes();
    }
    format!("{nanos:020}-{:016x}{suffix}", u64::from_le_bytes(r))
}

/// Whether a file can be put at `path`: its directory exists, and it does not exist
/// (or `replace` and it is not a directory).
pub fn check_target(path: &Path, replace: bool) -> Result<(), FsError> {
    let dir = dir_of(path);
    if !dir.is_dir() {
        return Err(FsError::NoDirectory { path: path.to_path_buf(), dir: dir.to_path_buf() });
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io(path)(e)),
        Ok(m) if m.is_dir() => Err(FsError::IsADirectory(path.to_path_buf())),
        Ok(_) if replace => Ok(()),
        Ok(_) => Err(FsError::Exists(path.to_path_buf())),
    }
}

/// A complete, synced temporary file waiting to be put at its target; removed if
/// dropped before [`Staged::commit`].
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
}

/// Writes `data` to a new temporary file (mode `mode`) beside `dest`, synced.
pub fn stage(dest: &Path, data: &[u8], mode: u32) -> Result<Staged, FsError> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir_of(dest).join(format!(".tmp-{}", unique_name(&format!("-{name}"))));
    let staged = Staged { tmp, dest: dest.to_path_buf() };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged.tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .map_err(FsError::io(dest))?;
    Ok(staged)
}

impl Staged {
    /// Puts the file at its target: replacing what is there with `replace`, else only
    /// if nothing is (a hard link fails if something is), then syncs the directory
    /// (a failure of that last sync is only a warning: the file is in place).
    pub fn commit(self, replace: bool) -> Result<PathBuf, FsError> {
        let (tmp, dest) = (&self.tmp, &self.dest);
        let r = if replace {
            fs::rename(tmp, dest)
        } else {
            match fs::hard_link(tmp, dest) {
                Ok(()) => fs::remove_file(tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(FsError::Exists(dest.clone())),
                // A file system without hard links: the check before writing has to do.
                Err(_) if !dest.exists() => fs::rename(tmp, dest),
                Err(e) => Err(e),
            }
        };
        r.map_err(FsError::io(dest))?;
        sync_dir_after(dir_of(dest), &format!("{} is written", dest.display()));
        Ok(self.dest.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Gone already once committed.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Writes `data` to `dir/name` (mode 0600) so that the file either does not exist or
/// is complete, and survives a crash once this returns; an existing file is replaced.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, FsError> {
    stage(&dir.join(name), data, 0o600)?.commit(true)
}

/// Writes the files `(path, data, mode)` so that each is either complete or absent:
/// every target is checked before any is written, and all are staged before any is
/// put in place. Without `replace`, existing files are refused.
pub fn write_all(files: &[(&Path, &[u8], u32)], replace: bool) -> Result<(), FsError> {
    for (path, ..) in files {
        check_target(path, replace)?;
    }
    let staged = files.iter().map(|(path, data, mode)| stage(path, data, *mode)).collect::<Result<Vec<_>, _>>()?;
    // The first failure stops the rest; their temporary files go when dropped.
    for s in staged {
        s.commit(replace)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replace_or_refuse_and_leave_no_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        assert_eq!(write(t.path(), "a", b"one").unwrap(), a);
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        write(t.path(), "a", b"two").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"two");
        let b = t.path().join("b");
        assert!(
            matches!(write_all(&[(&b, b"b", 0o644), (&a, b"three", 0o600)], false), Err(FsError::Exists(p)) if p == a)
        );
        assert!(!b.exists(), "nothing is written when a target is refused");
        write_all(&[(&b, b"b", 0o644), (&a, b"three", 0o600)], true).unwrap();
        assert_eq!((fs::read(&a).unwrap(), fs::read(&b).unwrap()), (b"three".to_vec(), b"b".to_vec()));
        let missing = t.path().join("none/c");
        assert!(matches!(write_all(&[(&missing, b"c", 0o600)], true), Err(FsError::NoDirectory { .. })));
        assert!(matches!(check_target(t.path(), true), Err(FsError::IsADirectory(_))));
        // A staged file that is never committed leaves nothing behind.
        drop(stage(&t.path().join("d"), b"d", 0o600).unwrap());
        assert_eq!(names(t.path()), ["a", "b"]);
    }

    #[test]
    fn unique_names_are_unique_and_ordered() {
        let names: Vec<String> = (0..200).map(|_| unique_name(".json")).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
        assert!(names.windows(2).all(|w| w[0][..20] <= w[1][..20]));
        assert!(names.iter().all(|n| n.ends_with(".json")));
    }
}
