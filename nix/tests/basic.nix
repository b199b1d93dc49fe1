# NixOS VM test: a server and two builders (one synchronous, one
# asynchronous) build the same trivial derivation; the attestations must
# reach the server, the output must be "reproduced", and the real Nix client
# must verify the signatures through the server's binary-cache view. A burst
# of builds on the asynchronous builder must not rate-limit the flush units.
#
#   nix build .#checks.x86_64-linux.basic
#   nix-build -A tests.basic            # without flakes
#
# builder-*.secret are throwaway keys made for this test only
# (`nix key generate-secret --key-name builder-N-test`); never use them
# anywhere else.
{
  pkgs,
  package ? pkgs.callPackage ../package.nix { },
}:

let
  inherit (pkgs) lib;

  builder1Public = lib.fileContents ./builder-1.public;
  builder2Public = lib.fileContents ./builder-2.public;
  adminToken = "test-admin-token-not-a-secret";

  # Needs no nixpkgs; /bin/sh is the sandbox shell. Both builders get the
  # same bytes, so the server must report the output as reproduced.
  testDerivation = pkgs.writeText "nhc-test.nix" ''
    derivation {
      name = "nhc-vm-test-output";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [ "-c" "echo hash-collection-vm-test > $out" ];
    }
  '';

  # One distinct output per value of `i` (nix-build --argstr i N).
  burstDerivation = pkgs.writeText "nhc-burst.nix" ''
    { i }:
    derivation {
      name = "nhc-vm-burst-''${i}";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [ "-c" "echo hash-collection-burst-''${i} > $out" ];
    }
  '';

  builderNode =
    { asynchronous }:
    { ... }:
    {
      imports = [ ../module.nix ];
      services.hash-collection = {
        enable = true;
        inherit package;
        collection-url = "http://server:8080";
        tokenFile = "/run/keys/hash-collection-token";
        secretKeyFile = "/run/keys/hash-collection-key";
        async = asynchronous;
      };
      nix.settings = {
        substituters = lib.mkForce [ ];
        experimental-features = [ "nix-command" ];
      };
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
      environment.etc."nhc-test.nix".source = testDerivation;
      environment.etc."nhc-burst.nix".source = burstDerivation;
    };
