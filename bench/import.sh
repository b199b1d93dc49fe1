#!/usr/bin/env bash
# The `nhc import` benchmark of BENCHMARKS.md (issue 14: >= 2,000 narinfo/s end to end,
# < 50 MB RSS for 100,000 paths): a binary cache of N narinfo signed by one key
# (nhc-bench narinfo-cache, served from memory over HTTP/1.1 on 127.0.0.1, and the same
# directory as a file:// cache), a release nhc-server on a fresh SQLite database with a
# builder registered with that key, and a release `nhc import --cache URL --paths-from`
# under /usr/bin/time -v (wall time, peak RSS). Each import is fetch, parse, verify,
# batch and submit; the server verifies every signature again and stores them.
#
#   bench/import.sh [N] [RUNS]      (defaults: 100000 paths, 3 runs of each kind)
#
# Kinds: http (fresh database), http-rerun (all duplicates), file (fresh database).
# Prints one line per run and the best of each kind.
set -euo pipefail
n=${1:-100000}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Two builds, as the client and server ship: one build of all three unifies features
# (nhc-bench's hyper server) and would compile them differently.
cargo build --release --locked --quiet -p nhc-server -p nhc-hook
cargo build --release --locked --quiet -p nhc-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rel=$target_dir/release

T=$(mktemp -d /var/tmp/nhc-import-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }

echo "generating $n signed narinfo..." >&2
"$rel/nhc-bench" --seed 1 narinfo-cache --dir "$T/cache" --paths "$n"
cport=$(free_port)
"$rel/nhc-bench" narinfo-cache --dir "$T/cache" --listen "127.0.0.1:$cport" >"$T/cache.log" 2>&1 & pids+=($!)
wait_up "http://127.0.0.1:$cport/nix-cache-info"

server_pid=
start_server() { # fresh database; sets URL and the token file
  if [ -n "$server_pid" ]; then kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
  rm -f "$T"/nhc.db*
  "$rel/nhc-server" --database "sqlite://$T/nhc.db" user add bench --public-key "$(cat "$T/cache/key.pub")" >"$T/token" 2>/dev/null
  local port; port=$(free_port)
  "$rel/nhc-server" --database "sqlite://$T/nhc.db" serve --listen "127.0.0.1:$port" >"$T/server.log" 2>&1 &
  server_pid=$!; pids+=("$server_pid")
  URL=http://127.0.0.1:$port
  wait_up "$URL/health"
}

import() { # kind cache-url -> one result line
  local kind=$1 cache=$2
  HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$URL HASH_COLLECTION_TOKEN_FILE=$T/token \
    /usr/bin/time -v -o "$T/time" "$rel/nhc" import --cache "$cache" --paths-from "$T/cache/paths.txt" >"$T/out" 2>"$T/err" ||
    { cat "$T/err" "$T/out" >&2; echo "import failed" >&2; exit 1; }
  local wall rss
  wall=$(python3 - "$T/time" <<'PY'
import sys
for l in open(sys.argv[1]):
    if "Elapsed (wall clock)" in l:
        t = l.rsplit(" ", 1)[1].strip().split(":")
        s = 0.0
        for x in t: s = s * 60 + float(x)
        print(s)
PY
)
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$T/time")
  printf '%-11s %7d paths %7.2f s %7.0f paths/s  max RSS %5.1f MB  (%s)\n' "$kind" "$n" "$wall" \
    "$(python3 -c "print($n / $wall)")" "$(python3 -c "print($rss / 1024)")" "$(cat "$T/out")" | tee -a "$T/results"
}

for r in $(seq "$runs"); do
  start_server; import http "http://127.0.0.1:$cport"
  import http-rerun "http://127.0.0.1:$cport"
  start_server; import file "file://$T/cache"
done
echo "best of $runs:"
for k in http http-rerun file; do
  awk -v k="$k" '$1 == k' "$T/results" | sort -k6 -n -r | head -1
done
