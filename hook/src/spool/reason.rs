//! What is kept beside a spool item: why it was set aside (`<name>.reason` in
//! `rejected/` and `mismatch/`), and how often sending it failed (`<name>.retry`).
//! One type for each, used both to write and to read the files.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nhc_core::api::ErrorBody;
use nhc_core::{NarHash, StorePath};
use serde::{Deserialize, Serialize};

use crate::durable::FsError;

/// Now, in seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Now, as RFC 3339 (UTC), for people reading the files.
pub fn now_rfc3339() -> String {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    nhc_core::time::format_rfc3339(micros)
}

/// Why an item is in `rejected/` or `mismatch/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reason {
    pub rejected_at: String,
    #[serde(flatten)]
    pub why: Why,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Why {
    /// The server refused the item: a 4xx that concerns it. `error` is the server's
    /// JSON error, `response` the body when it was not one.
    Refused { server: String, http_status: u16, error: Option<ErrorBody>, response: Option<String> },
    /// The file is not an attestation request: it cannot be sent as it is.
    InvalidItem { invalid_item: String },
    /// The output's files no longer matched Nix's record: never sent.
    VerifyMismatch { verify_mismatch: VerifyMismatch },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyMismatch {
    pub output_path: StorePath,
    pub recorded: Recorded,
    pub on_disk: Recorded,
}

/// A NAR hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub nar_hash: NarHash,
    pub nar_size: u64,
}

impl Reason {
    /// `why`, stamped with the current time.
    pub fn now(why: Why) -> Reason {
        Reason { rejected_at: now_rfc3339(), why }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// The reason in `path`; `None` when there is no such file.
    pub fn read(path: &Path) -> Result<Option<Reason>, FsError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::io(path)(e)),
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| FsError::io(path)(std::io::Error::other(e)))
    }
}

/// Sending an item failed with a server error this often in a row; it waits until
/// `retry_after` before it is tried again, so that an item the server keeps failing
/// on does not hold up the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    pub attempts: u32,
    pub last_failure_at: String,
    /// Seconds since the epoch.
    pub retry_after: u64,
    pub last_error: String,
}

/// The wait after the first failure; it doubles with each further one.
pub const FIRST_BACKOFF_SECS: u64 = 60;
/// The longest wait.
pub const MAX_BACKOFF_SECS: u64 = 6 * 3600;

impl Failures {
    /// The record after one more failure (`now` in seconds since the epoch).
    pub fn after(previous: Option<&Failures>, now: u64, error: String) -> Failures {
        let attempts = previous.map_or(0, |f| f.attempts).saturating_add(1);
        let wait = FIRST_BACKOFF_SECS.saturating_mul(1 << (attempts - 1).min(30)).min(MAX_BACKOFF_SECS);
        Failures { attempts, last_failure_at: now_rfc3339(), retry_after: now.saturating_add(wait), last_error: error }
    }

    /// Whether the item may be tried again at `now`.
    pub fn is_due(&self, now: u64) -> bool {
        now >= self.retry_after
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// The record in `path`, if it can be read.
    pub fn read(path: &Path) -> Option<Failures> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_a_bound() {
        let mut f = Failures::after(None, 1000, "HTTP 500".into());
        assert_eq!((f.attempts, f.retry_after), (1, 1060));
        assert!(!f.is_due(1059) && f.is_due(1060));
        f = Failures::after(Some(&f), 2000, "HTTP 500".into());
        assert_eq!((f.attempts, f.retry_after), (2, 2120));
        for _ in 0..40 {
            f = Failures::after(Some(&f), 0, "HTTP 500".into());
        }
        assert_eq!((f.attempts, f.retry_after), (42, MAX_BACKOFF_SECS));
    }
}
