//! A typed, blocking client of the collection server's API (ureq, strict timeouts):
//! submit (and what each answer means for an attestation: delivered, retry later,
//! or rejected), and the status, output and derivation reports.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::api::{DerivationReport, ErrorBody, OutputReport, StatusRequest, StatusResponse, SubmitCounts};
use nhc_core::jobset::{EvaluationDiff, EvaluationPage, JobsetDetail, PutEvaluationResponse};
use nhc_core::{DrvPath, JobsetName, ReproStatus, Rev, StorePath};
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::config::{self, redact_url, Config, ConfigError, Token};
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
    /// Where acknowledged log entries are recorded (`nhc audit` reads them).
    record: Option<crate::tlog::record::Record>,
}

/// Why a request got no usable answer. Every URL in it is shown without any
/// `user:password@`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No answer: connection refused, DNS or TLS failure, timeout.
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    /// A redirect: the configured URL is not the server's.
    #[error("{url}: HTTP {status}: {}", redirect_advice(.location, .hint))]
    Redirect { url: String, status: u16, location: Option<String>, hint: Option<String> },
    /// A 2xx that is not nhc-server's answer (a proxy, a captive portal).
    #[error(
        "{url}: the server answered 2xx but not like nhc-server (HTTP {status}, {got}); is {} the collection \
         server? (a proxy or captive portal?)",
        config::SERVER.env
    )]
    NotNhcServer { url: String, status: u16, got: String },
    /// Any other answer that is not a success.
    #[error("{url}: {}", describe(*.status, .error, .body))]
    Status {
        url: String,
        status: u16,
        error: Option<ErrorBody>,
        body: String,
        /// The answer's `Retry-After` in seconds, when it had one in that form.
        retry_after: Option<u64>,
    },
    /// A 2xx whose body is not what the API promises.
    #[error("{url}: unexpected answer: {message}")]
    Unexpected { url: String, message: String },
}

fn redirect_advice(location: &Option<String>, hint: &Option<String>) -> String {
    match location {
        Some(loc) => format!(
            "the server redirects to {loc}; set {} to that URL{}",
            config::SERVER.env,
            hint.as_ref().map(|b| format!(" {b}")).unwrap_or_default()
        ),
        None => format!("the server redirects (without a Location); check {}", config::SERVER.env),
    }
}

/// `HTTP <status> <error>: <message>`, or the start of a body that is not an error.
fn describe(status: u16, error: &Option<ErrorBody>, body: &str) -> String {
    match error {
        Some(e) => format!("HTTP {status} {}: {}", e.error, e.message),
        None => {
            let b: String = body.chars().take(200).collect();
            format!("HTTP {status}: {}", b.trim())
        }
    }
}

impl ApiError {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unreachable { .. } => None,
            ApiError::Redirect { status, .. }
            | ApiError::NotNhcServer { status, .. }
            | ApiError::Status { status, .. } => Some(*status),
            ApiError::Unexpected { .. } => Some(200),
        }
    }

    /// The URL leads somewhere that is not an nhc-server: a mistake in the
    /// configuration, to be reported loudly; no other request will fare better.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, ApiError::Redirect { .. } | ApiError::NotNhcServer { .. })
    }

    /// The server asks to slow down (429): about the rate, not the item.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, ApiError::Status { status: 429, .. })
    }

    /// The `Retry-After` of the answer, in seconds (only its delta-seconds form).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A server error (5xx), which may be caused by the request itself (a bug the
    /// item triggers): sending it again at once may fail the same way.
    pub fn is_server_error(&self) -> bool {
        matches!(self, ApiError::Status { status: 500..=599, .. })
    }
}

/// An item the server refused (a 4xx about the item itself).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    /// The server's JSON error, if the body was one.
    pub error: Option<ErrorBody>,
    pub body: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self.status, &self.error, &self.body))
    }
}

/// The result of sending one attestation request.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx with nhc-server's answer, counting every output sent: stored (or duplicates).
    Delivered(SubmitCounts),
    /// Network trouble, 5xx, a 4xx that says nothing about the item (401 bad token,
    /// 404 wrong URL, 408, 429), a redirect, or a 2xx that is not nhc-server's answer:
    /// keep it, send it later.
    Retry(ApiError),
    /// Any other 4xx: the server refused this item.
    Rejected(Rejection),
}