in
pkgs.testers.runNixOSTest {
  name = "nix-hash-collection-basic";

  nodes = {
    server =
      { ... }:
      {
        imports = [ ../server-module.nix ];
        services.hash-collection-server = {
          enable = true;
          inherit package;
          listen = "0.0.0.0:8080";
          openFirewall = true;
          adminTokenFile = "/etc/hash-collection/admin-token";
          builders = {
            builder-1.publicKeys = [ builder1Public ];
            builder-2.publicKeys = [ builder2Public ];
          };
        };
        # A copy (mode) rather than a symlink into the store; test only.
        environment.etc."hash-collection/admin-token" = {
          text = adminToken;
          mode = "0400";
        };
        environment.systemPackages = [
          pkgs.curl
          pkgs.jq
        ];
      };

    builder1 = builderNode { asynchronous = false; };
    builder2 = builderNode { asynchronous = true; };
  };

  testScript = ''
    import json

    start_all()

    server.wait_for_unit("hash-collection-server.service")
    server.wait_for_open_port(8080)
    server.succeed("curl -sf http://127.0.0.1:8080/health | jq -e '.status == \"ok\"'")

    with subtest("declared builders are registered"):
        builders = json.loads(server.succeed("nhc-server builder list --json"))
        names = sorted(b["name"] for b in builders)
        assert names == ["builder-1", "builder-2"], names
        keys = {b["name"]: b["public_keys"] for b in builders}
        assert keys["builder-1"] == ["${builder1Public}"], keys
        assert keys["builder-2"] == ["${builder2Public}"], keys
        # A restart must not register them again nor fail.
        server.succeed("systemctl restart hash-collection-server.service")
        server.wait_for_open_port(8080)
        assert len(json.loads(server.succeed("nhc-server builder list --json"))) == 2

    with subtest("the admin token arrives through LoadCredential"):
        server.succeed(
            "curl -sf -X POST -H 'Authorization: Bearer ${adminToken}' "
            + "http://127.0.0.1:8080/v1/admin/builders/builder-1/tokens | jq -e '.token | length > 0'"
        )
        code = server.succeed(
            "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer wrong' "
            + "http://127.0.0.1:8080/v1/admin/builders/builder-1/tokens"
        ).strip()
        assert code == "401", code

    secret_keys = {"builder-1": "${./builder-1.secret}", "builder-2": "${./builder-2.secret}"}
    tokens = {}
    for machine, name in [(builder1, "builder-1"), (builder2, "builder-2")]:
        token = server.succeed(f"nhc-server token new {name}").strip()
        assert token and "\n" not in token, token
        tokens[name] = token
        server.fail(f"journalctl --no-pager | grep -qF '{token}'")
        machine.wait_for_unit("multi-user.target")
        machine.succeed(
            "install -d -m 0750 /run/keys",
            f"(umask 077; printf '%s' '{token}' > /run/keys/hash-collection-token)",
            f"install -m 0400 {secret_keys[name]} /run/keys/hash-collection-key",
        )
        machine.wait_until_succeeds("curl -sf http://server:8080/health")

    with subtest("the post-build-hook is configured without secrets"):
        hook = builder1.succeed("sed -n 's/^post-build-hook = //p' /etc/nix/nix.conf").strip()
        assert hook.startswith("/nix/store/"), hook
        script = builder1.succeed(f"cat {hook}")
        assert "HASH_COLLECTION_TOKEN_FILE='/run/keys/hash-collection-token'" in script or \
            "HASH_COLLECTION_TOKEN_FILE=/run/keys/hash-collection-token" in script, script
        assert tokens["builder-1"] not in script, script
        unit = builder1.succeed("systemctl cat hash-collection-flush.service")
        assert "LoadCredential=token:/run/keys/hash-collection-token" in unit, unit
        assert "hash-collection-key" not in unit, unit
        assert tokens["builder-1"] not in unit, unit
        # nhc run by root finds the server, spool and secrets (paths only) in /etc.
        conf = builder1.succeed("cat /etc/hash-collection/config.toml")
        assert 'server = "http://server:8080"' in conf, conf
        assert 'token_file = "/run/keys/hash-collection-token"' in conf, conf
        assert 'secret_key_file = "/run/keys/hash-collection-key"' in conf, conf
        assert tokens["builder-1"] not in conf, conf

    with subtest("synchronous builder: the hook sends right away"):
        out = builder1.succeed("NIX_REMOTE=daemon nix-build --no-out-link /etc/nhc-test.nix").strip()
        base = out.removeprefix("/nix/store/")
        nar_hash = builder1.succeed(f"nix-store -q --hash {out}").strip()
        att = json.loads(server.wait_until_succeeds(f"curl -sf http://127.0.0.1:8080/v1/outputs/{base}", timeout=30))
        assert att["output_path"] == out, att
        assert [a["builder"] for a in att["attestations"]] == ["builder-1"], att
        assert att["attestations"][0]["nar_hash"] == nar_hash, (att, nar_hash)
        assert att["status"] == "one_builder", att

    with subtest("asynchronous builder: the hook spools, the flush service sends"):
        out2 = builder2.succeed("NIX_REMOTE=daemon nix-build --no-out-link /etc/nhc-test.nix").strip()
        assert out2 == out, (out, out2)
        server.wait_until_succeeds(
            f"curl -sf http://127.0.0.1:8080/v1/outputs/{base} | jq -e '.status == \"reproduced\"'",
            timeout=120,
        )
        builder2.wait_until_succeeds("systemctl show -P Result hash-collection-flush.service | grep -qx success")
        builder2.wait_until_succeeds("test -z \"$(find /var/lib/hash-collection/spool -maxdepth 1 -type f)\"")
        # The flush reads only /etc/hash-collection/config.toml: no warning
        # about an unreadable /root/.config (ProtectHome=).
        builder2.fail("journalctl -u hash-collection-flush.service --no-pager | grep -F '/root/.config'")
        # An interactive root `nhc` knows the server from /etc/hash-collection/config.toml
        # (exit status 0: reproduced).
        builder1.succeed(f"nhc status {out}")

    with subtest("a burst of builds leaves the flush path unit active"):
        builder2.succeed("systemctl is-active hash-collection-flush.path")
        builder2.succeed("systemctl cat hash-collection-flush.service | grep -qx 'StartLimitIntervalSec=0'")
        # Successful starts count toward systemd's start limit (by default 5
        # in 10 s); hitting it used to fail the service and the path unit.
        builder2.succeed("for i in $(seq 8); do systemctl start hash-collection-flush.service; done")
        burst = builder2.succeed(
            "for i in $(seq 12); do NIX_REMOTE=daemon nix-build --no-out-link /etc/nhc-burst.nix --argstr i $i; done"
        ).split()
        assert len(set(burst)) == 12 and all(p.startswith("/nix/store/") for p in burst), burst
        body = json.dumps({"paths": burst})
        # Delivered by the path unit (the timer waits 15 min).
        server.wait_until_succeeds(
            "curl -sf -X POST -H 'Content-Type: application/json' "
            + f"-d '{body}' http://127.0.0.1:8080/v1/status"
            + " | jq -e 'length == 12 and all(.[]; .builders == 1)'",
            timeout=90,
        )
        builder2.succeed("systemctl is-active hash-collection-flush.path")
        result = builder2.succeed("systemctl show -P Result hash-collection-flush.path").strip()
        assert result == "success", result
        builder2.wait_until_succeeds("test -z \"$(find /var/lib/hash-collection/spool -maxdepth 1 -type f)\"")

    with subtest("nix verifies the signatures through the narinfo views"):
        for machine in [builder1, builder2]:
            machine.succeed(
                "nix path-info --store http://server:8080/builders/builder-1 --sigs "
                + out
                + " | grep -q builder-1-test:"
            )
            machine.succeed(
                "nix store verify --store http://server:8080 "
                + "--trusted-public-keys '${builder1Public}' --sigs-needed 1 --no-contents "
                + out
            )
            machine.succeed(
                "nix store verify --store http://server:8080 "
                + "--trusted-public-keys '${builder1Public} ${builder2Public}' --sigs-needed 2 --no-contents "
                + out
            )
            # An unknown key must not be accepted.
            machine.fail(
                "nix store verify --store http://server:8080 "
                + "--trusted-public-keys 'other:qbE9lsMWo66em4mwsvn6w6vOofhcIzcm4ArYTMmCUZs=' "
                + "--sigs-needed 1 --no-contents "
                + out
            )

    with subtest("a hook with the server down never fails the build"):
        server.succeed("systemctl stop hash-collection-server.service")
        builder1.succeed("sed 's/hash-collection-vm-test/server-down/' /etc/nhc-test.nix > /tmp/down.nix")
        down = builder1.succeed("NIX_REMOTE=daemon nix-build --no-out-link /tmp/down.nix").strip()
        assert down.startswith("/nix/store/") and down != out, down
        server.succeed("systemctl start hash-collection-server.service")
        server.wait_for_open_port(8080)
        builder1.succeed("systemctl start hash-collection-flush.service")
        server.wait_until_succeeds(
            "curl -sf http://127.0.0.1:8080/v1/outputs/" + down.removeprefix("/nix/store/"),
            timeout=60,
        )
  '';
}
