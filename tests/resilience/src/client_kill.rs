//! The client killed with SIGKILL at random moments: `nhc submit --async` and
//! `nhc-hook` (asynchronous mode) while they write the spool, `nhc flush` while it
//! sends, all running at once against a live server. Nix is replaced by a database
//! with Nix's schema (HASH_COLLECTION_NIX_DB), so no build is needed. Afterwards,
//! flushing until the spool is empty: every attestation whose spooling was reported is
//! on the server exactly once, every spool item arrived whole or not at all, nothing
//! was rejected, and nothing else is there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nhc_core::{DrvPath, NarHash, StorePath};
use nhc_nix::testing;

use crate::client::Ctx;
use crate::fixtures::{builder, drv_path, nar_hash, store_path};
use crate::rng::Rng;
use crate::server::{attestations_of, Db, Server};
use crate::{Bins, TestResult};

const GROUPS: usize = 1000;

/// One derivation and its outputs, as the fake Nix database records them.
struct Group {
    drv: DrvPath,
    outs: Vec<(&'static str, StorePath, NarHash, u64)>,
}

/// Everything the processes need: the binaries and their environment.
struct Env {
    nhc: PathBuf,
    hook: PathBuf,
    vars: Vec<(String, String)>,
    logs: PathBuf,
    seq: AtomicU64,
}

impl Env {
    /// Starts `bin` with `args` (and `extra` variables), output into numbered log files.
    fn spawn(
        &self,
        bin: &Path,
        args: &[String],
        extra: &[(&str, String)],
    ) -> Result<(Child, PathBuf, PathBuf), String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let (out, err) = (self.logs.join(format!("{n}.out")), self.logs.join(format!("{n}.err")));
        let mut cmd = Command::new(bin);
        cmd.args(args).env_clear().stdin(Stdio::null());
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.stdout(File::create(&out).map_err(|e| e.to_string())?);
        cmd.stderr(File::create(&err).map_err(|e| e.to_string())?);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok((child, out, err))
    }
}

/// Waits for `child`, or kills it (SIGKILL) after `kill_after`; true if it was killed.
fn run_child(mut child: Child, kill_after: Option<Duration>, limit: Duration) -> (bool, Option<ExitStatus>) {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return (false, Some(st));
        }
        let killed = kill_after.is_some_and(|d| start.elapsed() >= d);
        if killed || start.elapsed() >= limit {
            let _ = child.kill();
            let st = child.wait().ok();
            return (killed, st);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Default)]
struct Tally {
    spool_runs: u64,
    spool_killed: u64,
    flush_runs: u64,
    flush_killed: u64,
    respooled: u64,
}

