"""The published pages in a real browser, used as a person would: Playwright driving the system Chromium, network off.

A small demo quarter, published once per test session (tests/conftest.py), is loaded in one browser for the whole
module. Checked:

* every page type found in the folder (front page, methodology, A–Z index, a profile; per-metric and region pages
  when published) at 1280 px and at 320 px: no failed or external request, no script error, every in-page and
  relative link resolves, one H1, and axe-core (node_modules/axe-core, ``make browser-deps``) finds **no**
  violation; the front page does not scroll horizontally at 320 px (WCAG 1.4.10 reflow);
* the search box with the keyboard alone: Tab to it, type, arrow to a trust, Enter → its profile (from the front
  page and from a profile one folder down); no match is announced;
* a league table sorted and filtered through its header buttons and selects: ``aria-sort``, the order of the rows
  (numbers, text, stable ties) and the announced "Showing N of M trusts." against the published CSV;
* JavaScript off: no search box, the static tables, and the A–Z link reaches every profile;
* screenshots of every page type at both widths, written into a copy's ``review/`` folder, leave the manifest's
  published files and hashes unchanged.

Skips when Playwright, Chromium or axe-core is absent (the reason says which and how to install it).
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest

from leaguetables.config import TRUST_TYPE_LABELS, file_sha256
from leaguetables.publication.browser import (
    AXE_PATH,
    DESKTOP,
    MOBILE,
    Chromium,
    broken_links,
    page_types,
    review_screenshots,
    unavailable,
)
from leaguetables.run.manifest import published_files, read_manifest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


@pytest.fixture(scope="module")
def folder(published_quarters) -> Path:
    """The demo quarter published by the session fixture (tests/conftest.py), shared with test_publication."""
    return published_quarters[0]


@pytest.fixture(scope="module")
def league(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "tables" / "league_table_full.csv", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_PATH.exists():
        pytest.skip(
            f"{AXE_PATH.relative_to(ROOT)} is missing: run `make browser-deps` (npm ci installs axe-core "
            "pinned in package-lock.json)"
        )
    return AXE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    """A fresh desktop page (JavaScript on) for each test."""
    return browser.new_page(*DESKTOP)


def _problems(folder: Path, page: Path, res) -> list[str]:
    name = f"{page.relative_to(folder)} at {res.viewport_width} px"
    problems = [f"{name}: failed requests {res.failed}"] if res.failed else []
    if res.external:
        problems.append(f"{name}: requests outside the publication {res.external}")
    if res.exceptions:
        problems.append(f"{name}: script errors {res.exceptions}")
    broken = broken_links(res)
    if broken:
        problems.append(f"{name}: broken links {broken[:10]}")
    for v in res.violations:
        problems.append(f"{name}: axe {v['impact']} {v['id']} — {v['help']} ({v['nodes']} nodes: {v['targets']})")
    if res.h1_count != 1 or not res.title:
        problems.append(f"{name}: {res.h1_count} H1 elements, title {res.title!r}")
    if not res.links:
        problems.append(f"{name}: no links found (page did not load?)")
    return problems


def _profiles_of_each_type(folder: Path, league: pd.DataFrame) -> list[Path]:
    return [
        folder / "trusts" / f"{g['trust_code'].sort_values().iloc[0]}.html"
        for _, g in league.groupby("trust_type", sort=True)
    ]


# ------------------------------------------------------------------------------------------ every page type, axe
def test_every_page_type_has_no_axe_violation_at_desktop_and_320px(folder, league, browser, axe_source):
    types = page_types(folder)
    assert {"front", "methodology", "trust-index", "profile"} <= set(types), types
    problems = []
    for width, height in (DESKTOP, MOBILE):
        browser.new_page(width, height)
        extra = _profiles_of_each_type(folder, league) if width == DESKTOP[0] else []
        for path in [*types.values(), *extra]:
            res = browser.check(path.as_uri(), axe_source)
            problems += _problems(folder, path, res)
            assert res.viewport_width == width
            # every page type has the search box, revealed by the script
            if not browser.page.locator("#lt-search-input").is_visible():
                problems.append(f"{path.relative_to(folder)}: no visible search box")
    assert not problems, "\n".join(problems)


def test_front_page_at_320px_does_not_scroll_sideways(folder, browser):
    browser.new_page(*MOBILE)
    res = browser.check((folder / "index.html").as_uri())
    assert res.viewport_width == 320
    assert res.scroll_width <= res.viewport_width, f"{res.scroll_width} px wide at 320 px"


def test_the_check_sees_requests_outside_the_folder_and_broken_links(browser, tmp_path):
    """The network is off and every request outside the folder is caught (a check that can fail)."""
    (tmp_path / "p.html").write_text(
        '<!DOCTYPE html><html lang="en"><head><title>t</title><link rel="stylesheet" href="https://cdn.example.org/x.css">'
        '</head><body><main><h1>t</h1><img src="http://example.com/a.png" alt="a"><a href="missing.html">m</a>'
        '<a href="#nowhere">n</a></main></body></html>',
        encoding="utf-8",
    )
    browser.new_page(*DESKTOP)
    res = browser.check((tmp_path / "p.html").as_uri())
    assert {"https://cdn.example.org/x.css", "http://example.com/a.png"} <= set(res.external)
    broken = broken_links(res)
    assert any("missing.html" in b for b in broken) and any("#nowhere" in b for b in broken)


# ---------------------------------------------------------------------------------------- find a trust: keyboard
def _tab_to(page, element_id: str, limit: int = 10) -> int:
    """Press Tab until the element has the focus; return the number of presses."""
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return n
    raise AssertionError(f"#{element_id} not reached with {limit} presses of Tab")


def _choose_with_arrows(page, code: str) -> None:
    """Press ArrowDown until the active option is the trust ``code``."""
    for _ in range(10):
        page.keyboard.press("ArrowDown")
        active = page.locator("#lt-search-input").get_attribute("aria-activedescendant")
        if active and f"({code})" in page.locator(f"#{active}").inner_text():
            return
    raise AssertionError(f"{code} not reached with the arrow keys")


def test_search_with_the_keyboard_alone_reaches_a_profile(folder, league, page):
    """Type part of a trust's name in the search box, arrow down to it, Enter: its profile opens."""
    row = league.sort_values("trust_code").iloc[len(league) // 2]
    name, code = row["trust_name"], row["trust_code"]
    # what the search matches: name, code, type, region and subtype, case-insensitive
    hay = (
        league["trust_name"]
        + " "
        + league["trust_code"]
        + " "
        + league["trust_type"].map(TRUST_TYPE_LABELS)
        + " "
        + league["region"]
        + " "
        + league["trust_subtype"].fillna("")
    ).str.lower()
    matches = {w: int(hay.str.contains(w.lower(), regex=False).sum()) for w in name.split()}
    word = min(matches, key=lambda w: (matches[w], w))  # the most distinctive word of the name, in lower case
    page.goto((folder / "index.html").as_uri())
    assert _tab_to(page, "lt-search-input") <= 4  # skip link, A–Z link, then the search box
    page.keyboard.type(word.lower())
    box = page.locator("#lt-search-input")
    assert box.get_attribute("aria-expanded") == "true"
    options = page.locator("#lt-search-list [role=option]")
    assert options.count() == min(8, matches[word])
    status = page.locator("#lt-search-status").inner_text()
    assert status.startswith(f"{matches[word]} trust"), status
    _choose_with_arrows(page, code)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/trusts/{code}.html")
    assert page.locator("h1").inner_text() == name


def test_search_by_code_from_a_profile_one_folder_down(folder, league, page):
    """A code typed exactly comes first; Enter opens it (links work from pages in trusts/)."""
    first, other = league.sort_values("trust_code")["trust_code"].iloc[[0, -1]]
    page.goto((folder / "trusts" / f"{first}.html").as_uri())
    _tab_to(page, "lt-search-input")
    page.keyboard.type(other)
    assert f"({other})" in page.locator("#lt-search-option-0").inner_text()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/trusts/{other}.html")


def test_search_announces_no_match_and_escape_closes_the_list(folder, page):
    page.goto((folder / "index.html").as_uri())
    box = page.locator("#lt-search-input")
    box.focus()
    page.keyboard.type("demo")
    assert box.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    assert box.get_attribute("aria-expanded") == "false" and page.locator("#lt-search-list").is_hidden()
    box.fill("")
    page.keyboard.type("qqqzzz")
    assert page.locator("#lt-search-status").inner_text().startswith("No trust matches")
    assert box.get_attribute("aria-expanded") == "false"
    with page.expect_navigation():  # nothing to open: Enter goes to the A to Z list
        page.keyboard.press("Enter")
    assert "/trusts/index.html" in page.url


# ----------------------------------------------------------------------------------------- sort and filter tables
def _column(page, table: str, header: str) -> list[str]:
    idx = page.locator(f"{table} thead th").all_inner_texts().index(header)
    return page.evaluate(f"""() => [...document.querySelectorAll('{table} tbody tr')].filter(r => !r.hidden)
                             .map(r => r.cells[{idx}].textContent.trim())""")


def _codes(page, table: str) -> list[str]:
    """The trust codes of the rows shown, in their order (``data-code`` of each row)."""
    return page.evaluate(f"""() => [...document.querySelectorAll('{table} tbody tr')].filter(r => !r.hidden)
                             .map(r => r.getAttribute('data-code'))""")


def _press_header(page, table: str, header: str) -> None:
    page.locator(f"{table} thead th button", has_text=re.compile(rf"^{re.escape(header)}")).first.focus()
    page.keyboard.press("Enter")


def test_sort_and_filter_a_league_table_with_the_announced_counts(folder, league, page):
    """The acute league table: sort by average score (numbers) both ways and by trust (text); filter by region and
    segment; the rows shown and the announcement agree with tables/league_table_full.csv."""
    acute = league[league["trust_type"] == "acute"]
    n = len(acute)
    page.goto((folder / "index.html").as_uri())
    table = "#table-league-acute"
    status = page.locator(f"{table}-status")
    score = page.locator(f"{table} thead th", has_text=re.compile(r"^Average score"))
    _press_header(page, table, "Average score")
    assert score.get_attribute("aria-sort") == "ascending"
    assert status.inner_text() == f"Sorted by Average score, ascending. Showing {n} of {n} trusts."
    values = [float(v) for v in _column(page, table, "Average score")]
    assert values == sorted(values) and len(values) == n
    # ties (equal scores as shown, 2 decimals) keep the published order: rank, then code
    published = acute.sort_values(["rank", "trust_code"], kind="mergesort")
    shown = published.assign(s=[float(f"{v:.2f}") for v in published["average_score"]])
    assert _codes(page, table) == shown.sort_values("s", kind="mergesort")["trust_code"].to_list()
    _press_header(page, table, "Average score")
    assert score.get_attribute("aria-sort") == "descending"
    values = [float(v) for v in _column(page, table, "Average score")]
    assert values == sorted(values, reverse=True)
    assert page.locator(f"{table} thead th[aria-sort]").count() == 1
    _press_header(page, table, "Trust")
    assert page.locator(f"{table} thead th[aria-sort]").count() == 1
    assert score.get_attribute("aria-sort") is None

    region = sorted(acute["region"].unique())[0]
    page.select_option(f"{table}-filter-region", label=region)
    k = int((acute["region"] == region).sum())
    assert status.inner_text() == f"Showing {k} of {n} trusts."
    assert sorted(_codes(page, table)) == sorted(acute.loc[acute["region"] == region, "trust_code"])
    seg = int(acute.loc[acute["region"] == region, "segment"].dropna().astype(int).mode().iloc[0])
    page.select_option(f"{table}-filter-segment", label=f"Segment {seg}")
    both = acute[(acute["region"] == region) & (acute["segment"] == seg)]
    assert status.inner_text() == f"Showing {len(both)} of {n} trusts."
    page.select_option(f"{table}-filter-region", label="All")
    page.select_option(f"{table}-filter-segment", label="All")
    assert status.inner_text() == f"Showing {n} of {n} trusts."


def test_rank_column_sorts_as_numbers(folder, league, page):
    """ "12 of 134" sorts by 12, not as text ("100 of" before "12 of")."""
    page.goto((folder / "index.html").as_uri())
    table = "#table-league-acute"
    _press_header(page, table, "Rank")
    _press_header(page, table, "Rank")  # descending
    ranks = [int(v.split()[0]) for v in _column(page, table, "Rank")]
    acute = league[league["trust_type"] == "acute"]
    assert ranks == sorted(acute["rank"].astype(int), reverse=True)


# ---------------------------------------------------------------------------------------------- JavaScript off
def test_without_javascript_the_a_to_z_link_reaches_every_profile(folder, league, browser):
    page = browser.new_page(*DESKTOP, javascript=False)
    page.goto((folder / "index.html").as_uri())
    assert page.locator("#lt-search").is_hidden()
    assert page.locator("#table-league-acute thead button").count() == 0  # the static table is the baseline
    with page.expect_navigation():
        page.get_by_role("link", name="Find a trust (A to Z)").click()
    assert page.url.endswith("/trusts/index.html")
    hrefs = page.locator("main a[href$='.html']").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert set(league["trust_code"] + ".html") <= set(hrefs)
    row = league.sort_values("trust_code").iloc[-1]
    with page.expect_navigation():
        page.get_by_role("link", name=row["trust_name"], exact=True).click()
    assert page.locator("h1").inner_text() == row["trust_name"]
    browser.new_page(*DESKTOP)


# ------------------------------------------------------------------------------------------------ review folder
def test_review_screenshots_of_every_page_type_leave_the_publication_unchanged(folder, browser, tmp_path):
    """Screenshots of each page type at 1280 × 900 and 320 × 720 in ``<quarter>/review/`` (here a copy of the
    release): PNG files of those sizes, and the published files and their manifest hashes are unchanged."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    written = review_screenshots(browser, copy)
    types = page_types(copy)
    assert sorted(p.name for p in written) == sorted(f"{t}-{w}.png" for t in types for w in ("desktop", "mobile"))
    for p in written:
        data = p.read_bytes()
        assert p.parent == copy / "review" and data[:8] == b"\x89PNG\r\n\x1a\n"
        size = struct.unpack(">II", data[16:24])
        assert size == (DESKTOP if p.stem.endswith("desktop") else MOBILE)
    manifest = read_manifest(copy)
    files = {str(p.relative_to(copy)): file_sha256(p) for p in published_files(copy)}
    assert files == manifest["outputs"]
    assert not (folder / "review").exists()


def test_every_link_of_every_profile_resolves(folder):
    """All profiles and the A–Z index (and the metric and region pages, when published), statically: each relative
    link points at a file of the release, and each #fragment at an id of its target page (the browser tests above
    check every page type in the browser)."""
    ids: dict[Path, set[str]] = {}

    def ids_of(p: Path) -> set[str]:
        if p not in ids:
            ids[p] = set(re.findall(r'\bid="([^"]+)"', p.read_text(encoding="utf-8")))
        return ids[p]

    bad = []
    pages = sorted(p for sub in ("trusts", "metrics", "regions") for p in (folder / sub).glob("*.html"))
    assert (folder / "trusts" / "index.html") in pages
    for page in pages:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            target, _, frag = href.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.is_file() or not str(path).startswith(str(folder.resolve())):
                bad.append(f"{page.name}: {href}")
            elif frag and path.suffix == ".html" and frag not in ids_of(path):
                bad.append(f"{page.name}: {href} (no id {frag})")
    assert not bad, bad[:20]
