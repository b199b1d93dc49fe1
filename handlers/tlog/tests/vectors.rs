//! Known vectors (RFC 6962 / CT reference tree, Go `note` example key and note) and
//! proofs checked by an independent, naive RFC 9162 implementation written here — not by
//! the code that made them — on trees around tile boundaries.

use nhc_tlog::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tlog_tiles::{Tile, TileHashReader, TileReader};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
fn h(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

// ---- the independent implementation (RFC 9162 section 2.1) ----

fn ileaf(d: &[u8]) -> [u8; 32] {
    let mut x = Sha256::new();
    x.update([0u8]);
    x.update(d);
    x.finalize().into()
}
fn inode(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut x = Sha256::new();
    x.update([1u8]);
    x.update(l);
    x.update(r);
    x.finalize().into()
}
/// MTH(D[n]) over leaf hashes, by the RFC's recursion.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            inode(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}
/// RFC 9162 2.1.3.2: verify an inclusion proof.
fn verify_inclusion(index: u64, size: u64, leaf: [u8; 32], proof: &[[u8; 32]], root: [u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnn, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fnn & 1 == 1 || fnn == sn {
            r = inode(p, &r);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = inode(&r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}
/// RFC 9162 2.1.4.2: verify a consistency proof.
fn verify_consistency(n1: u64, n2: u64, root1: [u8; 32], root2: [u8; 32], proof: &[[u8; 32]]) -> bool {
    if n1 == n2 {
        return proof.is_empty() && root1 == root2;
    }
    if n1 == 0 || n1 > n2 || proof.is_empty() {
        return false;
    }
    let mut path: Vec<[u8; 32]> = proof.to_vec();
    if n1.is_power_of_two() {
        path.insert(0, root1);
    }
    let (mut fnn, mut sn) = (n1 - 1, n2 - 1);
    while fnn & 1 == 1 {
        fnn >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fnn & 1 == 1 || fnn == sn {
            fr = inode(c, &fr);
            sr = inode(c, &sr);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = inode(&sr, c);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == root1 && sr == root2
}

// ---- RFC 6962 reference tree ----

const CT_LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// A log as a server keeps it: stored hashes by index, appended in batches.
struct MemLog {
    size: u64,
    stored: Vec<Hash>,
}
impl MemLog {
    fn new() -> Self {
        MemLog { size: 0, stored: Vec::new() }
    }
    fn append(&mut self, leaf_hashes: &[Hash]) -> Hash {
        let frontier: Vec<Hash> = frontier_indexes(self.size).iter().map(|&i| self.stored[i as usize]).collect();
        let (new, root) = append_stored_hashes(self.size, &frontier, leaf_hashes).unwrap();
        assert_eq!(self.stored.len() as u64, stored_hash_index(0, self.size));
        self.stored.extend(new);
        self.size += leaf_hashes.len() as u64;
        root
    }
    /// Serves a tile by its C2SP path, as the server would.
    fn tile(&self, path: &str) -> Option<Vec<u8>> {
        let id = TileId::parse(path).ok()?;
        if !id.exists_in(self.size) {
            return None;
        }
        let idx = id.stored_hash_indexes()?;
        let hashes: Vec<Hash> = idx.iter().map(|&i| self.stored[i as usize]).collect();
        Some(tiles::tile_data(&hashes))
    }
}
impl HashReader for MemLog {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        Ok(indexes.iter().map(|&i| self.stored[i as usize]).collect())
    }
}

/// A client's tile reader that fetches over "HTTP" by C2SP path (here: from the MemLog).
struct PathReader<'a>(&'a MemLog);
impl TileReader for PathReader<'_> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TreeError> {
        tiles.iter().map(|t| self.0.tile(&TileId::from_tile(t).path()).ok_or(TreeError::InvalidTile)).collect()
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

#[test]
fn rfc6962_roots_for_every_size() {
    let leaves: Vec<Vec<u8>> = CT_LEAVES.iter().map(|s| unhex(s)).collect();
    assert_eq!(EMPTY_HASH.0, h(CT_ROOTS[0]));
    for n in 0..=8 {
        let mut log = MemLog::new();
        let hashes: Vec<Hash> = leaves[..n].iter().map(|l| leaf_hash(l)).collect();
        let root = if n == 0 { EMPTY_HASH } else { log.append(&hashes) };
        assert_eq!(root.0, h(CT_ROOTS[n]), "size {n}");
        let naive: Vec<[u8; 32]> = leaves[..n].iter().map(|l| ileaf(l)).collect();
        assert_eq!(mth(&naive), h(CT_ROOTS[n]), "the naive implementation, size {n}");
    }
    // One at a time gives the same tree as all at once.
    let mut log = MemLog::new();
    let mut last = EMPTY_HASH;
    for l in &leaves {
        last = log.append(&[leaf_hash(l)]);
    }
    assert_eq!(last.0, h(CT_ROOTS[8]));
}

#[test]
fn rfc6962_inclusion_and_consistency_vectors() {
    let leaves: Vec<Hash> = CT_LEAVES.iter().map(|s| leaf_hash(&unhex(s))).collect();
    let mut log = MemLog::new();
    let root8 = log.append(&leaves);
    let p = prove_record(8, 0, &log).unwrap();
    let want = [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ];
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), want.iter().map(|s| h(s)).collect::<Vec<_>>());
    let p = prove_record(8, 5, &log).unwrap();
    let want = [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ];
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), want.iter().map(|s| h(s)).collect::<Vec<_>>());
    let c = prove_tree(5, 2, &log).unwrap();
    let want = [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ];
    assert_eq!(c.iter().map(|x| x.0).collect::<Vec<_>>(), want.iter().map(|s| h(s)).collect::<Vec<_>>());
    assert!(verify_consistency(2, 5, h(CT_ROOTS[2]), h(CT_ROOTS[5]), &want.map(h)));
    assert_eq!(root8.0, h(CT_ROOTS[8]));
}

