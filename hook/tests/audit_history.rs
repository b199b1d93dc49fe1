//! `nhc audit`: each checkpoint must be signed by the pinned log key and extend the
//! last one seen (consistency proofs from the hash tiles); the same size with another
//! root is a fork.

mod common;

use std::sync::{Arc, Mutex};

use common::{leaves, nhc, record_dir, serve, signer, tree, Log};

fn setup(n: u64) -> (Arc<Mutex<Log>>, String, tempfile::TempDir) {
    let log = Arc::new(Mutex::new(Log::new(leaves(n))));
    let base = serve(log.clone());
    let spool = tempfile::tempdir().unwrap();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 0, "{r:?}");
    (log, base, spool)
}

#[test]
fn a_grown_log_is_consistent_across_tile_boundaries() {
    for (a, b) in [(1u64, 255u64), (255, 256), (256, 257), (257, 65_537), (300, 300)] {
        let (log, base, spool) = setup(a);
        *log.lock().unwrap() = Log::new(leaves(b));
        let r = nhc(spool.path(), &base, &["audit"]);
        assert_eq!(r.code, 0, "{a} -> {b}: {r:?}");
        assert!(r.stdout.contains(&format!("consistent with the checkpoint of size {a} seen before")), "{r:?}");
        let saved = std::fs::read_to_string(record_dir(spool.path()).join("checkpoint")).unwrap();
        assert!(saved.starts_with(&format!("{}\n{b}\n", common::ORIGIN)), "{saved}");
    }
}

#[test]
fn a_fork_is_reported_and_not_recorded() {
    let (log, base, spool) = setup(300);
    let mut other = leaves(300);
    other[10] = other[11].clone();
    let (_, root) = tree(&other);
    log.lock().unwrap().checkpoint = signer(1).sign(300, &root);
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: fork: two checkpoints of size 300 with roots"), "{r:?}");
    // The checkpoint seen before stays the reference: the next run fails the same way.
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: fork"), "{r:?}");
}

#[test]
fn an_inconsistent_new_checkpoint_is_reported() {
    let (log, base, spool) = setup(300);
    // A bigger log whose first 300 entries are not the ones seen.
    let mut other = leaves(700);
    other[5] = other[600].clone();
    *log.lock().unwrap() = Log::new(other);
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("PROBLEM: the checkpoint of size 700 is not an extension of the one of size 300"),
        "{r:?}"
    );
}

#[test]
fn a_checkpoint_not_signed_by_the_pinned_key_is_reported() {
    let (log, base, spool) = setup(20);
    {
        // The server now signs with another key and serves that key: the pinned one wins.
        let mut l = log.lock().unwrap();
        let (_, root) = tree(&l.leaves);
        l.checkpoint = signer(2).sign(20, &root);
        l.key = signer(2).verifier_key().to_owned();
    }
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: the checkpoint") && r.stdout.contains("is not signed by the log key"), "{r:?}");
    // Given explicitly, the new key is used (and pinned); the old checkpoint no longer
    // verifies with it, which is reported.
    let k = signer(2).verifier_key().to_owned();
    let r = nhc(spool.path(), &base, &["audit", "--log-key", &k]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("the recorded checkpoint") && r.stdout.contains("does not verify with the log key"),
        "{r:?}"
    );
    assert!(r.stderr.contains("--log-key differs from the key pinned"), "{r:?}");
}
