//! `nhc submit`: attest store paths that already exist.

use std::collections::BTreeMap;

use nhc_core::{DrvPath, OutputName, StorePath};
use nhc_nix::Store;

use super::Exit;
use crate::attest::{self, Delivery};
use crate::config::{self, Config};
use crate::log;

/// Attest store paths that already exist: output paths, `result` links, or `.drv` files
/// (all of whose outputs are attested).
///
/// The values are those Nix recorded (its database, else `nix-store --query`); the
/// derivation is the path's deriver when Nix knows it. Sent now, or spooled when the
/// server cannot be reached.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Only spool; `nhc flush` sends.
    #[arg(long = "async")]
    asynchronous: bool,
    /// Re-hash every path from disk and refuse those that differ from Nix's record.
    #[arg(long)]
    verify: bool,
}

impl Args {
    /// `nhc submit PATH..` without flags, for other commands.
    pub fn for_paths(paths: Vec<String>) -> Args {
        Args { paths, asynchronous: false, verify: false }
    }
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let key = cfg.secret_key()?;
    let mut store = Store::new(config::store_location());
    // The outputs to attest by derivation; names found below for the paths given.
    let mut groups: BTreeMap<Option<DrvPath>, Vec<(Option<OutputName>, StorePath)>> = BTreeMap::new();
    let mut ok = true;
    for arg in &args.paths {
        let sp = store.loc.resolve_arg(arg)?;
        if let Ok(drv) = DrvPath::try_from(sp.clone()) {
            let outs = store.outputs_of(&drv)?;
            groups.entry(Some(drv)).or_default().extend(outs.into_iter().map(|(n, p)| (Some(n), p)));
            continue;
        }
        match store.path_info(&sp)? {
            Some(info) => groups.entry(info.deriver).or_default().push((None, sp)),
            None => {
                log::error(&format!("{sp} is not a valid path in the store ({})", store.loc.uri));
                ok = false;
            }
        }
    }
    for (drv, outputs) in groups {
        let outputs = match &drv {
            Some(d) => {
                let (mut named, unnamed): (Vec<_>, Vec<_>) = outputs.into_iter().partition(|(n, _)| n.is_some());
                named.extend(store.name_outputs(d, unnamed.into_iter().map(|(_, p)| p).collect()));
                named
            }
            None => outputs,
        };
        let g = attest::gather(&mut store, outputs, args.verify || cfg.verify);
        for p in &g.problems {
            log::error(&p.to_string());
            ok = false;
        }
        ok &= g.mismatches.is_empty();
        attest::keep_mismatches(cfg, &key, drv.as_ref(), g.mismatches);
        for a in attest::attest(cfg, &key, drv.as_ref(), g.facts, args.asynchronous || cfg.async_mode) {
            ok &= a.ok;
            let paths: Vec<&str> = a.paths.iter().map(StorePath::as_str).collect();
            match a.delivery {
                Delivery::Sent(r) => {
                    println!("sent {} ({} stored, {} duplicates)", paths.join(" "), r.stored, r.duplicates)
                }
                Delivery::Spooled { path, .. } => println!("spooled {} as {}", paths.join(" "), path.display()),
                _ => {}
            }
        }
    }
    for n in &store.notes {
        log::warn(&n.to_string());
    }
    Ok(if ok { 0 } else { 1 })
}
