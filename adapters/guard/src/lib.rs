//! Layers every deployment puts in front of the handlers' router, free of any
//! platform (no sockets): a request id and tracing span per request, JSON error
//! bodies that carry the id, route classes with concurrency limits and load shedding
//! (503 + `Retry-After`), a per-builder rate limit (429 + `Retry-After`), and metrics
//! served at `GET /metrics` in the Prometheus text format.

pub mod class;
pub mod metrics;
pub mod rate;
pub mod request_id;
pub mod shed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use tracing::Instrument;

pub use class::{classify, classify_request, RouteClass};
pub use metrics::Metrics;
pub use rate::{RateConfig, RateLimiter};
pub use request_id::RequestId;
pub use shed::{ShedConfig, Shedder};

/// JSON bodies at most this large are read back to add `request_id` (error bodies are
/// a few hundred bytes; anything larger passes through untouched).
const MAX_REWRITTEN_BODY: usize = 16 * 1024;
/// Request paths in log lines are cut to this many bytes.
const MAX_LOGGED_PATH: usize = 200;

/// The client's IP address, put in the request's extensions by a listener that knows
/// it (nhc-server); the status classes' per-IP share applies when it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    pub shed: ShedConfig,
    pub rate: RateConfig,
    /// Serve `GET /metrics`.
    pub metrics_endpoint: bool,
}

pub struct Guard {
    shedder: Shedder,
    rate: RateLimiter,
    metrics: Arc<Metrics>,
    metrics_endpoint: bool,
}

impl Guard {
    pub fn new(config: GuardConfig, metrics: Arc<Metrics>) -> Arc<Guard> {
        Arc::new(Guard {
            shedder: Shedder::new(config.shed),
            rate: RateLimiter::new(config.rate),
            metrics,
            metrics_endpoint: config.metrics_endpoint,
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn classify(&self, req: &Request) -> RouteClass {
        classify_request(req.method(), req.uri().path(), req.headers(), self.shedder.status_small_bytes())
    }

    /// `router` behind the limits, behind the request id, logging and metrics (so
    /// shed and limited answers are counted and carry a request id too).
    pub fn wrap(self: &Arc<Self>, router: Router) -> Router {
        router
            .layer(axum::middleware::from_fn_with_state(self.clone(), limit))
            .layer(axum::middleware::from_fn_with_state(self.clone(), observe))
    }
}

/// Counts a request even when the client goes away before the answer (as 499).
struct InFlight<'a> {
    metrics: &'a Metrics,
    class: RouteClass,
    start: Instant,
    status: Option<u16>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.request_finished(self.class, self.status.unwrap_or(499), self.start.elapsed());
    }
}

async fn observe(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let class = guard.classify(&req);
    let id = request_id::from_header(req.headers().get(request_id::HEADER));
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        req.headers_mut().insert(request_id::HEADER, v);
    }
    req.extensions_mut().insert(id.clone());
    let path = req.uri().path();
    let path = &path[..floor_char_boundary(path, MAX_LOGGED_PATH)];
    let span = tracing::info_span!("request", id = %id.0, method = %req.method(), path = %path);
    let metrics_request = guard.metrics_endpoint
        && req.uri().path() == "/metrics"
        && (req.method() == http::Method::GET || req.method() == http::Method::HEAD);
    async move {
        guard.metrics.request_started(class);
        let mut flight = InFlight { metrics: &guard.metrics, class, start: Instant::now(), status: None };
        let res = if metrics_request { metrics_response(&guard.metrics) } else { next.run(req).await };
        let mut res = finish(res, class, &id, &guard.metrics).await;
        if let Ok(v) = HeaderValue::from_str(&id.0) {
            res.headers_mut().insert(request_id::HEADER, v);
        }
        let status = res.status().as_u16();
        flight.status = Some(status);
        if status >= 500 {
            tracing::info!(status, elapsed_ms = flight.start.elapsed().as_millis() as u64, "answered");
        } else {
            tracing::debug!(status, elapsed_ms = flight.start.elapsed().as_millis() as u64, "answered");
        }
        res
    }
    .instrument(span)
    .await
}

async fn limit(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let class = guard.classify(&req);
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
    if class == RouteClass::Health {
        // Health checks never wait behind a builder's bucket or the body budget.
        return match guard.shedder.admit(class, 0, None).await {
            Ok(_admission) => next.run(req).await,
            Err(shed) => shed_response(&guard, class, shed),
        };
    }
    let token = rate::builder_token_id(req.headers());
    if let Some(id) = &token {
        if let Err(wait) = guard.rate.check(id, Instant::now()) {
            guard.metrics.rate_limited();
            let secs = retry_after_secs(wait);
            tracing::debug!(token_id = %id, retry_after = secs, "builder over its rate");
            return error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("this builder is over its request rate; retry after {secs} s"),
                secs,
            );
        }
    }
    let reserve = if token.is_none() && !guard.shedder.outside_body_budget(class) {
        shed::body_reservation(req.method(), req.headers())
    } else {
        0
    };
    let admission = match guard.shedder.admit(class, reserve, ip).await {
        Ok(a) => a,
        Err(shed) => return shed_response(&guard, class, shed),
    };
    guard.metrics.set_anonymous_body_bytes(guard.shedder.anonymous_bytes_in_flight());
    let res = next.run(req).await;
    drop(admission);
    guard.metrics.set_anonymous_body_bytes(guard.shedder.anonymous_bytes_in_flight());
    res
}

