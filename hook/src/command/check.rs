//! `nhc check`: rebuild store paths with `nix-store --realise --check` and, when a
//! rebuild differs, make a diff report (diffoscope when installed, else a list of
//! the differing files with their hashes), sign it and upload it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use nhc_core::diff::{self, DiffFormat, DiffUpload};
use nhc_core::{DrvPath, NarHash, SecretKey, StorePath};
use nhc_nix::Store;
use sha2::{Digest, Sha256};

use super::{CommandError, Exit};
use crate::api::Client;
use crate::config::{self, Config, DiffSettings};
use crate::log;

/// Rebuild store paths (`nix-store --realise --check` of their derivation) and report
/// whether the bytes are the same: exit 0 when every rebuild is identical, 2 when one
/// differs, 1 on an error.
///
/// A rebuild that differs is kept next to the original (`<path>.check`) long enough to
/// compare the two with diffoscope (when installed: `HASH_COLLECTION_DIFFOSCOPE`, with a
/// time and memory limit) or, without it, to list the differing files with their
/// SHA-256. The report is gzip-compressed, signed with the builder's key over
/// (output path, both NAR hashes, format, SHA-256 of the report) and uploaded to
/// `POST /v1/outputs/{basename}/diffs`.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// Output paths, `result` links or `.drv` files (all of whose outputs are checked).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Do not upload reports; write each to DIR instead (also kept when an upload fails).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Only write reports (to --report-dir or the current directory): no upload.
    #[arg(long)]
    no_upload: bool,
    /// Keep the rebuilt `<path>.check` directories.
    #[arg(long)]
    keep: bool,
}

/// What one derivation's check found.
enum Outcome {
    Same,
    Differs,
    Failed,
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let settings = config::diff_settings()?;
    let mut store = Store::new(config::store_location());
    // The derivations to rebuild, each with the outputs asked for.
    let mut drvs: BTreeMap<DrvPath, Vec<StorePath>> = BTreeMap::new();
    let mut failed = false;
    for arg in &args.paths {
        let sp = store.loc.resolve_arg(arg)?;
        if let Ok(drv) = DrvPath::try_from(sp.clone()) {
            let outs = store.outputs_of(&drv)?;
            drvs.entry(drv).or_default().extend(outs.into_iter().map(|(_, p)| p));
            continue;
        }
        match store.path_info(&sp)? {
            Some(info) => match info.deriver {
                Some(d) => drvs.entry(d).or_default().push(sp),
                None => {
                    log::error(&format!("{sp}: Nix knows no derivation of it; pass its .drv"));
                    failed = true;
                }
            },
            None => {
                log::error(&format!("{sp} is not a valid path in the store ({})", store.loc.uri));
                failed = true;
            }
        }
    }
    let uploader = if args.no_upload { None } else { Some(Uploader::new(cfg)?) };
    let mut differs = false;
    for (drv, outputs) in drvs {
        let ctx = CheckContext {
            settings: &settings,
            uploader: uploader.as_ref(),
            report_dir: args.report_dir.as_deref(),
            keep: args.keep,
        };
        match check_drv(&mut store, &drv, &outputs, &ctx) {
            Outcome::Same => println!("same {drv}"),
            Outcome::Differs => differs = true,
            Outcome::Failed => failed = true,
        }
    }
    Ok(if failed {
        1
    } else if differs {
        2
    } else {
        0
    })
}

/// The key, token and server a report is uploaded with.
pub struct Uploader {
    key: SecretKey,
    token: config::Token,
    client: Client,
}

impl Uploader {
    pub fn new(cfg: &Config) -> Result<Uploader, CommandError> {
        Ok(Uploader { key: cfg.secret_key()?, token: cfg.token()?, client: Client::for_config(cfg)? })
    }

