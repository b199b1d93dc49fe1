//! The local record of what the transparency log acknowledged, per server: what
//! `nhc audit` checks the log against.
//!
//! Layout, under `<spool>/tlog/<server>/` (mode 0700; `<server>` is the server URL
//! without credentials, made a file name, and 8 hex digits of its SHA-256):
//! - `server`: that URL, for people;
//! - `entries`: one line per output the server stored and logged, appended when
//!   `POST /v1/attestations` answers: `<index> <leaf hash, 64 lowercase hex>
//!   <nar hash> <output path>\n`. Lines are appended with one `write` under an
//!   exclusive lock and synced. Past [`MAX_ENTRIES_BYTES`] the oldest half is dropped
//!   (an entry already proven in a recorded checkpoint stays proven as long as later
//!   checkpoints are consistent with it, which `nhc audit` checks);
//! - `checkpoint`: the last checkpoint `nhc audit` verified, the signed note verbatim
//!   (its size and root are read from it);
//! - `log-key`: the log's verifier key, pinned on first use.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use nhc_core::{NarHash, StorePath};
use nhc_tlog::Hash;
use sha2::{Digest, Sha256};

use crate::config::redact_url;
use crate::durable::{self, FsError};

/// Past this size the `entries` file keeps only its newest half (about 80,000 entries).
pub const MAX_ENTRIES_BYTES: u64 = 16 * 1024 * 1024;
/// The directory under the spool that holds the records.
pub const TLOG_DIR: &str = "tlog";

/// One logged output, as the server acknowledged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub nar_hash: NarHash,
    pub output_path: StorePath,
}

impl Entry {
    fn line(&self) -> String {
        format!("{} {} {} {}\n", self.index, nhc_tlog::hash_hex(&self.leaf_hash), self.nar_hash, self.output_path)
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut w = line.split(' ');
        let index = w.next()?.parse().ok()?;
        let leaf_hash = parse_hash_hex(w.next()?)?;
        let nar_hash = NarHash::parse(w.next()?).ok()?;
        let output_path = StorePath::parse(w.next()?).ok()?;
        if w.next().is_some() {
            return None;
        }
        Some(Entry { index, leaf_hash, nar_hash, output_path })
    }
}

/// 64 lowercase hex digits.
pub fn parse_hash_hex(s: &str) -> Option<Hash> {
    nhc_core::hex::decode_32(s).map(Hash)
}

/// The record of one server.
#[derive(Debug, Clone)]
pub struct Record {
    dir: PathBuf,
    server: String,
}

/// The file name of a server's record: readable, and unique by the hash.
fn dir_name(server: &str) -> String {
    let mut s: String = server
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .take(80)
        .collect();
    let h = Sha256::digest(server.as_bytes());
    s.push('-');
    s.push_str(&nhc_tlog::hash_hex(&Hash(h.into()))[..8]);
    s
}

/// What reading the entries found.
#[derive(Debug, Default)]
pub struct Entries {
    pub entries: Vec<Entry>,
    /// Lines that are not entries (a torn write, a hand edit): reported, skipped.
    pub bad_lines: usize,
}

impl Record {
    /// The record of `server` (a base URL; credentials are left out) under `spool`.
    pub fn new(spool: &Path, server: &str) -> Record {
        let server = redact_url(server.trim_end_matches('/'));
        Record { dir: spool.join(TLOG_DIR).join(dir_name(&server)), server }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries_path(&self) -> PathBuf {
        self.dir.join("entries")
    }

    fn ensure_dir(&self) -> Result<(), FsError> {
        if !self.dir.is_dir() {
            durable::create_dir(&self.dir)?;
            durable::write(&self.dir, "server", format!("{}\n", self.server).as_bytes())?;
        }
        Ok(())
    }

    /// An exclusive lock on the record (appends and compaction), released on drop.
    fn lock(&self) -> Result<File, FsError> {
        let path = self.dir.join("lock");
        let f = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(FsError::io(&path))?;
        // SAFETY: flock on a descriptor we own; it is released when `f` is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(FsError::io(&path)(io::Error::last_os_error()));
        }
        Ok(f)
    }

