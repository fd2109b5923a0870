"""The simulation study, reduced (``leaguetables.validate``): 2 replicates of the standard and 1 of the no-change
scenario, with 200 replicates of the sampling bootstrap (the least the study's settings allow; the methodology's
2,000 elsewhere), about 14 CPU seconds through the real code paths, with bounds wide enough not to be flaky and
tight enough to fail on the statistics that issue 10 found wrong (O/E intervals covering 14–57%, funnels flagging
11–19.5% with no outliers, φ = inf for MRSA, NOF likely ranges covering ~100%, a change test of size 0,
productivity biased +22–36%).

The size was cut from 6 and 3 replicates with the methodology's 2,000 bootstrap replicates, then to 4 and 2 with
200, then (issue 13 again: still the unit group's longest fixture, ~40 CPU-s) to 2 and 1. Each bound was checked
to fail on the wrong method it guards at this size (``benchmarks/validate_test_power.py``, which runs this study
with each wrong method and prints every figure beside its bound). With the project's methods (4/2 → 2/1): the
lowest judged O/E coverage 0.906 → 0.908 (fails below 0.80; O/E from O alone around a fixed E: 0.093), funnel
false flags at 95% 4.5–5.2% → 3.4–5.0% (2–10%) and at 99.8% at most 0.43% → 0.44% (1.5%; the SHMI / FunnelPlotR
funnel of one quarter: 16.2% and 2.8% for SR, 11.8% and 1.8% for PR, and 2 degenerate funnels), rank coverage
0.957 → 0.961 (85–99.5%; NHS England's likely ranges: 1.000), Brier ratio 1.05 → 1.07 (≤ 1.6; NHS England's
segment shares against the same Bayes oracle: 2.36), change-test size 2.7% → 2.9% (0.5–12%; "beyond last
quarter's likely range": 0.000), productivity bias −5.3% → −7.6% (±20%; the single-quarter observed O/E: +35%).

The full study (``make validate``, ≥ 200 replicates) publishes the figures against the targets; these bounds are
deliberately looser than the targets so that Monte-Carlo error of a few replicates cannot fail a correct method
(the seeds are fixed, so the outcome is deterministic for given code). They were checked to pass on the merged
methods of issue 10 (oe, funnel, ranks, spc branches) and to fail on the methods before them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from leaguetables import validate
from leaguetables.config import load_catalogue, load_methodology
from leaguetables.inputs import demo
from leaguetables.statistics import metrics

STANDARD_REPLICATES, CHANGE_REPLICATES, SAMPLING_REPLICATES, CHECK_REPLICATES = 2, 1, 200, 1
REPRODUCED = ("ae_4hr", "cdiff")  # the adjusted metrics of the reproducibility check's small study


@pytest.fixture(scope="module")
def study():
    meth, cat = load_methodology("nof-2025-26"), load_catalogue("demo")
    # the vectorised league checked against the scoring functions on 1 bootstrap replicate rather than 3 (the
    # study's figures are the same: the check only chooses the path; test_sampling.py checks the two paths agree)
    u = meth.uncertainty.model_copy(update={"check_replicates": CHECK_REPLICATES})
    meth = meth.model_copy(update={"uncertainty": u})
    v = meth.validation.model_copy(
        update={
            "replicates": STANDARD_REPLICATES,
            "change_replicates": CHANGE_REPLICATES,
            "sampling_replicates": SAMPLING_REPLICATES,
        }
    )
    raw = validate.run_study(meth, cat, v, scenarios=("standard", "no_change"), workers=1)
    return meth, cat, v, raw, validate.summarise(raw, meth, cat, v)


def test_the_study_leaves_compute_metric_as_it_found_it(study):
    assert metrics._peers is validate._ORIGINAL["_peers"] and metrics.history is validate._ORIGINAL["history"]


def test_replicates_are_distinct_and_reproducible(study):
    """Replicates differ in their noise, share one truth, and each is reproduced from the seed and its index alone:
    a study of the first replicate alone, of a catalogue of two adjusted metrics (each metric's figures depend on
    the replicate's data and the metric only), gives that replicate's O/E and funnel rows of those metrics."""
    meth, cat, v, raw, _ = study
    lg = raw["league"]
    assert sorted(lg["replicate"].unique()) == list(range(STANDARD_REPLICATES))
    ranks = lg.pivot(index="trust_code", columns="replicate", values="rank")
    assert (ranks.nunique(axis=1) > 1).mean() > 0.5, "the noise differs between replicates"
    assert lg.groupby("trust_code")["true_rank"].nunique().max() == 1, "one fixed truth"
    small = cat.model_copy(update={"metrics": [m for m in cat.metrics if m.id in REPRODUCED]})
    again = validate.run_study(meth, small, v.model_copy(update={"replicates": 1}), scenarios=("standard",), workers=1)
    for name in ("oe", "funnel"):
        t = raw[name]
        first = t[(t["scenario"] == "standard") & (t["replicate"] < 1) & t["metric_id"].isin(REPRODUCED)]
        assert set(first["metric_id"]) == set(REPRODUCED), name
        pd.testing.assert_frame_equal(again[name], first.reset_index(drop=True), obj=name)


def test_oe_intervals_cover_the_true_oe(study):
    """Target 93–97% (full study); issue 10 measured 14–57% on today's intervals. Fails below 80%."""
    oe = study[4]["oe_coverage"]
    judged = oe[oe["trust_type"].isin(["acute", "mental_health_community"])]
    assert len(judged) >= 6
    low = judged[judged["coverage"] < 0.80]
    assert low.empty, low[["metric_id", "trust_type", "coverage"]].to_string()


def test_funnels_flag_near_their_nominal_rate_with_no_true_outliers(study):
    """Targets 3.5–7% at 95% and ≤ 0.6% at 99.8% (full study); today 11–19.5%. Fails above 10% or 1.5%."""
    ft = study[4]["funnel_rates"]
    ft = ft[ft["funnels"] > 0]
    assert set(ft["data_type"]) >= {"SR", "PR"}
    for _, r in ft.iterrows():
        assert 0.02 <= r["false_flag_95"] <= 0.10, (r["data_type"], r["false_flag_95"])
        assert r["false_flag_998"] <= 0.015, (r["data_type"], r["false_flag_998"])


def test_no_degenerate_funnel(study):
    """φ = inf (MRSA: many trusts with no events) or limits that cannot flag: never published."""
    deg = study[4]["degenerate_funnels"]
    assert int(deg["degenerate"].sum()) == 0, deg[deg["degenerate"] > 0].to_string()


def test_rank_intervals_cover_the_true_rank_near_95_percent(study):
    """Target 93–97% (full study); NHS England's likely ranges (resampling a trust's own scores) cover 100% of
    8,200 trust results in 40 replicates because they are ~3.5× too wide. Fails outside 85–99.5%."""
    rc = study[4]["rank_coverage"]
    cov = float(rc.loc[rc["trust_type"] == "all", "coverage"].iloc[0])
    assert 0.85 <= cov <= 0.995, cov


def test_segment_probabilities_near_the_bayes_oracle(study):
    """Target: Brier score within 25% of the oracle's (full study). The oracle is the exact posterior given each
    metric's true spread of trust effects — the best any method could publish from the same data; its rank interval,
    built by the published rule, is reported beside the published one. NHS England's segment shares (a bootstrap of
    a trust's own scores) score about 2.3 × the oracle. Fails above 1.6 ×."""
    b = study[4]["brier"].set_index("trust_type").loc["all"]
    assert b["oracle"] == "Bayes posterior given the true priors"
    assert b["ratio"] <= 1.6, b["ratio"]
    rc = study[4]["rank_coverage"].set_index("trust_type").loc["all"]
    assert 0.85 <= rc["oracle_coverage"] <= 1.0


def test_change_test_has_a_real_size(study):
    """Target 3–7% under no change (full study); "beyond last quarter's likely range" has size 0.000 (1 of
    8,200 trust results in 40 replicates). Fails outside 0.5–12%."""
    ch = study[4]["change_test"]
    size = float(ch.loc[ch["measure"].str.startswith("size") & (ch["trust_type"] == "all"), "rate"].iloc[0])
    assert 0.005 <= size <= 0.12, size


def test_productivity_total_is_close_to_the_truth(study):
    """Target within 10% (full study); a noisy quarter's upper quartile inflates the total +22–36%. Fails beyond
    20%."""
    pr = study[4]["productivity"]
    bias = float(pr.loc[pr["metric_id"] == "(all)", "relative_bias"].iloc[0])
    assert abs(bias) <= 0.20, bias


def test_report_is_written_with_targets_beside_the_figures(study, tmp_path):
    meth, cat, v, raw, tables = study
    page = validate.write_report(
        tables, meth, tmp_path, v, {"standard": STANDARD_REPLICATES, "no_change": CHANGE_REPLICATES}
    )
    html = page.read_text(encoding="utf-8")
    assert "<caption" in html and "Target" in html and "Monte-Carlo standard error" in html
    assert "can and cannot tell" in html and "over-adjustment" in html.lower()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # offline, no code
    for name in (
        "summary",
        "oe_coverage",
        "funnel_rates",
        "rank_coverage",
        "brier",
        "reliability",
        "change_test",
        "productivity",
    ):
        assert (tmp_path / f"{name}.csv").exists(), name
    s = pd.read_csv(tmp_path / "summary.csv")
    assert {"figure", "measured", "mcse", "target", "pass", "sentence"} <= set(s.columns)
    assert np.isfinite(s["measured"].dropna()).all()


def test_methodology_page_links_the_validation_report_relatively(tmp_path):
    from leaguetables.publication.methodology import validation_link

    page = tmp_path / "reports" / "2025-26-Q4" / "methodology.html"
    assert validation_link(page) == {"href": "../validation/index.html", "exists": False}
    (tmp_path / "reports" / "validation").mkdir(parents=True)
    (tmp_path / "reports" / "validation" / "index.html").write_text("<!DOCTYPE html>", encoding="utf-8")
    assert validation_link(page) == {"href": "../validation/index.html", "exists": True}
    assert validation_link(None)["exists"] is False


def test_outlier_scenarios_plant_on_the_funnel_scale_with_the_pooled_quarters():
    """The detection target's scenario plants outliers on the funnel's own scale, with the quarters each funnel
    pools taken from the real code path on the study's truth (rare events — MRSA — pool the 4 quarters
    of ``funnel.pool_quarters``; A&E 4 hours is not rare); the context scenario plants between-trust SDs."""
    meth, cat = load_methodology("nof-2025-26"), load_catalogue("demo")
    # a rare-event metric and a common one (the rule is per metric: the other metrics' funnels are not needed)
    cat = cat.model_copy(update={"metrics": [m for m in cat.metrics if m.id in ("mrsa", "ae_4hr")]})
    v = meth.validation
    base = demo.generate(v.seed, noise_seed=0)
    pooled = validate.funnel_quarters(base, v, meth, cat)
    assert pooled == {"mrsa": meth.funnel.pool_quarters, "ae_4hr": 1}
    assert metrics._peers is validate._ORIGINAL["_peers"]  # left as it was found
    args = validate.scenario_arguments("outliers", v, base["trusts"], cat, pooled)
    assert args["outlier_scale"] == "funnel" and args["outlier_quarters"] == pooled
    between = validate.scenario_arguments("outliers_between", v, base["trusts"], cat, pooled)
    assert between["outlier_scale"] == "between_trust" and "outlier_quarters" not in between
    assert between["outliers"] == args["outliers"]  # the same trusts and directions


def test_change_without_the_sampling_bootstrap_is_a_rank_beyond_last_quarters_likely_range():
    """Hand-worked: NHS England-style movement (no sampling bootstrap) calls a trust changed when this quarter's rank
    lies outside last quarter's likely range; segments after the financial override (segment 2 in deficit → 3).
    A: rank 3 within 2–6; B: rank 9 beyond 1–5, segment 1 → 2 (in deficit: 3); C: not in last quarter's league."""
    prev = pd.DataFrame(
        {
            "trust_code": ["A", "B"],
            "rank": [4, 2],
            "rank_lower": [2, 1],
            "rank_upper": [6, 5],
            "unadjusted_segment": [2, 1],
            "in_financial_deficit": [False, False],
        }
    )
    now = pd.DataFrame(
        {
            "trust_code": ["C", "B", "A"],
            "rank": [1, 9, 3],
            "rank_lower": [1, 7, 1],
            "rank_upper": [2, 10, 5],
            "unadjusted_segment": [1, 2, 2],
            "in_financial_deficit": [False, True, False],
        }
    )
    flags = validate._beyond_likely_range(prev, now)
    assert flags["trust_code"].tolist() == ["B", "A"]
    assert flags["flagged"].tolist() == [True, False]
    assert flags["segment_change"].tolist() == [2.0, 0.0]


def test_page_tables_are_the_tables_the_template_shows():
    """validation_tables.yaml names exactly the tables validation.html.j2 renders (``{{ table(..., oe.columns,
    oe.rows ...) }}``), each column with a heading and a known cell format; a table-specific heading wins."""
    template = (validate.pages.TEMPLATE_DIR / "pages" / "validation.html.j2").read_text(encoding="utf-8")
    shown = set(re.findall(r"(\w+)\.columns, \1\.rows", template)) - {"summary"}
    specs = validate._page_tables()
    assert set(specs) == shown
    table, columns = specs["funnel_metric"]
    assert table == "funnel_rates_by_metric"
    assert ("false_flag_95", "Outside 95%", "pct", True) in columns  # the table's own, shorter heading
    assert ("false_flag_95", "Outside 95% limits", "pct", True) in specs["funnel_type"][1]  # the column's heading


@pytest.mark.parametrize(
    "change, message",
    [
        ({"columns": {"mcse": ["MCSE", "pct3", True]}}, "unknown cell formats {'mcse': 'pct3'}"),
        ({"tables": {"oe": {"table": "oe_coverage", "columns": ["mcse", "nope"]}}}, r"table oe: columns \['nope'\]"),
        ({"tables": {"oe": {"table": "x", "columns": ["mcse"], "headings": {"pass": "R"}}}}, r"\['pass'\]"),
    ],
)
def test_page_tables_refuse_unknown_formats_and_columns(change, message):
    """A cell format _CELL_FORMATS does not know, or a table column (or heading) not among the columns, is refused
    on load with a message naming it."""
    spec = {"columns": {"mcse": ["MCSE", "pct2", True], "pass": ["Result", "pass", False]}, "tables": {}}
    spec |= change
    if "columns" in change:
        spec["columns"] = {**{"pass": ["Result", "pass", False]}, **change["columns"]}
    with pytest.raises(ValueError, match=message):
        validate._PageTables.model_validate(spec)
