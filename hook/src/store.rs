//! The local Nix store: where its files and database live, and what Nix recorded
//! about a path (NAR hash, NAR size, references, deriver).
//!
//! The facts come from Nix's SQLite database, opened read-only (a few hundred
//! microseconds); when that cannot be read, the NAR hash is computed from the files
//! and the references come from `nix-store --query`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nhc_core::fingerprint::References;
use nhc_core::{DrvPath, NarHash, OutputName, StorePath, STORE_DIR};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::drv::{self, Derivation};

/// What Nix knows about a valid store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
    pub deriver: Option<DrvPath>,
}

/// Where the store's files and database are on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The `store` setting as found (for messages).
    pub uri: String,
    /// The directory holding the files of `/nix/store/...` (differs for a chroot store).
    pub real_store_dir: PathBuf,
    /// Nix's state directory (`/nix/var/nix`), holding `db/db.sqlite`.
    pub state_dir: PathBuf,
    /// `HASH_COLLECTION_NIX_DB`: Nix's database elsewhere than `<state>/db/db.sqlite`
    /// (unusual layouts; tests use a missing file to exercise the fallbacks).
    pub db_override: Option<PathBuf>,
}

/// Reads `name = value` settings in nix.conf syntax; the last one wins.
fn conf_setting(text: &str, name: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == name {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl StoreLocation {
    /// The store as Nix sees it from this process's environment: the `store` setting
    /// of `NIX_CONFIG` (Nix hands the hook its effective settings there), else of
    /// `$NIX_CONF_DIR/nix.conf`, else `NIX_REMOTE`.
    pub fn from_env() -> StoreLocation {
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let from_config = env("NIX_CONFIG").and_then(|c| conf_setting(&c, "store"));
        let from_file = || {
            let dir = env("NIX_CONF_DIR").unwrap_or_else(|| "/etc/nix".into());
            std::fs::read_to_string(Path::new(&dir).join("nix.conf")).ok().and_then(|c| conf_setting(&c, "store"))
        };
        let uri = from_config.or_else(from_file).or_else(|| env("NIX_REMOTE")).unwrap_or_else(|| "auto".into());
        let mut loc = StoreLocation::from_uri(&uri, env("NIX_STATE_DIR"));
        loc.db_override = env("HASH_COLLECTION_NIX_DB").map(PathBuf::from);
        loc
    }

    /// `/root/dir` and `local?root=/root/dir` (with optional `state=` and `real=`) are
    /// chroot stores; anything else (`auto`, `daemon`, `local`) is the system store.
    pub fn from_uri(uri: &str, nix_state_dir: Option<String>) -> StoreLocation {
        let (scheme, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut params = BTreeMap::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            params.insert(k.to_owned(), percent_decode(v));
        }
        let root = if scheme.starts_with('/') {
            Some(scheme.to_owned())
        } else if scheme == "local" || scheme == "auto" {
            params.get("root").cloned()
        } else {
            None
        };
        let root = root.map(|r| PathBuf::from(r.trim_end_matches('/')));
        let under_root = |p: &str| match &root {
            Some(r) => r.join(p.trim_start_matches('/')),
            None => PathBuf::from(p),
        };
        let default_state = match (&root, nix_state_dir) {
            (None, Some(s)) => PathBuf::from(s),
            _ => under_root("/nix/var/nix"),
        };
        StoreLocation {
            uri: uri.to_owned(),
            real_store_dir: params.get("real").map(PathBuf::from).unwrap_or_else(|| under_root(STORE_DIR)),
            state_dir: params.get("state").map(PathBuf::from).unwrap_or(default_state),
            db_override: None,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.db_override.clone().unwrap_or_else(|| self.state_dir.join("db/db.sqlite"))
    }

    /// Where the files of `p` are on this machine.
    pub fn real_path(&self, p: &StorePath) -> PathBuf {
        self.real_store_dir.join(p.basename())
    }

    /// The store path that `path` (a path on this machine, or `/nix/store/...`,
    /// possibly inside a store path) belongs to.
    pub fn store_path_of(&self, path: &Path) -> Option<StorePath> {
        let rest = path.strip_prefix(&self.real_store_dir).or_else(|_| path.strip_prefix(STORE_DIR)).ok()?;
        let first = rest.components().next()?;
        StorePath::from_basename(first.as_os_str().to_str()?).ok()
    }
}

/// Nix's database, read-only.
pub struct NixDb {
    conn: Connection,
}

impl NixDb {
    pub fn open(path: &Path) -> Result<NixDb, String> {
        if !path.exists() {
            return Err(format!("{}: no such file", path.display()));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        // Readers do not wait for Nix in WAL mode; if the database is in rollback mode
        // and locked, give up quickly and fall back rather than stall the build.
        conn.busy_timeout(Duration::from_millis(500)).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(NixDb { conn })
    }

    fn err(e: rusqlite::Error) -> String {
        format!("reading Nix's database: {e}")
    }

    /// `None` when the path is not valid.
    pub fn path_info(&self, p: &StorePath) -> Result<Option<PathInfo>, String> {
        let row: Option<(i64, String, Option<i64>, Option<String>)> = self
            .conn
            .prepare_cached("SELECT id, hash, narSize, deriver FROM ValidPaths WHERE path = ?1")
            .and_then(|mut st| {
                st.query_row([p.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()
            })
            .map_err(NixDb::err)?;
        let Some((id, hash, size, deriver)) = row else {
            return Ok(None);
        };
        let nar_hash = NarHash::parse(&hash).map_err(|e| format!("Nix's database holds for {p}: {e}"))?;
        let nar_size = size
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| format!("Nix's database has no NAR size for {p}"))?;
        let mut st = self
            .conn
            .prepare_cached("SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1")
            .map_err(NixDb::err)?;
        let refs = st
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(NixDb::err)?
            .map(|r| r.map_err(NixDb::err).and_then(|s| StorePath::parse(&s).map_err(|e| e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let references = References::new(refs).map_err(|p| format!("Nix's database lists {p} twice"))?;
        let deriver = deriver.filter(|d| !d.is_empty()).and_then(|d| DrvPath::parse(&d).ok());
        Ok(Some(PathInfo { nar_hash, nar_size, references, deriver }))
    }

    /// The outputs Nix registered for a derivation.
    pub fn derivation_outputs(&self, drv: &DrvPath) -> Result<Vec<(OutputName, StorePath)>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.path FROM DerivationOutputs o JOIN ValidPaths v ON v.id = o.drv WHERE v.path = ?1",
            )
            .map_err(NixDb::err)?;
        let rows = st
            .query_map([drv.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(NixDb::err)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, path) = row.map_err(NixDb::err)?;
            let name = OutputName::parse(&name).map_err(|e| e.to_string())?;
            out.push((name, StorePath::parse(&path).map_err(|e| e.to_string())?));
        }
        Ok(out)
    }

    /// The output name under which `out` was registered for `drv`.
    pub fn output_name(&self, drv: &DrvPath, out: &StorePath) -> Result<Option<OutputName>, String> {
        Ok(self.derivation_outputs(drv)?.into_iter().find(|(_, p)| p == out).map(|(n, _)| n))
    }

    /// `roots` and everything they reference, transitively.
    pub fn closure(&self, roots: &[StorePath]) -> Result<BTreeSet<StorePath>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path = ?1 \
                 UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id) \
                 SELECT v.path FROM c JOIN ValidPaths v ON v.id = c.id",
            )
            .map_err(NixDb::err)?;
        let mut out = BTreeSet::new();
        for root in roots {
            for row in st.query_map([root.as_str()], |r| r.get::<_, String>(0)).map_err(NixDb::err)? {
                out.insert(StorePath::parse(&row.map_err(NixDb::err)?).map_err(|e| e.to_string())?);
            }
        }
        Ok(out)
    }
}

/// How long a `nix-store --query` may take before it is killed (it takes tens of
/// milliseconds; a stuck one must not stall the build).
pub const NIX_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `cmd` with stdin closed, killing it after `timeout`; its status, stdout and
/// stderr. The output is read by two threads so a full pipe cannot block the child.
pub fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), String> {
    use std::io::Read;
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Instant;

    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
    let (tx, rx) = mpsc::channel();
    let pipes: [(u8, Option<Box<dyn Read + Send>>); 2] = [
        (1, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        (2, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
    ];
    for (fd, pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send((fd, buf));
        });
    }
    drop(tx);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {:.1} s without an answer", timeout.as_secs_f64()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    // A process it started may still hold the pipes: do not wait past the deadline.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(100));
        match rx.recv_timeout(left) {
            Ok((1, b)) => out = b,
            Ok((_, b)) => err = b,
            Err(_) => return Err("its output did not end after it exited".into()),
        }
    }
    Ok((status, out, err))
}

/// Runs `nix-store --query ARGS` (killed after [`NIX_STORE_TIMEOUT`]) and returns
/// its stdout lines.
pub fn nix_store_query(args: &[&str]) -> Result<Vec<String>, String> {
    let mut cmd = Command::new("nix-store");
    cmd.arg("--query").args(args);
    let (status, out, err) =
        run_with_timeout(cmd, NIX_STORE_TIMEOUT).map_err(|e| format!("nix-store --query {}: {e}", args.join(" ")))?;
    if !status.success() {
        return Err(format!("nix-store --query {} failed: {}", args.join(" "), String::from_utf8_lossy(&err).trim()));
    }
    Ok(String::from_utf8_lossy(&out).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

fn parse_paths(lines: Vec<String>) -> Result<Vec<StorePath>, String> {
    lines.iter().map(|l| StorePath::parse(l).map_err(|e| e.to_string())).collect()
}

/// The store with its database opened lazily, and the fallbacks when it cannot be.
pub struct Store {
    pub loc: StoreLocation,
    db: Option<Result<NixDb, String>>,
    /// Set when a fallback was used, so callers can report it.
    pub notes: Vec<String>,
}

impl Store {
    pub fn new(loc: StoreLocation) -> Store {
        Store { loc, db: None, notes: Vec::new() }
    }

    pub fn from_env() -> Store {
        Store::new(StoreLocation::from_env())
    }

    /// The database, or why it cannot be used.
    pub fn db(&mut self) -> Result<&NixDb, String> {
        if self.db.is_none() {
            self.db = Some(NixDb::open(&self.loc.db_path()));
        }
        match self.db.as_ref() {
            Some(Ok(db)) => Ok(db),
            Some(Err(e)) => Err(e.clone()),
            None => Err("unreachable".into()),
        }
    }

    /// What Nix recorded for `p`; `Ok(None)` when it is not a valid path.
    /// Falls back to hashing the files and asking `nix-store` for the references.
    pub fn path_info(&mut self, p: &StorePath) -> Result<Option<PathInfo>, String> {
        let db_err = match self.db().and_then(|db| db.path_info(p)) {
            Ok(info) => return Ok(info),
            Err(e) => e,
        };
        self.notes.push(format!("{db_err}; computing the NAR hash of {p} from its files instead"));
        let real = self.loc.real_path(p);
        if std::fs::symlink_metadata(&real).is_err() {
            return Ok(None);
        }
        let d = nhc_nar::hash_path(&real).map_err(|e| format!("hashing {}: {e}", real.display()))?;
        let refs = parse_paths(nix_store_query(&["--references", p.as_str()])?)?;
        let references = References::new(refs).map_err(|p| format!("nix-store lists {p} twice"))?;
        let deriver = nix_store_query(&["--deriver", p.as_str()])
            .ok()
            .and_then(|l| l.into_iter().next())
            .and_then(|d| DrvPath::parse(&d).ok());
        Ok(Some(PathInfo { nar_hash: NarHash::from_bytes(d.sha256), nar_size: d.size, references, deriver }))
    }

    /// Reads and parses a derivation from the store.
    pub fn read_derivation(&self, drv: &DrvPath) -> Result<Derivation, String> {
        let real = self.loc.real_path(drv.as_store_path());
        let text = std::fs::read(&real).map_err(|e| format!("cannot read {}: {e}", real.display()))?;
        drv::parse(&text).map_err(|e| format!("{drv}: {e}"))
    }

    /// The outputs of `drv` with their paths: from the `.drv` file, else from the
    /// database, else from `nix-store --query --outputs`.
    pub fn outputs_of(&mut self, drv: &DrvPath) -> Result<Vec<(OutputName, StorePath)>, String> {
        let parse_err = match self.read_derivation(drv) {
            Ok(d) => {
                let known: Vec<_> = d.outputs.iter().filter_map(|(n, p)| Some((n.clone(), p.clone()?))).collect();
                if known.len() == d.outputs.len() {
                    return Ok(known);
                }
                // Floating content-addressed outputs: the database knows their paths.
                format!("{drv} has outputs whose paths are only known after the build")
            }
            Err(e) => e,
        };
        let db_err = match self.db().and_then(|db| db.derivation_outputs(drv)) {
            Ok(outs) if !outs.is_empty() => return Ok(outs),
            Ok(_) => format!("Nix's database lists no outputs for {drv}"),
            Err(e) => e,
        };
        let paths = parse_paths(
            nix_store_query(&["--outputs", drv.as_str()])
                .map_err(|e| format!("cannot find the outputs of {drv}: {parse_err}; {db_err}; {e}"))?,
        )?;
        Ok(paths.into_iter().filter_map(|p| Some((drv::guess_output_name(drv, &p)?, p))).collect())
    }

    /// The paths a build of `drv` could refer to, as Nix computes them for reference
    /// scanning: the closure of its input sources and of the used outputs of its
    /// input derivations, plus its own outputs.
    pub fn referenceable_paths(&mut self, drv: &DrvPath) -> Result<BTreeSet<StorePath>, String> {
        let d = self.read_derivation(drv)?;
        let mut roots: Vec<StorePath> = d.input_srcs.clone();
        for (input, wanted) in &d.input_drvs {
            let outs = self.outputs_of(input)?;
            roots.extend(outs.into_iter().filter(|(n, _)| wanted.contains(n)).map(|(_, p)| p));
        }
        let mut all = match self.db().and_then(|db| db.closure(&roots)) {
            Ok(c) => c,
            Err(e) => {
                self.notes.push(format!("{e}; asking nix-store for the closure"));
                let mut args = vec!["--requisites"];
                args.extend(roots.iter().map(StorePath::as_str));
                if roots.is_empty() {
                    BTreeSet::new()
                } else {
                    parse_paths(nix_store_query(&args)?)?.into_iter().collect()
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

    #[test]
    fn commands_are_bounded_in_time() {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let (status, out, err) = run_with_timeout(c, Duration::from_secs(5)).unwrap();
        assert_eq!((status.code(), &out[..], &err[..]), (Some(3), &b"out\n"[..], &b"err\n"[..]));
        // Much output: read while the child runs, so it does not block on a full pipe.
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "head -c 1000000 /dev/zero"]);
        assert_eq!(run_with_timeout(c, Duration::from_secs(5)).unwrap().1.len(), 1_000_000);
        let t0 = std::time::Instant::now();
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "exec sleep 30"]);
        let e = run_with_timeout(c, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert!(run_with_timeout(Command::new("/nonexistent/x"), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn store_uris() {
        let sys = StoreLocation::from_uri("auto", None);
        assert_eq!(sys.real_store_dir, PathBuf::from("/nix/store"));
        assert_eq!(sys.db_path(), PathBuf::from("/nix/var/nix/db/db.sqlite"));
        assert_eq!(StoreLocation::from_uri("daemon", None).real_store_dir, PathBuf::from("/nix/store"));
        assert_eq!(StoreLocation::from_uri("local", Some("/st".into())).db_path(), PathBuf::from("/st/db/db.sqlite"));
        for uri in ["/tmp/t/store", "/tmp/t/store/", "local?root=/tmp/t/store", "local?root=%2Ftmp%2Ft%2Fstore"] {
            let l = StoreLocation::from_uri(uri, Some("/ignored".into()));
            assert_eq!(l.real_store_dir, PathBuf::from("/tmp/t/store/nix/store"), "{uri}");
            assert_eq!(l.db_path(), PathBuf::from("/tmp/t/store/nix/var/nix/db/db.sqlite"), "{uri}");
        }
        let l = StoreLocation::from_uri("local?root=/r&state=/s&real=/x", None);
        assert_eq!((l.real_store_dir, l.state_dir), (PathBuf::from("/x"), PathBuf::from("/s")));
        let p = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
        let l = StoreLocation::from_uri("/r", None);
        assert_eq!(l.real_path(&p), PathBuf::from("/r/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"));
        assert_eq!(
            l.store_path_of(Path::new("/r/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello/bin/x")),
            Some(p.clone())
        );
        assert_eq!(l.store_path_of(Path::new("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello")), Some(p));
        assert_eq!(l.store_path_of(Path::new("/tmp/x")), None);
    }

    #[test]
    fn nix_conf_settings() {
        let text =
            "experimental-features = nix-command\nstore = /a\n# store = /b\nstore=/c # comment\nsubstituters =\n";
        assert_eq!(conf_setting(text, "store").as_deref(), Some("/c"));
        assert_eq!(conf_setting(text, "substituters").as_deref(), Some(""));
        assert_eq!(conf_setting(text, "sandbox"), None);
    }

    /// A database with Nix 2.8's schema, filled like Nix fills it.
    #[test]
    fn reads_a_nix_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE ValidPaths (id integer primary key autoincrement not null, path text unique not null,
               hash text not null, registrationTime integer not null, deriver text, narSize integer,
               ultimate integer, sigs text, ca text);
             CREATE TABLE Refs (referrer integer not null, reference integer not null, primary key (referrer, reference));
             CREATE TABLE DerivationOutputs (drv integer not null, id text not null, path text not null, primary key (drv, id));
             INSERT INTO ValidPaths VALUES (1, '/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello',
               'sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6', 0,
               '/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv', 120, NULL, NULL, NULL);
             INSERT INTO ValidPaths VALUES (2, '/nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree',
               'sha256:ca485456aef20b656bf07ae72378921be9ac8f0857a931aaf0e1761cde0ad8fb', 0, NULL, 1808, NULL, NULL, NULL);
             INSERT INTO ValidPaths VALUES (3, '/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs',
               'sha256:91d723f56e30262e56678fd37eb85fdf209c291b32da85022bd44d6c967d6e86', 0,
               '/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv', 776, NULL, NULL, NULL);
             INSERT INTO ValidPaths VALUES (4, '/nix/store/k8idmbww8dxy0paa2y9a0vv7a67bp6qg-refs.drv',
               'sha256:91d723f56e30262e56678fd37eb85fdf209c291b32da85022bd44d6c967d6e86', 0, NULL, 1, NULL, NULL, NULL);
             INSERT INTO Refs VALUES (3, 1), (3, 2), (3, 3);
             INSERT INTO DerivationOutputs VALUES (4, 'out', '/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs');",
        )
        .unwrap();
        drop(c);
        let db = NixDb::open(&db).unwrap();
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
        assert_eq!(db.output_name(&drv, &refs).unwrap().unwrap().as_str(), "out");
        assert_eq!(db.closure(std::slice::from_ref(&refs)).unwrap().len(), 3);
        assert_eq!(db.closure(&[hello]).unwrap().len(), 1);
    }
}
