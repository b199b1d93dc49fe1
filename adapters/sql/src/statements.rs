//! The schema and every SQL statement, written once. sqlx runs them on SQLite and
//! PostgreSQL; D1 runs them after [`positional`] rewrites `$1` into the `?1` that D1
//! binds. Statements that need a dialect's JSON functions come in a SQLite (also D1)
//! and a PostgreSQL version. Column order of every `SELECT` is what `crate::rows`
//! decodes.

/// `schema.sql`: portable types, natural keys, idempotent statements.
pub const SCHEMA: &str = include_str!("../../../schema.sql");

/// Rewrites `$N` placeholders into `?N`, the form D1 accepts.
pub fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns every attestation query returns, in this order.
macro_rules! attestation_columns {
    () => {
        "builder, drv_path, output_name, output_path, nar_hash, nar_size, refs, signature, submitted_at, log_index"
    };
}

/// Rows `m`: the largest log index of the attestations stored, of those purged, and of
/// the entries stored as text (logs begun before entries were rebuilt from rows). Each
/// is one index seek. The next entry's index is one more than the largest.
macro_rules! log_maxima {
    () => {
        "SELECT MAX(log_index) AS m FROM attestations WHERE log_index IS NOT NULL \
         UNION ALL SELECT MAX(log_index) FROM log_purged UNION ALL SELECT MAX(idx) FROM log_entries"
    };
}

/// `Dialect::backfill_log`, given the column that names a row (SQLite's `rowid`,
/// PostgreSQL's `ctid`) and the alias PostgreSQL wants on a subquery.
macro_rules! backfill_log {
    ($row:literal, $alias:literal) => {
        concat!(
            "UPDATE attestations SET log_index = b.base + r.n - 1 FROM (SELECT ",
            $row,
            " AS id, ROW_NUMBER() OVER (ORDER BY submitted_at, hash_part, output_path, builder, nar_hash) AS n \
             FROM attestations WHERE log_index IS NULL) AS r, (SELECT COALESCE(MAX(m), -1) + 1 AS base FROM (",
            log_maxima!(),
            ")",
            $alias,
            ") AS b WHERE attestations.",
            $row,
            " = r.id"
        )
    };
}

pub const HEALTH: &str = "SELECT 1";

// Builders, keys and tokens.
pub const BUILDER_EXISTS: &str = "SELECT 1 FROM builders WHERE name = $1";
pub const BUILDER_LIVE: &str = "SELECT 1 FROM builders WHERE name = $1 AND deleted_at IS NULL";
pub const KEY_TAKEN: &str = "SELECT key_name FROM builder_keys WHERE key_name = $1 OR public_key = $2";
pub const INSERT_BUILDER: &str = "INSERT INTO builders (name, created_at) VALUES ($1, $2)";
pub const INSERT_KEY: &str =
    "INSERT INTO builder_keys (key_name, public_key, builder, created_at) VALUES ($1, $2, $3, $4)";
pub const INSERT_TOKEN: &str = "INSERT INTO tokens (id, secret_hash, builder, created_at) VALUES ($1, $2, $3, $4)";
/// Columns: name, created_at, key_name, public_key (one row per key).
pub const LIST_BUILDERS: &str = "SELECT b.name, b.created_at, k.key_name, k.public_key \
    FROM builders b LEFT JOIN builder_keys k ON k.builder = b.name \
    WHERE b.deleted_at IS NULL ORDER BY b.created_at, b.name, k.created_at, k.key_name";
/// Returns a row per token revoked.
pub const REVOKE_TOKENS: &str =
    "UPDATE tokens SET revoked_at = $2 WHERE builder = $1 AND revoked_at IS NULL RETURNING id";
