# NixOS module for the nix-hash-collection server (`nhc-server serve`).
#
#   services.hash-collection-server = {
#     enable = true;
#     listen = "[::]:8080";
#     openFirewall = true;
#     adminTokenFile = "/run/keys/hash-collection-admin-token";
#     builders.builder-1.publicKeys = [ "builder-1:..." ];
#   };
#
# The service runs as a dynamic user with its state (the SQLite database) in
# /var/lib/hash-collection-server. Tokens are never written to the journal:
# the administrator issues them with `nhc-server token new NAME`.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.hash-collection-server;

  stateDir = "/var/lib/hash-collection-server";
  # Service user; with database.createLocally also the PostgreSQL role and
  # database (peer authentication matches the system user to the role).
  user = "hash-collection";

  sqliteUrl = "sqlite://${stateDir}/nhc.db";
  localPostgresUrl = "postgres:///${user}?host=/run/postgresql&user=${user}";

  nhcServer = lib.getExe' cfg.package "nhc-server";

  # systemd expands specifiers (%d, %h, ...) in Environment=, LoadCredential=
  # and EnvironmentFile=; "%%" is a literal "%" (a postgres URL with %2F, an
  # IPv6 scope id [fe80::1%eth0]). User-supplied values in unit settings pass
  # through this; the module's own "%d" does not. Not applied to the admin
  # CLI: systemd-run sends --setenv/--property values over D-Bus, where
  # specifiers are not expanded. No user value reaches ExecStart= or
  # ExecStartPre= (builder names and keys live in the script's text).
  escapeSpecifiers = lib.replaceStrings [ "%" ] [ "%%" ];

  # "ADDR:PORT" or "[V6ADDR]:PORT", as std::net::SocketAddr parses it.
  listenMatch = builtins.match "(([0-9]{1,3}\\.){3}[0-9]{1,3}|\\[[0-9a-fA-F:.]+(%[a-zA-Z0-9]+)?]):([0-9]{1,5})" cfg.listen;
  port = if listenMatch == null then 0 else lib.toIntBase10 (lib.last listenMatch);

  # Registers the declared builders that do not exist yet; never changes or
  # removes existing ones. The first token printed by `builder add` is discarded:
  # tokens stay out of the journal.
  ensureBuilders = pkgs.writeShellScript "hash-collection-server-ensure-builders" ''
    set -eu -o pipefail
    existing=$(${nhcServer} builder list --json)
    ${lib.concatStrings (
      lib.mapAttrsToList (name: builder: ''
        if ${lib.getExe pkgs.jq} -e --arg n ${lib.escapeShellArg name} 'any(.[]; .name == $n)' <<<"$existing" >/dev/null; then
          if ! ${lib.getExe pkgs.jq} -e --arg n ${lib.escapeShellArg name} --argjson k ${lib.escapeShellArg (builtins.toJSON builder.publicKeys)} \
              '(.[] | select(.name == $n) | .public_keys | sort) == ($k | sort)' <<<"$existing" >/dev/null; then
            echo "<4>builder "${lib.escapeShellArg name}" is registered with other public keys than configured; left unchanged (delete it with 'nhc-server builder delete' to re-register)" >&2
          fi
        elif ${nhcServer} builder add ${lib.escapeShellArg name} ${
          lib.concatMapStringsSep " " (k: "--public-key ${lib.escapeShellArg k}") builder.publicKeys
        } >/dev/null; then
          echo "builder "${lib.escapeShellArg name}" registered; issue its token with: nhc-server token new "${lib.escapeShellArg name} >&2
        else
          echo "<3>could not register builder "${lib.escapeShellArg name}" (see the error above); the server starts without it" >&2
        fi
      '') cfg.builders
    )}
  '';

  # `nhc-server` for the administrator: runs the CLI as the service's user,
  # with the service's database settings, so that SQLite files keep the right
  # owner and PostgreSQL peer authentication works. Run it as root.
  adminCli = pkgs.writeShellScriptBin "nhc-server" ''
    exec ${config.systemd.package}/bin/systemd-run \
      --quiet --collect --wait --pipe --service-type=exec \
      --unit="hash-collection-server-cli-$$" \
      --property=DynamicUser=yes \
      --property=User=${user} \
      --property=Group=${user} \
      --property=StateDirectory=hash-collection-server \
      --property=StateDirectoryMode=0700 \
      --property=UMask=0077 \
      --working-directory=${stateDir} \
      ${lib.optionalString (
        cfg.environmentFile != null
      ) "--property=EnvironmentFile=${lib.escapeShellArg cfg.environmentFile}"} \
      --setenv=DATABASE_URL=${lib.escapeShellArg cfg.database.url} \
      --setenv=RUST_LOG=warn \
      -- ${nhcServer} "$@"
  '';
