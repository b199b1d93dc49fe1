//! The group-commit writer on PostgreSQL when the database goes away: its connections
//! are killed (`pg_terminate_backend` from another session) and new ones refused.
//! Submissions get 503 ("unavailable"), `/health` too, and once connections are
//! allowed again the writer recovers without a restart.
//!
//! Needs `psql` and `NHC_TEST_POSTGRES_URL` (a server where it may create roles and
//! databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`); skipped without it.
//! The store connects as a role of its own: a connection limit does not bind superusers.

mod support;

use std::process::Command;

use support::{both_unavailable, recovers, store, stored};

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `url` with another user and database.
fn url_for(admin: &str, user: &str, db: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, String::new()), |(b, q)| (b, format!("?{q}")));
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split_once('/').map_or(host, |(h, _)| h);
    format!("postgres://{user}@{host}/{db}{query}")
}

struct Cleanup<'a> {
    admin: &'a str,
    name: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let n = &self.name;
        let _ = Command::new("psql")
            .args([self.admin, "-qc", &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")])
            .output();
        let _ = Command::new("psql").args([self.admin, "-qc", &format!("DROP ROLE IF EXISTS {n}")]).output();
    }
}

#[tokio::test]
async fn the_writer_recovers_when_postgres_comes_back() {
    let Some(admin) = std::env::var("NHC_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("NHC_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    let name = format!("nhc_writer_{}", std::process::id());
    let _cleanup = Cleanup { admin: &admin, name: name.clone() };
    psql(&admin, &format!("CREATE ROLE {name} LOGIN"));
    psql(&admin, &format!("CREATE DATABASE {name} OWNER {name}"));
    let store = store(&url_for(&admin, &name, &name)).await;
    stored(&store, 1).await;

    // Every connection of the store is killed, and new ones are refused.
    psql(&admin, &format!("ALTER ROLE {name} CONNECTION LIMIT 0"));
    psql(&admin, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"));
    both_unavailable(&store, 2).await;
    both_unavailable(&store, 3).await;

    psql(&admin, &format!("ALTER ROLE {name} CONNECTION LIMIT -1"));
    recovers(&store).await;
    stored(&store, 2).await;
    support::duplicate(&store, 1).await;
}
