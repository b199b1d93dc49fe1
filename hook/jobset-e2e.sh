#!/usr/bin/env bash
# End-to-end test of jobsets with real Nix (2.8), nhc-hook, nhc and nhc-server (issue 12).
#
#   hook/jobset-e2e.sh
#
# Two builders, each with its own private chroot store and key, build the same small
# closure with nhc-hook as post-build-hook posting to one nhc-server (SQLite): `lib` and
# `app` are deterministic, `nondet` writes random bytes, `top` refers to app and nondet
# (its own bytes are deterministic), `solo` is built by builder A only at first. Then
# `nhc jobset push --closure` and `--build-closure`, `nhc jobset show` (exit 0 when every
# path reproduced, 2 when some differ, 1 otherwise), live statuses after a later build,
# the evaluation page, and `nhc jobset diff` between two revisions.
#
# Needs: nix-build/nix-store/nix-instantiate (2.8), curl, python3, cargo. Builds the dev
# profile of nhc-hook and nhc-server (a no-op when test.sh has built them).
# Env: NHC_E2E_KEEP=1 keeps the temporary directory for inspection.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
step() { printf '\n==> jobset-e2e: %s\n' "$*" >&2; }
fail() {
  printf 'jobset-e2e: FAIL: %s\n' "$*" >&2
  exit 1
}
ok() { printf '    ok: %s\n' "$*" >&2; }

for tool in nix nix-build nix-store nix-instantiate curl python3 cargo; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

step "build nhc-hook, nhc and nhc-server (dev profile)"
cargo build --quiet --locked -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/debug
for b in nhc-hook nhc nhc-server; do [ -x "$bin/$b" ] || fail "$bin/$b is missing"; done

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-jobset-e2e.XXXXXX")
server_pid=
cleanup() {
  local rc=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ "${NHC_E2E_KEEP:-0}" = 1 ]; then
    echo "jobset-e2e: kept $T" >&2
  else
    chmod -R u+w "$T" 2>/dev/null || true
    rm -rf "$T"
  fi
  if [ $rc = 0 ]; then echo "jobset-e2e: all checks passed" >&2; else echo "jobset-e2e: FAILED (exit $rc)" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
db=sqlite://$T/server.db

step "start nhc-server on $URL and register builders a and b"
NHC_ADMIN_TOKEN=e2e-admin "$bin/nhc-server" --database "$db" serve --listen "127.0.0.1:$port" >>"$T/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$T/server.log" >&2; fail "nhc-server exited"; }
  sleep 0.1
done
curl -fsS "$URL/health" >/dev/null || fail "nhc-server did not start"
for b in a b; do
  "$bin/nhc" keygen "e2e-$b-1" --secret-file "$T/$b.sec" --public-file "$T/$b.pub"
  "$bin/nhc-server" --database "$db" builder add "e2e-$b" --public-key "$(cat "$T/$b.pub")" >"$T/$b.token" 2>/dev/null
  [ -s "$T/$b.token" ] || fail "no token for builder $b"
done

# One private store per builder (TOOLCHAIN.md), configured only through the environment.
nix_env "$T"
unset HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY HASH_COLLECTION_ASYNC HASH_COLLECTION_VERIFY \
  HASH_COLLECTION_JOBSET_TOKEN HASH_COLLECTION_JOBSET_TOKEN_FILE
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$URL
# as B CMD..: run CMD as builder B (its store, key, token and spool).
as() {
  local b=$1
  shift
  mkdir -p "$T/store-$b"
  NIX_CONFIG=$(nix_config "$T/store-$b" "post-build-hook = $bin/nhc-hook") \
    HASH_COLLECTION_TOKEN_FILE=$T/$b.token HASH_COLLECTION_SECRET_KEY_FILE=$T/$b.sec \
    HASH_COLLECTION_SPOOL=$T/spool-$b "$@"
}

