//! The listener's limits, load shedding, rate limits and metrics, through real
//! sockets against a real `nhc-server` on SQLite. Limits are set small by flags so
//! each test is quick; the time bounds are generous (they catch hangs, not speed).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Long enough for any answer on a loaded machine; a hang fails the test.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `nhc-server serve` with `flags`; `fd_limit` runs it under `ulimit -n`.
fn start(flags: &[&str], fd_limit: Option<u32>) -> Server {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir =
        std::env::temp_dir().join(format!("nhc-limits-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bin = env!("CARGO_BIN_EXE_nhc-server");
    let mut args: Vec<String> = vec![
        "--database".into(),
        format!("sqlite://{}/nhc.db", dir.display()),
        "serve".into(),
        "--listen".into(),
        addr.to_string(),
        "--db-connections".into(),
        "2".into(),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let mut cmd = match fd_limit {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(bin).args(&args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(&args);
            c
        }
    };
    let child = cmd
        .env("RUST_LOG", "warn")
        .env_remove("NHC_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = try_request(addr, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") {
            if r.status == 200 {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "nhc-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn parse(raw: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no head: {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}

/// Sends `raw` (which asks for `Connection: close`) and reads the whole answer.
fn try_request(addr: SocketAddr, raw: &str) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, PATIENCE)?;
    s.set_read_timeout(Some(PATIENCE))?;
    s.write_all(raw.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse(&buf)
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    try_request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).unwrap()
}

/// Waits for the server to close `s` (EOF or reset); panics if it stays open.
fn assert_closed_by_server(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => buf,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => buf,
        Err(e) => panic!("the server kept the connection open ({e})"),
    }
}

#[test]
fn idle_sockets_beyond_the_cap_do_not_stop_health() {
    // 64 descriptors: without a cap, the idle sockets take them all and /health
    // is never accepted; with one, the longest-idle connections make room.
    let server = start(&["--max-connections", "16", "--max-connections-per-ip", "16"], Some(64));
    let idle: Vec<TcpStream> = (0..120).filter_map(|_| TcpStream::connect(server.addr).ok()).collect();
    assert!(idle.len() > 64, "only {} connections", idle.len());
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = get(server.addr, "/health");
        assert_eq!(r.status, 200, "{r:?}");
    }
    let metrics = get(server.addr, "/metrics").body;
    let evicted = sample(&metrics, "nhc_connections_total{event=\"evicted\"}").unwrap_or(0.0);
    assert!(evicted >= 50.0, "evicted {evicted}\n{metrics}");
    let open = sample(&metrics, "nhc_connections_open").unwrap();
    assert!(open <= 16.0, "{open} connections open");
    drop(idle);
}

#[test]
fn silent_and_partial_http2_preface_connections_are_closed() {
    // A header timeout far away: only the first-byte timeout can close these.
    let server = start(&["--first-byte-timeout-ms", "300", "--header-timeout-ms", "60000"], None);
    let silent = TcpStream::connect(server.addr).unwrap();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let start = Instant::now();
    assert_closed_by_server(silent);
    assert_closed_by_server(partial);
    assert!(start.elapsed() < PATIENCE);
    // A full preface is HTTP/2 and gets the server's SETTINGS frame.
    let mut h2 = TcpStream::connect(server.addr).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    h2.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut frame = [0u8; 9];
    h2.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 4, "not a SETTINGS frame: {frame:?}");
}

#[test]
fn http2_connection_without_requests_is_closed_after_the_header_timeout() {
    let server = start(&["--first-byte-timeout-ms", "60000", "--header-timeout-ms", "400"], None);
    let mut h2 = TcpStream::connect(server.addr).unwrap();
    // Preface and an empty SETTINGS frame, then nothing.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    let got = assert_closed_by_server(h2);
    // The server says goodbye with a GOAWAY (type 7) frame somewhere in what it sent.
    assert!(!got.is_empty());
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let server = start(&["--idle-timeout-ms", "300"], None);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = assert_closed_by_server(s);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
}

fn slow_status(addr: SocketAddr, length: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"paths\"").unwrap();
    s
}

#[test]
fn slow_bodies_time_out() {
    let server = start(&["--body-timeout-ms", "300"], None);
    let s = slow_status(server.addr, 1000);
    let got = assert_closed_by_server(s);
    let r = parse(&got).unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["request_id"].is_string(), "{r:?}");
}

