#!/usr/bin/env bash
# The transparency log's cost on ingest (BENCHMARKS.md, "Transparency log: ingest"):
# a release nhc-server on a fresh SQLite database, 100,000 attestations loaded, then
# nhc-bench's two ingest phases at a fifth of bench/run.sh's sizes (40,000 one-output
# and 200,000 hundred-output attestations, 16 builders).
#
#   bench/log-ingest.sh [NHC_SERVER [NHC_BENCH]] [--log]
#
# The binaries default to this checkout's release build (built when missing); pass an
# older build's to compare. --log sets a log key (scripts/dev-log-key), so that the
# sequencer runs too; entries are appended with the attestations either way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
args=() withlog=no
for a in "$@"; do [ "$a" = --log ] && withlog=yes || args+=("$a"); done
if [ ${#args[@]} -eq 0 ]; then
  cargo build --release --locked --quiet -p nhc-server -p nhc-bench --manifest-path "$root/Cargo.toml"
  target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  args=("$target_dir/release/nhc-server" "$target_dir/release/nhc-bench")
fi
server=${args[0]} bench=${args[1]:-$(dirname "${args[0]}")/nhc-bench}
tmp=$(mktemp -d /var/tmp/nhc-log-ingest.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=bench-admin-token-0123456789
if [ "$withlog" = yes ]; then export NHC_LOG_KEY=$(cat "$root/scripts/dev-log-key"); else unset NHC_LOG_KEY; fi
# The builders' rate limit off: it would measure itself.
RUST_LOG=warn "$server" --database "sqlite://$tmp/nhc.db" serve --listen "127.0.0.1:$port" --builder-rate 0 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do sleep 0.2; done
b() { "$bench" --addr "127.0.0.1:$port" --server-pid "$pid" "$@"; }
echo "## $server on SQLite, log key: $withlog ($(nproc) cores, $(date -u +%F))"
b --seed 1 load --paths 25000 --builders 4
b --seed 2 ingest --builders 16 --outputs-per-request 1 --attestations 40000
b --seed 3 ingest --builders 16 --outputs-per-request 100 --attestations 200000
if [ "$withlog" = yes ]; then
  sleep 3
  echo "checkpoint size after 3 s: $(curl -fsS "http://127.0.0.1:$port/log/checkpoint" | sed -n 2p)"
fi
