//! Jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"): the names, the
//! items of an evaluation, the summary of statuses, and the JSON shapes of every
//! jobset route. The rules that work on them (upload formats, diff, badge) live in
//! the `nhc-jobset` crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{quote, ParseError};
use crate::{BuilderName, DrvPath, OutputName, ReproStatus, StorePath};

/// Largest number of distinct paths in one evaluation.
pub const MAX_EVALUATION_PATHS: usize = 250_000;
/// Largest number of dependency edges kept from one upload (an SBOM of a 250,000-path
/// closure has a few million at most).
pub const MAX_EVALUATION_EDGES: usize = 4_000_000;
/// Largest upload body: 250,000 paths as a plain list are about 20 MB. SBOMs are
/// larger (~500 bytes a component); the client sends a larger one as its paths.
/// Bounded so that a Worker (128 MB) can hold an upload and its parse.
pub const MAX_UPLOAD_BYTES: usize = 24 * 1024 * 1024;
/// Page sizes of `GET /v1/jobsets/{name}/evaluations/{rev}`.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// A jobset's name: the builder-name rule (1–64 chars of `A-Za-z0-9._-`, starting with
/// a letter or digit), since it appears in URLs and file names too.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobsetName(BuilderName);

impl JobsetName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        BuilderName::parse(s).map(JobsetName).map_err(|e| match e {
            ParseError::BuilderName(m) => ParseError::JobsetName(m),
            other => other,
        })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// An evaluation's revision, e.g. a nixpkgs commit: 1–128 chars of `A-Za-z0-9._-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rev(Box<str>);

impl Rev {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=128).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if ok {
            Ok(Rev(s.into()))
        } else {
            Err(ParseError::Rev(format!("{}: must be 1 to 128 characters of A-Z a-z 0-9 . _ -", quote(s))))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_fromstr {
    ($ty:ty, $expecting:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        crate::serde_via_str!($ty, $expecting);
    };
}
display_fromstr!(JobsetName, "a jobset name");
display_fromstr!(Rev, "a revision (1 to 128 characters of A-Z a-z 0-9 . _ -)");

/// One output path of an evaluation, with its derivation and output name when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationItem {
    pub path: StorePath,
    #[serde(default)]
    pub drv_path: Option<DrvPath>,
    #[serde(default)]
    pub output_name: Option<OutputName>,
}

impl EvaluationItem {
    pub fn bare(path: StorePath) -> Self {
        EvaluationItem { path, drv_path: None, output_name: None }
    }
}

/// `from` depends on `to` (at run time for a closure, as the SBOM says otherwise):
/// indices into the evaluation's item list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edge {
    pub from: u32,
    pub to: u32,
}

/// How many paths of an evaluation are in each of the five states of `/v1/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub reproduced: u64,
    pub partially_reproduced: u64,
    pub not_reproduced: u64,
    pub one_builder: u64,
    pub no_builds: u64,
}

impl Summary {
    pub fn from_statuses(statuses: impl IntoIterator<Item = ReproStatus>) -> Self {
        let mut s = Summary::default();
        for st in statuses {
            s.add(st, 1);
        }
        s
    }

    pub fn add(&mut self, status: ReproStatus, n: u64) {
        *self.count_mut(status) += n;
    }

    pub fn count(&self, status: ReproStatus) -> u64 {
        match status {
            ReproStatus::Reproduced => self.reproduced,
            ReproStatus::PartiallyReproduced => self.partially_reproduced,
            ReproStatus::NotReproduced => self.not_reproduced,
            ReproStatus::OneBuilder => self.one_builder,
            ReproStatus::NoBuilds => self.no_builds,
        }
    }

    fn count_mut(&mut self, status: ReproStatus) -> &mut u64 {
        match status {
            ReproStatus::Reproduced => &mut self.reproduced,
            ReproStatus::PartiallyReproduced => &mut self.partially_reproduced,
            ReproStatus::NotReproduced => &mut self.not_reproduced,
            ReproStatus::OneBuilder => &mut self.one_builder,
            ReproStatus::NoBuilds => &mut self.no_builds,
        }
    }

    pub fn total(&self) -> u64 {
        ReproStatus::ALL.iter().map(|s| self.count(*s)).sum()
    }

    /// Paths built by two or more builders with differing hashes.
    pub fn differing(&self) -> u64 {
        self.partially_reproduced + self.not_reproduced
    }
}

/// `POST /v1/admin/jobsets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateJobsetRequest {
    pub name: JobsetName,
    #[serde(default)]
    pub description: String,
}

/// Largest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// `POST /v1/admin/jobsets` → 201.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateJobsetResponse {
    pub name: JobsetName,
}

/// `PUT /v1/jobsets/{name}/evaluations/{rev}` → 201 when new, 200 when it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutEvaluationResponse {
    pub jobset: JobsetName,
    pub rev: Rev,
    pub paths: u64,
}

/// An evaluation in a jobset's history (and `latest` in the list of jobsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationSummary {
    pub rev: Rev,
    /// RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2026-11-25T14:20:18.500000Z"))]
    pub created_at: String,
    pub paths: u64,
    pub summary: Summary,
    /// When `summary` was computed (RFC 3339, UTC): history summaries are cached and
    /// at most a minute old when asked for (an addition to DESIGN.md's shape).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub summary_at: Option<String>,
}

