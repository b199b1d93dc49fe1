//! `nhc-server`: serves the nix-hash-collection API on a local socket, and manages
//! builders from the command line, on SQLite (default) or PostgreSQL.

mod http;
mod jobset_cli;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nhc_handlers::core::api::CreateBuilderRequest;
use nhc_handlers::core::{BuilderName, PublicKey};
use nhc_handlers::service::builders;
use nhc_handlers::{system_clock, AppState};
use nhc_sqlx_store::{SqlStore, StoreOptions};

// glibc's malloc spent an eighth of the server's time under read load (arena
// consolidation across the runtime's and SQLite's threads) and fragments more.
// Built with no_thp: transparent huge pages for its arenas added 16 MB of RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in libmimalloc-sys 0.1.49 (mimalloc v3's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS after 2 ms instead of a second: under load each
/// of the many threads (runtime, SQLite connections) otherwise keeps megabytes it
/// freed, which made the RSS half again as large at no gain in speed.
fn tune_allocator() {
    // SAFETY: setting a documented mimalloc option; the index is pinned by the
    // exact libmimalloc-sys version and checked by a test.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 2) };
}

const ABOUT: &str = "\
The nix-hash-collection server: collects signed NAR-hash attestations from trusted
Nix builders and tells whether independent builders got the same bytes.

