use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nhc_core::api::DerivationReport;
use nhc_core::DrvPath;

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::service;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/derivations/{drv}", get(show))
}

/// `GET /v1/derivations/{drv-basename}` (with or without `.drv`); what it trusts is
/// in [`service::derivations`].
async fn show(
    State(state): State<AppState>,
    PathParams(drv): PathParams<String>,
) -> Result<Json<DerivationReport>, ApiError> {
    let drv = DrvPath::from_basename_lenient(&drv).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok(Json(service::derivations::report(&state, drv).await?))
}
