//! What Nix recorded for each output, and (with `verify`) whether the files still
//! match it.

use nhc_core::{NarHash, OutputName, StorePath};
use nhc_nix::Store;

use super::OutputFacts;
use crate::spool::Recorded;

/// An output whose files no longer match what Nix recorded.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub facts: OutputFacts,
    pub on_disk: Recorded,
}

/// Why an output is not attested.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{path} is not a valid path in the store ({store}); skipped")]
    NotValid { path: StorePath, store: String },
    #[error("{path}: {source}; skipped")]
    Lookup { path: StorePath, source: nhc_nix::Error },
    #[error("cannot verify {path}: {source}; skipped")]
    Verify { path: StorePath, source: std::io::Error },
}

/// The facts about some outputs, and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Gathered {
    pub facts: Vec<OutputFacts>,
    pub mismatches: Vec<Mismatch>,
    pub problems: Vec<Problem>,
}

/// Looks up what Nix recorded for each output (and, with `verify`, re-hashes it).
pub fn gather(store: &mut Store, outputs: Vec<(Option<OutputName>, StorePath)>, verify: bool) -> Gathered {
    let mut g = Gathered::default();
    for (name, path) in outputs {
        let info = match store.path_info(&path) {
            Ok(Some(info)) => info,
            Ok(None) => {
                g.problems.push(Problem::NotValid { path, store: store.loc.uri.clone() });
                continue;
            }
            Err(source) => {
                g.problems.push(Problem::Lookup { path, source });
                continue;
            }
        };
        let facts =
            OutputFacts { name, path, nar_hash: info.nar_hash, nar_size: info.nar_size, references: info.references };
        if verify {
            match nhc_nar::hash_path(&store.loc.real_path(&facts.path)) {
                Ok(d) => {
                    let on_disk = Recorded { nar_hash: NarHash::from_bytes(d.sha256), nar_size: d.size };
                    if (on_disk.nar_hash, on_disk.nar_size) != (facts.nar_hash, facts.nar_size) {
                        g.mismatches.push(Mismatch { facts, on_disk });
                        continue;
                    }
                }
                Err(source) => {
                    g.problems.push(Problem::Verify { path: facts.path, source });
                    continue;
                }
            }
        }
        g.facts.push(facts);
    }
    g
}
