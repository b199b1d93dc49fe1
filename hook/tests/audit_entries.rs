//! `nhc audit`: every recorded entry must be in the log, as recorded (inclusion proofs
//! from the hash tiles, partial ones included; the leaf in its entry bundle).

mod common;

use std::sync::{Arc, Mutex};

use common::{leaves, nhc, record_dir, record_entries, serve, Log};

/// A served log and a spool whose record has seen its checkpoint.
fn setup(n: u64) -> (Arc<Mutex<Log>>, String, tempfile::TempDir, Vec<Vec<u8>>) {
    let l = leaves(n);
    let log = Arc::new(Mutex::new(Log::new(l.clone())));
    let base = serve(log.clone());
    let spool = tempfile::tempdir().unwrap();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("no log key was pinned"), "{r:?}");
    assert!(r.stdout.contains("no checkpoint seen before"), "{r:?}");
    (log, base, spool, l)
}

#[test]
fn recorded_entries_are_proven_in_logs_around_tile_boundaries() {
    for n in [255u64, 256, 257, 65_537] {
        let (_, base, spool, l) = setup(n);
        let idx: Vec<u64> = [0, 1, 254, n / 2, n - 2, n - 1].into_iter().filter(|&i| i < n).collect();
        record_entries(spool.path(), &l, &idx);
        let r = nhc(spool.path(), &base, &["audit"]);
        assert_eq!(r.code, 0, "size {n}: {r:?}");
        assert!(r.stdout.contains(&format!("{} of {} recorded entries are in the log", idx.len(), idx.len())), "{r:?}");
        assert!(r.stdout.contains(&format!("consistent with the checkpoint of size {n} seen before")), "{r:?}");
        // The pinned key is used, not fetched again.
        assert!(!r.stderr.contains("no log key was pinned"), "{r:?}");
    }
}

#[test]
fn entries_not_yet_sequenced_are_pending_not_failed() {
    let (_, base, spool, l) = setup(300);
    let more = leaves(310);
    record_entries(spool.path(), &l, &[3]);
    record_entries(spool.path(), &more, &[305]);
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 of 2 recorded entries are in the log; 1 not in this checkpoint yet"), "{r:?}");
}

#[test]
fn a_changed_entry_is_reported() {
    let (log, base, spool, l) = setup(300);
    record_entries(spool.path(), &l, &[3, 280]);
    // The bundle serves another leaf at 3 (the tiles are left alone).
    log.lock().unwrap().leaves[3] = l[299].clone();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 3 (/nix/store/"), "{r:?}");
    assert!(r.stdout.contains(": changed: the log holds a leaf for /nix/store/"), "{r:?}");
    assert_eq!(r.stdout.matches("PROBLEM").count(), 1, "{r:?}");

    // Changed with every tile recomputed and the checkpoint re-signed: the history
    // differs too (the same size, another root).
    log.lock().unwrap().rebuild();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: fork: two checkpoints of size 300"), "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 3 (") && r.stdout.contains("changed"), "{r:?}");
}

#[test]
fn a_removed_entry_is_reported() {
    let (log, base, spool, l) = setup(300);
    record_entries(spool.path(), &l, &[260]);
    log.lock().unwrap().leaves.remove(260);
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 260 (") && r.stdout.contains("missing from the log"), "{r:?}");

    // Removed and the tree rebuilt without it: a log that shrank, and entry 260 is
    // another one now.
    log.lock().unwrap().rebuild();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: the log shrank: a checkpoint of size 299 after one of size 300"), "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 260 (") && r.stdout.contains("changed"), "{r:?}");
}

#[test]
fn a_recorded_hash_the_log_does_not_have_is_reported() {
    let (_, base, spool, l) = setup(257);
    // The record says another output was acknowledged at 256.
    let mut fake = l.clone();
    fake[256] = l[3].clone();
    record_entries(spool.path(), &fake, &[256]);
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PROBLEM: entry 256 (") && r.stdout.contains("changed"), "{r:?}");
    // Unreadable lines are skipped with a warning.
    std::fs::write(record_dir(spool.path()).join("entries"), "garbage\n").unwrap();
    let r = nhc(spool.path(), &base, &["audit"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("1 line(s) are not entries"), "{r:?}");
}

#[test]
fn the_server_must_answer() {
    let spool = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = nhc(spool.path(), &format!("http://{closed}"), &["audit"]);
    assert_eq!(r.code, 2, "{r:?}");
    // No server configured and none given.
    let r = nhc(spool.path(), "", &["audit"]);
    assert_eq!(r.code, 2, "{r:?}");
}
