# shellcheck shell=bash
# Sourced by the hook's benchmarks and end-to-end tests: a private Nix store (sandbox on, configured only
# through the environment) in DIR/store, and fresh derivations with one small output.
#
#   nix_env DIR         Nix configured only through the environment, state under DIR
#   nix_config STORE [LINE..]   the NIX_CONFIG text of a private store (prints it)
#   private_store DIR   configure Nix for DIR/store (exports NIX_CONFIG and friends)
#   fresh_drv DIR       instantiate and build a new derivation; prints its .drv path

# nix_env DIR: Nix configured only through the environment (TOOLCHAIN.md), with an empty
# nix.conf and its cache under DIR: nothing of the machine's /etc/nix is read.
nix_env() {
  local dir=$1
  mkdir -p "$dir/conf" "$dir/cache"
  : >"$dir/conf/nix.conf"
  export NIX_USER_CONF_FILES=/dev/null NIX_CONF_DIR=$dir/conf XDG_CACHE_HOME=$dir/cache
}

# nix_config STORE [LINE..]: the NIX_CONFIG of a private, sandboxed store at STORE with no
# substituters, plus the extra LINEs (a post-build-hook, say).
nix_config() {
  local store=$1
  shift
  printf '%s\n' "experimental-features = nix-command" "build-users-group =" "store = $store" "sandbox = true" \
    "sandbox-fallback = false" "sandbox-paths = /bin /usr /lib /lib64" "substituters =" "$@"
}

private_store() {
  local dir=$1
  nix_env "$dir"
  mkdir -p "$dir/store"
  NIX_CONFIG=$(nix_config "$dir/store")
  export NIX_CONFIG
  cat >"$dir/drv.nix" <<'NIX'
{ nonce }: derivation { name = "bench"; system = builtins.currentSystem; builder = "/bin/sh"; inherit nonce; args = ["-c" "echo hi > $out"]; }
NIX
}

fresh_drv() {
  local d
  d=$(nix-instantiate --argstr nonce "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" "$1/drv.nix" 2>/dev/null)
  nix-store --realise "$d" >/dev/null 2>&1
  echo "$d"
}