pub fn run(bins: &Bins, dir: &Path, seed: u64, budget: Duration) -> TestResult {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let db = Db::Sqlite(dir.join("server.db"));
    let server = Server::start(&bins.server, &db, dir)?;
    let ctx = Ctx::new(&server.base(), &server.admin_token, Duration::from_secs(20));
    let b = builder(&ctx, 1)?;
    fs::write(dir.join("key"), b.key().to_file_contents()).map_err(|e| e.to_string())?;
    fs::write(dir.join("token"), &b.token).map_err(|e| e.to_string())?;

    // The builds, as Nix's database records them.
    let nix_db = dir.join("nix.sqlite");
    let c = testing::create_db(&nix_db);
    // One transaction: a commit per row would take a minute of fsyncs.
    c.execute_batch("BEGIN").map_err(|e| e.to_string())?;
    let mut groups = Vec::new();
    let mut prev: Option<i64> = None;
    for i in 0..GROUPS {
        let name = format!("client-{i}");
        let drv = drv_path(&name);
        let drv_id = testing::register(&c, drv.as_str(), &nar_hash().to_string(), 500, None);
        let mut outs = Vec::new();
        for o in ["out", "dev", "doc"][..rng.range(1, 3) as usize].iter().copied() {
            let path = store_path(&if o == "out" { name.clone() } else { format!("{name}-{o}") });
            let (h, size) = (nar_hash(), rng.range(100, 100_000));
            let id = testing::register(&c, path.as_str(), &h.to_string(), size, Some(drv.as_str()));
            testing::output(&c, drv_id, o, path.as_str());
            if let Some(p) = prev.filter(|_| o == "out") {
                testing::reference(&c, id, p);
            }
            if o == "out" {
                prev = Some(id);
            }
            outs.push((o, path, h, size));
        }
        groups.push(Group { drv, outs });
    }
    c.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    drop(c);

    let spool = dir.join("spool");
    let conf = dir.join("nix-conf");
    let logs = dir.join("logs");
    for d in [&conf, &logs] {
        fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    fs::write(conf.join("nix.conf"), "").map_err(|e| e.to_string())?;
    let path_str = |p: &Path| p.display().to_string();
    let env = Arc::new(Env {
        nhc: bins.nhc.clone(),
        hook: bins.hook.clone(),
        vars: vec![
            ("HASH_COLLECTION_CONFIG".into(), "/dev/null".into()),
            ("HASH_COLLECTION_SERVER".into(), server.base()),
            ("HASH_COLLECTION_TOKEN_FILE".into(), path_str(&dir.join("token"))),
            ("HASH_COLLECTION_SECRET_KEY_FILE".into(), path_str(&dir.join("key"))),
            ("HASH_COLLECTION_SPOOL".into(), path_str(&spool)),
            ("HASH_COLLECTION_NIX_DB".into(), path_str(&nix_db)),
            ("HASH_COLLECTION_VERBOSE".into(), "1".into()),
            ("NIX_CONF_DIR".into(), path_str(&conf)),
            ("HOME".into(), path_str(dir)),
        ],
        logs,
        seq: AtomicU64::new(0),
    });
    let groups = Arc::new(groups);
    let by_path: Arc<HashMap<String, usize>> = Arc::new(
        groups
            .iter()
            .enumerate()
            .flat_map(|(g, gr)| gr.outs.iter().map(move |o| (o.1.as_str().to_owned(), g)))
            .collect(),
    );

    // Spool writers and flushes at once; the writers stop when every group was spooled
    // (or the time is up), the flushes right after.
    let acked = Arc::new(Mutex::new(HashSet::<usize>::new()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let writers_done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + budget;
    let writer = {
        let (env, groups, by_path, acked, tally, done) =
            (env.clone(), groups.clone(), by_path.clone(), acked.clone(), tally.clone(), writers_done.clone());
        let mut rng = rng.fork();
        thread::spawn(move || -> Result<(), String> {
            let mut pending: VecDeque<usize> = (0..groups.len()).collect();
            while !pending.is_empty() && Instant::now() < deadline {
                let take = (rng.range(1, 4) as usize).min(pending.len());
                let batch: Vec<usize> = pending.drain(..take).collect();
                let mode = rng.range(0, 2);
                let (bin, args, extra) = match mode {
                    // nhc-hook as Nix runs it, one build: OUT_PATHS empty as in Nix 2.8.0, or listed.
                    0 => {
                        let g = &groups[batch[0]];
                        let outs = if rng.chance(0.5) {
                            g.outs.iter().map(|o| o.1.as_str()).collect::<Vec<_>>().join(" ")
                        } else {
                            String::new()
                        };
                        pending.extend(batch[1..].iter().copied());
                        let extra = vec![
                            ("DRV_PATH", g.drv.as_str().to_owned()),
                            ("OUT_PATHS", outs),
                            ("HASH_COLLECTION_ASYNC", "1".to_owned()),
                        ];
                        (env.hook.clone(), Vec::new(), extra)
                    }
                    // nhc submit --async with the derivations, or with every output path.
                    1 => {
                        let mut args = vec!["submit".to_owned(), "--async".to_owned()];
                        args.extend(batch.iter().map(|&g| groups[g].drv.as_str().to_owned()));
                        (env.nhc.clone(), args, Vec::new())
                    }
                    _ => {
                        let mut args = vec!["submit".to_owned(), "--async".to_owned()];
                        args.extend(batch.iter().flat_map(|&g| groups[g].outs.iter().map(|o| o.1.as_str().to_owned())));
                        (env.nhc.clone(), args, Vec::new())
                    }
                };
                let batch = if mode == 0 { vec![batch[0]] } else { batch };
                let (child, out, err) = env.spawn(&bin, &args, &extra)?;
                let kill_after = rng.chance(0.5).then(|| Duration::from_millis(rng.range(0, 25)));
                let (killed, _) = run_child(child, kill_after, Duration::from_secs(30));
                // A group counts as spooled once the process said so: it says so
                // after the item is durably in the spool.
                let said = |p: &Path| fs::read_to_string(p).unwrap_or_default();
                let mut spooled = HashSet::new();
                if mode == 0 {
                    if said(&err).contains("spooled as") {
                        spooled.insert(batch[0]);
                    }
                } else {
                    for line in said(&out).lines() {
                        let Some(rest) = line.strip_prefix("spooled ") else { continue };
                        let paths = rest.rsplit_once(" as ").map(|(p, _)| p).unwrap_or_default();
                        spooled.extend(paths.split(' ').filter_map(|p| by_path.get(p).copied()));
                    }
                }
                let mut t = tally.lock().map_err(|_| "lock")?;
                t.spool_runs += 1;
                t.spool_killed += u64::from(killed);
                for g in batch {
                    if spooled.contains(&g) {
                        acked.lock().map_err(|_| "lock")?.insert(g);
                    } else if rng.chance(0.5) {
                        // Run again, as a user would: if the killed run had spooled it
                        // after all, the spool now holds it twice.
                        t.respooled += 1;
                        pending.push_back(g);
                    }
                }
            }
            done.store(true, Ordering::Relaxed);
            Ok(())
        })
    };
    let flusher = {
        let (env, tally, done) = (env.clone(), tally.clone(), writers_done.clone());
        let mut rng = rng.fork();
        thread::spawn(move || -> Result<(), String> {
            while !done.load(Ordering::Relaxed) {
                // One flush, or two at once (they share the spool through locks).
                let n = rng.range(1, 2);
                let mut running = Vec::new();
                for _ in 0..n {
                    let (child, _, _) = env.spawn(&env.nhc, &["flush".to_owned()], &[])?;
                    let kill_after = rng.chance(0.7).then(|| Duration::from_millis(rng.range(0, 150)));
                    running.push((child, kill_after));
                }
                for (child, kill_after) in running {
                    let (killed, _) = run_child(child, kill_after, Duration::from_secs(60));
                    let mut t = tally.lock().map_err(|_| "lock")?;
                    t.flush_runs += 1;
                    t.flush_killed += u64::from(killed);
                }
                thread::sleep(Duration::from_millis(rng.range(0, 30)));
            }
            Ok(())
        })
    };
    writer.join().map_err(|_| "the spool writer thread panicked")??;
    flusher.join().map_err(|_| "the flush thread panicked")??;

    // Then flush, unharmed, until the spool is empty.
    let items = |d: &Path| -> Vec<PathBuf> {
        fs::read_dir(d).map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default()
    };
    // Items, not the `.tmp-*` files that killed writers leave (removed after a day).
    let is_tmp = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".tmp-"));
    let json_items =
        |d: &Path| items(d).into_iter().filter(|p| !is_tmp(p) && p.extension().is_some_and(|e| e == "json")).count();
    let mut last = String::new();
    for _ in 0..10 {
        let (child, _, err) = env.spawn(&env.nhc, &["flush".to_owned()], &[])?;
        let (_, st) = run_child(child, None, Duration::from_secs(120));
        last = fs::read_to_string(&err).unwrap_or_default();
        if st.is_some_and(|s| s.success()) && json_items(&spool) == 0 {
            break;
        }
    }
    let mut problems = Vec::new();
    if json_items(&spool) != 0 {
        problems.push(format!("{} item(s) left in the spool; the last flush said:\n{last}", json_items(&spool)));
    }
    for sub in ["rejected", "mismatch"] {
        let found = items(&spool.join(sub));
        if !found.is_empty() {
            let first = found.iter().find(|p| p.extension().is_some_and(|e| e == "reason"));
            let reason = first.and_then(|p| fs::read_to_string(p).ok()).unwrap_or_default();
            problems.push(format!("{} file(s) in {sub}/, e.g. {reason}", found.len()));
        }
    }
    let retries = items(&spool).into_iter().filter(|p| p.extension().is_some_and(|e| e == "retry")).count();
    if retries > 0 {
        problems.push(format!("{retries} .retry file(s): the server failed on some items"));
    }

    // The server's side.
    let mut present = vec![0usize; groups.len()];
    let mut seen = HashSet::new();
    for a in attestations_of(&ctx, &b.name)? {
        let path = a["output_path"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(path.clone()) {
            problems.push(format!("{path} is stored twice"));
            continue;
        }
        let Some(&g) = by_path.get(&path) else {
            problems.push(format!("the server holds {path}, which nobody spooled"));
            continue;
        };
        let Some(o) = groups[g].outs.iter().find(|o| o.1.as_str() == path) else { continue };
        let expected = serde_json::json!([groups[g].drv.as_str(), o.0, o.2.to_string(), o.3]);
        let got = serde_json::json!([a["drv_path"], a["output_name"], a["nar_hash"], a["nar_size"]]);
        if got != expected {
            problems.push(format!("{path} differs from Nix's record: {got} != {expected}"));
        }
        present[g] += 1;
    }
    let acked = acked.lock().map_err(|_| "lock")?;
    let (mut whole_unacked, mut absent) = (0, 0);
    for (g, gr) in groups.iter().enumerate() {
        let n = gr.outs.len();
        match (present[g], acked.contains(&g)) {
            (p, true) if p != n => problems.push(format!("lost: {} spooled {n} outputs, the server has {p}", gr.drv)),
            (0, false) => absent += 1,
            (p, false) if p == n => whole_unacked += 1,
            (p, _) if p != n => problems.push(format!("half-delivered: {p} of the {n} outputs of {}", gr.drv)),
            _ => {}
        }
    }
    let t = tally.lock().map_err(|_| "lock")?;
    let tmp_left = items(&spool).iter().filter(|p| is_tmp(p)).count();
    eprintln!(
        "client: {} spool writers ({} killed, {} groups spooled again), {} flushes ({} killed); {} of {} builds \
         reported spooled and delivered, {whole_unacked} more delivered whole from killed writers, {absent} never \
         spooled; {} attestations on the server; {tmp_left} .tmp file(s) of killed writers left; {:.1} s",
        t.spool_runs,
        t.spool_killed,
        t.respooled,
        t.flush_runs,
        t.flush_killed,
        acked.len(),
        groups.len(),
        seen.len(),
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        let shown = problems.len().min(20);
        return Err(format!(
            "client (seed {seed}): {} problem(s), the first {shown}:\n  {}\nserver log:\n{}",
            problems.len(),
            problems[..shown].join("\n  "),
            server.log_tail()
        )
        .into());
    }
    if t.spool_killed == 0 || t.flush_killed == 0 {
        return Err("no spool writer or no flush was killed: the test tested nothing".into());
    }
    Ok(())
}
