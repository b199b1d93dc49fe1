//! nix-hash-collection as an AWS Lambda function. Thin on purpose: lambda_http turns
//! API Gateway (REST and HTTP APIs) and function-URL events into `http` requests for
//! the handlers' router; the storage is the server's sqlx storage on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use nhc_handlers::{system_clock, AppState};
use nhc_sqlx_store::StoreOptions;

/// Settings from the function's environment.
pub struct Config {
    /// `DATABASE_URL`: `postgres://...` (an RDS, Aurora or any reachable PostgreSQL).
    pub database_url: String,
    /// `NHC_ADMIN_TOKEN`: the admin API's token (e.g. a `{{resolve:secretsmanager:...}}`
    /// reference in the template); unset turns the admin API off.
    pub admin_token: Option<String>,
    /// `NHC_DB_CONNECTIONS` (default 2): one invocation at a time needs few.
    pub max_connections: u32,
    /// `NHC_DB_ACQUIRE_TIMEOUT_MS` (default 5000): how long a request waits for the
    /// database before it answers 503.
    pub acquire_timeout: Duration,
    /// `NHC_METRICS` (default true): serve `GET /metrics` (this instance's counts).
    pub metrics: bool,
    /// `NHC_BUILDER_RATE` (default 20, 0 = off) and `NHC_BUILDER_BURST` (default 40):
    /// requests per second per builder token before 429, counted per instance.
    pub builder_rate: f64,
    pub builder_burst: f64,
    /// `NHC_LOG_KEY`: the transparency log's secret key (`nhc-server log-key ORIGIN`);
    /// unset: /log/ answers 404. The log is sequenced when /log/checkpoint is read.
    pub log_key: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> Result<u64, String> {
            var(name)
                .map_or(Ok(default), |v| v.trim().parse().map_err(|_| format!("{name} must be a number, not {v:?}")))
        };
        Ok(Config {
            database_url: var("DATABASE_URL").ok_or("DATABASE_URL is not set (postgres://USER:PASS@HOST/DB)")?,
            admin_token: var("NHC_ADMIN_TOKEN"),
            max_connections: number("NHC_DB_CONNECTIONS", 2)?.clamp(1, 100) as u32,
            acquire_timeout: Duration::from_millis(number("NHC_DB_ACQUIRE_TIMEOUT_MS", 5000)?),
            metrics: match var("NHC_METRICS").as_deref().map(str::trim) {
                None | Some("true" | "1") => true,
                Some("false" | "0") => false,
                Some(v) => return Err(format!("NHC_METRICS must be true or false, not {v:?}")),
            },
            builder_rate: number("NHC_BUILDER_RATE", 20)? as f64,
            builder_burst: number("NHC_BUILDER_BURST", 40)?.max(1) as f64,
            log_key: var("NHC_LOG_KEY"),
        })
    }
}

/// The router for one execution environment: a small pool made at cold start and
/// reused by every invocation. It connects lazily, so a database that is away makes
/// requests answer 503 instead of failing the cold start. No migrations here: run
/// `nhc-server migrate --database $DATABASE_URL` once per deploy.
pub async fn app(config: &Config) -> Result<nhc_handlers::axum::Router, String> {
    let opts = StoreOptions {
        max_connections: config.max_connections,
        acquire_timeout: config.acquire_timeout,
        lazy: true,
        ..StoreOptions::default()
    };
    let store = nhc_sqlx_store::connect(&config.database_url, &opts).await.map_err(|e| e.to_string())?;
    let mut state = AppState::new(Arc::new(store), system_clock(), config.admin_token.as_deref());
    if let Some(key) = &config.log_key {
        state = state.with_log_key(nhc_handlers::service::log::parse_key(key)?);
    }
    // One request at a time per instance: reserved concurrency (template.yaml) is the
    // concurrency limit, so no shedding here; ids, metrics and the builder rate stay.
    let guard = nhc_guard::GuardConfig {
        shed: nhc_guard::ShedConfig {
            concurrency: [0; nhc_guard::RouteClass::COUNT],
            anonymous_body_bytes: 0,
            ..Default::default()
        },
        rate: nhc_guard::RateConfig { per_second: config.builder_rate, burst: config.builder_burst },
        metrics_endpoint: config.metrics,
    };
    let guard = nhc_guard::Guard::new(guard, Arc::new(nhc_guard::Metrics::new()));
    Ok(guard.wrap(nhc_handlers::router(state)))
}
