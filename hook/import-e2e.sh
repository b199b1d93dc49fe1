#!/usr/bin/env bash
# End to end for `nhc import --cache` (issue 14) with real components: real Nix 2.8 builds
# paths in a private store, signs them with a test key and copies them to a file:// binary
# cache; a few narinfo are broken by hand; the cache is served over HTTP on 127.0.0.1;
# nhc-server (SQLite) has a builder registered with the cache's key. Imports from http://
# and file://, checks the attestations against what Nix recorded and with `nix store verify`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '\n==> import-e2e: %s\n' "$*" >&2; }
fail() { printf 'import-e2e: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '    ok: %s\n' "$*" >&2; }

step "build nhc and nhc-server"
cargo build --quiet -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/debug

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-import-e2e.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  # `|| true`: under set -e a killed child's status (143) from `wait` would end the trap.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  chmod -R u+w "$T" 2>/dev/null || true
  [ "${NHC_E2E_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
  [ $rc = 0 ] && echo "import-e2e: all checks passed" >&2 || echo "import-e2e: FAILED (exit $rc)" >&2
  exit $rc
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; fail "$1 did not come up"; }

# The private store (sandbox on, configured only through the environment) of the benchmarks.
# The jobset part at the end needs the server's jobset routes (issue 12) and nhc jobset.
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
private_store "$T"
mkdir -p "$T/bc"
# Every lookup reads the cache as it is now, not Nix's memory of an earlier answer.
export NIX_CONFIG="$NIX_CONFIG
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0"

step "real Nix builds 7 paths (one referring to another), signs them, copies them to file://$T/bc"
cat >"$T/drvs.nix" <<'NIX'
{ nonce }:
let
  mk = name: script: derivation { inherit name nonce; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ]; PATH = "/usr/bin:/bin"; };
  base = mk "base" "echo base $nonce > $out";
