#!/usr/bin/env bash
# Compares builds of nhc-hook on the same machine at the same time: the instructions
# one run executes (valgrind --tool=callgrind; unlike wall time, this does not move
# with the load of a shared machine) and the wall time (hyperfine, all builds in one
# run, so they share the machine's state). Each argument is a directory holding
# nhc-hook and nhc (default: this checkout's release build).
#
#   hook/bench/compare.sh [BIN_DIR...]
#
# Scenarios, each for a small output of a fresh derivation in a private store (tmpfs):
#   spooled    the server refuses connections: the request goes to the spool
#   sent       nhc-server (release, SQLite) on localhost stores it (first submission)
#   duplicate  the same request again: the server answers "duplicate"
#
# Needs valgrind, hyperfine, nix (2.8), python3, curl, cargo. Prints Markdown tables.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
log() { printf '==> compare: %s\n' "$*" >&2; }
for tool in valgrind hyperfine nix-store nix-instantiate python3 curl cargo; do
  command -v "$tool" >/dev/null || { echo "compare: $tool is not installed" >&2; exit 1; }
done
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ $# = 0 ]; then
  log "release build of nhc-hook and nhc-server"
  cargo build --quiet --release --locked -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
  set -- "$target_dir/release"
fi
server_bin=$target_dir/release/nhc-server
[ -x "$server_bin" ] || cargo build --quiet --release --locked -p nhc-server --manifest-path "$root/Cargo.toml"

W=$(mktemp -d /dev/shm/nhc-instr.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  chmod -R u+w "$W" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
private_store "$W"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
first=$1
"$first/nhc" keygen instr-1 --secret-file "$W/key.sec" --public-file "$W/key.pub"
export HASH_COLLECTION_SERVER=http://127.0.0.1:$port HASH_COLLECTION_TOKEN_FILE=$W/token \
  HASH_COLLECTION_SECRET_KEY_FILE=$W/key.sec HASH_COLLECTION_SPOOL=$W/spool HASH_COLLECTION_CONFIG=/dev/null OUT_PATHS=
spooled() { find "$W/spool" -maxdepth 1 -name '*.json' 2>/dev/null | wc -l; }
# instructions BIN: the instructions of one run of BIN/nhc-hook (DRV_PATH from the environment)
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1/nhc-hook" 2>&1 >/dev/null |
    awk '/Collected :/ {print $NF}'
}
start_server() {
  "$server_bin" --database "sqlite://$W/server.db" serve --listen "127.0.0.1:$port" >"$W/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "compare: nhc-server did not start" >&2
  exit 1
}

echo "Instructions of one nhc-hook run (callgrind):"
echo
echo "| nhc-hook build | spooled (server down) | sent (new attestation) | duplicate |"
echo "|---|---|---|---|"
for bin in "$@"; do
  log "$bin/nhc-hook"
  rm -rf "$W/spool" "$W/server.db"*
  DRV_PATH=$(fresh_drv "$W") && export DRV_PATH
  down=$(instructions "$bin")
  [ "$(spooled)" = 1 ] || { echo "compare: $bin/nhc-hook did not spool" >&2; exit 1; }
  start_server
  "$server_bin" --database "sqlite://$W/server.db" builder add instr --public-key "$(cat "$W/key.pub")" >"$W/token" 2>/dev/null
  DRV_PATH=$(fresh_drv "$W") && export DRV_PATH
  sent=$(instructions "$bin")
  dup=$(instructions "$bin")
  [ "$(spooled)" = 1 ] || { echo "compare: $bin/nhc-hook spooled with the server up" >&2; exit 1; }
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  printf '| `%s` | %s | %s | %s |\n' "$bin/nhc-hook" "$down" "$sent" "$dup"
done

# Wall time: every build in one hyperfine run per scenario (the server's database
# already holds the attestation, so "up" is the duplicate case).
runs=${NHC_COMPARE_RUNS:-30}
cmds=()
for bin in "$@"; do cmds+=("$bin/nhc-hook"); done
start_server
log "wall time, server up (duplicate)"
hyperfine --style basic -N --warmup 3 --runs "$runs" --export-json "$W/up.json" "${cmds[@]}" >&2
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
log "wall time, server down (spooled)"
hyperfine --style basic -N --warmup 3 --runs "$runs" --export-json "$W/down.json" "${cmds[@]}" >&2
echo
echo "Wall time of one nhc-hook run (hyperfine -N, $runs runs; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end):"
echo
echo "| nhc-hook build | server up (duplicate) | server down (spooled) |"
echo "|---|---|---|"
python3 - "$W/up.json" "$W/down.json" <<'PY'
import json, sys
up, down = (json.load(open(f))["results"] for f in sys.argv[1:])
for u, d in zip(up, down):
    ms = lambda r: f"{r['mean'] * 1000:.1f} ± {(r['stddev'] or 0) * 1000:.1f} ms (median {r['median'] * 1000:.1f})"
    print(f"| `{u['command']}` | {ms(u)} | {ms(d)} |")
PY
