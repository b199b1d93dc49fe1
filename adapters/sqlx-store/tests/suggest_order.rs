//! The order of `GET /v1/jobsets/{name}/evaluations/{rev}/suggest` (the handlers'
//! service over the SQL storage on SQLite): by status (not reproduced, partially
//! reproduced, one builder, no builds), then fewest builders, then most dependents
//! (the upload's dependency edges), then upload order; never a path the builder
//! attested, never a reproduced one. On PostgreSQL too when `NHC_TEST_POSTGRES_URL`
//! names a server where it may create databases (with `psql`), e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`.

use std::process::Command;
use std::sync::Arc;

use nhc_core::fingerprint::References;
use nhc_core::jobset::{Edge, JobsetName, Rev, SuggestResponse};
use nhc_core::{BuilderName, KeyName, NarHash, ReproStatus, SecretKey, StorePath};
use nhc_handlers::service::jobsets::{path_id, suggest, SUGGEST_CANDIDATES};
use nhc_handlers::AppState;
use nhc_sql::SqlStorage;
use nhc_sqlx_store::{Sqlx, StoreOptions};
use nhc_storage::{
    JobsetRecord, NewAttestation, NewBuilder, NewEvaluation, NewEvaluationItem, NewToken, PutOutcome, Storage,
    Submission,
};

type Store = SqlStorage<Sqlx>;

const BUILDERS: [&str; 5] = ["a", "b", "c", "d", "me"];

fn key(builder: &str) -> SecretKey {
    SecretKey::from_seed(KeyName::parse(&format!("suggest-{builder}-1")).unwrap(), [builder.as_bytes()[0]; 32])
}

fn path(i: usize) -> StorePath {
    StorePath::parse(&format!("/nix/store/{i:0>32}-t{i}")).unwrap()
}

async fn open(url: &str) -> Arc<Store> {
    let sqlx = Sqlx::connect(url, &StoreOptions::default()).await.expect("connect");
    sqlx.migrate().await.expect("migrate");
    let store = SqlStorage::new(sqlx);
    for (i, b) in BUILDERS.iter().enumerate() {
        let builder = NewBuilder {
            name: BuilderName::parse(b).unwrap(),
            public_keys: vec![key(b).public_key()],
            token: NewToken { id: format!("{i:0>16}"), secret_hash: "00".repeat(32) },
            created_at: 0,
        };
        store.create_builder(&builder).await.expect("create builder");
    }
    Arc::new(store)
}

/// `builder` attests each `(position, hash byte)`.
async fn attest(store: &Store, builder: &str, votes: &[(usize, u8)]) {
    let attestations = votes
        .iter()
        .map(|&(i, h)| NewAttestation {
            output_path: path(i),
            nar_hash: NarHash::from_bytes([h; 32]),
            nar_size: 1,
            references: References::new(Vec::new()).unwrap(),
            signature: key(builder).sign("not checked by the store"),
            drv_path: None,
            output_name: None,
        })
        .collect();
    let s = Submission { builder: BuilderName::parse(builder).unwrap(), attestations, submitted_at: 1 };
    let counts = store.insert_attestations(s).await.expect("insert");
    assert_eq!(counts.stored, votes.len() as u64);
}

/// A jobset `j` with an evaluation `r1` of `n` paths (`path(0..n)`) and these edges
/// (`from` depends on `to`).
async fn evaluation(store: &Store, n: usize, edges: &[(u32, u32)]) {
    let name = JobsetName::parse("j").unwrap();
    store.create_jobset(&JobsetRecord { id: 1, name, description: String::new(), created_at: 0 }).await.unwrap();
    let items = (0..n)
        .map(|i| NewEvaluationItem { path_id: path_id(&path(i)), path: path(i), drv_path: None, output_name: None })
        .collect();
    let mut edges: Vec<Edge> = edges.iter().map(|&(from, to)| Edge { from, to }).collect();
    edges.sort_unstable();
    let e = NewEvaluation { id: 7, jobset_id: 1, rev: Rev::parse("r1").unwrap(), created_at: 0, items, edges };
    assert_eq!(store.put_evaluation(&e).await.unwrap(), PutOutcome::Created);
}

