//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"; docs/jobsets.md):
//! the admin routes, the upload and the public reads. The rules are in
//! `service::jobsets` and `nhc-jobset`; this module extracts and answers.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(remove))
        .routes(routes!(new_token))
        .routes(routes!(list))
        .routes(routes!(detail))
        .routes(routes!(badge))
        .routes(routes!(page, put_evaluation))
        .routes(routes!(diff))
        .routes(routes!(suggest))
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
#[utoipa::path(
    post,
    path = "/v1/admin/jobsets",
    operation_id = "jobset_create",
    tag = "jobsets",
    security(("admin_token" = [])),
    request_body = CreateJobsetRequest,
    responses(
        (status = 201, description = "The jobset is created, with no evaluation and no token.", body = CreateJobsetResponse),
        (status = 400, description = "`invalid_json`; `invalid_request`: not a jobset name, or a description over \
                                      1024 bytes or with control characters other than newlines.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 409, description = "`conflict`: a jobset of that name exists.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 4 MiB.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<CreateJobsetRequest>,
) -> Result<(StatusCode, Json<CreateJobsetResponse>)> {
    Ok((StatusCode::CREATED, Json(service::create(&state, req).await?)))
}

/// `DELETE /v1/admin/jobsets/{name}` → 204.
#[utoipa::path(
    delete,
    path = "/v1/admin/jobsets/{name}",
    operation_id = "jobset_delete",
    tag = "jobsets",
    security(("admin_token" = [])),
    params(("name" = JobsetName, Path, description = "The jobset's name.")),
    responses(
        (status = 204, description = "The jobset is deleted, with its evaluations and tokens."),
        (status = 400, description = "`invalid_request`: not a jobset name.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode> {
    service::delete(&state, &jobset_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/jobsets/{name}/tokens` → 201 `{"token"}`.
#[utoipa::path(
    post,
    path = "/v1/admin/jobsets/{name}/tokens",
    operation_id = "jobset_new_token",
    tag = "jobsets",
    security(("admin_token" = [])),
    params(("name" = JobsetName, Path, description = "The jobset's name.")),
    responses(
        (status = 201, description = "A token that uploads evaluations of this jobset only (shown only here); \
                                      earlier tokens stay valid.", body = TokenResponse),
        (status = 400, description = "`invalid_request`: not a jobset name.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    put,
    path = "/v1/jobsets/{name}/evaluations/{rev}",
    operation_id = "jobset_put_evaluation",
    tag = "jobsets",
    security(("admin_token" = []), ("jobset_token" = [])),
    params(("name" = JobsetName, Path, description = "The jobset's name."), ("rev" = Rev, Path, description = "The evaluation's revision.")),
    request_body(
        description = "The evaluation's output paths, at most 250,000 distinct ones in at most 24 MiB, in one of \
                       three formats chosen by Content-Type (docs/jobsets.md): `text/plain`, store paths one a line; \
                       `application/json`, either `{\"paths\": [\"/nix/store/...\" or {\"path\", \"drv_path\", \
                       \"output_name\"}, ...]}` or a CycloneDX JSON SBOM (its components' store paths, and its \
                       dependencies as edges). Derivations (`.drv`) are refused: list their outputs.",
        content(
            (String = "text/plain", example = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\n"),
            (Object = "application/json", example = json!({"paths": ["/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"]})),
        ),
    ),
    responses(
        (status = 201, description = "A new evaluation of the jobset is stored.", body = PutEvaluationResponse),
        (status = 200, description = "The jobset's evaluation of this revision is replaced.", body = PutEvaluationResponse),
        (status = 400, description = "`invalid_request`: not a jobset name or not a revision, or the body could not \
                                      be read; `not_utf8`; `unknown_format`: JSON that is neither shape; \
                                      `malformed_json`; `malformed_sbom`; `invalid_store_path`; `derivation_in_list`; \
                                      `invalid_drv_path`; `invalid_output_name`; `no_paths`: the message says where \
                                      (`line 3`, `paths[2]`, `components[5]`).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no token, or one that is neither the admin token nor a jobset's \
                                      valid token.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a token of another jobset.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset.", body = ErrorBody),
        (status = 413, description = "`body_too_large`: a body over 24 MiB; `too_many_paths`: over 250,000 distinct \
                                      paths; `too_many_edges`: over 4,000,000 dependency edges.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a Content-Type other than text/plain or \
                                      application/json.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable (or two paths share an internal \
                                      id); nothing was stored.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/jobsets",
    operation_id = "jobset_list",
    tag = "jobsets",
    responses(
        (status = 200, description = "Every jobset, with the summary of its latest evaluation.", body = Vec<JobsetInfo>),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<JobsetInfo>>> {
    Ok(Json(service::list(&state).await?))
}

/// `GET /v1/jobsets/{name}`.
#[utoipa::path(
    get,
    path = "/v1/jobsets/{name}",
    operation_id = "jobset_detail",
    tag = "jobsets",
    params(("name" = JobsetName, Path, description = "The jobset's name.")),
    responses(
        (status = 200, description = "The jobset and its evaluations, newest first, each with its summary.", body = JobsetDetail),
        (status = 400, description = "`invalid_request`: not a jobset name.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/jobsets/{name}/evaluations/{rev}",
    operation_id = "jobset_evaluation",
    tag = "jobsets",
    params(("name" = JobsetName, Path, description = "The jobset's name."), ("rev" = Rev, Path, description = "The evaluation's revision."),
           ("status" = Option<String>, Query, description = "Only paths in these states, comma-separated \
                                                             (`reproduced,not_reproduced`); all when absent."),
           ("q" = Option<String>, Query, description = "Only paths containing this text (at most 200 bytes)."),
           ("limit" = Option<u32>, Query, description = "Paths per page, 1–1000 (default 100)."),
           ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page.")),
    responses(
        (status = 200, description = "The evaluation's summary and a page of its paths with their live status.", body = EvaluationPage),
        (status = 400, description = "`invalid_request`: not a jobset name or not a revision, or an unreadable query; \
                                      `bad_request`: an unknown status, a bad limit, q or cursor.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset, or it has no evaluation of that revision.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/jobsets/{name}/evaluations/{rev}/diff/{other_rev}",
    operation_id = "jobset_diff",
    tag = "jobsets",
    params(("name" = JobsetName, Path, description = "The jobset's name."), ("rev" = Rev, Path, description = "The evaluation's revision."),
           ("other_rev" = Rev, Path, description = "The revision to compare from.")),
    responses(
        (status = 200, description = "What changed from `other_rev` to `rev`: paths added, removed, and those whose \
                                      live status differs.", body = EvaluationDiff),
        (status = 400, description = "`invalid_request`: not a jobset name or not a revision.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset, or it has no evaluation of one of the revisions.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn diff(
    State(state): State<AppState>,
    PathParams((name, r, other)): PathParams<(String, String, String)>,
) -> Result<Json<EvaluationDiff>> {
    let (name, r, other) = (jobset_name(&name)?, rev(&r)?, rev(&other)?);
    Ok(Json(service::diff(&state, &name, &r, &other).await?))
}

/// `GET /v1/jobsets/{name}/badge.svg`.
#[utoipa::path(
    get,
    path = "/v1/jobsets/{name}/badge.svg",
    operation_id = "jobset_badge",
    tag = "jobsets",
    params(("name" = JobsetName, Path, description = "The jobset's name.")),
    responses(
        (status = 200, description = "An SVG badge of the latest evaluation's reproducibility (cached for 60 s).",
         content_type = "image/svg+xml", body = String),
        (status = 400, description = "`invalid_request`: not a jobset name.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/jobsets/{name}/evaluations/{rev}/suggest",
    operation_id = "jobset_suggest",
    tag = "jobsets",
    params(("name" = JobsetName, Path, description = "The jobset's name."), ("rev" = Rev, Path, description = "The evaluation's revision."),
           ("builder" = BuilderName, Query, description = "The builder to suggest paths to build to."),
           ("limit" = Option<u32>, Query, description = "Paths to suggest, 1–1000 (default 100).")),
    responses(
        (status = 200, description = "Paths of the evaluation that builder has not attested, most useful first: \
                                      by status (`not_reproduced`, `partially_reproduced`, `one_builder`, \
                                      `no_builds`; never `reproduced`), then fewest builders, then most dependents \
                                      (paths of the upload that depend on it), then upload order; ranked among at \
                                      most the first 5,000 paths of each status.", body = SuggestResponse),
        (status = 400, description = "`invalid_request`: not a jobset name or not a revision, no or a bad builder \
                                      name, or a bad limit.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such jobset, evaluation or builder.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
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
