use nhc_storage::StoreError;

/// Why the store could not be opened or migrated (a startup error, not a request's).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Url(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("cannot apply schema.sql: {0}")]
    Migrate(String),
}

impl ConnectError {
    pub(crate) fn url(e: sqlx::Error) -> Self {
        ConnectError::Url(format!("invalid database URL: {e}"))
    }
    pub(crate) fn connect(e: sqlx::Error) -> Self {
        ConnectError::Connect(e.to_string())
    }
    pub(crate) fn migrate(e: sqlx::Error) -> Self {
        ConnectError::Migrate(e.to_string())
    }
}

/// Sorts sqlx errors into "try again later" (503) and "a bug or bad data" (500).
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
            StoreError::Unavailable(e.to_string())
        }
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite BUSY/LOCKED (5, 6 and their extended codes); Postgres classes
            // 08 (connection), 53 (resources), 57 (operator intervention), 40 (rollback).
            let transient = if code.len() == 5 {
                // Postgres SQLSTATEs are always five characters.
                ["08", "53", "57", "40"].iter().any(|p| code.starts_with(p))
            } else {
                matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5) | Ok(6))
            };
            if db.is_unique_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else if transient {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}
