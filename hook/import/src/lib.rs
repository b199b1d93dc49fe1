//! `nhc import`: turns signed narinfo of a binary cache, or attestations of another
//! nhc-server, into submissions to this one. Async (reqwest on tokio) so that many
//! requests are in flight; the `nhc` binary calls [`run`], `nhc-hook` never links it.
//!
//! Only signatures by the token's builder's keys (`GET /v1/me`) are used, and each is
//! verified here first: one bad output would make the server reject a whole batch.

pub mod cache;
pub mod classify;
pub mod collection;
pub mod http;
pub mod submit;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use nhc_core::{PublicKey, StorePath};
use nhc_nix::StoreLocation;
use serde::Deserialize;

use cache::{Cache, Fetched};
use classify::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Http(String),
    #[error("cache: {0}")]
    Cache(String),
    #[error("cache: {0}")]
    CacheUnreadable(#[from] cache::FetchError),
    #[error("server: {0}")]
    ServerUnreachable(#[from] http::RequestError),
    #[error("server: {0}")]
    Server(String),
    #[error("state file {0}")]
    State(String),
}

/// Where to send and how hard to push.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: String,
    pub token: String,
    /// Requests in flight to the cache.
    pub concurrency: usize,
    /// Most outputs per `POST /v1/attestations`.
    pub batch: usize,
    pub timeout: Duration,
    /// Where `.drv` files are read to name outputs.
    pub store: StoreLocation,
    pub progress: bool,
    /// Called with the body of every successful `POST /v1/attestations` answer (the
    /// client records the transparency log entries it lists).
    pub on_answer: OnAnswer,
}

/// A hook on submission answers; none by default.
#[derive(Clone, Default)]
pub struct OnAnswer(pub Option<AnswerFn>);

/// What [`OnAnswer`] calls with an answer's body.
pub type AnswerFn = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

impl std::fmt::Debug for OnAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "OnAnswer(Some)" } else { "OnAnswer(None)" })
    }
}

/// What one run did; printed at the end.
#[derive(Debug, Default)]
pub struct Counters {
    pub imported: AtomicU64,
    pub duplicates: AtomicU64,
    pub not_in_cache: AtomicU64,
    pub unsigned: AtomicU64,
    pub invalid: AtomicU64,
    /// Fetches or submissions that failed after their retries.
    pub failed: AtomicU64,
    pub seen: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub imported: u64,
    pub duplicates: u64,
    pub not_in_cache: u64,
    pub unsigned: u64,
    pub invalid: u64,
    pub failed: u64,
}

impl Counters {
    pub fn summary(&self) -> Summary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            imported: g(&self.imported),
            duplicates: g(&self.duplicates),
            not_in_cache: g(&self.not_in_cache),
            unsigned: g(&self.unsigned),
            invalid: g(&self.invalid),
            failed: g(&self.failed),
        }
    }
}

impl Summary {
    /// Exit status 0 only when nothing failed: unsigned, invalid and missing paths
    /// count as failures of the import (they were asked for and not imported).
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.invalid == 0 && self.unsigned == 0 && self.not_in_cache == 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {}, duplicates {}, not in cache {}, unsigned {}, invalid {}, failed {}",
            self.imported, self.duplicates, self.not_in_cache, self.unsigned, self.invalid, self.failed
        )
    }
}

pub(crate) fn warn(msg: &str) {
    eprintln!("nhc import: {msg}");
}

#[derive(Deserialize)]
struct Me {
    name: String,
    public_keys: Vec<PublicKey>,
}

/// The token's builder and its keys, from `GET /v1/me`.
pub async fn me(client: &reqwest::Client, s: &Settings) -> Result<(String, Vec<PublicKey>), ImportError> {
    let url = format!("{}/v1/me", s.server);
    let res = http::send(client, |c| c.get(&url).bearer_auth(&s.token)).await?;
    let status = res.status();
    let body = http::body_limited(res, 1 << 20).await?.unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ImportError::Server(format!(
            "GET {url}: 404: the server has no /v1/me (it is older than nhc import)"
        )));
    }
    if !status.is_success() {
        return Err(ImportError::Server(format!("GET {url}: HTTP {status}: {}", String::from_utf8_lossy(&body))));
    }
    let me: Me = serde_json::from_slice(&body).map_err(|e| ImportError::Server(format!("GET {url}: {e}")))?;
    if me.public_keys.is_empty() {
        return Err(ImportError::Server(format!("builder {} has no registered keys", me.name)));
    }
    Ok((me.name, me.public_keys))
}

/// A runtime for one command: a few worker threads are plenty for I/O.
pub fn runtime() -> Result<tokio::runtime::Runtime, ImportError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ImportError::Http(format!("cannot start the runtime: {e}")))
}

/// A progress line on stderr while running, when it is a terminal.
fn progress(counters: Arc<Counters>, total: Option<u64>, on: bool) -> Option<tokio::task::JoinHandle<()>> {
    if !on || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let seen = counters.seen.load(Ordering::Relaxed);
            let rate = seen as f64 / start.elapsed().as_secs_f64().max(0.001);
            let of = total.map(|t| format!("/{t}")).unwrap_or_default();
            eprint!("\r\x1b[K{seen}{of} ({rate:.0}/s): {}", counters.summary());
        }
    }))
}

fn end_progress(p: Option<tokio::task::JoinHandle<()>>) {
    if let Some(p) = p {
        p.abort();
        eprint!("\r\x1b[K");
    }
}

