//! `nhc rebuild`: build what a jobset's evaluation has too few builders for, as the
//! server suggests it for this builder (`GET /v1/me`, then
//! `GET /v1/jobsets/{name}/evaluations/{rev}/suggest`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nhc_core::jobset::SuggestItem;
use nhc_core::{DrvPath, JobsetName, ReproStatus, Rev, StorePath};
use nhc_nix::Store;

use super::{CommandError, Exit};
use crate::api::Client;
use crate::config::{self, Config};
use crate::log;

/// Rebuild the paths of a jobset's evaluation that this builder has not attested, most
/// useful first (the server's suggestions: `not_reproduced` and `one_builder` paths
/// before others). Each derivation is realised locally: `nix-store --realise DRV` when
/// its output is absent, `--check` when present; the post-build-hook attests what is
/// built (with `--attest`, nhc also attests itself). Failures (the build failed, the
/// `.drv` is not in the store) are recorded in the state file and skipped on the next
/// run; what was built is attested, so the server does not suggest it again: a run that
/// is stopped resumes where it was.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    jobset: JobsetName,
    /// The evaluation (default: the jobset's latest).
    rev: Option<Rev>,
    /// At most this many paths (1–1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max: u32,
    /// Realise this many derivations at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Print what would be built, and how; build nothing.
    #[arg(long)]
    dry_run: bool,
    /// Attest each built output with nhc itself (for builders without the post-build-hook).
    #[arg(long)]
    attest: bool,
    /// Also retry the paths that failed in earlier runs.
    #[arg(long)]
    retry_failed: bool,
    /// Only paths of these statuses (comma-separated, or repeated): not_reproduced,
    /// partially_reproduced, one_builder, no_builds. Default: all of them.
    #[arg(long, value_name = "STATUS", value_delimiter = ',', value_parser = suggestable_status)]
    status: Vec<ReproStatus>,
    /// The state file (default: `$XDG_STATE_HOME/hash-collection/rebuild-JOBSET.failed`).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

/// A status the server suggests paths of (it never suggests `reproduced` ones).
fn suggestable_status(s: &str) -> Result<ReproStatus, String> {
    match ReproStatus::parse(s) {
        Ok(ReproStatus::Reproduced) => {
            Err("reproduced paths are never suggested: another build decides nothing".into())
        }
        Ok(st) => Ok(st),
        Err(_) => {
            Err(format!("{s:?} is not a status; one of not_reproduced, partially_reproduced, one_builder, no_builds"))
        }
    }
}

