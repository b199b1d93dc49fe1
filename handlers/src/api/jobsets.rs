//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"; docs/jobsets.md):
//! the admin routes, the upload and the public reads. The rules are in
//! `service::jobsets` and `nhc-jobset`; this module extracts and answers.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use nhc_core::api::{ErrorBody, TokenResponse};
use nhc_core::jobset::{
    CreateJobsetRequest, CreateJobsetResponse, EvaluationDiff, EvaluationPage, JobsetDetail, JobsetInfo,
    PutEvaluationResponse, SuggestResponse, MAX_UPLOAD_BYTES,
};
use nhc_core::{BuilderName, JobsetName, Rev};
use nhc_jobset::{parse_page_query, QueryError, UploadError};
use serde::Deserialize;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::extract::{Admin, JsonBody, PathParams, QueryParams};
use crate::service::jobsets::{self as service, DEFAULT_SUGGEST_LIMIT, MAX_SUGGEST_LIMIT};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/v1/admin/jobsets", post(create))
        .route("/v1/admin/jobsets/{name}", delete(remove))
        .route("/v1/admin/jobsets/{name}/tokens", post(new_token))
        .route("/v1/jobsets", get(list))
        .route("/v1/jobsets/{name}", get(detail))
        .route("/v1/jobsets/{name}/badge.svg", get(badge))
        .route("/v1/jobsets/{name}/evaluations/{rev}", get(page).put(put_evaluation))
        .route("/v1/jobsets/{name}/evaluations/{rev}/diff/{other_rev}", get(diff))
        .route("/v1/jobsets/{name}/evaluations/{rev}/suggest", get(suggest))
}

/// The errors of these routes: the API's, and the typed ones of `nhc-jobset`
/// (their own codes and statuses), all as `{"error", "message"}`.
pub(crate) enum JobsetError {
    Api(ApiError),
    Upload(UploadError),
    Query(QueryError),
}

impl From<ApiError> for JobsetError {
    fn from(e: ApiError) -> Self {
        JobsetError::Api(e)
    }
}

impl From<nhc_storage::StoreError> for JobsetError {
    fn from(e: nhc_storage::StoreError) -> Self {
        JobsetError::Api(e.into())
    }
}

impl From<UploadError> for JobsetError {
    fn from(e: UploadError) -> Self {
        JobsetError::Upload(e)
    }
}

impl From<QueryError> for JobsetError {
    fn from(e: QueryError) -> Self {
        JobsetError::Query(e)
    }
}

fn typed(status: u16, code: &str, message: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(ErrorBody { error: code.to_owned(), message })).into_response()
}

