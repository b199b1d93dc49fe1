-- nix-hash-collection: the one schema for SQLite, Cloudflare D1 and PostgreSQL.
-- Portable on purpose: TEXT and BIGINT only, natural keys, no autoincrement, and
-- every statement idempotent so that applying the file again changes nothing.
-- Times are microseconds since the Unix epoch (UTC).

CREATE TABLE IF NOT EXISTS schema_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO schema_meta (key, value) VALUES ('version', '1') ON CONFLICT (key) DO NOTHING;

-- A deleted builder keeps its row (deleted_at set) so that its name cannot be
-- taken over while its attestations remain; a purge removes the row.
CREATE TABLE IF NOT EXISTS builders (
    name       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- Key names and keys are unique across all builders.
CREATE TABLE IF NOT EXISTS builder_keys (
    key_name   TEXT PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    builder    TEXT NOT NULL REFERENCES builders (name),
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS builder_keys_by_builder ON builder_keys (builder);

-- A token is nhc_<id>_<secret>; only the SHA-256 of the secret is kept.
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    builder     TEXT NOT NULL REFERENCES builders (name),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX IF NOT EXISTS tokens_by_builder ON tokens (builder);

-- One builder's signed claim about one output path. The same (path, builder, hash)
-- again is a duplicate; another hash from the same builder is a second row.
-- The key leads with the path's 32-character hash part, the name binary caches
-- look paths up by, so one index serves both lookups (every query that knows the
-- path also gives its hash part).
CREATE TABLE IF NOT EXISTS attestations (
    hash_part    TEXT NOT NULL,
    output_path  TEXT NOT NULL,
    builder      TEXT NOT NULL,
    nar_hash     TEXT NOT NULL,
    nar_size     BIGINT NOT NULL,
    refs         TEXT NOT NULL,
    signature    TEXT NOT NULL,
    drv_path     TEXT,
    output_name  TEXT,
    submitted_at BIGINT NOT NULL,
    -- Its index in the transparency log (log_entries); NULL for attestations stored
    -- before the log existed. Databases made before it get the column from the
    -- server's migration (docs/deployments.md, "Upgrading").
    log_index    BIGINT,
    PRIMARY KEY (hash_part, output_path, builder, nar_hash)
);
CREATE INDEX IF NOT EXISTS attestations_by_builder ON attestations (builder, submitted_at, output_path, nar_hash);

-- Which derivation output maps to which path. A fixed-output path can have several
-- derivers, so every (drv, output name, path) is kept. Who named the path for the
-- derivation is in the attestations' drv_path and output_name: should builders name
-- different paths for one output, the report picks the path most of them named.
CREATE TABLE IF NOT EXISTS derivation_outputs (
    drv_path    TEXT NOT NULL,
    output_name TEXT NOT NULL,
    output_path TEXT NOT NULL,
    PRIMARY KEY (drv_path, output_name, output_path)
);

-- Jobsets and evaluations (docs/jobsets.md). Ids are chosen by the application and
-- stay below 2^53 (D1 returns numbers as doubles): jobsets and evaluations get random
-- ones, a store path the first 53 bits of SHA-256(path), so that an upload computes
-- every id without a round trip. A collision is checked before writing and refuses
-- the upload (nothing stored). Deletes go child-first in the application, so these
-- foreign keys never need a cascade.
CREATE TABLE IF NOT EXISTS jobsets (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Tokens that may upload evaluations of one jobset: nhc_<id>_<secret> as the builder
-- tokens; only the SHA-256 of the secret is kept.
CREATE TABLE IF NOT EXISTS jobset_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    jobset_id   BIGINT NOT NULL REFERENCES jobsets (id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX IF NOT EXISTS jobset_tokens_by_jobset ON jobset_tokens (jobset_id);

-- Every path an evaluation names, once, however many evaluations name it: an
-- evaluation is a list of (evaluation id, path id) pairs. `hash_part` is kept so that
-- the join with attestations uses their primary key.
CREATE TABLE IF NOT EXISTS store_paths (
    id        BIGINT PRIMARY KEY,
    hash_part TEXT NOT NULL,
    path      TEXT NOT NULL UNIQUE
);

-- One revision of a jobset. A re-upload of a rev deletes the old one and writes the
-- new one in one transaction. The summary is a cache of the live statuses with the
-- time it was computed (summary_at > 0). Storing attestations of a path the
-- evaluation holds invalidates it: summary_at is negated (then decremented, so that
-- a computation that started from the old value cannot store its result); 0 = never
-- computed. See docs/jobsets.md, "Summaries".
CREATE TABLE IF NOT EXISTS evaluations (
    id                           BIGINT PRIMARY KEY,
    jobset_id                    BIGINT NOT NULL REFERENCES jobsets (id),
    rev                          TEXT NOT NULL,
    created_at                   BIGINT NOT NULL,
    paths                        BIGINT NOT NULL,
    summary_reproduced           BIGINT NOT NULL DEFAULT 0,
    summary_partially_reproduced BIGINT NOT NULL DEFAULT 0,
    summary_not_reproduced       BIGINT NOT NULL DEFAULT 0,
    summary_one_builder          BIGINT NOT NULL DEFAULT 0,
    summary_no_builds            BIGINT NOT NULL DEFAULT 0,
    summary_at                   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (jobset_id, rev)
);
-- History, newest first, and the latest evaluation.
CREATE INDEX IF NOT EXISTS evaluations_by_time ON evaluations (jobset_id, created_at);

-- The paths of an evaluation: `ord` is the position in the upload (keyset paging);
-- drv_path/output_name are what the upload said (NULL otherwise).
CREATE TABLE IF NOT EXISTS evaluation_items (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations (id),
    ord           BIGINT NOT NULL,
    path_id       BIGINT NOT NULL REFERENCES store_paths (id),
    drv_path      TEXT,
    output_name   TEXT,
    PRIMARY KEY (evaluation_id, ord)
);
-- Which evaluations hold a path: a diff's anti-join, the invalidation of cached
-- summaries when a path is attested, collecting orphaned store_paths. (It replaces
-- evaluation_items_by_path (path_id), which it covers.)
DROP INDEX IF EXISTS evaluation_items_by_path;
CREATE INDEX IF NOT EXISTS evaluation_items_by_path_evaluation ON evaluation_items (path_id, evaluation_id);

-- Dependency edges of an upload (an SBOM's), as positions in its item list.
CREATE TABLE IF NOT EXISTS evaluation_edges (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations (id),
    from_ord      BIGINT NOT NULL,
    to_ord        BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, from_ord, to_ord)
);

-- Diff reports (docs/api.md, "Diff reports"): how a builder's rebuild of a path
-- differed, signed by the builder. The id is the first 53 bits of SHA-256 over
-- (builder, path, report hash), so the same upload again is the same row. The gzip
-- report is kept in base64 pieces of 512 KiB in diff_chunks: D1 refuses a row over
-- 2 MB, and every database stores it the same way.
CREATE TABLE IF NOT EXISTS diffs (
    id            BIGINT PRIMARY KEY,
    hash_part     TEXT NOT NULL,
    output_path   TEXT NOT NULL,
    builder       TEXT NOT NULL REFERENCES builders (name),
    nar_hash_a    TEXT NOT NULL,
    nar_hash_b    TEXT NOT NULL,
    format        TEXT NOT NULL,
    report_sha256 TEXT NOT NULL,
    size          BIGINT NOT NULL,
    chunks        BIGINT NOT NULL,
    signature     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS diffs_by_path ON diffs (hash_part, output_path, created_at);
CREATE INDEX IF NOT EXISTS diffs_by_builder ON diffs (builder);

CREATE TABLE IF NOT EXISTS diff_chunks (
    diff_id BIGINT NOT NULL REFERENCES diffs (id),
    seq     BIGINT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (diff_id, seq)
);

-- The transparency log (docs/api.md, "Transparency log"). Every attestation stored gets
-- the log's next index (attestations.log_index), in the transaction that stores it:
-- gapless, in acceptance order. Its row is its entry: the server makes the entry's
-- canonical text (docs/formats.md) from the row's fields, so the log costs ingest one
-- index entry per attestation.
-- Unique: a numbering fault fails the insert instead of silently changing an entry.
CREATE UNIQUE INDEX IF NOT EXISTS attestations_by_log_index ON attestations (log_index) WHERE log_index IS NOT NULL;
-- The attestations not in the log yet: none once the server's migration appended those
-- stored before the log existed (every insert numbers its rows), so finding them at
-- each start reads an empty index instead of the whole table.
CREATE INDEX IF NOT EXISTS attestations_unlogged ON attestations (submitted_at) WHERE log_index IS NULL;

-- A purge removes a builder's attestations from every query, but the log cannot forget:
-- the logged ones move here (the same columns), from where their entries are still read.
CREATE TABLE IF NOT EXISTS log_purged (
    log_index    BIGINT PRIMARY KEY,
    builder      TEXT NOT NULL,
    drv_path     TEXT,
    output_name  TEXT,
    output_path  TEXT NOT NULL,
    nar_hash     TEXT NOT NULL,
    nar_size     BIGINT NOT NULL,
    refs         TEXT NOT NULL,
    signature    TEXT NOT NULL,
    submitted_at BIGINT NOT NULL
);

-- Entries as text, written only by the first version of the log (which stored each
-- entry's text beside its row); still read, and preferred over the row, where present.
-- On PostgreSQL appenders also lock this table to take the next indexes one at a time.
CREATE TABLE IF NOT EXISTS log_entries (
    idx  BIGINT PRIMARY KEY,
    leaf TEXT NOT NULL
);

-- The Merkle tree's stored hashes (hex), in the layout of Go's sumdb: for each leaf n
-- the hashes of the complete subtrees it closes. Written by the sequencer; a hash
-- tile is 256 of them. Never changed once written.
CREATE TABLE IF NOT EXISTS log_hashes (
    idx  BIGINT PRIMARY KEY,
    hash TEXT NOT NULL
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), one per tree size the sequencer
-- reached; the largest is served at /log/checkpoint.
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
