//! The post-build-hook: `DRV_PATH` and `OUT_PATHS` from the environment.

use nhc_core::{DrvPath, OutputName, SecretKey, StorePath};
use nhc_nix::Store;

use crate::attest::{self, Attested};
use crate::config::{self, Config};
use crate::log;

pub fn run(drv_path: Option<String>, out_paths: Option<String>) {
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
    let Some((cfg, key)) = super::load_config_and_key() else { return };
    let mut store = Store::new(config::store_location());
    attest_build(&cfg, &key, &mut store, &drv, out_paths.as_deref().unwrap_or_default());
}

/// The outputs to attest, named: those in `out_paths` (as Nix lists them), or every
/// output of `drv` when it is empty (always in Nix 2.8.0, NixOS/nix#6446). `None`
/// after saying why there are none.
fn outputs(store: &mut Store, drv: &DrvPath, out_paths: &str) -> Option<Vec<(Option<OutputName>, StorePath)>> {
    let listed: Vec<StorePath> = out_paths
        .split_whitespace()
        .filter_map(|p| match StorePath::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn(&format!("OUT_PATHS: {e}; ignored"));
                None
            }
        })
        .collect();
    if !listed.is_empty() {
        return Some(store.name_outputs(drv, listed));
    }
    match store.outputs_of(drv) {
        Ok(outs) => Some(outs.into_iter().map(|(n, p)| (Some(n), p)).collect()),
        Err(e) => {
            log::error(&format!("OUT_PATHS is empty and {e}; nothing is attested"));
            None
        }
    }
}

/// Attests the outputs of one build; what became of each request is returned.
fn attest_build(cfg: &Config, key: &SecretKey, store: &mut Store, drv: &DrvPath, out_paths: &str) -> Vec<Attested> {
    let Some(outputs) = outputs(store, drv, out_paths) else { return Vec::new() };
    let g = attest::gather(store, outputs, cfg.verify);
    for n in &store.notes {
        log::warn(&n.to_string());
    }
    for p in &g.problems {
        log::error(&p.to_string());
    }
    attest::keep_mismatches(cfg, key, Some(drv), g.mismatches);
    if g.facts.is_empty() {
        log::error(&format!("{drv}: no output to attest"));
        return Vec::new();
    }
    attest::attest(cfg, key, Some(drv), g.facts, cfg.async_mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::{config, key, Delivery};
    use crate::testutil::{json, serve};
    use nhc_core::api::SubmitRequest;
    use nhc_nix::StoreLocation;

    /// Two outputs that Nix's database knows, of a derivation whose .drv is gone and
    /// whose outputs the database does not list: the output named by its path is sent
    /// with the derivation, the other one without it, never in a request the server
    /// refuses (drv_path with an output that has no output_name).
    #[test]
    fn outputs_whose_name_cannot_be_found_are_attested_without_the_derivation() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("db.sqlite");
        let out = "/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi";
        let odd = "/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-renamed";
        let c = nhc_nix::testing::create_db(&db);
        for p in [out, odd] {
            let hash = "sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6";
            nhc_nix::testing::register(&c, p, hash, 120, None);
        }
        drop(c);
        let loc = StoreLocation::from_uri(root.path().to_str().unwrap(), None).with_db(Some(db));
        let mut store = Store::new(loc);

        let drv = DrvPath::parse("/nix/store/47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv").unwrap();
        let ok = || json(201, r#"{"stored":1,"duplicates":0}"#);
        let (base, h) = serve(vec![ok(), ok()]);
        let cfg = config(&base, &root.path().join("spool"));
        let done = attest_build(&cfg, &key(), &mut store, &drv, &format!("{out} {odd}"));
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(done.iter().all(|a| a.ok && matches!(a.delivery, Delivery::Sent(_))), "{done:?}");
        let seen = h.join().unwrap();
        let sent: Vec<SubmitRequest> =
            seen.iter().map(|r| serde_json::from_str(&r[r.find("\r\n\r\n").unwrap() + 4..]).unwrap()).collect();
        for r in &sent {
            assert!(r.drv_path.is_none() || r.outputs.iter().all(|o| o.output_name.is_some()), "{r:?}");
        }
        assert_eq!(sent[0].drv_path.as_ref(), Some(&drv));
        assert_eq!(sent[0].outputs[0].output_name.as_ref().map(OutputName::as_str), Some("out"));
        assert_eq!((sent[1].drv_path.as_ref(), sent[1].outputs[0].output_path.name()), (None, "renamed"));
    }
}
