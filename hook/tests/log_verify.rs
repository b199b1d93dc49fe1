//! `nhc log verify URL` against an in-process log: whole logs of sizes around tile
//! boundaries pass; every kind of tampering exits 1 and says what it found.

mod common;

use std::sync::{Arc, Mutex};

use common::{leaves, nhc, serve, signer, Log};

fn verify(log: Log) -> (common::Run, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(log));
    let base = serve(log.clone());
    let spool = tempfile::tempdir().unwrap();
    (nhc(spool.path(), "http://unused.invalid", &["log", "verify", &base]), log)
}

#[test]
fn logs_around_tile_boundaries_verify() {
    for n in [0u64, 1, 255, 256, 257, 65_537] {
        let (r, _) = verify(Log::new(leaves(n)));
        assert_eq!(r.code, 0, "size {n}: {r:?}");
        assert!(r.stdout.contains(&format!("checkpoint of size {n} ")), "{r:?}");
        assert!(r.stdout.contains(&format!("{n} entries in ")), "{r:?}");
        assert!(r.stdout.contains(&format!("signatures: {n} checked, 0 bad, 0 unknown keys")), "{r:?}");
        // Trust on first use is said aloud.
        assert!(r.stderr.contains("no log key was pinned"), "{r:?}");
    }
}

#[test]
fn a_changed_entry_is_reported() {
    let l = leaves(300);
    let mut log = Log::new(l.clone());
    // Another valid leaf in place of entry 3; the tiles still hold the old hash.
    log.leaves[3] = l[299].clone();
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: hash tile tile/0/000 disagrees with the entries at position 3"), "{r:?}");
}

#[test]
fn a_rewritten_history_is_reported() {
    let l = leaves(300);
    let mut log = Log::new(l.clone());
    let checkpoint = log.checkpoint.clone();
    // Entry 3 changed and every tile recomputed, but the signed checkpoint kept.
    log.leaves[3] = l[299].clone();
    log.rebuild();
    log.checkpoint = checkpoint;
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: the entries hash to root"), "{r:?}");
    assert!(r.stdout.contains("the checkpoint of size 300 says"), "{r:?}");
}

#[test]
fn a_removed_entry_is_reported() {
    let mut log = Log::new(leaves(300));
    log.leaves.remove(260);
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("PROBLEM: tile/entries/001.p/44 is missing (404)")
            || r.stdout.contains("PROBLEM: tile/entries/001.p/44 holds 43 entries, the checkpoint says 44"),
        "{r:?}"
    );
}

#[test]
fn a_missing_bundle_is_reported() {
    let mut log = Log::new(leaves(600));
    log.leaves.truncate(512);
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: tile/entries/002.p/88 is missing (404)"), "{r:?}");
}

#[test]
fn a_checkpoint_not_signed_by_the_log_key_is_reported() {
    let mut log = Log::new(leaves(10));
    let (_, root) = common::tree(&log.leaves);
    log.checkpoint = signer(2).sign(10, &root);
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: the checkpoint") && r.stdout.contains("is not signed by the log key"), "{r:?}");
}

#[test]
fn bad_and_unknown_builder_signatures_are_counted() {
    let mut log = Log::new(leaves(20));
    // alice's key is now another one: every signature fails.
    let other = nhc_core::SecretKey::from_seed(nhc_core::KeyName::parse("builder-1").unwrap(), [9; 32]).public_key();
    log.builders = format!(r#"[{{"name":"alice","public_keys":["{other}"],"created_at":"2026-11-29T22:05:25Z"}}]"#);
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: 20 entries whose builder signature does not verify"), "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 0 (builder alice): bad signature"), "{r:?}");
    assert_eq!(r.stdout.matches("bad signature").count(), 5, "the first five only: {r:?}");

    let mut log = Log::new(leaves(20));
    log.builders = "[]".into();
    let (r, _) = verify(log);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: 20 entries signed by a builder or key that"), "{r:?}");

    // Without signature checks the same log passes.
    let log = Arc::new(Mutex::new(Log::new(leaves(20))));
    log.lock().unwrap().builders = "[]".into();
    let base = serve(log);
    let spool = tempfile::tempdir().unwrap();
    let r = nhc(spool.path(), "http://unused.invalid", &["log", "verify", &base, "--no-signatures"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn network_and_usage_errors_exit_2() {
    let spool = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = nhc(spool.path(), "http://unused.invalid", &["log", "verify", &format!("http://{closed}")]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = nhc(spool.path(), "http://unused.invalid", &["log", "verify", "ftp://x"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not an http:// or https:// server URL"), "{r:?}");
    let r = nhc(spool.path(), "http://unused.invalid", &["log", "verify", "http://x", "--log-key", "nonsense"]);
    assert_eq!(r.code, 2, "{r:?}");
}
