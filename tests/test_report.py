"""Unit tests of the report's sections (src/leaguetables/report.py), movement (league.movement) and the profile
sparkline, on small hand-made tables: numbers in sentences, escaping, profile links, revisions marked [r]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables import report as rp
from leaguetables.league import MOVEMENT_COLUMNS, movement
from leaguetables.profiles import sparkline


def league(**over) -> pd.DataFrame:
    n = 4
    df = pd.DataFrame({
        "trust_code": ["A1", "A2", "A3", "A4"], "trust_name": ["One <b>Trust</b>", "Two & Co", "Three", "Four"],
        "trust_type": "acute", "segment": [1, 2, 3, 4], "unadjusted_segment": [1, 2, 2, 4],
        "financial_override": [False, False, True, False], "average_score": [1.5, 2.0, 2.5, 3.0],
        "average_lower": [1.2, 1.8, 2.2, 2.7], "average_upper": [1.8, 2.3, 2.9, 3.3],
        "rank": [1, 2, 3, 4], "rank_of": n, "rank_label": [f"{i} of {n}" for i in range(1, 5)],
        "rank_lower": [1, 1, 2, 3], "rank_upper": [2, 3, 4, 4],
        **{f"p_segment_{s}": [1.0 if s == k else 0.0 for k in (1, 2, 3, 4)] for s in range(1, 5)},
    })
    return df.assign(**over)


def test_movement_hand_worked():
    """Last quarter: A1 rank 5 (likely range 3 to 8), A2 rank 5 (3 to 8), A3 rank 1 (1 to 2).
    This quarter: A1 rank 9 in segment 1 (was 2) → segment change −1, rank change +4, beyond (9 > 8);
    A2 rank 8 → +3, within (the range is inclusive); A3 unchanged; A4 is new (no row); a trust that changed
    type is not compared."""
    now = pd.DataFrame({"trust_code": ["A1", "A2", "A3", "A4", "M1"], "trust_type": ["acute"] * 4 + ["ambulance"],
                        "segment": [1, 2, 3, 4, 2], "rank": [9, 8, 1, 2, 1]})
    prev = pd.DataFrame({"trust_code": ["A1", "A2", "A3", "M1"], "trust_type": ["acute"] * 3 + ["acute"],
                         "segment": [2, 2, 3, 2], "rank": [5, 5, 1, 3], "rank_lower": [3, 3, 1, 1],
                         "rank_upper": [8, 8, 2, 4]})
    mv = movement(now, prev)
    assert list(mv.columns) == MOVEMENT_COLUMNS
    assert list(mv["trust_code"]) == ["A1", "A2", "A3"]
    assert list(mv["segment_change"]) == [-1, 0, 0] and list(mv["rank_change"]) == [4, 3, 0]
    assert list(mv["beyond_likely_range"]) == [True, False, False]
    assert mv.loc[0, "movement_label"] == ("segment 2 to 1; down 4 places (rank 5 to 9); beyond last quarter's "
                                           "likely range of rank 3 to 8")
    assert [rp.movement_text(r) for r in mv.itertuples(index=False)] == [
        "segment 2 to 1; down 4; beyond range", "same segment; down 3; within range",
        "same segment; same rank; within range"]
    assert movement(now, None).empty and list(movement(now, None).columns) == MOVEMENT_COLUMNS


def test_league_table_escapes_links_profiles_and_marks_revisions():
    t = league()
    mv = pd.DataFrame({"trust_code": ["A1"], "previous_segment": [2], "previous_rank": [3], "segment_change": [-1],
                       "rank_change": [-2], "beyond_likely_range": [True]})
    html = rp.league_table_html(t, "acute", movement=mv, previous="2025-26-Q3",
                                revised={("A2", "Segment"), ("A3", "Trust")})
    assert "<b>Trust</b>" not in html and "One &lt;b&gt;Trust&lt;/b&gt;" in html
    assert "Two &amp; Co" in html
    assert html.count('href="trusts/') == 4 and 'href="trusts/A1.html"' in html
    assert "Movement since Q3 2025/26" in html
    assert "segment 2 to 1; up 2; beyond range" in html and "not in last quarter&#x27;s table" in html
    assert '<td class="num">2 [r]</td>' in html, "revised segment marked"
    assert "Three [r]</a>" in html
    assert "1 of 4" in html and "1.20 to 1.80" in html and "100%" in html
    assert 'P(1)<span class="visually-hidden">: probability of segment 1</span>' in html


def test_key_findings_are_sentences_with_numbers():
    t = league()
    mv = pd.DataFrame({"trust_code": ["A1", "A2"], "segment_change": [-1, 0], "beyond_likely_range": [True, False]})
    opp = pd.DataFrame({"metric_id": ["m", "m"], "opportunity_annual": [2.0e9, 0.3e9]})
    funnels = pd.DataFrame({"metric_id": ["m"], "n_worse": [3], "n_better": [1]})
    html = rp.key_findings(t, {"acute": {"segment_changed": 2}}, funnels, mv, "2025-26-Q3", opp)
    assert "Of 4 trusts, 1 is in segment 1 (1 of 4 acute trusts) and 1 in segment 4 or 5." in html
    assert "The financial override moved 1 trust" in html
    assert "Since Q3 2025/26, 1 trust changed segment. For 1 of the 2 trusts in both quarters" in html
    assert "would change the segment of 2 trusts" in html and "3 trust-metric results" in html
    assert "£2.3 billion a year" in html


def test_revisions_section_and_marks(tmp_path):
    assert rp.load_revisions(tmp_path) is None
    html = rp.revisions_html(None, "2025-26-Q4")
    assert "none have been revised" in html
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"quarter": ["2025-26-Q4"] * 3, "table": ["league_table", "league_table", "metrics/ae_4hr"],
                  "trust_code": ["A2", "A3", "A1"], "metric_id": [np.nan, np.nan, "ae_4hr"],
                  "quantity": ["segment", "mystery", "value"], "previous": [2, 1, 70.1], "revised": [3, 2, 70.4]}
                 ).to_csv(tmp_path / "tables" / "revisions.csv", index=False)
    rev = rp.load_revisions(tmp_path)
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
    html = rp.html_table(pd.DataFrame({"a": ["<x>"], "b": [1]}), "Cap <c>", "t1", numeric=["b"], row_header="a")
    assert '<th scope="row">&lt;x&gt;</th>' in html and "Cap &lt;c&gt;" in html and '<td class="num">1</td>' in html


def test_provenance_has_versions_and_parameters_but_no_time():
    run = {"code_version": "0.1.0", "methodology": "nof-2025-26", "methodology_version": "1.0.0", "catalogue": "demo",
           "catalogue_version": "1.0.0", "quarter": "2025-26-Q4", "source": "demo", "metric_ids": ["ae_4hr", "cdiff"]}
    html = rp.provenance_html(run, {"sha": "abcdef1234567890", "dirty": False}, {"trusts.csv": "0" * 64})
    for text in ("leaguetables 0.1.0", "abcdef123456", "nof-2025-26 version 1.0.0", "quarter 2025-26-Q4",
                 "2 metrics (ae_4hr, cdiff)", "trusts.csv 000000000000"):
        assert text in html
    import re

    assert not re.search(r"\d{1,2}:\d{2}|20\d\d-\d\d-\d\d", html), "no wall-clock time or date"


def test_sparkline_has_a_text_alternative_and_breaks_at_gaps():
    svg = sparkline([1.0, 2.0, np.nan, 4.0, 3.0], ["Q1", "Q2", "Q3", "Q4", "Q5"], "Metric <m>", 1, "%")
    assert 'role="img"' in svg and "aria-label=\"Trend of Metric &lt;m&gt;: 1.0 in Q1, 3.0 in Q5 (%)" in svg
    assert svg.count("<polyline") == 2 and "<circle" in svg
    assert sparkline([np.nan, 1.0], ["Q1", "Q2"], "m", 1, "%") == "[x]"
    assert sparkline([2.0, 2.0], ["Q1", "Q2"], "m", 1, "%").count("<polyline") == 1  # flat: drawn mid-height


@pytest.mark.parametrize("code", ["A1", "A-2_b"])
def test_profile_file_names_are_safe(code):
    assert "/" not in rp.profile_file(code) and rp.profile_file(code).endswith(".html")
