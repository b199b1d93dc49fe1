use axum::extract::State;
use axum::Json;
use nhc_core::api::{ErrorBody, OutputReport};
use nhc_core::{BuilderName, StatusSummary, StorePath};
use nhc_storage::PathCursor;

use super::page::{self, PageQuery};
use super::to_api;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// `GET /v1/outputs/{store-path-basename}?limit=&cursor=`: the status and counts over
/// every attestation of the path, and a page of them, oldest first.
#[utoipa::path(
    get,
    path = "/v1/outputs/{basename}",
    operation_id = "output",
    tag = "queries",
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of an output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"),
            ("limit" = Option<u32>, Query, description = "Attestations per page, 1–1000 (default 100)."),
            ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page.")),
    responses(
        (status = 200, description = "The path's status and counts over every attestation of it, \
                                      and a page of them, oldest first.", body = OutputReport),
        (status = 400, description = "`invalid_request`: not a store-path basename, a bad `limit` \
                                      or `cursor`.", body = ErrorBody),
        (status = 404, description = "`not_found`: nobody attested it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    PathParams(basename): PathParams<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<OutputReport>, ApiError> {
    let path = StorePath::from_basename(&basename).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let limit = q.limit()?;
    let cursor = q.cursor(|s| BuilderName::parse(s).ok())?.map(|(submitted_at, builder, nar_hash)| PathCursor {
        submitted_at,
        builder,
        nar_hash,
    });
    let mut rows = state.store.attestations_of_path(&path, cursor.as_ref(), limit + 1).await?;
    // The summary counts every attestation. When the first page holds them all (a path
    // has a few builders), it is counted from the page; else from the (builder, hash)
    // pairs of all of them, bounded by the cap on distinct hashes per builder and path.
    // One query instead of two for nearly every path.
    let (summary, total) = if cursor.is_none() && rows.len() as u64 <= u64::from(limit) {
        (StatusSummary::from_votes(rows.iter().map(|r| (&r.builder, &r.nar_hash))), rows.len())
    } else {
        let votes = state.store.votes_of_paths(std::slice::from_ref(&path)).await?;
        (StatusSummary::from_votes(votes.iter().map(|v| (&v.builder, &v.nar_hash))), votes.len())
    };
    if total == 0 {
        return Err(ApiError::NotFound(format!("nobody attested {path}")));
    }
    let next_cursor =
        page::cut(&mut rows, limit, |r| page::encode_cursor(r.submitted_at, r.builder.as_str(), &r.nar_hash));
    Ok(Json(OutputReport {
        output_path: path,
        status: summary.status,
        builders: summary.builders as u64,
        distinct_hashes: summary.distinct_hashes as u64,
        total_attestations: total as u64,
        attestations: rows.into_iter().map(to_api).collect(),
        next_cursor,
    }))
}
