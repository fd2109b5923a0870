"""Headless Chromium for checking and reviewing the published pages: accessibility (axe-core), links, requests,
screenshots — driven by Playwright with the system Chromium.

Playwright (PyPI ``playwright``, the ``test`` extra) launches the Chromium installed on the machine
(``executable_path``: ``$CHROMIUM``, else ``/usr/bin/chromium``, else the first browser on ``PATH``); Playwright's own
browser download is never used. The network is off three ways: the browser context is offline, every request whose
scheme is not ``file``/``data``/``about``/``blob`` is intercepted and aborted (and recorded as external), and
Chromium resolves no host name and sends every connection to a closed local port. So a page that tries to fetch
anything from outside its folder is caught.

axe-core comes from the npm registry (``package.json``/``package-lock.json``, installed by ``make browser-deps``
into ``node_modules/``) and is injected into each page.

Command line (review artefacts, never part of the published, byte-identical folder)::

    python -m leaguetables.publication.browser screenshot reports/2025-26-Q4  # → reports/2025-26-Q4/review/*.png
    python -m leaguetables.publication.browser check reports/2025-26-Q4 [--sample 5] # axe, links, requests; exit 1 on failure

``screenshot`` saves the first screen of one page of each type (:func:`page_types`) at desktop (1280 × 900) and
mobile (320 × 720) widths as ``review/<type>-desktop.png`` and ``review/<type>-mobile.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urldefrag, urlparse

from leaguetables.config import PROJECT_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

try:  # the `test` extra; the pipeline itself never needs a browser
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - exercised only where the test extra is absent
    sync_playwright = None  # type: ignore[assignment]
    PlaywrightError = RuntimeError  # type: ignore[assignment,misc]

AXE_PATH = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    # no network: nothing resolves and every connection goes to a closed local port
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
LOCAL_SCHEMES = ("file", "data", "about", "blob")
SERIOUS = ("serious", "critical")
REVIEW_DIR = "review"  # reports/<quarter>/review/: review artefacts, not published (see publish.UNPUBLISHED)
DESKTOP, MOBILE = (1280, 900), (320, 720)  # viewport sizes of the checks and screenshots (CSS pixels)


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


def unavailable() -> str | None:
    """Why the browser checks cannot run here (no Playwright, no Chromium), or None when they can."""
    if sync_playwright is None:
        return "the Python package playwright is not installed (`make browser-deps` installs the test extra)"
    if find_chromium() is None:
        return (
            "Chromium not found (no /usr/bin/chromium, no chromium or google-chrome on PATH, CHROMIUM unset): "
            "`make browser-deps` installs it with apt-get"
        )
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
    scroll_width: int = 0  # document width in CSS pixels: wider than the viewport means horizontal scrolling
    viewport_width: int = 0

    @property
    def serious(self) -> list[dict]:
        return [v for v in self.violations if v.get("impact") in SERIOUS]


_PAGE_INFO = """() => ({title: document.title, h1: document.querySelectorAll('h1').length,
  links: [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href]),
  missing: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
    .filter(id => id && !document.getElementById(decodeURIComponent(id))),
  scroll: document.documentElement.scrollWidth, viewport: window.innerWidth})"""
_AXE_RUN = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id,
  impact: v.impact, help: v.help, nodes: v.nodes.length,
  targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"""