#[test]
fn route_class_over_its_limit_is_shed_with_retry_after() {
    // No per-IP share: the test's connections all come from 127.0.0.1.
    let server = start(&["--concurrency-status", "2", "--queue-timeout-ms", "50", "--per-ip-share", "0"], None);
    // Two slow (small) bodies hold both small-status slots.
    let _a = slow_status(server.addr, 1000);
    let _b = slow_status(server.addr, 1000);
    std::thread::sleep(Duration::from_millis(300));
    let body = r#"{"paths":[]}"#;
    let r = try_request(
        server.addr,
        &format!("POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    let j = r.json();
    assert_eq!(j["error"], "overloaded");
    assert_eq!(j["request_id"].as_str(), r.header("x-request-id"));
    // Other classes still answer.
    assert_eq!(get(server.addr, "/health").status, 200);
    assert_eq!(get(server.addr, "/v1/builders").status, 200);
    let metrics = get(server.addr, "/metrics").body;
    assert_eq!(sample(&metrics, "nhc_http_shed_total{class=\"status\",reason=\"concurrency\"}"), Some(1.0));
}

#[test]
fn anonymous_body_bytes_are_bounded() {
    // Both bodies are bulk (small status bodies are outside the budget).
    let server =
        start(&["--anonymous-body-bytes", "100000", "--queue-timeout-ms", "50", "--status-small-bytes", "1000"], None);
    let _holding = slow_status(server.addr, 90_000);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = slow_status(server.addr, 20_000);
    s.write_all(b": ").unwrap();
    let r = parse(&assert_closed_by_server_or_answer(s)).unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"], "overloaded");
    let metrics = get(server.addr, "/metrics").body;
    assert_eq!(sample(&metrics, "nhc_http_shed_total{class=\"status_bulk\",reason=\"body_bytes\"}"), Some(1.0));
}

fn status_request(paths: usize) -> String {
    let list = vec![format!("\"/nix/store/{}-x\"", "a".repeat(32)); paths].join(",");
    let body = format!("{{\"paths\":[{list}]}}");
    format!(
        "POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The soak's finding: big and slow status bodies took every status slot and a
/// well-behaved 500-path request was shed. Now they hold the bulk class (and one
/// address at most its share of it), and small requests still answer.
#[test]
fn big_status_bodies_do_not_starve_small_status_requests() {
    let server = start(&["--concurrency-status-bulk", "2", "--queue-timeout-ms", "50"], None);
    // Hostile: slow bodies announcing 4 MiB, more than the bulk class holds.
    let hostile: Vec<TcpStream> = (0..6).map(|_| slow_status(server.addr, 4 * 1024 * 1024)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // 500 paths (about 25 KiB): the small class.
    for _ in 0..3 {
        let r = try_request(server.addr, &status_request(500)).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json().as_object().map(|m| m.len()), Some(1), "{r:?}");
    }
    // 2,000 paths (about 90 KiB) is bulk, and the bulk class is taken.
    let r = try_request(server.addr, &status_request(2000)).unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    let metrics = get(server.addr, "/metrics").body;
    assert_eq!(sample(&metrics, "nhc_http_requests_total{class=\"status\",code=\"200\"}"), Some(3.0));
    // One address holds 1 of the 2 bulk slots (50 %): the others were shed per IP.
    let per_ip = sample(&metrics, "nhc_http_shed_total{class=\"status_bulk\",reason=\"per_ip\"}").unwrap_or(0.0);
    assert!(per_ip >= 5.0, "{metrics}");
    assert_eq!(sample(&metrics, "nhc_http_requests_in_flight{class=\"status_bulk\"}"), Some(1.0), "{metrics}");
    drop(hostile);
}

/// Reads one HTTP/1.1 answer with a Content-Length from a keep-alive connection.
fn read_answer(s: &mut TcpStream) -> Answer {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return parse(&buf[..end + 4 + len]).unwrap();
            }
        }
        let n = s.read(&mut chunk).expect("the server closed or did not answer");
        assert!(n > 0, "the server closed the connection: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// At the per-IP cap, new sockets that never send a request make room by closing
/// each other, not the keep-alive connection of a client between two requests
/// (the soak's builders saw "connection closed" under a flood of idle sockets).
#[test]
fn a_flood_of_idle_sockets_does_not_close_keep_alive_clients() {
    let server = start(&["--max-connections-per-ip", "8"], None);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut client).status, 200);
    // The client is now the longest idle; then 40 idle sockets, each one over the cap.
    std::thread::sleep(Duration::from_millis(200));
    let idle: Vec<TcpStream> = (0..40).filter_map(|_| TcpStream::connect(server.addr).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut client).status, 200);
    let metrics = get(server.addr, "/metrics").body;
    let evicted = sample(&metrics, "nhc_connections_total{event=\"evicted\"}").unwrap_or(0.0);
    assert!(evicted >= 30.0, "evicted {evicted}");
    drop(idle);
}

/// Reads until the answer's head and body are in (the server may keep the socket).
fn assert_closed_by_server_or_answer(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return buf,
            Err(e) => panic!("no answer ({e}): {}", String::from_utf8_lossy(&buf)),
        }
        if let Ok(r) = parse(&buf) {
            if let Some(len) = r.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                if r.body.len() >= len {
                    return buf;
                }
            }
        }
    }
}