/// Deleting keeps a tombstone: tokens go, the builder row stays with `deleted_at`.
pub const DELETE_TOKENS: &str = "DELETE FROM tokens WHERE builder = $1";
pub const MARK_DELETED: &str = "UPDATE builders SET deleted_at = $2 WHERE name = $1";
/// A purge removes everything of the builder, in this order. The log cannot forget:
/// the attestations in it move to `log_purged`, from which their entries are still read.
pub const PURGE: [&str; 7] = [
    "DELETE FROM diff_chunks WHERE diff_id IN (SELECT id FROM diffs WHERE builder = $1)",
    "DELETE FROM diffs WHERE builder = $1",
    concat!(
        "INSERT INTO log_purged (",
        attestation_columns!(),
        ") SELECT ",
        attestation_columns!(),
        " FROM attestations WHERE builder = $1 AND log_index IS NOT NULL ON CONFLICT (log_index) DO NOTHING"
    ),
    "DELETE FROM attestations WHERE builder = $1",
    "DELETE FROM tokens WHERE builder = $1",
    "DELETE FROM builder_keys WHERE builder = $1",
    "DELETE FROM builders WHERE name = $1",
];
/// Columns: builder, secret_hash, revoked_at, key_name, public_key (one row per key).
pub const FIND_TOKEN: &str = "SELECT t.builder, t.secret_hash, t.revoked_at, k.key_name, k.public_key \
    FROM tokens t JOIN builders b ON b.name = t.builder \
    LEFT JOIN builder_keys k ON k.builder = t.builder \
    WHERE t.id = $1 AND b.deleted_at IS NULL";

// Attestations.
/// A path's first page, oldest first: `$1` is the path's hash part, `$2` the path,
/// `$3` the limit.
pub const PATH_PAGE_FIRST: &str = concat!(
    "SELECT ",
    attestation_columns!(),
    " FROM attestations WHERE hash_part = $1 AND output_path = $2 \
     ORDER BY submitted_at, builder, nar_hash LIMIT $3"
);
/// Strictly after the cursor `($4, $5, $6)` = (submitted_at, builder, nar_hash).
pub const PATH_PAGE_AFTER: &str = concat!(
    "SELECT ",
    attestation_columns!(),
    " FROM attestations WHERE hash_part = $1 AND output_path = $2 \
     AND (submitted_at, builder, nar_hash) > ($4, $5, $6) \
     ORDER BY submitted_at, builder, nar_hash LIMIT $3"
);
/// Also serves one builder's view (filtered after the query: a path has few
/// attestations, and SQLite would otherwise pick the builder index and scan).
pub const ATTESTATIONS_BY_HASH_PART: &str = concat!(
    "SELECT ",
    attestation_columns!(),
    " FROM attestations WHERE hash_part = $1 ORDER BY submitted_at, builder, nar_hash"
);
/// Newest first; `$2` is the limit.
pub const BUILDER_PAGE_FIRST: &str = concat!(
    "SELECT ",
    attestation_columns!(),
    " FROM attestations WHERE builder = $1 \
     ORDER BY submitted_at DESC, output_path DESC, nar_hash DESC LIMIT $2"
);
/// Strictly after the cursor `($3, $4, $5)` = (submitted_at, output_path, nar_hash).
pub const BUILDER_PAGE_AFTER: &str = concat!(
    "SELECT ",
    attestation_columns!(),
    " FROM attestations WHERE builder = $1 AND (submitted_at, output_path, nar_hash) < ($3, $4, $5) \
     ORDER BY submitted_at DESC, output_path DESC, nar_hash DESC LIMIT $2"
);
/// Columns: output_name, output_path, builder, nar_hash (the last two NULL when
/// nobody attested the path), claimed_at (the attestation's time when it named this
/// derivation output, else NULL): one row per attestation of each path named.
pub const DERIVATION_VOTES: &str = "SELECT d.output_name, d.output_path, a.builder, a.nar_hash, \
    CASE WHEN a.drv_path = d.drv_path AND a.output_name = d.output_name THEN a.submitted_at END AS claimed_at \
    FROM derivation_outputs d LEFT JOIN attestations a \
    ON a.hash_part = substr(d.output_path, 12, 32) AND a.output_path = d.output_path \
    WHERE d.drv_path = $1";