fn shed_response(guard: &Guard, class: RouteClass, shed: shed::Shed) -> Response {
    guard.metrics.shed(class, shed.as_str());
    let secs = guard.shedder.retry_after_secs().max(1);
    tracing::debug!(class = class.as_str(), reason = shed.as_str(), "shed");
    let message = match shed {
        shed::Shed::PerIp => {
            format!("this address has its share of {} requests in flight; retry after {secs} s", class.as_str())
        }
        _ => format!("the server is busy with {} requests; retry after {secs} s", class.as_str()),
    };
    error_response(StatusCode::SERVICE_UNAVAILABLE, "overloaded", &message, secs)
}

/// A JSON error body in the handlers' shape, `{"error", "message"}`.
pub fn error_response(status: StatusCode, code: &str, message: &str, retry_after_secs: u64) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    res
}

fn metrics_response(metrics: &Metrics) -> Response {
    let mut res = Response::new(Body::from(metrics.render()));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Adds `request_id` to small JSON error bodies, and counts error codes and
/// submission outcomes, which only the body tells.
async fn finish(res: Response, class: RouteClass, id: &RequestId, metrics: &Metrics) -> Response {
    let status = res.status();
    let submit_ok = class == RouteClass::Submit && status == StatusCode::OK;
    if !(status.is_client_error() || status.is_server_error() || submit_ok) {
        return res;
    }
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let small = axum::body::HttpBody::size_hint(res.body()).upper().is_some_and(|n| n <= MAX_REWRITTEN_BODY as u64);
    if !json || !small {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(b) => b,
        // The size hint said it fits; a body that fails now has nothing to return.
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let mut value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    if submit_ok {
        let n = |k: &str| value.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        metrics.submitted(n("stored"), n("duplicates"));
        return Response::from_parts(parts, Body::from(bytes));
    }
    if let Some(code) = value.get("error").and_then(|v| v.as_str()) {
        metrics.error_code(class, code);
    }
    value.insert("request_id".to_owned(), serde_json::Value::String(id.0.clone()));
    let body = serde_json::Value::Object(value).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// A `Retry-After` wait, whole seconds, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use axum::routing::post;
    use tokio::sync::watch;
    use tower::ServiceExt;

    use super::*;

    /// A router whose status handler holds requests marked `x-hold` until released.
    fn app(config: ShedConfig, release: watch::Receiver<bool>) -> Router {
        let router = Router::new().route(
            "/v1/status",
            post(move |headers: http::HeaderMap, _body: axum::body::Bytes| {
                let mut release = release.clone();
                async move {
                    if headers.contains_key("x-hold") {
                        let _ = release.wait_for(|r| *r).await;
                    }
                    "{}"
                }
            }),
        );
        let guard = Guard::new(GuardConfig { shed: config, ..Default::default() }, Arc::new(Metrics::new()));
        guard.wrap(router)
    }

    fn status(paths: usize, ip: &str, hold: bool) -> Request {
        let body = format!("{{\"paths\":[{}]}}", vec![format!("\"/nix/store/{}-x\"", "a".repeat(32)); paths].join(","));
        let mut req = http::Request::post("/v1/status")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        if hold {
            req.headers_mut().insert("x-hold", HeaderValue::from_static("1"));
        }
        req.extensions_mut().insert(ClientIp(ip.parse::<IpAddr>().unwrap()));
        req
    }

    /// Sends `n` held requests of `paths` paths from `ip`; returns how many were shed
    /// (the others are held until released).
    async fn flood(app: &Router, n: usize, paths: usize, ip: &str) -> usize {
        let mut shed = 0;
        for _ in 0..n {
            let call = tokio::spawn(app.clone().oneshot(status(paths, ip, true)));
            // Let it reach the handler, or be shed (after the queue time), before the next.
            tokio::time::sleep(Duration::from_millis(60)).await;
            if call.is_finished() {
                let res = call.await.unwrap().unwrap();
                assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
                shed += 1;
            }
        }
        shed
    }

    fn config() -> ShedConfig {
        ShedConfig { queue_timeout: Duration::from_millis(20), ..ShedConfig::default() }
    }

    /// The soak's finding: two clients sending 10,000-path status requests held every
    /// status slot, and a 500-path request was shed. Now the big ones hold the bulk
    /// class only, and a small request still answers.
    #[tokio::test]
    async fn big_status_requests_do_not_starve_small_ones() {
        let (release, rx) = watch::channel(false);
        let app = app(config(), rx);
        let shed = flood(&app, 16, 10_000, "192.0.2.1").await + flood(&app, 16, 10_000, "192.0.2.2").await;
        assert!(shed >= 24, "the bulk slots are taken: {shed} of 32 shed");
        // 500 paths (about 25 KiB) from one of the hostile addresses and from another.
        for ip in ["192.0.2.1", "198.51.100.7"] {
            let res = app.clone().oneshot(status(500, ip, false)).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "small status from {ip}");
        }
        let _ = release.send(true);
    }

    /// One address cannot take all of a status class: another still gets a bulk slot.
    #[tokio::test]
    async fn one_address_cannot_take_every_bulk_slot() {
        let (release, rx) = watch::channel(false);
        let app = app(config(), rx);
        let shed = flood(&app, 8, 10_000, "192.0.2.1").await;
        assert_eq!(shed, 6, "one address holds 2 of the 4 bulk slots");
        let res = app.clone().oneshot(status(10_000, "203.0.113.9", false)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // Without a per-IP share the same address takes them all.
        let (release2, rx) = watch::channel(false);
        let app = self::app(ShedConfig { per_ip_share: 0, ..config() }, rx);
        assert_eq!(flood(&app, 8, 10_000, "192.0.2.1").await, 4);
        let res = app.clone().oneshot(status(10_000, "203.0.113.9", false)).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let _ = release.send(true);
        let _ = release2.send(true);
    }
}
