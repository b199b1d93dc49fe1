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