# The same nonce for both builders (same output paths), fresh for every run.
nonce=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
cat >"$T/closure.nix" <<'EOF'
{ nonce }:
let
  sys = builtins.currentSystem;
  PATH = "/usr/bin:/bin";
  mk = name: script: derivation { inherit name PATH nonce; system = sys; builder = "/bin/sh"; args = [ "-c" script ]; };
in rec {
  lib = mk "e2e-lib" "mkdir -p $out/lib; echo 'int f(void);' > $out/lib/f.h";
  app = mk "e2e-app" "mkdir -p $out/bin; printf '#!/bin/sh\\necho ${lib}\\n' > $out/bin/app; chmod +x $out/bin/app";
  nondet = mk "e2e-nondet" "mkdir $out; echo $RANDOM$RANDOM-$(date +%s%N) > $out/random; echo ${lib} > $out/lib";
  top = mk "e2e-top" "mkdir $out; echo ${app} > $out/app; echo ${nondet} > $out/nondet";
  solo = mk "e2e-solo" "mkdir $out; echo ${lib} > $out/lib";
}
EOF
drv() { as a nix-instantiate --argstr nonce "$nonce" "$T/closure.nix" -A "$1" 2>/dev/null; }
build() { # build B ATTR..
  local b=$1
  shift
  local args=()
  for x in "$@"; do args+=(-A "$x"); done
  as "$b" nix-build --argstr nonce "$nonce" "$T/closure.nix" "${args[@]}" -o "$T/result-$b" >"$T/build-$b.out" 2>"$T/build-$b.log" ||
    { cat "$T/build-$b.log" >&2; fail "nix-build as $b failed"; }
  grep -q 'nhc-hook: error\|nhc-hook: warning' "$T/build-$b.log" && { cat "$T/build-$b.log" >&2; fail "nhc-hook reported a problem"; }
  return 0
}

step "both builders build top (lib, app, nondet, top); builder a also builds solo"
build a top solo
build b top
as a nix-instantiate --argstr nonce "$nonce" "$T/closure.nix" -A app >/dev/null 2>&1
app_out=$(as a nix-store -q --outputs "$(drv app)")
top_out=$(as a nix-store -q --outputs "$(drv top)")
nondet_out=$(as a nix-store -q --outputs "$(drv nondet)")
[ "$(as a nix-store -q --hash "$nondet_out")" != "$(as b nix-store -q --hash "$nondet_out")" ] ||
  fail "nondet built the same bytes twice"
ok "nondet differs between the two stores; the hook of each posted to $URL"

step "nhc-server jobset add and token; a jobset token pushes"
"$bin/nhc-server" --database "$db" jobset add e2e --description "jobset e2e" >/dev/null
"$bin/nhc-server" --database "$db" jobset token e2e >"$T/jobset.token"
[ -s "$T/jobset.token" ] || fail "no jobset token"
push() { # push REV ARGS..
  local rev=$1
  shift
  as a "$bin/nhc" jobset push e2e "$rev" "$@" --token-file "$T/jobset.token" >"$T/push-$rev.out" 2>"$T/push-$rev.err" ||
    { cat "$T/push-$rev.err" >&2; fail "nhc jobset push $rev failed"; }
}
show() { # show REV -> exit status; output in $T/show-REV.txt
  local rc=0
  "$bin/nhc" jobset show e2e "$1" >"$T/show-$1.txt" 2>&1 || rc=$?
  echo "$rc"
}

push det --closure "$app_out"
grep -q 'created e2e/det: 2 paths' "$T/push-det.out" || { cat "$T/push-det.out" >&2; fail "push det: $(cat "$T/push-det.out")"; }
rc=$(show det)
[ "$rc" = 0 ] || { cat "$T/show-det.txt" >&2; fail "show det: exit $rc, expected 0 (app and lib reproduced)"; }
ok "--closure of app: 2 paths, both reproduced: nhc jobset show exits 0"

