//! `nhc`: keygen, hash, submit, flush, status.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use nhc_core::api::{DerivationReport, OutputReport, SubmitRequest};
use nhc_core::{DrvPath, KeyName, NarHash, OutputName, SecretKey, StorePath};

use crate::attest;
use crate::config::{self, Config};
use crate::drv;
use crate::hook;
use crate::http::Outcome;
use crate::log;
use crate::spool::Spool;
use crate::store::{Store, StoreLocation};

#[derive(Parser, Debug)]
#[command(
    name = "nhc",
    version,
    about = "The nix-hash-collection client: keys, NAR hashes, attestations and reproducibility status",
    after_help = config::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make a signing key pair in Nix's formats (`nix key generate-secret` / `convert-secret-to-public`).
    ///
    /// Without options the secret key is printed on stdout (no trailing newline, like Nix).
    /// The public key is what the server's administrator registers for this builder
    /// (`nhc-server user add NAME --public-key KEY`).
    #[command(after_help = config::HELP)]
    Keygen {
        /// Key name, e.g. `builder-1` (A-Z a-z 0-9 . _ + @ -).
        name: String,
        /// Write the secret key to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Write the public key to this file; without it, the public key is printed when
        /// --secret-file is given.
        #[arg(long, value_name = "FILE")]
        public_file: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of a secret key read from stdin (or the configured key with --configured).
    #[command(after_help = config::HELP)]
    Pubkey {
        /// Use HASH_COLLECTION_SECRET_KEY(_FILE) instead of stdin.
        #[arg(long)]
        configured: bool,
    },
    /// Print the NAR hash and NAR size of a file or directory: `sha256:<nix32> <size>`.
    ///
    /// The hash is the one `nix hash path --base32` prints (prefixed with `sha256:`) and,
    /// for a store path, the one `nix-store -q --hash` prints. Streams in constant memory.
    #[command(after_help = config::HELP)]
    Hash {
        path: PathBuf,
        /// Print the hash in SRI form (`sha256-<base64>`).
        #[arg(long)]
        sri: bool,
        /// Hash on one thread only (for comparison).
        #[arg(long, hide = true)]
        sequential: bool,
    },
    /// Attest store paths that already exist: output paths, `result` links, or `.drv` files
    /// (all of whose outputs are attested).
    ///
    /// The values are those Nix recorded (its database, else `nix-store --query`); the
    /// derivation is the path's deriver when Nix knows it. Sent now, or spooled when the
    /// server cannot be reached.
    #[command(after_help = config::HELP)]
    Submit {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Only spool; `nhc flush` sends.
        #[arg(long = "async")]
        asynchronous: bool,
        /// Re-hash every path from disk and refuse those that differ from Nix's record.
        #[arg(long)]
        verify: bool,
    },
    /// Send the spooled attestations, each exactly once.
    ///
    /// Delivered items and duplicates leave the spool; items the server refuses (4xx) move
    /// to <spool>/rejected/ with the reason; on network trouble or 5xx the rest stays for
    /// the next run. Safe to run concurrently and to kill. Exit status 0 when nothing is
    /// left to send, 1 otherwise.
    #[command(after_help = config::HELP)]
    Flush {
        /// First move the items in rejected/ back into the spool (after fixing the cause).
        #[arg(long)]
        retry_rejected: bool,
    },
    /// Who built what and whether it reproduced, as a table.
    ///
    /// Takes output paths, `.drv` paths, basenames, or `result` links. Exit status 0 when
    /// every output reproduced (two or more builders, one hash), 2 when any output has
    /// differing hashes, 1 otherwise (no builds yet, one builder, or an error).
    #[command(after_help = config::HELP)]
    Status {
        #[arg(required = true, value_name = "PATH|DRV")]
        paths: Vec<String>,
        /// Print the server's reports as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> i32 {
    log::set_program("nhc");
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Keygen { name, secret_file, public_file, force } => keygen(&name, secret_file, public_file, force),
        Cmd::Pubkey { configured } => pubkey(configured),
        Cmd::Hash { path, sri, sequential } => hash(&path, sri, sequential),
        Cmd::Submit { paths, asynchronous, verify } => with_config(|cfg| submit(cfg, &paths, asynchronous, verify)),
        Cmd::Flush { retry_rejected } => with_config(|cfg| flush(cfg, retry_rejected)),
        Cmd::Status { paths, json } => with_config(|cfg| status(cfg, &paths, json)),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            log::error(&e);
            1
        }
    }
}

fn with_config(f: impl FnOnce(&Config) -> Result<i32, String>) -> Result<i32, String> {
    let cfg = Config::load()?;
    for w in &cfg.warnings {
        log::warn(w);
    }
    f(&cfg)
}

