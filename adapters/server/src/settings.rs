//! `nhc-server serve` flags for the listener, the request limits and observability
//! (each also an `NHC_*` environment variable), turned into the listener's
//! [`Limits`] and the guard's [`GuardConfig`].

use std::time::Duration;

use clap::Args;
use nhc_guard::{GuardConfig, RateConfig, ShedConfig};

use crate::http::Limits;

#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// A new connection must send its first bytes (all of an HTTP/2 preface) within this many milliseconds.
    #[arg(long, env = "NHC_FIRST_BYTE_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS")]
    pub first_byte_timeout_ms: u64,
    /// Request headers must be complete within this many milliseconds (HTTP/1: of their first byte;
    /// HTTP/2 and the first request: of the connection, while no request is in flight).
    #[arg(long, env = "NHC_HEADER_TIMEOUT_MS", default_value_t = 30_000, value_name = "MS")]
    pub header_timeout_ms: u64,
    /// A request body must be complete within this many milliseconds (else 400).
    #[arg(long, env = "NHC_BODY_TIMEOUT_MS", default_value_t = 60_000, value_name = "MS")]
    pub body_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this many milliseconds.
    #[arg(long, env = "NHC_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_name = "MS")]
    pub idle_timeout_ms: u64,
    /// Connections open at once; at the cap the longest-idle one is closed to make room,
    /// or the new one is refused (503) when all are busy.
    #[arg(long, env = "NHC_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections open at once from one IP address (same rule at the cap).
    #[arg(long, env = "NHC_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams per connection.
    #[arg(long, env = "NHC_H2_MAX_STREAMS", default_value_t = 64)]
    pub h2_max_streams: u32,
    /// HTTP/2 keep-alive PING interval and timeout, in milliseconds.
    #[arg(long, env = "NHC_H2_KEEPALIVE_MS", default_value_t = 30_000, value_name = "MS")]
    pub h2_keepalive_ms: u64,
    /// Requests handled at once for /health and /metrics (0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_HEALTH", default_value_t = 32)]
    pub concurrency_health: usize,
    /// Requests handled at once for GET/HEAD queries and narinfo (0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_READ", default_value_t = 128)]
    pub concurrency_read: usize,
    /// Requests handled at once for small POST /v1/status (declared body of at most
    /// --status-small-bytes; 0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_STATUS", default_value_t = 8)]
    pub concurrency_status: usize,
    /// Requests handled at once for bulk POST /v1/status (larger or undeclared body; 0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_STATUS_BULK", default_value_t = 4)]
    pub concurrency_status_bulk: usize,
    /// A POST /v1/status declaring a body of at most this many bytes (about 1,000 paths
    /// for the default) is small: its own slots, outside the anonymous body budget.
    #[arg(
        long,
        env = "NHC_STATUS_SMALL_BYTES",
        default_value_t = nhc_guard::shed::DEFAULT_STATUS_SMALL_BYTES,
        value_name = "BYTES"
    )]
    pub status_small_bytes: u64,
    /// Percent of each status class's slots that one client IP may hold at once (at
    /// least one slot); 0 or 100 = no per-IP share.
    #[arg(long, env = "NHC_PER_IP_SHARE", default_value_t = 50, value_name = "PERCENT",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub per_ip_share: u8,
    /// Requests handled at once for POST /v1/attestations (0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_SUBMIT", default_value_t = 32)]
    pub concurrency_submit: usize,
    /// Requests handled at once for /v1/admin/... (0 = unlimited).
    #[arg(long, env = "NHC_CONCURRENCY_ADMIN", default_value_t = 4)]
    pub concurrency_admin: usize,
    /// How long a request waits for a slot of its class before it is answered 503.
    #[arg(long, env = "NHC_QUEUE_TIMEOUT_MS", default_value_t = 100, value_name = "MS")]
    pub queue_timeout_ms: u64,
    /// Body bytes that requests without a builder token may hold at once (declared length,
    /// 4 MiB when unknown); beyond it they are answered 503 (0 = unlimited).
    #[arg(long, env = "NHC_ANONYMOUS_BODY_BYTES", default_value_t = 32 * 1024 * 1024, value_name = "BYTES")]
    pub anonymous_body_bytes: u64,
    /// Requests per second one builder token may sustain before 429 (0 = no limit).
    #[arg(long, env = "NHC_BUILDER_RATE", default_value_t = 20.0, value_name = "PER_SECOND")]
    pub builder_rate: f64,
    /// Requests one builder token may make in a burst.
    #[arg(long, env = "NHC_BUILDER_BURST", default_value_t = 40.0)]
    pub builder_burst: f64,
    /// Distinct NAR hashes one builder may store for one output path; a submission that
    /// would exceed it is refused whole (422 `too_many_hashes`). 0 = no limit.
    #[arg(
        long,
        env = "NHC_MAX_HASHES_PER_PATH",
        default_value_t = nhc_handlers::service::attestations::DEFAULT_MAX_HASHES_PER_PATH
    )]
    pub max_hashes_per_path: usize,
    /// Bytes of diff reports (gzip) one builder may have stored in all (422 `too_many_diffs`).
    #[arg(long, env = "NHC_MAX_DIFF_BYTES_PER_BUILDER", default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    pub max_diff_bytes_per_builder: u64,
    /// Diff reports one builder may have stored on one output path (422 `too_many_diffs`).
    #[arg(long, env = "NHC_MAX_DIFFS_PER_PATH", default_value_t = 8)]
    pub max_diffs_per_path: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ObservabilityArgs {
    /// Serve Prometheus metrics at GET /metrics.
    #[arg(long, env = "NHC_METRICS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub metrics: bool,
    /// Log format on stderr: `text` or `json` (one object a line).
    #[arg(long, env = "NHC_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n.max(1))
}

impl LimitArgs {
    pub fn listener(&self) -> Limits {
        Limits {
            first_byte_timeout: ms(self.first_byte_timeout_ms),
            header_read_timeout: ms(self.header_timeout_ms),
            body_read_timeout: ms(self.body_timeout_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip.max(1),
            h2_max_streams: self.h2_max_streams.max(1),
            h2_keep_alive: ms(self.h2_keepalive_ms),
        }
    }

    pub fn guard(&self, metrics_endpoint: bool) -> GuardConfig {
        GuardConfig {
            shed: ShedConfig {
                concurrency: [
                    self.concurrency_health,
                    self.concurrency_read,
                    self.concurrency_status,
                    self.concurrency_status_bulk,
                    self.concurrency_submit,
                    self.concurrency_admin,
                ],
                status_small_bytes: self.status_small_bytes,
                per_ip_share: self.per_ip_share,
                anonymous_body_bytes: self.anonymous_body_bytes,
                queue_timeout: Duration::from_millis(self.queue_timeout_ms),
                retry_after_secs: 1,
            },
            rate: RateConfig {
                per_second: if self.builder_rate.is_finite() { self.builder_rate.max(0.0) } else { 0.0 },
                burst: if self.builder_burst.is_finite() { self.builder_burst.max(1.0) } else { 1.0 },
            },
            metrics_endpoint,
        }
    }
}

/// Logs on stderr, text or one JSON object a line; the request span (its id, method
/// and path) is in every line logged while a request is handled.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        fmt.json().with_current_span(true).with_span_list(false).init();
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}
