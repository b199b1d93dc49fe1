use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::Json;
use nhc_core::api::{DerivationOutput, DerivationReport, HashResult};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, StatusSummary, StorePath};

use crate::error::ApiError;
use crate::extract::PathParams;
use crate::state::AppState;
use crate::storage::DerivationVote;

/// `GET /v1/derivations/{drv-basename}` (with or without `.drv`).
pub async fn show(
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
/// one named first. Every attestation of that path counts, whoever named the
/// derivation: a fixed-output path is the same path whatever built it.
fn group(rows: Vec<DerivationVote>) -> BTreeMap<OutputName, DerivationOutput> {
    type Votes = BTreeMap<NarHash, BTreeSet<BuilderName>>;
    struct Named {
        claims: u64,
        first_claimed_at: i64,
        votes: Votes,
    }
    let mut by_output: BTreeMap<OutputName, BTreeMap<StorePath, Named>> = BTreeMap::new();
    for r in rows {
        let named = by_output.entry(r.output_name).or_default().entry(r.output_path).or_insert_with(|| Named {
            claims: r.claims,
            first_claimed_at: r.first_claimed_at,
            votes: Votes::new(),
        });
        if let Some((builder, hash)) = r.vote {
            named.votes.entry(hash).or_default().insert(builder);
        }
    }
    by_output
        .into_iter()
        .filter_map(|(name, paths)| {
            // Most claims; then the earliest claim; then the smaller path (`min_by`
            // keeps the first of equals, and the map iterates paths in order).
            let (path, named) = paths.into_iter().min_by(|a, b| {
                b.1.claims.cmp(&a.1.claims).then_with(|| a.1.first_claimed_at.cmp(&b.1.first_claimed_at))
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

    fn vote(out: &str, path: &str, v: Option<(&str, u8)>) -> DerivationVote {
        claimed(out, path, (1, 0), v)
    }

    /// A vote for a path that `claims.0` builders named, the first at `claims.1`.
    fn claimed(out: &str, path: &str, claims: (u64, i64), v: Option<(&str, u8)>) -> DerivationVote {
        DerivationVote {
            output_name: OutputName::parse(out).unwrap(),
            output_path: StorePath::parse(&format!("/nix/store/{path}")).unwrap(),
            claims: claims.0,
            first_claimed_at: claims.1,
            vote: v.map(|(b, h)| (BuilderName::parse(b).unwrap(), NarHash::from_bytes([h; 32]))),
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
        // One builder names a popular path (three attesters) as the output; two
        // builders name the real one.
        let (real, popular) = ("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x");
        let g = group(vec![
            claimed("out", real, (2, 10), Some(("a", 1))),
            claimed("out", real, (2, 10), Some(("b", 2))),
            claimed("out", popular, (1, 5), Some(("m", 3))),
            claimed("out", popular, (1, 5), Some(("x", 3))),
            claimed("out", popular, (1, 5), Some(("y", 3))),
        ]);
        let out = &g[&OutputName::parse("out").unwrap()];
        assert_eq!(out.output_path.hash_part(), "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic");
        assert_eq!(out.status, ReproStatus::NotReproduced);
    }

    #[test]
    fn equal_claims_go_to_the_path_named_first() {
        let (late, early) = ("0js27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x");
        let g =
            group(vec![claimed("out", late, (1, 9), Some(("a", 1))), claimed("out", early, (1, 3), Some(("b", 2)))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].output_path.hash_part(), "s95kw5pf8cc8dh0giqsbdq679kffq196");
        let g =
            group(vec![claimed("out", late, (1, 3), Some(("a", 1))), claimed("out", early, (1, 3), Some(("b", 2)))]);
        assert_eq!(g[&OutputName::parse("out").unwrap()].output_path.hash_part(), "0js27ix6ig2bkbi3s3sm470vrv4lf7ic");
    }
}
