//! NAR (Nix ARchive) serialisation and NAR hashing, byte-for-byte as Nix 2.8 does it
//! (`libutil/archive.cc`), streaming and in constant memory.
//!
//! A NAR is a sequence of length-prefixed strings: each is its length as a
//! little-endian `u64`, its bytes, and zero padding to a multiple of 8.
//!
//! ```text
//! nar       = "nix-archive-1" node
//! node      = "(" "type" ( regular | symlink | directory ) ")"
//! regular   = "regular" [ "executable" "" ] "contents" <bytes>
//! symlink   = "symlink" "target" <target>
//! directory = "directory" { "entry" "(" "name" <name> "node" node ")" }   (names in byte order)
//! ```
//!
//! A file is executable when its owner-execute bit is set; other metadata (times,
//! owners, other permission bits) is not part of a NAR. Anything other than a
//! regular file, a symlink or a directory is an error, as in Nix.
//!
//! [`hash_path`] is what `nix hash path --base32` and `nix-store -q --hash` compute.
//! It reads on the calling thread and hashes on a second one, handing over
//! fixed-size buffers through a bounded channel, so the memory used does not depend
//! on the size of the tree and reading overlaps hashing. The hashing thread also
//! closes the files read, which for small files costs as much as reading them.
//! [`hash_path_sequential`] does everything on the calling thread.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, FileType};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

pub mod parse;
mod refs;

pub use refs::RefScanner;

/// The first string of every NAR.
pub const MAGIC: &str = "nix-archive-1";

/// Size of the buffers handed from the reading thread to the hashing thread
/// (measured on 2 cores: 256 KiB to 1 MiB are all within a few per cent).
const PIPE_BUF: usize = 512 * 1024;
/// Buffers that may wait in the channel; at most `PIPE_DEPTH + 2` exist at once.
const PIPE_DEPTH: usize = 4;
/// Files handed to the hashing thread to close, per buffer.
const MAX_OPEN: usize = 32;
/// Buffer of the sequential copy.
const COPY_BUF: usize = 64 * 1024;
/// The SHA-256 of a NAR and its length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NarDigest {
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Where a NAR goes. [`dump`] calls `write` for the framing and `copy_file` for the
/// contents of regular files, so a sink can read file data straight into its own
/// buffers.
pub trait NarSink {
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Appends exactly `len` bytes read from `file`.
    fn copy_file(&mut self, file: &mut File, len: u64) -> io::Result<()>
    where
        Self: Sized,
    {
        read_into(self, file, len)
    }

    /// Takes a file whose contents were copied, to close it (a sink may close it on
    /// another thread).
    fn done_with(&mut self, file: File) {
        drop(file);
    }
}

/// Any `Write` as a sink: `dump(path, &mut WriteSink(&mut vec))` produces the NAR bytes.
pub struct WriteSink<W: Write>(pub W);

impl<W: Write> NarSink for WriteSink<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
}

/// A sink that hashes and counts on the calling thread, optionally scanning for
/// references.
pub struct HashSink {
    hasher: Sha256,
    size: u64,
    scanner: Option<RefScanner>,
}

impl HashSink {
    pub fn new(scanner: Option<RefScanner>) -> Self {
        HashSink { hasher: Sha256::new(), size: 0, scanner }
    }

    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.size += data.len() as u64;
        if let Some(s) = &mut self.scanner {
            s.feed(data);
        }
    }

    pub fn finish(self) -> (NarDigest, Option<RefScanner>) {
        (NarDigest { sha256: self.hasher.finalize().into(), size: self.size }, self.scanner)
    }
}

impl NarSink for HashSink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.update(data);
        Ok(())
    }
}

fn read_into(sink: &mut impl NarSink, file: &mut File, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(COPY_BUF as u64) as usize];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = read_some(file, &mut buf[..want])?;
        sink.write(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads into `buf`, retrying on EINTR; a premature end of file is an error because
/// the length of the contents was already written.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was being read"))
            }
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn write_str(sink: &mut impl NarSink, s: &[u8]) -> io::Result<()> {
    sink.write(&(s.len() as u64).to_le_bytes())?;
    sink.write(s)?;
    write_padding(sink, s.len() as u64)
}

