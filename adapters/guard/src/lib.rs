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

pub use class::{classify, RouteClass};
pub use metrics::Metrics;
pub use rate::{RateConfig, RateLimiter};
pub use request_id::RequestId;
pub use shed::{ShedConfig, Shedder};

/// JSON bodies at most this large are read back to add `request_id` (error bodies are
/// a few hundred bytes; anything larger passes through untouched).
const MAX_REWRITTEN_BODY: usize = 16 * 1024;
/// Request paths in log lines are cut to this many bytes.
const MAX_LOGGED_PATH: usize = 200;

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
    let class = classify(req.method(), req.uri().path());
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
    let class = classify(req.method(), req.uri().path());
    if class == RouteClass::Health {
        // Health checks never wait behind a builder's bucket or the body budget.
        return match guard.shedder.admit(class, 0).await {
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
    let reserve = if token.is_none() { shed::body_reservation(req.method(), req.headers()) } else { 0 };
    let admission = match guard.shedder.admit(class, reserve).await {
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
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        &format!("the server is busy with {} requests; retry after {secs} s", class.as_str()),
        secs,
    )
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
