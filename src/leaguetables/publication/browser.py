"""Headless Chromium for checking and reviewing the published pages: accessibility (axe-core), links, requests,
screenshots.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4,
messages separated by NUL bytes): no TCP port is opened and no Python dependency is needed beyond the standard
library. The network is disabled three ways (offline emulation, a host-resolver rule that resolves nothing, and an
unreachable proxy), and every request the page makes is recorded, so a page that tries to fetch anything from
outside its folder is caught.

axe-core comes from the npm registry (``package.json``/``package-lock.json``, installed by ``make browser-deps``
into ``node_modules/``) and is injected into each page.

Command line (review artefacts, never part of the published, byte-identical folder)::

    python -m leaguetables.publication.browser screenshot reports/2025-26-Q4        # → reports/2025-26-Q4/review/screenshot.png
    python -m leaguetables.publication.browser check reports/2025-26-Q4 [--sample 5] # axe, links and requests; exit 1 on failure
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

from leaguetables.config import PROJECT_ROOT

AXE_PATH = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         # no network: nothing resolves and every connection goes to a closed local port
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>")
SERIOUS = ("serious", "critical")
REVIEW_DIR = "review"  # reports/<quarter>/review/: review artefacts, not published (see manifest.UNPUBLISHED)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    """The Chromium executable: $CHROMIUM, else /usr/bin/chromium, else the first candidate on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What loading one page found."""

    url: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (href as written, resolved URL)
    missing_anchors: list[str] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)
    title: str = ""
    h1_count: int = 0

    @property
    def serious(self) -> list[dict]:
        return [v for v in self.violations if v.get("impact") in SERIOUS]


class Chromium:
    """One headless Chromium with one page, driven over the DevTools pipe.

    >>> with Chromium() as browser:            # doctest: +SKIP
    ...     browser.goto(Path("index.html").resolve().as_uri())
    ...     browser.evaluate("document.title")
    """

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("Chromium not found (set CHROMIUM, or install the Debian package chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._buf = b""
        self.events: list[dict] = []
        self.proc = None

    # ------------------------------------------------------------------------------------------------ process
    def start(self) -> Chromium:
        self.profile = tempfile.mkdtemp(prefix="lt-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # the child must see its ends as fds 3 (commands in) and 4 (replies out): park them above 10 first
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def child_fds():  # runs in the child between fork and exec
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                f"--window-size={self.width},{self.height}", "about:blank"]
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=child_fds, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_child_r, from_child_w, hi_r, hi_w):
            os.close(fd)
        self._out = os.fdopen(to_child_w, "wb", buffering=0)
        self._in_fd = from_child_r
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable")
        self.send("Network.emulateNetworkConditions",
                  {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return self

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.send("Browser.close", session=False, wait=False)
            except (BrowserError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            for f in (self._out,):
                try:
                    f.close()
                except OSError:
                    pass
            os.close(self._in_fd)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._in_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._in_fd, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = True, wait: bool = True) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self._out.write(json.dumps(msg).encode("utf-8") + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str, since: int = 0) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for e in self.events[since:]:
                if e["method"] == event:
                    return e
            since = len(self.events)
            msg = self._read_message(deadline)
            if "method" in msg:
                self.events.append(msg)

    # ------------------------------------------------------------------------------------------------- actions
    def goto(self, url: str) -> list[dict]:
        """Load ``url`` and wait for its load event; return the protocol events of this navigation."""
        start = len(self.events)
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired", start)
        return self.events[start:]

    def evaluate(self, expression: str, await_promise: bool = False):
        res = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": await_promise,
                                             "returnByValue": True})
        if "exceptionDetails" in res:
            raise BrowserError(f"script failed: {res['exceptionDetails'].get('text')} "
                               f"{res['exceptionDetails'].get('exception', {}).get('description', '')}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """The first screen (viewport) as PNG."""
        self.evaluate("window.scrollTo(0, 0)")
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def axe(self, axe_source: str | None = None) -> list[dict]:
        """Run axe-core in the page; return its violations (id, impact, help, nodes, targets)."""
        if axe_source is None:
            if not AXE_PATH.exists():
                raise BrowserError(f"{AXE_PATH} is missing: run `make browser-deps` (npm ci)")
            axe_source = AXE_PATH.read_text(encoding="utf-8")
        self.evaluate(axe_source)
        script = ("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id, "
                  "impact: v.impact, help: v.help, nodes: v.nodes.length, "
                  "targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))")
        return self.evaluate(script, await_promise=True)

    def check(self, url: str, axe_source: str | None = None) -> PageCheck:
        """Load a page and check requests, in-page anchors, title, H1 count and (if ``axe_source``) axe-core."""
        events = self.goto(url)
        result = PageCheck(url=url)
        urls = {}
        for e in events:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                req = p["request"]["url"]
                urls[p.get("requestId")] = req
                result.requests.append(req)
                if urlparse(req).scheme not in ("file", "data", "about"):
                    result.external.append(req)
            elif e["method"] == "Network.loadingFailed":
                result.failed.append(f"{p.get('errorText')}: {urls.get(p.get('requestId'), p.get('requestId'))}")
            elif e["method"] == "Network.responseReceived" and p["response"].get("status", 0) >= 400:
                result.failed.append(f"HTTP {p['response']['status']} {p['response']['url']}")
            elif e["method"] == "Runtime.exceptionThrown":
                result.exceptions.append(p["exceptionDetails"].get("text", ""))
        info = self.evaluate(
            "({title: document.title, h1: document.querySelectorAll('h1').length, "
            "links: [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href]), "
            "missing: [...document.querySelectorAll('a[href^=\"#\"]')].map(a => a.getAttribute('href').slice(1))"
            ".filter(id => id && !document.getElementById(decodeURIComponent(id)))})")
        result.title, result.h1_count = info["title"], info["h1"]
        result.links = [tuple(x) for x in info["links"]]
        result.missing_anchors = info["missing"]
        if axe_source is not None:
            result.violations = self.axe(axe_source)
        return result


_ID_CACHE: dict[Path, set[str]] = {}


def _ids(path: Path) -> set[str]:
    if path not in _ID_CACHE:
        _ID_CACHE[path] = set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))
    return _ID_CACHE[path]


def broken_links(check: PageCheck) -> list[str]:
    """Links of a checked page that do not resolve: a missing file, or a missing id in the target page.

    External links (http, https, mailto) are not followed — they are listed as broken too, because the
    published pages are meant to be self-contained within their folder.
    """
    broken = [f"#{a} (no such id)" for a in check.missing_anchors]
    for href, resolved in check.links:
        if href.startswith("#"):
            continue
        url, frag = urldefrag(resolved)
        parsed = urlparse(url)
        if parsed.scheme != "file":
            broken.append(f"{href} (not a relative link within the publication)")
            continue
        path = Path(unquote(parsed.path))
        if not path.exists():
            broken.append(f"{href} (no file {path.name})")
        elif frag and path.suffix == ".html" and unquote(frag) not in _ids(path):
            broken.append(f"{href} (no id {frag} in {path.name})")
    return broken


def sample_pages(folder: Path, n_trusts: int = 3) -> list[Path]:
    """The report, the methodology, the first metric page, the first region page, the A–Z index of trusts and
    ``n_trusts`` trust profiles spread over the alphabet of codes."""
    pages = [folder / "index.html", folder / "methodology.html", *sorted((folder / "metrics").glob("*.html"))[:1],
             *sorted((folder / "regions").glob("*.html"))[:1], folder / "trusts" / "index.html"]
    trusts = sorted(p for p in (folder / "trusts").glob("*.html") if p.name != "index.html")
    if trusts and n_trusts:
        step = max(1, len(trusts) // n_trusts)
        pages += trusts[::step][:n_trusts]
    return [p for p in pages if p.exists()]


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m leaguetables.publication.browser", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("screenshot", help="save the report's first screen as <folder>/review/screenshot.png")
    s.add_argument("folder", type=Path)
    s.add_argument("--out", type=Path, help="PNG path (default <folder>/review/screenshot.png)")
    c = sub.add_parser("check", help="axe-core, links and requests of the report, methodology and sample profiles")
    c.add_argument("folder", type=Path)
    c.add_argument("--sample", type=int, default=3, help="number of trust profiles to check (default 3)")
    args = ap.parse_args(argv)
    folder = args.folder.resolve()
    with Chromium() as browser:
        if args.command == "screenshot":
            browser.goto((folder / "index.html").as_uri())
            out = browser.screenshot(args.out or folder / REVIEW_DIR / "screenshot.png")
            print(f"wrote {out}")
            return 0
        axe_source = AXE_PATH.read_text(encoding="utf-8")
        bad = 0
        for page in sample_pages(folder, args.sample):
            t0 = time.perf_counter()
            res = browser.check(page.as_uri(), axe_source)
            broken = broken_links(res)
            impacts = {}
            for v in res.violations:
                impacts[v["impact"]] = impacts.get(v["impact"], 0) + 1
            print(f"{page.relative_to(folder)}: {len(res.requests)} requests, {len(res.failed)} failed, "
                  f"{len(res.external)} external; {len(res.links)} links, {len(broken)} broken; axe violations "
                  f"{impacts or 'none'} ({time.perf_counter() - t0:.1f} s)")
            for v in res.violations:
                print(f"  {v['impact']}: {v['id']} — {v['help']} ({v['nodes']} nodes, e.g. {v['targets'][:2]})")
            for b in broken[:10]:
                print(f"  broken link: {b}")
            bad += bool(res.failed or res.external or broken or res.serious)
        return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
