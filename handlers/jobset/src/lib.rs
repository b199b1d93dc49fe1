//! The rules of jobsets and evaluations (DESIGN.md, "Jobsets and evaluations"), as
//! pure functions over `nhc-core`'s types, so that every deployment (and the client)
//! applies the same ones:
//!
//! - [`upload`]: the body of `PUT /v1/jobsets/{name}/evaluations/{rev}`, whatever its
//!   format (a plain list of store paths, `{"paths": [...]}`, a CycloneDX SBOM), into
//!   de-duplicated items and edges, or an [`UploadError`] with a stable code;
//! - [`diff`]: what changed between two evaluations;
//! - [`query`]: the query string of an evaluation's page and its cursor;
//! - [`summary`]: percentages of a summary;
//! - [`badge`]: the SVG badge.
//!
//! No I/O, no async, no HTTP framework: it builds for `wasm32-unknown-unknown`.

pub mod badge;
pub mod diff;
mod error;
pub mod query;
pub mod summary;
pub mod upload;

pub use badge::badge_svg;
pub use diff::diff;
pub use error::UploadError;
pub use query::{parse_page_query, PageQuery, QueryError};
pub use summary::Percentages;
pub use upload::{parse_upload, parse_upload_within, Format, Upload};
