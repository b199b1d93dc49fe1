//! The HTTP conformance suite: every endpoint and every bad input of DESIGN.md,
//! through real HTTP, against any deployment.
//!
//! ```sh
//! NHC_URL=http://127.0.0.1:8080 NHC_ADMIN_TOKEN=secret cargo run -p nhc-conformance
//! ```
//!
//! It creates builders with random names and attests random store paths, so it can
//! run against a database that holds other data, and several runs can share one
//! server. Point it only at a test deployment: it creates and deletes builders.
//! The narinfo views are also checked with the real Nix client when `nix` is on
//! PATH (`NHC_NIX=require` makes a missing `nix` a failure, `NHC_NIX=skip` skips).
//! Arguments are libtest's: a filter, `--test-threads N`, `--list`, ...

mod cases;
mod client;
mod fixtures;

use libtest_mimic::{Arguments, Failed, Trial};

pub type TestResult = Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let ctx = match client::Ctx::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let nix = match ctx.nix {
        client::NixMode::Skip => false,
        client::NixMode::Auto => cases::nix_available(),
        client::NixMode::Require => {
            if !cases::nix_available() {
                eprintln!("error: NHC_NIX=require but `nix --version` does not run");
                std::process::exit(2);
            }
            true
        }
    };
    let trials = cases::all()
        .into_iter()
        .map(|(name, f)| {
            let ctx = ctx.clone();
            // Without Nix the real-client cases show as ignored, never as passed.
            let needs_nix = name.starts_with("nix_client::");
            Trial::test(name, move || f(&ctx)).with_ignored_flag(needs_nix && !nix)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
