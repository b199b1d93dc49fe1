//! Nix's SQLite database, opened read-only: what Nix recorded about valid paths
//! (NAR hash, NAR size, references, deriver), the outputs of derivations, closures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use nhc_core::fingerprint::References;
use nhc_core::{DrvPath, NarHash, OutputName, StorePath};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::Error;

/// What Nix knows about a valid store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub deriver: Option<DrvPath>,
}

/// Nix's database, read-only.
pub struct NixDb {
    conn: Connection,
}

impl NixDb {
    pub fn open(path: &Path) -> Result<NixDb, Error> {
        if !path.exists() {
            return Err(Error::DbMissing(path.to_path_buf()));
        }
        let opened = |source| Error::DbOpen { path: path.to_path_buf(), source };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(opened)?;
        // Readers do not wait for Nix in WAL mode; if the database is in rollback mode
        // and locked, give up quickly and fall back rather than stall the build.
        conn.busy_timeout(Duration::from_millis(500)).map_err(opened)?;
        Ok(NixDb { conn })
    }

    /// `None` when the path is not valid.
    pub fn path_info(&self, p: &StorePath) -> Result<Option<PathInfo>, Error> {
        let row: Option<(i64, String, Option<i64>, Option<String>)> = self
            .conn
            .prepare_cached("SELECT id, hash, narSize, deriver FROM ValidPaths WHERE path = ?1")?
            .query_row([p.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((id, hash, size, deriver)) = row else {
            return Ok(None);
        };
        let nar_hash = NarHash::parse(&hash).map_err(|source| Error::DbHash { path: p.clone(), source })?;
        let nar_size = size.and_then(|s| u64::try_from(s).ok()).ok_or_else(|| Error::DbNoNarSize(p.clone()))?;
        let mut st = self.conn.prepare_cached(
            "SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1",
        )?;
        let mut refs = Vec::new();
        for row in st.query_map([id], |r| r.get::<_, String>(0))? {
            refs.push(StorePath::parse(&row?)?);
        }
        let references =
            References::new(refs).map_err(|path| Error::DuplicateReference { from: "Nix's database", path })?;
        let deriver = deriver.filter(|d| !d.is_empty()).and_then(|d| DrvPath::parse(&d).ok());
        Ok(Some(PathInfo { nar_hash, nar_size, references, deriver }))
    }

    /// The outputs Nix registered for a derivation.
    pub fn derivation_outputs(&self, drv: &DrvPath) -> Result<Vec<(OutputName, StorePath)>, Error> {
        let mut st = self.conn.prepare_cached(
            "SELECT o.id, o.path FROM DerivationOutputs o JOIN ValidPaths v ON v.id = o.drv WHERE v.path = ?1",
        )?;
        let mut out = Vec::new();
        for row in st.query_map([drv.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (name, path) = row?;
            out.push((OutputName::parse(&name)?, StorePath::parse(&path)?));
        }
        Ok(out)
    }

    /// `roots` and everything they reference, transitively.
    pub fn closure(&self, roots: &[StorePath]) -> Result<BTreeSet<StorePath>, Error> {
        let mut st = self.conn.prepare_cached(
            "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path = ?1 \
             UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id) \
             SELECT v.path FROM c JOIN ValidPaths v ON v.id = c.id",
        )?;
        let mut out = BTreeSet::new();
        for root in roots {
            for row in st.query_map([root.as_str()], |r| r.get::<_, String>(0))? {
                out.insert(StorePath::parse(&row?)?);
            }
        }
        Ok(out)
    }

    /// `roots` and everything they reference, transitively, each with its deriver as
    /// Nix recorded it (one query per root, for `nhc jobset push --closure`). A root
    /// that is not a valid path adds nothing.
    pub fn closure_with_derivers(&self, roots: &[StorePath]) -> Result<BTreeMap<StorePath, Option<DrvPath>>, Error> {
        let mut st = self.conn.prepare_cached(
            "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path = ?1 \
             UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id) \
             SELECT v.path, v.deriver FROM c JOIN ValidPaths v ON v.id = c.id",
        )?;
        let mut out = BTreeMap::new();
        for root in roots {
            let rows =
                st.query_map([root.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
            for row in rows {
                let (path, deriver) = row?;
                let deriver = deriver.filter(|d| !d.is_empty()).and_then(|d| DrvPath::parse(&d).ok());
                out.insert(StorePath::parse(&path)?, deriver);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{create_db, output, reference, register};

    /// A database with Nix 2.8's schema, filled like Nix fills it.
    pub(crate) fn nix_db(path: &Path) {
        let c = create_db(path);
        let hello = register(
            &c,
            "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello",
            "sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6",
            120,
            Some("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv"),
        );
        let tree = register(
            &c,
            "/nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree",
            "sha256:ca485456aef20b656bf07ae72378921be9ac8f0857a931aaf0e1761cde0ad8fb",
            1808,
            None,
        );
        let refs = register(
            &c,
            "/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs",
            "sha256:91d723f56e30262e56678fd37eb85fdf209c291b32da85022bd44d6c967d6e86",
            776,
            Some("/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv"),
        );
        let drv = register(
            &c,
            "/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv",
            "sha256:91d723f56e30262e56678fd37eb85fdf209c291b32da85022bd44d6c967d6e86",
            1,
            None,
        );
        for to in [hello, tree, refs] {
            reference(&c, refs, to);
        }
        output(&c, drv, "out", "/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs");
    }

    #[test]
    fn reads_a_nix_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        nix_db(&path);
        let db = NixDb::open(&path).unwrap();
        let refs = StorePath::parse("/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs").unwrap();
        let info = db.path_info(&refs).unwrap().unwrap();
        assert_eq!(info.nar_hash.to_string(), "sha256:11kfgnb6qkfl5c18bnij3clrq86zbyw7xlwgcxb2w9ihdvsj7mwi");
        assert_eq!(info.nar_size, 776);
        let names: Vec<&str> = info.references.as_slice().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["refs", "tree", "hello"]);
        assert_eq!(info.deriver.unwrap().as_store_path().name(), "refs.drv");
        let hello = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
        assert!(db.path_info(&hello).unwrap().unwrap().references.is_empty());
        let missing = StorePath::parse("/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi").unwrap();
        assert_eq!(db.path_info(&missing).unwrap(), None);
        let drv = DrvPath::parse("/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv").unwrap();
        let outs = db.derivation_outputs(&drv).unwrap();
        assert_eq!(outs.len(), 1);
        assert_eq!((outs[0].0.as_str(), &outs[0].1), ("out", &refs));
        assert_eq!(db.closure(std::slice::from_ref(&refs)).unwrap().len(), 3);
        assert_eq!(db.closure(std::slice::from_ref(&hello)).unwrap().len(), 1);
        let with = db.closure_with_derivers(std::slice::from_ref(&refs)).unwrap();
        assert_eq!(with.len(), 3);
        assert_eq!(with[&refs].as_ref().unwrap().as_str(), "/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv");
        assert_eq!(with[&hello].as_ref().unwrap().as_store_path().name(), "hello.drv");
        assert!(with.values().filter(|d| d.is_none()).count() == 1); // tree has none
        assert!(db.closure_with_derivers(std::slice::from_ref(&missing)).unwrap().is_empty());
        assert!(matches!(NixDb::open(&dir.path().join("none.sqlite")), Err(Error::DbMissing(_))));
    }
}
