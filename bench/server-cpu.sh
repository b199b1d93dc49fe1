#!/usr/bin/env bash
# Server CPU of nhc-bench's 100-output ingest phase (BENCHMARKS.md, "Transparency log:
# ingest"): a release nhc-server on a fresh SQLite database, 100,000 attestations loaded,
# then 200,000 attestations in requests of 100 while `perf stat` counts the server's CPU.
#
#   bench/server-cpu.sh NHC_SERVER NHC_BENCH [--log]
#
# --log sets a log key (scripts/dev-log-key), so that the sequencer runs too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
server=${1:?usage: bench/server-cpu.sh NHC_SERVER NHC_BENCH [--log]} bench=${2:?NHC_BENCH}
command -v perf >/dev/null || { echo "server-cpu.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
tmp=$(mktemp -d /var/tmp/nhc-server-cpu.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=bench-admin-token-0123456789
if [ "${3:-}" = --log ]; then export NHC_LOG_KEY=$(cat "$root/scripts/dev-log-key"); else unset NHC_LOG_KEY; fi
RUST_LOG=warn "$server" --database "sqlite://$tmp/nhc.db" serve --listen "127.0.0.1:$port" --builder-rate 0 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do sleep 0.2; done
b() { "$bench" --addr "127.0.0.1:$port" --server-pid "$pid" "$@"; }
b --seed 1 load --paths 25000 --builders 4 >/dev/null
perf stat -e task-clock -p "$pid" -o "$tmp/stat" &
stat=$!
b --seed 3 ingest --builders 16 --outputs-per-request 100 --attestations 200000 | grep -v '^generating\|^sending'
sleep 2 # the sequencer's last step
kill -INT $stat; wait $stat 2>/dev/null || true
echo "server CPU during the phase: $(awk '/task-clock/ {printf "%.1f s", $1 / 1000}' "$tmp/stat")"
