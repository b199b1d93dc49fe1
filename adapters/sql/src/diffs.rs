//! Diff reports on SQL: a row per report in `diffs`, its gzip bytes in base64
//! pieces in `diff_chunks` (D1 refuses a value or a row over 2 MB, so every
//! database stores the same pieces and one code path serves all).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nhc_core::{BuilderName, NarHash, Signature, StorePath};
use nhc_storage::{DiffRecord, DiffUsage, NewDiff, StoreError, StoreResult, DIFF_CHUNK_BYTES};

use crate::exec::{Executor, Param, Row, Statement};
use crate::SqlStorage;

/// The columns every report query returns, in this order.
macro_rules! diff_columns {
    () => {
        "id, output_path, builder, nar_hash_a, nar_hash_b, format, report_sha256, size, signature, created_at"
    };
}

const INSERT_DIFF: &str = "INSERT INTO diffs (id, hash_part, output_path, builder, nar_hash_a, nar_hash_b, format, \
     report_sha256, size, chunks, signature, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING RETURNING id";
const INSERT_CHUNK: &str =
    "INSERT INTO diff_chunks (diff_id, seq, data) VALUES ($1, $2, $3) ON CONFLICT (diff_id, seq) DO NOTHING";
const DIFF_EXISTS: &str = "SELECT 1 FROM diffs WHERE id = $1";
/// `$1` builder, `$2` hash part, `$3` path: (bytes of all its reports, its reports on the path).
const USAGE: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN hash_part = $2 AND output_path = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM diffs WHERE builder = $1";
const OF_PATH: &str = concat!(
    "SELECT ",
    diff_columns!(),
    " FROM diffs WHERE hash_part = $1 AND output_path = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
);
const ONE: &str =
    concat!("SELECT ", diff_columns!(), ", chunks FROM diffs WHERE id = $1 AND hash_part = $2 AND output_path = $3");
const CHUNKS: &str = "SELECT seq, data FROM diff_chunks WHERE diff_id = $1 ORDER BY seq";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt diff row in the database: {what}"))
}

fn record(r: &mut Row) -> StoreResult<DiffRecord> {
    Ok(DiffRecord {
        id: r.int(0)?,
        output_path: StorePath::parse(&r.text(1)?).map_err(corrupt)?,
        builder: BuilderName::parse(&r.text(2)?).map_err(corrupt)?,
        nar_hash_a: NarHash::parse(&r.text(3)?).map_err(corrupt)?,
        nar_hash_b: NarHash::parse(&r.text(4)?).map_err(corrupt)?,
        format: r.text(5)?.parse().map_err(corrupt)?,
        report_sha256: r.text(6)?,
        size: u64::try_from(r.int(7)?).map_err(corrupt)?,
        signature: Signature::parse(&r.text(8)?).map_err(corrupt)?,
        created_at: r.int(9)?,
    })
}

fn count(r: &mut Row, i: usize) -> StoreResult<u64> {
    u64::try_from(r.int(i)?).map_err(corrupt)
}

impl<E: Executor> SqlStorage<E> {
    pub(crate) async fn diff_usage_of(&self, builder: &BuilderName, path: &StorePath) -> StoreResult<DiffUsage> {
        let params = [Param::Text(builder.as_str()), Param::Text(path.hash_part()), Param::Text(path.as_str())];
        let mut rows = self.executor().query(USAGE, &params).await?;
        let Some(r) = rows.first_mut() else { return Ok(DiffUsage::default()) };
        Ok(DiffUsage { bytes: count(r, 0)?, on_path: count(r, 1)? })
    }

    pub(crate) async fn diff_insert(&self, d: &NewDiff) -> StoreResult<bool> {
        if !self.executor().query(DIFF_EXISTS, &[Param::Int(d.id)]).await?.is_empty() {
            return Ok(false);
        }
        let m = &d.meta;
        let pieces: Vec<String> = d.report.chunks(DIFF_CHUNK_BYTES).map(|c| STANDARD.encode(c)).collect();
        let (a, b, sig) = (m.nar_hash_a.to_string(), m.nar_hash_b.to_string(), m.signature.to_string());
        let size = i64::try_from(d.report.len()).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut statements = vec![Statement::new(
            INSERT_DIFF,
            vec![
                Param::Int(d.id),
                Param::Text(m.output_path.hash_part()),
                Param::Text(m.output_path.as_str()),
                Param::Text(m.builder.as_str()),
                Param::Text(&a),
                Param::Text(&b),
                Param::Text(m.format.as_str()),
                Param::Text(&m.report_sha256),
                Param::Int(size),
                Param::Int(pieces.len() as i64),
                Param::Text(&sig),
                Param::Int(m.created_at),
            ],
        )];
        for (seq, piece) in pieces.iter().enumerate() {
            statements
                .push(Statement::new(INSERT_CHUNK, vec![Param::Int(d.id), Param::Int(seq as i64), Param::Text(piece)]));
        }
        let results = self.executor().transaction(&statements).await?;
        Ok(results.first().is_some_and(|rows| !rows.is_empty()))
    }

    pub(crate) async fn diffs_of(&self, path: &StorePath, limit: u32) -> StoreResult<Vec<DiffRecord>> {
        let params = [Param::Text(path.hash_part()), Param::Text(path.as_str()), Param::Int(i64::from(limit))];
        let mut rows = self.executor().query(OF_PATH, &params).await?;
        rows.iter_mut().map(record).collect()
    }

    pub(crate) async fn diff_with_report(
        &self,
        path: &StorePath,
        id: i64,
    ) -> StoreResult<Option<(DiffRecord, Vec<u8>)>> {
        let params = [Param::Int(id), Param::Text(path.hash_part()), Param::Text(path.as_str())];
        let mut rows = self.executor().query(ONE, &params).await?;
        let Some(r) = rows.first_mut() else { return Ok(None) };
        let meta = record(r)?;
        let chunks = r.int(10)?;
        let mut report = Vec::with_capacity(meta.size as usize);
        let pieces = self.executor().query(CHUNKS, &[Param::Int(id)]).await?;
        if pieces.len() as i64 != chunks {
            return Err(corrupt(format!("report {id} has {} of its {chunks} pieces", pieces.len())));
        }
        for (i, mut piece) in pieces.into_iter().enumerate() {
            if piece.int(0)? != i as i64 {
                return Err(corrupt(format!("report {id} misses piece {i}")));
            }
            report.extend(STANDARD.decode(piece.text(1)?).map_err(corrupt)?);
        }
        if report.len() as u64 != meta.size {
            return Err(corrupt(format!("report {id} has {} bytes, not {}", report.len(), meta.size)));
        }
        Ok(Some((meta, report)))
    }
}
