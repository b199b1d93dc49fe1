//! A small blocking HTTP client for the suite: never turns a status into an error,
//! so tests can assert on every status and body.

use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value;

#[derive(Clone)]
pub struct Ctx {
    pub base: String,
    pub admin_token: String,
    agent: ureq::Agent,
    pub nix: NixMode,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NixMode {
    Require,
    Auto,
    Skip,
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub nosniff: bool,
    /// The Content-Security-Policy header, empty when absent.
    pub csp: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Result<Value, Failed> {
        serde_json::from_str(&self.body).map_err(|e| Failed::from(format!("response is not JSON ({e}): {}", self.body)))
    }

    /// Asserts the status; on failure the message shows the body.
    pub fn expect(&self, status: u16) -> Result<&Self, Failed> {
        if self.status != status {
            return Err(format!("expected HTTP {status}, got {}: {}", self.status, self.body).into());
        }
        Ok(self)
    }

    /// Asserts an error response: the status, a JSON body `{"error": code, "message": text}`.
    pub fn expect_error(&self, status: u16, code: &str) -> Result<Value, Failed> {
        self.expect(status)?;
        if !self.content_type.starts_with("application/json") {
            return Err(format!("error response has content-type {:?}, not JSON", self.content_type).into());
        }
        let v = self.json()?;
        let got = v["error"].as_str().unwrap_or_default();
        if got != code {
            return Err(format!("expected error code {code:?}, got {got:?}: {}", self.body).into());
        }
        if v["message"].as_str().is_none_or(|m| m.is_empty()) {
            return Err(format!("error without a message: {}", self.body).into());
        }
        Ok(v)
    }
}

impl Ctx {
    pub fn from_env() -> Result<Ctx, String> {
        let base = std::env::var("NHC_URL").map_err(|_| "set NHC_URL to the deployment's base URL".to_string())?;
        let admin_token = std::env::var("NHC_ADMIN_TOKEN")
            .map_err(|_| "set NHC_ADMIN_TOKEN to the deployment's admin token".to_string())?;
        let nix = match std::env::var("NHC_NIX").as_deref() {
            Ok("require") => NixMode::Require,
            Ok("skip") => NixMode::Skip,
            _ => NixMode::Auto,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Ctx { base: base.trim_end_matches('/').to_owned(), admin_token, agent, nix })
    }

