"""The published pages in a real browser: headless Chromium, network disabled, axe-core inside each page.

A small demo quarter, published once per test session (tests/conftest.py), is checked. The report, the
methodology and a profile of each trust type are loaded; each must make no failed and no external request, every
in-page and relative link must resolve, and axe-core (node_modules/axe-core, installed by ``make browser-deps``)
must report no serious or critical violation. The report's first screen is saved as a PNG in the test's temporary
folder — a review artefact, never part of the published (byte-identical) folder;
``python -m leaguetables.publication.browser screenshot reports/<quarter>`` writes one into ``reports/<quarter>/review/`` for a
human reviewer.

Skips only when no Chromium can be found.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pandas as pd
import pytest

from leaguetables.publication.browser import AXE_PATH, Chromium, broken_links, find_chromium

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None,
                                 reason="Chromium not found (no /usr/bin/chromium, no chromium or google-chrome on "
                                        "PATH, CHROMIUM unset): `make browser-deps` installs it with apt-get")]


@pytest.fixture(scope="module")
def folder(published_quarters) -> Path:
    """The demo quarter published by the session fixture (tests/conftest.py), shared with test_publication."""
    return published_quarters[0]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_PATH.exists():
        pytest.fail(f"{AXE_PATH.relative_to(ROOT)} is missing: run `make browser-deps` (npm ci installs axe-core "
                    "pinned in package-lock.json)")
    return AXE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def _pages(folder: Path) -> list[Path]:
    """One page of every type: the report, the methodology, the profile of the first trust of each type, the first
    metric page, the first region page and the A–Z index of trusts."""
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv").sort_values("trust_code")
    trusts = [folder / "trusts" / f"{g['trust_code'].iloc[0]}.html" for _, g in lt.groupby("trust_type", sort=True)]
    return [folder / "index.html", folder / "methodology.html", *trusts, sorted((folder / "metrics").glob("*.html"))[0],
            sorted((folder / "regions").glob("*.html"))[0], folder / "trusts" / "index.html"]


def test_pages_load_offline_with_working_links_and_no_serious_axe_violations(folder, browser, axe_source):
    problems = []
    for page in _pages(folder):
        res = browser.check(page.as_uri(), axe_source)
        name = page.relative_to(folder)
        if res.failed:
            problems.append(f"{name}: failed requests {res.failed}")
        if res.external:
            problems.append(f"{name}: requests outside the publication {res.external}")
        if res.exceptions:
            problems.append(f"{name}: script errors {res.exceptions}")
        broken = broken_links(res)
        if broken:
            problems.append(f"{name}: broken links {broken[:10]}")
        for v in res.serious:
            problems.append(f"{name}: axe {v['impact']} {v['id']} — {v['help']} ({v['nodes']} nodes: {v['targets']})")
        if res.h1_count != 1 or not res.title:
            problems.append(f"{name}: {res.h1_count} H1 elements, title {res.title!r}")
        assert res.links, f"{name}: no links found (page did not load?)"
    assert not problems, "\n".join(problems)


def test_every_link_of_every_profile_resolves(folder):
    """All profiles, metric pages, region pages and the A–Z index, statically: each relative link points at a file of
    the release, and each #fragment at an id of its target page (the browser test above checks a sample in the
    browser)."""
    ids: dict[Path, set[str]] = {}

    def ids_of(p: Path) -> set[str]:
        if p not in ids:
            ids[p] = set(re.findall(r'\bid="([^"]+)"', p.read_text(encoding="utf-8")))
        return ids[p]

    bad = []
    pages = sorted([*(folder / "trusts").glob("*.html"), *(folder / "metrics").glob("*.html"),
                    *(folder / "regions").glob("*.html")])
    assert pages and (folder / "trusts" / "index.html") in pages
    for page in pages:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            target, _, frag = href.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.is_file() or not str(path).startswith(str(folder.resolve())):
                bad.append(f"{page.name}: {href}")
            elif frag and path.suffix == ".html" and frag not in ids_of(path):
                bad.append(f"{page.name}: {href} (no id {frag})")
    assert not bad, bad[:20]


def test_screenshot_of_the_first_screen(folder, browser, tmp_path_factory):
    """The report's first screen (1280 × 900) as PNG, for review; kept out of the published folder."""
    browser.goto((folder / "index.html").as_uri())
    out = browser.screenshot(tmp_path_factory.mktemp("review") / "screenshot.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    assert not (folder / "screenshot.png").exists() and not (folder / "review").exists()