    /// Signs and uploads one gzip report.
    pub fn upload(
        &self,
        out: &StorePath,
        hash_a: &NarHash,
        hash_b: &NarHash,
        format: DiffFormat,
        gz: &[u8],
    ) -> Result<(bool, nhc_core::diff::DiffInfo), crate::api::ApiError> {
        let sha = diff::report_sha256(gz);
        let signature = self.key.sign(&diff::fingerprint(out, hash_a, hash_b, format, &sha));
        let upload =
            DiffUpload { nar_hash_a: *hash_a, nar_hash_b: *hash_b, format, report: STANDARD.encode(gz), signature };
        self.client.upload_diff(&self.token, out, &upload)
    }
}

pub struct CheckContext<'a> {
    pub settings: &'a DiffSettings,
    pub uploader: Option<&'a Uploader>,
    pub report_dir: Option<&'a Path>,
    pub keep: bool,
}

/// Rebuilds `drv` with `--check` and reports on `outputs` (those of its outputs asked
/// about); prints `differs PATH ...` for each that differs.
fn check_drv(store: &mut Store, drv: &DrvPath, outputs: &[StorePath], ctx: &CheckContext) -> Outcome {
    let mut before = BTreeMap::new();
    for out in outputs {
        match store.path_info(out) {
            Ok(Some(info)) => {
                before.insert(out.clone(), info.nar_hash);
            }
            Ok(None) => {
                log::error(&format!("{out} is not in the store: build it before checking it"));
                return Outcome::Failed;
            }
            Err(e) => {
                log::error(&format!("{out}: {e}"));
                return Outcome::Failed;
            }
        }
    }
    log::info(&format!("rebuilding {drv} (nix-store --realise --check)"));
    let status = Command::new("nix-store")
        .args(["--realise", "--check", "--keep-failed", drv.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!("cannot run nix-store: {e}"));
            return Outcome::Failed;
        }
    };
    let mut differed = false;
    for (out, hash_a) in &before {
        let check = check_dir(store, out);
        if std::fs::symlink_metadata(&check).is_err() {
            continue;
        }
        differed = true;
        let result = report_on(store, out, &check, hash_a, ctx);
        if !ctx.keep {
            remove_tree(&check);
        }
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => log::error(&format!("{out}: {e}")),
        }
    }
    match (status.success(), differed) {
        (true, false) => Outcome::Same,
        (_, true) => Outcome::Differs,
        (false, false) => {
            log::error(&format!("nix-store --realise --check {drv} failed ({status})"));
            Outcome::Failed
        }
    }
}

/// Where Nix keeps a rebuild that differs (with `--keep-failed`): `<path>.check`.
pub fn check_dir(store: &Store, out: &StorePath) -> PathBuf {
    let mut p = store.loc.real_path(out).into_os_string();
    p.push(".check");
    PathBuf::from(p)
}

/// Makes, signs and uploads (or writes) the report on one output that differs;
/// returns the line to print.
pub fn report_on(
    store: &Store,
    out: &StorePath,
    check: &Path,
    hash_a: &NarHash,
    ctx: &CheckContext,
) -> Result<String, CommandError> {
    let (hash_b, format, gz) = build_report(store, out, check, hash_a, ctx.settings)?;
    let mut line = format!("differs {out} {hash_a} {hash_b} ({format}, {} bytes gzip)", gz.len());
    let Some(up) = ctx.uploader else {
        let file = write_report(ctx.report_dir.unwrap_or(Path::new(".")), out, &gz)?;
        line.push_str(&format!(" written to {}", file.display()));
        return Ok(line);
    };
    match up.upload(out, hash_a, &hash_b, format, &gz) {
        Ok((_, info)) => line.push_str(&format!(" uploaded as {}", info.url)),
        Err(e) => {
            let file = write_report(ctx.report_dir.unwrap_or(Path::new(".")), out, &gz)?;
            return Err(CommandError::Usage(format!(
                "the report could not be uploaded ({e}); it is in {}",
                file.display()
            )));
        }
    }
    if let Some(dir) = ctx.report_dir {
        let file = write_report(dir, out, &gz)?;
        line.push_str(&format!(", written to {}", file.display()));
    }
    Ok(line)
}