async fn suggested(store: &Arc<Store>, limit: u32) -> Vec<(String, ReproStatus)> {
    let state = AppState::new(store.clone(), Arc::new(|| 1), None);
    let (j, r, me) = (JobsetName::parse("j").unwrap(), Rev::parse("r1").unwrap(), BuilderName::parse("me").unwrap());
    let SuggestResponse { items } = suggest(&state, &j, &r, &me, limit).await.expect("suggest");
    items.into_iter().map(|i| (i.path.name().to_owned(), i.status)).collect()
}

/// A database of its own on the PostgreSQL server of `NHC_TEST_POSTGRES_URL`,
/// dropped at the end; `None` without that variable.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl PgDb {
    fn create(test: &str) -> Option<PgDb> {
        let admin = std::env::var("NHC_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
        let name = format!("nhc_suggest_{test}_{}", std::process::id());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, query) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, q)| (b, q));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = if query.is_empty() { format!("{server}/{name}") } else { format!("{server}/{name}?{query}") };
        Some(PgDb { admin, name, url })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[tokio::test]
async fn suggestions_come_by_status_then_builders_then_dependents() {
    let dir = tempfile::tempdir().unwrap();
    by_status_then_builders_then_dependents(open(&sqlite(&dir)).await).await;
}

#[tokio::test]
async fn suggestions_come_by_status_then_builders_then_dependents_on_postgres() {
    let Some(db) = PgDb::create("order") else { return eprintln!("NHC_TEST_POSTGRES_URL unset: skipped") };
    by_status_then_builders_then_dependents(open(&db.url).await).await;
}

#[tokio::test]
async fn large_evaluations_are_read_in_bounded_statements() {
    let dir = tempfile::tempdir().unwrap();
    large_evaluation(open(&sqlite(&dir)).await).await;
}

#[tokio::test]
async fn large_evaluations_are_read_in_bounded_statements_on_postgres() {
    let Some(db) = PgDb::create("large") else { return eprintln!("NHC_TEST_POSTGRES_URL unset: skipped") };
    large_evaluation(open(&db.url).await).await;
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("nhc.db").display())
}

async fn by_status_then_builders_then_dependents(store: Arc<Store>) {
    // t0 no builds; t1 one builder; t2 one builder, 3 dependents; t3 reproduced;
    // t4 not reproduced by 2; t5 not reproduced by 3; t6 partially reproduced;
    // t7 attested by me alone; t8 not reproduced, me among its builders; t9 no
    // builds, 1 dependent; t10 not reproduced by 2, 2 dependents; t11 one builder,
    // 1 dependent.
    attest(&store, "a", &[(1, 1), (3, 1), (4, 1), (5, 1), (6, 1), (8, 1)]).await;
    attest(&store, "b", &[(2, 1), (3, 1), (4, 2), (5, 2), (6, 1), (8, 2)]).await;
    attest(&store, "c", &[(5, 3), (6, 2), (10, 1), (11, 1)]).await;
    attest(&store, "d", &[(10, 2)]).await;
    attest(&store, "me", &[(7, 1), (8, 3)]).await;
    let edges = [(0, 2), (3, 2), (6, 2), (1, 9), (0, 10), (1, 10), (5, 11)];
    evaluation(&store, 12, &edges).await;

    use ReproStatus::*;
    let expected = [
        ("t10", NotReproduced),
        ("t4", NotReproduced),
        ("t5", NotReproduced),
        ("t6", PartiallyReproduced),
        ("t2", OneBuilder),
        ("t11", OneBuilder),
        ("t1", OneBuilder),
        ("t9", NoBuilds),
        ("t0", NoBuilds),
    ];
    let expected: Vec<(String, ReproStatus)> = expected.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    assert_eq!(suggested(&store, 100).await, expected);
    assert_eq!(suggested(&store, 3).await, expected[..3]);
    assert_eq!(suggested(&store, 1).await, expected[..1]);
}

