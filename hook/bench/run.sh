#!/usr/bin/env bash
# shellcheck disable=SC2016 # the table's command column quotes commands literally
# Measures the speed targets of nhc-hook and `nhc hash` (issue 3) and prints a Markdown
# table of the figures next to their targets (BENCHMARKS.md holds the last run).
#
#   hook/bench/run.sh [--quick]
#
# 1. single-core SHA-256 ceiling: `openssl speed -evp sha256 -bytes 16384`
# 2. `nhc hash` vs `nix hash path --base32` on 1 GiB of large files (8 x 128 MiB) in tmpfs
# 3. the same on 50,000 small files (1-16 KiB) in nested directories
# 4. peak RSS of `nhc hash` on a 4 GiB file (GNU time)
# 5. wall time of one nhc-hook run for a small output: server on localhost (first
#    submission, and a duplicate), and server down (spooled); the server's SQLite
#    database and the spool are on disk (/var/tmp), the Nix store in tmpfs
#
# Needs hyperfine, openssl, GNU time (/usr/bin/time), nix (2.8), python3, cargo, and
# about 1.1 GiB free in /dev/shm (the 4 GiB file is sparse). Release builds.
# --quick: fewer runs (a smoke test of the script).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=10
[ "${1:-}" = --quick ] && runs=2
log() { printf '==> bench: %s\n' "$*" >&2; }
for tool in hyperfine openssl nix nix-store nix-instantiate python3 cargo curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 1; }

log "release build of nhc-hook and nhc-server"
cargo build --quiet --release --locked -p nhc-hook -p nhc-server --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/release

W=$(mktemp -d /dev/shm/nhc-bench.XXXXXX)
# The server's database and the spool on a disk, so their fsyncs cost what they cost.
D=$(mktemp -d /var/tmp/nhc-bench.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  chmod -R u+w "$W" 2>/dev/null || true
  rm -rf "$W" "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export NIX_USER_CONF_FILES=/dev/null NIX_CONF_DIR=$W/conf XDG_CACHE_HOME=$W/cache
mkdir -p "$W/conf" "$W/cache"
: >"$W/conf/nix.conf"
export NIX_CONFIG="experimental-features = nix-command"

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); }
mean() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join(str(x["mean"]) for x in r))' "$1"; }
stddev() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join(str(x["stddev"] or 0) for x in r))' "$1"; }
calc() { python3 -c "print($1)"; }

log "1. single-core SHA-256 (openssl speed -evp sha256 -bytes 16384 -seconds 5)"
ossl_k=$(openssl speed -evp sha256 -bytes 16384 -seconds 5 2>/dev/null | awk '$1 == "sha256" {print $2}' | tr -d k)
ossl=$(calc "$ossl_k * 1000")
row "openssl SHA-256, one core, 16 KiB blocks" "$(calc "round($ossl / 1e9, 3)") GB/s" "(the ceiling)" \
  '`openssl speed -evp sha256 -bytes 16384 -seconds 5`'

log "2. 1 GiB of large files (8 x 128 MiB) in tmpfs"
mkdir -p "$W/large"
for i in 0 1 2 3 4 5 6 7; do head -c 128M /dev/urandom >"$W/large/f$i"; done
want=$(nix hash path --base32 "$W/large")
got=$("$bin/nhc" hash "$W/large")
[ "${got%% *}" = "sha256:$want" ] || {
  echo "bench: nhc hash disagrees with nix hash path: $got vs $want" >&2
  exit 1
}
size=$(echo "$got" | cut -d' ' -f2)
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$W/large.json" \
  "$bin/nhc hash $W/large" "$bin/nhc hash --sequential $W/large" "nix hash path --base32 $W/large" >&2
read -r t_nhc t_seq t_nix <<<"$(mean "$W/large.json")"
read -r s_nhc _ _ <<<"$(stddev "$W/large.json")"
gbs() { calc "round($size / $1 / 1e9, 3)"; }
row "\`nhc hash\`, 1 GiB of large files" "$(gbs "$t_nhc") GB/s = $(calc "round(100 * $size / $t_nhc / $ossl)") % of openssl ($(calc "round($t_nhc*1000)") ± $(calc "round($s_nhc*1000)") ms)" \
  "≥ 90 % of openssl, ≥ nix" '`hyperfine "nhc hash DIR"`'
