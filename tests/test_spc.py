"""Tests of statistical process control (src/leaguetables/statistics/spc.py): XmR limits and NHS England's Making Data Count
rules on hand-worked series, the improvement/concern and assurance mapping, short, missing and constant series,
and a simulation of a stable process measuring how often each rule fires by chance.

"Hand-worked" means computed by hand from the formulas in the module docstring (mean x̄, mean moving range m̄R,
limits x̄ ± 2.66 m̄R, "close to a limit" beyond x̄ ± (2/3)(2.66 m̄R)); the constants and the rules are those of
NHSRplotthedots (``ptd_spc_standard``, ``ptd_calculate_point_type``, ``ptd_calculate_assurance_type``), the NHS-R
implementation of Making Data Count. Each rule is tested on a series built to trigger it *and* on one built just
short of it, which must trigger nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.publication.spc_chart import spc_svg
from leaguetables.statistics import spc


def run(values, direction="higher_better", target=None, kind="standard", **kw):
    labels = [f"Q{i + 1}" for i in range(len(values))]
    return spc.analyse(values, labels, direction, target, kind if target is not None else None, **kw)


def test_xmr_limits_hand_worked():
    """10, 12 alternating five times then 20 (11 points): x̄ = 130/11 = 11.8182; moving ranges nine of 2 and one of
    8 → m̄R = 26/10 = 2.6; limits 11.8182 ± 2.66 × 2.6 = 4.9022 to 18.7342; "close" beyond 11.8182 ± 4.6107."""
    r = run([10, 12] * 5 + [20])
    assert r.mean == pytest.approx(130 / 11)
    assert r.mr_bar == pytest.approx(2.6)
    assert (r.lower, r.upper) == pytest.approx((130 / 11 - 6.916, 130 / 11 + 6.916))
    assert r.near_upper == pytest.approx(130 / 11 + 2 / 3 * 6.916)
    mean, mr_bar, mr = spc.xmr([1, 3, 2, np.nan, 6, 5])  # moving ranges only between adjacent quarters
    assert mean == pytest.approx(3.4) and mr_bar == pytest.approx(4 / 3)
    assert np.isnan(mr[2]) and np.isnan(mr[3])


def test_rule_beyond_limits_and_just_short():
    """Fires: 20 is above the upper limit 18.7342 (see above). Just short: 10, 12 × 5 then 18 → x̄ = 128/11 =
    11.6364, m̄R = (18 + 6)/10 = 2.4, upper limit 11.6364 + 6.384 = 18.0204 > 18: nothing fires (18 is close to the
    limit, but one point is not 2 of 3)."""
    r = run([10, 12] * 5 + [20])
    assert r.rules_triggered == ["beyond_limits"] and r.point_rules[-1] == ["beyond_limits"]
    assert r.variation == "special_cause_improvement"
    assert "above the upper process limit" in spc.describe_variation(r, 1)
    short = run([10, 12] * 5 + [18])
    assert short.upper == pytest.approx(128 / 11 + 2.66 * 2.4) and short.upper > 18
    assert short.rules_triggered == [] and short.variation == "common_cause"


def test_rule_run_of_seven_and_just_short():
    """Fires: 10, 12, 10, 12, 10, 12, 10 then 11.6, 11.8, 11.6, 11.8, 11.6, 11.8, 11.6 → x̄ = 157.8/14 = 11.2714;
    the last 7 points are all above it (the point before is below): a run of exactly 7. m̄R = (6 × 2 + 1.6 + 6 ×
    0.2)/13 = 1.1385, upper limit 14.30, "close" beyond 13.29: no other rule. Just short: the 8th point 11.0
    (below x̄ = 11.2286) leaves a run of 6."""
    r = run([10, 12, 10, 12, 10, 12, 10, 11.6, 11.8, 11.6, 11.8, 11.6, 11.8, 11.6])
    assert r.mean == pytest.approx(157.8 / 14) and r.mr_bar == pytest.approx(14.8 / 13)
    assert r.rules_triggered == ["run"]
    assert [bool(p) for p in r.point_rules] == [False] * 7 + [True] * 7
    assert r.variation == "special_cause_improvement"
    assert "the last 7 quarters were all above the average of 11.3" in spc.describe_variation(r, 1)
    short = run([10, 12, 10, 12, 10, 12, 10, 11.0, 11.8, 11.6, 11.8, 11.6, 11.8, 11.6])
    assert short.rules_triggered == [] and short.variation == "common_cause"


def test_rule_trend_of_seven_and_just_short():
    """Fires: 10, 13 × 3, 10 then 11, 12, …, 17: 8 points each higher than the one before (10 → 17), nothing beyond
    the limits 7.53 to 17.76 and no run. Just short: 10, 13 × 4 then 11 … 16: 6 rising points (5 rises)."""
    r = run([10, 13, 10, 13, 10, 13, 10, 11, 12, 13, 14, 15, 16, 17])
    assert r.rules_triggered == ["trend"]
    assert [bool(p) for p in r.point_rules] == [False] * 6 + [True] * 8
    assert r.variation == "special_cause_improvement"
    assert "rose in each of the last 7 quarters" in spc.describe_variation(r, 0)
    short = run([10, 13, 10, 13, 10, 13, 10, 13, 11, 12, 13, 14, 15, 16])
    assert short.rules_triggered == [] and short.variation == "common_cause"


def test_rule_two_of_three_and_just_short():
    """Fires: 11, 11.5, 11, 10.5 × 3 then 12.6, 11.6, 12.6 → x̄ = 168.8/15 = 11.2533, m̄R = 9.6/14 = 0.6857, upper
    limit 13.0773, "close" beyond 12.4693: both 12.6 are close (not beyond) and all 3 are above x̄. Just short: the
    middle point 11.0 falls below x̄ (11.2133), so the 3 are not on one side."""
    base = [11, 11.5, 11, 10.5] * 3
    r = run(base + [12.6, 11.6, 12.6])
    assert r.mean == pytest.approx(168.8 / 15) and r.mr_bar == pytest.approx(9.6 / 14)
    assert r.rules_triggered == ["two_of_three"]
    assert [i for i, p in enumerate(r.point_rules) if p] == [12, 14]  # the close points are the ones marked
    assert "2 of the last 3 quarters were close to the upper process limit" in spc.describe_variation(r, 1)
    short = run(base + [12.6, 11.0, 12.6])
    assert short.rules_triggered == [] and short.variation == "common_cause"
    assert run(base + [12.6, 11.6, 12.0]).rules_triggered == []  # only one of the three is close


def test_direction_maps_special_cause_to_improvement_or_concern():
    """The same series reads improvement when higher is better and concern when lower is better; a falling trend
    in a lower-is-better metric is improvement, whatever its side of the mean."""
    up = [10, 12] * 5 + [20]
    assert run(up, "higher_better").variation == "special_cause_improvement"
    assert run(up, "lower_better").variation == "special_cause_concern"
    falling = [17, 14, 17, 14, 17, 14, 17, 16, 15, 14, 13, 12, 11, 10]
    r = run(falling, "lower_better")
    assert "trend" in r.point_rules[-1] and r.variation == "special_cause_improvement"
    assert run(falling, "higher_better").variation == "special_cause_concern"
    with pytest.raises(ValueError, match="direction"):
        run(up, "up")


def test_assurance_from_the_target_and_the_limits():
    """Limits of 10, 12 × 5, 18 are 5.2524 to 18.0204 (hand-worked above). Higher is better: a target of 4 (below
    the lower limit) is consistently passed, 19 (above the upper) consistently failed, 12 hit and miss; lower is
    better mirrors it. No target: "no_target"."""
    s = [10, 12] * 5 + [18]
    assert run(s, "higher_better", 4).assurance == "consistently_passing"
    assert run(s, "higher_better", 19).assurance == "consistently_failing"
    assert run(s, "higher_better", 12).assurance == "hit_and_miss"
    assert run(s, "lower_better", 4).assurance == "consistently_failing"
    assert run(s, "lower_better", 19).assurance == "consistently_passing"
    assert run(s).assurance == "no_target"
    text = spc.describe_assurance(run(s, "higher_better", 12, "standard"), 1, "%")
    assert text.startswith("Hit and miss") and "standard of 12.0%" in text and "5.3% to 18.0%" in text
    assert spc.describe_assurance(run(s, "higher_better", 19, "floor"), 0).startswith("Consistently failing")


def test_short_missing_constant_and_repeated_series():
    """Fewer than min_points values: no limits, said in words. A missing quarter breaks a run (the run test's 7
    points above the mean, with the 4th missing, is two runs of 3). A constant series and an annual figure
    repeated every quarter are not assessed, with the reason."""
    short = run([1.0, 2, 3, 4, 5, 6, 7])
    assert not short.assessed and np.isnan(short.upper) and "only 7 quarters" in short.note
    assert spc.describe_variation(short).startswith("Not assessed: only 7 quarters with a value")
    assert short.assurance == "not_assessed"
    gap = run([10, 12, 10, 12, 10, 12, 10, 11.6, 11.8, 11.6, np.nan, 11.6, 11.8, 11.6])
    assert gap.assessed and gap.n_points == 13 and "run" not in gap.rules_triggered
    assert gap.point_state[10] == "missing"
    assert gap.note == "" and "trial limits: 11 quarters" in run([10, 12] * 5 + [18]).note
    with_missing_short = run([1.0, np.nan, 3, np.nan, 5, 6, 7, 8, 9])
    assert not with_missing_short.assessed and "only 7 quarters" in with_missing_short.note
    const = run([5.0] * 10)
    assert not const.assessed and "same in every quarter" in const.note
    annual = run([6.5] * 4 + [6.7] * 4 + [6.6] * 4)
    assert not annual.assessed and "less often than quarterly" in annual.note
    assert run(list(range(20)) + [np.nan], min_points=8).latest == 19


def test_simulation_false_alarm_rates_of_a_stable_process():
    """A stable process (independent normal values): how often each rule fires by chance, 2,000 series each.

    Measured (seed 7, 4,000 series per length; the figures are quoted on the methodology page): with 8 points
    any rule fires somewhere in 2.2% of series (beyond limits 1.8%, run 0.03%, trend 0.15%, 2 of 3 0.5%); with
    15 points in 7.0% (3.2%, 2.9%, 0.25%, 2.0%); with 20 in 11%; with 30 in 20%. The latest point is marked in
    about 1% of series at every length. Bounds here are wide enough not to be flaky and tight enough to catch a rule that fires far
    too often (e.g. a run of 5, or limits at 2σ)."""
    rng = np.random.default_rng(20251201)
    rates = {}
    for n in (8, 15):
        labels = [str(i) for i in range(n)]
        counts = {k: 0 for k in spc.RULES}
        anywhere = latest = 0
        for _ in range(2000):
            r = spc.analyse(rng.normal(size=n), labels, "higher_better")
            for k in r.rules_triggered:
                counts[k] += 1
            anywhere += bool(r.rules_triggered)
            latest += r.variation != "common_cause"
        rates[n] = {**{k: v / 2000 for k, v in counts.items()}, "any": anywhere / 2000, "latest": latest / 2000}
    assert 0.008 < rates[8]["any"] < 0.045, rates
    assert 0.045 < rates[15]["any"] < 0.10, rates
    assert 0.015 < rates[15]["beyond_limits"] < 0.05, rates
    assert 0.012 < rates[15]["run"] < 0.05, rates
    assert rates[15]["trend"] < 0.01 and 0.008 < rates[15]["two_of_three"] < 0.035, rates
    assert rates[8]["latest"] < 0.025 and rates[15]["latest"] < 0.025, rates


def test_spc_table_and_figure():
    """tables/spc.csv rows from a metric history: one per trust, the CSV columns, NaN limits where not assessed;
    the small-multiples figure has alt text naming the variation of each charted metric."""
    from leaguetables.config import Metric

    m = Metric.model_validate(
        {
            "id": "m",
            "name": "Test metric",
            "description": "d",
            "domain": "D",
            "sub_domain": "S",
            "unit": "%",
            "trust_types": ["acute"],
            "direction": "higher_better",
            "statistic": "proportion",
            "multiplier": 100,
            "scoring": {"method": "ranked", "standard": 12},
            "source": "test",
        }
    )
    quarters = (
        [f"2023-24-Q{q}" for q in range(1, 5)]
        + [f"2024-25-Q{q}" for q in range(1, 5)]
        + ["2025-26-Q1", "2025-26-Q2", "2025-26-Q3"]
    )
    vals = {"A": [10, 12] * 5 + [20], "B": [1.0] * 3 + [np.nan] * 8}
    hist = pd.DataFrame(
        [
            {"quarter": q, "trust_code": c, "status": "ok" if not np.isnan(v) else "missing", "value": v}
            for c, vs in vals.items()
            for q, v in zip(quarters, vs)
        ]
    )
    res = spc.analyse_metric(hist, m, quarters, quarters)
    assert res["A"].variation == "special_cause_improvement" and res["A"].assurance == "hit_and_miss"
    assert res["A"].target_kind == "standard" and not res["B"].assessed

    class Cat:
        metrics = [m]

    trusts = pd.DataFrame(
        {"trust_code": ["A", "B"], "trust_name": ["Trust A", "Trust B"], "trust_type": ["acute", "acute"]}
    )
    tab = spc.spc_table({"m": res}, Cat, trusts, quarters[-1], quarters)
    assert list(tab.columns) == spc.CSV_COLUMNS and list(tab["trust_code"]) == ["A", "B"]
    a, b = tab.iloc[0], tab.iloc[1]
    assert a["quarters_used"] == 11 and a["latest_rules"] == "beyond_limits" and a["special_cause_points"] == 1
    assert b["quarters_missing"] == 8 and np.isnan(b["upper_limit"]) and b["variation"] == "not_assessed"
    svg, alt = spc_svg([("Test metric", res["A"]), ("Other", res["B"])], "Trust A")
    assert "Test metric: special cause variation — improvement, hit and miss" in alt and "Other" not in alt
    assert f'<desc id="spc-chart-desc">{alt}</desc>' in svg
    assert spc_svg([("Other", res["B"])], "Trust B") == ("", "")


def _svg_tree(svg: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(str(svg))  # well-formed XML, or this raises


def test_spc_svg_draws_each_assessed_series_from_its_data():
    """The profile's XmR figure (publication.spc_chart): one panel per assessed series, the special-cause points
    as triangles (▲ improvement, ▼ concern) and the rest as dots, a missing quarter breaking the line, the
    highest point at the top of its panel's box less the 6% pad; accessible name and description; escaped text."""
    from leaguetables.publication import spc_chart

    labels = [f"Q{i}" for i in range(11)]
    up = spc.analyse([10, 12] * 5 + [20], labels, "higher_better", target=15.0, target_kind="standard")
    gap = spc.analyse([5, 6, 5, 7, np.nan, 6, 5, 6, 7, 5, 6], labels, "lower_better")
    short = spc.analyse([1.0, 2.0], labels[:2], "higher_better")
    assert up.point_state[-1] == "improvement" and gap.assessed and not short.assessed
    svg, alt = spc_chart.spc_svg([("A & B rate", up), ("Gap <metric>", gap), ("Short", short)], "Trust <A>")
    root = _svg_tree(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "spc-chart-title spc-chart-desc"
    assert root.find(f"{ns}title").text == "Trust <A>: statistical process control charts"
    assert root.find(f"{ns}desc").text == alt and alt.startswith(
        "Statistical process control charts (XmR) of Trust <A>"
    )
    assert "A & B rate: special cause variation — improvement, hit and miss" in alt and "Short" not in alt
    assert "&amp;" in svg and "&lt;metric&gt;" in svg
    drawing = root.find(f"{ns}g")
    assert drawing.get("aria-hidden") == "true"
    panels = drawing.findall(f"{ns}g")[1:]  # the first group is the legend
    assert [p.find(f"{ns}text").text for p in panels] == ["A & B rate", "Gap <metric>"]
    lines = [[pl.get("points") for pl in p.findall(f"{ns}polyline")] for p in panels]
    assert len(lines[0]) == 1 and len(lines[1]) == 2  # the missing quarter breaks the second series' line
    assert [len(seg.split()) for seg in lines[1]] == [4, 6]
    # the latest point of the first series (20, the maximum) is a triangle; the other ten are dots
    dots = panels[0].findall(f"{ns}g/{ns}circle")
    assert len(dots) == 10 and panels[0].find(f"{ns}path[@fill='{spc_chart.COLOURS['improvement']}']") is not None
    ys = [float(xy.split(",")[1]) for xy in lines[0][0].split()]
    lo, hi = min(up.lower, 10.0), max(up.upper, 20.0)
    top = float(panels[0].find(f"{ns}text").get("y")) + 4.0
    expected = top + 0.06 * (hi - lo) / (hi - lo + 0.12 * (hi - lo)) * spc_chart.PANEL_H
    assert ys[-1] == pytest.approx(expected, abs=0.06) and ys[-1] == min(ys)
    # long names are cut to MAX_TITLE characters in the panel (the tables carry them in full)
    one = _svg_tree(spc_chart.spc_svg([("x" * 50, up)], "T")[0])
    assert one.find(f"{ns}g/{ns}g[2]/{ns}text").text == "x" * (spc_chart.MAX_TITLE - 1) + "…"
    assert float(one.get("width")) >= spc_chart.LEGEND_W  # one panel: the legend still fits


def test_summary_and_key_finding_state_the_chance_rate():
    """The report's one SPC sentence counts the series whose latest quarter shows special cause and puts the
    number a stable process would give (1% of the assessed series) beside it."""
    from leaguetables.publication.report import key_findings

    labels = [str(i) for i in range(11)]
    results = {
        "m": {
            "A": spc.analyse([10, 12] * 5 + [20], labels, "higher_better"),
            "B": spc.analyse([10, 12] * 5 + [18], labels, "lower_better"),
            "C": spc.analyse([1.0] * 3, labels[:3], "higher_better"),
        }
    }
    s = spc.summary(results)
    assert s == {"series": 3, "assessed": 2, "improvement": 1, "concern": 0, "any_rule": 1}
    html = key_findings(pd.DataFrame(), {}, pd.DataFrame(), spc_counts={**s, "assessed": 400})
    assert "in 1 of the 400 trust-metric series" in html and "(about 4 here)" in html


def test_run_spc_treats_a_quarter_absent_from_the_inputs_as_a_gap():
    """Histories with 2023-24-Q1…Q4 and 2024-25-Q2…Q4 (2024-25-Q1 absent from the inputs): the series has 8
    positions, the absent quarter is missing, and moving ranges do not bridge it; bracket metrics are left out."""
    from leaguetables.config import load_catalogue

    cat = load_catalogue("demo")
    m, bracket = cat.metric("ae_4hr"), cat.metric("cqc_safe")
    qs = ["2023-24-Q1", "2023-24-Q2", "2023-24-Q3", "2023-24-Q4", "2024-25-Q2", "2024-25-Q3", "2024-25-Q4"]
    hist = pd.DataFrame({"quarter": qs, "trust_code": "A", "status": "ok", "value": [1.0, 3, 2, 4, 9, 8, 9]})
    results, quarters = spc.run_spc({"ae_4hr": {"history": hist}, "cqc_safe": {"history": hist}}, [m, bracket])
    assert quarters == qs[:4] + ["2024-25-Q1"] + qs[4:] and set(results) == {"ae_4hr"}
    r = results["ae_4hr"]["A"]
    assert r.n_points == 7 and np.isnan(r.values[4]) and r.labels[4] == "Q1 2024/25"
    assert not r.assessed  # 7 points < 8
    _, mr_bar, _ = spc.xmr(r.values)
    assert mr_bar == pytest.approx((2 + 1 + 2 + 1 + 1) / 5)  # no range across the gap


def test_screen_outliers_option_drops_large_moving_ranges():
    """spc.screen_outliers (NHSRplotthedots' default, not Making Data Count's Excel): 10, 12 × 5 then 30 → moving
    ranges nine of 2 and one of 18, m̄R = 36/10 = 3.6; 18 ≥ 3.267 × 3.6 = 11.76 is dropped → m̄R = 2.0, so the
    upper limit falls from x̄ + 9.576 to x̄ + 5.32 (x̄ = 140/11)."""
    s = [10, 12] * 5 + [30]
    plain, screened = run(s), run(s, screen_outliers=True)
    assert plain.mr_bar == pytest.approx(3.6) and screened.mr_bar == pytest.approx(2.0)
    assert screened.upper == pytest.approx(140 / 11 + 2.66 * 2.0)
    assert spc.xmr([1, 2, 1, 2], screen_outliers=True)[1] == pytest.approx(1.0)  # nothing to drop
