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

    /// True when an attestation this old was imported by a finished walk. RFC 3339
    /// in the server's one form (UTC, fixed digits) orders as text.
    fn already_done(&self, submitted_at: &str) -> bool {
        self.done_until.as_deref().is_some_and(|d| submitted_at < d)
    }
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
        let res = http::send(&client, |c| c.get(url.clone())).await.map_err(ImportError::Server)?;
        let status = res.status();
        let body = http::body_limited(res, 64 << 20).await.map_err(ImportError::Server)?.unwrap_or_default();
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
        assert!(s.already_done("2026-01-01T23:59:59.999999Z"));
        assert!(!s.already_done("2026-01-02T00:00:00.000000Z"));
        std::fs::write(&p, "not json").unwrap();
        assert!(State::load(&p).is_err());
    }
}
