//! A small blocking HTTP client with strict timeouts, and what each answer means for
//! an attestation: delivered, retry later (spool), or rejected.

use std::path::PathBuf;
use std::time::Duration;

use nhc_core::api::{ErrorBody, SubmitResponse};
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::config::{redact_url, Token};
use crate::log;

/// Largest response body read.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// The system's CA bundles, where OpenSSL, curl and Nix look for them; the first one
/// that holds certificates is trusted (after `$NIX_SSL_CERT_FILE` and `$SSL_CERT_FILE`).
pub const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, NixOS, Arch, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine, macOS, BSDs
    "/nix/var/nix/profiles/default/etc/ssl/certs/ca-bundle.crt", // Nix's multi-user installer
];

pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// The result of sending one attestation request.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx with nhc-server's answer, counting every output sent: stored (or duplicates).
    Delivered(SubmitResponse),
    /// Network trouble (`status` is `None`), 5xx, a 4xx that says nothing about the item
    /// (401 bad token, 404 wrong URL, 408, 429), a redirect, or a 2xx that is not
    /// nhc-server's answer: keep it, send it later. `misconfigured` marks answers that
    /// mean the URL points elsewhere than an nhc-server (report them as errors).
    Retry { reason: String, status: Option<u16>, misconfigured: bool },
    /// Any other 4xx: the server refused this item.
    Rejected { status: u16, error: Option<ErrorBody>, body: String },
}

/// 4xx answers that are about the server or the credentials, not the request.
fn is_retryable(status: u16) -> bool {
    matches!(status, 401 | 404 | 405 | 407 | 408 | 421 | 425 | 429) || !(400..500).contains(&status)
}

fn describe(status: u16, body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => format!("HTTP {status} {}: {}", e.error, e.message),
        Err(_) => {
            let b: String = body.chars().take(200).collect();
            format!("HTTP {status}: {}", b.trim())
        }
    }
}

