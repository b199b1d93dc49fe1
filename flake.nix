{
  description = "nix-hash-collection: collect and compare NAR hashes of Nix builds from independent builders";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      # NixOS VM tests need a Linux host with KVM.
      testSystems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: prev: {
        nix-hash-collection = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (
        system: pkgs: rec {
          nix-hash-collection = pkgs.callPackage ./nix/package.nix { };
          default = nix-hash-collection;
        }
      );

      # The modules default their `package` option to pkgs.nix-hash-collection
      # (apply overlays.default) or else build nix/package.nix with the
      # system's nixpkgs; set it to self.packages.<system>.default to pin it.
      nixosModules = {
        client = ./nix/module.nix;
        server = ./nix/server-module.nix;
        default = self.nixosModules.client;
      };

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.clippy
              pkgs.rustfmt
              pkgs.rust-analyzer
              pkgs.sqlite
              pkgs.postgresql
              pkgs.wrk
              pkgs.jq
              pkgs.curl
            ];
            RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
          };
        }
      );

      checks = forAllSystems (
        system: pkgs:
        {
          package = self.packages.${system}.default;
        }
        // lib.optionalAttrs (lib.elem system testSystems) {
          basic = import ./nix/tests/basic.nix {
            inherit pkgs;
            package = self.packages.${system}.default;
          };
        }
      );

      formatter = forAllSystems (system: pkgs: pkgs.nixfmt-tree);
    };
}
