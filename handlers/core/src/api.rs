//! The JSON shapes of the HTTP API (DESIGN.md), shared by the server, the client and
//! the conformance suite. Deserializing one of these validates every field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint::References;
use crate::{BuilderName, DrvPath, NarHash, OutputName, PublicKey, ReproStatus, Signature, StorePath};

/// Largest number of paths one `POST /v1/status` may ask about.
pub const MAX_STATUS_PATHS: usize = 10_000;
/// Largest accepted NAR size: 2^53 - 1 (8 PiB), the largest integer every JSON
/// implementation (and D1, whose numbers are doubles) represents exactly.
pub const MAX_NAR_SIZE: u64 = (1 << 53) - 1;
/// Largest request body the server reads.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `POST /v1/attestations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drv_path: Option<DrvPath>,
    pub outputs: Vec<SubmittedOutput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmittedOutput {
    #[serde(default)]
    pub output_name: Option<OutputName>,
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740991_u64))]
    pub nar_size: u64,
    #[serde(default)]
    pub references: References,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    pub stored: u64,
    pub duplicates: u64,
    /// Each stored attestation's place in the transparency log (docs/api.md,
    /// "Transparency log"), in log order; duplicates have none. Absent from servers
    /// before the log existed.
    #[serde(default)]
    pub log: Vec<LogReceipt>,
}

/// The counts of a [`SubmitResponse`] alone: what a client reads to know that every
/// output sent was accounted for, whatever the rest of the answer holds (an unreadable
/// `log` must not make a stored submission look undelivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SubmitCounts {
    pub stored: u64,
    pub duplicates: u64,
}

/// Where the transparency log put one stored attestation: what a client records to
/// audit the log later (`nhc audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogReceipt {
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    /// The leaf's index in the log (0-based, in acceptance order).
    pub index: u64,
    /// RFC 6962 leaf hash, `SHA-256(0x00 || leaf)`, 64 lowercase hex digits.
    pub leaf_hash: String,
}

/// One builder's signed claim about one output path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attestation {
    pub builder: BuilderName,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    pub output_path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub signature: Signature,
    /// RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2026-11-25T14:20:18.500000Z"))]
    pub submitted_at: String,
    /// Its index in the transparency log; absent for attestations stored before the
    /// log existed (and from servers without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// `GET /v1/outputs/{basename}?limit=&cursor=`: the status and counts over every
/// attestation of the path, and one page of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputReport {
    pub output_path: StorePath,
    pub status: ReproStatus,
    /// Distinct builders that attested the path (all of them, not only this page's).
    #[serde(default)]
    pub builders: u64,
    /// Distinct NAR hashes attested for the path.
    #[serde(default)]
    pub distinct_hashes: u64,
    /// Attestations of the path in all.
    #[serde(default)]
    pub total_attestations: u64,
    /// This page, oldest first.
    pub attestations: Vec<Attestation>,
    /// Pass as `cursor` for the next page; `None` on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/derivations/{drv}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DerivationReport {
    pub drv_path: DrvPath,
    /// The outputs more than half of the builders that named outputs of this
    /// derivation named (all of them when no such builder remains).
    pub outputs: BTreeMap<OutputName, DerivationOutput>,
    /// Output names that half of those builders or fewer named: the output name and
    /// derivation of an attestation are not signed, so these may be made up. They
    /// have no status. Absent from servers before this field existed.
    #[serde(default)]
    pub disputed: BTreeMap<OutputName, DisputedOutput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DerivationOutput {
    pub output_path: StorePath,
    pub status: ReproStatus,
    pub results: Vec<HashResult>,
    /// The builders that named this output of this derivation (whatever path they
    /// gave it), sorted. Absent from servers before this field existed.
    #[serde(default)]
    pub claimed_by: Vec<BuilderName>,
}

/// An output name too few of a derivation's builders named to be believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisputedOutput {
    /// The path named for it (the one the most of its claimers named, then the one
    /// named first).
    pub output_path: StorePath,
    /// The builders that named it, sorted.
    pub claimed_by: Vec<BuilderName>,
}

/// The builders that reported one NAR hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HashResult {
    pub nar_hash: NarHash,
    pub builders: Vec<BuilderName>,
}

/// `POST /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusRequest {
    pub paths: Vec<StorePath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathStatus {
    pub status: ReproStatus,
    pub builders: u64,
    pub distinct_hashes: u64,
}

pub type StatusResponse = BTreeMap<StorePath, PathStatus>;

/// An entry of `GET /v1/builders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuilderInfo {
    pub name: BuilderName,
    pub public_keys: Vec<PublicKey>,
    /// RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2026-11-25T14:20:18.500000Z"))]
    pub created_at: String,
}

/// `GET /v1/builders/{name}/attestations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttestationPage {
    pub attestations: Vec<Attestation>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/admin/builders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateBuilderRequest {
    pub name: BuilderName,
    pub public_keys: Vec<PublicKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateBuilderResponse {
    pub name: BuilderName,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub token: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeResponse {
    pub revoked: u64,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    pub error: String,
    /// For people; match on `error`.
    pub message: String,
}

/// The `error` codes of an [`ErrorBody`] (docs/api.md, "Errors"), as the OpenAPI
/// document lists them. `rate_limited` (429) and `overloaded` (503) come from
/// `nhc-server`'s and the Lambda's guard, the others from the handlers (the jobset
/// routes' upload and page-query codes from `nhc-jobset`).
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    BadSignature,
    Unauthorized,
    UnknownKey,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooManyHashes,
    /// A builder's diff reports would pass a limit (per path or in bytes).
    TooManyDiffs,
    PayloadTooLarge,
    RateLimited,
    Overloaded,
    Unavailable,
    InternalError,
    /// Authenticated, but not for this: a jobset token used for another jobset.
    Forbidden,
    // nhc-jobset's codes (an evaluation upload and page query; docs/jobsets.md).
    UnsupportedMediaType,
    BodyTooLarge,
    NotUtf8,
    UnknownFormat,
    MalformedJson,
    MalformedSbom,
    InvalidStorePath,
    DerivationInList,
    InvalidDrvPath,
    InvalidOutputName,
    TooManyPaths,
    TooManyEdges,
    NoPaths,
    BadRequest,
}
