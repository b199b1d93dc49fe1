//! The nix-hash-collection client: `nhc-hook` (Nix's post-build-hook and
//! diff-hook) and `nhc` (keygen, hash, submit, flush, status).

pub mod attest;
pub mod cli;
pub mod config;
pub mod drv;
pub mod hook;
pub mod http;
pub mod log;
pub mod spool;
pub mod store;
#[cfg(test)]
mod testutil;
