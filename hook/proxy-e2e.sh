#!/usr/bin/env bash
# End to end for `nhc proxy` (issue 15) with real components only: real Nix 2.8 builds
# paths in an "upstream" private store, signs them with the upstream's key and copies them
# to a file:// binary cache served over HTTP; a second builder rebuilds some of them in its
# own store (one derivation is not reproducible, so its hash differs); nhc-server (SQLite)
# collects the builders' attestations, sent with `nhc submit`; `nhc proxy` sits in front of
# the cache, and real Nix, with a fresh private store whose only substituter is the proxy
# and whose trusted-public-keys are the builders' keys only (not the upstream's),
# substitutes through it.
#
#   good      b1 and b2 attested the upstream's hash      quorum 2: substituted
#   one       only b1                                     quorum 2: refused; quorum 1: substituted
#   mismatch  b1 the upstream's hash, b2 another           refused (--on-mismatch allow + quorum 1: substituted)
#   forged    only mallory, a key not in --trusted-key    refused at any quorum
#   --dry-run serves all four; the collection down refuses (404, Nix builds instead).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '\n==> proxy-e2e: %s\n' "$*" >&2; }
fail() { printf 'proxy-e2e: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '    ok: %s\n' "$*" >&2; }

step "build nhc and nhc-server"
cargo build --quiet -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/debug

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-proxy-e2e.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  chmod -R u+w "$T" 2>/dev/null || true
  [ "${NHC_E2E_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
  [ $rc = 0 ] && echo "proxy-e2e: all checks passed" >&2 || echo "proxy-e2e: FAILED (exit $rc)" >&2
  exit $rc
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; fail "$1 did not come up"; }

# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
# A private store in DIR, extra nix.conf lines after it; narinfo answers never remembered.
use_store() {
  private_store "$1"
  export NIX_CONFIG="$NIX_CONFIG
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
${2:-}"
}

cat >"$T/drvs.nix" <<'NIX'
{ nonce }:
let
  mk = name: script: derivation { inherit name nonce; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ]; PATH = "/usr/bin:/bin"; };
  base = mk "base" "echo base $nonce > $out";
in {
  # References another path: the fingerprint covers references too.
  good = mk "good" "echo ${base} $nonce > $out";
  one = mk "one" "echo one $nonce > $out";
  # Not reproducible: every build writes other bytes.
  mismatch = mk "mismatch" "echo mismatch $nonce $(od -An -N16 -tx1 /dev/urandom) > $out";
  forged = mk "forged" "echo forged $nonce > $out";
}
NIX
nonce="$RANDOM$RANDOM$RANDOM"
build() { nix-build --no-out-link "$T/drvs.nix" --argstr nonce "$nonce" -A "$1" 2>/dev/null; }

step "the upstream: real Nix builds 4 paths (and a dependency), signs them, copies them to a binary cache"
use_store "$T/up"
good=$(build good); one=$(build one); mismatch=$(build mismatch); forged=$(build forged)
base=$(nix-store -q --references "$good")
for k in upstream b1 b2 b3 mallory; do
  nix key generate-secret --key-name "$k-e2e-1" >"$T/$k.sec"
  nix key convert-secret-to-public <"$T/$k.sec" >"$T/$k.pub"
done
nix store sign --key-file "$T/upstream.sec" "$good" "$one" "$mismatch" "$forged" "$base"
nix copy --to "file://$T/bc" "$good" "$one" "$mismatch" "$forged"
declare -A uphash
for p in "$good" "$one" "$mismatch" "$forged" "$base"; do uphash[$p]=$(nix-store -q --hash "$p"); done
ok "cache at $T/bc: $(ls "$T/bc"/*.narinfo | wc -l) narinfo"

step "the collection: nhc-server with builders b1, b2, b3 and mallory"
cport=$(free_port); sport=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$cport" --directory "$T/bc" >"$T/http.log" 2>&1 & pids+=($!)
for b in b1 b2 b3 mallory; do
  NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/server.db" user add "$b" --public-key "$(cat "$T/$b.pub")" >"$T/$b.token" 2>/dev/null
