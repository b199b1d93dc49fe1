//! `nhc-bench soak`: mixed load for a while, watching the server's health.
//!
//! Well-behaved clients (16 builders submitting builds, readers of outputs,
//! derivations and narinfo, a bulk status client) at a steady pace, beside hostile
//! ones (idle sockets, some sending half an HTTP/2 preface; bodies trickled a few bytes
//! a second; 10,000-path status requests back to back). `/health` is sampled from a
//! fresh connection every 100 ms and the server's RSS every second. The verdict fails
//! when `/health` p99 reaches the bound, the RSS grows by more than the bound, or a
//! well-behaved client sees an error. Everything is bounded in count and time, and
//! only 127.0.0.1 is allowed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dataset::Dataset;
use crate::rss;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// How long the mixed load runs.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Builders submitting (each a build of 1 to 3 outputs per interval).
    #[arg(long, default_value_t = 16)]
    pub builders: u64,
    /// Milliseconds between two submissions of one builder.
    #[arg(long, default_value_t = 200)]
    pub submit_interval_ms: u64,
    /// Paths loaded before the soak (attested by 4 of the builders), for the reads.
    #[arg(long, default_value_t = 5000)]
    pub preload: u64,
    /// Reading clients, each one request per interval.
    #[arg(long, default_value_t = 4)]
    pub readers: u64,
    #[arg(long, default_value_t = 20)]
    pub read_interval_ms: u64,
    /// Paths per well-behaved `POST /v1/status` (one per second).
    #[arg(long, default_value_t = 500)]
    pub status_paths: u64,
    /// Hostile: sockets that connect and send nothing (one in four half an HTTP/2 preface).
    #[arg(long, default_value_t = 1500)]
    pub idle_sockets: u64,
    /// Hostile: requests announcing a 4 MiB body and sending 64 bytes a second.
    #[arg(long, default_value_t = 50)]
    pub slow_bodies: u64,
    /// Hostile: clients sending 10,000-path `POST /v1/status` back to back.
    #[arg(long, default_value_t = 2)]
    pub huge_status: u64,
    /// Fail when the p99 of `/health` reaches this (milliseconds).
    #[arg(long, default_value_t = 50.0)]
    pub health_p99_ms: f64,
    /// Fail when the RSS grows by more than this over its value at the start (MiB).
    #[arg(long, default_value_t = 64)]
    pub rss_growth_mib: u64,
}

