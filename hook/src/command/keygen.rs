//! `nhc keygen`: a signing key pair in Nix's formats.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nhc_core::{KeyName, SecretKey};

use super::{CommandError, Exit};
use crate::config;
use crate::durable::{self, dir_of};

/// Make a signing key pair in Nix's formats (`nix key generate-secret` / `convert-secret-to-public`).
///
/// Without options the secret key is printed on stdout (no trailing newline, like Nix).
/// The public key is what the server's administrator registers for this builder
/// (`nhc-server builder add NAME --public-key KEY`).
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// Key name, e.g. `builder-1` (A-Z a-z 0-9 . _ + @ -).
    name: String,
    /// Write the secret key to this file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Write the public key to this file; without it, the public key is printed when
    /// --secret-file is given.
    #[arg(long, value_name = "FILE")]
    public_file: Option<PathBuf>,
    /// Replace existing files (atomically: each file is written next to its target,
    /// synced, then renamed over it; the secret key file is mode 0600 whatever the
    /// old file's mode was).
    #[arg(long)]
    force: bool,
}

/// Whether `a` and `b` name the same file (which need not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!((fs::canonicalize(dir_of(a)), fs::canonicalize(dir_of(b))),
            (Ok(x), Ok(y)) if x == y && a.file_name() == b.file_name())
}

pub fn run(args: Args) -> Exit {
    let Args { name, secret_file, public_file, force } = args;
    let name = KeyName::parse(&name)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(CommandError::Random)?;
    let key = SecretKey::from_seed(name, seed);
    let secret = key.to_file_contents();
    let public = key.public_key().to_string();
    let mut files: Vec<(&Path, &[u8], u32)> = Vec::new();
    if let Some(p) = &secret_file {
        files.push((p, secret.as_bytes(), 0o600));
    }
    if let Some(p) = &public_file {
        files.push((p, public.as_bytes(), 0o644));
    }
    if let (Some(s), Some(p)) = (&secret_file, &public_file) {
        if same_file(s, p) {
            return Err(CommandError::SameFile(s.clone()));
        }
    }
    durable::write_all(&files, force)?;
    let mut out = std::io::stdout().lock();
    if secret_file.is_none() {
        out.write_all(secret.as_bytes())?;
    } else if public_file.is_none() {
        writeln!(out, "{public}")?;
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::FsError;

    fn keygen(name: &str, secret_file: Option<PathBuf>, public_file: Option<PathBuf>, force: bool) -> Exit {
        run(Args { name: name.into(), secret_file, public_file, force })
    }

    #[test]
    fn keygen_replaces_files_atomically_with_safe_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (sec, public) = (dir.path().join("k.sec"), dir.path().join("k.pub"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        fs::write(&sec, "old secret").unwrap();
        fs::set_permissions(&sec, fs::Permissions::from_mode(0o644)).unwrap();
        // Without --force: refused before anything is written (also the public key).
        let e = keygen("k-1", Some(sec.clone()), Some(public.clone()), false).unwrap_err();
        assert!(matches!(e, CommandError::Fs(FsError::Exists(_))), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert!(!public.exists());
        assert_eq!(fs::read_to_string(&sec).unwrap(), "old secret");
        // With --force: replaced, and the secret key is 0600 whatever the old mode was.
        assert_eq!(keygen("k-1", Some(sec.clone()), Some(public.clone()), true).unwrap(), 0);
        assert_eq!(mode(&sec), 0o600);
        let key = SecretKey::parse(&fs::read_to_string(&sec).unwrap()).unwrap();
        assert_eq!(fs::read_to_string(&public).unwrap(), key.public_key().to_string());
        // A public key target that cannot be written: the secret key is not touched.
        let before = fs::read(&sec).unwrap();
        let e = keygen("k-1", Some(sec.clone()), Some(dir.path().join("none/k.pub")), true).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(fs::read(&sec).unwrap(), before);
        assert!(matches!(keygen("k-1", Some(sec.clone()), Some(sec.clone()), true), Err(CommandError::SameFile(_))));
        // No temporary file is left behind.
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // New files: the secret 0600, the public key never writable by others.
        let (s2, p2) = (dir.path().join("n.sec"), dir.path().join("n.pub"));
        keygen("n-1", Some(s2.clone()), Some(p2.clone()), false).unwrap();
        assert_eq!(mode(&s2), 0o600);
        assert_eq!(mode(&p2) & 0o022, 0);
        assert!(matches!(keygen("bad name", Some(dir.path().join("x")), None, false), Err(CommandError::Parse(_))));
    }
}
