//! The group-commit writer on a SQLite file when writing fails: submissions get 503
//! ("unavailable"), `/health` says the writer cannot write, and once writing works
//! again the writer recovers by itself (reconnecting) without a restart.
//!
//! The fault is a file size limit of 0 (`RLIMIT_FSIZE`) on this test process: every
//! write to a file fails with EFBIG, which SQLite reports as an I/O error, while reads
//! go on. (Permissions would not do: tests may run as root.) This file holds one test
//! only, since the limit is process-wide.

mod support;

use nhc_storage::Storage;
use support::{both_unavailable, recovers, store, stored};

fn set_file_size_limit(limit: libc::rlim_t) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a struct of ours.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut r), 0);
        r.rlim_cur = limit.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &r), 0);
    }
}

#[tokio::test]
async fn the_writer_recovers_from_io_errors_and_health_reports_them() {
    // A write past the limit then fails with EFBIG instead of killing the process.
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nhc.db").display());
    let store = store(&url).await;
    stored(&store, 1).await;
    assert!(store.health().await.is_ok());

    set_file_size_limit(0);
    both_unavailable(&store, 2).await;
    // Still broken: answered at once, and the reason stays.
    both_unavailable(&store, 3).await;

    set_file_size_limit(libc::RLIM_INFINITY);
    recovers(&store).await;
    stored(&store, 2).await;
    stored(&store, 4).await;
    // What failed was not stored, and what was stored before is still there.
    support::duplicate(&store, 1).await;
}