/// The rebuild's NAR hash and the gzip report on how it differs from `out`.
pub fn build_report(
    store: &Store,
    out: &StorePath,
    check: &Path,
    hash_a: &NarHash,
    settings: &DiffSettings,
) -> Result<(NarHash, DiffFormat, Vec<u8>), CommandError> {
    let digest = nhc_nar::hash_path(check).map_err(CommandError::Hash)?;
    let hash_b = NarHash::from_bytes(digest.sha256);
    let original = store.loc.real_path(out);
    let (format, text) = make_report(&original, check, out, hash_a, &hash_b, settings);
    let gz = gzip_capped(&text, settings.max_bytes)?;
    Ok((hash_b, format, gz))
}

/// A report the diff-hook left unsigned in `HASH_COLLECTION_DIFF_SPOOL` (under
/// nix-daemon it runs as a build user that cannot read the key); `nhc flush` signs
/// and uploads it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SpooledReport {
    pub output_path: StorePath,
    pub nar_hash_a: NarHash,
    pub nar_hash_b: NarHash,
    pub format: DiffFormat,
    /// base64 of the gzip report.
    pub report: String,
}

/// Writes an unsigned report into the diff spool.
pub fn spool_report(
    dir: &Path,
    out: &StorePath,
    hash_a: NarHash,
    hash_b: NarHash,
    format: DiffFormat,
    gz: &[u8],
) -> Result<PathBuf, CommandError> {
    let item = SpooledReport {
        output_path: out.clone(),
        nar_hash_a: hash_a,
        nar_hash_b: hash_b,
        format,
        report: STANDARD.encode(gz),
    };
    let data = serde_json::to_vec(&item)?;
    crate::durable::create_dir(dir)?;
    Ok(crate::durable::write(dir, &crate::durable::unique_name(".diff.json"), &data)?)
}

/// Signs and uploads the reports of the diff spool; uploaded ones (and those the
/// server refuses, renamed `.rejected`) leave it. Returns (uploaded, left).
pub fn flush_reports(cfg: &Config, dir: &Path) -> Result<(usize, usize), CommandError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok((0, 0)) };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".diff.json") && !n.starts_with('.'))
        })
        .collect();
    if files.is_empty() {
        return Ok((0, 0));
    }
    files.sort();
    let up = Uploader::new(cfg)?;
    let (mut sent, mut left) = (0, 0);
    for file in files {
        let item: Result<SpooledReport, String> = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        let result = item.and_then(|item| {
            let gz = STANDARD.decode(item.report.as_bytes()).map_err(|e| e.to_string())?;
            up.upload(&item.output_path, &item.nar_hash_a, &item.nar_hash_b, item.format, &gz)
                .map(|(_, info)| format!("{} as {}", item.output_path, info.url))
                .map_err(|e| match e.status() {
                    Some(400..=499) => format!("refused: {e}"),
                    _ => e.to_string(),
                })
        });
        match result {
            Ok(what) => {
                log::info(&format!("uploaded the diff report on {what}"));
                let _ = std::fs::remove_file(&file);
                sent += 1;
            }
            Err(why) if why.starts_with("refused: ") || !why.contains("://") => {
                log::error(&format!("{}: {why}; renamed .rejected", file.display()));
                let mut to = file.clone().into_os_string();
                to.push(".rejected");
                let _ = std::fs::rename(&file, to);
                left += 1;
            }
            Err(why) => {
                log::warn(&format!("{}: {why}; left for the next flush", file.display()));
                left += 1;
            }
        }
    }
    Ok((sent, left))
}

fn write_report(dir: &Path, out: &StorePath, gz: &[u8]) -> Result<PathBuf, CommandError> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{}.diff.txt.gz", out.basename()));
    std::fs::write(&file, gz)?;
    Ok(file)
}