/// Outcomes of one kind of client.
#[derive(Default, Debug)]
struct Count {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Count {
    fn record(&mut self, r: &Result<(StatusCode, Bytes), String>, ok: impl Fn(StatusCode) -> bool) {
        match r {
            Ok((s, _)) if ok(*s) => self.ok += 1,
            Ok((s, body)) => self.error(format!("{s}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))),
            Err(e) => self.error(e.clone()),
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn line(&self) -> String {
        format!(
            "{} ok, {} errors{}",
            self.ok,
            self.errors,
            self.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )
    }
}

#[derive(Default)]
struct Hostile {
    idle_open: u64,
    idle_max_open: u64,
    idle_closed_by_server: u64,
    idle_connect_failed: u64,
    slow_started: u64,
    slow_answered: u64,
    slow_closed: u64,
    huge: std::collections::BTreeMap<String, u64>,
}

#[derive(Default)]
struct Report {
    submits: Count,
    reads: Count,
    status: Count,
    health_failures: Count,
    hostile: Hostile,
}

/// A keep-alive HTTP/1.1 connection, opened again after an error.
struct Conn {
    addr: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        Conn { addr: addr.to_owned(), sender: None }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let r = tokio::time::timeout(timeout, self.send_inner(method, path, body, token)).await;
        let r = r.unwrap_or_else(|_| Err(format!("no answer in {timeout:?}")));
        if r.is_err() {
            self.sender = None;
        }
        r
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<(StatusCode, Bytes), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.addr).await.map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::task::spawn_local(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("no connection")?;
        sender.ready().await.map_err(|e| format!("connection: {e}"))?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok((status, body))
    }
}

/// `GET /health` on a fresh connection, as a monitor (or a new client) would see it.
async fn health(addr: &str) -> Result<(), String> {
    let mut c = Conn::new(addr);
    match c.send(Method::GET, "/health", Bytes::new(), None, Duration::from_secs(5)).await? {
        (s, _) if s == StatusCode::OK => Ok(()),
        (s, body) => Err(format!("{s}: {}", String::from_utf8_lossy(&body))),
    }
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub fn run(addr: &str, admin: Option<&str>, seed: u64, server_pid: Option<u32>, args: &Args) -> bool {
    if !addr.starts_with("127.0.0.1:") {
        eprintln!("error: the soak runs against 127.0.0.1 only (--addr 127.0.0.1:PORT)");
        std::process::exit(2);
    }
    let Some(pid) = server_pid else {
        eprintln!("error: the soak needs --server-pid to watch the server's memory");
        std::process::exit(2);
    };
    let ds = Dataset { seed };
    let tokens = crate::create_builders(addr, admin, &ds, args.builders);
    let keys: Vec<_> = (0..args.builders).map(|b| ds.key(b)).collect();
    // Preload: 4 builders attest every preloaded path, one build per request.
    let loaders = args.builders.min(4);
    let bodies: Vec<(std::sync::Arc<str>, Bytes)> = (0..loaders)
        .flat_map(|b| {
            let (ds, key, token) = (&ds, &keys[b as usize], tokens[b as usize].clone());
            (0..args.preload).map(move |i| (token.clone(), Bytes::from(ds.submission(key, b, i, 1))))
        })
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let stats = crate::driver::run(addr, 4, None, move |i| {
        bodies.get(i as usize).map(|(t, b)| crate::driver::Job {
            method: Method::POST,
            path: "/v1/attestations".into(),
            body: b.clone(),
            token: Some(t.clone()),
        })
    });
    eprintln!("preloaded {} paths x {loaders} builders: {}", args.preload, stats.summary());
    if stats.failures > 0 {
        eprintln!("error: the preload failed: {}", stats.first_failure.as_deref().unwrap_or("?"));
        return false;
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let report = Rc::new(RefCell::new(Report::default()));
    let health_us = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")));
    let rss_samples = Rc::new(RefCell::new(Vec::<u64>::new()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let ds = Rc::new(ds);
    let keys = Rc::new(keys);
    local.block_on(&rt, async {
        let mut tasks = Vec::new();
        let alive = move || Instant::now() < deadline;
        // RSS every second.
        {
            let samples = rss_samples.clone();
            tasks.push(tokio::task::spawn_local(async move {
                while alive() {
                    if let Some(kb) = rss::status_kb(pid, "VmRSS:") {
                        samples.borrow_mut().push(kb);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }));
        }
        // /health every 100 ms from a fresh connection.
        {
            let (h, report, addr) = (health_us.clone(), report.clone(), addr.to_owned());
            tasks.push(tokio::task::spawn_local(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while alive() {
                    tick.tick().await;
                    let t0 = Instant::now();
                    let r = health(&addr).await;
                    let _ = h.borrow_mut().record(t0.elapsed().as_micros().max(1) as u64);
                    match r {
                        Ok(()) => report.borrow_mut().health_failures.ok += 1,
                        Err(e) => report.borrow_mut().health_failures.error(e),
                    }
                }
            }));
        }
        // Builders: one build (1 to 3 outputs, named) per interval, fresh paths.
        for b in 0..args.builders {
            let (report, ds, keys, token, addr) =
                (report.clone(), ds.clone(), keys.clone(), tokens[b as usize].clone(), addr.to_owned());
            let interval = Duration::from_millis(args.submit_interval_ms);
            tasks.push(tokio::task::spawn_local(async move {
                let mut conn = Conn::new(&addr);
                let mut tick = tokio::time::interval(interval);
                // Paths of builder b: its own range, far above the preload.
                let mut next = 1_000_000_000 * (b + 1);
                while alive() {
                    tick.tick().await;
                    let n = 1 + next % 3;
                    let body = Bytes::from(ds.submission(&keys[b as usize], b, next, n));
                    next += n;
                    let r =
                        conn.send(Method::POST, "/v1/attestations", body, Some(&token), Duration::from_secs(10)).await;
                    report.borrow_mut().submits.record(&r, |s| s.is_success());
                }
            }));
        }
        // Readers: outputs, derivations and narinfo of preloaded paths in turn.
        for r in 0..args.readers {
            let (report, ds, addr, preload) = (report.clone(), ds.clone(), addr.to_owned(), args.preload.max(1));
            let interval = Duration::from_millis(args.read_interval_ms);
            tasks.push(tokio::task::spawn_local(async move {
                let mut conn = Conn::new(&addr);
                let mut tick = tokio::time::interval(interval);
                let mut k: u64 = r;
                while alive() {
                    tick.tick().await;
                    k += 1;
                    let i = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % preload;
                    let path = match k % 3 {
                        0 => format!("/v1/outputs/{}", ds.output_path(i).basename()),
                        1 => format!("/v1/derivations/{}", ds.drv_path(i).as_store_path().basename()),
                        _ => format!("/{}.narinfo", ds.output_path(i).hash_part()),
                    };
                    let res = conn.send(Method::GET, &path, Bytes::new(), None, Duration::from_secs(10)).await;
                    report.borrow_mut().reads.record(&res, |s| s.is_success());
                }
            }));
        }
        // Bulk status of known paths, once a second.
        {
            let (report, ds, addr) = (report.clone(), ds.clone(), addr.to_owned());
            let n = args.status_paths.min(args.preload).max(1);
            tasks.push(tokio::task::spawn_local(async move {
                let mut conn = Conn::new(&addr);
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut first = 0;
                while alive() {
                    tick.tick().await;
                    let paths: Vec<String> =
                        (first..first + n).map(|i| ds.output_path(i % n).as_str().to_owned()).collect();
                    first += n;
                    let body = Bytes::from(serde_json::json!({ "paths": paths }).to_string());
                    let r = conn.send(Method::POST, "/v1/status", body, None, Duration::from_secs(10)).await;
                    report.borrow_mut().status.record(&r, |s| s.is_success());
                }
            }));
        }
        // Hostile: idle sockets, held open; reopened when the server closes them.
        for i in 0..args.idle_sockets {
            let (report, addr) = (report.clone(), addr.to_owned());
            tasks.push(tokio::task::spawn_local(async move {
                // Spread the connects over the first seconds.
                tokio::time::sleep(Duration::from_millis(i * 3)).await;
                while alive() {
                    let Ok(mut s) = TcpStream::connect(&addr).await else {
                        report.borrow_mut().hostile.idle_connect_failed += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    if i % 4 == 0 {
                        let _ = s.write_all(b"PRI * HTTP/2.0\r\n").await;
                    }
                    {
                        let mut r = report.borrow_mut();
                        r.hostile.idle_open += 1;
                        r.hostile.idle_max_open = r.hostile.idle_max_open.max(r.hostile.idle_open);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    let mut buf = [0u8; 512];
                    // Anything but the deadline means the server closed (or answered).
                    let closed = tokio::time::timeout(left, s.read(&mut buf)).await.is_ok();
                    {
                        let mut r = report.borrow_mut();
                        r.hostile.idle_open -= 1;
                        r.hostile.idle_closed_by_server += u64::from(closed);
                    }
                    if closed {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }));
        }
        // Hostile: bodies announced large and sent 64 bytes a second.
        for _ in 0..args.slow_bodies {
            let (report, addr) = (report.clone(), addr.to_owned());
            tasks.push(tokio::task::spawn_local(async move {
                while alive() {
                    let Ok(mut s) = TcpStream::connect(&addr).await else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    report.borrow_mut().hostile.slow_started += 1;
                    let head = format!(
                        "POST /v1/status HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                         Content-Length: 4194304\r\n\r\n{{\"paths\": ["
                    );
                    let mut ok = s.write_all(head.as_bytes()).await.is_ok();
                    let mut buf = [0u8; 512];
                    while ok && alive() {
                        tokio::select! {
                            r = s.read(&mut buf) => {
                                let mut rep = report.borrow_mut();
                                match r {
                                    Ok(n) if n > 0 => rep.hostile.slow_answered += 1,
                                    _ => rep.hostile.slow_closed += 1,
                                }
                                ok = false;
                            }
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                ok = s.write_all(&[b' '; 64]).await.is_ok();
                                if !ok { report.borrow_mut().hostile.slow_closed += 1; }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }));
        }
        // Hostile: 10,000-path status requests back to back (half of them known).
        for h in 0..args.huge_status {
            let (report, ds, addr, preload) = (report.clone(), ds.clone(), addr.to_owned(), args.preload.max(1));
            tasks.push(tokio::task::spawn_local(async move {
                let mut conn = Conn::new(&addr);
                let mut round = 0u64;
                while alive() {
                    round += 1;
                    let paths: Vec<String> = (0..10_000u64)
                        .map(|i| {
                            let p = if i % 2 == 0 {
                                i / 2 % preload
                            } else {
                                5_000_000_000 + h * 1_000_000 + round * 10_000 + i
                            };
                            ds.output_path(p).as_str().to_owned()
                        })
                        .collect();
                    let body = Bytes::from(serde_json::json!({ "paths": paths }).to_string());
                    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                    let r = conn.send(Method::POST, "/v1/status", body, None, left.min(Duration::from_secs(120))).await;
                    let key = match r {
                        Ok((s, _)) => s.as_u16().to_string(),
                        Err(e) if e.starts_with("no answer") => "timeout".into(),
                        Err(_) => "error".into(),
                    };
                    *report.borrow_mut().hostile.huge.entry(key).or_default() += 1;
                    if !alive() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });

    let h = health_us.borrow();
    let rss = rss_samples.borrow();
    let r = report.borrow();
    let mib = |kb: u64| kb as f64 / 1024.0;
    let (rss_start, rss_max, rss_end) =
        (rss.first().copied().unwrap_or(0), rss.iter().copied().max().unwrap_or(0), rss.last().copied().unwrap_or(0));
    let p99 = quantile_ms(&h, 0.99);
    println!("soak: {:.0} s of mixed load (seed {seed})", start.elapsed().as_secs_f64());
    println!(
        "/health: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {}",
        h.len(),
        quantile_ms(&h, 0.5),
        p99,
        h.max() as f64 / 1000.0,
        r.health_failures.line()
    );
    println!("server RSS: start {:.1} MiB, max {:.1} MiB, end {:.1} MiB", mib(rss_start), mib(rss_max), mib(rss_end));
    println!("well-behaved submits: {}", r.submits.line());
    println!("well-behaved reads: {}", r.reads.line());
    println!("well-behaved status ({} paths): {}", args.status_paths, r.status.line());
    println!(
        "hostile idle sockets: up to {} open at once, {} closed by the server, {} connects failed",
        r.hostile.idle_max_open, r.hostile.idle_closed_by_server, r.hostile.idle_connect_failed
    );
    println!(
        "hostile slow bodies: {} started, {} answered, {} closed by the server",
        r.hostile.slow_started, r.hostile.slow_answered, r.hostile.slow_closed
    );
    println!("hostile 10,000-path status: {:?}", r.hostile.huge);
    let mut fails = Vec::new();
    if p99 >= args.health_p99_ms {
        fails.push(format!("/health p99 {p99:.2} ms >= {} ms", args.health_p99_ms));
    }
    if r.health_failures.errors > 0 {
        fails.push(format!("{} /health failures", r.health_failures.errors));
    }
    if rss_max.saturating_sub(rss_start) > args.rss_growth_mib * 1024 {
        fails.push(format!("RSS grew by {:.1} MiB > {} MiB", mib(rss_max - rss_start), args.rss_growth_mib));
    }
    let errors = r.submits.errors + r.reads.errors + r.status.errors;
    if errors > 0 {
        fails.push(format!("{errors} errors for well-behaved clients"));
    }
    if fails.is_empty() {
        println!("verdict: PASS");
        true
    } else {
        println!("verdict: FAIL: {}", fails.join("; "));
        false
    }
}
