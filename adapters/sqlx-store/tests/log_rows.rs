//! The transparency log's entries in the SQL storage: an attestation's row is its entry.
//! Numbering goes on across a purge (the purged builder's logged attestations stay
//! readable), a database made before the log gets its column and index on migration and
//! its attestations appended to the log, oldest first, and a log begun by the first
//! version (entries stored as text) keeps its text.
//!
//! SQLite always; PostgreSQL too when `NHC_TEST_POSTGRES_URL` names a server where a
//! database may be created (skipped without it).

#[allow(dead_code)] // each test file uses a part of it
mod support;

use std::process::Command;

use nhc_sql::SCHEMA;
use nhc_storage::{LogEntry, Storage};
use sqlx::Connection;
use support::{store, submission, Store, BUILDER};

/// Indexes and kinds of `log_entries(0, 100)`: `r` for a row, `t` for stored text.
async fn entries(store: &Store) -> Vec<(u64, char, String)> {
    store
        .log_entries(0, 100)
        .await
        .expect("log entries")
        .into_iter()
        .map(|(i, e)| match e {
            LogEntry::Attestation(a) => (i, 'r', a.output_path.to_string()),
            LogEntry::Leaf(t) => (i, 't', t),
        })
        .collect()
}

/// Stores submission `n`, from `builder`, and returns the log index it got.
async fn logged(store: &Store, builder: &str, n: u8) -> u64 {
    let mut s = submission(n);
    s.builder = nhc_core::BuilderName::parse(builder).unwrap();
    let counts = store.insert_attestations(s).await.expect("insert");
    assert_eq!(counts.stored, 1, "submission {n} of {builder}");
    counts.log[0].index
}

async fn second_builder(store: &Store) {
    use nhc_core::{BuilderName, KeyName, SecretKey};
    let key = SecretKey::from_seed(KeyName::parse("other-1").unwrap(), [9; 32]);
    let b = nhc_storage::NewBuilder {
        name: BuilderName::parse("other").unwrap(),
        public_keys: vec![key.public_key()],
        token: nhc_storage::NewToken { id: "fedcba9876543210".into(), secret_hash: "11".repeat(32) },
        created_at: 0,
    };
    store.create_builder(&b).await.expect("second builder");
}

async fn purge_keeps_the_log(url: &str) {
    let store = store(url).await;
    second_builder(&store).await;
    assert_eq!(logged(&store, BUILDER, 1).await, 0);
    assert_eq!(logged(&store, "other", 2).await, 1);
    assert_eq!(logged(&store, "other", 3).await, 2);
    let before = entries(&store).await;
    assert_eq!(before.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(), [(0, 'r'), (1, 'r'), (2, 'r')]);
    // "other" holds the largest index: the next one must still come after it.
    let b = nhc_core::BuilderName::parse("other").unwrap();
    assert!(store.delete_builder(&b, true, 10).await.expect("purge"));
    assert_eq!(entries(&store).await, before, "a purge changed the log");
    assert_eq!(logged(&store, BUILDER, 4).await, 3);
    assert_eq!(entries(&store).await.len(), 4);
    // Purged rows are in no query but the log's.
    let p = submission(2).attestations[0].output_path.clone();
    assert!(store.attestations_of_path(&p, None, 10).await.expect("path").is_empty());
}

/// Rows with long reference lists come back whole, by reads that stop before the
/// references of one read pass `MAX_LOG_READ_REFERENCE_BYTES` (after the first entry).
async fn long_references_are_read_in_bounded_pieces(url: &str) {
    use nhc_core::fingerprint::References;
    use nhc_core::StorePath;
    use nhc_storage::{MAX_LOG_ENTRIES_READ, MAX_LOG_READ_REFERENCE_BYTES};
    let store = store(url).await;
    // Three lists of 6 MiB: the first two fit one read, the third does not.
    let per_list = 6 * 1024 * 1024 / 46;
    let refs = |k: usize| {
        let paths = (0..per_list).map(|i| StorePath::parse(&format!("/nix/store/{:032}-r{k}", i)).unwrap()).collect();
        References::new(paths).unwrap()
    };
    for (n, k) in [(1u8, Some(1)), (2, None), (3, Some(2)), (4, Some(3))] {
        let mut s = submission(n);
        if let Some(k) = k {
            s.attestations[0].references = refs(k);
        }
        store.insert_attestations(s).await.expect("insert");
    }
    let lens = |e: &[(u64, LogEntry)]| -> Vec<(u64, usize)> {
        e.iter()
            .map(|(i, e)| match e {
                LogEntry::Attestation(a) => (*i, a.references.as_slice().len()),
                LogEntry::Leaf(_) => (*i, usize::MAX),
            })
            .collect()
    };
    let first = store.log_entries(0, MAX_LOG_ENTRIES_READ).await.unwrap();
    assert_eq!(lens(&first), [(0, per_list), (1, 0), (2, per_list)]);
    assert!(2 * per_list * 46 <= MAX_LOG_READ_REFERENCE_BYTES);
    let rest = store.log_entries(3, MAX_LOG_ENTRIES_READ).await.unwrap();
    assert_eq!(lens(&rest), [(3, per_list)]);
    match &rest[0].1 {
        LogEntry::Attestation(a) => assert_eq!(a.references, refs(3)),
        LogEntry::Leaf(_) => panic!("a row was expected"),
    }
}

