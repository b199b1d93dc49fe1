//! Configuration: environment variables, then a config file, then defaults.
//!
//! The environment names are the contract (DESIGN.md); the file holds the same
//! settings in lower case without the `HASH_COLLECTION_` prefix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nhc_core::SecretKey;

pub const ENV_SERVER: &str = "HASH_COLLECTION_SERVER";
pub const ENV_TOKEN: &str = "HASH_COLLECTION_TOKEN";
pub const ENV_TOKEN_FILE: &str = "HASH_COLLECTION_TOKEN_FILE";
pub const ENV_SECRET_KEY: &str = "HASH_COLLECTION_SECRET_KEY";
pub const ENV_SECRET_KEY_FILE: &str = "HASH_COLLECTION_SECRET_KEY_FILE";
pub const ENV_SPOOL: &str = "HASH_COLLECTION_SPOOL";
pub const ENV_ASYNC: &str = "HASH_COLLECTION_ASYNC";
pub const ENV_VERIFY: &str = "HASH_COLLECTION_VERIFY";
pub const ENV_CONNECT_TIMEOUT: &str = "HASH_COLLECTION_CONNECT_TIMEOUT";
pub const ENV_TIMEOUT: &str = "HASH_COLLECTION_TIMEOUT";
pub const ENV_CONFIG: &str = "HASH_COLLECTION_CONFIG";
pub const ENV_VERBOSE: &str = "HASH_COLLECTION_VERBOSE";

pub const SYSTEM_CONFIG: &str = "/etc/hash-collection/config.toml";
pub const ROOT_SPOOL: &str = "/var/lib/hash-collection/spool";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The text `--help` shows about configuration, shared by every command.
pub const HELP: &str = "\
CONFIGURATION (environment variables win over the config file):
  HASH_COLLECTION_SERVER           base URL of the collection server, e.g. https://hc.example.org
  HASH_COLLECTION_TOKEN            this builder's token (as printed by `nhc-server user add`)
  HASH_COLLECTION_TOKEN_FILE       ... or a file holding it (surrounding whitespace ignored)
  HASH_COLLECTION_SECRET_KEY       the builder's Nix signing key `name:base64` (nix key generate-secret)
  HASH_COLLECTION_SECRET_KEY_FILE  ... or a file holding it
  HASH_COLLECTION_SPOOL            spool directory (created 0700); default /var/lib/hash-collection/spool
                                   for root, else $XDG_STATE_HOME/hash-collection/spool
                                   (~/.local/state/hash-collection/spool)
  HASH_COLLECTION_ASYNC=1          the hook only spools and never touches the network; `nhc flush` sends
  HASH_COLLECTION_VERIFY=1         the hook re-hashes every output from disk and compares with Nix's record
  HASH_COLLECTION_CONNECT_TIMEOUT  seconds to wait for a connection (default 1.5)
  HASH_COLLECTION_TIMEOUT          seconds for a whole request (default 3)
  HASH_COLLECTION_VERBOSE=1        report success too, not only problems
  HASH_COLLECTION_CONFIG           config file to read (default: $XDG_CONFIG_HOME/hash-collection/config.toml
                                   if it exists, else /etc/hash-collection/config.toml if it exists)
The config file takes `key = value` lines (TOML syntax for strings and booleans) with the
names above in lower case without the prefix: server, token, token_file, secret_key,
secret_key_file, spool, async, verify, connect_timeout, timeout, verbose.
The Nix store is found as Nix finds it: the `store` setting from NIX_CONFIG, then
$NIX_CONF_DIR/nix.conf (default /etc/nix/nix.conf), then NIX_REMOTE; `store = /root/dir` or
`local?root=/root/dir` is a chroot store whose files live under /root/dir/nix/store.
Nix's database is read from <state dir>/db/db.sqlite (HASH_COLLECTION_NIX_DB overrides);
when it cannot be read, NAR hashes are computed from the files and references come from
`nix-store --query`.";

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
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