The database is SQLite by default (the file is created and migrated on start) or
PostgreSQL (postgres://USER@HOST/DB). Builders authenticate with tokens that
`builder add` and `token new` print once; only a hash of each token is stored.";

#[derive(Parser)]
#[command(name = "nhc-server", version, about = ABOUT)]
struct Cli {
    /// Database: sqlite://FILE (created if missing), a plain file path, or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "sqlite://nhc.db")]
    database: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (migrates the database first).
    Serve(ServeArgs),
    /// Manage builders (`user` is the old name of this command).
    #[command(subcommand, visible_alias = "user")]
    Builder(BuilderCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage jobsets (series of evaluations) and their upload tokens.
    #[command(subcommand)]
    Jobset(jobset_cli::JobsetCommand),
    /// Create or update the database schema (schema.sql) and exit.
    Migrate,
    /// Make a new transparency-log key: prints the secret key on stdout (give it to
    /// `serve` as NHC_LOG_KEY or NHC_LOG_KEY_FILE) and its public verifier key on stderr
    /// (what `GET /log/key` serves and auditors pin).
    LogKey {
        /// The log's name, the first line of every checkpoint: the deployment's host
        /// and a path, e.g. nhc.example.org/log.
        origin: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NHC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Token for the admin API (/v1/admin/...). Without one the admin API answers 401;
    /// builders can still be managed with `nhc-server builder ...`.
    #[arg(long, env = "NHC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Read the admin token from this file instead (for systemd credentials and secrets managers).
    #[arg(long, env = "NHC_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Largest number of database connections.
    #[arg(long, env = "NHC_DB_CONNECTIONS", default_value_t = 8)]
    db_connections: u32,
    /// SQLite durability: `full` fsyncs every commit (default); `normal` may lose the
    /// last commits on power loss (never on a crash of the server) and is faster.
    #[arg(long, env = "NHC_SQLITE_SYNC", default_value = "full", value_parser = ["full", "normal"])]
    sqlite_sync: String,
    /// Seconds between refreshes of invalid cached jobset summaries (those of
    /// evaluations whose paths were attested since); 0 turns the background refresh off
    /// (reads then recompute them, within a budget).
    #[arg(long, env = "NHC_SUMMARY_REFRESH_SECS", default_value_t = 15)]
    summary_refresh_secs: u64,
    /// The transparency log's secret key (`nhc-server log-key ORIGIN` makes one). With
    /// it the log is served under /log/ and checkpoints are signed; without it /log/
    /// answers 404 (entries are appended anyway, so a key set later covers them all).
    #[arg(long, env = "NHC_LOG_KEY", hide_env_values = true)]
    log_key: Option<String>,
    /// Read the transparency log's secret key from this file instead.
    #[arg(long, env = "NHC_LOG_KEY_FILE", conflicts_with = "log_key")]
    log_key_file: Option<PathBuf>,
    /// Milliseconds between sequencing steps: how often new entries get into a signed
    /// checkpoint (at most this long after a submission is acknowledged, plus the step).
    #[arg(long, env = "NHC_LOG_INTERVAL_MS", default_value_t = 1000, value_name = "MS")]
    log_interval_ms: u64,
    // Boxed: it is most of the command line's size, parsed once.
    #[command(flatten)]
    limits: Box<settings::LimitArgs>,
    #[command(flatten)]
    observability: settings::ObservabilityArgs,
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Register a builder with its public key(s) and print its first token on stdout.
    Add {
        /// Builder name: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.
        name: String,
        /// Public key as `nix key convert-secret-to-public` prints it (name:base64). Repeat for several.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
    },
    /// List builders and their public keys.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every token of a builder (its attestations stay).
    Revoke { name: String },
    /// Delete a builder and its tokens; with --purge also its attestations.
    Delete {
        name: String,
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a new token for a builder and print it on stdout.
    New { name: String },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    settings::init_logging(matches!(&cli.command, Command::Serve(a) if a.observability.log_format == "json"));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(database: &str, opts: &StoreOptions) -> Result<Arc<SqlStore>, String> {
    let store = nhc_sqlx_store::connect(database, opts).await.map_err(|e| e.to_string())?;
    store.executor().migrate().await.map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(&cli.database, args).await,
        Command::Migrate => {
            let store = open(&cli.database, &StoreOptions::default()).await?;
            eprintln!("schema applied to the {} database", store.executor().backend());
            store.executor().close().await;
            Ok(())
        }
        Command::Builder(cmd) => {
            let store = open(&cli.database, &StoreOptions::default()).await?;
            let state = AppState::new(store.clone(), system_clock(), None);
            let result = builder_command(&state, cmd).await;
            store.executor().close().await;
            result
        }
        Command::Jobset(cmd) => {
            let store = open(&cli.database, &StoreOptions::default()).await?;
            let state = AppState::new(store.clone(), system_clock(), None);
            let result = jobset_cli::run(&state, cmd).await;
            store.executor().close().await;
            result
        }
        Command::LogKey { origin } => {
            let (secret, verifier) = nhc_handlers::service::log::new_key(&origin)?;
            println!("{secret}");
            eprintln!("transparency log key for {origin} printed on stdout; its public key:\n{verifier}");
            Ok(())
        }
        Command::Token(TokenCommand::New { name }) => {
            let store = open(&cli.database, &StoreOptions::default()).await?;
            let state = AppState::new(store.clone(), system_clock(), None);
            let result = builders::issue_token_for(&state, &builder_name(&name)?).await;
            store.executor().close().await;
            let t = result.map_err(|e| e.to_string())?;
            println!("{}", t.token);
            eprintln!("new token for {name} printed on stdout; it is shown only once");
            Ok(())
        }
    }
}

fn builder_name(name: &str) -> Result<BuilderName, String> {
    name.parse().map_err(|e: nhc_handlers::core::ParseError| e.to_string())
}

async fn builder_command(state: &AppState, cmd: BuilderCommand) -> Result<(), String> {
    match cmd {
        BuilderCommand::Add { name, public_keys } => {
            let public_keys = public_keys
                .iter()
                .map(|k| PublicKey::parse(k.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let req = CreateBuilderRequest { name: builder_name(&name)?, public_keys };
            let created = builders::create(state, req).await.map_err(|e| e.to_string())?;
            println!("{}", created.token);
            eprintln!("builder {name} created; its token is printed on stdout and is shown only once");
        }
        BuilderCommand::List { json } => {
            let list = builders::list(state).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else if list.is_empty() {
                eprintln!("no builders yet: add one with `nhc-server builder add NAME --public-key KEY`");
            } else {
                println!("{:<24} {:<28} PUBLIC KEYS", "NAME", "CREATED");
                for b in list {
                    let keys: Vec<String> = b.public_keys.iter().map(|k| k.to_string()).collect();
                    println!("{:<24} {:<28} {}", b.name, b.created_at, keys.join(" "));
                }
            }
        }
        BuilderCommand::Revoke { name } => {
            let r = builders::revoke_tokens(state, &builder_name(&name)?).await.map_err(|e| e.to_string())?;
            println!("{}", r.revoked);
            eprintln!("revoked {} token(s) of {name}", r.revoked);
        }
        BuilderCommand::Delete { name, purge } => {
            builders::delete(state, &builder_name(&name)?, purge).await.map_err(|e| e.to_string())?;
            eprintln!("deleted builder {name}{}", if purge { " and its attestations" } else { "" });
        }
    }
    Ok(())
}

/// A secret given as a value or as a file to read (systemd credentials, secrets managers).
fn secret(value: &Option<String>, file: &Option<PathBuf>, what: &str) -> Result<Option<String>, String> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display())),
        (None, None) => Ok(None),
    }
}

async fn serve(database: &str, args: ServeArgs) -> Result<(), String> {
    let admin_token = secret(&args.admin_token, &args.admin_token_file, "admin token")?;
    let opts = StoreOptions {
        max_connections: args.db_connections.max(1),
        sqlite_full_sync: args.sqlite_sync == "full",
        ..StoreOptions::default()
    };
    let log_key = secret(&args.log_key, &args.log_key_file, "log key")?
        .filter(|k| !k.trim().is_empty())
        .map(|k| nhc_handlers::service::log::parse_key(&k))
        .transpose()?;
    let store = open(database, &opts).await?;
    let mut state = AppState::new(store.clone(), system_clock(), admin_token.as_deref())
        .with_max_hashes_per_path(args.limits.max_hashes_per_path)
        .with_diff_limits(nhc_handlers::DiffLimits {
            bytes_per_builder: args.limits.max_diff_bytes_per_builder,
            per_path: args.limits.max_diffs_per_path,
        });
    if !state.admin_enabled() {
        tracing::warn!("NHC_ADMIN_TOKEN is not set: the admin API is disabled (use `nhc-server builder add`)");
    }
    match log_key {
        Some(key) => {
            tracing::info!(origin = key.origin(), "transparency log on: {}", key.verifier_key());
            // A background sequencer here; reads of /log/checkpoint only read.
            state = state.with_log_key(key).with_log_sequence_on_read(false);
            let interval = Duration::from_millis(args.log_interval_ms.max(10));
            tokio::spawn(nhc_handlers::service::log::run_sequencer(state.clone(), interval));
        }
        None => tracing::info!("NHC_LOG_KEY is not set: the transparency log is not served (/log/ answers 404)"),
    }
    if args.summary_refresh_secs > 0 {
        tokio::spawn(refresh_summaries(state.clone(), Duration::from_secs(args.summary_refresh_secs)));
    }
    let app = nhc_handlers::router(state).layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response));
    let metrics = Arc::new(nhc_guard::Metrics::new());
    let guard = nhc_guard::Guard::new(args.limits.guard(args.observability.metrics), metrics.clone());
    let app = guard.wrap(app);
    let limits = args.limits.listener();
    match http::raise_fd_limit() {
        Some(n) if (limits.max_connections as u64).saturating_add(64) > n => tracing::warn!(
            "--max-connections {} is near the open-file limit {n}: the server may run out of descriptors",
            limits.max_connections
        ),
        _ => {}
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(database = store.executor().backend(), "listening on http://{local}");
    http::serve(listener, app, limits, metrics, shutdown_signal()).await;
    tracing::info!("shutting down");
    store.executor().close().await;
    Ok(())
}

/// Paths whose statuses one background refresh recomputes at most.
const REFRESH_BUDGET: u64 = 2_000_000;

/// Keeps the jobsets' cached summaries valid, so that histories and badges read them
/// instead of computing (docs/jobsets.md, "Summaries").
async fn refresh_summaries(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match nhc_handlers::service::jobsets::refresh_stale(&state, REFRESH_BUDGET).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(evaluations = n, "jobset summaries refreshed"),
            Err(e) => tracing::warn!(error = %e, "could not refresh jobset summaries"),
        }
    }
}

/// A bug must not take the server down or leave the client without an answer.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    nhc_handlers::ApiError::Internal("handler panicked".into()).into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_index_still_means_purge_delay() {
        // mimalloc v3 sets purge_delay to 1000 ms (src/options.c); another option at
        // this index (after an upgrade that renumbered the enum) would not read 1000.
        // Tests do not run main(), so the value is still the default here.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 1000);
    }
}
