use axum::extract::State;
use axum::Json;
use nhc_core::api::{ErrorBody, OutputReport};
use nhc_core::{StatusSummary, StorePath};

use super::to_api;
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// `GET /v1/outputs/{store-path-basename}`
#[utoipa::path(
    get,
    path = "/v1/outputs/{basename}",
    operation_id = "output",
    tag = "queries",
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of an output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello")),
    responses(
        (status = 200, description = "The path's status and every attestation of it, oldest first.", body = OutputReport),
        (status = 400, description = "`invalid_request`: not a store-path basename.", body = ErrorBody),
        (status = 404, description = "`not_found`: nobody attested it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
