//! The admin API: managing builders with the deploy-time admin token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nhc_core::api::{CreateBuilderRequest, CreateBuilderResponse, ErrorBody, RevokeResponse, TokenResponse};
use nhc_core::BuilderName;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Admin, JsonBody, PathBuilder, QueryParams};
use crate::service::builders;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_builder))
        .routes(routes!(delete_builder))
        .routes(routes!(new_token))
        .routes(routes!(revoke))
}

/// `POST /v1/admin/builders {"name", "public_keys"}` → 201 `{"name", "token"}`.
#[utoipa::path(
    post,
    path = "/v1/admin/builders",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = CreateBuilderRequest,
    responses(
        (status = 201, description = "The builder and its first token (shown only here).", body = CreateBuilderResponse),
        (status = 400, description = "`invalid_json`; `invalid_request`: a name or key that does not parse, no keys \
                                      or more than 32, a key or key name listed twice.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 409, description = "`conflict`: the name exists or existed, or a key name or key is registered \
                                      already.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 4 MiB.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn create_builder(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<CreateBuilderRequest>,
) -> Result<(StatusCode, Json<CreateBuilderResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(builders::create(&state, req).await?)))
}

/// `POST /v1/admin/builders/{name}/tokens` → 201 `{"token"}`.
#[utoipa::path(
    post,
    path = "/v1/admin/builders/{name}/tokens",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = BuilderName, Path, description = "A builder that is not deleted.")),
    responses(
        (status = 201, description = "Another token for the builder; earlier tokens stay valid.", body = TokenResponse),
        (status = 400, description = "`invalid_request`: not a builder name.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such builder, or it is deleted.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn new_token(
    State(state): State<AppState>,
    _admin: Admin,
    PathBuilder(name): PathBuilder,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(builders::issue_token_for(&state, &name).await?)))
}

/// `POST /v1/admin/builders/{name}/revoke` → `{"revoked": N}`.
#[utoipa::path(
    post,
    path = "/v1/admin/builders/{name}/revoke",
    tag = "admin",
    security(("admin_token" = [])),
    params(("name" = BuilderName, Path, description = "A builder that is not deleted.")),
    responses(
        (status = 200, description = "Every token of the builder revoked; `revoked` counts those that were \
                                      active. Its attestations stay.", body = RevokeResponse),
        (status = 400, description = "`invalid_request`: not a builder name.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such builder, or it is deleted.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    PathBuilder(name): PathBuilder,
) -> Result<Json<RevokeResponse>, ApiError> {
    Ok(Json(builders::revoke_tokens(&state, &name).await?))
}

#[derive(Deserialize)]
struct DeleteQuery {
    purge: Option<String>,
}

/// `DELETE /v1/admin/builders/{name}?purge=true` → 204.
#[utoipa::path(
    delete,
    path = "/v1/admin/builders/{name}",
    tag = "admin",
    security(("admin_token" = [])),
    params(
        ("name" = BuilderName, Path, description = "A builder; without `purge`, one that is not deleted."),
        ("purge" = Option<String>, Query, description = "`true`, `1` or empty: remove the builder, its keys, tokens \
                                                         and attestations, freeing its name and keys. `false` or `0` \
                                                         (the default): delete its tokens and hide it; its \
                                                         attestations stay and count."),
    ),
    responses(
        (status = 204, description = "Deleted (or purged)."),
        (status = 400, description = "`invalid_request`: not a builder name, or `purge` not true or false.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such builder (without `purge`: or it is deleted already).", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn delete_builder(
    State(state): State<AppState>,
    _admin: Admin,
    PathBuilder(name): PathBuilder,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let purge = match q.purge.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::InvalidRequest("purge must be true or false".into())),
    };
    builders::delete(&state, &name, purge).await?;
    Ok(StatusCode::NO_CONTENT)
}