fn write_padding(sink: &mut impl NarSink, len: u64) -> io::Result<()> {
    let pad = (8 - (len % 8) as usize) % 8;
    if pad > 0 {
        sink.write(&[0u8; 8][..pad])?;
    }
    Ok(())
}

fn write_strs(sink: &mut impl NarSink, strs: &[&str]) -> io::Result<()> {
    for s in strs {
        write_str(sink, s.as_bytes())?;
    }
    Ok(())
}

/// Writes the NAR serialisation of `path` (a file, symlink or directory; a symlink
/// is serialised as a symlink, not followed) to `sink`.
pub fn dump(path: &Path, sink: &mut impl NarSink) -> io::Result<()> {
    write_str(sink, MAGIC.as_bytes())?;
    let meta = fs::symlink_metadata(path).map_err(with_path(path))?;
    let mut path = path.to_path_buf();
    dump_node(&mut path, meta.file_type(), sink)
}

fn dump_node(path: &mut PathBuf, ft: FileType, sink: &mut impl NarSink) -> io::Result<()> {
    if ft.is_file() {
        dump_regular(path, sink)
    } else if ft.is_symlink() {
        let target = fs::read_link(&*path).map_err(with_path(path))?;
        write_strs(sink, &["(", "type", "symlink", "target"])?;
        write_str(sink, target.as_os_str().as_bytes())?;
        write_str(sink, b")")
    } else if ft.is_dir() {
        write_strs(sink, &["(", "type", "directory"])?;
        let mut entries: Vec<(OsString, FileType)> = Vec::new();
        for entry in fs::read_dir(&*path).map_err(with_path(path))? {
            let entry = entry.map_err(with_path(path))?;
            let ft = entry.file_type().map_err(with_path(&entry.path()))?;
            entries.push((entry.file_name(), ft));
        }
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, ft) in entries {
            write_strs(sink, &["entry", "(", "name"])?;
            write_str(sink, name.as_bytes())?;
            write_str(sink, b"node")?;
            path.push(&name);
            let r = dump_node(path, ft, sink);
            path.pop();
            r?;
            write_str(sink, b")")?;
        }
        write_str(sink, b")")
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: a NAR can only hold regular files, symlinks and directories", path.display()),
        ))
    }
}

fn dump_regular(path: &Path, sink: &mut impl NarSink) -> io::Result<()> {
    let mut file =
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(with_path(path))?;
    let meta = file.metadata().map_err(with_path(path))?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: changed while hashing", path.display())));
    }
    write_strs(sink, &["(", "type", "regular"])?;
    if meta.permissions().mode() & 0o100 != 0 {
        write_strs(sink, &["executable", ""])?;
    }
    write_str(sink, b"contents")?;
    let len = meta.len();
    sink.write(&len.to_le_bytes())?;
    sink.copy_file(&mut file, len).map_err(with_path(path))?;
    sink.done_with(file);
    write_padding(sink, len)?;
    write_str(sink, b")")
}

/// The NAR bytes of `path`, in memory (for tests and small paths).
pub fn to_vec(path: &Path) -> io::Result<Vec<u8>> {
    let mut out = WriteSink(Vec::new());
    dump(path, &mut out)?;
    Ok(out.0)
}

/// NAR hash and size of `path` on the calling thread only.
pub fn hash_path_sequential(path: &Path) -> io::Result<NarDigest> {
    let mut sink = HashSink::new(None);
    dump(path, &mut sink)?;
    Ok(sink.finish().0)
}

/// NAR hash and size of `path`: reads on this thread, hashes on another.
pub fn hash_path(path: &Path) -> io::Result<NarDigest> {
    hash_path_pipelined(path, None).map(|(d, _)| d)
}

