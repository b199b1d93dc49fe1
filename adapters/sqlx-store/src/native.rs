//! Bulk status on SQLite without sqlx's row path: one prepared statement, a
//! primary-key search per path, run on a blocking thread with the connection's raw
//! handle, counting each path's votes from SQLite's own buffers.
//!
//! Through sqlx every value of every row was copied (`sqlite3_value_dup`), sent from
//! the connection's worker thread to the async task through a channel and decoded:
//! about half of the cost of a 10,000-path status (BENCHMARKS.md). Here a row costs
//! two column reads, and nothing but the counts leaves the thread.

use std::ffi::{c_char, c_int, CStr};
use std::ops::Range;
use std::ptr;

use libsqlite3_sys as ffi;
use nhc_core::StorePath;
use nhc_storage::{StoreError, StoreResult, VoteCounts};

use crate::error::store_error;
use crate::lite::LitePool;

/// The votes of one path: its primary-key range (`hash_part`, `output_path`, ...).
const VOTES_OF_PATH: &CStr = c"SELECT builder, nar_hash FROM attestations WHERE hash_part = ?1 AND output_path = ?2";

/// The counts of each of `paths`, in order, on a connection of `pool`.
pub(crate) async fn vote_counts(pool: &LitePool, paths: &[&StorePath]) -> StoreResult<Vec<VoteCounts>> {
    let paths: Vec<StorePath> = paths.iter().map(|p| (*p).clone()).collect();
    let mut loan = pool.acquire().await.map_err(store_error)?;
    let mut conn = loan.take().ok_or_else(|| StoreError::Internal("a pooled connection is missing".into()))?;
    let runtime = tokio::runtime::Handle::current();
    let job = tokio::task::spawn_blocking(move || {
        let counts = (|| {
            // The worker thread of the connection waits while the handle is locked.
            let mut handle = runtime.block_on(conn.lock_handle()).map_err(store_error)?;
            let db = handle.as_raw_handle().as_ptr();
            // SAFETY: `db` is the open connection, locked for this thread alone until
            // `handle` drops; `count` finalizes what it prepares.
            unsafe { count(db, &paths) }
        })();
        (conn, counts)
    });
    match job.await {
        Ok((conn, counts)) => {
            loan.put(conn);
            counts
        }
        Err(e) => Err(StoreError::Internal(format!("the status lookup stopped: {e}"))),
    }
}

/// A prepared statement, finalized on drop.
struct Prepared(*mut ffi::sqlite3_stmt);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: prepared by `sqlite3_prepare_v2` and finalized only here.
        unsafe {
            ffi::sqlite3_finalize(self.0);
        }
    }
}

/// SQLite's error on `db` as a store error: BUSY, LOCKED, IOERR, FULL and CANTOPEN
/// (the machine, not the request) are worth a retry (503), the rest are bugs (500).
unsafe fn error(db: *mut ffi::sqlite3, rc: c_int) -> StoreError {
    let msg = ffi::sqlite3_errmsg(db);
    let msg = if msg.is_null() { "?".into() } else { CStr::from_ptr(msg).to_string_lossy() };
    let text = format!("SQLite error {rc}: {msg}");
    if matches!(rc & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED | ffi::SQLITE_IOERR | ffi::SQLITE_FULL | 14) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

unsafe fn bind(db: *mut ffi::sqlite3, stmt: *mut ffi::sqlite3_stmt, i: c_int, text: &str) -> StoreResult<()> {
    let len = c_int::try_from(text.len()).map_err(|_| StoreError::Internal("a path longer than 2 GiB".into()))?;
    // SQLITE_STATIC: the text outlives the statement's use of it (reset before it drops).
    let rc = ffi::sqlite3_bind_text(stmt, i, text.as_ptr().cast::<c_char>(), len, ffi::SQLITE_STATIC());
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(error(db, rc))
    }
}

/// Column `i` of the current row as bytes, appended to `arena`; its range there.
unsafe fn column(stmt: *mut ffi::sqlite3_stmt, i: c_int, arena: &mut Vec<u8>) -> Range<usize> {
    let start = arena.len();
    let text = ffi::sqlite3_column_text(stmt, i);
    let len = ffi::sqlite3_column_bytes(stmt, i);
    if !text.is_null() && len > 0 {
        arena.extend_from_slice(std::slice::from_raw_parts(text, len as usize));
    }
    start..arena.len()
}

unsafe fn count(db: *mut ffi::sqlite3, paths: &[StorePath]) -> StoreResult<Vec<VoteCounts>> {
    let mut raw = ptr::null_mut();
    let rc = ffi::sqlite3_prepare_v2(db, VOTES_OF_PATH.as_ptr(), -1, &mut raw, ptr::null_mut());
    if rc != ffi::SQLITE_OK {
        if !raw.is_null() {
            ffi::sqlite3_finalize(raw);
        }
        return Err(error(db, rc));
    }
    let stmt = Prepared(raw);
    // One read transaction for all the paths: one snapshot, as one statement had, and
    // the WAL read lock taken once instead of once per path.
    let began = ffi::sqlite3_get_autocommit(db) != 0 && exec(db, c"BEGIN")?;
    let result = (|| {
        let mut counts = Vec::with_capacity(paths.len());
        // One path's (builder, hash) pairs, as ranges of one buffer reused for all.
        let mut arena = Vec::new();
        let mut votes: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        for path in paths {
            ffi::sqlite3_reset(stmt.0);
            bind(db, stmt.0, 1, path.hash_part())?;
            bind(db, stmt.0, 2, path.as_str())?;
            arena.clear();
            votes.clear();
            loop {
                match ffi::sqlite3_step(stmt.0) {
                    ffi::SQLITE_ROW => {
                        let builder = column(stmt.0, 0, &mut arena);
                        let hash = column(stmt.0, 1, &mut arena);
                        votes.push((builder, hash));
                    }
                    ffi::SQLITE_DONE => break,
                    rc => return Err(error(db, rc)),
                }
            }
            counts.push(VoteCounts::count(votes.iter().map(|(b, h)| (&arena[b.clone()], &arena[h.clone()]))));
        }
        Ok(counts)
    })();
    // Ends the read transaction and drops the pointers to `paths` before they go.
    ffi::sqlite3_reset(stmt.0);
    ffi::sqlite3_clear_bindings(stmt.0);
    if began {
        // Nothing was written: ending the read transaction cannot lose anything.
        exec(db, c"COMMIT")?;
    }
    result
}

/// Runs a statement without rows; `Ok(true)` when it ran.
unsafe fn exec(db: *mut ffi::sqlite3, sql: &CStr) -> StoreResult<bool> {
    let rc = ffi::sqlite3_exec(db, sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut());
    if rc == ffi::SQLITE_OK {
        Ok(true)
    } else {
        Err(error(db, rc))
    }
}
