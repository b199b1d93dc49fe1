//! Load shedding: a concurrency limit per route class, a share of the status classes'
//! slots per client IP, and a bound on the body bytes that requests without a builder
//! token may hold at once. A request that cannot get its share within the queue time
//! is answered 503 with `Retry-After` instead of piling up (memory, database
//! connections) behind the others.
//!
//! Fairness in `POST /v1/status`, which anyone may send: small requests (by declared
//! size) and bulk ones have separate slots ([`RouteClass::Status`] and
//! [`RouteClass::StatusBulk`]), so 10,000-path or slow bodies cannot take the slots of
//! a few hundred paths; and one IP may hold at most [`ShedConfig::per_ip_share`] of
//! either class's slots, so one client cannot take them all from the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::class::RouteClass;

/// The body size assumed for a request that does not declare one (chunked): the
/// handlers' body limit, the most it can make them buffer.
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ShedConfig {
    /// Requests of each class allowed at once, indexed by [`RouteClass::index`]; 0 = unlimited.
    pub concurrency: [usize; RouteClass::COUNT],
    /// `POST /v1/status` declaring a body of at most this many bytes is of the small
    /// [`RouteClass::Status`] class, else of [`RouteClass::StatusBulk`].
    pub status_small_bytes: u64,
    /// Percent of a status class's slots that requests from one client IP may hold
    /// (waiting or running; at least one slot); 0 or 100 = no per-IP share.
    pub per_ip_share: u8,
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
            // health, read, status, status_bulk, submit, admin
            concurrency: [32, 128, 8, 4, 32, 4],
            status_small_bytes: DEFAULT_STATUS_SMALL_BYTES,
            per_ip_share: 50,
            anonymous_body_bytes: 32 * 1024 * 1024,
            queue_timeout: Duration::from_millis(100),
            retry_after_secs: 1,
        }
    }
}

/// The default small-status size: about 1,000 store paths of JSON.
pub const DEFAULT_STATUS_SMALL_BYTES: u64 = 64 * 1024;

/// Why a request was shed (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    Concurrency,
    PerIp,
    BodyBytes,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Concurrency => "concurrency",
            Shed::PerIp => "per_ip",
            Shed::BodyBytes => "body_bytes",
        }
    }
}

/// What an admitted request holds until its response is made.
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
    _ip: Option<IpShare>,
}

/// Requests in flight per (class, client IP), for the classes with a per-IP share.
/// Entries go when their count drops to 0, so it holds at most one per request.
type IpCounts = Arc<Mutex<HashMap<(usize, IpAddr), usize>>>;

/// One request's place in its IP's share, given back on drop.
struct IpShare {
    counts: IpCounts,
    key: (usize, IpAddr),
}

impl Drop for IpShare {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

pub struct Shedder {
    config: ShedConfig,
    slots: Vec<Option<Arc<Semaphore>>>,
    bytes: Option<Arc<Semaphore>>,
    per_ip: IpCounts,
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
        Shedder { config, slots, bytes, per_ip: IpCounts::default() }
    }

    pub fn status_small_bytes(&self) -> u64 {
        self.config.status_small_bytes
    }

    /// The slots of `class` one IP may hold, when the class has a per-IP share.
    pub fn per_ip_cap(&self, class: RouteClass) -> Option<usize> {
        let share = self.config.per_ip_share;
        if !matches!(class, RouteClass::Status | RouteClass::StatusBulk) || share == 0 || share >= 100 {
            return None;
        }
        let n = self.config.concurrency[class.index()];
        (n > 0).then(|| (n * share as usize / 100).max(1))
    }

