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
# Importing what binary caches signed, or other collections' attestations, on a
# timer (`nhc import`; no signing key needed, and the hook need not be enabled):
#
#   services.hash-collection.import = {
#     enable = true;
#     tokenFile = "/run/keys/hash-collection-hydra-token"; # a builder with the cache's key
#     caches = [ "https://cache.nixos.org" ];
#     jobsets = [ "nixos-unstable" ];                       # and/or pathsFile
#     collections.other = { url = "https://other.example.org"; builder = "hydra"; };
#   };
#
# Rebuilding, every night, what a jobset's latest evaluation has too few builders
# for, as the server suggests it for this builder (`nhc rebuild`; the builds go
# through nix-daemon, whose post-build-hook attests them, so the hook must be
# enabled):
#
#   services.hash-collection.rebuild = {
#     enable = true;
#     jobset = "nixos-unstable";
#     max = 20;
#   };
#
# A substituter that lets Nix download only what independent builders
# reproduced (`nhc proxy`; no token or key needed): it replaces the default
# substituters and trusted keys with itself and the builders' keys.
#
#   services.hash-collection.proxy = {
#     enable = true;
#     upstream = "https://cache.nixos.org";
#     trustedKeys = [ "builder-a-1:..." "builder-b-1:..." "builder-c-1:..." ];
#     quorum = 2;
#   };
#
# Secrets: only the *paths* of the token and key files appear in the Nix store,
# in the environment and in /etc/hash-collection/config.toml. The
# post-build-hook runs as root under nix-daemon and reads them itself; the
# flush service gets the token (and only the token) as a systemd credential.
#
# Nix runs a single post-build-hook: this module sets nix.settings.post-build-hook
# at normal priority, so another module that sets it too is an evaluation
# error ("conflicting definition values"), and a higher-priority (mkForce)
# definition that replaces it raises a warning.
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

  # systemd expands specifiers (%d, %h, %n, ...) in unit settings such as
  # Environment=, LoadCredential=, ReadWritePaths=, PathChanged= and in
  # tmpfiles.d lines; "%%" stands for a literal "%". Every user-supplied value
  # that goes there passes through this; the module's own "%d" does not.
  escapeSpecifiers = s: if s == null then null else lib.replaceStrings [ "%" ] [ "%%" ] s;

  # The system-wide client configuration (hook/src/config.rs reads
  # /etc/hash-collection/config.toml when neither the environment nor the
  # user's ~/.config/hash-collection/config.toml is set): `nhc status`,
  # `nhc flush` or `nhc submit` run by root then use the same server, spool,
  # token and key as the hook. Only paths, never the secrets.
  configFile = "/etc/hash-collection/config.toml";
  tomlString = s: "\"" + lib.replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] s + "\"";
  configText = ''
    # Written by the NixOS module services.hash-collection; holds only paths.
    # Environment variables (HASH_COLLECTION_*) take precedence over it.
  ''
  + lib.concatStrings (
    lib.mapAttrsToList (k: v: lib.optionalString (v != null) "${k} = ${tomlString v}\n") {
      server = cfg.collection-url;
      token_file = cfg.tokenFile;
      secret_key_file = cfg.secretKeyFile;
      spool = cfg.spoolDir;
    }
  );

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
  # directory as arguments. That user cannot read the token or the key, so
  # the hook only reports (prints the hashes to the build log): it gets no
  # secrets, no server and no spool.
  diffHook = pkgs.writeShellScript "hash-collection-diff-hook" ''
    export PATH=${lib.escapeShellArg "${config.nix.package}/bin"}''${PATH:+:$PATH}
    export HASH_COLLECTION_DIFF_REPORT_ONLY=1
    unset HASH_COLLECTION_SERVER HASH_COLLECTION_TOKEN HASH_COLLECTION_SECRET_KEY HASH_COLLECTION_TOKEN_FILE HASH_COLLECTION_SECRET_KEY_FILE
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

  icfg = cfg.import;
  importTokenFile = if icfg.tokenFile != null then icfg.tokenFile else cfg.tokenFile;

  # One `nhc import` per cache and source and per collection; every one runs even
  # when an earlier one failed, and the unit fails when any did (paths missing
  # from a cache count as failures, as `nhc import` reports them).
  importScript = pkgs.writeShellScript "hash-collection-import" (
    ''
      status=0
      run() {
        echo "nhc import $*"
        ${nhcBin} import --concurrency ${toString icfg.concurrency} "$@" || status=1
      }
    ''
    + lib.concatMapStrings (
      cache:
      lib.optionalString (icfg.pathsFile != null) ''
        run --cache ${lib.escapeShellArg cache} --paths-from ${lib.escapeShellArg icfg.pathsFile}
      ''
      + lib.concatMapStrings (jobset: ''
        run --cache ${lib.escapeShellArg cache} --jobset ${lib.escapeShellArg jobset}
      '') icfg.jobsets
    ) icfg.caches
    + lib.concatStrings (
      lib.mapAttrsToList (name: c: ''
        run --collection ${lib.escapeShellArg c.url} --builder ${lib.escapeShellArg c.builder} --state ${lib.escapeShellArg "${icfg.stateDir}/collection-${name}.json"}
      '') icfg.collections
    )
    + ''
      exit "$status"
    ''
  );

  rcfg = cfg.rebuild;
  rebuildTokenFile = if rcfg.tokenFile != null then rcfg.tokenFile else cfg.tokenFile;
  # Jobset names and revs are letters, digits, '.', '_' and '-' (see the
  # assertions): nothing in this command line needs quoting or escaping.
  rebuildArgs =
    [
      nhcBin
      "rebuild"
      rcfg.jobset
    ]
    ++ lib.optional (rcfg.rev != null) rcfg.rev
    ++ [
      "--max"
      (toString rcfg.max)
      "--jobs"
      (toString rcfg.jobs)
      "--state"
      "/var/lib/hash-collection-rebuild/rebuild-${rcfg.jobset}.failed"
    ];

  # The sandbox of the oneshot services: root (the spool and the state are
  # root's), but without capabilities and with a read-only view of the system.
  # No User=root: that would set HOME=/root, which ProtectHome= makes unreadable.
  hardening = import ./hardening.nix // {
    UMask = "0077";
    Nice = 10;
    IOSchedulingClass = "idle";
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
  };

  pcfg = cfg.proxy;
  proxyCollection = if pcfg.collection-url != null then pcfg.collection-url else cfg.collection-url;
  proxyArgs =
    [
      "proxy"
      "--upstream"
      pcfg.upstream
      "--collection"
      (toString proxyCollection)
      "--quorum"
      (toString pcfg.quorum)
      "--listen"
      pcfg.listen
      "--on-mismatch"
      pcfg.onMismatch
      "--on-collection-error"
      pcfg.onCollectionError
    ]
    ++ lib.concatMap (k: [
      "--trusted-key"
      k
    ]) pcfg.trustedKeys
    ++ lib.concatMap (g: [
      "--key-group"
      "${g}=${lib.concatStringsSep "," pcfg.keyGroups.${g}}"
    ]) (lib.attrNames pcfg.keyGroups)
    ++ lib.optional pcfg.dryRun "--dry-run"
    ++ pcfg.extraArgs;

  isAbsolute = p: p != null && lib.hasPrefix "/" p;
  # Whitespace, quotes and backslashes would split or be unquoted by systemd
  # (ReadWritePaths=) and tmpfiles.d.
  isPlainPath = p: isAbsolute p && builtins.match ".*[[:space:]\"'\\\\[:cntrl:]].*" p == null;
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
        `nhc-server builder add` or `nhc-server token new` on the server.
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
        An absolute path without whitespace, quotes or backslashes.
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
        output in the store.

        Under nix-daemon (always the case on NixOS) Nix runs the diff-hook
        as the unprivileged build user, which cannot read the token or the
        signing key. The diff-hook therefore only reports: it prints the
        hash in the store and the hash of the rebuild to the build log
        (`HASH_COLLECTION_DIFF_REPORT_ONLY=1`) and sends, signs and spools
        nothing. Only the post-build-hook attests builds.
      '';
    };

    import = {
      enable = lib.mkEnableOption ''
        a systemd timer that runs `nhc import` on a schedule: signed narinfo of
        binary caches and attestations of other collections are submitted to
        {option}`services.hash-collection.collection-url` under the builder of
        {option}`services.hash-collection.import.tokenFile`. Independent of
        {option}`services.hash-collection.enable` (no signing key is needed)'';

      tokenFile = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/run/keys/hash-collection-import-token";
        description = ''
          Absolute path of the token of the builder the imports are submitted
          as; defaults to {option}`services.hash-collection.tokenFile`. Only
          signatures by that builder's keys are imported, so for a binary cache
          this is usually a builder registered with the cache's public key
          (e.g. `cache.nixos.org-1:…`), not this machine's builder. Loaded as a
          systemd credential; handled like
          {option}`services.hash-collection.tokenFile`.
        '';
      };

      caches = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "https://cache.nixos.org" ];
        description = ''
          Binary caches (`http://`, `https://` or `file://DIR`) to import
          narinfo from, for the paths of {option}`pathsFile` and of the latest
          evaluation of each of {option}`jobsets`.
        '';
      };

      pathsFile = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/hash-collection-import/paths";
        description = ''
          A file of store paths (one a line, `#` comments) to import from each
          of {option}`caches` (`nhc import --paths-from`). Read at run time, so
          another job may rewrite it between runs.
        '';
      };

      jobsets = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "nixos-unstable" ];
        description = ''
          Jobsets of the collection server whose latest evaluation's paths are
          imported from each of {option}`caches` (`nhc import --jobset NAME`).
        '';
      };

      collections = lib.mkOption {
        type = lib.types.attrsOf (
          lib.types.submodule {
            options = {
              url = lib.mkOption {
                type = lib.types.str;
                example = "https://other-collection.example.org";
                description = "Base URL of the other nhc-server.";
              };
              builder = lib.mkOption {
                type = lib.types.str;
                example = "hydra";
                description = ''
                  The builder on that server whose attestations are imported
                  (they must verify with the keys of this import's builder).
                '';
              };
            };
          }
        );
        default = { };
        example = lib.literalExpression ''{ other.url = "https://other.example.org"; other.builder = "hydra"; }'';
        description = ''
          Other collections to pull a builder's attestations from
          (`nhc import --collection URL --builder NAME`). Each remembers how far
          it got in `stateDir/collection-<name>.json`, so every run imports
          only what is new.
        '';
      };

      interval = lib.mkOption {
        type = lib.types.str;
        default = "1h";
        example = "6h";
        description = ''
          How long after the last run ended the timer runs the import again
          (systemd time span, `OnUnitInactiveSec=`).
        '';
      };

      concurrency = lib.mkOption {
        type = lib.types.ints.positive;
        default = 32;
        description = "Requests to a cache in flight at once (`nhc import --concurrency`).";
      };

      stateDir = lib.mkOption {
        type = lib.types.str;
        default = "/var/lib/hash-collection-import";
        description = ''
          Where the collection imports keep their state files. Owned by root,
          mode `0700`. An absolute path without whitespace, quotes or
          backslashes.
        '';
      };
    };

    rebuild = {
      enable = lib.mkEnableOption ''
        a systemd timer that runs `nhc rebuild` on a schedule: it asks
        {option}`services.hash-collection.collection-url` which paths of
        {option}`jobset`'s evaluation this builder has not attested, most useful
        first, and realises up to {option}`max` of their derivations through
        nix-daemon (`nix-store --realise`, `--check` when the output is present).
        The post-build-hook attests what is built, so it needs
        {option}`services.hash-collection.enable`'';

      jobset = lib.mkOption {
        type = lib.types.str;
        example = "nixos-unstable";
        description = "The jobset of the collection server whose suggestions are rebuilt.";
      };

      rev = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "2a3f5c1";
        description = ''
          The evaluation to rebuild from; `null` (the default): the jobset's
          latest evaluation at each run.
        '';
      };

      max = lib.mkOption {
        type = lib.types.ints.positive;
        default = 20;
        description = "Paths to rebuild per run at most, 1–1000 (`nhc rebuild --max`).";
      };

      jobs = lib.mkOption {
        type = lib.types.ints.positive;
        default = 1;
        description = ''
          Derivations realised at once, 1–64 (`nhc rebuild --jobs`); nix-daemon's
          own `max-jobs` and `cores` still apply to each.
        '';
      };

      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "daily";
        example = "*-*-* 02:00:00";
        description = ''
          When to run (systemd calendar event, `OnCalendar=`). A run missed
          while the machine was off runs at the next boot (`Persistent=`).
        '';
      };

      randomizedDelaySec = lib.mkOption {
        type = lib.types.str;
        default = "1h";
        example = "0";
        description = "A random delay up to this long before each run (systemd time span, `RandomizedDelaySec=`).";
      };

      tokenFile = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/run/keys/hash-collection-rebuild-token";
        description = ''
          Absolute path of the token `nhc rebuild` asks the server with (it
          learns the builder from it, `GET /v1/me`); defaults to
          {option}`services.hash-collection.tokenFile`. It must be a token of
          the builder the post-build-hook attests as (another token of the same
          builder, e.g. from `nhc-server token new`), or the suggestions never
          shrink. Loaded as a systemd credential; handled like
          {option}`services.hash-collection.tokenFile`.
        '';
      };
    };

    proxy = {
      enable = lib.mkEnableOption ''
        `nhc proxy`, a local substituter in front of {option}`upstream` that
        serves a path only when {option}`quorum` independent builders among
        {option}`trustedKeys` signed the upstream's NAR hash (their
        attestations fetched from the collection, their signatures checked
        locally). It becomes this machine's substituter, and the builders' keys
        its trusted-public-keys (see {option}`addSubstituter`)'';

      upstream = lib.mkOption {
        type = lib.types.str;
        default = "https://cache.nixos.org";
        description = "The binary cache served through the proxy (`http://` or `https://`).";
      };

      collection-url = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "https://hash-collection.example.org";
        description = ''
          The collection server whose attestations count. Defaults to
          {option}`services.hash-collection.collection-url`.
        '';
      };

      trustedKeys = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "builder-a-1:qbE9lsMWo66em4mwsvn6w6vOofhcIzcm4ArYTMmCUZs=" ];
        description = ''
          Public keys (`name:base64`) of the builders whose signatures count
          (`nhc proxy --trusted-key`). At least one.
        '';
      };

      quorum = lib.mkOption {
        type = lib.types.ints.positive;
        default = 2;
        description = "Independent trusted builders (or key groups) that must have signed the upstream's NAR hash.";
      };

      keyGroups = lib.mkOption {
        type = lib.types.attrsOf (lib.types.listOf lib.types.str);
        default = { };
        example = { alice = [ "alice-1" "alice-2" ]; };
        description = ''
          Key names run by one operator, counted as one builder
          (`nhc proxy --key-group NAME=KEY,KEY`).
        '';
      };

      onMismatch = lib.mkOption {
        type = lib.types.str;
        default = "refuse";
        description = ''
          `refuse` or `allow` a path that a trusted builder signed with another
          NAR hash (`nhc proxy --on-mismatch`).
        '';
      };

      onCollectionError = lib.mkOption {
        type = lib.types.str;
        default = "refuse";
        description = ''
          When the collection cannot be reached: `refuse` (404; Nix builds) or
          `pass` the upstream's narinfo through unchanged.
        '';
      };

      dryRun = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Serve everything the upstream has and only log what would be refused.
          Paths then carry only the signatures the proxy found, so Nix still
          needs a key it trusts among them.
        '';
      };

      listen = lib.mkOption {
        type = lib.types.str;
        default = "127.0.0.1:8090";
        description = "The address the proxy listens on (`nhc proxy --listen`).";
      };

      addSubstituter = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = ''
          Set `nix.settings.substituters` to the proxy and
          `nix.settings.trusted-public-keys` to {option}`trustedKeys`. Being
          definitions at normal priority, they replace NixOS's defaults
          (cache.nixos.org and its key): Nix then takes from the proxy only
          what the builders signed. Other definitions are merged in.
        '';
      };

      extraArgs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "--positive-ttl" "600" ];
        description = "More `nhc proxy` arguments.";
      };
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
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
          assertion = isPlainPath cfg.spoolDir;
          message = "services.hash-collection.spoolDir must be an absolute path without whitespace, quotes or backslashes.";
        }
      ];

      # Nix has exactly one post-build-hook. It is set at normal priority (not
      # mkDefault, which would let any other value silently switch reporting
      # off): a second module setting it is a "conflicting definition values"
      # error. Only a higher-priority override (mkForce) gets past that; say so.
      warnings =
        lib.optional ((config.nix.settings.post-build-hook or null) != "${postBuildHook}")
          "services.hash-collection: nix.settings.post-build-hook is overridden by another definition (Nix runs only one post-build-hook), so builds are not reported. Remove the override, or call `nhc-hook` from that hook (it reads ${configFile}).";

      environment.etc."hash-collection/config.toml".text = configText;

      environment.systemPackages = [ cfg.package ];

      nix.settings = {
        post-build-hook = "${postBuildHook}";
        run-diff-hook = lib.mkIf cfg.enableDiffHook true;
        diff-hook = lib.mkIf cfg.enableDiffHook "${diffHook}";
      };

      systemd.tmpfiles.rules = [ "d ${escapeSpecifiers cfg.spoolDir} 0700 root root - -" ];

      # `nhc flush` sends the spool; delivered and duplicate items leave it,
      # rejected ones move to rejected/.
      systemd.services.hash-collection-flush = {
        description = "Send spooled nix-hash-collection attestations";
        documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # Every spool write may start this unit (through the .path unit below),
        # and successful starts count too: with systemd's default start limit
        # (5 starts in 10 s) a burst of builds would fail it with
        # start-limit-hit, and the .path unit with it (unit-start-limit-hit),
        # leaving delivery to the timer. Starts are cheap and bounded by the
        # number of builds, so there is no limit.
        startLimitIntervalSec = 0;
        path = [ config.nix.package ];
        environment = {
          HASH_COLLECTION_SERVER = escapeSpecifiers cfg.collection-url;
          # %d is the service's credentials directory.
          HASH_COLLECTION_TOKEN_FILE = "%d/token";
          HASH_COLLECTION_SPOOL = escapeSpecifiers cfg.spoolDir;
          # Read only the system configuration, never a file under a home
          # directory (hidden by ProtectHome=).
          HASH_COLLECTION_CONFIG = configFile;
        };
        # Runs as root, systemd's default without User= (the spool is root's,
        # written by nix-daemon's hook), sandboxed by `hardening`.
        serviceConfig = hardening // {
          Type = "oneshot";
          ExecStart = "${flushScript}";
          # A server that accepts but never answers must not block later flushes.
          TimeoutStartSec = "30min";
          # Items in the spool are signed already: the flush needs the token,
          # not the signing key.
          LoadCredential = [ "token:${escapeSpecifiers cfg.tokenFile}" ];
          ReadWritePaths = [ (escapeSpecifiers cfg.spoolDir) ];
        };
      };

      # Flush as soon as something is spooled. PathChanged= (edge-triggered)
      # rather than DirectoryNotEmpty=: the spool keeps rejected/ and, while the
      # server is down, undeliverable items, which would retrigger the flush in
      # a loop. The timer retries those.
      systemd.paths.hash-collection-flush = {
        description = "Flush the nix-hash-collection spool when it changes";
        wantedBy = [ "paths.target" ];
        # Restarts of the path unit itself (e.g. by switch-to-configuration).
        startLimitIntervalSec = 0;
        pathConfig = {
          PathChanged = escapeSpecifiers cfg.spoolDir;
          Unit = "hash-collection-flush.service";
          MakeDirectory = true;
          DirectoryMode = "0700";
          # systemd >= 250 also limits how often a path unit triggers (default
          # 200 in 2 s) and, when that is hit, fails the path unit for good.
          # No busy loop is possible here: systemd stops watching while the
          # flush runs and PathChanged= does not re-fire when it ends, so
          # triggers are at most one per flush run and per spool write (per
          # build). A hit could only ever turn delivery off, so no limit.
          TriggerLimitIntervalSec = 0;
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
    })

    (lib.mkIf icfg.enable {
      assertions = [
        {
          assertion = cfg.collection-url != null && builtins.match "https?://.+" cfg.collection-url != null;
          message = "services.hash-collection.import needs services.hash-collection.collection-url, an http:// or https:// URL.";
        }
        {
          assertion = isAbsolute importTokenFile && !inStore importTokenFile;
          message = "services.hash-collection.import.tokenFile (or services.hash-collection.tokenFile) must be an absolute path outside the Nix store (a string, not a Nix path literal).";
        }
        {
          assertion = icfg.caches != [ ] || icfg.collections != { };
          message = "services.hash-collection.import: nothing to import; set caches or collections.";
        }
        {
          assertion = icfg.caches == [ ] || icfg.pathsFile != null || icfg.jobsets != [ ];
          message = "services.hash-collection.import.caches needs the paths to import: pathsFile or jobsets.";
        }
        {
          assertion = icfg.pathsFile == null || (isAbsolute icfg.pathsFile && !inStore icfg.pathsFile);
          message = "services.hash-collection.import.pathsFile must be an absolute path outside the Nix store.";
        }
        {
          assertion = lib.all (c: builtins.match "(https?|file)://.+" c != null) icfg.caches;
          message = "services.hash-collection.import.caches must be http://, https:// or file:// URLs.";
        }
        {
          assertion = lib.all (n: builtins.match "[A-Za-z0-9][A-Za-z0-9._-]*" n != null) (lib.attrNames icfg.collections);
          message = "services.hash-collection.import.collections: names are letters, digits, '.', '_' and '-' (they name state files).";
        }
        {
          assertion = lib.all (c: builtins.match "https?://.+" c.url != null) (lib.attrValues icfg.collections);
          message = "services.hash-collection.import.collections.<name>.url must be an http:// or https:// URL.";
        }
        {
          assertion = isPlainPath icfg.stateDir;
          message = "services.hash-collection.import.stateDir must be an absolute path without whitespace, quotes or backslashes.";
        }
      ];

      environment.systemPackages = [ cfg.package ];

      systemd.tmpfiles.rules = [ "d ${escapeSpecifiers icfg.stateDir} 0700 root root - -" ];

      systemd.services.hash-collection-import = {
        description = "Import signed narinfo and other collections' attestations into nix-hash-collection";
        documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        environment = {
          HASH_COLLECTION_SERVER = escapeSpecifiers cfg.collection-url;
          # %d is the service's credentials directory.
          HASH_COLLECTION_TOKEN_FILE = "%d/token";
          # Only the environment: the system configuration holds the hook's
          # settings (its token, spool and key), none of which apply here.
          HASH_COLLECTION_CONFIG = "/dev/null";
        };
        # Root for the state directory and for reading pathsFile and file://
        # caches wherever they are; sandboxed by `hardening` (read-only system,
        # no capabilities).
        serviceConfig = hardening // {
          Type = "oneshot";
          ExecStart = "${importScript}";
          # A large first import takes long; a hung one must not stop the timer for good.
          TimeoutStartSec = "6h";
          LoadCredential = [ "token:${escapeSpecifiers importTokenFile}" ];
          ReadWritePaths = [ (escapeSpecifiers icfg.stateDir) ];
        };
      };

      systemd.timers.hash-collection-import = {
        description = "Run nix-hash-collection imports on a schedule";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "5min";
          OnUnitInactiveSec = icfg.interval;
          RandomizedDelaySec = "5min";
          Unit = "hash-collection-import.service";
        };
      };
    })
    (lib.mkIf rcfg.enable {
      assertions = [
        {
          assertion = cfg.enable;
          message = "services.hash-collection.rebuild needs services.hash-collection.enable: the post-build-hook attests what is rebuilt.";
        }
        {
          assertion = isAbsolute rebuildTokenFile && !inStore rebuildTokenFile;
          message = "services.hash-collection.rebuild.tokenFile (or services.hash-collection.tokenFile) must be an absolute path outside the Nix store (a string, not a Nix path literal).";
        }
        {
          assertion = builtins.match "[A-Za-z0-9][A-Za-z0-9._-]{0,63}" rcfg.jobset != null;
          message = "services.hash-collection.rebuild.jobset must be a jobset name: letters, digits, '.', '_' and '-'.";
        }
        {
          assertion = rcfg.rev == null || builtins.match "[A-Za-z0-9._-]{1,128}" rcfg.rev != null;
          message = "services.hash-collection.rebuild.rev must be null or 1 to 128 letters, digits, '.', '_' and '-'.";
        }
        {
          assertion = rcfg.max <= 1000 && rcfg.jobs <= 64;
          message = "services.hash-collection.rebuild: max is at most 1000, jobs at most 64.";
        }
      ];

      # `nhc rebuild` is a client of nix-daemon: it asks the daemon to realise
      # (substitute or build) each derivation; the daemon builds in its own
      # sandbox as its build users and runs the post-build-hook (as root, with
      # the key), which attests. So this unit needs no build rights of its own
      # beyond a connection to the daemon, which every user in
      # nix.settings.allowed-users has, and root always. It runs as root, like
      # the flush and the import (its state is root's), sandboxed by
      # `hardening`, which leaves the daemon's socket reachable (AF_UNIX;
      # connect() works on a read-only file system). NIX_REMOTE=daemon makes
      # root use the daemon instead of opening the store itself (read-only
      # here). Nice= and IOSchedulingClass= apply to the client only: builds
      # run at nix-daemon's priority (nix.daemonCPUSchedPolicy).
      systemd.services.hash-collection-rebuild = {
        description = "Rebuild what a nix-hash-collection jobset has too few builders for";
        documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
        wants = [
          "network-online.target"
          "nix-daemon.socket"
        ];
        after = [
          "network-online.target"
          "nix-daemon.socket"
        ];
        path = [ config.nix.package ];
        environment = {
          HASH_COLLECTION_SERVER = escapeSpecifiers cfg.collection-url;
          # %d is the service's credentials directory.
          HASH_COLLECTION_TOKEN_FILE = "%d/token";
          # Only the environment: the hook's key and spool do not apply here.
          HASH_COLLECTION_CONFIG = "/dev/null";
          NIX_REMOTE = "daemon";
        };
        serviceConfig = hardening // {
          Type = "oneshot";
          ExecStart = lib.escapeShellArgs rebuildArgs;
          # Builds take long; a hung one must not stop the timer for good
          # (stopping the unit makes nix-daemon cancel its builds).
          TimeoutStartSec = "20h";
          LoadCredential = [ "token:${escapeSpecifiers rebuildTokenFile}" ];
          # The failures file (`--state`): paths that failed are skipped by
          # later runs.
          StateDirectory = "hash-collection-rebuild";
          StateDirectoryMode = "0700";
        };
      };

      systemd.timers.hash-collection-rebuild = {
        description = "Rebuild nix-hash-collection suggestions on a schedule";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = rcfg.onCalendar;
          RandomizedDelaySec = rcfg.randomizedDelaySec;
          Persistent = true;
          Unit = "hash-collection-rebuild.service";
        };
      };
    })
    (lib.mkIf pcfg.enable {
      assertions = [
        {
          assertion = proxyCollection != null && builtins.match "https?://.+" proxyCollection != null;
          message = "services.hash-collection.proxy needs collection-url (or services.hash-collection.collection-url), an http:// or https:// URL.";
        }
        {
          assertion = builtins.match "https?://.+" pcfg.upstream != null;
          message = "services.hash-collection.proxy.upstream must be an http:// or https:// URL.";
        }
        {
          assertion = pcfg.trustedKeys != [ ] && pcfg.quorum <= lib.length pcfg.trustedKeys;
          message = "services.hash-collection.proxy: trustedKeys must hold at least quorum keys.";
        }
        {
          assertion = lib.elem pcfg.onMismatch [ "refuse" "allow" ] && lib.elem pcfg.onCollectionError [ "refuse" "pass" ];
          message = "services.hash-collection.proxy: onMismatch is refuse or allow, onCollectionError refuse or pass.";
        }
      ];

      environment.systemPackages = [ cfg.package ];

      nix.settings = lib.mkIf pcfg.addSubstituter {
        substituters = [ "http://${pcfg.listen}" ];
        trusted-public-keys = pcfg.trustedKeys;
      };

      systemd.services.hash-collection-proxy = {
        description = "nix-hash-collection substituter: serves what a quorum of builders reproduced";
        documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # nix-daemon asks it for every substitution.
        before = [ "nix-daemon.service" ];
        environment.HASH_COLLECTION_CONFIG = "/dev/null";
        serviceConfig = removeAttrs hardening [ "Nice" "IOSchedulingClass" ] // {
          ExecStart = lib.escapeShellArgs ([ nhcBin ] ++ map escapeSpecifiers proxyArgs);
          DynamicUser = true;
          Restart = "on-failure";
          RestartSec = "2s";
        };
      };
    })
  ];
}
