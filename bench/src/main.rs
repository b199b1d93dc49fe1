//! `nhc-bench`: creates builders, generates properly signed attestations from a
//! deterministic seed, and drives a nix-hash-collection server over real HTTP.
//! See BENCHMARKS.md for the runs and their figures, and bench/run.sh for the
//! script that makes them.

mod cache;
mod dataset;
mod driver;
mod rss;
mod soak;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use hyper::Method;

use dataset::Dataset;
use driver::Job;

#[derive(Parser)]
#[command(name = "nhc-bench", about = "Load generator for nix-hash-collection (deterministic, signed, real HTTP)")]
struct Cli {
    /// Server address (host:port, plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Admin token, to create the benchmark's builders.
    #[arg(long, env = "NHC_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Seed of the dataset: keys, paths and hashes derive from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// PID of the server, to report its resident memory during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit pre-generated attestations as fast as the server takes them.
    Ingest {
        #[arg(long, default_value_t = 16)]
        builders: u64,
        #[arg(long, default_value_t = 1)]
        outputs_per_request: u64,
        #[arg(long, default_value_t = 100_000)]
        attestations: u64,
    },
    /// Load `paths` derivations, each attested by every builder (one request per
    /// derivation and builder, as the hook sends them).
    Load {
        #[arg(long, default_value_t = 250_000)]
        paths: u64,
        #[arg(long, default_value_t = 4)]
        builders: u64,
    },
    /// Mixed load with hostile clients for a while, sampling `/health` latency and the
    /// server's RSS (needs --server-pid); exits 1 when a bound is crossed.
    Soak(soak::Args),
    /// Write a binary cache of `paths` narinfo signed by builder 0's key into DIR
    /// (with paths.txt and key.pub), and with --listen serve it over HTTP until killed
    /// (the `nhc import` benchmark, bench/import.sh).
    NarinfoCache {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 100_000)]
        paths: u64,
        /// Serve DIR at this address (host:port) instead of generating it.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Query random paths of a dataset made by `load` with the same seed.
    Read {
        #[arg(long, default_value_t = 250_000)]
        paths: u64,
        #[arg(long, value_parser = ["outputs", "derivations", "narinfo"], default_value = "outputs")]
        kind: String,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let ds = Arc::new(Dataset { seed: cli.seed });
    if let Command::Soak(args) = &cli.command {
        let pass = soak::run(&cli.addr, cli.admin_token.as_deref(), cli.seed, cli.server_pid, args);
        std::process::exit(if pass { 0 } else { 1 });
    }
    if let Command::NarinfoCache { dir, paths, listen } = &cli.command {
        let r = match listen {
            Some(addr) => cache::serve(dir, addr),
            None => cache::generate(&ds, dir, *paths),
        };
        if let Err(e) = r {
            eprintln!("error: {}: {e}", dir.display());
            std::process::exit(1);
        }
        return;
    }
    let sampler = cli.server_pid.map(rss::Sampler::start);
    match cli.command {
        Command::Ingest { builders, outputs_per_request, attestations } => {
            let tokens = create_builders(&cli.addr, cli.admin_token.as_deref(), &ds, builders);
            let k = outputs_per_request.max(1);
            let requests = attestations / k;
            eprintln!("generating {requests} signed submissions of {k} output(s)...");
            let bodies = Arc::new(pregenerate(&ds, &tokens, requests, k));
            eprintln!("sending over {} connections", cli.connections);
            let stats = driver::run(&cli.addr, cli.connections, None, move |i| {
                bodies.get(i as usize).map(|(token, body)| Job {
                    method: Method::POST,
                    path: "/v1/attestations".into(),
                    body: body.clone(),
                    token: Some(token.clone()),
                })
            });
            println!("ingest, {k} output(s) per request: {}", stats.summary());
            println!("  = {:.0} verified attestations/s", stats.per_second(stats.requests * k));
            report_failures(&stats);
        }
        Command::Load { paths, builders } => {
            let tokens = Arc::new(create_builders(&cli.addr, cli.admin_token.as_deref(), &ds, builders));
            let keys: Arc<Vec<_>> = Arc::new((0..builders).map(|b| ds.key(b)).collect());
            let ds2 = ds.clone();
            let total = paths * builders;
            let stats = driver::run(&cli.addr, cli.connections, None, move |r| {
                (r < total).then(|| {
                    let (i, b) = (r / builders, r % builders);
                    Job {
                        method: Method::POST,
                        path: "/v1/attestations".into(),
                        body: Bytes::from(ds2.submission(&keys[b as usize], b, i, 1)),
                        token: Some(tokens[b as usize].clone()),
                    }
                })
            });
            println!("load of {total} attestations, 1 per request: {}", stats.summary());
            report_failures(&stats);
        }
        Command::Read { paths, kind, seconds } => {
            let ds2 = ds.clone();
            let stats = driver::run(&cli.addr, cli.connections, Some(Duration::from_secs(seconds)), move |r| {
                // A fixed odd multiplier spreads the requests over the whole dataset.
                let i = r.wrapping_mul(0x9E37_79B9_7F4A_7C15) % paths;
                let path = match kind.as_str() {
                    "outputs" => format!("/v1/outputs/{}", ds2.output_path(i).basename()),
                    "derivations" => format!("/v1/derivations/{}", ds2.drv_path(i).as_store_path().basename()),
                    _ => format!("/{}.narinfo", ds2.output_path(i).hash_part()),
                };
                Some(Job { method: Method::GET, path, body: Bytes::new(), token: None })
            });
            println!("read: {}", stats.summary());
            report_failures(&stats);
        }
        Command::Soak(_) | Command::NarinfoCache { .. } => {}
    }
    if let Some(s) = sampler {
        let (max_rss, hwm) = s.stop();
        println!(
            "server RSS during the run: max {:.1} MB (VmHWM {:.1} MB)",
            max_rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
}

fn report_failures(stats: &driver::Stats) {
    if stats.failures > 0 {
        eprintln!("{} failed requests; first: {}", stats.failures, stats.first_failure.as_deref().unwrap_or("?"));
        std::process::exit(1);
    }
}

/// Creates builders 0..n of the dataset through the admin API and returns their tokens.
fn create_builders(addr: &str, admin: Option<&str>, ds: &Dataset, n: u64) -> Vec<Arc<str>> {
    let admin = admin.unwrap_or_else(|| {
        eprintln!("error: --admin-token (or NHC_ADMIN_TOKEN) is needed to create the benchmark's builders");
        std::process::exit(2)
    });
    let jobs: Vec<Job> = (0..n)
        .map(|b| Job {
            method: Method::POST,
            path: "/v1/admin/builders".into(),
            body: Bytes::from(
                serde_json::json!({"name": ds.builder_name(b), "public_keys": [ds.key(b).public_key().to_string()]})
                    .to_string(),
            ),
            token: Some(admin.into()),
        })
        .collect();
    let jobs = Arc::new(std::sync::Mutex::new(jobs.into_iter()));
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (addr, n_tokens) = (addr.to_owned(), tokens.clone());
    let stats = driver::run_collect(
        &addr,
        1,
        move |_| jobs.lock().ok()?.next(),
        move |body| {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                if let (Some(name), Some(token)) = (v["name"].as_str(), v["token"].as_str()) {
                    if let Ok(mut t) = n_tokens.lock() {
                        t.push((name.to_owned(), Arc::<str>::from(token)));
                    }
                }
            }
        },
    );
    if stats.failures > 0 {
        eprintln!(
            "error: cannot create the benchmark's builders ({}); use a fresh database or another --seed",
            stats.first_failure.as_deref().unwrap_or("?")
        );
        std::process::exit(1);
    }
    let mut by_name = tokens.lock().map(|t| t.clone()).unwrap_or_default();
    by_name.sort_by_key(|(name, _)| (0..n).position(|b| ds.builder_name(b) == *name));
    by_name.into_iter().map(|(_, t)| t).collect()
}

/// Request r goes to builder r % B and covers paths from (r / B) * k, so every
/// path is attested by every builder, as when many builders rebuild one package set.
fn pregenerate(ds: &Arc<Dataset>, tokens: &[Arc<str>], requests: u64, k: u64) -> Vec<(Arc<str>, Bytes)> {
    let b_count = tokens.len() as u64;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
    let chunks: Vec<Vec<(Arc<str>, Bytes)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ds = ds.clone();
                let keys: Vec<_> = (0..b_count).map(|b| ds.key(b)).collect();
                s.spawn(move || {
                    (t * requests / threads..(t + 1) * requests / threads)
                        .map(|r| {
                            let b = r % b_count;
                            let body = ds.submission(&keys[b as usize], b, (r / b_count) * k, k);
                            (tokens[b as usize].clone(), Bytes::from(body))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("generator thread")).collect()
    });
    chunks.into_iter().flatten().collect()
}
