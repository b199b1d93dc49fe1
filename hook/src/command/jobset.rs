//! `nhc jobset`: upload an evaluation of a jobset (`push`), show one (`show`), and what
//! changed between two (`diff`).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::jobset::{
    EvaluationDiff, EvaluationItem, EvaluationPage, MAX_EVALUATION_PATHS, MAX_PAGE_LIMIT, MAX_UPLOAD_BYTES,
};
use nhc_core::{DrvPath, JobsetName, ReproStatus, Rev, StorePath, Summary};
use nhc_jobset::upload::output_name_from_path;
use nhc_jobset::{Percentages, UploadError};
use nhc_nix::command::nix_store_query_paths;
use nhc_nix::{Store, StoreLocation};

use super::{CommandError, Exit};
use crate::api::Client;
use crate::config::{self, Config};
use crate::log;

/// An upload of 250,000 paths is about 20 MB (more as an SBOM): give it time.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(900);
/// Reading an evaluation page by page.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Jobsets: upload the store paths of one revision (an evaluation), show an
/// evaluation's reproducibility, compare two.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    Push(PushArgs),
    Show(ShowArgs),
    Diff(DiffArgs),
}

/// Upload an evaluation: the output paths of revision REV of JOBSET.
///
/// Re-pushing a revision replaces it. The token is the jobset's (`nhc-server jobset
/// token JOBSET`) or the admin token.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct PushArgs {
    /// The jobset, as `nhc-server jobset add` created it.
    jobset: String,
    /// The revision, e.g. a nixpkgs commit: 1 to 128 characters of A-Z a-z 0-9 . _ -
    rev: String,
    #[command(flatten)]
    source: Source,
    /// Read the token from FILE (instead of $HASH_COLLECTION_JOBSET_TOKEN[_FILE]).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Where the paths come from: exactly one of these.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct Source {
    /// The runtime closure of these paths (or `result` links), from Nix's database.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    closure: Vec<String>,
    /// Every output of every derivation in the closure of these `.drv` files.
    #[arg(long, num_args = 1.., value_name = "DRV")]
    build_closure: Vec<String>,
    /// A CycloneDX JSON SBOM (sbomnix, bombon, lila's nix-build-sbom), sent as it is.
    #[arg(long, value_name = "FILE")]
    sbom: Option<PathBuf>,
    /// Store paths one a line (`nix-store -qR` output; `.drv` lines stand for their
    /// outputs) or `{"paths": [...]}` JSON; `-` reads standard input.
    #[arg(long, value_name = "FILE|-")]
    paths_from: Option<String>,
}

/// Print an evaluation's summary and the paths that are not reproduced.
///
/// REV omitted: the latest evaluation. Exit status 0 when every path reproduced, 2
/// when some path has differing hashes, 1 otherwise (paths with one builder or none,
/// or an error).
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct ShowArgs {
    jobset: String,
    rev: Option<String>,
    /// Print the summary, percentages and those paths as JSON.
    #[arg(long)]
    json: bool,
}

/// What changed from REV1 to REV2: paths added, removed, and whose status differs.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct DiffArgs {
    jobset: String,
    rev1: String,
    rev2: String,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    match args.cmd {
        Cmd::Push(a) => push(cfg, &config::store_location(), a),
        Cmd::Show(a) => show(cfg, a),
        Cmd::Diff(a) => diff(cfg, a),
    }
}

/// A usage mistake found after parsing.
fn usage(msg: String) -> CommandError {
    CommandError::Usage(msg)
}

/// A body for `PUT /v1/jobsets/{name}/evaluations/{rev}` and its Content-Type.
struct Body {
    content_type: &'static str,
    bytes: Vec<u8>,
}

fn json_body(items: &[EvaluationItem]) -> Result<Body, CommandError> {
    #[derive(serde::Serialize)]
    struct Paths<'a> {
        paths: &'a [EvaluationItem],
    }
    Ok(Body { content_type: "application/json", bytes: serde_json::to_vec(&Paths { paths: items })? })
}

