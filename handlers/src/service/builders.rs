//! Managing builders: what the admin API and `nhc-server builder ...` both do.

use std::collections::BTreeSet;

use nhc_core::api::{BuilderInfo, CreateBuilderRequest, CreateBuilderResponse, RevokeResponse, TokenResponse};
use nhc_core::time::format_rfc3339;
use nhc_core::BuilderName;
use nhc_storage::{NewBuilder, NewToken};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// Most public keys one builder may register.
const MAX_KEYS: usize = 32;

fn issue_token() -> Result<(String, NewToken), ApiError> {
    let t = auth::issue()?;
    Ok((t.token, NewToken { id: t.id, secret_hash: t.secret_hash }))
}

/// Registers a builder with its keys; the answer holds its first token, shown once.
pub async fn create(state: &AppState, req: CreateBuilderRequest) -> Result<CreateBuilderResponse, ApiError> {
    if req.public_keys.is_empty() || req.public_keys.len() > MAX_KEYS {
        return Err(ApiError::InvalidRequest(format!("public_keys: give 1 to {MAX_KEYS} keys")));
    }
    let names: BTreeSet<_> = req.public_keys.iter().map(|k| k.name()).collect();
    let keys: BTreeSet<_> = req.public_keys.iter().map(|k| k.key_base64()).collect();
    if names.len() != req.public_keys.len() || keys.len() != req.public_keys.len() {
        return Err(ApiError::InvalidRequest("public_keys: a key or key name is listed twice".into()));
    }
    let (token, stored) = issue_token()?;
    let builder = NewBuilder { name: req.name, public_keys: req.public_keys, token: stored, created_at: state.now() };
    state.store.create_builder(&builder).await?;
    tracing::info!(builder = %builder.name, keys = builder.public_keys.len(), "builder created");
    Ok(CreateBuilderResponse { name: builder.name, token })
}

/// The live builders, oldest first.
pub async fn list(state: &AppState) -> Result<Vec<BuilderInfo>, ApiError> {
    let builders = state.store.list_builders().await?;
    Ok(builders
        .into_iter()
        .map(|b| BuilderInfo { name: b.name, public_keys: b.public_keys, created_at: format_rfc3339(b.created_at) })
        .collect())
}

/// A new token for a live builder, shown once.
pub async fn issue_token_for(state: &AppState, name: &BuilderName) -> Result<TokenResponse, ApiError> {
    let (token, stored) = issue_token()?;
    if !state.store.add_token(name, &stored, state.now()).await? {
        return Err(ApiError::NotFound(format!("no builder named {name}")));
    }
    tracing::info!(builder = %name, "token issued");
    Ok(TokenResponse { token })
}

/// Revokes every active token of a live builder; its attestations stay.
pub async fn revoke_tokens(state: &AppState, name: &BuilderName) -> Result<RevokeResponse, ApiError> {
    let revoked = state
        .store
        .revoke_tokens(name, state.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no builder named {name}")))?;
    tracing::info!(builder = %name, revoked, "tokens revoked");
    Ok(RevokeResponse { revoked })
}

/// Deletes a builder and its tokens; `purge` removes its attestations too.
pub async fn delete(state: &AppState, name: &BuilderName, purge: bool) -> Result<(), ApiError> {
    if !state.store.delete_builder(name, purge, state.now()).await? {
        return Err(ApiError::NotFound(format!("no builder named {name}")));
    }
    tracing::info!(builder = %name, purge, "builder deleted");
    Ok(())
}
