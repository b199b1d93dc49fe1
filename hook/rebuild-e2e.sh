#!/usr/bin/env bash
# End-to-end test of `nhc check` (diff reports) and `nhc rebuild` with real Nix 2.8 and
# the real server (SQLite).
#
#   hook/rebuild-e2e.sh
#
# Builder A builds three fresh derivations in its private store (two deterministic, one
# that writes a random number and the time) with nhc-hook as post-build-hook; a jobset
# evaluation names them. Builder B, with a store of its own, instantiates the same
# expression and runs `nhc rebuild`: `--dry-run` changes nothing, `--max 1` builds one,
# the next run resumes with the rest; the deterministic paths end `reproduced`, the
# random one `not_reproduced`. Then `nhc check` on the random one exits 2 and uploads a
# signed diff report that the server lists and serves: diffoscope's when it is installed
# (Debian diffoscope-minimal), the native file list with HASH_COLLECTION_DIFFOSCOPE=off;
# `nhc check` on a deterministic one exits 0 and uploads nothing.
#
# Needs: nix-build/nix-store/nix-instantiate (2.8), curl, python3, cargo; diffoscope is
# optional (its part is skipped, loudly, without it unless NHC_E2E_DIFFOSCOPE=require).
# Env: NHC_E2E_KEEP=1 keeps the temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
step() { printf '\n==> rebuild-e2e: %s\n' "$*" >&2; }
fail() {
  printf 'rebuild-e2e: FAIL: %s\n' "$*" >&2
  exit 1
}
ok() { printf '    ok: %s\n' "$*" >&2; }

for tool in nix nix-store nix-instantiate curl python3 cargo; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

step "build nhc-hook, nhc and nhc-server (dev profile)"
cargo build --quiet --locked -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/debug

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-rebuild-e2e.XXXXXX")
server_pid=
cleanup() {
  local rc=$?
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ "${NHC_E2E_KEEP:-0}" = 1 ]; then
    echo "rebuild-e2e: kept $T" >&2
  else
    chmod -R u+w "$T" 2>/dev/null || true
    rm -rf "$T"
  fi
  if [ $rc = 0 ]; then echo "rebuild-e2e: all checks passed" >&2; else echo "rebuild-e2e: FAILED (exit $rc)" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
db=sqlite://$T/server.db
NHC_ADMIN_TOKEN=rebuild-e2e-admin-token "$bin/nhc-server" --database "$db" serve --listen "127.0.0.1:$port" >"$T/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -fsS "$URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$URL/health" >/dev/null || { cat "$T/server.log" >&2; fail "nhc-server did not start"; }

"$bin/nhc" keygen rebuild-a-1 --secret-file "$T/a.sec" --public-file "$T/a.pub"
"$bin/nhc" keygen rebuild-b-1 --secret-file "$T/b.sec" --public-file "$T/b.pub"
"$bin/nhc-server" --database "$db" builder add builder-a --public-key "$(cat "$T/a.pub")" >"$T/a.token" 2>/dev/null
"$bin/nhc-server" --database "$db" builder add builder-b --public-key "$(cat "$T/b.pub")" >"$T/b.token" 2>/dev/null
"$bin/nhc-server" --database "$db" jobset add e2e >/dev/null 2>&1 || fail "jobset add"

# Nix through the environment only (TOOLCHAIN.md); one private store per builder.
nix_env "$T"
hooked() { # STORE -> NIX_CONFIG with the post-build and diff hooks
  nix_config "$1" "post-build-hook = $bin/nhc-hook" "run-diff-hook = true" "diff-hook = $bin/nhc-hook"
}
unset HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY HASH_COLLECTION_ASYNC HASH_COLLECTION_VERIFY
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$URL
as_a() { NIX_CONFIG=$(hooked "$T/storeA") HASH_COLLECTION_TOKEN_FILE=$T/a.token HASH_COLLECTION_SECRET_KEY_FILE=$T/a.sec \
  HASH_COLLECTION_SPOOL=$T/spoolA XDG_STATE_HOME=$T/stateA "$@"; }
