//! A fixed set of SQLite connections handed out in turn. sqlx's own pool pings a
//! connection every time it is released (a round trip to the connection's worker
//! thread, two context switches); for a local file that was half of the cost of a
//! read. Connections here go back as they are: a transaction dropped half-way is
//! still rolled back first, because each connection's worker runs its commands in
//! order.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

pub(crate) struct LitePool {
    idle_tx: flume::Sender<SqliteConnection>,
    idle_rx: flume::Receiver<SqliteConnection>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for LitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LitePool({} idle)", self.idle_rx.len())
    }
}

/// A connection on loan; it goes back to the pool when dropped.
pub(crate) struct LiteConn<'a> {
    conn: Option<SqliteConnection>,
    pool: &'a LitePool,
}

impl LitePool {
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        size: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let (idle_tx, idle_rx) = flume::bounded(size as usize);
        for _ in 0..size.max(1) {
            let conn = SqliteConnection::connect_with(options).await?;
            // The channel holds `size` connections: this never blocks.
            let _ = idle_tx.send(conn);
        }
        Ok(LitePool { idle_tx, idle_rx, acquire_timeout })
    }

    pub(crate) async fn acquire(&self) -> Result<LiteConn<'_>, sqlx::Error> {
        match tokio::time::timeout(self.acquire_timeout, self.idle_rx.recv_async()).await {
            Ok(Ok(conn)) => Ok(LiteConn { conn: Some(conn), pool: self }),
            Ok(Err(_)) => Err(sqlx::Error::PoolClosed),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Closes the connections that are idle now (all of them once requests stopped).
    pub(crate) async fn close(&self) {
        while let Ok(conn) = self.idle_rx.try_recv() {
            let _ = conn.close().await;
        }
    }
}

impl LiteConn<'_> {
    /// The connection, to move to another thread: it goes back to the pool when the
    /// returned value drops there, even if whoever waited for that thread went away
    /// (a request cancelled by its client must not cost the pool a connection).
    pub(crate) fn detach(mut self) -> Option<Detached> {
        let conn = self.conn.take()?;
        Some(Detached { conn: Some(conn), idle_tx: self.pool.idle_tx.clone() })
    }
}

/// A connection off its loan; back to its pool when dropped.
pub(crate) struct Detached {
    conn: Option<SqliteConnection>,
    idle_tx: flume::Sender<SqliteConnection>,
}

impl Deref for Detached {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Detached {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.idle_tx.send(conn);
        }
    }
}

impl Deref for LiteConn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for LiteConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for LiteConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.pool.idle_tx.send(conn);
        }
    }
}
