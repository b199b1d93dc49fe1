use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::Json;
use nhc_core::api::{DerivationOutput, DerivationReport, ErrorBody, HashResult};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, StatusSummary, StorePath};

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::state::AppState;
use nhc_storage::DerivationOutputVote;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// `GET /v1/derivations/{drv-basename}` (with or without `.drv`).
#[utoipa::path(
    get,
    path = "/v1/derivations/{drv}",
    operation_id = "derivation",
    tag = "queries",
    params(("drv" = String, Path, description = "The basename of a derivation `<hash>-<name>.drv`, with or \
                                                 without `.drv`.", example = "76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv")),
    responses(
        (status = 200, description = "Per output name: the output path, its status (over every attestation of the \
                                      path) and which builders got which hash, most builders first.",
         body = DerivationReport),
        (status = 400, description = "`invalid_request`: not a derivation basename.", body = ErrorBody),
        (status = 404, description = "`not_found`: no output of it has an attestation.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the database is unavailable.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    PathParams(drv): PathParams<String>,
) -> Result<Json<DerivationReport>, ApiError> {
    let drv = DrvPath::from_basename_lenient(&drv).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let rows = state.store.derivation_votes(&drv).await?;
    if rows.iter().all(|r| r.vote.is_none()) {
        return Err(ApiError::NotFound(format!("nobody attested an output of {drv}")));
    }
    Ok(Json(DerivationReport { drv_path: drv, outputs: group(rows) }))
}

/// Groups votes by output name. An output name normally maps to one path; should
/// builders name different paths for it (content-addressed derivations, or a
/// builder that lies), the path named by the most builders is reported, then the
/// one named first, then the smaller. Every attestation of that path counts, whoever
/// named the derivation: a fixed-output path is the same path whatever built it. But
/// only attestations that named this derivation output count as naming it, so one
/// builder pointing a derivation at a popular path cannot borrow that path's votes.
fn group(rows: Vec<DerivationOutputVote>) -> BTreeMap<OutputName, DerivationOutput> {
    type Votes = BTreeMap<NarHash, BTreeSet<BuilderName>>;
    #[derive(Default)]
    struct Named {
        claimers: BTreeSet<BuilderName>,
        first_claimed_at: Option<i64>,
        votes: Votes,
    }
    let mut by_output: BTreeMap<OutputName, BTreeMap<StorePath, Named>> = BTreeMap::new();
    for r in rows {
        let named = by_output.entry(r.output_name).or_default().entry(r.output_path).or_default();
        if let Some(v) = r.vote {
            if let Some(at) = v.claimed_at {
                named.claimers.insert(v.builder.clone());
                named.first_claimed_at = Some(named.first_claimed_at.map_or(at, |f| f.min(at)));
            }
            named.votes.entry(v.nar_hash).or_default().insert(v.builder);
        }
    }
    by_output
        .into_iter()
        .filter_map(|(name, paths)| {
            // Most claimers; then the earliest claim (a path nobody claimed last);
            // then the smaller path (`min_by` keeps the first of equals, and the map
            // iterates paths in order).
            let (path, named) = paths.into_iter().min_by(|a, b| {
                let first = |n: &Named| n.first_claimed_at.unwrap_or(i64::MAX);
                b.1.claimers.len().cmp(&a.1.claimers.len()).then_with(|| first(&a.1).cmp(&first(&b.1)))
            })?;
            let votes = named.votes;
            let summary = StatusSummary::from_votes(votes.iter().flat_map(|(h, bs)| bs.iter().map(move |b| (b, h))));
            let mut results: Vec<HashResult> = votes
                .into_iter()
                .map(|(nar_hash, builders)| HashResult { nar_hash, builders: builders.into_iter().collect() })
                .collect();
            results.sort_by(|a, b| b.builders.len().cmp(&a.builders.len()).then_with(|| a.nar_hash.cmp(&b.nar_hash)));
            Some((name, DerivationOutput { output_path: path, status: summary.status, results }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::ReproStatus;
    use nhc_storage::OutputPathVote;

    /// An attestation by `v.0` of hash `v.1` that named this derivation output.
    fn vote(out: &str, path: &str, v: Option<(&str, u8)>) -> DerivationOutputVote {
        row(out, path, v.map(|(b, h)| (b, h, Some(0))))
    }

    /// An attestation of `path` by `v.0` with hash `v.1`, naming this derivation
    /// output at `v.2` (or not, with None).
    fn row(out: &str, path: &str, v: Option<(&str, u8, Option<i64>)>) -> DerivationOutputVote {
        DerivationOutputVote {
            output_name: OutputName::parse(out).unwrap(),
            output_path: StorePath::parse(&format!("/nix/store/{path}")).unwrap(),
            vote: v.map(|(b, h, at)| OutputPathVote {
                builder: BuilderName::parse(b).unwrap(),
                nar_hash: NarHash::from_bytes([h; 32]),
                claimed_at: at,
            }),
        }
    }

    #[test]
    fn groups_by_output_and_hash() {
        let p_out = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x";
        let p_dev = "s95kw5pf8cc8dh0giqsbdq679kffq196-x-dev";
        let g = group(vec![
            vote("out", p_out, Some(("a", 1))),
            vote("out", p_out, Some(("b", 1))),
            vote("out", p_out, Some(("c", 2))),
            vote("dev", p_dev, None),
        ]);
        let out = &g[&OutputName::parse("out").unwrap()];
        assert_eq!(out.status, ReproStatus::PartiallyReproduced);
        assert_eq!(out.results.len(), 2);
        assert_eq!(out.results[0].builders.len(), 2);
        let dev = &g[&OutputName::parse("dev").unwrap()];
        assert_eq!(dev.status, ReproStatus::NoBuilds);
        assert!(dev.results.is_empty());
    }

    #[test]
    fn the_path_most_builders_named_wins_not_the_most_attested() {
        // One builder names a popular path (attested by three, two of whom built it
        // from other derivations) as the output; two builders name the real one.
        let (real, popular) = ("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x");
        let g = group(vec![
            row("out", real, Some(("a", 1, Some(10)))),
            row("out", real, Some(("b", 2, Some(11)))),
            row("out", popular, Some(("m", 3, Some(5)))),
            row("out", popular, Some(("x", 3, None))),
            row("out", popular, Some(("y", 3, None))),
        ]);
        let out = &g[&OutputName::parse("out").unwrap()];
        assert_eq!(out.output_path.hash_part(), "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic");
        assert_eq!(out.status, ReproStatus::NotReproduced);
    }

    #[test]
    fn a_fixed_output_path_counts_every_builder() {
        // b built the same path from another derivation: it did not name this one,
        // but its attestation of the path still counts.
        let p = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-src";
        let g = group(vec![row("out", p, Some(("a", 1, Some(1)))), row("out", p, Some(("b", 1, None)))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].status, ReproStatus::Reproduced);
    }

    #[test]
    fn equal_claims_go_to_the_path_named_first() {
        let (late, early) = ("0js27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x");
        let g = group(vec![row("out", late, Some(("a", 1, Some(9)))), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].output_path.hash_part(), "s95kw5pf8cc8dh0giqsbdq679kffq196");
        let g = group(vec![row("out", late, Some(("a", 1, Some(3)))), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].output_path.hash_part(), "0js27ix6ig2bkbi3s3sm470vrv4lf7ic");
        // A path nobody named (its only claimer was purged) loses to one somebody named.
        let g = group(vec![row("out", late, None), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].output_path.hash_part(), "s95kw5pf8cc8dh0giqsbdq679kffq196");
    }
}
