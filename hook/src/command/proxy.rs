//! `nhc proxy`: the command line and its settings; the server is the `nhc-proxy` crate.

use std::net::SocketAddr;
use std::time::Duration;

use nhc_core::PublicKey;
use nhc_proxy::{OnCollectionError, OnMismatch, Policy, Settings, Trust};

use super::{CommandError, Exit};
use crate::config::{self, Config, Source};

/// A binary cache for Nix that serves a path only when enough trusted builders
/// reproduced it.
///
/// Put it in front of a binary cache (--upstream) and use it as Nix's substituter.
/// For every `<hash>.narinfo` Nix asks for, the proxy fetches the upstream's narinfo
/// and the collection's attestations of that path (`GET /v1/outputs/{basename}`,
/// every page), and checks each attestation's signature itself, against the
/// --trusted-key keys, over the upstream's fingerprint (store path, NAR hash, NAR
/// size, references): what the collection server claims is never taken on its word.
/// When at least --quorum independent keys (or --key-group groups) signed exactly
/// what the upstream describes, Nix gets the upstream's narinfo with those builders'
/// `Sig:` lines added (so `trusted-public-keys` may list the builders' keys instead
/// of the upstream's); otherwise 404, and Nix builds the path itself.
///
/// Answers: 200 served; 404 not in the upstream, refused (quorum not met, a trusted
/// builder signed another hash with --on-mismatch refuse, or the collection cannot be
/// reached with --on-collection-error refuse): Nix builds the path; 503 when the
/// upstream cannot be reached or the proxy is overloaded (as the upstream itself would
/// fail; Nix retries, then fails unless run with --fallback). NARs and other files are
/// streamed from the upstream as they arrive, never held whole. One line per
/// decision on stderr; counters and the latest decisions at /status (HTML) and
/// /status.json.
#[derive(clap::Args, Debug)]
#[command(after_help = config::help())]
pub struct Args {
    /// The binary cache to serve from (http:// or https://).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The collection server whose attestations count (default: the `server` setting).
    #[arg(long, value_name = "URL")]
    collection: Option<String>,
    /// A builder's public key `name:base64` whose signature counts; repeat for each.
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<String>,
    /// Independent trusted builders that must have signed the upstream's NAR hash.
    #[arg(long, value_name = "N")]
    quorum: Option<usize>,
    /// The address to serve on [default: 127.0.0.1:8090].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// `GROUP=KEYNAME,KEYNAME`: these keys (one operator's) count as one builder.
    #[arg(long = "key-group", value_name = "GROUP=KEYS")]
    key_groups: Vec<String>,
    /// A trusted builder signed another NAR for the path: refuse it, or count only
    /// the agreeing builders (logged either way).
    #[arg(long, value_name = "refuse|allow")]
    on_mismatch: Option<OnMismatch>,
    /// The collection cannot be reached: refuse every path (404, Nix builds), or pass
    /// the upstream's narinfo through unchanged (logged).
    #[arg(long, value_name = "refuse|pass", default_value = "refuse")]
    on_collection_error: OnCollectionError,
    /// Serve everything the upstream has; log what would have been refused.
    #[arg(long)]
    dry_run: bool,
    /// The `Priority` of the proxy's nix-cache-info (default: the upstream's).
    #[arg(long, value_name = "N")]
    priority: Option<u32>,
    /// Seconds a served narinfo is remembered.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    positive_ttl: u64,
    /// Seconds a refusal or an upstream 404 is remembered.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    negative_ttl: u64,
    /// Seconds for one request to the upstream (narinfo) or the collection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Narinfo decisions under way at once (more wait, then 503).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_lookups: usize,
    /// Files streamed from the upstream at once (more wait, then 503).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_streams: usize,
    /// Pages of 1000 attestations read per path at most.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_pages: usize,
}

fn usage(what: &str, from: &Source, e: impl std::fmt::Display) -> CommandError {
    CommandError::Usage(format!("{what} ({from}): {e}"))
}

pub fn run(cfg: &Config, args: Args) -> Exit {
    let (settings, listen) = settings(cfg, args)?;
    nhc_proxy::run(settings, listen).map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(0)
}

