use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nhc_core::api::{CreateBuilderRequest, CreateBuilderResponse, RevokeResponse, TokenResponse};
use serde::Deserialize;

use super::builder_name;
use crate::auth;
use crate::error::ApiError;
use crate::extract::{Admin, JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use crate::storage::{NewBuilder, NewToken};

const MAX_KEYS: usize = 32;

fn issue_token() -> Result<(String, NewToken), ApiError> {
    let t = auth::issue()?;
    Ok((t.token, NewToken { id: t.id, secret_hash: t.secret_hash }))
}

/// `POST /v1/admin/builders {"name", "public_keys"}` → 201 `{"name", "token"}`.
pub async fn create_builder(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<CreateBuilderRequest>,
) -> Result<(StatusCode, Json<CreateBuilderResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(ops::create_builder(&state, req).await?)))
}

/// `POST /v1/admin/builders/{name}/tokens` → 201 `{"token"}`.
pub async fn new_token(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    Ok((StatusCode::CREATED, Json(ops::new_token(&state, &builder_name(&name)?).await?)))
}

/// `POST /v1/admin/builders/{name}/revoke` → `{"revoked": N}`.
pub async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
) -> Result<Json<RevokeResponse>, ApiError> {
    Ok(Json(ops::revoke(&state, &builder_name(&name)?).await?))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    purge: Option<String>,
}

/// `DELETE /v1/admin/builders/{name}?purge=true` → 204.
pub async fn delete_builder(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let name = builder_name(&name)?;
    let purge = match q.purge.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::InvalidRequest("purge must be true or false".into())),
    };
    ops::delete_builder(&state, &name, purge).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The admin operations themselves, shared by the HTTP routes above and the
/// server's command line (`nhc-server user add`, ...).
pub mod ops {
    use super::*;
    use nhc_core::BuilderName;

    pub async fn create_builder(
        state: &AppState,
        req: CreateBuilderRequest,
    ) -> Result<CreateBuilderResponse, ApiError> {
        if req.public_keys.is_empty() || req.public_keys.len() > MAX_KEYS {
            return Err(ApiError::InvalidRequest(format!("public_keys: give 1 to {MAX_KEYS} keys")));
        }
        let names: BTreeSet<_> = req.public_keys.iter().map(|k| k.name()).collect();
        let keys: BTreeSet<_> = req.public_keys.iter().map(|k| k.key_base64()).collect();
        if names.len() != req.public_keys.len() || keys.len() != req.public_keys.len() {
            return Err(ApiError::InvalidRequest("public_keys: a key or key name is listed twice".into()));
        }
        let (token, stored) = issue_token()?;
        let builder =
            NewBuilder { name: req.name, public_keys: req.public_keys, token: stored, created_at: state.now() };
        state.store.create_builder(&builder).await?;
        tracing::info!(builder = %builder.name, keys = builder.public_keys.len(), "builder created");
        Ok(CreateBuilderResponse { name: builder.name, token })
    }

    /// The live builders, as `GET /v1/builders` lists them.
    pub async fn list_builders(state: &AppState) -> Result<Vec<nhc_core::api::BuilderInfo>, ApiError> {
        super::super::builders::list(axum::extract::State(state.clone())).await.map(|Json(v)| v)
    }

    pub async fn new_token(state: &AppState, name: &BuilderName) -> Result<TokenResponse, ApiError> {
        let (token, stored) = issue_token()?;
        if !state.store.add_token(name, &stored, state.now()).await? {
            return Err(ApiError::NotFound(format!("no builder named {name}")));
        }
        tracing::info!(builder = %name, "token issued");
        Ok(TokenResponse { token })
    }

    pub async fn revoke(state: &AppState, name: &BuilderName) -> Result<RevokeResponse, ApiError> {
        let revoked = state
            .store
            .revoke_tokens(name, state.now())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no builder named {name}")))?;
        tracing::info!(builder = %name, revoked, "tokens revoked");
        Ok(RevokeResponse { revoked })
    }

    pub async fn delete_builder(state: &AppState, name: &BuilderName, purge: bool) -> Result<(), ApiError> {
        if !state.store.delete_builder(name, purge, state.now()).await? {
            return Err(ApiError::NotFound(format!("no builder named {name}")));
        }
        tracing::info!(builder = %name, purge, "builder deleted");
        Ok(())
    }
}
