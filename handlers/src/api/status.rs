use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use nhc_core::api::{PathStatus, StatusRequest, StatusResponse, MAX_STATUS_PATHS};
use nhc_core::{StatusSummary, StorePath};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/status", post(bulk))
}

/// `POST /v1/status {"paths": [...]}`: a status for every path asked, unknown ones included.
async fn bulk(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    // Counted after removing repeats: a path asked twice costs one lookup and gets one answer.
    let mut paths: Vec<StorePath> = req.paths;
    paths.sort_unstable();
    paths.dedup();
    if paths.len() > MAX_STATUS_PATHS {
        return Err(ApiError::InvalidRequest(format!(
            "paths: {} distinct paths asked, at most {MAX_STATUS_PATHS} per request",
            paths.len()
        )));
    }
    let counts = state.store.vote_counts(&paths).await?;
    if counts.len() != paths.len() {
        return Err(ApiError::Internal(format!("{} counts for {} paths", counts.len(), paths.len())));
    }
    // Sorted and distinct: the map is built without a search per path.
    Ok(Json(
        paths
            .into_iter()
            .zip(counts)
            .map(|(path, c)| {
                let s = StatusSummary::from_counts(c.attestations, c.builders, c.distinct_hashes);
                let status = PathStatus {
                    status: s.status,
                    builders: s.builders as u64,
                    distinct_hashes: s.distinct_hashes as u64,
                };
                (path, status)
            })
            .collect(),
    ))
}
