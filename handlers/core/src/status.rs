use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Whether independent builders got the same bytes for one output path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReproStatus {
    /// Nobody attested the path.
    NoBuilds,
    /// One builder attested it, whatever it reported.
    OneBuilder,
    /// Two or more builders, all with the same NAR hash.
    Reproduced,
    /// Two or more builders and two or more hashes, and some hash has two or more builders.
    PartiallyReproduced,
    /// Two or more builders and two or more hashes, and every hash has exactly one builder.
    NotReproduced,
}

impl ReproStatus {
    /// The five states, best first.
    pub const ALL: [ReproStatus; 5] = [
        ReproStatus::Reproduced,
        ReproStatus::PartiallyReproduced,
        ReproStatus::NotReproduced,
        ReproStatus::OneBuilder,
        ReproStatus::NoBuilds,
    ];

    /// The inverse of [`ReproStatus::as_str`] (query strings such as `status=a,b`).
    pub fn parse(s: &str) -> Result<Self, crate::ParseError> {
        ReproStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            crate::ParseError::Status(format!(
                "{}: must be one of reproduced, partially_reproduced, not_reproduced, one_builder, no_builds",
                crate::error::quote(s)
            ))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReproStatus::NoBuilds => "no_builds",
            ReproStatus::OneBuilder => "one_builder",
            ReproStatus::Reproduced => "reproduced",
            ReproStatus::PartiallyReproduced => "partially_reproduced",
            ReproStatus::NotReproduced => "not_reproduced",
        }
    }
}

/// The counts a status is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSummary {
    pub status: ReproStatus,
    /// Distinct builders.
    pub builders: usize,
    /// Distinct NAR hashes.
    pub distinct_hashes: usize,
}

impl StatusSummary {
    /// Computes the status from `(builder, nar hash)` votes. A builder that reported
    /// the same hash twice counts once; a builder that reported two different hashes
    /// counts once among the builders and once under each of its hashes.
    pub fn from_votes<B: Ord + Clone, H: Ord>(votes: impl IntoIterator<Item = (B, H)>) -> Self {
        let mut by_hash: BTreeMap<H, BTreeSet<B>> = BTreeMap::new();
        let mut builders = BTreeSet::new();
        for (b, h) in votes {
            builders.insert(b.clone());
            by_hash.entry(h).or_default().insert(b);
        }
        let b = builders.len();
        let h = by_hash.len();
        let status = match (b, h) {
            (0, _) => ReproStatus::NoBuilds,
            (1, _) => ReproStatus::OneBuilder,
            (_, 1) => ReproStatus::Reproduced,
            _ if by_hash.values().any(|bs| bs.len() >= 2) => ReproStatus::PartiallyReproduced,
            _ => ReproStatus::NotReproduced,
        };
        StatusSummary { status, builders: b, distinct_hashes: h }
    }

    /// The same status from counts, for stores that count instead of listing votes:
    /// `attestations` distinct (builder, hash) pairs, `builders` distinct builders and
    /// `distinct_hashes` distinct hashes among them. Some hash has two builders exactly
    /// when there are more pairs than hashes (each pair names one hash).
    pub fn from_counts(attestations: usize, builders: usize, distinct_hashes: usize) -> Self {
        let status = match (builders, distinct_hashes) {
            (0, _) => ReproStatus::NoBuilds,
            (1, _) => ReproStatus::OneBuilder,
            (_, 1) => ReproStatus::Reproduced,
            _ if attestations > distinct_hashes => ReproStatus::PartiallyReproduced,
            _ => ReproStatus::NotReproduced,
        };
        StatusSummary { status, builders, distinct_hashes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReproStatus::*;

    fn status(votes: &[(&str, &str)]) -> (ReproStatus, usize, usize) {
        let s = StatusSummary::from_votes(votes.iter().copied());
        (s.status, s.builders, s.distinct_hashes)
    }

    #[test]
    fn the_five_states() {
        assert_eq!(status(&[]), (NoBuilds, 0, 0));
        assert_eq!(status(&[("a", "h1")]), (OneBuilder, 1, 1));
        assert_eq!(status(&[("a", "h1"), ("a", "h2")]), (OneBuilder, 1, 2));
        assert_eq!(status(&[("a", "h1"), ("b", "h1")]), (Reproduced, 2, 1));
        assert_eq!(status(&[("a", "h1"), ("b", "h1"), ("c", "h2")]), (PartiallyReproduced, 3, 2));
        assert_eq!(status(&[("a", "h1"), ("b", "h2")]), (NotReproduced, 2, 2));
        assert_eq!(status(&[("a", "h1"), ("b", "h2"), ("c", "h3")]), (NotReproduced, 3, 3));
    }

    #[test]
    fn a_builder_with_two_hashes_agreeing_with_another() {
        // a reported h1 and h2, b reported h1: h1 has two builders.
        assert_eq!(status(&[("a", "h1"), ("a", "h2"), ("b", "h1")]), (PartiallyReproduced, 2, 2));
    }

    #[test]
    fn duplicates_count_once() {
        assert_eq!(status(&[("a", "h1"), ("a", "h1")]), (OneBuilder, 1, 1));
        assert_eq!(status(&[("a", "h1"), ("a", "h1"), ("b", "h2")]), (NotReproduced, 2, 2));
    }

    #[test]
    fn counts_give_the_status_of_the_votes() {
        // Every set of (builder, hash) pairs over 3 builders and 3 hashes: 2^9 sets.
        let pairs: Vec<(u8, u8)> = (0..3).flat_map(|b| (0..3).map(move |h| (b, h))).collect();
        for mask in 0u32..(1 << pairs.len()) {
            let votes: Vec<(u8, u8)> =
                pairs.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, v)| *v).collect();
            let from_votes = StatusSummary::from_votes(votes.iter().copied());
            let builders = votes.iter().map(|v| v.0).collect::<BTreeSet<_>>().len();
            let hashes = votes.iter().map(|v| v.1).collect::<BTreeSet<_>>().len();
            assert_eq!(StatusSummary::from_counts(votes.len(), builders, hashes), from_votes, "{votes:?}");
        }
    }

    #[test]
    fn serializes_snake_case() {
        for s in [NoBuilds, OneBuilder, Reproduced, PartiallyReproduced, NotReproduced] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(s.as_str().into()));
            assert_eq!(ReproStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(ReproStatus::parse("Reproduced").is_err());
    }
}
