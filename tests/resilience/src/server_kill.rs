//! nhc-server killed with SIGKILL at random moments while several clients submit
//! signed batches, then started again on the same database. Afterwards: every
//! acknowledged submission is stored exactly once, every other one completely or not
//! at all, and nothing else is there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use nhc_core::{DrvPath, NarHash, StorePath};
use serde_json::{json, Value};

use crate::client::Ctx;
use crate::fixtures::{builder, drv_path, nar_hash, store_path, submission, Out, TestBuilder};
use crate::rng::Rng;
use crate::server::{attestations_of, Db, Server};
use crate::{Bins, TestResult};

const BUILDERS: usize = 4;
/// Paths that several builders attest (each builder at most once), so that concurrent
/// submissions share rows.
const POPULAR: usize = 40;

pub struct Plan {
    pub rounds: usize,
    /// No new round starts after this.
    pub budget: Duration,
    pub clients: usize,
}

struct Submission {
    builder: usize,
    drv: Option<DrvPath>,
    outs: Vec<Out>,
    /// Per attempt: the (stored, duplicates) of a 2xx answer, or None without one.
    attempts: Vec<Option<(u64, u64)>>,
}

impl Submission {
    fn acked(&self) -> bool {
        self.attempts.iter().any(Option::is_some)
    }
}

#[derive(Default)]
struct Shared {
    subs: Vec<Submission>,
    /// Submissions without an answer, for a client to send again in a later round.
    retry: Vec<usize>,
    popular_used: Vec<HashSet<usize>>,
    problems: Vec<String>,
    unavailable: u64,
    transport_errors: u64,
}

struct Job {
    id: usize,
    body: Value,
    token: String,
}

fn next_job(rng: &mut Rng, builders: &[TestBuilder], popular: &[(StorePath, NarHash)], shared: &Mutex<Shared>) -> Job {
    let retry = {
        let mut s = shared.lock().expect("lock");
        let pick = (!s.retry.is_empty() && rng.chance(0.3)).then(|| rng.range(0, s.retry.len() as u64 - 1) as usize);
        pick.map(|i| s.retry.swap_remove(i)).filter(|&id| !s.subs[id].acked()).map(|id| {
            let sub = &s.subs[id];
            let b = &builders[sub.builder];
            let outputs = sub.outs.iter().map(|o| o.signed(b.key())).collect();
            Job { id, body: submission(sub.drv.as_ref(), outputs), token: b.token.clone() }
        })
    };
    if let Some(job) = retry {
        return job;
    }
    let b = rng.range(0, BUILDERS as u64 - 1) as usize;
    let shape = rng.range(0, 99);
    let (drv, mut outs) = if shape < 45 {
        // One build, as the hook sends it: a derivation and its named outputs.
        let name = crate::fixtures::unique("crash");
        let drv = drv_path(&name);
        let outs = ["out", "dev", "lib"][..rng.range(1, 3) as usize]
            .iter()
            .map(|o| Out::new(&store_path(&format!("{name}-{o}")), nar_hash()).named(o))
            .collect();
        (Some(drv), outs)
    } else {
        // A batch as `nhc flush` or a bulk import sends it; now and then a big one.
        let n = if shape < 85 { rng.range(2, 50) } else { rng.range(200, 1500) };
        let outs: Vec<Out> =
            (0..n).map(|i| Out::new(&store_path(&format!("batch-{i}")), nar_hash()).unnamed()).collect();
        (None, outs)
    };
    let mut s = shared.lock().expect("lock");
    if drv.is_none() && rng.chance(0.5) {
        let p = rng.range(0, POPULAR as u64 - 1) as usize;
        if s.popular_used[b].insert(p) {
            let (path, hash) = &popular[p];
            outs.push(Out::new(path, *hash).unnamed().refs(&[outs[0].path.clone()]));
        }
    }
    let outputs = outs.iter().map(|o| o.signed(builders[b].key())).collect();
    let body = submission(drv.as_ref(), outputs);
    s.subs.push(Submission { builder: b, drv, outs, attempts: Vec::new() });
    Job { id: s.subs.len() - 1, body, token: builders[b].token.clone() }
}

