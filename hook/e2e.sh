#!/usr/bin/env bash
# End-to-end test of nhc-hook and nhc with real Nix and the real server.
#
#   hook/e2e.sh
#
# Real Nix (2.8, Debian nix-bin) builds fresh derivations in a private chroot store
# (sandbox on, configured only through the environment) with nhc-hook as its
# post-build-hook and diff-hook; nhc-server (SQLite) receives the attestations. Checks
# that every attestation equals what Nix recorded, that `nix store verify` accepts the
# signatures through the server's binary-cache view, that builds succeed while the
# server is down or silent and nothing is lost or duplicated after `nhc flush`, that a
# wrong server URL (invalid, a captive portal's 200, a redirect) spools loudly, that a
# `--verify` mismatch is never sent, and that a `--check` rebuild that differs is recorded
# through the diff-hook.
#
# Needs: nix-build/nix-store/nix (2.8), curl, python3, cargo. Builds the dev profile of
# nhc-hook and nhc-server (a no-op when test.sh has built them).
# Env: NHC_E2E_KEEP=1 keeps the temporary directory for inspection.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
step() { printf '\n==> e2e: %s\n' "$*" >&2; }
fail() {
  printf 'e2e: FAIL: %s\n' "$*" >&2
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

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-e2e.XXXXXX")
server_pid=
silent_pid=
portal_pid=
cleanup() {
  local rc=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$silent_pid" ] && kill "$silent_pid" 2>/dev/null && wait "$silent_pid" 2>/dev/null
  [ -n "$portal_pid" ] && kill "$portal_pid" 2>/dev/null && wait "$portal_pid" 2>/dev/null
  if [ "${NHC_E2E_KEEP:-0}" = 1 ]; then
    echo "e2e: kept $T" >&2
  else
    chmod -R u+w "$T" 2>/dev/null || true
    rm -rf "$T"
  fi
  if [ $rc = 0 ]; then echo "e2e: all checks passed" >&2; else echo "e2e: FAILED (exit $rc)" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
URL=http://127.0.0.1:$port
db=sqlite://$T/server.db

start_server() {
  NHC_ADMIN_TOKEN=e2e-admin NHC_LOG_KEY=$(cat "$root/scripts/dev-log-key") NHC_LOG_INTERVAL_MS=200 \
    "$bin/nhc-server" --database "$db" serve --listen "127.0.0.1:$port" >>"$T/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fsS "$URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$T/server.log" >&2
  fail "nhc-server did not start on $URL"
}
stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  curl -fsS "$URL/health" >/dev/null 2>&1 && fail "the server still answers after being stopped"
  return 0
}

# --- Nix, configured only through the environment (TOOLCHAIN.md) ---------------------
nix_env "$T"
mkdir -p "$T/store"
nix_config_base=$(nix_config "$T/store" "narinfo-cache-negative-ttl = 0" "narinfo-cache-positive-ttl = 0" \
  "post-build-hook = $bin/nhc-hook")
export NIX_CONFIG=$nix_config_base
unset HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY HASH_COLLECTION_ASYNC HASH_COLLECTION_VERIFY HASH_COLLECTION_CONFIG
export HASH_COLLECTION_CONFIG=/dev/null # no config file from the machine
export HASH_COLLECTION_SERVER=$URL
export HASH_COLLECTION_TOKEN_FILE=$T/a.token
export HASH_COLLECTION_SECRET_KEY_FILE=$T/a.sec
export HASH_COLLECTION_SPOOL=$T/spool

# Fresh derivations for every call: the nonce changes every output path.
cat >"$T/drvs.nix" <<'EOF'
{ nonce }:
let
  sys = builtins.currentSystem;
  PATH = "/usr/bin:/bin";
in rec {
  hello = derivation { name = "hello"; system = sys; builder = "/bin/sh"; inherit nonce; args = ["-c" "echo hi > $out"]; };
  multi = derivation {
    name = "multi"; system = sys; builder = "/bin/sh"; inherit PATH nonce;
    outputs = [ "out" "dev" ];
    args = ["-c" "mkdir -p $out/bin $dev/include; echo main > $out/bin/prog; chmod +x $out/bin/prog; echo '#define X 1' > $dev/include/x.h; echo $out > $dev/out-path"];
  };
  tree = derivation {
    name = "tree"; system = sys; builder = "/bin/sh"; inherit PATH nonce;
    args = ["-c" ''
      mkdir -p $out/bin $out/share/doc $out/empty
      printf '#!/bin/sh\necho tree\n' > $out/bin/run
      chmod 0755 $out/bin/run
      printf 'readme\n' > $out/share/doc/README
      : > $out/share/empty-file
      ln -s ../share/doc/README $out/bin/readme-link
      ln -s /nonexistent/abs $out/dangling
    ''];
  };
  refs = derivation {
    name = "refs"; system = sys; builder = "/bin/sh"; inherit PATH nonce;
    args = ["-c" "mkdir -p $out; echo ${hello} > $out/hello-path; ln -s ${tree}/bin/run $out/run; cat ${hello} > $out/copied"];
  };
  nondet = derivation {
    name = "nondet"; system = sys; builder = "/bin/sh"; inherit PATH nonce;
    args = ["-c" "mkdir $out; echo $RANDOM$RANDOM-$(date +%s%N) > $out/random; echo ${hello} > $out/dep; echo $out > $out/self"];
  };
}
EOF

nonce() { python3 -c 'import secrets; print(secrets.token_hex(8))'; }
# instantiate NONCE ATTR.. -> drv paths
instantiate() {
  local n=$1
  shift
  local args=()
  for a in "$@"; do args+=(-A "$a"); done
  nix-instantiate --argstr nonce "$n" "$T/drvs.nix" "${args[@]}" 2>/dev/null
}
outputs_of() { for d in "$@"; do nix-store -q --outputs "$d"; done; }
# realise LOG DRV.. (fails the test when the build fails)
realise() {
  local log=$1
  shift
  nix-store --realise "$@" >"$log.out" 2>"$log" || {
    cat "$log" >&2
    fail "nix-store --realise failed"
  }
}
spool_items() { [ -d "$1" ] && find "$1" -maxdepth 1 -name "*.json" -type f | wc -l || echo 0; }

# assert_attested PATH BUILDERS.. : the server's attestation(s) of PATH equal Nix's record.
assert_attested() {
  local p=$1
  shift
  local hash size refs deriver
  hash=$(nix-store -q --hash "$p")
  size=$(nix path-info --json "$p" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["narSize"])')
  refs=$(nix-store -q --references "$p" | sort | tr '\n' ' ')
  deriver=$(nix-store -q --deriver "$p")
  curl -fsS "$URL/v1/outputs/$(basename "$p")" >"$T/report.json" || fail "no attestation of $p on the server"
  python3 - "$T/report.json" "$p" "$hash" "$size" "$refs" "$deriver" "$@" <<'EOF' || fail "attestation of $p differs from Nix's record"
import json, sys
report, path, nar_hash, size, refs, deriver, *builders = sys.argv[1:]
r = json.load(open(report))
atts = r["attestations"]
errors = []
if sorted(a["builder"] for a in atts) != sorted(builders):
    errors.append(f"builders {[a['builder'] for a in atts]} != {builders} (each exactly once)")
for a in atts:
    for key, want in [("output_path", path), ("nar_hash", nar_hash), ("nar_size", int(size)),
                      ("references", refs.split()), ("drv_path", deriver)]:
        if a[key] != want:
            errors.append(f"{a['builder']}: {key} = {a[key]!r}, Nix has {want!r}")
    name = path.split("-", 1)[1]
    drv_name = deriver.split("-", 1)[1][:-4]
    want_out = "out" if name == drv_name else name[len(drv_name) + 1:]
    if a["output_name"] != want_out:
        errors.append(f"output_name = {a['output_name']!r}, expected {want_out!r}")
for e in errors:
    print("   ", e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
}

# status_of PATH -> "status builders distinct_hashes" from POST /v1/status
status_of() {
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"paths\":[\"$1\"]}" "$URL/v1/status" |
    python3 -c 'import json,sys; v=list(json.load(sys.stdin).values())[0]; print(v["status"], v["builders"], v["distinct_hashes"])'
}

# --- keys --------------------------------------------------------------------------------
step "keys: nhc keygen and nix key generate-secret are interchangeable"
"$bin/nhc" keygen e2e-a-1 --secret-file "$T/a.sec" --public-file "$T/a.pub"
[ "$(tail -c1 "$T/a.sec" | od -An -c | tr -d ' ')" != '\n' ] || fail "the secret key file ends with a newline"
nix key convert-secret-to-public <"$T/a.sec" >"$T/a.pub.nix"
cmp -s "$T/a.pub" "$T/a.pub.nix" || fail "nix key convert-secret-to-public disagrees with nhc keygen's public key"
ok "nix derives the same public key (byte for byte) from nhc's secret key"
"$bin/nhc" keygen e2e-stdout >"$T/stdout.sec"
if ! nix key convert-secret-to-public <"$T/stdout.sec" >/dev/null; then
  fail "nhc keygen NAME (stdout) is not a key Nix reads"
fi
nix key generate-secret --key-name e2e-b-1 >"$T/b.sec"
nix key convert-secret-to-public <"$T/b.sec" >"$T/b.pub"
"$bin/nhc" pubkey <"$T/b.sec" >"$T/b.pub.nhc"
cmp -s "$T/b.pub" "$T/b.pub.nhc" || fail "nhc pubkey disagrees with nix key convert-secret-to-public"
ok "nhc loads a key made by nix key generate-secret"
nix key generate-secret --key-name e2e-unregistered-1 >"$T/c.sec"

step "start nhc-server on $URL (SQLite $T/server.db) and register two builders"
start_server
"$bin/nhc-server" --database "$db" builder add e2e-a --public-key "$(cat "$T/a.pub")" >"$T/a.token" 2>/dev/null
"$bin/nhc-server" --database "$db" builder add e2e-b --public-key "$(cat "$T/b.pub")" >"$T/b.token" 2>/dev/null
if [ ! -s "$T/a.token" ] || [ ! -s "$T/b.token" ]; then fail "no tokens"; fi

# --- normal builds --------------------------------------------------------------------
step "build 4 fresh derivations (single output, out+dev, a tree, references) with the post-build-hook (verify mode)"
n1=$(nonce)
mapfile -t drvs1 < <(instantiate "$n1" hello multi tree refs)
HASH_COLLECTION_VERIFY=1 realise "$T/build1.log" "${drvs1[@]}"
if grep -q 'nhc-hook: error\|nhc-hook: warning' "$T/build1.log"; then
  cat "$T/build1.log" >&2
  fail "nhc-hook reported a problem"
fi
mapfile -t outs1 < <(outputs_of "${drvs1[@]}")
[ "${#outs1[@]}" = 5 ] || fail "expected 5 outputs, got ${#outs1[@]}"
[ "$(spool_items "$T/spool")" = 0 ] || fail "something was spooled while the server was up"
for p in "${outs1[@]}"; do
  assert_attested "$p" e2e-a
  [ "$("$bin/nhc" hash "$T/store$p")" = "$(nix-store -q --hash "$p") $(nix path-info --json "$p" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["narSize"])')" ] ||
    fail "nhc hash $p differs from Nix"
done
ok "each output's attestation equals nix-store -q --hash, nix path-info narSize, nix-store -q --references, its deriver and output name"
ok "nhc hash equals Nix for each output (exec bit, symlinks, empty dir and file, references)"

step "nix store verify accepts the signatures through the server's binary-cache view"
for p in "${outs1[@]}"; do
  nix store verify --store "$URL" --trusted-public-keys "$(cat "$T/a.pub")" --sigs-needed 1 --no-contents "$p" 2>"$T/verify.log" ||
    { cat "$T/verify.log" >&2; fail "nix store verify rejected $p"; }
done
ok "nix store verify --sigs-needed 1 passed for ${#outs1[@]} outputs"

step "nhc submit with a key made by nix key generate-secret (a second builder)"
HASH_COLLECTION_SECRET_KEY_FILE=$T/b.sec HASH_COLLECTION_TOKEN_FILE=$T/b.token "$bin/nhc" submit "${outs1[@]}" >"$T/submit.out" 2>&1 ||
  { cat "$T/submit.out" >&2; fail "nhc submit failed"; }
for p in "${outs1[@]}"; do
  assert_attested "$p" e2e-a e2e-b
  nix store verify --store "$URL" --trusted-public-keys "$(cat "$T/a.pub") $(cat "$T/b.pub")" --sigs-needed 2 --no-contents "$p" 2>"$T/verify.log" ||
    { cat "$T/verify.log" >&2; fail "nix store verify --sigs-needed 2 rejected $p"; }
done
"$bin/nhc" status "${outs1[@]}" "$(basename "${drvs1[1]}")" >"$T/status.txt" || fail "nhc status: exit $? although everything reproduced"
grep -q 'reproduced.*e2e-a, e2e-b' "$T/status.txt" || { cat "$T/status.txt" >&2; fail "nhc status does not show both builders"; }
ok "the server accepted builder e2e-b's signatures; every output reproduced (nhc status exit 0)"
HASH_COLLECTION_SECRET_KEY_FILE=$T/b.sec HASH_COLLECTION_TOKEN_FILE=$T/b.token "$bin/nhc" submit "${drvs1[0]}" >"$T/submit2.out" 2>&1
grep -q '0 stored, 1 duplicates' "$T/submit2.out" || { cat "$T/submit2.out" >&2; fail "a repeated submission was not a duplicate"; }
ok "submitting again by .drv is a duplicate"

step "without Nix's database the hook hashes the files and asks nix-store: same values"
mapfile -t d < <(instantiate "$(nonce)" hello multi tree refs)
HASH_COLLECTION_NIX_DB=$T/no-such-db.sqlite realise "$T/fallback.log" "${d[@]}"
grep -q 'computing the NAR hash of .* from its files' "$T/fallback.log" || { cat "$T/fallback.log" >&2; fail "the fallback was not used"; }
grep -q 'nhc-hook: error' "$T/fallback.log" && { cat "$T/fallback.log" >&2; fail "the fallback reported an error"; }
mapfile -t outs < <(outputs_of "${d[@]}")
for p in "${outs[@]}"; do assert_attested "$p" e2e-a; done
ok "${#outs[@]} outputs attested from the files and nix-store --query, equal to Nix's record"

step "OUT_PATHS set (as newer Nix does): only the listed outputs, with their output names"
mapfile -t d < <(instantiate "$(nonce)" multi)
NIX_CONFIG="$nix_config_base
post-build-hook =" realise "$T/nohook.log" "${d[@]}"
dev=$(nix-store -q --outputs "${d[0]}" | grep -- '-dev$')
out=$(nix-store -q --outputs "${d[0]}" | grep -v -- '-dev$')
DRV_PATH=${d[0]} OUT_PATHS="$dev" "$bin/nhc-hook" 2>"$T/outpaths.log" || fail "nhc-hook exited non-zero"
assert_attested "$dev" e2e-a
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/outputs/$(basename "$out")")" = 404 ] || fail "an unlisted output was attested"
DRV_PATH=${d[0]} OUT_PATHS='' "$bin/nhc-hook" 2>>"$T/outpaths.log" || fail "nhc-hook exited non-zero"
assert_attested "$out" e2e-a
assert_attested "$dev" e2e-a
ok "OUT_PATHS=dev attests dev only; an empty OUT_PATHS attests every output of the derivation"

step "nix store sign with a key made by nhc keygen; nix store verify accepts it"
nix store sign --key-file "$T/a.sec" "${outs1[0]}"
nix store verify --trusted-public-keys "$(cat "$T/a.pub")" --sigs-needed 1 "${outs1[0]}" 2>"$T/verify.log" ||
  { cat "$T/verify.log" >&2; fail "nix store verify rejected nix's signature with nhc's key"; }
ok "a signature made by Nix with nhc's key verifies"

# --- problems never fail a build --------------------------------------------------------
step "misconfigured hook (no key): the build still succeeds and says so"
mapfile -t d < <(instantiate "$(nonce)" hello)
HASH_COLLECTION_SECRET_KEY_FILE=$T/missing.sec realise "$T/misconf.log" "${d[@]}"
grep -q 'MISCONFIGURED' "$T/misconf.log" || { cat "$T/misconf.log" >&2; fail "no loud message about the missing key"; }
ok "built; stderr: $(grep -m1 MISCONFIGURED "$T/misconf.log")"

step "a 4xx (key not registered to this builder) is kept in rejected/ with the reason"
mapfile -t d < <(instantiate "$(nonce)" hello)
HASH_COLLECTION_SECRET_KEY_FILE=$T/c.sec HASH_COLLECTION_SPOOL=$T/spool-rejected realise "$T/rejected.log" "${d[@]}"
[ "$(spool_items "$T/spool-rejected")" = 0 ] || fail "a rejected item was left in the spool"
[ "$(spool_items "$T/spool-rejected/rejected")" = 1 ] || fail "no item in rejected/"
grep -q '"http_status": 403' "$T"/spool-rejected/rejected/*.reason || fail "no reason next to the rejected item"
grep -q 'REJECTED' "$T/rejected.log" || fail "the rejection was not reported loudly"
ok "built; rejected/ holds the request and its reason (HTTP 403 unknown_key)"

step "an invalid HASH_COLLECTION_SERVER: the build succeeds, the hook says MISCONFIGURED and spools"
mapfile -t d < <(instantiate "$(nonce)" hello)
HASH_COLLECTION_SERVER=foo HASH_COLLECTION_SPOOL=$T/spool-badurl realise "$T/badurl.log" "${d[@]}"
grep -q 'nhc-hook: error: MISCONFIGURED' "$T/badurl.log" || { cat "$T/badurl.log" >&2; fail "no loud message about the invalid URL"; }
[ "$(spool_items "$T/spool-badurl")" = 1 ] || fail "the attestation was not spooled"
ok "built; spooled; stderr: $(grep -m1 MISCONFIGURED "$T/badurl.log")"

step "a URL that answers 200 without being nhc-server (a captive portal), or redirects: spooled, not lost"
portal_port=$(free_port)
cat >"$T/portal.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/moved/"):
            self.send_response(301)
            self.send_header("Location", "https://hc.example.org/v1/attestations")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b"<html>Log in to use the wifi</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$T/portal.py" "$portal_port" &
portal_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$portal_port/" >/dev/null 2>&1 && break; sleep 0.1; done
mapfile -t d < <(instantiate "$(nonce)" hello tree)
HASH_COLLECTION_SERVER=http://127.0.0.1:$portal_port HASH_COLLECTION_SPOOL=$T/spool-portal realise "$T/portal.log" "${d[0]}"
grep -q 'nhc-hook: error: .*answered 2xx but not like nhc-server' "$T/portal.log" || { cat "$T/portal.log" >&2; fail "no loud message about the 200 from a non-server"; }
HASH_COLLECTION_SERVER=http://127.0.0.1:$portal_port/moved HASH_COLLECTION_SPOOL=$T/spool-portal realise "$T/moved.log" "${d[1]}"
grep -q 'nhc-hook: error: .*redirects to https://hc.example.org/v1/attestations' "$T/moved.log" || { cat "$T/moved.log" >&2; fail "no loud message naming the redirect's Location"; }
[ "$(spool_items "$T/spool-portal")" = 2 ] || fail "expected 2 spooled items, found $(spool_items "$T/spool-portal")"
rc=0
HASH_COLLECTION_SERVER=http://127.0.0.1:$portal_port HASH_COLLECTION_SPOOL=$T/spool-portal "$bin/nhc" flush 2>"$T/portal-flush.log" || rc=$?
[ "$rc" = 1 ] || { cat "$T/portal-flush.log" >&2; fail "nhc flush to a captive portal exited $rc, expected 1"; }
[ "$(spool_items "$T/spool-portal")" = 2 ] || fail "nhc flush to a captive portal lost items"
kill "$portal_pid"
wait "$portal_pid" 2>/dev/null || true
portal_pid=
HASH_COLLECTION_SPOOL=$T/spool-portal "$bin/nhc" flush 2>"$T/portal-flush2.log" || { cat "$T/portal-flush2.log" >&2; fail "nhc flush failed"; }
[ "$(spool_items "$T/spool-portal")" = 0 ] || fail "the spool is not empty after flushing to the real server"
for p in $(outputs_of "${d[@]}"); do assert_attested "$p" e2e-a; done
ok "both builds succeeded and spooled; a flush to the portal kept both; a flush to the server delivered both"

step "--verify: a store path changed after the build is not attested, and --retry-rejected never sends it"
mapfile -t d < <(instantiate "$(nonce)" hello)
NIX_CONFIG="$nix_config_base
post-build-hook =" realise "$T/nohook2.log" "${d[@]}"
p=$(outputs_of "${d[@]}")
chmod u+w "$T/store$p"
echo tampered >>"$T/store$p"
rc=0
HASH_COLLECTION_SPOOL=$T/spool-verify "$bin/nhc" submit --verify "$p" >"$T/tampered.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/tampered.out" >&2; fail "nhc submit --verify of a changed path exited $rc, expected 1"; }
grep -q 'VERIFY FAILED' "$T/tampered.out" || { cat "$T/tampered.out" >&2; fail "no loud VERIFY FAILED"; }
[ "$(spool_items "$T/spool-verify/mismatch")" = 1 ] || fail "the request is not kept in mismatch/"
[ "$(spool_items "$T/spool-verify/rejected")" = 0 ] || fail "a verify mismatch went to rejected/"
HASH_COLLECTION_SPOOL=$T/spool-verify "$bin/nhc" flush --retry-rejected 2>"$T/tampered-flush.log" || { cat "$T/tampered-flush.log" >&2; fail "nhc flush failed"; }
[ "$(spool_items "$T/spool-verify")" = 0 ] || fail "nhc flush --retry-rejected requeued a verify mismatch"
[ "$(spool_items "$T/spool-verify/mismatch")" = 1 ] || fail "the mismatch/ item is gone"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/outputs/$(basename "$p")")" = 404 ] || fail "a changed path was attested"
ok "not attested; kept in mismatch/; nhc flush --retry-rejected left it there"

# --- outage ----------------------------------------------------------------------------
step "server down: builds succeed quickly and the attestations are spooled"
stop_server
n2=$(nonce)
mapfile -t drvs2 < <(instantiate "$n2" hello multi tree refs)
t0=$(date +%s%N)
realise "$T/build2.log" "${drvs2[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 20000 ] || fail "4 builds with the server down took ${ms} ms"
[ "$(spool_items "$T/spool")" = 4 ] || fail "expected 4 spooled items, found $(spool_items "$T/spool")"
grep -q 'spooled' "$T/build2.log" || fail "the hook did not say it spooled"
ok "4 builds in ${ms} ms with the server refusing connections; 4 items spooled"
mapfile -t outs2 < <(outputs_of "${drvs2[@]}")

step "a server that accepts connections but never answers: the hook gives up in time"
silent_port=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); time.sleep(600)' "$silent_port" &
silent_pid=$!
# Wait until it listens: a refused connection would also be spooled, and test nothing.
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$silent_port" 2>/dev/null && break
  sleep 0.1
done
mapfile -t drvs3 < <(instantiate "$(nonce)" hello)
t0=$(date +%s%N)
HASH_COLLECTION_SERVER=http://127.0.0.1:$silent_port realise "$T/build3.log" "${drvs3[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 5000 ] || fail "the build with a silent server took ${ms} ms (limit 5000)"
[ "$(spool_items "$T/spool")" = 5 ] || fail "expected 5 spooled items"
ok "built in ${ms} ms; spooled"

step "nhc flush killed (SIGKILL) while the server hangs: every item stays"
HASH_COLLECTION_SERVER=http://127.0.0.1:$silent_port "$bin/nhc" flush 2>/dev/null &
fpid=$!
sleep 1
kill -9 "$fpid"
wait "$fpid" 2>/dev/null || true
kill "$silent_pid"
wait "$silent_pid" 2>/dev/null || true
silent_pid=
[ "$(spool_items "$T/spool")" = 5 ] || fail "a killed flush lost items"
ok "5 items still in the spool, none locked (the kernel drops a killed process's flock)"
mapfile -t outs3 < <(outputs_of "${drvs3[@]}")

step "restart the server on the same database; two concurrent nhc flush deliver each item exactly once"
start_server
"$bin/nhc" flush 2>"$T/flush1.log" &
f1=$!
"$bin/nhc" flush 2>"$T/flush2.log" &
f2=$!
wait "$f1" || { cat "$T/flush1.log" >&2; fail "nhc flush (1) failed"; }
wait "$f2" || { cat "$T/flush2.log" >&2; fail "nhc flush (2) failed"; }
cat "$T/flush1.log" "$T/flush2.log" >&2
python3 - "$T/flush1.log" "$T/flush2.log" <<'EOF' || fail "the two flushes did not deliver 5 items exactly once"
import re, sys
sent = dups = 0
for f in sys.argv[1:]:
    m = re.search(r"delivered (\d+) item\(s\) \((\d+) attestation\(s\) stored, (\d+) duplicate", open(f).read())
    if m:
        sent += int(m[1]); dups += int(m[3])
print(f"    delivered {sent} items, {dups} duplicates", file=sys.stderr)
sys.exit(0 if (sent, dups) == (5, 0) else 1)
EOF
[ "$(spool_items "$T/spool")" = 0 ] || fail "the spool is not empty after the flush"
for p in "${outs2[@]}" "${outs3[@]}"; do assert_attested "$p" e2e-a; done
ok "spool empty; each of the ${#outs2[@]}+${#outs3[@]} outputs has exactly one attestation equal to Nix's record"
"$bin/nhc" flush 2>"$T/flush3.log" || fail "nhc flush on an empty spool failed"
if [ "$(spool_items "$T/spool")" != 0 ] || grep -q delivered "$T/flush3.log"; then fail "flushing again changed something"; fi
ok "flushing again changes nothing"

step "asynchronous mode: the hook only spools; nhc flush sends"
mapfile -t d < <(instantiate "$(nonce)" hello)
HASH_COLLECTION_ASYNC=1 realise "$T/async.log" "${d[@]}"
p=$(outputs_of "${d[@]}")
[ "$(spool_items "$T/spool")" = 1 ] || fail "asynchronous mode did not spool"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/outputs/$(basename "$p")")" = 404 ] || fail "asynchronous mode used the network"
"$bin/nhc" flush 2>"$T/flush4.log" || { cat "$T/flush4.log" >&2; fail "nhc flush failed"; }
assert_attested "$p" e2e-a
ok "spooled during the build, delivered by nhc flush"

# --- diff-hook ---------------------------------------------------------------------------
step "diff-hook: a --check rebuild that differs is attested"
mapfile -t d < <(instantiate "$(nonce)" nondet)
realise "$T/nondet.log" "${d[@]}"
p=$(outputs_of "${d[@]}")
[ "$(status_of "$p")" = "one_builder 1 1" ] || fail "after the first build: $(status_of "$p")"
export NIX_CONFIG="$nix_config_base
run-diff-hook = true
diff-hook = $bin/nhc-hook"
if nix-store --realise --check "${d[@]}" >/dev/null 2>"$T/check.log"; then
  fail "the --check rebuild of a nondeterministic derivation did not differ"
fi
export NIX_CONFIG=$nix_config_base
grep -q 'may not be deterministic' "$T/check.log" || { cat "$T/check.log" >&2; fail "unexpected --check failure"; }
grep -q 'diff-hook: .* is not reproducible' "$T/check.log" || { cat "$T/check.log" >&2; fail "the diff-hook did not run"; }
[ "$(status_of "$p")" = "one_builder 1 2" ] || fail "after --check: $(status_of "$p"), expected one_builder 1 2"
rc=0
"$bin/nhc" status "$p" >"$T/status2.txt" || rc=$?
[ "$rc" = 2 ] || { cat "$T/status2.txt" >&2; fail "nhc status exit $rc for a differing output, expected 2"; }
python3 - "$URL" "$p" "$(nix-store -q --hash "$p")" "$(nix-store -q --references "$p" | sort | tr '\n' ' ')" <<'EOF' || fail "the diff-hook's attestation is wrong"
import json, sys, urllib.request
url, path, stored, refs = sys.argv[1:]
atts = json.load(urllib.request.urlopen(f"{url}/v1/outputs/{path[len('/nix/store/'):]}"))["attestations"]
other = [a for a in atts if a["nar_hash"] != stored]
assert len(atts) == 2 and len(other) == 1, atts
# The rebuild refers to the same paths (itself and hello): scanned like Nix does.
assert other[0]["references"] == refs.split(), (other[0]["references"], refs)
assert other[0]["output_name"] == "out"
EOF
ok "the server has two hashes from e2e-a for $p (status one_builder, distinct_hashes 2; nhc status exit 2)"

step "diff-hook without a readable key (as a nixbld user under nix-daemon): it logs the hashes, attests nothing"
export NIX_CONFIG="$nix_config_base
run-diff-hook = true
diff-hook = $bin/nhc-hook"
HASH_COLLECTION_SECRET_KEY_FILE=$T/missing.sec nix-store --realise --check "${d[@]}" >/dev/null 2>"$T/check2.log" &&
  fail "the --check rebuild did not differ"
export NIX_CONFIG=$nix_config_base
for want in 'may not be deterministic' 'is not reproducible' MISCONFIGURED; do
  grep -q "$want" "$T/check2.log" || { cat "$T/check2.log" >&2; fail "no \"$want\" in the --check output"; }
done
[ "$(status_of "$p")" = "one_builder 1 2" ] || fail "something was attested without a key: $(status_of "$p")"
ok "the build log shows the rebuilt hash and the missing key; Nix reports the nondeterminism as usual"

step "diff-hook in report-only mode (what the NixOS module sets): hashes in the log, no MISCONFIGURED"
export NIX_CONFIG="$nix_config_base
run-diff-hook = true
diff-hook = $bin/nhc-hook"
HASH_COLLECTION_DIFF_REPORT_ONLY=1 HASH_COLLECTION_SECRET_KEY_FILE=$T/missing.sec \
  nix-store --realise --check "${d[@]}" >/dev/null 2>"$T/check3.log" &&
  fail "the --check rebuild did not differ"
export NIX_CONFIG=$nix_config_base
grep -q 'is not reproducible.*not attested (report only' "$T/check3.log" || { cat "$T/check3.log" >&2; fail "no report-only line"; }
! grep -q MISCONFIGURED "$T/check3.log" || { cat "$T/check3.log" >&2; fail "report-only mode still complains about the key"; }
[ "$(status_of "$p")" = "one_builder 1 2" ] || fail "report-only mode attested something: $(status_of "$p")"
ok "report-only: the rebuilt hash is in the build log, nothing attested, no error"

step "transparency log: nhc audit and nhc log verify against nhc-server; an entry changed by hand is reported"
# Every build above that the server acknowledged left a log receipt in a spool's record.
records=$(find "$T" -path '*/tlog/*/entries' -size +0 | wc -l)
[ "$records" -ge 1 ] || fail "no log receipts were recorded by the hook"
sleep 1 # one sequencing interval (200 ms here)
"$bin/nhc" audit >"$T/audit.txt" 2>&1 || { cat "$T/audit.txt" >&2; fail "nhc audit: exit $?"; }
"$bin/nhc" log verify "$URL" >"$T/verify.txt" 2>&1 || { cat "$T/verify.txt" >&2; fail "nhc log verify: exit $?"; }
entries=$(curl -fsS "$URL/log/checkpoint" | sed -n 2p)
[ "$entries" -ge 4 ] || fail "the checkpoint covers $entries entries"
stop_server
python3 - "$T/server.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
# The entry is made from the attestation's row: change the row.
n = db.execute("UPDATE attestations SET nar_size = nar_size + 1 WHERE log_index = 0").rowcount
assert n == 1, n
db.commit()
PY
start_server
rc=0; "$bin/nhc" log verify "$URL" >"$T/verify2.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/verify2.txt" >&2; fail "nhc log verify of a changed entry: exit $rc, expected 1"; }
rc=0; "$bin/nhc" audit >"$T/audit2.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/audit2.txt" >&2; fail "nhc audit of a changed entry: exit $rc, expected 1"; }
ok "nhc audit and nhc log verify pass on $entries entries, and both report entry 0 changed in the database (exit 1)"