as_b() { NIX_CONFIG=$(hooked "$T/storeB") HASH_COLLECTION_TOKEN_FILE=$T/b.token HASH_COLLECTION_SECRET_KEY_FILE=$T/b.sec \
  HASH_COLLECTION_SPOOL=$T/spoolB XDG_STATE_HOME=$T/stateB "$@"; }

nonce=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
cat >"$T/drvs.nix" <<'EOF'
{ nonce }:
let sys = builtins.currentSystem; PATH = "/usr/bin:/bin"; in {
  det1 = derivation { name = "det1"; system = sys; builder = "/bin/sh"; inherit PATH nonce; args = ["-c" "mkdir $out; echo one > $out/file"]; };
  det2 = derivation { name = "det2"; system = sys; builder = "/bin/sh"; inherit PATH nonce; args = ["-c" "echo two > $out"]; };
  random = derivation {
    name = "random"; system = sys; builder = "/bin/sh"; inherit PATH nonce;
    args = ["-c" "mkdir -p $out/share; echo $RANDOM$RANDOM-$(date +%s%N) > $out/share/stamp; echo same > $out/same"];
  };
}
EOF
instantiate() { nix-instantiate --argstr nonce "$nonce" "$T/drvs.nix" -A det1 -A det2 -A random 2>/dev/null; }
status_of() {
  curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"paths\":[\"$1\"]}" "$URL/v1/status" |
    python3 -c 'import json,sys; v=list(json.load(sys.stdin).values())[0]; print(v["status"], v["builders"], v["distinct_hashes"])'
}

step "builder A builds three derivations (the hook attests them); an evaluation names them"
mapfile -t drvs < <(as_a instantiate)
[ "${#drvs[@]}" = 3 ] || fail "expected 3 derivations, got ${#drvs[@]}"
as_a nix-store --realise "${drvs[@]}" >"$T/a-build.out" 2>"$T/a-build.log" || { cat "$T/a-build.log" >&2; fail "A's build"; }
mapfile -t outs < <(for d in "${drvs[@]}"; do as_a nix-store -q --outputs "$d"; done)
det1=${outs[0]} det2=${outs[1]} rnd=${outs[2]}
for p in "${outs[@]}"; do [ "$(status_of "$p")" = "one_builder 1 1" ] || fail "$p: $(status_of "$p") after A's build"; done
printf '%s\n' "${drvs[@]}" >"$T/eval.txt"
printf '%s' rebuild-e2e-admin-token >"$T/admin.token"
as_a "$bin/nhc" jobset push e2e rev1 --paths-from "$T/eval.txt" --token-file "$T/admin.token" >/dev/null 2>"$T/push.log" ||
  { cat "$T/push.log" >&2; fail "nhc jobset push"; }
ok "3 paths attested by builder-a only; evaluation e2e/rev1 uploaded"

step "builder B: nhc rebuild --dry-run lists the three (B's store has only the .drv files) and changes nothing"
mapfile -t drvs_b < <(as_b instantiate)
[ "${drvs_b[*]}" = "${drvs[*]}" ] || fail "B's instantiation gave other derivations: ${drvs_b[*]}"
as_b "$bin/nhc" rebuild e2e --dry-run >"$T/dry.out" 2>"$T/dry.log" || { cat "$T/dry.log" >&2; fail "rebuild --dry-run"; }
[ "$(grep -c ' one_builder build /nix/store/' "$T/dry.out")" = 3 ] || { cat "$T/dry.out" >&2; fail "dry run plan"; }
for p in "${outs[@]}"; do
  [ "$(status_of "$p")" = "one_builder 1 1" ] || fail "--dry-run changed $p: $(status_of "$p")"
  as_b nix-store -q --hash "$p" >/dev/null 2>&1 && fail "--dry-run built $p"
done
ok "plan: $(tr '\n' ';' <"$T/dry.out" | cut -c1-150)…"

step "nhc rebuild --status filters the suggestions; a status that is never suggested is a usage error"
as_b "$bin/nhc" rebuild e2e --dry-run --status no_builds,not_reproduced >"$T/dry2.out" 2>"$T/dry2.log" ||
  { cat "$T/dry2.log" >&2; fail "rebuild --status"; }
