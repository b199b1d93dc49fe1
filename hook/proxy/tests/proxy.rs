//! The proxy over real HTTP, between a small upstream binary cache and a collection
//! that pages its attestations (both axum servers on 127.0.0.1): decisions, paging,
//! the ends going down, streaming, dry run, the cache, the status page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use nhc_core::api::{Attestation, OutputReport};
use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, KeyName, NarHash, NarInfo, ReproStatus, SecretKey, StorePath};
use nhc_proxy::{OnCollectionError, OnMismatch, Policy, Proxy, Settings, Trust};

const HASH: &str = "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h";
const OTHER: &str = "sha256:0000000000000000000000000000000000000000000000000000";
const NAR_BYTES: usize = 3 << 20;

fn key(name: &str, seed: u8) -> SecretKey {
    SecretKey::from_seed(KeyName::parse(name).unwrap(), [seed; 32])
}

fn path(n: u8) -> StorePath {
    StorePath::parse(&format!("/nix/store/{}-p{n}", std::iter::repeat_n(char::from(b'0' + n), 32).collect::<String>()))
        .unwrap()
}

fn att(p: &StorePath, builder: &str, k: &SecretKey, hash: &str) -> Attestation {
    let h = NarHash::parse(hash).unwrap();
    let refs = References::default();
    Attestation {
        builder: builder.parse().unwrap(),
        drv_path: None,
        output_name: None,
        output_path: p.clone(),
        nar_hash: h,
        nar_size: 120,
        references: refs.clone(),
        signature: k.sign(&fingerprint(p, &h, 120, &refs)),
        submitted_at: "2026-11-30T00:00:00Z".into(),
        log_index: None,
    }
}

#[derive(Default)]
struct World {
    narinfo: HashMap<String, String>,
    /// basename → attestations, served one a page.
    atts: HashMap<String, Vec<Attestation>>,
}

