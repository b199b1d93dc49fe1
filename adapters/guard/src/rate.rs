//! A token bucket per builder token id (`nhc_<id>_<secret>`): a builder over its rate
//! gets 429 with `Retry-After`. The secret is not checked here (the handlers do), so
//! this stops a runaway builder, not an attacker (who could invent ids; the submit
//! class's concurrency limit bounds those).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; full (idle) buckets are dropped first when it is reached.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// Requests per second a builder may sustain; 0 turns the limit off.
    pub per_second: f64,
    /// Requests a builder may make at once after being idle.
    pub burst: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig { per_second: 20.0, burst: 40.0 }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    config: RateConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> RateLimiter {
        RateLimiter { config, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        self.config.per_second > 0.0
    }

    /// Takes one request from `id`'s bucket; `Err` is how long until the next is allowed.
    pub fn check(&self, id: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let RateConfig { per_second, burst } = self.config;
        let burst = burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(id) && buckets.len() >= MAX_BUCKETS {
            let full_after = Duration::from_secs_f64(burst / per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if buckets.len() >= MAX_BUCKETS {
                // Too many ids at once to remember: let the request through rather
                // than grow without bound; the concurrency limits still apply.
                return Ok(());
            }
        }
        let b = buckets.entry(id.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_second))
        }
    }
}

/// The token id of a builder token in an `Authorization: Bearer` header, lowercased;
/// `None` for no header, the admin token, or anything else.
pub fn builder_token_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = token.trim().strip_prefix("nhc_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|c| c.is_ascii_hexdigit()) && !secret.is_empty()).then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_rate() {
        let r = RateLimiter::new(RateConfig { per_second: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.check("a", t0).is_ok());
        }
        let wait = r.check("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        // Another builder has its own bucket.
        assert!(r.check("b", t0).is_ok());
        assert!(r.check("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(r.check("a", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn off_when_rate_is_zero() {
        let r = RateLimiter::new(RateConfig { per_second: 0.0, burst: 1.0 });
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(r.check("a", t0).is_ok());
        }
    }

    #[test]
    fn token_ids() {
        let mut h = http::HeaderMap::new();
        assert_eq!(builder_token_id(&h), None);
        h.insert("authorization", "Bearer nhc_0123456789ABCDEF_secret".parse().unwrap());
        assert_eq!(builder_token_id(&h).as_deref(), Some("0123456789abcdef"));
        for bad in
            ["Bearer admin-token", "Basic nhc_0123456789abcdef_s", "Bearer nhc_0123_s", "Bearer nhc_0123456789abcdef_"]
        {
            h.insert("authorization", bad.parse().unwrap());
            assert_eq!(builder_token_id(&h), None, "{bad}");
        }
    }
}