push full --closure "$T/result-a"
grep -q 'created e2e/full: 4 paths' "$T/push-full.out" || { cat "$T/push-full.out" >&2; fail "push full: $(cat "$T/push-full.out")"; }
rc=$(show full)
[ "$rc" = 2 ] || { cat "$T/show-full.txt" >&2; fail "show full: exit $rc, expected 2 (nondet differs)"; }
grep -q "not_reproduced .*$nondet_out" "$T/show-full.txt" || { cat "$T/show-full.txt" >&2; fail "show full does not list nondet"; }
curl -fsS "$URL/v1/jobsets/e2e/evaluations/full" >"$T/full.json"
python3 - "$T/full.json" "$top_out" "$(drv top)" <<'EOF' || fail "the evaluation page of full is wrong"
import json, sys
v = json.load(open(sys.argv[1]))
want = {"reproduced": 3, "partially_reproduced": 0, "not_reproduced": 1, "one_builder": 0, "no_builds": 0}
assert v["summary"] == want, v["summary"]
top = [i for i in v["items"] if i["path"] == sys.argv[2]]
assert len(top) == 1 and top[0]["drv_path"] == sys.argv[3] and top[0]["output_name"] == "out", top
assert top[0]["status"] == "reproduced" and top[0]["builders"] == 2, top
EOF
ok "--closure of result (top): 4 paths, nondet not reproduced: exit 2; the page has the deriver of each path"

push solo --build-closure "$(drv solo)"
grep -q 'created e2e/solo: 2 paths' "$T/push-solo.out" || { cat "$T/push-solo.out" >&2; fail "push solo: $(cat "$T/push-solo.out")"; }
rc=$(show solo)
[ "$rc" = 1 ] || { cat "$T/show-solo.txt" >&2; fail "show solo: exit $rc, expected 1 (solo built by one builder)"; }
grep -q "one_builder" "$T/show-solo.txt" || fail "show solo does not list the one-builder path"
ok "--build-closure of solo.drv: solo and lib; solo has one builder: exit 1"

step "statuses are live: builder b builds solo, and the same evaluation reproduces"
build b solo
rc=$(show solo)
[ "$rc" = 0 ] || { cat "$T/show-solo.txt" >&2; fail "show solo after b built it: exit $rc, expected 0"; }
curl -fsS "$URL/v1/jobsets/e2e" >"$T/history.json"
python3 - "$T/history.json" <<'EOF' || fail "the history is wrong"
import json, sys
v = json.load(open(sys.argv[1]))
revs = {e["rev"]: e for e in v["evaluations"]}
assert set(revs) == {"det", "full", "solo"}, revs.keys()
assert revs["solo"]["summary"]["reproduced"] == 2, revs["solo"]
assert revs["full"]["summary"]["not_reproduced"] == 1, revs["full"]
assert all(e["summary_at"] for e in v["evaluations"]), v
EOF
ok "show solo exits 0 after the second build; the history shows every evaluation's summary"

step "nhc jobset diff det full"
"$bin/nhc" jobset diff e2e det full >"$T/diff.txt" 2>&1 || { cat "$T/diff.txt" >&2; fail "nhc jobset diff failed"; }
grep -qx "+ $top_out" "$T/diff.txt" && grep -qx "+ $nondet_out" "$T/diff.txt" &&
  grep -qx '2 added, 0 removed, 0 changed' "$T/diff.txt" || { cat "$T/diff.txt" >&2; fail "diff det full"; }
"$bin/nhc" jobset diff e2e full det >"$T/diff2.txt" 2>&1 || fail "nhc jobset diff (reverse) failed"
grep -qx '0 added, 2 removed, 0 changed' "$T/diff2.txt" || { cat "$T/diff2.txt" >&2; fail "diff full det"; }
ok "det -> full: top and nondet added; full -> det: both removed"

step "deleting the jobset collects its store paths"
"$bin/nhc-server" --database "$db" jobset delete e2e >/dev/null
n=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM store_paths").fetchone()[0])' "$T/server.db")
[ "$n" = 0 ] || fail "$n store paths left after deleting the only jobset"
ok "no store_paths row left"