/// `SCHEMA` as it was before the log: no `log_index`, no log tables.
fn schema_before_the_log() -> String {
    let cut = SCHEMA.find("-- The transparency log").expect("the log's part of schema.sql");
    SCHEMA[..cut].lines().filter(|l| !l.trim_start().starts_with("log_index")).collect::<Vec<_>>().join("\n")
}

/// The log as the first version kept it: `log_index` and `log_entries`, no index on it.
fn schema_of_the_first_log() -> String {
    let cut = SCHEMA.find("-- The transparency log").expect("the log's part of schema.sql");
    format!(
        "{}\nCREATE TABLE log_entries (idx BIGINT PRIMARY KEY, leaf TEXT NOT NULL);\n\
         CREATE TABLE log_hashes (idx BIGINT PRIMARY KEY, hash TEXT NOT NULL);\n\
         CREATE TABLE log_checkpoints (size BIGINT PRIMARY KEY, root TEXT NOT NULL, note TEXT NOT NULL, \
         created_at BIGINT NOT NULL);",
        &SCHEMA[..cut]
    )
}

/// Two attestations of a builder, as a version before the log stored them (no index).
fn old_rows() -> String {
    let key = nhc_core::SecretKey::from_seed(nhc_core::KeyName::parse("old-1").unwrap(), [5; 32]);
    let row = |n: u32, at: i64| {
        format!(
            "INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, \
             submitted_at) VALUES ('{h}', '/nix/store/{h}-old{n}', 'writer-test-old', \
             'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', {n}, '', '{sig}', {at});",
            h = format!("{n}{}", "b".repeat(31)),
            sig = key.sign("x"),
        )
    };
    // Stored in this order, submitted in the other: the log takes them oldest first.
    format!("INSERT INTO builders (name, created_at) VALUES ('writer-test-old', 0);\n{}\n{}", row(1, 20), row(2, 10))
}

/// Runs `sql` (several statements) on the database of `url`, as an older version would.
async fn run(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
        let mut c = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true)).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("old schema");
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("old schema");
    }
}

async fn upgrades(url: &str) {
    // A database of the version before the log, with one attestation.
    run(url, &schema_before_the_log()).await;
    run(url, &old_rows()).await;
    // The migration appends them to the log, oldest first; new ones come after.
    let store = store(url).await;
    let old = |n: u32| format!("/nix/store/{n}{}-old{n}", "b".repeat(31));
    assert_eq!(entries(&store).await, [(0, 'r', old(2)), (1, 'r', old(1))]);
    assert_eq!(logged(&store, BUILDER, 1).await, 2);
    assert_eq!(entries(&store).await.len(), 3);
    // Migrating again appends what an older version wrote since (a rolling upgrade,
    // a downgrade and back), and nothing else.
    drop(store);
    let late = |n: u32| {
        format!(
            "INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, \
             submitted_at) SELECT '{h}', '/nix/store/{h}-late', builder, nar_hash, nar_size, refs, signature, 30 \
             FROM attestations WHERE log_index = 0",
            h = format!("{n}{}", "c".repeat(31)),
        )
    };
    run(url, &late(3)).await;
    let again = nhc_sqlx_store::Sqlx::connect(url, &nhc_sqlx_store::StoreOptions::default()).await.unwrap();
    again.migrate().await.expect("migrate again");
    let again = nhc_sql::SqlStorage::new(again);
    assert_eq!(entries(&again).await.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(entries(&again).await[3].2, format!("/nix/store/3{}-late", "c".repeat(31)));
}

async fn first_log_keeps_its_text(url: &str) {
    run(url, &schema_of_the_first_log()).await;
    run(url, "INSERT INTO log_entries (idx, leaf) VALUES (0, 'stored leaf text\n')").await;
    let store = store(url).await;
    // Numbering goes on after the stored entries; their text is served as stored.
    assert_eq!(logged(&store, BUILDER, 1).await, 1);
    let e = entries(&store).await;
    assert_eq!(e.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(), [(0, 't'), (1, 'r')]);
    assert_eq!(e[0].2, "stored leaf text\n");
}

fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    purge_keeps_the_log(&sqlite_url(dir.path(), "purge.db")).await;
    long_references_are_read_in_bounded_pieces(&sqlite_url(dir.path(), "long.db")).await;
    upgrades(&sqlite_url(dir.path(), "old.db")).await;
    first_log_keeps_its_text(&sqlite_url(dir.path(), "first-log.db")).await;
}

/// A fresh database on the test server, dropped at the end.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn new(admin: &str, name: &str) -> Self {
        let base = admin.split_once('?').map_or(admin, |(b, _)| b);
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let db = PgDatabase { admin: admin.to_owned(), name: name.to_owned(), url: format!("{server}/{name}") };
        db.psql(&db.admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        db.psql(&db.admin, &format!("CREATE DATABASE {name}"));
        db
    }

    fn psql(&self, url: &str, sql: &str) {
        let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().expect("psql");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.admin.as_str(), "-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

#[tokio::test]
async fn postgres() {
    let Ok(admin) = std::env::var("NHC_TEST_POSTGRES_URL") else {
        eprintln!("skipped: NHC_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = PgDatabase::new(&admin, "nhc_log_rows_purge");
    purge_keeps_the_log(&db.url).await;
    let db = PgDatabase::new(&admin, "nhc_log_rows_long");
    long_references_are_read_in_bounded_pieces(&db.url).await;
    let db = PgDatabase::new(&admin, "nhc_log_rows_old");
    upgrades(&db.url).await;
    let db = PgDatabase::new(&admin, "nhc_log_rows_first");
    first_log_keeps_its_text(&db.url).await;
}
