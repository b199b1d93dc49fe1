#!/usr/bin/env bash
# Checks of the Nix packaging that run without nixpkgs (CI runs this):
#   1. every .nix file of the repository parses (nix-instantiate --parse);
#   2. nix/tests/options-check.nix evaluates the NixOS modules, the package,
#      flake.nix, default.nix and the VM test's nodes against a small stand-in
#      for nixpkgs' lib: the option names of services.hash-collection and
#      services.hash-collection-server must be exactly the documented ones,
#      and the generated hook, units and scripts must keep their properties;
#   3. the generated shell scripts pass `bash -n` and the VM test script
#      compiles as Python;
#   4. the test keys under nix/tests/ are consistent pairs.
# The VM test itself (nix/tests/basic.nix) needs nixpkgs and KVM:
#   nix build .#checks.x86_64-linux.basic
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v nix-instantiate >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "nix/check.sh: installing Debian's nix-bin" >&2
    apt-get install -y --no-install-recommends nix-bin >&2 ||
      { apt-get update >&2 && apt-get install -y --no-install-recommends nix-bin >&2; }
  else
    echo "nix/check.sh: nix-instantiate not found; install Nix (Debian: apt-get install nix-bin)" >&2
    exit 1
  fi
fi

# Nix configured only through the environment, with a private store.
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/conf"
export NIX_CONF_DIR="$tmp/conf" NIX_USER_CONF_FILES=/dev/null XDG_CACHE_HOME="$tmp/cache"
export NIX_CONFIG="experimental-features = nix-command
build-users-group =
store = $tmp/store
substituters =
sandbox = false"
unset NIX_PATH NIX_REMOTE

failed=0

# 1. Parse every .nix file (tracked or new, never build outputs).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <({ git ls-files -- '*.nix'; git ls-files --others --exclude-standard -- '*.nix'; } | sort -u)
else
  mapfile -t files < <(find . -name '*.nix' -not -path '*/target/*' -not -path '*/node_modules/*' -not -path './.git/*' | sed 's|^\./||' | sort)
fi
for f in flake.nix default.nix nix/package.nix nix/module.nix nix/server-module.nix nix/hardening.nix nix/tests/basic.nix nix/tests/options-check.nix; do
  [ -e "$f" ] || { echo "MISSING $f" >&2; failed=1; }
done
for f in "${files[@]}"; do
  [ -e "$f" ] || continue
  if nix-instantiate --parse "$f" >/dev/null 2>"$tmp/err"; then
    echo "parse ok   $f"
  else
    echo "PARSE FAIL $f" >&2
    cat "$tmp/err" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || { echo "nix/check.sh: FAILED (parse)" >&2; exit 1; }

# 2. Evaluate the modules, the package, the flake and the test (throws on any
#    failed check; --read-write-mode because the stand-in writeShellScript
#    writes the scripts into the private store so they can be read back).
if ! nix-instantiate --read-write-mode --eval --strict --json nix/tests/options-check.nix >"$tmp/eval.json" 2>"$tmp/err"; then
  cat "$tmp/err" >&2
  echo "nix/check.sh: FAILED (nix/tests/options-check.nix)" >&2
  exit 1
fi
echo "eval ok    nix/tests/options-check.nix"

# 3. Syntax of the generated scripts and of the VM test script.
if command -v python3 >/dev/null; then
  python3 - "$tmp/eval.json" "$tmp" <<'EOF'
import json, subprocess, sys
data = json.load(open(sys.argv[1]))
tmp = sys.argv[2]
print("client options: services.hash-collection." + ", ".join(data["options"]["client"]))
print("server options: services.hash-collection-server." + ", ".join(data["options"]["server"]))
bad = 0
for name, text in sorted(data["shellScripts"].items()):
    path = f"{tmp}/{name}.sh"
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    if r.returncode == 0:
        print(f"bash -n ok {name}")
    else:
        print(f"BASH FAIL  {name}\n{r.stderr}", file=sys.stderr)
        bad = 1
try:
    compile(data["testScript"], "nix/tests/basic.nix:testScript", "exec")
    print("python ok  nix/tests/basic.nix testScript")
except SyntaxError as e:
    print(f"PYTHON FAIL nix/tests/basic.nix testScript: {e}", file=sys.stderr)
    bad = 1
sys.exit(bad)
EOF
else
  echo "SKIPPED    script syntax checks (python3 not found)" >&2
fi

# 4. The throwaway test keys: each secret key matches its public key.
for secret in nix/tests/*.secret; do
  public="${secret%.secret}.public"
  if [ "$(nix key convert-secret-to-public <"$secret")" = "$(cat "$public")" ]; then
    echo "key ok     $secret"
  else
    echo "KEY FAIL   $secret does not match $public" >&2
    exit 1
  fi
done

echo "nix/check.sh: all checks passed"
