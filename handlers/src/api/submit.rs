use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nhc_core::api::{ErrorBody, SubmitRequest, SubmitResponse};

use crate::error::ApiError;
use crate::extract::{AuthenticatedBuilder, JsonBody};
use crate::service::attestations;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(submit_attestations))
}

/// `POST /v1/attestations`: 201 when anything was stored, 200 when all were duplicates.
#[utoipa::path(
    post,
    path = "/v1/attestations",
    tag = "attestations",
    security(("builder_token" = [])),
    request_body(content = SubmitRequest, description = "One build's outputs, each signed by one of the builder's \
                                                           keys. `output_name` is required when `drv_path` is \
                                                           given; an empty `outputs` is 400."),
    responses(
        (status = 201, description = "Something was stored; `stored + duplicates` = the outputs sent.", body = SubmitResponse),
        (status = 200, description = "Every output was a duplicate: nothing changed.", body = SubmitResponse),
        (status = 400, description = "`invalid_json`; `invalid_request`: a field that does not parse, no outputs, \
                                      an output name missing, a size over 2^53 - 1; `bad_signature`: a signature \
                                      that does not verify over the output's fingerprint. Nothing is stored.",
         body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing, malformed, unknown or revoked builder token.", body = ErrorBody),
        (status = 403, description = "`unknown_key`: a signature's key name is not one of the builder's keys.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 4 MiB.", body = ErrorBody),
        (status = 422, description = "`too_many_hashes`: the builder would have more distinct NAR hashes for one \
                                      output path than the server allows (default 4). Nothing is stored.",
         body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn submit_attestations(
    State(state): State<AppState>,
    AuthenticatedBuilder(builder): AuthenticatedBuilder,
    JsonBody(req): JsonBody<SubmitRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let answer = attestations::verify_and_store(&state, &builder, req).await?;
    let status = if answer.stored > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)))
}
