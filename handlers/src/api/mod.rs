//! The HTTP API of DESIGN.md, one module per resource.

mod admin;
mod builders;
mod derivations;
mod me;
mod outputs;
mod status;
mod submit;

pub use admin::ops as admin_ops;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use nhc_core::api::Attestation;
use nhc_core::time::format_rfc3339;
use serde_json::json;

use crate::error::ApiError;
use crate::narinfo;
use crate::state::AppState;
use crate::storage::AttestationRecord;

/// The whole API. GET routes answer HEAD too (axum drops the body).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/me", get(me::show))
        .route("/v1/builders", get(builders::list))
        .route("/v1/builders/{name}/attestations", get(builders::attestations))
        .route("/v1/outputs/{basename}", get(outputs::show))
        .route("/v1/derivations/{drv}", get(derivations::show))
        .route("/v1/status", post(status::bulk))
        .route("/v1/attestations", post(submit::submit))
        .route("/v1/admin/builders", post(admin::create_builder))
        .route("/v1/admin/builders/{name}", delete(admin::delete_builder))
        .route("/v1/admin/builders/{name}/tokens", post(admin::new_token))
        .route("/v1/admin/builders/{name}/revoke", post(admin::revoke))
        .route("/nix-cache-info", get(narinfo::cache_info))
        .route("/{file}", get(narinfo::everyone))
        .route("/builders/{name}/nix-cache-info", get(narinfo::builder_cache_info))
        .route("/builders/{name}/{file}", get(narinfo::of_builder))
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

async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.health().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"status": "ok"})))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub(crate) fn to_api(r: AttestationRecord) -> Attestation {
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

/// A builder name from a URL: anything else than `A-Za-z0-9._-` is a 400.
pub(crate) fn builder_name(s: &str) -> Result<nhc_core::BuilderName, ApiError> {
    nhc_core::BuilderName::parse(s).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}