fn too_many() -> CommandError {
    UploadError::TooManyPaths { max: MAX_EVALUATION_PATHS }.into()
}

/// The runtime closure of `roots` with each path's deriver and output name, from
/// Nix's database; without it, the paths `nix-store --query --requisites` prints.
pub(crate) fn closure_items(store: &mut Store, roots: &[StorePath]) -> Result<Vec<EvaluationItem>, CommandError> {
    let found = store.db().and_then(|db| db.closure_with_derivers(roots));
    let items: Vec<EvaluationItem> = match found {
        Ok(m) => {
            if let Some(r) = roots.iter().find(|r| !m.contains_key(*r)) {
                return Err(usage(format!("{r} is not a valid path in the store ({})", store.loc.uri)));
            }
            m.into_iter()
                .map(|(path, drv)| {
                    let output_name = drv.as_ref().and_then(|d| output_name_from_path(d, &path));
                    EvaluationItem { path, drv_path: drv, output_name }
                })
                .collect()
        }
        Err(why) => {
            log::warn(&format!("{why}; asking nix-store for the closure"));
            let mut args = vec!["--requisites"];
            args.extend(roots.iter().map(StorePath::as_str));
            let paths: BTreeSet<StorePath> = nix_store_query_paths(&args)?.into_iter().collect();
            paths.into_iter().map(EvaluationItem::bare).collect()
        }
    };
    if items.len() > MAX_EVALUATION_PATHS {
        return Err(too_many());
    }
    Ok(items)
}

/// Every output of every derivation in the closure of `drvs` (their input
/// derivations, transitively), read from the `.drv` files; outputs whose paths only
/// the build knows (floating content-addressed) come from Nix's database, else are
/// left out with a warning.
pub(crate) fn build_closure_items(store: &mut Store, drvs: &[DrvPath]) -> Result<Vec<EvaluationItem>, CommandError> {
    let mut seen: HashSet<DrvPath> = drvs.iter().cloned().collect();
    let mut queue: VecDeque<DrvPath> = drvs.iter().cloned().collect();
    let mut paths = HashSet::new();
    let mut items = Vec::new();
    while let Some(drv) = queue.pop_front() {
        let d = store.read_derivation(&drv)?;
        let mut outs: Vec<_> = d.outputs.iter().filter_map(|(n, p)| Some((n.clone(), p.clone()?))).collect();
        if outs.len() < d.outputs.len() {
            match store.outputs_of(&drv) {
                Ok(all) => outs = all,
                Err(e) => log::warn(&format!("{e}; its unbuilt outputs are left out")),
            }
        }
        for (name, path) in outs {
            if paths.insert(path.clone()) {
                items.push(EvaluationItem { path, drv_path: Some(drv.clone()), output_name: Some(name) });
                if items.len() > MAX_EVALUATION_PATHS {
                    return Err(too_many());
                }
            }
        }
        for (input, _) in d.input_drvs {
            if seen.insert(input.clone()) {
                queue.push_back(input);
            }
        }
    }
    Ok(items)
}

/// A `--paths-from` file: JSON is sent as it is; in a plain list, `.drv` lines are
/// replaced by the derivation's outputs (the server takes output paths only).
fn paths_from(store: &mut Store, text: Vec<u8>) -> Result<Body, CommandError> {
    let s = std::str::from_utf8(&text).map_err(|_| UploadError::NotUtf8)?;
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    if s.trim_start().starts_with('{') {
        return Ok(Body { content_type: "application/json", bytes: text });
    }
    let mut drvs = Vec::new();
    for (n, line) in s.lines().enumerate() {
        let line = line.trim();
        if line.ends_with(".drv") && !line.starts_with('#') {
            let p = StorePath::parse(line)
                .map_err(|source| UploadError::InvalidPath { at: format!("line {}", n + 1), source })?;
            drvs.push(DrvPath::try_from(p)?);
        }
    }
    if drvs.is_empty() {
        return Ok(Body { content_type: "text/plain; charset=utf-8", bytes: text });
    }
    let mut items = Vec::new();
    for line in s.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let p = StorePath::parse(line)?;
        match DrvPath::try_from(p.clone()) {
            Ok(drv) => {
                for (name, path) in store.outputs_of(&drv)? {
                    items.push(EvaluationItem { path, drv_path: Some(drv.clone()), output_name: Some(name) });
                }
            }
            Err(_) => items.push(EvaluationItem::bare(p)),
        }
    }
    json_body(&items)
}

