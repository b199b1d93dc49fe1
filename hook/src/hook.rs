//! `nhc-hook`: Nix's post-build-hook (no arguments) and diff-hook (arguments
//! `<output path> <rebuilt .check path> <drv path> [<build dir>]`).
//!
//! Nothing here may fail or stall a build: every problem is reported on stderr and
//! the process exits 0.

use std::collections::BTreeMap;
use std::path::Path;

use nhc_core::fingerprint::References;
use nhc_core::{DrvPath, NarHash, OutputName, SecretKey, StorePath};

use crate::attest::{self, OutputFacts};
use crate::config::Config;
use crate::log;
use crate::spool::Spool;
use crate::store::Store;

/// An output whose files no longer match what Nix recorded.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub facts: OutputFacts,
    pub on_disk: (NarHash, u64),
}

/// The facts about some outputs, and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Gathered {
    pub facts: Vec<OutputFacts>,
    pub mismatches: Vec<Mismatch>,
    pub problems: Vec<String>,
}

/// Looks up what Nix recorded for each output (and, with `verify`, re-hashes it).
pub fn gather(store: &mut Store, outputs: Vec<(Option<OutputName>, StorePath)>, verify: bool) -> Gathered {
    let mut g = Gathered::default();
    for (name, path) in outputs {
        let info = match store.path_info(&path) {
            Ok(Some(info)) => info,
            Ok(None) => {
                g.problems.push(format!("{path} is not a valid path in the store ({}); skipped", store.loc.uri));
                continue;
            }
            Err(e) => {
                g.problems.push(format!("{path}: {e}; skipped"));
                continue;
            }
        };
        let facts =
            OutputFacts { name, path, nar_hash: info.nar_hash, nar_size: info.nar_size, references: info.references };
        if verify {
            let real = store.loc.real_path(&facts.path);
            match nhc_nar::hash_path(&real) {
                Ok(d) => {
                    let on_disk = (NarHash::from_bytes(d.sha256), d.size);
                    if on_disk != (facts.nar_hash, facts.nar_size) {
                        g.mismatches.push(Mismatch { facts, on_disk });
                        continue;
                    }
                }
                Err(e) => {
                    g.problems.push(format!("cannot verify {}: {e}; skipped", facts.path));
                    continue;
                }
            }
        }
        g.facts.push(facts);
    }
    g
}

/// Keeps the unsent attestations of mismatched outputs in `mismatch/` (never sent,
/// not even by `nhc flush --retry-rejected`) and says so loudly.
pub fn record_mismatches(cfg: &Config, key: &SecretKey, drv: Option<&DrvPath>, mismatches: Vec<Mismatch>) {
    for m in mismatches {
        let (hash, size) = m.on_disk;
        let msg = format!(
            "VERIFY FAILED for {}: Nix recorded {} ({} bytes) but the files now hash to {hash} ({size} bytes). \
             The store path was modified after the build (or this is a bug in nhc); it is NOT attested",
            m.facts.path, m.facts.nar_hash, m.facts.nar_size
        );
        let reason = serde_json::json!({
            "rejected_at": attest::now_rfc3339(),
            "verify_mismatch": {
                "output_path": m.facts.path,
                "recorded": {"nar_hash": m.facts.nar_hash, "nar_size": m.facts.nar_size},
                "on_disk": {"nar_hash": hash, "nar_size": size},
            },
        });
        let req = attest::request(key, drv.cloned(), vec![m.facts]);
        let kept = serde_json::to_vec(&req).map_err(|e| e.to_string()).and_then(|body| {
            Spool::open(&cfg.spool).and_then(|s| s.add_mismatch(&body, &reason)).map_err(|e| e.to_string())
        });
        match kept {
            Ok(p) => log::error(&format!(
                "{msg}; the request Nix's values would give is kept in {} (for inspection only: it is never sent)",
                p.display()
            )),
            Err(e) => log::error(&format!("{msg} (and it cannot be kept in the spool: {e})")),
        }
    }
}

fn load_config_and_key() -> Option<(Config, SecretKey)> {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            log::error(&format!("{e}; nothing is attested"));
            return None;
        }
    };
    for w in &cfg.warnings {
        log::warn(w);
    }
    for e in &cfg.errors {
        log::error(&format!("MISCONFIGURED: {e}; attestations are spooled until it is fixed (then `nhc flush`)"));
    }
    match cfg.secret_key() {
        Ok(k) => Some((cfg, k)),
        Err(e) => {
            log::error(&format!("MISCONFIGURED, nothing is attested: {e}"));
            None
        }
    }
}

