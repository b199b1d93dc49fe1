//! The transparency log under `/log/` (docs/api.md, "Transparency log"), checked here
//! with an implementation of its own: RFC 6962 tree hashing over SHA-256, the C2SP
//! entry-bundle and checkpoint formats, and the note signature checked with the Nix
//! ed25519 code of `nhc-core`, not with the crate that made them (`nhc-tlog`).

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use nhc_core::{PublicKey, Signature};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::Ctx;
use crate::fixtures::{builder, drv_path, nar_hash, store_path, submit, Out};
use crate::{ensure, ensure_eq, TestResult};

type Hash = [u8; 32];

fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// RFC 6962 section 2.1: MTH(D[n]), split at the largest power of two below n.
fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest(b"").into(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tile index in the C2SP path form: groups of three digits, `x` before all but the last.
fn tile_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut n = n / 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn tile_path(kind: &str, index: u64, width: u64) -> String {
    let partial = if width < 256 { format!(".p/{width}") } else { String::new() };
    format!("/log/tile/{kind}/{}{partial}", tile_index(index))
}

struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

/// Parses `/log/key` (`<name>+<hex id>+<base64 of 0x01 || key>`) and checks the
/// checkpoint note's signature line with it (C2SP signed-note, Ed25519).
fn verify_checkpoint(key: &str, note: &str) -> Result<Checkpoint, String> {
    let key = key.trim();
    let mut parts = key.rsplitn(3, '+');
    let (b64, id, name) = (parts.next(), parts.next(), parts.next());
    let (Some(b64), Some(id), Some(name)) = (b64, id, name) else { return Err(format!("key {key:?}")) };
    let raw = B64.decode(b64).map_err(|e| format!("key base64: {e}"))?;
    ensure_key(raw.len() == 33 && raw[0] == 1, "a 0x01-prefixed 32-byte Ed25519 key")?;
    let (body, sigs) = note.split_once("\n\n").ok_or("no blank line between the text and the signatures")?;
    let body = format!("{body}\n");
    let prefix = format!("\u{2014} {name} ");
    let sig_line = sigs.lines().find(|l| l.starts_with(&prefix)).ok_or("no signature line of the log's key")?;
    let sig = B64.decode(&sig_line[prefix.len()..]).map_err(|e| format!("signature base64: {e}"))?;
    ensure_key(sig.len() == 68, "a 4-byte key id and a 64-byte signature")?;
    ensure_key(hex(&sig[..4]) == id, "the signature's key id is the key's")?;
    // The Nix key and signature types of nhc-core: the same Ed25519, another parser.
    let pk = PublicKey::parse(&format!("log:{}", B64.encode(&raw[1..]))).map_err(|e| e.to_string())?;
    let s = Signature::parse(&format!("log:{}", B64.encode(&sig[4..]))).map_err(|e| e.to_string())?;
    ensure_key(pk.verifies(&body, &s), "the checkpoint's signature verifies")?;
    let mut lines = body.lines();
    let origin = lines.next().unwrap_or_default().to_owned();
    ensure_key(origin == name, "the origin line is the key's name")?;
    let size = lines.next().and_then(|l| l.parse().ok()).ok_or("no size line")?;
    let root: Hash =
        lines.next().and_then(|l| B64.decode(l).ok()).and_then(|r| r.try_into().ok()).ok_or("no root hash line")?;
    Ok(Checkpoint { origin, size, root })
}

fn ensure_key(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("checkpoint: expected {what}"))
    }
}

fn checkpoint(ctx: &Ctx) -> Result<Checkpoint, crate::Failed> {
    let key = ctx.get("/log/key")?;
    key.expect(200)?;
    let (status, content_type, note) = ctx.get_bytes("/log/checkpoint")?;
    ensure_eq!(status, 200, "GET /log/checkpoint");
    ensure!(content_type.starts_with("text/plain"), "checkpoint content type {content_type}");
    Ok(verify_checkpoint(&key.body, &String::from_utf8(note).map_err(|e| e.to_string())?)?)
}

/// The checkpoint once it covers index `index` (nhc-server sequences every second, the
/// Worker and the Lambda when the checkpoint is read).
fn checkpoint_covering(ctx: &Ctx, index: u64) -> Result<Checkpoint, crate::Failed> {
    let start = Instant::now();
    loop {
        let c = checkpoint(ctx)?;
        if c.size > index {
            return Ok(c);
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("after 60 s the checkpoint covers {} entries, not entry {index}", c.size).into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Entry bundles: each entry a big-endian u16 length and its bytes.
fn bundle_entries(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = data.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))).ok_or("truncated")?;
        out.push(data.get(at + 2..at + 2 + len).ok_or("truncated entry")?.to_vec());
        at += 2 + len;
    }
    Ok(out)
}

/// Every entry of a tree of `size`, from its entry bundles.
fn all_entries(ctx: &Ctx, size: u64) -> Result<Vec<Vec<u8>>, crate::Failed> {
    let mut entries = Vec::with_capacity(size as usize);
    for n in 0..size.div_ceil(256) {
        let width = (size - n * 256).min(256);
        let path = tile_path("entries", n, width);
        let (status, _, data) = ctx.get_bytes(&path)?;
        ensure_eq!(status, 200, "GET {path}");
        let got = bundle_entries(&data)?;
        ensure_eq!(got.len() as u64, width, "entries in {path}");
        entries.extend(got);
    }
    Ok(entries)
}