row "\`nhc hash --sequential\` (one thread), same" "$(gbs "$t_seq") GB/s = $(calc "round(100 * $size / $t_seq / $ossl)") %" "(for comparison)" '`hyperfine "nhc hash --sequential DIR"`'
row "\`nix hash path --base32\`, same" "$(gbs "$t_nix") GB/s; nhc is $(calc "round($t_nix / $t_nhc, 2)")× nix" "(baseline)" '`hyperfine "nix hash path --base32 DIR"`'
rm -rf "$W/large"

log "3. 50,000 small files (1-16 KiB) in nested directories"
python3 - "$W/small" <<'EOF'
import os, random, sys
random.seed(42)
root = sys.argv[1]
n = 0
for a in range(20):
    for b in range(25):
        d = os.path.join(root, f"d{a:02}", f"s{b:02}")
        os.makedirs(d)
        for c in range(100):
            with open(os.path.join(d, f"file-{c:03}.dat"), "wb") as f:
                f.write(os.urandom(random.randint(1024, 16384)))
            n += 1
assert n == 50000
EOF
want=$(nix hash path --base32 "$W/small")
got=$("$bin/nhc" hash "$W/small")
[ "${got%% *}" = "sha256:$want" ] || { echo "bench: nhc hash disagrees with nix hash path on small files" >&2; exit 1; }
size=$(echo "$got" | cut -d' ' -f2)
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$W/small.json" \
  "$bin/nhc hash $W/small" "$bin/nhc hash --sequential $W/small" "nix hash path --base32 $W/small" >&2
read -r t_nhc t_seq t_nix <<<"$(mean "$W/small.json")"
read -r s_nhc _ s_nix <<<"$(stddev "$W/small.json")"
row "\`nhc hash\`, 50,000 files of 1–16 KiB ($(calc "round($size/2**20)") MiB NAR)" "$(calc "round($t_nhc*1000)") ± $(calc "round($s_nhc*1000)") ms; $(calc "round($t_nix / $t_nhc, 2)")× the throughput of nix" \
  "≥ 1.3× nix" '`hyperfine "nhc hash DIR" "nix hash path --base32 DIR"`'
row "\`nhc hash --sequential\`, same" "$(calc "round($t_seq*1000)") ms; $(calc "round($t_nix / $t_seq, 2)")× nix" "(for comparison)" '`hyperfine "nhc hash --sequential DIR"`'
row "\`nix hash path --base32\`, same" "$(calc "round($t_nix*1000)") ± $(calc "round($s_nix*1000)") ms" "(baseline)" '`hyperfine "nix hash path --base32 DIR"`'
rm -rf "$W/small"

log "4. peak RSS hashing a 4 GiB file"
truncate -s 4G "$W/big"
rss_kb() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'; }
rss_nhc=$(rss_kb "$bin/nhc" hash "$W/big")
rss_nix=$(rss_kb nix hash path --base32 "$W/big")
row "peak RSS of \`nhc hash\` on a 4 GiB file" "$(calc "round($rss_nhc/1024, 1)") MiB (nix hash path: $(calc "round($rss_nix/1024, 1)") MiB)" "< 20 MB" '`/usr/bin/time -v nhc hash FILE` (sparse file in tmpfs)'
rm -f "$W/big"

log "5. nhc-hook wall time for a small output"
# shellcheck source=hook/bench/private-store.sh
. "$root/hook/bench/private-store.sh"
private_store "$W"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NHC_ADMIN_TOKEN=bench "$bin/nhc-server" --database "sqlite://$D/server.db" serve --listen "127.0.0.1:$port" >"$W/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/nhc" keygen bench-1 --secret-file "$W/key.sec" --public-file "$W/key.pub"
"$bin/nhc-server" --database "sqlite://$D/server.db" builder add bench --public-key "$(cat "$W/key.pub")" >"$W/token" 2>/dev/null
export HASH_COLLECTION_SERVER=http://127.0.0.1:$port HASH_COLLECTION_TOKEN_FILE=$W/token \
  HASH_COLLECTION_SECRET_KEY_FILE=$W/key.sec HASH_COLLECTION_SPOOL=$D/spool HASH_COLLECTION_CONFIG=/dev/null
