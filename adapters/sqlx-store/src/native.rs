//! Reads of many rows on SQLite without sqlx's row path, run on a blocking thread
//! with the connection's raw handle: bulk status (one prepared statement, a
//! primary-key search per path, each path's votes counted from SQLite's own
//! buffers) and `Executor::query_many` (the log's entry bundles and sequencing).
//!
//! Through sqlx every value of every row was copied (`sqlite3_value_dup`), sent from
//! the connection's worker thread to the async task through a channel and decoded:
//! about half of the cost of a 10,000-path status (BENCHMARKS.md). Here a row costs
//! two column reads, and nothing but the counts leaves the thread.

use std::ffi::{c_char, c_int, CStr};
use std::ops::Range;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libsqlite3_sys as ffi;
use nhc_core::StorePath;
use nhc_sql::{Param, Row, Value};
use nhc_storage::{StoreError, StoreResult, VoteCounts};

use crate::error::store_error;
use crate::lite::LitePool;

/// The votes of one path: its primary-key range (`hash_part`, `output_path`, ...).
const VOTES_OF_PATH: &str = "SELECT builder, nar_hash FROM attestations WHERE hash_part = ?1 AND output_path = ?2";

/// The counts of each of `paths`, in order, on a connection of `pool`.
pub(crate) async fn vote_counts(pool: &LitePool, paths: &[&StorePath]) -> StoreResult<Vec<VoteCounts>> {
    let paths: Vec<StorePath> = paths.iter().map(|p| (*p).clone()).collect();
    // SAFETY: `count` finalizes what it prepares and ends the read it begins.
    on_raw_handle(pool, "the status lookup", move |db, gone| unsafe { count(db, &paths, gone) }).await
}

/// The rows of `sql` (one statement, `$n` parameters), as `Executor::query` returns
/// them, read on the raw handle: every value is copied once, into the row.
pub(crate) async fn query(pool: &LitePool, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
    let params: Vec<OwnedParam> = params
        .iter()
        .map(|p| match *p {
            Param::Text(s) => OwnedParam::Text(s.to_owned()),
            Param::Int(n) => OwnedParam::Int(n),
        })
        .collect();
    // SAFETY: `rows` finalizes what it prepares.
    on_raw_handle(pool, "a read", move |db, _| unsafe { rows(db, sql, &params) }).await
}

enum OwnedParam {
    Text(String),
    Int(i64),
}

/// Runs `job` on a blocking thread with the raw handle of a connection of `pool`
/// (the connection's own worker thread waits meanwhile). `job`'s flag is set when the
/// caller went away (a request cancelled by its client), so that long work can stop
/// instead of holding a connection for nobody.
async fn on_raw_handle<T: Send + 'static>(
    pool: &LitePool,
    what: &'static str,
    job: impl FnOnce(*mut ffi::sqlite3, &AtomicBool) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let loan = pool.acquire().await.map_err(store_error)?;
    let mut conn = loan.detach().ok_or_else(|| StoreError::Internal("a pooled connection is missing".into()))?;
    let runtime = tokio::runtime::Handle::current();
    let gone = Arc::new(AtomicBool::new(false));
    // Set when this future is dropped, finished or not.
    let _caller = SetOnDrop(gone.clone());
    // The connection goes back to the pool from the blocking thread when `conn` drops
    // there, whether or not this future is still awaited.
    let task = tokio::task::spawn_blocking(move || {
        let mut handle = runtime.block_on(conn.lock_handle()).map_err(store_error)?;
        // The handle is locked for this thread alone until `handle` drops.
        job(handle.as_raw_handle().as_ptr(), &gone)
    });
    match task.await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Internal(format!("{what} on SQLite stopped: {e}"))),
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Ends the read transaction a native read began, however it ends (an error, a
/// panic): the connection goes back to the pool, and one left inside a transaction
/// would read an old snapshot for good and hold the WAL back. Nothing was written, so
/// rolling back loses nothing.
struct EndRead(*mut ffi::sqlite3);

impl Drop for EndRead {
    fn drop(&mut self) {
        // SAFETY: the handle is still locked by the thread that began the read.
        unsafe {
            if ffi::sqlite3_get_autocommit(self.0) == 0 {
                ffi::sqlite3_exec(self.0, c"ROLLBACK".as_ptr(), None, ptr::null_mut(), ptr::null_mut());
            }
        }
    }
}

/// Prepares `sql` on `db`.
unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str) -> StoreResult<Prepared> {
    let len = c_int::try_from(sql.len()).map_err(|_| StoreError::Internal("a statement longer than 2 GiB".into()))?;
    let mut raw = ptr::null_mut();
    let mut tail: *const c_char = ptr::null();
    let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast::<c_char>(), len, &mut raw, &mut tail);
    if rc != ffi::SQLITE_OK {
        if !raw.is_null() {
            ffi::sqlite3_finalize(raw);
        }
        return Err(error(db, rc));
    }
    if raw.is_null() {
        return Err(StoreError::Internal("an empty statement".into()));
    }
    let stmt = Prepared(raw);
    // One statement: a second one would silently not run.
    let used = if tail.is_null() { sql.len() } else { (tail as usize).saturating_sub(sql.as_ptr() as usize) };
    if !sql.get(used..).unwrap_or_default().trim().trim_end_matches(';').trim().is_empty() {
        return Err(StoreError::Internal("more than one statement given to a native read".into()));
    }
    Ok(stmt)
}

