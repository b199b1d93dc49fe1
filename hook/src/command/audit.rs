//! `nhc audit`: is everything this client delivered in the server's transparency log,
//! and is the log's history the one seen before?

use std::collections::{BTreeMap, HashMap};

use nhc_tlog::tiles::TileId;
use nhc_tlog::{verify_checkpoint, ClientError, Leaf, VerifiedCheckpoint, TILE_WIDTH};

use super::Exit;
use crate::config::{self, redact_url, Config};
use crate::log;
use crate::tlog::fetch::{FetchError, LogHttp};
use crate::tlog::record::{Entry, Record};

/// Bundles (with their level-0 hash tiles) fetched and checked together: bounds memory.
const CHUNK_BUNDLES: usize = 64;

/// Check the transparency log against what this client delivered.
///
/// Fetches the server's latest checkpoint (`GET /log/checkpoint`) and verifies its
/// signature with the log key (--log-key, else the key pinned in the record, else
/// `GET /log/key`, pinned then with a warning). Checks that it is consistent with the
/// last checkpoint this client verified (a consistency proof from the hash tiles; the
/// same size with another root is a fork), and that every entry recorded when the
/// server acknowledged a submission is in the tree (an inclusion proof) and is, in its
/// entry bundle, a leaf for the recorded output path and NAR hash with the recorded
/// leaf hash. Entries past the checkpoint (not sequenced yet) are counted, not
/// failed. The checkpoint is recorded when it is consistent. The record is
/// `<spool>/tlog/<server>/` (see docs/cli.md).
///
/// Exit status: 0 all fine; 1 a problem with the log (each printed as `PROBLEM: ...`);
/// 2 a usage or network error.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// The server whose log is audited (default: HASH_COLLECTION_SERVER).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The log's verifier key `<origin>+<id>+<base64>` (as `GET /log/key` serves it);
    /// replaces the pinned one.
    #[arg(long, value_name = "KEY", env = "HASH_COLLECTION_LOG_KEY")]
    log_key: Option<String>,
    /// Tile requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

/// A failure that is not the log's fault: exit status 2.
pub(crate) struct Fatal(pub String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Fatal {
        Fatal(e.to_string())
    }
}

