//! The config file: TOML read into [`FileSettings`], with the leniencies of earlier
//! versions (keys case-insensitive with `-` read as `_`, bare words read as strings).

use serde::Deserialize;

/// A value in the config file: TOML's strings, booleans and numbers are all read as
/// the text the environment would hold, so both go through the same checks.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(untagged)]
pub(super) enum Scalar {
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
pub(super) struct FileSettings {
    server: Option<Scalar>,
    token: Option<Scalar>,
    token_file: Option<Scalar>,
    jobset_token: Option<Scalar>,
    jobset_token_file: Option<Scalar>,
    secret_key: Option<Scalar>,
    secret_key_file: Option<Scalar>,
    spool: Option<Scalar>,
    #[serde(rename = "async")]
    async_mode: Option<Scalar>,
    verify: Option<Scalar>,
    verbose: Option<Scalar>,
    connect_timeout: Option<Scalar>,
    timeout: Option<Scalar>,
    proxy_upstream: Option<Scalar>,
    proxy_trusted_keys: Option<Scalar>,
    proxy_quorum: Option<Scalar>,
    proxy_listen: Option<Scalar>,
    proxy_key_groups: Option<Scalar>,
    proxy_on_mismatch: Option<Scalar>,
    proxy_dry_run: Option<Scalar>,
}

impl FileSettings {
    /// The value of `key` as text; `None` when absent or empty.
    pub(super) fn take(&mut self, key: &str) -> Option<String> {
        let slot = match key {
            "server" => &mut self.server,
            "token" => &mut self.token,
            "token_file" => &mut self.token_file,
            "jobset_token" => &mut self.jobset_token,
            "jobset_token_file" => &mut self.jobset_token_file,
            "secret_key" => &mut self.secret_key,
            "secret_key_file" => &mut self.secret_key_file,
            "spool" => &mut self.spool,
            "async" => &mut self.async_mode,
            "verify" => &mut self.verify,
            "verbose" => &mut self.verbose,
            "connect_timeout" => &mut self.connect_timeout,
            "timeout" => &mut self.timeout,
            "proxy_upstream" => &mut self.proxy_upstream,
            "proxy_trusted_keys" => &mut self.proxy_trusted_keys,
            "proxy_quorum" => &mut self.proxy_quorum,
            "proxy_listen" => &mut self.proxy_listen,
            "proxy_key_groups" => &mut self.proxy_key_groups,
            "proxy_on_mismatch" => &mut self.proxy_on_mismatch,
            "proxy_dry_run" => &mut self.proxy_dry_run,
            _ => return None,
        };
        slot.take().map(Scalar::into_text).filter(|v| !v.is_empty())
    }
}

/// `line N: message` for a TOML error in `text`.
pub(super) fn toml_message(text: &str, e: &toml::de::Error) -> String {
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
pub(super) fn parse_file(text: &str) -> Result<(FileSettings, Vec<String>), toml::de::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SETTINGS;

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
            jobset_token: Some(Scalar::Bool(true)),
            jobset_token_file: Some(Scalar::Bool(true)),
            secret_key: Some(Scalar::Bool(true)),
            secret_key_file: Some(Scalar::Bool(true)),
            spool: Some(Scalar::Bool(true)),
            async_mode: Some(Scalar::Bool(true)),
            verify: Some(Scalar::Bool(true)),
            verbose: Some(Scalar::Bool(true)),
            connect_timeout: Some(Scalar::Bool(true)),
            timeout: Some(Scalar::Bool(true)),
            proxy_upstream: Some(Scalar::Bool(true)),
            proxy_trusted_keys: Some(Scalar::Bool(true)),
            proxy_quorum: Some(Scalar::Bool(true)),
            proxy_listen: Some(Scalar::Bool(true)),
            proxy_key_groups: Some(Scalar::Bool(true)),
            proxy_on_mismatch: Some(Scalar::Bool(true)),
            proxy_dry_run: Some(Scalar::Bool(true)),
        };
        let fields: Vec<String> = toml::Table::try_from(&all).unwrap().keys().cloned().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(fields, sorted, "FileSettings fields that SETTINGS lacks, or the other way round");
    }
}
