#!/usr/bin/env python3
"""Drives the jobset routes of a running nhc-server for bench/jobsets.sh and prints
the figures of BENCHMARKS.md ("Jobsets"). Paths are those bench/jobsets.sh attested:
/nix/store/<i as 32 digits>-pkg, i < 500,000 (4 builders; every 10th path has a
differing hash from one builder); paths from 1,000,000 on are attested by nobody.

  bench/jobsets.py ADDR ADMIN_TOKEN INVALIDATE_CMD

INVALIDATE_CMD: a shell command that invalidates every cached summary in the
database (what a submission does to the evaluations holding its paths)."""

import http.client
import json
import random
import statistics
import subprocess
import sys
import time

addr, token, invalidate = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = addr.split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=600)


def request(method, url, body=None, ctype=None, auth=False):
    headers = {}
    if ctype:
        headers["Content-Type"] = ctype
    if auth:
        headers["Authorization"] = "Bearer " + token
    t = time.perf_counter()
    conn.request(method, url, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    dt = time.perf_counter() - t
    if r.status >= 300:
        raise SystemExit(f"{method} {url}: {r.status} {data[:300]!r}")
    return dt, data


def path(i):
    return "/nix/store/%032d-pkg" % i


def evaluation(k, n=20_000):
    """Evaluation k: slot j holds version v of its path; 5 % of the slots (those
    with j % 20 == k % 20) get a new version at each k; every 10th slot is a path
    nobody attested."""
    out = []
    for j in range(n):
        r = j % 20
        v = k // 20 if r == 0 else ((k - r) // 20 + 1 if k >= r else 0)
        i = j + n * v
        out.append(path(i + 1_000_000 if j % 10 == 9 else i))
    return "\n".join(out) + "\n"


def ms(xs):
    return "%.1f ms" % (xs * 1000)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def show(name, xs):
    print(f"| {name} | {len(xs)} | {ms(statistics.median(xs))} | {ms(pct(xs, 99))} | {ms(max(xs))} |", flush=True)


name = "bench-%d" % int(time.time())
request("POST", "/v1/admin/jobsets", json.dumps({"name": name, "description": "bench"}), "application/json", True)
base = f"/v1/jobsets/{name}"
print("| what | n | median | p99 | max |")
print("|---|---|---|---|---|")

uploads = []
for k in range(100):
    body = evaluation(k).encode()
    dt, _ = request("PUT", f"{base}/evaluations/r{k:03}", body, "text/plain", True)
    uploads.append(dt)
show("upload of 20,000 paths (100 evaluations, 5 % changed each time; includes the summary)", uploads)

ev = f"{base}/evaluations/r099"
cached = [request("GET", ev + "?limit=1")[0] for _ in range(50)]
show("evaluation with a valid cached summary, limit=1", cached)
live = []
for _ in range(10):
    subprocess.run(invalidate, shell=True, check=True)
    live.append(request("GET", ev + "?limit=1")[0])
show("summary computed live (cache invalidated), 20,000 paths, 2 M attestations", live)

rng = random.Random(1)
pages = [request("GET", f"{ev}?limit=100&cursor=o{rng.randrange(19_900)}")[0] for _ in range(1000)]
show("page of 100 at a random cursor", pages)
filt = [request("GET", f"{ev}?limit=100&status=partially_reproduced&cursor=o{rng.randrange(19_000)}")[0] for _ in range(200)]
show("page of 100, status=partially_reproduced (1 path in 10)", filt)
rare = [request("GET", f"{ev}?limit=100&status=not_reproduced")[0] for _ in range(20)]
show("page, status=not_reproduced (no path: scans all 20,000)", rare)
text = [request("GET", f"{ev}?limit=100&q=00001234")[0] for _ in range(20)]
show("page, q=00001234 (substring)", text)

hist = [request("GET", base)[0] for _ in range(50)]
show("history of 100 evaluations of 20,000 paths (cached summaries)", hist)
subprocess.run(invalidate, shell=True, check=True)
dt, _ = request("GET", base)
show("history right after invalidating every summary (recomputes within its 500,000-path budget)", [dt])

d1 = [request("GET", f"{ev}/diff/r098")[0] for _ in range(10)]
show("diff r098 -> r099 (1,000 paths changed)", d1)
dt, data = request("GET", f"{ev}/diff/r000")
show(f"diff r000 -> r099 ({len(json.loads(data)['changed'])} changed, paired by name)", [dt])
show("suggest for builder0, limit=100", [request("GET", f"{ev}/suggest?builder=builder0&limit=100")[0] for _ in range(10)])

big = "\n".join(path(i) for i in range(250_000)).encode() + b"\n"
dt, _ = request("PUT", f"{base}/evaluations/big", big, "text/plain", True)
show("upload of 250,000 paths", [dt])
evb = f"{base}/evaluations/big"
show("page of 100 of 250,000 (cached summary)", [request("GET", f"{evb}?limit=100&cursor=o{rng.randrange(249_000)}")[0] for _ in range(200)])
live = []
for _ in range(3):
    subprocess.run(invalidate, shell=True, check=True)
    live.append(request("GET", evb + "?limit=1")[0])
show("summary computed live, 250,000 paths", live)
show("page, status=not_reproduced of 250,000 (scan budget 50,000 positions)", [request("GET", f"{evb}?limit=100&status=not_reproduced")[0] for _ in range(5)])
dt, _ = request("GET", f"{evb}/diff/r099")
show("diff r099 -> big (250,000 vs 20,000 paths)", [dt])
