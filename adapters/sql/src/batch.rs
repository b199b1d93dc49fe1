//! The parameters of one batched insert, and each submission's counts from the
//! keys the insert returned.

use std::collections::{HashMap, HashSet};

use nhc_storage::{InsertCounts, LogPosition, StoreError, Submission};
use serde::Serialize;

/// What makes an attestation a duplicate: the same path, builder and NAR hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttestationKey {
    pub output_path: String,
    pub builder: String,
    pub nar_hash: String,
}

pub struct InsertBatch {
    /// `$1` of `Dialect::insert_attestations`, one statement per chunk.
    pub attestations: Vec<String>,
    /// `$1` of `Dialect::insert_derivation_outputs`, one statement per chunk.
    pub derivations: Vec<String>,
    /// Per submission, per attestation: the key sent to the database, or `None`
    /// when an earlier one in the batch had the same key (a duplicate already).
    sent: Vec<Vec<Option<AttestationKey>>>,
}

/// No limit on a parameter's size (sqlx on SQLite and PostgreSQL).
pub const UNLIMITED: usize = usize::MAX;
/// Cloudflare D1 refuses strings over 2,000,000 bytes, parameters included.
pub const D1_MAX_PARAM_BYTES: usize = 1_900_000;

/// `rows` as JSON arrays of at most `max_bytes` each (a row longer than that alone
/// still makes one array): lists longer than a database's parameter limit go in
/// several statements. No rows: no arrays.
pub fn json_arrays<T: Serialize>(rows: &[T], max_bytes: usize) -> Result<Vec<String>, StoreError> {
    Ok(json_array_chunks(rows, max_bytes)?.into_iter().map(|(_, array)| array).collect())
}

/// [`json_arrays`], each with the index in `rows` of its first element (so that an
/// index within an array, e.g. `json_each`'s `key`, gives back the row).
pub fn json_array_chunks<T: Serialize>(rows: &[T], max_bytes: usize) -> Result<Vec<(usize, String)>, StoreError> {
    let internal = |e: serde_json::Error| StoreError::Internal(e.to_string());
    if max_bytes == UNLIMITED {
        return Ok(if rows.is_empty() {
            Vec::new()
        } else {
            vec![(0, serde_json::to_string(rows).map_err(internal)?)]
        });
    }
    let mut arrays = Vec::new();
    let (mut start, mut current) = (0, String::from("["));
    let mut row = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        row.clear();
        serde_json::to_writer(&mut row, r).map_err(internal)?;
        let row = std::str::from_utf8(&row).map_err(|e| StoreError::Internal(e.to_string()))?;
        if current.len() > 1 && current.len() + 1 + row.len() + 1 > max_bytes {
            current.push(']');
            arrays.push((start, std::mem::replace(&mut current, String::from("["))));
            start = i;
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(row);
    }
    if current.len() > 1 {
        current.push(']');
        arrays.push((start, current));
    }
    Ok(arrays)
}

