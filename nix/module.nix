# NixOS module for the nix-hash-collection client: every local build is
# reported to a collection server by Nix's post-build-hook (`nhc-hook`).
#
#   services.hash-collection = {
#     enable = true;
#     collection-url = "https://hash-collection.example.org";
#     tokenFile = "/run/keys/hash-collection-token";
#     secretKeyFile = "/run/keys/hash-collection-key";
#   };
#
# Secrets: only the *paths* of the token and key files appear in the Nix store
# and in the environment. The post-build-hook runs as root under nix-daemon and
# reads them itself; the flush service gets them as systemd credentials.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.hash-collection;

  hookBin = lib.getExe' cfg.package "nhc-hook";
  nhcBin = lib.getExe' cfg.package "nhc";

  # Set as nix.settings.post-build-hook. nix-daemon runs it as root, with no
  # arguments and DRV_PATH/OUT_PATHS in the environment. Only file paths are
  # written here, never the secrets themselves.
  postBuildHook = pkgs.writeShellScript "hash-collection-post-build-hook" ''
    umask 077
    export PATH=${lib.escapeShellArg "${config.nix.package}/bin"}''${PATH:+:$PATH}
    export HASH_COLLECTION_SERVER=${lib.escapeShellArg cfg.collection-url}
    export HASH_COLLECTION_TOKEN_FILE=${lib.escapeShellArg cfg.tokenFile}
    export HASH_COLLECTION_SECRET_KEY_FILE=${lib.escapeShellArg cfg.secretKeyFile}
    export HASH_COLLECTION_SPOOL=${lib.escapeShellArg cfg.spoolDir}
    ${lib.optionalString cfg.async "export HASH_COLLECTION_ASYNC=1"}
    unset HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY
    exec ${hookBin} "$@"
  '';

  # Set as nix.settings.diff-hook. Nix runs the diff hook as the build user
  # (nixbld*), with the two output paths, the derivation and the build
  # directory as arguments: it gets no secrets and no spool.
  diffHook = pkgs.writeShellScript "hash-collection-diff-hook" ''
    export PATH=${lib.escapeShellArg "${config.nix.package}/bin"}''${PATH:+:$PATH}
    export HASH_COLLECTION_SERVER=${lib.escapeShellArg cfg.collection-url}
    unset HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY HASH_COLLECTION_TOKEN_FILE HASH_COLLECTION_SECRET_KEY_FILE
    exec ${hookBin} "$@"
  '';

  # PathChanged= starts the flush on the first change in the spool; items that
  # land while a flush runs would not start another one (the start request
  # merges with the running job). So flush again until the spool's listing
  # stops changing: items nhc cannot deliver yet (server down) stay, and the
  # timer retries them.
  flushScript = pkgs.writeShellScript "hash-collection-flush" ''
    status=0
    previous=
    for _ in $(${pkgs.coreutils}/bin/seq 20); do
      status=0
      ${nhcBin} flush || status=$?
      current=$(${pkgs.coreutils}/bin/ls -A -- "$HASH_COLLECTION_SPOOL")
      if [ "$current" = "$previous" ]; then
        break
      fi
      previous=$current
    done
    exit "$status"
  '';

  isAbsolute = p: p != null && lib.hasPrefix "/" p;
  inStore = p: p != null && lib.hasPrefix "${builtins.storeDir}/" p;
