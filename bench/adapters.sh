#!/usr/bin/env bash
# Latency and throughput of each deployment on this machine, side by side:
# submissions (one derivation with one output per request, signed, as the hook
# sends them) and lookups (GET /v1/outputs/...), at 1 and 8 connections.
#
#   bench/adapters.sh [server|worker|lambda ...]     (default: all three)
#
# Each deployment runs through its dev script with release builds: the tokio
# server on SQLite, the Worker in workerd with a local D1, the Lambda under
# cargo-lambda's emulator on PostgreSQL (which adds its own HTTP hop and runs one
# invocation at a time, like one Lambda instance).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --quiet -p nhc-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench="$target_dir/release/nhc-bench"
export NHC_ADMIN_TOKEN=bench-admin NHC_CARGO_PROFILE=release

run() {
  local name=$1 script=$2 port log pid
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp)
  setsid "$script" "$port" >"$log" 2>&1 &
  pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; return 1; }
    sleep 0.5
  done
  echo "### $name"
  for c in 1 8; do
    seed=$((RANDOM * 100 + c))
    echo "submit, $c connection(s): $("$bench" --addr "127.0.0.1:$port" --connections $c --seed $seed load --paths 500 --builders 4 | sed 's/^load of [0-9]* attestations, 1 per request: //')"
    echo "lookup, $c connection(s): $("$bench" --addr "127.0.0.1:$port" --connections $c --seed $seed read --paths 500 --kind outputs --seconds 10 | sed 's/^read: //')"
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}

for d in "${@:-server worker lambda}"; do
  for one in $d; do
    case $one in
      server) run "nhc-server (tokio, SQLite)" adapters/server/dev.sh ;;
      worker) run "Cloudflare Worker (workerd, local D1)" adapters/worker/dev.sh ;;
      lambda) DATABASE_URL=$(scripts/ensure-postgres) run "AWS Lambda (cargo lambda watch, PostgreSQL)" adapters/lambda/dev.sh ;;
      *) echo "unknown deployment $one" >&2; exit 2 ;;
    esac
  done
done
