//! The one error type of this crate: what went wrong reading from Nix.

use std::path::PathBuf;
use std::sync::Arc;

use nhc_core::{DrvPath, ParseError, StorePath};

use crate::command::CommandError;
use crate::drv::DrvError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: no such file", .0.display())]
    DbMissing(PathBuf),
    #[error("{}: {source}", .path.display())]
    DbOpen { path: PathBuf, source: rusqlite::Error },
    #[error("reading Nix's database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database could not be opened earlier (the reason is kept for every later use).
    #[error(transparent)]
    DbUnavailable(Arc<Error>),
    #[error("Nix's database holds for {path}: {source}")]
    DbHash { path: StorePath, source: ParseError },
    #[error("Nix's database has no NAR size for {0}")]
    DbNoNarSize(StorePath),
    #[error("{from} lists {path} twice")]
    DuplicateReference { from: &'static str, path: StorePath },
    /// A path, derivation path or output name Nix printed or stored that is not valid.
    #[error(transparent)]
    Invalid(#[from] ParseError),
    #[error("cannot read {}: {source}", .path.display())]
    ReadDrv { path: PathBuf, source: std::io::Error },
    #[error("{drv}: {source}")]
    ParseDrv { drv: DrvPath, source: DrvError },
    #[error("{0} has outputs whose paths are only known after the build")]
    FloatingOutputs(DrvPath),
    #[error("Nix's database lists no outputs for {0}")]
    NoOutputsInDb(DrvPath),
    /// Every way of finding a derivation's outputs failed: the .drv file, the
    /// database, and `nix-store --query --outputs`.
    #[error("cannot find the outputs of {drv}: {from_drv}; {from_db}; {from_nix_store}")]
    NoOutputs { drv: DrvPath, from_drv: Box<Error>, from_db: Box<Error>, from_nix_store: Box<Error> },
    #[error("nix-store --query {args}: {source}")]
    NixStore { args: String, source: CommandError },
    #[error("nix-store --query {args} failed: {stderr}")]
    NixStoreFailed { args: String, stderr: String },
    #[error("hashing {}: {source}", .path.display())]
    Hash { path: PathBuf, source: std::io::Error },
}