in
{
  options.services.hash-collection = {
    enable = lib.mkEnableOption "reporting the NAR hashes of local builds to a nix-hash-collection server";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.nix-hash-collection or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.nix-hash-collection";
      description = ''
        The nix-hash-collection package providing `nhc-hook` and `nhc`.
        Defaults to the package from this repository's overlay, or built from
        `nix/package.nix` with the system's nixpkgs.
      '';
    };

    collection-url = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "https://hash-collection.example.org";
      description = ''
        Base URL of the collection server (`HASH_COLLECTION_SERVER`), without a
        trailing `/v1`.
      '';
    };

    tokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/hash-collection-token";
      description = ''
        Absolute path of a file holding this builder's token, as printed by
        `nhc-server user add` or `nhc-server token new` on the server.
        It should be readable by root only. The file is read at run time by the
        post-build-hook (root, under `nix-daemon`) and loaded as a systemd
        credential by the flush service; its content never enters the Nix
        store. Give a string, not a Nix path literal (which would copy the
        secret into the world-readable store).
      '';
    };

    secretKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/hash-collection-key";
      description = ''
        Absolute path of this builder's Nix signing key, as written by
        `nix key generate-secret --key-name NAME` or `nhc keygen NAME`
        (`name:base64`). Its public half (`nix key convert-secret-to-public`)
        is what the server administrator registers for this builder.
        Readable by root only; handled like {option}`tokenFile`.
      '';
    };

    async = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Asynchronous mode (`HASH_COLLECTION_ASYNC=1`): the post-build-hook
        only hashes, signs and writes the attestation to the spool directory
        and never touches the network during a build; the flush service sends
        the spool. When `false`, the hook sends right away and spools only
        when the server cannot be reached.
      '';
    };

    spoolDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/hash-collection/spool";
      description = ''
        Spool directory (`HASH_COLLECTION_SPOOL`) for attestations that are
        not sent yet. Owned by root, mode `0700`. Rejected attestations are
        moved to its `rejected/` subdirectory together with the reason.
      '';
    };

    flushInterval = lib.mkOption {
      type = lib.types.str;
      default = "15min";
      example = "1h";
      description = ''
        How long after the last flush the timer runs `nhc flush` again
        (systemd time span, `OnUnitInactiveSec=`). Besides the timer, the flush
        runs whenever the spool directory changes.
      '';
    };

    enableDiffHook = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Whether to also install `nhc-hook` as Nix's `diff-hook` and set
        `run-diff-hook = true`. Nix then runs it when `nix-build --check`
        (or `nix build --rebuild`) finds that a rebuild differs from the
        output in the store; its report goes to the build log.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.collection-url != null && builtins.match "https?://.+" cfg.collection-url != null;
        message = "services.hash-collection.collection-url must be set to an http:// or https:// URL.";
      }
      {
        assertion = isAbsolute cfg.tokenFile && !inStore cfg.tokenFile;
        message = "services.hash-collection.tokenFile must be an absolute path outside the Nix store (a string, not a Nix path literal).";
      }
      {
        assertion = isAbsolute cfg.secretKeyFile && !inStore cfg.secretKeyFile;
        message = "services.hash-collection.secretKeyFile must be an absolute path outside the Nix store (a string, not a Nix path literal).";
      }
      {
        assertion = isAbsolute cfg.spoolDir;
        message = "services.hash-collection.spoolDir must be an absolute path.";
      }
    ];

    environment.systemPackages = [ cfg.package ];

    nix.settings = {
      post-build-hook = "${postBuildHook}";
      run-diff-hook = lib.mkIf cfg.enableDiffHook true;
      diff-hook = lib.mkIf cfg.enableDiffHook "${diffHook}";
    };

    systemd.tmpfiles.rules = [ "d ${cfg.spoolDir} 0700 root root - -" ];

    # `nhc flush` sends the spool; delivered and duplicate items leave it,
    # rejected ones move to rejected/.
    systemd.services.hash-collection-flush = {
      description = "Send spooled nix-hash-collection attestations";
      documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ config.nix.package ];
      environment = {
        HASH_COLLECTION_SERVER = cfg.collection-url;
        HASH_COLLECTION_TOKEN_FILE = "%d/token";
        HASH_COLLECTION_SECRET_KEY_FILE = "%d/secret-key";
        HASH_COLLECTION_SPOOL = cfg.spoolDir;
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${flushScript}";
        # A server that accepts but never answers must not block later flushes.
        TimeoutStartSec = "30min";
        LoadCredential = [
          "token:${cfg.tokenFile}"
          "secret-key:${cfg.secretKeyFile}"
        ];
        # Runs as root (the spool is root's, written by nix-daemon's hook),
        # but without capabilities and with a read-only view of the system.
        User = "root";
        UMask = "0077";
        Nice = 10;
        IOSchedulingClass = "idle";
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ReadWritePaths = [ cfg.spoolDir ];
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        DevicePolicy = "closed";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
        ];
      };
    };

    # Flush as soon as something is spooled. PathChanged= (edge-triggered)
    # rather than DirectoryNotEmpty=: the spool keeps rejected/ and, while the
    # server is down, undeliverable items, which would retrigger the flush in
    # a loop. The timer retries those.
    systemd.paths.hash-collection-flush = {
      description = "Flush the nix-hash-collection spool when it changes";
      wantedBy = [ "paths.target" ];
      pathConfig = {
        PathChanged = cfg.spoolDir;
        Unit = "hash-collection-flush.service";
        MakeDirectory = true;
        DirectoryMode = "0700";
      };
    };

    systemd.timers.hash-collection-flush = {
      description = "Retry sending the nix-hash-collection spool";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "2min";
        OnUnitInactiveSec = cfg.flushInterval;
        RandomizedDelaySec = "1min";
        Unit = "hash-collection-flush.service";
      };
    };
  };
}