/// An evaluation past one statement's positions (50,000): the candidates are read
/// in windows to its end (a not reproduced path at the very end comes first), at
/// most `SUGGEST_CANDIDATES` per status, and edges from every range count.
async fn large_evaluation(store: Arc<Store>) {
    let n = 60_000;
    attest(&store, "a", &[(100, 1), (n - 1, 1)]).await;
    attest(&store, "b", &[(n - 1, 2)]).await;
    let last = (n - 1) as u32;
    // t7: 2 dependents, both past position 50,000; t3: 1; t5500: 3, but behind the
    // first SUGGEST_CANDIDATES paths nobody built.
    let edges = [(55_000, 7), (last, 7), (57_000, 3), (0, 5_500), (1, 5_500), (2, 5_500)];
    evaluation(&store, n, &edges).await;

    let top = suggested(&store, 4).await;
    let names: Vec<&str> = top.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, [format!("t{}", n - 1).as_str(), "t100", "t7", "t3"]);
    assert_eq!(top[0].1, ReproStatus::NotReproduced);

    let many = suggested(&store, 1000).await;
    assert_eq!(many.len(), 1000);
    assert!(!many.iter().any(|(p, _)| p == "t5500"), "t5500 is not among the first {SUGGEST_CANDIDATES}");
    // After the three ranked by dependents, upload order: t0, t1, t2, t4, ...
    let rest: Vec<&str> = many[4..8].iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(rest, ["t0", "t1", "t2", "t4"]);
}

#[tokio::test]
async fn a_statement_cut_by_its_limit_goes_on_after_its_last_row() {
    let dir = tempfile::tempdir().unwrap();
    many_one_builder_paths(open(&sqlite(&dir)).await).await;
}

#[tokio::test]
async fn a_statement_cut_by_its_limit_goes_on_after_its_last_row_on_postgres() {
    let Some(db) = PgDb::create("cut") else { return eprintln!("NHC_TEST_POSTGRES_URL unset: skipped") };
    many_one_builder_paths(open(&db.url).await).await;
}

/// 20,000 one-builder paths in a row: the statement over them returns only the room
/// left (15,000 rows, once 5,000 paths nobody built are held), and reading goes on
/// after its last row, so the not reproduced paths past them are found. The first
/// 5,000 one-builder paths fill `limit`: no path nobody built is suggested.
async fn many_one_builder_paths(store: Arc<Store>) {
    let n = 60_000;
    let one_builder: Vec<(usize, u8)> = [100].into_iter().chain(10_000..30_000).map(|i| (i, 1)).collect();
    attest(&store, "a", &one_builder).await;
    attest(&store, "a", &[(40_000, 1), (n - 1, 1)]).await;
    attest(&store, "b", &[(40_000, 2), (n - 1, 2)]).await;
    // t12000: 2 dependents (edges from past position 50,000); t11000: 1; t29000: 3,
    // but behind the first SUGGEST_CANDIDATES one-builder paths.
    let last = (n - 1) as u32;
    let edges = [(55_000, 12_000), (last, 12_000), (57_000, 11_000), (0, 29_000), (1, 29_000), (2, 29_000)];
    evaluation(&store, n, &edges).await;

    let top = suggested(&store, 4).await;
    let names: Vec<&str> = top.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["t40000", format!("t{}", n - 1).as_str(), "t12000", "t11000"]);

    let many = suggested(&store, 1000).await;
    assert_eq!(many.len(), 1000);
    assert!(many.iter().all(|(_, s)| *s != ReproStatus::NoBuilds), "one-builder paths fill the limit");
    assert!(!many.iter().any(|(p, _)| p == "t29000"), "t29000 is not among the first {SUGGEST_CANDIDATES}");
    let rest: Vec<&str> = many[4..8].iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(rest, ["t100", "t10000", "t10001", "t10002"]);
}
