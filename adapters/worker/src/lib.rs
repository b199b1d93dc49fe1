//! nix-hash-collection as a Cloudflare Worker. Thin on purpose: it turns a Worker
//! request into the handlers' request and D1 into their storage; every rule about
//! attestations, tokens and statuses lives in `nhc-handlers`.
#![cfg(target_arch = "wasm32")]

mod d1;

use std::sync::Arc;

use http_body_util::BodyExt;
use nhc_handlers::{AppState, Clock};
use tower_service::Service;
use worker::{event, Context, Env, HttpRequest};

#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, _ctx: Context) -> worker::Result<axum::response::Response> {
    console_error_panic_hook::set_once();
    let store = Arc::new(nhc_sql::SqlStorage::new(d1::D1::new(env.d1("DB")?)));
    // Set with `wrangler secret put NHC_ADMIN_TOKEN` (or `.dev.vars` locally).
    let admin_token = env
        .secret("NHC_ADMIN_TOKEN")
        .map(|s| s.to_string())
        .or_else(|_| env.var("NHC_ADMIN_TOKEN").map(|v| v.to_string()))
        .ok();
    // The Workers clock has millisecond resolution (and stands still while code
    // computes); the handlers take microseconds.
    let clock: Clock = Arc::new(|| worker::Date::now().as_millis() as i64 * 1000);
    let state = AppState::new(store, clock, admin_token.as_deref());
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let max = nhc_handlers::body_limit(&parts.method, parts.uri.path());
    // A body declared over the route's limit is drained, not kept: the handlers
    // answer 413 from the header, and a 24 MiB upload is not held twice.
    let keep = if declared.is_some_and(|n| n > max) { 0 } else { max + 1 };
    let body = read_body(body, keep, declared.unwrap_or(0).min(keep)).await?;
    let req = axum::http::Request::from_parts(parts, axum::body::Body::from(body));
    Ok(nhc_handlers::router(state).call(req).await?)
}

/// Reads the request body, keeping at most `keep` bytes (one more than the route
/// accepts, so that the handlers answer 413) and draining the rest: workerd (`wrangler dev`) fails
/// the whole request, and others in flight with it, when a Worker answers while a
/// large upload is still unread.
async fn read_body(mut body: worker::Body, keep: usize, expected: usize) -> worker::Result<Vec<u8>> {
    let mut kept = Vec::with_capacity(expected);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(kept)
}