fn write_new(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<(), String> {
    let mut o = OpenOptions::new();
    o.write(true).mode(mode);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}{}", path.display(), if force { "" } else { " (--force overwrites)" }))?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

fn keygen(name: &str, secret_file: Option<PathBuf>, public_file: Option<PathBuf>, force: bool) -> Result<i32, String> {
    let name = KeyName::parse(name).map_err(|e| e.to_string())?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = SecretKey::from_seed(name, seed);
    let secret = key.to_file_contents();
    let public = key.public_key().to_string();
    let mut out = std::io::stdout().lock();
    match &secret_file {
        Some(p) => write_new(p, secret.as_bytes(), 0o600, force)?,
        None => out.write_all(secret.as_bytes()).map_err(|e| e.to_string())?,
    }
    match (&public_file, &secret_file) {
        (Some(p), _) => write_new(p, public.as_bytes(), 0o644, force)?,
        (None, Some(_)) => writeln!(out, "{public}").map_err(|e| e.to_string())?,
        (None, None) => {}
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(0)
}

fn pubkey(configured: bool) -> Result<i32, String> {
    let key = if configured {
        Config::load()?.secret_key()?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| e.to_string())?;
        SecretKey::parse(&s).map_err(|e| e.to_string())?
    };
    print!("{}", key.public_key());
    Ok(0)
}

fn hash(path: &Path, sri: bool, sequential: bool) -> Result<i32, String> {
    let d = if sequential { nhc_nar::hash_path_sequential(path) } else { nhc_nar::hash_path(path) }
        .map_err(|e| e.to_string())?;
    let h = NarHash::from_bytes(d.sha256);
    println!("{} {}", if sri { h.to_sri() } else { h.to_string() }, d.size);
    Ok(0)
}

/// A store path named on the command line: a full path (possibly inside a store
/// path), a basename, or a link (such as `result`) into the store.
fn resolve(loc: &StoreLocation, arg: &str) -> Result<StorePath, String> {
    let p = Path::new(arg);
    if let Some(sp) = loc.store_path_of(p) {
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
                if let Some(sp) = loc.store_path_of(&cur) {
                    return Ok(sp);
                }
            }
            Err(_) => break,
        }
    }
    if let Ok(c) = std::fs::canonicalize(p) {
        if let Some(sp) = loc.store_path_of(&c) {
            return Ok(sp);
        }
    }
    Err(format!("{arg}: not a store path, a store path's basename, or a link into the store"))
}

fn submit(cfg: &Config, args: &[String], asynchronous: bool, verify: bool) -> Result<i32, String> {
    let key = cfg.secret_key()?;
    let mut store = Store::from_env();
    let mut groups: BTreeMap<Option<DrvPath>, Vec<(Option<OutputName>, StorePath)>> = BTreeMap::new();
    let mut ok = true;
    for arg in args {
        let sp = resolve(&store.loc, arg)?;
        if let Ok(drv) = DrvPath::try_from(sp.clone()) {
            let outs = store.outputs_of(&drv)?;
            groups.entry(Some(drv)).or_default().extend(outs.into_iter().map(|(n, p)| (Some(n), p)));
            continue;
        }
        let deriver = match store.path_info(&sp)? {
            Some(info) => info.deriver,
            None => {
                log::error(&format!("{sp} is not a valid path in the store ({})", store.loc.uri));
                ok = false;
                continue;
            }
        };
        let name = deriver.as_ref().and_then(|d| {
            store.db().and_then(|db| db.output_name(d, &sp)).ok().flatten().or_else(|| drv::guess_output_name(d, &sp))
        });
        groups.entry(deriver).or_default().push((name, sp));
    }
    for (drv, outputs) in groups {
        let g = hook::gather(&mut store, outputs, verify || cfg.verify);
        for p in &g.problems {
            log::error(p);
            ok = false;
        }
        if !g.mismatches.is_empty() {
            ok = false;
        }
        hook::record_mismatches(cfg, &key, drv.as_ref(), g.mismatches);
        if g.facts.is_empty() {
            continue;
        }
        let what = match &drv {
            Some(d) => d.as_store_path().basename().to_owned(),
            None => "paths without a known deriver".to_owned(),
        };
        let paths: Vec<String> = g.facts.iter().map(|f| f.path.to_string()).collect();
        let req = attest::request(&key, drv, g.facts);
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let d = attest::deliver(cfg, &body, asynchronous || cfg.async_mode);
        ok &= attest::report(cfg, &what, &body, &d);
        match d {
            attest::Delivery::Sent(r) => {
                println!("sent {} ({} stored, {} duplicates)", paths.join(" "), r.stored, r.duplicates)
            }
            attest::Delivery::Spooled(p, _) => println!("spooled {} as {}", paths.join(" "), p.display()),
            _ => {}
        }
    }
    for n in &store.notes {
        log::warn(n);
    }
    Ok(if ok { 0 } else { 1 })
}

