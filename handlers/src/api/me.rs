//! `GET /v1/me`: who a builder token belongs to, so that clients (`nhc import`,
//! `nhc rebuild`) know which signatures the server will accept from them.

use axum::Json;
use nhc_core::api::ErrorBody;
use nhc_core::{BuilderName, PublicKey};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::AuthenticatedBuilder;
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// The builder a token belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Me {
    name: BuilderName,
    public_keys: Vec<PublicKey>,
}

/// Builder token required (401 otherwise); answers the builder's name and registered keys.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "me",
    tag = "queries",
    security(("builder_token" = [])),
    responses(
        (status = 200, description = "The token's builder and its registered keys: the signatures the server \
                                      accepts from it.", body = Me),
        (status = 401, description = "`unauthorized`: missing, malformed, unknown or revoked builder token.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn show(AuthenticatedBuilder(builder): AuthenticatedBuilder) -> Json<Me> {
    Json(Me { name: builder.builder, public_keys: builder.public_keys })
}
