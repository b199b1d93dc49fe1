//! `nhc flush`: send the spool.

use super::{CommandError, Exit};
use crate::api::Client;
use crate::config::{self, Config};
use crate::log;
use crate::spool::flush::{plan, send};
use crate::spool::{unix_now, Spool};

/// Send the spooled attestations, each exactly once.
///
/// Delivered items and duplicates leave the spool; items the server refuses (4xx) move
/// to <spool>/rejected/ with the reason; on network trouble, a redirect, or a 2xx that
/// is not nhc-server's answer the rest stays for the next run. An item the server
/// answers with a 5xx waits before it is tried again (1 minute, doubling with each
/// failure, at most 6 hours; recorded in <spool>/<item>.retry), and the others go
/// first. A 429 (the server's rate limit) is waited out as its Retry-After asks (at
/// most 60 s a wait, 10 minutes a run) and the item sent again; it never counts as a
/// failure. An item that cannot be read is reported and left; the others are still
/// sent. Safe to run concurrently and to kill. Exit status 0 when nothing is left to
/// send, 1 otherwise.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// First move the items in rejected/ back into the spool (after fixing the cause).
    /// Requests for outputs that failed verification (<spool>/mismatch/, or rejected/
    /// items whose reason is `verify_mismatch`) are never requeued nor sent: the files
    /// did not match what Nix recorded.
    #[arg(long)]
    retry_rejected: bool,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let spool = Spool::open(&cfg.spool).map_err(CommandError::Spool)?;
    if args.retry_rejected {
        let done = spool.requeue_rejected().map_err(CommandError::Spool)?;
        log::info(&format!("moved {} rejected item(s) back into the spool", done.requeued));
        if done.mismatches > 0 {
            log::warn(&format!(
                "{} rejected item(s) failed verification (the files did not match Nix's record): \
                 moved to {} and never sent",
                done.mismatches,
                spool.mismatch_dir().display()
            ));
        }
    }
    spool.clean_stale(24 * 3600);
    // Diff reports the diff-hook left unsigned (HASH_COLLECTION_DIFF_SPOOL).
    let mut diffs_left = 0;
    if let Some(dir) = config::diff_spool() {
        let (sent, left) = super::check::flush_reports(cfg, &dir)?;
        if sent + left > 0 {
            log::info(&format!("diff reports: uploaded {sent}, left {left}"));
        }
        diffs_left = left;
    }
    let items = spool.items().map_err(CommandError::Spool)?;
    if items.is_empty() {
        if diffs_left > 0 {
            return Ok(1);
        }
        if cfg.verbose {
            log::info(&format!("the spool {} is empty", spool.dir().display()));
        }
        return Ok(0);
    }
    let client = Client::for_config(cfg)?;
    let token = cfg.token()?;
    let (order, waiting) = plan(&spool, items, unix_now());
    let mut t = send(&spool, &order, &client, &token);
    t.waiting = waiting;
    t.left += waiting;
    log::info(&format!(
        "delivered {} item(s) ({} attestation(s) stored, {} duplicate(s)), rejected {}, left {}{}{}",
        t.sent,
        t.stored,
        t.dups,
        t.rejected,
        t.left,
        if t.busy > 0 { format!(", {} taken by another flush", t.busy) } else { String::new() },
        if t.waiting > 0 {
            format!(", {} waiting to be retried after server errors (see their .retry files)", t.waiting)
        } else {
            String::new()
        }
    ));
    Ok(if t.left == 0 && diffs_left == 0 { 0 } else { 1 })
}