/// diffoscope's text report when it runs and finishes within its limits, else the
/// native list of differing files.
fn make_report(
    a: &Path,
    b: &Path,
    out: &StorePath,
    hash_a: &NarHash,
    hash_b: &NarHash,
    s: &DiffSettings,
) -> (DiffFormat, Vec<u8>) {
    let mut note = String::new();
    if let Some(program) = &s.diffoscope {
        match diffoscope(program, a, b, s) {
            Ok(text) => return (DiffFormat::DiffoscopeText, text),
            Err(why) => {
                if !why.is_empty() {
                    log::warn(&format!("diffoscope: {why}; sending the list of differing files instead"));
                    note = format!("# diffoscope: {why}\n");
                }
            }
        }
    }
    let mut text = format!("# nhc check: files of {out} (a, {hash_a}) and of its rebuild (b, {hash_b}) that differ\n");
    text.push_str(&note);
    text.push_str(&file_list(a, b));
    (DiffFormat::FileList, text.into_bytes())
}

/// Runs diffoscope with a deadline, an address-space limit and a report-size limit.
/// An empty error: diffoscope is not installed.
fn diffoscope(program: &str, a: &Path, b: &Path, s: &DiffSettings) -> Result<Vec<u8>, String> {
    // Text beyond what gzip could squeeze into the cap is useless; 20:1 is generous.
    let raw_cap = (s.max_bytes as u64).saturating_mul(20);
    let dir = std::env::temp_dir().join(format!("nhc-diffoscope-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temporary directory: {e}"))?;
    let out_file = dir.join("report.txt");
    let result = (|| {
        let out = std::fs::File::create(&out_file).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(program);
        cmd.args(["--text", "-", "--no-progress", "--max-report-size", &raw_cap.to_string()])
            .arg(a)
            .arg(b)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped())
            .env("TMPDIR", &dir);
        let memory = s.memory_bytes;
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: memory as libc::rlim_t, rlim_max: memory as libc::rlim_t };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(String::new()),
            Err(e) => return Err(format!("cannot run {program}: {e}")),
        };
        let mut stderr = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.take(64 * 1024).read_to_end(&mut buf);
            }
            buf
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() < s.timeout => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("killed after {} s", s.timeout.as_secs()));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let err = err_reader.join().unwrap_or_default();
        // 1: the trees differ (the expected answer); 0: equal trees.
        if !matches!(status.code(), Some(0 | 1)) {
            let tail = String::from_utf8_lossy(&err);
            let tail: String = tail.lines().last().unwrap_or("").chars().take(200).collect();
            return Err(format!("exited with {status}: {tail}"));
        }
        let mut text = Vec::new();
        std::fs::File::open(&out_file)
            .and_then(|f| f.take(raw_cap).read_to_end(&mut text))
            .map_err(|e| e.to_string())?;
        Ok(text)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// gzip of `text`, cut (with a last line saying so) until it fits in `max` bytes.
fn gzip_capped(text: &[u8], max: usize) -> Result<Vec<u8>, CommandError> {
    let mut keep = text.len();
    loop {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&text[..keep])?;
        if keep < text.len() {
            enc.write_all(format!("\n[nhc: report cut at {keep} of {} bytes]\n", text.len()).as_bytes())?;
        }
        let gz = enc.finish()?;
        if gz.len() <= max {
            return Ok(gz);
        }
        // Shrink in proportion, with a margin.
        keep = ((keep as u128 * max as u128 * 9 / 10) / gz.len() as u128) as usize;
    }
}