in
{
  options.services.hash-collection-server = {
    enable = lib.mkEnableOption "the nix-hash-collection server";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.nix-hash-collection or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.nix-hash-collection";
      description = ''
        The nix-hash-collection package providing `nhc-server`.
      '';
    };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:8080";
      example = "[::]:8080";
      description = ''
        Address and port to listen on (`NHC_LISTEN`), as `IPV4:PORT` or
        `[IPV6]:PORT`. Put a TLS-terminating reverse proxy in front of it for
        builders outside a trusted network.
      '';
    };

    database = {
      url = lib.mkOption {
        type = lib.types.str;
        default = if cfg.database.createLocally then localPostgresUrl else sqliteUrl;
        defaultText = lib.literalExpression ''
          if config.services.hash-collection-server.database.createLocally
          then "${localPostgresUrl}"
          else "${sqliteUrl}"
        '';
        example = "postgres://hash-collection@db.example.org/hash-collection";
        description = ''
          Database URL (`DATABASE_URL`): `sqlite://FILE` (created and migrated
          on start) or `postgres://USER@HOST/DB`. Written as given: a `%`
          (e.g. `%2F` in a socket path) is escaped for systemd. This value is
          world-readable in the Nix store: put a URL with a password into
          {option}`environmentFile` as `DATABASE_URL=...` instead, which
          overrides this option.
        '';
      };

      createLocally = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Whether to run a local PostgreSQL (`services.postgresql`) with a
          database and role named `${user}`, reached over the Unix socket in
          `/run/postgresql` with peer authentication (no password).
        '';
      };
    };

    adminTokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/hash-collection-admin-token";
      description = ''
        File holding the token for the admin API (`/v1/admin/...`), passed to
        the service as a systemd credential (`NHC_ADMIN_TOKEN_FILE`). May be
        readable by root only. Without it the admin API answers 401; builders
        can still be managed with the `nhc-server` command on this machine.
      '';
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/keys/hash-collection-server.env";
      description = ''
        File of `NAME=value` lines loaded into the service's environment
        (systemd `EnvironmentFile=`), read by systemd as root. Use it for
        secrets such as `DATABASE_URL=postgres://user:password@host/db`, or
        for settings like `RUST_LOG=debug` or `NHC_SQLITE_SYNC=normal`.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Whether to open the TCP port of {option}`services.hash-collection-server.listen`
        in the firewall.
      '';
    };

    builders = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.submodule {
          options.publicKeys = lib.mkOption {
            type = lib.types.nonEmptyListOf lib.types.str;
            example = [ "builder-1:qbE9lsMWo66em4mwsvn6w6vOofhcIzcm4ArYTMmCUZs=" ];
            description = ''
              The builder's Nix public keys (`name:base64`, as
              `nix key convert-secret-to-public` prints them).
            '';
          };
        }
      );
      default = { };
      example = lib.literalExpression ''
        {
          builder-1.publicKeys = [ "builder-1:qbE9lsMWo66em4mwsvn6w6vOofhcIzcm4ArYTMmCUZs=" ];
        }
      '';
      description = ''
        Builders to register before the server starts, by name (1–64
        characters of `A-Za-z0-9._-`, starting with a letter or digit).
        Missing ones are created with `nhc-server builder add`; existing ones are
        never changed or removed. No token is shown: issue one with
        `nhc-server token new NAME` on this machine, as root.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = listenMatch != null && port > 0 && port < 65536;
        message = "services.hash-collection-server.listen must be IPV4:PORT or [IPV6]:PORT, got \"${cfg.listen}\".";
      }
      {
        assertion = !cfg.database.createLocally || lib.hasPrefix "postgres" cfg.database.url;
        message = "services.hash-collection-server.database.createLocally needs a postgres:// database.url.";
      }
      {
        assertion =
          lib.hasPrefix "sqlite:" cfg.database.url
          || lib.hasPrefix "postgres://" cfg.database.url
          || lib.hasPrefix "postgresql://" cfg.database.url;
        message = "services.hash-collection-server.database.url must start with sqlite:, postgres:// or postgresql://.";
      }
      {
        assertion = lib.all (
          name: builtins.match "[A-Za-z0-9][A-Za-z0-9._-]{0,63}" name != null
        ) (lib.attrNames cfg.builders);
        message = "services.hash-collection-server.builders: names are 1-64 characters of A-Za-z0-9._- starting with a letter or digit.";
      }
      {
        assertion = cfg.adminTokenFile == null || lib.hasPrefix "/" cfg.adminTokenFile;
        message = "services.hash-collection-server.adminTokenFile must be an absolute path (a string, not a Nix path literal).";
      }
    ];

    # The wrapper shadows the raw binary: see adminCli above.
    environment.systemPackages = [ (lib.hiPrio adminCli) ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ port ];

    services.postgresql = lib.mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ user ];
      ensureUsers = [
        {
          name = user;
          ensureDBOwnership = true;
        }
      ];
    };

    systemd.services.hash-collection-server = {
      description = "nix-hash-collection server";
      documentation = [ "https://github.com/nix-community/nix-hash-collection" ];
      wantedBy = [ "multi-user.target" ];
      # postgresql.target exists on NixOS 25.11 and later (reached once the
      # ensure* setup is done); an After=/Wants= on a missing unit is harmless.
      wants = lib.optional cfg.database.createLocally "postgresql.target";
      requires = lib.optional cfg.database.createLocally "postgresql.service";
      after = [
        "network.target"
      ]
      ++ lib.optionals cfg.database.createLocally [
        "postgresql.service"
        "postgresql.target"
      ];

      environment = {
        NHC_LISTEN = escapeSpecifiers cfg.listen;
        DATABASE_URL = escapeSpecifiers cfg.database.url;
      }
      // lib.optionalAttrs (cfg.adminTokenFile != null) {
        # %d is the service's credentials directory.
        NHC_ADMIN_TOKEN_FILE = "%d/admin-token";
      };

      # The sandbox shared with the client's services (nix/hardening.nix), then what
      # is the server's own.
      serviceConfig = import ./hardening.nix // {
        Type = "exec";
        ExecStartPre = lib.optional (cfg.builders != { }) "${ensureBuilders}";
        ExecStart = "${nhcServer} serve";
        Restart = "on-failure";
        RestartSec = "5s";
        LoadCredential = lib.optional (
          cfg.adminTokenFile != null
        ) "admin-token:${escapeSpecifiers cfg.adminTokenFile}";
        EnvironmentFile = lib.optional (cfg.environmentFile != null) (escapeSpecifiers cfg.environmentFile);

        DynamicUser = true;
        User = user;
        Group = user;
        StateDirectory = "hash-collection-server";
        StateDirectoryMode = "0700";
        WorkingDirectory = stateDir;
        UMask = "0077";

        # Only a port below 1024 needs a capability.
        CapabilityBoundingSet = if port < 1024 then "CAP_NET_BIND_SERVICE" else "";
        AmbientCapabilities = if port < 1024 then "CAP_NET_BIND_SERVICE" else "";
        PrivateUsers = port >= 1024;
      };
    };
  };
}
