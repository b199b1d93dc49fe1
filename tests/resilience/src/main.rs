//! Crash tests of nix-hash-collection, through real processes and real HTTP:
//!
//! - `server::sqlite`, `server::postgres`: nhc-server killed with SIGKILL at random
//!   moments while several clients submit signed batches, restarted on the same
//!   database; then every acknowledged submission is stored exactly once, no
//!   submission is half-written, nothing else appeared.
//! - `client::spool_and_flush`: `nhc-hook`, `nhc submit --async` and `nhc flush`
//!   killed at random moments; after flushing until the spool is empty, the server
//!   holds every spooled attestation exactly once and nothing was rejected.
//!
//! ```sh
//! NHC_SERVER_BIN=.../nhc-server NHC_BIN=.../nhc NHC_HOOK_BIN=.../nhc-hook \
//! NHC_TEST_POSTGRES_URL=$(scripts/ensure-postgres) nhc-resilience
//! ```
//!
//! scripts/resilience builds and runs it. `NHC_CRASH_SEED` repeats a run's schedule
//! (kill moments, batch shapes; thread timing still varies), `NHC_CRASH_SECONDS`
//! bounds each test's load phase (default 45), `NHC_CRASH_ROUNDS` the server kills
//! per database (default 12). Without `NHC_TEST_POSTGRES_URL` the PostgreSQL test is
//! ignored (`NHC_POSTGRES=require` makes that an error). Arguments are libtest's.

#[path = "../../conformance/src/client.rs"]
#[allow(dead_code)]
mod client;
mod client_kill;
#[path = "../../conformance/src/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
mod rng;
mod server;
mod server_kill;

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

pub type TestResult = Result<(), Failed>;

/// The binaries under test.
pub struct Bins {
    pub server: PathBuf,
    pub nhc: PathBuf,
    pub hook: PathBuf,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bin(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if PathBuf::from(&p).is_file() => PathBuf::from(p),
        _ => {
            eprintln!("error: set {var} to the binary to test (scripts/resilience does)");
            std::process::exit(2);
        }
    }
}

/// A temporary directory kept when the test fails, for its logs.
fn in_tempdir(name: &str, f: impl FnOnce(&std::path::Path) -> TestResult) -> TestResult {
    let dir = tempfile::Builder::new()
        .prefix(&format!("nhc-resilience-{name}-"))
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let r = f(dir.path());
    if r.is_err() {
        let kept = dir.keep();
        eprintln!("{name}: kept {} (logs, databases, spool)", kept.display());
    }
    r
}

fn main() {
    let mut args = Arguments::from_args();
    // One at a time: each test loads the machine and times its kills.
    args.test_threads.get_or_insert(1);
    let bins =
        std::sync::Arc::new(Bins { server: bin("NHC_SERVER_BIN"), nhc: bin("NHC_BIN"), hook: bin("NHC_HOOK_BIN") });
    let seed = env_num("NHC_CRASH_SEED", u64::from_le_bytes(fixtures::random::<8>()));
    eprintln!("nhc-resilience: seed {seed} (NHC_CRASH_SEED={seed} repeats the schedule)");
    let seconds = Duration::from_secs(env_num("NHC_CRASH_SECONDS", 45));
    let plan = std::sync::Arc::new(server_kill::Plan {
        rounds: env_num("NHC_CRASH_ROUNDS", 12) as usize,
        budget: seconds,
        clients: 6,
    });
    let pg = std::env::var("NHC_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    if pg.is_none() && std::env::var("NHC_POSTGRES").as_deref() == Ok("require") {
        eprintln!("error: NHC_POSTGRES=require but NHC_TEST_POSTGRES_URL is not set");
        std::process::exit(2);
    }
    let mut trials = Vec::new();
    {
        let (bins, plan) = (bins.clone(), plan.clone());
        trials.push(Trial::test("server::sqlite", move || {
            in_tempdir("sqlite", |dir| {
                let db = server::Db::Sqlite(dir.join("nhc.db"));
                server_kill::run(&bins, "sqlite", db, dir, seed, &plan)
            })
        }));
    }
    {
        let (bins, plan, url) = (bins.clone(), plan.clone(), pg.clone().unwrap_or_default());
        trials.push(
            Trial::test("server::postgres", move || {
                in_tempdir("postgres", |dir| {
                    let db = server::Db::postgres(&url)?;
                    server_kill::run(&bins, "postgres", db, dir, seed ^ 0x5047, &plan)
                })
            })
            .with_ignored_flag(pg.is_none()),
        );
    }
    trials.push(Trial::test("client::spool_and_flush", move || {
        in_tempdir("client", |dir| client_kill::run(&bins, dir, seed ^ 0xC11E, seconds))
    }));
    libtest_mimic::run(&args, trials).exit();
}
