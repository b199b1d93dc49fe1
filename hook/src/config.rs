//! Configuration: environment variables, then a config file, then defaults.
//!
//! [`SETTINGS`] is the one table of settings: the environment names (the contract,
//! DESIGN.md), the config file's keys, defaults and meanings. `--help` is made from it,
//! a test holds the README's table to it, and every `HASH_COLLECTION_*` variable is
//! read here and nowhere else. A new setting is a new row, a field of [`FileSettings`]
//! when the config file may hold it, and a field of [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::{ParseError, SecretKey};
use nhc_nix::StoreLocation;
use serde::Deserialize;

/// One setting: how it is named in the environment and in the config file, its
/// default and its meaning (one line of Markdown: `code` is shown plain in `--help`).
pub struct Setting {
    pub env: &'static str,
    /// The config file's key; `None` for settings read from the environment only.
    pub key: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// How a setting's value is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off` (in the file also TOML booleans).
    Flag,
    /// A number of seconds in (0, 3600].
    Seconds,
}

pub const SERVER: Setting = Setting {
    env: "HASH_COLLECTION_SERVER",
    key: Some("server"),
    kind: Kind::Text,
    default: "none",
    meaning: "base URL of the server (`http://` or `https://` with a host, without `/v1`, no query or fragment; \
              anything else is reported as `MISCONFIGURED` and attestations are spooled)",
};
pub const TOKEN: Setting = Setting {
    env: "HASH_COLLECTION_TOKEN",
    key: Some("token"),
    kind: Kind::Text,
    default: "none",
    meaning: "the builder's token, as `nhc-server user add` printed it",
};
pub const TOKEN_FILE: Setting = Setting {
    env: "HASH_COLLECTION_TOKEN_FILE",
    key: Some("token_file"),
    kind: Kind::Text,
    default: "none",
    meaning: "a file holding the token (whitespace around it is ignored)",
};
pub const SECRET_KEY: Setting = Setting {
    env: "HASH_COLLECTION_SECRET_KEY",
    key: Some("secret_key"),
    kind: Kind::Text,
    default: "none",
    meaning: "the builder's Nix signing key `name:base64` (`nhc keygen`, `nix key generate-secret`)",
};
pub const SECRET_KEY_FILE: Setting = Setting {
    env: "HASH_COLLECTION_SECRET_KEY_FILE",
    key: Some("secret_key_file"),
    kind: Kind::Text,
    default: "none",
    meaning: "a file holding the signing key",
};
pub const SPOOL: Setting = Setting {
    env: "HASH_COLLECTION_SPOOL",
    key: Some("spool"),
    kind: Kind::Text,
    default: "`/var/lib/hash-collection/spool` for root, else `$XDG_STATE_HOME/hash-collection/spool` \
              (`~/.local/state/…`)",
    meaning: "spool directory, created with mode 0700",
};
pub const ASYNC: Setting = Setting {
    env: "HASH_COLLECTION_ASYNC",
    key: Some("async"),
    kind: Kind::Flag,
    default: "off",
    meaning: "the hook never touches the network: it only spools; `nhc flush` sends",
};
pub const VERIFY: Setting = Setting {
    env: "HASH_COLLECTION_VERIFY",
    key: Some("verify"),
    kind: Kind::Flag,
    default: "off",
    meaning: "the hook re-hashes each output from disk and compares it with Nix's record",
};
pub const CONNECT_TIMEOUT: Setting = Setting {
    env: "HASH_COLLECTION_CONNECT_TIMEOUT",
    key: Some("connect_timeout"),
    kind: Kind::Seconds,
    default: "1.5",
    meaning: "seconds to wait for a TCP (and TLS) connection",
};
pub const TIMEOUT: Setting = Setting {
    env: "HASH_COLLECTION_TIMEOUT",
    key: Some("timeout"),
    kind: Kind::Seconds,
    default: "3",
    meaning: "seconds for a whole request",
};
pub const VERBOSE: Setting = Setting {
    env: "HASH_COLLECTION_VERBOSE",
    key: Some("verbose"),
    kind: Kind::Flag,
    default: "off",
    meaning: "also report successes on stderr",
};
pub const CONFIG: Setting = Setting {
    env: "HASH_COLLECTION_CONFIG",
    key: None,
    kind: Kind::Text,
    default: "see below",
    meaning: "the config file to read",
};
pub const NIX_DB: Setting = Setting {
    env: "HASH_COLLECTION_NIX_DB",
    key: None,
    kind: Kind::Text,
    default: "`<state>/db/db.sqlite`",
    meaning: "Nix's database, for unusual layouts",
};
pub const DIFF_REPORT_ONLY: Setting = Setting {
    env: "HASH_COLLECTION_DIFF_REPORT_ONLY",
    key: None,
    kind: Kind::Flag,
    default: "off",
    meaning: "the diff-hook only prints the stored and the rebuilt hash and attests nothing (the NixOS module \
              sets it: under `nix-daemon` the diff-hook runs as a build user that cannot read the key)",
};

