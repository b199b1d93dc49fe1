//! The admin API: managing builders with the deploy-time admin token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use nhc_core::api::{CreateBuilderRequest, CreateBuilderResponse, RevokeResponse, TokenResponse};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Admin, JsonBody, PathBuilder, QueryParams};
use crate::service::builders;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/builders", post(create_builder))
        .route("/v1/admin/builders/{name}", delete(delete_builder))
        .route("/v1/admin/builders/{name}/tokens", post(new_token))
        .route("/v1/admin/builders/{name}/revoke", post(revoke))
}

/// `POST /v1/admin/builders {"name", "public_keys"}` → 201 `{"name", "token"}`.
async fn create_builder(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<CreateBuilderRequest>,
) -> Result<(StatusCode, Json<CreateBuilderResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(builders::create(&state, req).await?)))
}

/// `POST /v1/admin/builders/{name}/tokens` → 201 `{"token"}`.
async fn new_token(
    State(state): State<AppState>,
    _admin: Admin,
    PathBuilder(name): PathBuilder,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(builders::issue_token_for(&state, &name).await?)))
}

/// `POST /v1/admin/builders/{name}/revoke` → `{"revoked": N}`.
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
