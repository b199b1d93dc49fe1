use axum::extract::State;
use axum::Json;
use nhc_core::api::{AttestationPage, BuilderInfo, ErrorBody};
use nhc_core::{BuilderName, StorePath};

use super::page::{self, PageQuery};
use super::to_api;
use crate::error::ApiError;
use crate::extract::{PathBuilder, QueryParams};
use crate::service::builders;
use crate::state::AppState;
use nhc_storage::Cursor;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(attestations))
}

/// `GET /v1/builders`
#[utoipa::path(
    get,
    path = "/v1/builders",
    tag = "queries",
    responses(
        (status = 200, description = "The builders that are not deleted, oldest first, each with its keys in the \
                                      order they were registered.", body = Vec<BuilderInfo>),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<BuilderInfo>>, ApiError> {
    Ok(Json(builders::list(&state).await?))
}

/// `GET /v1/builders/{name}/attestations?limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/builders/{name}/attestations",
    tag = "queries",
    params(
        ("name" = BuilderName, Path, description = "A builder, deleted ones included (not purged ones)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Rows per page, 1 to 1000; absent or empty: 100."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page (opaque)."),
    ),
    responses(
        (status = 200, description = "A page of the builder's attestations, newest first (then by output path and \
                                      NAR hash, descending); `next_cursor` is null on the last page.",
         body = AttestationPage),
        (status = 400, description = "`invalid_request`: not a builder name, `limit` out of range or not a \
                                      number, a cursor that does not decode.", body = ErrorBody),
        (status = 404, description = "`not_found`: no builder of that name ever existed, or it was purged.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn attestations(
    State(state): State<AppState>,
    PathBuilder(name): PathBuilder,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<AttestationPage>, ApiError> {
    let limit = q.limit()?;
    let cursor = q.cursor(|s| StorePath::from_basename(s).ok())?.map(|(submitted_at, output_path, nar_hash)| Cursor {
        submitted_at,
        output_path,
        nar_hash,
    });
    if !state.store.builder_known(&name).await? {
        return Err(ApiError::NotFound(format!("no builder named {name}")));
    }
    let mut rows = state.store.builder_attestations(&name, cursor.as_ref(), limit + 1).await?;
    let next_cursor =
        page::cut(&mut rows, limit, |r| page::encode_cursor(r.submitted_at, r.output_path.basename(), &r.nar_hash));
    Ok(Json(AttestationPage { attestations: rows.into_iter().map(to_api).collect(), next_cursor }))
}
