//! Throughput of the monitor (`verify_log`) over an in-memory log: entries per second, with
//! and without checking each entry's builder signature, and the limit of the latter: Ed25519
//! batch verification alone (bundles of 256, as `nhc log verify` checks them) on one core. Run:
//! `cargo run --release -p nhc-tlog --example verify_speed -- 200000`

use std::time::Instant;

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, KeyName, NarHash, SecretKey, StorePath};
use nhc_tlog::*;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let key = SecretKey::from_seed(KeyName::parse("builder-1").unwrap(), [3; 32]);
    let nar_hash = NarHash::parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").unwrap();
    let refs =
        References::new(vec![StorePath::parse(&format!("/nix/store/{}-glibc-2.40", "b".repeat(32))).unwrap()]).unwrap();
    let leaves: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let path = StorePath::parse(&format!("/nix/store/{}-out-{i}", "a".repeat(32))).unwrap();
            let sig = key.sign(&nhc_core::fingerprint(&path, &nar_hash, i, &refs));
            let b = BuilderName::parse("alice").unwrap();
            Leaf::new(b, path, nar_hash, i, refs.clone(), sig, None, None, i as i64).encode()
        })
        .collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let (stored, root) = append_stored_hashes(0, &[], &hashes).unwrap();
    let cp = VerifiedCheckpoint { origin: "bench/log".into(), size: n, root };
    let mut fetch = |path: &str| -> Result<Vec<u8>, String> {
        let id = TileId::parse(path).map_err(|e| e.to_string())?;
        Ok(match id.entry_range() {
            Some(r) => encode_bundle(leaves[r.start as usize..r.end as usize].iter().map(Vec::as_slice)).unwrap(),
            None => tiles::tile_data(
                &id.stored_hash_indexes().unwrap().iter().map(|&i| stored[i as usize]).collect::<Vec<_>>(),
            ),
        })
    };
    let t = Instant::now();
    verify_log(&cp, &mut fetch, |_, _| Ok(())).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("verify_log, {n} entries, no signature checks: {:.3} s, {:.0} entries/s", s, n as f64 / s);
    let keys = [key.public_key()];
    let t = Instant::now();
    verify_log(&cp, &mut fetch, |_, l| if l.signature_valid(&keys) == Some(true) { Ok(()) } else { Err("sig".into()) })
        .unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("verify_log, {n} entries, every builder signature checked: {:.3} s, {:.0} entries/s", s, n as f64 / s);

    // The limit: the signatures alone, fingerprints made beforehand, 256 to a batch.
    let decoded: Vec<Leaf> = leaves.iter().map(|l| Leaf::decode(l).unwrap()).collect();
    let fingerprints: Vec<String> = decoded.iter().map(|l| l.fingerprint().unwrap()).collect();
    let t = Instant::now();
    for (ls, fps) in decoded.chunks(256).zip(fingerprints.chunks(256)) {
        let items: Vec<_> = ls.iter().zip(fps).map(|(l, fp)| (&keys[0], fp.as_str(), &l.signature)).collect();
        nhc_core::verify_all(&items).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!("Ed25519 batch verification alone, {n} signatures in batches of 256, one core: {:.0} /s", n as f64 / s);
}
