//! Configuration: environment variables, then a config file, then defaults.
//!
//! - `settings.rs`: [`SETTINGS`], the one table of settings (environment names, file
//!   keys, defaults, meanings), from which `--help` is made;
//! - `file.rs`: the config file, TOML read into a serde struct;
//! - here: [`Config`], resolved from both, and the errors and warnings.
//!
//! Every `HASH_COLLECTION_*` variable is read in this module and nowhere else. A new
//! setting is a row of [`SETTINGS`], a field of `FileSettings` when the config file
//! may hold it, and a field of [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::{ParseError, SecretKey};
use nhc_nix::StoreLocation;

mod file;
mod settings;

use file::{parse_file, toml_message, FileSettings};
pub use settings::*;

pub const SYSTEM_CONFIG: &str = "/etc/hash-collection/config.toml";
pub const ROOT_SPOOL: &str = "/var/lib/hash-collection/spool";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// A command-line flag.
    Flag(&'static str),
    File(PathBuf, &'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "${name}"),
            Source::Flag(name) => f.write_str(name),
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
    #[error(
        "no jobset token: set ${} (or ${}) to the jobset's token (`nhc-server jobset token NAME`) or the admin \
         token, or pass --token-file",
        JOBSET_TOKEN_FILE.env,
        JOBSET_TOKEN.env
    )]
    NoJobsetToken,
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

/// The `nhc proxy` settings from the environment or the config file, each with where
/// it came from (the command's flags win over them).
#[derive(Debug, Default, Clone)]
pub struct ProxyConfig {
    pub upstream: Option<(String, Source)>,
    pub trusted_keys: Option<(String, Source)>,
    pub quorum: Option<(String, Source)>,
    pub listen: Option<(String, Source)>,
    pub key_groups: Option<(String, Source)>,
    pub on_mismatch: Option<(String, Source)>,
    pub dry_run: bool,
}

/// How `nhc check` makes a diff report (environment only, like [`DIFF_REPORT_ONLY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSettings {
    /// The diffoscope to run; `None`: `off`.
    pub diffoscope: Option<String>,
    pub timeout: Duration,
    pub memory_bytes: u64,
    /// Largest gzip report sent.
    pub max_bytes: usize,
}

/// `HASH_COLLECTION_DIFF_SPOOL` (environment only).
pub fn diff_spool() -> Option<PathBuf> {
    ProcessEnv.var(DIFF_SPOOL.env).filter(|v| !v.trim().is_empty()).map(PathBuf::from)
}

/// A diff setting whose value does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {value:?} is not {expected}")]
pub struct DiffSettingError {
    pub variable: &'static str,
    pub value: String,
    /// What the value must be, e.g. "a number in 1..=1024".
    pub expected: String,
}

/// `HASH_COLLECTION_DIFFOSCOPE*` and `HASH_COLLECTION_DIFF_MAX_BYTES`; a value that does
/// not parse is an error naming the variable.
pub fn diff_settings() -> Result<DiffSettings, DiffSettingError> {
    let env = ProcessEnv;
    let diffoscope = match env.var(DIFFOSCOPE.env) {
        Some(v) if v.trim() == "off" => None,
        Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => Some("diffoscope".to_owned()),
    };
    let timeout = match env.var(DIFFOSCOPE_TIMEOUT.env) {
        Some(v) => parse_secs(&v).ok_or_else(|| DiffSettingError {
            variable: DIFFOSCOPE_TIMEOUT.env,
            value: v.clone(),
            expected: "a number of seconds in (0, 3600]".to_owned(),
        })?,
        None => Duration::from_secs(600),
    };
    let number =
        |s: &Setting, default: u64, max: u64| -> Result<u64, DiffSettingError> {
            match env.var(s.env) {
                Some(v) => v.trim().parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    DiffSettingError { variable: s.env, value: v.clone(), expected: format!("a number in 1..={max}") }
                }),
                None => Ok(default),
            }
        };
    let memory_mb = number(&DIFFOSCOPE_MEMORY, 2048, 1 << 30)?;
    let max_bytes =
        number(&DIFF_MAX_BYTES, nhc_core::diff::MAX_REPORT_BYTES as u64, nhc_core::diff::MAX_REPORT_BYTES as u64)?;
    Ok(DiffSettings {
        diffoscope,
        timeout,
        memory_bytes: memory_mb.saturating_mul(1 << 20),
        max_bytes: max_bytes as usize,
    })
}

