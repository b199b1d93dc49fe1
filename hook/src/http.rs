//! A small blocking HTTP client with strict timeouts, and what each answer means for
//! an attestation: delivered, retry later (spool), or rejected.

use std::time::Duration;

use nhc_core::api::{ErrorBody, SubmitResponse};
use serde::de::DeserializeOwned;

use crate::config::Token;

/// Largest response body read.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// The result of sending one attestation request.
#[derive(Debug)]
pub enum Outcome {
    /// 2xx: stored (or all duplicates).
    Delivered(SubmitResponse),
    /// Network trouble (`status` is `None`), 5xx, or a 4xx that says nothing about
    /// the item (401 bad token, 404 wrong URL, 408, 429): keep it, send it later.
    Retry { reason: String, status: Option<u16> },
    /// Any other 4xx: the server refused this item.
    Rejected { status: u16, error: Option<ErrorBody>, body: String },
}

/// 4xx answers that are about the server or the credentials, not the request.
fn is_retryable(status: u16) -> bool {
    matches!(status, 401 | 404 | 405 | 407 | 408 | 421 | 425 | 429) || !(200..500).contains(&status)
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

impl Client {
    /// `base` is the server URL without `/v1`; a trailing `/` is ignored.
    pub fn new(base: &str, connect_timeout: Duration, timeout: Duration) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("nhc/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent: config.into(), base: base.trim_end_matches('/').to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
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
            Err(e) => return Outcome::Retry { reason: format!("{url}: {e}"), status: None },
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            // A 2xx means the server took it, even if its answer is unexpected.
            let r = serde_json::from_str(&text).unwrap_or(SubmitResponse { stored: 0, duplicates: 0 });
            return Outcome::Delivered(r);
        }
        if is_retryable(status) {
            return Outcome::Retry { reason: format!("{url}: {}", describe(status, &text)), status: Some(status) };
        }
        Outcome::Rejected { status, error: serde_json::from_str(&text).ok(), body: text }
    }

    /// `GET path` as JSON; `Ok(None)` on 404.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, String> {
        let url = format!("{}{path}", self.base);
        let mut resp = self.agent.get(&url).call().map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let text =
            resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| format!("{url}: {e}"))?;
        match status {
            200..=299 => serde_json::from_str(&text).map(Some).map_err(|e| format!("{url}: unexpected answer: {e}")),
            404 => Ok(None),
            _ => Err(format!("{url}: {}", describe(status, &text))),
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
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let text =
            resp.body_mut().with_config().limit(MAX_RESPONSE).read_to_string().map_err(|e| format!("{url}: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("{url}: {}", describe(status, &text)));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    /// Serves `answers` in turn, one connection each, returning what it received.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut b = vec![0; len];
                r.read_exact(&mut b).unwrap();
                head.push_str(&String::from_utf8_lossy(&b));
                seen.push(head);
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            seen
        });
        (base, h)
    }

    fn token() -> Token {
        Token::new("tok".into())
    }

    #[test]
    fn classifies_answers() {
        let (base, h) = serve(vec![
            (201, r#"{"stored":1,"duplicates":0}"#),
            (400, r#"{"error":"bad_signature","message":"no"}"#),
            (401, r#"{"error":"unauthorized","message":"who"}"#),
            (503, r#"{"error":"unavailable","message":"db"}"#),
            (403, "not json"),
        ]);
        let c = Client::new(&format!("{base}/"), Duration::from_secs(1), Duration::from_secs(2));
        let t = token();
        assert!(matches!(c.submit(&t, b"{}"), Outcome::Delivered(SubmitResponse { stored: 1, duplicates: 0 })));
        match c.submit(&t, b"{}") {
            Outcome::Rejected { status: 400, error: Some(e), .. } => assert_eq!(e.error, "bad_signature"),
            o => panic!("{o:?}"),
        }
        assert!(
            matches!(c.submit(&t, b"{}"), Outcome::Retry { reason, status: Some(401) } if reason.contains("unauthorized"))
        );
        assert!(matches!(c.submit(&t, b"{}"), Outcome::Retry { status: Some(503), .. }));
        assert!(matches!(c.submit(&t, b"{}"), Outcome::Rejected { status: 403, error: None, .. }));
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("POST /v1/attestations HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].to_ascii_lowercase().contains("authorization: bearer tok\r\n"));
        assert!(seen[0].ends_with("\r\n\r\n{}"));
    }

    #[test]
    fn refused_and_silent_servers_are_retried_quickly() {
        // A port nobody listens on.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = Client::new(&format!("http://{addr}"), Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), b"{}"), Outcome::Retry { status: None, .. }));
        assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());

        // Accepts (kernel backlog) but never answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Client::new(
            &format!("http://{}", l.local_addr().unwrap()),
            Duration::from_millis(300),
            Duration::from_millis(700),
        );
        let t0 = Instant::now();
        assert!(matches!(c.submit(&token(), b"{}"), Outcome::Retry { status: None, .. }));
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(600) && took < Duration::from_millis(1500), "{took:?}");
        drop(l);
    }
}
