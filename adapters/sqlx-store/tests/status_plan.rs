//! `POST /v1/status` must cost one index lookup per path asked: the old statement
//! (two `IN (json_each)` lists) made SQLite probe every hash part with every path.
//! Checked on the query plan and on the rows, not on time.

use nhc_sql::{SCHEMA, SQLITE};
use sqlx::{Connection, Row, SqliteConnection};

async fn db() -> SqliteConnection {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.expect("open sqlite");
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await.expect("schema");
    conn
}

#[tokio::test]
async fn status_searches_the_primary_key_once_per_path() {
    let mut conn = db().await;
    let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", SQLITE.votes_of_paths))
        .bind("[]")
        .fetch_all(&mut conn)
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    let text = plan.join("\n");
    // The attestations are searched by their key, with both columns bound per path...
    assert!(
        plan.iter().any(|l| l.starts_with("SEARCH a USING")
            && l.contains("INDEX")
            && l.contains("(hash_part=? AND output_path=?)")),
        "attestations not searched by key:\n{text}"
    );
    // ... never scanned, and never probed with the cross product of two IN lists.
    assert!(!plan.iter().any(|l| l.starts_with("SCAN a") || l.starts_with("SCAN attestations")), "{text}");
    assert!(!text.contains("LIST SUBQUERY"), "IN-list probing (n × n):\n{text}");
    // ... and nothing sorted or grouped: rows stream out as the list is walked.
    assert!(!text.contains("TEMP B-TREE"), "{text}");
}

#[tokio::test]
async fn status_rows_name_the_index_of_each_path_asked() {
    let mut conn = db().await;
    let path = "/nix/store/00000000000000000000000000000000-a";
    for builder in ["b1", "b2"] {
        sqlx::query(
            "INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, submitted_at) \
             VALUES ($1, $2, $3, 'sha256:x', 1, '', 's', 0)",
        )
        .bind(&path[11..43])
        .bind(path)
        .bind(builder)
        .execute(&mut conn)
        .await
        .expect("insert");
    }
    // The caller removes repeats; a path listed twice is looked up twice.
    let list = format!("[\"/nix/store/11111111111111111111111111111111-b\", \"{path}\", \"{path}\"]");
    let rows = sqlx::query(SQLITE.votes_of_paths).bind(list).fetch_all(&mut conn).await.expect("status");
    let mut found: Vec<(i64, String)> = rows.iter().map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))).collect();
    found.sort();
    let want = [(1, "b1"), (1, "b2"), (2, "b1"), (2, "b2")].map(|(i, b)| (i, b.to_owned()));
    assert_eq!(found, want);
}
