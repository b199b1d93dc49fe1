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
    /// In the spool, for `nhc flush`; `why` says why it was not sent, and `loud`
    /// marks a reason that will not go away by itself (a misconfiguration).
    Spooled {
        path: PathBuf,
        why: String,
        loud: bool,
    },
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
    let (why_not_now, loud) = if asynchronous {
        ("asynchronous mode".to_owned(), false)
    } else {
        match (client(cfg), cfg.token()) {
            (Ok(c), Ok(token)) => match c.submit(&token, body) {
                Outcome::Delivered(r) => return Delivery::Sent(r),
                Outcome::Retry { reason, misconfigured, .. } => (reason, misconfigured),
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
            (Err(e), _) | (_, Err(e)) => (format!("not configured to send ({e})"), true),
        }
    };
    match Spool::open(&cfg.spool).and_then(|s| s.add(body)) {
        Ok(path) => Delivery::Spooled { path, why: why_not_now, loud },
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
        Delivery::Spooled { path, why, loud } => {
            if why == "asynchronous mode" {
                if cfg.verbose {
                    log::info(&format!("{what}: spooled as {} for `nhc flush`", path.display()));
                }
            } else if *loud {
                log::error(&format!(
                    "{what}: NOT SENT: {why}. Spooled as {}; fix the configuration, then `nhc flush`",
                    path.display()
                ));
            } else {
                log::warn(&format!("{what}: not sent ({why}); spooled as {} for `nhc flush`", path.display()));
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{html, json, redirect, serve};
    use std::collections::BTreeMap;

    pub(crate) fn key() -> SecretKey {
        SecretKey::from_seed(nhc_core::KeyName::parse("test-1").unwrap(), [7; 32])
    }

    pub(crate) fn facts(name: &str) -> OutputFacts {
        OutputFacts {
            name: Some(OutputName::parse("out").unwrap()),
            path: StorePath::parse(&format!("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-{name}")).unwrap(),
            nar_hash: NarHash::from_bytes([3; 32]),
            nar_size: 120,
            references: References::new(vec![]).unwrap(),
        }
    }

    /// A configuration sending to `server` and spooling to `spool`.
    pub(crate) fn config(server: &str, spool: &std::path::Path) -> Config {
        let env: BTreeMap<String, String> = [
            (crate::config::ENV_CONFIG, "/dev/null"),
            (crate::config::ENV_SERVER, server),
            (crate::config::ENV_TOKEN, "tok"),
            (crate::config::ENV_SPOOL, spool.to_str().unwrap()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::load_from(&env, false).unwrap()
    }

    /// A wrong URL answering 200 (a captive portal) or redirecting must not make the
    /// item leave: it is spooled, and the reason is loud.
    #[test]
    fn answers_not_from_nhc_server_spool_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let (base, h) = serve(vec![
            html(200, "<html>Log in to the wifi</html>"),
            redirect(308, "https://elsewhere.example/v1/attestations"),
            json(201, r#"{"stored":1,"duplicates":0}"#),
        ]);
        let cfg = config(&base, dir.path());
        let body = serde_json::to_vec(&request(&key(), None, vec![facts("hello")])).unwrap();
        for want in ["not like nhc-server", "redirects to https://elsewhere.example/v1/attestations"] {
            match deliver(&cfg, &body, false) {
                Delivery::Spooled { path, why, loud: true } => {
                    assert!(why.contains(want), "{why}");
                    assert_eq!(std::fs::read(&path).unwrap(), body);
                }
                d => panic!("{d:?}"),
            }
        }
        assert!(matches!(deliver(&cfg, &body, false), Delivery::Sent(SubmitResponse { stored: 1, duplicates: 0 })));
        assert_eq!(Spool::open(dir.path()).unwrap().items().unwrap().len(), 2);
        h.join().unwrap();
    }

    #[test]
    fn a_misconfigured_server_spools() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("foo", dir.path());
        assert_eq!(cfg.errors.len(), 1);
        match deliver(&cfg, b"{}", false) {
            Delivery::Spooled { why, loud: true, .. } => assert!(why.contains("foo"), "{why}"),
            d => panic!("{d:?}"),
        }
    }
}
