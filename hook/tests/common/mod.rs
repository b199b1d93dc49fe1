//! A transparency log served over HTTP in-process, built with `nhc-tlog` as the server
//! side will build it (`/log/checkpoint`, `/log/key`, `/log/tile/...`, `/v1/builders`),
//! with knobs to tamper with it; and a way to run `nhc` against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, KeyName, NarHash, SecretKey, StorePath};
use nhc_tlog::tiles::{tile_data, TileId};
use nhc_tlog::{append_stored_hashes, encode_bundle, leaf_hash, Hash, Leaf, LogSigner};

pub const ORIGIN: &str = "test.example/log";
pub const NAR: &str = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";

/// What the server serves; tests change it between runs.
pub struct Log {
    /// Entry bytes, by index (what the entry bundles are made of).
    pub leaves: Vec<Vec<u8>>,
    /// The stored hashes (what the hash tiles are made of).
    pub stored: Vec<Hash>,
    /// The tree size tiles are served for (404 past it).
    pub size: u64,
    /// The signed checkpoint served.
    pub checkpoint: Vec<u8>,
    pub key: String,
    pub builders: String,
}

pub fn signer(seed: u8) -> LogSigner {
    LogSigner::parse(&LogSigner::secret_from_seed(ORIGIN, [seed; 32]).unwrap()).unwrap()
}

pub fn builder_key() -> SecretKey {
    SecretKey::from_seed(KeyName::parse("builder-1").unwrap(), [7; 32])
}

pub fn out_path(i: u64) -> StorePath {
    StorePath::parse(&format!("/nix/store/{}-out-{i}", "a".repeat(32))).unwrap()
}

/// Leaf `i`: builder alice's signed attestation of `out-i`. Signatures repeat every
/// 1,024 leaves (the fingerprint leaves out `submitted-at`), which keeps building
/// 65,537 leaves quick.
pub fn leaves(n: u64) -> Vec<Vec<u8>> {
    let key = builder_key();
    let nar = NarHash::parse(NAR).unwrap();
    let sigs: Vec<_> = (0..n.min(1024))
        .map(|i| key.sign(&nhc_core::fingerprint(&out_path(i), &nar, i, &References::default())))
        .collect();
    (0..n)
        .map(|i| {
            let j = i % 1024;
            let b = BuilderName::parse("alice").unwrap();
            Leaf::new(b, out_path(j), nar, j, References::default(), sigs[j as usize].clone(), None, None, i as i64)
                .encode()
        })
        .collect()
}

/// The stored hashes and root of a tree of `leaves`.
pub fn tree(leaves: &[Vec<u8>]) -> (Vec<Hash>, Hash) {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    append_stored_hashes(0, &[], &hashes).unwrap()
}

impl Log {
    /// A log of `leaves`, signed by `signer(1)`.
    pub fn new(leaves: Vec<Vec<u8>>) -> Log {
        let s = signer(1);
        let (stored, root) = tree(&leaves);
        let size = leaves.len() as u64;
        let b = builder_key().public_key();
        Log {
            checkpoint: s.sign(size, &root),
            leaves,
            stored,
            size,
            key: s.verifier_key().to_owned(),
            builders: format!(
                r#"[{{"name":"alice","public_keys":["{b}"],"created_at":"2026-11-29T22:05:25.224145Z"}}]"#
            ),
        }
    }

    /// Re-computes the tiles and re-signs the checkpoint for the current leaves (a
    /// server that rewrites its history).
    pub fn rebuild(&mut self) {
        let (stored, root) = tree(&self.leaves);
        self.stored = stored;
        self.size = self.leaves.len() as u64;
        self.checkpoint = signer(1).sign(self.size, &root);
    }

    fn get(&self, path: &str) -> Option<(&'static str, Vec<u8>)> {
        let path = path.strip_prefix('/')?;
        match path {
            "log/checkpoint" => return Some(("text/plain; charset=utf-8", self.checkpoint.clone())),
            "log/key" => return Some(("text/plain; charset=utf-8", format!("{}\n", self.key).into_bytes())),
            "v1/builders" => return Some(("application/json", self.builders.clone().into_bytes())),
            _ => {}
        }
        let id = TileId::parse(path.strip_prefix("log/")?).ok()?;
        if !id.exists_in(self.size) {
            return None;
        }
        let data = match id.entry_range() {
            Some(r) => {
                let leaves = self.leaves.get(r.start as usize..r.end as usize)?;
                encode_bundle(leaves.iter().map(Vec::as_slice)).ok()?
            }
            None => {
                let idx = id.stored_hash_indexes()?;
                tile_data(&idx.iter().map(|&i| self.stored.get(i as usize).copied()).collect::<Option<Vec<_>>>()?)
            }
        };
        Some(("application/octet-stream", data))
    }
}

/// Serves `log` until the test ends; returns the base URL. HTTP/1.1 with keep-alive,
/// a thread per connection.
pub fn serve(log: Arc<Mutex<Log>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                    let answer = log.lock().unwrap().get(&path);
                    let (status, ctype, body) = match answer {
                        Some((t, b)) => ("200 OK", t, b),
                        None => ("404 Not Found", "application/json", br#"{"error":"not_found"}"#.to_vec()),
                    };
                    let head =
                        format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len());
                    // One write: a head and body written apart wait for a delayed ACK (Nagle).
                    let mut out = head.into_bytes();
                    out.extend_from_slice(&body);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

/// The output of one `nhc` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `nhc args` with no config file, the spool in `spool`, the server `server`.
pub fn nhc(spool: &Path, server: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(args)
        .env("HASH_COLLECTION_CONFIG", "/dev/null")
        .env("HASH_COLLECTION_SPOOL", spool)
        .env("HASH_COLLECTION_SERVER", server)
        .env_remove("HASH_COLLECTION_LOG_KEY")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one server record under `spool` (after a run created it).
pub fn record_dir(spool: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(spool.join("tlog")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// Records entries `indexes` of `leaves` as the server acknowledged them, in the
/// documented format of `<record>/entries`.
pub fn record_entries(spool: &Path, leaves: &[Vec<u8>], indexes: &[u64]) {
    let mut text = String::new();
    for &i in indexes {
        let l = Leaf::decode(&leaves[i as usize]).unwrap();
        text.push_str(&format!(
            "{i} {} {} {}\n",
            nhc_tlog::hash_hex(&leaf_hash(&leaves[i as usize])),
            l.nar_hash,
            l.output_path
        ));
    }
    let path = record_dir(spool).join("entries");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
