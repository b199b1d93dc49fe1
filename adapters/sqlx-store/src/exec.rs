//! The executor of `nhc-sql` on sqlx: statements with their parameters on either
//! database, and rows decoded into positional values.

use async_trait::async_trait;
use nhc_sql::{Dialect, Executor, Param, Row, Statement, Value};
use nhc_storage::StoreResult;
use sqlx::{ColumnIndex, Connection, Decode, Type, TypeInfo, ValueRef};

use crate::error::store_error;
use crate::Pool;

/// Runs `$body` with `$p` bound to an executor: a connection on loan from the
/// SQLite pool, or the PostgreSQL pool itself. Each arm is the same code, compiled
/// for its database.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite(lite) => {
                let mut conn = lite.acquire().await.map_err(store_error)?;
                let $p: &mut sqlx::SqliteConnection = &mut conn;
                $body
            }
            Pool::Postgres($p) => $body,
        }
    };
}

/// A statement with its parameters bound, for whichever database `$exec` is.
macro_rules! fetch {
    ($exec:expr, $sql:expr, $params:expr) => {{
        let mut q = sqlx::query($sql);
        for p in $params {
            q = match *p {
                Param::Text(s) => q.bind(s),
                Param::Int(n) => q.bind(n),
            };
        }
        q.fetch_all($exec).await.map_err(store_error)?.iter().map(row).collect::<StoreResult<Vec<Row>>>()
    }};
}

/// Statements on a pool of either kind.
#[derive(Debug, Clone)]
pub(crate) struct PoolExecutor {
    pub(crate) pool: Pool,
}

#[async_trait]
impl Executor for PoolExecutor {
    fn dialect(&self) -> &'static Dialect {
        self.pool.dialect()
    }

    async fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        on_pool!(&self.pool, p => fetch!(p, sql, params))
    }

    async fn transaction(&self, statements: &[Statement<'_>]) -> StoreResult<Vec<Vec<Row>>> {
        let begin = self.dialect().begin_write;
        on_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await.map_err(store_error)?;
            let mut results = Vec::with_capacity(statements.len());
            for s in statements {
                results.push(fetch!(&mut *tx, s.sql, &s.params)?);
            }
            tx.commit().await.map_err(store_error)?;
            Ok(results)
        })
    }

    async fn query_many(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        match &self.pool {
            Pool::Sqlite(lite) => crate::native::query(lite, sql, params).await,
            Pool::Postgres(_) => self.query(sql, params).await,
        }
    }

    async fn native_vote_counts(
        &self,
        paths: &[&nhc_core::StorePath],
    ) -> Option<StoreResult<Vec<nhc_storage::VoteCounts>>> {
        match &self.pool {
            Pool::Sqlite(lite) => Some(crate::native::vote_counts(lite, paths).await),
            Pool::Postgres(_) => None,
        }
    }
}

/// A sqlx row as positional values. The schema has only TEXT and BIGINT columns;
/// PostgreSQL types a literal `SELECT 1` as INT4.
fn row<R>(r: &R) -> StoreResult<Row>
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    enum Kind {
        Null,
        Int64,
        Int32,
        Text,
    }
    (0..r.len())
        .map(|i| {
            let kind = {
                let raw = r.try_get_raw(i).map_err(store_error)?;
                if raw.is_null() {
                    Kind::Null
                } else {
                    match raw.type_info().name() {
                        "INTEGER" | "INT8" | "BIGINT" => Kind::Int64,
                        "INT4" => Kind::Int32,
                        _ => Kind::Text,
                    }
                }
            };
            Ok(match kind {
                Kind::Null => Value::Null,
                Kind::Int64 => Value::Int(r.try_get::<i64, _>(i).map_err(store_error)?),
                Kind::Int32 => Value::Int(i64::from(r.try_get::<i32, _>(i).map_err(store_error)?)),
                Kind::Text => Value::Text(r.try_get::<String, _>(i).map_err(store_error)?),
            })
        })
        .collect::<StoreResult<Vec<Value>>>()
        .map(Row)
}
