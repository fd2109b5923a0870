"""The long data table in NHS England's layout (:func:`leaguetables.nof.layout.nhse_long_table`), built column by
column rather than row by row: its rows, ranks, quartiles, blanks and order on a small league whose figures are
worked by hand below (the demo catalogue's codes and labels, ``config/nof/codes-2025-26.yaml``).

The cases are the ones a vectorised rewrite could get wrong: ties (competition ranks 1, 1, 3), a metric where
lower is better, a trust with a score but no value (listed under the score code only, with no rank), a trust with
neither, a trust with no row at all, one metric ranked within each trust type, a bracket metric (no value rows),
the combined finance score (NHS England's lookup), a trust whose finance status is unknown (``[x]``), segment 5 and
the domain scores and segments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.config import load_catalogue
from leaguetables.csv_output import write_csv
from leaguetables.inputs.sources.nof import DATA_COLUMNS
from leaguetables.nof import layout
from leaguetables.nof.league import combine_rules

QUARTER = "2025-26-Q4"


def _results() -> pd.DataFrame:
    """Metric rows: (metric, trust, type, value, score). E has no row for any metric; D has a row for A&E with no
    figure; M2 has a staff survey score but no value."""
    nan = np.nan
    rows = [
        ("ae_4hr", "A", "acute", 80.0, 1.0),
        ("ae_4hr", "B", "acute", 70.0, 4.0),
        ("ae_4hr", "C", "acute", 80.0, 1.0),
        ("ae_4hr", "D", "acute", nan, nan),
        ("rtt_52wk", "A", "acute", 5.0, 4.0),
        ("rtt_52wk", "B", "acute", 1.0, 1.0),
        ("rtt_52wk", "C", "acute", 3.0, 2.5),
        ("rtt_52wk", "D", "acute", 3.0, 2.5),
        ("staff_engagement", "A", "acute", 7.0, 1.0),
        ("staff_engagement", "B", "acute", 6.5, 4.0),
        ("staff_engagement", "M1", "mental_health_community", 7.2, 1.0),
        ("staff_engagement", "M2", "mental_health_community", nan, 2.0),
        ("cqc_safe", "A", "acute", nan, 2.0),
        ("cqc_safe", "M1", "mental_health_community", nan, 1.0),
        ("finance_plan", "A", "acute", 1.0, 1.0),
        ("finance_plan", "B", "acute", -2.0, 2.0),
        ("finance_plan", "C", "acute", -4.0, 3.0),
        ("finance_variance", "A", "acute", 0.5, 1.0),
        ("finance_variance", "B", "acute", -3.0, 4.0),
    ]
    return pd.DataFrame(rows, columns=["metric_id", "trust_code", "trust_type", "value", "score"])


def _league(cat):
    results = _results()
    meta = {m.id: m for m in cat.metrics}
    scores = results.assign(
        weight=[meta[m].weight for m in results["metric_id"]],
        combine_group=[meta[m].combine_group for m in results["metric_id"]],
        domain=[meta[m].domain for m in results["metric_id"]],
    )[["trust_code", "metric_id", "score", "weight", "combine_group", "domain"]]
    table = pd.DataFrame(
        {
            "trust_code": ["A", "B", "C", "D", "M1", "M2"],
            "trust_type": ["acute"] * 4 + ["mental_health_community"] * 2,
            "average_score": [1.6, 3.0, 2.1, 2.5, 1.0, 2.0],
            "unadjusted_segment": [1, 3, 2, 2, 1, 2],
            "financial_override": [False, False, False, False, False, False],
            "in_financial_deficit": pd.array([False, True, None, False, False, False], dtype=object),
            "segment": [1, 5, 2, 2, 1, 2],
            "rank": pd.array([1, 4, 2, 3, 1, 2], dtype="Int64"),
            "domain_score_access_to_services": [2.5, 2.5, 1.75, np.nan, np.nan, np.nan],
            "domain_segment_access_to_services": pd.array([3, 3, 1, None, None, None], dtype="Int64"),
        }
    )
    trusts = pd.DataFrame(
        {
            "trust_code": ["A", "B", "C", "D", "E", "M1", "M2"],
            "trust_name": [f"Trust {c}" for c in ("A", "B", "C", "D", "E", "M1", "M2")],
            "trust_type": ["acute"] * 5 + ["mental_health_community"] * 2,
            "trust_subtype": ["Acute - Large"] * 5 + ["MH"] * 2,
            "region": ["London"] * 7,
        }
    )
    league = type("L", (), {"results": results, "table": table, "scores": scores})()
    return league, trusts


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    cat = load_catalogue("demo")
    league, trusts = _league(cat)
    return layout.nhse_long_table(league, cat, trusts, QUARTER, combine_rules=combine_rules(cat))


def _cell(long: pd.DataFrame, trust: str, code: str) -> pd.Series:
    rows = long[(long["Trust_code"] == trust) & (long["Metric_ID"] == code)]
    assert len(rows) == 1, (trust, code, len(rows))
    return rows.iloc[0]


def test_ties_rank_from_the_best_and_quartiles_are_numpy_linear(long):
    """A&E 4 hours (OF0013, higher is better): A and C on 80 share rank 1, B on 70 is 3rd (competition ranks);
    the quartiles of 70, 80, 80 are 75 / 80 / 80. The score rows (OF1013) carry the value's rank."""
    for trust, rank, value in (("A", 1, 80.0), ("C", 1, 80.0), ("B", 3, 70.0)):
        row = _cell(long, trust, "OF0013")
        assert (row["Value"], row["Rank"]) == (value, rank)
        assert (row["Lower_quartile"], row["Median_value"], row["Upper_quartile"]) == (75.0, 80.0, 80.0)
        assert _cell(long, trust, "OF1013")["Rank"] == rank
    # RTT 52 weeks (OF0003, lower is better): 1 → 1st, 3 and 3 → 2nd, 5 → 4th; quartiles of 1, 3, 3, 5
    ranks = {t: _cell(long, t, "OF0003")["Rank"] for t in "ABCD"}
    assert ranks == {"B": 1.0, "C": 2.0, "D": 2.0, "A": 4.0}
    row = _cell(long, "A", "OF0003")
    assert (row["Lower_quartile"], row["Median_value"], row["Upper_quartile"]) == (2.5, 3.0, 3.5)