// The transparency log.
/// Columns: size, root, note, created_at.
pub const LOG_LATEST_CHECKPOINT: &str =
    "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1";
/// `$1..$2` (end exclusive). Columns: idx, leaf. Only logs begun before entries were
/// rebuilt from the attestations' rows have any.
pub const LOG_ENTRIES: &str = "SELECT idx, leaf FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
/// The columns of `attestation_columns!()`, but `refs` only when it is at most `$3` bytes
/// long (else empty), then the length of `refs`.
macro_rules! log_attestation_columns {
    () => {
        "builder, drv_path, output_name, output_path, nar_hash, nar_size, \
         CASE WHEN length(refs) <= $3 THEN refs ELSE '' END, signature, submitted_at, log_index, \
         CAST(length(refs) AS BIGINT)"
    };
}
/// `$1..$2` (end exclusive): the attestations at those log indexes, stored or purged, in
/// no particular order, their references only when at most `$3` bytes (a longer list is
/// read alone, [`LOG_REFERENCES`]). Columns: `log_attestation_columns!()`.
pub const LOG_ATTESTATIONS: &str = concat!(
    "SELECT ",
    log_attestation_columns!(),
    " FROM attestations WHERE log_index >= $1 AND log_index < $2 UNION ALL SELECT ",
    log_attestation_columns!(),
    " FROM log_purged WHERE log_index >= $1 AND log_index < $2"
);
/// `$1`: a log index. Columns: refs of the attestation there, stored or purged.
pub const LOG_REFERENCES: &str =
    "SELECT refs FROM attestations WHERE log_index = $1 UNION ALL SELECT refs FROM log_purged WHERE log_index = $1";
/// `$1` size, `$2` root (hex), `$3` note, `$4` created_at; a row when stored.
pub const INSERT_LOG_CHECKPOINT: &str = "INSERT INTO log_checkpoints (size, root, note, created_at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING RETURNING size";

/// Statements whose text differs between SQLite (and D1) and PostgreSQL: lists
/// travel as one JSON parameter, so the text never changes with their length
/// (one prepared statement, no limit on bound parameters; D1 allows 100).
pub struct Dialect {
    /// `$1`: a JSON array of full store paths. Columns: the path's index in the array
    /// (an integer: no path text to copy back and parse), builder, nar_hash; one row per
    /// attestation. A path that is in the array twice is looked up twice.
    pub votes_of_paths: &'static str,
    /// `$1`: a JSON array of rows `[output_path, builder, nar_hash, hash_part, nar_size,
    /// refs, signature, drv_path, output_name, submitted_at]`, without two of one key.
    /// Returns the keys inserted with the log index each got (the next ones of the log,
    /// in the array's order): the row is the log entry (the handlers rebuild its leaf
    /// from it), so appending costs one index entry. Existing rows are duplicates and
    /// change nothing, and so are rows of a builder deleted since its token was checked.
    pub insert_attestations: &'static str,
    /// `$1`: a JSON array of `[drv_path, output_name, output_path]`.
    pub insert_derivation_outputs: &'static str,
    /// How a transaction that writes begins (SQLite must take the write lock at once).
    pub begin_write: &'static str,
    /// `$1`: a JSON array of full store paths, `$2`: a builder. Columns: output_path,
    /// builder, nar_hash: that builder's votes for those paths.
    pub builder_votes_of_paths: &'static str,
    /// The first statement of a transaction that appends to the log, where concurrent
    /// writers exist (PostgreSQL): one appender at a time keeps the indexes gapless.
    /// SQLite's `BEGIN IMMEDIATE` and D1's batches already serialise writers.
    pub lock_log: Option<&'static str>,
    /// `$1`: a JSON array of `[index, hex hash]`; existing ones are kept.
    pub insert_log_hashes: &'static str,
    /// `$1`: a JSON array of stored-hash indexes. Columns: idx, hash.
    pub log_hashes_at: &'static str,
    /// Appends the attestations stored before the log existed (no `log_index`) to the
    /// log's end, oldest first: run when a database is upgraded, in a transaction that
    /// begins with `lock_log` where there is one.
    pub backfill_log: &'static str,
}

