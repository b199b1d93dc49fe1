//! The HTTP API (docs/api.md), one module per resource; each returns its routes.

mod admin;
mod binary_cache;
mod builders;
mod derivations;
mod diffs;
mod jobsets;
mod log;
mod me;
mod openapi;
mod outputs;
pub(crate) mod page;
mod status;
mod submit;

use std::sync::OnceLock;

use axum::extract::State;
use axum::{Json, Router};
use nhc_core::api::{Attestation, ErrorBody};
use nhc_core::time::format_rfc3339;
use nhc_storage::AttestationRecord;
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use diffs::DiffLimits;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route with its OpenAPI description. Each module registers its handlers
/// with `routes!`, which takes the method and path from the handler's
/// `#[utoipa::path]`: the router and `/openapi.json` come from the same list.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi::openapi_json))
        .merge(me::routes())
        .merge(builders::routes())
        .merge(outputs::routes())
        .merge(diffs::routes())
        .merge(derivations::routes())
        .merge(status::routes())
        .merge(submit::routes())
        .merge(admin::routes())
        .merge(jobsets::routes())
        .merge(binary_cache::routes())
}

/// The routes and the document, built once per process (the Worker builds a router
/// per request).
struct Built {
    /// The documented routes (what `/openapi.json` describes; the OpenAPI test reads them).
    #[cfg_attr(not(test), allow(dead_code))]
    routes: Router<AppState>,
    /// Those and the web pages, which are not part of the API document (`crate::web`).
    all: Router<AppState>,
    /// The OpenAPI document as JSON, or why it could not be serialized.
    doc: Result<String, String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (routes, doc) = api().split_for_parts();
        // `merge` panics on a path both define: a page can never shadow an API route
        // (the router tests build this).
        let all = routes.clone().merge(crate::web::routes()).merge(log::routes());
        Built { routes, all, doc: doc.to_json().map_err(|e| format!("serializing the OpenAPI document: {e}")) }
    })
}

/// The documented routes with the pages merged (building it checks that no page
/// shadows an API route).
#[cfg(test)]
pub(crate) fn router_for_tests() -> Router<AppState> {
    built().all.clone()
}

/// The OpenAPI 3.1 document of [`router`], as served at `GET /openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The whole API and the web pages. GET routes answer HEAD too (axum drops the body).
pub fn router(state: AppState) -> Router {
    built()
        .all
        .clone()
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

/// `GET /health`
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "The database answers.", body = Object, example = json!({"status": "ok"})),
        (status = 503, description = "`unavailable`: the database cannot be reached.", body = ErrorBody),
    )
)]
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.health().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({"status": "ok"})))
}

/// An unknown route: JSON under `/v1/` (and for API clients that ask for JSON),
/// else the HTML 404 page (DESIGN.md, "Web pages").
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if uri.path().starts_with("/v1/") || uri.path() == "/v1" || wants_json {
        ApiError::NotFound("no such route".into()).into_response()
    } else {
        crate::web::not_found_page()
    }
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
        log_index: r.log_index,
    }
}
