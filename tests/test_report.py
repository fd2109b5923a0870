"""Unit tests of the report's sections (src/leaguetables/publication/report.py), movement (league.movement) and the profile
sparkline, on small hand-made tables: numbers in sentences, escaping, profile links, revisions marked [r]."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from leaguetables.nof.league import MOVEMENT_COLUMNS, movement
from leaguetables.publication import pages
from leaguetables.publication import report as rp
from leaguetables.publication.profiles import _trust_facts, sparkline


def league(**over) -> pd.DataFrame:
    n = 4
    df = pd.DataFrame(
        {
            "trust_code": ["A1", "A2", "A3", "A4"],
            "trust_name": ["One <b>Trust</b>", "Two & Co", "Three", "Four"],
            "trust_type": "acute",
            "segment": [1, 2, 3, 4],
            "unadjusted_segment": [1, 2, 2, 4],
            "financial_override": [False, False, True, False],
            "average_score": [1.5, 2.0, 2.5, 3.0],
            "average_lower": [1.2, 1.8, 2.2, 2.7],
            "average_upper": [1.8, 2.3, 2.9, 3.3],
            "rank": [1, 2, 3, 4],
            "rank_of": n,
            "rank_label": [f"{i} of {n}" for i in range(1, 5)],
            "rank_lower": [1, 1, 2, 3],
            "rank_upper": [2, 3, 4, 4],
            **{f"p_segment_{s}": [1.0 if s == k else 0.0 for k in (1, 2, 3, 4)] for s in range(1, 5)},
        }
    )
    return df.assign(**over)


def change(**over) -> pd.DataFrame:
    """A hand-made sampling.change_test result: A1 segment 2 → 1 and rank 5 → 9 (p = 0.004), A2 rank 5 → 8
    (p = 0.31), A3 unchanged (p = 1)."""
    df = pd.DataFrame(
        {
            "trust_code": ["A1", "A2", "A3"],
            "previous_segment": [2, 2, 3],
            "previous_rank": [5, 5, 1],
            "segment_change": [-1, 0, 0],
            "rank_change": [4, 3, 0],
            "rank_change_p_value": [0.004, 0.31, 1.0],
            "change_beyond_chance": [True, False, False],
            "segment_change_p_value": [0.02, 1.0, 1.0],
            "p_segment_change_by_chance": [0.3, 0.1, 0.0],
        }
    )
    return df.assign(**over)


def test_movement_hand_worked():
    """Movement rows follow the league table's order, only for trusts in the test of change (A4 is new); labels
    give the segment, the rank change, the verdict and the p-value."""
    now = pd.DataFrame(
        {"trust_code": ["A3", "A4", "A2", "A1"], "trust_type": "acute", "segment": [3, 4, 2, 1], "rank": [1, 2, 8, 9]}
    )
    mv = movement(now, change())
    assert list(mv.columns) == MOVEMENT_COLUMNS
    assert list(mv["trust_code"]) == ["A3", "A2", "A1"]
    assert list(mv["segment_change"]) == [0, 0, -1] and list(mv["rank_change"]) == [0, 3, 4]
    assert list(mv["change_beyond_chance"]) == [False, False, True]
    assert mv.loc[2, "movement_label"] == "segment 2 to 1; down 4 places (rank 5 to 9); beyond chance (p = 0.004)"
    assert mv.loc[0, "movement_label"] == "segment unchanged; rank unchanged; within chance (p = 1.000)"
    assert [rp.movement_text(r) for r in mv.itertuples(index=False)] == [
        "same segment; same rank; within chance (p = 1.000)",
        "same segment; down 3; within chance (p = 0.310)",
        "segment 2 to 1; down 4; beyond chance (p = 0.004)",
    ]
    assert movement(now, None).empty and list(movement(now, None).columns) == MOVEMENT_COLUMNS


def calibrated(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(
        rank_median=[1, 2, 3, 4],
        rank_interval_lower=[1, 1, 2, 4],
        rank_interval_upper=[2, 3, 3, 4],
        average_interval_lower=t["average_score"] - 0.1,
        average_interval_upper=t["average_score"] + 0.1,
    )


def test_league_table_escapes_links_profiles_and_marks_revisions():
    t = calibrated(league())
    mv = movement(t, change(trust_code=["A1", "X", "Y"]))
    html = rp.league_table_html(
        t, "acute", movement=mv, previous="2025-26-Q3", revised={("A2", "Segment"), ("A3", "Trust")}
    )
    assert "<b>Trust</b>" not in html and "One &lt;b&gt;Trust&lt;/b&gt;" in html
    assert "Two &amp; Co" in html
    assert html.count('href="trusts/') == 4 and 'href="trusts/A1.html"' in html
    assert "Movement since Q3 2025/26" in html
    assert "segment 2 to 1; down 4; beyond chance (p = 0.004)" in html and "not in last quarter&#39;s table" in html
    assert '<td class="num">2 [r]</td>' in html, "revised segment marked"
    assert "Three [r]</a>" in html
    assert "1 of 4" in html and "1.20 to 1.80" in html and "100%" in html
    assert 'P(1)<span class="visually-hidden">: probability of segment 1</span>' in html
    # calibrated figures first, NHS England's likely ranges labelled as such after them
    heads = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html)
    assert heads.index("Rank interval") < heads.index("NHS England likely range of rank")
    assert heads.index("Median rank") < heads.index("NHS England likely range of average")
    assert "not chance" in html
    # without calibrated columns (uncertainty.method: none) the NHS England columns stand alone
    plain = rp.league_table_html(league(), "acute")
    assert "Rank interval" not in plain and "NHS England likely range of rank" in plain


def test_league_intro_and_segments_say_what_the_ranges_are():
    intro = rp.league_intro("2025-26-Q3", True)
    assert "rank interval" in intro and "not how much its rank could change by chance" in intro
    assert "as if no trust&#x27;s performance had changed" in intro or "as if no trust's performance had" in intro
    seg = rp.segment_distribution(calibrated(league(p_segment_1=[0.6, 0, 0, 0], p_segment_2=[0.4, 1, 0, 0])))
    assert "Segment uncertain (no segment 90% likely)" in seg
    assert re.search(r'<td class="num">1</td><td class="num">4</td></tr>', seg), "1 uncertain of 4"


def test_key_findings_are_sentences_with_numbers():
    t = calibrated(league())
    mv = movement(t, change(trust_code=["A1", "A2", "A3"]))
    opp = pd.DataFrame({"metric_id": ["m", "m"], "opportunity_annual": [2.0e9, 0.3e9]})
    funnels = pd.DataFrame({"metric_id": ["m"], "n_worse": [3], "n_better": [1]})
    html = rp.key_findings(t, {"acute": {"segment_changed": 2}}, funnels, mv, "2025-26-Q3", opp)
    assert "Of 4 trusts, 1 is in segment 1 (1 of 4 acute trusts) and 1 in segment 4 or 5." in html
    assert "The financial override moved 1 trust" in html
    # 1 segment change beside 0.3 + 0.1 + 0 = 0.4 expected by chance; 1 of 3 beyond chance beside 0.15 expected
    assert (
        "Since Q3 2025/26, 1 trust of 3 changed segment; about 0.4 would be expected to change segment by "
        "chance alone" in html
    )
    assert "(p &lt; 0.05) for 1 trust; about 0.2 would be flagged by chance" in html
    assert "spans at least a quarter of the table for 3 of 4 trusts, and 4 of 4 trusts are in their segment" in html
    assert "would change the segment of 2 trusts" in html and "3 trust-metric results" in html
    assert "£2.3 billion a year" in html


def test_revisions_section_and_marks(tmp_path):
    """The revisions table as the report notebook is given it (parameter ``revisions``: a copy in the store, named
    by its SHA-256, or empty): its marks and section."""
    from leaguetables.inputs.store import keep_file

    assert rp.load_revisions("") is None
    html = rp.revisions_html(None, "2025-26-Q4")
    assert "none have been revised" in html
    (tmp_path / "tables").mkdir()
    pd.DataFrame(
        {
            "quarter": ["2025-26-Q4"] * 3,
            "table": ["league_table", "league_table", "metrics/ae_4hr"],
            "trust_code": ["A2", "A3", "A1"],
            "metric_id": [np.nan, np.nan, "ae_4hr"],
            "quantity": ["segment", "mystery", "value"],
            "previous": [2, 1, 70.1],
            "revised": [3, 2, 70.4],
        }
    ).to_csv(tmp_path / "tables" / "revisions.csv", index=False)
    rev = rp.load_revisions(keep_file(tmp_path / "tables" / "revisions.csv", tmp_path / "store"))
    league_marks, metric_marks = rp.revised_marks(rev)
    assert league_marks == {("A2", "Segment"), ("A3", "Trust")}
    assert metric_marks == {("A1", "ae_4hr")}
    html = rp.revisions_html(rev, "2025-26-Q4")
    assert "3 figures for 3 trusts have been revised" in html and "revisions-table" in html


def test_formatting_helpers():
    assert rp.money(2.294e9) == "£2.3 billion" and rp.money(76_495_720) == "£76.5 million"
    assert rp.money(410_779.8) == "£411,000" and rp.money(0) == "£0" and rp.money(np.nan) == "[x]"
    assert rp.fmt(np.nan) == "[x]" and rp.fmt(1234.5, 1) == "1,234.5"
    assert rp.profile_file("RXX") == "RXX.html" and rp.profile_file("DEMO-A001") == "DEMO-A001.html"
    assert rp.profile_file("../etc/passwd") == "etc-passwd.html"
    assert rp.profile_href("A1") == "trusts/A1.html" and rp.profile_href("A1", from_root=False) == "A1.html"


def test_data_table_macro_escapes_and_carries_the_table_script_hooks():
    """The one data-table macro (templates/pages/macros.html.j2): text escaped, captions and header scopes, class
    lt-table, data- attributes on rows, data-type on headers, data-sort on cells whose text does not sort."""
    df = pd.DataFrame(
        {
            "a": ["<x>", "y"],
            "b": [1, 2],
            "d": [np.nan, 0.5],
            "c": [rp.Cell("1 to 3", "trusts/A&B.html", "A<1>", sort=1.0), "[x]"],
        }
    )
    t = rp.frame_table(
        df,
        "Cap <c>",
        "t1",
        numeric=["b"],
        row_header="a",
        row_data=[{"region": "North & East", "segment": "2"}, {"region": "London", "segment": ""}],
    )
    html = pages.render("report/table.html.j2", t=t)
    assert '<th scope="row">&lt;x&gt;</th>' in html and "Cap &lt;c&gt;" in html and '<td class="num">1</td>' in html
    assert "<td></td><td data-sort" in html, "a missing value is an empty cell"
    assert '<table id="t1" class="lt-table">' in html and '<caption id="t1-caption">' in html
    assert 'aria-labelledby="t1-caption"' in html
    assert '<th scope="col" class="num" data-type="number">b</th>' in html
    assert '<th scope="col" data-type="text">a</th>' in html
    assert '<tr data-region="North &amp; East" data-segment="2">' in html
    assert (
        '<td data-sort="1.0"><a href="trusts/A&amp;B.html">1 to 3</a><span class="unit">A&lt;1&gt;</span></td>' in html
    )


def test_provenance_has_versions_and_parameters_but_no_time():
    run = {
        "code_version": "0.1.0",
        "methodology": "nof-2025-26",
        "methodology_version": "1.0.0",
        "catalogue": "demo",
        "catalogue_version": "1.0.0",
        "quarter": "2025-26-Q4",
        "source": "demo",
        "metric_ids": ["ae_4hr", "cdiff"],
    }
    html = rp.provenance_html(run, {"sha": "abcdef1234567890", "dirty": False}, {"trusts.csv": "0" * 64})
    for text in (
        "leaguetables 0.1.0",
        "abcdef123456",
        "nof-2025-26 version 1.0.0",
        "quarter 2025-26-Q4",
        "2 metrics (ae_4hr, cdiff)",
        "trusts.csv 000000000000",
    ):
        assert text in html
    import re

    assert not re.search(r"\d{1,2}:\d{2}|20\d\d-\d\d-\d\d", html), "no wall-clock time or date"


def test_sparkline_has_a_text_alternative_and_breaks_at_gaps():
    spark = pages.environment().get_template("macros.html.j2").module.spark
    svg = spark(sparkline([1.0, 2.0, np.nan, 4.0, 3.0], ["Q1", "Q2", "Q3", "Q4", "Q5"], "Metric <m>", 1, "%"))
    assert 'role="img"' in svg and 'aria-label="Trend of Metric &lt;m&gt;: 1.0 in Q1, 3.0 in Q5 (%)' in svg
    assert svg.count("<polyline") == 2 and "<circle" in svg
    assert sparkline([np.nan, 1.0], ["Q1", "Q2"], "m", 1, "%") == "[x]"
    assert spark(sparkline([2.0, 2.0], ["Q1", "Q2"], "m", 1, "%")).count("<polyline") == 1  # flat: mid-height


@pytest.mark.parametrize("code", ["A1", "A-2_b"])
def test_profile_file_names_are_safe(code):
    assert "/" not in rp.profile_file(code) and rp.profile_file(code).endswith(".html")


def test_segmentation_sentence_follows_the_rule_in_the_league_table():
    """The key finding on segments names the rule the league used (a mutation keeping the old within-type text
    for pooled cut points would publish a false sentence)."""
    import pandas as pd

    from leaguetables.publication.report import segmentation_sentence

    t = pd.DataFrame(
        {"trust_type": ["acute", "mental_health_community"], "segmentation_rule": ["quartiles_pooled"] * 2}
    )
    assert "acute trusts, mental health and community trusts" in segmentation_sentence(t)
    assert "within each trust type" not in segmentation_sentence(t)
    t["segmentation_rule"] = "quartiles_within_type"
    assert "within each trust type" in segmentation_sentence(t)
    t["segmentation_rule"] = "fixed_thresholds"
    assert "fixed thresholds" in segmentation_sentence(t)


def test_area_groupings_follow_the_register_columns():
    """Region pages always; ICB pages as soon as the register has an ICB column (report.GROUPINGS, one line each):
    the groupings, the rows' data- attributes in words and the links to the area pages."""
    reg = pd.DataFrame(
        {
            "trust_code": ["A1", "A2", "M1"],
            "trust_name": ["One", "Two", "Three"],
            "trust_type": ["acute", "acute", "mental_health_community"],
            "trust_subtype": ["Large", np.nan, "Community"],
            "region": ["North East and Yorkshire", "London", "London"],
        }
    )
    table = pd.DataFrame({"trust_code": ["A1", "A2"], "segment": [2, np.nan]})
    assert [g.column for g in rp.active_groupings(reg)] == ["region"]
    f = rp.row_filters(reg, table)
    assert f["A1"] == {
        "code": "A1",
        "type": "Acute trust",
        "region": "North East and Yorkshire",
        "subtype": "Large",
        "segment": "Segment 2",
    }
    assert f["A2"]["subtype"] == "" and f["A2"]["segment"] == "Not segmented" and f["M1"]["segment"] == "Not segmented"
    with_icb = reg.assign(icb_name=["NHS North East ICB", "NHS North Central London ICB", None])
    groups = rp.active_groupings(with_icb)
    assert [g.column for g in groups] == ["region", "icb_name"]
    assert rp.row_filters(with_icb)["A1"]["icb"] == "NHS North East ICB" and "icb" not in rp.row_filters(with_icb)["M1"]
    assert rp.area_href(groups[0], "North East and Yorkshire") == "regions/north-east-and-yorkshire.html"
    assert rp.area_href(groups[1], "NHS North East ICB", "../") == "../icbs/nhs-north-east-icb.html"
    assert rp.profile_file("index") == "trust-index.html", "trusts/index.html is the A–Z index"


def test_profile_heading_names_the_code_and_does_not_repeat_the_type():
    """An ICB's page heads its code as an ICB code, and a subtype that only repeats the type is not shown
    ("Integrated care board (Integrated care board)" was published); a real subtype still is."""
    icb = _trust_facts("X ICB", "DEMO-I02", "icb", {"trust_subtype": "Integrated care board", "region": "South West"})
    assert (icb["subtype"], icb["code_label"]) == ("", "ICB code")
    acute = _trust_facts("X", "DEMO-A001", "acute", {"trust_subtype": "Teaching", "region": "London"})
    assert (acute["subtype"], acute["code_label"]) == ("Teaching", "Trust code")