/// Signs, sends or spools one request and reports the result.
fn submit(cfg: &Config, key: &SecretKey, drv: &DrvPath, facts: Vec<OutputFacts>) {
    let what = drv.as_store_path().basename().to_owned();
    let req = attest::request(key, Some(drv.clone()), facts);
    let body = match serde_json::to_vec(&req) {
        Ok(b) => b,
        Err(e) => {
            log::error(&format!("{what}: cannot serialise the request: {e}"));
            return;
        }
    };
    let d = attest::deliver(cfg, &body, cfg.async_mode);
    attest::report(cfg, &what, &body, &d);
}

/// The post-build-hook: `DRV_PATH` and `OUT_PATHS` from the environment.
pub fn post_build(drv_path: Option<String>, out_paths: Option<String>) {
    let Some(drv_path) = drv_path.filter(|s| !s.is_empty()) else {
        log::error("DRV_PATH is not set: run nhc-hook as Nix's post-build-hook (see nhc-hook --help)");
        return;
    };
    let drv = match DrvPath::parse(drv_path.trim()) {
        Ok(d) => d,
        Err(e) => {
            log::error(&format!("DRV_PATH: {e}"));
            return;
        }
    };
    let Some((cfg, key)) = load_config_and_key() else { return };
    let mut store = Store::from_env();

    let listed: Vec<StorePath> = out_paths
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| match StorePath::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn(&format!("OUT_PATHS: {e}; ignored"));
                None
            }
        })
        .collect();
    let known = store.outputs_of(&drv);
    let outputs: Vec<(Option<OutputName>, StorePath)> = match (&known, listed.is_empty()) {
        // Nix 2.8.0 passes an empty OUT_PATHS (NixOS/nix#6446): take the derivation's.
        (Ok(outs), true) => outs.iter().map(|(n, p)| (Some(n.clone()), p.clone())).collect(),
        (Err(e), true) => {
            log::error(&format!("OUT_PATHS is empty and {e}; nothing is attested"));
            return;
        }
        (_, false) => {
            let names: BTreeMap<&StorePath, &OutputName> =
                known.as_ref().map(|o| o.iter().map(|(n, p)| (p, n)).collect()).unwrap_or_default();
            listed.iter().map(|p| (names.get(p).map(|n| (*n).clone()), p.clone())).collect()
        }
    };

    let g = gather(&mut store, outputs, cfg.verify);
    for n in &store.notes {
        log::warn(n);
    }
    for p in &g.problems {
        log::error(p);
    }
    record_mismatches(&cfg, &key, Some(&drv), g.mismatches);
    if g.facts.is_empty() {
        log::error(&format!("{drv}: no output to attest"));
        return;
    }
    submit(&cfg, &key, &drv, g.facts);
}

/// The diff-hook: Nix rebuilt `original` (`--check`) and the result, moved to
/// `check`, differs. Reports the rebuilt output's hash as this builder's
/// attestation for `original`, so the disagreement is recorded.
pub fn diff_hook(original: &str, check: &str, drv: &str) {
    let (original, drv) = match (StorePath::parse(original), DrvPath::parse(drv)) {
        (Ok(o), Ok(d)) => (o, d),
        (Err(e), _) | (_, Err(e)) => {
            log::error(&format!("diff-hook: {e}; expected <output path> <rebuilt path> <drv path>"));
            return;
        }
    };
    let check = Path::new(check);
    let mut store = Store::from_env();

    let name = store.outputs_of(&drv).ok().and_then(|o| o.into_iter().find(|(_, p)| *p == original).map(|(n, _)| n));
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
            let mut c: std::collections::BTreeSet<StorePath> =
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
    let report_only =
        std::env::var(ENV_DIFF_REPORT_ONLY).ok().and_then(|v| crate::config::parse_bool(&v)).unwrap_or(false);
    log::info(&format!(
        "diff-hook: {original} is not reproducible: the store has {before}, the rebuild {} has {rebuilt} ({} bytes); {}",
        check.display(),
        digest.size,
        if report_only { "not attested (report only: HASH_COLLECTION_DIFF_REPORT_ONLY)" } else { "attesting the rebuilt hash" }
    ));
    for n in &store.notes {
        log::warn(n);
    }
    if report_only {
        return;
    }
    let Some((cfg, key)) = load_config_and_key() else { return };
    let facts = OutputFacts { name, path: original, nar_hash: rebuilt, nar_size: digest.size, references };
    submit(&cfg, &key, &drv, vec![facts]);
}

