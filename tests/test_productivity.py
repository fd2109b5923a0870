"""Unit tests of the productivity opportunity (src/leaguetables/productivity.py) on small hand-worked tables.

"Hand-worked" means computed by hand from the Better Care, Better Value rule in the module docstring
(``max(0, gap to the upper quartile) / multiplier × activity × unit cost``, annualised × 4); the working is in
each test's docstring. Percentiles are numpy's default (linear): for five values v1 ≤ … ≤ v5 the 25th percentile
is v2 and the 75th is v4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables import productivity as pr
from leaguetables.config import Metric, load_catalogue, load_methodology


def metric(direction="lower_better", statistic="rate", multiplier=1.0, amount=10.0, adjustment=None, **kw) -> Metric:
    return Metric.model_validate({
        "id": "m", "name": "Test metric", "description": "d", "domain": "Finance and productivity",
        "sub_domain": "Productivity", "unit": "u", "trust_types": ["acute", "mental_health_community"],
        "direction": direction, "statistic": statistic, "multiplier": multiplier, "scoring": {"method": "none"},
        "unit_cost": {"amount": amount, "unit": "bed day", "activity": "denominator", "source": "test"},
        "adjustment": adjustment, "source": "test", **kw})


def table(values, denominators=None, types=None, status=None, adjusted=None, multiplier=1.0) -> pd.DataFrame:
    n = len(values)
    den = np.asarray(denominators if denominators is not None else [100.0] * n, dtype=float)
    val = np.asarray(values, dtype=float)
    return pd.DataFrame({
        "quarter": "2025-26-Q4", "trust_code": [f"T{i + 1}" for i in range(n)],
        "trust_type": types or ["acute"] * n, "status": status or ["ok"] * n,
        "numerator": val * den / multiplier, "denominator": den, "value": val,
        "adjusted_value": adjusted if adjusted is not None else [np.nan] * n,
    })


def test_upper_quartile_and_gap_follow_the_direction():
    """Hand-worked: values 2, 3, 4, 5, 6 → 25th percentile 3.0 (lower is better), 75th 5.0 (higher is
    better); NaN ignored; a trust better than the benchmark has gap 0, never a negative one."""
    assert pr.upper_quartile([2, 3, 4, 5, 6, np.nan], "lower_better") == 3.0
    assert pr.upper_quartile([2, 3, 4, 5, 6], "higher_better") == 5.0
    assert np.isnan(pr.upper_quartile([np.nan], "lower_better"))
    np.testing.assert_array_equal(pr.gap(np.array([2.0, 3.0, 6.0]), 3.0, "lower_better"), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(pr.gap(np.array([4.0, 5.0, 6.0]), 5.0, "higher_better"), [1.0, 0.0, 0.0])


def test_lower_is_better_rate_hand_worked():
    """Length of stay 2, 3, 4, 5, 6 days per admission, 100 admissions each, £10 per bed day.
    Benchmark (25th percentile) 3.0 → gaps 0, 0, 1, 2, 3 days → bed days released in the quarter 0, 0, 100, 200,
    300 → £0, £0, £1,000, £2,000, £3,000 a quarter → × 4 = £0, £0, £4,000, £8,000, £12,000 a year;
    England £24,000."""
    out = pr.metric_opportunity(table([2, 3, 4, 5, 6]), metric(), annualise=4)
    assert (out["benchmark"] == 3.0).all() and (out["comparator_n"] == 5).all()
    np.testing.assert_allclose(out["gap"], [0, 0, 1, 2, 3])
    np.testing.assert_allclose(out["resource_quarter"], [0, 0, 100, 200, 300])
    np.testing.assert_allclose(out["opportunity_quarter"], [0, 0, 1000, 2000, 3000])
    np.testing.assert_allclose(out["opportunity_annual"], [0, 0, 4000, 8000, 12000])
    assert out["opportunity_annual"].sum() == 24000
    assert set(out["basis"]) == {"crude"}


def test_higher_is_better_percentage_divides_by_the_multiplier():
    """Day-case rate 60, 70, 80, 90, 100 % of 200 procedures each, £610 per procedure converted to a day case.
    Benchmark (75th percentile) 90 % → gaps 30, 20, 10, 0, 0 points → /100 × 200 = 60, 40, 20, 0, 0 day cases a
    quarter → × £610 = £36,600, £24,400, £12,200 → × 4 = £146,400, £97,600, £48,800, £0, £0 a year."""
    m = metric(direction="higher_better", statistic="proportion", multiplier=100, amount=610)
    out = pr.metric_opportunity(table([60, 70, 80, 90, 100], [200] * 5, multiplier=100), m, annualise=4)
    np.testing.assert_allclose(out["benchmark"], 90.0)
    np.testing.assert_allclose(out["resource_quarter"], [60, 40, 20, 0, 0])
    np.testing.assert_allclose(out["opportunity_annual"], [146_400, 97_600, 48_800, 0, 0])


def test_benchmark_is_per_trust_type_and_ignores_suppressed_figures():
    """Acute 2, 3, 4, 5, 6 (benchmark 3.0) and MH 10, 20, 30 (25th percentile of 10, 20, 30 = 15.0); an acute
    trust suppressed with value 100 neither moves the acute benchmark nor gets an opportunity (NaN)."""
    t = table([2, 3, 4, 5, 6, 100, 10, 20, 30], types=["acute"] * 6 + ["mental_health_community"] * 3,
              status=["ok"] * 5 + ["suppressed"] + ["ok"] * 3)
    out = pr.metric_opportunity(t, metric(), annualise=4)
    np.testing.assert_allclose(out["benchmark"], [3.0] * 6 + [15.0] * 3)
    assert np.isnan(out.loc[5, "opportunity_annual"]) and out.loc[5, "status"] == "suppressed"
    np.testing.assert_allclose(out.loc[6:, "gap"], [0, 5, 15])
    assert list(out["comparator_n"]) == [5] * 6 + [3] * 3


def test_adjusted_value_is_compared_when_the_metric_has_a_model():
    """With a demographic model the adjusted values 1, 2, 3, 4, 5 are compared (benchmark 2.0), not the crude
    4, 4, 4, 4, 4: gaps 0, 0, 1, 2, 3; activity stays the denominator (100) → 0, 0, 100, 200, 300 bed days."""
    m = metric(adjustment={"family": "poisson", "covariates": ["share_65plus"]})
    out = pr.metric_opportunity(table([4, 4, 4, 4, 4], adjusted=[1, 2, 3, 4, 5]), m, annualise=4)
    np.testing.assert_allclose(out["benchmark"], 2.0)
    np.testing.assert_allclose(out["resource_quarter"], [0, 0, 100, 200, 300])
    assert set(out["basis"]) == {"demographically adjusted"}


def test_peer_comparator_uses_each_trusts_own_peers():
    """Peers: T1 → T2..T5 (values 3, 4, 5, 6: 25th percentile 3.75), T5 → T1..T4 (2, 3, 4, 5: 2.75).
    T1 (2) is better than 3.75 → 0; T5 (6) → gap 3.25 × 100 admissions × £10 = £3,250 a quarter, £13,000 a
    year.
    A trust with no peers has no benchmark (NaN)."""
    peers = {"T1": ["T2", "T3", "T4", "T5"], "T5": ["T1", "T2", "T3", "T4"]}
    out = pr.metric_opportunity(table([2, 3, 4, 5, 6]), metric(), annualise=4, comparator="peers", peers=peers)
    np.testing.assert_allclose(out.loc[[0, 4], "benchmark"], [3.75, 2.75])
    np.testing.assert_allclose(out.loc[[0, 4], "opportunity_annual"], [0.0, 13_000.0])
    assert out.loc[1:3, "benchmark"].isna().all()
    with pytest.raises(ValueError, match="peer groups"):
        pr.metric_opportunity(table([1, 2]), metric(), comparator="peers")


def test_opportunities_of_a_catalogue_and_the_summaries():
    """Only metrics with a unit cost are costed; England = sum over trusts; trust totals sorted largest first
    (hand-worked: the lower-is-better example above gives T5 £12,000, T4 £8,000, T3 £4,000)."""
    cat = load_catalogue("demo")
    meth = load_methodology("nof-2025-26")
    los = table([2, 3, 4, 5, 6])
    trusts = pd.DataFrame({"trust_code": los["trust_code"], "trust_name": [f"Trust {i}" for i in range(1, 6)],
                           "trust_type": "acute"})
    m = cat.metric("los_emergency")
    expected = pr.metric_opportunity(los, m, annualise=meth.productivity.annualise)
    out = pr.opportunities({"los_emergency": los, "ae_4hr": los}, cat, meth, trusts)
    assert list(out.columns) == pr.COLUMNS and set(out["metric_id"]) == {"los_emergency"}
    np.testing.assert_allclose(out["opportunity_annual"], expected["opportunity_annual"])
    assert out["opportunity_annual"].sum() == pytest.approx(m.unit_cost.amount * 4 * (100 + 200 + 300))
    tot = pr.trust_totals(out)
    assert list(tot["trust_code"][:3]) == ["T5", "T4", "T3"]
    summ = pr.england_summary(out)
    assert summ.loc[0, "trusts_with_opportunity"] == 3 and summ.loc[0, "trusts"] == 5