/// Imports `paths` from `cache`. Returns the counts; an error only for what stops
/// everything (no server, no cache, a bad token).
pub async fn from_cache(s: &Settings, cache: &str, paths: Vec<StorePath>) -> Result<Summary, ImportError> {
    let cache = Cache::parse(cache)?;
    let client = http::client(s.timeout)?;
    let (_, keys) = me(&client, s).await?;
    cache.check(&client).await?;
    let counters = Arc::new(Counters::default());
    let bar = progress(counters.clone(), Some(paths.len() as u64), s.progress);
    let mut sub = submit::Submitter::new(client.clone(), s, counters.clone());
    let keys = Arc::new(keys);
    let store = Arc::new(s.store.clone());
    let mut results = stream::iter(paths)
        .map(|p| {
            let (client, cache, keys, store) = (client.clone(), cache.clone(), keys.clone(), store.clone());
            async move {
                let fetched = cache.narinfo(&client, &p).await;
                let outcome = match fetched {
                    Ok(Fetched::Text(t)) => classify::classify(&p, &t, &keys),
                    Ok(Fetched::NotFound) => Outcome::NotInCache,
                    Ok(Fetched::Invalid(why)) => Outcome::Invalid(why),
                    Err(e) => Outcome::Failed(e),
                };
                (p, classify::named(outcome, &store))
            }
        })
        .buffer_unordered(s.concurrency.max(1));
    while let Some((p, outcome)) = results.next().await {
        counters.seen.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok { drv, output } => sub.add(drv, output).await,
            Outcome::NotInCache => {
                counters.not_in_cache.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Unsigned => {
                counters.unsigned.fetch_add(1, Ordering::Relaxed);
                warn(&format!("{p}: no signature by this builder's keys"));
            }
            Outcome::Invalid(why) => {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                warn(&format!("{p}: invalid narinfo: {why}"));
            }
            Outcome::Failed(why) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                warn(&format!("{p}: {why}"));
            }
        }
    }
    sub.finish().await;
    end_progress(bar);
    Ok(counters.summary())
}

#[derive(Deserialize)]
struct EvalPage {
    items: Vec<EvalItem>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct EvalItem {
    path: StorePath,
}

/// `{server}/v1/jobsets/{segments..}`, each segment percent-encoded.
fn jobset_url(s: &Settings, segments: &[&str]) -> Result<reqwest::Url, ImportError> {
    let mut url = reqwest::Url::parse(&format!("{}/v1/jobsets/", s.server))
        .map_err(|e| ImportError::Usage(format!("server URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| ImportError::Usage("server URL cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[derive(Deserialize)]
struct Jobset {
    evaluations: Vec<Evaluation>,
}

#[derive(Deserialize)]
struct Evaluation {
    rev: String,
}

/// The newest evaluation's `rev` from `GET /v1/jobsets/{name}` (newest first), for
/// `--jobset` without `--rev` (what a timer wants).
pub async fn latest_rev(s: &Settings, jobset: &str) -> Result<String, ImportError> {
    let client = http::client(s.timeout)?;
    let url = jobset_url(s, &[jobset])?;
    let res = http::send(&client, |c| c.get(url.clone())).await?;
    let status = res.status();
    let body = http::body_limited(res, 64 << 20).await?.unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ImportError::Usage(format!(
            "{url}: 404: no jobset {jobset} on this server (or the server has no jobset routes)"
        )));
    }
    if !status.is_success() {
        return Err(ImportError::Server(format!("GET {url}: HTTP {status}: {}", String::from_utf8_lossy(&body))));
    }
    newest_rev(&body).map_err(|e| ImportError::Server(format!("GET {url}: {e}")))
}

#[derive(Debug, thiserror::Error)]
enum NewestRevError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("the jobset has no evaluation yet")]
    NoEvaluation,
}

fn newest_rev(body: &[u8]) -> Result<String, NewestRevError> {
    let j: Jobset = serde_json::from_slice(body)?;
    j.evaluations.into_iter().next().map(|e| e.rev).ok_or(NewestRevError::NoEvaluation)
}

/// Every path of a jobset's evaluation, from this server (docs/jobsets.md).
pub async fn jobset_paths(s: &Settings, jobset: &str, rev: &str) -> Result<Vec<StorePath>, ImportError> {
    let client = http::client(s.timeout)?;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = jobset_url(s, &[jobset, "evaluations", rev])?;
        url.query_pairs_mut().append_pair("limit", "1000");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let res = http::send(&client, |c| c.get(url.clone())).await?;
        let status = res.status();
        let body = http::body_limited(res, 64 << 20).await?.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ImportError::Usage(format!(
                "{url}: 404: no evaluation {rev} of jobset {jobset} on this server (or the server has no jobset routes)"
            )));
        }
        if !status.is_success() {
            return Err(ImportError::Server(format!("GET {url}: HTTP {status}: {}", String::from_utf8_lossy(&body))));
        }
        let page: EvalPage =
            serde_json::from_slice(&body).map_err(|e| ImportError::Server(format!("GET {url}: {e}")))?;
        out.extend(page.items.into_iter().map(|i| i.path));
        match page.next_cursor {
            Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_evaluation_is_the_first() {
        let body =
            br#"{"name":"j","description":"","evaluations":[{"rev":"r2","created_at":"x","paths":1},{"rev":"r1"}]}"#;
        assert_eq!(newest_rev(body).unwrap(), "r2");
        assert!(matches!(newest_rev(br#"{"name":"j","evaluations":[]}"#), Err(NewestRevError::NoEvaluation)));
        assert!(matches!(newest_rev(b"[]"), Err(NewestRevError::Json(_))));
    }
}
