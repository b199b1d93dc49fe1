//! Every query, written once for both databases (see [`on_pool!`]).

use nhc_handlers::core::{BuilderName, DrvPath, NarHash, OutputName, StorePath};
use nhc_handlers::storage::{
    AttestationRecord, BuilderRecord, Cursor, DerivationVote, NewBuilder, NewToken, StoreResult, TokenRecord, Vote,
};
use nhc_handlers::StoreError;

use crate::convert::{attestation, attestation_columns, parse, public_key, Get};
use crate::error::store_error;
use crate::{on_pool, Pool};

pub(crate) async fn health(pool: &Pool) -> StoreResult<()> {
    on_pool!(pool, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())).map_err(store_error)
}

pub(crate) async fn create_builder(pool: &Pool, b: &NewBuilder) -> StoreResult<()> {
    on_pool!(pool, p => {
        let mut tx = p.begin_with(crate::begin_write(pool)).await.map_err(store_error)?;
        // Checked first for a message that names the clash; the unique constraints
        // still decide a race (mapped to Conflict as well).
        let taken = sqlx::query("SELECT 1 FROM builders WHERE name = $1")
            .bind(b.name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("a builder named {} exists or existed", b.name)));
        }
        for key in &b.public_keys {
            let clash = sqlx::query("SELECT key_name FROM builder_keys WHERE key_name = $1 OR public_key = $2")
                .bind(key.name().as_str())
                .bind(key.key_base64())
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            if clash.is_some() {
                return Err(StoreError::Conflict(format!(
                    "the key {} (its name or its key) is registered already",
                    key.name()
                )));
            }
        }
        sqlx::query("INSERT INTO builders (name, created_at) VALUES ($1, $2)")
            .bind(b.name.as_str())
            .bind(b.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        for key in &b.public_keys {
            sqlx::query("INSERT INTO builder_keys (key_name, public_key, builder, created_at) VALUES ($1, $2, $3, $4)")
                .bind(key.name().as_str())
                .bind(key.key_base64())
                .bind(b.name.as_str())
                .bind(b.created_at)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        sqlx::query(INSERT_TOKEN)
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

const INSERT_TOKEN: &str = "INSERT INTO tokens (id, secret_hash, builder, created_at) VALUES ($1, $2, $3, $4)";

pub(crate) async fn list_builders(pool: &Pool) -> StoreResult<Vec<BuilderRecord>> {
    const SQL: &str = "SELECT b.name, b.created_at, k.key_name, k.public_key \
        FROM builders b LEFT JOIN builder_keys k ON k.builder = b.name \
        WHERE b.deleted_at IS NULL ORDER BY b.created_at, b.name, k.created_at, k.key_name";
    on_pool!(pool, p => {
        let rows = sqlx::query(SQL).fetch_all(p).await.map_err(store_error)?;
        let mut out: Vec<BuilderRecord> = Vec::new();
        for row in &rows {
            let name = parse(&row.text(0)?, BuilderName::parse)?;
            if out.last().map(|b| &b.name) != Some(&name) {
                out.push(BuilderRecord { name, public_keys: Vec::new(), created_at: row.int(1)? });
            }
            if let (Some(k), Some(v)) = (row.opt_text(2)?, row.opt_text(3)?) {
                if let Some(b) = out.last_mut() {
                    b.public_keys.push(public_key(&k, &v)?);
                }
            }
        }
        Ok(out)
    })
}

pub(crate) async fn builder_known(pool: &Pool, name: &BuilderName) -> StoreResult<bool> {
    on_pool!(pool, p => sqlx::query("SELECT 1 FROM builders WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(p)
        .await
        .map(|r| r.is_some()))
    .map_err(store_error)
}

async fn builder_live(pool: &Pool, name: &BuilderName) -> StoreResult<bool> {
    on_pool!(pool, p => sqlx::query("SELECT 1 FROM builders WHERE name = $1 AND deleted_at IS NULL")
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
    on_pool!(pool, p => sqlx::query(INSERT_TOKEN)
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
    on_pool!(pool, p => sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE builder = $1 AND revoked_at IS NULL")
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
    let statements: &[&str] = if purge {
        &[
            "DELETE FROM attestations WHERE builder = $1",
            "DELETE FROM tokens WHERE builder = $1",
            "DELETE FROM builder_keys WHERE builder = $1",
            "DELETE FROM builders WHERE name = $1",
        ]
    } else {
        &["DELETE FROM tokens WHERE builder = $1"]
    };
    on_pool!(pool, p => {
        let mut tx = p.begin_with(crate::begin_write(pool)).await.map_err(store_error)?;
        for sql in statements {
            sqlx::query(sql).bind(name.as_str()).execute(&mut *tx).await.map_err(store_error)?;
        }
        if !purge {
            sqlx::query("UPDATE builders SET deleted_at = $2 WHERE name = $1")
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
    const SQL: &str = "SELECT t.builder, t.secret_hash, t.revoked_at, k.key_name, k.public_key \
        FROM tokens t JOIN builders b ON b.name = t.builder \
        LEFT JOIN builder_keys k ON k.builder = t.builder \
        WHERE t.id = $1 AND b.deleted_at IS NULL";
    on_pool!(pool, p => {
        let rows = sqlx::query(SQL).bind(id).fetch_all(p).await.map_err(store_error)?;
        let Some(first) = rows.first() else { return Ok(None) };
        let mut record = TokenRecord {
            builder: parse(&first.text(0)?, BuilderName::parse)?,
            secret_hash: first.text(1)?,
            revoked: first.opt_int(2)?.is_some(),
            public_keys: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            if let (Some(k), Some(v)) = (row.opt_text(3)?, row.opt_text(4)?) {
                record.public_keys.push(public_key(&k, &v)?);
            }
        }
        Ok(Some(record))
    })
}

pub(crate) async fn attestations_of_path(pool: &Pool, path: &StorePath) -> StoreResult<Vec<AttestationRecord>> {
    const SQL: &str = concat!(
        "SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE output_path = $1 ORDER BY submitted_at, builder, nar_hash"
    );
    on_pool!(pool, p => {
        let rows = sqlx::query(SQL).bind(path.as_str()).fetch_all(p).await.map_err(store_error)?;
        rows.iter().map(attestation).collect()
    })
}

pub(crate) async fn votes_of_paths(pool: &Pool, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for any number of paths: the list travels as one JSON parameter.
    let list = serde_json::to_string(&paths.iter().map(StorePath::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    on_pool!(pool, p, sql = (
        "SELECT output_path, builder, nar_hash FROM attestations \
         WHERE output_path IN (SELECT value FROM json_each($1))",
        "SELECT output_path, builder, nar_hash FROM attestations \
         WHERE output_path IN (SELECT json_array_elements_text($1::json))"
    ) => {
        let rows = sqlx::query(sql).bind(&list).fetch_all(p).await.map_err(store_error)?;
        rows.iter()
            .map(|r| {
                Ok(Vote {
                    output_path: parse(&r.text(0)?, StorePath::parse)?,
                    builder: parse(&r.text(1)?, BuilderName::parse)?,
                    nar_hash: parse(&r.text(2)?, NarHash::parse)?,
                })
            })
            .collect()
    })
}

pub(crate) async fn derivation_votes(pool: &Pool, drv: &DrvPath) -> StoreResult<Vec<DerivationVote>> {
    const SQL: &str = "SELECT d.output_name, d.output_path, a.builder, a.nar_hash \
        FROM derivation_outputs d LEFT JOIN attestations a ON a.output_path = d.output_path \
        WHERE d.drv_path = $1";
    on_pool!(pool, p => {
        let rows = sqlx::query(SQL).bind(drv.as_str()).fetch_all(p).await.map_err(store_error)?;
        rows.iter()
            .map(|r| {
                let vote = match (r.opt_text(2)?, r.opt_text(3)?) {
                    (Some(b), Some(h)) => Some((parse(&b, BuilderName::parse)?, parse(&h, NarHash::parse)?)),
                    _ => None,
                };
                Ok(DerivationVote {
                    output_name: parse(&r.text(0)?, OutputName::parse)?,
                    output_path: parse(&r.text(1)?, StorePath::parse)?,
                    vote,
                })
            })
            .collect()
    })
}

pub(crate) async fn attestations_by_hash_part(
    pool: &Pool,
    hash_part: &str,
    builder: Option<&BuilderName>,
) -> StoreResult<Vec<AttestationRecord>> {
    const ALL: &str = concat!(
        "SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE hash_part = $1 ORDER BY submitted_at, builder, nar_hash"
    );
    const ONE: &str = concat!(
        "SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE hash_part = $1 AND builder = $2 ORDER BY submitted_at, builder, nar_hash"
    );
    on_pool!(pool, p => {
        let rows = match builder {
            None => sqlx::query(ALL).bind(hash_part).fetch_all(p).await,
            Some(b) => sqlx::query(ONE).bind(hash_part).bind(b.as_str()).fetch_all(p).await,
        }
        .map_err(store_error)?;
        rows.iter().map(attestation).collect()
    })
}

pub(crate) async fn builder_attestations(
    pool: &Pool,
    builder: &BuilderName,
    cursor: Option<&Cursor>,
    limit: u32,
) -> StoreResult<Vec<AttestationRecord>> {
    const FIRST: &str = concat!(
        "SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE builder = $1 \
         ORDER BY submitted_at DESC, output_path DESC, nar_hash DESC LIMIT $2"
    );
    const AFTER: &str = concat!(
        "SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE builder = $1 AND (submitted_at, output_path, nar_hash) < ($3, $4, $5) \
         ORDER BY submitted_at DESC, output_path DESC, nar_hash DESC LIMIT $2"
    );
    on_pool!(pool, p => {
        let rows = match cursor {
            None => sqlx::query(FIRST).bind(builder.as_str()).bind(i64::from(limit)).fetch_all(p).await,
            Some(c) => {
                sqlx::query(AFTER)
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
        rows.iter().map(attestation).collect()
    })
}