/// An entry of `GET /v1/jobsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsetInfo {
    pub name: JobsetName,
    pub description: String,
    pub latest: Option<EvaluationSummary>,
}

/// `GET /v1/jobsets/{name}`: evaluations newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsetDetail {
    pub name: JobsetName,
    pub description: String,
    pub evaluations: Vec<EvaluationSummary>,
}

/// A path of an evaluation with its live status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationPathStatus {
    pub path: StorePath,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    pub status: ReproStatus,
    pub builders: u64,
    pub distinct_hashes: u64,
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}?status=&q=&limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationPage {
    pub jobset: JobsetName,
    pub rev: Rev,
    /// RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2026-11-25T14:20:18.500000Z"))]
    pub created_at: String,
    pub paths: u64,
    pub summary: Summary,
    /// This page, in the order of the upload.
    pub items: Vec<EvaluationPathStatus>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A path present on both sides of a diff (same path, or same name once on each
/// side) whose live status differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedPath {
    /// What follows the hash in the store path.
    pub name: String,
    pub from_path: StorePath,
    pub to_path: StorePath,
    pub from: ReproStatus,
    pub to: ReproStatus,
}

/// `GET /v1/jobsets/{name}/evaluations/{rev}/diff/{other_rev}`: what changed from
/// `other_rev` to `rev`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationDiff {
    pub added: Vec<StorePath>,
    pub removed: Vec<StorePath>,
    pub changed: Vec<ChangedPath>,
}

/// An item of `GET /v1/jobsets/{name}/evaluations/{rev}/suggest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuggestItem {
    pub path: StorePath,
    pub drv_path: Option<DrvPath>,
    pub output_name: Option<OutputName>,
    pub status: ReproStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuggestResponse {
    pub items: Vec<SuggestItem>,
}

/// The `status=a,b` filter of the evaluation page: an unknown value is 400.
pub fn parse_status_filter(s: &str) -> Result<Vec<ReproStatus>, ParseError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let st = ReproStatus::parse(part)?;
        if !out.contains(&st) {
            out.push(st);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobset_names_follow_the_builder_rule() {
        for ok in ["nixos-iso-minimal-x86_64", "a", "0.x_y-z", &"j".repeat(64)] {
            assert_eq!(JobsetName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "<x>", &"j".repeat(65)] {
            let e = JobsetName::parse(bad).unwrap_err();
            assert!(matches!(e, ParseError::JobsetName(_)), "{bad}: {e:?}");
            assert!(e.to_string().starts_with("invalid jobset name"), "{e}");
        }
    }

    #[test]
    fn revs() {
        for ok in ["a", "0123abcdef", "nixos-24.05", "_x", ".", &"r".repeat(128)] {
            assert!(Rev::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "ü", "a\n", "a%2F", &"r".repeat(129)] {
            assert!(matches!(Rev::parse(bad), Err(ParseError::Rev(_))), "{bad}");
        }
        let r: Rev = serde_json::from_value(json!("abc")).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), json!("abc"));
        assert!(serde_json::from_value::<Rev>(json!("a/b")).is_err());
    }

    #[test]
    fn summary_counts_and_field_names() {
        use ReproStatus::*;
        let s = Summary::from_statuses([Reproduced, Reproduced, NotReproduced, NoBuilds, PartiallyReproduced]);
        assert_eq!((s.total(), s.differing(), s.count(Reproduced)), (5, 2, 2));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            json!({"reproduced": 2, "partially_reproduced": 1, "not_reproduced": 1, "one_builder": 0, "no_builds": 1})
        );
    }

    #[test]
    fn shapes_have_the_contracts_field_names() {
        let p = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
        let page = json!({
            "jobset": "iso", "rev": "r1", "created_at": "2026-11-30T00:00:00Z", "paths": 1,
            "summary": {"reproduced": 0, "partially_reproduced": 0, "not_reproduced": 0, "one_builder": 0, "no_builds": 1},
            "items": [{"path": p, "drv_path": null, "output_name": null, "status": "no_builds", "builders": 0, "distinct_hashes": 0}],
            "next_cursor": null
        });
        let parsed: EvaluationPage = serde_json::from_value(page.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), page);
        let diff = json!({"added": [p], "removed": [], "changed": [
            {"name": "hello", "from_path": p, "to_path": p, "from": "one_builder", "to": "reproduced"}]});
        let parsed: EvaluationDiff = serde_json::from_value(diff.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), diff);
        let list = json!([{"name": "iso", "description": "", "latest": null}]);
        let parsed: Vec<JobsetInfo> = serde_json::from_value(list.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), list);
        let put = json!({"jobset": "iso", "rev": "r1", "paths": 3});
        assert_eq!(
            serde_json::to_value(serde_json::from_value::<PutEvaluationResponse>(put.clone()).unwrap()).unwrap(),
            put
        );
        // The item of an upload: drv_path and output_name may be left out.
        let item: EvaluationItem = serde_json::from_value(json!({"path": p})).unwrap();
        assert_eq!(item, EvaluationItem::bare(StorePath::parse(p).unwrap()));
    }

    #[test]
    fn status_filters() {
        use ReproStatus::*;
        assert_eq!(parse_status_filter("no_builds, reproduced,no_builds").unwrap(), [NoBuilds, Reproduced]);
        assert_eq!(parse_status_filter("").unwrap(), []);
        assert!(matches!(parse_status_filter("reproduced,broken"), Err(ParseError::Status(_))));
    }
}
