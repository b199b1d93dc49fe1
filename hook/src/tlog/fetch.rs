//! HTTP reads of a server's `/log/` (checkpoint, key, tiles) and `/v1/builders`, a few
//! at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nhc_core::{BuilderName, PublicKey};
use ureq::tls::TlsConfig;

use crate::config::redact_url;

/// A hash tile is at most 256 × 32 bytes; an entry bundle 256 × (2 + 65,535).
pub const MAX_TILE_BYTES: u64 = 256 * (2 + 65_535);
/// A checkpoint or key: a few lines.
const MAX_NOTE_BYTES: u64 = 64 * 1024;
/// `/v1/builders`: a JSON list.
const MAX_BUILDERS_BYTES: u64 = 16 * 1024 * 1024;
/// A tile is bigger than an API answer: at least this long for a whole request.
const MIN_TILE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a read of the log failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// 404: the server does not have it (for a tile inside the tree: the log lost it).
    #[error("{url}: HTTP 404: not found")]
    NotFound { url: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url}: unexpected answer: {message}")]
    Unexpected { url: String, message: String },
}

/// A client of one server's log.
#[derive(Clone)]
pub struct LogHttp {
    agent: ureq::Agent,
    /// The server URL without a trailing `/`.
    base: String,
}

impl LogHttp {
    pub fn new(server: &str, connect_timeout: Duration, timeout: Duration) -> LogHttp {
        let base = server.trim_end_matches('/').to_owned();
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(timeout.max(MIN_TILE_TIMEOUT)))
            .http_status_as_error(false)
            // Tiles are immutable and checked against the checkpoint: a CDN may redirect.
            .max_redirects(5)
            .tls_config(TlsConfig::builder().root_certs(crate::api::roots_for(&base)).build())
            .user_agent(concat!("nhc/", env!("CARGO_PKG_VERSION")))
            .build();
        LogHttp { agent: config.into(), base }
    }

    pub fn base(&self) -> String {
        redact_url(&self.base)
    }

    /// `GET <server><path>`, at most `limit` bytes.
    pub fn get(&self, path: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}{path}", self.base);
        let shown = || redact_url(&url);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| FetchError::Unreachable { url: shown(), message: e.to_string().replace(&url, &shown()) })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| FetchError::Unreachable { url: shown(), message: e.to_string() })?;
        match status {
            200 => Ok(body),
            404 => Err(FetchError::NotFound { url: shown() }),
            _ => Err(FetchError::Status {
                url: shown(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(200).collect::<String>().trim().to_owned(),
            }),
        }
    }

    /// A tile or entry bundle by its C2SP path (`tile/...`).
    pub fn tile(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        self.get(&format!("/log/{path}"), MAX_TILE_BYTES)
    }

    pub fn checkpoint(&self) -> Result<Vec<u8>, FetchError> {
        self.get("/log/checkpoint", MAX_NOTE_BYTES)
    }

    pub fn key(&self) -> Result<String, FetchError> {
        let b = self.get("/log/key", MAX_NOTE_BYTES)?;
        String::from_utf8(b).map(|s| s.trim().to_owned()).map_err(|_| FetchError::Unexpected {
            url: format!("{}/log/key", self.base()),
            message: "not UTF-8".into(),
        })
    }

    /// `GET /v1/builders`: every live builder's keys.
    pub fn builders(&self) -> Result<HashMap<BuilderName, Vec<PublicKey>>, FetchError> {
        #[derive(serde::Deserialize)]
        struct Builder {
            name: BuilderName,
            public_keys: Vec<PublicKey>,
        }
        let body = self.get("/v1/builders", MAX_BUILDERS_BYTES)?;
        let list: Vec<Builder> = serde_json::from_slice(&body).map_err(|e| FetchError::Unexpected {
            url: format!("{}/v1/builders", self.base()),
            message: e.to_string(),
        })?;
        Ok(list.into_iter().map(|b| (b.name, b.public_keys)).collect())
    }

    /// Fetches `paths` (tile paths), at most `concurrency` at once.
    pub fn tiles(&self, paths: &[String], concurrency: usize) -> Vec<Result<Vec<u8>, FetchError>> {
        let next = AtomicUsize::new(0);
        type Slot = Option<Result<Vec<u8>, FetchError>>;
        let out: Mutex<Vec<Slot>> = Mutex::new(vec![None; paths.len()]);
        std::thread::scope(|s| {
            for _ in 0..concurrency.clamp(1, paths.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { break };
                    let r = self.tile(p);
                    if let Ok(mut o) = out.lock() {
                        o[i] = Some(r);
                    }
                });
            }
        });
        out.into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(FetchError::Unexpected { url: String::new(), message: "not fetched".into() }))
            })
            .collect()
    }
}