fn client(
    ctx: Ctx,
    builders: Arc<Vec<TestBuilder>>,
    popular: Arc<Vec<(StorePath, NarHash)>>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    while !stop.load(Ordering::Relaxed) {
        let job = next_job(&mut rng, &builders, &popular, &shared);
        let r = ctx.post_json("/v1/attestations", Some(&job.token), &job.body);
        let mut s = shared.lock().expect("lock");
        let n = s.subs[job.id].outs.len() as u64;
        let answer = match r {
            Ok(r) if r.status == 200 || r.status == 201 => {
                let v = r.json().unwrap_or(Value::Null);
                let (stored, dups) = (v["stored"].as_u64(), v["duplicates"].as_u64());
                match (stored, dups) {
                    (Some(st), Some(d))
                        if (st == n && d == 0 && r.status == 201) || (st == 0 && d == n && r.status == 200) =>
                    {
                        Some((st, d))
                    }
                    _ => {
                        s.problems.push(format!("a submission of {n} outputs was answered {}: {}", r.status, r.body));
                        Some((stored.unwrap_or(0), dups.unwrap_or(0)))
                    }
                }
            }
            Ok(r) if r.status == 503 => {
                s.unavailable += 1;
                None
            }
            Ok(r) => {
                s.problems.push(format!("a valid signed submission was answered {}: {}", r.status, r.body));
                None
            }
            Err(e) => {
                let msg = e.message().unwrap_or_default().to_owned();
                if msg.contains("server error") {
                    s.problems.push(msg);
                } else {
                    s.transport_errors += 1;
                }
                None
            }
        };
        s.subs[job.id].attempts.push(answer);
        if answer.is_none() {
            s.retry.push(job.id);
        }
    }
}

pub fn run(bins: &Bins, label: &str, db: Db, dir: &std::path::Path, seed: u64, plan: &Plan) -> TestResult {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut server = Server::start(&bins.server, &db, dir)?;
    let ctx = Ctx::new(&server.base(), &server.admin_token, Duration::from_secs(20));
    let builders: Arc<Vec<TestBuilder>> = Arc::new((0..BUILDERS).map(|_| builder(&ctx, 1)).collect::<Result<_, _>>()?);
    let popular: Arc<Vec<(StorePath, NarHash)>> =
        Arc::new((0..POPULAR).map(|i| (store_path(&format!("popular-{i}")), nar_hash())).collect());
    let shared = Arc::new(Mutex::new(Shared { popular_used: vec![HashSet::new(); BUILDERS], ..Shared::default() }));
    let (mut rounds, mut startup_kills) = (0, 0);
    let mut kill_moments = Vec::new();
    while rounds < plan.rounds && started.elapsed() < plan.budget {
        rounds += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..plan.clients)
            .map(|_| {
                let (ctx, builders, popular, shared, stop) =
                    (ctx.clone(), builders.clone(), popular.clone(), shared.clone(), stop.clone());
                let rng = rng.fork();
                thread::spawn(move || client(ctx, builders, popular, shared, stop, rng))
            })
            .collect();
        let moment = rng.range(150, 2500);
        thread::sleep(Duration::from_millis(moment));
        server.kill();
        kill_moments.push(moment);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| "a client thread panicked")?;
        }
        // Sometimes kill it again while it starts (opening the database, migrating).
        if rng.chance(0.3) {
            server.spawn()?;
            thread::sleep(Duration::from_millis(rng.range(0, 300)));
            server.kill();
            startup_kills += 1;
        }
        server.spawn()?;
        server.wait_healthy(Duration::from_secs(60))?;
    }
    let s = shared.lock().map_err(|_| "a client thread panicked holding the lock")?;
    let mut problems = s.problems.clone();
    let (whole, absent) = verify(&ctx, &builders, &popular, &s, &mut problems)?;
    let acked = s.subs.iter().filter(|x| x.acked()).count();
    let attestations: usize = s.subs.iter().map(|x| x.outs.len()).sum();
    eprintln!(
        "{label}: {rounds} kills under load at {kill_moments:?} ms, {startup_kills} more while starting; {} submissions \
         ({attestations} attestations), {acked} acknowledged, of the others {whole} stored whole and {absent} not at \
         all; {} transport errors, {} answers 503; {:.1} s",
        s.subs.len(),
        s.transport_errors,
        s.unavailable,
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        let shown = problems.len().min(20);
        return Err(format!(
            "{label} (seed {seed}): {} problem(s), the first {shown}:\n  {}\nserver log:\n{}",
            problems.len(),
            problems[..shown].join("\n  "),
            server.log_tail()
        )
        .into());
    }
    if s.transport_errors == 0 {
        return Err(format!("{label}: no kill interrupted a request: the test tested nothing").into());
    }
    Ok(())
}