/// Binds `params` to the statement's parameters: `$n` (and `?n`) is `params[n - 1]`,
/// whatever order the text names them in (SQLite numbers named parameters by first
/// appearance), a bare `?` the next one.
unsafe fn bind_all(db: *mut ffi::sqlite3, stmt: *mut ffi::sqlite3_stmt, params: &[OwnedParam]) -> StoreResult<()> {
    for i in 1..=ffi::sqlite3_bind_parameter_count(stmt) {
        let name = ffi::sqlite3_bind_parameter_name(stmt, i);
        let n = if name.is_null() {
            i as usize
        } else {
            let name = CStr::from_ptr(name).to_string_lossy();
            name.get(1..)
                .and_then(|d| d.parse::<usize>().ok())
                .ok_or_else(|| StoreError::Internal(format!("parameter {name} is not numbered")))?
        };
        let p = n
            .checked_sub(1)
            .and_then(|k| params.get(k))
            .ok_or_else(|| StoreError::Internal(format!("parameter {n} of a statement given {}", params.len())))?;
        match p {
            // `params` outlive the statement's use of them (reset before they drop).
            OwnedParam::Text(s) => bind(db, stmt, i, s)?,
            OwnedParam::Int(v) => {
                let rc = ffi::sqlite3_bind_int64(stmt, i, *v);
                if rc != ffi::SQLITE_OK {
                    return Err(error(db, rc));
                }
            }
        }
    }
    Ok(())
}

unsafe fn rows(db: *mut ffi::sqlite3, sql: &str, params: &[OwnedParam]) -> StoreResult<Vec<Row>> {
    let stmt = prepare(db, sql)?;
    bind_all(db, stmt.0, params)?;
    let columns = ffi::sqlite3_column_count(stmt.0);
    let mut out = Vec::new();
    let result = loop {
        match ffi::sqlite3_step(stmt.0) {
            ffi::SQLITE_ROW => {
                let mut row = Vec::with_capacity(columns as usize);
                for i in 0..columns {
                    row.push(value(stmt.0, i)?);
                }
                out.push(Row(row));
            }
            ffi::SQLITE_DONE => break Ok(out),
            rc => break Err(error(db, rc)),
        }
    };
    // Ends the statement's read before `params` go (`stmt` finalizes on drop).
    ffi::sqlite3_reset(stmt.0);
    ffi::sqlite3_clear_bindings(stmt.0);
    result
}

/// Column `i` of the current row. The schema has only TEXT and BIGINT columns; any
/// other type is an error, as on sqlx's path.
unsafe fn value(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> StoreResult<Value> {
    Ok(match ffi::sqlite3_column_type(stmt, i) {
        ffi::SQLITE_NULL => Value::Null,
        ffi::SQLITE_INTEGER => Value::Int(ffi::sqlite3_column_int64(stmt, i)),
        ffi::SQLITE_TEXT => {
            let text = ffi::sqlite3_column_text(stmt, i);
            let len = ffi::sqlite3_column_bytes(stmt, i);
            let bytes =
                if text.is_null() || len <= 0 { &[][..] } else { std::slice::from_raw_parts(text, len as usize) };
            let s = std::str::from_utf8(bytes)
                .map_err(|_| StoreError::Internal(format!("column {i}: text that is not UTF-8")))?;
            Value::Text(s.to_owned())
        }
        t => return Err(StoreError::Internal(format!("column {i}: a value of SQLite type {t}, not text or integer"))),
    })
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
    let len = c_int::try_from(text.len()).map_err(|_| StoreError::Internal("a parameter over 2 GiB".into()))?;
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

unsafe fn count(db: *mut ffi::sqlite3, paths: &[StorePath], gone: &AtomicBool) -> StoreResult<Vec<VoteCounts>> {
    // One read transaction for all the paths: one snapshot, as one statement had, and
    // the WAL read lock taken once instead of once per path. Ended by `_end` after
    // `stmt` is finalized (declared before it, so dropped after it).
    let _end = (ffi::sqlite3_get_autocommit(db) != 0 && exec(db, c"BEGIN")?).then_some(EndRead(db));
    let stmt = prepare(db, VOTES_OF_PATH)?;
    let result = (|| {
        let mut counts = vec![VoteCounts::default(); paths.len()];
        // In key order: neighbouring lookups share the index's upper pages while they
        // are in the connection's small page cache (random order read about twice the
        // pages from the file); the counts go back to the caller's order.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_unstable_by(|&a, &b| paths[a].as_str().cmp(paths[b].as_str()));
        // One path's (builder, hash) pairs, as ranges of one buffer reused for all.
        let mut arena = Vec::new();
        let mut votes: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        for (n, i) in order.into_iter().enumerate() {
            if n % 256 == 0 && gone.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("the status request was cancelled".into()));
            }
            let path = &paths[i];
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
            counts[i] = VoteCounts::count(votes.iter().map(|(b, h)| (&arena[b.clone()], &arena[h.clone()])));
        }
        Ok(counts)
    })();
    // Drops the pointers to `paths` before they go; `_end` ends the read.
    ffi::sqlite3_reset(stmt.0);
    ffi::sqlite3_clear_bindings(stmt.0);
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
