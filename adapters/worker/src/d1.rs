//! The executor of `nhc-sql` on D1: the storage itself is `nhc_sql::SqlStorage`,
//! shared with sqlx; this file only moves statements and rows between it and the D1
//! API. A D1 batch is one transaction, so a transaction is one batch (one round trip).

use async_trait::async_trait;
use nhc_sql::batch::D1_MAX_PARAM_BYTES;
use nhc_sql::{Dialect, Executor, Param, Row, Statement, SQLITE};
use nhc_storage::{StoreError, StoreResult};
use worker::send::SendFuture;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

pub struct D1 {
    db: D1Database,
}

impl D1 {
    pub fn new(db: D1Database) -> Self {
        D1 { db }
    }

    fn prepare(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<D1PreparedStatement> {
        let args: Vec<JsValue> = params.iter().map(js).collect();
        self.db.prepare(nhc_sql::positional(sql)).bind(&args).map_err(store_error)
    }
}

/// D1 numbers are doubles and it refuses BigInt: integers travel as f64. Every
/// integer stored here (times in microseconds, sizes up to 2^53 - 1, limits) fits.
fn js(p: &Param<'_>) -> JsValue {
    match *p {
        Param::Text(s) => JsValue::from_str(s),
        Param::Int(n) => JsValue::from_f64(n as f64),
    }
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

// D1's futures hold JS values and are not Send; a Worker isolate is single-threaded,
// so SendFuture's promise holds and the storage's Send bounds are met.
#[async_trait]
impl Executor for D1 {
    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }

    fn max_param_bytes(&self) -> usize {
        D1_MAX_PARAM_BYTES
    }

    async fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        SendFuture::new(async move {
            let result = self.prepare(sql, params)?.all().await.map_err(store_error)?;
            result.results::<Row>().map_err(store_error)
        })
        .await
    }

    async fn transaction(&self, statements: &[Statement<'_>]) -> StoreResult<Vec<Vec<Row>>> {
        SendFuture::new(async move {
            let batch = statements.iter().map(|s| self.prepare(s.sql, &s.params)).collect::<StoreResult<Vec<_>>>()?;
            let results = self.db.batch(batch).await.map_err(store_error)?;
            results.iter().map(|r| r.results::<Row>().map_err(store_error)).collect()
        })
        .await
    }
}
