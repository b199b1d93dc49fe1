//! Rows into domain records, column by column in the order of each statement's
//! `SELECT`. Values were validated before they were written, so one that does not
//! parse means corrupt data: an internal error, never a panic.

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};
use nhc_storage::{
    AttestationRecord, BuilderRecord, DerivationOutputVote, OutputPathVote, StoreError, StoreResult, TokenRecord, Vote,
};

use crate::batch::AttestationKey;
use crate::exec::Row;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row in the database: {what}"))
}

fn parse<T, E: std::fmt::Display>(s: &str, f: impl FnOnce(&str) -> Result<T, E>) -> StoreResult<T> {
    f(s).map_err(corrupt)
}

fn public_key(key_name: &str, key: &str) -> StoreResult<PublicKey> {
    parse(&format!("{key_name}:{key}"), PublicKey::parse)
}

/// A row of the attestation columns (`attestation_columns!` in `statements.rs`).
pub fn attestation(mut r: Row) -> StoreResult<AttestationRecord> {
    Ok(AttestationRecord {
        builder: parse(&r.text(0)?, BuilderName::parse)?,
        drv_path: r.opt_text(1)?.map(|s| parse(&s, DrvPath::parse)).transpose()?,
        output_name: r.opt_text(2)?.map(|s| parse(&s, OutputName::parse)).transpose()?,
        output_path: parse(&r.text(3)?, StorePath::parse)?,
        nar_hash: parse(&r.text(4)?, NarHash::parse)?,
        nar_size: u64::try_from(r.int(5)?).map_err(corrupt)?,
        references: references(&r.text(6)?)?,
        signature: parse(&r.text(7)?, Signature::parse)?,
        submitted_at: r.int(8)?,
        log_index: r.opt_int(9)?.map(|i| u64::try_from(i).map_err(corrupt)).transpose()?,
    })
}

/// A `refs` column's references.
pub fn references(refs: &str) -> StoreResult<References> {
    parse(refs, References::from_space_separated)
}

pub fn attestations(rows: Vec<Row>) -> StoreResult<Vec<AttestationRecord>> {
    rows.into_iter().map(attestation).collect()
}

/// Folds the rows of [`crate::statements::LIST_BUILDERS`] (one per key, ordered by builder) into builders.
pub fn builders(rows: Vec<Row>) -> StoreResult<Vec<BuilderRecord>> {
    let mut out: Vec<BuilderRecord> = Vec::new();
    for mut row in rows {
        let name = parse(&row.text(0)?, BuilderName::parse)?;
        let created_at = row.int(1)?;
        if out.last().map(|b| &b.name) != Some(&name) {
            out.push(BuilderRecord { name, public_keys: Vec::new(), created_at });
        }
        if let (Some(k), Some(v), Some(b)) = (row.opt_text(2)?, row.opt_text(3)?, out.last_mut()) {
            b.public_keys.push(public_key(&k, &v)?);
        }
    }
    Ok(out)
}

/// The rows of [`crate::statements::FIND_TOKEN`]: one per key of the token's builder.
pub fn token(rows: Vec<Row>) -> StoreResult<Option<TokenRecord>> {
    let mut record: Option<TokenRecord> = None;
    for mut row in rows {
        let builder = row.text(0)?;
        let secret_hash = row.text(1)?;
        let revoked = row.opt_int(2)?.is_some();
        let record = match &mut record {
            Some(r) => r,
            None => record.insert(TokenRecord {
                builder: parse(&builder, BuilderName::parse)?,
                secret_hash,
                revoked,
                public_keys: Vec::new(),
            }),
        };
        if let (Some(k), Some(v)) = (row.opt_text(3)?, row.opt_text(4)?) {
            record.public_keys.push(public_key(&k, &v)?);
        }
    }
    Ok(record)
}

/// A row of `votes_of_paths`: the path's index in the list, builder, nar_hash (unparsed).
pub fn vote_row(mut r: Row) -> StoreResult<(usize, String, String)> {
    let i = usize::try_from(r.int(0)?).map_err(corrupt)?;
    Ok((i, r.text(1)?, r.text(2)?))
}

/// A vote from a row of [`vote_row`] and the path it is about.
pub fn vote(path: &StorePath, builder: &str, nar_hash: &str) -> StoreResult<Vote> {
    Ok(Vote {
        output_path: path.clone(),
        builder: parse(builder, BuilderName::parse)?,
        nar_hash: parse(nar_hash, NarHash::parse)?,
    })
}

/// A row of `builder_votes_of_paths`: output_path, builder, nar_hash.
pub fn path_vote(mut r: Row) -> StoreResult<Vote> {
    let path = parse(&r.text(0)?, StorePath::parse)?;
    vote(&path, &r.text(1)?, &r.text(2)?)
}

/// A key `insert_attestations` returned: output_path, builder, nar_hash.
pub fn key(mut r: Row) -> StoreResult<AttestationKey> {
    Ok(AttestationKey { output_path: r.text(0)?, builder: r.text(1)?, nar_hash: r.text(2)? })
}

/// A row `Dialect::insert_attestations` returns: the key and the log index it got.
pub fn log_index(mut r: Row) -> StoreResult<(AttestationKey, u64)> {
    let index = u64::try_from(r.int(3)?).map_err(corrupt)?;
    Ok((key(r)?, index))
}

/// A hash stored as 64 lowercase hex digits.
pub fn hash_hex(s: &str) -> StoreResult<[u8; 32]> {
    nhc_core::hex::decode_32(s).ok_or_else(|| corrupt(format!("a hash that is not 64 lowercase hex digits: {s:?}")))
}

/// A row of [`crate::statements::DERIVATION_VOTES`].
pub fn derivation_output_vote(mut r: Row) -> StoreResult<DerivationOutputVote> {
    let output_name = parse(&r.text(0)?, OutputName::parse)?;
    let output_path = parse(&r.text(1)?, StorePath::parse)?;
    let vote = match (r.opt_text(2)?, r.opt_text(3)?) {
        (Some(b), Some(h)) => Some(OutputPathVote {
            builder: parse(&b, BuilderName::parse)?,
            nar_hash: parse(&h, NarHash::parse)?,
            claimed_at: r.opt_int(4)?,
        }),
        _ => None,
    };
    Ok(DerivationOutputVote { output_name, output_path, vote })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Value;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn corrupt_rows_are_internal_errors() {
        let bad = Row(vec![text("not a builder!"), Value::Int(1), Value::Null, Value::Null]);
        assert!(matches!(builders(vec![bad]), Err(StoreError::Internal(_))));
        let short = Row(vec![Value::Int(0), text("a")]);
        assert!(matches!(vote_row(short), Err(StoreError::Internal(_))));
        assert!(matches!(vote_row(Row(vec![Value::Int(-1), text("a"), text("h")])), Err(StoreError::Internal(_))));
    }

    #[test]
    fn token_rows_fold_their_keys() {
        let k = "k1:ZAbeMUXbSUNDUjBqzqzwkqf9krnnBm5W1hYNY9WlbnY=";
        let (name, key) = k.split_once(':').unwrap();
        let row = |kn: Value, kv: Value| Row(vec![text("b1"), text("h"), Value::Null, kn, kv]);
        let t = token(vec![row(text(name), text(key))]).unwrap().unwrap();
        assert_eq!((t.builder.as_str(), t.public_keys.len(), t.revoked), ("b1", 1, false));
        let t = token(vec![row(Value::Null, Value::Null)]).unwrap().unwrap();
        assert!(t.public_keys.is_empty());
        assert!(token(vec![]).unwrap().is_none());
    }
}
