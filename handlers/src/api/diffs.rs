//! Diff reports (docs/api.md, "Diff reports"): a builder uploads how its rebuild of
//! an output path differed (diffoscope's text, or a list of files), signed with one
//! of its keys; anyone lists and downloads them.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nhc_core::api::ErrorBody;
use nhc_core::diff::{self, DiffInfo, DiffList, DiffUpload, GZIP_MAGIC, MAX_REPORT_BYTES, MAX_UPLOAD_BODY_BYTES};
use nhc_core::time::format_rfc3339;
use nhc_core::StorePath;
use nhc_storage::{DiffRecord, NewDiff};

use crate::error::ApiError;
use crate::extract::{parse_json, AuthenticatedBuilder, PathParams};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Reports listed per path, newest first.
pub const MAX_LISTED: u32 = 200;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, upload)).routes(routes!(report))
}

/// What a deployment allows each builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffLimits {
    /// Bytes of gzip reports one builder may have stored in all.
    pub bytes_per_builder: u64,
    /// Reports one builder may have stored on one output path.
    pub per_path: u64,
}

impl Default for DiffLimits {
    fn default() -> Self {
        DiffLimits { bytes_per_builder: 256 * 1024 * 1024, per_path: 8 }
    }
}

fn path_of(basename: &str) -> Result<StorePath, ApiError> {
    StorePath::from_basename(basename).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

fn info(r: DiffRecord) -> DiffInfo {
    DiffInfo {
        id: r.id.to_string(),
        url: format!("/v1/outputs/{}/diffs/{}", r.output_path.basename(), r.id),
        builder: r.builder,
        output_path: r.output_path,
        nar_hash_a: r.nar_hash_a,
        nar_hash_b: r.nar_hash_b,
        format: r.format,
        size: r.size,
        report_sha256: r.report_sha256,
        signature: r.signature,
        created_at: format_rfc3339(r.created_at),
    }
}

/// The upload's JSON body, read up to [`MAX_UPLOAD_BODY_BYTES`].
struct UploadBody(DiffUpload);

impl<S: Send + Sync> FromRequest<S> for UploadBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_UPLOAD_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge(MAX_UPLOAD_BODY_BYTES));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_BODY_BYTES).await.map_err(|e| {
            let inner = e.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ApiError::PayloadTooLarge(MAX_UPLOAD_BODY_BYTES)
            } else {
                ApiError::InvalidRequest(format!("could not read the request body: {inner}"))
            }
        })?;
        parse_json(&bytes).map(UploadBody)
    }
}

