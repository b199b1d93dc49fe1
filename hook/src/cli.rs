//! `nhc`: keygen, hash, submit, flush, status.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use nhc_core::api::{DerivationReport, OutputReport, SubmitRequest};
use nhc_core::{DrvPath, KeyName, NarHash, OutputName, SecretKey, StorePath};

use crate::attest;
use crate::config::{self, Config, Token};
use crate::drv;
use crate::hook;
use crate::http::{Client, Outcome};
use crate::log;
use crate::spool::{self, Claimed, Spool};
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
        /// Replace existing files (atomically: each file is written next to its target,
        /// synced, then renamed over it; the secret key file is mode 0600 whatever the
        /// old file's mode was).
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
    /// to <spool>/rejected/ with the reason; on network trouble, 5xx, a redirect, or a 2xx
    /// that is not nhc-server's answer the rest stays for the next run. An item that cannot
    /// be read is reported and left; the others are still sent. Safe to run concurrently
    /// and to kill. Exit status 0 when nothing is left to send, 1 otherwise.
    #[command(after_help = config::HELP)]
    Flush {
        /// First move the items in rejected/ back into the spool (after fixing the cause).
        /// Requests for outputs that failed verification (<spool>/mismatch/, or rejected/
        /// items whose reason is `verify_mismatch`) are never requeued nor sent: the files
        /// did not match what Nix recorded.
        #[arg(long)]
        retry_rejected: bool,
    },
    /// Who built what and whether it reproduced, as a table.
    ///
    /// Takes output paths, `.drv` paths, basenames, or `result` links. For a `.drv` that
    /// can be read from the local store, every output is listed, also those the server
    /// has no attestation of (`no_builds`). Exit status 0 when every output reproduced
    /// (two or more builders, one hash), 2 when any output has differing hashes, 1
    /// otherwise (no builds yet, one builder, or an error).
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
    for e in &cfg.errors {
        log::error(&format!("MISCONFIGURED: {e}"));
    }
    f(&cfg)
}

/// The directory a file named by `path` is in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Whether `path` can be written: its directory exists, and it does not exist (or
/// `force` and it is not a directory).
fn check_target(path: &Path, force: bool) -> Result<(), String> {
    let dir = dir_of(path);
    if !dir.is_dir() {
        return Err(format!("{}: the directory {} does not exist", path.display(), dir.display()));
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(m) if m.is_dir() => Err(format!("{}: is a directory", path.display())),
        Ok(_) if force => Ok(()),
        Ok(_) => Err(format!("{}: exists (--force replaces it)", path.display())),
    }
}

/// Writes `data` to a new temporary file (mode `mode`) next to `dest`, synced.
fn stage(dest: &Path, data: &[u8], mode: u32) -> Result<PathBuf, String> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir_of(dest).join(format!(".{name}.tmp-{}", spool::new_item_name()));
    let r = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    match r {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(format!("{}: {e}", tmp.display()))
        }
    }
}