    /// A context for a server the caller runs itself (the resilience tests restart
    /// theirs), with a shorter timeout than the suite's.
    #[allow(dead_code)] // the suite itself uses from_env
    pub fn new(base: &str, admin_token: &str, timeout: Duration) -> Ctx {
        let agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
        Ctx {
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.to_owned(),
            agent,
            nix: NixMode::Skip,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn finish(&self, what: &str, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, Failed> {
        let mut r = r.map_err(|e| Failed::from(format!("{what}: HTTP request failed: {e}")))?;
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let nosniff = r.headers().get("x-content-type-options").is_some_and(|v| v.as_bytes() == b"nosniff");
        let csp =
            r.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| Failed::from(format!("reading the response failed: {e}")))?;
        if status >= 500 && status != 503 {
            return Err(format!("{what}: server error {status}: {body}").into());
        }
        Ok(Resp { status, content_type, nosniff, csp, body })
    }

    pub fn get(&self, path: &str) -> Result<Resp, Failed> {
        let r = self.finish(&format!("GET {path}"), once_more(|| self.agent.get(self.url(path)).call()));
        match r {
            // cargo-lambda's emulator (the Lambda's local run) sometimes answers a 500 of
            // its own, a problem+json body our handlers never send, before the function
            // sees the request (seen in CI once per few runs). A GET may be repeated.
            Err(e) if e.message().is_some_and(|m| m.contains("https://httpstatuses.com/500")) => {
                std::thread::sleep(std::time::Duration::from_secs(1));
                self.finish(&format!("GET {path}"), once_more(|| self.agent.get(self.url(path)).call()))
            }
            r => r,
        }
    }

    pub fn get_auth(&self, path: &str, token: Option<&str>) -> Result<Resp, Failed> {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        self.finish(&format!("GET {path}"), req.call())
    }

    /// GET a binary body: (status, content type, bytes). Repeated once after a 500 of
    /// cargo-lambda's emulator, as [`Client::get`] does (seen in CI on a diff report).
    pub fn get_bytes(&self, path: &str) -> Result<(u16, String, Vec<u8>), Failed> {
        let first = self.get_bytes_once(path)?;
        if first.0 == 500 && String::from_utf8_lossy(&first.2).contains("https://httpstatuses.com/500") {
            std::thread::sleep(std::time::Duration::from_secs(1));
            return self.get_bytes_once(path);
        }
        Ok(first)
    }

    fn get_bytes_once(&self, path: &str) -> Result<(u16, String, Vec<u8>), Failed> {
        let mut r = self
            .agent
            .get(self.url(path))
            .call()
            .map_err(|e| Failed::from(format!("GET {path}: HTTP request failed: {e}")))?;
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| Failed::from(format!("reading the response failed: {e}")))?;
        Ok((status, content_type, body))
    }

    pub fn head(&self, path: &str) -> Result<Resp, Failed> {
        self.finish(&format!("HEAD {path}"), once_more(|| self.agent.head(self.url(path)).call()))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Result<Resp, Failed> {
        self.post_typed(path, token, "application/json", body)
    }

    pub fn post_typed(&self, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Result<Resp, Failed> {
        let mut req = self.agent.post(self.url(path)).header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        self.finish(&format!("POST {path} ({} bytes)", body.len()), req.send(body))
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Resp, Failed> {
        self.post(path, token, body.to_string().as_bytes())
    }

    pub fn put_typed(&self, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Result<Resp, Failed> {
        let mut req = self.agent.put(self.url(path)).header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        self.finish(&format!("PUT {path} ({} bytes)", body.len()), req.send(body))
    }

    pub fn put(&self, path: &str) -> Result<Resp, Failed> {
        self.finish(&format!("PUT {path}"), self.agent.put(self.url(path)).send(&b""[..]))
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Result<Resp, Failed> {
        let mut req = self.agent.delete(self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        self.finish(&format!("DELETE {path}"), req.call())
    }

    /// POSTs `len` bytes of `fill` the way curl sends a large body: headers with
    /// `Expect: 100-continue` first, the body only if the server asks for it. A
    /// server that refuses early (413) never has to read 5 MiB it will not use, and
    /// the client never writes into a closed connection. Only for http:// URLs.
    pub fn post_large(&self, path: &str, token: Option<&str>, body: &[u8]) -> Result<Resp, Failed> {
        self.send_large("POST", path, token, body)
    }

    /// As [`Ctx::post_large`], with another method (`PUT` for evaluations).
    pub fn send_large(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Result<Resp, Failed> {
        use std::io::{BufRead, BufReader, Read, Write};
        let Some(rest) = self.base.strip_prefix("http://") else {
            return match method {
                "PUT" => self.put_typed(path, token, "application/json", body),
                _ => self.post(path, token, body),
            };
        };
        let (host, prefix) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, String::new()));
        let mut stream =
            std::net::TcpStream::connect(host).map_err(|e| Failed::from(format!("connect {host}: {e}")))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let read_head = |reader: &mut BufReader<std::net::TcpStream>| -> Result<(u16, Vec<String>), Failed> {
            let mut status_line = String::new();
            reader.read_line(&mut status_line).map_err(|e| e.to_string())?;
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Failed::from(format!("bad status line {status_line:?}")))?;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).map_err(|e| e.to_string())?;
                if line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim().to_owned());
            }
            Ok((status, headers))
        };
        // Like curl: wait a moment for the server's verdict (an early 413, or
        // `100 Continue`); servers that send neither get the body after a second.
        stream.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
        let answered = match reader.fill_buf() {
            Ok(buf) => !buf.is_empty(),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => false,
            Err(e) => return Err(e.to_string().into()),
        };
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        let (mut status, mut headers) = if answered { read_head(&mut reader)? } else { (100, Vec::new()) };
        if status == 100 {
            // A write error here means the server answered before reading it all;
            // the answer is still there to read.
            let _ = stream.write_all(body);
            (status, headers) = read_head(&mut reader)?;
        }
        let header = |name: &str| {
            headers.iter().find_map(|h| {
                h.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
            })
        };
        let content_type = header("content-type").unwrap_or_default();
        let mut raw = Vec::new();
        match header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            Some(n) => {
                raw.resize(n, 0);
                reader.read_exact(&mut raw).map_err(|e| e.to_string())?;
            }
            None if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) => loop {
                let mut size_line = String::new();
                reader.read_line(&mut size_line).map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| Failed::from(format!("bad chunk size {size_line:?}")))?;
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if size == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..size]);
            },
            None => {
                let _ = reader.read_to_end(&mut raw);
            }
        }
        let body = String::from_utf8_lossy(&raw).into_owned();
        let nosniff = header("x-content-type-options").is_some_and(|v| v == "nosniff");
        let csp = header("content-security-policy").unwrap_or_default().to_owned();
        Ok(Resp { status, content_type, nosniff, csp, body })
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> Result<Resp, Failed> {
        self.post_json(path, Some(&self.admin_token), body)
    }
}

/// `ensure!(cond, "message {}", x)`: fails the test with the message.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(libtest_mimic::Failed::from(format!($($msg)+)));
        }
    };
}

/// `ensure_eq!(a, b, "context")`.
#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($msg:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(libtest_mimic::Failed::from(format!(
                "{}: {:?} != {:?}", format!($($msg)+), a, b
            )));
        }
    }};
}

/// GET and HEAD are idempotent: like any HTTP client, send once more when the kept-alive
/// connection the agent reused turned out to be closed by the server (a server may close
/// a connection after an error answer without reading the request body).
fn once_more(
    call: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    call().or_else(|_| call())
}