impl InsertBatch {
    /// The parameters of one transaction; no parameter is over `max_param_bytes`
    /// ([`UNLIMITED`] or [`D1_MAX_PARAM_BYTES`]).
    pub fn new(submissions: &[&Submission], max_param_bytes: usize) -> Result<Self, StoreError> {
        // Rows as tuples serialise straight to JSON arrays, without a
        // serde_json::Value (and its allocations) per field.
        type Row<'a> = (&'a str, &'a str, String, &'a str, u64, String, String, Option<&'a str>, Option<&'a str>, i64);
        let mut first_seen: HashSet<AttestationKey> = HashSet::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut derivations: Vec<(&str, &str, &str)> = Vec::new();
        let mut sent = Vec::with_capacity(submissions.len());
        for s in submissions {
            let mut mine = Vec::with_capacity(s.attestations.len());
            for a in &s.attestations {
                if let (Some(drv), Some(out)) = (&a.drv_path, &a.output_name) {
                    derivations.push((drv.as_str(), out.as_str(), a.output_path.as_str()));
                }
                let key = AttestationKey {
                    output_path: a.output_path.as_str().to_owned(),
                    builder: s.builder.as_str().to_owned(),
                    nar_hash: a.nar_hash.to_string(),
                };
                if first_seen.insert(key.clone()) {
                    rows.push((
                        a.output_path.as_str(),
                        s.builder.as_str(),
                        key.nar_hash.clone(),
                        a.output_path.hash_part(),
                        a.nar_size,
                        a.references.to_space_separated(),
                        a.signature.to_string(),
                        a.drv_path.as_ref().map(|d| d.as_str()),
                        a.output_name.as_ref().map(|o| o.as_str()),
                        s.submitted_at,
                    ));
                    mine.push(Some(key));
                } else {
                    mine.push(None);
                }
            }
            sent.push(mine);
        }
        Ok(InsertBatch {
            attestations: json_arrays(&rows, max_param_bytes)?,
            derivations: json_arrays(&derivations, max_param_bytes)?,
            sent,
        })
    }

    /// Each submission's counts and log positions, given the keys the insert
    /// returned (the new ones) and the log index each of them got.
    pub fn counts(
        self,
        inserted: &HashSet<AttestationKey>,
        indexes: &HashMap<AttestationKey, u64>,
    ) -> Vec<InsertCounts> {
        let InsertBatch { sent, .. } = self;
        sent.into_iter()
            .map(|mine| {
                let stored = mine.iter().filter(|k| k.as_ref().is_some_and(|k| inserted.contains(k))).count() as u64;
                let mut log: Vec<LogPosition> = mine
                    .iter()
                    .flatten()
                    .filter_map(|k| {
                        let index = *indexes.get(k)?;
                        Some(LogPosition {
                            output_path: nhc_core::StorePath::parse(&k.output_path).ok()?,
                            nar_hash: nhc_core::NarHash::parse(&k.nar_hash).ok()?,
                            index,
                        })
                    })
                    .collect();
                log.sort_by_key(|p| p.index);
                InsertCounts { stored, duplicates: mine.len() as u64 - stored, log }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_split_under_the_limit_and_keep_every_row() {
        let rows: Vec<(String, u64)> = (0..1000).map(|i| (format!("row-{i}"), i)).collect();
        assert_eq!(json_arrays(&rows, UNLIMITED).unwrap(), vec![serde_json::to_string(&rows).unwrap()]);
        let arrays = json_arrays(&rows, 200).unwrap();
        assert!(arrays.len() > 50);
        let mut back: Vec<(String, u64)> = Vec::new();
        for a in &arrays {
            assert!(a.len() <= 200, "{} bytes", a.len());
            back.extend(serde_json::from_str::<Vec<(String, u64)>>(a).unwrap());
        }
        assert_eq!(back, rows);
        // A row over the limit still goes, alone.
        let big = vec!["x".repeat(300), "y".into()];
        let arrays = json_arrays(&big, 200).unwrap();
        assert_eq!(arrays.len(), 2);
        assert!(json_arrays::<u8>(&[], 10).unwrap().is_empty());
        assert!(json_arrays::<u8>(&[], UNLIMITED).unwrap().is_empty());
    }

    #[test]
    fn json_array_chunks_know_where_each_array_starts() {
        let rows: Vec<String> = (0..100).map(|i| format!("/nix/store/{i:032}-p")).collect();
        for max in [UNLIMITED, 200, 1] {
            let chunks = json_array_chunks(&rows, max).unwrap();
            let mut next = 0;
            for (start, array) in chunks {
                assert_eq!(start, next);
                let back: Vec<String> = serde_json::from_str(&array).unwrap();
                assert_eq!(back, rows[start..start + back.len()]);
                next += back.len();
            }
            assert_eq!(next, rows.len());
        }
    }
}