/// Where a setting came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Env(&'static str),
    File(PathBuf, String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "${name}"),
            Source::File(path, key) => write!(f, "`{key}` in {}", path.display()),
        }
    }
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
pub fn check_server_url(url: &str) -> Result<(), String> {
    let scheme_ok =
        ["http://", "https://"].iter().any(|p| url.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p)));
    if !scheme_ok {
        return Err("is not an http:// or https:// URL".into());
    }
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("is not a valid URL ({e})"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not have a ?query or #fragment (the API paths are appended to it)".into());
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

/// The settings, resolved but not yet loaded (secrets are read on demand, so that
/// commands that do not need them do not fail without them).
pub struct Config {
    pub server: Option<String>,
    /// Why `server` is unusable, when it is (reported as MISCONFIGURED).
    server_error: Option<String>,
    token: Option<ValueOrFile>,
    secret_key: Option<ValueOrFile>,
    pub spool: PathBuf,
    pub async_mode: bool,
    pub verify: bool,
    pub verbose: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Problems that do not stop anything by themselves (unknown keys, bad values).
    pub warnings: Vec<String>,
    /// Settings that make the client unable to send (reported loudly as MISCONFIGURED;
    /// the hook still spools and exits 0).
    pub errors: Vec<String>,
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
            .field("file", &self.file)
            .field("warnings", &self.warnings)
            .field("errors", &self.errors)
            .finish()
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

/// Parses the config file: `key = value` lines, `#` comments, values as TOML basic
/// (`"..."`) or literal (`'...'`) strings, booleans, numbers, or bare words.
pub fn parse_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let lineno = i + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {lineno}: expected `key = value`"));
        };
        let key = key.trim().replace('-', "_").to_ascii_lowercase();
        if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(format!("line {lineno}: invalid key"));
        }
        let value = parse_value(value.trim()).map_err(|e| format!("line {lineno}: {e}"))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn parse_value(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next() {
                None => return Err("unterminated string".into()),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => return Err(format!("unsupported escape \\{c}")),
                    None => return Err("unterminated string".into()),
                },
                Some(c) => out.push(c),
            }
        }
        check_trailing(chars.as_str())?;
        return Ok(out);
    }
    if let Some(rest) = v.strip_prefix('\'') {
        let Some((s, tail)) = rest.split_once('\'') else {
            return Err("unterminated string".into());
        };
        check_trailing(tail)?;
        return Ok(s.to_owned());
    }
    // A bare value ends at a comment.
    let bare = v.split(" #").next().unwrap_or(v).trim();
    Ok(bare.to_owned())
}