/// Puts the staged file `tmp` at `dest`: replacing it with `force`, else only if it
/// does not exist (a hard link fails if it does), then syncs the directory.
fn commit(tmp: &Path, dest: &Path, force: bool) -> Result<(), String> {
    let r = if force {
        fs::rename(tmp, dest)
    } else {
        match fs::hard_link(tmp, dest) {
            Ok(()) => fs::remove_file(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(io::Error::new(e.kind(), "exists (--force replaces it)"))
            }
            // A file system without hard links: the check before writing has to do.
            Err(_) if !dest.exists() => fs::rename(tmp, dest),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = r {
        let _ = fs::remove_file(tmp);
        return Err(format!("{}: {e}", dest.display()));
    }
    let dir = dir_of(dest);
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Writes the files `(path, data, mode)` so that each is either complete or absent:
/// both targets are checked before either is written, and both are staged before
/// either is put in place.
fn write_key_files(files: &[(&Path, &[u8], u32)], force: bool) -> Result<(), String> {
    if let [(a, ..), (b, ..)] = files {
        let same = a == b
            || matches!((fs::canonicalize(dir_of(a)), fs::canonicalize(dir_of(b))),
            (Ok(x), Ok(y)) if x == y && a.file_name() == b.file_name());
        if same {
            return Err(format!("{}: given for both the secret and the public key", a.display()));
        }
    }
    for (path, ..) in files {
        check_target(path, force)?;
    }
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    for (path, data, mode) in files {
        match stage(path, data, *mode) {
            Ok(tmp) => staged.push((tmp, path)),
            Err(e) => {
                for (tmp, _) in &staged {
                    let _ = fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    let mut result = Ok(());
    for (tmp, path) in &staged {
        if result.is_ok() {
            result = commit(tmp, path, force);
        } else {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

fn keygen(name: &str, secret_file: Option<PathBuf>, public_file: Option<PathBuf>, force: bool) -> Result<i32, String> {
    let name = KeyName::parse(name).map_err(|e| e.to_string())?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
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
    write_key_files(&files, force)?;
    let mut out = std::io::stdout().lock();
    if secret_file.is_none() {
        out.write_all(secret.as_bytes()).map_err(|e| e.to_string())?;
    } else if public_file.is_none() {
        writeln!(out, "{public}").map_err(|e| e.to_string())?;
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
            attest::Delivery::Spooled { path, .. } => println!("spooled {} as {}", paths.join(" "), path.display()),
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
        let (n, mismatches) = spool.requeue_rejected().map_err(|e| format!("spool: {e}"))?;
        log::info(&format!("moved {n} rejected item(s) back into the spool"));
        if mismatches > 0 {
            log::warn(&format!(
                "{mismatches} rejected item(s) failed verification (the files did not match Nix's record): \
                 moved to {} and never sent",
                spool.mismatch_dir().display()
            ));
        }
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
    let t = send_items(&spool, &items, &client, &token);
    log::info(&format!(
        "delivered {} item(s) ({} attestation(s) stored, {} duplicate(s)), rejected {}, left {}{}",
        t.sent,
        t.stored,
        t.dups,
        t.rejected,
        t.left,
        if t.busy > 0 { format!(", {} taken by another flush", t.busy) } else { String::new() }
    ));
    Ok(if t.left == 0 { 0 } else { 1 })
}

/// What a flush did with the items.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    sent: u64,
    stored: u64,
    dups: u64,
    rejected: u64,
    /// Held by another flush.
    busy: u64,
    /// Still in the spool for the next run (not sent, or sent but not removed).
    left: u64,
}

/// Moves a claimed item to `rejected/` with `reason`, says why (`what`), and counts it
/// (as left if it cannot be moved).
fn reject(spool: &Spool, claimed: Claimed, reason: &serde_json::Value, item: &Path, what: &str, t: &mut Tally) {
    match spool.reject(claimed, reason) {
        Ok(dest) => {
            log::error(&format!("{}: {what}; moved to {}", item.display(), dest.display()));
            t.rejected += 1;
        }
        Err(e) => {
            log::error(&format!("{}: {what}, and spool: {e}", item.display()));
            t.left += 1;
        }
    }
}

/// Sends `items` in order. A problem with one item's file is reported and counts as
/// left; the others are still sent.
fn send_items(spool: &Spool, items: &[PathBuf], client: &Client, token: &Token) -> Tally {
    let mut t = Tally::default();
    let mut http_failures = 0;
    for (i, item) in items.iter().enumerate() {
        let claimed = match spool.claim(item) {
            Ok(Some(c)) => c,
            Ok(None) => {
                t.busy += 1;
                continue;
            }
            Err(e) => {
                log::error(&format!("spool: cannot take {e}; left in the spool"));
                t.left += 1;
                continue;
            }
        };
        if let Err(e) = serde_json::from_slice::<SubmitRequest>(&claimed.body) {
            let reason = serde_json::json!({"rejected_at": attest::now_rfc3339(), "invalid_item": e.to_string()});
            reject(spool, claimed, &reason, item, &format!("not a valid attestation request ({e})"), &mut t);
            continue;
        }
        match client.submit(token, &claimed.body) {
            Outcome::Delivered(r) => {
                t.sent += 1;
                t.stored += r.stored;
                t.dups += r.duplicates;
                http_failures = 0;
                if let Err(e) = spool.remove(claimed) {
                    log::error(&format!("delivered, but spool: {e}; the next flush sends it again (a duplicate)"));
                    t.left += 1;
                }
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
                reject(spool, claimed, &reason, item, &format!("REJECTED by the server ({msg})"), &mut t);
            }
            Outcome::Retry { reason, status, misconfigured } => {
                t.left += 1;
                http_failures += 1;
                // The server is unreachable or is not an nhc-server: the other items
                // would fail the same way. An HTTP error may concern one item only, so
                // go on a little.
                if misconfigured {
                    log::error(&format!("{reason}; leaving the spool for the next run"));
                } else if status.is_none() || http_failures >= 3 {
                    log::warn(&format!("{reason}; leaving the rest of the spool for the next run"));
                } else {
                    log::warn(&format!("{}: {reason}; kept for the next run", item.display()));
                    continue;
                }
                t.left += (items.len() - i - 1) as u64;
                break;
            }
        }
    }
    t
}

/// One line (or more, one per hash) of the status table.
struct Row {
    path: String,
    output: String,
    status: String,
    hashes: Vec<(String, Vec<String>)>,
}

fn status(cfg: &Config, args: &[String], json: bool) -> Result<i32, String> {
    status_in(cfg, &StoreLocation::from_env(), args, json)
}

/// A `no_builds` row for each output of `drv` (read from the local store) that is not
/// in `reported`: the server knows nothing of it, so the derivation is not reproduced.
fn unreported_outputs(loc: &StoreLocation, drv: &DrvPath, reported: &dyn Fn(&OutputName) -> bool) -> Option<Vec<Row>> {
    let d = Store::new(loc.clone()).read_derivation(drv).ok()?;
    Some(
        d.outputs
            .into_iter()
            .filter(|(name, _)| !reported(name))
            .map(|(name, path)| Row {
                path: path.map(|p| p.to_string()).unwrap_or_else(|| format!("{drv}^{name}")),
                output: name.to_string(),
                status: "no_builds".into(),
                hashes: vec![],
            })
            .collect(),
    )
}

fn status_in(cfg: &Config, loc: &StoreLocation, args: &[String], json: bool) -> Result<i32, String> {
    let client = attest::client(cfg)?;
    let mut rows = Vec::new();
    let mut json_out = serde_json::Map::new();
    let mut failed = false;
    for arg in args {
        let sp = match resolve(loc, arg) {
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
                    rows.extend(unreported_outputs(loc, &drv, &|n| r.outputs.contains_key(n)).unwrap_or_default());
                    json_out.insert(arg.clone(), serde_json::to_value(&r).unwrap_or_default());
                }
                Ok(None) => {
                    let outs = unreported_outputs(loc, &drv, &|_| false).filter(|o| !o.is_empty());
                    rows.extend(outs.unwrap_or_else(|| {
                        vec![Row {
                            path: drv.to_string(),
                            output: "-".into(),
                            status: "no_builds".into(),
                            hashes: vec![],
                        }]
                    }));
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
        assert!(e.contains("--force"), "{e}");
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
        assert!(e.contains("does not exist"), "{e}");
        assert_eq!(fs::read(&sec).unwrap(), before);
        assert!(keygen("k-1", Some(sec.clone()), Some(sec.clone()), true).is_err());
        // No temporary file is left behind.
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // New files: the secret 0600, the public key never writable by others.
        let (s2, p2) = (dir.path().join("n.sec"), dir.path().join("n.pub"));
        keygen("n-1", Some(s2.clone()), Some(p2.clone()), false).unwrap();
        assert_eq!(mode(&s2), 0o600);
        assert_eq!(mode(&p2) & 0o022, 0);
    }

    /// One unreadable item does not stop the others from being sent.
    #[test]
    fn an_item_that_cannot_be_read_is_left_and_the_rest_is_sent() {
        use crate::attest::tests::{facts, key};
        use crate::testutil::{json, serve};
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let body = |n: &str| serde_json::to_vec(&attest::request(&key(), None, vec![facts(n)])).unwrap();
        let a = spool.add(&body("a")).unwrap();
        let b = spool.add(&body("b")).unwrap();
        let c = spool.add(&body("c")).unwrap();
        let items = spool.items().unwrap();
        // Between the listing and the claim, `b` became something that cannot be read.
        fs::remove_file(&b).unwrap();
        fs::create_dir(&b).unwrap();
        let (base, h) =
            serve(vec![json(201, r#"{"stored":1,"duplicates":0}"#), json(200, r#"{"stored":0,"duplicates":1}"#)]);
        let client = Client::new(&base, std::time::Duration::from_secs(1), std::time::Duration::from_secs(2));
        let t = send_items(&spool, &items, &client, &Token::new("tok".into()));
        assert_eq!(t, Tally { sent: 2, stored: 1, dups: 1, rejected: 0, busy: 0, left: 1 });
        assert!(!a.exists() && !c.exists() && b.is_dir());
        assert_eq!(h.join().unwrap().len(), 2);
    }

    /// A flush stops at an answer that shows the URL is wrong, leaving every item.
    #[test]
    fn a_flush_keeps_everything_when_the_url_is_not_nhc_server() {
        use crate::attest::tests::{facts, key};
        use crate::testutil::{html, serve};
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for n in ["a", "b", "c"] {
            spool.add(&serde_json::to_vec(&attest::request(&key(), None, vec![facts(n)])).unwrap()).unwrap();
        }
        let items = spool.items().unwrap();
        let (base, h) = serve(vec![html(200, "<html>portal</html>")]);
        let client = Client::new(&base, std::time::Duration::from_secs(1), std::time::Duration::from_secs(2));
        let t = send_items(&spool, &items, &client, &Token::new("tok".into()));
        assert_eq!(t, Tally { left: 3, ..Tally::default() });
        assert_eq!(spool.items().unwrap(), items);
        assert!(spool.rejected_items().unwrap().is_empty());
        h.join().unwrap();
    }

    /// `nhc status DRV` lists every output of a derivation it can read, so an output no
    /// builder attested makes the exit status non-zero.
    #[test]
    fn status_of_a_drv_lists_unattested_outputs() {
        use crate::attest::tests::config;
        use crate::testutil::{json, serve};
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("nix/store");
        fs::create_dir_all(&store_dir).unwrap();
        let drv = "47zvzz4hqip4gfnfpvz1zrvi7bydmnqg-multi.drv";
        fs::write(
            store_dir.join(drv),
            r#"Derive([("dev","/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev","",""),("out","/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","","")],[],[],"x86_64-linux","/bin/sh",[],[])"#,
        )
        .unwrap();
        let report = format!(
            r#"{{"drv_path":"/nix/store/{drv}","outputs":{{"out":{{"output_path":"/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi","status":"reproduced","results":[{{"nar_hash":"sha256:10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6","builders":["alice","bob"]}}]}}}}}}"#
        );
        let (base, h) = serve(vec![json(200, &report), json(200, &report)]);
        let spool = root.path().join("spool");
        let cfg = config(&base, &spool);
        let loc = StoreLocation::from_uri(root.path().to_str().unwrap(), None);
        // The server knows `out` only: `dev` has no builds, so not everything reproduced.
        assert_eq!(status_in(&cfg, &loc, &[drv.to_owned()], false).unwrap(), 1);
        // Without the .drv locally, only the server's outputs are known.
        let elsewhere = StoreLocation::from_uri("/nonexistent", None);
        assert_eq!(status_in(&cfg, &elsewhere, &[drv.to_owned()], false).unwrap(), 0);
        h.join().unwrap();
        let rows =
            unreported_outputs(&loc, &DrvPath::parse(&format!("/nix/store/{drv}")).unwrap(), &|n| n.as_str() == "out")
                .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].output.as_str(), rows[0].status.as_str()), ("dev", "no_builds"));
        assert!(rows[0].path.ends_with("-multi-dev"));
    }
}