in [ base (mk "user" "echo ${base} > $out") ] ++ map (n: mk "p${toString n}" "echo ${toString n} $nonce > $out") [ 1 2 3 4 5 ]
NIX
mapfile -t paths < <(nix-build --no-out-link "$T/drvs.nix" --argstr nonce "$RANDOM$RANDOM" 2>/dev/null)
[ ${#paths[@]} = 7 ] || fail "expected 7 paths, got ${#paths[@]}"
nix key generate-secret --key-name import-e2e-1 >"$T/cache.sec"
nix key convert-secret-to-public <"$T/cache.sec" >"$T/cache.pub"
nix key generate-secret --key-name other-1 >"$T/other.sec"
nix store sign --key-file "$T/cache.sec" "${paths[@]}"
nix copy --to "file://$T/bc" "${paths[@]}"
ok "cache at $T/bc: $(ls "$T/bc"/*.narinfo | wc -l) narinfo"

h() { basename "$1" | cut -c1-32; }
good=("${paths[@]:0:2}")
edited=${paths[2]}; nosig=${paths[3]}; othersig=${paths[4]}; truncated=${paths[5]}; missing=${paths[6]}
# Another NarHash: its first nix32 digit changed (to 1 when it is 0, else to 0), never the same.
sed -i -e 's/^NarHash: sha256:0/NarHash: sha256:#/' -e 's/^NarHash: sha256:[^#]/NarHash: sha256:0/' \
  -e 's/^NarHash: sha256:#/NarHash: sha256:1/' "$T/bc/$(h "$edited").narinfo"
sed -i '/^Sig:/d' "$T/bc/$(h "$nosig").narinfo"
# Signed by another key: sign in the store with it, copy again into a second dir, take that narinfo without our Sig.
nix store sign --key-file "$T/other.sec" "$othersig"
grep -v '^Sig: import-e2e-1:' "$T/bc/$(h "$othersig").narinfo" >"$T/x"; nix path-info --sigs "$othersig" | grep -o 'other-1:[^ ]*' | sed 's/^/Sig: /' >>"$T/x"; mv "$T/x" "$T/bc/$(h "$othersig").narinfo"
head -c 60 "$T/bc/$(h "$truncated").narinfo" >"$T/x"; mv "$T/x" "$T/bc/$(h "$truncated").narinfo"
rm "$T/bc/$(h "$missing").narinfo"

step "serve the cache over HTTP; start nhc-server with builder 'hydra' registered with the cache key"
cport=$(free_port); sport=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$cport" --directory "$T/bc" >"$T/http.log" 2>&1 & pids+=($!)
NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/server.db" user add hydra --public-key "$(cat "$T/cache.pub")" >"$T/token" 2>/dev/null
NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/server.db" serve --listen "127.0.0.1:$sport" >"$T/server.log" 2>&1 & pids+=($!)
URL=http://127.0.0.1:$sport
wait_up "http://127.0.0.1:$cport/nix-cache-info"; wait_up "$URL/health"
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$URL HASH_COLLECTION_TOKEN_FILE=$T/token
curl -fsS -H "Authorization: Bearer $(cat "$T/token")" "$URL/v1/me" | grep -q '"name":"hydra"' || fail "/v1/me"
ok "/v1/me answers the builder"

step "import from http:// : 2 imported, 1 not in cache, 2 unsigned, 2 invalid, exit 1"
set +e; "$bin/nhc" import --cache "http://127.0.0.1:$cport" "${paths[@]}" >"$T/out1" 2>"$T/err1"; rc=$?; set -e
cat "$T/out1"
[ $rc = 1 ] || { cat "$T/err1"; fail "exit $rc, expected 1"; }
grep -q 'imported 2, duplicates 0, not in cache 1, unsigned 2, invalid 2, failed 0' "$T/out1" || { cat "$T/err1"; fail "summary"; }
ok "reported: $(tr '\n' ' ' <"$T/err1")"

step "the imported attestations are what Nix recorded, and nix store verify accepts them"
for p in "${good[@]}"; do
  nix path-info --json "$p" >"$T/pi.json"
  curl -fsS "$URL/v1/outputs/$(basename "$p")" >"$T/o.json"
  python3 - "$T/pi.json" "$T/o.json" <<'PY' || fail "$p differs from Nix's record"
import json, sys, base64
pi = json.load(open(sys.argv[1]))[0]; o = json.load(open(sys.argv[2]))
a = [x for x in o["attestations"] if x["builder"] == "hydra"]
assert len(a) == 1, a
a = a[0]
alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
raw = base64.b64decode(pi["narHash"].split("-", 1)[1])
n = len(raw) * 8 // 5 + (1 if len(raw) * 8 % 5 else 0)
s = ""
for i in range(n - 1, -1, -1):
    b = i * 5; j, k = b // 8, b % 8
    c = (raw[j] >> k) | ((raw[j + 1] << (8 - k)) if j + 1 < len(raw) else 0)
    s += alphabet[c & 0x1f]
assert a["nar_hash"] == "sha256:" + s, (a["nar_hash"], s)
assert a["nar_size"] == pi["narSize"]
assert sorted(a["references"]) == sorted(pi["references"]), (a["references"], pi["references"])
# The .drv is in the local store: the deriver is the derivation and the output is named.
assert a["drv_path"] == pi["deriver"] and a["output_name"] == "out", (a["drv_path"], a["output_name"])
PY
done
nix store verify --store "$URL/builders/hydra" --trusted-public-keys "$(cat "$T/cache.pub")" --no-contents "${good[@]}" || fail "nix store verify"
for p in "$edited" "$nosig" "$othersig" "$truncated" "$missing"; do
  code=$(curl -s -o "$T/o.json" -w '%{http_code}' "$URL/v1/outputs/$(basename "$p")")
  [ "$code" = 404 ] || grep -q '"attestations":\[\]' "$T/o.json" || fail "$p was stored"
done
ok "byte-identical hash, size, references; verified by Nix; the 5 bad ones stored nothing"

step "import again from file:// : nothing new (duplicates)"
set +e; "$bin/nhc" import --cache "file://$T/bc" "${good[@]}" >"$T/out2" 2>"$T/err2"; rc=$?; set -e
cat "$T/out2"
[ $rc = 0 ] || { cat "$T/err2"; fail "exit $rc"; }
grep -q 'imported 0, duplicates 2' "$T/out2" || fail "rerun summary"
ok "rerun from file:// sent nothing new"

step "--jobset with an unknown jobset: a clear error"
set +e; "$bin/nhc" import --cache "file://$T/bc" --jobset j --rev r >"$T/out3" 2>"$T/err3"; rc=$?; set -e
[ $rc = 1 ] && grep -q '404' "$T/err3" || { cat "$T/err3"; fail "jobset 404"; }
ok "$(cat "$T/err3")"

step "--jobset without --rev (the latest evaluation) of an unknown jobset: a clear error"
set +e; "$bin/nhc" import --cache "file://$T/bc" --jobset j >"$T/out4" 2>"$T/err4"; rc=$?; set -e
[ $rc = 1 ] && grep -q 'no jobset j on this server' "$T/err4" || { cat "$T/err4"; fail "latest evaluation 404"; }
ok "$(cat "$T/err4")"

# ---- --jobset NAME [--rev REV] against the real jobset routes of nhc-server -------------
# Three new paths, in two real signed caches: the first (import-e2e-1, builder hydra) as
# above, a second one (other-1, builder mirror). Evaluation r1 = {j1, j2}, r2 = {j1, j2, j3},
# pushed with `nhc jobset push`; each import moves their statuses, read with `nhc jobset show`.
step "real Nix builds 3 more paths; copies signed by import-e2e-1 to file://$T/bc and by other-1 to file://$T/bc2"
mapfile -t jp < <(nix-build --no-out-link "$T/drvs.nix" --argstr nonce "jobset$RANDOM$RANDOM" -A 2 -A 3 -A 4 2>/dev/null)
[ ${#jp[@]} = 3 ] || fail "expected 3 paths, got ${#jp[@]}"
nix store sign --key-file "$T/cache.sec" "${jp[@]}"
nix copy --to "file://$T/bc" "${jp[@]}"
nix store sign --key-file "$T/other.sec" "${jp[@]}"
nix copy --to "file://$T/bc2" "${jp[@]}"
nix key convert-secret-to-public <"$T/other.sec" >"$T/other.pub"
printf '%s\n' "${jp[@]:0:2}" >"$T/r1.txt"
printf '%s\n' "${jp[@]}" >"$T/r2.txt"
ok "j1..j3: ${jp[*]}"

step "a jobset (nhc-server jobset add, token) and two evaluations (nhc jobset push); builder mirror with key other-1"
srv() { NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/server.db" "$@"; }
srv jobset add js --description "import e2e" >/dev/null
srv jobset token js >"$T/js.token"
srv user add mirror --public-key "$(cat "$T/other.pub")" >"$T/mirror.token" 2>/dev/null
"$bin/nhc" jobset push js r1 --paths-from "$T/r1.txt" --token-file "$T/js.token" | grep -q 'created js/r1: 2 paths' || fail "push r1"
sleep 1 # r2 is the newer evaluation (created_at has microseconds, but say it plainly)
"$bin/nhc" jobset push js r2 --paths-from - --token-file "$T/js.token" <"$T/r2.txt" | grep -q 'created js/r2: 3 paths' || fail "push r2"
# show JOBSET [REV] --json; prints "exit=N reproduced one_builder no_builds"
show() {
  set +e; "$bin/nhc" jobset show js "$@" --json >"$T/show.json" 2>"$T/show.err"; local rc=$?; set -e
  python3 - "$T/show.json" "$rc" <<'PY' || { cat "$T/show.err" >&2; fail "nhc jobset show js $*"; }
import json, sys
j = json.load(open(sys.argv[1])); s = j["summary"]
print(f'exit={sys.argv[2]} rev={j["rev"]} reproduced={s["reproduced"]} one_builder={s["one_builder"]} no_builds={s["no_builds"]} differ={s["partially_reproduced"] + s["not_reproduced"]}')
PY
}
expect_show() { local want=$1; shift; local got; got=$(show "$@"); [ "$got" = "$want" ] || fail "nhc jobset show js $*: got '$got', expected '$want'"; ok "show js $*: $got"; }
expect_show "exit=1 rev=r1 reproduced=0 one_builder=0 no_builds=2 differ=0" r1
expect_show "exit=1 rev=r2 reproduced=0 one_builder=0 no_builds=3 differ=0"

step "nhc import --cache http://… --jobset js --rev r1 (builder hydra): j1, j2 imported, r1 one builder"
"$bin/nhc" import --cache "http://127.0.0.1:$cport" --jobset js --rev r1 >"$T/out5" 2>"$T/err5" || { cat "$T/err5"; fail "import r1"; }
grep -q 'imported 2, duplicates 0, not in cache 0, unsigned 0, invalid 0, failed 0' "$T/out5" || { cat "$T/out5" "$T/err5"; fail "import r1 summary"; }
expect_show "exit=1 rev=r1 reproduced=0 one_builder=2 no_builds=0 differ=0" r1
expect_show "exit=1 rev=r2 reproduced=0 one_builder=2 no_builds=1 differ=0"

step "nhc import --cache file://…/bc2 --jobset js, no --rev = the latest (r2), builder mirror: r1 reproduced"
HASH_COLLECTION_TOKEN_FILE=$T/mirror.token "$bin/nhc" import --cache "file://$T/bc2" --jobset js >"$T/out6" 2>"$T/err6" ||
  { cat "$T/err6"; fail "import latest as mirror"; }
grep -q 'imported 3, duplicates 0, not in cache 0, unsigned 0, invalid 0, failed 0' "$T/out6" || { cat "$T/out6" "$T/err6"; fail "import latest summary"; }
expect_show "exit=0 rev=r1 reproduced=2 one_builder=0 no_builds=0 differ=0" r1
expect_show "exit=1 rev=r2 reproduced=2 one_builder=1 no_builds=0 differ=0"

step "nhc import --cache http://… --jobset js (latest, hydra) again: j3 new, j1 j2 duplicates; r2 all reproduced"
"$bin/nhc" import --cache "http://127.0.0.1:$cport" --jobset js >"$T/out7" 2>"$T/err7" || { cat "$T/err7"; fail "import latest as hydra"; }
grep -q 'imported 1, duplicates 2, not in cache 0, unsigned 0, invalid 0, failed 0' "$T/out7" || { cat "$T/out7" "$T/err7"; fail "import latest summary (hydra)"; }
expect_show "exit=0 rev=r2 reproduced=3 one_builder=0 no_builds=0 differ=0"
nix store verify --store "$URL/builders/mirror" --trusted-public-keys "$(cat "$T/other.pub")" --no-contents "${jp[@]}" || fail "nix store verify (mirror)"
ok "the mirror's imported attestations verify with other-1"

step "an evaluation with a path the cache lacks: counted as not in cache, exit 1, the rest imported"
printf '%s\n' "${jp[2]}" "${paths[6]}" >"$T/r3.txt"
"$bin/nhc" jobset push js r3 --paths-from "$T/r3.txt" --token-file "$T/js.token" >/dev/null || fail "push r3"
set +e; HASH_COLLECTION_TOKEN_FILE=$T/mirror.token "$bin/nhc" import --cache "file://$T/bc2" --jobset js --rev r3 >"$T/out8" 2>"$T/err8"; rc=$?; set -e
[ $rc = 1 ] && grep -q 'imported 0, duplicates 1, not in cache 1, unsigned 0, invalid 0, failed 0' "$T/out8" || { cat "$T/out8" "$T/err8"; fail "r3: exit $rc"; }
expect_show "exit=1 rev=r3 reproduced=1 one_builder=0 no_builds=1 differ=0" r3
