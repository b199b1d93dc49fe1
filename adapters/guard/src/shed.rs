//! Load shedding: a concurrency limit per route class, and a bound on the body bytes
//! that requests without a builder token may hold at once. A request that cannot get
//! its share within the queue time is answered 503 with `Retry-After` instead of
//! piling up (memory, database connections) behind the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::class::RouteClass;

/// The body size assumed for a request that does not declare one (chunked): the
/// handlers' body limit, the most it can make them buffer.
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ShedConfig {
    /// Requests of each class allowed at once, indexed by [`RouteClass::index`]; 0 = unlimited.
    pub concurrency: [usize; 5],
    /// Body bytes (declared, or [`MAX_BODY_BYTES`] when unknown) that requests without a
    /// builder token may have in flight together; 0 = unlimited.
    pub anonymous_body_bytes: u64,
    /// How long a request waits for a slot before it is shed.
    pub queue_timeout: Duration,
    /// The `Retry-After` of a shed request, in seconds.
    pub retry_after_secs: u64,
}

impl Default for ShedConfig {
    fn default() -> Self {
        ShedConfig {
            // health, read, status, submit, admin
            concurrency: [32, 128, 8, 32, 4],
            anonymous_body_bytes: 32 * 1024 * 1024,
            queue_timeout: Duration::from_millis(100),
            retry_after_secs: 1,
        }
    }
}

/// Why a request was shed (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    Concurrency,
    BodyBytes,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Concurrency => "concurrency",
            Shed::BodyBytes => "body_bytes",
        }
    }
}

/// What an admitted request holds until its response is made.
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

pub struct Shedder {
    config: ShedConfig,
    slots: Vec<Option<Arc<Semaphore>>>,
    bytes: Option<Arc<Semaphore>>,
}

/// Semaphore permits are u32 at most per acquire; bytes are counted in KiB.
const BYTE_UNIT: u64 = 1024;

impl Shedder {
    pub fn new(config: ShedConfig) -> Shedder {
        let slots =
            config.concurrency.iter().map(|&n| (n > 0).then(|| Arc::new(Semaphore::new(n)))).collect::<Vec<_>>();
        let bytes = (config.anonymous_body_bytes > 0).then(|| {
            let units = config.anonymous_body_bytes.div_ceil(BYTE_UNIT).min(Semaphore::MAX_PERMITS as u64);
            Arc::new(Semaphore::new(units as usize))
        });
        Shedder { config, slots, bytes }
    }

    pub fn retry_after_secs(&self) -> u64 {
        self.config.retry_after_secs
    }

    /// Body bytes of anonymous requests in flight now.
    pub fn anonymous_bytes_in_flight(&self) -> u64 {
        match &self.bytes {
            Some(s) => {
                let total = self.config.anonymous_body_bytes.div_ceil(BYTE_UNIT).min(Semaphore::MAX_PERMITS as u64);
                (total - s.available_permits() as u64) * BYTE_UNIT
            }
            None => 0,
        }
    }

    /// A slot for a request of `class`; `anonymous_body` is the body size to reserve
    /// for a request without a builder token (0 when it has none).
    pub async fn admit(&self, class: RouteClass, anonymous_body: u64) -> Result<Admission, Shed> {
        let slot = match &self.slots[class.index()] {
            Some(sem) => Some(self.acquire(sem, 1).await.ok_or(Shed::Concurrency)?),
            None => None,
        };
        let bytes = match &self.bytes {
            Some(sem) if anonymous_body > 0 => {
                let limit = self.config.anonymous_body_bytes;
                let units = anonymous_body.min(limit).div_ceil(BYTE_UNIT).min(u32::MAX as u64) as u32;
                Some(self.acquire(sem, units).await.ok_or(Shed::BodyBytes)?)
            }
            _ => None,
        };
        Ok(Admission { _slot: slot, _bytes: bytes })
    }

    async fn acquire(&self, sem: &Arc<Semaphore>, n: u32) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = sem.clone().try_acquire_many_owned(n) {
            return Some(p);
        }
        tokio::time::timeout(self.config.queue_timeout, sem.clone().acquire_many_owned(n)).await.ok()?.ok()
    }
}

/// The body size to reserve for a request: the declared length, the handlers' limit
/// when it is unknown, 0 for requests that carry none.
pub fn body_reservation(method: &http::Method, headers: &http::HeaderMap) -> u64 {
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        return len.to_str().ok().and_then(|v| v.parse::<u64>().ok()).map_or(MAX_BODY_BYTES, |n| n.min(MAX_BODY_BYTES));
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return MAX_BODY_BYTES;
    }
    // HTTP/2 may send a body without either header; GET/HEAD/DELETE rarely do.
    match *method {
        http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::OPTIONS => 0,
        _ => MAX_BODY_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrency: [usize; 5], bytes: u64) -> ShedConfig {
        ShedConfig {
            concurrency,
            anonymous_body_bytes: bytes,
            queue_timeout: Duration::from_millis(10),
            retry_after_secs: 1,
        }
    }

    #[tokio::test]
    async fn sheds_beyond_the_class_limit_and_frees_on_drop() {
        let s = Shedder::new(config([1, 0, 0, 0, 0], 0));
        let a = s.admit(RouteClass::Health, 0).await.unwrap();
        assert_eq!(s.admit(RouteClass::Health, 0).await.err(), Some(Shed::Concurrency));
        // Other classes are not affected.
        assert!(s.admit(RouteClass::Read, 0).await.is_ok());
        drop(a);
        assert!(s.admit(RouteClass::Health, 0).await.is_ok());
    }

    #[tokio::test]
    async fn bounds_anonymous_body_bytes() {
        let s = Shedder::new(config([0; 5], 10 * 1024));
        let a = s.admit(RouteClass::Status, 6 * 1024).await.unwrap();
        assert_eq!(s.anonymous_bytes_in_flight(), 6 * 1024);
        assert_eq!(s.admit(RouteClass::Status, 6 * 1024).await.err(), Some(Shed::BodyBytes));
        assert!(s.admit(RouteClass::Status, 4 * 1024).await.is_ok());
        drop(a);
        // A body larger than the whole budget still gets in alone.
        assert!(s.admit(RouteClass::Status, 100 * 1024).await.is_ok());
    }

    #[test]
    fn reservations() {
        let mut h = http::HeaderMap::new();
        assert_eq!(body_reservation(&http::Method::GET, &h), 0);
        assert_eq!(body_reservation(&http::Method::POST, &h), MAX_BODY_BYTES);
        h.insert(http::header::CONTENT_LENGTH, "123".parse().unwrap());
        assert_eq!(body_reservation(&http::Method::POST, &h), 123);
        h.insert(http::header::CONTENT_LENGTH, "99999999999".parse().unwrap());
        assert_eq!(body_reservation(&http::Method::POST, &h), MAX_BODY_BYTES);
    }
}
