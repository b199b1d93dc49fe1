-- PROPOSAL (not applied): the tables of jobsets and evaluations (issue 12), in the
-- dialect of schema.sql: portable TEXT/BIGINT, valid for SQLite, D1 and PostgreSQL,
-- every statement idempotent. To be merged into schema.sql (schema version 2) when the
-- routes land on the new storage layer (nhc-storage). Times are microseconds since
-- the Unix epoch (UTC), as in schema.sql.
--
-- Design in short:
-- * A store path shared by many evaluations is stored ONCE, in `store_paths`, with a
--   small integer id; an evaluation is a list of (evaluation id, path id) pairs of
--   two integers. 100 evaluations of a 20,000-path closure changing by 5 % each cost
--   20,000 + 99 × 1,000 = 119,000 path texts (about 9 MB), and 2,000,000 integer pairs
--   (about 40 MB with the index in SQLite), not 2,000,000 path texts (150+ MB).
-- * Ids are chosen by the application, not AUTOINCREMENT/SERIAL (schema.sql avoids
--   dialect-specific keys): the path id is the first 8 bytes of SHA-256(path) as a
--   signed 64-bit integer, so an upload can compute every id without a round trip
--   (a D1 batch cannot read back ids between statements) and concurrent uploads of
--   the same path agree. A collision (probability ~ n²/2^64: 1e-8 at 500 million
--   paths) is detected: `INSERT .. ON CONFLICT (id) DO NOTHING` then a check that the
--   stored path is the one inserted; on a mismatch the upload fails with 503 and is
--   logged, nothing is stored (all-or-nothing), no wrong answer is given.
--   Evaluation ids are random 63-bit integers (getrandom), jobset ids likewise.
-- * Statuses are not stored per item: they are live, computed from `attestations`
--   at request time (the design asks for live statuses). The per-evaluation summary
--   is cached in `evaluations` (summary_* columns, `summary_at`) and refreshed when
--   older than 60 s on read, or by the background task every minute; the answer shows
--   `summary_at`, so the staleness is bounded and visible. A page of items and the
--   diff always read live statuses.

