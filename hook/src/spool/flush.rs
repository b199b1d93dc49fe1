//! Sending the spool: each item exactly once, oldest first; items the server keeps
//! failing on wait their turn beside the others instead of blocking them.

use std::path::PathBuf;
use std::time::Duration;

use nhc_core::api::SubmitRequest;

use super::{unix_now, Claimed, Failures, Reason, Spool, Why};
use crate::api::{ApiError, Client, Outcome};
use crate::config::Token;
use crate::log;

/// How many HTTP failures in a row stop a flush: the server is probably in trouble,
/// and the rest is left for the next run.
pub const MAX_FAILURES_IN_A_ROW: u32 = 3;

/// Longest wait for one 429 (`rate_limited`): a longer `Retry-After` is cut to this
/// (the server answers 429 again if it was too early).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Most time one flush waits on 429s in all; after that the rest of the spool is left
/// for the next run.
pub const RATE_LIMIT_BUDGET: Duration = Duration::from_secs(600);

/// How a flush keeps to the rate the server asks for: a 429 is waited out and the item
/// sent again, within [`RATE_LIMIT_BUDGET`]. A 429 is never counted as a failure.
struct Pacing {
    budget: Duration,
    waited: Duration,
    /// 429s in a row without a usable `Retry-After` (1 s, doubling, for those).
    unannounced: u32,
    told: bool,
}

impl Pacing {
    fn new(budget: Duration) -> Self {
        Pacing { budget, waited: Duration::ZERO, unannounced: 0, told: false }
    }

    /// How long to wait after a 429 that asked for `retry_after` seconds, or `None`
    /// when that would exceed the budget. At least 1 s, at most [`MAX_RATE_LIMIT_WAIT`].
    fn wait_for(&mut self, retry_after: Option<u64>) -> Option<Duration> {
        let asked = match retry_after {
            Some(secs) => {
                self.unannounced = 0;
                Duration::from_secs(secs.max(1))
            }
            None => {
                self.unannounced = self.unannounced.saturating_add(1);
                Duration::from_secs(1 << self.unannounced.min(7).saturating_sub(1))
            }
        };
        let wait = asked.min(MAX_RATE_LIMIT_WAIT);
        if self.waited + wait > self.budget {
            return None;
        }
        self.waited += wait;
        Some(wait)
    }
}

/// Sends `body` until the answer is not a 429, waiting between tries as the server
/// asks; a 429 is returned once the budget is spent.
fn submit_paced(client: &Client, token: &Token, body: &[u8], pacing: &mut Pacing) -> Outcome {
    loop {
        let outcome = client.submit(token, body);
        let wait = match &outcome {
            Outcome::Retry(e) if e.is_rate_limited() => pacing.wait_for(e.retry_after()),
            _ => {
                pacing.unannounced = 0;
                None
            }
        };
        let Some(wait) = wait else { return outcome };
        if !pacing.told {
            pacing.told = true;
            log::info(&format!(
                "the server limits this builder's rate (HTTP 429); waiting as it asks (now {} s, at most {} s in all)",
                wait.as_secs(),
                pacing.budget.as_secs()
            ));
        }
        std::thread::sleep(wait);
    }
}

/// What a flush did with the items.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub stored: u64,
    pub dups: u64,
    pub rejected: u64,
    /// Held by another flush.
    pub busy: u64,
    /// Not tried: they failed before and their wait is not over.
    pub waiting: u64,
    /// Still in the spool for the next run (not sent, or sent but not removed;
    /// the waiting items included).
    pub left: u64,
}

/// The order to send `items` in at `now` (seconds since the epoch): items that never
/// failed, oldest first, then those that failed and whose wait is over, fewest
/// failures first. Items still waiting are left out and counted in `waiting`.
pub fn plan(spool: &Spool, items: Vec<PathBuf>, now: u64) -> (Vec<PathBuf>, u64) {
    let failures = spool.failures().unwrap_or_default();
    let failed_before = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).and_then(|n| failures.get(n));
    let (mut fresh, mut retried, mut waiting) = (Vec::new(), Vec::new(), 0);
    for item in items {
        match failed_before(&item) {
            None => fresh.push(item),
            Some(f) if f.is_due(now) => retried.push((f.attempts, item)),
            Some(_) => waiting += 1,
        }
    }
    retried.sort();
    fresh.extend(retried.into_iter().map(|(_, p)| p));
    (fresh, waiting)
}

