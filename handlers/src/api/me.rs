//! `GET /v1/me`: who a builder token belongs to, so that clients (`nhc import`,
//! `nhc rebuild`) know which signatures the server will accept from them.

use axum::routing::get;
use axum::{Json, Router};
use nhc_core::{BuilderName, PublicKey};
use serde::Serialize;

use crate::extract::AuthenticatedBuilder;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/me", get(show))
}

#[derive(Debug, Serialize)]
struct Me {
    name: BuilderName,
    public_keys: Vec<PublicKey>,
}

/// Builder token required (401 otherwise); answers the builder's name and registered keys.
async fn show(AuthenticatedBuilder(builder): AuthenticatedBuilder) -> Json<Me> {
    Json(Me { name: builder.builder, public_keys: builder.public_keys })
}
