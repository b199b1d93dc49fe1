use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nhc_core::api::ErrorBody;

use nhc_storage::StoreError;

/// Every way a request can fail, mapped to HTTP once, here. The body is always
/// `{"error": <code>, "message": <text>}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    UnknownKey(String),
    #[error("{0}")]
    NotFound(String),
    /// Authenticated, but not allowed this (a jobset token used for another jobset).
    #[error("{0}")]
    Forbidden(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A submission would give its builder more distinct NAR hashes for one output
    /// path than allowed.
    #[error("{0}")]
    TooManyHashes(String),
    /// A diff report would give its builder more reports on a path, or more bytes
    /// of reports, than allowed.
    #[error("{0}")]
    TooManyDiffs(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidRequest(_) | ApiError::BadSignature(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnknownKey(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyHashes(_) | ApiError::TooManyDiffs(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::UnknownKey(_) => "unknown_key",
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyHashes(_) => "too_many_hashes",
            ApiError::TooManyDiffs(_) => "too_many_diffs",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Details of server faults go to the log, not to the client.
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                "internal server error".to_owned()
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                "the database is unavailable; try again later".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody { error: self.code().to_owned(), message };
        (status, axum::Json(body)).into_response()
    }
}