/// A submission's receipts: index, leaf hash, and the whole checkpoint checked against
/// entries and tiles fetched from the log.
pub fn receipts_entries_tiles_and_checkpoint_agree(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let drv = drv_path("log-drv");
    let (p1, p2) = (store_path("log-out"), store_path("log-dev"));
    let dep = store_path("log-dep");
    let (o1, o2) = (Out::new(&p1, nar_hash()).refs(std::slice::from_ref(&dep)), Out::new(&p2, nar_hash()).named("dev"));
    let r = submit(ctx, &b, Some(&drv), &[&o1, &o2])?;
    r.expect(201)?;
    let v = r.json()?;
    let log = v["log"].as_array().ok_or("no log in the answer")?.clone();
    ensure_eq!(log.len(), 2, "two receipts: {}", r.body);
    let c = checkpoint_covering(ctx, log.iter().filter_map(|e| e["index"].as_u64()).max().unwrap_or(0))?;
    ensure!(!c.origin.is_empty(), "an origin line");
    let entries = all_entries(ctx, c.size)?;
    let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    ensure_eq!(hex(&root(&hashes)), hex(&c.root), "the root of the entries is the checkpoint's");
    for e in &log {
        let i = e["index"].as_u64().ok_or("no index")? as usize;
        ensure_eq!(Some(hex(&hashes[i])), e["leaf_hash"].as_str().map(str::to_owned), "leaf hash of entry {i}");
        let text = String::from_utf8(entries[i].clone()).map_err(|e| e.to_string())?;
        let path = e["output_path"].as_str().ok_or("no output_path")?;
        ensure!(text.starts_with("nix-hash-collection attestation v1\n"), "entry {i} header: {text}");
        ensure!(text.contains(&format!("\nbuilder {}\n", b.name)), "entry {i} names the builder: {text}");
        ensure!(text.contains(&format!("\npath {path}\n")), "entry {i} names the path: {text}");
        ensure!(text.contains(&format!("\nnar-hash {}\n", e["nar_hash"].as_str().unwrap_or("?"))), "entry {i} hash");
        ensure!(text.contains(&format!("\nderiver {drv}\n")), "entry {i} names the deriver: {text}");
        // The output view shows the same index.
        let basename = path.trim_start_matches("/nix/store/");
        let out = ctx.get(&format!("/v1/outputs/{basename}"))?.json()?;
        ensure_eq!(out["attestations"][0]["log_index"].as_u64(), Some(i as u64), "log_index of {path}");
    }
    ensure!(
        String::from_utf8_lossy(&entries[log[0]["index"].as_u64().unwrap_or(0) as usize])
            .contains(&format!("\nreferences {}\n", dep.basename())),
        "the first entry lists its reference"
    );
    // The level-0 hash tile of the first receipt holds the entries' leaf hashes.
    let i = log[0]["index"].as_u64().ok_or("no index")?;
    let n = i / 256;
    let width = (c.size - n * 256).min(256);
    let path = tile_path("0", n, width);
    let (status, content_type, tile) = ctx.get_bytes(&path)?;
    ensure_eq!(status, 200, "GET {path}");
    ensure_eq!(content_type, "application/octet-stream", "tile content type");
    let want: Vec<u8> = hashes[(n * 256) as usize..(n * 256 + width) as usize].concat();
    ensure!(tile == want, "{path} holds the leaf hashes of its entries");
    // A tile past the tree is not there yet.
    let (status, _, _) = ctx.get_bytes(&tile_path("entries", c.size / 256 + 1000, 1))?;
    ensure_eq!(status, 404, "an entry bundle past the checkpoint");
    // The same outputs again: duplicates, no new entries.
    let again = submit(ctx, &b, Some(&drv), &[&o1, &o2])?;
    again.expect(200)?;
    ensure_eq!(again.json()?["log"], Value::Array(vec![]), "duplicates get no receipts");
    Ok(())
}

/// Tiles answer HEAD; paths that name no tile, or one past the tree, are 404.
pub fn bad_tile_paths_are_404(ctx: &Ctx) -> TestResult {
    let b = builder(ctx, 1)?;
    let o = Out::new(&store_path("log-cache"), nar_hash());
    let r = submit(ctx, &b, None, &[&o])?;
    r.expect(201)?;
    let i = r.json()?["log"][0]["index"].as_u64().ok_or("no receipt")?;
    checkpoint_covering(ctx, i)?;
    let r = ctx.head("/log/tile/entries/000.p/1")?;
    ensure_eq!(r.status, 200, "HEAD of the first entry bundle");
    let key = ctx.get("/log/key")?;
    ensure!(key.content_type.starts_with("text/plain"), "key content type {}", key.content_type);
    for bad in [
        "/log/tile/0/abc",
        "/log/tile/entries/000.p/0",
        "/log/tile/entries/000.p/256",
        "/log/tile/0/1000",
        "/log/tile/99/000",
        "/log/tile/entries/x000/000",
        "/log/checkpoints",
        "/log/tile/0/%2e%2e/secret",
        "/log/",
    ] {
        let r = ctx.get(bad)?;
        ensure_eq!(r.status, 404, "GET {bad}: {}", r.body);
    }
    let long = format!("/log/tile/0/{}", "x123/".repeat(200));
    ensure_eq!(ctx.get(&long)?.status, 404, "a very long tile path");
    Ok(())
}
