#!/usr/bin/env python3
"""The web pages in a real browser: headless Chromium driven over WebDriver
(chromedriver), against a running deployment that this script seeds through the API.

    scripts/browser_test.py BASE_URL ADMIN_TOKEN OUT_DIR

Seeds three builders, attestations in every status, a jobset with a hostile
description and three evaluations of 150 paths; then clicks through the pages:
each loads with no console error (a CSP violation is one), shows what it must,
the filter, search, sort and pagination of an evaluation work by clicking, the
HTML is well-formed, inputs have labels, headings go in order, status colours
contrast with the page. Screenshots of every page go to OUT_DIR.

Only the standard library and `cryptography` (ed25519 signatures) are used; the
WebDriver protocol is plain JSON over HTTP.
"""

import base64
import hashlib
import html.parser
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

BASE, ADMIN, OUT = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
HOSTILE = '<script>alert("desc")</script><img src=x onerror=alert(2)> & friends'
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
RUN = base64.b32encode(os.urandom(5)).decode().lower()

passed, failed = 0, 0


def nix32(b: bytes) -> str:
    n = len(b)
    out = []
    for i in range((n * 8 - 1) // 5, -1, -1):
        bit = i * 5
        byte, off = divmod(bit, 8)
        c = b[byte] >> off
        if byte + 1 < n:
            c |= b[byte + 1] << (8 - off)
        out.append(NIX32[c & 0x1F])
    return "".join(out)


def hash_part(seed: str) -> str:
    return nix32(hashlib.sha256(seed.encode()).digest()[:20])


def wait_until(cond, seconds=10.0):
    """Polls `cond` until it holds (navigation after a click is asynchronous)."""
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the page")
        time.sleep(0.05)


def store_path(name: str) -> str:
    return f"/nix/store/{hash_part(RUN + name)}-{name}"


def nar_hash(seed: str) -> str:
    return "sha256:" + nix32(hashlib.sha256(("nar" + seed).encode()).digest())


def api(method, path, body=None, token=None, content_type="application/json"):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", content_type)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Builder:
    def __init__(self, name):
        self.name = f"{name}-{RUN}"
        self.key = Ed25519PrivateKey.generate()
        pub = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_name = f"{self.name}-1"
        st, body = api("POST", "/v1/admin/builders",
                       {"name": self.name, "public_keys": [f"{self.key_name}:{base64.b64encode(pub).decode()}"]}, ADMIN)
        assert st == 201, (st, body)
        self.token = json.loads(body)["token"]

    def attest(self, drv, outputs):
        """outputs: [(name, path, nar_hash)]"""
        outs = []
        for name, path, h in outputs:
            size = 4096
            fp = f"1;{path};{h};{size};"
            sig = base64.b64encode(self.key.sign(fp.encode())).decode()
            outs.append({"output_name": name, "output_path": path, "nar_hash": h, "nar_size": size,
                         "references": [], "signature": f"{self.key_name}:{sig}"})
        # The server limits each builder's request rate (429 with Retry-After); a
        # well-behaved client waits and sends again.
        for _ in range(50):
            st, body = api("POST", "/v1/attestations", {"drv_path": drv, "outputs": outs}, self.token)
            if st != 429:
                break
            time.sleep(1)
        assert st == 201, (st, body)


def seed():
    a, b, c = Builder("alpha"), Builder("beta"), Builder("gamma")
    paths = [store_path(f"pkg{i:03}-1.{i % 7}") for i in range(150)]
    # Statuses: 0-59 reproduced (a=b), 60-69 partially (a=b, c differs), 70-79 not
    # reproduced, 80-119 one builder, the rest nobody.
    for lo, hi, who in [(0, 60, "ab"), (60, 70, "abc"), (70, 80, "xyz"), (80, 120, "a")]:
        for i in range(lo, hi):
            p = paths[i]
            drv = f"/nix/store/{hash_part(RUN + 'drv' + p)}-{p.split('-', 1)[1]}.drv"
            if who == "ab":
                for bl in (a, b):
                    bl.attest(drv, [("out", p, nar_hash(p))])
            elif who == "abc":
                a.attest(drv, [("out", p, nar_hash(p))])
                b.attest(drv, [("out", p, nar_hash(p))])
                c.attest(drv, [("out", p, nar_hash(p + "c"))])
            elif who == "xyz":
                for bl, s in ((a, "x"), (b, "y"), (c, "z")):
                    bl.attest(drv, [("out", p, nar_hash(p + s))])
            else:
                a.attest(drv, [("out", p, nar_hash(p))])
    jobset = f"nixos-{RUN}"
    st, body = api("POST", "/v1/admin/jobsets", {"name": jobset, "description": HOSTILE}, ADMIN)
    assert st == 201, (st, body)
    for rev, n in (("r1", 130), ("r2", 140), ("r3", 150)):
        st, body = api("PUT", f"/v1/jobsets/{jobset}/evaluations/{rev}", "".join(p + "\n" for p in paths[:n]).encode(),
                       ADMIN, "text/plain")
        assert st in (200, 201), (st, body)
    return a, b, c, jobset, paths


class WebDriver:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"
        self.profile = tempfile.mkdtemp(prefix="nhc-chromium-")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         f"--user-data-dir={self.profile}", "--window-size=1280,1600"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode()[:500]}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url if url.startswith("http") else BASE + url})

    def current(self):
        return self.s("GET", "/url")

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    def find_all(self, css):
        return [next(iter(e.values())) for e in self.s("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css, text):
        el = self.find(css)
        self.s("POST", f"/element/{el}/clear", {})
        self.s("POST", f"/element/{el}/value", {"text": text})

    def text(self, css="body"):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def logs(self):
        return self.s("POST", "/se/log", {"type": "browser"})

    def screenshot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(os.path.join(OUT, f"{name}.png"), "wb") as f:
            f.write(png)

    def dark(self, on):
        self.s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {
            "features": [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]}})

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Balance(html.parser.HTMLParser):
    """Well-formedness as these pages promise it: every element closed, in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def well_formed(path):
    with urllib.request.urlopen(BASE + path, timeout=30) as r:
        body = r.read().decode()
    p = Balance()
    p.feed(body)
    p.close()
    assert not p.errors and not p.stack, f"{path}: {p.errors[:3]} unclosed {p.stack}"
    assert len(body) < 100 * 1024, f"{path}: {len(body)} bytes"
    return body


A11Y = r"""
const out = [];
const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);
if (hs.filter(h => h === 1).length !== 1) out.push('not exactly one h1: ' + hs);
for (let i = 1; i < hs.length; i++) if (hs[i] > hs[i-1] + 1) out.push('heading skips a level: ' + hs);
for (const el of document.querySelectorAll('input:not([type=hidden]),select,textarea')) {
  const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute('aria-label');
  if (!labelled) out.push('unlabelled ' + el.outerHTML.slice(0, 80));
}
function rgb(s) { const m = s.match(/[\d.]+/g).map(Number); return m.slice(0, 3); }
function lum(c) { const [r,g,b] = c.map(v => { v /= 255; return v <= 0.03928 ? v/12.92 : Math.pow((v+0.055)/1.055, 2.4); }); return 0.2126*r + 0.7152*g + 0.0722*b; }
function contrast(a, b) { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); }
const bg = rgb(getComputedStyle(document.body).backgroundColor);
for (const st of document.querySelectorAll('.st')) {
  const cs = getComputedStyle(st);
  const c1 = contrast(rgb(cs.borderLeftColor), bg);
  if (c1 < 3) out.push('status colour contrast ' + c1.toFixed(2) + ' of ' + st.className);
  const c2 = contrast(rgb(cs.color), rgb(cs.backgroundColor));
  if (c2 < 4.5) out.push('status text contrast ' + c2.toFixed(2) + ' of ' + st.className);
}
if (!document.documentElement.lang) out.push('no lang');
return out;
"""


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}: {e}")


def main():
    os.makedirs(OUT, exist_ok=True)
    a, b, c, jobset, paths = seed()
    port = int(os.environ.get("CHROMEDRIVER_PORT", "0"))
    if not port:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"), f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        wd = WebDriver(port)
        try:
            run(wd, a, b, c, jobset, paths)
        finally:
            wd.quit()
    finally:
        driver.terminate()
        driver.wait(timeout=10)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def page_ok(wd, shot):
    """No console error, accessible basics, a screenshot."""
    errors = [e for e in wd.logs() if e.get("level") == "SEVERE"]
    assert not errors, f"console errors: {errors}"
    problems = wd.js(A11Y)
    assert not problems, f"accessibility: {problems}"
    wd.screenshot(shot)


def run(wd, a, b, c, jobset, paths):
    def home():
        wd.go("/")
        body = wd.text()
        assert jobset in body and "builders" in body, body[:500]
        # The hostile description shows as text: no extra script, no image.
        assert HOSTILE.split(">")[0] in body, "description text missing"
        assert wd.js("return document.scripts.length") == 1
        assert wd.js("return document.images.length") == 0
        page_ok(wd, "01-overview")
        wd.dark(True)
        wd.screenshot("01-overview-dark")
        page_ok(wd, "01-overview-dark")
        wd.dark(False)
    check("overview", home)

    def jobset_page():
        wd.click(f'a[href="/jobsets/{jobset}"]')
        assert wd.current().endswith(f"/jobsets/{jobset}"), wd.current()
        body = wd.text()
        assert "r3" in body and "r1" in body and "Trend" in body, body[:400]
        assert len(wd.find_all("svg.trend g")) == 3
        page_ok(wd, "02-jobset")
    check("jobset page by clicking", jobset_page)

    def evaluation():
        wd.click(f'a[href="/jobsets/{jobset}/r3"]')
        body = wd.text()
        assert "Paths 1–100 of 150 matching" in body, body[:800]
        assert "reproduced: 60 (40.0%)" in body, body[:800]
        assert "Since r2" in body and "10 were added" in body, "diff"
        assert len(wd.find_all("table.paths tbody tr")) == 100
        page_ok(wd, "03-evaluation")
    check("evaluation page", evaluation)

    def paginate():
        wd.click('nav.pager a[rel="next"]')
        assert "page=2" in wd.current(), wd.current()
        assert len(wd.find_all("table.paths tbody tr")) == 50
        assert "Paths 101–150 of 150" in wd.text()
        wd.click('nav.pager a[rel="prev"]')
        assert len(wd.find_all("table.paths tbody tr")) == 100
    check("pagination by clicking", paginate)

    def filter_status():
        # Choosing a status submits the form (app.js); the rows all have it.
        wd.click('#f-status option[value="not_reproduced"]')
        for _ in range(50):
            if "status=not_reproduced" in wd.current():
                break
            time.sleep(0.1)
        assert "status=not_reproduced" in wd.current(), wd.current()
        rows = wd.find_all("table.paths tbody tr")
        assert len(rows) == 10, len(rows)
        badges = wd.js("return [...document.querySelectorAll('table.paths .st')].map(e => e.textContent)")
        assert set(badges) == {"not reproduced"}, badges
        page_ok(wd, "04-evaluation-filtered")
    check("status filter by clicking", filter_status)

    def search_sort():
        wd.go(f"/jobsets/{jobset}/r3")
        wd.type("#f-q", "pkg01")
        wd.click('#f-sort option[value="status"]')  # submits with the text typed
        for _ in range(50):
            if "sort=status" in wd.current():
                break
            time.sleep(0.1)
        url = wd.current()
        assert "q=pkg01" in url and "sort=status" in url, url
        names = wd.js("return [...document.querySelectorAll('table.paths td:first-child a.path')].map(e => e.textContent)")
        assert len(names) == 10 and all("-pkg01" in n for n in names), names
        wd.type("#f-q", "pkg14")
        wd.click('form.filter button[type="submit"]')
        # A click that submits a form does not wait for the next page: wait for its URL.
        wait_until(lambda: "q=pkg14" in wd.current())
        names = wd.js("return [...document.querySelectorAll('table.paths td:first-child a.path')].map(e => e.textContent)")
        assert len(names) == 10 and all("-pkg14" in n for n in names), names
        page_ok(wd, "05-evaluation-search")
    check("search and sort by clicking", search_sort)

    def output():
        wd.go(f"/jobsets/{jobset}/r3?status=partially_reproduced")
        wd.click("table.paths a.path")
        body = wd.text()
        assert "/outputs/" in wd.current()
        assert "partially reproduced" in body and "majority" in body, body[:600]
        assert a.name in body and b.name in body and c.name in body
        assert "nix store verify" in body and "nix-build --check" in body and "nhc status" in body
        page_ok(wd, "06-output")
    check("output page", output)

    def derivation():
        wd.click('a[href^="/derivations/"]')
        body = wd.text()
        assert "Outputs" in body and "partially reproduced" in body, body[:500]
        page_ok(wd, "07-derivation")
    check("derivation page", derivation)

    def builder():
        wd.go("/builders")
        assert a.name in wd.text()
        page_ok(wd, "08-builders")
        wd.click(f'a[href="/builders/{c.name}"]')
        body = wd.text()
        assert "Agreement with the other builders" in body and "other hash" in body, body[:800]
        page_ok(wd, "09-builder")
    check("builder pages", builder)

    def search_box():
        wd.go("/")
        wd.type("#site-search", paths[3])
        wd.click('form.search button[type="submit"]')
        wait_until(lambda: "/outputs/" in wd.current())
        assert wd.current().endswith("/outputs/" + paths[3].split("/")[-1]), wd.current()
        wd.go("/")
        wd.type("#site-search", "pkg12")
        wd.click('form.search button[type="submit"]')
        wait_until(lambda: "/search" in wd.current())
        body = wd.text()
        assert "10 paths contain" in body, body[:600]
        page_ok(wd, "10-search")
    check("search box", search_box)

    def not_found():
        wd.go("/no/such/page")
        assert "Not found" in wd.text()
        # The 404 itself is a console message of the browser; read it away.
        wd.logs()
        wd.screenshot("11-not-found")
    check("404 page", not_found)

    def well_formed_html():
        for p in ["/", f"/jobsets/{jobset}", f"/jobsets/{jobset}/r3", f"/jobsets/{jobset}/r3?page=2",
                  f"/outputs/{paths[65].split('/')[-1]}", "/builders", f"/builders/{a.name}", "/search?q=pkg"]:
            well_formed(p)
    check("well-formed HTML under 100 KB", well_formed_html)


if __name__ == "__main__":
    main()
