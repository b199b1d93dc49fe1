use axum::extract::State;
use axum::Json;
use nhc_core::api::{DerivationReport, ErrorBody};
use nhc_core::DrvPath;

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::service;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// `GET /v1/derivations/{drv-basename}` (with or without `.drv`); what it trusts is
/// in [`service::derivations`].
#[utoipa::path(
    get,
    path = "/v1/derivations/{drv}",
    operation_id = "derivation",
    tag = "queries",
    params(("drv" = String, Path, description = "The basename of a derivation `<hash>-<name>.drv`, with or \
                                                 without `.drv`.", example = "76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv")),
    responses(
        (status = 200, description = "Per output name: the output path, its status (over every attestation of the \
                                      path) and which builders got which hash, most builders first; \
                                      output names only a minority of the derivation's builders named are \
                                      under `disputed`.",
         body = DerivationReport),
        (status = 400, description = "`invalid_request`: not a derivation basename.", body = ErrorBody),
        (status = 404, description = "`not_found`: no output of it has an attestation.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    PathParams(drv): PathParams<String>,
) -> Result<Json<DerivationReport>, ApiError> {
    let drv = DrvPath::from_basename_lenient(&drv).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok(Json(service::derivations::report(&state, drv).await?))
}