def test_missing_figures_and_trusts_are_left_out(long):
    """D has an A&E row with no figure and no score: no OF0013/OF1013 row. E has no row anywhere: absent. M2 has
    a staff survey score but no value: listed under OF1084 only, with no rank (it has no value to rank)."""
    assert long[(long["Trust_code"] == "D") & long["Metric_ID"].isin(["OF0013", "OF1013"])].empty
    assert "E" not in set(long["Trust_code"])
    assert long[(long["Trust_code"] == "M2") & (long["Metric_ID"] == "OF0084")].empty
    m2 = _cell(long, "M2", "OF1084")
    assert m2["Value"] == 2.0 and np.isnan(m2["Rank"])


def test_each_trust_type_is_ranked_on_its_own(long):
    """Staff engagement (OF0084) is ranked and summarised within each type: M1 is 1st of the mental health and
    community trusts (its quartiles its own value), A 1st and B 2nd of the acute trusts (quartiles of 6.5, 7)."""
    m1 = _cell(long, "M1", "OF0084")
    assert (m1["Rank"], m1["Median_value"], m1["Lower_quartile"], m1["Upper_quartile"]) == (1.0, 7.2, 7.2, 7.2)
    a, b = _cell(long, "A", "OF0084"), _cell(long, "B", "OF0084")
    assert (a["Rank"], b["Rank"]) == (1.0, 2.0)
    assert (a["Lower_quartile"], a["Median_value"], a["Upper_quartile"]) == (6.625, 6.75, 6.875)


def test_bracket_finance_summary_and_domain_rows(long):
    """CQC safe (a bracket metric): score rows only (OF1067), unranked. Combined finance (OF1080, NHS England's
    lookup): A planned 1 × variance 1 → 1, B 2 × 4 → 4, C planned 3 only → 3. OF5004: A 0, B 1 (in deficit),
    C [x] (unknown); OF5005 5 and OF5007 1 for B (segment 5), whose OF5000 is its unadjusted segment 3; OF5000's
    Rank is the league rank. Domain rows only where the domain has a score (not D)."""
    assert long[long["Metric_ID"] == "OF0067"].empty
    assert np.isnan(_cell(long, "A", "OF1067")["Rank"]) and _cell(long, "M1", "OF1067")["Value"] == 1.0
    assert {t: _cell(long, t, "OF1080")["Value"] for t in "ABC"} == {"A": 1.0, "B": 4.0, "C": 3.0}
    assert [_cell(long, t, "OF5004")["Value"] for t in "ABC"] == [0, 1, "[x]"]
    assert (_cell(long, "B", "OF5005")["Value"], _cell(long, "B", "OF5007")["Value"]) == (5, 1)
    assert (_cell(long, "B", "OF5000")["Value"], _cell(long, "B", "OF5000")["Rank"]) == (3, 4)
    assert _cell(long, "C", "OF4000")["Value"] == 1.75 and _cell(long, "C", "OF4100")["Value"] == 1
    assert long[(long["Trust_code"] == "D") & long["Metric_ID"].isin(["OF4000", "OF4100"])].empty


def test_layout_and_order(long, tmp_path):
    """NHS England's columns, rows sorted by trust type label, trust code and code; the count of rows is the hand
    count: values 3 + 4 + 3 (OF0013, OF0003, OF0084) + finance values 5; scores 3 + 4 + 4 + 2 (OF1013, OF1003,
    OF1084, OF1067) + 5 finance components + 3 combined; domain 3 + 3; summary 6 trusts × 6 codes."""
    assert list(long.columns) == DATA_COLUMNS
    key = long[["Trust_type", "Trust_code", "Metric_ID"]].astype(str).apply(tuple, axis=1).tolist()
    assert key == sorted(key)
    assert len(long) == (3 + 4 + 3 + 5) + (3 + 4 + 4 + 2 + 5 + 3) + (3 + 3) + 6 * 6
    write_csv(long, tmp_path / "long.csv")  # publishable: no non-finite number, every cell written
    assert len((tmp_path / "long.csv").read_text(encoding="utf-8").splitlines()) == len(long) + 1


@pytest.mark.parametrize(
    "values",
    [[70.0, 80.0, 80.0], [np.nan, 1.0, 3.0, 3.0, 5.0], [np.nan, np.nan], [7.2], [0.1, 0.2, 0.3, 0.4, 0.7, 1e9]],
)
def test_quartiles_are_series_quantile(values):
    """:func:`layout._quartiles` is what ``Series.quantile([0.25, 0.5, 0.75])`` gives (the values it replaced), bit
    for bit, with all-NaN for no figure."""
    s = pd.Series(values, dtype=float)
    got = layout._quartiles(s)
    want = s.quantile([0.25, 0.5, 0.75]).to_numpy() if s.notna().any() else (np.nan,) * 3
    assert np.array_equal(np.asarray(got, float), np.asarray(want, float), equal_nan=True)
