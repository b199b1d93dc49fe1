#!/usr/bin/env bash
# Reproduces the server figures of BENCHMARKS.md: starts a release nhc-server on a
# fresh database and drives it with nhc-bench over real HTTP, 16 connections.
#
#   bench/run.sh [sqlite|postgres] [--quick]
#
# Phases, in order, on one database:
#   1. load: 250,000 derivations x 4 builders = 1,000,000 attestations, one
#      derivation per request (as the hook sends them)
#   2. ingest, 1 output per request, 16 builders (200,000 attestations)
#   3. ingest, 100 outputs per request, 16 builders (1,000,000 attestations)
#   4. reads with >= 1,000,000 attestations loaded: /v1/outputs, /v1/derivations,
#      narinfo, 20 s each, with the server's RSS sampled
# --quick divides the sizes by 100 (a smoke test of the script, no figures).
set -euo pipefail

backend=${1:-sqlite}
scale=1
[ "${2:-}" = --quick ] && scale=100
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --quiet -p nhc-server -p nhc-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
server="$target_dir/release/nhc-server"
bench="$target_dir/release/nhc-bench"

tmp=$(mktemp -d /var/tmp/nhc-bench.XXXXXX)
pid=
drop=
pg_admin=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$drop" ] && psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $drop WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

case "$backend" in
  sqlite) db="sqlite://$tmp/nhc.db" ;;
  postgres)
    pg_admin=$(scripts/ensure-postgres)
    drop="nhc_bench_$$"
    psql "$pg_admin" -qc "CREATE DATABASE $drop"
    db="${pg_admin%/*}/$drop"
    ;;
  *) echo "usage: bench/run.sh [sqlite|postgres] [--quick]" >&2; exit 2 ;;
esac

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=bench-admin
# The builders' rate limit (429 past 20 requests/s a token) would measure itself, not the
# server. NHC_LOG_KEY, when set, turns the transparency log's sequencer on (entries are
# appended with the attestations either way).
RUST_LOG=warn "$server" --database "$db" serve --listen "127.0.0.1:$port" --builder-rate 0 &
pid=$!
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.2; done

b() { "$bench" --addr "127.0.0.1:$port" --server-pid "$pid" "$@"; }
echo "## nhc-server on $backend ($(nproc) cores, $(date -u +%F))"
echo "### 1. load"
b --seed 1 load --paths $((250000 / scale)) --builders 4
echo "### 2. ingest, 1 output per request"
b --seed 2 ingest --builders 16 --outputs-per-request 1 --attestations $((200000 / scale))
echo "### 3. ingest, 100 outputs per request"
b --seed 3 ingest --builders 16 --outputs-per-request 100 --attestations $((1000000 / scale))
if [ "$backend" = postgres ]; then
  # As autovacuum would within minutes of such a load: plans need statistics.
  psql "$db" -qc ANALYZE
fi
seconds=$((scale == 1 ? 20 : 2))
for kind in outputs derivations narinfo; do
  echo "### 4. read $kind"
  b --seed 1 read --paths $((250000 / scale)) --kind "$kind" --seconds "$seconds"
done
if [ "$backend" = sqlite ]; then
  echo "database file: $(du -sh "$tmp" | cut -f1)"
fi
