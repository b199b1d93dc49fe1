#!/usr/bin/env bash
# Builds the Worker offline and serves it in the foreground in workerd
# (`wrangler dev --local`) on 127.0.0.1:PORT, with a fresh local D1 database that
# has schema.sql applied (DESIGN.md, "Local runs of each deployment").
#
#   NHC_ADMIN_TOKEN=secret adapters/worker/dev.sh 8787
#
# NHC_LOG_KEY      the transparency log's key; default: scripts/dev-log-key, a key for
#                  local runs only (never for a real deployment); empty: no log.
#
# Needs what scripts/install-worker-tools installs: the wasm32 target,
# worker-build 0.8.7, wasm-bindgen-cli of the version pinned in
# adapters/worker/Cargo.toml, and `npm ci` (wrangler, binaryen).
set -euo pipefail

port=${1:?usage: adapters/worker/dev.sh PORT}
: "${NHC_ADMIN_TOKEN:?set NHC_ADMIN_TOKEN to the admin token for this run}"
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

[ -x node_modules/.bin/wrangler ] || npm ci --no-audit --no-fund --loglevel=error
# worker-build would download these from github.com; point it at local copies.
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen || echo "$HOME/.cargo/bin/wasm-bindgen")}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}
export ESBUILD_BIN=${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
unset CLOUDFLARE_API_TOKEN

worker-build --release adapters/worker >&2

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The deploy config without its [build] section (wrangler dev would build again)
# and with an absolute entry point, next to a .dev.vars holding the admin token.
sed -e '/^\[build\]/,/^$/d' -e "s|^main = \"|main = \"$root/|" wrangler.toml >"$tmp/wrangler.toml"
printf 'NHC_ADMIN_TOKEN=%s\nNHC_LOG_KEY=%s\n' "$NHC_ADMIN_TOKEN" "${NHC_LOG_KEY-$(cat scripts/dev-log-key)}" >"$tmp/.dev.vars"
wrangler=node_modules/.bin/wrangler
"$wrangler" d1 execute DB --local --persist-to "$tmp/state" -c "$tmp/wrangler.toml" --file schema.sql >&2
inspector=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$wrangler" dev --local --ip 127.0.0.1 --port "$port" --inspector-port "$inspector" \
  --persist-to "$tmp/state" -c "$tmp/wrangler.toml" --show-interactive-dev-session=false &
pid=$!
wait "$pid"
