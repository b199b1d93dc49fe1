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
/// builders disagree on the path (content-addressed derivations), the path with the
/// most builders is reported.
fn group(rows: Vec<DerivationVote>) -> BTreeMap<OutputName, DerivationOutput> {
    type Votes = BTreeMap<NarHash, BTreeSet<BuilderName>>;
    let mut by_output: BTreeMap<OutputName, BTreeMap<StorePath, Votes>> = BTreeMap::new();
    for r in rows {
        let votes = by_output.entry(r.output_name).or_default().entry(r.output_path).or_default();
        if let Some((builder, hash)) = r.vote {
            votes.entry(hash).or_default().insert(builder);
        }
    }
    by_output
        .into_iter()
        .filter_map(|(name, paths)| {
            let builders_of = |v: &Votes| v.values().flatten().collect::<BTreeSet<_>>().len();
            let (path, votes) = paths
                .into_iter()
                .max_by(|a, b| builders_of(&a.1).cmp(&builders_of(&b.1)).then_with(|| b.0.cmp(&a.0)))?;
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
        DerivationVote {
            output_name: OutputName::parse(out).unwrap(),
            output_path: StorePath::parse(&format!("/nix/store/{path}")).unwrap(),
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
    fn most_attested_path_wins_for_one_output_name() {
        let g = group(vec![
            vote("out", "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", Some(("a", 1))),
            vote("out", "s95kw5pf8cc8dh0giqsbdq679kffq196-x", Some(("b", 2))),
            vote("out", "s95kw5pf8cc8dh0giqsbdq679kffq196-x", Some(("c", 2))),
        ]);
        let out = &g[&OutputName::parse("out").unwrap()];
        assert_eq!(out.output_path.hash_part(), "s95kw5pf8cc8dh0giqsbdq679kffq196");
        assert_eq!(out.status, ReproStatus::Reproduced);
    }
}