fn read_input(arg: &str) -> Result<Vec<u8>, CommandError> {
    let mut buf = Vec::new();
    if arg == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)?;
    } else {
        buf = std::fs::read(arg).map_err(|e| usage(format!("{arg}: {e}")))?;
    }
    Ok(buf)
}

fn gather(store: &mut Store, src: &Source) -> Result<Body, CommandError> {
    if !src.closure.is_empty() {
        let mut roots = Vec::new();
        for a in &src.closure {
            let p = store.loc.resolve_arg(a)?;
            if p.is_derivation() {
                return Err(usage(format!("{p} is a derivation: use --build-closure for its build-time closure")));
            }
            roots.push(p);
        }
        return json_body(&closure_items(store, &roots)?);
    }
    if !src.build_closure.is_empty() {
        let mut drvs = Vec::new();
        for a in &src.build_closure {
            let p = store.loc.resolve_arg(a)?;
            let drv = DrvPath::try_from(p.clone())
                .map_err(|_| usage(format!("{p} is not a derivation: use --closure for its runtime closure")))?;
            drvs.push(drv);
        }
        return json_body(&build_closure_items(store, &drvs)?);
    }
    if let Some(f) = &src.sbom {
        let bytes = std::fs::read(f).map_err(|e| usage(format!("{}: {e}", f.display())))?;
        return Ok(Body { content_type: "application/json", bytes });
    }
    match &src.paths_from {
        Some(arg) => paths_from(store, read_input(arg)?),
        None => Err(usage("give one of --closure, --build-closure, --sbom, --paths-from".into())),
    }
}

/// `body`, or when it is over `max` bytes (an SBOM is much larger than its paths: a
/// 250,000-component one exceeds the route's limit) its `items` in the compact form,
/// with their derivations and output names but without the SBOM's dependency edges;
/// when even that is over (250,000 paths with derivations are ~45 MB), the bare paths
/// as a list (~16 MB for 250,000), which the server completes from attestations.
fn within_limit(body: Body, items: &[EvaluationItem], max: usize) -> Result<Body, CommandError> {
    if body.bytes.len() <= max {
        return Ok(body);
    }
    let mb = |n: usize| n as f64 / 1e6;
    let compact = json_body(items)?;
    if compact.bytes.len() <= max {
        log::warn(&format!(
            "the upload is {:.1} MB, over the server's {:.1} MB: sending its {} paths ({:.1} MB) without the SBOM's \
             dependency edges",
            mb(body.bytes.len()),
            mb(max),
            items.len(),
            mb(compact.bytes.len())
        ));
        return Ok(compact);
    }
    let mut list = Vec::with_capacity(items.len() * 64);
    for i in items {
        list.extend_from_slice(i.path.as_str().as_bytes());
        list.push(b'\n');
    }
    log::warn(&format!(
        "the upload is {:.1} MB, over the server's {:.1} MB: sending its {} paths as a plain list ({:.1} MB), \
         without their derivations and output names (the server takes them from attestations)",
        mb(body.bytes.len()),
        mb(max),
        items.len(),
        mb(list.len())
    ));
    Ok(Body { content_type: "text/plain", bytes: list })
}

/// Upload progress on a terminal: `uploading 3.1 / 20.0 MB (15%)`, redrawn in place.
struct Bar {
    on: bool,
    shown: Option<u64>,
}