/// Runs `f`, turning a panic into a logged error: the hook must exit 0 whatever
/// happens. Returns whether `f` finished normally.
pub fn guarded(f: impl FnOnce()) -> bool {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p.downcast_ref::<&str>().copied().or_else(|| p.downcast_ref::<String>().map(String::as_str));
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        log::error(&format!(
            "INTERNAL ERROR (a bug in nhc-hook; please report it): panicked{at}: {}. \
             Nothing more is attested for this build; the build itself is not affected",
            msg.unwrap_or("(no message)").replace('\n', " ")
        ));
    }));
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
    std::panic::set_hook(previous);
    ok
}

pub const HELP: &str = "\
nhc-hook: report the NAR hashes of Nix build outputs, signed, to a nix-hash-collection server.

USAGE
  As Nix's post-build-hook (no arguments; Nix sets DRV_PATH and OUT_PATHS):
      post-build-hook = /path/to/nhc-hook
  As Nix's diff-hook (Nix passes <output path> <rebuilt .check path> <drv path> <build dir>):
      run-diff-hook = true
      diff-hook = /path/to/nhc-hook

For every output of DRV_PATH (all of them when OUT_PATHS is empty, as in Nix 2.8.0) it
reads the NAR hash, NAR size and references Nix recorded, signs Nix's fingerprint
`1;<path>;<sha256:nix32>;<size>;<refs>` with the builder's key, and POSTs the attestation
to $HASH_COLLECTION_SERVER/v1/attestations. If the server cannot be reached, answers 5xx,
or times out, the signed request is written to the spool and `nhc flush` sends it later;
so is it when the URL redirects or answers 2xx without nhc-server's answer (reported as
an error: the URL is probably wrong). A 4xx rejection is kept in <spool>/rejected/ with
the reason. With HASH_COLLECTION_VERIFY=1 an output whose files no longer match Nix's
record is not attested; the request is kept in <spool>/mismatch/ for inspection and is
never sent. It always exits 0, even on an internal error, so a problem here never fails
a build; problems are reported on stderr.

For https:// servers it trusts the CA certificates of $NIX_SSL_CERT_FILE, else
$SSL_CERT_FILE, else the system's bundle (/etc/ssl/certs/ca-certificates.crt and the
other usual places), else the Mozilla roots built into it.

As a diff-hook (`nix-build --check` found a rebuild that differs), it hashes the rebuilt
output and attests that hash for the original output path, so the server records that
this builder got two different results. With HASH_COLLECTION_DIFF_REPORT_ONLY=1 it only
prints both hashes to the build log (the NixOS module sets it: under nix-daemon the
diff-hook runs as a build user that cannot read the key).
";

/// Set by the NixOS module's diff-hook wrapper: print the hashes, attest nothing.
pub const ENV_DIFF_REPORT_ONLY: &str = "HASH_COLLECTION_DIFF_REPORT_ONLY";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::tests::{config, facts, key};

    #[test]
    fn a_panic_is_caught_and_logged() {
        assert!(guarded(|| {}));
        assert!(!guarded(|| panic!("boom")));
        // The process's own panic hook is back.
        assert!(std::panic::catch_unwind(|| panic!("again")).is_err());
    }

    #[test]
    fn verify_mismatches_go_to_their_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("http://127.0.0.1:9", dir.path());
        let f = facts("hello");
        let on_disk = (NarHash::from_bytes([4; 32]), 121);
        record_mismatches(&cfg, &key(), None, vec![Mismatch { facts: f, on_disk }]);
        let s = Spool::open(dir.path()).unwrap();
        assert!(s.items().unwrap().is_empty());
        assert!(s.rejected_items().unwrap().is_empty());
        let kept = s.mismatch_items().unwrap();
        assert_eq!(kept.len(), 1);
        let reason = std::fs::read_to_string(kept[0].with_extension("reason")).unwrap();
        assert!(reason.contains("verify_mismatch"), "{reason}");
        assert_eq!(s.requeue_rejected().unwrap(), (0, 0));
        assert!(s.items().unwrap().is_empty());
    }
}
