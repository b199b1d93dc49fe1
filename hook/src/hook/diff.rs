//! The diff-hook: Nix rebuilt `original` (`--check`) and the result, moved to
//! `check`, differs. Reports the rebuilt output's hash as this builder's attestation
//! for `original`, so the disagreement is recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nhc_core::fingerprint::References;
use nhc_core::{DrvPath, NarHash, StorePath};
use nhc_nix::Store;

use crate::attest::{self, OutputFacts};
use crate::config;
use crate::log;

pub fn run(original: &str, check: &str, drv: &str) {
    let (original, drv) = match (StorePath::parse(original), DrvPath::parse(drv)) {
        (Ok(o), Ok(d)) => (o, d),
        (Err(e), _) | (_, Err(e)) => {
            log::error(&format!("diff-hook: {e}; expected <output path> <rebuilt path> <drv path>"));
            return;
        }
    };
    let check = Path::new(check);
    let mut store = Store::new(config::store_location());

    let name = store.name_outputs(&drv, vec![original.clone()]).pop().and_then(|(n, _)| n);
    let recorded = store.path_info(&original).ok().flatten();
    // The rebuilt files refer to the same path names as the original (the build ran
    // at the original's path), so the references are found by scanning for the
    // paths the build could refer to, as Nix does.
    let candidates = match store.referenceable_paths(&drv) {
        Ok(c) => c,
        Err(e) => {
            log::warn(&format!(
                "diff-hook: cannot compute what the build could refer to ({e}); scanning only for the original's references"
            ));
            let mut c: BTreeSet<StorePath> =
                recorded.iter().flat_map(|i| i.references.as_slice().iter().cloned()).collect();
            c.insert(original.clone());
            c
        }
    };
    let by_hash: BTreeMap<[u8; 32], StorePath> = candidates
        .into_iter()
        .filter_map(|p| Some((<[u8; 32]>::try_from(p.hash_part().as_bytes()).ok()?, p)))
        .collect();
    let (digest, found) = match nhc_nar::hash_path_with_refs(check, by_hash.keys().copied().collect()) {
        Ok(r) => r,
        Err(e) => {
            log::error(&format!("diff-hook: cannot hash the rebuilt output {}: {e}", check.display()));
            return;
        }
    };
    let refs: Vec<StorePath> = found.iter().filter_map(|h| by_hash.get(h).cloned()).collect();
    let references = match References::new(refs) {
        Ok(r) => r,
        Err(p) => {
            log::error(&format!("diff-hook: {p} found twice"));
            return;
        }
    };
    let rebuilt = NarHash::from_bytes(digest.sha256);
    let before = match &recorded {
        Some(i) => format!("{} ({} bytes)", i.nar_hash, i.nar_size),
        None => "unknown".into(),
    };
    // Under nix-daemon the diff-hook runs as a build user, which cannot read the key
    // or the spool: the NixOS module asks for the hashes in the build log only.
    let report_only = config::diff_report_only();
    log::info(&format!(
        "diff-hook: {original} is not reproducible: the store has {before}, the rebuild {} has {rebuilt} ({} bytes); {}",
        check.display(),
        digest.size,
        if report_only {
            format!("not attested (report only: {})", config::DIFF_REPORT_ONLY.env)
        } else {
            "attesting the rebuilt hash".to_owned()
        }
    ));
    for n in &store.notes {
        log::warn(&n.to_string());
    }
    if report_only {
        if let (Some(dir), Some(info)) = (config::diff_spool(), &recorded) {
            spool_report(&store, &dir, &original, check, info.nar_hash);
        }
        return;
    }
    let Some((cfg, key)) = super::load_config_and_key() else { return };
    let facts = OutputFacts { name, path: original, nar_hash: rebuilt, nar_size: digest.size, references };
    attest::attest(&cfg, &key, Some(&drv), vec![facts], cfg.async_mode);
}

/// Report-only mode with `HASH_COLLECTION_DIFF_SPOOL`: the report, unsigned, for `nhc flush`.
fn spool_report(store: &Store, dir: &Path, original: &StorePath, check: &Path, hash_a: NarHash) {
    use crate::command::check;
    let made = config::diff_settings()
        .map_err(crate::command::CommandError::from)
        .and_then(|s| check::build_report(store, original, check, &hash_a, &s))
        .and_then(|(hash_b, format, gz)| check::spool_report(dir, original, hash_a, hash_b, format, &gz));
    match made {
        Ok(file) => log::info(&format!("diff-hook: the diff report is in {} for nhc flush", file.display())),
        Err(e) => log::error(&format!("diff-hook: cannot write the diff report into {}: {e}", dir.display())),
    }
}
