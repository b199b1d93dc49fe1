//! The local store: what Nix recorded about a path, from its database when it can be
//! read, else from the files and `nix-store --query`; the outputs of derivations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use nhc_core::fingerprint::References;
use nhc_core::{DrvPath, NarHash, OutputName, StorePath};

use crate::command::{nix_store_query, nix_store_query_paths};
use crate::db::{NixDb, PathInfo};
use crate::drv::{self, Derivation};
use crate::{Error, StoreLocation};

/// A fallback that was used, for the caller to report.
#[derive(Debug)]
pub enum Note {
    /// The database could not be read: the NAR hash of `path` was computed from its
    /// files and its references asked of `nix-store`.
    HashedFromFiles { path: StorePath, why: Error },
    /// The database could not be read: the closure was asked of `nix-store`.
    ClosureFromNixStore { why: Error },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::HashedFromFiles { path, why } => {
                write!(f, "{why}; computing the NAR hash of {path} from its files instead")
            }
            Note::ClosureFromNixStore { why } => write!(f, "{why}; asking nix-store for the closure"),
        }
    }
}

/// The store with its database opened lazily, and the fallbacks when it cannot be.
pub struct Store {
    pub loc: StoreLocation,
    db: Option<Result<NixDb, Arc<Error>>>,
    /// The fallbacks used so far, so callers can report them.
    pub notes: Vec<Note>,
}

impl Store {
    pub fn new(loc: StoreLocation) -> Store {
        Store { loc, db: None, notes: Vec::new() }
    }

    /// The database, or why it cannot be used.
    pub fn db(&mut self) -> Result<&NixDb, Error> {
        let db = self.db.get_or_insert_with(|| NixDb::open(&self.loc.db_path()).map_err(Arc::new));
        db.as_ref().map_err(|e| Error::DbUnavailable(e.clone()))
    }

    /// What Nix recorded for `p`; `Ok(None)` when it is not a valid path.
    /// Falls back to hashing the files and asking `nix-store` for the references.
    pub fn path_info(&mut self, p: &StorePath) -> Result<Option<PathInfo>, Error> {
        let why = match self.db().and_then(|db| db.path_info(p)) {
            Ok(info) => return Ok(info),
            Err(e) => e,
        };
        self.notes.push(Note::HashedFromFiles { path: p.clone(), why });
        let real = self.loc.real_path(p);
        if std::fs::symlink_metadata(&real).is_err() {
            return Ok(None);
        }
        let d = nhc_nar::hash_path(&real).map_err(|source| Error::Hash { path: real.clone(), source })?;
        let refs = nix_store_query_paths(&["--references", p.as_str()])?;
        let references = References::new(refs).map_err(|path| Error::DuplicateReference { from: "nix-store", path })?;
        let deriver = nix_store_query(&["--deriver", p.as_str()])
            .ok()
            .and_then(|l| l.into_iter().next())
            .and_then(|d| DrvPath::parse(&d).ok());
        Ok(Some(PathInfo { nar_hash: NarHash::from_bytes(d.sha256), nar_size: d.size, references, deriver }))
    }

    /// Reads and parses a derivation from the store.
    pub fn read_derivation(&self, drv: &DrvPath) -> Result<Derivation, Error> {
        let real = self.loc.real_path(drv.as_store_path());
        let text = std::fs::read(&real).map_err(|source| Error::ReadDrv { path: real, source })?;
        drv::parse(&text).map_err(|source| Error::ParseDrv { drv: drv.clone(), source })
    }

    /// The outputs of `drv` with their paths: from the `.drv` file, else from the
    /// database, else from `nix-store --query --outputs`.
    pub fn outputs_of(&mut self, drv: &DrvPath) -> Result<Vec<(OutputName, StorePath)>, Error> {
        let from_drv = match self.read_derivation(drv) {
            Ok(d) => {
                let known: Vec<_> = d.outputs.iter().filter_map(|(n, p)| Some((n.clone(), p.clone()?))).collect();
                if known.len() == d.outputs.len() {
                    return Ok(known);
                }
                // Floating content-addressed outputs: the database knows their paths.
                Error::FloatingOutputs(drv.clone())
            }
            Err(e) => e,
        };
        let from_db = match self.db().and_then(|db| db.derivation_outputs(drv)) {
            Ok(outs) if !outs.is_empty() => return Ok(outs),
            Ok(_) => Error::NoOutputsInDb(drv.clone()),
            Err(e) => e,
        };
        let paths = nix_store_query_paths(&["--outputs", drv.as_str()]).map_err(|e| Error::NoOutputs {
            drv: drv.clone(),
            from_drv: Box::new(from_drv),
            from_db: Box::new(from_db),
            from_nix_store: Box::new(e),
        })?;
        Ok(paths.into_iter().filter_map(|p| Some((drv::output_name_from_path(drv, &p)?, p))).collect())
    }

