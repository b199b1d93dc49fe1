#!/usr/bin/env bash
# End to end for `nhc import --collection URL --builder NAME` (issue 14): a source
# nhc-server holds 5,000 attestations of builder `bench-7-0` (signed by nhc-bench's
# deterministic key, 100 per submission); a destination nhc-server has builder `mirror`
# registered with the same public key and a per-builder rate limit that makes each
# submission wait. The import is killed (SIGKILL) once its state file records a cursor,
# then run again with the same state file, then once more. Checks: nothing lost (the
# destination holds exactly the source's outputs, hashes and signatures), nothing stored
# twice, the resumed run goes on from the state's cursor, resends at most one page and
# counts it as duplicates (exit 0, failed 0), and a run after a finished walk imports
# nothing.
#
#   hook/import-collection-e2e.sh        (NHC_E2E_PROFILE=release to use release builds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '\n==> import-collection-e2e: %s\n' "$*" >&2; }
fail() { printf 'import-collection-e2e: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '    ok: %s\n' "$*" >&2; }

profile=${NHC_E2E_PROFILE:-debug}
step "build nhc, nhc-server and nhc-bench ($profile)"
flag=; [ "$profile" = release ] && flag=--release
# Two builds: one of all three would unify features and compile nhc and nhc-server again.
cargo build --quiet $flag -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
cargo build --quiet $flag -p nhc-bench --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/$profile

T=$(mktemp -d "${TMPDIR:-/tmp}/nhc-import-collection-e2e.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ "${NHC_E2E_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
  [ $rc = 0 ] && echo "import-collection-e2e: all checks passed" >&2 || echo "import-collection-e2e: FAILED (exit $rc)" >&2
  exit $rc
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; fail "$1 did not come up"; }
N=5000

step "source collection: $N attestations of bench-7-0"
sport=$(free_port); dport=$(free_port)
SRC=http://127.0.0.1:$sport DST=http://127.0.0.1:$dport
NHC_ADMIN_TOKEN=admin NHC_BUILDER_RATE=0 "$bin/nhc-server" --database "sqlite://$T/src.db" serve --listen "127.0.0.1:$sport" >"$T/src.log" 2>&1 & pids+=($!)
wait_up "$SRC/health"
"$bin/nhc-bench" --addr "127.0.0.1:$sport" --admin-token admin --seed 7 --connections 4 \
  ingest --builders 1 --outputs-per-request 100 --attestations $N >"$T/ingest.log" 2>&1 || { cat "$T/ingest.log"; fail "ingest"; }
"$bin/nhc-bench" --seed 7 narinfo-cache --dir "$T/key" --paths 0   # writes key.pub: builder 0's public key

# All of one builder's attestations on a server: "path hash signature" lines, sorted.
dump() {
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request, urllib.parse
base, name = sys.argv[1], sys.argv[2]
rows, cursor = [], None
while True:
    q = {"limit": "1000"}
    if cursor: q["cursor"] = cursor
    page = json.load(urllib.request.urlopen(f"{base}/v1/builders/{name}/attestations?" + urllib.parse.urlencode(q)))
    rows += [f'{a["output_path"]} {a["nar_hash"]} {a["nar_size"]} {a["signature"]}' for a in page["attestations"]]
    cursor = page["next_cursor"]
    if not cursor: break
print("\n".join(sorted(rows)))
PY
}
dump "$SRC" bench-7-0 >"$T/src.rows"
[ "$(wc -l <"$T/src.rows")" = $N ] || fail "the source holds $(wc -l <"$T/src.rows") attestations, expected $N"
ok "source holds $N"

step "destination: builder 'mirror' with the same key, 2 requests/s (bursts of 4)"
# Each page (four 250-output submissions) waits for the rate limit (429 + Retry-After,
# at most a few tries each: two tokens a second for at most four in flight), so the
# import is still running when the state file first records a cursor.
NHC_ADMIN_TOKEN=admin "$bin/nhc-server" --database "sqlite://$T/dst.db" user add mirror --public-key "$(cat "$T/key/key.pub")" >"$T/token" 2>/dev/null
NHC_ADMIN_TOKEN=admin NHC_BUILDER_RATE=2 NHC_BUILDER_BURST=4 "$bin/nhc-server" --database "sqlite://$T/dst.db" serve --listen "127.0.0.1:$dport" >"$T/dst.log" 2>&1 & pids+=($!)
wait_up "$DST/health"
export HASH_COLLECTION_CONFIG=/dev/null HASH_COLLECTION_SERVER=$DST HASH_COLLECTION_TOKEN_FILE=$T/token
state=$T/state/import.json
imp=("$bin/nhc" import --collection "$SRC" --builder bench-7-0 --state "$state" --batch 250)
counts() { sed -n 's/.*imported \([0-9]*\), duplicates \([0-9]*\), not in cache \([0-9]*\), unsigned \([0-9]*\), invalid \([0-9]*\), failed \([0-9]*\).*/\1 \2 \3 \4 \5 \6/p' "$1"; }

step "import, killed (SIGKILL) in the middle of a page after the state file records a cursor"
# The process itself in the background (not a shell function: $! would be a subshell and
# SIGKILL would leave nhc running).
"${imp[@]}" >"$T/out1" 2>"$T/err1" & ipid=$!; pids+=("$ipid")
for _ in $(seq 600); do
  grep -q '"cursor":"' "$state" 2>/dev/null && break
  kill -0 "$ipid" 2>/dev/null || break
  sleep 0.05
done
grep -q '"cursor":"' "$state" 2>/dev/null || { cat "$T/out1" "$T/err1"; fail "no cursor in the state file while importing"; }
# Then, to kill it in the middle of a page, wait until the destination holds part of the
# next page (submissions are 250 outputs, pages 1,000).
for _ in $(seq 600); do
  c=$(dump "$DST" mirror | grep -c . || true)
  [ $((c % 1000)) != 0 ] && break
  kill -0 "$ipid" 2>/dev/null || break
  sleep 0.05
done
kill -0 "$ipid" 2>/dev/null || fail "the import ended before it could be killed"
kill -9 "$ipid"; wait "$ipid" 2>/dev/null || true
kill -0 "$ipid" 2>/dev/null && fail "the import survived SIGKILL"
dump "$DST" mirror >"$T/dst1.rows"
before=$(grep -c . "$T/dst1.rows" || true)
[ "$before" -ge 1000 ] && [ "$before" -lt $N ] || fail "after the kill the destination holds $before (expected at least one page, not all)"
ok "killed with $before of $N stored; state: $(cat "$state")"

step "resume with the same state file"
"${imp[@]}" >"$T/out2" 2>"$T/err2" || { cat "$T/out2" "$T/err2"; fail "the resumed import failed"; }
cat "$T/out2"
read -r imported dups nic unsigned invalid failed < <(counts "$T/out2")
[ "$failed" = 0 ] && [ "$unsigned" = 0 ] && [ "$invalid" = 0 ] && [ "$nic" = 0 ] || fail "resumed run: $(cat "$T/out2")"
# It went on from a page boundary after the last stored page (not from the start), and
# resent only what the killed run had sent of the page it was in (a submission the server
# got just before the kill may commit after it, so `before` is a lower bound).
sent=$((imported + dups))
[ "$sent" -lt $N ] && [ $((sent % 1000)) = $((N % 1000)) ] || fail "the resumed run went over $sent outputs, not the pages after the state's cursor"
[ "$dups" -le 1000 ] || fail "the resumed run resent $dups (more than one page)"
[ $((N - sent)) -le "$before" ] || fail "the state's cursor is past what was stored ($before)"
# What the killed run had stored past the state's cursor came back as duplicates, not errors.
[ "$dups" -ge $((before - (N - sent))) ] || fail "the resumed run counted $dups duplicates, but $((before - (N - sent))) were stored past the cursor"
grep -q '"cursor":null' "$state" && grep -q '"done_until":"' "$state" || fail "state after a finished walk: $(cat "$state")"
ok "resumed: $imported new, $dups duplicates (resent from the interrupted page), 0 failed"

step "nothing lost, nothing stored twice"
dump "$DST" mirror >"$T/dst2.rows"
cmp -s "$T/src.rows" "$T/dst2.rows" || { diff "$T/src.rows" "$T/dst2.rows" | head; fail "the destination differs from the source"; }
ok "the destination holds exactly the source's $N (path, hash, size, signature)"

step "a run after a finished walk imports nothing"
"${imp[@]}" >"$T/out3" 2>"$T/err3" || { cat "$T/out3" "$T/err3"; fail "third run"; }
read -r imported dups _ _ _ failed < <(counts "$T/out3")
[ "$imported" = 0 ] && [ "$failed" = 0 ] && [ "$dups" -le $N ] || fail "third run: $(cat "$T/out3")"
ok "$(cat "$T/out3")"