/// Every setting, in the order `--help` and the README list them.
pub const SETTINGS: &[&Setting] = &[
    &SERVER,
    &TOKEN,
    &TOKEN_FILE,
    &SECRET_KEY,
    &SECRET_KEY_FILE,
    &SPOOL,
    &ASYNC,
    &VERIFY,
    &CONNECT_TIMEOUT,
    &TIMEOUT,
    &VERBOSE,
    &CONFIG,
    &NIX_DB,
    &DIFF_REPORT_ONLY,
];

pub const SYSTEM_CONFIG: &str = "/etc/hash-collection/config.toml";
pub const ROOT_SPOOL: &str = "/var/lib/hash-collection/spool";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// What `--help` says after the table of settings.
const HELP_TAIL: &str = "\
The config file is $HASH_COLLECTION_CONFIG if set, else the first that exists of
$XDG_CONFIG_HOME/hash-collection/config.toml (~/.config/...) and /etc/hash-collection/config.toml.
It takes `key = value` lines in TOML syntax (bare words are read as strings) with the keys in
brackets above. The Nix store is found as Nix finds it: the `store` setting from NIX_CONFIG, then
$NIX_CONF_DIR/nix.conf (default /etc/nix/nix.conf), then NIX_REMOTE; `store = /root/dir` or
`local?root=/root/dir` is a chroot store whose files live under /root/dir/nix/store. When Nix's
database cannot be read, NAR hashes are computed from the files and references come from
`nix-store --query`.";

/// The text `--help` shows about configuration, shared by every command: made from
/// [`SETTINGS`].
pub fn help() -> String {
    const WIDTH: usize = 100;
    const INDENT: usize = 35;
    let mut out =
        String::from("CONFIGURATION (environment variables win over the config file; the file's keys in brackets):\n");
    for s in SETTINGS {
        let mut head = format!("  {}{}", s.env, if s.kind == Kind::Flag { "=1" } else { "" });
        if let Some(k) = s.key {
            head.push_str(&format!(" [{k}]"));
        }
        let mut text = s.meaning.replace('`', "");
        if !matches!(s.default, "none" | "off" | "see below") {
            text.push_str(&format!(" (default: {})", s.default.replace('`', "")));
        }
        let mut line = if head.len() + 1 < INDENT {
            format!("{head:<INDENT$}")
        } else {
            out.push_str(&head);
            out.push('\n');
            " ".repeat(INDENT)
        };
        let mut empty = true;
        for word in text.split(' ') {
            if !empty && line.len() + 1 + word.len() > WIDTH {
                out.push_str(line.trim_end());
                out.push('\n');
                line = " ".repeat(INDENT);
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line.push_str(word);
            empty = false;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(HELP_TAIL);
    out
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    #[cfg(test)]
    pub fn new(token: String) -> Token {
        Token(token)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where a setting came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Env(&'static str),
    File(PathBuf, &'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "${name}"),
            Source::File(path, key) => write!(f, "`{key}` in {}", path.display()),
        }
    }
}

/// Why a URL cannot be the collection server's base URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("is not an http:// or https:// URL")]
    NotHttp,
    #[error("is not a valid URL ({0})")]
    Invalid(String),
    #[error("has no host")]
    NoHost,
    #[error("must not have a ?query or #fragment (the API paths are appended to it)")]
    QueryOrFragment,
}

/// A server URL that cannot be used (reported as MISCONFIGURED).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the server URL {url:?} ({from}) {problem}; set it to e.g. https://hc.example.org")]
pub struct BadServer {
    /// Without any `user:password@`.
    pub url: String,
    pub from: Source,
    pub problem: UrlProblem,
}

/// Why the configuration cannot be used for what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {} (${}): {source}", .path.display(), CONFIG.env)]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", .path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("no server: set ${} to the collection server's URL", SERVER.env)]
    NoServer,
    #[error(transparent)]
    BadServer(#[from] BadServer),
    #[error("no token: set ${} (or ${}) to this builder's token", TOKEN_FILE.env, TOKEN.env)]
    NoToken,
    #[error("cannot read the {what} file {} ({from}): {source}", .path.display())]
    ReadSecret { what: &'static str, path: PathBuf, from: Source, source: std::io::Error },
    #[error("the token is empty")]
    EmptyToken,
    #[error("the token holds spaces or control characters")]
    BadToken,
    #[error(
        "no signing key: set ${} (or ${}) to a key made by `nhc keygen` or `nix key generate-secret`",
        SECRET_KEY_FILE.env,
        SECRET_KEY.env
    )]
    NoKey,
    #[error("the secret key from {from} is invalid: {source}")]
    BadKey { from: Source, source: ParseError },
}

/// A problem that stops nothing by itself.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    #[error("cannot read {}: {source}; ignoring it", .path.display())]
    UnreadableFile { path: PathBuf, source: std::io::Error },
    #[error("{}: unknown setting `{key}` ignored", .path.display())]
    UnknownKey { path: PathBuf, key: String },
    #[error("{from}: `{value}` is not a boolean (1/0, true/false); taken as false")]
    NotABoolean { from: Source, value: String },
    #[error("{from}: `{value}` is not a number of seconds in (0, 3600]; using the default")]
    NotSeconds { from: Source, value: String },
}

/// `url` without the `user:password@` of its authority, for messages and logs.
/// (Without a scheme, as in a mistyped `user:pw@host`, the authority is at the start.)
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Why `url` cannot be the collection server's base URL, if it cannot.
pub fn check_server_url(url: &str) -> Result<(), UrlProblem> {
    let scheme_ok =
        ["http://", "https://"].iter().any(|p| url.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p)));
    if !scheme_ok {
        return Err(UrlProblem::NotHttp);
    }
    let uri: ureq::http::Uri =
        url.parse().map_err(|e: ureq::http::uri::InvalidUri| UrlProblem::Invalid(e.to_string()))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(UrlProblem::NoHost);
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(UrlProblem::QueryOrFragment);
    }
    Ok(())
}

