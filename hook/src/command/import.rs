//! `nhc import`: the command line; the async work is in the `nhc-import` crate (only
//! this binary links it, never `nhc-hook`).

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::StorePath;
use nhc_nix::Store;

use super::{CommandError, Exit};
use crate::config::{self, Config};
use crate::log;

/// Import signed narinfo from a binary cache, or another collection's attestations.
///
/// Only signatures by the keys of the token's builder (`GET /v1/me`) are sent, each
/// verified first. Paths without such a signature, with a bad one, with a malformed
/// narinfo or missing from the cache are counted and reported, never sent. A rerun
/// sends nothing new (duplicates). Exit status 0 only when every path was imported.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// The binary cache: http://, https:// or file://DIR.
    #[arg(long, value_name = "URL", conflicts_with = "collection", required_unless_present = "collection")]
    cache: Option<String>,
    /// Store paths to import from the cache.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    /// Read store paths from FILE (one a line), `-` for stdin.
    #[arg(long, value_name = "FILE")]
    paths_from: Option<String>,
    /// Import the closure of these local store paths.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    closure: Vec<String>,
    /// Import every path of this jobset's evaluation --rev (without --rev: its latest).
    #[arg(long, value_name = "NAME")]
    jobset: Option<String>,
    /// The evaluation of --jobset (default: the jobset's latest).
    #[arg(long, value_name = "REV", requires = "jobset")]
    rev: Option<String>,
    /// Another nhc-server to import a builder's attestations from.
    #[arg(long, value_name = "URL", requires = "builder")]
    collection: Option<String>,
    /// The builder (on --collection) whose attestations are imported.
    #[arg(long, value_name = "NAME", requires = "collection")]
    builder: Option<String>,
    /// Where --collection remembers how far it got
    /// (default: $XDG_STATE_HOME/nhc/import-<builder>.json).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Requests to the cache in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Most outputs per submission.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let settings = nhc_import::Settings {
        server: cfg.server()?.trim_end_matches('/').to_owned(),
        token: cfg.token()?.as_str().to_owned(),
        concurrency: args.concurrency,
        batch: args.batch,
        timeout: Duration::from_secs(60),
        store: config::store_location(),
        progress: true,
        on_answer: crate::api::log_recorder(cfg)?,
    };
    let rt = nhc_import::runtime().map_err(import_err)?;
    let summary = if let (Some(collection), Some(builder)) = (&args.collection, &args.builder) {
        let state = args.state.clone().unwrap_or_else(|| default_state(builder));
        if let Some(dir) = state.parent() {
            std::fs::create_dir_all(dir)?;
        }
        rt.block_on(nhc_import::collection::from_collection(&settings, collection, builder, &state))
    } else {
        let cache =
            args.cache.clone().ok_or_else(|| CommandError::Usage("--cache or --collection is required".into()))?;
        let mut paths = gather(&args)?;
        if let Some(j) = &args.jobset {
            let rev = match &args.rev {
                Some(r) => r.clone(),
                None => rt.block_on(nhc_import::latest_rev(&settings, j)).map_err(import_err)?,
            };
            paths.extend(rt.block_on(nhc_import::jobset_paths(&settings, j, &rev)).map_err(import_err)?);
        }
        paths.sort();
        paths.dedup();
        if paths.is_empty() {
            return Err(CommandError::Usage("no store paths to import".into()));
        }
        rt.block_on(nhc_import::from_cache(&settings, &cache, paths))
    }
    .map_err(import_err)?;
    println!("{summary}");
    Ok(if summary.ok() { 0 } else { 1 })
}

fn import_err(e: nhc_import::ImportError) -> CommandError {
    CommandError::Usage(e.to_string())
}

fn default_state(builder: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("nhc").join(format!("import-{builder}.json"))
}

/// The paths named on the command line, in --paths-from, and the closures of --closure.
fn gather(args: &Args) -> Result<Vec<StorePath>, CommandError> {
    let mut out = Vec::new();
    let loc = config::store_location();
    for p in &args.paths {
        out.push(loc.resolve_arg(p)?);
    }
    if let Some(f) = &args.paths_from {
        let reader: Box<dyn BufRead> = if f == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(f).map_err(|e| CommandError::Usage(format!("{f}: {e}")))?,
            ))
        };
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            match StorePath::parse(t) {
                Ok(p) => out.push(p),
                Err(e) => log::warn(&format!("{f}:{}: {e}", i + 1)),
            }
        }
    }
    if !args.closure.is_empty() {
        let mut store = Store::new(loc.clone());
        let roots = args.closure.iter().map(|p| loc.resolve_arg(p)).collect::<Result<Vec<_>, _>>()?;
        out.extend(store.db()?.closure(&roots)?);
    }
    Ok(out)
}
