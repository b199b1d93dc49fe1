//! Every query, written once for both databases (see [`on_pool!`]).

use nhc_handlers::core::{BuilderName, DrvPath, StorePath};
use nhc_handlers::storage::{
    AttestationRecord, BuilderRecord, Cursor, DerivationVote, NewBuilder, NewToken, StoreResult, TokenRecord, Vote,
};
use nhc_handlers::StoreError;
use nhc_sql::{self as sql, rows};

use crate::convert;
use crate::error::store_error;
use crate::{on_pool, Pool};
use sqlx::Connection; // begin_with on a SQLite connection

pub(crate) async fn health(pool: &Pool) -> StoreResult<()> {
    on_pool!(pool, p => sqlx::query(sql::HEALTH).execute(p).await.map(|_| ())).map_err(store_error)
}

pub(crate) async fn create_builder(pool: &Pool, b: &NewBuilder) -> StoreResult<()> {
    on_pool!(pool, p => {
        let mut tx = p.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
        // Checked first for a message that names the clash; the unique constraints
        // still decide a race (mapped to Conflict as well).
        let taken = sqlx::query(sql::BUILDER_EXISTS)
            .bind(b.name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if taken.is_some() {
            return Err(sql::name_taken(&b.name));
        }
        for key in &b.public_keys {
            let clash = sqlx::query(sql::KEY_TAKEN)
                .bind(key.name().as_str())
                .bind(key.key_base64())
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            if clash.is_some() {
                return Err(sql::key_taken(key));
            }
        }
        sqlx::query(sql::INSERT_BUILDER)
            .bind(b.name.as_str())
            .bind(b.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        for key in &b.public_keys {
            sqlx::query(sql::INSERT_KEY)
                .bind(key.name().as_str())
                .bind(key.key_base64())
                .bind(b.name.as_str())
                .bind(b.created_at)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        sqlx::query(sql::INSERT_TOKEN)
            .bind(b.token.id.as_str())
            .bind(b.token.secret_hash.as_str())
            .bind(b.name.as_str())
            .bind(b.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    })
}

pub(crate) async fn list_builders(pool: &Pool) -> StoreResult<Vec<BuilderRecord>> {
    on_pool!(pool, p => {
        let rows = sqlx::query(sql::LIST_BUILDERS).fetch_all(p).await.map_err(store_error)?;
        rows::builders(rows.iter().map(convert::builder_key).collect::<StoreResult<Vec<_>>>()?)
    })
}

pub(crate) async fn builder_known(pool: &Pool, name: &BuilderName) -> StoreResult<bool> {
    on_pool!(pool, p => sqlx::query(sql::BUILDER_EXISTS)
        .bind(name.as_str())
        .fetch_optional(p)
        .await
        .map(|r| r.is_some()))
    .map_err(store_error)
}

async fn builder_live(pool: &Pool, name: &BuilderName) -> StoreResult<bool> {
    on_pool!(pool, p => sqlx::query(sql::BUILDER_LIVE)
        .bind(name.as_str())
        .fetch_optional(p)
        .await
        .map(|r| r.is_some()))
    .map_err(store_error)
}

pub(crate) async fn add_token(pool: &Pool, name: &BuilderName, token: &NewToken, at: i64) -> StoreResult<bool> {
    if !builder_live(pool, name).await? {
        return Ok(false);
    }
    on_pool!(pool, p => sqlx::query(sql::INSERT_TOKEN)
        .bind(token.id.as_str())
        .bind(token.secret_hash.as_str())
        .bind(name.as_str())
        .bind(at)
        .execute(p)
        .await
        .map(|_| ()))
    .map_err(store_error)?;
    Ok(true)
}

pub(crate) async fn revoke_tokens(pool: &Pool, name: &BuilderName, at: i64) -> StoreResult<Option<u64>> {
    if !builder_live(pool, name).await? {
        return Ok(None);
    }
    on_pool!(pool, p => sqlx::query(sql::REVOKE_TOKENS)
        .bind(name.as_str())
        .bind(at)
        .execute(p)
        .await
        .map(|r| Some(r.rows_affected())))
    .map_err(store_error)
}

pub(crate) async fn delete_builder(pool: &Pool, name: &BuilderName, purge: bool, at: i64) -> StoreResult<bool> {
    let exists = if purge { builder_known(pool, name).await? } else { builder_live(pool, name).await? };
    if !exists {
        return Ok(false);
    }
    let statements: &[&str] = if purge { &sql::PURGE } else { &[sql::DELETE_TOKENS] };
    on_pool!(pool, p => {
        let mut tx = p.begin_with(pool.dialect().begin_write).await.map_err(store_error)?;
        for sql in statements {
            sqlx::query(sql).bind(name.as_str()).execute(&mut *tx).await.map_err(store_error)?;
        }
        if !purge {
            sqlx::query(sql::MARK_DELETED)
                .bind(name.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    })?;
    Ok(true)
}

pub(crate) async fn find_token(pool: &Pool, id: &str) -> StoreResult<Option<TokenRecord>> {
    on_pool!(pool, p => {
        let rows = sqlx::query(sql::FIND_TOKEN).bind(id).fetch_all(p).await.map_err(store_error)?;
        rows::token(rows.iter().map(convert::token_key).collect::<StoreResult<Vec<_>>>()?)
    })
}

pub(crate) async fn attestations_of_path(pool: &Pool, path: &StorePath) -> StoreResult<Vec<AttestationRecord>> {
    on_pool!(pool, p => {
        let rows = sqlx::query(sql::ATTESTATIONS_OF_PATH).bind(path.hash_part()).bind(path.as_str()).fetch_all(p).await.map_err(store_error)?;
        rows.iter().map(|r| convert::attestation(r)?.parse()).collect()
    })
}

pub(crate) async fn votes_of_paths(pool: &Pool, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for any number of paths: the list travels as one JSON parameter.
    let list = serde_json::to_string(&paths.iter().map(StorePath::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let votes_sql = pool.dialect().votes_of_paths;
    on_pool!(pool, p => {
        let rows = sqlx::query(votes_sql).bind(&list).fetch_all(p).await.map_err(store_error)?;
        rows.iter().map(|r| convert::key(r)?.vote()).collect()
    })
}

pub(crate) async fn derivation_votes(pool: &Pool, drv: &DrvPath) -> StoreResult<Vec<DerivationVote>> {
    on_pool!(pool, p => {
        let rows = sqlx::query(sql::DERIVATION_VOTES).bind(drv.as_str()).fetch_all(p).await.map_err(store_error)?;
        rows.iter().map(|r| convert::derivation_vote(r)?.parse()).collect()
    })
}

pub(crate) async fn attestations_by_hash_part(
    pool: &Pool,
    hash_part: &str,
    builder: Option<&BuilderName>,
) -> StoreResult<Vec<AttestationRecord>> {
    let mut rows: Vec<AttestationRecord> = on_pool!(pool, p => {
        let rows = sqlx::query(sql::ATTESTATIONS_BY_HASH_PART).bind(hash_part).fetch_all(p).await.map_err(store_error)?;
        rows.iter().map(|r| convert::attestation(r)?.parse()).collect::<StoreResult<Vec<_>>>()
    })?;
    if let Some(b) = builder {
        rows.retain(|r| &r.builder == b);
    }
    Ok(rows)
}

pub(crate) async fn builder_attestations(
    pool: &Pool,
    builder: &BuilderName,
    cursor: Option<&Cursor>,
    limit: u32,
) -> StoreResult<Vec<AttestationRecord>> {
    on_pool!(pool, p => {
        let rows = match cursor {
            None => sqlx::query(sql::BUILDER_PAGE_FIRST).bind(builder.as_str()).bind(i64::from(limit)).fetch_all(p).await,
            Some(c) => {
                sqlx::query(sql::BUILDER_PAGE_AFTER)
                    .bind(builder.as_str())
                    .bind(i64::from(limit))
                    .bind(c.submitted_at)
                    .bind(c.output_path.as_str())
                    .bind(c.nar_hash.to_string())
                    .fetch_all(p)
                    .await
            }
        }
        .map_err(store_error)?;
        rows.iter().map(|r| convert::attestation(r)?.parse()).collect()
    })
}