/// Moves a claimed item to `rejected/` with `reason`, says why (`what`), and counts it
/// (as left if it cannot be moved).
fn reject(spool: &Spool, claimed: Claimed, reason: &Reason, what: &str, t: &mut Tally) {
    let item = claimed.path.clone();
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

/// Records that the server failed on `claimed`, so that it waits before the next try.
fn record_failure(spool: &Spool, claimed: &Claimed, e: &ApiError, now: u64) {
    let f = Failures::after(spool.failures_of(claimed).as_ref(), now, e.to_string());
    let shown = claimed.path.display();
    match spool.record_failure(claimed, &f) {
        Ok(_) => log::warn(&format!(
            "{shown}: {e}; failed {} time(s) in a row, next try in {} s or later",
            f.attempts,
            f.retry_after.saturating_sub(now)
        )),
        Err(err) => log::warn(&format!("{shown}: {e}; kept for the next run (its failures cannot be recorded: {err})")),
    }
}

/// Sends `items` in order. A problem with one item's file is reported and counts as
/// left; the others are still sent. An item the server fails on (5xx) is recorded
/// as failed beside it and waits before it is tried again. A 429 is waited out (see
/// [`RATE_LIMIT_BUDGET`]).
pub fn send(spool: &Spool, items: &[PathBuf], client: &Client, token: &Token) -> Tally {
    send_within(spool, items, client, token, RATE_LIMIT_BUDGET)
}

/// [`send`], waiting at most `budget` on 429s in all.
fn send_within(spool: &Spool, items: &[PathBuf], client: &Client, token: &Token, budget: Duration) -> Tally {
    let mut pacing = Pacing::new(budget);
    let now = unix_now();
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
            let reason = Reason::now(Why::InvalidItem { invalid_item: e.to_string() });
            reject(spool, claimed, &reason, &format!("not a valid attestation request ({e})"), &mut t);
            continue;
        }
        match submit_paced(client, token, &claimed.body, &mut pacing) {
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
            Outcome::Rejected(rejection) => {
                let what = format!("REJECTED by the server ({rejection})");
                let reason = Reason::now(Why::Refused {
                    server: client.base(),
                    http_status: rejection.status,
                    response: rejection.error.is_none().then_some(rejection.body),
                    error: rejection.error,
                });
                reject(spool, claimed, &reason, &what, &mut t);
            }
            Outcome::Retry(e) => {
                t.left += 1;
                // The server is unreachable or is not an nhc-server: the other items
                // would fail the same way. An HTTP error may concern one item only, so
                // go on a little; a server error is held against the item.
                if e.is_misconfiguration() {
                    log::error(&format!("{e}; leaving the spool for the next run"));
                } else if e.is_rate_limited() {
                    // Not a failure: the server wants fewer requests than this run
                    // may wait for.
                    log::warn(&format!(
                        "{e}; waited {} s on the server's rate limit, leaving the rest of the spool for the next run",
                        pacing.waited.as_secs()
                    ));
                } else if e.status().is_none() {
                    log::warn(&format!("{e}; leaving the rest of the spool for the next run"));
                } else {
                    http_failures += 1;
                    if e.is_server_error() {
                        record_failure(spool, &claimed, &e, now);
                    } else {
                        log::warn(&format!("{}: {e}; kept for the next run", item.display()));
                    }
                    if http_failures < MAX_FAILURES_IN_A_ROW {
                        continue;
                    }
                    log::warn(&format!(
                        "{MAX_FAILURES_IN_A_ROW} HTTP failures in a row; leaving the rest of the spool for the next run"
                    ));
                }
                t.left += (items.len() - i - 1) as u64;
                break;
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::{facts, key, requests};
    use crate::testutil::{html, json, serve};
    use std::fs;
    use std::time::Duration;

    fn body(n: &str) -> Vec<u8> {
        serde_json::to_vec(&requests(&key(), None, vec![facts(n)])[0]).unwrap()
    }

    fn client(base: &str) -> Client {
        Client::new(base, Duration::from_secs(1), Duration::from_secs(2))
    }

    fn token() -> Token {
        Token::new("tok".into())
    }

    /// One unreadable item does not stop the others from being sent.
    #[test]
    fn an_item_that_cannot_be_read_is_left_and_the_rest_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = spool.add(&body("a")).unwrap();
        let b = spool.add(&body("b")).unwrap();
        let c = spool.add(&body("c")).unwrap();
        let items = spool.items().unwrap();
        // Between the listing and the claim, `b` became something that cannot be read.
        fs::remove_file(&b).unwrap();
        fs::create_dir(&b).unwrap();
        let (base, h) =
            serve(vec![json(201, r#"{"stored":1,"duplicates":0}"#), json(200, r#"{"stored":0,"duplicates":1}"#)]);
        let t = send(&spool, &items, &client(&base), &token());
        assert_eq!(t, Tally { sent: 2, stored: 1, dups: 1, left: 1, ..Tally::default() });
        assert!(!a.exists() && !c.exists() && b.is_dir());
        assert_eq!(h.join().unwrap().len(), 2);
    }

    /// A flush stops at an answer that shows the URL is wrong, leaving every item.
    #[test]
    fn a_flush_keeps_everything_when_the_url_is_not_nhc_server() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for n in ["a", "b", "c"] {
            spool.add(&body(n)).unwrap();
        }
        let items = spool.items().unwrap();
        let (base, h) = serve(vec![html(200, "<html>portal</html>")]);
        let t = send(&spool, &items, &client(&base), &token());
        assert_eq!(t, Tally { left: 3, ..Tally::default() });
        assert_eq!(spool.items().unwrap(), items);
        assert!(spool.rejected_items().unwrap().is_empty());
        assert!(spool.failures().unwrap().is_empty(), "not the items' fault");
        h.join().unwrap();
    }

    /// Three items the server always fails on (5xx) at the head of the spool used to
    /// stop every flush before the others: now they wait, and the others are sent.
    #[test]
    fn items_the_server_keeps_failing_on_do_not_block_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let poison: Vec<PathBuf> = ["p1", "p2", "p3"].iter().map(|n| spool.add(&body(n)).unwrap()).collect();
        let good: Vec<PathBuf> = ["g1", "g2"].iter().map(|n| spool.add(&body(n)).unwrap()).collect();
        let boom = || json(500, r#"{"error":"internal_error","message":"boom"}"#);
        let ok = || json(201, r#"{"stored":1,"duplicates":0}"#);
        let (base, h) = serve(vec![boom(), boom(), boom(), ok(), ok()]);
        let c = client(&base);

        // First run: three server errors in a row stop it, as before; each is recorded.
        let (order, waiting) = plan(&spool, spool.items().unwrap(), unix_now());
        assert_eq!((order.len(), waiting), (5, 0));
        let t = send(&spool, &order, &c, &token());
        assert_eq!(t, Tally { left: 5, ..Tally::default() });
        let failures = spool.failures().unwrap();
        assert_eq!(failures.len(), 3);
        assert!(failures.values().all(|f| f.attempts == 1 && f.last_error.contains("HTTP 500 internal_error")));

        // Second run: the failed items wait; the others go first and are delivered.
        let (order, waiting) = plan(&spool, spool.items().unwrap(), unix_now());
        assert_eq!((order, waiting), (good.clone(), 3));
        let t = send(&spool, &good, &c, &token());
        assert_eq!(t, Tally { sent: 2, stored: 2, ..Tally::default() });
        assert_eq!(spool.items().unwrap(), poison);
        assert_eq!(h.join().unwrap().len(), 5);

        // Once their wait is over they are tried again, after any fresh item.
        let fresh = spool.add(&body("fresh")).unwrap();
        let later = unix_now() + 3600;
        let (order, waiting) = plan(&spool, spool.items().unwrap(), later);
        assert_eq!(waiting, 0);
        assert_eq!(order[0], fresh);
        assert_eq!(&order[1..], &poison[..]);
    }

    /// Answers that are about the credentials (401) are not held against the item.
    #[test]
    fn only_server_errors_count_against_an_item() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        spool.add(&body("a")).unwrap();
        spool.add(&body("b")).unwrap();
        let unauthorized = || json(401, r#"{"error":"unauthorized","message":"who"}"#);
        let (base, h) = serve(vec![unauthorized(), unauthorized()]);
        let t = send(&spool, &spool.items().unwrap(), &client(&base), &token());
        assert_eq!(t, Tally { left: 2, ..Tally::default() });
        assert!(spool.failures().unwrap().is_empty());
        h.join().unwrap();
    }

    fn rate_limited(retry_after: Option<&str>) -> crate::testutil::Answer {
        let mut a = json(429, r#"{"error":"rate_limited","message":"slow down"}"#);
        if let Some(s) = retry_after {
            a.headers.push(("Retry-After", s.into()));
        }
        a
    }

    /// A 429 is waited out as `Retry-After` asks and the item sent again in the same
    /// run; 429s never count toward the failures that stop a flush.
    #[test]
    fn a_flush_waits_out_429s_and_delivers_in_the_same_run() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let items: Vec<PathBuf> = ["a", "b"].iter().map(|n| spool.add(&body(n)).unwrap()).collect();
        let ok = || json(201, r#"{"stored":1,"duplicates":0}"#);
        // More 429s in a row than the failures that stop a flush.
        let (base, h) = serve(vec![
            rate_limited(Some("1")),
            rate_limited(Some("0")),
            rate_limited(None),
            ok(),
            rate_limited(Some("1")),
            ok(),
        ]);
        let t = send(&spool, &items, &client(&base), &token());
        assert_eq!(t, Tally { sent: 2, stored: 2, ..Tally::default() });
        assert!(spool.items().unwrap().is_empty());
        assert!(spool.failures().unwrap().is_empty());
        let seen = h.join().unwrap();
        assert_eq!(seen.len(), 6);
        // The same item was sent again until it was stored.
        assert_eq!(seen[0], seen[3]);
        assert_ne!(seen[3], seen[5]);
    }

    /// Past its budget a flush leaves the rest for the next run, holding nothing
    /// against the items.
    #[test]
    fn a_flush_stops_waiting_when_its_budget_is_spent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for n in ["a", "b", "c"] {
            spool.add(&body(n)).unwrap();
        }
        let items = spool.items().unwrap();
        let (base, h) = serve(vec![rate_limited(Some("5"))]);
        let t = send_within(&spool, &items, &client(&base), &token(), Duration::from_secs(4));
        assert_eq!(t, Tally { left: 3, ..Tally::default() });
        assert_eq!(spool.items().unwrap(), items);
        assert!(spool.failures().unwrap().is_empty());
        assert_eq!(h.join().unwrap().len(), 1);
    }

    #[test]
    fn waits_are_bounded() {
        let mut p = Pacing::new(Duration::from_secs(130));
        assert_eq!(p.wait_for(Some(0)), Some(Duration::from_secs(1)));
        assert_eq!(p.wait_for(Some(3600)), Some(MAX_RATE_LIMIT_WAIT));
        // Without a Retry-After: 1 s, then doubling.
        assert_eq!(p.wait_for(None), Some(Duration::from_secs(1)));
        assert_eq!(p.wait_for(None), Some(Duration::from_secs(2)));
        assert_eq!(p.wait_for(None), Some(Duration::from_secs(4)));
        assert_eq!(p.waited, Duration::from_secs(68));
        assert_eq!(p.wait_for(Some(60)), Some(MAX_RATE_LIMIT_WAIT));
        // 128 s waited: 3 more would exceed the budget of 130.
        assert_eq!(p.wait_for(Some(3)), None);
        assert_eq!(p.wait_for(Some(2)), Some(Duration::from_secs(2)));
    }
}