fn flush(cfg: &Config, retry_rejected: bool) -> Result<i32, String> {
    let spool = Spool::open(&cfg.spool).map_err(|e| format!("spool: {e}"))?;
    if retry_rejected {
        let n = spool.requeue_rejected().map_err(|e| format!("spool: {e}"))?;
        log::info(&format!("moved {n} rejected item(s) back into the spool"));
    }
    spool.clean_stale_temporaries(24 * 3600);
    let items = spool.items().map_err(|e| format!("spool: {e}"))?;
    if items.is_empty() {
        if cfg.verbose {
            log::info(&format!("the spool {} is empty", spool.dir().display()));
        }
        return Ok(0);
    }
    let client = attest::client(cfg)?;
    let token = cfg.token()?;
    let (mut sent, mut stored, mut dups, mut rejected, mut busy) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut left = 0usize;
    let mut http_failures = 0;
    for (i, item) in items.iter().enumerate() {
        let claimed = match spool.claim(item).map_err(|e| format!("spool: {e}"))? {
            Some(c) => c,
            None => {
                busy += 1;
                continue;
            }
        };
        if let Err(e) = serde_json::from_slice::<SubmitRequest>(&claimed.body) {
            let reason = serde_json::json!({"rejected_at": attest::now_rfc3339(), "invalid_item": e.to_string()});
            let dest = spool.reject(claimed, &reason).map_err(|e| format!("spool: {e}"))?;
            log::error(&format!(
                "{}: not a valid attestation request ({e}); moved to {}",
                item.display(),
                dest.display()
            ));
            rejected += 1;
            continue;
        }
        match client.submit(&token, &claimed.body) {
            Outcome::Delivered(r) => {
                spool.remove(claimed).map_err(|e| format!("spool: {e}"))?;
                sent += 1;
                stored += r.stored;
                dups += r.duplicates;
                http_failures = 0;
            }
            Outcome::Rejected { status, error, body } => {
                let msg = match &error {
                    Some(e) => format!("HTTP {status} {}: {}", e.error, e.message),
                    None => format!("HTTP {status}"),
                };
                let reason = serde_json::json!({
                    "rejected_at": attest::now_rfc3339(),
                    "server": client.base(),
                    "http_status": status,
                    "error": error,
                    "response": if error.is_some() { serde_json::Value::Null } else { body.into() },
                });
                let dest = spool.reject(claimed, &reason).map_err(|e| format!("spool: {e}"))?;
                log::error(&format!("{}: REJECTED by the server ({msg}); moved to {}", item.display(), dest.display()));
                rejected += 1;
            }
            Outcome::Retry { reason, status } => {
                left += 1;
                http_failures += 1;
                // The server is unreachable: the other items would fail the same way.
                // An HTTP error may concern one item only, so go on a little.
                if status.is_none() || http_failures >= 3 {
                    log::warn(&format!("{reason}; leaving the rest of the spool for the next run"));
                    left += items.len() - i - 1;
                    break;
                }
                log::warn(&format!("{}: {reason}; kept for the next run", item.display()));
            }
        }
    }
    log::info(&format!(
        "delivered {sent} item(s) ({stored} attestation(s) stored, {dups} duplicate(s)), rejected {rejected}, \
         left {left}{}",
        if busy > 0 { format!(", {busy} taken by another flush") } else { String::new() }
    ));
    Ok(if left == 0 { 0 } else { 1 })
}

/// One line (or more, one per hash) of the status table.
struct Row {
    path: String,
    output: String,
    status: String,
    hashes: Vec<(String, Vec<String>)>,
}

