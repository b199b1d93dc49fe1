#!/usr/bin/env bash
# What sequencing the transparency log costs (BENCHMARKS.md, "Transparency log: ingest"):
# a release nhc-server without a log key stores 300,000 attestations (nhc-bench's load
# and 100-output ingest), then is restarted with a log key and sequences all of them
# from scratch; prints the wall time and the server's CPU until the checkpoint covers
# them all.
#
#   bench/log-sequencer.sh [NHC_SERVER [NHC_BENCH]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  cargo build --release --locked --quiet -p nhc-server -p nhc-bench --manifest-path "$root/Cargo.toml"
  target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  set -- "$target_dir/release/nhc-server" "$target_dir/release/nhc-bench"
fi
server=$1 bench=${2:-$(dirname "$1")/nhc-bench}
tmp=$(mktemp -d /var/tmp/nhc-log-sequencer.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NHC_ADMIN_TOKEN=bench-admin-token-0123456789
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
serve() {
  RUST_LOG=warn "$server" --database "sqlite://$tmp/nhc.db" serve --listen "127.0.0.1:$port" --builder-rate 0 "$@" &
  pid=$!
}
unset NHC_LOG_KEY
serve
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do sleep 0.2; done
"$bench" --addr "127.0.0.1:$port" --server-pid "$pid" --seed 1 load --paths 25000 --builders 4 >/dev/null
"$bench" --addr "127.0.0.1:$port" --server-pid "$pid" --seed 3 ingest --builders 16 --outputs-per-request 100 \
  --attestations 200000 >/dev/null 2>&1
kill $pid; wait $pid 2>/dev/null || true
export NHC_LOG_KEY=$(cat "$root/scripts/dev-log-key")
t0=$(date +%s.%N)
serve
until [ "$(curl -fsS "http://127.0.0.1:$port/log/checkpoint" 2>/dev/null | sed -n 2p)" = 300000 ]; do sleep 0.05; done
t1=$(date +%s.%N)
ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
python3 -c "import os,sys; w=$t1-$t0; c=$ticks/os.sysconf('SC_CLK_TCK'); print(f'sequenced 300,000 entries in {w:.2f} s wall, server CPU {c:.2f} s = {c/300000*1e6:.1f} us per entry')"
