//! `nhc-hook`: Nix's post-build-hook (no arguments, [`post_build`]) and diff-hook
//! (arguments `<output path> <rebuilt .check path> <drv path> [<build dir>]`, [`diff`]).
//!
//! Nothing here may fail or stall a build: every problem is reported on stderr and
//! the process exits 0.

mod diff;
mod post_build;

use nhc_core::SecretKey;

use crate::config::{self, Config};
use crate::log;

/// The `nhc-hook` binary.
pub fn main() {
    log::set_program("nhc-hook");
    // A panic (a bug, or stdout closed under `--help`) must not fail the build.
    guarded(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.as_slice() {
            [] => post_build::run(std::env::var("DRV_PATH").ok(), std::env::var("OUT_PATHS").ok()),
            [a] if a == "--help" || a == "-h" => println!("{HELP}\n{}", config::help()),
            [a] if a == "--version" || a == "-V" => println!("nhc-hook {}", env!("CARGO_PKG_VERSION")),
            [original, check, drv] | [original, check, drv, _] => diff::run(original, check, drv),
            _ => log::error("unexpected arguments: see nhc-hook --help (nothing attested)"),
        }
    });
    std::process::exit(0);
}

/// The configuration and the signing key, or `None` after saying why nothing can be
/// attested.
fn load_config_and_key() -> Option<(Config, SecretKey)> {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            log::error(&format!("{e}; nothing is attested"));
            return None;
        }
    };
    for w in &cfg.warnings {
        log::warn(&w.to_string());
    }
    if let Some(e) = cfg.misconfiguration() {
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
to $HASH_COLLECTION_SERVER/v1/attestations (an output whose name cannot be found, from the
.drv, Nix's database or its path, goes in a request of its own without the derivation).
If the server cannot be reached, answers 5xx, or times out, the signed request is written
to the spool and `nhc flush` sends it later; so is it when the URL redirects or answers
2xx without nhc-server's answer (reported as an error: the URL is probably wrong). A 4xx rejection is kept in <spool>/rejected/ with
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_and_logged() {
        assert!(guarded(|| {}));
        assert!(!guarded(|| panic!("boom")));
        // The process's own panic hook is back.
        assert!(std::panic::catch_unwind(|| panic!("again")).is_err());
    }
}
