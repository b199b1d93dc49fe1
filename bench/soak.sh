#!/usr/bin/env bash
# The soak of BENCHMARKS.md: starts nhc-server on a fresh SQLite database, with the
# file-descriptor limit of a systemd service (1024), and runs `nhc-bench soak`
# against it on 127.0.0.1: mixed well-behaved and hostile load, /health latency and
# RSS sampled throughout. Exits 1 when a bound is crossed (see nhc-bench soak --help).
#
#   bench/soak.sh [--seconds N] [more nhc-bench soak flags]
#
# NHC_SERVER_BIN  the server to test (default: a release build of this tree), so a
#                 binary of another branch can be soaked with this driver.
# NHC_BENCH_BIN   the driver (default: a release build of this tree).
# NHC_SOAK_DATABASE  a database URL instead of the fresh SQLite file.
# NHC_SOAK_NOFILE    the server's file-descriptor limit (default 1024).
# NHC_SOAK_SEED      the dataset's seed (default 1).
# NHC_SOAK_BUILDER_RATE  the server's --builder-rate (default 0: off, for the preload).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ -z "${NHC_SERVER_BIN:-}" ] || [ -z "${NHC_BENCH_BIN:-}" ]; then
  cargo build --release --locked --quiet -p nhc-server -p nhc-bench
fi
server=${NHC_SERVER_BIN:-$target_dir/release/nhc-server}
bench=${NHC_BENCH_BIN:-$target_dir/release/nhc-bench}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nhc-soak.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

db=${NHC_SOAK_DATABASE:-sqlite://$tmp/nhc.db}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=soak-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
(
  ulimit -n "${NHC_SOAK_NOFILE:-1024}"
  # The preload sends as fast as it can from 4 builders: without the per-builder rate
  # limit (NHC_SOAK_BUILDER_RATE, default 0 = off), it would measure the 429s.
  exec env RUST_LOG=warn "$server" --database "$db" serve --listen "127.0.0.1:$port" \
    --builder-rate "${NHC_SOAK_BUILDER_RATE:-0}"
) >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
echo "soak: $server (pid $pid, fd limit ${NHC_SOAK_NOFILE:-1024}) on ${db%%\?*}" >&2
status=0
"$bench" --addr "127.0.0.1:$port" --server-pid "$pid" --seed "${NHC_SOAK_SEED:-1}" soak "$@" || status=$?
if [ $status -ne 0 ]; then
  echo "soak: the server's log (last 30 lines, $(wc -l <"$tmp/server.log") in all):" >&2
  tail -n 30 "$tmp/server.log" >&2
fi
exit $status
