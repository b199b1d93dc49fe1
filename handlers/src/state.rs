use std::sync::Arc;

use sha2::{Digest, Sha256};

use nhc_storage::Storage;

/// Microseconds since the Unix epoch, from the platform (`SystemTime` on native,
/// `Date.now()` in a Worker, where `SystemTime::now()` panics).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The clock of native platforms (the server, the Lambda): the system time.
#[cfg(not(target_arch = "wasm32"))]
pub fn system_clock() -> Clock {
    use std::time::{SystemTime, UNIX_EPOCH};
    // Before 1970 only on a broken clock; 0 then rather than a panic.
    Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0))
}

/// What every handler gets: the storage, the clock and the admin token's hash.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) clock: Clock,
    /// SHA-256 of the admin token; `None` disables the admin routes (401).
    pub(crate) admin_token_hash: Option<[u8; 32]>,
    /// Distinct NAR hashes one builder may store for one output path; 0: no limit.
    pub(crate) max_hashes_per_path: usize,
    /// What each builder may store of diff reports.
    pub(crate) diff_limits: crate::api::DiffLimits,
    /// The transparency log's signing key; `None`: the deployment serves no log
    /// (entries are still appended, so a key set later covers every attestation).
    pub(crate) log: Option<Arc<nhc_tlog::LogSigner>>,
    /// Sequence the log when `/log/checkpoint` is read (the Worker, the Lambda: no
    /// background task), rather than only in a background task (nhc-server).
    pub(crate) log_sequence_on_read: bool,
    /// Leaf hashes of the entries stored through this state, for the sequencer.
    pub(crate) log_feed: Arc<crate::service::log::LeafFeed>,
}

impl AppState {
    /// Below this, the admin token is accepted with a warning.
    pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

    /// `admin_token`: the deploy-time `NHC_ADMIN_TOKEN`; empty or `None` turns the
    /// admin API off.
    pub fn new(store: Arc<dyn Storage>, clock: Clock, admin_token: Option<&str>) -> Self {
        let admin_token = admin_token.map(str::trim).filter(|t| !t.is_empty());
        if admin_token.is_some_and(|t| t.len() < Self::MIN_ADMIN_TOKEN_LEN) {
            // Still accepted (a test setup may want a short one), but said out loud:
            // nothing rate-limits guesses of the admin token.
            tracing::warn!(
                "the admin token is shorter than {} characters; \
                 use a random one, e.g. `openssl rand -hex 32`",
                Self::MIN_ADMIN_TOKEN_LEN
            );
        }
        let admin_token_hash = admin_token.map(|t| Sha256::digest(t.as_bytes()).into());
        AppState {
            store,
            clock,
            admin_token_hash,
            max_hashes_per_path: crate::service::attestations::DEFAULT_MAX_HASHES_PER_PATH,
            diff_limits: crate::api::DiffLimits::default(),
            log: None,
            log_sequence_on_read: true,
            log_feed: Arc::default(),
        }
    }

    /// Serves the transparency log under `/log/`, its checkpoints signed with `key`.
    pub fn with_log_key(mut self, key: nhc_tlog::LogSigner) -> Self {
        self.log = Some(Arc::new(key));
        self
    }

    /// Whether a read of `/log/checkpoint` sequences the log first (default true; a
    /// deployment with a background sequencer, `service::log::run_sequencer`, turns
    /// it off).
    pub fn with_log_sequence_on_read(mut self, on: bool) -> Self {
        self.log_sequence_on_read = on;
        self
    }

    /// Distinct NAR hashes one builder may store for one output path (default
    /// [`DEFAULT_MAX_HASHES_PER_PATH`](crate::service::attestations::DEFAULT_MAX_HASHES_PER_PATH));
    /// 0 turns the limit off.
    pub fn with_max_hashes_per_path(mut self, max: usize) -> Self {
        self.max_hashes_per_path = max;
        self
    }

    /// What each builder may store of diff reports (default [`DiffLimits::default`](crate::DiffLimits)).
    pub fn with_diff_limits(mut self, limits: crate::api::DiffLimits) -> Self {
        self.diff_limits = limits;
        self
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token_hash.is_some()
    }
}
