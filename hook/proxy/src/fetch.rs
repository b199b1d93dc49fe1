//! The two ends: the upstream binary cache (narinfo, nix-cache-info) and the
//! collection's paged `GET /v1/outputs/{basename}`. Every read is bounded in bytes,
//! every request in time (the clients' timeouts); nothing is retried here (Nix retries).

use nhc_core::api::{Attestation, OutputReport};
use nhc_core::narinfo::MAX_NARINFO_BYTES;
use nhc_core::NarInfo;
use reqwest::{Client, StatusCode, Url};

/// Largest page of attestations read (a page holds at most 1000; each is under 2 KiB
/// unless its references are many).
pub const MAX_PAGE_BYTES: usize = 16 << 20;
/// Attestations asked per page (the route's maximum).
const PAGE: &str = "1000";

/// What the upstream said about one narinfo.
#[derive(Debug)]
pub enum Upstream {
    Found(Box<NarInfo>),
    /// 404, 403 or 410: Nix sees the same.
    NotFound,
    /// Not a narinfo for that hash (malformed, too large, another path).
    Invalid(String),
}

/// "The upstream or the collection could not be asked": unreachable, timed out, or a
/// status that is neither an answer nor "not there".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// reqwest's errors say little at the top ("error sending request"): add the causes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Reads at most `limit` bytes of a body; `None` when it is longer.
async fn body_limited(mut res: reqwest::Response, limit: usize) -> Result<Option<Vec<u8>>, Unreachable> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| Unreachable(error_chain(&e)))? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

fn gone(s: StatusCode) -> bool {
    matches!(s, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE)
}

/// `GET {upstream}/{hash}.narinfo`, checked to describe a path with that hash.
pub async fn narinfo(client: &Client, upstream: &Url, hash: &str) -> Result<Upstream, Unreachable> {
    let url = join(upstream, &format!("{hash}.narinfo"));
    let res =
        client.get(url.clone()).send().await.map_err(|e| Unreachable(format!("GET {url}: {}", error_chain(&e))))?;
    let status = res.status();
    if gone(status) {
        return Ok(Upstream::NotFound);
    }
    if !status.is_success() {
        return Err(Unreachable(format!("GET {url}: HTTP {status}")));
    }
    let Some(body) = body_limited(res, MAX_NARINFO_BYTES).await? else {
        return Ok(Upstream::Invalid(format!("larger than {MAX_NARINFO_BYTES} bytes")));
    };
    let Ok(text) = String::from_utf8(body) else { return Ok(Upstream::Invalid("not UTF-8".into())) };
    match NarInfo::parse(&text) {
        Ok(info) if info.store_path.hash_part() == hash => Ok(Upstream::Found(Box::new(info))),
        Ok(info) => Ok(Upstream::Invalid(format!("it describes {}", info.store_path))),
        Err(e) => Ok(Upstream::Invalid(e.to_string())),
    }
}

/// `GET {upstream}/nix-cache-info` (small).
pub async fn cache_info(client: &Client, upstream: &Url) -> Result<Option<String>, Unreachable> {
    let url = join(upstream, "nix-cache-info");
    let res =
        client.get(url.clone()).send().await.map_err(|e| Unreachable(format!("GET {url}: {}", error_chain(&e))))?;
    let status = res.status();
    if gone(status) {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(Unreachable(format!("GET {url}: HTTP {status}")));
    }
    let body = body_limited(res, 64 << 10).await?.ok_or_else(|| Unreachable(format!("{url}: too large")))?;
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// Every attestation of `basename` on the collection, following `next_cursor` for
/// at most `max_pages` pages (the rest is left out: fewer votes, never more). A 404
/// is "none". The second value says whether pages were left out.
pub async fn attestations(
    client: &Client,
    collection: &Url,
    basename: &str,
    max_pages: usize,
) -> Result<(Vec<Attestation>, bool), Unreachable> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages.max(1) {
        let mut url = join(collection, "v1/outputs/");
        url.path_segments_mut()
            .map_err(|_| Unreachable("the collection URL is not a base".into()))?
            .pop_if_empty()
            .push(basename);
        url.query_pairs_mut().append_pair("limit", PAGE);
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let res =
            client.get(url.clone()).send().await.map_err(|e| Unreachable(format!("GET {url}: {}", error_chain(&e))))?;
        let status = res.status();
        if status == StatusCode::NOT_FOUND {
            return Ok((out, false));
        }
        if !status.is_success() {
            return Err(Unreachable(format!("GET {url}: HTTP {status}")));
        }
        let body = body_limited(res, MAX_PAGE_BYTES)
            .await?
            .ok_or_else(|| Unreachable(format!("GET {url}: a page over {MAX_PAGE_BYTES} bytes")))?;
        let page: OutputReport =
            serde_json::from_slice(&body).map_err(|e| Unreachable(format!("GET {url}: not an output report: {e}")))?;
        out.extend(page.attestations);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok((out, false)),
        }
    }
    Ok((out, true))
}

/// `base` (ending in `/`) joined with a relative path.
pub fn join(base: &Url, rel: &str) -> Url {
    let mut u = base.clone();
    let p = format!("{}{rel}", base.path());
    u.set_path(&p);
    u
}
