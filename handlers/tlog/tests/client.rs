//! The client checks against a log served from memory by C2SP paths, honest and tampered.

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, KeyName, NarHash, SecretKey, StorePath};
use nhc_tlog::*;

fn key() -> SecretKey {
    SecretKey::from_seed(KeyName::parse("builder-1").unwrap(), [3; 32])
}

fn leaf(i: u64) -> Vec<u8> {
    let path = StorePath::parse(&format!("/nix/store/{}-out-{i}", "a".repeat(32))).unwrap();
    let nar_hash = NarHash::parse("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s").unwrap();
    let refs = References::default();
    let sig = key().sign(&nhc_core::fingerprint(&path, &nar_hash, i, &refs));
    Leaf::new(BuilderName::parse("alice").unwrap(), path, nar_hash, i, refs, sig, None, None, i as i64).encode()
}

/// A log as a server keeps it: the leaves and the stored hashes.
#[derive(Clone)]
struct Log {
    leaves: Vec<Vec<u8>>,
    stored: Vec<Hash>,
    size: u64,
}

impl Log {
    fn new() -> Log {
        Log { leaves: Vec::new(), stored: Vec::new(), size: 0 }
    }
    fn append(&mut self, leaves: Vec<Vec<u8>>) -> VerifiedCheckpoint {
        let frontier: Vec<Hash> = frontier_indexes(self.size).iter().map(|&i| self.stored[i as usize]).collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let (new, root) = append_stored_hashes(self.size, &frontier, &hashes).unwrap();
        self.stored.extend(new);
        self.leaves.extend(leaves);
        self.size = self.leaves.len() as u64;
        VerifiedCheckpoint { origin: "test/log".into(), size: self.size, root }
    }
    fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        let id = TileId::parse(path).map_err(|e| e.to_string())?;
        if !id.exists_in(self.size) {
            return Err("404".into());
        }
        match id.entry_range() {
            Some(r) => {
                Ok(encode_bundle(self.leaves[r.start as usize..r.end as usize].iter().map(Vec::as_slice)).unwrap())
            }
            None => Ok(tiles::tile_data(
                &id.stored_hash_indexes().unwrap().iter().map(|&i| self.stored[i as usize]).collect::<Vec<_>>(),
            )),
        }
    }
}

fn verify_all(log: &Log, cp: &VerifiedCheckpoint) -> Result<LogReport, ClientError> {
    let keys = [key().public_key()];
    verify_log(cp, &mut |p: &str| log.fetch(p), |_, l| match l.signature_valid(&keys) {
        Some(true) => Ok(()),
        _ => Err("bad builder signature".into()),
    })
}

#[test]
fn honest_log_verifies() {
    let mut log = Log::new();
    let cp1 = log.append((0..200).map(leaf).collect());
    let cp2 = log.append((200..513).map(leaf).collect());
    assert_eq!(verify_all(&log, &cp2).unwrap(), LogReport { entries: 513, bundles: 3 });
    for i in [0, 199, 255, 256, 512] {
        check_inclusion(&cp2, i, leaf_hash(&leaf(i)), &mut |p: &str| log.fetch(p)).unwrap();
    }
    check_consistency(&cp1, &cp2, &mut |p: &str| log.fetch(p)).unwrap();
    check_fork(&cp1, &cp2).unwrap();
}

#[test]
fn changed_or_removed_entries_are_reported() {
    let mut log = Log::new();
    let cp = log.append((0..300).map(leaf).collect());

    // An entry changed by hand (the stored hashes untouched): the tile disagrees.
    let mut t = log.clone();
    t.leaves[5] = leaf(1005);
    assert!(
        matches!(verify_all(&t, &cp), Err(ClientError::TileMismatch { position: 5, .. })),
        "{:?}",
        verify_all(&t, &cp)
    );

    // An entry and its level-0 hash changed: the root no longer matches.
    let mut t = log.clone();
    t.leaves[5] = leaf(1005);
    t.stored[stored_hash_index(0, 5) as usize] = leaf_hash(&t.leaves[5]);
    assert!(matches!(verify_all(&t, &cp), Err(ClientError::RootMismatch { .. })));
    // A log rebuilt by hand without the original entry 5 and signed again: the auditor
    // holding the original leaf hash sees it is not included, and the two checkpoints fork.
    let mut rebuilt = Log::new();
    let cp_rebuilt = rebuilt.append(t.leaves.clone());
    let e = check_inclusion(&cp_rebuilt, 5, leaf_hash(&leaf(5)), &mut |p: &str| rebuilt.fetch(p)).unwrap_err();
    assert!(matches!(e, ClientError::NotIncluded { index: 5, .. }), "{e}");
    assert!(matches!(check_fork(&cp, &cp_rebuilt), Err(ClientError::Fork { .. })));

    // A row removed (later rows shift down): caught.
    let mut t = log.clone();
    t.leaves.remove(7);
    t.leaves.push(leaf(9999));
    assert!(verify_all(&t, &cp).is_err());

    // A leaf whose builder signature is wrong: the monitor names it.
    let mut t = Log::new();
    let mut bad = String::from_utf8(leaf(0)).unwrap().replace("nar-size 0", "nar-size 7").into_bytes();
    let tcp = t.append(vec![leaf(1), std::mem::take(&mut bad)]);
    assert!(matches!(verify_all(&t, &tcp), Err(ClientError::BadEntry { index: 1, .. })));
}

#[test]
fn forks_and_rewritten_history_are_reported() {
    let mut a = Log::new();
    let mut b = Log::new();
    let old = a.append((0..100).map(leaf).collect());
    let cpa = a.append((100..300).map(leaf).collect());
    // b tells another story of the same size.
    let cpb =
        b.append((0..100).map(|i| if i == 50 { leaf(5000) } else { leaf(i) }).chain((100..300).map(leaf)).collect());
    assert!(matches!(check_fork(&cpa, &cpb), Err(ClientError::Fork { size: 300, .. })));
    // An auditor that saw a's old checkpoint and is now served b: inconsistent.
    let e = check_consistency(&old, &cpb, &mut |p: &str| b.fetch(p)).unwrap_err();
    assert!(matches!(e, ClientError::Inconsistent { old: 100, new: 300, .. }), "{e}");
    // The log cannot shrink.
    assert!(matches!(check_consistency(&cpa, &old, &mut |p: &str| a.fetch(p)), Err(ClientError::Shrank { .. })));
    // Tiles that lie about the checkpoint are refused.
    let e = check_inclusion(&cpa, 3, leaf_hash(&leaf(3)), &mut |p: &str| b.fetch(p)).unwrap_err();
    assert!(matches!(e, ClientError::NotIncluded { .. }), "{e}");
}