/// Builds a tree of `size` leaves in uneven batches, then checks, through tiles fetched by
/// their C2SP paths, the root and inclusion/consistency proofs with the naive verifier.
fn check_size(size: u64, probe: &[u64]) {
    let data = |i: u64| format!("leaf {i}").into_bytes();
    let naive: Vec<[u8; 32]> = (0..size).map(|i| ileaf(&data(i))).collect();
    let mut log = MemLog::new();
    let mut i = 0u64;
    let mut batch = 1u64;
    let mut roots: HashMap<u64, Hash> = HashMap::new();
    while i < size {
        let end = (i + batch).min(size);
        let hashes: Vec<Hash> = (i..end).map(|k| leaf_hash(&data(k))).collect();
        let r = log.append(&hashes);
        roots.insert(end, r);
        i = end;
        batch = batch * 3 % 1000 + 1;
    }
    let root = roots[&size];
    assert_eq!(root.0, mth(&naive), "root of {size}");

    // A client with only the checkpoint (size, root) and tiles.
    let reader = PathReader(&log);
    let thr = TileHashReader::new(size, root, &reader);
    assert_eq!(tree_hash(size, &thr).unwrap(), root);
    for &n in probe.iter().filter(|&&n| n < size) {
        let p = prove_record(size, n, &thr).unwrap();
        let proof: Vec<[u8; 32]> = p.iter().map(|x| x.0).collect();
        assert!(verify_inclusion(n, size, naive[n as usize], &proof, root.0), "inclusion of {n} in {size}");
        assert!(!verify_inclusion(n, size, ileaf(b"other"), &proof, root.0));
        check_record(&p, size, root, n, leaf_hash(&data(n))).unwrap();
    }
    for (&old, &old_root) in &roots {
        if old == size || old == 0 {
            continue;
        }
        let c = prove_tree(size, old, &thr).unwrap();
        let proof: Vec<[u8; 32]> = c.iter().map(|x| x.0).collect();
        assert_eq!(old_root.0, mth(&naive[..old as usize]));
        assert!(verify_consistency(old, size, old_root.0, root.0, &proof), "consistency {old} -> {size}");
        let mut forged = old_root.0;
        forged[0] ^= 1;
        assert!(!verify_consistency(old, size, forged, root.0, &proof));
    }
    // Entry bundles round-trip and their leaves hash to the tiles' level-0 hashes.
    let last = TileId::entries((size - 1) / TILE_WIDTH, (((size - 1) % TILE_WIDTH) + 1) as u16);
    let range = last.entry_range().unwrap();
    let entries: Vec<Vec<u8>> = range.clone().map(data).collect();
    let bundle = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
    let back = decode_bundle(&bundle).unwrap();
    assert_eq!(back.len() as u64, range.end - range.start);
    let tile0 = log.tile(&TileId::hashes(0, last.index, last.width).path()).unwrap();
    for (k, e) in back.iter().enumerate() {
        assert_eq!(&tile0[k * 32..k * 32 + 32], &ileaf(e)[..]);
    }
}

#[test]
fn tile_boundaries_255_256_257() {
    for size in [1, 2, 255, 256, 257, 511, 512, 513] {
        check_size(size, &[0, 1, 127, 254, 255, 256, size - 1]);
    }
}

#[test]
fn tile_boundary_65537() {
    check_size(65_537, &[0, 255, 256, 65_535, 65_536, 40_000]);
}

#[test]
fn tile_paths_c2sp() {
    let cases = [
        (TileId::hashes(0, 0, 256), "tile/0/000"),
        (TileId::hashes(1, 1234067, 256), "tile/1/x001/x234/067"),
        (TileId::hashes(0, 5, 7), "tile/0/005.p/7"),
        (TileId::entries(1000, 256), "tile/entries/x001/000"),
        (TileId::entries(0, 255), "tile/entries/000.p/255"),
    ];
    for (id, path) in cases {
        assert_eq!(id.path(), path);
        assert_eq!(TileId::parse(path).unwrap(), id);
    }
    for bad in [
        "tile/0/0",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/64/000",
        "tile/00/000",
        "tile/entries/x1/000",
        "tile/data/000",
        "tile/0/000/",
        "tile/0/-01",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "checkpoint",
        "",
    ] {
        assert!(TileId::parse(bad).is_err(), "{bad} parsed");
    }
    // Existence against tree sizes.
    assert!(TileId::hashes(0, 0, 256).exists_in(256));
    assert!(!TileId::hashes(0, 0, 256).exists_in(255));
    assert!(TileId::hashes(0, 0, 255).exists_in(255));
    assert!(TileId::hashes(0, 0, 3).exists_in(300), "old partial tiles stay servable");
    assert!(!TileId::hashes(1, 0, 2).exists_in(511));
    assert!(TileId::hashes(1, 0, 1).exists_in(511));
    assert!(!TileId::entries(1, 1).exists_in(256));
}

