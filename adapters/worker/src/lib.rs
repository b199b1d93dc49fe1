//! nix-hash-collection as a Cloudflare Worker. Thin on purpose: it turns a Worker
//! request into the handlers' request and D1 into their storage; every rule about
//! attestations, tokens and statuses lives in `nhc-handlers`.
#![cfg(target_arch = "wasm32")]

mod d1;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use axum::body::{Bytes, HttpBody};
use http_body::Frame;
use http_body_util::BodyExt;
use nhc_handlers::{AppState, Clock};
use tower_service::Service;
use worker::{event, Context, Env, HttpRequest};

/// A secret (`wrangler secret put NAME`, or `.dev.vars` locally) or a plain variable.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn state(env: &Env) -> worker::Result<AppState> {
    let store = Arc::new(nhc_sql::SqlStorage::new(d1::D1::new(env.d1("DB")?)));
    let admin_token = setting(env, "NHC_ADMIN_TOKEN");
    // The Workers clock has millisecond resolution (and stands still while code
    // computes); the handlers take microseconds.
    let clock: Clock = Arc::new(|| worker::Date::now().as_millis() as i64 * 1000);
    let mut state = AppState::new(store, clock, admin_token.as_deref());
    // The transparency log: sequenced when /log/checkpoint is read and by the cron
    // trigger (wrangler.toml), never per submission.
    if let Some(key) = setting(env, "NHC_LOG_KEY") {
        match nhc_handlers::service::log::parse_key(&key) {
            Ok(key) => state = state.with_log_key(key),
            Err(e) => worker::console_error!("NHC_LOG_KEY: {e}; the log is not served"),
        }
    }
    Ok(state)
}

/// The cron trigger: brings the transparency log's checkpoint up to date.
#[event(scheduled)]
async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    console_error_panic_hook::set_once();
    let result = match state(&env) {
        Ok(s) => nhc_handlers::service::log::catch_up(&s, 64).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        worker::console_error!("sequencing the transparency log: {e}");
    }
}

#[event(fetch)]
async fn fetch(req: HttpRequest, env: Env, _ctx: Context) -> worker::Result<axum::response::Response> {
    console_error_panic_hook::set_once();
    let state = state(&env)?;
    // The handlers read the body themselves, after the token check and only up to
    // their limit, as on every deployment; what they leave unread is drained (and
    // dropped) before the answer goes out.
    let (parts, body) = req.into_parts();
    let body = SharedBody(Arc::new(Mutex::new(Some(body))));
    let req = axum::http::Request::from_parts(parts, axum::body::Body::new(body.clone()));
    let res = nhc_handlers::router(state).call(req).await?;
    body.drain().await;
    Ok(res)
}

/// The Worker's request body, shared between the handlers (who read what they need)
/// and this adapter, which drains the rest: workerd (`wrangler dev`) fails the whole
/// request, and others in flight with it, when a Worker answers while a large upload
/// is still unread.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Option<worker::Body>>>);

impl SharedBody {
    /// Reads what is left and drops it; errors (a client that went away) end it.
    async fn drain(&self) {
        let rest = self.0.lock().ok().and_then(|mut b| b.take());
        if let Some(mut rest) = rest {
            while let Some(Ok(_)) = rest.frame().await {}
        }
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Ok(mut guard) = self.0.lock() else { return Poll::Ready(None) };
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx).map_err(|e| std::io::Error::other(e.to_string())),
            None => Poll::Ready(None),
        }
    }
}
