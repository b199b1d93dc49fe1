#!/usr/bin/env bash
# Serves the Lambda function in the foreground on 127.0.0.1:PORT under cargo-lambda's
# local emulator (`cargo lambda watch`), which runs the real lambda_runtime loop
# against an emulated Runtime API and turns plain HTTP requests into function-URL
# events (DESIGN.md, "Local runs of each deployment").
#
#   NHC_ADMIN_TOKEN=secret DATABASE_URL=postgres://postgres@127.0.0.1/postgres adapters/lambda/dev.sh 9000
#
# NHC_ADMIN_TOKEN  required.
# DATABASE_URL     a PostgreSQL server: a new database is created there for this run,
#                  migrated with `nhc-server migrate`, and dropped on exit. Unset: the
#                  local server that scripts/ensure-postgres finds or starts.
# NHC_LOG_KEY      the transparency log's key; default: scripts/dev-log-key, a key for
#                  local runs only (never for a real deployment); empty: no log.
# NHC_CARGO_PROFILE  dev (default here, as `cargo lambda watch` builds) or release.
# cargo-lambda comes from PyPI's prebuilt wheel (scripts/install-lambda-tools).
set -euo pipefail

port=${1:?usage: adapters/lambda/dev.sh PORT}
: "${NHC_ADMIN_TOKEN:?set NHC_ADMIN_TOKEN to the admin token for this run}"
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v cargo-lambda >/dev/null || scripts/install-lambda-tools
profile=${NHC_CARGO_PROFILE:-dev}

admin_url=${DATABASE_URL:-$(scripts/ensure-postgres)}
case "$admin_url" in
  postgres://* | postgresql://*) ;;
  *) echo "dev.sh: the Lambda runs on PostgreSQL; DATABASE_URL must be postgres://..." >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
pid=
db="nhc_lambda_${port}_$$"
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

query=
case "$admin_url" in *\?*) query="?${admin_url#*\?}" ;; esac
base=${admin_url%%\?*}
psql "$admin_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $db" >/dev/null
url="${base%/*}/$db$query"

# Migrations are a separate step, never part of a cold start.
cargo run --quiet --locked --profile "$profile" -p nhc-server -- --database "$url" migrate

# The function's environment, kept out of the process list.
umask 077
printf 'DATABASE_URL=%s\nNHC_ADMIN_TOKEN=%s\nNHC_LOG_KEY=%s\nRUST_LOG=%s\n' "$url" "$NHC_ADMIN_TOKEN" \
  "${NHC_LOG_KEY-$(cat scripts/dev-log-key)}" "${RUST_LOG:-warn}" >"$tmp/env"
release=()
[ "$profile" = release ] && release=(--release)
echo "dev.sh: the Lambda under cargo lambda watch on http://127.0.0.1:$port" >&2
cargo lambda watch --quiet --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" \
  --env-file "$tmp/env" "${release[@]}" -p nhc-lambda --bin bootstrap &
pid=$!
wait "$pid"