impl IntoResponse for JobsetError {
    fn into_response(self) -> Response {
        match self {
            JobsetError::Api(e) => e.into_response(),
            JobsetError::Upload(e) => typed(e.http_status(), e.code(), e.to_string()),
            JobsetError::Query(e) => typed(e.http_status(), e.code(), e.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, JobsetError>;

fn jobset_name(s: &str) -> std::result::Result<JobsetName, ApiError> {
    JobsetName::parse(s).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

fn rev(s: &str) -> std::result::Result<Rev, ApiError> {
    Rev::parse(s).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// `POST /v1/admin/jobsets {"name", "description"}` → 201 `{"name"}`.
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<CreateJobsetRequest>,
) -> Result<(StatusCode, Json<CreateJobsetResponse>)> {
    Ok((StatusCode::CREATED, Json(service::create(&state, req).await?)))
}

/// `DELETE /v1/admin/jobsets/{name}` → 204.
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode> {
    service::delete(&state, &jobset_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/jobsets/{name}/tokens` → 201 `{"token"}`.
async fn new_token(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
) -> Result<(StatusCode, Json<TokenResponse>)> {
    Ok((StatusCode::CREATED, Json(service::issue_token(&state, &jobset_name(&name)?).await?)))
}

/// The body of an upload, at most [`MAX_UPLOAD_BYTES`].
async fn read_upload(headers: &HeaderMap, body: Body) -> std::result::Result<axum::body::Bytes, JobsetError> {
    let too_large = || JobsetError::Upload(UploadError::BodyTooLarge { max: MAX_UPLOAD_BYTES });
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, MAX_UPLOAD_BYTES).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let inner = e.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Err(too_large())
            } else {
                Err(ApiError::InvalidRequest(format!("could not read the request body: {inner}")).into())
            }
        }
    }
}

/// `PUT /v1/jobsets/{name}/evaluations/{rev}` (admin or that jobset's token): 201
/// when new, 200 when it replaced the rev. Checked in order: the names, the token,
/// the jobset, the body; nothing is stored unless all pass.
async fn put_evaluation(
    State(state): State<AppState>,
    PathParams((name, r)): PathParams<(String, String)>,
    req: Request,
) -> Result<(StatusCode, Json<PutEvaluationResponse>)> {
    let (name, r) = (jobset_name(&name)?, rev(&r)?);
    let (parts, body) = req.into_parts();
    service::authorize_upload(&state, bearer(&parts.headers), &name).await?;
    service::find(&state, &name).await?;
    let bytes = read_upload(&parts.headers, body).await?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not ASCII)"));
    let upload = nhc_jobset::parse_upload(content_type, &bytes)?;
    drop(bytes);
    let (created, answer) = service::put_evaluation(&state, &name, &r, upload).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(answer)))
}

/// `GET /v1/jobsets`.
async fn list(State(state): State<AppState>) -> Result<Json<Vec<JobsetInfo>>> {
    Ok(Json(service::list(&state).await?))
}

/// `GET /v1/jobsets/{name}`.
async fn detail(State(state): State<AppState>, PathParams(name): PathParams<String>) -> Result<Json<JobsetDetail>> {
    Ok(Json(service::detail(&state, &jobset_name(&name)?).await?))
}

#[derive(Deserialize)]
struct PageParams {
    status: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}?status=&q=&limit=&cursor=`.
async fn page(
    State(state): State<AppState>,
    PathParams((name, r)): PathParams<(String, String)>,
    QueryParams(p): QueryParams<PageParams>,
) -> Result<Json<EvaluationPage>> {
    let (name, r) = (jobset_name(&name)?, rev(&r)?);
    let q = parse_page_query(p.status.as_deref(), p.q.as_deref(), p.limit.as_deref(), p.cursor.as_deref())?;
    Ok(Json(service::page(&state, &name, &r, q).await?))
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}/diff/{other_rev}`.
async fn diff(
    State(state): State<AppState>,
    PathParams((name, r, other)): PathParams<(String, String, String)>,
) -> Result<Json<EvaluationDiff>> {
    let (name, r, other) = (jobset_name(&name)?, rev(&r)?, rev(&other)?);
    Ok(Json(service::diff(&state, &name, &r, &other).await?))
}

/// `GET /v1/jobsets/{name}/badge.svg`.
async fn badge(State(state): State<AppState>, PathParams(name): PathParams<String>) -> Result<Response> {
    let svg = service::badge(&state, &jobset_name(&name)?).await?;
    let headers = [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=60")];
    Ok((headers, svg).into_response())
}

#[derive(Deserialize)]
struct SuggestParams {
    builder: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}/suggest?builder=NAME&limit=N`.
async fn suggest(
    State(state): State<AppState>,
    PathParams((name, r)): PathParams<(String, String)>,
    QueryParams(p): QueryParams<SuggestParams>,
) -> Result<Json<SuggestResponse>> {
    let (name, r) = (jobset_name(&name)?, rev(&r)?);
    let builder = p.builder.ok_or_else(|| ApiError::InvalidRequest("builder: required (?builder=NAME)".into()))?;
    let builder = BuilderName::parse(&builder).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let limit = match p.limit.as_deref() {
        None => DEFAULT_SUGGEST_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_SUGGEST_LIMIT).contains(&n) => n,
            _ => {
                return Err(
                    ApiError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_SUGGEST_LIMIT}")).into()
                )
            }
        },
    };
    Ok(Json(service::suggest(&state, &name, &r, &builder, limit).await?))
}

/// The most body bytes a route reads: [`MAX_UPLOAD_BYTES`] for an evaluation's upload,
/// the API's limit otherwise. For platforms that buffer the body before the router
/// runs (the Worker), so that they keep enough of it.
pub fn body_limit(method: &axum::http::Method, path: &str) -> usize {
    if method == axum::http::Method::PUT && path.starts_with("/v1/jobsets/") {
        MAX_UPLOAD_BYTES
    } else {
        nhc_core::api::MAX_BODY_BYTES
    }
}
