//! The storage of nix-hash-collection on SQLite (the embedded default) or PostgreSQL,
//! through sqlx, shared by the tokio server and the Lambda. The queries are
//! `nhc-sql`'s; this crate only runs them (its `Executor`).
//!
//! Writes go through one writer task that groups concurrent submissions into a
//! single transaction (group commit), so the cost of a commit is shared; reads use
//! the connections directly.

mod error;
mod exec;
mod lite;
mod native;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nhc_sql::{Dialect, Executor, Param, Row, SqlStorage, Statement, POSTGRES, SQLITE};
use nhc_storage::{InsertCounts, StoreResult, Submission, VoteCounts};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::Connection;

pub use error::ConnectError;
use exec::PoolExecutor;
use nhc_sql::SCHEMA;

/// The transparency log's column, for databases made before it. Added before schema.sql
/// is applied: the schema indexes it.
const ADD_LOG_INDEX: &str = "ALTER TABLE attestations ADD COLUMN log_index BIGINT";
const POSTGRES_ADD_LOG_INDEX: &str = "ALTER TABLE IF EXISTS attestations ADD COLUMN IF NOT EXISTS log_index BIGINT";
/// The columns of `attestations`, none when there is no such table yet.
const SQLITE_ATTESTATION_COLUMNS: &str = "SELECT name FROM pragma_table_info('attestations')";
/// In the write transaction `$tx`, appends the attestations without a log index (stored
/// before the log existed, or by an older version since), then commits; how many it
/// appended. They are found through the partial index `attestations_unlogged`, empty
/// once they are appended, so this costs next to nothing at every start. A macro: the
/// same code for either database's transaction type.
macro_rules! backfill {
    ($tx:ident, $dialect:expr) => {{
        let n =
            sqlx::query($dialect.backfill_log).execute(&mut *$tx).await.map_err(ConnectError::migrate)?.rows_affected();
        $tx.commit().await.map_err(ConnectError::migrate)?;
        n
    }};
}

/// The storage on SQLite or PostgreSQL: the SQL storage over sqlx.
pub type SqlStore = SqlStorage<Sqlx>;

/// Opens the database of `url` (see [`Sqlx::connect`]); does not migrate.
pub async fn connect(url: &str, opts: &StoreOptions) -> Result<SqlStore, ConnectError> {
    Ok(SqlStorage::new(Sqlx::connect(url, opts).await?))
}

/// Connections of either kind.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(Arc<lite::LitePool>),
    Postgres(PgPool),
}

impl Pool {
    /// The statements whose text differs between the two databases.
    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self {
            Pool::Sqlite(_) => &nhc_sql::SQLITE,
            Pool::Postgres(_) => &nhc_sql::POSTGRES,
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads; on SQLite the writer has one more of its own, on
    /// PostgreSQL it borrows from the pool.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// SQLite only: `PRAGMA synchronous=FULL` (fsync on every commit) instead of NORMAL.
    pub sqlite_full_sync: bool,
    /// PostgreSQL only: connect on first use instead of in `connect` (a Lambda's cold
    /// start must not fail, or block, because the database is away).
    pub lazy: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_full_sync: true,
            lazy: false,
        }
    }
}

/// The sqlx executor: reads and small writes on the pool, attestations through the
/// group-commit writer.
pub struct Sqlx {
    pool: PoolExecutor,
    writer: writer::Writer,
}

