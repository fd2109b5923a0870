"""Find a trust and the tables' script, without a browser (src/leaguetables/publication/finder.py and the shared
templates): the search data are complete, ordered and safe inside a script element; the published pages carry the
same script and the same search data byte for byte (determinism); the A–Z index lists every trust.
The behaviour in a browser is tested in tests/test_browser.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from leaguetables.publication import finder, pages
from leaguetables.publication.report import profile_href

SCRIPT = re.compile(r"<script>\n\(function \(\) \{.*?</script>", re.S)
DATA = re.compile(r'<script type="application/json" id="lt-search-data">(.*?)</script>', re.S)


def _table(**extra) -> pd.DataFrame:
    t = pd.DataFrame(
        {
            "trust_code": ["RB2", "RA1", "R&Z", "RC3"],
            "trust_name": ["beta </script><b>Trust", "Alpha Trust", "Émile Trust", "alpha Trust"],
            "trust_type": ["acute", "ambulance", "mental_health_community", "acute"],
            "region": ["London", "North West", "London", "Midlands"],
            "trust_subtype": ["Teaching", "", None, "Large"],
        }
    )
    return t.assign(**extra)


def test_search_rows_are_sorted_by_name_then_code_with_type_labels_and_profile_links():
    fields, rows = finder.search_rows(_table(), href=profile_href)
    assert fields == ["name", "code", "type", "region", "subtype", "href"]
    assert [r[1] for r in rows] == ["RA1", "RC3", "RB2", "R&Z"]  # alpha (A), alpha (a), beta, Émile
    by_code = {r[1]: dict(zip(fields, r)) for r in rows}
    assert by_code["RA1"]["type"] == "Ambulance trust" and by_code["R&Z"]["subtype"] == ""
    assert by_code["RA1"]["href"] == "trusts/RA1.html"
    assert by_code["R&Z"]["href"].startswith("trusts/") and "&" not in by_code["R&Z"]["href"]  # slugged file name


def test_town_and_icb_are_searched_when_the_register_has_them():
    register = _table()[["trust_code"]].assign(icb_name=["NHS North ICB", "NHS South ICB", "", "NHS East ICB"])
    fields, rows = finder.search_rows(_table(town=["Leeds", "Bolton", "Hull", "Derby"]), register)
    assert fields == ["name", "code", "type", "region", "subtype", "town", "icb", "href"]
    row = dict(zip(fields, rows[0]))
    assert (row["code"], row["town"], row["icb"]) == ("RA1", "Bolton", "NHS South ICB")


def _decode(text: str) -> list[dict]:
    """The search data as the page's script reads them (values looked up, default profile links)."""
    data = json.loads(text)
    rows = [
        {f: data["values"][f][v] if f in data["values"] else v for f, v in zip(data["fields"], r)} for r in data["rows"]
    ]
    return [{**r, "href": r["href"] or f"trusts/{r['code']}.html"} for r in rows]


def test_search_json_cannot_close_its_script_element_and_round_trips():
    text = finder.search_json(_table(), href=profile_href)
    assert "<" not in text and ">" not in text and "&" not in text
    fields, rows = finder.search_rows(_table(), href=profile_href)
    assert _decode(text) == [dict(zip(fields, r)) for r in rows]
    assert _decode(text)[2]["name"] == "beta </script><b>Trust" and _decode(text)[3]["code"] == "R&Z"
    assert json.loads(text)["values"]["region"] == ["London", "Midlands", "North West"]
    assert finder.search_json(_table().iloc[::-1], href=profile_href) == text  # input order does not matter
    assert json.loads(text)["rows"][0][-1] == "" and json.loads(text)["rows"][3][-1].startswith("trusts/")


def test_a_page_without_search_data_keeps_the_a_to_z_link_but_no_search_box():
    html = pages.render("base.html.j2", title="t", breadcrumbs=[], provenance="", root="../", site_label="x")
    assert 'href="../trusts/index.html"' in html and 'id="lt-search"' not in html
    html = pages.render(
        "base.html.j2",
        title="t",
        breadcrumbs=[],
        provenance="",
        root="../",
        site_label="x",
        search_data=finder.search_json(_table()),
    )
    assert 'id="lt-search"' in html and 'data-root="../"' in html and "beta \\u003c/script" in html


# ------------------------------------------------------------------------------------------ the published pages
@pytest.fixture(scope="module")
def folder(published_quarters) -> Path:
    return published_quarters[0]


@pytest.mark.slow
def test_every_page_has_the_same_script_and_search_data(folder):
    paths = [
        folder / "index.html",
        folder / "methodology.html",
        *sorted(p for sub in ("trusts", "metrics", "regions") for p in (folder / sub).glob("*.html")),
    ]
    scripts, data = set(), set()
    for p in paths:
        text = p.read_text(encoding="utf-8")
        found = SCRIPT.findall(text)
        assert len(found) == 1, f"{p.name}: {len(found)} shared scripts"
        scripts.add(found[0])
        data.update(DATA.findall(text))
        assert "<script src" not in text
    assert len(scripts) == 1 and len(data) == 1
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    rows = _decode(data.pop())
    assert sorted(r["code"] for r in rows) == sorted(lt["trust_code"])
    assert all((folder / r["href"]).is_file() for r in rows)


@pytest.mark.slow
def test_the_a_to_z_index_links_every_trust_in_name_order(folder):
    text = (folder / "trusts" / "index.html").read_text(encoding="utf-8")
    main = text[text.index("<main") : text.index("</main>")]
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    names = dict(zip(lt["trust_code"], lt["trust_name"]))
    codes = [c for c in re.findall(r'href="([^"/#]+)\.html"', main) if c in names]
    order = list(dict.fromkeys(codes))  # first link to each profile, in page order
    assert sorted(order) == sorted(names)
    assert order == sorted(order, key=lambda c: (names[c].casefold(), names[c], c))


def _attrs(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


@pytest.mark.slow
def test_league_table_rows_carry_their_filter_values(folder):
    """The static table (the no-JavaScript baseline) in published order, each row with the code, region, segment
    and subtype of tables/league_table_full.csv."""
    text = (folder / "index.html").read_text(encoding="utf-8")
    table = re.search(r'<table id="table-league-acute"[^>]*>.*?</table>', text, re.S).group(0)
    assert _attrs(table[: table.index(">")])["data-filters"].split()[:3] == ["region", "segment", "subtype"]
    rows = [_attrs(t) for t in re.findall(r"<tr [^>]*>", table)]
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv", keep_default_na=False, na_values=[""])
    acute = lt[lt["trust_type"] == "acute"].sort_values(["rank", "trust_code"], kind="mergesort")
    expected = [
        {
            "data-code": c,
            "data-region": r,
            "data-segment": "Not segmented" if pd.isna(s) else f"Segment {int(s)}",
            "data-subtype": t,
        }
        for c, r, s, t in zip(acute["trust_code"], acute["region"], acute["segment"], acute["trust_subtype"].fillna(""))
    ]
    assert [{k: r.get(k) for k in expected[0]} for r in rows] == expected