#[test]
fn builder_over_its_rate_gets_429() {
    let server = start(&["--builder-rate", "0.5", "--builder-burst", "2"], None);
    let submit = |token: &str| {
        try_request(
            server.addr,
            &format!("POST /v1/attestations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
        )
        .unwrap()
    };
    let token = "nhc_0123456789abcdef_secret";
    // Unknown tokens: the handlers answer 401, but each request counts.
    for _ in 0..2 {
        let r = submit(token);
        assert_ne!(r.status, 429, "{r:?}");
    }
    let r = submit(token);
    assert_eq!(r.status, 429, "{r:?}");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(r.json()["error"], "rate_limited");
    assert!(r.json()["request_id"].is_string());
    // Another builder is not affected, nor anonymous reads.
    assert_ne!(submit("nhc_fedcba9876543210_secret").status, 429);
    assert_eq!(get(server.addr, "/v1/builders").status, 200);
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A strict reading of the text exposition format: every line a comment (HELP or
/// TYPE), or `name{label="value",...} number`, each sample's family declared.
fn check_prometheus_text(text: &str) {
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(matches!(kind, "HELP" | "TYPE"), "{line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(matches!(t, "counter" | "gauge" | "histogram"), "{line}");
                typed.insert(name.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        let name = series.split('{').next().unwrap();
        assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{line}");
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(typed.contains(name) || typed.contains(family), "undeclared: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("{line}"));
            for pair in inner.split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{line}");
                assert!(!v.trim_end_matches('"').contains('"'), "{line}");
            }
        }
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_requests() {
    let server = start(&[], None);
    let before = get(server.addr, "/metrics");
    assert_eq!(before.status, 200);
    assert!(before.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    check_prometheus_text(&before.body);
    let health_before = sample(&before.body, "nhc_http_requests_total{class=\"health\",code=\"200\"}").unwrap_or(0.0);
    for _ in 0..5 {
        assert_eq!(get(server.addr, "/health").status, 200);
    }
    assert_eq!(get(server.addr, "/v1/outputs/not-a-path").status, 400);
    let after = get(server.addr, "/metrics").body;
    check_prometheus_text(&after);
    let health_after = sample(&after, "nhc_http_requests_total{class=\"health\",code=\"200\"}").unwrap();
    // The five /health and the first /metrics (the second is counted after it renders).
    assert_eq!(health_after - health_before, 6.0, "{after}");
    assert_eq!(sample(&after, "nhc_http_requests_total{class=\"read\",code=\"400\"}"), Some(1.0), "{after}");
    assert_eq!(sample(&after, "nhc_http_errors_total{class=\"read\",error=\"invalid_request\"}"), Some(1.0), "{after}");
    let count = sample(&after, "nhc_http_request_duration_seconds_count{class=\"health\"}").unwrap();
    assert!(count >= 6.0);
    assert!(sample(&after, "nhc_connections_open").unwrap() >= 1.0);
}

#[test]
fn metrics_can_be_turned_off() {
    let server = start(&["--metrics", "false"], None);
    assert_ne!(get(server.addr, "/metrics").status, 200);
}

#[test]
fn error_bodies_carry_the_request_id() {
    let server = start(&[], None);
    let r = get(server.addr, "/v1/outputs/not-a-path");
    assert_eq!(r.status, 400);
    let id = r.header("x-request-id").expect("x-request-id").to_owned();
    assert!(!id.is_empty());
    assert_eq!(r.json()["request_id"], id.as_str());
    assert_eq!(r.json()["error"], "invalid_request");
    // A plain id from the client is kept; a hostile one is replaced.
    let r = try_request(
        server.addr,
        "GET /v1/builders/nobody/attestations HTTP/1.1\r\nHost: x\r\nx-request-id: trace-42\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    assert_eq!(r.json()["request_id"], "trace-42", "{r:?}");
    let r = try_request(
        server.addr,
        "GET /v1/nope/nope/nope HTTP/1.1\r\nHost: x\r\nx-request-id: a b\"c\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_ne!(r.header("x-request-id"), Some("a b\"c"));
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    // Successful answers carry the header only.
    let ok = get(server.addr, "/health");
    assert!(ok.header("x-request-id").is_some());
    assert!(ok.json().get("request_id").is_none());
}

/// An answer given before the request body was read (a 401: the token is checked
/// first) says `Connection: close`, so the client does not send its next request into
/// a connection the server is about to close (CI saw a conformance request fail so
/// after a 401). An answer to a request whose body was read keeps the connection.
#[test]
fn an_answer_before_the_body_was_read_says_connection_close() {
    let server = start(&[], None);
    let mut s = TcpStream::connect_timeout(&server.addr, PATIENCE).unwrap();
    // Only the first byte of a 100,000-byte body: the server cannot drain the rest.
    s.write_all(
        b"POST /v1/attestations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .unwrap();
    let answer = read_answer(&mut s);
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "{answer:?}");
    assert_closed_by_server(s);

    let mut s = TcpStream::connect_timeout(&server.addr, PATIENCE).unwrap();
    let keep_alive = status_request(3).replace("Connection: close\r\n", "");
    s.write_all(keep_alive.as_bytes()).unwrap();
    let answer = read_answer(&mut s);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_ne!(answer.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "{answer:?}");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s).status, 200);
}
