# For users without flakes:
#
#   nix-build                      # the package (nhc-server, nhc-hook, nhc)
#   nix-build -A tests.basic       # the NixOS VM test (Linux with KVM)
#
# and in a NixOS configuration:
#
#   imports = [ "${nix-hash-collection-src}/nix/module.nix" ];          # client
#   imports = [ "${nix-hash-collection-src}/nix/server-module.nix" ];   # server
{
  pkgs ? import <nixpkgs> { },
}:

let
  package = pkgs.callPackage ./nix/package.nix { };
in
package
// {
  modules = {
    client = ./nix/module.nix;
    server = ./nix/server-module.nix;
  };
  overlay = final: prev: {
    nix-hash-collection = final.callPackage ./nix/package.nix { };
  };
  tests.basic = import ./nix/tests/basic.nix { inherit pkgs package; };
}