/// NAR hash and size of `path`, and which of `candidates` (32-character store-path
/// hash parts) occur anywhere in its NAR serialisation: the references Nix would
/// record if those were the paths the build could refer to.
pub fn hash_path_with_refs(path: &Path, candidates: HashSet<[u8; 32]>) -> io::Result<(NarDigest, HashSet<[u8; 32]>)> {
    let (d, scanner) = hash_path_pipelined(path, Some(RefScanner::new(candidates)))?;
    Ok((d, scanner.map(RefScanner::into_found).unwrap_or_default()))
}

/// What the reading thread hands to the hashing thread.
enum Chunk {
    /// A buffer, how much of it is filled, and files to close.
    Buf(Vec<u8>, usize, Vec<File>),
}

struct ChannelSink {
    cap: usize,
    buf: Vec<u8>,
    filled: usize,
    tx: mpsc::SyncSender<Chunk>,
    /// Files read into `buf`, closed by the hashing thread (closing costs as much as
    /// reading a small file).
    to_close: Vec<File>,
    free: mpsc::Receiver<Vec<u8>>,
}

impl ChannelSink {
    fn send(&mut self) -> io::Result<()> {
        if self.filled == 0 && self.to_close.is_empty() {
            return Ok(());
        }
        let next = self.free.try_recv().unwrap_or_else(|_| vec![0u8; self.cap]);
        let full = std::mem::replace(&mut self.buf, next);
        let files = std::mem::take(&mut self.to_close);
        self.push(Chunk::Buf(full, self.filled, files))?;
        self.filled = 0;
        Ok(())
    }

    fn push(&self, c: Chunk) -> io::Result<()> {
        self.tx.send(c).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the hashing thread stopped"))
    }
}

impl NarSink for ChannelSink {
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.filled == self.cap {
                self.send()?;
            }
            let n = data.len().min(self.cap - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
        }
        Ok(())
    }

    fn copy_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            if self.filled == self.cap {
                self.send()?;
            }
            let want = left.min((self.cap - self.filled) as u64) as usize;
            let n = read_some(file, &mut self.buf[self.filled..self.filled + want])?;
            self.filled += n;
            left -= n as u64;
        }
        Ok(())
    }

    fn done_with(&mut self, file: File) {
        self.to_close.push(file);
        if self.to_close.len() >= MAX_OPEN {
            // Bounds the open files to MAX_OPEN per buffer in flight. An error here
            // means the hashing thread stopped; the next write reports it.
            let _ = self.send();
        }
    }
}

fn hash_path_pipelined(path: &Path, scanner: Option<RefScanner>) -> io::Result<(NarDigest, Option<RefScanner>)> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(PIPE_DEPTH);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut sink = HashSink::new(scanner);
            for chunk in rx {
                match chunk {
                    Chunk::Buf(buf, n, files) => {
                        sink.update(&buf[..n]);
                        drop(files);
                        // The reader may be gone already; then the buffer is simply dropped.
                        let _ = free_tx.send(buf);
                    }
                }
            }
            sink.finish()
        });
        let cap = PIPE_BUF;
        let mut sink = ChannelSink { cap, buf: vec![0u8; cap], filled: 0, tx, to_close: Vec::new(), free: free_rx };
        let result = dump(path, &mut sink).and_then(|()| sink.send());
        drop(sink);
        let hashed = hasher.join().map_err(|_| io::Error::other("the hashing thread panicked"))?;
        result.map(|()| hashed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_framing() {
        let mut out = WriteSink(Vec::new());
        write_str(&mut out, b"abc").unwrap();
        write_str(&mut out, b"").unwrap();
        write_str(&mut out, b"12345678").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"abc\0\0\0\0\0");
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&8u64.to_le_bytes());
        want.extend_from_slice(b"12345678");
        assert_eq!(out.0, want);
    }

    #[test]
    fn unsupported_types_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = hash_path(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("fifo"), "{e}");
        assert!(hash_path(&dir.path().join("missing")).is_err());
    }
}
