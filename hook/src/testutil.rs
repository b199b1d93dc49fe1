//! Helpers for the unit tests: a fake HTTP server, a port nobody listens on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// An address on which nobody listens (connections are refused).
pub fn closed_port() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One answer of the fake server.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub fn json(status: u16, body: &str) -> Answer {
    Answer { status, headers: vec![("Content-Type", "application/json".into())], body: body.into() }
}

pub fn html(status: u16, body: &str) -> Answer {
    Answer { status, headers: vec![("Content-Type", "text/html".into())], body: body.into() }
}

pub fn redirect(status: u16, location: &str) -> Answer {
    Answer { status, headers: vec![("Location", location.into())], body: String::new() }
}

/// Serves `answers` in turn, one connection each, returning the base URL and what it
/// received (request line, headers and body of each request).
pub fn serve(answers: Vec<Answer>) -> (String, JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for a in answers {
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
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            head.push_str(&String::from_utf8_lossy(&b));
            seen.push(head);
            let mut resp = format!("HTTP/1.1 {} X\r\n", a.status);
            for (k, v) in &a.headers {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{}", a.body.len(), a.body));
            s.write_all(resp.as_bytes()).unwrap();
        }
        seen
    });
    (base, h)
}
