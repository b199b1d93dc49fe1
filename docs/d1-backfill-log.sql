-- Appends the attestations stored before the transparency log existed (no log_index) to
-- the log's end, oldest first. nhc-server runs the same statement when it migrates; on D1
-- run it once after applying schema.sql (docs/deployments.md, "Upgrading"). Running it
-- again changes nothing. Test: adapters/sql/src/statements.rs checks it is the server's.
UPDATE attestations SET log_index = b.base + r.n - 1
FROM (SELECT rowid AS id,
             ROW_NUMBER() OVER (ORDER BY submitted_at, hash_part, output_path, builder, nar_hash) AS n
      FROM attestations WHERE log_index IS NULL) AS r,
     (SELECT COALESCE(MAX(m), -1) + 1 AS base FROM (SELECT MAX(log_index) AS m FROM attestations WHERE log_index IS NOT NULL
         UNION ALL SELECT MAX(log_index) FROM log_purged UNION ALL SELECT MAX(idx) FROM log_entries)) AS b
WHERE attestations.rowid = r.id