    /// Names `paths`, which Nix reported as outputs of `drv` (in `OUT_PATHS`, or as
    /// their deriver): from the `.drv` file, else from the database, else by Nix's rule
    /// for output path names (`nix-store --query --outputs` lists paths only, so it
    /// could name nothing that rule does not). `None` for a path none of these names:
    /// it is not an output of `drv`.
    pub fn name_outputs(&mut self, drv: &DrvPath, paths: Vec<StorePath>) -> Vec<(Option<OutputName>, StorePath)> {
        let mut known: BTreeMap<StorePath, OutputName> = match self.read_derivation(drv) {
            Ok(d) => d.outputs.into_iter().filter_map(|(n, p)| Some((p?, n))).collect(),
            Err(_) => BTreeMap::new(),
        };
        if paths.iter().any(|p| !known.contains_key(p)) {
            if let Ok(outs) = self.db().and_then(|db| db.derivation_outputs(drv)) {
                known.extend(outs.into_iter().map(|(n, p)| (p, n)));
            }
        }
        paths.into_iter().map(|p| (known.get(&p).cloned().or_else(|| drv::output_name_from_path(drv, &p)), p)).collect()
    }

    /// The paths a build of `drv` could refer to, as Nix computes them for reference
    /// scanning: the closure of its input sources and of the used outputs of its
    /// input derivations, plus its own outputs.
    pub fn referenceable_paths(&mut self, drv: &DrvPath) -> Result<BTreeSet<StorePath>, Error> {
        let d = self.read_derivation(drv)?;
        let mut roots: Vec<StorePath> = d.input_srcs.clone();
        for (input, wanted) in &d.input_drvs {
            let outs = self.outputs_of(input)?;
            roots.extend(outs.into_iter().filter(|(n, _)| wanted.contains(n)).map(|(_, p)| p));
        }
        let mut all = match self.db().and_then(|db| db.closure(&roots)) {
            Ok(c) => c,
            Err(why) => {
                self.notes.push(Note::ClosureFromNixStore { why });
                let mut args = vec!["--requisites"];
                args.extend(roots.iter().map(StorePath::as_str));
                if roots.is_empty() {
                    BTreeSet::new()
                } else {
                    nix_store_query_paths(&args)?.into_iter().collect()
                }
            }
        };
        all.extend(d.outputs.into_iter().filter_map(|(_, p)| p));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI_DRV: &str = "47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv";
    const MULTI: &str = r#"Derive([("dev","/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev","",""),("out","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[],[],"x86_64-linux","/bin/sh",[],[])"#;

    fn path(s: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{s}")).unwrap()
    }

    /// Output names come from the .drv, else from Nix's database, else from the path's
    /// name; a path that follows none of them stays unnamed.
    #[test]
    fn outputs_are_named_from_the_drv_the_database_or_their_path() {
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("nix/store");
        std::fs::create_dir_all(&store_dir).unwrap();
        std::fs::write(store_dir.join(MULTI_DRV), MULTI).unwrap();
        let loc = StoreLocation::from_uri(root.path().to_str().unwrap(), None);
        let mut store = Store::new(loc.clone());
        let drv = DrvPath::parse(&format!("/nix/store/{MULTI_DRV}")).unwrap();
        let dev = path("s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev");
        let named = store.name_outputs(&drv, vec![dev.clone()]);
        assert_eq!(named[0].0.as_ref().map(OutputName::as_str), Some("dev"));

        // No .drv and no database: Nix's rule for output path names; an odd path stays unnamed.
        let elsewhere = StoreLocation::from_uri("/nonexistent", None);
        let mut store = Store::new(elsewhere);
        let out = path("xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi");
        let odd = path("xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-other");
        let named = store.name_outputs(&drv, vec![out.clone(), dev, odd.clone()]);
        let names: Vec<Option<&str>> = named.iter().map(|(n, _)| n.as_ref().map(OutputName::as_str)).collect();
        assert_eq!(names, [Some("out"), Some("dev"), None]);
        assert_eq!(named[2].1, odd);

        // Nix's database names an output whose path does not follow the rule.
        let db = root.path().join("db.sqlite");
        crate::db::tests::nix_db(&db);
        let refs_drv = DrvPath::parse("/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv").unwrap();
        let refs = path("2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs");
        let mut store = Store::new(loc.with_db(Some(db)));
        assert_eq!(store.name_outputs(&refs_drv, vec![refs.clone()])[0].0.as_ref().unwrap().as_str(), "out");
        let renamed = DrvPath::parse("/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-renamed.drv").unwrap();
        assert_eq!(store.name_outputs(&renamed, vec![refs])[0].0, None);
    }

    #[test]
    fn an_unreadable_database_is_reported_every_time() {
        let mut store = Store::new(StoreLocation::from_uri("/nonexistent", None));
        for _ in 0..2 {
            let e = store.db().err().unwrap();
            assert!(e.to_string().contains("/nonexistent/nix/var/nix/db/db.sqlite: no such file"), "{e}");
        }
    }
}
