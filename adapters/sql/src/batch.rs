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
}

impl InsertBatch {
    pub fn new(submissions: &[&Submission]) -> Result<Self, StoreError> {
        let mut first_seen: HashSet<Key> = HashSet::new();
        let mut rows = Vec::new();
        let mut derivations = Vec::new();
        let mut sent = Vec::with_capacity(submissions.len());
        for s in submissions {
            let mut mine = Vec::with_capacity(s.attestations.len());
            for a in &s.attestations {
                if let (Some(drv), Some(out)) = (&a.drv_path, &a.output_name) {
                    derivations.push(serde_json::json!([drv.as_str(), out.as_str(), a.output_path.as_str()]));
                }
                let key: Key =
                    (a.output_path.as_str().to_owned(), s.builder.as_str().to_owned(), a.nar_hash.to_string());
                if first_seen.insert(key.clone()) {
                    rows.push(serde_json::json!([
                        key.0,
                        key.1,
                        key.2,
                        a.output_path.hash_part(),
                        a.nar_size,
                        a.references.to_space_separated(),
                        a.signature.to_string(),
                        a.drv_path.as_ref().map(|d| d.as_str()),
                        a.output_name.as_ref().map(|o| o.as_str()),
                        s.submitted_at,
                    ]));
                    mine.push(Some(key));
                } else {
                    mine.push(None);
                }
            }
            sent.push(mine);
        }
        let json =
            |v: &Vec<serde_json::Value>| serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()));
        Ok(InsertBatch { attestations: json(&rows)?, derivations: json(&derivations)?, sent })
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