[ ! -s "$T/dry2.out" ] || { cat "$T/dry2.out" >&2; fail "--status no_builds,not_reproduced listed one_builder paths"; }
as_b "$bin/nhc" rebuild e2e --dry-run --status one_builder >"$T/dry3.out" 2>"$T/dry3.log" ||
  { cat "$T/dry3.log" >&2; fail "rebuild --status one_builder"; }
[ "$(grep -c ' one_builder build /nix/store/' "$T/dry3.out")" = 3 ] || { cat "$T/dry3.out" >&2; fail "--status one_builder plan"; }
rc=0; as_b "$bin/nhc" rebuild e2e --dry-run --status reproduced >/dev/null 2>"$T/dry4.log" || rc=$?
[ "$rc" = 2 ] && grep -q 'never suggested' "$T/dry4.log" || { cat "$T/dry4.log" >&2; fail "--status reproduced: exit $rc"; }
ok "--status one_builder lists the three, --status no_builds,not_reproduced none, --status reproduced is refused (exit 2)"

step "builder B: nhc rebuild --max 1 builds one path, the next run resumes with the other two"
as_b "$bin/nhc" rebuild e2e rev1 --max 1 >"$T/r1.out" 2>"$T/r1.log" || { cat "$T/r1.log" >&2; fail "rebuild --max 1"; }
[ "$(grep -c '^built ' "$T/r1.out")" = 1 ] || { cat "$T/r1.out" "$T/r1.log" >&2; fail "--max 1 did not build exactly one"; }
first=$(awk '/^built /{print $2}' "$T/r1.out")
as_b "$bin/nhc" rebuild e2e --jobs 2 >"$T/r2.out" 2>"$T/r2.log" || { cat "$T/r2.log" >&2; fail "second rebuild"; }
[ "$(grep -c '^built ' "$T/r2.out")" = 2 ] || { cat "$T/r2.out" "$T/r2.log" >&2; fail "the second run did not build the other two"; }
grep -q "$first" "$T/r2.out" && fail "the second run built $first again"
grep -q '\[2/2\]' "$T/r2.log" || { cat "$T/r2.log" >&2; fail "no progress lines"; }
[ "$(status_of "$det1")" = "reproduced 2 1" ] || fail "det1: $(status_of "$det1")"
[ "$(status_of "$det2")" = "reproduced 2 1" ] || fail "det2: $(status_of "$det2")"
[ "$(status_of "$rnd")" = "not_reproduced 2 2" ] || fail "random: $(status_of "$rnd")"
as_b "$bin/nhc" rebuild e2e >"$T/r3.out" 2>"$T/r3.log" || fail "third rebuild"
[ ! -s "$T/r3.out" ] || { cat "$T/r3.out" >&2; fail "nothing should be left to rebuild"; }
ok "det1, det2 reproduced; random not_reproduced; nothing left to suggest to B"

diffs_of() { curl -fsS "$URL/v1/outputs/$(basename "$1")/diffs"; }

step "nhc check on a deterministic path: exit 0, no report"
set +e; as_a "$bin/nhc" check "$det1" >"$T/c0.out" 2>"$T/c0.log"; rc=$?; set -e
[ $rc = 0 ] || { cat "$T/c0.out" "$T/c0.log" >&2; fail "nhc check det1 exited $rc"; }
[ "$(diffs_of "$det1")" = '{"diffs":[]}' ] || fail "a report for det1: $(diffs_of "$det1")"
ok "same bytes"

