//! NARs in memory: a strict parser, a plain recursive serialiser (independent of the
//! streaming writer, which the tests compare it with) and restoring to disk.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::MAGIC;

/// One file-system object of a NAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Regular {
        executable: bool,
        contents: Vec<u8>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// Entries in strictly increasing byte order of their names.
    Directory(Vec<(Vec<u8>, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid NAR: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Deepest directory nesting the parser accepts (the stack is the limit).
const MAX_DEPTH: usize = 256;

impl<'a> Reader<'a> {
    fn err<T>(&self, what: &str) -> Result<T, ParseError> {
        Err(ParseError(format!("{what} at byte {}", self.pos)))
    }

    fn string(&mut self) -> Result<&'a [u8], ParseError> {
        let Some(len) = self.data.get(self.pos..self.pos + 8) else {
            return self.err("truncated length");
        };
        let len = u64::from_le_bytes(len.try_into().unwrap_or([0xff; 8]));
        let start = self.pos + 8;
        let padded = len.checked_add(7).map(|l| l & !7);
        let Some(end) = padded.and_then(|p| usize::try_from(p).ok()).and_then(|p| start.checked_add(p)) else {
            return self.err("length out of range");
        };
        if end > self.data.len() {
            return self.err("truncated string");
        }
        let len = len as usize;
        if self.data[start + len..end].iter().any(|&b| b != 0) {
            return self.err("non-zero padding");
        }
        self.pos = end;
        Ok(&self.data[start..start + len])
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        let at = self.pos;
        let s = self.string()?;
        if s != token.as_bytes() {
            return Err(ParseError(format!("expected {token:?} at byte {at}, found {:?}", String::from_utf8_lossy(s))));
        }
        Ok(())
    }

    fn node(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return self.err("directories nested too deeply");
        }
        self.expect("(")?;
        self.expect("type")?;
        let node = match self.string()? {
            b"regular" => {
                let mut tag = self.string()?;
                let executable = tag == b"executable";
                if executable {
                    if !self.string()?.is_empty() {
                        return self.err("executable marker must be followed by an empty string");
                    }
                    tag = self.string()?;
                }
                if tag != b"contents" {
                    return self.err("expected \"contents\"");
                }
                Node::Regular { executable, contents: self.string()?.to_vec() }
            }
            b"symlink" => {
                self.expect("target")?;
                Node::Symlink { target: self.string()?.to_vec() }
            }
            b"directory" => {
                let mut entries: Vec<(Vec<u8>, Node)> = Vec::new();
                loop {
                    match self.string()? {
                        b")" => return Ok(Node::Directory(entries)),
                        b"entry" => {}
                        _ => return self.err("expected \"entry\" or \")\""),
                    }
                    self.expect("(")?;
                    self.expect("name")?;
                    let name = self.string()?;
                    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                        return self.err("invalid entry name");
                    }
                    if entries.last().is_some_and(|(prev, _)| prev.as_slice() >= name) {
                        return self.err("entries not in strictly increasing order");
                    }
                    self.expect("node")?;
                    let child = self.node(depth + 1)?;
                    self.expect(")")?;
                    entries.push((name.to_vec(), child));
                }
            }
            _ => return self.err("unknown node type"),
        };
        self.expect(")")?;
        Ok(node)
    }
}

/// Parses a whole NAR; trailing bytes are an error.
pub fn parse(nar: &[u8]) -> Result<Node, ParseError> {
    let mut r = Reader { data: nar, pos: 0 };
    r.expect(MAGIC)?;
    let node = r.node(0)?;
    if r.pos != nar.len() {
        return r.err("trailing data");
    }
    Ok(node)
}

fn put(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len() + (8 - s.len() % 8) % 8, 0);
}

fn put_node(out: &mut Vec<u8>, node: &Node) {
    put(out, b"(");
    put(out, b"type");
    match node {
        Node::Regular { executable, contents } => {
            put(out, b"regular");
            if *executable {
                put(out, b"executable");
                put(out, b"");
            }
            put(out, b"contents");
            put(out, contents);
        }
        Node::Symlink { target } => {
            put(out, b"symlink");
            put(out, b"target");
            put(out, target);
        }
        Node::Directory(entries) => {
            put(out, b"directory");
            for (name, child) in entries {
                put(out, b"entry");
                put(out, b"(");
                put(out, b"name");
                put(out, name);
                put(out, b"node");
                put_node(out, child);
                put(out, b")");
            }
        }
    }
    put(out, b")");
}

/// The NAR of an in-memory tree (entries must already be sorted).
pub fn serialize(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, MAGIC.as_bytes());
    put_node(&mut out, node);
    out
}

/// Creates `dest` (which must not exist) holding `node`: files 0644 or 0755,
/// directories 0755.
pub fn restore(node: &Node, dest: &Path) -> io::Result<()> {
    match node {
        Node::Regular { executable, contents } => {
            fs::write(dest, contents)?;
            fs::set_permissions(dest, fs::Permissions::from_mode(if *executable { 0o755 } else { 0o644 }))
        }
        Node::Symlink { target } => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), dest),
        Node::Directory(entries) => {
            fs::create_dir(dest)?;
            for (name, child) in entries {
                restore(child, &dest.join(std::ffi::OsStr::from_bytes(name)))?;
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
        }
    }
}