pub const SQLITE: Dialect = Dialect {
    // One primary-key search per path asked: CROSS JOIN keeps the list as the
    // outer loop (two `IN (json_each)` lists were probed n × n). The caller removes
    // repeats (a DISTINCT here cost a temporary B-tree of the paths, a third of the
    // statement), and counts the rows itself: GROUP BY or COUNT(DISTINCT) per path
    // cost SQLite more than returning the rows (BENCHMARKS.md).
    votes_of_paths: "SELECT j.key, a.builder, a.nar_hash \
        FROM json_each($1) AS j \
        CROSS JOIN attestations AS a \
        WHERE a.hash_part = substr(j.value, 12, 32) AND a.output_path = j.value",
    // Only for builders that still exist: a builder deleted or purged while its
    // submission waited for the writer gets nothing stored (the WHERE also lets
    // SQLite parse an upsert on INSERT ... SELECT).
    // Rows already stored (duplicates) and rows of a builder deleted since its token was
    // checked are left out by the WHERE, so the rows numbered are exactly the rows
    // inserted: the log indexes stay gapless (the writer is alone: BEGIN IMMEDIATE).
    insert_attestations: concat!(
        "INSERT INTO attestations \
        (output_path, builder, nar_hash, hash_part, nar_size, refs, signature, drv_path, output_name, submitted_at, \
         log_index) \
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
               value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
               (SELECT COALESCE(MAX(m), -1) + 1 FROM (",
        log_maxima!(),
        ")) + ROW_NUMBER() OVER (ORDER BY key) - 1 \
        FROM json_each($1) \
        WHERE EXISTS (SELECT 1 FROM builders b WHERE b.name = value ->> 1 AND b.deleted_at IS NULL) \
          AND NOT EXISTS (SELECT 1 FROM attestations a WHERE a.hash_part = value ->> 3 \
                          AND a.output_path = value ->> 0 AND a.builder = value ->> 1 AND a.nar_hash = value ->> 2) \
        ON CONFLICT (hash_part, output_path, builder, nar_hash) DO NOTHING \
        RETURNING output_path, builder, nar_hash, log_index"
    ),
    insert_derivation_outputs: "INSERT INTO derivation_outputs (drv_path, output_name, output_path) \
        SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1) WHERE true \
        ON CONFLICT (drv_path, output_name, output_path) DO NOTHING",
    // A deferred transaction that read first cannot upgrade while another
    // connection writes: it fails at once with SQLITE_BUSY instead of waiting.
    begin_write: "BEGIN IMMEDIATE",
    // As `votes_of_paths`, the builder narrowing each primary-key range.
    builder_votes_of_paths: "SELECT a.output_path, a.builder, a.nar_hash \
        FROM (SELECT DISTINCT value AS p FROM json_each($1)) AS j \
        CROSS JOIN attestations AS a \
        WHERE a.hash_part = substr(j.p, 12, 32) AND a.output_path = j.p AND a.builder = $2",
    lock_log: None,
    insert_log_hashes: "INSERT INTO log_hashes (idx, hash) SELECT value ->> 0, value ->> 1 FROM json_each($1) \
        WHERE true ON CONFLICT (idx) DO NOTHING",
    log_hashes_at: "SELECT h.idx, h.hash FROM json_each($1) AS j CROSS JOIN log_hashes AS h WHERE h.idx = j.value",
    backfill_log: backfill_log!("rowid", ""),
};

pub const POSTGRES: Dialect = Dialect {
    votes_of_paths: "SELECT j.ord - 1, a.builder, a.nar_hash \
        FROM json_array_elements_text($1::json) WITH ORDINALITY AS j (p, ord) \
        JOIN attestations AS a ON a.hash_part = substr(j.p, 12, 32) AND a.output_path = j.p",
    insert_attestations: concat!(
        "INSERT INTO attestations \
        (output_path, builder, nar_hash, hash_part, nar_size, refs, signature, drv_path, output_name, submitted_at, \
         log_index) \
        SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, (v ->> 4)::bigint, \
               v ->> 5, v ->> 6, v ->> 7, v ->> 8, (v ->> 9)::bigint, \
               (SELECT COALESCE(MAX(m), -1) + 1 FROM (",
        log_maxima!(),
        ") AS maxima) + ROW_NUMBER() OVER (ORDER BY n) - 1 \
        FROM json_array_elements($1::json) WITH ORDINALITY AS j (v, n) \
        WHERE EXISTS (SELECT 1 FROM builders b WHERE b.name = v ->> 1 AND b.deleted_at IS NULL) \
          AND NOT EXISTS (SELECT 1 FROM attestations a WHERE a.hash_part = v ->> 3 \
                          AND a.output_path = v ->> 0 AND a.builder = v ->> 1 AND a.nar_hash = v ->> 2) \
        ON CONFLICT (hash_part, output_path, builder, nar_hash) DO NOTHING \
        RETURNING output_path, builder, nar_hash, log_index"
    ),
    insert_derivation_outputs: "INSERT INTO derivation_outputs (drv_path, output_name, output_path) \
        SELECT v ->> 0, v ->> 1, v ->> 2 FROM json_array_elements($1::json) AS v \
        ON CONFLICT (drv_path, output_name, output_path) DO NOTHING",
    begin_write: "BEGIN",
    builder_votes_of_paths: "SELECT a.output_path, a.builder, a.nar_hash \
        FROM (SELECT DISTINCT p FROM json_array_elements_text($1::json) AS p) AS j \
        JOIN attestations AS a ON a.hash_part = substr(j.p, 12, 32) AND a.output_path = j.p AND a.builder = $2",
    // The appenders' mutex (nothing writes log_entries any more): this mode conflicts
    // with itself, not with reads, so appenders queue here and readers never wait.
    lock_log: Some("LOCK TABLE log_entries IN SHARE ROW EXCLUSIVE MODE"),
    insert_log_hashes: "INSERT INTO log_hashes (idx, hash) \
        SELECT (v ->> 0)::bigint, v ->> 1 FROM json_array_elements($1::json) AS v \
        ON CONFLICT (idx) DO NOTHING",
    log_hashes_at: "SELECT h.idx, h.hash FROM json_array_elements_text($1::json) AS j (i) \
        JOIN log_hashes AS h ON h.idx = j.i::bigint",
    backfill_log: backfill_log!("ctid", " AS maxima"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_rewrites_only_numbered_placeholders() {
        assert_eq!(positional("a = $1 AND b = $12 AND c = '$x'"), "a = ?1 AND b = ?12 AND c = '$x'");
        assert_eq!(positional(BUILDER_PAGE_AFTER).matches('?').count(), 5);
        assert_eq!(positional(PATH_PAGE_AFTER).matches('?').count(), 6);
        assert!(!positional(SQLITE.insert_attestations).contains('$'));
    }

    /// The backfill an operator runs by hand on D1 is the one nhc-server runs.
    #[test]
    fn the_documented_d1_backfill_is_the_servers() {
        let doc = include_str!("../../../docs/d1-backfill-log.sql");
        let sql: String = doc.lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join(" ");
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(").replace(" )", ")");
        assert_eq!(words(&sql), words(SQLITE.backfill_log));
    }
}