impl Bar {
    fn update(&mut self, sent: u64, total: u64) {
        let pct = sent * 100 / total.max(1);
        if !self.on || self.shown == Some(pct) {
            return;
        }
        self.shown = Some(pct);
        let mb = |b: u64| b as f64 / 1e6;
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\rnhc: uploading {:.1} / {:.1} MB ({pct}%)", mb(sent), mb(total));
        let _ = e.flush();
    }

    fn finish(&mut self) {
        if self.on && self.shown.is_some() {
            eprintln!();
        }
    }
}

fn push(cfg: &Config, loc: &StoreLocation, args: PushArgs) -> Exit {
    let jobset = JobsetName::parse(&args.jobset)?;
    let rev = Rev::parse(&args.rev)?;
    let token = cfg.jobset_token(args.token_file.as_deref())?;
    let server = cfg.server()?;
    let mut store = Store::new(loc.clone());
    let body = gather(&mut store, &args.source)?;
    // The server's own rules, so that a bad file fails here, before the upload.
    let upload = nhc_jobset::parse_upload_within(Some(body.content_type), &body.bytes, usize::MAX)?;
    let body = within_limit(body, &upload.items, MAX_UPLOAD_BYTES)?;
    let mut note = format!("{} paths", upload.items.len());
    if !upload.edges.is_empty() {
        note.push_str(&format!(", {} dependency edges", upload.edges.len()));
    }
    if upload.skipped_components > 0 {
        note.push_str(&format!(" ({} SBOM components name no output path)", upload.skipped_components));
    }
    log::info(&format!("{jobset} {rev}: {note}"));
    let client = Client::new(server, cfg.connect_timeout, UPLOAD_TIMEOUT.max(cfg.timeout));
    let mut bar = Bar { on: std::io::stderr().is_terminal(), shown: None };
    let answer =
        client.put_evaluation(&token, &jobset, &rev, body.content_type, &body.bytes, &mut |s, t| bar.update(s, t));
    bar.finish();
    let (created, r) = answer?;
    println!("{} {}/{}: {} paths", if created { "created" } else { "replaced" }, r.jobset, r.rev, r.paths);
    Ok(0)
}

/// The exit status of `show`, as `nhc status` has it.
pub(crate) fn exit_status(s: &Summary) -> i32 {
    if s.differing() > 0 {
        2
    } else if s.total() > 0 && s.reproduced == s.total() {
        0
    } else {
        1
    }
}

/// The statuses `show` lists, worst first.
const NOT_REPRODUCED: [ReproStatus; 4] =
    [ReproStatus::NotReproduced, ReproStatus::PartiallyReproduced, ReproStatus::OneBuilder, ReproStatus::NoBuilds];

fn not_found(what: String) -> CommandError {
    usage(what)
}

/// The evaluation with every path not reproduced (all pages).
pub(crate) fn fetch_not_reproduced(
    client: &Client,
    jobset: &JobsetName,
    rev: &Rev,
) -> Result<EvaluationPage, CommandError> {
    let mut page = client
        .evaluation_page(jobset, rev, &NOT_REPRODUCED, MAX_PAGE_LIMIT, None)?
        .ok_or_else(|| not_found(format!("no evaluation {rev} of jobset {jobset} on the server")))?;
    let mut cursor = page.next_cursor.take();
    // Bounded: no more pages than an evaluation can fill, and a few that the server
    // cut short (it looks at a bounded number of positions per page).
    for _ in 0..=(MAX_EVALUATION_PATHS / MAX_PAGE_LIMIT as usize + 64) {
        let Some(c) = cursor else { break };
        let next = client
            .evaluation_page(jobset, rev, &NOT_REPRODUCED, MAX_PAGE_LIMIT, Some(&c))?
            .ok_or_else(|| not_found(format!("evaluation {rev} of jobset {jobset} went away while reading it")))?;
        page.items.extend(next.items);
        cursor = next.next_cursor;
    }
    Ok(page)
}

