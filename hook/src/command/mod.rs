//! The `nhc` commands, one file each: the command's arguments (its `--help`) and what
//! it does. A new command is a new file here and a line in `cli.rs`.

pub mod audit;
pub mod check;
pub mod flush;
pub mod hash;
pub mod import;
pub mod jobset;
pub mod keygen;
pub mod log_verify;
pub mod proxy;
pub mod pubkey;
pub mod rebuild;
pub mod status;
pub mod submit;

use std::path::PathBuf;

use nhc_core::ParseError;
use nhc_nix::NotAStorePath;

use crate::api::ApiError;
use crate::config::{Config, ConfigError};
use crate::durable::FsError;
use crate::log;

/// Why a command failed (reported once, as `nhc: error: ...`, with exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("spool: {0}")]
    Spool(FsError),
    #[error(transparent)]
    Nix(#[from] nhc_nix::Error),
    #[error(transparent)]
    NotAStorePath(#[from] NotAStorePath),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("no randomness from the OS: {0}")]
    Random(getrandom::Error),
    /// Hashing a path failed (the message names the file).
    #[error("{0}")]
    Hash(std::io::Error),
    #[error("{}: given for both the secret and the public key", .0.display())]
    SameFile(PathBuf),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An upload the server would refuse (checked before sending).
    #[error(transparent)]
    Upload(#[from] nhc_jobset::UploadError),
    #[error(transparent)]
    DiffSetting(#[from] crate::config::DiffSettingError),
    /// A mistake in the arguments found after parsing them, or an answer that names
    /// nothing (an unknown jobset or evaluation).
    #[error("{0}")]
    Usage(String),
}

/// What a command returns: its exit status, or why it failed.
pub type Exit = Result<i32, CommandError>;

/// Runs `f` with the configuration, after reporting its warnings and what makes it
/// unable to send.
pub fn with_config(f: impl FnOnce(&Config) -> Exit) -> Exit {
    let cfg = Config::load()?;
    for w in &cfg.warnings {
        log::warn(&w.to_string());
    }
    if let Some(e) = cfg.misconfiguration() {
        log::error(&format!("MISCONFIGURED: {e}"));
    }
    f(&cfg)
}
