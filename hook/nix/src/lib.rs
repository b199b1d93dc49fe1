//! What the nix-hash-collection client reads from Nix, as Nix itself would:
//!
//! - [`StoreLocation`]: where the store's files and database are (the `store` setting
//!   of `NIX_CONFIG`, `nix.conf` or `NIX_REMOTE`; chroot stores), and which store path
//!   a command-line argument names;
//! - [`NixDb`]: Nix's SQLite database, read-only (path infos, derivation outputs, closures);
//! - [`drv`]: the `.drv` (ATerm) parser;
//! - [`command`]: `nix-store --query` and other commands, killed after a deadline;
//! - [`Store`]: all of it together, with the fallbacks when the database cannot be read.
//!
//! Every failure is an [`Error`].

pub mod command;
mod db;
pub mod drv;
mod error;
mod location;
mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use db::{NixDb, PathInfo};
pub use drv::Derivation;
pub use error::Error;
pub use location::{NotAStorePath, StoreLocation};
pub use store::{Note, Store};