fn check_trailing(tail: &str) -> Result<(), String> {
    let tail = tail.trim();
    if tail.is_empty() || tail.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the value".into())
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
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

const FILE_KEYS: &[&str] = &[
    "server",
    "token",
    "token_file",
    "secret_key",
    "secret_key_file",
    "spool",
    "async",
    "verify",
    "verbose",
    "connect_timeout",
    "timeout",
];

impl Config {
    pub fn load() -> Result<Config, String> {
        Config::load_from(&ProcessEnv, is_root())
    }

    /// Resolves the configuration from `env` and the config file it points to.
    /// Fails only when an explicitly named config file cannot be read or parsed.
    pub fn load_from(env: &dyn Env, root: bool) -> Result<Config, String> {
        let mut warnings = Vec::new();
        let (file, values) = match env.var(ENV_CONFIG) {
            Some(p) => {
                let p = PathBuf::from(p);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read the config file {} (${ENV_CONFIG}): {e}", p.display()))?;
                let v = parse_file(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                (Some(p), v)
            }
            None => {
                let mut found = (None, BTreeMap::new());
                for p in default_config_files(env) {
                    match std::fs::read_to_string(&p) {
                        Ok(text) => {
                            let v = parse_file(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                            found = (Some(p), v);
                            break;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => warnings.push(format!("cannot read {}: {e}; ignoring it", p.display())),
                    }
                }
                found
            }
        };
        if let Some(p) = &file {
            for key in values.keys() {
                if !FILE_KEYS.contains(&key.as_str()) {
                    warnings.push(format!("{}: unknown setting `{key}` ignored", p.display()));
                }
            }
        }
        let from_file = |key: &str| -> Option<(String, Source)> {
            let p = file.as_ref()?;
            let v = values.get(key)?;
            (!v.is_empty()).then(|| (v.clone(), Source::File(p.clone(), key.to_owned())))
        };
        let setting = |env_name: &'static str, key: &str| -> Option<(String, Source)> {
            env.var(env_name).map(|v| (v, Source::Env(env_name))).or_else(|| from_file(key))
        };
        // A value and a file for the same secret: the environment's choice wins over
        // the file's, and a direct value wins over a file at the same level.
        let secret = |env_v: &'static str, env_f: &'static str, key: &str| -> Option<ValueOrFile> {
            if let Some(v) = env.var(env_v) {
                return Some(ValueOrFile::Value(v, Source::Env(env_v)));
            }
            if let Some(f) = env.var(env_f) {
                return Some(ValueOrFile::File(PathBuf::from(f), Source::Env(env_f)));
            }
            if let Some((v, s)) = from_file(key) {
                return Some(ValueOrFile::Value(v, s));
            }
            from_file(&format!("{key}_file")).map(|(f, s)| ValueOrFile::File(PathBuf::from(f), s))
        };
        let mut flag = |env_name: &'static str, key: &str| -> bool {
            match setting(env_name, key) {
                None => false,
                Some((v, src)) => parse_bool(&v).unwrap_or_else(|| {
                    warnings.push(format!("{src}: `{v}` is not a boolean (1/0, true/false); taken as false"));
                    false
                }),
            }
        };
        let async_mode = flag(ENV_ASYNC, "async");
        let verify = flag(ENV_VERIFY, "verify");
        let verbose = flag(ENV_VERBOSE, "verbose");
        let mut secs = |env_name: &'static str, key: &str, default: Duration| -> Duration {
            match setting(env_name, key) {
                None => default,
                Some((v, src)) => parse_secs(&v).unwrap_or_else(|| {
                    warnings.push(format!("{src}: `{v}` is not a number of seconds in (0, 3600]; using the default"));
                    default
                }),
            }
        };
        let connect_timeout = secs(ENV_CONNECT_TIMEOUT, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
        let timeout = secs(ENV_TIMEOUT, "timeout", DEFAULT_TIMEOUT);
        let server = setting(ENV_SERVER, "server").map(|(v, src)| (v.trim().trim_end_matches('/').to_owned(), src));
        let server_error = server.as_ref().and_then(|(s, src)| {
            check_server_url(s).err().map(|e| {
                format!("the server URL {:?} ({src}) {e}; set it to e.g. https://hc.example.org", redact_url(s))
            })
        });
        let errors: Vec<String> = server_error.iter().cloned().collect();
        Ok(Config {
            server: server.map(|(s, _)| s),
            server_error,
            token: secret(ENV_TOKEN, ENV_TOKEN_FILE, "token"),
            secret_key: secret(ENV_SECRET_KEY, ENV_SECRET_KEY_FILE, "secret_key"),
            spool: setting(ENV_SPOOL, "spool")
                .map(|(v, _)| PathBuf::from(v))
                .unwrap_or_else(|| default_spool(env, root)),
            async_mode,
            verify,
            verbose,
            connect_timeout,
            timeout: timeout.max(connect_timeout),
            file,
            warnings,
            errors,
        })
    }

    fn read(v: &ValueOrFile, what: &str) -> Result<String, String> {
        match v {
            ValueOrFile::Value(s, _) => Ok(s.trim().to_owned()),
            ValueOrFile::File(p, src) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("cannot read the {what} file {} ({src}): {e}", p.display())),
        }
    }

    /// The builder token; an error names the setting to fix.
    pub fn token(&self) -> Result<Token, String> {
        let v = self
            .token
            .as_ref()
            .ok_or_else(|| format!("no token: set ${ENV_TOKEN_FILE} (or ${ENV_TOKEN}) to this builder's token"))?;
        let t = Config::read(v, "token")?;
        if t.is_empty() {
            return Err("the token is empty".into());
        }
        if t.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err("the token holds spaces or control characters".into());
        }
        Ok(Token(t))
    }

    /// The builder's signing key.
    pub fn secret_key(&self) -> Result<SecretKey, String> {
        let v = self.secret_key.as_ref().ok_or_else(|| {
            format!("no signing key: set ${ENV_SECRET_KEY_FILE} (or ${ENV_SECRET_KEY}) to a key made by `nhc keygen` or `nix key generate-secret`")
        })?;
        let s = Config::read(v, "secret key")?;
        let src = match v {
            ValueOrFile::Value(_, src) | ValueOrFile::File(_, src) => src,
        };
        SecretKey::parse(&s).map_err(|e| format!("the secret key from {src} is invalid: {e}"))
    }

    pub fn server(&self) -> Result<&str, String> {
        if let Some(e) = &self.server_error {
            return Err(e.clone());
        }
        self.server.as_deref().ok_or_else(|| format!("no server: set ${ENV_SERVER} to the collection server's URL"))
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
        let f = parse_file(
            "# comment\nserver = \"https://x.example/\"\ntoken-file = '/run/keys/t' # trailing\nasync = true\n\ntimeout = 2.5\nspool = /var/spool # c\n",
        )
        .unwrap();
        assert_eq!(f["server"], "https://x.example/");
        assert_eq!(f["token_file"], "/run/keys/t");
        assert_eq!(f["async"], "true");
        assert_eq!(f["timeout"], "2.5");
        assert_eq!(f["spool"], "/var/spool");
        assert!(parse_file("server").is_err());
        assert!(parse_file("server = \"x").is_err());
        assert!(parse_file("server = \"x\" y").is_err());
        assert!(parse_file("a b = c").is_err());
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
        let c = Config::load_from(&env(&[(ENV_CONFIG, cfgs)]), false).unwrap();
        assert_eq!(c.server.as_deref(), Some("http://file"));
        assert_eq!(c.token().unwrap().as_str(), "from-file");
        assert!(c.async_mode);
        assert_eq!(c.spool, PathBuf::from("/s"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);

        let c = Config::load_from(
            &env(&[
                (ENV_CONFIG, cfgs),
                (ENV_SERVER, "http://env/"),
                (ENV_TOKEN_FILE, tok.to_str().unwrap()),
                (ENV_ASYNC, "0"),
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
        let c = Config::load_from(&env(&[("HOME", "/home/u"), (ENV_CONFIG, empty)]), false).unwrap();
        assert_eq!(c.spool, PathBuf::from("/home/u/.local/state/hash-collection/spool"));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.token().unwrap_err().contains(ENV_TOKEN_FILE));
        assert!(c.secret_key().unwrap_err().contains(ENV_SECRET_KEY_FILE));
        assert!(c.server().is_err());
        let c = Config::load_from(&env(&[(ENV_CONFIG, empty)]), true).unwrap();
        assert_eq!(c.spool, PathBuf::from(ROOT_SPOOL));
        let c = Config::load_from(&env(&[(ENV_CONFIG, empty), ("XDG_STATE_HOME", "/st"), (ENV_TIMEOUT, "abc")]), false)
            .unwrap();
        assert_eq!(c.spool, PathBuf::from("/st/hash-collection/spool"));
        assert_eq!(c.warnings.len(), 1);
        assert!(Config::load_from(&env(&[(ENV_CONFIG, "/nonexistent/x")]), false).is_err());
        let c = Config::load_from(
            &env(&[(ENV_CONFIG, empty), (ENV_SECRET_KEY, "k:bm90IGEga2V5"), (ENV_TOKEN_FILE, "/none")]),
            false,
        )
        .unwrap();
        let e = c.secret_key().unwrap_err();
        assert!(e.contains(ENV_SECRET_KEY) && !e.contains("bm90IGEga2V5"), "{e}");
        assert!(c.token().unwrap_err().contains("/none"));
    }

    #[test]
    fn an_invalid_server_url_is_a_misconfiguration() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.to_str().unwrap();
        for bad in ["foo", "hc.example.org", "ftp://hc.example.org", "http://", "https://x.example/?a=1", "http://x/#f"]
        {
            let c = Config::load_from(&env(&[(ENV_CONFIG, empty), (ENV_SERVER, bad)]), false).unwrap();
            assert_eq!(c.errors.len(), 1, "{bad}: {:?}", c.errors);
            assert!(c.errors[0].contains(ENV_SERVER), "{:?}", c.errors);
            assert_eq!(c.server().unwrap_err(), c.errors[0]);
        }
        for good in
            ["http://127.0.0.1:8080", "https://hc.example.org/", "https://u:p@hc.example.org/prefix", "HTTPS://X"]
        {
            let c = Config::load_from(&env(&[(ENV_CONFIG, empty), (ENV_SERVER, good)]), false).unwrap();
            assert!(c.errors.is_empty() && c.warnings.is_empty(), "{good}: {:?} {:?}", c.errors, c.warnings);
            assert!(c.server().is_ok());
        }
        let c = Config::load_from(&env(&[(ENV_CONFIG, empty), (ENV_SERVER, "u:pw@foo")]), false).unwrap();
        assert!(!c.errors[0].contains("pw"), "{:?}", c.errors);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "token = \"file-token-123\"\nsecret_key = \"k:ZmlsZS1zZWNyZXQ=\"\n").unwrap();
        let cfgs = cfg.to_str().unwrap();
        for e in [
            env(&[(ENV_CONFIG, cfgs), (ENV_SERVER, "https://bob:pw-456@hc.example.org")]),
            env(&[
                (ENV_CONFIG, cfgs),
                (ENV_SERVER, "https://bob:pw-456@hc.example.org"),
                (ENV_TOKEN, "env-token-789"),
                (ENV_SECRET_KEY, "k:ZW52LXNlY3JldA=="),
            ]),
        ] {
            let c = Config::load_from(&e, false).unwrap();
            let shown = format!("{c:?} {c:#?}");
            for secret in ["file-token-123", "ZmlsZS1zZWNyZXQ", "env-token-789", "ZW52LXNlY3JldA", "pw-456", "bob"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("hc.example.org") && shown.contains("redacted"), "{shown}");
        }
        let c = Config::load_from(&env(&[(ENV_CONFIG, cfgs), (ENV_TOKEN_FILE, "/run/keys/token")]), false).unwrap();
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
