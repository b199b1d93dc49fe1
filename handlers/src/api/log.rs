//! `GET /log/<path>`: the transparency log as C2SP tlog-tiles (docs/api.md,
//! "Transparency log"). Static-file semantics, not JSON API routes: they are not in
//! the OpenAPI document. Errors are the API's JSON errors.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::service::log;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/log/{*path}", get(object))
}

async fn object(State(state): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let o = log::read(&state, &path).await?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static(o.request.content_type())),
            (CACHE_CONTROL, HeaderValue::from_static(o.request.cache_control())),
        ],
        o.body,
    )
        .into_response())
}
