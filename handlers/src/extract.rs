//! Extractors that turn every malformed request into an [`ApiError`], so handlers
//! only ever see parsed, valid values.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{admin_matches, bearer, PresentedToken};
use crate::error::ApiError;
use crate::state::AppState;
use nhc_core::api::MAX_BODY_BYTES;
use nhc_core::BuilderName;
use nhc_storage::TokenRecord;

/// A JSON body of at most [`MAX_BODY_BYTES`], deserialized into a type that validates
/// every field. Errors name the offending field, e.g. `outputs[0].nar_hash: ...`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|e| {
            let inner = e.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::InvalidRequest(format!("could not read the request body: {inner}"))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Valid requests parse once, without tracking the path of every field; only a
    // body that fails is parsed again, to name the field in the error.
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(_) => Err(explain_json_error::<T>(bytes)),
    }
}

/// The error of a body that did not parse, naming the field, e.g. `outputs[0].nar_hash: ...`.
fn explain_json_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    use serde_json::error::Category;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Result<T, ApiError> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            // A document that is not JSON at all can fail as "wrong shape" first
            // (`{} trailing` lacks a field before the trailing text is seen).
            Category::Data if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
                ApiError::InvalidJson(format!("malformed JSON: {inner}"))
            }
            Category::Data => {
                if path == "." {
                    ApiError::InvalidRequest(inner.to_string())
                } else {
                    ApiError::InvalidRequest(format!("{path}: {inner}"))
                }
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::InvalidJson(format!("malformed JSON: {inner}"))
            }
        }
    });
    match value {
        Err(e) => e,
        Ok(_) => match de.end() {
            Err(e) => ApiError::InvalidJson(format!("malformed JSON: {e}")),
            // Unreachable in practice: the plain parse failed, so this one does too.
            Ok(()) => ApiError::InvalidJson("malformed JSON".into()),
        },
    }
}

/// Path parameters; a segment that cannot be decoded is a 400.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|e| ApiError::InvalidRequest(format!("invalid path: {}", e.body_text())))
    }
}

/// The `{name}` segment of a route, parsed by `BuilderName`'s `FromStr`: anything
/// else than `A-Za-z0-9._-` is a 400.
pub struct PathBuilder(pub BuilderName);

impl<S: Send + Sync> FromRequestParts<S> for PathBuilder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::InvalidRequest(format!("invalid path: {}", e.body_text())))?;
        let raw = params
            .iter()
            .find_map(|(key, value)| (key == "name").then_some(value))
            .ok_or_else(|| ApiError::Internal("a route without {name} asked for a builder name".into()))?;
        raw.parse().map(PathBuilder).map_err(|e: nhc_core::ParseError| ApiError::InvalidRequest(e.to_string()))
    }
}

/// Query parameters; unparseable ones are a 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| QueryParams(t))
            .map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))
    }
}

/// A request with the admin token (`Authorization: Bearer $NHC_ADMIN_TOKEN`).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state
            .admin_token_hash
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("the admin API is disabled: NHC_ADMIN_TOKEN is not set".into()))?;
        match bearer(&parts.headers) {
            Some(token) if admin_matches(token, expected) => Ok(Admin),
            Some(_) => Err(ApiError::Unauthorized("wrong admin token".into())),
            None => Err(ApiError::Unauthorized("missing admin token (Authorization: Bearer ...)".into())),
        }
    }
}

/// A request with a builder's valid, unrevoked token.
pub struct AuthenticatedBuilder(pub TokenRecord);

impl FromRequestParts<AppState> for AuthenticatedBuilder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("missing builder token (Authorization: Bearer ...)".into()))?;
        let unknown = || ApiError::Unauthorized("unknown token".into());
        let presented = PresentedToken::parse(token).ok_or_else(unknown)?;
        let record = state.store.find_token(&presented.id).await?.ok_or_else(unknown)?;
        if !presented.matches(&record.secret_hash) {
            return Err(unknown());
        }
        if record.revoked {
            return Err(ApiError::Unauthorized("token revoked".into()));
        }
        Ok(AuthenticatedBuilder(record))
    }
}