/// What to do with one suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The output is absent: build it.
    Build(DrvPath),
    /// The output is present: rebuild and compare.
    Check(DrvPath),
    /// Nothing can be done here, and why.
    Unavailable(String),
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let client = Client::for_config(cfg)?;
    let token = cfg.token()?;
    let builder = client.me(&token)?;
    let rev = match args.rev.clone() {
        Some(r) => r,
        None => {
            let detail = client
                .jobset(&args.jobset)?
                .ok_or_else(|| CommandError::Usage(format!("no jobset {} on {}", args.jobset, client.base())))?;
            detail
                .evaluations
                .first()
                .map(|e| e.rev.clone())
                .ok_or_else(|| CommandError::Usage(format!("jobset {} has no evaluation", args.jobset)))?
        }
    };
    let state = args.state.clone().unwrap_or_else(|| default_state(&args.jobset));
    let failed_before = if args.retry_failed { BTreeSet::new() } else { read_state(&state) };
    // Ask for more than --max: earlier failures are skipped, and with --status the
    // other statuses (the server's order puts each status's paths together).
    let ask = if args.status.is_empty() { (args.max as usize + failed_before.len()).min(1000) as u32 } else { 1000 };
    let items = client
        .suggest(&args.jobset, &rev, &builder, ask)?
        .ok_or_else(|| CommandError::Usage(format!("no evaluation {rev} of jobset {}", args.jobset)))?
        .items;
    let mut store = Store::new(config::store_location());
    let mut todo: Vec<(SuggestItem, Plan)> = Vec::new();
    let mut skipped = 0;
    for item in items {
        if !args.status.is_empty() && !args.status.contains(&item.status) {
            continue;
        }
        if failed_before.contains(item.path.as_str()) {
            skipped += 1;
            continue;
        }
        if todo.len() >= args.max as usize {
            break;
        }
        let plan = plan(&mut store, &item);
        todo.push((item, plan));
    }
    log::info(&format!(
        "rebuild: {} path(s) of {} {rev} for builder {builder}{}",
        todo.len(),
        args.jobset,
        if skipped > 0 {
            format!(" ({skipped} that failed before skipped; --retry-failed retries them)")
        } else {
            String::new()
        }
    ));
    if args.dry_run {
        for (item, plan) in &todo {
            let what = match plan {
                Plan::Build(d) => format!("build {d}"),
                Plan::Check(d) => format!("check {d}"),
                Plan::Unavailable(why) => format!("unavailable: {why}"),
            };
            println!("{} {} {what}", item.path, item.status.as_str());
        }
        return Ok(0);
    }
    let total = todo.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(StorePath, Result<&'static str, String>)>> = Mutex::new(Vec::new());
    let state_lock = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(total.max(1) as u32) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((item, plan)) = todo.get(i) else { break };
                eprintln!("nhc: [{}/{total}] {} {}", i + 1, item.path, describe(plan));
                let r = realise(plan);
                match &r {
                    Ok(how) => println!("{how} {}", item.path),
                    Err(why) => {
                        println!("failed {} {why}", item.path);
                        let _guard = state_lock.lock();
                        if let Err(e) = append_state(&state, &item.path, why) {
                            log::warn(&format!("cannot record the failure in {}: {e}", state.display()));
                        }
                    }
                }
                if let Ok(mut v) = results.lock() {
                    v.push((item.path.clone(), r));
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let built: Vec<&StorePath> = results.iter().filter(|(_, r)| r.is_ok()).map(|(p, _)| p).collect();
    let failures = results.len() - built.len();
    if args.attest && !built.is_empty() {
        let paths: Vec<String> = built.iter().map(|p| p.as_str().to_owned()).collect();
        let submit = super::submit::Args::for_paths(paths);
        super::submit::run(cfg, submit)?;
    }
    log::info(&format!("rebuild: {} built or checked, {failures} failed", built.len()));
    Ok(if failures == 0 { 0 } else { 1 })
}

fn describe(plan: &Plan) -> &'static str {
    match plan {
        Plan::Build(_) => "building",
        Plan::Check(_) => "rebuilding with --check",
        Plan::Unavailable(_) => "skipped",
    }
}

fn plan(store: &mut Store, item: &SuggestItem) -> Plan {
    let Some(drv) = item.drv_path.clone() else {
        return Plan::Unavailable("the evaluation names no derivation for it".into());
    };
    if std::fs::symlink_metadata(store.loc.real_path(drv.as_store_path())).is_err() {
        // The .drv may come from a substituter.
        let ok = Command::new("nix-store")
            .args(["--realise", drv.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Plan::Unavailable(format!("{drv} is not in the store and cannot be substituted"));
        }
    }
    match store.path_info(&item.path) {
        Ok(Some(_)) => Plan::Check(drv),
        _ => Plan::Build(drv),
    }
}

/// Runs the plan; what was done, or why it failed.
fn realise(plan: &Plan) -> Result<&'static str, String> {
    let (args, how): (&[&str], _) = match plan {
        Plan::Build(_) => (&["--realise"], "built"),
        Plan::Check(_) => (&["--realise", "--check", "--keep-failed"], "checked"),
        Plan::Unavailable(why) => return Err(why.clone()),
    };
    let drv = match plan {
        Plan::Build(d) | Plan::Check(d) => d,
        Plan::Unavailable(_) => unreachable!("handled above"),
    };
    let status = Command::new("nix-store")
        .args(args)
        .arg(drv.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run nix-store: {e}"))?;
    match status.code() {
        Some(0) => Ok(how),
        // 104: --check found that the rebuild differs (recorded by the diff-hook).
        Some(104) if matches!(plan, Plan::Check(_)) => Ok("differs"),
        _ => Err(format!("nix-store {} {drv} failed ({status})", args.join(" "))),
    }
}

fn default_state(jobset: &JobsetName) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hash-collection").join(format!("rebuild-{jobset}.failed"))
}

/// The paths that failed before: the first word of each line.
fn read_state(file: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .map(|t| t.lines().filter_map(|l| l.split(' ').next()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn append_state(file: &std::path::Path, path: &StorePath, why: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    let why: String = why.chars().filter(|c| *c != '\n').collect();
    writeln!(f, "{path} {why}")
}
