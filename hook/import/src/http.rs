//! One HTTP client for everything: kept-alive connections, HTTP/2 when the server
//! offers it (ALPN), retries with backoff on connection errors, 5xx and 429.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};

use crate::ImportError;

/// How often a request is tried before its failure counts.
pub const ATTEMPTS: u32 = 6;
/// The longest a `Retry-After` is honoured for; a server asking for more is treated as down.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

pub fn client(timeout: Duration) -> Result<Client, ImportError> {
    Client::builder()
        .user_agent(concat!("nhc-import/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ImportError::Http(format!("cannot build the HTTP client: {e}")))
}

/// The delay before attempt `n + 1`: 200 ms doubling, at most 10 s, or what the
/// server's `Retry-After` (seconds) asks for.
pub fn backoff(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs).min(MAX_RETRY_AFTER);
    }
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(10))
}

/// No answer after the retries, or a body that broke off. Displays reqwest's causes
/// too (its own message says little: "error sending request").
#[derive(Debug, thiserror::Error)]
#[error("{}", error_chain(.0))]
pub struct RequestError(#[from] pub reqwest::Error);

fn retryable(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS
}

/// Sends the request built by `make` (built again for each attempt), retrying what
/// may succeed later. The last answer is returned whatever its status; an error
/// only when no answer came.
pub async fn send(client: &Client, make: impl Fn(&Client) -> RequestBuilder) -> Result<Response, RequestError> {
    let mut attempt = 0;
    loop {
        let r = make(client).send().await;
        attempt += 1;
        let wait = match &r {
            Ok(res) if retryable(res.status()) && attempt < ATTEMPTS => {
                backoff(attempt - 1, res.headers().get("retry-after").and_then(|v| v.to_str().ok()))
            }
            Err(e) if (e.is_connect() || e.is_timeout() || e.is_request()) && attempt < ATTEMPTS => {
                backoff(attempt - 1, None)
            }
            _ => return r.map_err(RequestError),
        };
        tokio::time::sleep(wait).await;
    }
}

/// Reads at most `limit` bytes of a body; `None` when it is longer.
pub async fn body_limited(mut res: Response, limit: usize) -> Result<Option<Vec<u8>>, RequestError> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

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

pub fn get(url: &str) -> impl Fn(&Client) -> RequestBuilder + '_ {
    move |c| c.request(Method::GET, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        assert_eq!(backoff(0, None), Duration::from_millis(200));
        assert_eq!(backoff(1, None), Duration::from_millis(400));
        assert_eq!(backoff(20, None), Duration::from_secs(10));
        assert_eq!(backoff(0, Some("3")), Duration::from_secs(3));
        assert_eq!(backoff(0, Some("100000")), MAX_RETRY_AFTER);
        // An HTTP date is not understood: the usual backoff.
        assert_eq!(backoff(0, Some("Wed, 21 Oct 2015 07:28:00 GMT")), Duration::from_millis(200));
    }
}