fn summary_text(page: &EvaluationPage) -> String {
    let pc = Percentages::of(&page.summary);
    let mut out = format!("{}/{} ({}): {} paths\n", page.jobset, page.rev, page.created_at, page.paths);
    for st in ReproStatus::ALL {
        out.push_str(&format!("  {:<22}{:>8}  {:>5.1}%\n", st.as_str(), page.summary.count(st), pc.get(st)));
    }
    if !page.items.is_empty() {
        out.push('\n');
        let mut items: Vec<_> = page.items.iter().collect();
        items.sort_by_key(|i| (NOT_REPRODUCED.iter().position(|s| *s == i.status), i.path.name()));
        let w = items.iter().map(|i| i.status.as_str().len()).max().unwrap_or(0);
        for i in items {
            out.push_str(&format!(
                "{:<w$}  {} builder(s), {} hash(es)  {}\n",
                i.status.as_str(),
                i.builders,
                i.distinct_hashes,
                i.path
            ));
        }
    }
    out
}

fn read_client(cfg: &Config) -> Result<Client, CommandError> {
    Ok(Client::new(cfg.server()?, cfg.connect_timeout, READ_TIMEOUT.max(cfg.timeout)))
}

fn show(cfg: &Config, args: ShowArgs) -> Exit {
    let jobset = JobsetName::parse(&args.jobset)?;
    let client = read_client(cfg)?;
    show_with(&client, &jobset, args.rev.as_deref(), args.json)
}

pub(crate) fn show_with(client: &Client, jobset: &JobsetName, rev: Option<&str>, json: bool) -> Exit {
    let rev = match rev {
        Some(r) => Rev::parse(r)?,
        None => {
            let j = client.jobset(jobset)?.ok_or_else(|| not_found(format!("no jobset {jobset} on the server")))?;
            let latest = j.evaluations.into_iter().next();
            latest.ok_or_else(|| not_found(format!("jobset {jobset} has no evaluation yet")))?.rev
        }
    };
    let page = fetch_not_reproduced(client, jobset, &rev)?;
    if json {
        let v = serde_json::json!({
            "jobset": page.jobset, "rev": page.rev, "created_at": page.created_at, "paths": page.paths,
            "summary": page.summary, "percentages": Percentages::of(&page.summary), "not_reproduced": page.items,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", summary_text(&page));
    }
    Ok(exit_status(&page.summary))
}

fn diff_text(d: &EvaluationDiff) -> String {
    let mut out = String::new();
    for p in &d.added {
        out.push_str(&format!("+ {p}\n"));
    }
    for p in &d.removed {
        out.push_str(&format!("- {p}\n"));
    }
    for c in &d.changed {
        let paths =
            if c.from_path == c.to_path { c.to_path.to_string() } else { format!("{} -> {}", c.from_path, c.to_path) };
        out.push_str(&format!("~ {}: {} -> {} ({paths})\n", c.name, c.from.as_str(), c.to.as_str()));
    }
    out.push_str(&format!("{} added, {} removed, {} changed\n", d.added.len(), d.removed.len(), d.changed.len()));
    out
}

fn diff(cfg: &Config, args: DiffArgs) -> Exit {
    let jobset = JobsetName::parse(&args.jobset)?;
    let (from, to) = (Rev::parse(&args.rev1)?, Rev::parse(&args.rev2)?);
    let client = read_client(cfg)?;
    diff_with(&client, &jobset, &from, &to, args.json)
}

pub(crate) fn diff_with(client: &Client, jobset: &JobsetName, from: &Rev, to: &Rev, json: bool) -> Exit {
    let d = client
        .evaluation_diff(jobset, to, from)?
        .ok_or_else(|| not_found(format!("jobset {jobset}, or its evaluation {from} or {to}, is not on the server")))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", diff_text(&d));
    }
    Ok(0)
}

#[cfg(test)]
mod tests;