/// 4xx answers that are about the server or the credentials, not the request.
fn is_retryable(status: u16) -> bool {
    matches!(status, 401 | 404 | 405 | 407 | 408 | 421 | 425 | 429) || !(400..500).contains(&status)
}

/// `Retry-After: <seconds>` of an answer (the HTTP-date form is not used by
/// nhc-server and is ignored).
fn retry_after_of(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    resp.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()
}

/// The number of outputs in a request body (`None` if it is not a request).
fn outputs_in(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Outputs {
        outputs: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Outputs>(body).ok().map(|o| o.outputs.len())
}

/// A CA bundle that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no PEM certificate in it", .0.display())]
    NoCertificate(PathBuf),
}

/// Reads the certificates of a PEM bundle.
fn read_bundle(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, BundleError> {
    let pem = std::fs::read(path).map_err(|source| BundleError::Read { path: path.to_path_buf(), source })?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(BundleError::NoCertificate(path.to_path_buf()));
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
pub(crate) fn roots_for(base: &str) -> RootCerts {
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

    /// A client of the configured server, with the configured timeouts.
    /// Log entries the server acknowledges are recorded under the spool.
    pub fn for_config(cfg: &Config) -> Result<Client, ConfigError> {
        let server = cfg.server()?;
        let mut c = Client::new(server, cfg.connect_timeout, cfg.timeout);
        c.record = Some(crate::tlog::record::Record::new(&cfg.spool, server));
        Ok(c)
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
        Client { agent: config.into(), base: base.trim_end_matches('/').to_owned(), record: None }
    }

    /// The server URL, for messages: without any `user:password@`.
    pub fn base(&self) -> String {
        redact_url(&self.base)
    }

    /// No answer from `url`: ureq's error, which may quote the URL.
    fn unreachable(&self, url: &str, e: impl fmt::Display) -> ApiError {
        let message = e.to_string().replace(url, &redact_url(url)).replace(&self.base, &self.base());
        ApiError::Unreachable { url: redact_url(url), message }
    }

    /// What a redirect means: the configured URL is not the server's.
    fn redirect(&self, url: &str, status: u16, resp: &ureq::http::Response<ureq::Body>) -> ApiError {
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(redact_url);
        // The redirect of `<base>/v1/...` to `<new base>/v1/...`: suggest `<new base>`.
        let tail = url.strip_prefix(&self.base).unwrap_or("");
        let hint = location.as_deref().and_then(|loc| match loc.strip_suffix(tail) {
            Some(b) if !tail.is_empty() && b.contains("://") => Some(format!("without {tail}: {b}")),
            _ => None,
        });
        ApiError::Redirect { url: redact_url(url), status, location, hint }
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
            Err(e) => return Outcome::Retry(self.unreachable(&url, e)),
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Outcome::Retry(self.redirect(&url, status, &resp));
        }
        let retry_after = retry_after_of(&resp);
        let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string();
        if (200..300).contains(&status) {
            // Only nhc-server's answer, accounting for every output sent, means the
            // item is stored: a proxy or captive portal may answer 200 to anything.
            let sent = outputs_in(body);
            // The counts decide; the log receipts are read apart (`record_log`), so that
            // an unreadable `log` still counts as delivered.
            let answer = text.as_deref().ok().and_then(|t| serde_json::from_str::<SubmitCounts>(t).ok());
            return match answer {
                Some(r) if sent.is_some_and(|n| r.stored.checked_add(r.duplicates) == Some(n as u64)) => {
                    self.record_log(text.as_deref().unwrap_or(""));
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
                    Outcome::Retry(ApiError::NotNhcServer { url: redact_url(&url), status, got })
                }
            };
        }
        let body = text.unwrap_or_default();
        let error = serde_json::from_str(&body).ok();
        if is_retryable(status) {
            return Outcome::Retry(ApiError::Status { url: redact_url(&url), status, error, body, retry_after });
        }
        Outcome::Rejected(Rejection { status, error, body })
    }

    /// The same recording for `nhc import`'s own client (it submits with reqwest).
    pub fn recorder(&self) -> impl Fn(&[u8]) + Send + Sync + 'static {
        let me = Client { agent: self.agent.clone(), base: self.base.clone(), record: self.record.clone() };
        move |answer: &[u8]| me.record_log(&String::from_utf8_lossy(answer))
    }

    /// Records the log entries of a submission's answer. The delivery stands whatever
    /// happens here: a failure is a warning (`nhc audit` then has less to check).
    fn record_log(&self, answer: &str) {
        let Some(record) = &self.record else { return };
        let entries = match crate::tlog::acks_of(answer) {
            Ok(e) => e,
            Err(e) => {
                log::warn(&format!("{}: the answer's log entries are unreadable ({e}); not recorded", self.base()));
                return;
            }
        };
        if let Err(e) = record.append(&entries) {
            log::warn(&format!("recording {} log entries: {e}", entries.len()));
        }
    }

    #[cfg(test)]
    pub fn with_record(mut self, record: crate::tlog::record::Record) -> Client {
        self.record = Some(record);
        self
    }

    /// `GET /v1/outputs/{basename}`; `None` when the server knows nothing of it.
    pub fn output(&self, path: &StorePath) -> Result<Option<OutputReport>, ApiError> {
        self.get_json(&format!("/v1/outputs/{}", path.basename()))
    }

    /// `GET /v1/derivations/{basename}`; `None` when the server knows nothing of it.
    pub fn derivation(&self, drv: &DrvPath) -> Result<Option<DerivationReport>, ApiError> {
        self.get_json(&format!("/v1/derivations/{}", drv.as_store_path().basename()))
    }

    /// `POST /v1/status`: the status of each path (at most
    /// [`nhc_core::api::MAX_STATUS_PATHS`] per call).
    #[allow(dead_code)] // for the commands to come (jobset diff, audit)
    pub fn status(&self, paths: &[StorePath]) -> Result<StatusResponse, ApiError> {
        self.post_json("/v1/status", &StatusRequest { paths: paths.to_vec() })
    }

    /// `PUT /v1/jobsets/{name}/evaluations/{rev}` with an upload body of type
    /// `content_type`, as the given (jobset or admin) token. `progress(sent, total)` is
    /// called as the body goes out. Returns whether the evaluation is new (201) or
    /// replaced one (200), and the server's answer.
    pub fn put_evaluation(
        &self,
        token: &Token,
        jobset: &JobsetName,
        rev: &Rev,
        content_type: &str,
        body: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(bool, PutEvaluationResponse), ApiError> {
        let url = format!("{}/v1/jobsets/{jobset}/evaluations/{rev}", self.base);
        let total = body.len() as u64;
        let mut reader = Progress { inner: body, sent: 0, total, report: progress };
        // A Content-Length, so the body is not chunked (and a proxy knows its size).
        let resp = self
            .agent
            .put(&url)
            .header("Authorization", &format!("Bearer {}", token.as_str()))
            .header("Content-Type", content_type)
            .header("Content-Length", &total.to_string())
            .send(ureq::SendBody::from_reader(&mut reader));
        match self.answer(&url, resp)? {
            (status @ 200..=299, text) => Ok((status == 201, Client::decode(&url, &text)?)),
            (status, text) => Err(Client::failed(&url, status, text)),
        }
    }

    /// `GET /v1/jobsets/{name}`; `None` for an unknown jobset.
    pub fn jobset(&self, jobset: &JobsetName) -> Result<Option<JobsetDetail>, ApiError> {
        self.get_json(&format!("/v1/jobsets/{jobset}"))
    }

    /// One page of `GET /v1/jobsets/{name}/evaluations/{rev}`, with only the paths in
    /// `statuses` (all when empty); `None` for an unknown jobset or evaluation.
    pub fn evaluation_page(
        &self,
        jobset: &JobsetName,
        rev: &Rev,
        statuses: &[ReproStatus],
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Option<EvaluationPage>, ApiError> {
        let mut q = format!("limit={limit}");
        if !statuses.is_empty() {
            let s: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            q.push_str(&format!("&status={}", s.join(",")));
        }
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        self.get_json(&format!("/v1/jobsets/{jobset}/evaluations/{rev}?{q}"))
    }

    /// `GET /v1/jobsets/{name}/evaluations/{rev}/diff/{other}`: what changed from
    /// `other` to `rev`; `None` when the jobset or either evaluation is unknown.
    pub fn evaluation_diff(
        &self,
        jobset: &JobsetName,
        rev: &Rev,
        other: &Rev,
    ) -> Result<Option<EvaluationDiff>, ApiError> {
        self.get_json(&format!("/v1/jobsets/{jobset}/evaluations/{rev}/diff/{other}"))
    }

    /// `POST /v1/outputs/{basename}/diffs`: a signed diff report; whether it is new
    /// (201) or was stored already (200), and its description.
    pub fn upload_diff(
        &self,
        token: &Token,
        path: &StorePath,
        upload: &nhc_core::diff::DiffUpload,
    ) -> Result<(bool, nhc_core::diff::DiffInfo), ApiError> {
        let url = format!("{}/v1/outputs/{}/diffs", self.base, path.basename());
        let data = serde_json::to_vec(upload)
            .map_err(|e| ApiError::Unexpected { url: redact_url(&url), message: e.to_string() })?;
        let resp = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .header("Authorization", &format!("Bearer {}", token.as_str()))
            .header("Content-Type", "application/json")
            .send(&data[..]);
        match self.answer(&url, resp)? {
            (status @ 200..=299, text) => Ok((status == 201, Client::decode(&url, &text)?)),
            (status, text) => Err(Client::failed(&url, status, text)),
        }
    }

    /// `GET /v1/me`: the token's builder name.
    pub fn me(&self, token: &Token) -> Result<nhc_core::BuilderName, ApiError> {
        #[derive(serde::Deserialize)]
        struct Me {
            name: nhc_core::BuilderName,
        }
        let url = format!("{}/v1/me", self.base);
        let resp = self.agent.get(&url).header("Authorization", &format!("Bearer {}", token.as_str())).call();
        match self.answer(&url, resp)? {
            (200..=299, text) => Ok(Client::decode::<Me>(&url, &text)?.name),
            (status, text) => Err(Client::failed(&url, status, text)),
        }
    }

    /// `GET /v1/jobsets/{name}/evaluations/{rev}/suggest?builder=&limit=`; `None` for an
    /// unknown jobset or evaluation.
    pub fn suggest(
        &self,
        jobset: &JobsetName,
        rev: &Rev,
        builder: &nhc_core::BuilderName,
        limit: u32,
    ) -> Result<Option<nhc_core::jobset::SuggestResponse>, ApiError> {
        self.get_json(&format!("/v1/jobsets/{jobset}/evaluations/{rev}/suggest?builder={builder}&limit={limit}"))
    }

    /// Reads a response: its status and (bounded) body, or what it means when it is a
    /// redirect.
    fn answer(
        &self,
        url: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), ApiError> {
        let mut resp = resp.map_err(|e| self.unreachable(url, e))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(self.redirect(url, status, &resp));
        }
        let text =
            resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| self.unreachable(url, e))?;
        Ok((status, text))
    }

    fn decode<T: DeserializeOwned>(url: &str, text: &str) -> Result<T, ApiError> {
        serde_json::from_str(text).map_err(|e| ApiError::Unexpected { url: redact_url(url), message: e.to_string() })
    }

    fn failed(url: &str, status: u16, body: String) -> ApiError {
        ApiError::Status {
            url: redact_url(url),
            status,
            error: serde_json::from_str(&body).ok(),
            body,
            retry_after: None,
        }
    }

    /// `GET path` as JSON; `Ok(None)` on 404.
    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ApiError> {
        let url = format!("{}{path}", self.base);
        match self.answer(&url, self.agent.get(&url).call())? {
            (200..=299, text) => Client::decode(&url, &text).map(Some),
            (404, _) => Ok(None),
            (status, text) => Err(Client::failed(&url, status, text)),
        }
    }

    /// `POST path` with a JSON body, returning JSON.
    #[allow(dead_code)] // see `status`
    fn post_json<B: serde::Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let data = serde_json::to_vec(body)
            .map_err(|e| ApiError::Unexpected { url: redact_url(&url), message: e.to_string() })?;
        let resp = self.agent.post(&url).header("Content-Type", "application/json").send(&data[..]);
        match self.answer(&url, resp)? {
            (200..=299, text) => Client::decode(&url, &text),
            (status, text) => Err(Client::failed(&url, status, text)),
        }
    }
}