/// `POST /v1/outputs/{basename}/diffs`
#[utoipa::path(
    post,
    path = "/v1/outputs/{basename}/diffs",
    operation_id = "output_diff_upload",
    tag = "attestations",
    security(("builder_token" = [])),
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of the output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello")),
    request_body(content = DiffUpload, description = "A gzip report in base64 (at most 4,000,000 bytes before \
                 base64), signed by one of the builder's keys over \
                 `nhc-diff;1;<output path>;<nar_hash_a>;<nar_hash_b>;<format>;<sha256 hex of the gzip bytes>`."),
    responses(
        (status = 201, description = "Stored.", body = DiffInfo),
        (status = 200, description = "The same report was stored already: nothing changed.", body = DiffInfo),
        (status = 400, description = "`invalid_json`; `invalid_request`: not a basename, a field that does not \
                                      parse, equal NAR hashes, a report that is not base64 of gzip; \
                                      `bad_signature`: the signature does not verify.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing, malformed, unknown or revoked builder token.", body = ErrorBody),
        (status = 403, description = "`unknown_key`: the signature's key name is not one of the builder's keys.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a report over 4,000,000 bytes or a body over its limit.",
         body = ErrorBody),
        (status = 422, description = "`too_many_diffs`: the builder would have more reports on this path (default 8) \
                                      or more bytes of reports in all (default 256 MiB) than allowed.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn upload(
    State(state): State<AppState>,
    PathParams(basename): PathParams<String>,
    AuthenticatedBuilder(builder): AuthenticatedBuilder,
    UploadBody(req): UploadBody,
) -> Result<(StatusCode, Json<DiffInfo>), ApiError> {
    let path = path_of(&basename)?;
    if req.nar_hash_a == req.nar_hash_b {
        return Err(ApiError::InvalidRequest("nar_hash_a and nar_hash_b are equal: nothing differs".into()));
    }
    if req.report.len() > MAX_REPORT_BYTES.div_ceil(3) * 4 {
        return Err(ApiError::PayloadTooLarge(MAX_REPORT_BYTES));
    }
    let report =
        STANDARD.decode(req.report.as_bytes()).map_err(|e| ApiError::InvalidRequest(format!("report: {e}")))?;
    if report.len() > MAX_REPORT_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_REPORT_BYTES));
    }
    if !report.starts_with(&GZIP_MAGIC) {
        return Err(ApiError::InvalidRequest("report: not gzip (it must start with 1f 8b 08)".into()));
    }
    let sha256 = diff::report_sha256(&report);
    let key = builder.public_keys.iter().find(|k| k.name() == req.signature.key_name()).ok_or_else(|| {
        ApiError::UnknownKey(format!("{} is not a key of builder {}", req.signature.key_name(), builder.builder))
    })?;
    let message = diff::fingerprint(&path, &req.nar_hash_a, &req.nar_hash_b, req.format, &sha256);
    if !key.verifies(&message, &req.signature) {
        return Err(ApiError::BadSignature(format!("the signature does not verify over {message:?}")));
    }
    let id = diff::diff_id(&builder.builder, &path, &sha256);
    let meta = DiffRecord {
        id,
        output_path: path.clone(),
        builder: builder.builder.clone(),
        nar_hash_a: req.nar_hash_a,
        nar_hash_b: req.nar_hash_b,
        format: req.format,
        report_sha256: sha256,
        size: report.len() as u64,
        signature: req.signature,
        created_at: state.now(),
    };
    // The same upload again is answered with what is stored, whatever the limits.
    if let Some(existing) = state.store.diffs_of_path(&path, MAX_LISTED).await?.into_iter().find(|d| d.id == id) {
        return Ok((StatusCode::OK, Json(info(existing))));
    }
    let usage = state.store.diff_usage(&builder.builder, &path).await?;
    let limits = state.diff_limits;
    if usage.on_path >= limits.per_path {
        return Err(ApiError::TooManyDiffs(format!(
            "builder {} has {} reports on {path} already (at most {})",
            builder.builder, usage.on_path, limits.per_path
        )));
    }
    if usage.bytes.saturating_add(meta.size) > limits.bytes_per_builder {
        return Err(ApiError::TooManyDiffs(format!(
            "builder {} has {} bytes of reports; this one ({} bytes) would pass its {} bytes",
            builder.builder, usage.bytes, meta.size, limits.bytes_per_builder
        )));
    }
    let stored = state.store.insert_diff(&NewDiff { id, meta: meta.clone(), report }).await?;
    Ok((if stored { StatusCode::CREATED } else { StatusCode::OK }, Json(info(meta))))
}

/// `GET /v1/outputs/{basename}/diffs`
#[utoipa::path(
    get,
    path = "/v1/outputs/{basename}/diffs",
    operation_id = "output_diffs",
    tag = "queries",
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of an output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello")),
    responses(
        (status = 200, description = "The path's reports, newest first, at most 200; an empty list when none.",
         body = DiffList),
        (status = 400, description = "`invalid_request`: not a store-path basename.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    PathParams(basename): PathParams<String>,
) -> Result<Json<DiffList>, ApiError> {
    let path = path_of(&basename)?;
    let diffs = state.store.diffs_of_path(&path, MAX_LISTED).await?;
    Ok(Json(DiffList { diffs: diffs.into_iter().map(info).collect() }))
}

/// `GET /v1/outputs/{basename}/diffs/{id}`
#[utoipa::path(
    get,
    path = "/v1/outputs/{basename}/diffs/{id}",
    operation_id = "output_diff",
    tag = "queries",
    params(("basename" = String, Path, description = "The basename `<hash>-<name>` of an output path.",
            example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"),
           ("id" = String, Path, description = "A report's `id`.")),
    responses(
        (status = 200, description = "The report as uploaded: gzip (`Content-Type: application/gzip`), of text; \
                                      `X-Report-Sha256` is its SHA-256.", content_type = "application/gzip",
         body = Vec<u8>),
        (status = 400, description = "`invalid_request`: not a store-path basename or not an id.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such report on this path.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn report(
    State(state): State<AppState>,
    PathParams((basename, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let path = path_of(&basename)?;
    let id: i64 = id.parse().ok().filter(|n| (0..(1i64 << 53)).contains(n)).ok_or_else(|| {
        ApiError::InvalidRequest(format!("{:?} is not a report id", id.chars().take(40).collect::<String>()))
    })?;
    let (meta, bytes) = state
        .store
        .diff_report(&path, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report {id} on {path}")))?;
    let filename = format!("attachment; filename=\"{}-{}.{}.txt.gz\"", path.basename(), id, meta.format);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
            (header::CACHE_CONTROL, "public, max-age=86400".to_owned()),
            (header::HeaderName::from_static("x-report-sha256"), meta.report_sha256),
        ],
        bytes,
    )
        .into_response())
}