/// Compares the server's listing of each builder with what was submitted.
fn verify(
    ctx: &Ctx,
    builders: &[TestBuilder],
    popular: &[(StorePath, NarHash)],
    s: &Shared,
    problems: &mut Vec<String>,
) -> Result<(usize, usize), Failed> {
    // (builder, path) -> (submission, output): each belongs to one submission.
    let mut index: HashMap<(usize, &str), (usize, usize)> = HashMap::new();
    for (id, sub) in s.subs.iter().enumerate() {
        for (i, o) in sub.outs.iter().enumerate() {
            index.insert((sub.builder, o.path.as_str()), (id, i));
        }
    }
    let mut present = vec![0usize; s.subs.len()];
    let mut log_indexes: Vec<u64> = Vec::new();
    for (b, tb) in builders.iter().enumerate() {
        let mut seen = HashSet::new();
        for a in attestations_of(ctx, &tb.name)? {
            match a["log_index"].as_u64() {
                Some(i) => log_indexes.push(i),
                None => problems.push(format!("an attestation without a log index: {a}")),
            }
            let path = a["output_path"].as_str().unwrap_or_default().to_owned();
            if !seen.insert(path.clone()) {
                problems.push(format!("{path} is stored twice for {}", tb.name));
                continue;
            }
            let Some(&(id, i)) = index.get(&(b, path.as_str())) else {
                problems.push(format!("{} holds {path}, which it never submitted: {a}", tb.name));
                continue;
            };
            let (sub, o) = (&s.subs[id], &s.subs[id].outs[i]);
            let expected = json!({
                "drv_path": sub.drv.as_ref().map(|d| d.as_str()),
                "output_name": o.name,
                "nar_hash": o.hash.to_string(),
                "nar_size": o.size,
            });
            let got = json!({
                "drv_path": a["drv_path"], "output_name": a["output_name"],
                "nar_hash": a["nar_hash"], "nar_size": a["nar_size"],
            });
            if got != expected {
                problems.push(format!("{path} of {} differs from what was submitted: {got} != {expected}", tb.name));
            }
            present[id] += 1;
        }
    }
    check_log(ctx, log_indexes, problems)?;
    let unacked = |want: usize| s.subs.iter().enumerate().filter(|(id, x)| !x.acked() && present[*id] == want).count();
    let (whole, absent) =
        (s.subs.iter().enumerate().filter(|(id, x)| !x.acked() && present[*id] == x.outs.len()).count(), unacked(0));
    for (id, sub) in s.subs.iter().enumerate() {
        let n = sub.outs.len();
        let stored: u64 = sub.attempts.iter().flatten().map(|(st, _)| st).sum();
        if present[id] != 0 && present[id] != n {
            problems.push(format!("half-written: {} of the {n} outputs of a submission are stored", present[id]));
        } else if sub.acked() && present[id] != n {
            problems.push(format!("lost: an acknowledged submission of {n} outputs is not stored"));
        } else if stored > n as u64 {
            problems.push(format!("counted twice: {stored} stored for a submission of {n} outputs"));
        } else if present[id] == 0 && stored > 0 {
            problems.push(format!("answered 'stored {stored}' but nothing is there"));
        } else if matches!(sub.attempts.first(), Some(Some((0, _)))) {
            problems.push(format!("the first attempt of a submission of {n} outputs was answered all duplicates"));
        }
    }
    // The counts of the shared paths agree with the rows.
    let mut expected: BTreeMap<&str, usize> = popular.iter().map(|(p, _)| (p.as_str(), 0)).collect();
    for (id, sub) in s.subs.iter().enumerate() {
        if present[id] == sub.outs.len() {
            for o in &sub.outs {
                if let Some(c) = expected.get_mut(o.path.as_str()) {
                    *c += 1;
                }
            }
        }
    }
    let paths: Vec<&str> = expected.keys().copied().collect();
    let v = ctx.post_json("/v1/status", None, &json!({ "paths": paths }))?.json()?;
    for (p, n) in expected {
        if v[p]["builders"].as_u64() != Some(n as u64) {
            problems.push(format!("POST /v1/status counts {} builders for {p}, the rows {n}", v[p]["builders"]));
        }
    }
    Ok((whole, absent))
}

/// The transparency log after the kills: the stored attestations hold the indexes
/// 0..n, each once (appended in their own transactions: none lost, none skipped),
/// and the sequencer's checkpoint reaches n.
fn check_log(ctx: &Ctx, mut indexes: Vec<u64>, problems: &mut Vec<String>) -> Result<(), Failed> {
    indexes.sort_unstable();
    let n = indexes.len() as u64;
    if let Some(i) = indexes.iter().enumerate().find(|(pos, i)| **i != *pos as u64) {
        problems.push(format!("log indexes are not 0..{n}: index {} at position {}", i.1, i.0));
    }
    let started = Instant::now();
    loop {
        let r = ctx.get("/log/checkpoint")?;
        let size: Option<u64> = r.body.lines().nth(1).and_then(|l| l.parse().ok());
        match size {
            Some(size) if size == n => return Ok(()),
            Some(size) if size > n => {
                problems.push(format!("the checkpoint covers {size} entries, only {n} attestations are stored"));
                return Ok(());
            }
            _ if started.elapsed() > Duration::from_secs(30) => {
                problems.push(format!("30 s after the load the checkpoint is {:?}, not of size {n}", r.body));
                return Ok(());
            }
            _ => thread::sleep(Duration::from_millis(100)),
        }
    }
}