done
NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/server.db" serve --listen "127.0.0.1:$sport" >"$T/server.log" 2>&1 & server_pid=$!; pids+=($server_pid)
URL=http://127.0.0.1:$sport UP=http://127.0.0.1:$cport
wait_up "$UP/nix-cache-info"; wait_up "$URL/health"
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$URL HASH_COLLECTION_SPOOL=$T/spool
submit() { # BUILDER PATH.. (from the store NIX_CONFIG names)
  local b=$1; shift
  HASH_COLLECTION_SECRET_KEY_FILE=$T/$b.sec HASH_COLLECTION_TOKEN_FILE=$T/$b.token "$bin/nhc" submit "$@" >"$T/submit.out" 2>&1 ||
    { cat "$T/submit.out" >&2; fail "nhc submit as $b"; }
}
# b1 built in the upstream's store (same bytes); b2 rebuilds in its own store.
submit b1 "$good" "$base" "$one" "$mismatch"
use_store "$T/b2"
[ "$(build good)" = "$good" ] && [ "$(build mismatch)" = "$mismatch" ] || fail "b2 built other paths"
[ "$(nix-store -q --hash "$good")" = "${uphash[$good]}" ] || fail "good did not reproduce"
[ "$(nix-store -q --hash "$mismatch")" != "${uphash[$mismatch]}" ] || fail "mismatch reproduced"
submit b2 "$good" "$base" "$mismatch"
use_store "$T/up"
submit mallory "$forged"
for p in "$good" "$one" "$mismatch" "$forged"; do
  printf '    %s: %s\n' "$(basename "$p")" "$(curl -fsS "$URL/v1/outputs/$(basename "$p")" | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["status"], [(a["builder"], a["nar_hash"][:15]) for a in o["attestations"]])')" >&2
done

pport=$(free_port)
start_proxy() { # ARGS.. : nhc proxy in front of the cache, on a fresh port
  [ -n "${proxy_pid:-}" ] && { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }
  pport=$(free_port)
  "$bin/nhc" proxy --upstream "$UP" --collection "$URL" \
    --trusted-key "$(cat "$T/b1.pub")" --trusted-key "$(cat "$T/b2.pub")" --trusted-key "$(cat "$T/b3.pub")" \
    --listen "127.0.0.1:$pport" "$@" >>"$T/proxy.log" 2>&1 & proxy_pid=$!; pids+=($proxy_pid)
  wait_up "http://127.0.0.1:$pport/nix-cache-info"
}
n=0
# Realises PATH.. into a fresh store whose only substituter is the proxy and whose only
# trusted keys are the builders'. Sets `got` to the names of the paths that were
# substituted (not in a subshell: the store counter must advance).
substitute() {
  n=$((n + 1))
  got=$(substitute_into "$@" | tr '\n' ' ')
}
substitute_into() {
  use_store "$T/client$n" "substituters = http://127.0.0.1:$pport
trusted-public-keys = $(cat "$T/b1.pub") $(cat "$T/b2.pub") $(cat "$T/b3.pub") ${extra_keys:-}"
  for p in "$@"; do
    if nix-store --realise "$p" >/dev/null 2>>"$T/client$n.err"; then
      [ "$(nix-store -q --hash "$p")" = "${uphash[$p]}" ] || fail "$p substituted with another hash"
      basename "$p" | cut -d- -f2
    fi
  done
}
expect() { # WHAT WANT GOT
  [ "$2" = "$3" ] || { tail -20 "$T/proxy.log" >&2; fail "$1: substituted [$3], expected [$2]"; }
  ok "$1: substituted [$3]"
}

