//! The HTTP listener. `axum::serve` sets no timer and no limit, so this is its loop
//! with: a first-byte timeout that covers the HTTP/1-vs-2 detection, the header and
//! body timeouts, an idle timeout between requests (both protocols), a global and a
//! per-IP connection cap that evicts the longest-idle connection to make room, and an
//! accept loop that backs off (and frees an idle connection) when out of descriptors.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use nhc_guard::Metrics;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// On shutdown, requests in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A connection told to close (idle, evicted) gets this long to finish writing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long the accept loop pauses after an error (out of descriptors, ...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The listener's limits (`nhc-server serve` flags).
#[derive(Debug, Clone)]
pub struct Limits {
    /// The first bytes (all 24 of an HTTP/2 preface) must arrive within this time.
    pub first_byte_timeout: Duration,
    /// The first request's headers must be complete within this time of the
    /// connection (HTTP/1: also each later request's, once its first byte came).
    pub header_read_timeout: Duration,
    /// A request body must be complete within this time.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_streams: u32,
    /// HTTP/2 PING interval; a peer that does not answer within the same time is dropped.
    pub h2_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_byte_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_ip: 256,
            h2_max_streams: 64,
            h2_keep_alive: Duration::from_secs(30),
        }
    }
}

/// What the watchdog of one connection looks at.
struct ConnState {
    ip: IpAddr,
    /// Requests being handled on it.
    in_flight: AtomicUsize,
    /// Whether it has started a request yet.
    served: AtomicBool,
    /// Milliseconds since `Tracker::epoch` when it last became idle.
    idle_since: AtomicU64,
    /// Set when the tracker evicts it to make room.
    evict: Notify,
}

impl ConnState {
    fn idle_for(&self, now_ms: u64) -> Option<u64> {
        (self.in_flight.load(Ordering::Acquire) == 0)
            .then(|| now_ms.saturating_sub(self.idle_since.load(Ordering::Acquire)))
    }
}

struct Tracker {
    epoch: Instant,
    limits: Limits,
    metrics: Arc<Metrics>,
    inner: Mutex<TrackerInner>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct TrackerInner {
    conns: HashMap<u64, Arc<ConnState>>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Tracker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Room for a connection from `ip`: evicts the longest-idle connection (of that
    /// IP when its cap is reached) if need be; `None` when every one is busy.
    fn admit(&self, ip: IpAddr) -> Option<(u64, Arc<ConnState>)> {
        let now = self.now_ms();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_connections_per_ip
            && !self.evict_idlest(&mut inner, Some(ip), now)
        {
            return None;
        }
        if inner.conns.len() >= self.limits.max_connections && !self.evict_idlest(&mut inner, None, now) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            ip,
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(now),
            evict: Notify::new(),
        });
        inner.conns.insert(id, state.clone());
        *inner.per_ip.entry(ip).or_default() += 1;
        self.metrics.connection_open(1);
        Some((id, state))
    }

    /// Out of descriptors: close the longest-idle connection to get one back.
    fn evict_one(&self) -> bool {
        let now = self.now_ms();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.evict_idlest(&mut inner, None, now)
    }

    /// Closes an idle connection (of `ip` if given): one that has not sent a request
    /// yet first (idle sockets, half prefaces), so a flood of new sockets does not close
    /// the keep-alive connections of clients between two requests; among those, the
    /// longest idle.
    fn evict_idlest(&self, inner: &mut TrackerInner, ip: Option<IpAddr>, now: u64) -> bool {
        let victim = inner
            .conns
            .iter()
            .filter(|(_, c)| ip.is_none_or(|ip| c.ip == ip))
            .filter_map(|(id, c)| {
                let unserved = !c.served.load(Ordering::Acquire);
                c.idle_for(now).map(|idle| (unserved, idle, *id))
            })
            .max();
        let Some((_, _, id)) = victim else { return false };
        if let Some(c) = Self::forget(inner, id) {
            // notify_one keeps the wake-up even if the watchdog is not waiting yet.
            c.evict.notify_one();
            self.metrics.connection_open(-1);
            self.metrics.connection_event("evicted");
        }
        true
    }

    fn release(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if Self::forget(&mut inner, id).is_some() {
            self.metrics.connection_open(-1);
        }
    }

    fn forget(inner: &mut TrackerInner, id: u64) -> Option<Arc<ConnState>> {
        let c = inner.conns.remove(&id)?;
        if let Some(n) = inner.per_ip.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&c.ip);
            }
        }
        Some(c)
    }
}

/// Marks a request in flight on its connection for as long as it is handled.
struct Busy {
    state: Arc<ConnState>,
    tracker: Arc<Tracker>,
}

