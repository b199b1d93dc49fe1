//! A binary cache (http://, https:// or file://): its `nix-cache-info` and its
//! `<hash>.narinfo` files, read with a size bound.

use std::path::PathBuf;

use nhc_core::narinfo::MAX_NARINFO_BYTES;
use nhc_core::{StorePath, STORE_DIR};
use reqwest::{Client, StatusCode};
use tokio::io::AsyncReadExt;

use crate::http;
use crate::ImportError;

#[derive(Debug, Clone)]
pub enum Cache {
    Http(String),
    File(PathBuf),
}

/// What fetching one narinfo gave.
#[derive(Debug)]
pub enum Fetched {
    Text(String),
    NotFound,
    /// Not a narinfo (too large, not UTF-8): counted as invalid.
    Invalid(String),
}

/// Why a file of the cache could not be read (after the retries): the import counts it
/// as failed, unlike a missing or an invalid one.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: {source}")]
    Request { url: String, source: http::RequestError },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
}

impl Cache {
    pub fn parse(url: &str) -> Result<Cache, ImportError> {
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(ImportError::Usage(format!("{url}: no directory")));
            }
            return Ok(Cache::File(PathBuf::from(dir)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Cache::Http(url.trim_end_matches('/').to_owned()));
        }
        Err(ImportError::Usage(format!("{url}: a cache URL starts with http://, https:// or file://")))
    }

    async fn get(&self, client: &Client, file: &str) -> Result<Fetched, FetchError> {
        match self {
            Cache::Http(base) => {
                let url = format!("{base}/{file}");
                let request = |source| FetchError::Request { url: url.clone(), source };
                let res = http::send(client, http::get(&url)).await.map_err(request)?;
                match res.status() {
                    StatusCode::OK => {}
                    StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE => return Ok(Fetched::NotFound),
                    status => return Err(FetchError::Status { url, status }),
                }
                match http::body_limited(res, MAX_NARINFO_BYTES).await.map_err(request)? {
                    Some(b) => Ok(text(b)),
                    None => Ok(Fetched::Invalid(format!("larger than {MAX_NARINFO_BYTES} bytes"))),
                }
            }
            Cache::File(dir) => {
                let path = dir.join(file);
                let f = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Fetched::NotFound),
                    Err(source) => return Err(FetchError::File { path, source }),
                };
                let mut buf = Vec::new();
                f.take(MAX_NARINFO_BYTES as u64 + 1)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|source| FetchError::File { path: path.clone(), source })?;
                if buf.len() > MAX_NARINFO_BYTES {
                    return Ok(Fetched::Invalid(format!("larger than {MAX_NARINFO_BYTES} bytes")));
                }
                Ok(text(buf))
            }
        }
    }

    /// Checks `nix-cache-info`: it must exist, and its `StoreDir` (when given) be /nix/store.
    pub async fn check(&self, client: &Client) -> Result<(), ImportError> {
        match self.get(client, "nix-cache-info").await? {
            Fetched::Text(t) => check_cache_info(&t),
            Fetched::NotFound => Err(ImportError::Cache("no nix-cache-info: not a binary cache".into())),
            Fetched::Invalid(why) => Err(ImportError::Cache(format!("nix-cache-info: {why}"))),
        }
    }

    pub async fn narinfo(&self, client: &Client, path: &StorePath) -> Result<Fetched, FetchError> {
        self.get(client, &format!("{}.narinfo", path.hash_part())).await
    }
}

fn text(b: Vec<u8>) -> Fetched {
    String::from_utf8(b).map(Fetched::Text).unwrap_or_else(|_| Fetched::Invalid("not UTF-8".into()))
}

pub fn check_cache_info(text: &str) -> Result<(), ImportError> {
    for line in text.lines() {
        if let Some(dir) = line.strip_prefix("StoreDir:") {
            let dir = dir.trim();
            if dir != STORE_DIR {
                return Err(ImportError::Cache(format!("the cache's StoreDir is {dir}, not {STORE_DIR}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(matches!(Cache::parse("file:///tmp/c"), Ok(Cache::File(p)) if p == std::path::Path::new("/tmp/c")));
        assert!(
            matches!(Cache::parse("https://cache.nixos.org/"), Ok(Cache::Http(u)) if u == "https://cache.nixos.org")
        );
        assert!(Cache::parse("s3://bucket").is_err());
        assert!(Cache::parse("file://").is_err());
    }

    #[test]
    fn store_dir() {
        assert!(check_cache_info("StoreDir: /nix/store\nWantMassQuery: 1\n").is_ok());
        assert!(check_cache_info("WantMassQuery: 1\n").is_ok());
        assert!(check_cache_info("StoreDir: /gnu/store\n").is_err());
    }
}
