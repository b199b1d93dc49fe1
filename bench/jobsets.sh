#!/usr/bin/env bash
# The jobset figures of BENCHMARKS.md ("Jobsets and evaluations", issue 12): a
# release nhc-server on a database holding 2,000,000 attestations (500,000 paths x 4
# builders, written directly with SQL, as for the bulk-status figures), then
# bench/jobsets.py: 100 uploads of 20,000 paths, summaries, pages, history, diffs,
# suggest, and an evaluation of 250,000 paths.
#
#   bench/jobsets.sh [sqlite|postgres]
set -euo pipefail

backend=${1:-sqlite}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --quiet -p nhc-server
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
server="$target_dir/release/nhc-server"

tmp=$(mktemp -d /var/tmp/nhc-jobsets-bench.XXXXXX)
pid=
drop=
pg_admin=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$drop" ] && psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $drop WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# 500,000 paths x builder0..3; builder3 differs on every 10th path.
preload="INSERT INTO builders (name, created_at) VALUES ('builder0', 0), ('builder1', 0), ('builder2', 0), ('builder3', 0);"
case "$backend" in
  sqlite)
    db="sqlite://$tmp/nhc.db"
    sqlite3 "$tmp/nhc.db" <schema.sql
    sqlite3 "$tmp/nhc.db" "PRAGMA journal_mode=WAL; BEGIN; $preload WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 499999), b(k) AS (VALUES (0),(1),(2),(3)) INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, drv_path, output_name, submitted_at) SELECT printf('%032d', i), '/nix/store/' || printf('%032d', i) || '-pkg', 'builder' || k, 'sha256:' || printf('%052d', i + (CASE WHEN k = 3 AND i % 10 = 0 THEN 1 ELSE 0 END)), 1000, '', 'sig', NULL, NULL, 1700000000 + i FROM n, b ORDER BY 1, 2, 3; COMMIT;" >/dev/null
    invalidate="sqlite3 $tmp/nhc.db 'PRAGMA busy_timeout=10000; UPDATE evaluations SET summary_at = -summary_at WHERE summary_at > 0'"
    ;;
  postgres)
    pg_admin=$(scripts/ensure-postgres)
    drop="nhc_jobsets_bench_$$"
    psql "$pg_admin" -qc "CREATE DATABASE $drop"
    db="${pg_admin%/*}/$drop"
    psql "$db" -q -v ON_ERROR_STOP=1 <schema.sql
    psql "$db" -q -v ON_ERROR_STOP=1 -c "$preload INSERT INTO attestations (hash_part, output_path, builder, nar_hash, nar_size, refs, signature, drv_path, output_name, submitted_at) SELECT lpad(i::text, 32, '0'), '/nix/store/' || lpad(i::text, 32, '0') || '-pkg', 'builder' || k, 'sha256:' || lpad((i + CASE WHEN k = 3 AND i % 10 = 0 THEN 1 ELSE 0 END)::text, 52, '0'), 1000, '', 'sig', NULL, NULL, 1700000000 + i FROM generate_series(0, 499999) AS i, generate_series(0, 3) AS k; ANALYZE;"
    invalidate="psql '$db' -qc 'UPDATE evaluations SET summary_at = -summary_at WHERE summary_at > 0'"
    ;;
  *) echo "usage: bench/jobsets.sh [sqlite|postgres]" >&2; exit 2 ;;
esac

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=bench-admin
# No background refresh: the figures are of the requests alone.
RUST_LOG=warn "$server" --database "$db" serve --listen "127.0.0.1:$port" --summary-refresh-secs 0 &
pid=$!
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.2; done
echo "## jobsets on $backend ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ))"
python3 bench/jobsets.py "127.0.0.1:$port" "$NHC_ADMIN_TOKEN" "$invalidate"
if [ "$backend" = sqlite ]; then
  echo "database: $(du -h "$tmp/nhc.db" | cut -f1); store_paths $(sqlite3 "$tmp/nhc.db" 'SELECT count(*) FROM store_paths'), evaluation_items $(sqlite3 "$tmp/nhc.db" 'SELECT count(*) FROM evaluation_items')"
fi
