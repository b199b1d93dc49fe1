//! Where the Nix store's files and database are on this machine, found as Nix finds
//! them, and which store path a path or command-line argument names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nhc_core::{StorePath, STORE_DIR};

/// Where the store's files and database are on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The `store` setting as found (for messages).
    pub uri: String,
    /// The directory holding the files of `/nix/store/...` (differs for a chroot store).
    pub real_store_dir: PathBuf,
    /// Nix's state directory (`/nix/var/nix`), holding `db/db.sqlite`.
    pub state_dir: PathBuf,
    /// Nix's database elsewhere than `<state>/db/db.sqlite` (unusual layouts; the
    /// client's configuration sets it; tests use a missing file to exercise the fallbacks).
    pub db_override: Option<PathBuf>,
}

/// An argument that names no store path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}: not a store path, a store path's basename, or a link into the store")]
pub struct NotAStorePath(pub String);

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
        StoreLocation::from_uri(&uri, env("NIX_STATE_DIR"))
    }

    /// This location with Nix's database at `db` instead (when `Some`).
    pub fn with_db(mut self, db: Option<PathBuf>) -> StoreLocation {
        self.db_override = db;
        self
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

    /// The store path named on a command line: a full path (possibly inside a store
    /// path), a basename, or a link (such as `result`) into the store.
    pub fn resolve_arg(&self, arg: &str) -> Result<StorePath, NotAStorePath> {
        let p = Path::new(arg);
        if let Some(sp) = self.store_path_of(p) {
            return Ok(sp);
        }
        if !arg.contains('/') {
            if let Ok(sp) = StorePath::from_basename(arg) {
                return Ok(sp);
            }
        }
        // Follow links by hand: a `result` link of a chroot store points to /nix/store/...
        // which need not exist on this machine.
        let mut cur = p.to_path_buf();
        for _ in 0..40 {
            match std::fs::read_link(&cur) {
                Ok(t) => {
                    cur = if t.is_absolute() { t } else { cur.parent().unwrap_or(Path::new("/")).join(t) };
                    if let Some(sp) = self.store_path_of(&cur) {
                        return Ok(sp);
                    }
                }
                Err(_) => break,
            }
        }
        if let Ok(c) = std::fs::canonicalize(p) {
            if let Some(sp) = self.store_path_of(&c) {
                return Ok(sp);
            }
        }
        Err(NotAStorePath(arg.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let l = StoreLocation::from_uri("/r", None).with_db(Some("/elsewhere/db.sqlite".into()));
        assert_eq!(l.db_path(), PathBuf::from("/elsewhere/db.sqlite"));
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

    #[test]
    fn resolves_arguments() {
        let loc = StoreLocation::from_uri("/r", None);
        let want = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
        for arg in [
            want,
            "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello/bin/x",
            "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello",
            "/r/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello",
        ] {
            assert_eq!(loc.resolve_arg(arg).unwrap().as_str(), want, "{arg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("result");
        std::os::unix::fs::symlink(want, &link).unwrap();
        assert_eq!(loc.resolve_arg(link.to_str().unwrap()).unwrap().as_str(), want);
        assert_eq!(loc.resolve_arg("hello"), Err(NotAStorePath("hello".into())));
        assert!(loc.resolve_arg(dir.path().to_str().unwrap()).is_err());
    }
}
