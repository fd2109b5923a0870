"""Unit tests of the productivity opportunity (src/leaguetables/statistics/productivity.py) on small hand-worked tables.

"Hand-worked" means computed by hand from the Better Care, Better Value rule in the module docstring
(``max(0, gap to the upper quartile) / multiplier × activity × unit cost``, annualised × 4); the working is in
each test's docstring. Percentiles are numpy's default (linear): for five values v1 ≤ … ≤ v5 the 25th percentile
is v2 and the 75th is v4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.config import Metric, load_catalogue, load_methodology
from leaguetables.statistics import productivity as pr


def metric(direction="lower_better", statistic="rate", multiplier=1.0, amount=10.0, adjustment=None, **kw) -> Metric:
    return Metric.model_validate(
        {
            "id": "m",
            "name": "Test metric",
            "description": "d",
            "domain": "Finance and productivity",
            "sub_domain": "Productivity",
            "unit": "u",
            "trust_types": ["acute", "mental_health_community"],
            "direction": direction,
            "statistic": statistic,
            "multiplier": multiplier,
            "scoring": {"method": "none"},
            "unit_cost": {"amount": amount, "unit": "bed day", "activity": "denominator", "source": "test"},
            "adjustment": adjustment,
            "source": "test",
            **kw,
        }
    )


def table(values, denominators=None, types=None, status=None, adjusted=None, multiplier=1.0) -> pd.DataFrame:
    n = len(values)
    den = np.asarray(denominators if denominators is not None else [100.0] * n, dtype=float)
    val = np.asarray(values, dtype=float)
    return pd.DataFrame(
        {
            "quarter": "2025-26-Q4",
            "trust_code": [f"T{i + 1}" for i in range(n)],
            "trust_type": types or ["acute"] * n,
            "status": status or ["ok"] * n,
            "numerator": val * den / multiplier,
            "denominator": den,
            "value": val,
            "adjusted_value": adjusted if adjusted is not None else [np.nan] * n,
        }
    )


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
    t = table(
        [2, 3, 4, 5, 6, 100, 10, 20, 30],
        types=["acute"] * 6 + ["mental_health_community"] * 3,
        status=["ok"] * 5 + ["suppressed"] + ["ok"] * 3,
    )
    out = pr.metric_opportunity(t, metric(), annualise=4)
    np.testing.assert_allclose(out["benchmark"], [3.0] * 6 + [15.0] * 3)
    assert np.isnan(out.loc[5, "opportunity_annual"]) and out.loc[5, "status"] == "suppressed"
    np.testing.assert_allclose(out.loc[6:, "gap"], [0, 5, 15])
    assert list(out["comparator_n"]) == [5] * 6 + [3] * 3


def test_adjusted_basis_converts_with_expected_activity_hand_worked():
    """Adjusted basis (statistical-methods.md §6.2): resource = E_i × max(0, O/E_i − benchmark O/E).

    O = 100, 200, 330, 440, 600 bed days against E = 100, 200, 300, 400, 500 → O/E = 1.0, 1.0, 1.1, 1.1, 1.2;
    benchmark (25th percentile, lower is better) 1.0 → O/E gaps 0, 0, 0.1, 0.1, 0.2 → bed days released
    0, 0, 30, 40, 100 (E × gap), £10 each → £0, £0, £1,200, £1,600, £4,000 a year (× 4). The old conversion
    (adjusted gap × the trust's own 1,000 admissions) gave 33.4, 33.4, 66.8: wrong by E_i / (n_i × type rate).
    value / benchmark / gap read in the metric's units: O/E × the type's value (ΣO/Σn = 1,670/5,000 = 0.334)."""
    m = metric(adjustment={"family": "poisson", "covariates": ["share_65plus"]})
    t = table([0.1, 0.2, 0.33, 0.44, 0.6], [1000] * 5)
    t["expected"] = [100.0, 200.0, 300.0, 400.0, 500.0]
    out = pr.metric_opportunity(t, m, annualise=4)
    assert set(out["basis"]) == {"demographically adjusted"}
    np.testing.assert_allclose(out["oe"], [1.0, 1.0, 1.1, 1.1, 1.2])
    np.testing.assert_allclose(out["benchmark_oe"], 1.0)
    np.testing.assert_allclose(out["expected_activity"], [100, 200, 300, 400, 500])
    np.testing.assert_allclose(out["resource_quarter"], [0, 0, 30, 40, 100])
    np.testing.assert_allclose(out["opportunity_annual"], [0, 0, 1200, 1600, 4000])
    np.testing.assert_allclose(out["value"], np.array([1.0, 1.0, 1.1, 1.1, 1.2]) * 0.334)
    np.testing.assert_allclose(out["gap"], np.array([0, 0, 0.1, 0.1, 0.2]) * 0.334, atol=1e-12)
    assert (out["quarters_pooled"] == 1).all() and set(out["estimate"]) == {"observed"}


def test_crude_basis_is_better_care_better_value_and_equals_the_expected_form():
    """On the crude basis E_i = n_i × the type's rate, so E_i × (θ_i − θ_b) = n_i × (v_i − v_b) / multiplier:
    the compatibility figures are unchanged. Rates 2, 3, 4, 5, 6 with 100, 200, 100, 200, 100 admissions: type
    rate 2,900/700; the expected activity × the O/E gap equals the resource (bed days) 0, 0, 100, 400, 300."""
    out = pr.metric_opportunity(table([2, 3, 4, 5, 6], [100, 200, 100, 200, 100]), metric(), annualise=4)
    np.testing.assert_allclose(out["resource_quarter"], [0, 0, 100, 400, 300])
    np.testing.assert_allclose(
        out["expected_activity"] * (out["oe"] - out["benchmark_oe"]).clip(lower=0), out["resource_quarter"]
    )
    assert set(out["basis"]) == {"crude"}


def test_quarter_noise_pooled_ratios_and_shrink_hand_worked():
    """ω² (extra quarter-to-quarter variance), the pooled O/E with its variance, and the two EB estimators.

    quarter_noise: two trusts, two quarters, n = 1,000 each. Trust A: O = 100, 100; trust B: O = 100, 300.
    Type rates 0.1 and 0.2 → r = log(p_iq / rate_q): A 0, log(0.5); B 0, log(1.5). S² (ddof 1) = (log 0.5)²/2
    and (log 1.5)²/2. Nominal v = 1/μ with μ = n × the trust's pooled rate: A 1/100; B 1/200.
    ω² = mean(S² − v̄) = ((0.2402 − 0.01) + (0.0822 − 0.005)) / 2.

    pooled_ratios: trust A, O = 100, 100 of n = 1,000 each, E = 160 pooled → O/E = 1.25; μ = 100, 100,
    v = 0.01 + ω²(0.02) = 0.03 → s² = (100² × 0.03 × 2) / 200² = 0.015.

    shrink: y = −1, 0, 1 and s² = 0.5 → τ² = 1 − 0.5 = 0.5, B = 0.5: posterior mean ±0.5, constrained ±√0.5."""
    counts = pd.DataFrame(
        {
            "quarter": ["q1", "q2", "q1", "q2"],
            "trust_code": ["A", "A", "B", "B"],
            "numerator": [100.0, 100.0, 100.0, 300.0],
            "denominator": [1000.0] * 4,
        }
    )
    w = pr.quarter_noise(counts, pd.Series({"A": "acute", "B": "acute"}), "poisson")
    s2a, s2b = np.log(0.5) ** 2 / 2, np.log(1.5) ** 2 / 2
    assert w["acute"] == pytest.approx(((s2a - 0.01) + (s2b - 0.005)) / 2)
    one = counts[counts["trust_code"] == "A"]
    p = pr.pooled_ratios(one, pd.Series({"A": 160.0}), "poisson", 0.02)
    assert p.loc[0, "oe"] == pytest.approx(1.25) and p.loc[0, "quarters"] == 2
    assert p.loc[0, "s2"] == pytest.approx(0.015)
    yb, tau2 = pr.shrink([-1.0, 0.0, 1.0], [0.5] * 3, "shrunken")
    np.testing.assert_allclose(yb, [-0.5, 0, 0.5])
    assert tau2 == pytest.approx(0.5)
    yc, _ = pr.shrink([-1.0, 0.0, 1.0], [0.5] * 3, "constrained")
    np.testing.assert_allclose(yc, [-np.sqrt(0.5), 0, np.sqrt(0.5)])
    np.testing.assert_allclose(pr.shrink([-1.0, 0.0, 1.0], [2.0] * 3, "constrained")[0], 0.0)  # τ² = 0
    with pytest.raises(ValueError, match="estimate"):
        pr.shrink([1.0], [1.0], "median")


def test_pooled_observed_benchmark_hand_worked():
    """pool_quarters 2, estimate observed, crude basis: three trusts, two quarters, n = 100 each quarter.
    O (Q1, Q2): T1 200, 200; T2 300, 300; T3 400, 600 → pooled rates 2, 3, 5; the type's pooled rate 3.333 →
    θ = 0.6, 0.9, 1.5; benchmark (25th percentile of 0.6, 0.9, 1.5) = 0.75 → gaps 0, 0.15, 0.75 in θ;
    converted with this quarter's (Q2) values: the type's value 1,100/300 = 3.667, so the gap in days is
    0, 0.55, 2.75 and the bed days released 0, 55, 275 (× 100 admissions)."""
    obs = pd.DataFrame(
        {
            "quarter": ["2025-26-Q3"] * 3 + ["2025-26-Q4"] * 3,
            "metric_id": "m",
            "trust_code": ["T1", "T2", "T3"] * 2,
            "numerator": [200.0, 300, 400, 200, 300, 600],
            "denominator": 100.0,
            "suppressed": False,
        }
    )
    cur = table([2, 3, 6], [100] * 3)
    out = pr.metric_opportunity(cur, metric(), annualise=4, observations=obs, pool_quarters=2, estimate="observed")
    np.testing.assert_allclose(out["oe"], [0.6, 0.9, 1.5])
    np.testing.assert_allclose(out["benchmark_oe"], 0.75)
    np.testing.assert_allclose(out["resource_quarter"], [0, 55, 275])
    assert list(out["quarters_pooled"]) == [2, 2, 2]
    with pytest.raises(ValueError, match="observations"):
        pr.metric_opportunity(cur, metric(), pool_quarters=2)


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
    meth = meth.model_copy(
        update={"productivity": meth.productivity.model_copy(update={"pool_quarters": 1, "estimate": "observed"})}
    )
    los = table([2, 3, 4, 5, 6])
    trusts = pd.DataFrame(
        {"trust_code": los["trust_code"], "trust_name": [f"Trust {i}" for i in range(1, 6)], "trust_type": "acute"}
    )
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


def _simulate_los(rng, n_trusts=134, quarters=8):
    """One data set drawn like the demo's length of stay (demo.SPEC["los_emergency"]): bed days
    x ~ Poisson(n · exp(α + β z + u_i) · g), g ~ Gamma(60, 1/60) (mean 1: sampling noise), u_i ~ N(0, 0.10²),
    one covariate z with β = 0.07; returns the observations, demographics, this quarter's metric table (with E from
    the demographic model) and the true resource (E*_i × max(0, θ_i − θ_b), θ_i = exp(u_i), truth.md)."""
    from leaguetables.statistics.expected import ExpectedModel

    codes = [f"T{i:03d}" for i in range(n_trusts)]
    age = rng.normal(0.18, 0.03, n_trusts)
    z = (age - age.mean()) / age.std(ddof=1)
    u = rng.normal(0, 0.10, n_trusts)
    size = rng.lognormal(0, 0.45, n_trusts)
    qs = [f"20{24 + q // 4}-{25 + q // 4}-Q{q % 4 + 1}" for q in range(quarters)]
    rows = []
    for q in qs:
        n = np.round(9000 * size * rng.lognormal(0, 0.05, n_trusts))
        mu = n * np.exp(np.log(4.8) + 0.07 * z + u) * rng.gamma(60.0, 1 / 60.0, n_trusts)
        x = rng.poisson(mu)
        rows.append(
            pd.DataFrame(
                {
                    "quarter": q,
                    "metric_id": "m",
                    "trust_code": codes,
                    "numerator": x.astype(float),
                    "denominator": n,
                    "suppressed": False,
                }
            )
        )
    obs = pd.concat(rows, ignore_index=True)
    demo = pd.DataFrame({"trust_code": codes, "share_65plus": age})
    cur = rows[-1]
    fit = ExpectedModel(
        cur.join(demo.set_index("trust_code"), on="trust_code"), "numerator", "denominator", "poisson", ["share_65plus"]
    ).fit()
    t = cur.assign(
        trust_type="acute",
        status="ok",
        value=cur["numerator"] / cur["denominator"],
        expected=fit.table.set_index("trust_code")["expected"].reindex(codes).to_numpy(),
    )
    e_star = cur["denominator"].to_numpy() * np.exp(np.log(4.8) + 0.07 * z)
    theta = np.exp(u)
    truth = float(np.sum(e_star * pr.gap(theta, pr.upper_quartile(theta, "lower_better"), "lower_better")))
    return obs, demo, t, qs, truth


def test_simulation_england_total_unbiased_under_the_default_and_inflated_by_the_single_quarter_method():
    """Simulation from a known truth (truth.md): 20 data sets drawn like the demo's length of stay (gamma mixing
    makes one quarter's O/E as noisy as the between-trust spread). The England total (bed days a quarter) over
    the true total, averaged over data sets:

    * the project's default (methodology: 4 quarters pooled, constrained empirical Bayes) is within 10% of the
      truth (measured here about −5%; benchmarks/productivity_noise.py on full demo data sets: −3.6%, 30 sets);
    * Better Care, Better Value's single quarter, observed O/E is inflated by noise (here about +62%; +65% on the
      demo data sets), more than +25%;
    * 4 quarters pooled with the plain posterior mean is biased down (about −22%: the estimates are too
      compressed).
    """
    meth = load_methodology("nof-2025-26")
    default = (meth.productivity.pool_quarters, meth.productivity.estimate)
    assert default == (4, "constrained")
    m = metric(statistic="rate", adjustment={"family": "poisson", "covariates": ["share_65plus"]})
    rng = np.random.default_rng(20251001)
    ratios = {"default": [], "single": [], "posterior_mean": []}
    for _ in range(20):
        obs, demo, t, qs, truth = _simulate_los(rng)
        for key, (k, est) in {"default": default, "single": (1, "observed"), "posterior_mean": (4, "shrunken")}.items():
            out = pr.metric_opportunity(
                t, m, observations=obs, demographics=demo, pool_quarters=k, estimate=est, quarters=qs
            )
            assert set(out["basis"]) == {"demographically adjusted"}
            ratios[key].append(out["resource_quarter"].sum() / truth - 1)
    mean = {k: float(np.mean(v)) for k, v in ratios.items()}
    assert abs(mean["default"]) < 0.10, mean
    assert mean["single"] > 0.25, mean
    assert mean["posterior_mean"] < -0.08, mean


def test_config_productivity_and_spc_sections_are_typed_and_ranged():
    """The new methodology fields are validated on load: pool_quarters 1–12, estimate one of three names; spc rule
    lengths 5–12 and min_points ≥ 3; left out, BCBV's single-quarter observed method and Making Data Count's
    values apply."""
    from pydantic import ValidationError

    from leaguetables.config import Productivity, SPCSettings

    assert (Productivity().pool_quarters, Productivity().estimate) == (1, "observed")
    assert SPCSettings() == SPCSettings(min_points=8, run_length=7, trend_length=7, screen_outliers=False)
    for bad in ({"pool_quarters": 0}, {"pool_quarters": 13}, {"estimate": "median"}, {"annualise": 0}):
        with pytest.raises(ValidationError):
            Productivity(**bad)
    for bad in ({"min_points": 2}, {"run_length": 4}, {"trend_length": 13}, {"colour": "blue"}):
        with pytest.raises(ValidationError):
            SPCSettings(**bad)
