//! Signing attestations and getting them to the server: send now, or spool.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nhc_core::api::{SubmitRequest, SubmitResponse, SubmittedOutput};
use nhc_core::fingerprint::References;
use nhc_core::{fingerprint, DrvPath, NarHash, OutputName, SecretKey, StorePath};

use crate::config::Config;
use crate::http::{Client, Outcome};
use crate::log;
use crate::spool::Spool;

/// What this builder claims about one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFacts {
    pub name: Option<OutputName>,
    pub path: StorePath,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    pub references: References,
}

/// Signs the fingerprint Nix signs for a path.
pub fn sign(key: &SecretKey, f: OutputFacts) -> SubmittedOutput {
    let fp = fingerprint(&f.path, &f.nar_hash, f.nar_size, &f.references);
    SubmittedOutput {
        output_name: f.name,
        output_path: f.path,
        nar_hash: f.nar_hash,
        nar_size: f.nar_size,
        references: f.references,
        signature: key.sign(&fp),
    }
}

pub fn request(key: &SecretKey, drv: Option<DrvPath>, outputs: Vec<OutputFacts>) -> SubmitRequest {
    SubmitRequest { drv_path: drv, outputs: outputs.into_iter().map(|f| sign(key, f)).collect() }
}

pub fn now_rfc3339() -> String {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    nhc_core::time::format_rfc3339(micros)
}

/// What became of a request.
#[derive(Debug)]
pub enum Delivery {
    Sent(SubmitResponse),
    /// In the spool, for `nhc flush`; the string says why it was not sent.
    Spooled(PathBuf, String),
    /// Refused by the server; kept in `rejected/`.
    Rejected(PathBuf, String),
    /// Neither sent nor spooled (the spool is not writable).
    Lost(String),
}

pub fn client(cfg: &Config) -> Result<Client, String> {
    Ok(Client::new(cfg.server()?, cfg.connect_timeout, cfg.timeout))
}

/// Sends `body` now (unless asynchronous), else spools it; never fails the caller.
pub fn deliver(cfg: &Config, body: &[u8], asynchronous: bool) -> Delivery {
    let why_not_now = if asynchronous {
        "asynchronous mode".to_owned()
    } else {
        match (client(cfg), cfg.token()) {
            (Ok(c), Ok(token)) => match c.submit(&token, body) {
                Outcome::Delivered(r) => return Delivery::Sent(r),
                Outcome::Retry { reason, .. } => reason,
                Outcome::Rejected { status, error, body: text } => {
                    let reason = serde_json::json!({
                        "rejected_at": now_rfc3339(),
                        "server": c.base(),
                        "http_status": status,
                        "error": error,
                        "response": if error.is_some() { serde_json::Value::Null } else { text.clone().into() },
                    });
                    let msg = match &error {
                        Some(e) => format!("HTTP {status} {}: {}", e.error, e.message),
                        None => format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
                    };
                    return match Spool::open(&cfg.spool).and_then(|s| s.add_rejected(body, &reason)) {
                        Ok(p) => Delivery::Rejected(p, msg),
                        Err(e) => Delivery::Lost(format!("{msg}; and it cannot be kept in the spool: {e}")),
                    };
                }
            },
            (Err(e), _) | (_, Err(e)) => format!("not configured to send ({e})"),
        }
    };
    match Spool::open(&cfg.spool).and_then(|s| s.add(body)) {
        Ok(p) => Delivery::Spooled(p, why_not_now),
        Err(e) => Delivery::Lost(format!("{why_not_now}; and the spool is not writable: {e}")),
    }
}

/// Logs what became of a request in the hook's voice; returns true when it is
/// delivered or safely spooled.
pub fn report(cfg: &Config, what: &str, body: &[u8], d: &Delivery) -> bool {
    match d {
        Delivery::Sent(r) => {
            if cfg.verbose {
                log::info(&format!("{what}: sent ({} stored, {} duplicates)", r.stored, r.duplicates));
            }
            true
        }
        Delivery::Spooled(p, why) => {
            if why == "asynchronous mode" {
                if cfg.verbose {
                    log::info(&format!("{what}: spooled as {} for `nhc flush`", p.display()));
                }
            } else {
                log::warn(&format!("{what}: not sent ({why}); spooled as {} for `nhc flush`", p.display()));
            }
            true
        }
        Delivery::Rejected(p, why) => {
            log::error(&format!(
                "{what}: THE SERVER REJECTED THE ATTESTATION: {why}. Kept in {} with the reason; \
                 fix the cause, then `nhc flush --retry-rejected`",
                p.display()
            ));
            false
        }
        Delivery::Lost(why) => {
            log::error(&format!(
                "{what}: the attestation is LOST: {why}. The signed request was:\n{}",
                String::from_utf8_lossy(body)
            ));
            false
        }
    }
}
