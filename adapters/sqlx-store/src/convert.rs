//! Rows to domain types. Values were validated before they were written, so a value
//! that does not parse here means corrupt data: an internal error, never a panic.

use nhc_handlers::core::fingerprint::References;
use nhc_handlers::core::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, Signature, StorePath};
use nhc_handlers::storage::{AttestationRecord, StoreResult};
use nhc_handlers::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::store_error;

/// Typed access to a row's columns by position, for either database.
pub(crate) trait Get {
    fn text(&self, i: usize) -> StoreResult<String>;
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>>;
    fn int(&self, i: usize) -> StoreResult<i64>;
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
}

impl<R> Get for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, i: usize) -> StoreResult<String> {
        self.try_get(i).map_err(store_error)
    }
    fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        self.try_get(i).map_err(store_error)
    }
    fn int(&self, i: usize) -> StoreResult<i64> {
        self.try_get(i).map_err(store_error)
    }
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.try_get(i).map_err(store_error)
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row in the database: {what}"))
}

pub(crate) fn parse<T, E: std::fmt::Display>(s: &str, f: impl FnOnce(&str) -> Result<T, E>) -> StoreResult<T> {
    f(s).map_err(corrupt)
}

/// The columns [`attestation`] reads, in its order.
macro_rules! attestation_columns {
    () => {
        "builder, drv_path, output_name, output_path, nar_hash, nar_size, refs, signature, submitted_at"
    };
}
pub(crate) use attestation_columns;

pub(crate) fn attestation<R: Get>(row: &R) -> StoreResult<AttestationRecord> {
    Ok(AttestationRecord {
        builder: parse(&row.text(0)?, BuilderName::parse)?,
        drv_path: row.opt_text(1)?.map(|s| parse(&s, DrvPath::parse)).transpose()?,
        output_name: row.opt_text(2)?.map(|s| parse(&s, OutputName::parse)).transpose()?,
        output_path: parse(&row.text(3)?, StorePath::parse)?,
        nar_hash: parse(&row.text(4)?, NarHash::parse)?,
        nar_size: u64::try_from(row.int(5)?).map_err(corrupt)?,
        references: parse(&row.text(6)?, References::from_space_separated)?,
        signature: parse(&row.text(7)?, Signature::parse)?,
        submitted_at: row.int(8)?,
    })
}

pub(crate) fn public_key(key_name: &str, key: &str) -> StoreResult<PublicKey> {
    parse(&format!("{key_name}:{key}"), PublicKey::parse)
}
