"""The published documents of a quarter end to end (src/leaguetables/publication/documents.py): a demo quarter
through run_quarter.py (with movement since the previous quarter, computed from the inputs), rendered twice, each
into its own folder (determinism).

Checks: every published file except the manifest and the executed notebooks is byte-identical between the two
renders (report, profiles, methodology, metric, region and index pages, ODS, CSV); movement against the previous
quarter (its cross-check with the previous quarter's published table: test_run_honesty); the productivity table; one profile per trust with a unique title and one H1; the
methodology built from the config, catalogue and fitted models; the ODS sheets equal to the CSV files; the light
front page and the pages the metric sections moved to; the region pages and the A–Z index of trusts.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLISHED_METRICS as METRICS
from conftest import PUBLISHED_QUARTER as QUARTER

VOLATILE = {"manifest.json"}  # run times; compared by publish's own tests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def releases(published_quarters):
    """(first, second): the same Q4 rendered twice, each into its own folder (tests/conftest.py)."""
    return published_quarters


@pytest.fixture(scope="module")
def folder(releases):
    return releases[0]


def _published(folder: Path) -> list[Path]:
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and p.name not in VOLATILE and p.parts[len(folder.parts)] != "notebooks"
    )


def test_second_render_is_byte_identical(releases):
    """Report, profiles, methodology, spreadsheet and every CSV: the same bytes from a second run."""
    first, second = releases
    files = _published(first)
    assert files == _published(second)
    kinds = {p.suffix for p in files}
    assert {".html", ".csv", ".ods"} <= kinds
    assert Path("methodology.html") in files and Path(f"tables/league_tables_{QUARTER}.ods") in files
    different = [str(p) for p in files if (first / p).read_bytes() != (second / p).read_bytes()]
    assert not different, f"differ between runs: {different[:10]}"


def test_no_wall_clock_time_in_the_documents(folder):
    today = datetime.date.today()
    stamps = (today.isoformat(), today.strftime("%d %B %Y"), today.strftime("%d/%m/%Y"))
    for p in [
        folder / "index.html",
        folder / "methodology.html",
        *sorted((folder / "trusts").glob("*.html"))[:20],
        *sorted((folder / "metrics").glob("*.html")),
        *sorted((folder / "regions").glob("*.html")),
    ]:
        text = p.read_text(encoding="utf-8")
        assert not any(s in text for s in stamps), f"{p.name} carries today's date"


def test_movement_against_the_previous_quarter(folder):
    """movement.csv: this quarter's segment (1–4 after the financial override) and rank against the previous
    quarter's, both computed from the inputs — no previous quarter is published beside this one — with the test of
    change (sampling.change_test) and the number of segment changes expected by chance in the report. That the
    previous segment and rank equal the previous quarter's published table, once it is published, is checked on the
    corpus base by test_run_honesty.test_quarters_run_concurrently_read_no_other_quarters_outputs_and_verify (a
    third ten-metric run here
    until issue 13)."""
    now = pd.read_csv(folder / "tables" / "league_table_full.csv").set_index("trust_code")
    mv = pd.read_csv(folder / "tables" / "movement.csv").set_index("trust_code")
    assert [p.name for p in folder.parent.iterdir() if not p.name.startswith(".")] == [QUARTER], "no other quarter"
    assert set(mv.index) == set(now.index) and len(mv) == len(now), "every trust was in the previous quarter's data"
    assert mv["previous_segment"].isin([1, 2, 3, 4]).all()
    assert (mv["previous_rank"] >= 1).all() and (mv["previous_rank"] <= now.loc[mv.index, "rank_of"]).all()
    assert (mv["rank_change"] == now.loc[mv.index, "rank"] - mv["previous_rank"]).all()
    assert mv["rank_change"].ne(0).any(), "the demo quarters differ"
    assert mv["rank_change_p_value"].between(0, 1).all()
    assert (mv["change_beyond_chance"] == (mv["rank_change_p_value"] < 0.05)).all()
    assert (mv.loc[mv["rank_change"] == 0, "rank_change_p_value"] == 1).all()
    assert mv["segment_change"].ne(0).any(), "the demo quarters differ"
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "Movement since Q3 2025/26" in page and ("within chance" in page or "beyond chance" in page)
    assert "would be expected to change segment by chance alone" in page
    assert "beyond last quarter" not in page and "within range" not in page
    code = mv.index[0]
    profile = (folder / "trusts" / f"{code}.html").read_text(encoding="utf-8")
    assert "Since Q3 2025/26" in profile


def test_calibrated_columns_beside_nhs_england_likely_ranges(folder):
    """The full and adjusted league tables carry the calibrated columns; the NHS-layout CSV keeps NHS England's
    columns only; the rank interval lies within 1..n and contains the median rank; P(segment) sums to 1."""
    for name in ("league_table_full.csv", "league_table_adjusted.csv"):
        t = pd.read_csv(folder / "tables" / name)
        assert (t["rank_interval_lower"] >= 1).all() and (t["rank_interval_upper"] <= t["rank_of"]).all()
        assert ((t["rank_interval_lower"] <= t["rank_median"]) & (t["rank_median"] <= t["rank_interval_upper"])).all()
        np.testing.assert_allclose(t[[f"p_segment_{k}" for k in range(1, 5)]].sum(axis=1), 1.0)
        np.testing.assert_allclose(t[[f"nof_p_segment_{k}" for k in range(1, 5)]].sum(axis=1), 1.0)
    nhse = pd.read_csv(folder / "tables" / "league_table.csv")
    assert "Likely_range_of_rank" in nhse.columns and not any("interval" in c for c in nhse.columns)
    rk = pd.read_csv(folder / "tables" / "rankability.csv")
    assert rk["rankability"].between(0, 1).all()
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert page.index("Rank interval") < page.index("NHS England likely range of rank")


def test_productivity_table_recomputes_from_the_metric_tables(folder, demo_inputs):
    """The published productivity.csv equals metric_opportunity on the published metric table with the
    methodology's settings (pooled quarters and empirical Bayes read every quarter's observations)."""
    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.publication.report import money
    from leaguetables.statistics.productivity import metric_opportunity

    opp = pd.read_csv(folder / "tables" / "productivity.csv")
    assert set(opp["metric_id"]) == {"los_emergency", "sickness_absence"}
    cat, meth = load_catalogue("demo"), load_methodology("nof-2025-26")
    for mid in ("los_emergency", "sickness_absence"):
        table = pd.read_csv(folder / "tables" / "metrics" / f"{mid}.csv")
        p = meth.productivity
        again = metric_opportunity(
            table,
            cat.metric(mid),
            p.annualise,
            p.comparator,
            observations=demo_inputs.observations,
            demographics=demo_inputs.demographics,
            pool_quarters=p.pool_quarters,
            estimate=p.estimate,
            quarters=demo_inputs.quarters(),
        )
        got = opp[opp["metric_id"] == mid].set_index("trust_code")["opportunity_annual"]
        exp = again.set_index("trust_code")["opportunity_annual"].reindex(got.index)
        np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), rtol=1e-6)  # CSVs keep 10 digits
    assert (opp["opportunity_annual"].dropna() >= 0).all()
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert f"England: about <strong>{money(opp['opportunity_annual'].sum())} a year</strong>" in page


def test_one_profile_per_trust_with_unique_title_and_one_h1(folder):
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    pages = sorted(p for p in (folder / "trusts").glob("*.html") if p.name != "index.html")  # index: the A–Z
    assert {p.stem for p in pages} == set(lt["trust_code"])
    titles = set()
    report = (folder / "index.html").read_text(encoding="utf-8")
    for p in pages:
        text = p.read_text(encoding="utf-8")
        title = re.search(r"<title>(.*?)</title>", text).group(1)
        titles.add(title)
        assert text.count("<h1") == 1
        assert 'href="#main-content"' in text and 'class="site-header"' in text and 'class="site-footer"' in text
        hrefs = re.findall(r'href="([^"]+)"', text)
        assert not [h for h in hrefs if re.match(r"[a-z]+:", h) or h.startswith("/")], "relative links only"
        assert f'href="trusts/{p.name}"' in report, f"the report links to {p.name}"
    assert len(titles) == len(pages)
    row = lt.iloc[0]
    text = (folder / "trusts" / f"{row['trust_code']}.html").read_text(encoding="utf-8")
    assert row["rank_label"] in text and f"likely range {row['rank_lower']:.0f} to {row['rank_upper']:.0f}" in text
    assert "Productivity opportunity" in text and "Demographic peers" in text and 'class="spark"' in text


def test_profiles_show_spc_in_words_with_a_chart_and_label_the_productivity_values(folder):
    """Every profile has the SPC section: each metric's variation and assurance in words (as in tables/spc.csv),
    the XmR figure (inline SVG with a title and description) and the limits table; the productivity table shows
    this quarter's value beside the value compared and says on which basis."""
    from leaguetables.statistics import spc

    sp = pd.read_csv(folder / "tables" / "spc.csv")
    assert list(sp.columns) == spc.CSV_COLUMNS
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    assert set(sp["trust_code"]) == set(lt["trust_code"])
    assert set(sp["variation"]) <= set(spc.VARIATION) and set(sp["assurance"]) <= set(spc.ASSURANCE)
    from leaguetables.inputs import demo

    # every demo quarter up to the published one (2025-26-Q4 is the demo's last)
    assert sp.loc[sp["metric_id"] == "ae_4hr", "quarters_used"].max() == len(demo.QUARTERS)
    for code in lt["trust_code"]:
        text = (folder / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        assert '<h2 id="spc">' in text and 'id="spc-table"' in text
        rows = sp[sp["trust_code"] == code]
        for r in rows.itertuples():
            if r.variation != "not_assessed":
                assert spc.VARIATION[r.variation] in text
        if (rows["variation"] != "not_assessed").any():
            assert 'aria-labelledby="spc-chart-title spc-chart-desc"' in text and 'id="spc-limits"' in text
    acute = lt.loc[lt["trust_type"] == "acute", "trust_code"].iloc[0]
    text = (folder / "trusts" / f"{acute}.html").read_text(encoding="utf-8")
    assert "Value this quarter (as in the metrics table)" in text and "Basis of the comparison" in text
    assert "adjusted for demographics (O/E × the type’s value); 4 quarters pooled" in text


def test_methodology_is_built_from_the_config_catalogue_and_run(folder):
    from markupsafe import escape

    from leaguetables.config import load_catalogue, load_methodology

    page = (folder / "methodology.html").read_text(encoding="utf-8")
    meth, cat = load_methodology("nof-2025-26"), load_catalogue("demo")
    assert page.count("<h1") == 1 and f"version {meth.version}" in page
    for mid in METRICS.split(","):
        m = cat.metric(mid)
        assert f'id="metric-{mid}"' in page and str(escape(m.description)) in page
    coefs = pd.read_csv(folder / "tables" / "metrics" / "ae_4hr_model.csv")
    for term in coefs["term"]:
        assert f'<th scope="row">{term}</th>' in page, f"coefficient {term} of ae_4hr"
    assert f"random seed {meth.bootstrap.seed}" in page and f"{meth.bootstrap.replicates:,}" in page
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    cut = lt.loc[lt["trust_type"] == "acute", "cut_point_1"].iloc[0]
    assert f"{cut:.4f}" in page, "segment cut points of the run"
    assert "£395 per bed day" in page and "Configuration as run" in page
    report = (folder / "index.html").read_text(encoding="utf-8")
    assert 'href="methodology.html"' in report and 'href="metrics/ae_4hr.html"' in report
    assert 'href="metrics/ae_4hr.html"' in page, "each definition links to the metric's page"
    metric_page = (folder / "metrics" / "ae_4hr.html").read_text(encoding="utf-8")
    assert 'href="../methodology.html#metric-ae_4hr"' in metric_page


def test_spreadsheet_sheets_equal_the_csv_tables(folder):
    """Cover, contents and notes first; every other sheet reads back (pandas, calamine) equal to the CSV it names.
    (calamine, a reader in Rust, reads the whole workbook in a fraction of a second and gives the same frames as
    pandas's odfpy reader, which took ten CPU seconds here until issue 13; tests/test_spreadsheet.py reads a sheet
    back with odfpy and checks the ODF markup with it.)"""
    from leaguetables.publication.spreadsheet import Release, quarter_workbook

    path = folder / "tables" / f"league_tables_{QUARTER}.ods"
    book = pd.read_excel(path, sheet_name=None, engine="calamine", header=None)
    names = list(book)
    assert names[:3] == ["Cover", "Contents", "Notes"]
    contents = book["Contents"]
    listed = set(contents.iloc[3:, 0])
    assert listed == set(names[2:]), "the contents sheet lists every sheet but the cover and itself"
    notes = book["Notes"].iloc[3:, 0].tolist()
    assert notes == [f"note {i}" for i in range(1, len(notes) + 1)], "notes numbered without gaps"
    cited = set()
    for name in names[3:]:
        raw = book[name]
        assert isinstance(raw.iloc[0, 0], str) and raw.iloc[1:, 1:].iloc[:2].isna().all().all(), "title in A1"
        source = [v for v in raw.iloc[:6, 0] if isinstance(v, str) and v.startswith("Source: ")][0]
        rel = source.split()[1]
        csv = pd.read_csv(folder / rel)
        header = next(i for i in range(len(raw)) if list(raw.iloc[i]) == list(csv.columns))
        data = raw.iloc[header + 1 :].reset_index(drop=True)
        data.columns = list(csv.columns)
        assert not data.isna().any().any(), f"{name}: an empty cell without shorthand"
        data = data.replace({"[c]": np.nan, "[x]": np.nan, "[z]": np.nan}).infer_objects()
        for c in csv.columns:
            if pd.api.types.is_numeric_dtype(csv[c]) and not pd.api.types.is_bool_dtype(csv[c]):
                data[c] = pd.to_numeric(data[c])
            elif pd.api.types.is_bool_dtype(csv[c]):
                data[c] = data[c].astype(bool)
        pd.testing.assert_frame_equal(data, csv, check_dtype=False, obj=name)
        cited |= set(re.findall(r"\[note (\d+)\]", raw.iloc[1, 0]))
    assert {f"note {c}" for c in cited} == set(notes)
    sheets, _ = quarter_workbook(Release(folder, QUARTER, *_meth_cat(), METRICS.split(","), "demo", "test"))
    assert [s.name for s in sheets] == names


def _meth_cat():
    from leaguetables.config import load_catalogue, load_methodology

    return load_methodology("nof-2025-26"), load_catalogue("demo")


FRONT_PAGE_LIMIT = 500_000  # bytes (issue 15: a light front page; 1.59 MB before the metric sections moved)


def _headings_in_order(text: str) -> list[str]:
    """Problems with a page's headings: not one H1, or a level skipped going down (h2 → h4)."""
    levels = [int(x) for x in re.findall(r"<h([1-6])\b", text)]
    problems = [] if levels.count(1) == 1 and levels[0] == 1 else [f"H1s: {levels.count(1)}, first {levels[:1]}"]
    problems += [f"h{a} → h{b}" for a, b in zip(levels, levels[1:]) if b > a + 1]
    return problems


def test_front_page_is_light_and_links_every_metric_page(folder):
    """index.html: no funnel plot (they moved to metrics/<id>.html), under 500 kB, key findings before the league
    tables, a link to each metric's page; each metric page has its funnel plots (inline SVG with a text alternative),
    the data table of every plot, links to the profiles and headings in order."""
    from markupsafe import escape

    from leaguetables.config import load_catalogue

    report = folder / "index.html"
    text = report.read_text(encoding="utf-8")
    assert report.stat().st_size <= FRONT_PAGE_LIMIT, f"front page {report.stat().st_size:,} bytes"
    assert "<svg" not in text and "Data table for this funnel plot" not in text
    assert text.index('id="key-findings"') < text.index('id="segments"') < text.index('id="league-tables"')
    cat = load_catalogue("demo")
    for mid in METRICS.split(","):
        m = cat.metric(mid)
        assert f'href="metrics/{mid}.html"' in text
        page = (folder / "metrics" / f"{mid}.html").read_text(encoding="utf-8")
        assert not _headings_in_order(page), (mid, _headings_in_order(page))
        assert page.count("<h1") == 1 and re.search(r"<title>[^<]*" + re.escape(str(escape(m.name))), page)
        if m.funnel:
            assert page.count("<svg") >= 1 and "<title" in page.split("<svg", 1)[1], mid
            assert page.count("Data table for this funnel plot") == page.count('<figure id="fig-')
            assert 'href="../trusts/' in page
    assert not _headings_in_order(text.split("<main", 1)[1])


def test_region_pages_list_every_trust_once_with_its_segment_and_rank_interval(folder, demo_inputs):
    """regions/<slug>.html: every trust of the league table on exactly one region page (its own region), with its
    segment and rank interval as in league_table_full.csv, a link to its profile and data-region on its row; the
    front page and the profiles link to the region pages."""
    from leaguetables.publication.report import area_file

    lt = pd.read_csv(folder / "tables" / "league_table_full.csv").set_index("trust_code")
    reg = demo_inputs.trusts
    reg = reg[reg["trust_code"].isin(lt.index)]  # the organisations with a profile (this run's metrics apply to them)
    report = (folder / "index.html").read_text(encoding="utf-8")
    seen: dict[str, str] = {}
    for region in sorted(reg["region"].unique()):
        path = folder / "regions" / area_file(region)
        assert f'href="regions/{path.name}"' in report
        text = path.read_text(encoding="utf-8")
        assert not _headings_in_order(text)
        for row in re.findall(r'<tr data-code="([^"]+)"[^>]*data-region="([^"]+)"[^>]*>(.*?)</tr>', text):
            code, attr_region, cells = row
            assert code not in seen, f"{code} on two region pages"
            seen[code] = region
            assert attr_region == region.replace("&", "&amp;")
            assert f'href="../trusts/{code}.html"' in cells
            t = lt.loc[code]
            tds = re.findall(r"<td[^>]*>(.*?)</td>", cells)
            assert tds[2] == str(int(t["segment"])), (code, tds)  # trust, subtype, segment, rank, rank interval
            assert f"{t['rank_interval_lower']:.0f} to {t['rank_interval_upper']:.0f}" in tds[4]
    assert seen == dict(zip(reg["trust_code"], reg["region"]))
    code = reg["trust_code"].iloc[0]
    profile = (folder / "trusts" / f"{code}.html").read_text(encoding="utf-8")
    assert f'href="../regions/{area_file(reg["region"].iloc[0])}"' in profile


def test_trust_index_lists_every_trust_from_a_to_z(folder, demo_inputs):
    """trusts/index.html (the no-JavaScript way to find a trust): every trust with a profile once, sorted by name, linking to its
    profile, with its code and region; every page's header links to it."""
    text = (folder / "trusts" / "index.html").read_text(encoding="utf-8")
    assert not _headings_in_order(text)
    links = re.findall(r'<tr[^>]*data-code="([^"]+)"[^>]*><td class="name"><a href="([^"]+)">', text)
    reg = demo_inputs.trusts
    in_league = set(pd.read_csv(folder / "tables" / "league_table_full.csv")["trust_code"])
    assert len(in_league) < len(reg)  # this run's metrics apply to no ICB: the ICBs get no profile to list
    reg = reg[reg["trust_code"].isin(in_league)]
    assert [c for c, _ in links] == list(
        reg.assign(k=reg["trust_name"].str.lower()).sort_values(["k", "trust_code"], kind="mergesort")["trust_code"]
    )
    assert all(h == f"{c}.html" for c, h in links)
    assert all((folder / "trusts" / h).exists() for _, h in links)
    for page in (folder / "index.html", folder / "metrics" / "ae_4hr.html", folder / "trusts" / f"{links[0][0]}.html"):
        href = "trusts/index.html" if page.parent == folder else "../trusts/index.html"
        assert f'href="{href}"' in page.read_text(encoding="utf-8"), page


def test_league_table_rows_carry_the_filter_attributes(folder, demo_inputs):
    """Every league-table row has data- attributes of its trust's code, type, region, subtype and segment (the hooks
    of the table script), and every data table of the front page has class lt-table."""
    text = (folder / "index.html").read_text(encoding="utf-8")
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv").set_index("trust_code")
    reg = demo_inputs.trusts.set_index("trust_code")
    from leaguetables.config import TRUST_TYPE_LABELS

    league = text.split('id="league-tables"', 1)[1].split('id="sensitivity"')[0]
    rows = re.findall(
        r'<tr data-code="([^"]+)" data-type="([^"]+)" data-region="([^"]*)" data-subtype="([^"]*)" '
        r'data-segment="([^"]*)">',
        league,
    )
    assert len(rows) == len(lt)
    for code, ttype, region, subtype, segment in rows:
        assert ttype == TRUST_TYPE_LABELS[reg.loc[code, "trust_type"]]
        assert region == reg.loc[code, "region"].replace("&", "&amp;")
        sub = reg.loc[code, "trust_subtype"]
        assert subtype == ("" if pd.isna(sub) else str(sub)) and segment == f"Segment {int(lt.loc[code, 'segment'])}"
    assert league.count('data-filters="region segment subtype" data-noun="trust|trusts"') == lt["trust_type"].nunique()
    assert text.count("<table") == text.count('class="lt-table')
