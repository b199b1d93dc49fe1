#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/, from the
real Nix 2.8 vectors (testdata/nix-2.8: NARs, keys, signatures, hashes) and a few
hand-written .drv files and config files. The committed corpora (fuzz/corpus/) are
these seeds plus what the fuzzers found, minimised with `cargo fuzz cmin`.

Usage: fuzz/seeds.py, then `scripts/fuzz --cmin` merges them into fuzz/corpus/."""
import base64
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent
testdata = root.parent / "testdata" / "nix-2.8"
vectors = json.loads((testdata / "vectors.json").read_text())
out = root / "seeds"


def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


paths = vectors["paths"]
drv_of = {}
for i, p in enumerate(paths):
    base = p["path"].removeprefix("/nix/store/")
    drv_of[p["path"]] = p["deriver"]
    put("names", f"path-{i}", p["path"])
    put("names", f"drv-{i}", p["deriver"])
    put("names", f"basename-{i}", base)
    put("nar_hash", f"nix32-{i}", p["narHash_nix32"])
    put("nar_hash", f"sri-{i}", p["narHash_sri"])
    put("nar_hash", f"hex-{i}", "sha256:" + p["narHash_hex"])
    put("keys", f"sig-{i}", p["signature"])
    put("keys", f"verify-{i}", f'{vectors["public_key"]}\n{p["fingerprint"]}\n{p["signature"]}')
    put("nar", f"{base}.nar", base64.b64decode(p["nar_base64"]))
    refs = " ".join(r.removeprefix("/nix/store/") for r in p["references"])
    deriver = p["deriver"].removeprefix("/nix/store/")
    put(
        "narinfo",
        f"narinfo-{i}",
        f'StorePath: {p["path"]}\nURL: nar/{p["narHash_nix32"].removeprefix("sha256:")}.nar\n'
        f'Compression: none\nNarHash: {p["narHash_nix32"]}\nNarSize: {p["narSize"]}\n'
        + (f"References: {refs}\n" if refs else "")
        + f'Deriver: {deriver}\nSig: {p["signature"]}\n',
    )
    put(
        "api_json",
        f"submit-{i}",
        json.dumps(
            {
                "drv_path": p["deriver"],
                "outputs": [
                    {
                        "output_name": "out",
                        "output_path": p["path"],
                        "nar_hash": p["narHash_nix32"],
                        "nar_size": p["narSize"],
                        "references": p["references"],
                        "signature": p["signature"],
                    }
                ],
            }
        ),
    )
put("names", "output-dev", "dev")
put("names", "builder", "builder-1.x86_64")
put("names", "keyname", "cache.example.org-1")
put("keys", "public", vectors["public_key"])
put("keys", "secret", vectors["secret_key"] + "\n")
put("nar_hash", "nix32-20", "mjs27ix6ig2bkbi3s3sm470vrv4lf7ic")
put("api_json", "status", json.dumps({"paths": [p["path"] for p in paths]}))
put("api_json", "builder", json.dumps({"name": "builder-1", "public_keys": [vectors["public_key"]]}))
put("api_json", "submit-response", '{"stored":1,"duplicates":0}')
put(
    "api_json",
    "status-response",
    json.dumps({paths[0]["path"]: {"status": "reproducible", "builders": 2, "distinct_hashes": 1}}),
)
put(
    "narinfo",
    "odd",
    "StorePath: /nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello\nURL: x\nFileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\nFileSize: 180\n"
    "NarHash: sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=\nNarSize: 1\nDeriver: unknown-deriver\n"
    "System: x86_64-linux\nCA: fixed:r:sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\nSig: other:not-base64\nSomethingNew: x\n",
)

# .drv files as Nix 2.8 writes them for vectors-drvs.nix (outputs, inputs, the rest).
hello, multi_dev, multi, tree = (
    "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello",
    "/nix/store/s95kw5pf8cc8dh0giqsbdq679kffq196-multi-dev",
    "/nix/store/xhsz73x5r1q3ml5hrwzv50yw85pwqk2w-multi",
    "/nix/store/hlns6vw3bk57jcq3zq72a46vw5yy8wzs-tree",
)
put(
    "drv",
    "hello.drv",
    f'Derive([("out","{hello}","","")],[],[],"x86_64-linux","/bin/sh",["-c","echo hi > $out"],'
    f'[("builder","/bin/sh"),("name","hello"),("out","{hello}"),("system","x86_64-linux")])',
)
put(
    "drv",
    "multi.drv",
    f'Derive([("dev","{multi_dev}","",""),("out","{multi}","","")],'
    f'[("/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv",["out"])],["{tree}"],"x86_64-linux","/bin/sh",'
    r'["-c","mkdir -p $out/bin $dev/include; echo \"x\\ny\" > $out"],'
    f'[("dev","{multi_dev}"),("name","multi"),("outputs","out dev")])',
)
put(
    "drv",
    "ca.drv",
    'Derive([("out","","r:sha256","")],[],[],"x86_64-linux","/bin/sh",[],[("name","ca"),("__contentAddressed","1")])',
)
put(
    "drv",
    "fixed.drv",
    'Derive([("out","/nix/store/2x6pi4fmwhqrlmcfm81advzzl1qsl9k2-refs","sha256",'
    '"91d723f56e30262e56678fd37eb85fdf209c291b32da85022bd44d6c967d6e86")],[],[],"builtin","builtin:fetchurl",[],[])',
)

put(
    "config_file",
    "toml",
    'server = "https://hc.example.org/"\ntoken_file = "/run/keys/token"\nsecret_key_file = "/run/keys/secret"\n'
    'spool = "/var/lib/hash-collection/spool"\nasync = true\nverify = false\nverbose = 1\n'
    "connect_timeout = 2.5\ntimeout = 30\n",
)
put(
    "config_file",
    "lenient",
    "# old style\nServer = http://user:pw@127.0.0.1:8080/x # comment\nToken-File = /run/keys/t\nasync = yes\nbogus = 1\n",
)
put("config_file", "bad", 'server = "x\n[table]\nkey = [1, 2\n')
