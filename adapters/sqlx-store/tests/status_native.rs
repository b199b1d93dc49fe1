//! Bulk status on SQLite goes through the raw handle (`native.rs`) rather than the
//! `votes_of_paths` statement: both must count the same, on a file shared with the
//! pool, and the pool must keep its connections.

use std::str::FromStr;

use nhc_core::StorePath;
use nhc_sql::SQLITE;
use nhc_sqlx_store::StoreOptions;
use nhc_storage::{Storage, VoteCounts};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

fn path(i: u32) -> StorePath {
    StorePath::from_str(&format!("/nix/store/{:032}-p{i}", i * 7919 % 100_000)).unwrap()
}

/// The counts the statement gives, as `SqlStorage` computed them before.
async fn by_statement(conn: &mut SqliteConnection, paths: &[StorePath]) -> Vec<VoteCounts> {
    let list = serde_json::to_string(&paths.iter().map(StorePath::as_str).collect::<Vec<_>>()).unwrap();
    let rows = sqlx::query(SQLITE.votes_of_paths).bind(list).fetch_all(conn).await.unwrap();
    let mut votes: Vec<Vec<(String, String)>> = vec![Vec::new(); paths.len()];
    for r in rows {
        votes[r.get::<i64, _>(0) as usize].push((r.get(1), r.get(2)));
    }
    votes.into_iter().map(VoteCounts::count).collect()
}

#[tokio::test]
async fn native_counts_match_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nhc.db", dir.path().display());
    let opts = StoreOptions { max_connections: 2, ..StoreOptions::default() };
    let store = nhc_sqlx_store::connect(&url, &opts).await.unwrap();
    store.executor().migrate().await.unwrap();
    // Rows written directly (no builders: foreign keys off on this connection).
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&url).unwrap().foreign_keys(false))
        .await
        .unwrap();
    let paths: Vec<StorePath> = (0..300).map(path).collect();
    for (i, p) in paths.iter().enumerate() {
        // Path i: i % 4 builders; the third builder's hash differs on every 3rd path,
        // and on every 5th the first builder also has a second hash.
        let mut votes = Vec::new();
        for b in 0..i % 4 {
            let hash = if b == 2 && i % 3 == 0 { "sha256:other" } else { "sha256:same" };
            votes.push((format!("b{b}"), hash));
        }
        if i % 5 == 0 && i % 4 > 0 {
            votes.push(("b0".into(), "sha256:second"));
        }
        for (builder, hash) in votes {
            sqlx::query(
                "INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, \
                 submitted_at) VALUES ($1, $2, $3, $4, 1, '', 's', 0)",
            )
            .bind(p.hash_part())
            .bind(p.as_str())
            .bind(builder)
            .bind(hash)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    // Asked in another order, with unknown paths among them.
    let mut asked: Vec<StorePath> = paths.iter().rev().cloned().collect();
    asked.extend((1000..1050).map(path));
    let want = by_statement(&mut conn, &asked).await;
    // More rounds than connections: each goes back to the pool.
    for _ in 0..5 {
        let got = store.vote_counts(&asked).await.unwrap();
        assert_eq!(got, want);
    }
    // Spot checks of the counting itself.
    let one = |i: usize| want[asked.iter().position(|p| *p == paths[i]).unwrap()];
    assert_eq!(one(0), VoteCounts::default());
    assert_eq!(one(3), VoteCounts { attestations: 3, builders: 3, distinct_hashes: 2 });
    assert_eq!(one(5), VoteCounts { attestations: 2, builders: 1, distinct_hashes: 2 });
    assert_eq!(want[asked.len() - 1], VoteCounts::default());
    // Concurrent lookups share the two connections.
    let (a, b, c) = tokio::join!(store.vote_counts(&asked), store.vote_counts(&asked), store.vote_counts(&asked));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (want.clone(), want.clone(), want));
}

/// `query_many` on SQLite reads rows from the raw handle: the same values as `query`
/// (NULL, integers, text with any characters), parameters
/// bound by their number whatever order the text names them in, errors as errors.
#[tokio::test]
async fn query_many_reads_what_query_reads() {
    use nhc_sql::{Executor, Param, Value};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nhc.db", dir.path().display());
    let store = nhc_sqlx_store::connect(&url, &StoreOptions::default()).await.unwrap();
    let exec = store.executor();
    let sql = "SELECT $3 AS c, $1 + 1, NULL, 'é\"\n<x>' || $2, '' \
               UNION ALL SELECT 'two', 0, 1, '', $2";
    let params = [Param::Int(41), Param::Text("tail ✓"), Param::Text("third")];
    let native = exec.query_many(sql, &params).await.unwrap();
    assert_eq!(native, exec.query(sql, &params).await.unwrap());
    assert_eq!(
        native[0].0,
        [
            Value::Text("third".into()),
            Value::Int(42),
            Value::Null,
            Value::Text("é\"\n<x>tail ✓".into()),
            Value::Text(String::new()),
        ]
    );
    assert_eq!(native.len(), 2);
    // A statement that fails, or asks for a parameter it was not given, is an error
    // and leaves the pool usable.
    assert!(exec.query_many("SELECT * FROM no_such_table", &[]).await.is_err());
    assert!(exec.query_many("SELECT $2", &[Param::Int(1)]).await.is_err());
    assert!(exec.query_many("SELECT 1.5", &[]).await.is_err());
    assert!(exec.query("SELECT 1.5", &[]).await.is_err());
    for _ in 0..20 {
        assert_eq!(exec.query_many("SELECT 7", &[]).await.unwrap()[0].0, [Value::Int(7)]);
    }
}

/// A read on the raw handle whose caller goes away (a client that disconnects) still
/// gives its connection back: the pool of two serves reads after ten abandoned ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_reads_give_their_connection_back() {
    use nhc_sql::{Executor, Value};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nhc.db", dir.path().display());
    let opts = StoreOptions {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let store = nhc_sqlx_store::connect(&url, &opts).await.unwrap();
    store.executor().migrate().await.unwrap();
    let exec = store.executor();
    // Long enough (tens of milliseconds) to be abandoned half-way.
    let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) \
                SELECT count(*) FROM n";
    let mut abandoned = 0;
    for _ in 0..10 {
        if tokio::time::timeout(std::time::Duration::from_millis(1), exec.query_many(slow, &[])).await.is_err() {
            abandoned += 1;
        }
    }
    // Bulk status too (it stops early when its caller is gone).
    let many: Vec<StorePath> = (0..20_000).map(path).collect();
    for _ in 0..10 {
        if tokio::time::timeout(std::time::Duration::from_millis(1), store.vote_counts(&many)).await.is_err() {
            abandoned += 1;
        }
    }
    assert!(abandoned > 4, "only {abandoned} reads were abandoned: the test proves nothing");
    assert_eq!(store.vote_counts(&many[..3]).await.unwrap(), vec![VoteCounts::default(); 3]);
    for _ in 0..4 {
        let (a, b) = tokio::join!(exec.query_many(slow, &[]), exec.query_many("SELECT 1", &[]));
        assert_eq!(a.unwrap()[0].0, [Value::Int(300000)]);
        assert_eq!(b.unwrap()[0].0, [Value::Int(1)]);
    }
}
