//! The per-builder limit on diff reports' bytes (`--max-diff-bytes-per-builder`),
//! through real HTTP against a real `nhc-server` on SQLite, set small so the test is
//! quick. (The per-report and per-path limits run against every deployment in the
//! conformance suite.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nhc_handlers::core::diff::{fingerprint, report_sha256, DiffFormat};
use nhc_handlers::core::{KeyName, NarHash, SecretKey, StorePath};

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

fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_builder_past_its_bytes_of_reports_is_refused() {
    let dir = std::env::temp_dir().join(format!("nhc-diff-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/nhc.db", dir.display());
    let bin = env!("CARGO_BIN_EXE_nhc-server");
    let key = SecretKey::from_seed(KeyName::parse("diff-limits-1").unwrap(), [7; 32]);
    let out = Command::new(bin)
        .args(["--database", &db, "builder", "add", "b1", "--public-key", &key.public_key().to_string()])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(bin)
        .args(["--database", &db, "serve", "--listen", &addr.to_string(), "--max-diff-bytes-per-builder", "3000"])
        .env("RUST_LOG", "warn")
        .env_remove("NHC_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(server.addr).is_err() {
        assert!(Instant::now() < deadline, "nhc-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let upload = |path: &StorePath, fill: u8| {
        let mut gz = vec![0x1f, 0x8b, 0x08];
        gz.resize(1200, fill);
        let (a, b) = (NarHash::from_bytes([fill; 32]), NarHash::from_bytes([fill ^ 1; 32]));
        let sig = key.sign(&fingerprint(path, &a, &b, DiffFormat::FileList, &report_sha256(&gz)));
        let body = format!(
            r#"{{"nar_hash_a":"{a}","nar_hash_b":"{b}","format":"file-list","report":"{}","signature":"{sig}"}}"#,
            base64(&gz)
        );
        let raw = format!(
            "POST /v1/outputs/{}/diffs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            path.basename(),
            body.len()
        );
        request(server.addr, raw.as_bytes())
    };
    let p = StorePath::parse("/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello").unwrap();
    let q = StorePath::parse("/nix/store/kxxksfgj99gnnqjm5za6cj7wakypvbgm-nondet").unwrap();
    assert_eq!(upload(&p, 1).0, 201);
    assert_eq!(upload(&q, 2).0, 201);
    // 2400 bytes stored; 1200 more would pass 3000, on any path.
    let (status, body) = upload(&q, 3);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("too_many_diffs"), "{body}");
    // The same report again is still answered with what is stored.
    assert_eq!(upload(&p, 1).0, 200);
}
