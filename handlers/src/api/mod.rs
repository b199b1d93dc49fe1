//! The HTTP API (docs/api.md), one module per resource; each returns its routes.

mod admin;
mod binary_cache;
mod builders;
mod derivations;
mod jobsets;
mod me;
mod outputs;
mod status;
mod submit;

pub use jobsets::body_limit;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nhc_core::api::Attestation;
use nhc_core::time::format_rfc3339;
use nhc_storage::AttestationRecord;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole API. GET routes answer HEAD too (axum drops the body).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .merge(me::routes())
        .merge(builders::routes())
        .merge(outputs::routes())
        .merge(derivations::routes())
        .merge(status::routes())
        .merge(submit::routes())
        .merge(admin::routes())
        .merge(jobsets::routes())
        .merge(binary_cache::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(no_sniff))
        .with_state(state)
}

/// Browsers must never guess HTML from a JSON or narinfo body that echoes input.
async fn no_sniff(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut()
        .insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    res
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.health().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"status": "ok"})))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// An attestation as the API shows it.
fn to_api(r: AttestationRecord) -> Attestation {
    Attestation {
        builder: r.builder,
        drv_path: r.drv_path,
        output_name: r.output_name,
        output_path: r.output_path,
        nar_hash: r.nar_hash,
        nar_size: r.nar_size,
        references: r.references,
        signature: r.signature,
        submitted_at: format_rfc3339(r.submitted_at),
    }
}
