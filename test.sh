#!/usr/bin/env bash
# Runs every test of nix-hash-collection: formatting and lints, unit tests, and the
# HTTP conformance suite through real HTTP against each deployment, on SQLite and
# on PostgreSQL, with the real Nix client checking the narinfo views.
# Installs what is missing first (scripts/install-test-deps; NHC_SKIP_INSTALL=1 skips).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*" >&2; }

[ "${NHC_SKIP_INSTALL:-0}" = 1 ] || scripts/install-test-deps

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo check --locked -p nhc-handlers --target wasm32-unknown-unknown
cargo clippy --locked -p nhc-handlers --target wasm32-unknown-unknown -- -D warnings

step "Nix files: parse, and the modules' options (nix/check.sh)"
nix/check.sh

step "unit and integration tests"
cargo test --workspace --locked

step "build the conformance suite and the server"
cargo build --locked -p nhc-conformance -p nhc-server

export NHC_NIX=require NHC_CARGO_PROFILE=dev
step "conformance: nhc-server on SQLite"
scripts/conformance adapters/server/dev.sh

step "conformance: nhc-server on PostgreSQL (a fresh database)"
DATABASE_URL=$(scripts/ensure-postgres) scripts/conformance adapters/server/dev.sh

step "all tests passed"
