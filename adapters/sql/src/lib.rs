//! The one SQL storage of nix-hash-collection. [`SqlStorage`] implements the
//! storage trait once, over an [`Executor`] that a driver supplies: sqlx on SQLite
//! and PostgreSQL (`nhc-sqlx-store`), D1 in the Worker (`nhc-worker`). The schema,
//! the statements, their parameters and the decoding of their rows live here, so
//! the drivers only move values between their database and these types.

pub mod batch;
mod diffs;
mod exec;
mod jobsets;
mod log;
mod rows;
mod statements;
mod storage;

pub use exec::{Executor, Param, Row, Statement, Value};
pub use statements::{positional, Dialect, POSTGRES, SCHEMA, SQLITE};
pub use storage::{insert_submissions, SqlStorage};