CREATE TABLE IF NOT EXISTS jobsets (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,          -- builder-name rule, checked by nhc-core
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- Tokens that may upload evaluations of one jobset: nhc_<id>_<secret> as the builder
-- tokens, only SHA-256(secret) kept, compared in constant time.
CREATE TABLE IF NOT EXISTS jobset_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    jobset_id   BIGINT NOT NULL REFERENCES jobsets (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX IF NOT EXISTS jobset_tokens_by_jobset ON jobset_tokens (jobset_id);

-- Every path any evaluation names, once. `hash_part` is kept apart so that the live
-- status join can use the attestations' primary key (hash_part, output_path, ..).
CREATE TABLE IF NOT EXISTS store_paths (
    id        BIGINT PRIMARY KEY,              -- first 8 bytes of SHA-256(path), signed
    hash_part TEXT NOT NULL,
    path      TEXT NOT NULL UNIQUE
);

-- One revision of a jobset. Re-uploading a rev replaces it atomically: the new
-- evaluation is written under a fresh id with `complete = 0`, then one statement
-- flips it to 1 and deletes the old row (ON DELETE CASCADE removes its items and
-- edges) in the same transaction/batch; readers only ever see complete evaluations.
CREATE TABLE IF NOT EXISTS evaluations (
    id                   BIGINT PRIMARY KEY,
    jobset_id            BIGINT NOT NULL REFERENCES jobsets (id) ON DELETE CASCADE,
    rev                  TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    paths                BIGINT NOT NULL,
    complete             BIGINT NOT NULL DEFAULT 0,
    -- The cached summary (the five statuses of /v1/status) and when it was computed.
    summary_reproduced           BIGINT NOT NULL DEFAULT 0,
    summary_partially_reproduced BIGINT NOT NULL DEFAULT 0,
    summary_not_reproduced       BIGINT NOT NULL DEFAULT 0,
    summary_one_builder          BIGINT NOT NULL DEFAULT 0,
    summary_no_builds            BIGINT NOT NULL DEFAULT 0,
    summary_at                   BIGINT NOT NULL DEFAULT 0
);
-- One complete evaluation per (jobset, rev); an upload in progress may coexist.
CREATE UNIQUE INDEX IF NOT EXISTS evaluations_by_rev ON evaluations (jobset_id, rev, complete, id);
-- History (newest first) and "latest" in one index range scan.
CREATE INDEX IF NOT EXISTS evaluations_by_time ON evaluations (jobset_id, complete, created_at);

-- The paths of an evaluation. `ord` is the position in the upload (keyset paging
-- by (evaluation_id, ord) is stable and cheap); drv_path/output_name are what the
-- upload said (NULL otherwise; the attestations fill them at read time).
CREATE TABLE IF NOT EXISTS evaluation_items (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    ord           BIGINT NOT NULL,
    path_id       BIGINT NOT NULL REFERENCES store_paths (id),
    drv_path      TEXT,
    output_name   TEXT,
    PRIMARY KEY (evaluation_id, ord)
);
-- The diff (two evaluations joined on path) and "is this path in that evaluation".
CREATE UNIQUE INDEX IF NOT EXISTS evaluation_items_by_path ON evaluation_items (evaluation_id, path_id);
-- Which evaluations name a path (the output page's "in jobsets", incremental summaries).
CREATE INDEX IF NOT EXISTS evaluation_items_by_path_id ON evaluation_items (path_id);

-- Dependency edges from an SBOM: positions in the evaluation's item list.
CREATE TABLE IF NOT EXISTS evaluation_edges (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    from_ord      BIGINT NOT NULL,
    to_ord        BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, from_ord, to_ord)
);

-- A per-path status cache so that a summary of 20,000 paths is one indexed join
-- instead of 20,000 group-bys over attestations: kept up to date by the submit path
-- (the same transaction that inserts an attestation recomputes its path's row;
-- StatusSummary::from_votes in nhc-core). Summaries then are
--   SELECT s.status, COUNT(*) FROM evaluation_items i
--     LEFT JOIN path_status s ON s.path_id = i.path_id
--    WHERE i.evaluation_id = ? GROUP BY s.status      -- NULL = no_builds
-- One row per path that has at least one attestation.
CREATE TABLE IF NOT EXISTS path_status (
    path_id         BIGINT PRIMARY KEY REFERENCES store_paths (id),
    status          TEXT NOT NULL,     -- reproduced | partially_reproduced | not_reproduced | one_builder
    builders        BIGINT NOT NULL,
    distinct_hashes BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS path_status_by_status ON path_status (status, path_id);

-- ---------------------------------------------------------------------------------
-- Queries the indexes serve (all parameterised):
--
-- history:  SELECT rev, created_at, paths, summary_* , summary_at FROM evaluations
--            WHERE jobset_id = ? AND complete = 1 ORDER BY created_at DESC, id DESC
--           (100 rows, one range of evaluations_by_time; stale summaries, older than
--           60 s, are recomputed with the summary query and written back).
-- page:     SELECT i.ord, p.path, i.drv_path, i.output_name, s.status, s.builders, s.distinct_hashes
--             FROM evaluation_items i JOIN store_paths p ON p.id = i.path_id
--             LEFT JOIN path_status s ON s.path_id = i.path_id
--            WHERE i.evaluation_id = ? AND i.ord > ?cursor [AND COALESCE(s.status,'no_builds') IN (..)]
--              [AND p.path LIKE '%' || ?q || '%' ESCAPE '\']
--            ORDER BY i.ord LIMIT ?limit
-- diff:     the two evaluations' (path_id, path, status) read in ord order and given to
--           nhc_jobset::diff (hash maps: linear); 2 × 250,000 rows at most.
-- badge:    the latest complete evaluation's cached summary.
--
-- ---------------------------------------------------------------------------------
-- D1 limits (Cloudflare, 2025): at most 100 bound parameters per statement; an SQL
-- statement of at most 100 KB; a Worker's batch is one transaction but a request may
-- make at most 1,000 subrequests/queries on the paid plan (50 on free); rows written
-- count against a daily quota.
--
-- Chunking an upload of 20,000 paths on D1 (and the same code on SQLite/PostgreSQL,
-- where a bigger chunk would do but one rule is simpler to test):
-- * store_paths: 3 parameters a row (id, hash_part, path) -> 33 rows per INSERT
--   (99 parameters); 20,000 / 33 = 607 statements. A path is ~60 bytes of SQL text,
--   so a statement is ~3 KB, well under 100 KB.
-- * evaluation_items: 5 parameters a row -> 20 rows per INSERT; 1,000 statements.
-- * Total ~1,600 statements for 20,000 paths in batches of 100 (db.batch is one
--   implicit transaction per batch; the "complete = 0, then flip" protocol above gives
--   atomicity across batches: an interrupted upload leaves an incomplete evaluation
--   that readers never see and the next upload or the background task deletes).
--   That is already above D1's 1,000 queries per Worker invocation if statements in a
--   batch count singly, and 250,000 paths would be ~12,500 statements: far over the
--   limit. So the writes of the two big tables pass the rows as ONE JSON parameter
--   and let the database unpack it (json_each exists in SQLite and D1):
--     INSERT INTO store_paths (id, hash_part, path)
--       SELECT j.value ->> '$[0]', j.value ->> '$[1]', j.value ->> '$[2]'
--         FROM json_each(?1) j WHERE true ON CONFLICT (id) DO NOTHING
--   With ~90 KB of JSON per parameter (about 1,200 paths; under the 100 KB statement
--   limit, which D1 applies to bound values too) 20,000 paths take ~17 statements per
--   table and 250,000 paths ~210, i.e. 3 to 5 batches of 100 statements. PostgreSQL
--   does the same with jsonb_array_elements($1::jsonb) (or UNNEST of arrays), so the
--   SQL layer keeps one dialect-specific query for each of these two inserts only.
--   The chunk size is a constant of the SQL layer, tested in workerd with a
--   20,000- and a 250,000-path upload.