class Chromium:
    """One headless system Chromium (Playwright) with one page at a time, network off.

    >>> with Chromium() as browser:            # doctest: +SKIP
    ...     browser.goto(Path("index.html").resolve().as_uri())
    ...     browser.evaluate("document.title")
    """

    def __init__(
        self, executable: str | None = None, width: int = DESKTOP[0], height: int = DESKTOP[1], timeout: float = 60
    ):
        reason = unavailable() if executable is None else None
        if reason:
            raise BrowserError(reason)
        self.executable = executable or find_chromium()
        self.width, self.height, self.timeout = width, height, timeout
        self._pw: Playwright | None = None
        self.browser: Browser | None = None
        self.context: BrowserContext | None = None
        self.page: Page | None = None
        self._record: PageCheck | None = None

    # ------------------------------------------------------------------------------------------------ process
    def start(self) -> Chromium:
        self._pw = pw = sync_playwright().start()
        try:
            self.browser = pw.chromium.launch(
                executable_path=self.executable, headless=True, args=list(FLAGS), timeout=self.timeout * 1000
            )
        except PlaywrightError as e:
            pw.stop()
            raise BrowserError(f"could not start {self.executable}: {e}") from e
        self.new_page()
        return self

    def new_page(self, width: int | None = None, height: int | None = None, javascript: bool = True) -> Page:
        """A fresh page (and browser context) of the given viewport, replacing the current one."""
        if self.browser is None:
            raise BrowserError("the browser is not started (call start() or use it in a with block)")
        if self.context is not None:
            self.context.close()
        self.width, self.height = width or self.width, height or self.height
        self.context = context = self.browser.new_context(
            viewport={"width": self.width, "height": self.height},
            java_script_enabled=javascript,
            offline=True,
            service_workers="block",
            device_scale_factor=1,
        )
        context.set_default_timeout(self.timeout * 1000)
        context.route("**/*", self._route)
        self.page = page = context.new_page()
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("pageerror", self._page_error)
        return page

    def _current_page(self) -> Page:
        if self.page is None:
            raise BrowserError("the browser is not started (call start() or use it in a with block)")
        return self.page

    def _request(self, request) -> None:
        if self._record is not None:
            self._record.requests.append(request.url)

    def _page_error(self, error) -> None:
        if self._record is not None:
            self._record.exceptions.append(str(error))

    def _route(self, route) -> None:
        url = route.request.url
        if urlparse(url).scheme in LOCAL_SCHEMES:
            route.continue_()
            return
        if self._record is not None:
            self._record.external.append(url)
        route.abort("blockedbyclient")

    def _failed(self, request) -> None:
        if self._record is not None and request.url not in self._record.external:
            self._record.failed.append(f"{request.failure}: {request.url}")

    def _response(self, response) -> None:
        if self._record is not None and response.status >= 400:
            self._record.failed.append(f"HTTP {response.status} {response.url}")

    def close(self) -> None:
        if self._pw is not None:
            try:
                if self.browser is not None:
                    self.browser.close()
            finally:
                self._pw.stop()
                self._pw = self.browser = self.context = self.page = None

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- actions
    def goto(self, url: str) -> PageCheck:
        """Load ``url`` and wait for its load event; return what the navigation requested."""
        self._record = PageCheck(url=url)
        self._current_page().goto(url, wait_until="load")
        return self._record

    def evaluate(self, expression: str, arg=None):
        """Evaluate a JavaScript expression or function in the page; raise BrowserError if the script fails."""
        try:
            return self._current_page().evaluate(expression, arg)
        except PlaywrightError as e:
            raise BrowserError(f"script failed: {e}") from e

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """The first screen (viewport) as PNG, or the whole page with ``full_page``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.evaluate("window.scrollTo(0, 0)")
        self._current_page().screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
        return path

    def axe(self, axe_source: str | None = None) -> list[dict]:
        """Run axe-core in the page; return its violations (id, impact, help, nodes, targets)."""
        if axe_source is None:
            axe_source = read_axe()
        self._current_page().add_script_tag(content=axe_source)
        return self.evaluate(_AXE_RUN)

    def check(self, url: str, axe_source: str | None = None) -> PageCheck:
        """Load a page and check requests, in-page anchors, title, H1 count, width and (if ``axe_source``) axe."""
        result = self.goto(url)
        info = self.evaluate(_PAGE_INFO)
        result.title, result.h1_count = info["title"], info["h1"]
        result.links = [tuple(x) for x in info["links"]]
        result.missing_anchors = info["missing"]
        result.scroll_width, result.viewport_width = info["scroll"], info["viewport"]
        if axe_source is not None:
            result.violations = self.axe(axe_source)
        return result


def read_axe() -> str:
    if not AXE_PATH.exists():
        raise BrowserError(f"{AXE_PATH} is missing: run `make browser-deps` (npm ci)")
    return AXE_PATH.read_text(encoding="utf-8")


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


def page_types(folder: Path) -> dict[str, Path]:
    """One published page of each type found in ``folder``: the front page, the methodology, the A–Z index of
    trusts, a trust profile, a per-metric page and a region page (the first of each in file-name order); types
    whose pages are absent are left out."""
    folder = Path(folder)
    single = {
        "front": folder / "index.html",
        "methodology": folder / "methodology.html",
        "trust-index": folder / "trusts" / "index.html",
    }
    found = {k: p for k, p in single.items() if p.is_file()}
    for kind, sub in (("profile", "trusts"), ("metric", "metrics"), ("region", "regions"), ("icb", "icbs")):
        pages = sorted(p for p in (folder / sub).glob("*.html") if p.name != "index.html")
        if pages:
            found[kind] = pages[0]
    return found


def sample_pages(folder: Path, n_trusts: int = 3) -> list[Path]:
    """One page of each type (:func:`page_types`) and ``n_trusts`` trust profiles spread over the codes."""
    pages = list(page_types(folder).values())
    trusts = sorted(p for p in (Path(folder) / "trusts").glob("*.html") if p.name != "index.html")
    if trusts and n_trusts:
        step = max(1, len(trusts) // n_trusts)
        pages += [p for p in trusts[::step][:n_trusts] if p not in pages]
    return pages


def review_screenshots(browser: Chromium, folder: Path, out: Path | None = None) -> list[Path]:
    """The first screen of one page of each type at desktop and mobile widths, as
    ``<out>/<type>-desktop.png`` and ``<type>-mobile.png`` (default ``out``: ``<folder>/review``)."""
    out = Path(out) if out is not None else Path(folder) / REVIEW_DIR
    written = []
    for label, (width, height) in (("desktop", DESKTOP), ("mobile", MOBILE)):
        browser.new_page(width, height)
        for kind, page in page_types(folder).items():
            browser.goto(page.resolve().as_uri())
            written.append(browser.screenshot(out / f"{kind}-{label}.png"))
    browser.new_page(*DESKTOP)
    return written


def _report(folder: Path, page: Path, res: PageCheck, broken: list[str], seconds: float) -> None:
    impacts: dict[str, int] = {}
    for v in res.violations:
        impacts[v["impact"]] = impacts.get(v["impact"], 0) + 1
    print(
        f"{page.relative_to(folder)} at {res.viewport_width} px: {len(res.requests)} requests, "
        f"{len(res.failed)} failed, {len(res.external)} external; {len(res.links)} links, {len(broken)} broken; "
        f"axe violations {impacts or 'none'} ({seconds:.1f} s)"
    )
    for v in res.violations:
        print(f"  {v['impact']}: {v['id']} — {v['help']} ({v['nodes']} nodes, e.g. {v['targets'][:2]})")
    for b in broken[:10]:
        print(f"  broken link: {b}")


def check_folder(browser: Chromium, folder: Path, sample: int = 3) -> int:
    """Check the sample pages at desktop width and the page types at 320 px; print a line per page; return the
    number of pages with a problem (failed or external request, script error, broken link, any axe violation,
    horizontal scrolling at 320 px)."""
    axe_source = read_axe()
    bad = 0
    for (width, height), pages in ((DESKTOP, sample_pages(folder, sample)), (MOBILE, page_types(folder).values())):
        browser.new_page(width, height)
        for page in pages:
            t0 = time.perf_counter()
            res = browser.check(page.as_uri(), axe_source)
            broken = broken_links(res)
            _report(folder, page, res, broken, time.perf_counter() - t0)
            overflow = width == MOBILE[0] and res.scroll_width > res.viewport_width
            if overflow:
                print(f"  scrolls horizontally: {res.scroll_width} px wide at {res.viewport_width} px")
            bad += bool(res.failed or res.external or res.exceptions or broken or res.violations or overflow)
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m leaguetables.publication.browser", description=(__doc__ or "").split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "screenshot", help="save the first screen of each page type at desktop and 320 px widths into <folder>/review/"
    )
    s.add_argument("folder", type=Path)
    s.add_argument("--out", type=Path, help="folder for the PNG files (default <folder>/review)")
    c = sub.add_parser("check", help="axe-core, links and requests of every page type and sample profiles")
    c.add_argument("folder", type=Path)
    c.add_argument("--sample", type=int, default=3, help="number of trust profiles to check (default 3)")
    args = ap.parse_args(argv)
    folder = args.folder.resolve()
    with Chromium() as browser:
        if args.command == "screenshot":
            for path in review_screenshots(browser, folder, args.out):
                print(f"wrote {path}")
            return 0
        return 1 if check_folder(browser, folder, args.sample) else 0


if __name__ == "__main__":
    raise SystemExit(main())