/// A setting given either directly or as a file to read.
#[derive(Clone)]
enum ValueOrFile {
    Value(String, Source),
    File(PathBuf, Source),
}

/// Never shows a value given directly (a token or a secret key).
impl fmt::Debug for ValueOrFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueOrFile::Value(_, src) => f.debug_tuple("Value").field(&"<redacted>").field(src).finish(),
            ValueOrFile::File(p, src) => f.debug_tuple("File").field(p).field(src).finish(),
        }
    }
}

/// A value in the config file: TOML's strings, booleans and numbers are all read as
/// the text the environment would hold, so both go through the same checks.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }
    }
}

/// The config file: one field per key of [`SETTINGS`] (a test checks both ways).
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
struct FileSettings {
    server: Option<Scalar>,
    token: Option<Scalar>,
    token_file: Option<Scalar>,
    secret_key: Option<Scalar>,
    secret_key_file: Option<Scalar>,
    spool: Option<Scalar>,
    #[serde(rename = "async")]
    async_mode: Option<Scalar>,
    verify: Option<Scalar>,
    verbose: Option<Scalar>,
    connect_timeout: Option<Scalar>,
    timeout: Option<Scalar>,
}

impl FileSettings {
    /// The value of `key` as text; `None` when absent or empty.
    fn take(&mut self, key: &str) -> Option<String> {
        let slot = match key {
            "server" => &mut self.server,
            "token" => &mut self.token,
            "token_file" => &mut self.token_file,
            "secret_key" => &mut self.secret_key,
            "secret_key_file" => &mut self.secret_key_file,
            "spool" => &mut self.spool,
            "async" => &mut self.async_mode,
            "verify" => &mut self.verify,
            "verbose" => &mut self.verbose,
            "connect_timeout" => &mut self.connect_timeout,
            "timeout" => &mut self.timeout,
            _ => return None,
        };
        slot.take().map(Scalar::into_text).filter(|v| !v.is_empty())
    }
}