step "quorum 2: only the path two trusted builders reproduced is substituted (with its dependency)"
start_proxy --quorum 2
substitute "$good" "$one" "$mismatch" "$forged"
expect "quorum 2" "good " "$got"
grep -q "serve $good: 2 of quorum 2 agreed" "$T/proxy.log" || fail "no log line for good"
grep -q "refuse $one: 1 of quorum 2" "$T/proxy.log" || fail "no log line for one"
grep -q "refuse $mismatch: .*mismatched \[b2-e2e-1 (b2)\]" "$T/proxy.log" || fail "no log line for mismatch"
grep -q "refuse $forged: 0 of quorum 2 agreed \[-\]; mismatched \[-\]; ignored 1" "$T/proxy.log" || fail "no log line for forged"
ok "log: $(grep -c '^nhc proxy: \(serve\|refuse\) ' "$T/proxy.log") decision lines, e.g. $(grep "serve $good" "$T/proxy.log" | head -1)"
curl -fsS "http://127.0.0.1:$pport/status" | grep -q "$(basename "$good")" || fail "status page"
ok "the status page lists the decisions"

step "a refused path is built by Nix instead (nix-build through the proxy)"
n=$((n + 1)); use_store "$T/client$n" "substituters = http://127.0.0.1:$pport
trusted-public-keys = $(cat "$T/b1.pub") $(cat "$T/b2.pub") $(cat "$T/b3.pub")"
[ "$(nix-build --no-out-link "$T/drvs.nix" --argstr nonce "$nonce" -A mismatch 2>"$T/build.err")" = "$mismatch" ] || fail "nix-build"
grep -q "building '.*mismatch.drv'" "$T/build.err" || { cat "$T/build.err" >&2; fail "mismatch was not built locally"; }
[ "$(nix-store -q --hash "$mismatch")" != "${uphash[$mismatch]}" ] || fail "built bytes equal the upstream's?"
ok "built locally (its own bytes), not substituted"

step "quorum 1: one more path; the trusted mismatch and the forged attestation still refused"
start_proxy --quorum 1
substitute "$good" "$one" "$mismatch" "$forged"
expect "quorum 1" "good one " "$got"

step "quorum 1 --on-mismatch allow: the path with a disagreeing trusted builder is served"
start_proxy --quorum 1 --on-mismatch allow
substitute "$good" "$one" "$mismatch" "$forged"
expect "allow" "good one mismatch " "$got"

step "quorum 3 --dry-run: everything served (to a client that also trusts the upstream's key), what would be refused logged"
start_proxy --quorum 3 --dry-run
extra_keys=$(cat "$T/upstream.pub")
substitute "$good" "$one" "$mismatch" "$forged"
expect "dry run" "good one mismatch forged " "$got"
extra_keys=
grep -q "^nhc proxy: refuse $good: 2 of quorum 3 agreed.*dry run: served anyway" "$T/proxy.log" || fail "dry-run log"
ok "$(grep "dry run" "$T/proxy.log" | head -1)"

step "the collection goes down: refused (404, never hangs); --on-collection-error pass serves"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
start_proxy --quorum 1
s0=$(date +%s)
substitute "$good"
expect "collection down" "" "$got"
[ $(( $(date +%s) - s0 )) -lt 30 ] || fail "took too long"
grep -q "refuse (collection down) $good" "$T/proxy.log" || fail "collection-down log"
start_proxy --quorum 1 --on-collection-error pass
# Passed through unchanged: only the upstream's signature, so Nix must trust the upstream's key.
substitute "$good"
expect "collection down, pass, builders' keys" "" "$got"
n=$((n + 1)); use_store "$T/client$n" "substituters = http://127.0.0.1:$pport
trusted-public-keys = $(cat "$T/upstream.pub")"
nix-store --realise "$good" >/dev/null 2>&1 || fail "pass-through with the upstream's key"
ok "collection down, pass, upstream's key: substituted"

step "the upstream goes down: 503"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$pport/$(basename "$one" | cut -c1-32).narinfo")
[ "$code" = 503 ] || fail "upstream down: HTTP $code"
ok "HTTP $code"
