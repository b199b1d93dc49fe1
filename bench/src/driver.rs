//! The load driver: N keep-alive HTTP/1.1 connections, each sending its next
//! request as soon as the previous answer is read (closed loop), with latencies in
//! an HDR histogram. Runs on one thread so that it takes at most one of the
//! machine's cores from the server it measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

pub struct Job {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
    pub token: Option<Arc<str>>,
}

pub struct Stats {
    pub requests: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Stats {
    /// No requests yet; latencies from 1 µs to 60 s at 3 significant digits.
    fn empty() -> Stats {
        Stats {
            requests: 0,
            failures: 0,
            first_failure: None,
            elapsed: Duration::ZERO,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        }
    }

    pub fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }

    pub fn summary(&self) -> String {
        let q = |p: f64| self.latency_us.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "{} requests in {:.2} s = {:.0} req/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; failures {}",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.per_second(self.requests),
            q(0.5),
            q(0.9),
            q(0.99),
            self.latency_us.max() as f64 / 1000.0,
            self.failures
        )
    }
}

/// Like [`run`], handing every response body to `seen`.
pub fn run_collect<F, G>(addr: &str, connections: usize, next: F, seen: G) -> Stats
where
    F: Fn(u64) -> Option<Job> + Send + Sync + 'static,
    G: Fn(&[u8]) + Send + Sync + 'static,
{
    run_inner(addr, connections, None, next, seen)
}

/// Sends jobs `next(0)`, `next(1)`, ... until `next` returns None or `duration`
/// has passed, over `connections` connections.
pub fn run<F>(addr: &str, connections: usize, duration: Option<Duration>, next: F) -> Stats
where
    F: Fn(u64) -> Option<Job> + Send + Sync + 'static,
{
    run_inner(addr, connections, duration, next, |_: &[u8]| {})
}

fn run_inner<F, G>(addr: &str, connections: usize, duration: Option<Duration>, next: F, seen: G) -> Stats
where
    F: Fn(u64) -> Option<Job> + Send + Sync + 'static,
    G: Fn(&[u8]) + Send + Sync + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let next = Arc::new(next);
        let seen = Arc::new(seen);
        let counter = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = duration.map(|d| start + d);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (addr, next, seen, counter) = (addr.to_owned(), next.clone(), seen.clone(), counter.clone());
            tasks.push(tokio::spawn(async move { connection(addr, next, seen, counter, deadline).await }));
        }
        let mut stats = Stats::empty();
        for t in tasks {
            let s = t.await.expect("connection task");
            stats.requests += s.requests;
            stats.failures += s.failures;
            stats.first_failure = stats.first_failure.or(s.first_failure);
            stats.latency_us.add(&s.latency_us).expect("same bounds");
        }
        stats.elapsed = start.elapsed();
        stats
    })
}

async fn connection<F, G>(
    addr: String,
    next: Arc<F>,
    seen: Arc<G>,
    counter: Arc<AtomicU64>,
    deadline: Option<Instant>,
) -> Stats
where
    F: Fn(u64) -> Option<Job>,
    G: Fn(&[u8]),
{
    let mut stats = Stats::empty();
    let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect to the server");
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Some(job) = next(counter.fetch_add(1, Ordering::Relaxed)) else { break };
        let mut req = Request::builder()
            .method(job.method)
            .uri(&job.path)
            .header(hyper::header::HOST, &addr)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &job.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(job.body)).expect("request");
        let t0 = Instant::now();
        if sender.ready().await.is_err() {
            break;
        }
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                stats.failures += 1;
                stats.first_failure.get_or_insert_with(|| e.to_string());
                break;
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let _ = stats.latency_us.record(t0.elapsed().as_micros().max(1) as u64);
        stats.requests += 1;
        seen(&body);
        if !status.is_success() {
            stats.failures += 1;
            stats.first_failure.get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
    }
    stats
}
