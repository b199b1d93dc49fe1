//! For tests (here and in the crates that use this one): a Nix database with Nix
//! 2.8's schema, filled the way Nix fills it.

use std::path::Path;

use rusqlite::{params, Connection};

/// Creates an empty Nix database at `path`.
pub fn create_db(path: &Path) -> Connection {
    let c = Connection::open(path).expect("create the test database");
    c.execute_batch(
        "CREATE TABLE ValidPaths (id integer primary key autoincrement not null, path text unique not null,
           hash text not null, registrationTime integer not null, deriver text, narSize integer,
           ultimate integer, sigs text, ca text);
         CREATE TABLE Refs (referrer integer not null, reference integer not null, primary key (referrer, reference));
         CREATE TABLE DerivationOutputs (drv integer not null, id text not null, path text not null,
           primary key (drv, id));",
    )
    .expect("create Nix's tables");
    c
}

/// Registers a valid path with its NAR hash (as Nix stores it: `sha256:<hex>`), size
/// and deriver; returns its id.
pub fn register(c: &Connection, path: &str, nar_hash: &str, nar_size: u64, deriver: Option<&str>) -> i64 {
    c.execute(
        "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize) VALUES (?1, ?2, 0, ?3, ?4)",
        params![path, nar_hash, deriver, nar_size as i64],
    )
    .expect("register a path");
    c.last_insert_rowid()
}

/// Records that the path with id `referrer` refers to the one with id `reference`.
pub fn reference(c: &Connection, referrer: i64, reference: i64) {
    c.execute("INSERT INTO Refs VALUES (?1, ?2)", params![referrer, reference]).expect("register a reference");
}

/// Records that output `name` of the derivation with id `drv` is `path`.
pub fn output(c: &Connection, drv: i64, name: &str, path: &str) {
    c.execute("INSERT INTO DerivationOutputs VALUES (?1, ?2, ?3)", params![drv, name, path])
        .expect("register an output");
}
