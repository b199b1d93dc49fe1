//! Getting signed requests to the server: sent now, or spooled for `nhc flush`, or
//! kept in `rejected/` when the server refuses them; reported in the hook's voice.

use std::fmt;
use std::path::PathBuf;

use nhc_core::api::{SubmitCounts, SubmitRequest};
use nhc_core::{DrvPath, SecretKey, StorePath};

use super::{requests, Mismatch, OutputFacts};
use crate::api::{ApiError, Client, Outcome, Rejection};
use crate::config::{Config, ConfigError};
use crate::durable::FsError;
use crate::log;
use crate::spool::{Reason, Recorded, Spool, VerifyMismatch, Why};

/// Why a request was spooled rather than sent.
#[derive(Debug)]
pub enum NotSent {
    /// Asynchronous mode: the hook never touches the network.
    Asynchronous,
    /// No usable server or token.
    NotConfigured(ConfigError),
    /// The server could not be reached, or did not take the request now.
    Server(ApiError),
}

impl NotSent {
    /// A reason that will not go away by itself (a misconfiguration): reported as an
    /// error, not a warning.
    pub fn is_loud(&self) -> bool {
        match self {
            NotSent::Asynchronous => false,
            NotSent::NotConfigured(_) => true,
            NotSent::Server(e) => e.is_misconfiguration(),
        }
    }
}

impl fmt::Display for NotSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotSent::Asynchronous => f.write_str("asynchronous mode"),
            NotSent::NotConfigured(e) => write!(f, "not configured to send ({e})"),
            NotSent::Server(e) => write!(f, "{e}"),
        }
    }
}

/// What became of a request.
#[derive(Debug)]
pub enum Delivery {
    Sent(SubmitCounts),
    /// In the spool, for `nhc flush`.
    Spooled {
        path: PathBuf,
        why: NotSent,
    },
    /// Refused by the server; kept in `rejected/`.
    Rejected {
        path: PathBuf,
        rejection: Rejection,
    },
    /// Neither sent nor kept: the spool is not writable.
    LostNotSent {
        why: NotSent,
        error: FsError,
    },
    /// Refused, and not kept: the spool is not writable.
    LostRejected {
        rejection: Rejection,
        error: FsError,
    },
}

/// Sends `body` now (unless `asynchronous`), else spools it; never fails the caller.
pub fn deliver(cfg: &Config, body: &[u8], asynchronous: bool) -> Delivery {
    let why = if asynchronous {
        NotSent::Asynchronous
    } else {
        match Client::for_config(cfg).and_then(|c| Ok((c, cfg.token()?))) {
            Err(e) => NotSent::NotConfigured(e),
            Ok((client, token)) => match client.submit(&token, body) {
                Outcome::Delivered(r) => return Delivery::Sent(r),
                Outcome::Retry(e) => NotSent::Server(e),
                Outcome::Rejected(rejection) => {
                    let reason = Reason::now(Why::Refused {
                        server: client.base(),
                        http_status: rejection.status,
                        error: rejection.error.clone(),
                        response: rejection.error.is_none().then(|| rejection.body.clone()),
                    });
                    return match Spool::open(&cfg.spool).and_then(|s| s.add_rejected(body, &reason)) {
                        Ok(path) => Delivery::Rejected { path, rejection },
                        Err(error) => Delivery::LostRejected { rejection, error },
                    };
                }
            },
        }
    };
    match Spool::open(&cfg.spool).and_then(|s| s.add(body)) {
        Ok(path) => Delivery::Spooled { path, why },
        Err(error) => Delivery::LostNotSent { why, error },
    }
}

