//! The transparency log's reads and the sequencer's write. Entries are numbered by
//! [`crate::insert_submissions`] in the attestations' own transaction.

use std::collections::BTreeMap;

use nhc_storage::{
    LogAppend, LogCheckpoint, LogEntry, StoreError, StoreResult, MAX_LOG_ENTRIES_READ, MAX_LOG_READ,
    MAX_LOG_READ_REFERENCE_BYTES,
};

use crate::batch::json_arrays;
use crate::exec::{Executor, Param, Statement};
use crate::{rows, statements as sql, SqlStorage};

fn to_i64(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Internal(format!("log index {n} past 2^63")))
}

impl<E: Executor> SqlStorage<E> {
    pub(crate) async fn latest_checkpoint(&self) -> StoreResult<Option<LogCheckpoint>> {
        let Some(mut r) = self.executor().query(sql::LOG_LATEST_CHECKPOINT, &[]).await?.into_iter().next() else {
            return Ok(None);
        };
        let size = u64::try_from(r.int(0)?).map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(Some(LogCheckpoint { size, root: rows::hash_hex(&r.text(1)?)?, note: r.text(2)?, created_at: r.int(3)? }))
    }

    pub(crate) async fn entries(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, LogEntry)>> {
        let to = to.min(from.saturating_add(MAX_LOG_ENTRIES_READ));
        let range = [Param::Int(to_i64(from)?), Param::Int(to_i64(to)?)];
        let index = |i: i64| u64::try_from(i).map_err(|e| StoreError::Internal(e.to_string()));
        // Each row with its references when short: a bundle's worth of short lists is
        // bounded; a long list is read alone below, as far as the budget goes.
        let inline = (MAX_LOG_READ_REFERENCE_BYTES as u64 / MAX_LOG_ENTRIES_READ) as i64;
        let mut found: BTreeMap<u64, (LogEntry, usize)> = BTreeMap::new();
        let params = [range[0], range[1], Param::Int(inline)];
        for mut row in self.executor().query_many(sql::LOG_ATTESTATIONS, &params).await? {
            let len = usize::try_from(row.int(10)?).map_err(|e| StoreError::Internal(e.to_string()))?;
            let a = rows::attestation(row)?;
            let i = a.log_index.ok_or_else(|| StoreError::Internal("a logged attestation without its index".into()))?;
            found.insert(i, (LogEntry::Attestation(a), len));
        }
        // A leaf stored as text is what was hashed then: it wins over the row.
        for mut r in self.executor().query_many(sql::LOG_ENTRIES, &range).await? {
            let leaf = r.text(1)?;
            let len = leaf.len();
            found.insert(index(r.int(0)?)?, (LogEntry::Leaf(leaf), len));
        }
        let mut out = Vec::with_capacity(found.len());
        let mut bytes = 0usize;
        for (i, (mut entry, len)) in found {
            bytes = bytes.saturating_add(len);
            if bytes > MAX_LOG_READ_REFERENCE_BYTES && !out.is_empty() {
                break;
            }
            if let LogEntry::Attestation(a) = &mut entry {
                if len as i64 > inline {
                    let mut rows = self.executor().query(sql::LOG_REFERENCES, &[Param::Int(to_i64(i)?)]).await?;
                    let mut r = rows.pop().ok_or_else(|| StoreError::Internal(format!("log entry {i} vanished")))?;
                    a.references = rows::references(&r.text(0)?)?;
                }
            }
            out.push((i, entry));
        }
        Ok(out)
    }

    pub(crate) async fn hashes(&self, indexes: &[u64]) -> StoreResult<Vec<(u64, [u8; 32])>> {
        if indexes.len() > MAX_LOG_READ {
            return Err(StoreError::Internal(format!("{} log hashes asked at once", indexes.len())));
        }
        let ints = indexes.iter().map(|&i| to_i64(i)).collect::<StoreResult<Vec<i64>>>()?;
        let mut out = Vec::with_capacity(indexes.len());
        for list in json_arrays(&ints, self.executor().max_param_bytes())? {
            for mut r in
                self.executor().query_many(self.executor().dialect().log_hashes_at, &[Param::Text(&list)]).await?
            {
                let idx = u64::try_from(r.int(0)?).map_err(|e| StoreError::Internal(e.to_string()))?;
                out.push((idx, rows::hash_hex(&r.text(1)?)?));
            }
        }
        Ok(out)
    }

    pub(crate) async fn append(&self, a: &LogAppend) -> StoreResult<bool> {
        let first = to_i64(a.first_hash_index)?;
        let rows: Vec<(i64, String)> =
            a.hashes.iter().enumerate().map(|(i, h)| (first + i as i64, nhc_core::hex::encode(h))).collect();
        let lists = json_arrays(&rows, self.executor().max_param_bytes())?;
        let dialect = self.executor().dialect();
        let mut statements: Vec<Statement> =
            lists.iter().map(|l| Statement::new(dialect.insert_log_hashes, vec![Param::Text(l)])).collect();
        let root = nhc_core::hex::encode(&a.checkpoint.root);
        statements.push(Statement::new(
            sql::INSERT_LOG_CHECKPOINT,
            vec![
                Param::Int(to_i64(a.checkpoint.size)?),
                Param::Text(&root),
                Param::Text(&a.checkpoint.note),
                Param::Int(a.checkpoint.created_at),
            ],
        ));
        let results = self.executor().transaction(&statements).await?;
        Ok(results.last().is_some_and(|r| !r.is_empty()))
    }
}
