use nhc_core::ParseError;

/// Why an upload is refused. Every case has a stable machine code ([`code`]) and an
/// HTTP status ([`http_status`]), so a handler maps it to the error body once; the
/// message says what to fix and where (`line 3`, `paths[2]`, `components[5]`).
///
/// [`code`]: UploadError::code
/// [`http_status`]: UploadError::http_status
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error(
        "unsupported Content-Type {0:?}: send text/plain (store paths, one a line) or application/json \
         ({{\"paths\": [...]}} or a CycloneDX JSON SBOM)"
    )]
    UnsupportedMediaType(String),
    #[error("the body is larger than {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    #[error("unrecognised upload: {0}")]
    UnknownFormat(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("malformed CycloneDX SBOM: {0}")]
    MalformedSbom(String),
    #[error("{at}: {source}")]
    InvalidPath { at: String, source: ParseError },
    #[error(
        "{at}: {path} is a derivation, not an output path; list its outputs instead \
         (`nhc jobset push --build-closure` resolves derivations)"
    )]
    Derivation { at: String, path: String },
    #[error("{at}: {source}")]
    InvalidDrvPath { at: String, source: ParseError },
    #[error("{at}: {source}")]
    InvalidOutputName { at: String, source: ParseError },
    #[error("more than {max} distinct paths")]
    TooManyPaths { max: usize },
    #[error("more than {max} dependency edges")]
    TooManyEdges { max: usize },
    #[error("the upload lists no store path")]
    NoPaths,
}

impl UploadError {
    /// The `error` field of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::UnsupportedMediaType(_) => "unsupported_media_type",
            UploadError::BodyTooLarge { .. } => "body_too_large",
            UploadError::NotUtf8 => "not_utf8",
            UploadError::UnknownFormat(_) => "unknown_format",
            UploadError::MalformedJson(_) => "malformed_json",
            UploadError::MalformedSbom(_) => "malformed_sbom",
            UploadError::InvalidPath { .. } => "invalid_store_path",
            UploadError::Derivation { .. } => "derivation_in_list",
            UploadError::InvalidDrvPath { .. } => "invalid_drv_path",
            UploadError::InvalidOutputName { .. } => "invalid_output_name",
            UploadError::TooManyPaths { .. } => "too_many_paths",
            UploadError::TooManyEdges { .. } => "too_many_edges",
            UploadError::NoPaths => "no_paths",
        }
    }

    /// The HTTP status: 415 for a media type that is no upload format, 413 for what
    /// is over a size limit, 400 for everything else. Never 5xx.
    pub fn http_status(&self) -> u16 {
        match self {
            UploadError::UnsupportedMediaType(_) => 415,
            UploadError::BodyTooLarge { .. } | UploadError::TooManyPaths { .. } | UploadError::TooManyEdges { .. } => {
                413
            }
            _ => 400,
        }
    }
}
