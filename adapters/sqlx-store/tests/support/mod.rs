//! What the writer tests share: a store with one builder, and submissions for it.

use std::time::Duration;

use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, KeyName, NarHash, SecretKey, StorePath};
use nhc_sql::SqlStorage;
use nhc_sqlx_store::{Sqlx, StoreOptions};
use nhc_storage::{NewAttestation, NewBuilder, NewToken, Storage, StoreError, Submission};

pub type Store = SqlStorage<Sqlx>;

pub const BUILDER: &str = "writer-test";

/// Opens and migrates `url`, and registers [`BUILDER`].
pub async fn store(url: &str) -> Store {
    let opts = StoreOptions { acquire_timeout: Duration::from_secs(2), ..StoreOptions::default() };
    let sqlx = Sqlx::connect(url, &opts).await.expect("connect");
    sqlx.migrate().await.expect("migrate");
    let store = SqlStorage::new(sqlx);
    let key = SecretKey::from_seed(KeyName::parse("writer-test-1").unwrap(), [7; 32]);
    let builder = NewBuilder {
        name: BuilderName::parse(BUILDER).unwrap(),
        public_keys: vec![key.public_key()],
        token: NewToken { id: "0123456789abcdef".into(), secret_hash: "00".repeat(32) },
        created_at: 0,
    };
    store.create_builder(&builder).await.expect("create builder");
    store
}

/// A submission of one attestation of a path numbered `n` (the signature is not
/// checked by the store).
pub fn submission(n: u8) -> Submission {
    let key = SecretKey::from_seed(KeyName::parse("writer-test-1").unwrap(), [7; 32]);
    let path = StorePath::parse(&format!("/nix/store/0{}-w{n}", "a".repeat(31))).unwrap();
    Submission {
        builder: BuilderName::parse(BUILDER).unwrap(),
        attestations: vec![NewAttestation {
            output_path: path,
            nar_hash: NarHash::from_bytes([n; 32]),
            nar_size: 1,
            references: References::new(Vec::new()).unwrap(),
            signature: key.sign("x"),
            drv_path: None,
            output_name: None,
        }],
        submitted_at: i64::from(n),
    }
}

/// Stores submission `n` and expects it stored.
pub async fn stored(store: &Store, n: u8) {
    let counts = store.insert_attestations(submission(n)).await.expect("insert");
    assert_eq!((counts.stored, counts.duplicates), (1, 0));
}

/// Submission `n` again is a duplicate: it was stored before.
pub async fn duplicate(store: &Store, n: u8) {
    let counts = store.insert_attestations(submission(n)).await.expect("insert");
    assert_eq!((counts.stored, counts.duplicates), (0, 1));
}

/// Submission `n` and `/health` both fail as "unavailable" (503), and say why.
pub async fn both_unavailable(store: &Store, n: u8) {
    match store.insert_attestations(submission(n)).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a submission while the database cannot be written: {other:?}"),
    }
    match store.health().await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("writer"), "{m}"),
        other => panic!("/health while the database cannot be written: {other:?}"),
    }
}

/// Waits (polling, at most a minute) until `/health` is ok again: the writer
/// recovered by itself.
pub async fn recovers(store: &Store) {
    for _ in 0..600 {
        if store.health().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the writer did not recover: {:?}", store.health().await);
}
