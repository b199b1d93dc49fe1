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
            let transient = transient_code(&code);
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

/// Whether a database error code means "try again later". Postgres classes 08
/// (connection), 53 (resources), 57 (operator intervention), 40 (rollback), and
/// 55000 (a database that does not accept connections now, e.g. `ALLOW_CONNECTIONS
/// false`, which a new connection of the pool meets); SQLite
/// BUSY (5), LOCKED (6), IOERR (10), FULL (13) and CANTOPEN (14, e.g. out of file
/// descriptors), with their extended codes: the request was fine, the machine was not.
fn transient_code(code: &str) -> bool {
    // Postgres SQLSTATEs are five characters and not all digits; SQLite's extended
    // codes are numbers below 10,000.
    match code.parse::<i32>() {
        Ok(c) if code.len() < 5 => matches!(c & 0xff, 5 | 6 | 10 | 13 | 14),
        _ => code == "55000" || ["08", "53", "57", "40"].iter().any(|p| code.starts_with(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::transient_code;

    #[test]
    fn sqlite_resource_errors_are_temporary() {
        // BUSY, LOCKED, IOERR, FULL, CANTOPEN, and extended codes of them
        // (BUSY_SNAPSHOT 517, IOERR_FSYNC 1034, CANTOPEN_NOTEMPDIR 270).
        for code in ["5", "6", "10", "13", "14", "517", "1034", "270"] {
            assert!(transient_code(code), "{code}");
        }
        // CONSTRAINT, CORRUPT, MISMATCH, ERROR: a bug or bad data.
        for code in ["19", "11", "20", "1", "2067", ""] {
            assert!(!transient_code(code), "{code}");
        }
    }

    #[test]
    fn postgres_classes() {
        for code in ["08006", "53300", "57P01", "40001", "55000"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22001"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
