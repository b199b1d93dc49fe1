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
    let state = AppState::new(Arc::new(store), system_clock(), config.admin_token.as_deref());
    Ok(nhc_handlers::router(state))
}
