//! What a derivation report (`GET /v1/derivations/{drv}`) believes.
//!
//! A builder signs an output's path, NAR hash, size and references, not the
//! derivation or the output name it submits them under: anyone with a token can
//! name outputs of any derivation. So the report trusts the builders that named
//! outputs of the derivation by majority, as it does for paths:
//!
//! - **Which outputs it has**: an output name is listed under `outputs` only when
//!   more than half of the builders that named any output of this derivation named
//!   it. The other names are listed under `disputed`, with who named them and no
//!   status: a builder cannot make another builder's derivation look different by
//!   adding outputs to it. (When no builder that named one of its outputs remains,
//!   e.g. all were purged, every output is listed.)
//! - **Which path an output has**: the path the most builders named for it, then the
//!   one named first (then the smaller).
//! - **Its status**: every attestation of that path, whoever named the derivation
//!   (a fixed-output path is the same path whatever built it).

use std::collections::{BTreeMap, BTreeSet};

use nhc_core::api::{DerivationOutput, DerivationReport, DisputedOutput, HashResult};
use nhc_core::{BuilderName, DrvPath, NarHash, OutputName, StatusSummary, StorePath};
use nhc_storage::DerivationOutputVote;

use crate::error::ApiError;
use crate::state::AppState;

/// The report of `drv`; 404 when no output of it has an attestation.
pub async fn report(state: &AppState, drv: DrvPath) -> Result<DerivationReport, ApiError> {
    let rows = state.store.derivation_votes(&drv).await?;
    if rows.iter().all(|r| r.vote.is_none()) {
        return Err(ApiError::NotFound(format!("nobody attested an output of {drv}")));
    }
    Ok(assemble(drv, rows))
}