/// The settings, resolved but not yet loaded (secrets are read on demand, so that
/// commands that do not need them do not fail without them).
pub struct Config {
    pub server: Option<String>,
    /// Why `server` is unusable, when it is (reported as MISCONFIGURED).
    server_error: Option<BadServer>,
    token: Option<ValueOrFile>,
    jobset_token: Option<ValueOrFile>,
    secret_key: Option<ValueOrFile>,
    pub spool: PathBuf,
    pub async_mode: bool,
    pub verify: bool,
    pub verbose: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// The `nhc proxy` settings, as text (the command parses them).
    pub proxy: ProxyConfig,
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
            .field("jobset_token", &self.jobset_token)
            .field("secret_key", &self.secret_key)
            .field("spool", &self.spool)
            .field("async_mode", &self.async_mode)
            .field("verify", &self.verify)
            .field("verbose", &self.verbose)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("proxy", &self.proxy)
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
        Config::resolve(env, root, found, warnings)
    }

    /// The configuration from `env` and the config file's text, if one was found:
    /// everything of [`Config::load_from`] but reading the file.
    fn resolve(
        env: &dyn Env,
        root: bool,
        found: Option<(PathBuf, String)>,
        mut warnings: Vec<Warning>,
    ) -> Result<Config, ConfigError> {
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
        let jobset_token = secret(&JOBSET_TOKEN, &JOBSET_TOKEN_FILE);
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
        let proxy_dry_run = flag(&PROXY_DRY_RUN);
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
        let proxy = ProxyConfig {
            upstream: setting(&PROXY_UPSTREAM),
            trusted_keys: setting(&PROXY_TRUSTED_KEYS),
            quorum: setting(&PROXY_QUORUM),
            listen: setting(&PROXY_LISTEN),
            key_groups: setting(&PROXY_KEY_GROUPS),
            on_mismatch: setting(&PROXY_ON_MISMATCH),
            dry_run: proxy_dry_run,
        };
        let server = setting(&SERVER).map(|(v, src)| (v.trim().trim_end_matches('/').to_owned(), src));
        let server_error = server.as_ref().and_then(|(url, from)| {
            check_server_url(url).err().map(|problem| BadServer { url: redact_url(url), from: from.clone(), problem })
        });
        Ok(Config {
            server: server.map(|(s, _)| s),
            server_error,
            token,
            jobset_token,
            secret_key,
            spool: setting(&SPOOL).map(|(v, _)| PathBuf::from(v)).unwrap_or_else(|| default_spool(env, root)),
            async_mode,
            verify,
            verbose,
            connect_timeout,
            timeout: timeout.max(connect_timeout),
            proxy,
            warnings,
        })
    }

    /// For `fuzz/` only: resolves `text` as the config file with an empty environment
    /// and renders every message a user could see, so that a panic anywhere shows.
    #[doc(hidden)]
    pub fn fuzz_file(text: &str) -> Result<Config, ConfigError> {
        let env = BTreeMap::new();
        let config =
            Config::resolve(&env, false, Some((PathBuf::from("/fuzz/config.toml"), text.to_owned())), Vec::new());
        match &config {
            Ok(c) => {
                let _ = format!("{c:?}");
                c.warnings.iter().for_each(|w| drop(w.to_string()));
                if let Some(bad) = c.misconfiguration() {
                    let _ = bad.to_string();
                }
            }
            Err(e) => drop(e.to_string()),
        }
        config
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
        Config::check_token(Config::read(self.token.as_ref().ok_or(ConfigError::NoToken)?, "token")?)
    }

    /// The token that uploads evaluations (a jobset's or the admin's): `file` when
    /// given (`--token-file`), else the jobset-token settings.
    pub fn jobset_token(&self, file: Option<&std::path::Path>) -> Result<Token, ConfigError> {
        let v = match file {
            Some(f) => ValueOrFile::File(f.to_path_buf(), Source::Flag("--token-file")),
            None => self.jobset_token.clone().ok_or(ConfigError::NoJobsetToken)?,
        };
        Config::check_token(Config::read(&v, "jobset token")?)
    }

    fn check_token(t: String) -> Result<Token, ConfigError> {
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
        let empty = "/dev/null";
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
        let empty = "/dev/null";
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
}
