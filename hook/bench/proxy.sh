#!/usr/bin/env bash
# Benchmark of `nhc proxy` (issue 15; figures in BENCHMARKS.md): narinfo decisions per
# second and latency with warm and cold caches (wrk), NAR throughput through the proxy
# against fetching from the upstream directly (curl), and the proxy's RSS before and after.
# Real components: a Nix 2.8 binary cache (compression=none) served by python3 http.server,
# nhc-server (SQLite) with two builders that attested the paths with `nhc submit`.
#
#   CARGO_TARGET_DIR=... cargo build --release -p nhc-hook -p nhc-server
#   hook/bench/proxy.sh [NAR_MIB]        (default 512)
#
# Binaries: $NHC_BIN (default $CARGO_TARGET_DIR/release/nhc), $NHC_SERVER_BIN (default
# $CARGO_TARGET_DIR/release/nhc-server).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-512}
target=${CARGO_TARGET_DIR:-$root/target}
nhc=${NHC_BIN:-$target/release/nhc}
server=${NHC_SERVER_BIN:-$target/release/nhc-server}
T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-proxy-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  chmod -R u+w "$T" 2>/dev/null || true; rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
private_store "$T"
cat >"$T/b.nix" <<NIX
{ nonce }:
let mk = name: script: derivation { inherit name nonce; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" script ]; PATH = "/usr/bin:/bin"; };
in { small = mk "small" "echo small \$nonce > \$out"; big = mk "big" "head -c ${mib}M /dev/urandom > \$out"; }
NIX
nonce=$RANDOM$RANDOM
small=$(nix-build --no-out-link "$T/b.nix" --argstr nonce "$nonce" -A small 2>/dev/null)
big=$(nix-build --no-out-link "$T/b.nix" --argstr nonce "$nonce" -A big 2>/dev/null)
for k in up b1 b2; do nix key generate-secret --key-name "$k-bench-1" >"$T/$k.sec"; nix key convert-secret-to-public <"$T/$k.sec" >"$T/$k.pub"; done
nix store sign --key-file "$T/up.sec" "$small" "$big"
nix copy --to "file://$T/bc?compression=none" "$small" "$big"
cport=$(free_port); sport=$(free_port); pport=$(free_port); qport=$(free_port)
# http.server's listen backlog is 5: under 8 concurrent clients SYNs are dropped and
# retried after 1 s, which measured the kernel, not the proxy. A backlog of 1024 here.
python3 -c 'import functools, http.server as h, sys
h.ThreadingHTTPServer.request_queue_size = 1024
handler = functools.partial(h.SimpleHTTPRequestHandler, directory=sys.argv[2])
h.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()' "$cport" "$T/bc" >/dev/null 2>&1 & pids+=($!)
for b in b1 b2; do NHC_ADMIN_TOKEN=admin "$server" --database "sqlite://$T/s.db" user add "$b" --public-key "$(cat "$T/$b.pub")" >"$T/$b.token" 2>/dev/null; done
NHC_ADMIN_TOKEN=admin "$server" --database "sqlite://$T/s.db" serve --listen "127.0.0.1:$sport" >/dev/null 2>&1 & pids+=($!)
wait_up "http://127.0.0.1:$cport/nix-cache-info"; wait_up "http://127.0.0.1:$sport/health"
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=http://127.0.0.1:$sport HASH_COLLECTION_SPOOL=$T/spool
for b in b1 b2; do HASH_COLLECTION_SECRET_KEY_FILE=$T/$b.sec HASH_COLLECTION_TOKEN_FILE=$T/$b.token "$nhc" submit "$small" "$big" >/dev/null 2>&1; done
proxy() { # PORT ARGS..
  local port=$1; shift
  "$nhc" proxy --upstream "http://127.0.0.1:$cport" --trusted-key "$(cat "$T/b1.pub")" --trusted-key "$(cat "$T/b2.pub")" \
    --quorum 2 --listen "127.0.0.1:$port" "$@" 2>/dev/null & pids+=($!)
  wait_up "http://127.0.0.1:$port/nix-cache-info"
}
proxy "$pport"; warm_pid=${pids[-1]}
proxy "$qport" --positive-ttl 0 --negative-ttl 0
h=$(basename "$small" | cut -c1-32)
curl -fsS "http://127.0.0.1:$pport/$h.narinfo" | grep -c '^Sig:' | grep -qx 3 || { echo "small not served with 3 signatures" >&2; exit 1; }
echo "== narinfo, warm cache (wrk -t2 -c16 -d10s)"
wrk -t2 -c16 -d10s --latency "http://127.0.0.1:$pport/$h.narinfo" | grep -E 'Requests/sec|50%|99%|Non-2xx'
echo "== narinfo, cold (every request decided: upstream narinfo + collection page + 2 signatures; wrk -t2 -c8 -d10s)"
wrk -t2 -c8 -d10s --latency "http://127.0.0.1:$qport/$h.narinfo" | grep -E 'Requests/sec|50%|99%|Non-2xx'
echo "== for comparison: the upstream narinfo alone (python http.server)"
wrk -t2 -c8 -d10s --latency "http://127.0.0.1:$cport/$h.narinfo" | grep -E 'Requests/sec|50%|99%'
nar=$(curl -fsS "http://127.0.0.1:$pport/$(basename "$big" | cut -c1-32).narinfo" | sed -n 's/^URL: //p')
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %s kB  ", $1, $2}' "/proc/$warm_pid/status"; echo; }
echo "== proxy RSS before the NAR: $(rss)"
echo "== NAR of $mib MiB: direct vs through the proxy (MB/s, 3 runs each)"
for _ in 1 2 3; do
  d=$(curl -fsS -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$cport/$nar")
  p=$(curl -fsS -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$pport/$nar")
  echo "direct $((${d%.*} / 1000000)) MB/s   proxy $((${p%.*} / 1000000)) MB/s"
done
echo "== proxy RSS after 3 NARs of $mib MiB: $(rss)"
