//! The nhc-server under test: started on a fresh database, killed with SIGKILL and
//! started again on the same database and port.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::client::Ctx;

/// A database for one test, dropped (PostgreSQL) or deleted with the directory (SQLite).
pub enum Db {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Db {
    /// A fresh PostgreSQL database on the server of `admin_url` (needs `psql` and
    /// CREATEDB rights, as adapters/server/dev.sh).
    pub fn postgres(admin_url: &str) -> Result<Db, String> {
        let name = format!("nhc_crash_{}_{}", std::process::id(), crate::fixtures::unique("d").replace('-', "_"));
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(Db::Postgres { admin_url: admin_url.to_owned(), name })
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres { admin_url, name } => {
                let (base, query) = match admin_url.split_once('?') {
                    Some((b, q)) => (b, format!("?{q}")),
                    None => (admin_url.as_str(), String::new()),
                };
                let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
                format!("{server}/{name}{query}")
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { admin_url, name } = self {
            let _ = psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub struct Server {
    bin: PathBuf,
    db_url: String,
    pub port: u16,
    pub admin_token: String,
    log: PathBuf,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
    /// The transparency log's key, made by `nhc-server log-key`.
    log_key: String,
}

/// A new transparency-log key from `nhc-server log-key`.
fn make_log_key(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin)
        .args(["log-key", "resilience.invalid/log"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} log-key: {e}", bin.display()))?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !key.starts_with("PRIVATE+KEY+resilience.invalid/log+") {
        return Err(format!("nhc-server log-key printed {key:?} ({})", out.status));
    }
    Ok(key)
}

impl Server {
    /// Starts `bin` on `db` and waits until `/health` answers.
    pub fn start(bin: &Path, db: &Db, dir: &Path) -> Result<Server, String> {
        let mut s = Server {
            bin: bin.to_owned(),
            db_url: db.url(),
            port: free_port()?,
            admin_token: format!("resilience-{}", crate::fixtures::unique("t")),
            log: dir.join("server.log"),
            child: None,
            starts: 0,
            log_key: make_log_key(bin)?,
        };
        s.spawn()?;
        s.wait_healthy(Duration::from_secs(60))?;
        Ok(s)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process without waiting for it to listen.
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = File::options().create(true).append(true).open(&self.log).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.bin)
            .args(["--database", &self.db_url, "serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            // What is tested is durability under kills, at full speed: the per-builder
            // rate limit (429) would only slow the submitters and the flushes down.
            .args(["--builder-rate", "0"])
            .env("NHC_ADMIN_TOKEN", &self.admin_token)
            .env("NHC_LOG_KEY", &self.log_key)
            .env("NHC_LOG_INTERVAL_MS", "100")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let ctx = Ctx::new(&self.base(), &self.admin_token, Duration::from_secs(2));
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = ctx.get("/health") {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("nhc-server exited ({status}) while starting; its log:\n{}", self.log_tail()));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("nhc-server did not answer /health in {timeout:?}; its log:\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every attestation of builder `name`, through the pages of its listing.
pub fn attestations_of(ctx: &Ctx, name: &str) -> Result<Vec<serde_json::Value>, Failed> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let path = match &cursor {
            Some(c) => format!("/v1/builders/{name}/attestations?limit=1000&cursor={c}"),
            None => format!("/v1/builders/{name}/attestations?limit=1000"),
        };
        let r = ctx.get(&path)?;
        r.expect(200)?;
        let v = r.json()?;
        let page = v["attestations"].as_array().ok_or_else(|| format!("no attestations in {path}"))?;
        all.extend(page.iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(all),
        }
    }
    Err(format!("more than 10,000 pages of attestations for {name}").into())
}