/// The proxy's settings: flags, then the environment and the config file.
fn settings(cfg: &Config, args: Args) -> Result<(Settings, SocketAddr), CommandError> {
    let pc = &cfg.proxy;
    let upstream = match (&args.upstream, &pc.upstream) {
        (Some(u), _) => u.clone(),
        (None, Some((u, _))) => u.clone(),
        (None, None) => return Err(CommandError::Usage("no --upstream (or proxy_upstream) given".into())),
    };
    let collection = match &args.collection {
        Some(c) => c.clone(),
        None => cfg.server().map_err(|e| CommandError::Usage(format!("no --collection: {e}")))?.to_owned(),
    };
    let mut keys = Vec::new();
    for k in &args.trusted_keys {
        keys.push(PublicKey::parse(k).map_err(|e| usage("--trusted-key", &Source::Flag("--trusted-key"), e))?);
    }
    if args.trusted_keys.is_empty() {
        if let Some((v, from)) = &pc.trusted_keys {
            for k in v.split_whitespace() {
                keys.push(PublicKey::parse(k).map_err(|e| usage("trusted key", from, e))?);
            }
        }
    }
    let groups: Vec<String> = if !args.key_groups.is_empty() {
        args.key_groups.clone()
    } else {
        pc.key_groups.as_ref().map(|(v, _)| v.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
    };
    let trust = Trust::new(keys, &groups).map_err(|e| CommandError::Usage(e.to_string()))?;
    let quorum = match (args.quorum, &pc.quorum) {
        (Some(q), _) => q,
        (None, Some((v, from))) => v.trim().parse().map_err(|e| usage("quorum", from, e))?,
        (None, None) => return Err(CommandError::Usage("no --quorum (or proxy_quorum) given".into())),
    };
    let on_mismatch = match (args.on_mismatch, &pc.on_mismatch) {
        (Some(m), _) => m,
        (None, Some((v, from))) => v.trim().parse().map_err(|e: String| usage("on mismatch", from, e))?,
        (None, None) => OnMismatch::Refuse,
    };
    let listen = match (args.listen, &pc.listen) {
        (Some(l), _) => l,
        (None, Some((v, from))) => v.trim().parse().map_err(|e| usage("listen", from, e))?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8090)),
    };
    let bad = |flag: &str| CommandError::Usage(format!("{flag} must be at least 1"));
    if args.timeout == 0 {
        return Err(bad("--timeout"));
    }
    if args.max_lookups == 0 {
        return Err(bad("--max-lookups"));
    }
    if args.max_streams == 0 {
        return Err(bad("--max-streams"));
    }
    if args.max_pages == 0 {
        return Err(bad("--max-pages"));
    }
    let mut s = Settings::new(&upstream, &collection, trust, Policy { quorum, on_mismatch })
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    s.on_collection_error = args.on_collection_error;
    s.dry_run = args.dry_run || pc.dry_run;
    s.priority = args.priority;
    s.positive_ttl = Duration::from_secs(args.positive_ttl);
    s.negative_ttl = Duration::from_secs(args.negative_ttl);
    s.timeout = Duration::from_secs(args.timeout.min(3600));
    s.max_lookups = args.max_lookups;
    s.max_streams = args.max_streams;
    s.max_pages = args.max_pages;
    Ok((s, listen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::BTreeMap;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    const K1: &str = "builder-1-test:qbE9lsMWo66em4mwsvn6w6vOofhcIzcm4ArYTMmCUZs=";
    const K2: &str = "builder-2-test:785y48Ot00U4MrR11DLMX/UhdSP7SKElJspIwiubjik=";

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        let env: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut env = env;
        env.insert("HASH_COLLECTION_CONFIG".into(), "/dev/null".into());
        Config::load_from(&env, false).unwrap()
    }

    fn parse(argv: &[&str]) -> Args {
        T::try_parse_from(std::iter::once("t").chain(argv.iter().copied())).unwrap().a
    }

    #[test]
    fn flags_win_over_settings_and_settings_fill_in() {
        let c = cfg(&[
            ("HASH_COLLECTION_SERVER", "http://collection.example"),
            ("HASH_COLLECTION_PROXY_UPSTREAM", "https://cache.example"),
            ("HASH_COLLECTION_PROXY_TRUSTED_KEYS", &format!("{K1} {K2}")),
            ("HASH_COLLECTION_PROXY_QUORUM", "2"),
            ("HASH_COLLECTION_PROXY_LISTEN", "127.0.0.1:18699"),
            ("HASH_COLLECTION_PROXY_ON_MISMATCH", "allow"),
            ("HASH_COLLECTION_PROXY_DRY_RUN", "1"),
        ]);
        let (s, listen) = settings(&c, parse(&[])).unwrap();
        assert_eq!(s.upstream.as_str(), "https://cache.example/");
        assert_eq!(s.collection.as_str(), "http://collection.example/");
        assert_eq!((s.trust.len(), s.policy.quorum, s.policy.on_mismatch, s.dry_run), (2, 2, OnMismatch::Allow, true));
        assert_eq!(listen.to_string(), "127.0.0.1:18699");
        let (s, _) = settings(
            &c,
            parse(&["--upstream", "http://u.example", "--trusted-key", K1, "--quorum", "1", "--on-mismatch", "refuse"]),
        )
        .unwrap();
        assert_eq!(s.upstream.as_str(), "http://u.example/");
        assert_eq!((s.trust.len(), s.policy.quorum, s.policy.on_mismatch), (1, 1, OnMismatch::Refuse));
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let c = cfg(&[("HASH_COLLECTION_SERVER", "http://collection.example")]);
        let err = |argv: &[&str]| settings(&c, parse(argv)).err().map(|e| e.to_string()).unwrap_or_default();
        let base = ["--upstream", "http://u.example", "--trusted-key", K1];
        assert!(err(&base).contains("--quorum"), "{}", err(&base));
        assert!(err(&[&base[..], &["--quorum", "2"]].concat()).contains("can never be met"));
        assert!(err(&[&base[..], &["--quorum", "0"]].concat()).contains("at least 1"));
        assert!(err(&["--upstream", "http://u.example", "--quorum", "1"]).contains("--trusted-key"));
        assert!(err(&["--upstream", "http://u.example", "--quorum", "1", "--trusted-key", "nope"])
            .contains("--trusted-key"));
        assert!(err(&["--upstream", "ftp://u", "--quorum", "1", "--trusted-key", K1]).contains("upstream"));
        assert!(err(&[&base[..], &["--quorum", "1", "--key-group", "x=zz"]].concat()).contains("zz"));
        assert!(T::try_parse_from(["t", "--on-mismatch", "maybe"]).is_err());
        let none = cfg(&[]);
        assert!(settings(&none, parse(&[&base[..], &["--quorum", "1"]].concat())).is_err());
    }
}
