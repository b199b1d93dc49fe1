# shellcheck shell=bash
# Sourced by the hook's benchmarks: a private Nix store (sandbox on, configured only
# through the environment) in DIR/store, and fresh derivations with one small output.
#
#   private_store DIR   configure Nix for DIR/store (exports NIX_CONFIG and friends)
#   fresh_drv DIR       instantiate and build a new derivation; prints its .drv path

private_store() {
  local dir=$1
  export NIX_USER_CONF_FILES=/dev/null NIX_CONF_DIR=$dir/conf XDG_CACHE_HOME=$dir/cache
  mkdir -p "$dir/conf" "$dir/cache" "$dir/store"
  : >"$dir/conf/nix.conf"
  export NIX_CONFIG="experimental-features = nix-command
build-users-group =
store = $dir/store
sandbox = true
sandbox-fallback = false
sandbox-paths = /bin /usr /lib /lib64
substituters ="
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