/// `line N: message` for a TOML error in `text`.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', "; ");
    match e.span() {
        Some(span) => format!("line {}: {message}", text[..span.start.min(text.len())].lines().count().max(1)),
        None => message,
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The config file as TOML, with the bare words it has always accepted
/// (`spool = /var/spool`) read as strings: a value that is not TOML and not quoted
/// becomes the string up to a ` #` comment. Used only when the text is not TOML.
fn quote_bare_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let t = line.trim();
        let rewritten = t.split_once('=').filter(|_| !t.starts_with('#') && !t.starts_with('[')).and_then(|(k, v)| {
            let v = v.trim();
            let is_toml =
                v.starts_with(['"', '\'', '[', '{']) || toml::from_str::<toml::Table>(&format!("v = {v}")).is_ok();
            (!is_toml).then(|| {
                let bare = v.split(" #").next().unwrap_or(v).trim();
                format!("{} = {}", k.trim(), toml_string(bare))
            })
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Parses the config file: TOML, keys case-insensitive with `-` read as `_`, bare
/// words read as strings. Unknown keys are returned, not refused.
fn parse_file(text: &str) -> Result<(FileSettings, Vec<String>), toml::de::Error> {
    let table = match toml::from_str::<toml::Table>(text) {
        Ok(t) => t,
        // The error of the text as written, not of the rewritten one.
        Err(e) => toml::from_str::<toml::Table>(&quote_bare_words(text)).map_err(|_| e)?,
    };
    let table: toml::Table = table.into_iter().map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), v)).collect();
    let mut unknown = Vec::new();
    let settings = serde_ignored::deserialize(toml::Value::Table(table), |path| unknown.push(path.to_string()))?;
    Ok((settings, unknown))
}

/// The environment, as a function so tests can supply their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn home(env: &dyn Env) -> Option<PathBuf> {
    env.var("HOME").map(PathBuf::from)
}

fn default_spool(env: &dyn Env, root: bool) -> PathBuf {
    if root {
        return PathBuf::from(ROOT_SPOOL);
    }
    if let Some(state) = env.var("XDG_STATE_HOME") {
        return PathBuf::from(state).join("hash-collection/spool");
    }
    match home(env) {
        Some(h) => h.join(".local/state/hash-collection/spool"),
        None => PathBuf::from(ROOT_SPOOL),
    }
}

fn default_config_files(env: &dyn Env) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(x) = env.var("XDG_CONFIG_HOME") {
        files.push(PathBuf::from(x).join("hash-collection/config.toml"));
    } else if let Some(h) = home(env) {
        files.push(h.join(".config/hash-collection/config.toml"));
    }
    files.push(PathBuf::from(SYSTEM_CONFIG));
    files
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn parse_secs(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0 && secs <= 3600.0).then(|| Duration::from_secs_f64(secs))
}

/// Where Nix's store is, with `HASH_COLLECTION_NIX_DB` applied: read without the
/// config file, so that the diff-hook's report-only mode needs none.
pub fn store_location() -> StoreLocation {
    StoreLocation::from_env().with_db(ProcessEnv.var(NIX_DB.env).map(PathBuf::from))
}

/// `HASH_COLLECTION_DIFF_REPORT_ONLY`: read without the config file (see [`DIFF_REPORT_ONLY`]).
pub fn diff_report_only() -> bool {
    ProcessEnv.var(DIFF_REPORT_ONLY.env).and_then(|v| parse_bool(&v)).unwrap_or(false)
}

/// The settings, resolved but not yet loaded (secrets are read on demand, so that
/// commands that do not need them do not fail without them).
pub struct Config {
    pub server: Option<String>,
    /// Why `server` is unusable, when it is (reported as MISCONFIGURED).
    server_error: Option<BadServer>,
    token: Option<ValueOrFile>,
    secret_key: Option<ValueOrFile>,
    pub spool: PathBuf,
    pub async_mode: bool,
    pub verify: bool,
    pub verbose: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Problems that do not stop anything by themselves (unknown keys, bad values).
    pub warnings: Vec<Warning>,
}

