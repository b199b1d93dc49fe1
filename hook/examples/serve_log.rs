//! A generated transparency log served over HTTP, for timing `nhc log verify`:
//! N attestation leaves (builder alice, one reference each, signed by `builder-1`), every
//! tile, bundle, checkpoint, key and `/v1/builders` answer built before listening, so the
//! server spends next to nothing per request. Prints the URL, serves until killed.
//!
//! `cargo run --release -p nhc-hook --example serve_log -- 1000000`

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, KeyName, NarHash, SecretKey, StorePath};
use nhc_tlog::tiles::{tile_data, TileId};
use nhc_tlog::*;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let key = SecretKey::from_seed(KeyName::parse("builder-1").expect("key name"), [3; 32]);
    let nar = NarHash::parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").expect("hash");
    let refs =
        References::new(vec![StorePath::parse(&format!("/nix/store/{}-glibc-2.40", "b".repeat(32))).expect("path")])
            .expect("refs");
    let alice = BuilderName::parse("alice").expect("name");
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut hashes = Vec::with_capacity(n as usize);
    let mut bundle: Vec<Vec<u8>> = Vec::new();
    for i in 0..n {
        let path = StorePath::parse(&format!("/nix/store/{}-out-{i}", "a".repeat(32))).expect("path");
        let sig = key.sign(&nhc_core::fingerprint(&path, &nar, i, &refs));
        let leaf = Leaf::new(alice.clone(), path, nar, i, refs.clone(), sig, None, None, i as i64).encode();
        hashes.push(leaf_hash(&leaf));
        bundle.push(leaf);
        if bundle.len() as u64 == TILE_WIDTH || i + 1 == n {
            let id = TileId::entries(i / TILE_WIDTH, bundle.len() as u16);
            files.insert(id.path(), encode_bundle(bundle.iter().map(Vec::as_slice)).expect("bundle"));
            bundle.clear();
        }
    }
    let (stored, root) = append_stored_hashes(0, &[], &hashes).expect("tree");
    drop(hashes);
    // Every hash tile (full and the partial one at each level's edge) of the tree.
    let mut level = 0u8;
    loop {
        let at_level = if u32::from(level) * 8 >= 64 { 0 } else { n >> (u32::from(level) * 8) };
        if at_level == 0 {
            break;
        }
        for t in 0..at_level.div_ceil(TILE_WIDTH) {
            let w = (at_level - t * TILE_WIDTH).min(TILE_WIDTH) as u16;
            let id = TileId::hashes(level, t, w);
            let idx = id.stored_hash_indexes().expect("indexes");
            files.insert(id.path(), tile_data(&idx.iter().map(|&i| stored[i as usize]).collect::<Vec<_>>()));
        }
        level += 1;
    }
    drop(stored);
    let signer =
        LogSigner::parse(&LogSigner::secret_from_seed("bench.example/log", [1; 32]).expect("key")).expect("key");
    files.insert("checkpoint".into(), signer.sign(n, &root));
    files.insert("key".into(), format!("{}\n", signer.verifier_key()).into_bytes());
    let builders =
        format!(r#"[{{"name":"alice","public_keys":["{}"],"created_at":"2026-11-30T00:00:00Z"}}]"#, key.public_key());
    let files = Arc::new(files);
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("http://{}", l.local_addr().expect("addr"));
    std::io::stdout().flush().ok();
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let (files, builders) = (files.clone(), builders.clone());
        std::thread::spawn(move || {
            let Ok(c) = s.try_clone() else { return };
            let mut r = BufReader::new(c);
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
                let path = line.split(' ').nth(1).unwrap_or("");
                let body = match path.strip_prefix("/log/") {
                    Some(p) => files.get(p).map(Vec::as_slice),
                    None if path == "/v1/builders" => Some(builders.as_bytes()),
                    None => None,
                };
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", &b"not found"[..]),
                };
                // One write: a head and body written apart wait for a delayed ACK (Nagle).
                let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                out.extend_from_slice(body);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
}
