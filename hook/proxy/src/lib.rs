//! `nhc proxy`: a Nix binary cache in front of an upstream one that lets Nix
//! substitute a path only when a quorum of independent, trusted builders signed
//! the upstream's NAR hash, size and references (their attestations fetched from a
//! collection server, their signatures checked here). See `decide` for the rule.
//!
//! Answers (what Nix makes of them):
//! - `GET /nix-cache-info`: the upstream's `StoreDir`, `WantMassQuery` and
//!   `Priority` (503 when the upstream cannot be asked);
//! - `GET`/`HEAD /<hash>.narinfo`: 200 with the upstream narinfo plus the agreeing
//!   builders' `Sig` lines; 404 when the upstream has no such path or the path is
//!   refused (Nix then builds it); 503 when the upstream cannot be asked;
//! - anything else Nix asks (`nar/…`, `*.ls`, `log/…`): streamed from the upstream
//!   as it comes, status and length passed on (Nix checks the NAR against the
//!   narinfo's hash, so a NAR needs no decision of its own);
//! - `GET /status` (HTML) and `/status.json`: counters and the latest decisions.

pub mod decide;
pub mod fetch;
mod page;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use nhc_core::store_path::is_hash_part;
use reqwest::{Client, Url};
use tokio::sync::Semaphore;

pub use decide::{decide, Decision, OnMismatch, Policy, Trust, TrustError, Verdict};
use fetch::{Unreachable, Upstream};

/// What to do when the collection cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCollectionError {
    /// 404: Nix builds the path itself (the default).
    Refuse,
    /// Serve the upstream's narinfo unchanged (logged).
    Pass,
}