/// Logs what became of a request in the hook's voice; returns true when it is
/// delivered or safely spooled.
pub fn report(cfg: &Config, what: &str, body: &[u8], d: &Delivery) -> bool {
    let lost = |why: String| {
        log::error(&format!(
            "{what}: the attestation is LOST: {why}. The signed request was:\n{}",
            String::from_utf8_lossy(body)
        ));
        false
    };
    match d {
        Delivery::Sent(r) => {
            if cfg.verbose {
                log::info(&format!("{what}: sent ({} stored, {} duplicates)", r.stored, r.duplicates));
            }
            true
        }
        Delivery::Spooled { path, why: NotSent::Asynchronous } => {
            if cfg.verbose {
                log::info(&format!("{what}: spooled as {} for `nhc flush`", path.display()));
            }
            true
        }
        Delivery::Spooled { path, why } if why.is_loud() => {
            log::error(&format!(
                "{what}: NOT SENT: {why}. Spooled as {}; fix the configuration, then `nhc flush`",
                path.display()
            ));
            true
        }
        Delivery::Spooled { path, why } => {
            log::warn(&format!("{what}: not sent ({why}); spooled as {} for `nhc flush`", path.display()));
            true
        }
        Delivery::Rejected { path, rejection } => {
            log::error(&format!(
                "{what}: THE SERVER REJECTED THE ATTESTATION: {rejection}. Kept in {} with the reason; \
                 fix the cause, then `nhc flush --retry-rejected`",
                path.display()
            ));
            false
        }
        Delivery::LostNotSent { why, error } => lost(format!("{why}; and the spool is not writable: {error}")),
        Delivery::LostRejected { rejection, error } => {
            lost(format!("{rejection}; and it cannot be kept in the spool: {error}"))
        }
    }
}

/// One signed request and what became of it.
#[derive(Debug)]
pub struct Attested {
    pub paths: Vec<StorePath>,
    pub delivery: Delivery,
    /// Delivered or safely spooled.
    pub ok: bool,
}

/// What a request is about, for messages.
fn describe(drv: Option<&DrvPath>, req: &SubmitRequest) -> String {
    match (drv, &req.drv_path) {
        (Some(d), Some(_)) => d.as_store_path().basename().to_owned(),
        (Some(d), None) => format!(
            "{} (output(s) whose name is unknown, attested without the derivation)",
            d.as_store_path().basename()
        ),
        (None, _) => "paths without a known deriver".to_owned(),
    }
}

/// Signs the claims about `outputs` of `drv` and sends them now (unless
/// `asynchronous`) or spools them, reporting each request in the hook's voice.
/// Never fails: what became of each request is returned.
pub fn attest(
    cfg: &Config,
    key: &SecretKey,
    drv: Option<&DrvPath>,
    outputs: Vec<OutputFacts>,
    asynchronous: bool,
) -> Vec<Attested> {
    let mut out = Vec::new();
    for req in requests(key, drv, outputs) {
        let what = describe(drv, &req);
        let paths = req.outputs.iter().map(|o| o.output_path.clone()).collect();
        let body = match serde_json::to_vec(&req) {
            Ok(b) => b,
            Err(e) => {
                log::error(&format!("{what}: cannot serialise the request: {e}"));
                continue;
            }
        };
        let delivery = deliver(cfg, &body, asynchronous);
        let ok = report(cfg, &what, &body, &delivery);
        out.push(Attested { paths, delivery, ok });
    }
    out
}

