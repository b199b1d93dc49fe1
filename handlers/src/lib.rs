//! The request handlers of nix-hash-collection, free of any platform: an
//! [`axum::Router`] over a [`Storage`]. Each deployment (tokio server, Lambda,
//! Cloudflare Worker) supplies a storage, a clock and the admin token, and converts
//! its platform's requests to `http` types. Every rule about attestations lives here.

mod api;
mod auth;
mod error;
mod extract;
mod narinfo;
mod state;
pub mod storage;

pub use api::{admin_ops, router};
pub use error::ApiError;
pub use state::{AppState, Clock};
pub use storage::{Storage, StoreError};

/// Re-exported so adapters name the same `Router` without a dependency of their own.
pub use axum;
/// Re-exported so adapters and clients name the same types.
pub use nhc_core as core;
