//! The parameters of one batched insert, and each submission's counts from the
//! keys the insert returned.

use std::collections::HashSet;

use nhc_handlers::storage::{InsertCounts, Submission};
use nhc_handlers::StoreError;

/// (output path, builder, NAR hash): what makes an attestation a duplicate.
pub type Key = (String, String, String);

pub struct InsertBatch {
    /// `$1` of [`crate::Dialect::insert_attestations`].
    pub attestations: String,
    /// `$1` of [`crate::Dialect::insert_derivation_outputs`].
    pub derivations: String,
    /// Per submission, per attestation: the key sent to the database, or `None`
    /// when an earlier one in the batch had the same key (a duplicate already).
    sent: Vec<Vec<Option<Key>>>,
    derivation_rows: usize,
}

impl InsertBatch {
    pub fn new(submissions: &[&Submission]) -> Result<Self, StoreError> {
        // Rows as tuples serialise straight to JSON arrays, without a
        // serde_json::Value (and its allocations) per field.
        type Row<'a> = (&'a str, &'a str, String, &'a str, u64, String, String, Option<&'a str>, Option<&'a str>, i64);
        let mut first_seen: HashSet<Key> = HashSet::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut derivations: Vec<(&str, &str, &str)> = Vec::new();
        let mut sent = Vec::with_capacity(submissions.len());
        for s in submissions {
            let mut mine = Vec::with_capacity(s.attestations.len());
            for a in &s.attestations {
                if let (Some(drv), Some(out)) = (&a.drv_path, &a.output_name) {
                    derivations.push((drv.as_str(), out.as_str(), a.output_path.as_str()));
                }
                let key: Key =
                    (a.output_path.as_str().to_owned(), s.builder.as_str().to_owned(), a.nar_hash.to_string());
                if first_seen.insert(key.clone()) {
                    rows.push((
                        a.output_path.as_str(),
                        s.builder.as_str(),
                        key.2.clone(),
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
        let internal = |e: serde_json::Error| StoreError::Internal(e.to_string());
        Ok(InsertBatch {
            attestations: serde_json::to_string(&rows).map_err(internal)?,
            derivations: serde_json::to_string(&derivations).map_err(internal)?,
            sent,
            derivation_rows: derivations.len(),
        })
    }

    /// False when no attestation named its derivation: the second insert can be skipped.
    pub fn has_derivations(&self) -> bool {
        self.derivation_rows > 0
    }

    /// Each submission's counts, given the keys the insert returned (the new ones).
    pub fn counts(self, inserted: &HashSet<Key>) -> Vec<InsertCounts> {
        self.sent
            .into_iter()
            .map(|mine| {
                let stored = mine.iter().filter(|k| k.as_ref().is_some_and(|k| inserted.contains(k))).count() as u64;
                InsertCounts { stored, duplicates: mine.len() as u64 - stored }
            })
            .collect()
    }
}
