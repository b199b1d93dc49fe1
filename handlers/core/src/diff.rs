//! Diff reports: how two builds of one output path differ (diffoscope's text report,
//! or a list of the differing files with their hashes), signed by the builder that
//! made it. The wire format of `POST /v1/outputs/{basename}/diffs` and of its
//! listing, and the message the builder signs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{BuilderName, NarHash, Signature, StorePath};

/// Largest report, gzip-compressed, that the server stores: in base64 with the other
/// fields it stays under the 6 MB a Lambda behind API Gateway accepts.
pub const MAX_REPORT_BYTES: usize = 4_000_000;
/// Largest request body of an upload: the report in base64 and the other fields.
pub const MAX_UPLOAD_BODY_BYTES: usize = MAX_REPORT_BYTES / 3 * 4 + 64 * 1024;
/// The gzip magic bytes and the deflate method every report starts with.
pub const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// What a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiffFormat {
    /// `diffoscope --text` output.
    DiffoscopeText,
    /// `nhc check`'s own list: one line per differing file, with both hashes.
    FileList,
}

impl DiffFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffFormat::DiffoscopeText => "diffoscope-text",
            DiffFormat::FileList => "file-list",
        }
    }
}

impl fmt::Display for DiffFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiffFormat {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "diffoscope-text" => Ok(DiffFormat::DiffoscopeText),
            "file-list" => Ok(DiffFormat::FileList),
            other => Err(crate::ParseError::DiffFormat(format!("{other:?} (expected diffoscope-text or file-list)"))),
        }
    }
}

crate::serde_via_str!(DiffFormat, "diffoscope-text or file-list");

/// The SHA-256 of a report (its gzip bytes as uploaded), lower-case hex.
pub fn report_sha256(gzip: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(gzip))
}

/// The message a builder signs for a report:
/// `nhc-diff;1;<output path>;<nar hash a>;<nar hash b>;<format>;<sha256 hex of the gzip report>`,
/// the NAR hashes as `sha256:<nix32>`.
pub fn fingerprint(path: &StorePath, a: &NarHash, b: &NarHash, format: DiffFormat, sha256_hex: &str) -> String {
    format!("nhc-diff;1;{path};{a};{b};{format};{sha256_hex}")
}

/// `POST /v1/outputs/{basename}/diffs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiffUpload {
    /// The NAR hash of the first build (the one registered in the store).
    pub nar_hash_a: NarHash,
    /// The NAR hash of the rebuild that differs.
    pub nar_hash_b: NarHash,
    pub format: DiffFormat,
    /// The report, gzip-compressed, in standard base64.
    pub report: String,
    /// One of the builder's keys over [`fingerprint`].
    pub signature: Signature,
}

/// One stored report, as listed and as answered to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffInfo {
    /// Decimal, below 2^53.
    pub id: String,
    pub builder: BuilderName,
    pub output_path: StorePath,
    pub nar_hash_a: NarHash,
    pub nar_hash_b: NarHash,
    pub format: DiffFormat,
    /// Bytes of the gzip report.
    pub size: u64,
    /// SHA-256 (hex) of the gzip report.
    pub report_sha256: String,
    pub signature: Signature,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Where the report is: `/v1/outputs/{basename}/diffs/{id}` (gzip, `Content-Encoding: gzip`).
    pub url: String,
}

/// `GET /v1/outputs/{basename}/diffs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffList {
    /// Newest first.
    pub diffs: Vec<DiffInfo>,
}

/// The id of a report: the first 53 bits of SHA-256 over the builder, the path and
/// the report's hash, so that the same upload again finds the same row.
pub fn diff_id(builder: &BuilderName, path: &StorePath, sha256_hex: &str) -> i64 {
    let digest = Sha256::digest(format!("{builder}\n{path}\n{sha256_hex}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_and_unknown_ones_fail() {
        for f in [DiffFormat::DiffoscopeText, DiffFormat::FileList] {
            assert_eq!(f.as_str().parse::<DiffFormat>().unwrap(), f);
        }
        assert!("html".parse::<DiffFormat>().is_err());
    }

    #[test]
    fn ids_stay_below_2_pow_53_and_depend_on_every_part() {
        let b: BuilderName = "b1".parse().unwrap();
        let c: BuilderName = "b2".parse().unwrap();
        let p = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
        let id = diff_id(&b, &p, "00");
        assert!((0..(1i64 << 53)).contains(&id));
        assert_ne!(id, diff_id(&c, &p, "00"));
        assert_ne!(id, diff_id(&b, &p, "01"));
        assert_eq!(report_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
