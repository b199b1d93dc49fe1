//! What changed between two evaluations.

use std::collections::HashMap;

use nhc_core::jobset::{ChangedPath, EvaluationDiff};
use nhc_core::{ReproStatus, StorePath};

/// What changed from `from` (the older evaluation, `other_rev`) to `to` (`rev`), each a
/// list of paths with their live statuses (a path listed twice counts once).
///
/// Paths are paired by identity, else by name (what follows the hash) when that name
/// occurs once among the unpaired paths of each side, so that `hello-2.12` rebuilt
/// with new inputs is a change of `hello-2.12`, not one path removed and one added.
/// `changed` holds the pairs whose status differs; the rest is `added` or `removed`.
/// Hash maps make it linear in the size of both lists; the output is sorted (by path,
/// `changed` by name then path) so that it is the same on every deployment.
pub fn diff(from: &[(StorePath, ReproStatus)], to: &[(StorePath, ReproStatus)]) -> EvaluationDiff {
    let old: HashMap<&StorePath, ReproStatus> = from.iter().map(|(p, s)| (p, *s)).collect();
    let new: HashMap<&StorePath, ReproStatus> = to.iter().map(|(p, s)| (p, *s)).collect();
    let mut out = EvaluationDiff::default();
    let change = |p_from: &StorePath, s_from: ReproStatus, p_to: &StorePath, s_to: ReproStatus| ChangedPath {
        name: p_to.name().to_owned(),
        from_path: p_from.clone(),
        to_path: p_to.clone(),
        from: s_from,
        to: s_to,
    };
    let mut only_new = Vec::new();
    for (&p, &s) in &new {
        match old.get(p) {
            Some(&was) if was != s => out.changed.push(change(p, was, p, s)),
            Some(_) => {}
            None => only_new.push((p, s)),
        }
    }
    let only_old: Vec<(&StorePath, ReproStatus)> =
        old.iter().filter(|(p, _)| !new.contains_key(*p)).map(|(p, s)| (*p, *s)).collect();
    let (old_names, new_names) = (by_name(&only_old), by_name(&only_new));
    let mut paired_old = vec![false; only_old.len()];
    for (p, s) in &only_new {
        let pair = match (new_names.get(p.name()), old_names.get(p.name())) {
            (Some((1, _)), Some(&(1, j))) => Some(j),
            _ => None,
        };
        match pair {
            Some(j) => {
                paired_old[j] = true;
                let (op, os) = only_old[j];
                if os != *s {
                    out.changed.push(change(op, os, p, *s));
                }
            }
            None => out.added.push((*p).clone()),
        }
    }
    out.removed =
        only_old.iter().zip(&paired_old).filter(|(_, &paired)| !paired).map(|((p, _), _)| (*p).clone()).collect();
    out.added.sort_unstable();
    out.removed.sort_unstable();
    out.changed.sort_unstable_by(|a, b| (&a.name, &a.to_path).cmp(&(&b.name, &b.to_path)));
    out
}

/// name -> (how many paths have it, the index of the first).
fn by_name<'a>(side: &[(&'a StorePath, ReproStatus)]) -> HashMap<&'a str, (usize, usize)> {
    let mut m: HashMap<&'a str, (usize, usize)> = HashMap::new();
    for (i, (p, _)) in side.iter().enumerate() {
        m.entry(p.name()).or_insert((0, i)).0 += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReproStatus::*;

    fn p(hash: char, name: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}-{name}", hash.to_string().repeat(32))).unwrap()
    }

    #[test]
    fn added_removed_and_changed() {
        let from = vec![
            (p('a', "hello"), OneBuilder), // same path, status improves
            (p('b', "glibc"), Reproduced), // same path, same status: not listed
            (p('c', "bash"), Reproduced),  // rebuilt (new hash), now differs
            (p('d', "gone"), NoBuilds),    // removed
            (p('f', "source"), NoBuilds),  // name twice on the old side: not paired
            (p('g', "source"), NoBuilds),
            (p('h', "same"), Reproduced), // renamed hash, same status: paired, not listed
        ];
        let to = vec![
            (p('a', "hello"), Reproduced),
            (p('b', "glibc"), Reproduced),
            (p('i', "bash"), NotReproduced),
            (p('j', "new"), NoBuilds),
            (p('k', "source"), NoBuilds),
            (p('l', "same"), Reproduced),
            (p('a', "hello"), Reproduced), // listed twice
        ];
        let d = diff(&from, &to);
        assert_eq!(d.added, [p('j', "new"), p('k', "source")]);
        assert_eq!(d.removed, [p('d', "gone"), p('f', "source"), p('g', "source")]);
        let changed: Vec<_> =
            d.changed.iter().map(|c| (c.name.as_str(), c.from_path.clone(), c.to_path.clone(), c.from, c.to)).collect();
        assert_eq!(
            changed,
            [
                ("bash", p('c', "bash"), p('i', "bash"), Reproduced, NotReproduced),
                ("hello", p('a', "hello"), p('a', "hello"), OneBuilder, Reproduced),
            ]
        );
        // Nothing changed against itself; everything added against nothing.
        assert_eq!(diff(&to, &to), EvaluationDiff::default());
        let d = diff(&[], &to);
        assert_eq!((d.added.len(), d.removed.len(), d.changed.len()), (6, 0, 0));
    }

    /// 200,000 paths on each side, every one rebuilt with a new hash: all paired by
    /// name, none changed (the time is measured by the benchmarks, not here).
    #[test]
    fn large_diffs_pair_by_name() {
        let n = 200_000;
        let mk = |salt: u32| -> Vec<(StorePath, ReproStatus)> {
            (0..n)
                .map(|i: u32| {
                    let mut h = format!("{salt}{i:0>31}");
                    h.truncate(32);
                    (
                        StorePath::parse(&format!("/nix/store/{h}-pkg{i}")).unwrap(),
                        if i.is_multiple_of(2) { Reproduced } else { NoBuilds },
                    )
                })
                .collect()
        };
        let (a, b) = (mk(1), mk(2));
        let d = diff(&a, &b);
        assert!(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty());
    }
}
