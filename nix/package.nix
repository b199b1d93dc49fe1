# The native binaries of nix-hash-collection: nhc-server (the local server),
# nhc-hook (Nix's post-build-hook) and nhc (the client CLI).
#
# The Cloudflare Worker (wasm) and the AWS Lambda crates of the workspace are
# not built here.
{
  lib,
  rustPlatform,
}:

let
  workspace = lib.importTOML ../Cargo.toml;
  root = toString ../.;

  # The repository without build outputs, editor/tool state and the Nix files
  # themselves (editing a module must not rebuild the package).
  src = lib.cleanSourceWith {
    name = "nix-hash-collection-source";
    src = lib.cleanSource ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
        rel = lib.removePrefix "${root}/" (toString path);
      in
      !(
        (
          type == "directory"
          && lib.elem base [
            "target"
            "node_modules"
            ".wrangler"
            ".direnv"
          ]
        )
        || lib.elem rel [
          "nix"
          "flake.nix"
          "flake.lock"
          "default.nix"
          "build"
          ".ci"
        ]
        || lib.hasSuffix ".db" base
        || lib.hasSuffix ".db-shm" base
        || lib.hasSuffix ".db-wal" base
      );
  };
in
rustPlatform.buildRustPackage {
  pname = "nix-hash-collection";
  version = workspace.workspace.package.version;

  inherit src;

  cargoLock.lockFile = ../Cargo.lock;

  # Only the native packages; -p keeps the wasm and Lambda crates out.
  cargoBuildFlags = [
    "-p"
    "nhc-server"
    "-p"
    "nhc-hook"
  ];

  # Unit tests need no network beyond loopback and no Nix installation. The HTTP
  # conformance suite (tests/) runs against a live server and is not run here.
  cargoTestFlags = [
    "-p"
    "nhc-core"
    "-p"
    "nhc-handlers"
    "-p"
    "nhc-server"
    "-p"
    "nhc-hook"
    "-p"
    "nhc-nar"
    "-p"
    "nhc-sql"
  ];

  # nhc-hook's unit tests bind and connect to 127.0.0.1 (a stand-in server);
  # the macOS sandbox forbids that unless allowed.
  __darwinAllowLocalNetworking = true;

  meta = {
    description = "Collect and compare NAR hashes of Nix builds from independent builders";
    homepage = "https://github.com/nix-community/nix-hash-collection";
    license = lib.licenses.mit;
    mainProgram = "nhc";
    platforms = lib.platforms.unix;
  };
}