impl std::str::FromStr for OnCollectionError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refuse" => Ok(OnCollectionError::Refuse),
            "pass" => Ok(OnCollectionError::Pass),
            _ => Err(format!("{s:?}: expected refuse or pass")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL, ending in `/`.
    pub upstream: Url,
    /// Base URL of the collection server, ending in `/`.
    pub collection: Url,
    pub trust: Trust,
    pub policy: Policy,
    pub on_collection_error: OnCollectionError,
    /// Serve everything the upstream has; log what would have been refused.
    pub dry_run: bool,
    /// Overrides the upstream's `Priority` in `nix-cache-info`.
    pub priority: Option<u32>,
    /// How long a served narinfo is remembered.
    pub positive_ttl: Duration,
    /// How long a refusal or an upstream 404 is remembered.
    pub negative_ttl: Duration,
    /// Whole-request timeout towards the upstream (narinfo) and the collection.
    pub timeout: Duration,
    /// Idle time after which a NAR download from the upstream is abandoned.
    pub read_timeout: Duration,
    /// Narinfo decisions under way at once; more wait up to `timeout`, then 503.
    pub max_lookups: usize,
    /// Files streamed at once; more wait up to `timeout`, then 503.
    pub max_streams: usize,
    /// Pages of 1000 attestations read per path at most.
    pub max_pages: usize,
    /// Decisions remembered at most.
    pub max_cached: usize,
    /// One line on stderr per decision.
    pub log: bool,
}

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("--{what} {url:?}: {why}")]
    Url { what: &'static str, url: String, why: String },
    #[error("--quorum {quorum} can never be met: the trusted keys make {groups} independent group(s)")]
    Quorum { quorum: usize, groups: usize },
    #[error("--quorum must be at least 1")]
    QuorumZero,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `url` as a base URL (http or https, ending in `/`, no query).
pub fn base_url(what: &'static str, url: &str) -> Result<Url, ProxyError> {
    let err = |why: &str| ProxyError::Url { what, url: url.to_owned(), why: why.to_owned() };
    let mut u = Url::parse(url).map_err(|e| err(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(err("not an http:// or https:// URL"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(err("no host"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(err("no ?query or #fragment, please"));
    }
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

impl Settings {
    pub fn new(upstream: &str, collection: &str, trust: Trust, policy: Policy) -> Result<Settings, ProxyError> {
        if policy.quorum == 0 {
            return Err(ProxyError::QuorumZero);
        }
        if policy.quorum > trust.groups() {
            return Err(ProxyError::Quorum { quorum: policy.quorum, groups: trust.groups() });
        }
        Ok(Settings {
            upstream: base_url("upstream", upstream)?,
            collection: base_url("collection", collection)?,
            trust,
            policy,
            on_collection_error: OnCollectionError::Refuse,
            dry_run: false,
            priority: None,
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_lookups: 64,
            max_streams: 64,
            max_pages: 10,
            max_cached: 100_000,
            log: true,
        })
    }
}

/// A narinfo answer, as sent.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Bytes,
    /// `serve`, `refuse`, `not-found`, …: the `X-Nhc-Verdict` header.
    verdict: &'static str,
}

struct Cached {
    expires: Instant,
    answer: Answer,
}

/// One line of the status page.
#[derive(Clone, serde::Serialize)]
struct Recent {
    at: u64,
    path: String,
    verdict: String,
    served: bool,
    agreed: String,
    mismatched: String,
}

#[derive(Default, serde::Serialize)]
struct Counters {
    narinfo_requests: AtomicU64,
    cache_hits: AtomicU64,
    served: AtomicU64,
    refused_no_quorum: AtomicU64,
    refused_mismatch: AtomicU64,
    refused_collection_down: AtomicU64,
    passed_collection_down: AtomicU64,
    would_refuse_dry_run: AtomicU64,
    upstream_not_found: AtomicU64,
    upstream_invalid: AtomicU64,
    upstream_unreachable: AtomicU64,
    overloaded: AtomicU64,
    files_streamed: AtomicU64,
    bytes_streamed: AtomicU64,
    streams_open: AtomicU64,
}

pub struct Proxy {
    s: Settings,
    client: Client,
    nar_client: Client,
    lookups: Semaphore,
    streams: Arc<Semaphore>,
    cache: Mutex<HashMap<String, Cached>>,
    cache_info: Mutex<Option<Bytes>>,
    counters: Counters,
    recent: Mutex<VecDeque<Recent>>,
    started: Instant,
}

const RECENT: usize = 50;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Proxy {
    pub fn new(s: Settings) -> Result<Arc<Proxy>, ProxyError> {
        let build = |b: reqwest::ClientBuilder| {
            b.user_agent(concat!("nhc-proxy/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(s.timeout.min(Duration::from_secs(5)))
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| ProxyError::Client(fetch::error_chain(&e)))
        };
        let client = build(Client::builder().timeout(s.timeout))?;
        // No whole-request timeout for files (a NAR may take minutes): an idle one.
        let nar_client = build(Client::builder().read_timeout(s.read_timeout))?;
        Ok(Arc::new(Proxy {
            lookups: Semaphore::new(s.max_lookups.max(1)),
            streams: Arc::new(Semaphore::new(s.max_streams.max(1))),
            client,
            nar_client,
            cache: Mutex::new(HashMap::new()),
            cache_info: Mutex::new(None),
            counters: Counters::default(),
            recent: Mutex::new(VecDeque::new()),
            started: Instant::now(),
            s,
        }))
    }

    fn log(&self, line: &str) {
        if self.s.log {
            eprintln!("nhc proxy: {line}");
        }
    }

    fn cached(&self, hash: &str) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(hash).filter(|c| c.expires > Instant::now()).map(|c| c.answer.clone())
    }

    fn remember(&self, hash: &str, answer: &Answer, ttl: Duration) {
        if ttl.is_zero() || self.s.max_cached == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.s.max_cached {
            let now = Instant::now();
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= self.s.max_cached {
                cache.clear();
            }
        }
        cache.insert(hash.to_owned(), Cached { expires: Instant::now() + ttl, answer: answer.clone() });
    }

    fn record(&self, r: Recent) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT {
            recent.pop_back();
        }
        recent.push_front(r);
    }

    /// The answer for `<hash>.narinfo`, from the cache or decided now.
    async fn narinfo(&self, hash: &str) -> Answer {
        bump(&self.counters.narinfo_requests);
        if let Some(a) = self.cached(hash) {
            bump(&self.counters.cache_hits);
            return a;
        }
        let Ok(_permit) = tokio::time::timeout(self.s.timeout, self.lookups.acquire()).await else {
            bump(&self.counters.overloaded);
            return Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: "overloaded\n".into(),
                verdict: "overloaded",
            };
        };
        let (answer, ttl) = self.decide(hash).await;
        if let Some(ttl) = ttl {
            self.remember(hash, &answer, ttl);
        }
        answer
    }

    /// Decides `hash`: the answer and how long it may be remembered.
    async fn decide(&self, hash: &str) -> (Answer, Option<Duration>) {
        let s = &self.s;
        let refused =
            |why: &str, verdict| Answer { status: StatusCode::NOT_FOUND, body: format!("{why}\n").into(), verdict };
        let info = match fetch::narinfo(&self.client, &s.upstream, hash).await {
            Ok(Upstream::Found(i)) => i,
            Ok(Upstream::NotFound) => {
                bump(&self.counters.upstream_not_found);
                return (refused("not in the upstream cache", "not-found"), Some(s.negative_ttl));
            }
            Ok(Upstream::Invalid(why)) => {
                bump(&self.counters.upstream_invalid);
                self.log(&format!("refuse {hash}: the upstream's narinfo is invalid: {why}"));
                return (refused("the upstream's narinfo is invalid", "invalid"), Some(s.negative_ttl));
            }
            Err(Unreachable(why)) => {
                bump(&self.counters.upstream_unreachable);
                self.log(&format!("503 {hash}: upstream: {why}"));
                let a = Answer {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: "the upstream cache cannot be reached\n".into(),
                    verdict: "upstream-down",
                };
                return (a, None);
            }
        };
        let path = info.store_path.to_string();
        let serve = |narinfo: &nhc_core::NarInfo, verdict| Answer {
            status: StatusCode::OK,
            body: narinfo.to_string().into(),
            verdict,
        };
        let atts = fetch::attestations(&self.client, &s.collection, info.store_path.basename(), s.max_pages).await;
        let (atts, truncated) = match atts {
            Ok(a) => a,
            Err(Unreachable(why)) => {
                let pass = s.on_collection_error == OnCollectionError::Pass || s.dry_run;
                let verdict = if pass { "pass (collection down)" } else { "refuse (collection down)" };
                self.log(&format!("{verdict} {path}: {why}"));
                self.record(Recent {
                    at: now_secs(),
                    path,
                    verdict: verdict.into(),
                    served: pass,
                    agreed: "-".into(),
                    mismatched: "-".into(),
                });
                // Not remembered: the next request asks the collection again.
                return if pass {
                    bump(&self.counters.passed_collection_down);
                    (serve(&info, "pass-collection-down"), None)
                } else {
                    bump(&self.counters.refused_collection_down);
                    (refused("the collection cannot be reached", "collection-down"), None)
                };
            }
        };
        let d = decide(&info, &atts, &s.trust, &s.policy);
        let agreed = decide::who(&d.agreed);
        let mismatched = decide::who(&d.mismatched);
        let mut line = format!(
            "{} {path}: {} of quorum {} agreed [{agreed}]; mismatched [{mismatched}]; ignored {}",
            if d.serves() { "serve" } else { "refuse" },
            d.agreeing_groups(),
            s.policy.quorum,
            d.ignored
        );
        if truncated {
            line.push_str(&format!("; only the first {} pages read", s.max_pages));
        }
        if !d.serves() {
            line.push_str(&format!(" ({})", d.verdict));
            if s.dry_run {
                line.push_str("; dry run: served anyway");
            }
        }
        self.log(&line);
        let served = d.serves() || s.dry_run;
        self.record(Recent {
            at: now_secs(),
            path,
            verdict: if d.serves() || !s.dry_run {
                d.verdict.to_string()
            } else {
                format!("dry run, would {}", d.verdict)
            },
            served,
            agreed,
            mismatched,
        });
        match d.verdict {
            Verdict::Serve => bump(&self.counters.served),
            _ if s.dry_run => bump(&self.counters.would_refuse_dry_run),
            Verdict::NoQuorum { .. } => bump(&self.counters.refused_no_quorum),
            Verdict::Mismatch => bump(&self.counters.refused_mismatch),
        }
        if d.serves() {
            (serve(&decide::with_signatures(&info, &d), "serve"), Some(s.positive_ttl))
        } else if s.dry_run {
            (serve(&decide::with_signatures(&info, &d), "dry-run"), Some(s.negative_ttl))
        } else {
            (refused(&d.verdict.to_string(), "refuse"), Some(s.negative_ttl))
        }
    }

    async fn cache_info(&self) -> Result<Bytes, Unreachable> {
        if let Some(b) = self.cache_info.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(b);
        }
        let text = fetch::cache_info(&self.client, &self.s.upstream).await?;
        let text = text.ok_or_else(|| Unreachable("the upstream has no nix-cache-info".into()))?;
        let mut store_dir = "/nix/store".to_owned();
        let mut mass = "1".to_owned();
        let mut priority = None;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                match k.trim() {
                    "StoreDir" => store_dir = v.trim().to_owned(),
                    "WantMassQuery" => mass = v.trim().to_owned(),
                    "Priority" => priority = v.trim().parse::<u32>().ok(),
                    _ => {}
                }
            }
        }
        let priority = self.s.priority.or(priority).unwrap_or(50);
        let body = Bytes::from(format!("StoreDir: {store_dir}\nWantMassQuery: {mass}\nPriority: {priority}\n"));
        *self.cache_info.lock().unwrap_or_else(|e| e.into_inner()) = Some(body.clone());
        Ok(body)
    }

    /// Streams `path` from the upstream, chunk by chunk (constant memory).
    async fn stream(self: &Arc<Self>, method: Method, path: &str) -> Response {
        let Ok(Ok(permit)) = tokio::time::timeout(self.s.timeout, self.streams.clone().acquire_owned()).await else {
            bump(&self.counters.overloaded);
            return (StatusCode::SERVICE_UNAVAILABLE, "overloaded\n").into_response();
        };
        let url = fetch::join(&self.s.upstream, path.trim_start_matches('/'));
        let res = match self.nar_client.request(method, url.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                bump(&self.counters.upstream_unreachable);
                self.log(&format!("503 /{}: upstream: {}", path.trim_start_matches('/'), fetch::error_chain(&e)));
                return (StatusCode::SERVICE_UNAVAILABLE, "the upstream cache cannot be reached\n").into_response();
            }
        };
        let status = if res.status().is_server_error() { StatusCode::SERVICE_UNAVAILABLE } else { res.status() };
        let mut out = Response::builder().status(status);
        for h in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING] {
            if let Some(v) = res.headers().get(&h) {
                out = out.header(h, v.clone());
            }
        }
        bump(&self.counters.files_streamed);
        self.counters.streams_open.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard { proxy: self.clone(), _permit: permit };
        let body = res.bytes_stream().map(move |chunk| {
            if let Ok(c) = &chunk {
                guard.proxy.counters.bytes_streamed.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
            chunk
        });
        out.body(Body::from_stream(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// Held by a streamed body: the stream's permit, and the open-streams count.
struct StreamGuard {
    proxy: Arc<Proxy>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.proxy.counters.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn text(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

async fn nix_cache_info(State(p): State<Arc<Proxy>>) -> Response {
    match p.cache_info().await {
        Ok(b) => text(StatusCode::OK, "text/x-nix-cache-info", b),
        Err(Unreachable(why)) => {
            p.log(&format!("503 nix-cache-info: {why}"));
            text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the upstream cache cannot be reached\n".into())
        }
    }
}

async fn status_json(State(p): State<Arc<Proxy>>) -> Response {
    let recent: Vec<Recent> = p.recent.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
    let body = serde_json::json!({
        "upstream": p.s.upstream.as_str(),
        "collection": p.s.collection.as_str(),
        "quorum": p.s.policy.quorum,
        "trusted_keys": p.s.trust.len(),
        "dry_run": p.s.dry_run,
        "uptime_seconds": p.started.elapsed().as_secs(),
        "counters": &p.counters,
        "recent": recent,
    });
    text(StatusCode::OK, "application/json", serde_json::to_vec(&body).unwrap_or_default().into())
}

async fn status_html(State(p): State<Arc<Proxy>>) -> Response {
    let recent: Vec<Recent> = p.recent.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
    let counters = serde_json::to_value(&p.counters).unwrap_or_default();
    let html = page::status(&p.s, p.started.elapsed(), &counters, &recent);
    text(StatusCode::OK, "text/html; charset=utf-8", html.into())
}

/// `/<hash>.narinfo` and every other file Nix may ask for.
async fn fallback(State(p): State<Arc<Proxy>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "GET or HEAD\n").into_response();
    }
    let path = uri.path();
    if let Some(hash) = path.strip_prefix('/').and_then(|f| f.strip_suffix(".narinfo")) {
        if !is_hash_part(hash) {
            return text(StatusCode::NOT_FOUND, "text/plain", "not a store path hash\n".into());
        }
        let a = p.narinfo(hash).await;
        let ct = if a.status == StatusCode::OK { "text/x-nix-narinfo" } else { "text/plain" };
        let mut r = text(a.status, ct, a.body);
        r.headers_mut().insert("x-nhc-verdict", HeaderValue::from_static(a.verdict));
        return r;
    }
    if !safe_path(path) {
        return text(StatusCode::NOT_FOUND, "text/plain", "no such file\n".into());
    }
    p.stream(method, path).await
}

/// A file name an upstream binary cache may hold: bounded, no `..`, no `//`,
/// plain characters only (query strings are not forwarded).
fn safe_path(path: &str) -> bool {
    path.len() <= 512
        && path.starts_with('/')
        && path.len() > 1
        && !path.contains("//")
        && path.split('/').all(|seg| seg != "." && seg != "..")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._+=:!".contains(&b))
}

pub fn router(p: Arc<Proxy>) -> Router {
    Router::new()
        .route("/nix-cache-info", get(nix_cache_info))
        .route("/status", get(status_html))
        .route("/status.json", get(status_json))
        .fallback(fallback)
        .with_state(p)
}

/// Serves on `listener` until SIGINT or SIGTERM.
pub async fn serve(p: Arc<Proxy>, listener: tokio::net::TcpListener) -> Result<(), ProxyError> {
    let s = &p.s;
    p.log(&format!(
        "listening on http://{} for upstream {} and collection {}: quorum {} of {} trusted key(s) in {} group(s), \
         on mismatch {:?}, collection down: {:?}{}",
        listener.local_addr()?,
        s.upstream,
        s.collection,
        s.policy.quorum,
        s.trust.len(),
        s.trust.groups(),
        s.policy.on_mismatch,
        s.on_collection_error,
        if s.dry_run { ", DRY RUN (serves everything)" } else { "" }
    ));
    axum::serve(listener, router(p.clone())).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

async fn shutdown() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Binds `addr` and serves (the `nhc proxy` command).
pub fn run(s: Settings, addr: SocketAddr) -> Result<(), ProxyError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ProxyError::Listen { addr, source })?;
        serve(Proxy::new(s)?, listener).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths() {
        for ok in ["/nar/1abc.nar.xz", "/abc.ls", "/log/x-y.drv", "/realisations/sha256:x!out.doi"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in
            ["/", "/../etc/passwd", "/nar/../x", "//x", "/a b", "/a?b", "/a%2e", &format!("/{}", "a".repeat(600))]
        {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("u", "http://h:1/x").unwrap().as_str(), "http://h:1/x/");
        assert_eq!(base_url("u", "https://cache.nixos.org").unwrap().as_str(), "https://cache.nixos.org/");
        for bad in ["ftp://h", "http://h/?q", "nope", "file:///tmp"] {
            assert!(base_url("u", bad).is_err(), "{bad}");
        }
    }
}
