//! The storage trait on D1. The statements, their parameters and the decoding of
//! their rows come from `nhc-sql`, shared with the sqlx storage; this file only
//! moves values between them and the D1 API. A D1 batch is one transaction, so
//! every write that must be all-or-nothing is one batch (one round trip).

use std::collections::HashSet;

use async_trait::async_trait;
use nhc_handlers::core::{BuilderName, DrvPath, StorePath};
use nhc_handlers::storage::{
    AttestationRecord, BuilderRecord, Cursor, DerivationVote, InsertCounts, NewBuilder, NewToken, Storage, StoreResult,
    Submission, TokenRecord, Vote,
};
use nhc_handlers::StoreError;
use nhc_sql::batch::{json_arrays, InsertBatch, Key, D1_MAX_PARAM_BYTES};
use nhc_sql::rows::{self, AttestationRow, BuilderKeyRow, DerivationVoteRow, KeyRow, TokenKeyRow};
use nhc_sql::{self as sql, SQLITE};
use serde::de::DeserializeOwned;
use worker::send::SendFuture;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

pub struct D1Store {
    db: D1Database,
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// D1 numbers are doubles and it refuses BigInt: integers travel as f64. Every
/// integer stored here (times in microseconds, sizes up to 2^53 - 1, limits) fits.
fn int(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

fn store_error(e: worker::Error) -> StoreError {
    let message = e.to_string();
    if message.contains("UNIQUE constraint failed") {
        StoreError::Conflict(message)
    } else if ["Network connection lost", "overloaded", "timed out", "reset", "Too many"]
        .iter()
        .any(|m| message.contains(m))
    {
        StoreError::Unavailable(message)
    } else {
        StoreError::Internal(message)
    }
}

impl D1Store {
    pub fn new(db: D1Database) -> Self {
        D1Store { db }
    }

    fn stmt(&self, statement: &str, args: &[JsValue]) -> StoreResult<D1PreparedStatement> {
        self.db.prepare(sql::positional(statement)).bind(args).map_err(store_error)
    }

    async fn rows<T: DeserializeOwned>(&self, statement: &str, args: &[JsValue]) -> StoreResult<Vec<T>> {
        let result = self.stmt(statement, args)?.all().await.map_err(store_error)?;
        result.results::<T>().map_err(store_error)
    }

    async fn exists(&self, statement: &str, args: &[JsValue]) -> StoreResult<bool> {
        let row = self.stmt(statement, args)?.first::<serde_json::Value>(None).await.map_err(store_error)?;
        Ok(row.is_some())
    }

    async fn attestations(&self, statement: &str, args: &[JsValue]) -> StoreResult<Vec<AttestationRecord>> {
        self.rows::<AttestationRow>(statement, args).await?.into_iter().map(AttestationRow::parse).collect()
    }

    fn token_insert(&self, builder: &BuilderName, token: &NewToken, at: i64) -> StoreResult<D1PreparedStatement> {
        self.stmt(sql::INSERT_TOKEN, &[text(&token.id), text(&token.secret_hash), text(builder.as_str()), int(at)])
    }
}

// D1's futures hold JS values and are not Send; a Worker isolate is single-threaded,
// so SendFuture's promise holds and the handlers' Send bounds are met.
#[async_trait]
impl Storage for D1Store {
    async fn health(&self) -> StoreResult<()> {
        SendFuture::new(async move { self.exists(sql::HEALTH, &[]).await.map(|_| ()) }).await
    }

    async fn create_builder(&self, b: &NewBuilder) -> StoreResult<()> {
        SendFuture::new(async move {
            // Checked first for a message that names the clash; the batch's unique
            // constraints still decide a race.
            if self.exists(sql::BUILDER_EXISTS, &[text(b.name.as_str())]).await? {
                return Err(sql::name_taken(&b.name));
            }
            for key in &b.public_keys {
                if self.exists(sql::KEY_TAKEN, &[text(key.name().as_str()), text(&key.key_base64())]).await? {
                    return Err(sql::key_taken(key));
                }
            }
            let mut batch = vec![self.stmt(sql::INSERT_BUILDER, &[text(b.name.as_str()), int(b.created_at)])?];
            for key in &b.public_keys {
                batch.push(self.stmt(
                    sql::INSERT_KEY,
                    &[text(key.name().as_str()), text(&key.key_base64()), text(b.name.as_str()), int(b.created_at)],
                )?);
            }
            batch.push(self.token_insert(&b.name, &b.token, b.created_at)?);
            self.db.batch(batch).await.map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn list_builders(&self) -> StoreResult<Vec<BuilderRecord>> {
        SendFuture::new(async move { rows::builders(self.rows::<BuilderKeyRow>(sql::LIST_BUILDERS, &[]).await?) }).await
    }

    async fn builder_known(&self, name: &BuilderName) -> StoreResult<bool> {
        SendFuture::new(async move { self.exists(sql::BUILDER_EXISTS, &[text(name.as_str())]).await }).await
    }

    async fn add_token(&self, name: &BuilderName, token: &NewToken, created_at: i64) -> StoreResult<bool> {
        SendFuture::new(async move {
            if !self.exists(sql::BUILDER_LIVE, &[text(name.as_str())]).await? {
                return Ok(false);
            }
            self.token_insert(name, token, created_at)?.run().await.map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_tokens(&self, name: &BuilderName, at: i64) -> StoreResult<Option<u64>> {
        SendFuture::new(async move {
            if !self.exists(sql::BUILDER_LIVE, &[text(name.as_str())]).await? {
                return Ok(None);
            }
            let result =
                self.stmt(sql::REVOKE_TOKENS, &[text(name.as_str()), int(at)])?.run().await.map_err(store_error)?;
            let changes = result.meta().map_err(store_error)?.and_then(|m| m.changes).unwrap_or(0);
            Ok(Some(changes as u64))
        })
        .await
    }

    async fn delete_builder(&self, name: &BuilderName, purge: bool, at: i64) -> StoreResult<bool> {
        SendFuture::new(async move {
            let check = if purge { sql::BUILDER_EXISTS } else { sql::BUILDER_LIVE };
            if !self.exists(check, &[text(name.as_str())]).await? {
                return Ok(false);
            }
            let batch = if purge {
                sql::PURGE.iter().map(|s| self.stmt(s, &[text(name.as_str())])).collect::<StoreResult<Vec<_>>>()?
            } else {
                vec![
                    self.stmt(sql::DELETE_TOKENS, &[text(name.as_str())])?,
                    self.stmt(sql::MARK_DELETED, &[text(name.as_str()), int(at)])?,
                ]
            };
            self.db.batch(batch).await.map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        SendFuture::new(async move { rows::token(self.rows::<TokenKeyRow>(sql::FIND_TOKEN, &[text(id)]).await?) }).await
    }

    async fn insert_attestations(&self, submission: Submission) -> StoreResult<InsertCounts> {
        SendFuture::new(async move {
            // One D1 batch is one transaction, however many chunks the lists need.
            let batch = InsertBatch::new(&[&submission], D1_MAX_PARAM_BYTES)?;
            let mut statements = Vec::with_capacity(batch.attestations.len() + batch.derivations.len());
            for rows in &batch.attestations {
                statements.push(self.stmt(SQLITE.insert_attestations, &[text(rows)])?);
            }
            for rows in &batch.derivations {
                statements.push(self.stmt(SQLITE.insert_derivation_outputs, &[text(rows)])?);
            }
            let results = self.db.batch(statements).await.map_err(store_error)?;
            if results.len() < batch.attestations.len() {
                return Err(StoreError::Internal("D1 batch returned fewer results than statements".into()));
            }
            let mut inserted: HashSet<Key> = HashSet::new();
            for r in &results[..batch.attestations.len()] {
                inserted.extend(r.results::<KeyRow>().map_err(store_error)?.into_iter().map(KeyRow::key));
            }
            Ok(batch.counts(&inserted).pop().unwrap_or_default())
        })
        .await
    }

    async fn attestations_of_path(&self, path: &StorePath) -> StoreResult<Vec<AttestationRecord>> {
        SendFuture::new(async move {
            self.attestations(sql::ATTESTATIONS_OF_PATH, &[text(path.hash_part()), text(path.as_str())]).await
        })
        .await
    }

    async fn votes_of_paths(&self, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
        SendFuture::new(async move {
            if paths.is_empty() {
                return Ok(Vec::new());
            }
            let paths: Vec<&str> = paths.iter().map(StorePath::as_str).collect();
            let mut votes = Vec::new();
            for list in json_arrays(&paths, D1_MAX_PARAM_BYTES)? {
                for row in self.rows::<KeyRow>(SQLITE.votes_of_paths, &[text(&list)]).await? {
                    votes.push(row.vote()?);
                }
            }
            Ok(votes)
        })
        .await
    }

    async fn derivation_votes(&self, drv: &DrvPath) -> StoreResult<Vec<DerivationVote>> {
        SendFuture::new(async move {
            self.rows::<DerivationVoteRow>(sql::DERIVATION_VOTES, &[text(drv.as_str())])
                .await?
                .into_iter()
                .map(DerivationVoteRow::parse)
                .collect()
        })
        .await
    }

    async fn attestations_by_hash_part(
        &self,
        hash_part: &str,
        builder: Option<&BuilderName>,
    ) -> StoreResult<Vec<AttestationRecord>> {
        SendFuture::new(async move {
            let mut rows = self.attestations(sql::ATTESTATIONS_BY_HASH_PART, &[text(hash_part)]).await?;
            if let Some(b) = builder {
                rows.retain(|r| &r.builder == b);
            }
            Ok(rows)
        })
        .await
    }

    async fn builder_attestations(
        &self,
        builder: &BuilderName,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>> {
        SendFuture::new(async move {
            let (name, limit) = (text(builder.as_str()), int(i64::from(limit)));
            match cursor {
                None => self.attestations(sql::BUILDER_PAGE_FIRST, &[name, limit]).await,
                Some(c) => {
                    let args =
                        [name, limit, int(c.submitted_at), text(c.output_path.as_str()), text(&c.nar_hash.to_string())];
                    self.attestations(sql::BUILDER_PAGE_AFTER, &args).await
                }
            }
        })
        .await
    }
}