/// Shows no secret: tokens and keys given directly are redacted, and so is any
/// `user:password@` in the server URL.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server.as_deref().map(redact_url))
            .field("server_error", &self.server_error)
            .field("token", &self.token)
            .field("secret_key", &self.secret_key)
            .field("spool", &self.spool)
            .field("async_mode", &self.async_mode)
            .field("verify", &self.verify)
            .field("verbose", &self.verbose)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Config {
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_from(&ProcessEnv, is_root())
    }

    /// Reads the config file at `path`: `None` when it is a default location that does
    /// not exist.
    fn read_file(path: PathBuf, named: bool) -> Result<Option<(PathBuf, String)>, ConfigError> {
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some((path, text))),
            Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::ReadFile { path, source }),
        }
    }

    /// Resolves the configuration from `env` and the config file it points to.
    /// Fails only when an explicitly named config file cannot be read or parsed.
    pub fn load_from(env: &dyn Env, root: bool) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let found = match env.var(CONFIG.env) {
            Some(p) => Config::read_file(PathBuf::from(p), true)?,
            None => {
                let mut found = None;
                for p in default_config_files(env) {
                    match Config::read_file(p, false) {
                        Ok(None) => continue,
                        Ok(Some(f)) => {
                            found = Some(f);
                            break;
                        }
                        Err(ConfigError::ReadFile { path, source }) => {
                            warnings.push(Warning::UnreadableFile { path, source })
                        }
                        Err(e) => return Err(e),
                    }
                }
                found
            }
        };
        let (file, mut values) = match found {
            Some((path, text)) => {
                let (values, unknown) = parse_file(&text)
                    .map_err(|e| ConfigError::Syntax { path: path.clone(), message: toml_message(&text, &e) })?;
                warnings.extend(unknown.into_iter().map(|key| Warning::UnknownKey { path: path.clone(), key }));
                (Some(path), values)
            }
            None => (None, FileSettings::default()),
        };
        let mut from_file = |s: &Setting| -> Option<(String, Source)> {
            let (p, key) = (file.as_ref()?, s.key?);
            values.take(key).map(|v| (v, Source::File(p.clone(), key)))
        };
        // Every setting is looked up once: the environment, then the file.
        let mut setting = |s: &Setting| -> Option<(String, Source)> {
            let in_file = from_file(s);
            env.var(s.env).map(|v| (v, Source::Env(s.env))).or(in_file)
        };
        // A value and a file for the same secret: the environment's choice wins over
        // the file's, and a direct value wins over a file at the same level.
        let mut secret = |value: &Setting, file: &Setting| -> Option<ValueOrFile> {
            match (setting(value), setting(file)) {
                (Some((v, from @ Source::Env(_))), _) => Some(ValueOrFile::Value(v, from)),
                (_, Some((f, from @ Source::Env(_)))) => Some(ValueOrFile::File(PathBuf::from(f), from)),
                (Some((v, from)), _) => Some(ValueOrFile::Value(v, from)),
                (None, Some((f, from))) => Some(ValueOrFile::File(PathBuf::from(f), from)),
                (None, None) => None,
            }
        };
        let token = secret(&TOKEN, &TOKEN_FILE);
        let secret_key = secret(&SECRET_KEY, &SECRET_KEY_FILE);
        let mut flag = |s: &Setting| -> bool {
            match setting(s) {
                None => false,
                Some((value, from)) => parse_bool(&value).unwrap_or_else(|| {
                    warnings.push(Warning::NotABoolean { from, value });
                    false
                }),
            }
        };
        let async_mode = flag(&ASYNC);
        let verify = flag(&VERIFY);
        let verbose = flag(&VERBOSE);
        let mut secs = |s: &Setting, default: Duration| -> Duration {
            match setting(s) {
                None => default,
                Some((value, from)) => parse_secs(&value).unwrap_or_else(|| {
                    warnings.push(Warning::NotSeconds { from, value });
                    default
                }),
            }
        };
        let connect_timeout = secs(&CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT);
        let timeout = secs(&TIMEOUT, DEFAULT_TIMEOUT);
        let server = setting(&SERVER).map(|(v, src)| (v.trim().trim_end_matches('/').to_owned(), src));
        let server_error = server.as_ref().and_then(|(url, from)| {
            check_server_url(url).err().map(|problem| BadServer { url: redact_url(url), from: from.clone(), problem })
        });
        Ok(Config {
            server: server.map(|(s, _)| s),
            server_error,
            token,
            secret_key,
            spool: setting(&SPOOL).map(|(v, _)| PathBuf::from(v)).unwrap_or_else(|| default_spool(env, root)),
            async_mode,
            verify,
            verbose,
            connect_timeout,
            timeout: timeout.max(connect_timeout),
            warnings,
        })
    }

    /// What makes the client unable to send, if anything (reported loudly as
    /// MISCONFIGURED; the hook still spools and exits 0).
    pub fn misconfiguration(&self) -> Option<&BadServer> {
        self.server_error.as_ref()
    }

    fn read(v: &ValueOrFile, what: &'static str) -> Result<String, ConfigError> {
        match v {
            ValueOrFile::Value(s, _) => Ok(s.trim().to_owned()),
            ValueOrFile::File(p, from) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|source| ConfigError::ReadSecret { what, path: p.clone(), from: from.clone(), source }),
        }
    }

    /// The builder token; an error names the setting to fix.
    pub fn token(&self) -> Result<Token, ConfigError> {
        let t = Config::read(self.token.as_ref().ok_or(ConfigError::NoToken)?, "token")?;
        if t.is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        if t.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(ConfigError::BadToken);
        }
        Ok(Token(t))
    }

    /// The builder's signing key.
    pub fn secret_key(&self) -> Result<SecretKey, ConfigError> {
        let v = self.secret_key.as_ref().ok_or(ConfigError::NoKey)?;
        let s = Config::read(v, "secret key")?;
        let (ValueOrFile::Value(_, from) | ValueOrFile::File(_, from)) = v;
        SecretKey::parse(&s).map_err(|source| ConfigError::BadKey { from: from.clone(), source })
    }

    pub fn server(&self) -> Result<&str, ConfigError> {
        if let Some(e) = &self.server_error {
            return Err(e.clone().into());
        }
        self.server.as_deref().ok_or(ConfigError::NoServer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_syntax() {
        let (mut f, unknown) = parse_file(
            "# comment\nserver = \"https://x.example/\"\ntoken-file = '/run/keys/t' # trailing\nAsync = true\n\ntimeout = 2.5\nspool = /var/spool # c\nverify = yes\nconnect_timeout = 1\nbogus = 1\n",
        )
        .unwrap();
        assert_eq!(unknown, ["bogus"]);
        assert_eq!(f.take("server").unwrap(), "https://x.example/");
        assert_eq!(f.take("token_file").unwrap(), "/run/keys/t");
        assert_eq!(f.take("async").unwrap(), "true");
        assert_eq!(f.take("timeout").unwrap(), "2.5");
        assert_eq!(f.take("spool").unwrap(), "/var/spool");
        assert_eq!(f.take("verify").unwrap(), "yes");
        assert_eq!(f.take("connect_timeout").unwrap(), "1");
        // Plain TOML is read as TOML, also where a bare word would differ.
        let (mut f, _) = parse_file("spool = \"/a b # c\"\n").unwrap();
        assert_eq!(f.take("spool").unwrap(), "/a b # c");
        let message =
            |text: &str| toml_message(text, &parse_file(text).err().unwrap_or_else(|| panic!("{text} parsed")));
        for bad in ["server", "server = \"x", "server = \"x\" y", "a b = c"] {
            let e = message(bad);
            assert!(e.starts_with("line 1: ") && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(parse_file("server = [1, 2]").is_err());
        assert!(message("server = \"a\"\n\nserver = [").starts_with("line 3: "));
    }

    #[test]
    fn env_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let tok = dir.path().join("tok");
        std::fs::write(&tok, "from-env-file\n").unwrap();
        std::fs::write(
            &cfg,
            "server = \"http://file\"\ntoken = \"from-file\"\nasync = yes\nbogus = 1\nspool = \"/s\"\n",
        )
        .unwrap();
        let cfgs = cfg.to_str().unwrap();
        let c = Config::load_from(&env(&[(CONFIG.env, cfgs)]), false).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://file"));
        assert_eq!(c.token().unwrap().as_str(), "from-file");
        assert!(c.async_mode);
        assert_eq!(c.spool, PathBuf::from("/s"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(matches!(&c.warnings[0], Warning::UnknownKey { key, .. } if key == "bogus"));

        let c = Config::load_from(
            &env(&[
                (CONFIG.env, cfgs),
                (SERVER.env, "http://env/"),
                (TOKEN_FILE.env, tok.to_str().unwrap()),
                (ASYNC.env, "0"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(c.server.as_deref(), Some("http://env"));
        assert_eq!(c.token().unwrap().as_str(), "from-env-file");
        assert!(!c.async_mode);
        assert!(format!("{:?}", c.token().unwrap()).contains("redacted"));
    }

    #[test]
    fn defaults_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.to_str().unwrap();
        let c = Config::load_from(&env(&[("HOME", "/home/u"), (CONFIG.env, empty)]), false).unwrap();
        assert_eq!(c.spool, PathBuf::from("/home/u/.local/state/hash-collection/spool"));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(matches!(c.token(), Err(ConfigError::NoToken)));
        assert!(c.token().unwrap_err().to_string().contains(TOKEN_FILE.env));
        assert!(c.secret_key().unwrap_err().to_string().contains(SECRET_KEY_FILE.env));
        assert!(matches!(c.server(), Err(ConfigError::NoServer)));
        let c = Config::load_from(&env(&[(CONFIG.env, empty)]), true).unwrap();
        assert_eq!(c.spool, PathBuf::from(ROOT_SPOOL));
        let c = Config::load_from(&env(&[(CONFIG.env, empty), ("XDG_STATE_HOME", "/st"), (TIMEOUT.env, "abc")]), false)
            .unwrap();
        assert_eq!(c.spool, PathBuf::from("/st/hash-collection/spool"));
        assert_eq!(c.warnings.len(), 1);
        assert!(matches!(&c.warnings[0], Warning::NotSeconds { value, .. } if value == "abc"));
        assert!(matches!(
            Config::load_from(&env(&[(CONFIG.env, "/nonexistent/x")]), false),
            Err(ConfigError::ReadFile { .. })
        ));
        let c = Config::load_from(
            &env(&[(CONFIG.env, empty), (SECRET_KEY.env, "k:bm90IGEga2V5"), (TOKEN_FILE.env, "/none")]),
            false,
        )
        .unwrap();
        let e = c.secret_key().unwrap_err();
        assert!(matches!(e, ConfigError::BadKey { .. }));
        let e = e.to_string();
        assert!(e.contains(SECRET_KEY.env) && !e.contains("bm90IGEga2V5"), "{e}");
        assert!(c.token().unwrap_err().to_string().contains("/none"));
    }

    /// A value beats a file at the same level; the environment's choice beats the file's.
    #[test]
    fn secrets_as_values_or_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, tok) = (dir.path().join("c.toml"), dir.path().join("tok"));
        std::fs::write(&tok, " t-from-a-file \n").unwrap();
        let tok = tok.to_str().unwrap();
        std::fs::write(&cfg, format!("token = \"t-file-value\"\ntoken_file = \"{tok}\"\n")).unwrap();
        let cfgs = cfg.to_str().unwrap();
        let token = |pairs: &[(&str, &str)]| {
            let mut e = env(pairs);
            e.insert(CONFIG.env.into(), cfgs.into());
            Config::load_from(&e, false).unwrap().token().unwrap().as_str().to_owned()
        };
        assert_eq!(token(&[]), "t-file-value");
        assert_eq!(token(&[(TOKEN_FILE.env, tok)]), "t-from-a-file");
        assert_eq!(token(&[(TOKEN_FILE.env, tok), (TOKEN.env, "t-env")]), "t-env");
        std::fs::write(&cfg, format!("token_file = \"{tok}\"\n")).unwrap();
        assert_eq!(token(&[]), "t-from-a-file");
    }

    #[test]
    fn an_invalid_server_url_is_a_misconfiguration() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.to_str().unwrap();
        for bad in ["foo", "hc.example.org", "ftp://hc.example.org", "http://", "https://x.example/?a=1", "http://x/#f"]
        {
            let c = Config::load_from(&env(&[(CONFIG.env, empty), (SERVER.env, bad)]), false).unwrap();
            let e = c.misconfiguration().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.to_string().contains(SERVER.env), "{e}");
            assert!(matches!(c.server(), Err(ConfigError::BadServer(b)) if b == *e));
        }
        for good in
            ["http://127.0.0.1:8080", "https://hc.example.org/", "https://u:p@hc.example.org/prefix", "HTTPS://X"]
        {
            let c = Config::load_from(&env(&[(CONFIG.env, empty), (SERVER.env, good)]), false).unwrap();
            assert!(c.misconfiguration().is_none() && c.warnings.is_empty(), "{good}: {:?}", c.warnings);
            assert!(c.server().is_ok());
        }
        let c = Config::load_from(&env(&[(CONFIG.env, empty), (SERVER.env, "u:pw@foo")]), false).unwrap();
        assert!(!c.misconfiguration().unwrap().to_string().contains("pw"));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "token = \"file-token-123\"\nsecret_key = \"k:ZmlsZS1zZWNyZXQ=\"\n").unwrap();
        let cfgs = cfg.to_str().unwrap();
        for e in [
            env(&[(CONFIG.env, cfgs), (SERVER.env, "https://bob:pw-456@hc.example.org")]),
            env(&[
                (CONFIG.env, cfgs),
                (SERVER.env, "https://bob:pw-456@hc.example.org"),
                (TOKEN.env, "env-token-789"),
                (SECRET_KEY.env, "k:ZW52LXNlY3JldA=="),
            ]),
        ] {
            let c = Config::load_from(&e, false).unwrap();
            let shown = format!("{c:?} {c:#?}");
            for secret in ["file-token-123", "ZmlsZS1zZWNyZXQ", "env-token-789", "ZW52LXNlY3JldA", "pw-456", "bob"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("hc.example.org") && shown.contains("redacted"), "{shown}");
        }
        let c = Config::load_from(&env(&[(CONFIG.env, cfgs), (TOKEN_FILE.env, "/run/keys/token")]), false).unwrap();
        assert!(format!("{c:?}").contains("/run/keys/token"));
    }

    #[test]
    fn urls_lose_their_userinfo() {
        assert_eq!(redact_url("https://u:p@h.example:1/x@y?z@w"), "https://h.example:1/x@y?z@w");
        assert_eq!(redact_url("http://tok@h/"), "http://h/");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url("foo"), "foo");
        assert_eq!(redact_url("u:pw@foo/x"), "foo/x");
    }

    /// The config file's struct and the table of settings name the same keys.
    #[test]
    fn every_file_key_is_a_setting_and_back() {
        let keys: Vec<&str> = SETTINGS.iter().filter_map(|s| s.key).collect();
        let doc: String = keys.iter().map(|k| format!("{k} = \"x\"\n")).collect();
        let (mut f, unknown) = parse_file(&doc).unwrap();
        assert!(unknown.is_empty(), "keys of SETTINGS that FileSettings lacks: {unknown:?}");
        for k in &keys {
            assert_eq!(f.take(k).as_deref(), Some("x"), "{k}");
        }
        let all = FileSettings {
            server: Some(Scalar::Bool(true)),
            token: Some(Scalar::Bool(true)),
            token_file: Some(Scalar::Bool(true)),
            secret_key: Some(Scalar::Bool(true)),
            secret_key_file: Some(Scalar::Bool(true)),
            spool: Some(Scalar::Bool(true)),
            async_mode: Some(Scalar::Bool(true)),
            verify: Some(Scalar::Bool(true)),
            verbose: Some(Scalar::Bool(true)),
            connect_timeout: Some(Scalar::Bool(true)),
            timeout: Some(Scalar::Bool(true)),
        };
        let fields: Vec<String> = toml::Table::try_from(&all).unwrap().keys().cloned().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(fields, sorted, "FileSettings fields that SETTINGS lacks, or the other way round");
    }

    /// Every setting is in `--help`.
    #[test]
    fn help_lists_every_setting() {
        let h = help();
        for s in SETTINGS {
            assert!(h.contains(s.env), "{} missing from --help:\n{h}", s.env);
            if let Some(k) = s.key {
                assert!(h.contains(&format!("[{k}]")), "{k} missing from --help:\n{h}");
            }
        }
        assert!(h.lines().all(|l| l.chars().count() <= 100), "{h}");
    }

    /// The README's table of client settings, row for row as [`SETTINGS`] makes it.
    fn readme_rows() -> Vec<String> {
        SETTINGS
            .iter()
            .map(|s| {
                let (env, key) = match (s.kind, s.key) {
                    (Kind::Flag, Some(k)) => (format!("`{}=1`", s.env), format!("`{k} = true`")),
                    (Kind::Flag, None) => (format!("`{}=1`", s.env), String::new()),
                    (_, k) => (format!("`{}`", s.env), k.map(|k| format!("`{k}`")).unwrap_or_default()),
                };
                let key = if key.is_empty() { " ".to_owned() } else { format!(" {key} ") };
                format!("| {env} |{key}| {} | {} |", s.default, s.meaning)
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_the_settings_of_the_table() {
        let readme = include_str!("../../README.md");
        let section = readme.split("\n### Configuration\n").nth(1).expect("README: no `### Configuration` section");
        let table: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // the header and the separator
            .collect();
        let want = readme_rows();
        assert_eq!(
            table,
            want,
            "README's settings table differs from config::SETTINGS; it should read:\n{}",
            want.join("\n")
        );
    }
}
