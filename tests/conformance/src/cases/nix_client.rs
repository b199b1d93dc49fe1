//! The narinfo views checked by the real Nix client: what `nix path-info` and
//! `nix store verify` accept is the only definition of "Nix can verify it" that counts.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::client::Ctx;
use crate::fixtures::{attest, builder, nar_hash, secret_key, store_path, unique, Out};
use crate::{ensure, TestResult};

/// True when `nix` runs here.
pub fn available() -> bool {
    Command::new("nix").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// A private Nix configuration: its own store, cache and settings, nothing from /etc
/// or the user, and no narinfo caching between calls.
struct NixEnv {
    dir: PathBuf,
}

impl NixEnv {
    fn new() -> Result<NixEnv, String> {
        let dir = std::env::temp_dir().join(unique("nhc-conformance-nix"));
        for sub in ["conf", "cache", "store"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        Ok(NixEnv { dir })
    }

    fn run(&self, args: &[&str]) -> Result<Output, String> {
        let config = format!(
            "experimental-features = nix-command\nstore = {}\nsubstituters =\nbuild-users-group =\n\
             narinfo-cache-negative-ttl = 0\nnarinfo-cache-positive-ttl = 0\n",
            self.dir.join("store").display()
        );
        Command::new("nix")
            .args(args)
            .env("NIX_CONF_DIR", self.dir.join("conf"))
            .env("NIX_USER_CONF_FILES", "/dev/null")
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .env("NIX_CONFIG", config)
            .output()
            .map_err(|e| format!("cannot run nix: {e}"))
    }
}

impl Drop for NixEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn nix_path_info_reads_a_builders_signature(ctx: &Ctx) -> TestResult {
    let a = builder(ctx, 1)?;
    let (dep, path) = (store_path("dep"), store_path("pathinfo"));
    let out = Out::new(&path, nar_hash()).size(4096).refs(std::slice::from_ref(&dep));
    attest(ctx, &a, None, &[&out])?;
    let nix = NixEnv::new()?;
    let store = format!("{}/builders/{}", ctx.base, a.name);
    let o = nix.run(&["path-info", "--store", &store, "--sigs", path.as_str()])?;
    ensure!(o.status.success(), "nix path-info failed: {}", show(&o));
    let sig = a.key().sign(&out.fingerprint()).to_string();
    let stdout = String::from_utf8_lossy(&o.stdout);
    ensure!(stdout.contains(path.as_str()) && stdout.contains(&sig), "signature not shown: {}", show(&o));
    // The JSON form shows what Nix parsed: hash, size and references.
    let o = nix.run(&["path-info", "--store", &store, "--json", path.as_str()])?;
    ensure!(o.status.success(), "nix path-info --json failed: {}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}: {}", show(&o)))?;
    let info = &v[0];
    ensure!(info["narHash"] == serde_json::json!(out.hash.to_sri()), "narHash: {}", show(&o));
    ensure!(info["narSize"] == serde_json::json!(4096), "narSize: {}", show(&o));
    ensure!(info["references"] == serde_json::json!([dep.as_str()]), "references: {}", show(&o));
    Ok(())
}

pub fn nix_store_verify_needs_two_trusted_builders(ctx: &Ctx) -> TestResult {
    let (a, b, c) = (builder(ctx, 1)?, builder(ctx, 1)?, builder(ctx, 1)?);
    let (dep, path) = (store_path("dep"), store_path("verify"));
    let (h1, h2) = (nar_hash(), nar_hash());
    let agreed = Out::new(&path, h1).size(2048).refs(&[dep.clone(), path.clone()]);
    attest(ctx, &a, None, &[&agreed])?;
    attest(ctx, &c, None, &[&Out::new(&path, h2).size(2048)])?;
    attest(ctx, &b, None, &[&agreed])?;
    let nix = NixEnv::new()?;
    let verify = |keys: &[String], needed: &str| {
        nix.run(&[
            "store",
            "verify",
            "--store",
            &ctx.base,
            "--trusted-public-keys",
            &keys.join(" "),
            "--sigs-needed",
            needed,
            "--no-contents",
            path.as_str(),
        ])
    };
    let o = verify(&[a.public_key(), b.public_key()], "2")?;
    ensure!(o.status.success(), "two agreeing builders should verify: {}", show(&o));
    // c signed another hash: its key adds nothing to this narinfo.
    let o = verify(&[a.public_key(), c.public_key()], "2")?;
    ensure!(!o.status.success(), "a builder that disagreed was counted: {}", show(&o));
    let stranger = secret_key("k").public_key().to_string();
    let o = verify(&[stranger], "1")?;
    ensure!(!o.status.success(), "an untrusted key verified: {}", show(&o));
    let o = verify(&[a.public_key()], "1")?;
    ensure!(o.status.success(), "one trusted builder with --sigs-needed 1: {}", show(&o));
    Ok(())
}
