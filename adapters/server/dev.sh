#!/usr/bin/env bash
# Builds nhc-server and serves it in the foreground on 127.0.0.1:PORT against a
# fresh, migrated database (DESIGN.md, "Local runs of each deployment").
#
#   NHC_ADMIN_TOKEN=secret adapters/server/dev.sh 8080
#
# NHC_ADMIN_TOKEN  required: the admin API token for this run.
# DATABASE_URL     unset: a new SQLite file in a temporary directory (removed on exit).
#                  postgres://...: a new database is created on that server for this
#                  run and dropped on exit (needs psql and CREATEDB rights).
#                  sqlite://FILE: used as given.
# NHC_LOG_KEY      the transparency log's key; default: scripts/dev-log-key, a key for
#                  local runs only (never for a real deployment); empty: no log.
# NHC_CARGO_PROFILE  cargo profile to build (default release; `dev` reuses a test build).
set -euo pipefail

port=${1:?usage: adapters/server/dev.sh PORT}
: "${NHC_ADMIN_TOKEN:?set NHC_ADMIN_TOKEN to the admin token for this run}"
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=${NHC_CARGO_PROFILE:-release}
export NHC_LOG_KEY=${NHC_LOG_KEY-$(cat "$root/scripts/dev-log-key")}

cargo build --quiet --locked --profile "$profile" -p nhc-server --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
[ "$profile" = dev ] && out=debug || out=$profile
bin="$target_dir/$out/nhc-server"

tmp=$(mktemp -d)
pid=
drop_db=
admin_url=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if [ -n "$drop_db" ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $drop_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "${DATABASE_URL:-}" in
  "")
    export DATABASE_URL="sqlite://$tmp/nhc.db"
    ;;
  postgres://* | postgresql://*)
    admin_url=$DATABASE_URL
    db="nhc_dev_${port}_$$"
    query=
    case "$DATABASE_URL" in *\?*) query="?${DATABASE_URL#*\?}" ;; esac
    base=${DATABASE_URL%%\?*}
    psql "$admin_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $db" >/dev/null
    drop_db=$db
    export DATABASE_URL="${base%/*}/$db$query"
    ;;
esac

echo "dev.sh: nhc-server on http://127.0.0.1:$port, database ${DATABASE_URL%%@*}@..." >&2
"$bin" serve --listen "127.0.0.1:$port" &
pid=$!
wait "$pid"
