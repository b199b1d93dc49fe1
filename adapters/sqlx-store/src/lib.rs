//! The storage of nix-hash-collection on SQLite (the embedded default) or PostgreSQL,
//! through sqlx. Shared by the tokio server and the Lambda: one copy of every query.
//!
//! Writes go through one writer task that groups concurrent submissions into a
//! single transaction (group commit), so the cost of a commit is shared; reads use
//! the connections directly.

mod convert;
mod error;
mod lite;
mod queries;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nhc_handlers::core::{BuilderName, DrvPath, StorePath};
use nhc_handlers::storage::{
    AttestationRecord, BuilderRecord, Cursor, DerivationVote, InsertCounts, NewBuilder, NewToken, Storage, StoreResult,
    Submission, TokenRecord, Vote,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::Connection;

pub use error::ConnectError;

pub use nhc_sql::SCHEMA;

/// Connections of either kind. Queries are written once and run on both through
/// [`on_pool!`]: each arm is the same code, compiled for its database.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(Arc<lite::LitePool>),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to an executor: a connection on loan from the
/// SQLite pool, or the PostgreSQL pool itself. The body uses `$p` once.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::Pool::Sqlite(lite) => {
                let mut conn = lite.acquire().await.map_err($crate::error::store_error)?;
                let $p: &mut sqlx::SqliteConnection = &mut conn;
                $body
            }
            $crate::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Pool {
    /// The statements whose text differs between the two databases.
    pub(crate) fn dialect(&self) -> &'static nhc_sql::Dialect {
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

/// Storage on SQLite or PostgreSQL, chosen by the URL.
pub struct SqlStore {
    pool: Pool,
    writer: writer::Writer,
}

impl SqlStore {
    /// Connects to `sqlite://FILE` (created if missing, WAL), `sqlite::memory:`,
    /// `postgres://...`, or a plain file path (SQLite). Does not migrate.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, ConnectError> {
        let (pool, writer_db) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(ConnectError::url)?;
            let pool_options =
                PgPoolOptions::new().max_connections(opts.max_connections).acquire_timeout(opts.acquire_timeout);
            let pool = Pool::Postgres(if opts.lazy {
                pool_options.connect_lazy_with(options)
            } else {
                pool_options.connect_with(options).await.map_err(ConnectError::connect)?
            });
            (pool.clone(), writer::WriterDb::Shared(pool))
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
            let writer_db = if in_memory {
                writer::WriterDb::Shared(pool.clone())
            } else {
                // The writer's own connection: 8 MiB of cache for the primary key's
                // upper levels, and a checkpoint every 16 MiB of WAL rather than 4,
                // since every checkpoint runs inside a commit the writer waits for.
                let writer_options = options.pragma("cache_size", "-8192").pragma("wal_autocheckpoint", "4096");
                let own = sqlx::SqliteConnection::connect_with(&writer_options).await.map_err(ConnectError::connect)?;
                writer::WriterDb::Own(own)
            };
            (pool, writer_db)
        };
        Ok(SqlStore { pool, writer: writer::Writer::spawn(writer_db) })
    }

    /// Applies `schema.sql`. Idempotent: every statement is `IF NOT EXISTS`.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        match &self.pool {
            Pool::Sqlite(lite) => {
                let mut conn = lite.acquire().await.map_err(ConnectError::migrate)?;
                sqlx::raw_sql(SCHEMA).execute(&mut *conn).await.map(|_| ())
            }
            Pool::Postgres(p) => sqlx::raw_sql(SCHEMA).execute(p).await.map(|_| ()),
        }
        .map_err(ConnectError::migrate)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool; call after the server stopped taking requests.
    pub async fn close(&self) {
        match &self.pool {
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
impl Storage for SqlStore {
    async fn health(&self) -> StoreResult<()> {
        queries::health(&self.pool).await
    }

    async fn create_builder(&self, builder: &NewBuilder) -> StoreResult<()> {
        queries::create_builder(&self.pool, builder).await
    }

    async fn list_builders(&self) -> StoreResult<Vec<BuilderRecord>> {
        queries::list_builders(&self.pool).await
    }

    async fn builder_known(&self, name: &BuilderName) -> StoreResult<bool> {
        queries::builder_known(&self.pool, name).await
    }

    async fn add_token(&self, name: &BuilderName, token: &NewToken, created_at: i64) -> StoreResult<bool> {
        queries::add_token(&self.pool, name, token, created_at).await
    }

    async fn revoke_tokens(&self, name: &BuilderName, at: i64) -> StoreResult<Option<u64>> {
        queries::revoke_tokens(&self.pool, name, at).await
    }

    async fn delete_builder(&self, name: &BuilderName, purge: bool, at: i64) -> StoreResult<bool> {
        queries::delete_builder(&self.pool, name, purge, at).await
    }

    async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        queries::find_token(&self.pool, id).await
    }

    async fn insert_attestations(&self, submission: Submission) -> StoreResult<InsertCounts> {
        self.writer.submit(submission).await
    }

    async fn attestations_of_path(&self, path: &StorePath) -> StoreResult<Vec<AttestationRecord>> {
        queries::attestations_of_path(&self.pool, path).await
    }

    async fn votes_of_paths(&self, paths: &[StorePath]) -> StoreResult<Vec<Vote>> {
        queries::votes_of_paths(&self.pool, paths).await
    }

    async fn derivation_votes(&self, drv: &DrvPath) -> StoreResult<Vec<DerivationVote>> {
        queries::derivation_votes(&self.pool, drv).await
    }

    async fn attestations_by_hash_part(
        &self,
        hash_part: &str,
        builder: Option<&BuilderName>,
    ) -> StoreResult<Vec<AttestationRecord>> {
        queries::attestations_by_hash_part(&self.pool, hash_part, builder).await
    }

    async fn builder_attestations(
        &self,
        builder: &BuilderName,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AttestationRecord>> {
        queries::builder_attestations(&self.pool, builder, cursor, limit).await
    }
}