/// Groups the votes by output name and applies the rules of this module.
pub fn assemble(drv: DrvPath, rows: Vec<DerivationOutputVote>) -> DerivationReport {
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
    // Who named each output (whatever path), and who named any output at all.
    let claimers_of = |paths: &BTreeMap<StorePath, Named>| -> BTreeSet<BuilderName> {
        paths.values().flat_map(|n| n.claimers.iter().cloned()).collect()
    };
    let namers: BTreeSet<BuilderName> = by_output.values().flat_map(claimers_of).collect();

    let mut report = DerivationReport { drv_path: drv, outputs: BTreeMap::new(), disputed: BTreeMap::new() };
    for (name, paths) in by_output {
        let claimed_by: Vec<BuilderName> = claimers_of(&paths).into_iter().collect();
        // Most claimers; then the earliest claim (a path nobody claimed last); then
        // the smaller path (`min_by` keeps the first of equals, and the map iterates
        // paths in order).
        let Some((path, named)) = paths.into_iter().min_by(|a, b| {
            let first = |n: &Named| n.first_claimed_at.unwrap_or(i64::MAX);
            b.1.claimers.len().cmp(&a.1.claimers.len()).then_with(|| first(&a.1).cmp(&first(&b.1)))
        }) else {
            continue;
        };
        if !namers.is_empty() && claimed_by.len() * 2 <= namers.len() {
            report.disputed.insert(name, DisputedOutput { output_path: path, claimed_by });
            continue;
        }
        let votes = named.votes;
        let summary = StatusSummary::from_votes(votes.iter().flat_map(|(h, bs)| bs.iter().map(move |b| (b, h))));
        let mut results: Vec<HashResult> = votes
            .into_iter()
            .map(|(nar_hash, builders)| HashResult { nar_hash, builders: builders.into_iter().collect() })
            .collect();
        results.sort_by(|a, b| b.builders.len().cmp(&a.builders.len()).then_with(|| a.nar_hash.cmp(&b.nar_hash)));
        report
            .outputs
            .insert(name, DerivationOutput { output_path: path, status: summary.status, results, claimed_by });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhc_core::ReproStatus;
    use nhc_storage::OutputPathVote;

    fn group(rows: Vec<DerivationOutputVote>) -> DerivationReport {
        assemble(DrvPath::from_basename_lenient("47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv").unwrap(), rows)
    }

    fn name(n: &str) -> OutputName {
        OutputName::parse(n).unwrap()
    }

    /// An attestation by `v.0` of hash `v.1` that named this derivation output.
    fn vote(out: &str, path: &str, v: Option<(&str, u8)>) -> DerivationOutputVote {
        row(out, path, v.map(|(b, h)| (b, h, Some(0))))
    }

    /// An attestation of `path` by `v.0` with hash `v.1`, naming this derivation
    /// output at `v.2` (or not, with None).
    fn row(out: &str, path: &str, v: Option<(&str, u8, Option<i64>)>) -> DerivationOutputVote {
        DerivationOutputVote {
            output_name: name(out),
            output_path: StorePath::parse(&format!("/nix/store/{path}")).unwrap(),
            vote: v.map(|(b, h, at)| OutputPathVote {
                builder: BuilderName::parse(b).unwrap(),
                nar_hash: NarHash::from_bytes([h; 32]),
                claimed_at: at,
            }),
        }
    }

    fn builders(names: &[&str]) -> Vec<BuilderName> {
        names.iter().map(|n| BuilderName::parse(n).unwrap()).collect()
    }

    #[test]
    fn groups_by_output_and_hash() {
        let (p_out, p_dev) = ("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x-dev");
        let g = group(vec![
            vote("out", p_out, Some(("a", 1))),
            vote("out", p_out, Some(("b", 1))),
            vote("out", p_out, Some(("c", 2))),
            vote("dev", p_dev, Some(("a", 3))),
            vote("dev", p_dev, Some(("b", 3))),
        ]);
        let out = &g.outputs[&name("out")];
        assert_eq!(out.status, ReproStatus::PartiallyReproduced);
        assert_eq!(out.results.len(), 2);
        assert_eq!(out.results[0].builders.len(), 2);
        assert_eq!(out.claimed_by, builders(&["a", "b", "c"]));
        // Two of three named `dev`: a majority.
        let dev = &g.outputs[&name("dev")];
        assert_eq!(dev.status, ReproStatus::Reproduced);
        assert_eq!(dev.claimed_by, builders(&["a", "b"]));
        assert!(g.disputed.is_empty());
    }

    #[test]
    fn an_output_named_by_half_or_fewer_is_disputed_and_has_no_status() {
        // a and b built the derivation; m names two more outputs of it: one with a
        // path of two hashes (its own), one pointing at a path a and b disagree on.
        let (p_out, p_fake, p_other) = (
            "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x",
            "s95kw5pf8cc8dh0giqsbdq679kffq196-x-fake",
            "0js27ix6ig2bkbi3s3sm470vrv4lf7ic-y",
        );
        let g = group(vec![
            vote("out", p_out, Some(("a", 1))),
            vote("out", p_out, Some(("b", 1))),
            vote("out", p_out, Some(("m", 1))),
            vote("fake", p_fake, Some(("m", 2))),
            vote("fake", p_fake, Some(("m", 3))),
            row("other", p_other, Some(("a", 4, None))),
            row("other", p_other, Some(("b", 5, None))),
            vote("other", p_other, Some(("m", 6))),
        ]);
        assert_eq!(g.outputs.keys().collect::<Vec<_>>(), [&name("out")]);
        assert_eq!(g.outputs[&name("out")].status, ReproStatus::Reproduced);
        assert_eq!(g.disputed.len(), 2);
        let fake = &g.disputed[&name("fake")];
        assert_eq!(fake.output_path.hash_part(), "s95kw5pf8cc8dh0giqsbdq679kffq196");
        assert_eq!(fake.claimed_by, builders(&["m"]));
        assert_eq!(g.disputed[&name("other")].claimed_by, builders(&["m"]));
    }

    #[test]
    fn with_two_builders_a_name_only_one_gives_is_disputed() {
        // The conformance case: b adds a made-up output to a's derivation.
        let (p_out, p_fake) = ("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x-fake");
        let g = group(vec![
            vote("out", p_out, Some(("a", 1))),
            vote("out", p_out, Some(("b", 1))),
            vote("fake", p_fake, Some(("b", 2))),
            vote("fake", p_fake, Some(("b", 3))),
        ]);
        assert_eq!(g.outputs[&name("out")].status, ReproStatus::Reproduced);
        assert_eq!(g.outputs.len(), 1);
        assert_eq!(g.disputed[&name("fake")].claimed_by, builders(&["b"]));
        // A single builder's outputs are all listed: it is the whole majority.
        let g = group(vec![vote("out", p_out, Some(("a", 1))), vote("fake", p_fake, Some(("a", 2)))]);
        assert_eq!(g.outputs.len(), 2);
        assert!(g.disputed.is_empty());
    }

    #[test]
    fn outputs_nobody_remaining_named() {
        let (p_out, p_dev) = ("mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x-dev");
        // `dev`'s only claimer was purged while a still names `out`: disputed.
        let g = group(vec![vote("out", p_out, Some(("a", 1))), vote("dev", p_dev, None)]);
        assert_eq!(g.outputs.len(), 1);
        assert_eq!(g.disputed[&name("dev")].claimed_by, builders(&[]));
        // Nobody who named an output remains (the path is attested from elsewhere):
        // there is nobody to outvote, every output is listed.
        let g = group(vec![row("out", p_out, Some(("x", 1, None))), vote("dev", p_dev, None)]);
        assert_eq!(g.outputs[&name("out")].status, ReproStatus::OneBuilder);
        assert_eq!(g.outputs[&name("dev")].status, ReproStatus::NoBuilds);
        assert!(g.outputs[&name("dev")].results.is_empty());
        assert!(g.disputed.is_empty());
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
        let out = &g.outputs[&name("out")];
        assert_eq!(out.output_path.hash_part(), "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic");
        assert_eq!(out.status, ReproStatus::NotReproduced);
        assert_eq!(out.claimed_by, builders(&["a", "b", "m"]));
    }

    #[test]
    fn a_fixed_output_path_counts_every_builder() {
        // b built the same path from another derivation: it did not name this one,
        // but its attestation of the path still counts.
        let p = "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-src";
        let g = group(vec![row("out", p, Some(("a", 1, Some(1)))), row("out", p, Some(("b", 1, None)))]);
        assert_eq!(g.outputs[&name("out")].status, ReproStatus::Reproduced);
        assert_eq!(g.outputs[&name("out")].claimed_by, builders(&["a"]));
    }

    #[test]
    fn equal_claims_go_to_the_path_named_first() {
        let (late, early) = ("0js27ix6ig2bkbi3s3sm470vrv4lf7ic-x", "s95kw5pf8cc8dh0giqsbdq679kffq196-x");
        let path_of = |g: DerivationReport| g.outputs[&name("out")].output_path.hash_part().to_owned();
        let g = group(vec![row("out", late, Some(("a", 1, Some(9)))), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(path_of(g), "s95kw5pf8cc8dh0giqsbdq679kffq196");
        let g = group(vec![row("out", late, Some(("a", 1, Some(3)))), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(path_of(g), "0js27ix6ig2bkbi3s3sm470vrv4lf7ic");
        // A path nobody named (its only claimer was purged) loses to one somebody named.
        let g = group(vec![row("out", late, None), row("out", early, Some(("b", 2, Some(3))))]);
        assert_eq!(path_of(g), "s95kw5pf8cc8dh0giqsbdq679kffq196");
    }
}
