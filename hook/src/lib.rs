//! The nix-hash-collection client: `nhc-hook` (Nix's post-build-hook and diff-hook)
//! and `nhc` (keygen, hash, submit, flush, status). What Nix recorded is read through
//! `nhc-nix`; NAR hashes come from `nhc-nar`.
//!
//! - `config`: the one table of settings, environment and config file;
//! - `api`: the typed client of the server's API;
//! - `attest`: gather what Nix recorded, sign it, deliver it (or spool it);
//! - `spool`: the spool's files, and flushing it;
//! - `durable`: files that are complete or absent, never half-written;
//! - `tlog`: the transparency log's local record, tile reads, the monitor;
//! - `hook`: the `nhc-hook` binary; `cli` and `command`: the `nhc` binary, one file a command.

mod api;
mod attest;
mod cli;
mod command;
mod config;
mod durable;
mod hook;
mod log;
mod spool;
#[cfg(test)]
mod testutil;
mod tlog;

/// The `nhc` binary: returns its exit status.
pub use cli::main as nhc_main;
/// The `nhc-hook` binary: always exits 0.
pub use hook::main as hook_main;

/// For `fuzz/` only (not an API): the config file parser, see `Config::fuzz_file`.
#[doc(hidden)]
pub fn fuzz_config_file(text: &str) -> bool {
    config::Config::fuzz_file(text).is_ok()
}
