//! `nhc log verify URL`: the monitor's check of a whole transparency log.

use std::time::Instant;

use super::audit::{latest_checkpoint, log_key, server_of, Fatal};
use super::Exit;
use crate::config::{self, Config};
use crate::log;
use crate::tlog::fetch::LogHttp;
use crate::tlog::monitor::{self, Options};
use crate::tlog::record::Record;

/// The transparency log of a server, checked whole.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    Verify(VerifyArgs),
}

/// Download every entry bundle and hash tile of a server's log and check it all.
///
/// Verifies the latest checkpoint with the log key (--log-key, else the key pinned for
/// this server, else `GET /log/key`, pinned then with a warning), downloads every
/// entry bundle and hash tile up to it, recomputes the root and compares it with the
/// checkpoint, checks every hash tile, decodes every leaf, and checks every leaf's
/// builder signature over its fingerprint with the keys `GET /v1/builders` lists.
/// Memory stays constant however long the log is.
///
/// Exit status: 0 all fine; 1 a problem with the log: a changed, missing or extra
/// entry, a tile or root that disagrees, a bad checkpoint signature, a leaf whose
/// signature fails or whose key is not listed (counts and the first few are printed);
/// 2 a usage or network error.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct VerifyArgs {
    /// The server (its base URL, without `/log`).
    #[arg(value_name = "URL")]
    server: String,
    /// The log's verifier key `<origin>+<id>+<base64>`; replaces the pinned one.
    #[arg(long, value_name = "KEY", env = "HASH_COLLECTION_LOG_KEY")]
    log_key: Option<String>,
    /// Requests in flight (and threads decoding and checking bundles) at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Check the tree only, not the builders' signatures.
    #[arg(long)]
    no_signatures: bool,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let Cmd::Verify(a) = args.cmd;
    match verify(cfg, &a) {
        Ok(true) => Ok(0),
        Ok(false) => Ok(1),
        Err(Fatal(e)) => {
            log::error(&e);
            Ok(2)
        }
    }
}

/// Whether the log is fine.
fn verify(cfg: &Config, a: &VerifyArgs) -> Result<bool, Fatal> {
    let server = server_of(cfg, Some(&a.server))?;
    let record = Record::new(&cfg.spool, &server);
    let http = LogHttp::new(&server, cfg.connect_timeout, cfg.timeout);
    let key = log_key(&record, &http, a.log_key.as_deref())?;
    let (cp, _) = match latest_checkpoint(&http, &key)? {
        Ok(c) => c,
        Err(problem) => {
            println!("PROBLEM: {problem}");
            return Ok(false);
        }
    };
    let keys = if a.no_signatures { None } else { Some(http.builders()?) };
    let opts = Options { concurrency: usize::from(a.concurrency), keys: keys.as_ref() };
    let t0 = Instant::now();
    let mut last = Instant::now();
    let mut progress = |done: u64| {
        if last.elapsed().as_secs() >= 10 {
            last = Instant::now();
            log::info(&format!("{done} of {} entries checked", cp.size));
        }
    };
    let r = monitor::verify(&http, &cp, &opts, &mut progress)?;
    let secs = t0.elapsed().as_secs_f64();
    for p in &r.problems {
        println!("PROBLEM: {p}");
    }
    if r.more_problems > 0 {
        println!("PROBLEM: ... and {} more", r.more_problems);
    }
    for s in &r.sig_examples {
        println!("PROBLEM: entry {} (builder {}): {}", s.index, s.builder, s.what);
    }
    if r.bad_signatures > 0 {
        println!("PROBLEM: {} entries whose builder signature does not verify", r.bad_signatures);
    }
    if r.unknown_keys > 0 {
        println!(
            "PROBLEM: {} entries signed by a builder or key that {}/v1/builders does not list (a deleted builder?)",
            r.unknown_keys,
            http.base()
        );
    }
    println!(
        "{}: checkpoint of size {} (root {}): {} entries in {} bundles and {} higher hash tiles {}",
        http.base(),
        cp.size,
        nhc_tlog::hash_hex(&cp.root),
        r.entries,
        r.bundles,
        r.hash_tiles,
        if r.problems.is_empty() { "match it" } else { "checked before the first problem" }
    );
    if keys.is_some() {
        println!(
            "signatures: {} checked, {} bad, {} unknown keys, {} not checkable (references digested)",
            r.signatures_checked, r.bad_signatures, r.unknown_keys, r.unchecked
        );
    }
    log::info(&format!("{:.2} s, {:.0} entries/s", secs, r.entries as f64 / secs.max(1e-9)));
    Ok(!r.failed())
}
