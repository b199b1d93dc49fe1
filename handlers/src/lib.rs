//! The request handlers of nix-hash-collection, free of any platform: an
//! [`axum::Router`] over a [`Storage`], and the [`service`] operations it shares with
//! the server's command line. Each deployment (tokio server, Lambda, Cloudflare
//! Worker) supplies a storage, a clock and the admin token, and converts its
//! platform's requests to `http` types. Every rule about attestations lives here.

mod api;
mod auth;
mod error;
mod extract;
mod offload;
pub mod service;
mod state;
mod web;

pub use api::{openapi, router, DiffLimits};
pub use error::ApiError;
pub use nhc_storage::{Storage, StoreError};
pub use offload::OFFLOAD_MIN_UNITS;
pub use state::{AppState, Clock};

#[cfg(not(target_arch = "wasm32"))]
pub use state::system_clock;

/// Re-exported so adapters name the same `Router` without a dependency of their own.
pub use axum;
/// Re-exported so adapters and clients name the same types.
pub use nhc_core as core;