spooled() { find "$D/spool" -maxdepth 1 -name '*.json' 2>/dev/null | wc -l; }

fresh_drv "$W" >"$W/drv"
DRV_PATH=$(cat "$W/drv") OUT_PATHS='' "$bin/nhc-hook"
[ "$(spooled)" = 0 ] || { echo "bench: the hook spooled with the server up" >&2; exit 1; }
hook_runs=$((runs * 3))
# A new attestation per run: the prepare step (not timed) builds a fresh derivation.
cat >"$W/fresh.sh" <<EOF
#!/bin/sh
exec env DRV_PATH="\$(cat $W/drv)" $bin/nhc-hook
EOF
chmod +x "$W/fresh.sh"
cat >"$W/prepare.sh" <<EOF
#!/bin/sh
set -e
d=\$(nix-instantiate --argstr nonce "\$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" $W/drv.nix 2>/dev/null)
nix-store --realise "\$d" >/dev/null 2>&1
echo "\$d" > $W/drv
EOF
chmod +x "$W/prepare.sh"
hyperfine --style basic -N --runs "$hook_runs" --export-json "$W/hook-first.json" --prepare "$W/prepare.sh" "$W/fresh.sh" >&2
[ "$(spooled)" = 0 ] || { echo "bench: the hook spooled with the server up" >&2; exit 1; }
# The same output again and again: the server answers "duplicate".
export DRV_PATH OUT_PATHS=
DRV_PATH=$(cat "$W/drv")
hyperfine --style basic -N --warmup 2 --runs "$hook_runs" --export-json "$W/hook-up.json" "$bin/nhc-hook" >&2
[ "$(spooled)" = 0 ] || { echo "bench: the hook spooled with the server up" >&2; exit 1; }
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
hyperfine --style basic -N --warmup 2 --runs "$hook_runs" --export-json "$W/hook-down.json" "$bin/nhc-hook" >&2
[ "$(spooled)" -ge "$hook_runs" ] || { echo "bench: the hook did not spool with the server down" >&2; exit 1; }
# A server that accepts connections (kernel backlog) but never answers.
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); time.sleep(120)' "$port" &
silent=$!
# Under load python can take long to start: wait until it listens, or the hook would
# measure a refused connection instead.
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null && break
  sleep 0.1
done
hyperfine --style basic -N --runs 3 --export-json "$W/hook-silent.json" "$bin/nhc-hook" >&2
kill "$silent"
wait "$silent" 2>/dev/null || true
ms() { calc "round($(mean "$1") * 1000, 1)"; }
sd() { calc "round($(stddev "$1") * 1000, 1)"; }
row "nhc-hook, small output, server on localhost, new attestation" "$(ms "$W/hook-first.json") ± $(sd "$W/hook-first.json") ms (includes a \`sh\` + \`cat\`)" "≤ 20 ms" '`hyperfine -N --prepare "<build a fresh drv>" fresh.sh`'
row "nhc-hook, same, duplicate attestation" "$(ms "$W/hook-up.json") ± $(sd "$W/hook-up.json") ms" "≤ 20 ms" '`DRV_PATH=... hyperfine -N nhc-hook`'
row "nhc-hook, server down (connection refused → spooled, 2 fsyncs on $(df --output=fstype "$D" | tail -1))" "$(ms "$W/hook-down.json") ± $(sd "$W/hook-down.json") ms" "≤ 50 ms" '`DRV_PATH=... hyperfine -N nhc-hook`'
row "nhc-hook, server accepts but never answers (→ spooled)" "$(ms "$W/hook-silent.json") ± $(sd "$W/hook-silent.json") ms (the 3 s total timeout)" "< 5 s" '`DRV_PATH=... hyperfine -N --runs 3 nhc-hook`'

echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%F)."
echo
echo "| measurement | result | target | command |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
