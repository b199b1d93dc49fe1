# Evaluates the NixOS modules, the package, flake.nix, default.nix and the VM
# test without nixpkgs, for nix/check.sh:
#
#   nix-instantiate --eval --strict --json nix/tests/options-check.nix
#
# A small stand-in for nixpkgs' `lib` implements only what these files use,
# with the same names and meaning as in nixpkgs, plus a tiny module evaluator
# (options with defaults and type checks, mkIf/mkDefault/mkForce). It fails
# (throws) when an option is missing, renamed or added without updating the
# lists below, when a sample configuration does not type-check, or when the
# generated configuration lost a property the project relies on. On success
# it prints the generated shell scripts and the test script as JSON, for
# `bash -n` and a Python syntax check.
let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    elem
    filter
    isAttrs
    isBool
    isFunction
    isList
    isString
    length
    mapAttrs
    match
    readFile
    replaceStrings
    stringLength
    substring
    ;

  # ---- stand-in for nixpkgs lib ---------------------------------------------
  lib = rec {
    inherit all attrNames elem replaceStrings;
    hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
    hasSuffix =
      suf: str:
      let
        ls = stringLength str;
        lf = stringLength suf;
      in
      lf <= ls && substring (ls - lf) lf str == suf;
    removePrefix =
      pref: str: if hasPrefix pref str then substring (stringLength pref) (stringLength str) str else str;
    removeSuffix =
      suf: str: if hasSuffix suf str then substring 0 (stringLength str - stringLength suf) str else str;
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    concatStrings = concatStringsSep "";
    concatMapStrings = f: xs: concatStringsSep "" (map f xs);
    attrValues = builtins.attrValues;
    concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);
    inherit concatStringsSep length;
    concatMap = builtins.concatMap;
    mapAttrsToList = f: as: map (n: f n as.${n}) (attrNames as);
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    last = xs: builtins.elemAt xs (length xs - 1);
    # As in nixpkgs: toInt refuses zero padding (octal or decimal?),
    # toIntBase10 strips it; both allow surrounding whitespace and a sign.
    toInt =
      s:
      let
        m = match "[[:space:]]*(-?[[:digit:]]+)[[:space:]]*" s;
      in
      if m == null || match "-?0[[:digit:]]+" (builtins.head m) != null then
        throw "toInt: could not convert ${s} to int"
      else
        builtins.fromJSON (builtins.head m);
    toIntBase10 =
      s:
      let
        m = match "[[:space:]]*0*(-?[[:digit:]]+)[[:space:]]*" s;
      in
      if m == null then
        throw "toIntBase10: could not convert ${s} to int"
      else if match "0+" (builtins.head m) != null then
        0
      else
        builtins.fromJSON (builtins.head m);
    splitLines = s: filter isString (builtins.split "\n" s);
    fileContents = f: removeSuffix "\n" (readFile f);
    importTOML = f: builtins.fromTOML (readFile f);
    escapeShellArg =
      arg:
      let
        s = toString arg;
      in
      if match "[[:alnum:],._+:@%/-]+" s == null then "'${replaceStrings [ "'" ] [ "'\\''" ] s}'" else s;
    escapeShellArgs = xs: concatStringsSep " " (map escapeShellArg xs);
    getExe' = drv: name: "${drv}/bin/${name}";
    getExe = drv: getExe' drv drv.meta.mainProgram;
    hiPrio = drv: drv // { meta = (drv.meta or { }) // { priority = -10; }; };
    cleanSource = src: src;
    cleanSourceWith = args: { _type = "cleanSourceWith"; } // args;
    licenses.mit = "mit";
    platforms.unix = [ ];

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = "Whether to enable ${name}.";
      };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };

    types = rec {
      mk = name: check: extra: { inherit name check; } // extra;
      bool = mk "bool" isBool { };
      str = mk "str" isString { };
      ints.positive = mk "positive int" (x: builtins.isInt x && x > 0) { };
      package = mk "package" (x: isAttrs x && x.type or null == "derivation") { };
      nullOr = t: mk "nullOr" (x: x == null || t.check x) { elem = t; };
      listOf = t: mk "listOf" (x: isList x && all t.check x) { elem = t; };
      nonEmptyListOf = t: mk "nonEmptyListOf" (x: (listOf t).check x && x != [ ]) { elem = t; };
      attrsOf = t: mk "attrsOf" (x: isAttrs x && all t.check (builtins.attrValues x)) { elem = t; };
      submodule = module: mk "submodule" isAttrs { inherit module; };
    };
  };

  # ---- stand-in for pkgs ----------------------------------------------------
  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${substring 0 32 (builtins.hashString "sha256" name)}-${name}";
      meta = { };
    }
    // extra;

  basePkgs = {
    inherit lib;
    coreutils = fakeDrv "coreutils" { };
    jq = fakeDrv "jq" { meta.mainProgram = "jq"; };
    curl = fakeDrv "curl" { };
    writeShellScript = name: text: builtins.toFile name "#!/bin/bash\n${text}";
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
    writeText = name: text: builtins.toFile name text;
    testers.runNixOSTest = test: test;
    mkShell = args: fakeDrv "shell" { inherit args; };
    rustPlatform = {
      buildRustPackage = args: fakeDrv "${args.pname}-${args.version}" { inherit args; };
      rustLibSrc = fakeDrv "rust-lib-src" { };
    };
    nixfmt-tree = fakeDrv "nixfmt-tree" { };
  }
  // lib.genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "rust-analyzer" "sqlite" "postgresql" "wrk" ] (
    n: fakeDrv n { }
  );
  callPackageWith =
    pkgs: f: args:
    let
      fn = import f;
    in
    fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);

  # Without the overlay: the modules fall back to callPackage ../package.nix.
  pkgsPlain = basePkgs // {
    callPackage = callPackageWith pkgsPlain;
  };
  # With the overlay applied.
  pkgs = pkgsPlain // {
    nix-hash-collection = fakeDrv "nix-hash-collection-0.1.0" { meta.mainProgram = "nhc"; };
  };

  # ---- a tiny module evaluator ------------------------------------------------
  isOption = x: isAttrs x && x._type or null == "option";
  unwrap = d: if isAttrs d && d._type or null == "override" then unwrap d.content else d;

  # Option paths below `opts`, nested groups joined with "." and the options
  # of attrsOf-submodule values under "<name>".
  optionNames =
    prefix: opts:
    builtins.concatMap (
      n:
      let
        o = opts.${n};
        p = if prefix == "" then n else "${prefix}.${n}";
      in
      if isOption o then
        [ p ]
        ++ (
          if o.type.name == "attrsOf" && o.type.elem.name == "submodule" then
            optionNames "${p}.<name>" (submoduleOptions o.type.elem.module "<name>")
          else
            [ ]
        )
      else
        optionNames p o
    ) (attrNames opts);

  submoduleOptions =
    module: name:
    (
      if isFunction module then
        module {
          inherit lib name;
          config = { };
        }
      else
        module
    ).options;

  fill =
    path: opts: defs:
    let
      unknown = filter (n: !(opts ? ${n})) (attrNames defs);
    in
    if !isAttrs defs then
      throw "${path}: is a group of options, not a value"
    else if unknown != [ ] then
      throw "${path}: no such option: ${concatStringsSep ", " unknown}"
    else
      mapAttrs (
        n: o:
        let
          p = "${path}.${n}";
        in
        if isOption o then
          optionValue p o (defs ? ${n}) (defs.${n} or null)
        else
          fill p o (defs.${n} or { })
      ) opts;

  optionValue =
    p: o: defined: def:
    let
      raw =
        if defined then
          unwrap def
        else if o ? default then
          o.default
        else
          throw "${p}: used but not defined";
      value =
        if o.type.name == "attrsOf" && o.type.elem.name == "submodule" then
          mapAttrs (n: v: fill "${p}.${n}" (submoduleOptions o.type.elem.module n) v) raw
        else
          raw;
    in
    if !(o ? description) && o.type.name != "bool" then
      throw "${p}: no description"
    else if o.type.check value then
      value
    else
      throw "${p}: the value does not have type ${o.type.name}";

  # mkIf/mkOverride/mkMerge pushed through attribute sets; a false mkIf
  # removes the attribute, as in the module system; mkMerge merges its parts
  # (lists concatenated, the same value twice allowed, else a conflict).
  absent = {
    _type = "absent";
  };
  isAbsent = v: isAttrs v && v._type or null == "absent";
  isPlainAttrs = v: isAttrs v && v.type or null != "derivation";
  merge2 =
    path: a: b:
    if isPlainAttrs a && isPlainAttrs b then
      a
      // mapAttrs (n: bv: if a ? ${n} then merge2 "${path}.${n}" a.${n} bv else bv) b
    else if isList a && isList b then
      a ++ b
    else if a == b then
      a
    else
      throw "${path}: conflicting definition values";
  resolve =
    v:
    if !isAttrs v || v.type or null == "derivation" then
      v
    else if v._type or null == "merge" then
      (
        let
          parts = filter (p: !isAbsent p) (map resolve v.contents);
        in
        if parts == [ ] then absent else builtins.foldl' (merge2 "config") { } parts
      )
    else if v._type or null == "if" then
      (if v.condition then resolve v.content else absent)
    else if v._type or null == "override" then
      resolve v.content
    else
      lib.optionalAttrs (v._type or null != "absent") (
        builtins.removeAttrs (mapAttrs (_: resolve) v) (
          filter (n: isAttrs v.${n} && v.${n}._type or null == "if" && !v.${n}.condition) (attrNames v)
        )
      );

  baseConfig = {
    nix.package = fakeDrv "nix-2.31" { };
    systemd.package = fakeDrv "systemd-258" { };
  };

  # Evaluates `module` with `defs` as the definitions of its options under
  # services.<service>. Returns the option names and the resolved config.
  # config.nix.settings is what the module itself sets (a second pass, since
  # this evaluator has no fixpoint), or `nixSettings` when given: the effect
  # of another module's higher-priority definitions.
  evalModule =
    {
      module,
      service,
      defs,
      pkgs,
      nixSettings ? null,
    }:
    let
      evalWith =
        settings:
        let
          m = import module { inherit config lib pkgs; };
          values = fill "services" m.options.services { ${service} = defs; };
          config = baseConfig // {
            services = values;
            nix = baseConfig.nix // {
              inherit settings;
            };
          };
          r = resolve m.config;
        in
        {
          inherit m values;
          resolved = if r._type or null == "absent" then { } else r;
        };
      first = evalWith { };
      final = evalWith (if nixSettings != null then nixSettings else first.resolved.nix.settings or { });
      inherit (final) m values resolved;
      failed = filter (a: !a.assertion) (resolved.assertions or [ ]);
    in
    {
      options = optionNames "" m.options.services.${service};
      cfg = values.${service};
      config = resolved;
      failedAssertions = map (a: a.message) failed;
      warnings = resolved.warnings or [ ];
    };

  check = cond: msg: if cond then true else throw "check failed: ${msg}";
  checkAll = checks: builtins.deepSeq (map (c: check c.c c.m) checks) true;
  fails = x: !(builtins.tryEval (builtins.deepSeq x x)).success;
  # lib.strings.hasInfix
  has =
    needle: hay:
    let
      ln = stringLength needle;
      lh = stringLength hay;
    in
    ln <= lh && builtins.any (i: substring i ln hay == needle) (builtins.genList (i: i) (lh - ln + 1));

  # ---- expected option names --------------------------------------------------
  clientOptions = [
    "async"
    "collection-url"
    "enable"
    "enableDiffHook"
    "flushInterval"
    "import.caches"
    "import.collections"
    "import.collections.<name>.builder"
    "import.collections.<name>.url"
    "import.concurrency"
    "import.enable"
    "import.interval"
    "import.jobsets"
    "import.pathsFile"
    "import.stateDir"
    "import.tokenFile"
    "package"
    "proxy.addSubstituter"
    "proxy.collection-url"
    "proxy.dryRun"
    "proxy.enable"
    "proxy.extraArgs"
    "proxy.keyGroups"
    "proxy.listen"
    "proxy.onCollectionError"
    "proxy.onMismatch"
    "proxy.quorum"
    "proxy.trustedKeys"
    "proxy.upstream"
    "rebuild.enable"
    "rebuild.jobs"
    "rebuild.jobset"
    "rebuild.max"
    "rebuild.onCalendar"
    "rebuild.randomizedDelaySec"
    "rebuild.rev"
    "rebuild.tokenFile"
    "secretKeyFile"
    "spoolDir"
    "tokenFile"
  ];
  serverOptions = [
    "adminTokenFile"
    "builders"
    "builders.<name>.publicKeys"
    "database.createLocally"
    "database.url"
    "enable"
    "environmentFile"
    "listen"
    "openFirewall"
    "package"
  ];
  sameList = a: b: builtins.sort builtins.lessThan a == builtins.sort builtins.lessThan b;

  # ---- client -------------------------------------------------------------------
  client = defs: evalModule {
    module = ../module.nix;
    service = "hash-collection";
    inherit defs pkgs;
  };
  # Exactly the configuration the seed promises.
  seed = client {
    enable = true;
    collection-url = "https://hash-collection.example.org";
    tokenFile = "/run/keys/hash-collection-token";
    secretKeyFile = "/run/keys/hash-collection-key";
  };
  seedHook = readFile seed.config.nix.settings.post-build-hook;
  flush = seed.config.systemd.services.hash-collection-flush;
  flushScript = readFile flush.serviceConfig.ExecStart;
  # "%" in every value that reaches systemd; "=" makes the shell quote.
  asyncClient = client {
    enable = true;
    collection-url = "http://10.0.0.1:8080/a%2Fb";
    tokenFile = "/var/lib/secrets/token%n";
    secretKeyFile = "/var/lib/secrets/key";
    async = true;
    spoolDir = "/var/spool/hash=collection%d";
    enableDiffHook = true;
  };
  asyncHook = readFile asyncClient.config.nix.settings.post-build-hook;
  diffHook = readFile asyncClient.config.nix.settings.diff-hook;
  asyncFlush = asyncClient.config.systemd.services.hash-collection-flush;
  asyncPath = asyncClient.config.systemd.paths.hash-collection-flush;
  seedConf = seed.config.environment.etc."hash-collection/config.toml".text;
  # Another module forces its own post-build-hook (Nix runs only one).
  overriddenClient = evalModule {
    module = ../module.nix;
    service = "hash-collection";
    defs = seed.cfg // { package = pkgs.nix-hash-collection; };
    inherit pkgs;
    nixSettings = { post-build-hook = "/nix/store/00000000000000000000000000000000-other-hook"; };
  };
  badClient = client {
    enable = true;
    collection-url = "ftp://example.org";
    tokenFile = "/nix/store/00000000000000000000000000000000-token";
  };
  # Falls back to callPackage ../package.nix when pkgs has no nix-hash-collection.
  plainClient = evalModule {
    module = ../module.nix;
    service = "hash-collection";
    defs = { enable = false; };
    pkgs = pkgsPlain;
  };

  clientChecks = checkAll [
    { c = sameList seed.options clientOptions; m = "client options are ${toString seed.options}, expected ${toString clientOptions}"; }
    { c = seed.failedAssertions == [ ]; m = "seed config fails assertions: ${toString seed.failedAssertions}"; }
    { c = has "export HASH_COLLECTION_SERVER=https://hash-collection.example.org\n" seedHook; m = "hook exports the server URL"; }
    { c = has "export HASH_COLLECTION_TOKEN_FILE=/run/keys/hash-collection-token\n" seedHook; m = "hook exports the token file path"; }
    { c = has "export HASH_COLLECTION_SECRET_KEY_FILE=/run/keys/hash-collection-key\n" seedHook; m = "hook exports the key file path"; }
    { c = has "export HASH_COLLECTION_SPOOL=/var/lib/hash-collection/spool\n" seedHook; m = "hook exports the spool"; }
    { c = !has "HASH_COLLECTION_ASYNC" seedHook; m = "synchronous by default"; }
    { c = has "exec ${pkgs.nix-hash-collection}/bin/nhc-hook \"$@\"" seedHook; m = "hook execs nhc-hook"; }
    { c = seed.config.nix.settings ? post-build-hook && !(seed.config.nix.settings ? run-diff-hook) && !(seed.config.nix.settings ? diff-hook); m = "no diff hook by default"; }
    { c = flush.serviceConfig.LoadCredential == [ "token:/run/keys/hash-collection-token" ]; m = "flush service loads the token, not the signing key"; }
    { c = flush.environment.HASH_COLLECTION_TOKEN_FILE == "%d/token" && !(flush.environment ? HASH_COLLECTION_SECRET_KEY_FILE); m = "flush env points into the credentials directory, no key"; }
    { c = flush.environment.HASH_COLLECTION_CONFIG == "/etc/hash-collection/config.toml"; m = "flush reads only the system config"; }
    { c = !(flush.serviceConfig ? User) && flush.serviceConfig.ProtectHome == true; m = "flush: no User=root (HOME=/root behind ProtectHome=)"; }
    { c = flush.startLimitIntervalSec == 0; m = "flush service has no start rate limit"; }
    { c = seed.config.systemd.paths.hash-collection-flush.startLimitIntervalSec == 0 && seed.config.systemd.paths.hash-collection-flush.pathConfig.TriggerLimitIntervalSec == 0; m = "path unit has no start or trigger rate limit"; }
    { c = flush.environment.HASH_COLLECTION_SPOOL == "/var/lib/hash-collection/spool"; m = "flush spool"; }
    { c = has "/bin/nhc flush" flushScript; m = "flush runs nhc flush"; }
    { c = flush.serviceConfig.ProtectSystem == "strict" && flush.serviceConfig.ReadWritePaths == [ "/var/lib/hash-collection/spool" ]; m = "flush hardening: ProtectSystem/ReadWritePaths"; }
    { c = flush.serviceConfig.PrivateTmp && flush.serviceConfig.NoNewPrivileges && flush.serviceConfig.CapabilityBoundingSet == ""; m = "flush hardening: PrivateTmp/NoNewPrivileges/capabilities"; }
    { c = flush.serviceConfig.RestrictAddressFamilies == [ "AF_INET" "AF_INET6" "AF_UNIX" ]; m = "flush address families"; }
    { c = seed.config.systemd.paths.hash-collection-flush.pathConfig.PathChanged == "/var/lib/hash-collection/spool"; m = "path unit on the spool"; }
    { c = seed.config.systemd.paths.hash-collection-flush.pathConfig.Unit == "hash-collection-flush.service"; m = "path unit triggers the flush"; }
    { c = seed.config.systemd.timers.hash-collection-flush.timerConfig.OnUnitInactiveSec == "15min"; m = "flush timer"; }
    { c = seed.config.systemd.tmpfiles.rules == [ "d /var/lib/hash-collection/spool 0700 root root - -" ]; m = "spool created 0700"; }
    { c = seed.config.environment.systemPackages == [ pkgs.nix-hash-collection ]; m = "nhc installed"; }
    { c = seedConf == "# Written by the NixOS module services.hash-collection; holds only paths.\n# Environment variables (HASH_COLLECTION_*) take precedence over it.\nsecret_key_file = \"/run/keys/hash-collection-key\"\nserver = \"https://hash-collection.example.org\"\nspool = \"/var/lib/hash-collection/spool\"\ntoken_file = \"/run/keys/hash-collection-token\"\n"; m = "system config for nhc: server, spool, token and key paths (hook/src/config.rs names), got:\n${seedConf}"; }
    { c = seed.warnings == [ ] && has "hash-collection-post-build-hook" seed.config.nix.settings.post-build-hook; m = "no warning when the hook is ours"; }
    { c = length overriddenClient.warnings == 1 && has "post-build-hook" (builtins.head overriddenClient.warnings); m = "warning when another definition overrides the post-build-hook"; }
    { c = has "export HASH_COLLECTION_ASYNC=1\n" asyncHook; m = "async mode exported"; }
    { c = has "export HASH_COLLECTION_SPOOL='/var/spool/hash=collection%d'\n" asyncHook; m = "spool path shell-quoted, not specifier-escaped, in the hook"; }
    { c = has "export HASH_COLLECTION_SERVER=http://10.0.0.1:8080/a%2Fb\n" asyncHook && has "export HASH_COLLECTION_TOKEN_FILE=/var/lib/secrets/token%n\n" asyncHook; m = "no specifier escaping outside systemd"; }
    { c = asyncClient.config.nix.settings.run-diff-hook == true; m = "run-diff-hook set"; }
    { c = has "/bin/nhc-hook \"$@\"" diffHook && !has "/var/lib/secrets" diffHook; m = "diff hook gets no secret paths"; }
    { c = has "export HASH_COLLECTION_DIFF_REPORT_ONLY=1\n" diffHook && !has "export HASH_COLLECTION_SERVER" diffHook && !has "10.0.0.1" diffHook; m = "diff hook only reports"; }
    { c = asyncFlush.serviceConfig.ReadWritePaths == [ "/var/spool/hash=collection%%d" ]; m = "custom spool writable, % escaped"; }
    { c = asyncFlush.environment.HASH_COLLECTION_SPOOL == "/var/spool/hash=collection%%d" && asyncFlush.environment.HASH_COLLECTION_SERVER == "http://10.0.0.1:8080/a%%2Fb"; m = "% escaped in Environment="; }
    { c = asyncFlush.serviceConfig.LoadCredential == [ "token:/var/lib/secrets/token%%n" ] && asyncFlush.environment.HASH_COLLECTION_TOKEN_FILE == "%d/token"; m = "% escaped in LoadCredential=, own %d kept"; }
    { c = asyncPath.pathConfig.PathChanged == "/var/spool/hash=collection%%d" && asyncClient.config.systemd.tmpfiles.rules == [ "d /var/spool/hash=collection%%d 0700 root root - -" ]; m = "% escaped in PathChanged= and tmpfiles"; }
    { c = has "spool = \"/var/spool/hash=collection%d\"\n" asyncClient.config.environment.etc."hash-collection/config.toml".text; m = "no specifier escaping in the config file"; }
    { c = (client (seed.cfg // { spoolDir = "/var/spool/hash collection"; })).failedAssertions != [ ]; m = "a spool path with whitespace is refused"; }
    { c = length badClient.failedAssertions == 3; m = "bad client config must fail 3 assertions (url, tokenFile in store, secretKeyFile unset), got: ${toString badClient.failedAssertions}"; }
    { c = (client { }).config == { }; m = "disabled module configures nothing"; }
    { c = fails (client { enable = true; token = "/x"; }).cfg; m = "an unknown option must be an error"; }
    { c = fails (client { enable = "yes"; }).cfg; m = "a mistyped value must be an error"; }
    { c = plainClient.cfg.package.name == package.name; m = "package falls back to ../package.nix"; }
  ];

  # ---- client: the import timer -------------------------------------------------
  # Import alone (no hook, no signing key): its own token, every kind of source.
  importOnly = client {
    collection-url = "https://hash-collection.example.org";
    import = {
      enable = true;
      tokenFile = "/run/keys/import-token";
      caches = [ "https://cache.nixos.org" "file:///srv/cache%n" ];
      pathsFile = "/var/lib/import paths";
      jobsets = [ "nixos-unstable" ];
      collections.other = { url = "https://other.example.org"; builder = "hydra"; };
    };
  };
  importSvc = importOnly.config.systemd.services.hash-collection-import;
  importScript = readFile importSvc.serviceConfig.ExecStart;
  # Import next to the hook: the hook's token by default, a custom state directory.
  importWithHook = client (seed.cfg // {
    package = pkgs.nix-hash-collection;
    import = {
      enable = true;
      collections."a.b-1" = { url = "http://10.0.0.2:8080"; builder = "builder-1"; };
      stateDir = "/var/lib/nhc%import";
      interval = "15min";
      concurrency = 8;
    };
  });
  importWithHookSvc = importWithHook.config.systemd.services.hash-collection-import;
  importWithHookScript = readFile importWithHookSvc.serviceConfig.ExecStart;
  importFails = i: (client { collection-url = "https://h.example.org"; tokenFile = "/run/keys/t"; import = { enable = true; } // i; }).failedAssertions;

  importChecks = checkAll [
    { c = importOnly.failedAssertions == [ ]; m = "import-only config fails assertions: ${toString importOnly.failedAssertions}"; }
    { c = !(importOnly.config ? nix) && !(importOnly.config.systemd.services ? hash-collection-flush) && !(importOnly.config.environment ? etc); m = "import alone sets no hook, no flush, no config file"; }
    { c = importSvc.serviceConfig.LoadCredential == [ "token:/run/keys/import-token" ] && importSvc.environment.HASH_COLLECTION_TOKEN_FILE == "%d/token"; m = "the import's own token as a credential"; }
    { c = importSvc.environment.HASH_COLLECTION_SERVER == "https://hash-collection.example.org" && importSvc.environment.HASH_COLLECTION_CONFIG == "/dev/null"; m = "server from collection-url, no config file"; }
    { c = importSvc.serviceConfig.Type == "oneshot" && importSvc.serviceConfig.ProtectSystem == "strict" && importSvc.serviceConfig.CapabilityBoundingSet == "" && importSvc.serviceConfig.NoNewPrivileges && importSvc.serviceConfig.ProtectHome && importSvc.serviceConfig.MemoryDenyWriteExecute; m = "import service hardened like the flush"; }
    { c = importSvc.serviceConfig.ReadWritePaths == [ "/var/lib/hash-collection-import" ] && importOnly.config.systemd.tmpfiles.rules == [ "d /var/lib/hash-collection-import 0700 root root - -" ]; m = "only the state directory is writable, created 0700"; }
    { c = importSvc.serviceConfig.RestrictAddressFamilies == flush.serviceConfig.RestrictAddressFamilies && importSvc.serviceConfig.SystemCallFilter == flush.serviceConfig.SystemCallFilter; m = "same sandbox as the flush"; }
    { c = has "run --cache https://cache.nixos.org --paths-from '/var/lib/import paths'\n" importScript && has "run --cache https://cache.nixos.org --jobset nixos-unstable\n" importScript; m = "each cache with the paths file and each jobset"; }
    { c = has "run --cache file:///srv/cache%n --paths-from" importScript && has "run --cache file:///srv/cache%n --jobset nixos-unstable\n" importScript; m = "the second cache, no specifier escaping in the script"; }
    { c = has "run --collection https://other.example.org --builder hydra --state /var/lib/hash-collection-import/collection-other.json\n" importScript; m = "a collection with its state file"; }
    { c = length (filter (l: match "run --.*" l != null) (lib.splitLines importScript)) == 5; m = "2 caches x 2 sources + 1 collection = 5 imports"; }
    { c = has "/bin/nhc import --concurrency 32 \"$@\" || status=1" importScript && has "exit \"$status\"" importScript; m = "every import runs, the unit fails when one did"; }
    { c = importOnly.config.systemd.timers.hash-collection-import.timerConfig.OnUnitInactiveSec == "1h" && importOnly.config.systemd.timers.hash-collection-import.wantedBy == [ "timers.target" ]; m = "timer every hour by default"; }
    { c = importWithHook.failedAssertions == [ ] && importWithHook.config.systemd.services ? hash-collection-flush && has "hash-collection-post-build-hook" importWithHook.config.nix.settings.post-build-hook; m = "import next to the hook: both configured"; }
    { c = importWithHookSvc.serviceConfig.LoadCredential == [ "token:/run/keys/hash-collection-token" ]; m = "the hook's token by default"; }
    { c = importWithHookSvc.serviceConfig.ReadWritePaths == [ "/var/lib/nhc%%import" ] && elem "d /var/lib/nhc%%import 0700 root root - -" importWithHook.config.systemd.tmpfiles.rules && length importWithHook.config.systemd.tmpfiles.rules == 2; m = "custom state dir, % escaped, both tmpfiles rules"; }
    { c = has "--state /var/lib/nhc%import/collection-a.b-1.json\n" importWithHookScript && has "--concurrency 8 " importWithHookScript && !has "--cache" importWithHookScript; m = "state file in the custom dir, concurrency, no cache"; }
    { c = importWithHook.config.systemd.timers.hash-collection-import.timerConfig.OnUnitInactiveSec == "15min"; m = "interval"; }
    { c = importFails { caches = [ "https://c.example.org" ]; } != [ ]; m = "a cache without paths is refused"; }
    { c = importFails { } != [ ]; m = "nothing to import is refused"; }
    { c = importFails { caches = [ "s3://bucket" ]; pathsFile = "/p"; } != [ ]; m = "a cache URL that is not http(s) or file is refused"; }
    { c = importFails { collections."../x" = { url = "https://o.example.org"; builder = "b"; }; } != [ ]; m = "a collection name that is not a file name is refused"; }
    { c = importFails { collections.x = { url = "o.example.org"; builder = "b"; }; } != [ ]; m = "a collection URL without scheme is refused"; }
    { c = importFails { collections.x = { url = "https://o.example.org"; builder = "b"; }; stateDir = "relative"; } != [ ]; m = "a relative state dir is refused"; }
    { c = importFails { collections.x = { url = "https://o.example.org"; builder = "b"; }; } == [ ]; m = "a collection alone is enough"; }
    { c = (client { import = { enable = true; collections.x = { url = "https://o.example.org"; builder = "b"; }; }; }).failedAssertions != [ ]; m = "import without collection-url or token is refused"; }
    { c = fails (client { import = { enable = true; collections.x.url = "https://o.example.org"; }; }).cfg; m = "a collection needs its builder"; }
    { c = fails (client { import = { enable = true; concurrency = 0; }; }).cfg; m = "concurrency is positive"; }
  ];

  # ---- client: the rebuild timer ------------------------------------------------
  # Next to the hook (which attests what is rebuilt), with the defaults.
  rebuildSeed = client (seed.cfg // { rebuild = { enable = true; jobset = "nixos-unstable"; }; });
  rebuildSvc = rebuildSeed.config.systemd.services.hash-collection-rebuild;
  rebuildTimer = rebuildSeed.config.systemd.timers.hash-collection-rebuild;
  # Every option set; a token of its own with a "%".
  rebuildAll = client (seed.cfg // {
    rebuild = {
      enable = true;
      jobset = "js.1_x-y";
      rev = "r2";
      max = 5;
      jobs = 2;
      onCalendar = "*-*-* 02:00:00";
      randomizedDelaySec = "0";
      tokenFile = "/run/keys/rebuild%token";
    };
  });
  rebuildAllSvc = rebuildAll.config.systemd.services.hash-collection-rebuild;
  rebuildFails = r: (client (seed.cfg // { rebuild = { enable = true; jobset = "j"; } // r; })).failedAssertions;
  rebuildChecks = checkAll [
    { c = rebuildSeed.failedAssertions == [ ]; m = "rebuild config fails assertions: ${toString rebuildSeed.failedAssertions}"; }
    { c = rebuildSvc.serviceConfig.ExecStart == "${pkgs.nix-hash-collection}/bin/nhc rebuild nixos-unstable --max 20 --jobs 1 --state /var/lib/hash-collection-rebuild/rebuild-nixos-unstable.failed"; m = "rebuild command line, latest evaluation: ${rebuildSvc.serviceConfig.ExecStart}"; }
    { c = rebuildAllSvc.serviceConfig.ExecStart == "${pkgs.nix-hash-collection}/bin/nhc rebuild js.1_x-y r2 --max 5 --jobs 2 --state /var/lib/hash-collection-rebuild/rebuild-js.1_x-y.failed"; m = "rebuild command line with rev, max and jobs: ${rebuildAllSvc.serviceConfig.ExecStart}"; }
    { c = rebuildSvc.serviceConfig.LoadCredential == [ "token:/run/keys/hash-collection-token" ] && rebuildSvc.environment.HASH_COLLECTION_TOKEN_FILE == "%d/token"; m = "the hook's token by default, as a credential"; }
    { c = rebuildAllSvc.serviceConfig.LoadCredential == [ "token:/run/keys/rebuild%%token" ]; m = "its own token, % escaped in LoadCredential="; }
    { c = rebuildSvc.environment.NIX_REMOTE == "daemon" && rebuildSvc.path == [ seed.config.nix.package or baseConfig.nix.package ] && elem "nix-daemon.socket" rebuildSvc.after; m = "builds through nix-daemon, with nix-store on PATH"; }
    { c = rebuildSvc.environment.HASH_COLLECTION_SERVER == "https://hash-collection.example.org" && rebuildSvc.environment.HASH_COLLECTION_CONFIG == "/dev/null"; m = "server from collection-url, no config file"; }
    { c = !(rebuildSvc.serviceConfig ? User) && !(rebuildSvc.serviceConfig ? DynamicUser) && rebuildSvc.serviceConfig.Type == "oneshot" && rebuildSvc.serviceConfig.StateDirectory == "hash-collection-rebuild" && rebuildSvc.serviceConfig.StateDirectoryMode == "0700"; m = "root, oneshot, a private state directory for the failures file"; }
    { c = builtins.all (k: rebuildSvc.serviceConfig.${k} == importSvc.serviceConfig.${k}) (attrNames (import ../hardening.nix) ++ [ "UMask" "Nice" "IOSchedulingClass" "CapabilityBoundingSet" "AmbientCapabilities" ]); m = "same sandbox as the import"; }
    { c = rebuildTimer.wantedBy == [ "timers.target" ] && rebuildTimer.timerConfig == { OnCalendar = "daily"; RandomizedDelaySec = "1h"; Persistent = true; Unit = "hash-collection-rebuild.service"; }; m = "nightly timer by default"; }
    { c = rebuildAll.config.systemd.timers.hash-collection-rebuild.timerConfig.OnCalendar == "*-*-* 02:00:00" && rebuildAll.config.systemd.timers.hash-collection-rebuild.timerConfig.RandomizedDelaySec == "0"; m = "onCalendar, randomizedDelaySec"; }
    { c = !(seed.config.systemd.services ? hash-collection-rebuild) && !(seed.config.systemd ? timers && seed.config.systemd.timers ? hash-collection-rebuild); m = "no rebuild unless enabled"; }
    { c = (client { collection-url = "https://h.example.org"; tokenFile = "/run/keys/t"; rebuild = { enable = true; jobset = "j"; }; }).failedAssertions != [ ]; m = "rebuild without the hook is refused"; }
    { c = rebuildFails { } == [ ] && rebuildFails { jobset = "../x"; } != [ ] && rebuildFails { rev = "a b"; } != [ ] && rebuildFails { rev = "abc"; } == [ ]; m = "jobset and rev checked"; }
    { c = rebuildFails { max = 1001; } != [ ] && rebuildFails { jobs = 65; } != [ ] && rebuildFails { max = 1000; jobs = 64; } == [ ]; m = "max and jobs bounded as nhc rebuild takes them"; }
    { c = rebuildFails { tokenFile = "/nix/store/00000000000000000000000000000000-token"; } != [ ]; m = "a token in the store is refused"; }
    { c = fails (client (seed.cfg // { rebuild = { enable = true; max = 0; jobset = "j"; }; })).cfg; m = "max 0 is a type error"; }
    { c = fails (client (seed.cfg // { rebuild.enable = true; })).config.systemd.services.hash-collection-rebuild.serviceConfig.ExecStart; m = "jobset has no default"; }
  ];

  # ---- client: the proxy substituter ---------------------------------------------
  proxyOnly = client {
    proxy = {
      enable = true;
      collection-url = "https://h.example.org";
      trustedKeys = [ key1 key2 ];
      keyGroups.ops = [ "builder-1-test" "builder-2-test" ];
      quorum = 1;
      extraArgs = [ "--positive-ttl" "60%" ];
    };
  };
  proxySvc = proxyOnly.config.systemd.services.hash-collection-proxy;
  proxyWithHook = client (seed.cfg // {
    package = pkgs.nix-hash-collection;
    proxy = { enable = true; trustedKeys = [ key1 key2 ]; dryRun = true; listen = "127.0.0.1:18090"; addSubstituter = false; };
  });
  proxyFails = p: (client { proxy = { enable = true; collection-url = "https://h.example.org"; trustedKeys = [ key1 key2 ]; } // p; }).failedAssertions;
  proxyChecks = checkAll [
    { c = proxyOnly.failedAssertions == [ ]; m = "proxy-only config fails assertions: ${toString proxyOnly.failedAssertions}"; }
    { c = has "/bin/nhc proxy --upstream https://cache.nixos.org --collection https://h.example.org --quorum 1 --listen 127.0.0.1:8090 --on-mismatch refuse --on-collection-error refuse --trusted-key '${key1}' --trusted-key '${key2}' --key-group 'ops=builder-1-test,builder-2-test' --positive-ttl 60%%" proxySvc.serviceConfig.ExecStart; m = "proxy command line (% escaped): ${proxySvc.serviceConfig.ExecStart}"; }
    { c = proxySvc.serviceConfig.DynamicUser && proxySvc.serviceConfig.Restart == "on-failure" && proxySvc.wantedBy == [ "multi-user.target" ] && proxySvc.serviceConfig.NoNewPrivileges && proxySvc.serviceConfig.ProtectSystem == "strict" && !(proxySvc.serviceConfig ? IOSchedulingClass); m = "a long-running, sandboxed service"; }
    { c = proxySvc.environment.HASH_COLLECTION_CONFIG == "/dev/null"; m = "the proxy reads no config file"; }
    { c = proxyOnly.config.nix.settings.substituters == [ "http://127.0.0.1:8090" ] && proxyOnly.config.nix.settings.trusted-public-keys == [ key1 key2 ]; m = "added as the substituter, with the builders' keys"; }
    { c = !(proxyOnly.config.nix.settings ? post-build-hook) && !(proxyOnly.config.systemd.services ? hash-collection-flush); m = "the proxy alone sets no hook"; }
    { c = proxyWithHook.failedAssertions == [ ] && has "--collection https://hash-collection.example.org " proxyWithHook.config.systemd.services.hash-collection-proxy.serviceConfig.ExecStart; m = "collection-url falls back to the client's"; }
    { c = has " --dry-run" proxyWithHook.config.systemd.services.hash-collection-proxy.serviceConfig.ExecStart && !(proxyWithHook.config.nix.settings ? substituters) && proxyWithHook.config.nix.settings ? post-build-hook; m = "dry run; addSubstituter = false leaves the substituters alone"; }
    { c = proxyFails { quorum = 3; } != [ ]; m = "a quorum above the number of keys is refused"; }
    { c = proxyFails { trustedKeys = [ ]; } != [ ]; m = "no keys is refused"; }
    { c = proxyFails { onMismatch = "maybe"; } != [ ] && proxyFails { onCollectionError = "ignore"; } != [ ]; m = "unknown policies are refused"; }
    { c = proxyFails { upstream = "s3://bucket"; } != [ ] && (client { proxy = { enable = true; trustedKeys = [ key1 ]; }; }).failedAssertions != [ ]; m = "bad upstream, no collection"; }
    { c = fails (client { proxy = { enable = true; quorum = 0; }; }).cfg; m = "quorum 0 is a type error"; }
  ];

  # ---- server -------------------------------------------------------------------
  server = defs: evalModule {
    module = ../server-module.nix;
    service = "hash-collection-server";
    inherit defs pkgs;
  };
  key1 = lib.fileContents ./builder-1.public;
  key2 = lib.fileContents ./builder-2.public;
  otherKey = "other:${substring 15 44 key2}";
  sqliteServer = server {
    enable = true;
    listen = "0.0.0.0:8080";
    openFirewall = true;
    adminTokenFile = "/run/keys/admin-token";
    builders = {
      builder-1.publicKeys = [ key1 ];
      "b.2".publicKeys = [ key2 otherKey ];
    };
  };
  svc = sqliteServer.config.systemd.services.hash-collection-server;
  ensureBuilders = readFile (builtins.head svc.serviceConfig.ExecStartPre);
  adminCli = (builtins.head sqliteServer.config.environment.systemPackages).text;
  pgServer = server {
    enable = true;
    listen = "[::]:443";
    openFirewall = true;
    database.createLocally = true;
  };
  pgSvc = pgServer.config.systemd.services.hash-collection-server;
  plainServer = server { enable = true; };
  # "%" in every value that reaches systemd; a zero-padded port.
  percentServer = server {
    enable = true;
    listen = "[fe80::1%eth0]:08080";
    openFirewall = true;
    database.url = "postgres://nhc@%2Frun%2Fpostgresql/nhc";
    adminTokenFile = "/run/keys/admin%h";
    environmentFile = "/run/keys/env%i";
  };
  percentSvc = percentServer.config.systemd.services.hash-collection-server;
  percentCli = (builtins.head percentServer.config.environment.systemPackages).text;
  plainSvc = plainServer.config.systemd.services.hash-collection-server;

  serverChecks = checkAll [
    { c = sameList sqliteServer.options serverOptions; m = "server options are ${toString sqliteServer.options}, expected ${toString serverOptions}"; }
    { c = sqliteServer.failedAssertions == [ ]; m = "sqlite config fails assertions: ${toString sqliteServer.failedAssertions}"; }
    { c = svc.serviceConfig.ExecStart == "${pkgs.nix-hash-collection}/bin/nhc-server serve"; m = "ExecStart"; }
    { c = svc.environment.DATABASE_URL == "sqlite:///var/lib/hash-collection-server/nhc.db"; m = "SQLite in the state directory by default"; }
    { c = svc.environment.NHC_LISTEN == "0.0.0.0:8080"; m = "listen"; }
    { c = svc.environment.NHC_ADMIN_TOKEN_FILE == "%d/admin-token" && svc.serviceConfig.LoadCredential == [ "admin-token:/run/keys/admin-token" ]; m = "admin token via LoadCredential"; }
    { c = !(plainSvc.environment ? NHC_ADMIN_TOKEN_FILE) && plainSvc.serviceConfig.LoadCredential == [ ] && plainSvc.serviceConfig.ExecStartPre == [ ]; m = "no admin token, no builders: nothing extra"; }
    { c = plainSvc.environment.NHC_LISTEN == "127.0.0.1:8080" && plainServer.failedAssertions == [ ]; m = "defaults"; }
    { c = !(plainServer.config.networking.firewall ? allowedTCPPorts); m = "firewall closed by default"; }
    { c = sqliteServer.config.networking.firewall.allowedTCPPorts == [ 8080 ]; m = "openFirewall opens the listen port"; }
    { c = svc.serviceConfig.DynamicUser && svc.serviceConfig.StateDirectory == "hash-collection-server" && svc.serviceConfig.NoNewPrivileges; m = "DynamicUser/StateDirectory/NoNewPrivileges"; }
    { c = svc.serviceConfig.ProtectSystem == "strict" && svc.serviceConfig.CapabilityBoundingSet == "" && svc.serviceConfig.PrivateUsers; m = "server hardening"; }
    { c = svc.serviceConfig.RestrictAddressFamilies == [ "AF_INET" "AF_INET6" "AF_UNIX" ] && elem "@system-service" svc.serviceConfig.SystemCallFilter; m = "address families, syscall filter"; }
    { c = builtins.all (k: svc.serviceConfig.${k} == (import ../hardening.nix).${k} && flush.serviceConfig.${k} == svc.serviceConfig.${k} && importSvc.serviceConfig.${k} == svc.serviceConfig.${k}) (builtins.attrNames (import ../hardening.nix)); m = "server, flush and import share nix/hardening.nix's sandbox"; }
    { c = has "builder list --json" ensureBuilders && has "builder add builder-1 --public-key ${lib.escapeShellArg key1} >/dev/null" ensureBuilders; m = "declared builders created with user add, token discarded"; }
    { c = has "builder add b.2 --public-key ${lib.escapeShellArg key2} --public-key ${lib.escapeShellArg otherKey} >/dev/null" ensureBuilders; m = "several keys"; }
    { c = !(sqliteServer.config.services ? postgresql); m = "no postgres for SQLite"; }
    { c = has "DynamicUser=yes" adminCli && has "User=hash-collection " adminCli && has "--setenv=DATABASE_URL=sqlite:///var/lib/hash-collection-server/nhc.db" adminCli && has "/bin/nhc-server \"$@\"" adminCli; m = "admin CLI runs as the service user"; }
    { c = pgServer.failedAssertions == [ ]; m = "postgres config fails assertions: ${toString pgServer.failedAssertions}"; }
    { c = pgSvc.environment.DATABASE_URL == "postgres:///hash-collection?host=/run/postgresql&user=hash-collection"; m = "local postgres over the socket with peer auth"; }
    { c = pgServer.config.services.postgresql.enable && pgServer.config.services.postgresql.ensureDatabases == [ "hash-collection" ]; m = "postgres database"; }
    { c = pgServer.config.services.postgresql.ensureUsers == [ { name = "hash-collection"; ensureDBOwnership = true; } ]; m = "postgres role"; }
    { c = pgSvc.requires == [ "postgresql.service" ] && elem "postgresql.service" pgSvc.after; m = "ordered after postgres"; }
    { c = pgSvc.serviceConfig.User == "hash-collection"; m = "user name matches the role (peer auth)"; }
    { c = pgServer.config.networking.firewall.allowedTCPPorts == [ 443 ] && pgSvc.serviceConfig.CapabilityBoundingSet == "CAP_NET_BIND_SERVICE" && !pgSvc.serviceConfig.PrivateUsers; m = "privileged port"; }
    { c = (server { enable = true; listen = "localhost:8080"; }).failedAssertions != [ ]; m = "a host name is not a socket address"; }
    { c = (server { enable = true; builders."-x".publicKeys = [ key1 ]; }).failedAssertions != [ ]; m = "bad builder name"; }
    { c = fails (server { enable = true; builders.x.publicKeys = [ ]; }).cfg; m = "a builder needs a key"; }
    { c = fails (server { enable = true; database = "sqlite://x"; }).cfg; m = "database is a group of options"; }
    { c = (server { }).config == { }; m = "disabled server configures nothing"; }
    { c = percentServer.failedAssertions == [ ] && percentServer.config.networking.firewall.allowedTCPPorts == [ 8080 ]; m = "zero-padded port (lib.toIntBase10)"; }
    { c = percentSvc.environment.DATABASE_URL == "postgres://nhc@%%2Frun%%2Fpostgresql/nhc" && percentSvc.environment.NHC_LISTEN == "[fe80::1%%eth0]:08080"; m = "% escaped in Environment="; }
    { c = percentSvc.serviceConfig.LoadCredential == [ "admin-token:/run/keys/admin%%h" ] && percentSvc.environment.NHC_ADMIN_TOKEN_FILE == "%d/admin-token"; m = "% escaped in LoadCredential=, own %d kept"; }
    { c = percentSvc.serviceConfig.EnvironmentFile == [ "/run/keys/env%%i" ]; m = "% escaped in EnvironmentFile="; }
    { c = has "--setenv=DATABASE_URL=postgres://nhc@%2Frun%2Fpostgresql/nhc " percentCli && has "--property=EnvironmentFile=/run/keys/env%i " percentCli; m = "admin CLI: D-Bus properties are literal, no escaping"; }
    { c = lib.toIntBase10 "0080" == 80 && lib.toIntBase10 "000" == 0 && fails (lib.toInt "0080") && lib.toInt "80" == 80; m = "stand-in toInt/toIntBase10 follow nixpkgs"; }
  ];

  # ---- package ------------------------------------------------------------------
  package = pkgsPlain.callPackage ../package.nix { };
  root = toString ../..;
  srcFilter = package.args.src.filter;
  keeps = rel: type: srcFilter "${root}/${rel}" type;
  packageChecks = checkAll [
    { c = package.args.version == (lib.importTOML ../../Cargo.toml).workspace.package.version; m = "version from Cargo.toml"; }
    { c = builtins.pathExists package.args.cargoLock.lockFile; m = "Cargo.lock exists"; }
    { c = package.args.cargoBuildFlags == [ "-p" "nhc-server" "-p" "nhc-hook" ]; m = "only native packages built"; }
    { c = all (p: elem p package.args.cargoTestFlags) [ "nhc-core" "nhc-handlers" "nhc-server" "nhc-hook" "nhc-nar" "nhc-sql" ]; m = "tests of the built packages and their libraries run"; }
    { c = package.args.__darwinAllowLocalNetworking or false; m = "tests may use loopback on darwin"; }
    { c = package.meta.mainProgram or package.args.meta.mainProgram == "nhc"; m = "mainProgram"; }
    { c = keeps "handlers" "directory" && keeps "Cargo.toml" "regular" && keeps "schema.sql" "regular" && keeps "testdata" "directory"; m = "source keeps the workspace"; }
    { c = !keeps "target" "directory" && !keeps "adapters/worker/node_modules" "directory" && !keeps "node_modules" "directory"; m = "source drops target/ and node_modules/"; }
    { c = !keeps "nix" "directory" && !keeps "flake.nix" "regular" && !keeps "nhc.db" "regular"; m = "source drops nix files and databases"; }
  ];

  # ---- flake.nix and default.nix --------------------------------------------------
  flake = import ../../flake.nix;
  flakeOutputs = flake.outputs {
    self = flakeOutputs;
    nixpkgs = {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ] (_: pkgsPlain);
    };
  };
  nonFlake = import ../../default.nix { pkgs = pkgsPlain; };
  flakeChecks = checkAll [
    { c = flake.inputs.nixpkgs.url == "github:NixOS/nixpkgs/nixos-unstable"; m = "nixpkgs input"; }
    { c = flakeOutputs.packages.x86_64-linux.default.type == "derivation" && flakeOutputs.packages.aarch64-linux ? nix-hash-collection; m = "packages"; }
    { c = flakeOutputs.nixosModules.client == ../module.nix && flakeOutputs.nixosModules.server == ../server-module.nix && flakeOutputs.nixosModules.default == ../module.nix; m = "nixosModules"; }
    { c = (flakeOutputs.overlays.default pkgsPlain pkgsPlain).nix-hash-collection.type == "derivation"; m = "overlay"; }
    { c = flakeOutputs.devShells.x86_64-linux.default.type == "derivation"; m = "devShell"; }
    { c = flakeOutputs.checks.x86_64-linux ? basic && flakeOutputs.checks.aarch64-linux ? basic && !(flakeOutputs.checks.x86_64-darwin ? basic); m = "checks.basic on Linux"; }
    { c = nonFlake.type == "derivation" && nonFlake.modules.client == ../module.nix && nonFlake.modules.server == ../server-module.nix; m = "default.nix"; }
  ];

  # ---- the VM test's node configurations use the modules' options ----------------
  test = import ./basic.nix {
    pkgs = pkgsPlain;
    package = pkgs.nix-hash-collection;
  };
  node = name: test.nodes.${name} { };
  serverNode = node "server";
  testServer = server serverNode.services.hash-collection-server;
  testBuilders = map (n: client (node n).services.hash-collection) [ "builder1" "builder2" ];
  testChecks = checkAll [
    { c = serverNode.imports == [ ../server-module.nix ] && testServer.failedAssertions == [ ]; m = "test server node"; }
    { c = testServer.cfg.builders.builder-1.publicKeys == [ key1 ]; m = "test registers builder-1"; }
    { c = all (b: b.failedAssertions == [ ]) testBuilders; m = "test builder nodes"; }
    { c = map (b: b.cfg.async) testBuilders == [ false true ]; m = "one synchronous and one asynchronous builder"; }
    { c = all (n: (node n).imports == [ ../module.nix ]) [ "builder1" "builder2" ]; m = "builders import the client module"; }
  ];
in
assert clientChecks && importChecks && rebuildChecks && proxyChecks && serverChecks && packageChecks && flakeChecks && testChecks;
{
  options = {
    client = seed.options;
    server = sqliteServer.options;
  };
  # For `bash -n` and a Python syntax check in check.sh.
  shellScripts = {
    post-build-hook = seedHook;
    post-build-hook-async = asyncHook;
    diff-hook = diffHook;
    flush = flushScript;
    import = importScript;
    import-with-hook = importWithHookScript;
    ensure-builders = ensureBuilders;
    admin-cli = adminCli;
  };
  testScript = test.testScript;
}
