//! The one table of settings: every environment variable (the contract, DESIGN.md),
//! the config file's key, the default and the meaning. `--help` is made from it and a
//! test holds the README's table to it. A new setting is a row here, a field of
//! `FileSettings` (`file.rs`) when the config file may hold it, and a field of `Config`.

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
    meaning: "the builder's token, as `nhc-server builder add` printed it",
};
pub const TOKEN_FILE: Setting = Setting {
    env: "HASH_COLLECTION_TOKEN_FILE",
    key: Some("token_file"),
    kind: Kind::Text,
    default: "none",
    meaning: "a file holding the token (whitespace around it is ignored)",
};
pub const JOBSET_TOKEN: Setting = Setting {
    env: "HASH_COLLECTION_JOBSET_TOKEN",
    key: Some("jobset_token"),
    kind: Kind::Text,
    default: "none",
    meaning: "the token `nhc jobset push` uploads evaluations with: one jobset's token (`nhc-server jobset token`) \
              or the admin token",
};
pub const JOBSET_TOKEN_FILE: Setting = Setting {
    env: "HASH_COLLECTION_JOBSET_TOKEN_FILE",
    key: Some("jobset_token_file"),
    kind: Kind::Text,
    default: "none",
    meaning: "a file holding that token (`nhc jobset push --token-file` wins over both)",
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
pub const PROXY_UPSTREAM: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_UPSTREAM",
    key: Some("proxy_upstream"),
    kind: Kind::Text,
    default: "none",
    meaning: "`nhc proxy --upstream`: the binary cache the proxy serves from (`http://` or `https://`)",
};
pub const PROXY_TRUSTED_KEYS: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_TRUSTED_KEYS",
    key: Some("proxy_trusted_keys"),
    kind: Kind::Text,
    default: "none",
    meaning: "`nhc proxy --trusted-key`: the builders' public keys `name:base64`, separated by spaces",
};
pub const PROXY_QUORUM: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_QUORUM",
    key: Some("proxy_quorum"),
    kind: Kind::Text,
    default: "none",
    meaning: "`nhc proxy --quorum`: independent trusted builders that must agree with the upstream",
};
pub const PROXY_LISTEN: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_LISTEN",
    key: Some("proxy_listen"),
    kind: Kind::Text,
    default: "`127.0.0.1:8090`",
    meaning: "`nhc proxy --listen`: the address the proxy serves on",
};
pub const PROXY_KEY_GROUPS: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_KEY_GROUPS",
    key: Some("proxy_key_groups"),
    kind: Kind::Text,
    default: "none",
    meaning: "`nhc proxy --key-group`: `GROUP=KEYNAME,KEYNAME` items separated by spaces; keys of one group count once",
};
pub const PROXY_ON_MISMATCH: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_ON_MISMATCH",
    key: Some("proxy_on_mismatch"),
    kind: Kind::Text,
    default: "`refuse`",
    meaning: "`nhc proxy --on-mismatch`: `refuse` or `allow` a path a trusted builder signed with another hash",
};
pub const PROXY_DRY_RUN: Setting = Setting {
    env: "HASH_COLLECTION_PROXY_DRY_RUN",
    key: Some("proxy_dry_run"),
    kind: Kind::Flag,
    default: "off",
    meaning: "`nhc proxy --dry-run`: serve everything the upstream has, log what would be refused",
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
pub const DIFF_SPOOL: Setting = Setting {
    env: "HASH_COLLECTION_DIFF_SPOOL",
    key: None,
    kind: Kind::Text,
    default: "none",
    meaning: "in report-only mode the diff-hook also writes an unsigned diff report here (the NixOS module makes it \
              writable by build users and readable by root only); `nhc flush` signs and uploads them",
};
pub const DIFFOSCOPE: Setting = Setting {
    env: "HASH_COLLECTION_DIFFOSCOPE",
    key: None,
    kind: Kind::Text,
    default: "`diffoscope`",
    meaning: "the diffoscope that `nhc check` runs on a build that differs (a command on `PATH` or a path); \
              `off`, or none installed: a list of the differing files with their hashes instead",
};
pub const DIFFOSCOPE_TIMEOUT: Setting = Setting {
    env: "HASH_COLLECTION_DIFFOSCOPE_TIMEOUT",
    key: None,
    kind: Kind::Seconds,
    default: "600",
    meaning: "diffoscope is killed after this many seconds (then the file list is sent)",
};
pub const DIFFOSCOPE_MEMORY: Setting = Setting {
    env: "HASH_COLLECTION_DIFFOSCOPE_MEMORY_MB",
    key: None,
    kind: Kind::Text,
    default: "2048",
    meaning: "address-space limit of diffoscope, in MiB",
};
pub const DIFF_MAX_BYTES: Setting = Setting {
    env: "HASH_COLLECTION_DIFF_MAX_BYTES",
    key: None,
    kind: Kind::Text,
    default: "4000000",
    meaning: "largest diff report `nhc check` sends, gzip-compressed (at most the server's 4000000); a longer \
              report is cut",
};

/// Every setting, in the order `--help` and the README list them.
pub const SETTINGS: &[&Setting] = &[
    &SERVER,
    &TOKEN,
    &TOKEN_FILE,
    &JOBSET_TOKEN,
    &JOBSET_TOKEN_FILE,
    &SECRET_KEY,
    &SECRET_KEY_FILE,
    &SPOOL,
    &ASYNC,
    &VERIFY,
    &CONNECT_TIMEOUT,
    &TIMEOUT,
    &VERBOSE,
    &PROXY_UPSTREAM,
    &PROXY_TRUSTED_KEYS,
    &PROXY_QUORUM,
    &PROXY_LISTEN,
    &PROXY_KEY_GROUPS,
    &PROXY_ON_MISMATCH,
    &PROXY_DRY_RUN,
    &CONFIG,
    &NIX_DB,
    &DIFF_REPORT_ONLY,
    &DIFF_SPOOL,
    &DIFFOSCOPE,
    &DIFFOSCOPE_TIMEOUT,
    &DIFFOSCOPE_MEMORY,
    &DIFF_MAX_BYTES,
];

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

#[cfg(test)]
mod tests {
    use super::*;

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
        let readme = include_str!("../../../README.md");
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
