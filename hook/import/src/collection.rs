//! `nhc import --collection URL --builder NAME`: another nhc-server's attestations by
//! NAME, newest first a page at a time, submitted here. A state file remembers the
//! cursor of an unfinished walk and how far back earlier walks went, so a timer
//! imports only what is new and an interrupted run resumes where it stopped.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nhc_core::api::{AttestationPage, SubmittedOutput};
use nhc_core::{fingerprint, PublicKey};
use serde::{Deserialize, Serialize};

use crate::{http, submit, warn, Counters, ImportError, Settings, Summary};

/// What is remembered between runs (JSON).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where an unfinished walk continues (the cursor of the next page).
    pub cursor: Option<String>,
    /// `submitted_at` of the newest attestation of the walk under way.
    pub walk_top: Option<String>,
    /// Everything from this `submitted_at` on was imported by a finished walk.
    pub done_until: Option<String>,
}

impl State {
    pub fn load(path: &Path) -> Result<State, ImportError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImportError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(ImportError::State(format!("{}: {e}", path.display()))),
        }
    }

    /// Written whole then renamed: a crash leaves the old or the new state.
    pub fn save(&self, path: &Path) -> Result<(), ImportError> {
        let err = |e: std::io::Error| ImportError::State(format!("{}: {e}", path.display()));
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(self).map_err(|e| ImportError::State(e.to_string()))?;
        std::fs::write(&tmp, body).map_err(err)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// True when an attestation this old was imported by a finished walk. A row is
    /// timestamped when its submission arrives but listed only once its transaction
    /// commits, so a row older than the newest one seen may appear later: the last
    /// [`REREAD_WINDOW_MICROS`] before `done_until` are read again (duplicates, cheap).
    /// Times the server's one form (UTC, fixed digits) does not parse compare as text.
    fn already_done(&self, submitted_at: &str) -> bool {
        let Some(done) = self.done_until.as_deref() else { return false };
        match (micros(submitted_at), micros(done)) {
            (Some(a), Some(d)) => a < d - REREAD_WINDOW_MICROS,
            _ => submitted_at < done,
        }
    }
}

/// How far before the newest attestation of the last finished walk the next walk
/// goes on reading (docs/api.md: "re-read a window of a few seconds").
pub const REREAD_WINDOW_MICROS: i64 = 60 * 1_000_000;

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (the server's form) as microseconds since the epoch.
fn micros(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = t.get(19..)?.strip_suffix('Z')?;
    let frac = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if (1..=6).contains(&f.len()) => num(20..20 + f.len())? * 10i64.pow(6 - f.len() as u32),
        _ => return None,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + frac)
}

pub async fn from_collection(
    s: &Settings,
    collection: &str,
    builder: &str,
    state_file: &Path,
) -> Result<Summary, ImportError> {
    let client = http::client(s.timeout)?;
    let (_, keys) = crate::me(&client, s).await?;
    let mut state = State::load(state_file)?;
    let counters = Arc::new(Counters::default());
    let base = collection.trim_end_matches('/');
    loop {
        let mut url = reqwest::Url::parse(&format!("{base}/v1/builders/"))
            .map_err(|e| ImportError::Usage(format!("{collection}: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| ImportError::Usage(format!("{collection}: not a base URL")))?
            .pop_if_empty()
            .extend([builder, "attestations"]);
        url.query_pairs_mut().append_pair("limit", "1000");
        if let Some(c) = &state.cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let res = http::send(&client, |c| c.get(url.clone())).await?;
        let status = res.status();
        let body = http::body_limited(res, 64 << 20).await?.unwrap_or_default();
        if !status.is_success() {
            return Err(ImportError::Server(format!("GET {url}: HTTP {status}: {}", String::from_utf8_lossy(&body))));
        }
        let page: AttestationPage =
            serde_json::from_slice(&body).map_err(|e| ImportError::Server(format!("GET {url}: {e}")))?;
        if state.cursor.is_none() {
            state.walk_top = page.attestations.first().map(|a| a.submitted_at.clone());
        }
        let mut reached_done = false;
        let mut sub = submit::Submitter::new(client.clone(), s, counters.clone());
        for a in page.attestations {
            counters.seen.fetch_add(1, Ordering::Relaxed);
            if state.already_done(&a.submitted_at) {
                reached_done = true;
                break;
            }
            let out = SubmittedOutput {
                output_name: a.output_name,
                output_path: a.output_path,
                nar_hash: a.nar_hash,
                nar_size: a.nar_size,
                references: a.references,
                signature: a.signature,
            };
            if !verifies(&out, &keys) {
                counters.unsigned.fetch_add(1, Ordering::Relaxed);
                warn(&format!("{}: not signed by this builder's keys", out.output_path));
                continue;
            }
            let drv = if out.output_name.is_some() { a.drv_path } else { None };
            sub.add(drv, out).await;
        }
        if !sub.finish().await {
            // The cursor stays where it was: the next run sends this page again.
            return Ok(counters.summary());
        }
        match page.next_cursor {
            Some(c) if !reached_done => state.cursor = Some(c),
            _ => {
                state.done_until = state.walk_top.take().or(state.done_until.take());
                state.cursor = None;
                state.save(state_file)?;
                return Ok(counters.summary());
            }
        }
        state.save(state_file)?;
    }
}

/// Only signatures by one of our keys can be accepted here.
fn verifies(out: &SubmittedOutput, keys: &[PublicKey]) -> bool {
    let fp = fingerprint(&out.output_path, &out.nar_hash, out.nar_size, &out.references);
    keys.iter().any(|k| k.name() == out.signature.key_name() && k.verifies(&fp, &out.signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_the_server_formats_them() {
        for m in [0, 1, 951_782_400_000_001, 1_795_616_418_500_000, 4_102_444_799_999_999] {
            assert_eq!(micros(&nhc_core::time::format_rfc3339(m)), Some(m));
        }
        assert_eq!(micros("2026-11-25T14:20:18Z"), Some(1_795_616_418_000_000));
        assert_eq!(micros("2026-11-25T14:20:18.5Z"), Some(1_795_616_418_500_000));
        for bad in [
            "",
            "2026-11-25",
            "2026-13-25T14:20:18Z",
            "2026-11-25T14:20:18",
            "2026-11-25T14:20:18.1234567Z",
            "2026-11-25T14:2x:18Z",
            "+026-11-25T14:20:18Z",
        ] {
            assert_eq!(micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn state_round_trips_and_orders_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert_eq!(State::load(&p).unwrap(), State::default());
        let s = State {
            cursor: Some("abc".into()),
            walk_top: None,
            done_until: Some("2026-01-02T00:00:00.000000Z".into()),
        };
        s.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        // The last minute before done_until is read again.
        assert!(s.already_done("2026-01-01T23:58:59.999999Z"));
        assert!(!s.already_done("2026-01-01T23:59:00.000000Z"));
        assert!(!s.already_done("2026-01-01T23:59:59.999999Z"));
        assert!(!s.already_done("2026-01-02T00:00:00.000000Z"));
        assert!(!State::default().already_done("1970-01-01T00:00:00.000000Z"));
        std::fs::write(&p, "not json").unwrap();
        assert!(State::load(&p).is_err());
    }
}
