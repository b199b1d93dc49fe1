use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use nhc_core::api::{SubmitRequest, SubmitResponse};

use crate::error::ApiError;
use crate::extract::{AuthenticatedBuilder, JsonBody};
use crate::service::attestations;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/attestations", post(submit_attestations))
}

/// `POST /v1/attestations`: 201 when anything was stored, 200 when all were duplicates.
async fn submit_attestations(
    State(state): State<AppState>,
    AuthenticatedBuilder(builder): AuthenticatedBuilder,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let answer = attestations::verify_and_store(&state, &builder, req).await?;
    let status = if answer.stored > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)))
}
