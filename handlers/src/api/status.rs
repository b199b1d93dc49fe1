use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use nhc_core::api::{PathStatus, StatusRequest, StatusResponse, MAX_STATUS_PATHS};
use nhc_core::{BuilderName, NarHash, StatusSummary, StorePath};

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
    let paths: Vec<StorePath> = req.paths.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    if paths.len() > MAX_STATUS_PATHS {
        return Err(ApiError::InvalidRequest(format!(
            "paths: {} distinct paths asked, at most {MAX_STATUS_PATHS} per request",
            paths.len()
        )));
    }
    let votes = state.store.votes_of_paths(&paths).await?;
    let mut by_path: BTreeMap<StorePath, Vec<(BuilderName, NarHash)>> =
        paths.into_iter().map(|p| (p, Vec::new())).collect();
    for v in votes {
        if let Some(list) = by_path.get_mut(&v.output_path) {
            list.push((v.builder, v.nar_hash));
        }
    }
    Ok(Json(
        by_path
            .into_iter()
            .map(|(path, votes)| {
                let s = StatusSummary::from_votes(votes);
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
