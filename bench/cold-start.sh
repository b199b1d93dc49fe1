#!/usr/bin/env bash
# Process start to first response, and binary sizes: the Lambda's `bootstrap`
# under cargo-lambda's Runtime API emulator (the function started by hand, so the
# clock starts at exec), next to `nhc-server serve` on SQLite and on PostgreSQL.
# Both answer GET /health, which needs the database. Ten runs each; prints the
# median and the slowest.
#
#   bench/cold-start.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --quiet -p nhc-lambda -p nhc-server
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
tmp=$(mktemp -d)
pg=$(scripts/ensure-postgres)
db="nhc_cold_$$"
emu=
cleanup() {
  [ -n "$emu" ] && kill "$emu" 2>/dev/null
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
psql "$pg" -qc "CREATE DATABASE $db"
url="${pg%/*}/$db"
"$target_dir/release/nhc-server" --database "$url" migrate 2>/dev/null

for bin in bootstrap nhc-server; do
  cp "$target_dir/release/$bin" "$tmp/$bin"
  strip "$tmp/$bin"
  echo "$bin: $(du -k "$target_dir/release/$bin" | cut -f1) KiB, stripped $(du -k "$tmp/$bin" | cut -f1) KiB"
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s%N; }
report() { sort -n | awk -v what="$1" '{a[NR]=$1} END {printf "%s: median %.1f ms, max %.1f ms (%d runs)\n", what, a[int((NR+1)/2)]/1e6, a[NR]/1e6, NR}'; }

port=$(free_port)
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >/dev/null 2>&1 &
emu=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; do sleep 0.2; done
for _ in $(seq 10); do
  t0=$(now)
  env AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" DATABASE_URL="$url" NHC_ADMIN_TOKEN=x RUST_LOG=warn \
    "$tmp/bootstrap" &
  fn=$!
  curl -fsS -o /dev/null "http://127.0.0.1:$port/health"
  echo $(($(now) - t0))
  kill "$fn"
  wait "$fn" 2>/dev/null || true
done | report "Lambda bootstrap, exec to first /health (PostgreSQL, emulator)"

for database in sqlite postgres; do
  for _ in $(seq 10); do
    p=$(free_port)
    [ $database = sqlite ] && d="sqlite://$tmp/cold-$p.db" || d=$url
    t0=$(now)
    NHC_ADMIN_TOKEN=x RUST_LOG=warn "$tmp/nhc-server" --database "$d" serve --listen "127.0.0.1:$p" &
    srv=$!
    until curl -fsS -o /dev/null "http://127.0.0.1:$p/health" 2>/dev/null; do sleep 0.001; done
    echo $(($(now) - t0))
    kill "$srv"
    wait "$srv" 2>/dev/null || true
  done | report "nhc-server serve, exec to first /health ($database, migrate included)"
done