/// One entry of a tree, as the file list compares it.
#[derive(PartialEq, Eq)]
enum Entry {
    File { executable: bool, sha256: String, size: u64 },
    Symlink(String),
    Directory,
    Unreadable(String),
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::File { executable, sha256, size } => {
                write!(f, "{}file sha256:{sha256} {size} bytes", if *executable { "executable " } else { "" })
            }
            Entry::Symlink(t) => write!(f, "symlink -> {t}"),
            Entry::Directory => f.write_str("directory"),
            Entry::Unreadable(e) => write!(f, "unreadable ({e})"),
        }
    }
}

fn walk(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::from("."))];
    while let Some((path, rel)) = stack.pop() {
        let entry = match std::fs::symlink_metadata(&path) {
            Err(e) => Entry::Unreadable(e.to_string()),
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&path) {
                Ok(t) => Entry::Symlink(t.to_string_lossy().into_owned()),
                Err(e) => Entry::Unreadable(e.to_string()),
            },
            Ok(m) if m.is_dir() => {
                if let Ok(rd) = std::fs::read_dir(&path) {
                    for child in rd.flatten() {
                        let name = child.file_name().to_string_lossy().into_owned();
                        let rel = if rel == "." { name } else { format!("{rel}/{name}") };
                        stack.push((child.path(), rel));
                    }
                }
                Entry::Directory
            }
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                match hash_file(&path) {
                    Ok(sha256) => {
                        Entry::File { executable: m.permissions().mode() & 0o111 != 0, sha256, size: m.len() }
                    }
                    Err(e) => Entry::Unreadable(e.to_string()),
                }
            }
        };
        out.insert(rel, entry);
    }
    out
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The native report: one line per path that differs between the trees.
pub fn file_list(a: &Path, b: &Path) -> String {
    let (ta, tb) = (walk(a), walk(b));
    let mut out = String::new();
    for (rel, ea) in &ta {
        match tb.get(rel) {
            None => out.push_str(&format!("only in a: {rel}: {ea}\n")),
            Some(eb) if eb != ea => out.push_str(&format!("differs: {rel}\n  a: {ea}\n  b: {eb}\n")),
            Some(_) => {}
        }
    }
    for (rel, eb) in &tb {
        if !ta.contains_key(rel) {
            out.push_str(&format!("only in b: {rel}: {eb}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("(no file differs: the difference is in metadata NAR serialisation keeps)\n");
    }
    out
}

/// Removes a tree Nix made read-only.
pub fn remove_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn writable(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
                if let Ok(rd) = std::fs::read_dir(p) {
                    for c in rd.flatten() {
                        writable(&c.path());
                    }
                }
            }
        }
    }
    writable(path);
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    };
    if let Err(e) = r {
        log::warn(&format!("cannot remove {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_list_names_what_differs_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("bin")).unwrap();
            std::fs::write(d.join("same"), "x").unwrap();
        }
        std::fs::write(a.join("bin/random"), "1").unwrap();
        std::fs::write(b.join("bin/random"), "2").unwrap();
        std::fs::write(a.join("gone"), "").unwrap();
        std::os::unix::fs::symlink("same", b.join("new")).unwrap();
        let list = file_list(&a, &b);
        assert!(list.contains("differs: bin/random\n"), "{list}");
        assert!(list.contains("only in a: gone: file"), "{list}");
        assert!(list.contains("only in b: new: symlink -> same"), "{list}");
        assert!(!list.contains("same:") && !list.contains(": same\n"), "{list}");
    }

    #[test]
    fn long_reports_are_cut_to_fit() {
        let mut text = Vec::new();
        let mut x: u64 = 1;
        while text.len() < 200_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.extend_from_slice(format!("{x:x}\n").as_bytes());
        }
        let gz = gzip_capped(&text, 20_000).unwrap();
        assert!(gz.len() <= 20_000, "{}", gz.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut back).unwrap();
        assert!(back.contains("[nhc: report cut at"), "{}", &back[back.len() - 100..]);
        assert_eq!(gzip_capped(b"short", 20_000).map(|g| g.len() < 100).ok(), Some(true));
    }
}
