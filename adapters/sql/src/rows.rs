//! Row types, field for field the columns of the statements in this crate, and
//! their conversion into domain types. Values were validated before they were
//! written, so one that does not parse means corrupt data: an internal error,
//! never a panic.

use nhc_handlers::core::fingerprint::References;
use nhc_handlers::core::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};
use nhc_handlers::storage::{
    AttestationRecord, BuilderRecord, DerivationVote, DerivationVoteOf, StoreResult, TokenRecord, Vote,
};
use nhc_handlers::StoreError;
use serde::Deserialize;

use crate::batch::Key;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row in the database: {what}"))
}

fn parse<T, E: std::fmt::Display>(s: &str, f: impl FnOnce(&str) -> Result<T, E>) -> StoreResult<T> {
    f(s).map_err(corrupt)
}

fn public_key(key_name: &str, key: &str) -> StoreResult<PublicKey> {
    parse(&format!("{key_name}:{key}"), PublicKey::parse)
}

/// [`crate::ATTESTATION_COLUMNS`].
#[derive(Debug, Deserialize)]
pub struct AttestationRow {
    pub builder: String,
    pub drv_path: Option<String>,
    pub output_name: Option<String>,
    pub output_path: String,
    pub nar_hash: String,
    pub nar_size: i64,
    pub refs: String,
    pub signature: String,
    pub submitted_at: i64,
}

impl AttestationRow {
    pub fn parse(self) -> StoreResult<AttestationRecord> {
        Ok(AttestationRecord {
            builder: parse(&self.builder, BuilderName::parse)?,
            drv_path: self.drv_path.map(|s| parse(&s, DrvPath::parse)).transpose()?,
            output_name: self.output_name.map(|s| parse(&s, OutputName::parse)).transpose()?,
            output_path: parse(&self.output_path, StorePath::parse)?,
            nar_hash: parse(&self.nar_hash, NarHash::parse)?,
            nar_size: u64::try_from(self.nar_size).map_err(corrupt)?,
            references: parse(&self.refs, References::from_space_separated)?,
            signature: parse(&self.signature, Signature::parse)?,
            submitted_at: self.submitted_at,
        })
    }
}

/// [`crate::LIST_BUILDERS`]: one row per key.
#[derive(Debug, Deserialize)]
pub struct BuilderKeyRow {
    pub name: String,
    pub created_at: i64,
    pub key_name: Option<String>,
    pub public_key: Option<String>,
}

/// Folds the rows of [`crate::LIST_BUILDERS`] (ordered by builder) into builders.
pub fn builders(rows: impl IntoIterator<Item = BuilderKeyRow>) -> StoreResult<Vec<BuilderRecord>> {
    let mut out: Vec<BuilderRecord> = Vec::new();
    for row in rows {
        let name = parse(&row.name, BuilderName::parse)?;
        if out.last().map(|b| &b.name) != Some(&name) {
            out.push(BuilderRecord { name, public_keys: Vec::new(), created_at: row.created_at });
        }
        if let (Some(k), Some(v), Some(b)) = (row.key_name, row.public_key, out.last_mut()) {
            b.public_keys.push(public_key(&k, &v)?);
        }
    }
    Ok(out)
}

/// [`crate::FIND_TOKEN`]: one row per key of the token's builder.
#[derive(Debug, Deserialize)]
pub struct TokenKeyRow {
    pub builder: String,
    pub secret_hash: String,
    pub revoked_at: Option<i64>,
    pub key_name: Option<String>,
    pub public_key: Option<String>,
}

pub fn token(rows: Vec<TokenKeyRow>) -> StoreResult<Option<TokenRecord>> {
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else { return Ok(None) };
    let mut record = TokenRecord {
        builder: parse(&first.builder, BuilderName::parse)?,
        secret_hash: first.secret_hash,
        revoked: first.revoked_at.is_some(),
        public_keys: Vec::new(),
    };
    for (k, v) in std::iter::once((first.key_name, first.public_key)).chain(rows.map(|r| (r.key_name, r.public_key))) {
        if let (Some(k), Some(v)) = (k, v) {
            record.public_keys.push(public_key(&k, &v)?);
        }
    }
    Ok(Some(record))
}

/// `votes_of_paths`, and the keys `insert_attestations` returns.
#[derive(Debug, Deserialize)]
pub struct KeyRow {
    pub output_path: String,
    pub builder: String,
    pub nar_hash: String,
}

impl KeyRow {
    pub fn vote(self) -> StoreResult<Vote> {
        Ok(Vote {
            output_path: parse(&self.output_path, StorePath::parse)?,
            builder: parse(&self.builder, BuilderName::parse)?,
            nar_hash: parse(&self.nar_hash, NarHash::parse)?,
        })
    }

    pub fn key(self) -> Key {
        (self.output_path, self.builder, self.nar_hash)
    }
}

/// [`crate::DERIVATION_VOTES`].
#[derive(Debug, Deserialize)]
pub struct DerivationVoteRow {
    pub output_name: String,
    pub output_path: String,
    pub builder: Option<String>,
    pub nar_hash: Option<String>,
    pub claimed_at: Option<i64>,
}

impl DerivationVoteRow {
    pub fn parse(self) -> StoreResult<DerivationVote> {
        let vote = match (self.builder, self.nar_hash) {
            (Some(b), Some(h)) => Some(DerivationVoteOf {
                builder: parse(&b, BuilderName::parse)?,
                nar_hash: parse(&h, NarHash::parse)?,
                claimed_at: self.claimed_at,
            }),
            _ => None,
        };
        Ok(DerivationVote {
            output_name: parse(&self.output_name, OutputName::parse)?,
            output_path: parse(&self.output_path, StorePath::parse)?,
            vote,
        })
    }
}
