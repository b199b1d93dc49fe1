use axum::extract::State;
use axum::Json;
use nhc_core::api::{ErrorBody, PathStatus, StatusRequest, StatusResponse, MAX_STATUS_PATHS};
use nhc_core::{StatusSummary, StorePath};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bulk))
}

/// `POST /v1/status {"paths": [...]}`: a status for every path asked, unknown ones included.
#[utoipa::path(
    post,
    path = "/v1/status",
    tag = "queries",
    request_body(content = StatusRequest, description = "Up to 10,000 distinct full store paths; repeats are \
                                                           removed before counting."),
    responses(
        (status = 200, description = "One entry per distinct path asked, unknown ones included (`no_builds`), keyed \
                                      by the full store path, sorted.", body = BTreeMap<String, PathStatus>),
        (status = 400, description = "`invalid_json`; `invalid_request`: more than 10,000 paths, a path that does \
                                      not parse, `paths` missing or not a list.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 4 MiB.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