/// What `nhc import` calls with each submission's answer: records its log entries.
pub fn log_recorder(cfg: &Config) -> Result<nhc_import::OnAnswer, ConfigError> {
    let c = Client::for_config(cfg)?;
    Ok(nhc_import::OnAnswer(Some(std::sync::Arc::new(c.recorder()))))
}

/// A body being sent, reporting how much of it has gone.
struct Progress<'a, 'b> {
    inner: &'a [u8],
    sent: u64,
    total: u64,
    report: &'b mut dyn FnMut(u64, u64),
}

impl std::io::Read for Progress<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::io::Read::read(&mut self.inner, buf)?;
        self.sent += n as u64;
        (self.report)(self.sent, self.total);
        Ok(n)
    }
}

/// `s` for a query string: everything but unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{closed_port, html, json, redirect, serve};
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
        assert!(matches!(c.submit(&t, ONE), Outcome::Delivered(SubmitCounts { stored: 1, duplicates: 0 })));
        match c.submit(&t, ONE) {
            Outcome::Rejected(Rejection { status: 400, error: Some(e), .. }) => assert_eq!(e.error, "bad_signature"),
            o => panic!("{o:?}"),
        }
        match c.submit(&t, ONE) {
            Outcome::Retry(e @ ApiError::Status { status: 401, .. }) => {
                assert!(!e.is_misconfiguration() && !e.is_server_error());
                assert!(e.to_string().contains("HTTP 401 unauthorized: who"), "{e}");
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(c.submit(&t, ONE), Outcome::Retry(e @ ApiError::Status { status: 503, .. })
            if e.is_server_error() && !e.is_misconfiguration()));
        assert!(matches!(c.submit(&t, ONE), Outcome::Rejected(Rejection { status: 403, error: None, .. })));
        assert!(matches!(c.submit(&t, TWO), Outcome::Delivered(SubmitCounts { stored: 1, duplicates: 1 })));
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("POST /v1/attestations HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].to_ascii_lowercase().contains("authorization: bearer tok\r\n"));
        assert!(seen[0].ends_with("\r\n\r\n{\"outputs\":[{}]}"));
    }

    /// A stored output's log index and leaf hash are recorded; answers without a `log`
    /// (older servers) or with an unreadable one record nothing and still deliver.
    #[test]
    fn acknowledged_log_entries_are_recorded() {
        let out = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
        let nar = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
        let leaf = "ab".repeat(32);
        let (base, h) = serve(vec![
            json(
                201,
                &format!(
                    r#"{{"stored":1,"duplicates":1,"log":[{{"output_path":"{out}","nar_hash":"{nar}","index":41,"leaf_hash":"{leaf}"}}]}}"#
                ),
            ),
            json(201, r#"{"stored":1,"duplicates":0}"#),
            json(201, r#"{"stored":1,"duplicates":0,"log":[{"index":"x"}]}"#),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let record = crate::tlog::record::Record::new(dir.path(), &base);
        let c = Client::new(&base, Duration::from_secs(1), Duration::from_secs(2)).with_record(record.clone());
        assert!(matches!(c.submit(&token(), TWO), Outcome::Delivered(_)));
        assert!(matches!(c.submit(&token(), ONE), Outcome::Delivered(_)));
        assert!(matches!(c.submit(&token(), ONE), Outcome::Delivered(_)));
        h.join().unwrap();
        let got = record.entries().unwrap();
        assert_eq!(got.entries.len(), 1, "{got:?}");
        let e = &got.entries[0];
        assert_eq!((e.index, e.output_path.as_str(), e.nar_hash.to_string()), (41, out, nar.to_owned()));
        assert_eq!(nhc_tlog::hash_hex(&e.leaf_hash), leaf);
    }

    /// The typed calls: the paths they ask for, their answers decoded, 404 as `None`.
    #[test]
    fn reports_and_statuses_are_typed() {
        let out = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";
        let report = format!(r#"{{"output_path":"{out}","status":"no_builds","attestations":[]}}"#);
        let status = format!(r#"{{"{out}":{{"status":"one_builder","builders":1,"distinct_hashes":1}}}}"#);
        let (base, h) = serve(vec![
            json(200, &report),
            json(404, r#"{"error":"not_found","message":"no"}"#),
            json(200, &status),
            json(503, r#"{"error":"unavailable","message":"db"}"#),
        ]);
        let c = Client::new(&base, Duration::from_secs(1), Duration::from_secs(2));
        let path = StorePath::parse(out).unwrap();
        assert_eq!(c.output(&path).unwrap().unwrap().status, nhc_core::ReproStatus::NoBuilds);
        let drv = DrvPath::parse("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv").unwrap();
        assert!(c.derivation(&drv).unwrap().is_none());
        let st = c.status(std::slice::from_ref(&path)).unwrap();
        assert_eq!((st[&path].status, st[&path].builders), (nhc_core::ReproStatus::OneBuilder, 1));
        assert!(matches!(c.status(&[path]), Err(ApiError::Status { status: 503, error: Some(_), .. })));
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("GET /v1/outputs/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello HTTP/1.1\r\n"));
        assert!(seen[1].starts_with("GET /v1/derivations/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv HTTP/1.1\r\n"));
        assert!(
            seen[2].starts_with("POST /v1/status HTTP/1.1\r\n")
                && seen[2].ends_with(&format!(r#"{{"paths":["{out}"]}}"#))
        );
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
                Outcome::Retry(e @ ApiError::NotNhcServer { status, .. }) => {
                    assert!((200..300).contains(&status) && e.is_misconfiguration());
                    assert!(e.to_string().contains("answered 2xx but not like nhc-server"), "{e}");
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
            Outcome::Retry(e @ ApiError::Redirect { status: 301, .. }) => {
                assert!(e.is_misconfiguration());
                let reason = e.to_string();
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
            Outcome::Retry(e @ ApiError::Redirect { status: 302, .. }) => {
                let reason = e.to_string();
                assert!(
                    reason.ends_with(
                        "redirects to https://portal.example.net/login; set HASH_COLLECTION_SERVER to that URL"
                    ),
                    "{reason}"
                );
            }
            o => panic!("{o:?}"),
        }
        let drv = DrvPath::parse("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-x.drv").unwrap();
        let e = c.derivation(&drv).unwrap_err();
        assert!(matches!(e, ApiError::Redirect { status: 307, .. }));
        assert!(e.to_string().contains("redirects to https://hc.example.org/v1/derivations/x.drv"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn messages_never_show_the_password_of_the_url() {
        let addr = closed_port();
        let c = Client::new(&format!("http://alice:s3cret@{addr}/"), Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(c.base(), format!("http://{addr}"));
        match c.submit(&token(), ONE) {
            Outcome::Retry(e @ ApiError::Unreachable { .. }) => {
                let reason = e.to_string();
                assert!(!reason.contains("s3cret") && !reason.contains("alice"), "{reason}");
                assert!(reason.contains(&addr.to_string()), "{reason}");
            }
            o => panic!("{o:?}"),
        }
        let e = c.get_json::<serde_json::Value>("/v1/x").unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn refused_and_silent_servers_are_retried_quickly() {
        let addr = closed_port();
        let c = Client::new(&format!("http://{addr}"), Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), ONE), Outcome::Retry(ApiError::Unreachable { .. })));
        assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());

        // Accepts (kernel backlog) but never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Client::new(
            &format!("http://{}", l.local_addr().unwrap()),
            Duration::from_millis(300),
            Duration::from_millis(700),
        );
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), ONE), Outcome::Retry(ApiError::Unreachable { .. })));
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
        let port = closed_port().port();
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
        let e = Client::with_roots(&base, t, t, RootCerts::WebPki)
            .get_json::<serde_json::Value>("/")
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("issuer") || e.to_lowercase().contains("certificate"), "{e}");
        // Through $SSL_CERT_FILE: the handshake succeeds (s_server then answers HTML).
        let ca = d("ca.pem");
        let (_, certs) = system_roots(&|v| (v == "SSL_CERT_FILE").then(|| ca.clone()), &[], &mut Vec::new()).unwrap();
        let e = Client::with_roots(&base, t, t, RootCerts::from(certs)).get_json::<serde_json::Value>("/").unwrap_err();
        assert!(matches!(e, ApiError::Unexpected { .. }), "{e}");
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