/// The server URL of `--server`, else the configured one.
pub(crate) fn server_of(cfg: &Config, given: Option<&str>) -> Result<String, Fatal> {
    let s = match given {
        Some(s) => s.to_owned(),
        None => cfg.server()?.to_owned(),
    };
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || s.contains(['?', '#']) {
        return Err(Fatal(format!("{}: not an http:// or https:// server URL", redact_url(&s))));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// The log key: given, pinned, or fetched and pinned (trust on first use).
pub(crate) fn log_key(record: &Record, http: &LogHttp, given: Option<&str>) -> Result<String, Fatal> {
    let pinned = record.log_key()?;
    if let Some(k) = given {
        let k = k.trim();
        nhc_tlog::checkpoint::parse_verifier(k).map_err(|e| Fatal(format!("--log-key: {e}")))?;
        match pinned {
            Some(p) if p != k => {
                log::warn(&format!(
                    "--log-key differs from the key pinned in {}; the given key is pinned now",
                    record.dir().display()
                ));
                record.pin_log_key(k)?;
            }
            Some(_) => {}
            None => record.pin_log_key(k)?,
        }
        return Ok(k.to_owned());
    }
    if let Some(p) = pinned {
        return Ok(p);
    }
    let k = http.key()?;
    nhc_tlog::checkpoint::parse_verifier(&k).map_err(|e| Fatal(format!("{}/log/key: {e}", http.base())))?;
    record.pin_log_key(&k)?;
    log::warn(&format!(
        "no log key was pinned for {}: trusting the one it serves now ({k}) and pinning it in {}; compare it with \
         the one the server's operator publishes",
        http.base(),
        record.dir().display()
    ));
    Ok(k)
}

/// Fetches the latest checkpoint and verifies it: `Ok(Err(problem))` when the
/// signature does not verify.
pub(crate) fn latest_checkpoint(
    http: &LogHttp,
    key: &str,
) -> Result<Result<(VerifiedCheckpoint, String), String>, Fatal> {
    let bytes = http.checkpoint()?;
    Ok(match verify_checkpoint(key, &bytes) {
        Ok(cp) => Ok((cp, String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => Err(format!("the checkpoint {}/log/checkpoint is not signed by the log key: {e}", http.base())),
    })
}

/// Tiles fetched at most once per run; the fetch function `nhc-tlog`'s proofs take.
struct Tiles<'h> {
    http: &'h LogHttp,
    cache: HashMap<String, Vec<u8>>,
    /// The first network failure (not a 404): the run stops with exit status 2.
    network: Option<FetchError>,
}

impl Tiles<'_> {
    fn get(&mut self, path: &str) -> Result<Vec<u8>, String> {
        if let Some(d) = self.cache.get(path) {
            return Ok(d.clone());
        }
        match self.http.tile(path) {
            Ok(d) => {
                self.cache.insert(path.to_owned(), d.clone());
                Ok(d)
            }
            Err(e) => {
                if !matches!(e, FetchError::NotFound { .. }) && self.network.is_none() {
                    self.network = Some(e.clone());
                }
                Err(e.to_string())
            }
        }
    }

    /// Fetches the paths not cached yet, a few at a time.
    fn prefetch(&mut self, paths: Vec<String>, concurrency: usize) {
        let todo: Vec<String> = paths.into_iter().filter(|p| !self.cache.contains_key(p)).collect();
        for (p, r) in todo.iter().zip(self.http.tiles(&todo, concurrency)) {
            match r {
                Ok(d) => {
                    self.cache.insert(p.clone(), d);
                }
                // Fetched again (once) when needed, and reported then.
                Err(FetchError::NotFound { .. }) => {}
                Err(e) => {
                    if self.network.is_none() {
                        self.network = Some(e);
                    }
                }
            }
        }
    }
}

/// What a proof failure means: the log's problem, or the network's.
fn classify(e: ClientError, tiles: &mut Tiles) -> Result<String, Fatal> {
    if let Some(n) = tiles.network.take() {
        return Err(Fatal(n.to_string()));
    }
    Ok(e.to_string())
}

/// Checks one recorded entry against the bundle that holds its index.
fn check_entry(e: &Entry, bundle: Result<&[u8], &str>) -> Result<(), String> {
    let at = || format!("entry {} ({} {})", e.index, e.output_path, e.nar_hash);
    let data = bundle.map_err(|why| format!("{}: missing from the log: its entry bundle: {why}", at()))?;
    let entries = nhc_tlog::decode_bundle(data).map_err(|err| format!("{}: its entry bundle: {err}", at()))?;
    let k = (e.index % TILE_WIDTH) as usize;
    let leaf = entries
        .get(k)
        .ok_or_else(|| format!("{}: missing from the log: its entry bundle holds {} entries", at(), entries.len()))?;
    if nhc_tlog::leaf_hash(leaf) != e.leaf_hash {
        let other = match Leaf::decode(leaf) {
            Ok(l) => format!("a leaf for {} {} by {}", l.output_path, l.nar_hash, l.builder),
            Err(err) => format!("bytes that are not a leaf ({err})"),
        };
        return Err(format!(
            "{}: changed: the log holds {other} with leaf hash {}, recorded {}",
            at(),
            nhc_tlog::hash_hex(&nhc_tlog::leaf_hash(leaf)),
            nhc_tlog::hash_hex(&e.leaf_hash)
        ));
    }
    let l = Leaf::decode(leaf).map_err(|err| format!("{}: the recorded leaf is not a valid leaf: {err}", at()))?;
    if l.output_path != e.output_path || l.nar_hash != e.nar_hash {
        return Err(format!("{}: the leaf with the recorded hash is for {} {}", at(), l.output_path, l.nar_hash));
    }
    Ok(())
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    match audit(cfg, &args) {
        Ok(problems) if problems.is_empty() => Ok(0),
        Ok(problems) => {
            for p in &problems {
                println!("PROBLEM: {p}");
            }
            log::error(&format!("{} problem(s) with the transparency log", problems.len()));
            Ok(1)
        }
        Err(Fatal(e)) => {
            log::error(&e);
            Ok(2)
        }
    }
}

/// The audit; the problems found (empty: all fine).
fn audit(cfg: &Config, args: &Args) -> Result<Vec<String>, Fatal> {
    let server = server_of(cfg, args.server.as_deref())?;
    let record = Record::new(&cfg.spool, &server);
    let http = LogHttp::new(&server, cfg.connect_timeout, cfg.timeout);
    let key = log_key(&record, &http, args.log_key.as_deref())?;
    let recorded = record.entries()?;
    if recorded.bad_lines > 0 {
        log::warn(&format!(
            "{}: {} line(s) are not entries; skipped",
            record.dir().join("entries").display(),
            recorded.bad_lines
        ));
    }
    let (cp, note) = match latest_checkpoint(&http, &key)? {
        Ok(c) => c,
        Err(problem) => return Ok(vec![problem]),
    };
    let mut problems = Vec::new();
    let mut tiles = Tiles { http: &http, cache: HashMap::new(), network: None };
    let concurrency = usize::from(args.concurrency);

    // The history: the new checkpoint must extend the last one verified.
    let mut consistent = true;
    let mut previous = None;
    if let Some(old_note) = record.checkpoint()? {
        match verify_checkpoint(&key, old_note.as_bytes()) {
            Err(e) => {
                consistent = false;
                problems.push(format!(
                    "the recorded checkpoint {} does not verify with the log key: {e}",
                    record.dir().join("checkpoint").display()
                ));
            }
            Ok(old) => {
                let r = nhc_tlog::check_consistency(&old, &cp, &mut |p: &str| tiles.get(p));
                if let Err(e) = r {
                    consistent = false;
                    problems.push(classify(e, &mut tiles)?);
                }
                previous = Some(old);
            }
        }
    }

    // The entries, a chunk of bundles at a time.
    let mut by_bundle: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    let mut pending = 0u64;
    for e in &recorded.entries {
        if e.index >= cp.size {
            pending += 1;
        } else {
            by_bundle.entry(e.index / TILE_WIDTH).or_default().push(e);
        }
    }
    let width_of = |n: u64| (cp.size - n * TILE_WIDTH).min(TILE_WIDTH) as u16;
    let groups: Vec<(u64, Vec<&Entry>)> = by_bundle.into_iter().collect();
    let mut included = 0u64;
    for chunk in groups.chunks(CHUNK_BUNDLES) {
        let mut paths = Vec::new();
        for (n, _) in chunk {
            paths.push(TileId::entries(*n, width_of(*n)).path());
            paths.push(TileId::hashes(0, *n, width_of(*n)).path());
        }
        tiles.prefetch(paths.clone(), concurrency);
        if let Some(e) = tiles.network.take() {
            return Err(Fatal(e.to_string()));
        }
        for (n, entries) in chunk {
            let bpath = TileId::entries(*n, width_of(*n)).path();
            let bundle = tiles.get(&bpath);
            for e in entries {
                if let Err(p) = check_entry(e, bundle.as_deref().map_err(String::as_str)) {
                    problems.push(p);
                    continue;
                }
                let r = nhc_tlog::check_inclusion(&cp, e.index, e.leaf_hash, &mut |p: &str| tiles.get(p));
                match r {
                    Ok(()) => included += 1,
                    Err(err) => {
                        let why = classify(err, &mut tiles)?;
                        problems.push(format!("entry {} ({}): {why}", e.index, e.output_path));
                    }
                }
            }
        }
        if let Some(e) = tiles.network.take() {
            return Err(Fatal(e.to_string()));
        }
        // Bundles and level-0 tiles serve one chunk only (the groups are in order).
        for p in paths {
            tiles.cache.remove(&p);
        }
    }

    if consistent {
        record.save_checkpoint(&note)?;
    }
    println!(
        "{}: checkpoint of size {} (root {}) verified with the log key",
        http.base(),
        cp.size,
        nhc_tlog::hash_hex(&cp.root)
    );
    match (&previous, consistent) {
        (Some(old), true) => println!("consistent with the checkpoint of size {} seen before", old.size),
        (None, true) => println!("no checkpoint seen before: recorded this one"),
        _ => {}
    }
    println!(
        "{included} of {} recorded entries are in the log{}",
        recorded.entries.len(),
        if pending > 0 { format!("; {pending} not in this checkpoint yet (run again later)") } else { String::new() }
    );
    Ok(problems)
}