fn status(cfg: &Config, args: &[String], json: bool) -> Result<i32, String> {
    let client = attest::client(cfg)?;
    let loc = StoreLocation::from_env();
    let mut rows = Vec::new();
    let mut json_out = serde_json::Map::new();
    let mut failed = false;
    for arg in args {
        let sp = match resolve(&loc, arg) {
            Ok(sp) => sp,
            Err(e) => {
                log::error(&e);
                failed = true;
                continue;
            }
        };
        if let Ok(drv) = DrvPath::try_from(sp.clone()) {
            match client.get_json::<DerivationReport>(&format!("/v1/derivations/{}", sp.basename())) {
                Ok(Some(r)) => {
                    for (name, o) in &r.outputs {
                        rows.push(Row {
                            path: o.output_path.to_string(),
                            output: name.to_string(),
                            status: o.status.as_str().to_owned(),
                            hashes: o
                                .results
                                .iter()
                                .map(|h| (h.nar_hash.to_string(), h.builders.iter().map(|b| b.to_string()).collect()))
                                .collect(),
                        });
                    }
                    json_out.insert(arg.clone(), serde_json::to_value(&r).unwrap_or_default());
                }
                Ok(None) => {
                    rows.push(Row {
                        path: drv.to_string(),
                        output: "-".into(),
                        status: "no_builds".into(),
                        hashes: vec![],
                    });
                    json_out.insert(arg.clone(), serde_json::Value::Null);
                }
                Err(e) => {
                    log::error(&e);
                    failed = true;
                }
            }
            continue;
        }
        match client.get_json::<OutputReport>(&format!("/v1/outputs/{}", sp.basename())) {
            Ok(Some(r)) => {
                let mut by_hash: Vec<(String, Vec<String>)> = Vec::new();
                for a in &r.attestations {
                    let h = a.nar_hash.to_string();
                    let b = a.builder.to_string();
                    match by_hash.iter_mut().find(|(x, _)| *x == h) {
                        Some((_, bs)) if bs.contains(&b) => {}
                        Some((_, bs)) => bs.push(b),
                        None => by_hash.push((h, vec![b])),
                    }
                }
                by_hash.sort_by_key(|(_, bs)| std::cmp::Reverse(bs.len()));
                let output = r.attestations.iter().find_map(|a| a.output_name.as_ref()).map(|n| n.to_string());
                rows.push(Row {
                    path: sp.to_string(),
                    output: output.unwrap_or_else(|| "-".into()),
                    status: r.status.as_str().to_owned(),
                    hashes: by_hash,
                });
                json_out.insert(arg.clone(), serde_json::to_value(&r).unwrap_or_default());
            }
            Ok(None) => {
                rows.push(Row { path: sp.to_string(), output: "-".into(), status: "no_builds".into(), hashes: vec![] });
                json_out.insert(arg.clone(), serde_json::Value::Null);
            }
            Err(e) => {
                log::error(&e);
                failed = true;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&json_out).map_err(|e| e.to_string())?);
    } else {
        print!("{}", table(&rows));
    }
    let differs = rows.iter().any(|r| r.hashes.len() >= 2);
    let all_reproduced = !failed && !rows.is_empty() && rows.iter().all(|r| r.status == "reproduced");
    Ok(if differs {
        2
    } else if all_reproduced {
        0
    } else {
        1
    })
}

fn table(rows: &[Row]) -> String {
    let head = ["OUTPUT PATH", "NAME", "STATUS", "NAR HASH", "BUILDERS"];
    let mut lines: Vec<[String; 5]> = vec![head.map(str::to_owned)];
    for r in rows {
        if r.hashes.is_empty() {
            lines.push([r.path.clone(), r.output.clone(), r.status.clone(), "-".into(), "-".into()]);
        }
        for (i, (h, bs)) in r.hashes.iter().enumerate() {
            let first = i == 0;
            lines.push([
                if first { r.path.clone() } else { String::new() },
                if first { r.output.clone() } else { String::new() },
                if first { r.status.clone() } else { String::new() },
                h.clone(),
                bs.join(", "),
            ]);
        }
    }
    let mut width = [0usize; 5];
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            if i == 4 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(resolve(&loc, arg).unwrap().as_str(), want, "{arg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("result");
        std::os::unix::fs::symlink(want, &link).unwrap();
        assert_eq!(resolve(&loc, link.to_str().unwrap()).unwrap().as_str(), want);
        assert!(resolve(&loc, "hello").is_err());
        assert!(resolve(&loc, dir.path().to_str().unwrap()).is_err());
    }

    #[test]
    fn table_layout() {
        let rows = vec![
            Row {
                path: "/nix/store/a".into(),
                output: "out".into(),
                status: "not_reproduced".into(),
                hashes: vec![("sha256:x".into(), vec!["alice".into()]), ("sha256:y".into(), vec!["bob".into()])],
            },
            Row { path: "/nix/store/bb".into(), output: "-".into(), status: "no_builds".into(), hashes: vec![] },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("OUTPUT PATH    NAME  STATUS          NAR HASH  BUILDERS"), "{t}");
        assert!(lines[1].ends_with("sha256:x  alice"));
        assert!(lines[2].trim_start().starts_with("sha256:y"));
        assert!(lines[3].contains("no_builds"));
    }
}