    /// Whether requests of `class` are kept out of the anonymous body budget: the small
    /// status class when it is limited, whose bodies its slots bound (concurrency ×
    /// `status_small_bytes`), so bulk and slow bodies cannot starve it through the budget.
    pub fn outside_body_budget(&self, class: RouteClass) -> bool {
        class == RouteClass::Status && self.config.concurrency[class.index()] > 0
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

    /// A slot for a request of `class` from `ip` (when known); `anonymous_body` is the
    /// body size to reserve for a request without a builder token (0 when it has none).
    pub async fn admit(&self, class: RouteClass, anonymous_body: u64, ip: Option<IpAddr>) -> Result<Admission, Shed> {
        let ip_share = match (self.per_ip_cap(class), ip) {
            (Some(cap), Some(ip)) => {
                let key = (class.index(), ip);
                let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
                let n = counts.entry(key).or_default();
                if *n >= cap {
                    return Err(Shed::PerIp);
                }
                *n += 1;
                Some(IpShare { counts: self.per_ip.clone(), key })
            }
            _ => None,
        };
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
        Ok(Admission { _slot: slot, _bytes: bytes, _ip: ip_share })
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

    fn config(concurrency: [usize; RouteClass::COUNT], bytes: u64) -> ShedConfig {
        ShedConfig {
            concurrency,
            status_small_bytes: DEFAULT_STATUS_SMALL_BYTES,
            per_ip_share: 50,
            anonymous_body_bytes: bytes,
            queue_timeout: Duration::from_millis(10),
            retry_after_secs: 1,
        }
    }

    #[tokio::test]
    async fn sheds_beyond_the_class_limit_and_frees_on_drop() {
        let s = Shedder::new(config([1, 0, 0, 0, 0, 0], 0));
        let a = s.admit(RouteClass::Health, 0, None).await.unwrap();
        assert_eq!(s.admit(RouteClass::Health, 0, None).await.err(), Some(Shed::Concurrency));
        // Other classes are not affected.
        assert!(s.admit(RouteClass::Read, 0, None).await.is_ok());
        drop(a);
        assert!(s.admit(RouteClass::Health, 0, None).await.is_ok());
    }

    #[tokio::test]
    async fn bounds_anonymous_body_bytes() {
        let s = Shedder::new(config([0; RouteClass::COUNT], 10 * 1024));
        let a = s.admit(RouteClass::Status, 6 * 1024, None).await.unwrap();
        assert_eq!(s.anonymous_bytes_in_flight(), 6 * 1024);
        assert_eq!(s.admit(RouteClass::Status, 6 * 1024, None).await.err(), Some(Shed::BodyBytes));
        assert!(s.admit(RouteClass::Status, 4 * 1024, None).await.is_ok());
        drop(a);
        // A body larger than the whole budget still gets in alone.
        assert!(s.admit(RouteClass::Status, 100 * 1024, None).await.is_ok());
    }

    #[tokio::test]
    async fn one_ip_holds_at_most_its_share_of_a_status_class() {
        let s = Shedder::new(config([0, 0, 4, 4, 0, 0], 0));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(s.per_ip_cap(RouteClass::StatusBulk), Some(2));
        assert_eq!(s.per_ip_cap(RouteClass::Read), None);
        let a1 = s.admit(RouteClass::StatusBulk, 0, Some(a)).await.unwrap();
        let _a2 = s.admit(RouteClass::StatusBulk, 0, Some(a)).await.unwrap();
        assert_eq!(s.admit(RouteClass::StatusBulk, 0, Some(a)).await.err(), Some(Shed::PerIp));
        // The small class and other IPs have their own counts.
        let _a3 = s.admit(RouteClass::Status, 0, Some(a)).await.unwrap();
        let _b1 = s.admit(RouteClass::StatusBulk, 0, Some(b)).await.unwrap();
        let _b2 = s.admit(RouteClass::StatusBulk, 0, Some(b)).await.unwrap();
        // The class is full now: a third IP waits its queue time and is shed.
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(s.admit(RouteClass::StatusBulk, 0, Some(c)).await.err(), Some(Shed::Concurrency));
        drop(a1);
        assert!(s.admit(RouteClass::StatusBulk, 0, Some(a)).await.is_ok());
        // The shed and dropped requests left no count behind.
        assert_eq!(s.per_ip.lock().unwrap().get(&(RouteClass::StatusBulk.index(), c)), None);
        // A share rounds down but gives at least one slot; 100 % is no share.
        let one = Shedder::new(ShedConfig { per_ip_share: 10, ..config([0, 0, 4, 4, 0, 0], 0) });
        assert_eq!(one.per_ip_cap(RouteClass::Status), Some(1));
        let off = Shedder::new(ShedConfig { per_ip_share: 100, ..config([0, 0, 4, 4, 0, 0], 0) });
        assert_eq!(off.per_ip_cap(RouteClass::Status), None);
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