#[test]
fn entry_bundle_errors() {
    assert_eq!(decode_bundle(&[0, 5, 1, 2]), Err(BundleError::Truncated(0)));
    assert_eq!(decode_bundle(&[0]), Err(BundleError::Truncated(0)));
    let big = vec![0u8; 70_000];
    assert_eq!(encode_bundle([big.as_slice()]), Err(BundleError::TooLong(70_000)));
    let many = vec![0u8; 2 * 257];
    assert_eq!(decode_bundle(&many), Err(BundleError::TooMany));
    assert_eq!(decode_bundle(&[]).unwrap().len(), 0);
}

// ---- signed notes and checkpoints ----

const GO_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

#[test]
fn go_note_vector() {
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let signer = LogSigner::parse(GO_SKEY).unwrap();
    assert_eq!(signer.verifier_key(), GO_VKEY);
    assert_eq!(signer.origin(), "PeterNeumann");
    let mut note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    let s = signed_note::StandardSigner::new(GO_SKEY).unwrap();
    note.add_sigs(&[&s]).unwrap();
    assert_eq!(
        String::from_utf8(note.to_bytes()).unwrap(),
        format!("{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
    );
    // The secret key round-trips through our own encoder.
    let seed: [u8; 32] = {
        use base64::Engine;
        let raw =
            base64::engine::general_purpose::STANDARD.decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        raw[1..].try_into().unwrap()
    };
    assert_eq!(LogSigner::secret_from_seed("PeterNeumann", seed).unwrap(), GO_SKEY);
}

#[test]
fn checkpoint_sign_verify_and_tamper() {
    let skey = LogSigner::secret_from_seed("nhc.example.org/log", [7u8; 32]).unwrap();
    let signer = LogSigner::parse(&skey).unwrap();
    let root = Hash(h(CT_ROOTS[8]));
    let cp = signer.sign(8, &root);
    let text = String::from_utf8(cp.clone()).unwrap();
    assert!(
        text.starts_with(
            "nhc.example.org/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n— nhc.example.org/log "
        ),
        "{text}"
    );
    let v = verify_checkpoint(signer.verifier_key(), &cp).unwrap();
    assert_eq!(v, VerifiedCheckpoint { origin: "nhc.example.org/log".into(), size: 8, root });
    // Changed size: signature fails.
    let forged = text.replacen("\n8\n", "\n9\n", 1);
    assert!(matches!(verify_checkpoint(signer.verifier_key(), forged.as_bytes()), Err(CheckpointError::Signature(_))));
    // Another key with the same name: unknown key id.
    let other = LogSigner::parse(&LogSigner::secret_from_seed("nhc.example.org/log", [8u8; 32]).unwrap()).unwrap();
    assert!(verify_checkpoint(other.verifier_key(), &cp).is_err());
    assert!(LogSigner::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
    assert!(LogSigner::parse("nonsense").is_err());
}

#[test]
fn log_requests() {
    use nhc_tlog::serve::{LogRequest, CACHE_IMMUTABLE};
    assert_eq!(LogRequest::parse("checkpoint").unwrap(), LogRequest::Checkpoint);
    assert_eq!(LogRequest::parse("key").unwrap(), LogRequest::Key);
    let t = LogRequest::parse("tile/entries/001.p/3").unwrap();
    assert_eq!(t, LogRequest::Tile(TileId::entries(1, 3)));
    assert_eq!(t.cache_control(), CACHE_IMMUTABLE);
    assert_eq!(t.content_type(), "application/octet-stream");
    assert!(LogRequest::parse("checkpoint/").is_err());
    assert!(LogRequest::parse(&"tile/0/".repeat(20)).is_err());
    assert!(LogRequest::parse("").is_err());
}

#[test]
fn huge_tile_indexes_do_not_overflow() {
    let far = TileId::parse("tile/0/x018/x446/x744/x073/x709/x551/615").unwrap();
    assert_eq!(far.stored_hash_indexes(), None);
    assert!(!far.exists_in(u64::MAX));
    let high = TileId::hashes(7, 1, 256);
    assert_eq!(high.stored_hash_indexes(), None);
    assert!(TileId::entries(u64::MAX / 256, 255).entry_range().is_some());
    assert_eq!(TileId::entries(u64::MAX, 1).entry_range(), None);
    assert_eq!(TileId::hashes(0, 0, 2).stored_hash_indexes(), Some(vec![0, 1]));
}