async fn up_file(State(w): State<Arc<World>>, Path(file): Path<String>) -> Response {
    if file == "nix-cache-info" {
        return "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n".into_response();
    }
    if let Some(h) = file.strip_suffix(".narinfo") {
        return match w.narinfo.get(h) {
            Some(t) => t.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    StatusCode::NOT_FOUND.into_response()
}

async fn up_nar(Path(file): Path<String>) -> Response {
    if file == "slow" {
        // One chunk, then nothing: the download stays open.
        let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")) });
        return axum::body::Body::from_stream(first.chain(futures_util::stream::pending())).into_response();
    }
    if file != "1.nar" {
        return StatusCode::NOT_FOUND.into_response();
    }
    (0..NAR_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into_response()
}

async fn outputs(
    State(w): State<Arc<World>>,
    Path(base): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(all) = w.atts.get(&base) else { return StatusCode::NOT_FOUND.into_response() };
    let i: usize = q.get("cursor").map(|c| c.parse().unwrap()).unwrap_or(0);
    let report = OutputReport {
        output_path: StorePath::from_basename(&base).unwrap(),
        status: ReproStatus::Reproduced,
        builders: all.len() as u64,
        distinct_hashes: 1,
        total_attestations: all.len() as u64,
        attestations: all.get(i).cloned().into_iter().collect(),
        next_cursor: (i + 1 < all.len()).then(|| (i + 1).to_string()),
    };
    axum::Json(report).into_response()
}

async fn listen(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    format!("http://{addr}")
}

/// A port nothing listens on.
async fn dead() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

struct Fixture {
    upstream: String,
    collection: String,
    keys: Vec<SecretKey>,
}

/// p1: a and b agree; p2: only a; p3: a agrees, c signed another hash; p4: signed by
/// an untrusted key under a trusted builder's name; p5: a, b, c agree, one a page.
async fn fixture() -> Fixture {
    let keys = vec![key("a-1", 1), key("b-1", 2), key("c-1", 3)];
    let untrusted = key("a-1", 9);
    let mut w = World::default();
    for n in 1..=5 {
        let p = path(n);
        let text = format!(
            "StorePath: {p}\nURL: nar/{n}.nar\nCompression: none\nNarHash: {HASH}\nNarSize: 120\nSig: upstream-1:{}\n",
            "A".repeat(86) + "=="
        );
        w.narinfo.insert(p.hash_part().to_owned(), text);
    }
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    w.atts.insert(path(1).basename().into(), vec![att(&path(1), "a", a, HASH), att(&path(1), "b", b, HASH)]);
    w.atts.insert(path(2).basename().into(), vec![att(&path(2), "a", a, HASH)]);
    w.atts.insert(path(3).basename().into(), vec![att(&path(3), "a", a, HASH), att(&path(3), "c", c, OTHER)]);
    w.atts.insert(path(4).basename().into(), vec![att(&path(4), "a", &untrusted, HASH), att(&path(4), "b", b, HASH)]);
    w.atts.insert(
        path(5).basename().into(),
        vec![att(&path(5), "a", a, HASH), att(&path(5), "b", b, HASH), att(&path(5), "c", c, HASH)],
    );
    let w = Arc::new(w);
    let upstream =
        listen(Router::new().route("/nar/{file}", get(up_nar)).route("/{file}", get(up_file)).with_state(w.clone()))
            .await;
    let collection = listen(Router::new().route("/v1/outputs/{base}", get(outputs)).with_state(w)).await;
    Fixture { upstream, collection, keys }
}

fn settings(f: &Fixture, upstream: &str, collection: &str, quorum: usize) -> Settings {
    let trust = Trust::new(f.keys.iter().map(|k| k.public_key()).collect(), &[]).unwrap();
    let mut s = Settings::new(upstream, collection, trust, Policy { quorum, on_mismatch: OnMismatch::Refuse }).unwrap();
    s.timeout = Duration::from_secs(5);
    s.log = false;
    s
}

async fn proxy(s: Settings) -> String {
    listen(nhc_proxy::router(Proxy::new(s).unwrap())).await
}

async fn get_narinfo(base: &str, n: u8) -> (StatusCode, String, String) {
    let r = reqwest::get(format!("{base}/{}.narinfo", path(n).hash_part())).await.unwrap();
    let verdict = r.headers().get("x-nhc-verdict").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status(), verdict, r.text().await.unwrap())
}

#[tokio::test]
async fn a_quorum_of_trusted_signatures_over_the_upstreams_fingerprint_is_served() {
    let f = fixture().await;
    let p = proxy(settings(&f, &f.upstream, &f.collection, 2)).await;
    let (st, v, body) = get_narinfo(&p, 1).await;
    assert_eq!((st, v.as_str()), (StatusCode::OK, "serve"), "{body}");
    let info = NarInfo::parse(&body).unwrap();
    for k in &f.keys[..2] {
        assert!(info.valid_signatures_by(&k.public_key()).next().is_some(), "{body}");
    }
    // The upstream's own signature stays.
    assert!(body.contains("Sig: upstream-1:"), "{body}");
    // Quorum 2: one builder (p2), a trusted mismatch (p3), a forged one (p4) are refused.
    for (n, why) in [(2, "1 of 2"), (3, "another NAR"), (4, "1 of 2")] {
        let (st, v, body) = get_narinfo(&p, n).await;
        assert_eq!((st, v.as_str()), (StatusCode::NOT_FOUND, "refuse"), "p{n}: {body}");
        assert!(body.contains(why), "p{n}: {body}");
    }
    // Not in the upstream: 404; a path that is not a hash: 404.
    let r = reqwest::get(format!("{p}/{}.narinfo", "z".repeat(32))).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reqwest::get(format!("{p}/not-a-hash.narinfo")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // HEAD answers as GET.
    let c = reqwest::Client::new();
    let r = c.head(format!("{p}/{}.narinfo", path(1).hash_part())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.head(format!("{p}/{}.narinfo", path(2).hash_part())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Its own nix-cache-info, with the upstream's store dir and priority.
    let info = reqwest::get(format!("{p}/nix-cache-info")).await.unwrap().text().await.unwrap();
    assert_eq!(info, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n");
    // Other methods and odd paths.
    let r = c.post(format!("{p}/{}.narinfo", path(1).hash_part())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = reqwest::get(format!("{p}/nar/..%2f..%2fetc")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn quorum_one_allow_and_dry_run_change_the_verdicts() {
    let f = fixture().await;
    let p = proxy(settings(&f, &f.upstream, &f.collection, 1)).await;
    assert_eq!(get_narinfo(&p, 2).await.0, StatusCode::OK);
    assert_eq!(get_narinfo(&p, 3).await.0, StatusCode::NOT_FOUND, "a trusted mismatch refuses at any quorum");
    let mut s = settings(&f, &f.upstream, &f.collection, 1);
    s.policy.on_mismatch = OnMismatch::Allow;
    let p = proxy(s).await;
    assert_eq!(get_narinfo(&p, 3).await.0, StatusCode::OK);
    let mut s = settings(&f, &f.upstream, &f.collection, 3);
    s.dry_run = true;
    let p = proxy(s).await;
    for n in 1..=4 {
        let (st, v, _) = get_narinfo(&p, n).await;
        assert_eq!((st, v.as_str()), (StatusCode::OK, "dry-run"), "p{n}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&reqwest::get(format!("{p}/status.json")).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(status["counters"]["would_refuse_dry_run"], 4, "{status}");
}

#[tokio::test]
async fn every_page_is_read_up_to_the_bound() {
    let f = fixture().await;
    let p = proxy(settings(&f, &f.upstream, &f.collection, 3)).await;
    assert_eq!(get_narinfo(&p, 5).await.0, StatusCode::OK, "three votes on three pages");
    let mut s = settings(&f, &f.upstream, &f.collection, 3);
    s.max_pages = 2;
    let p = proxy(s).await;
    let (st, _, body) = get_narinfo(&p, 5).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "the third page is never read: {body}");
}

#[tokio::test]
async fn a_collection_or_upstream_that_is_down_gives_clear_answers_quickly() {
    let f = fixture().await;
    let down = dead().await;
    let p = proxy(settings(&f, &f.upstream, &down, 1)).await;
    let (st, v, _) = get_narinfo(&p, 1).await;
    assert_eq!((st, v.as_str()), (StatusCode::NOT_FOUND, "collection-down"));
    let mut s = settings(&f, &f.upstream, &down, 1);
    s.on_collection_error = OnCollectionError::Pass;
    let p = proxy(s).await;
    let (st, v, body) = get_narinfo(&p, 2).await;
    assert_eq!((st, v.as_str()), (StatusCode::OK, "pass-collection-down"));
    assert!(!body.contains("Sig: a-1:"), "passed through unchanged: {body}");
    let p = proxy(settings(&f, &down, &f.collection, 1)).await;
    assert_eq!(get_narinfo(&p, 1).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let r = reqwest::get(format!("{p}/nix-cache-info")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = reqwest::get(format!("{p}/nar/1.nar")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A collection that accepts but never answers: refused once the timeout passes.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}", hang.local_addr().unwrap());
    let mut s = settings(&f, &f.upstream, &hang_url, 1);
    s.timeout = Duration::from_millis(300);
    let p = proxy(s).await;
    let (st, v, _) = get_narinfo(&p, 1).await;
    assert_eq!((st, v.as_str()), (StatusCode::NOT_FOUND, "collection-down"));
    drop(hang);
}

#[tokio::test]
async fn nars_are_streamed_and_decisions_cached() {
    let f = fixture().await;
    let p = proxy(settings(&f, &f.upstream, &f.collection, 2)).await;
    let r = reqwest::get(format!("{p}/nar/1.nar")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.content_length(), Some(NAR_BYTES as u64));
    let body = r.bytes().await.unwrap();
    assert!(body.len() == NAR_BYTES && body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    assert_eq!(reqwest::get(format!("{p}/nar/missing")).await.unwrap().status(), StatusCode::NOT_FOUND);
    for _ in 0..3 {
        get_narinfo(&p, 1).await;
        get_narinfo(&p, 2).await;
    }
    let status: serde_json::Value =
        serde_json::from_str(&reqwest::get(format!("{p}/status.json")).await.unwrap().text().await.unwrap()).unwrap();
    let c = &status["counters"];
    assert_eq!((c["narinfo_requests"].as_u64(), c["cache_hits"].as_u64()), (Some(6), Some(4)), "{status}");
    assert_eq!(c["bytes_streamed"].as_u64(), Some(NAR_BYTES as u64), "{status}");
    assert_eq!(c["streams_open"].as_u64(), Some(0), "{status}");
    let html = reqwest::get(format!("{p}/status")).await.unwrap().text().await.unwrap();
    assert!(html.contains(path(1).as_str()) && html.contains("a-1 (a), b-1 (b)"), "{html}");
}

#[tokio::test]
async fn streams_at_once_are_bounded_and_a_slot_comes_back() {
    let f = fixture().await;
    let mut s = settings(&f, &f.upstream, &f.collection, 2);
    s.max_streams = 1;
    s.timeout = Duration::from_millis(300);
    let p = proxy(s).await;
    let mut held = reqwest::get(format!("{p}/nar/slow")).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(held.chunk().await.unwrap().as_deref(), Some(&b"x"[..]));
    let r = reqwest::get(format!("{p}/nar/1.nar")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "the only slot is taken");
    drop(held);
    let mut freed = false;
    for _ in 0..50 {
        if reqwest::get(format!("{p}/nar/1.nar")).await.unwrap().status() == StatusCode::OK {
            freed = true;
            break;
        }
    }
    assert!(freed, "the slot never came back");
}
