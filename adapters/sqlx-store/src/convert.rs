//! sqlx rows into the row types of `nhc_sql::rows`, by column position.

use nhc_handlers::storage::StoreResult;
use nhc_sql::rows::{AttestationRow, BuilderKeyRow, DerivationVoteRow, KeyRow, TokenKeyRow};
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

pub(crate) fn attestation<R: Get>(r: &R) -> StoreResult<AttestationRow> {
    Ok(AttestationRow {
        builder: r.text(0)?,
        drv_path: r.opt_text(1)?,
        output_name: r.opt_text(2)?,
        output_path: r.text(3)?,
        nar_hash: r.text(4)?,
        nar_size: r.int(5)?,
        refs: r.text(6)?,
        signature: r.text(7)?,
        submitted_at: r.int(8)?,
    })
}

pub(crate) fn builder_key<R: Get>(r: &R) -> StoreResult<BuilderKeyRow> {
    Ok(BuilderKeyRow { name: r.text(0)?, created_at: r.int(1)?, key_name: r.opt_text(2)?, public_key: r.opt_text(3)? })
}

pub(crate) fn token_key<R: Get>(r: &R) -> StoreResult<TokenKeyRow> {
    Ok(TokenKeyRow {
        builder: r.text(0)?,
        secret_hash: r.text(1)?,
        revoked_at: r.opt_int(2)?,
        key_name: r.opt_text(3)?,
        public_key: r.opt_text(4)?,
    })
}

pub(crate) fn key<R: Get>(r: &R) -> StoreResult<KeyRow> {
    Ok(KeyRow { output_path: r.text(0)?, builder: r.text(1)?, nar_hash: r.text(2)? })
}

pub(crate) fn derivation_vote<R: Get>(r: &R) -> StoreResult<DerivationVoteRow> {
    Ok(DerivationVoteRow {
        output_name: r.text(0)?,
        output_path: r.text(1)?,
        builder: r.opt_text(2)?,
        nar_hash: r.opt_text(3)?,
        claimed_at: r.opt_int(4)?,
    })
}
