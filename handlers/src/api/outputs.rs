use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nhc_core::api::OutputReport;
use nhc_core::{StatusSummary, StorePath};

use super::to_api;
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/outputs/{basename}", get(show))
}

/// `GET /v1/outputs/{store-path-basename}`
async fn show(
    State(state): State<AppState>,
    PathParams(basename): PathParams<String>,
) -> Result<Json<OutputReport>, ApiError> {
    let path = StorePath::from_basename(&basename).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let rows = state.store.attestations_of_path(&path).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("nobody attested {path}")));
    }
    let summary = StatusSummary::from_votes(rows.iter().map(|r| (&r.builder, &r.nar_hash)));
    Ok(Json(OutputReport {
        output_path: path,
        status: summary.status,
        attestations: rows.into_iter().map(to_api).collect(),
    }))
}