    /// Appends acknowledged entries durably (one write, then fsync).
    pub fn append(&self, entries: &[Entry]) -> Result<(), FsError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.ensure_dir()?;
        let _lock = self.lock()?;
        let path = self.entries_path();
        let text: String = entries.iter().map(Entry::line).collect();
        let created = !path.exists();
        let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(FsError::io(&path))?;
        f.write_all(text.as_bytes()).and_then(|_| f.sync_data()).map_err(FsError::io(&path))?;
        let len = f.metadata().map_err(FsError::io(&path))?.len();
        drop(f);
        if created {
            // The new file's name must be durable too, or the first entries may vanish.
            durable::sync_dir_after(&self.dir, &format!("{} is written", path.display()));
        }
        if len > MAX_ENTRIES_BYTES {
            self.compact(&path)?;
        }
        Ok(())
    }

    /// Keeps the newest half of the entries (called with the lock held).
    fn compact(&self, path: &Path) -> Result<(), FsError> {
        let text = std::fs::read_to_string(path).map_err(FsError::io(path))?;
        let lines: Vec<&str> = text.lines().collect();
        let keep: String = lines[lines.len() / 2..].iter().map(|l| format!("{l}\n")).collect();
        durable::write(&self.dir, "entries", keep.as_bytes())?;
        crate::log::warn(&format!(
            "{}: more than {} MiB; dropped the oldest {} entries from the record",
            path.display(),
            MAX_ENTRIES_BYTES >> 20,
            lines.len() / 2
        ));
        Ok(())
    }

    /// Every recorded entry, in the order recorded (none when there is no record).
    pub fn entries(&self) -> Result<Entries, FsError> {
        let path = self.entries_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Entries::default()),
            Err(e) => return Err(FsError::io(&path)(e)),
        };
        let mut out = Entries::default();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(FsError::io(&path))?;
            match Entry::parse(&line) {
                Some(e) => out.entries.push(e),
                None => out.bad_lines += 1,
            }
        }
        Ok(out)
    }

    fn read_opt(&self, name: &str) -> Result<Option<String>, FsError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::io(&path)(e)),
        }
    }

    /// The last checkpoint verified, as the signed note's text.
    pub fn checkpoint(&self) -> Result<Option<String>, FsError> {
        self.read_opt("checkpoint")
    }

    pub fn save_checkpoint(&self, note: &str) -> Result<(), FsError> {
        self.ensure_dir()?;
        durable::write(&self.dir, "checkpoint", note.as_bytes()).map(|_| ())
    }

    /// The pinned log key.
    pub fn log_key(&self) -> Result<Option<String>, FsError> {
        Ok(self.read_opt("log-key")?.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()))
    }

    pub fn pin_log_key(&self, key: &str) -> Result<(), FsError> {
        self.ensure_dir()?;
        durable::write(&self.dir, "log-key", format!("{}\n", key.trim()).as_bytes()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry {
            index: i,
            leaf_hash: Hash([i as u8; 32]),
            nar_hash: NarHash::parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").unwrap(),
            output_path: StorePath::parse(&format!("/nix/store/{}-out-{i}", "a".repeat(32))).unwrap(),
        }
    }

    #[test]
    fn entries_round_trip_and_bad_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record::new(dir.path(), "http://alice:secret@h.example:8080/");
        assert!(r.entries().unwrap().entries.is_empty());
        r.append(&[entry(0), entry(7)]).unwrap();
        r.append(&[entry(9)]).unwrap();
        let server = std::fs::read_to_string(r.dir().join("server")).unwrap();
        assert_eq!(server, "http://h.example:8080\n");
        assert!(!r.dir().to_string_lossy().contains("secret"));
        let mut f = OpenOptions::new().append(true).open(r.dir().join("entries")).unwrap();
        f.write_all(b"12 nothex\n").unwrap();
        let got = r.entries().unwrap();
        assert_eq!(got.entries, vec![entry(0), entry(7), entry(9)]);
        assert_eq!(got.bad_lines, 1);
        let text = std::fs::read_to_string(r.dir().join("entries")).unwrap();
        assert!(text.starts_with(&format!("0 {} sha256:1b8m", "00".repeat(32))), "{text}");
    }

    #[test]
    fn checkpoint_and_key_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record::new(dir.path(), "https://h.example");
        assert_eq!(r.checkpoint().unwrap(), None);
        assert_eq!(r.log_key().unwrap(), None);
        r.save_checkpoint("o\n1\nAAAA\n\n— o sig\n").unwrap();
        r.pin_log_key("o+1234abcd+AAAA").unwrap();
        assert_eq!(r.checkpoint().unwrap().as_deref(), Some("o\n1\nAAAA\n\n— o sig\n"));
        assert_eq!(r.log_key().unwrap().as_deref(), Some("o+1234abcd+AAAA"));
        // Another server has another record.
        assert_ne!(Record::new(dir.path(), "https://h.example:1").dir(), r.dir());
    }

    #[test]
    fn the_record_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record::new(dir.path(), "https://h.example");
        let line = entry(0).line().len() as u64;
        let n = MAX_ENTRIES_BYTES / line + 10;
        let batch: Vec<Entry> = (0..n).map(entry).collect();
        r.append(&batch).unwrap();
        let got = r.entries().unwrap().entries;
        assert!((got.len() as u64) < n && got.len() as u64 >= n / 2 - 1, "{}", got.len());
        assert_eq!(got.last().unwrap().index, n - 1);
        assert!(std::fs::metadata(r.dir().join("entries")).unwrap().len() <= MAX_ENTRIES_BYTES);
    }
}
