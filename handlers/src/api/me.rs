//! `GET /v1/me`: who a builder token belongs to, so that clients (`nhc import`,
//! `nhc rebuild`) know which signatures the server will accept from them.

use axum::Json;
use nhc_core::{BuilderName, PublicKey};
use serde::Serialize;

use crate::extract::AuthenticatedBuilder;

#[derive(Debug, Serialize)]
pub struct Me {
    pub name: BuilderName,
    pub public_keys: Vec<PublicKey>,
}

/// Builder token required (401 otherwise); answers the builder's name and registered keys.
pub async fn show(AuthenticatedBuilder(builder): AuthenticatedBuilder) -> Json<Me> {
    Json(Me { name: builder.builder, public_keys: builder.public_keys })
}