impl Sqlx {
    /// Connects to `sqlite://FILE` (created if missing, WAL), `sqlite::memory:`,
    /// `postgres://...`, or a plain file path (SQLite). Does not migrate.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, ConnectError> {
        let (pool, writer_pool, reopen) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(ConnectError::url)?;
            let pool_options =
                PgPoolOptions::new().max_connections(opts.max_connections).acquire_timeout(opts.acquire_timeout);
            let pool = Pool::Postgres(if opts.lazy {
                pool_options.connect_lazy_with(options)
            } else {
                pool_options.connect_with(options).await.map_err(ConnectError::connect)?
            });
            (pool.clone(), pool, writer::Reopen::Same)
        } else {
            let options = sqlite_options(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if opts.sqlite_full_sync { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // 1 MiB of page cache per reading connection instead of 2: the OS
                // caches the file anyway, and the connections' caches are most of the RSS.
                .pragma("cache_size", "-1024");
            // An in-memory database lives in one connection, shared by reads and writes.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let size = if in_memory { 1 } else { opts.max_connections.max(1) };
            let reads =
                lite::LitePool::open(&options, size, opts.acquire_timeout).await.map_err(ConnectError::connect)?;
            let pool = Pool::Sqlite(Arc::new(reads));
            let (writer_pool, reopen) = if in_memory {
                (pool.clone(), writer::Reopen::Same)
            } else {
                // The writer's own connection: 8 MiB of cache for the primary key's
                // upper levels, and a checkpoint every 16 MiB of WAL rather than 4,
                // since every checkpoint runs inside a commit the writer waits for.
                let writer_options = options.pragma("cache_size", "-8192").pragma("wal_autocheckpoint", "4096");
                let own = lite::LitePool::open(&writer_options, 1, opts.acquire_timeout)
                    .await
                    .map_err(ConnectError::connect)?;
                let reopen = writer::Reopen::Sqlite {
                    options: Box::new(writer_options.create_if_missing(false)),
                    acquire_timeout: opts.acquire_timeout,
                };
                (Pool::Sqlite(Arc::new(own)), reopen)
            };
            (pool, writer_pool, reopen)
        };
        let writer = writer::Writer::spawn(PoolExecutor { pool: writer_pool }, reopen);
        Ok(Sqlx { pool: PoolExecutor { pool }, writer })
    }

    /// Adds the columns that databases made by older versions lack (`CREATE TABLE IF
    /// NOT EXISTS` does not add them), applies `schema.sql`, and appends attestations
    /// stored without a log index (before the transparency log existed) to the log.
    /// Idempotent.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        let backfilled = match &self.pool.pool {
            Pool::Sqlite(lite) => {
                let mut conn = lite.acquire().await.map_err(ConnectError::migrate)?;
                // SQLite has no ADD COLUMN IF NOT EXISTS.
                let columns: Vec<(String,)> = sqlx::query_as(SQLITE_ATTESTATION_COLUMNS)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(ConnectError::migrate)?;
                if !columns.is_empty() && !columns.iter().any(|(c,)| c == "log_index") {
                    sqlx::raw_sql(ADD_LOG_INDEX).execute(&mut *conn).await.map_err(ConnectError::migrate)?;
                }
                sqlx::raw_sql(SCHEMA).execute(&mut *conn).await.map_err(ConnectError::migrate)?;
                let mut tx = conn.begin_with(SQLITE.begin_write).await.map_err(ConnectError::migrate)?;
                backfill!(tx, SQLITE)
            }
            Pool::Postgres(p) => {
                sqlx::raw_sql(POSTGRES_ADD_LOG_INDEX).execute(p).await.map_err(ConnectError::migrate)?;
                sqlx::raw_sql(SCHEMA).execute(p).await.map_err(ConnectError::migrate)?;
                // Appenders of a running server queue behind this, as behind each other.
                let mut tx = p.begin().await.map_err(ConnectError::migrate)?;
                if let Some(lock) = POSTGRES.lock_log {
                    sqlx::query(lock).execute(&mut *tx).await.map_err(ConnectError::migrate)?;
                }
                backfill!(tx, POSTGRES)
            }
        };
        if backfilled > 0 {
            tracing::info!(
                attestations = backfilled,
                "transparency log: appended the attestations stored before the log existed"
            );
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool; call after the server stopped taking requests.
    pub async fn close(&self) {
        match &self.pool.pool {
            Pool::Sqlite(lite) => lite.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, ConnectError> {
    if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(ConnectError::url)
    } else if url.contains("://") {
        Err(ConnectError::Url(format!(
            "unsupported database URL {url:?}: use sqlite://FILE or postgres://USER@HOST/DB"
        )))
    } else {
        Ok(SqliteConnectOptions::new().filename(url))
    }
}

#[async_trait]
impl Executor for Sqlx {
    fn dialect(&self) -> &'static Dialect {
        self.pool.dialect()
    }

    async fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        self.pool.query(sql, params).await
    }

    async fn query_many(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        self.pool.query_many(sql, params).await
    }

    async fn transaction(&self, statements: &[Statement<'_>]) -> StoreResult<Vec<Vec<Row>>> {
        self.pool.transaction(statements).await
    }

    async fn insert_submission(&self, submission: Submission) -> StoreResult<InsertCounts> {
        self.writer.insert(submission).await
    }

    fn write_fault(&self) -> Option<String> {
        self.writer.fault()
    }

    async fn native_vote_counts(&self, paths: &[&nhc_core::StorePath]) -> Option<StoreResult<Vec<VoteCounts>>> {
        self.pool.native_vote_counts(paths).await
    }
}