impl Busy {
    fn new(state: Arc<ConnState>, tracker: Arc<Tracker>) -> Busy {
        state.served.store(true, Ordering::Release);
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy { state, tracker }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.state.idle_since.store(self.tracker.now_ms(), Ordering::Release);
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .keep_alive_interval(limits.h2_keep_alive)
        .keep_alive_timeout(limits.h2_keep_alive);
    let builder = Arc::new(builder);
    let tracker = Arc::new(Tracker {
        epoch: Instant::now(),
        limits: limits.clone(),
        metrics: metrics.clone(),
        inner: Mutex::default(),
        next_id: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: free one and pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    metrics.connection_event("accept_error");
                    if matches!(e.raw_os_error(), Some(23 | 24)) {
                        tracker.evict_one();
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some((id, state)) = tracker.admit(peer.ip()) else {
            metrics.connection_event("refused");
            refuse(stream);
            continue;
        };
        metrics.connection_event("accepted");
        let _ = stream.set_nodelay(true);
        let (app, builder, tracker, limits) = (app.clone(), builder.clone(), tracker.clone(), limits.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, app, &builder, &tracker, &state, &limits, &mut stop).await;
            tracker.release(id);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; all gone = all closed.
    if tokio::time::timeout(SHUTDOWN_GRACE + CLOSE_GRACE, stop_tx.closed()).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}

/// Over the caps with every connection busy: say so (to an HTTP/1 client) and close.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
}

async fn connection(
    stream: TcpStream,
    app: Router,
    builder: &Builder<TokioExecutor>,
    tracker: &Arc<Tracker>,
    state: &Arc<ConnState>,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) {
    let first = tokio::select! {
        r = tokio::time::timeout(limits.first_byte_timeout, first_bytes(&stream)) => r,
        _ = state.evict.notified() => return,
        _ = stop.changed() => return,
    };
    match first {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracker.metrics.connection_event("first_byte_timeout");
            return;
        }
    }
    let (svc_state, svc_tracker) = (state.clone(), tracker.clone());
    let ip = nhc_guard::ClientIp(state.ip);
    let service = app.map_request(move |req: hyper::Request<TrackedBody>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ip);
        req
    });
    let service = tower::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::new(svc_state.clone(), svc_tracker.clone());
        let http1 = req.version() <= hyper::Version::HTTP_11;
        let read_all = Arc::new(AtomicBool::new(req.body().is_end_stream()));
        let req = req.map(|inner| TrackedBody { inner, read_all: read_all.clone() });
        let call = service.clone().oneshot(req);
        async move {
            let mut res = call.await;
            drop(busy);
            // Answered without reading the whole body (a 401 before the body, a 405, a
            // 413): hyper then drains what has arrived or closes the connection, but
            // only after it wrote the head with keep-alive, so a client that reuses the
            // connection sends its next request into a closed socket. Say it first.
            if http1 && !read_all.load(Ordering::Acquire) {
                if let Ok(res) = &mut res {
                    res.headers_mut()
                        .insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                }
            }
            res
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let grace = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        reason = watchdog(tracker, state, limits) => {
            // Evictions were counted by the tracker.
            if let Some(reason) = reason {
                tracker.metrics.connection_event(reason);
            }
            CLOSE_GRACE
        }
        _ = stop.changed() => SHUTDOWN_GRACE,
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn).await;
}

/// A request body that records whether it was read to its end.
struct TrackedBody {
    inner: Incoming,
    read_all: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_all.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Waits until the first bytes are there: a full HTTP/2 preface, or anything that
/// is not its beginning (HTTP/1 or garbage, which hyper answers). `false` if the
/// client closed first. Peeking leaves the bytes for hyper's own detection.
async fn first_bytes(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 24];
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if n == H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // Part of a preface: peek returns at once while those bytes wait, so poll.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resolves (with the reason) when the connection should close: evicted, no first
/// request within the header timeout, or idle longer than the idle timeout.
async fn watchdog(tracker: &Tracker, state: &ConnState, limits: &Limits) -> Option<&'static str> {
    loop {
        let served = state.served.load(Ordering::Acquire);
        let limit = if served { limits.idle_timeout } else { limits.header_read_timeout };
        let wait = match state.idle_for(tracker.now_ms()) {
            Some(idle) if idle >= limit.as_millis() as u64 => {
                return Some(if served { "idle_timeout" } else { "header_timeout" });
            }
            Some(idle) => limit - Duration::from_millis(idle),
            None => limit,
        };
        // The first request may start while waiting on the header timeout: look
        // again within the shorter limit so the idle timeout applies from then on.
        let wait = wait.min(limits.idle_timeout.min(limits.header_read_timeout));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.evict.notified() => return None,
        }
    }
}

/// Raises the soft limit on open files to the hard one (as Go and nginx do), so the
/// connection cap, not the default 1024 descriptors, is what limits clients. Returns
/// the limit now in force.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    // rlim_t is u64 on Linux but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}
