//! The Nix binary-cache view: `nix-cache-info` and `<hash>.narinfo`, for one builder
//! or for everyone, so that `nix path-info --sigs` and `nix store verify` check the
//! builders' own signatures without trusting this server. NARs are not served.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{PathBuilder, PathParams};
use crate::state::AppState;
use nhc_core::api::ErrorBody;
use nhc_core::fingerprint::References;
use nhc_core::{BuilderName, NarHash, StorePath};
use nhc_storage::AttestationRecord;

const CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50\n";

fn cache_info_response() -> Response {
    ([(CONTENT_TYPE, "text/x-nix-cache-info")], CACHE_INFO).into_response()
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cache_info))
        .routes(routes!(narinfo_by_consensus))
        .routes(routes!(builder_cache_info))
        .routes(routes!(narinfo_of_builder))
}

/// `GET /nix-cache-info`
#[utoipa::path(
    get,
    path = "/nix-cache-info",
    tag = "binary cache",
    responses((status = 200, description = "The cache info of everyone's view.", content_type = "text/x-nix-cache-info",
               body = String, example = json!(CACHE_INFO))),
)]
async fn cache_info() -> Response {
    cache_info_response()
}

/// `GET /builders/{name}/nix-cache-info`
#[utoipa::path(
    get,
    path = "/builders/{name}/nix-cache-info",
    tag = "binary cache",
    params(("name" = BuilderName, Path, description = "A builder, deleted ones included (not purged ones).")),
    responses(
        (status = 200, description = "The cache info of the builder's view.", content_type = "text/x-nix-cache-info",
         body = String, example = json!(CACHE_INFO)),
        (status = 400, description = "`invalid_request`: not a builder name.", body = ErrorBody),
        (status = 404, description = "`not_found`: the builder never existed or was purged.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn builder_cache_info(
    State(state): State<AppState>,
    PathBuilder(name): PathBuilder,
) -> Result<Response, ApiError> {
    if !state.store.builder_known(&name).await? {
        return Err(ApiError::NotFound(format!("no builder named {name}")));
    }
    Ok(cache_info_response())
}

/// The `{file}` segment beside a `{name}`.
#[derive(Deserialize)]
struct NarinfoFile {
    file: String,
}

/// The hash part of `<32 nix32 chars>.narinfo`; anything else is not in this cache.
fn narinfo_hash(file: &str) -> Result<&str, ApiError> {
    file.strip_suffix(".narinfo")
        .filter(|h| nhc_core::store_path::is_hash_part(h))
        .ok_or_else(|| ApiError::NotFound("not found in this binary cache".into()))
}

/// `GET /{hash}.narinfo`: the NAR hash attested by the most builders, with a `Sig:`
/// line from each of them.
#[utoipa::path(
    get,
    path = "/{file}",
    tag = "binary cache",
    params(("file" = String, Path, description = "`<hash>.narinfo`, the hash being the 32-character hash part of \
                                                  a store path. Any other one-segment path is a file this cache \
                                                  does not have (404).", example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic.narinfo")),
    responses(
        (status = 200, description = "Everyone's view: the store-path info (path, NAR hash, size, references) signed \
                                      by the most distinct builders, with one `Sig:` line per builder that signed \
                                      exactly that. A tie goes to what was attested first.",
         content_type = "text/x-nix-narinfo", body = String),
        (status = 404, description = "`not_found`: not a narinfo file name, or nobody attested the path.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn narinfo_by_consensus(
    State(state): State<AppState>,
    PathParams(file): PathParams<String>,
) -> Result<Response, ApiError> {
    if !file.ends_with(".narinfo") {
        // Not a binary-cache file: an unknown page, answered as HTML.
        return Ok(crate::web::not_found_page());
    }
    let hash = narinfo_hash(&file)?;
    let rows = state.store.attestations_by_hash_part(hash, None).await?;
    let (winner, sigs) = consensus(&rows).ok_or_else(|| ApiError::NotFound(format!("nobody attested {hash}")))?;
    Ok(narinfo_response(winner, sigs))
}

/// `GET /builders/{name}/{hash}.narinfo`: that builder's latest attestation.
#[utoipa::path(
    get,
    path = "/builders/{name}/{file}",
    tag = "binary cache",
    params(
        ("name" = BuilderName, Path, description = "A builder, deleted ones included (not purged ones)."),
        ("file" = String, Path, description = "`<hash>.narinfo`, the hash being the 32-character hash part of a \
                                               store path.", example = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic.narinfo"),
    ),
    responses(
        (status = 200, description = "The builder's most recent attestation of the path, with its one `Sig:` line.",
         content_type = "text/x-nix-narinfo", body = String),
        (status = 400, description = "`invalid_request`: not a builder name.", body = ErrorBody),
        (status = 404, description = "`not_found`: not a narinfo file name, or the builder has not attested the path.",
         body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn narinfo_of_builder(
    State(state): State<AppState>,
    PathBuilder(name): PathBuilder,
    PathParams(NarinfoFile { file }): PathParams<NarinfoFile>,
) -> Result<Response, ApiError> {
    if !file.ends_with(".narinfo") {
        // Not a binary-cache file: an unknown page, answered as HTML.
        return Ok(crate::web::not_found_page());
    }
    let hash = narinfo_hash(&file)?;
    let rows = state.store.attestations_by_hash_part(hash, Some(&name)).await?;
    let latest = rows
        .iter()
        .max_by_key(|r| r.submitted_at)
        .ok_or_else(|| ApiError::NotFound(format!("{name} has not attested {hash}")))?;
    Ok(narinfo_response(latest, vec![latest.signature.to_string()]))
}

/// Picks the attested store-path info (path, NAR hash, size, references: what a
/// signature covers) with the most distinct builders, ties going to what was
/// attested first (`rows` are oldest first), and one signature per builder over it.
/// Keying by the whole fingerprint, not just the hash, means one builder that
/// reports a wrong size or references first cannot take the others' votes; and it
/// is one pass, so a path with many rows costs linear time.
fn consensus(rows: &[AttestationRecord]) -> Option<(&AttestationRecord, Vec<String>)> {
    struct Candidate<'a> {
        first: &'a AttestationRecord,
        /// The first row of each distinct builder.
        signers: Vec<&'a AttestationRecord>,
        builders: HashSet<&'a BuilderName>,
    }
    let mut index: HashMap<(&StorePath, &NarHash, u64, &References), usize> = HashMap::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for r in rows {
        let key = (&r.output_path, &r.nar_hash, r.nar_size, &r.references);
        let i = *index.entry(key).or_insert_with(|| {
            candidates.push(Candidate { first: r, signers: Vec::new(), builders: HashSet::new() });
            candidates.len() - 1
        });
        let c = &mut candidates[i];
        if c.builders.insert(&r.builder) {
            c.signers.push(r);
        }
    }
    // Nix rejects a narinfo with `NarSize: 0`, so such claims come last (DESIGN.md
    // allows the size). Iterator::max_by_key keeps the last maximum: iterate in
    // reverse so that the earliest candidate wins a tie.
    let winner = candidates.into_iter().rev().max_by_key(|c| (c.first.nar_size > 0, c.builders.len()))?;
    Some((winner.first, winner.signers.iter().map(|r| r.signature.to_string()).collect()))
}

fn narinfo_response(a: &AttestationRecord, sigs: Vec<String>) -> Response {
    let mut body = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        body,
        "StorePath: {}\nURL: nar/{}.nar\nCompression: none\nNarHash: {}\nNarSize: {}\n",
        a.output_path,
        a.nar_hash.to_nix32(),
        a.nar_hash,
        a.nar_size
    );
    if !a.references.is_empty() {
        let _ = writeln!(body, "References: {}", a.references.to_narinfo());
    }
    if let Some(drv) = &a.drv_path {
        let _ = writeln!(body, "Deriver: {}", drv.as_store_path().basename());
    }
    for sig in sigs {
        let _ = writeln!(body, "Sig: {sig}");
    }
    ([(CONTENT_TYPE, "text/x-nix-narinfo")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::{KeyName, SecretKey};

    fn rec(builder: &str, hash: u8, at: i64) -> AttestationRecord {
        let k = SecretKey::from_seed(KeyName::parse(builder).unwrap(), [hash; 32]);
        AttestationRecord {
            builder: BuilderName::parse(builder).unwrap(),
            drv_path: None,
            output_name: None,
            output_path: StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap(),
            nar_hash: NarHash::from_bytes([hash; 32]),
            nar_size: 120,
            references: References::default(),
            signature: k.sign("x"),
            submitted_at: at,
            log_index: None,
        }
    }

    #[test]
    fn most_builders_win_and_ties_go_to_the_first() {
        let rows = vec![rec("a", 1, 1), rec("b", 2, 2), rec("c", 2, 3)];
        let (w, sigs) = consensus(&rows).unwrap();
        assert_eq!(w.nar_hash, NarHash::from_bytes([2; 32]));
        assert_eq!(sigs.len(), 2);

        let rows = vec![rec("a", 1, 1), rec("b", 2, 2)];
        assert_eq!(consensus(&rows).unwrap().0.nar_hash, NarHash::from_bytes([1; 32]));
        let rows = vec![rec("b", 2, 1), rec("a", 1, 2)];
        assert_eq!(consensus(&rows).unwrap().0.nar_hash, NarHash::from_bytes([2; 32]));
        assert!(consensus(&[]).is_none());
    }

    #[test]
    fn a_wrong_size_attested_first_does_not_take_the_majority() {
        // "m" claims the hash with another size first; "a" and "b" agree later.
        let mut liar = rec("m", 1, 1);
        liar.nar_size = 999;
        let rows = vec![liar, rec("a", 1, 2), rec("b", 1, 3)];
        let (w, sigs) = consensus(&rows).unwrap();
        assert_eq!(w.nar_size, 120);
        assert_eq!(w.builder.as_str(), "a");
        assert_eq!(sigs.len(), 2);
    }

    #[test]
    fn a_builder_counts_once_and_signs_once() {
        let rows = vec![rec("a", 1, 1), rec("a", 1, 2), rec("b", 2, 3), rec("c", 2, 4)];
        let (w, sigs) = consensus(&rows).unwrap();
        assert_eq!(w.nar_hash, NarHash::from_bytes([2; 32]));
        assert_eq!(sigs.len(), 2);
    }

    #[test]
    fn a_size_nix_cannot_read_loses_even_with_more_builders() {
        let (mut zero_a, mut zero_b) = (rec("a", 1, 1), rec("b", 1, 2));
        zero_a.nar_size = 0;
        zero_b.nar_size = 0;
        let rows = vec![zero_a, zero_b, rec("c", 2, 3)];
        let (w, sigs) = consensus(&rows).unwrap();
        assert_eq!((w.nar_size, sigs.len()), (120, 1));
    }

    #[test]
    fn signatures_over_other_sizes_are_left_out() {
        let mut odd = rec("b", 1, 2);
        odd.nar_size = 999;
        let rows = vec![rec("a", 1, 1), odd];
        let (_, sigs) = consensus(&rows).unwrap();
        assert_eq!(sigs.len(), 1);
    }
}