check_random() { # FORMAT WANT_IN_REPORT [env...]
  local format=$1 want=$2
  shift 2
  set +e; as_a env "$@" "$bin/nhc" check "$rnd" >"$T/c.out" 2>"$T/c.log"; rc=$?; set -e
  [ $rc = 2 ] || { cat "$T/c.out" "$T/c.log" >&2; fail "nhc check random exited $rc, not 2"; }
  grep -q "^differs $rnd .*($format, [0-9]* bytes gzip) uploaded as /v1/outputs/" "$T/c.out" || { cat "$T/c.out" >&2; fail "output line"; }
  url=$(sed -n 's/.* uploaded as //p' "$T/c.out")
  curl -fsS "$URL/v1/outputs/$(basename "$rnd")/diffs" >"$T/list.json"
  python3 - "$T/list.json" "$url" "$format" "$rnd" "$(as_a nix-store -q --hash "$rnd")" "$(cat "$T/a.pub")" <<'EOF' || fail "the listed report"
import json, sys
lst, url, fmt, path, hash_a, pub = sys.argv[1:]
d = [x for x in json.load(open(lst))["diffs"] if x["url"] == url]
assert len(d) == 1, f"{url} not listed once: {lst}"
d = d[0]
assert d["builder"] == "builder-a" and d["format"] == fmt and d["output_path"] == path, d
assert d["nar_hash_a"] == hash_a and d["nar_hash_b"] != hash_a, d
assert d["signature"].startswith(pub.split(":")[0] + ":"), d
EOF
  curl -fsS "$URL$url" | gunzip >"$T/report.txt" || fail "downloading $url"
  grep -q "$want" "$T/report.txt" || { head -40 "$T/report.txt" >&2; fail "the report does not show $want"; }
  grep -q "same" "$T/report.txt" && [ "$format" = file-list ] && { cat "$T/report.txt" >&2; fail "the file list names an identical file"; }
  [ -e "$T/storeA$rnd.check" ] && fail "the .check tree was left behind"
  return 0
}

if command -v diffoscope >/dev/null; then
  step "nhc check on the random path with diffoscope: exit 2, a diffoscope report uploaded, listed and served"
  check_random diffoscope-text 'share/stamp'
  ok "diffoscope's report names share/stamp ($(wc -c <"$T/report.txt") bytes of text)"
elif [ "${NHC_E2E_DIFFOSCOPE:-}" = require ]; then
  fail "diffoscope is not installed (apt-get install diffoscope-minimal)"
else
  echo "    SKIPPED: diffoscope is not installed (apt-get install diffoscope-minimal)" >&2
fi

step "nhc check on the random path without diffoscope: the native file list"
check_random file-list 'differs: share/stamp' HASH_COLLECTION_DIFFOSCOPE=off
ok "the file list names share/stamp with both hashes: $(grep -A2 'differs: share/stamp' "$T/report.txt" | tr '\n' ' ' | cut -c1-160)"

step "nhc check with a diffoscope that hangs: killed at its deadline, the file list is sent"
printf '#!/bin/sh\nsleep 30\n' >"$T/slow-diffoscope"
chmod +x "$T/slow-diffoscope"
start=$SECONDS
check_random file-list 'killed after 1 s' HASH_COLLECTION_DIFFOSCOPE="$T/slow-diffoscope" HASH_COLLECTION_DIFFOSCOPE_TIMEOUT=1
[ $((SECONDS - start)) -lt 25 ] || fail "the hanging diffoscope was not killed"
ok "killed, and the report says so"

step "diff-hook in report-only mode (as under nix-daemon) spools an unsigned report; nhc flush signs and uploads it"
before=$(curl -fsS "$URL/v1/outputs/$(basename "$rnd")/diffs" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["diffs"]))')
set +e
as_a env HASH_COLLECTION_DIFF_REPORT_ONLY=1 HASH_COLLECTION_DIFF_SPOOL="$T/diffspool" HASH_COLLECTION_DIFFOSCOPE=off \
  HASH_COLLECTION_SECRET_KEY_FILE="$T/missing.sec" nix-store --realise --check "${drvs[2]}" >/dev/null 2>"$T/hook.log"
rc=$?
set -e
[ $rc != 0 ] || fail "the --check rebuild of the random derivation did not differ"
grep -q 'the diff report is in' "$T/hook.log" || { cat "$T/hook.log" >&2; fail "the diff-hook did not spool a report"; }
[ "$(find "$T/diffspool" -name '*.diff.json' | wc -l)" = 1 ] || fail "expected one spooled report"
as_a env HASH_COLLECTION_DIFF_SPOOL="$T/diffspool" "$bin/nhc" flush >"$T/flush.out" 2>"$T/flush.log" ||
  { cat "$T/flush.log" >&2; fail "nhc flush"; }
[ "$(find "$T/diffspool" -name '*.diff.json' | wc -l)" = 0 ] || fail "the report is still in the spool"
after=$(curl -fsS "$URL/v1/outputs/$(basename "$rnd")/diffs" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["diffs"]))')
[ "$after" = $((before + 1)) ] || fail "reports listed: $before before, $after after the flush"
ok "one more report listed after nhc flush ($after)"