/// The number of outputs in a request body (`None` if it is not a request).
fn outputs_in(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Outputs {
        outputs: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Outputs>(body).ok().map(|o| o.outputs.len())
}

/// Reads the certificates of a PEM bundle.
fn read_bundle(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The CA certificates to trust, as Nix finds them: `$NIX_SSL_CERT_FILE`, else
/// `$SSL_CERT_FILE`, else the first of `bundles` that holds certificates. `None`
/// means none was found: the Mozilla roots built into the binary are used then.
/// Problems with a file named in the environment are pushed to `notes`.
pub fn system_roots(
    env: &dyn Fn(&str) -> Option<String>,
    bundles: &[&str],
    notes: &mut Vec<String>,
) -> Option<(PathBuf, Vec<Certificate<'static>>)> {
    for var in ["NIX_SSL_CERT_FILE", "SSL_CERT_FILE"] {
        if let Some(f) = env(var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(f);
            match read_bundle(&path) {
                Ok(certs) => return Some((path, certs)),
                Err(e) => notes.push(format!("${var}: {e}; not used")),
            }
        }
    }
    bundles.iter().find_map(|b| read_bundle(std::path::Path::new(b)).ok().map(|c| (PathBuf::from(b), c)))
}

/// The roots for a client of `base`: the system's for `https://` (never read for
/// plain `http://`, which needs none).
fn roots_for(base: &str) -> RootCerts {
    if !base.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return RootCerts::WebPki;
    }
    let mut notes = Vec::new();
    let found = system_roots(&|v| std::env::var(v).ok(), CA_BUNDLES, &mut notes);
    for n in notes {
        log::warn(&n);
    }
    match found {
        Some((_, certs)) => RootCerts::from(certs),
        None => RootCerts::WebPki,
    }
}

impl Client {
    /// `base` is the server URL without `/v1`; a trailing `/` is ignored. For an
    /// `https://` URL the system's CA certificates are trusted (see [`system_roots`]).
    pub fn new(base: &str, connect_timeout: Duration, timeout: Duration) -> Client {
        Client::with_roots(base, connect_timeout, timeout, roots_for(base))
    }

    /// As [`Client::new`], trusting `roots` for TLS.
    pub fn with_roots(base: &str, connect_timeout: Duration, timeout: Duration, roots: RootCerts) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .user_agent(concat!("nhc/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent: config.into(), base: base.trim_end_matches('/').to_owned() }
    }

    /// The server URL, for messages: without any `user:password@`.
    pub fn base(&self) -> String {
        redact_url(&self.base)
    }

    /// `url` for messages: without any `user:password@`.
    fn shown(&self, url: &str) -> String {
        redact_url(url)
    }

    /// An error from ureq, for messages (it may quote the URL).
    fn err(&self, url: &str, e: impl std::fmt::Display) -> String {
        let text = e.to_string().replace(url, &self.shown(url)).replace(&self.base, &self.base());
        format!("{}: {text}", self.shown(url))
    }

    /// What a redirect means: the configured URL is not the server's.
    fn redirect(&self, url: &str, status: u16, resp: &ureq::http::Response<ureq::Body>) -> String {
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(redact_url);
        match location {
            Some(loc) => {
                // The redirect of `<base>/v1/...` to `<new base>/v1/...`: suggest `<new base>`.
                let tail = url.strip_prefix(&self.base).unwrap_or("");
                let hint = match loc.strip_suffix(tail) {
                    Some(b) if !tail.is_empty() && b.contains("://") => format!(" without {tail}: {b}"),
                    _ => String::new(),
                };
                format!(
                    "{}: HTTP {status}: the server redirects to {loc}; set HASH_COLLECTION_SERVER to that URL{hint}",
                    self.shown(url)
                )
            }
            None => format!(
                "{}: HTTP {status}: the server redirects (without a Location); check HASH_COLLECTION_SERVER",
                self.shown(url)
            ),
        }
    }

    /// `POST /v1/attestations` with a body that is already serialised (a spool item
    /// is sent byte for byte).
    pub fn submit(&self, token: &Token, body: &[u8]) -> Outcome {
        let url = format!("{}/v1/attestations", self.base);
        let resp = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", token.as_str()))
            .header("Content-Type", "application/json")
            .send(body);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Outcome::Retry { reason: self.err(&url, e), status: None, misconfigured: false },
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Outcome::Retry {
                reason: self.redirect(&url, status, &resp),
                status: Some(status),
                misconfigured: true,
            };
        }
        let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string();
        if (200..300).contains(&status) {
            // Only nhc-server's answer, accounting for every output sent, means the
            // item is stored: a proxy or captive portal may answer 200 to anything.
            let sent = outputs_in(body);
            let answer = text.as_deref().ok().and_then(|t| serde_json::from_str::<SubmitResponse>(t).ok());
            return match answer {
                Some(r) if sent.is_some_and(|n| r.stored.checked_add(r.duplicates) == Some(n as u64)) => {
                    Outcome::Delivered(r)
                }
                _ => {
                    let got = match (&answer, &text) {
                        (Some(r), _) => format!(
                            "{} stored + {} duplicates for {} output(s) sent",
                            r.stored,
                            r.duplicates,
                            sent.map_or("?".into(), |n| n.to_string())
                        ),
                        (None, Ok(t)) => format!("{:?}", t.chars().take(120).collect::<String>()),
                        (None, Err(e)) => format!("an unreadable body ({e})"),
                    };
                    Outcome::Retry {
                        reason: format!(
                            "{}: the server answered 2xx but not like nhc-server (HTTP {status}, {got}); \
                             is HASH_COLLECTION_SERVER the collection server? (a proxy or captive portal?)",
                            self.shown(&url)
                        ),
                        status: Some(status),
                        misconfigured: true,
                    }
                }
            };
        }
        let text = text.unwrap_or_default();
        if is_retryable(status) {
            return Outcome::Retry {
                reason: format!("{}: {}", self.shown(&url), describe(status, &text)),
                status: Some(status),
                misconfigured: false,
            };
        }
        Outcome::Rejected { status, error: serde_json::from_str(&text).ok(), body: text }
    }

    /// `GET path` as JSON; `Ok(None)` on 404.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, String> {
        let url = format!("{}{path}", self.base);
        let mut resp = self.agent.get(&url).call().map_err(|e| self.err(&url, e))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(self.redirect(&url, status, &resp));
        }
        let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| self.err(&url, e))?;
        match status {
            200..=299 => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: unexpected answer: {e}", self.shown(&url))),
            404 => Ok(None),
            _ => Err(format!("{}: {}", self.shown(&url), describe(status, &text))),
        }
    }

    /// `POST path` with a JSON body, returning JSON.
    pub fn post_json<B: serde::Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, String> {
        let url = format!("{}{path}", self.base);
        let data = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(&data[..])
            .map_err(|e| self.err(&url, e))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(self.redirect(&url, status, &resp));
        }
        let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| self.err(&url, e))?;
        if !(200..300).contains(&status) {
            return Err(format!("{}: {}", self.shown(&url), describe(status, &text)));
        }
        serde_json::from_str(&text).map_err(|e| format!("{}: unexpected answer: {e}", self.shown(&url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{html, json, redirect, serve};
    use std::net::TcpListener;
    use std::time::Instant;

    fn token() -> Token {
        Token::new("tok".into())
    }

    const ONE: &[u8] = br#"{"outputs":[{}]}"#;
    const TWO: &[u8] = br#"{"outputs":[{},{}]}"#;

    #[test]
    fn classifies_answers() {
        let (base, h) = serve(vec![
            json(201, r#"{"stored":1,"duplicates":0}"#),
            json(400, r#"{"error":"bad_signature","message":"no"}"#),
            json(401, r#"{"error":"unauthorized","message":"who"}"#),
            json(503, r#"{"error":"unavailable","message":"db"}"#),
            json(403, "not json"),
            json(200, r#"{"stored":1,"duplicates":1}"#),
        ]);
        let c = Client::new(&format!("{base}/"), Duration::from_secs(1), Duration::from_secs(2));
        let t = token();
        assert!(matches!(c.submit(&t, ONE), Outcome::Delivered(SubmitResponse { stored: 1, duplicates: 0 })));
        match c.submit(&t, ONE) {
            Outcome::Rejected { status: 400, error: Some(e), .. } => assert_eq!(e.error, "bad_signature"),
            o => panic!("{o:?}"),
        }
        assert!(matches!(c.submit(&t, ONE), Outcome::Retry { reason, status: Some(401), misconfigured: false }
            if reason.contains("unauthorized")));
        assert!(matches!(c.submit(&t, ONE), Outcome::Retry { status: Some(503), misconfigured: false, .. }));
        assert!(matches!(c.submit(&t, ONE), Outcome::Rejected { status: 403, error: None, .. }));
        assert!(matches!(c.submit(&t, TWO), Outcome::Delivered(SubmitResponse { stored: 1, duplicates: 1 })));
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("POST /v1/attestations HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].to_ascii_lowercase().contains("authorization: bearer tok\r\n"));
        assert!(seen[0].ends_with("\r\n\r\n{\"outputs\":[{}]}"));
    }

    /// A captive portal or a wrong URL may answer 200 to anything: only nhc-server's
    /// answer, counting every output sent, means the item can leave the spool.
    #[test]
    fn a_2xx_that_is_not_nhc_servers_answer_is_retried() {
        let (base, h) = serve(vec![
            html(200, "<html><body>Welcome to the hotel wifi</body></html>"),
            json(200, r#"{"ok":true}"#),
            json(201, r#"{"stored":1,"duplicates":0}"#),
            json(201, r#"{"stored":1,"duplicates":0}"#),
            json(204, ""),
        ]);
        let c = Client::new(&base, Duration::from_secs(1), Duration::from_secs(2));
        let t = token();
        for body in [ONE, ONE, TWO, b"not a request".as_slice(), ONE] {
            match c.submit(&t, body) {
                Outcome::Retry { reason, status: Some(s), misconfigured: true } => {
                    assert!((200..300).contains(&s));
                    assert!(reason.contains("answered 2xx but not like nhc-server"), "{reason}");
                }
                o => panic!("{o:?}"),
            }
        }
        h.join().unwrap();
    }

    /// With redirects off, a 3xx means the URL is not the server's: retry and say where.
    #[test]
    fn redirects_are_retried_and_name_the_location() {
        let (base, h) = serve(vec![
            redirect(301, "https://hc.example.org/v1/attestations"),
            redirect(302, "https://portal.example.net/login"),
            redirect(307, "https://hc.example.org/v1/derivations/x.drv"),
        ]);
        let c = Client::new(&base, Duration::from_secs(1), Duration::from_secs(2));
        match c.submit(&token(), ONE) {
            Outcome::Retry { reason, status: Some(301), misconfigured: true } => {
                assert!(reason.contains("redirects to https://hc.example.org/v1/attestations"), "{reason}");
                assert!(
                    reason.contains(
                        "set HASH_COLLECTION_SERVER to that URL without /v1/attestations: https://hc.example.org"
                    ),
                    "{reason}"
                );
            }
            o => panic!("{o:?}"),
        }
        match c.submit(&token(), ONE) {
            Outcome::Retry { reason, status: Some(302), misconfigured: true } => {
                assert!(
                    reason.ends_with(
                        "redirects to https://portal.example.net/login; set HASH_COLLECTION_SERVER to that URL"
                    ),
                    "{reason}"
                );
            }
            o => panic!("{o:?}"),
        }
        let e = c.get_json::<serde_json::Value>("/v1/derivations/x.drv").unwrap_err();
        assert!(e.contains("redirects to https://hc.example.org/v1/derivations/x.drv"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn messages_never_show_the_password_of_the_url() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = Client::new(&format!("http://alice:s3cret@{addr}/"), Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(c.base(), format!("http://{addr}"));
        match c.submit(&token(), ONE) {
            Outcome::Retry { reason, status: None, .. } => {
                assert!(!reason.contains("s3cret") && !reason.contains("alice"), "{reason}");
                assert!(reason.contains(&addr.to_string()), "{reason}");
            }
            o => panic!("{o:?}"),
        }
        let e = c.get_json::<serde_json::Value>("/v1/x").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn refused_and_silent_servers_are_retried_quickly() {
        // A port nobody listens on.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = Client::new(&format!("http://{addr}"), Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), ONE), Outcome::Retry { status: None, .. }));
        assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());

        // Accepts (kernel backlog) but never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Client::new(
            &format!("http://{}", l.local_addr().unwrap()),
            Duration::from_millis(300),
            Duration::from_millis(700),
        );
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), ONE), Outcome::Retry { status: None, .. }));
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(600) && took < Duration::from_millis(1500), "{took:?}");
        drop(l);
    }

    #[test]
    fn trust_roots_come_from_the_environment_then_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        // Any certificate will do for loading (this one is parsed, not verified here).
        std::fs::write(&ca, TEST_CERT).unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let (ca_s, empty_s) = (ca.to_str().unwrap().to_owned(), empty.to_str().unwrap().to_owned());
        let none: &[&str] = &[];

        let mut notes = Vec::new();
        let env = |v: &str| (v == "SSL_CERT_FILE").then(|| ca_s.clone());
        let (p, certs) = system_roots(&env, none, &mut notes).unwrap();
        assert_eq!((p, certs.len(), notes.len()), (ca.clone(), 1, 0));

        // NIX_SSL_CERT_FILE first (as Nix does); a bad one is reported and skipped.
        let env = |v: &str| match v {
            "NIX_SSL_CERT_FILE" => Some(empty_s.clone()),
            "SSL_CERT_FILE" => Some("/nonexistent/ca.pem".into()),
            _ => None,
        };
        let (p, _) = system_roots(&env, &["/nonexistent/bundle", &ca_s], &mut notes).unwrap();
        assert_eq!(p, ca);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("$NIX_SSL_CERT_FILE") && notes[1].contains("$SSL_CERT_FILE"), "{notes:?}");

        // Nothing found: the bundled roots.
        assert!(system_roots(&|_| None, &["/nonexistent/bundle", &empty_s], &mut Vec::new()).is_none());
        assert!(matches!(roots_for("http://x"), RootCerts::WebPki));
    }

    /// An https server whose certificate is issued by a private CA: trusted only when
    /// that CA is among the roots (as with $SSL_CERT_FILE or the system's bundle).
    /// Uses the `openssl` command; skipped without it.
    #[test]
    fn a_private_ca_is_trusted_through_the_system_roots() {
        use std::process::{Command, Stdio};
        if Command::new("openssl").arg("version").output().map(|o| !o.status.success()).unwrap_or(true) {
            eprintln!("openssl not found: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
        let run = |args: &[&str]| {
            let o = Command::new("openssl").args(args).output().unwrap();
            assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=nhc test CA",
            "-keyout",
            &d("ca.key"),
            "-out",
            &d("ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &d("srv.key"),
            "-out",
            &d("srv.csr"),
        ]);
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &d("srv.csr"),
            "-CA",
            &d("ca.pem"),
            "-CAkey",
            &d("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &d("ext"),
            "-out",
            &d("srv.pem"),
        ]);
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut server = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
                &d("srv.pem"),
                "-key",
                &d("srv.key"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let base = format!("https://127.0.0.1:{port}");
        let t = Duration::from_secs(5);
        // The bundled roots do not know the private CA.
        let e = Client::with_roots(&base, t, t, RootCerts::WebPki).get_json::<serde_json::Value>("/").unwrap_err();
        assert!(e.to_lowercase().contains("issuer") || e.to_lowercase().contains("certificate"), "{e}");
        // Through $SSL_CERT_FILE: the handshake succeeds (s_server then answers HTML).
        let ca = d("ca.pem");
        let (_, certs) = system_roots(&|v| (v == "SSL_CERT_FILE").then(|| ca.clone()), &[], &mut Vec::new()).unwrap();
        let e = Client::with_roots(&base, t, t, RootCerts::from(certs)).get_json::<serde_json::Value>("/").unwrap_err();
        assert!(e.contains("unexpected answer"), "{e}");
        let _ = server.kill();
        let _ = server.wait();
    }

    /// A self-signed certificate (only parsed by the tests).
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIURdAktPBIFo/thLoX5dR4QWUpd3gwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIbmhjIHRlc3QwIBcNMjYxMTI1MTgxOTM1WhgPMjEyNjExMDEx
ODE5MzVaMBMxETAPBgNVBAMMCG5oYyB0ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE9gim5rEGkEKkUiPoRzv6eNXfUwLNEpzurKWEGppgmBof1IBsa7duS127
nrjWEmkJ0sXQuBqSPrk+WNYP0P4NkKNTMFEwHQYDVR0OBBYEFKvxBmDtAsFQQ76C
9yCPSr1QSBKXMB8GA1UdIwQYMBaAFKvxBmDtAsFQQ76C9yCPSr1QSBKXMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhALOZiLd1u1MM53SmC5p02B9I
iUOuS3ICDhmOliphjY/fAiBtbqQDRldikAcMabqFO3Ge/OrEAWnhqt9OvMe8/zoq
vQ==
-----END CERTIFICATE-----
";
}