/// Keeps the unsent attestations of mismatched outputs in `mismatch/` (never sent,
/// not even by `nhc flush --retry-rejected`) and says so loudly.
pub fn keep_mismatches(cfg: &Config, key: &SecretKey, drv: Option<&DrvPath>, mismatches: Vec<Mismatch>) {
    for m in mismatches {
        let Mismatch { facts, on_disk } = m;
        let msg = format!(
            "VERIFY FAILED for {}: Nix recorded {} ({} bytes) but the files now hash to {} ({} bytes). \
             The store path was modified after the build (or this is a bug in nhc); it is NOT attested",
            facts.path, facts.nar_hash, facts.nar_size, on_disk.nar_hash, on_disk.nar_size
        );
        let reason = Reason::now(Why::VerifyMismatch {
            verify_mismatch: VerifyMismatch {
                output_path: facts.path.clone(),
                recorded: Recorded { nar_hash: facts.nar_hash, nar_size: facts.nar_size },
                on_disk,
            },
        });
        let kept = requests(key, drv, vec![facts])
            .iter()
            .map(|req| -> Result<PathBuf, Box<dyn std::error::Error>> {
                let body = serde_json::to_vec(req)?;
                Ok(Spool::open(&cfg.spool).and_then(|s| s.add_mismatch(&body, &reason))?)
            })
            .collect::<Result<Vec<_>, _>>();
        match kept {
            Ok(paths) => log::error(&format!(
                "{msg}; the request Nix's values would give is kept in {} (for inspection only: it is never sent)",
                paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )),
            Err(e) => log::error(&format!("{msg} (and it cannot be kept in the spool: {e})")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attest::{facts, key};
    use crate::config;
    use crate::testutil::{closed_port, html, json, redirect, serve};
    use std::collections::BTreeMap;

    /// A configuration sending to `server` and spooling to `spool`.
    pub(crate) fn config(server: &str, spool: &std::path::Path) -> Config {
        let env: BTreeMap<String, String> = [
            (config::CONFIG.env, "/dev/null"),
            (config::SERVER.env, server),
            (config::TOKEN.env, "tok"),
            (config::SPOOL.env, spool.to_str().unwrap()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::load_from(&env, false).unwrap()
    }

    fn body() -> Vec<u8> {
        serde_json::to_vec(&requests(&key(), None, vec![facts("hello")])[0]).unwrap()
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
        let body = body();
        for want in ["not like nhc-server", "redirects to https://elsewhere.example/v1/attestations"] {
            match deliver(&cfg, &body, false) {
                Delivery::Spooled { path, why } => {
                    assert!(why.is_loud(), "{why}");
                    assert!(why.to_string().contains(want), "{why}");
                    assert_eq!(std::fs::read(&path).unwrap(), body);
                }
                d => panic!("{d:?}"),
            }
        }
        assert!(matches!(deliver(&cfg, &body, false), Delivery::Sent(SubmitCounts { stored: 1, duplicates: 0 })));
        assert_eq!(Spool::open(dir.path()).unwrap().items().unwrap().len(), 2);
        h.join().unwrap();
    }

    #[test]
    fn a_misconfigured_server_spools_loudly_and_asynchronous_mode_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("foo", dir.path());
        assert!(cfg.misconfiguration().is_some());
        match deliver(&cfg, b"{}", false) {
            Delivery::Spooled { why: why @ NotSent::NotConfigured(ConfigError::BadServer(_)), .. } => {
                assert!(why.is_loud() && why.to_string().contains("foo"), "{why}")
            }
            d => panic!("{d:?}"),
        }
        match deliver(&cfg, b"{}", true) {
            Delivery::Spooled { why: why @ NotSent::Asynchronous, .. } => assert!(!why.is_loud()),
            d => panic!("{d:?}"),
        }
        // A server that refuses connections: spooled, a warning only.
        let addr = closed_port();
        match deliver(&config(&format!("http://{addr}"), dir.path()), b"{}", false) {
            Delivery::Spooled { why: why @ NotSent::Server(ApiError::Unreachable { .. }), .. } => {
                assert!(!why.is_loud())
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(Spool::open(dir.path()).unwrap().items().unwrap().len(), 3);
    }

    /// A refusal is kept in rejected/ with a reason that reads back.
    #[test]
    fn a_refusal_is_kept_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (base, h) = serve(vec![json(403, r#"{"error":"unknown_key","message":"not yours"}"#)]);
        let cfg = config(&base, dir.path());
        let path = match deliver(&cfg, &body(), false) {
            Delivery::Rejected { path, rejection } => {
                assert_eq!(rejection.to_string(), "HTTP 403 unknown_key: not yours");
                path
            }
            d => panic!("{d:?}"),
        };
        match Reason::read(&path.with_extension("reason")).unwrap().unwrap().why {
            Why::Refused { http_status: 403, error: Some(e), response: None, .. } => assert_eq!(e.error, "unknown_key"),
            w => panic!("{w:?}"),
        }
        h.join().unwrap();
    }

    /// Verify mismatches go to their own folder, never to the queue or rejected/.
    #[test]
    fn verify_mismatches_go_to_their_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("http://127.0.0.1:9", dir.path());
        let on_disk = Recorded { nar_hash: nhc_core::NarHash::from_bytes([4; 32]), nar_size: 121 };
        keep_mismatches(&cfg, &key(), None, vec![Mismatch { facts: facts("hello"), on_disk }]);
        let s = Spool::open(dir.path()).unwrap();
        assert!(s.items().unwrap().is_empty());
        assert!(s.rejected_items().unwrap().is_empty());
        let kept = s.mismatch_items().unwrap();
        assert_eq!(kept.len(), 1);
        let reason = Reason::read(&kept[0].with_extension("reason")).unwrap().unwrap();
        assert!(matches!(
            reason.why,
            Why::VerifyMismatch { verify_mismatch: VerifyMismatch { on_disk: Recorded { nar_size: 121, .. }, .. } }
        ));
        assert_eq!(s.requeue_rejected().unwrap(), crate::spool::Requeued::default());
        assert!(s.items().unwrap().is_empty());
    }
}
