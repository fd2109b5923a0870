"""Productivity opportunity, after Better Care, Better Value (NHS Institute, 2006–2009).

For every metric with a ``unit_cost`` in the catalogue, and every trust of a type the metric covers, the trust's
performance is a ratio θ_i = O_i / E_i (observed over expected numerator):

* **crude basis** (no demographic model): ``E_i = n_i × the type's pooled rate`` (ΣO/Σn over the trusts of the
  type with a figure), so θ_i = value_i / the type's value;
* **adjusted basis** (the metric has a demographic model): ``E_i`` is the model's expected count
  (:mod:`leaguetables.statistics.expected`), θ_i = O/E.

Then::

    benchmark θ_b = the upper-quartile (best 25%) θ of the comparator — the trust's type, or its "Similar 10"
                    demographic peers (methodology.productivity.comparator) — by the metric's direction:
                    the 25th percentile when lower is better, the 75th when higher is better
                    (numpy's default linear percentile, as for the segment cut points)
    resource      = E_i × max(0, θ_i − θ_b)  (lower is better)  or  E_i × max(0, θ_b − θ_i)  (higher is better)
                    — in the units of the metric's numerator (bed days, readmissions, FTE days lost, ...)
                    released in the quarter; E_i is the trust's *expected activity* of this quarter
    opportunity   = resource × unit cost                    (per quarter)
    annual        = opportunity × methodology.productivity.annualise   (4: a quarter × 4)

On the crude basis this is exactly Better Care, Better Value's ``max(0, value − benchmark) / multiplier ×
activity`` (activity = the metric's denominator: admissions for length of stay, procedures for the day-case
rate, discharges for readmissions, first attendances for the follow-up ratio, FTE days available for sickness
absence), which is how it is computed on that basis (and ``activity: numerator`` in the catalogue is honoured
there). On the adjusted basis the shortfall in O/E is converted with the trust's *expected* activity,
``E_i × (O/E_i − θ_b)`` (statistical-methods.md §6.2): multiplying the adjusted gap by the trust's own
denominator instead is off by the ratio of the trust's expected rate to the type's rate (×0.68–1.30 on the demo).
The published columns ``value``, ``benchmark`` and ``gap`` are θ × the type's value of the quarter (the adjusted
value on the adjusted basis), so they read in the metric's units; ``oe``, ``benchmark_oe`` and
``expected_activity`` are what the resource is computed from.

**Which θ** (``methodology.productivity``):

* ``pool_quarters: 1``, ``estimate: observed`` — the quarter's own O/E (Better Care, Better Value; NHS England's
  published method: the compatibility setting). ``max(0, ·)`` and an upper quartile of noisy values are both
  inflated by sampling noise: on the demo's truth (30 simulated data sets, converted with E) the England total
  came out +65% (length of stay) and +35% (outpatient follow-up ratio) too high, −2% to +3% for the other costed
  metrics, whose quarterly noise is small beside the differences between trusts.
* ``pool_quarters: K`` — θ_i = ΣO / ΣE over the last K quarters to this one (on the adjusted basis E of the
  pooled counts comes from the same demographic model refitted to them), then converted with *this* quarter's
  E_i.
* ``estimate: shrunken`` — empirical Bayes on y_i = log θ_i within each trust type (the comparator of the
  shrinkage): τ² = max(0, var(y) − mean(s_i²)) (method of moments), ŷ_i = ȳ + B_i (y_i − ȳ) with
  B_i = τ² / (τ² + s_i²). Posterior means are the best per-trust estimates but their spread is too small
  (var ≈ B τ²), which biases a sum of shortfalls *down*.
* ``estimate: constrained`` — ŷ_i = ȳ + √B_i (y_i − ȳ): each estimate's spread about ȳ matches τ² (the
  "constrained Bayes" idea of Louis 1984, Ghosh 1992, for ensemble quantities such as a quartile and a sum of
  shortfalls above it; Shen & Louis 1998), so the benchmark and the England total are not inflated by noise.

s_i² (the sampling variance of y_i) = Σ_q μ_iq² (v_iq + ω²) / (Σ_q μ_iq)², where μ_iq = n_iq × the trust's pooled
rate, v_iq is the nominal variance of log O (Poisson 1/μ, binomial (1 − p)/μ) and ω² is the extra
quarter-to-quarter variance of the trust's log rate beyond it (gamma mixing, case-mix swings), estimated by moments
from the within-trust variation of log(O_iq/n_iq) − log(type rate_q) over the last max(K, 4) quarters (a trust
needs 2 quarters to count). The uncertainty of the model's E (coefficient estimates from ~130 trusts) is ignored
here: it is small beside ω² for the costed demo metrics.

The default (``pool_quarters: 4``, ``estimate: constrained``) was chosen by simulation from the demo's truth
(``benchmarks/productivity_noise.py``, results in ``benchmarks/productivity_noise_results.txt``;
tests/test_productivity.py keeps a small version): mean England totals within 4% of the truth for every costed
metric (length of stay −3.6%, follow-up ratio +0.4%, readmissions −1.4%, sickness absence −1.8%, day-case rate
+2.1%), a single data set's total scattering with a standard deviation of about 10% (length of stay, follow-up
ratio). 4 quarters observed: +16% and +11%; 4 quarters posterior mean: −20% and −9%; 8 quarters constrained:
−2.5% and 0%. The pooled E comes from the fixed-effect GLM (population-averaged) while this quarter's E may come
from the random-effects model (a trust of average quality): a difference of under 1% in the conversion.

A trust better than the benchmark has no opportunity (0), never a negative one. Only reported figures count
(status ``ok`` this quarter); the benchmark is taken over the trusts of the comparator that have a value. The
England figure is the sum over trusts; metrics overlap (a shorter stay and fewer readmissions may release the
same bed days), so a sum over metrics is an upper bound, as Better Care, Better Value said of its own total.

The public names are those of ``__all__``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from leaguetables.config import Catalogue, Methodology, Metric
from leaguetables.csv_output import TRUST_METRIC_COLUMNS
from leaguetables.inputs.contract import quarter_key
from leaguetables.statistics import expected as expected_mod
from leaguetables.statistics.peers import peer_groups
from leaguetables.statistics.productivity_totals import england_summary, england_total, trust_totals

__all__ = [
    "COLUMNS",
    "ESTIMATES",
    "upper_quartile",
    "gap",
    "peer_groups",
    "quarter_noise",
    "pooled_ratios",
    "shrink",
    "metric_opportunity",
    "opportunities",
    "england_summary",
    "england_total",
    "trust_totals",
]

COLUMNS = [
    *TRUST_METRIC_COLUMNS,
    "status",
    "basis",
    "comparator",
    "comparator_n",
    "value",
    "benchmark",
    "gap",
    "unit",
    "activity",
    "activity_measure",
    "resource_quarter",
    "resource_annual",
    "resource_unit",
    "unit_cost",
    "currency",
    "opportunity_quarter",
    "opportunity_annual",
    "oe",
    "benchmark_oe",
    "expected_activity",
    "quarters_pooled",
    "estimate",
]


def upper_quartile(values, direction: str) -> float:
    """The best-25% level of ``values``: the 25th percentile if lower is better, the 75th if higher is better.

    Hand-worked: for 2, 3, 4, 5, 6 numpy's linear percentile puts the 25th at 3.0 and the 75th at 5.0.

    >>> upper_quartile([2, 3, 4, 5, 6], "lower_better"), upper_quartile([2, 3, 4, 5, 6], "higher_better")
    (3.0, 5.0)
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    return float(np.percentile(v, 25.0 if direction == "lower_better" else 75.0))


def gap(value, benchmark, direction: str):
    """How far a value falls short of the benchmark, in the metric's units; 0 when it meets or beats it.

    >>> [float(gap(v, b, d)) for v, b, d in ((5.0, 3.0, "lower_better"), (2.0, 3.0, "lower_better"),
    ...                                      (60.0, 75.0, "higher_better"))]
    [2.0, 0.0, 15.0]
    """
    raw = np.subtract(value, benchmark) if direction == "lower_better" else np.subtract(benchmark, value)
    return np.maximum(raw, 0.0) + 0.0


ESTIMATES = ("observed", "shrunken", "constrained")


def _counts(observations: pd.DataFrame, metric_id: str, quarters: list[str]) -> pd.DataFrame:
    """Rows of ``observations`` for one metric and the given quarters with a usable numerator and denominator."""
    o = observations
    o = o.loc[(o["metric_id"] == metric_id) & o["quarter"].isin(quarters)]
    if "suppressed" in o:
        o = o.loc[~o["suppressed"].fillna(False).astype(bool)]
    o = o.loc[o["numerator"].notna() & o["denominator"].notna() & (o["denominator"] > 0)]
    return o[["quarter", "trust_code", "numerator", "denominator"]].astype({"numerator": float, "denominator": float})


def _nominal_var(mu: np.ndarray, p: np.ndarray, family: str) -> np.ndarray:
    """Nominal variance of log O for an expected count μ: Poisson 1/μ, binomial (1 − p)/μ."""
    mu = np.maximum(mu, 0.5)
    return (1.0 - p) / mu if family == "binomial" else 1.0 / mu


def quarter_noise(counts: pd.DataFrame, types: pd.Series, family: str) -> dict[str, float]:
    """ω² per trust type: the quarter-to-quarter variance of a trust's log rate beyond the nominal (Poisson or
    binomial) variance, by moments.

    ``counts`` has quarter, trust_code, numerator, denominator (one row per trust-quarter); ``types`` maps trust
    codes to trust types. For trust i and quarter q, r_iq = log(O_iq/n_iq) − log(ΣO_q/Σn_q of the type) (the common
    quarter effect removed); with S_i² the sample variance of r_iq over the trust's K_i ≥ 2 quarters and v̄_i the
    mean nominal variance, ω² = max(0, Σ (K_i − 1)(S_i² − v̄_i) / Σ (K_i − 1)).

    Hand-worked: one trust, two quarters, O = 100 and 144 of n = 1000 each, a type rate of 0.1 and 0.144
    (the trust alone) gives r = 0, 0 and ω² = 0.
    """
    out: dict[str, float] = {}
    c = counts.assign(trust_type=counts["trust_code"].map(types)).dropna(subset=["trust_type"])
    c = c.loc[c["numerator"] > 0]
    for ttype, g in c.groupby("trust_type", sort=True):
        rate_q = g.groupby("quarter")["numerator"].sum() / g.groupby("quarter")["denominator"].sum()
        r = np.log(g["numerator"] / g["denominator"]) - np.log(g["quarter"].map(rate_q))
        trust_rate = g.groupby("trust_code")["numerator"].transform("sum") / g.groupby("trust_code")[
            "denominator"
        ].transform("sum")
        v = _nominal_var(g["denominator"].to_numpy() * trust_rate.to_numpy(), trust_rate.to_numpy(), family)
        d = pd.DataFrame({"trust_code": g["trust_code"].to_numpy(), "r": r.to_numpy(), "v": v})
        grp = d.groupby("trust_code", sort=True)
        k = grp["r"].count()
        keep = k >= 2
        if not keep.any():
            out[str(ttype)] = float("nan")
            continue
        s2 = grp["r"].var(ddof=1)[keep]
        vbar = grp["v"].mean()[keep]
        w = (k[keep] - 1).astype(float)
        out[str(ttype)] = float(max(0.0, np.sum(w * (s2 - vbar)) / np.sum(w)))
    return out


def pooled_ratios(counts: pd.DataFrame, expected: pd.Series, family: str, omega2: float) -> pd.DataFrame:
    """θ_i = ΣO/ΣE over the pooled quarters, y = log θ and its sampling variance s².

    ``counts``: quarter, trust_code, numerator, denominator of the pooled quarters (the trusts of one comparator
    type); ``expected``: E of each trust's pooled counts (index trust code). s_i² = Σ_q μ_iq² (v_iq + ω²) /
    (Σ_q μ_iq)² with μ_iq = n_iq × the trust's pooled rate (the delta method for log of a sum of independent
    quarterly counts). Returns one row per trust: trust_code, observed, denominator, expected, quarters, oe, y, s2.
    """
    g = counts.groupby("trust_code", sort=True)
    obs, den, k = g["numerator"].sum(), g["denominator"].sum(), g["numerator"].count()
    rate = (obs / den).reindex(counts["trust_code"]).to_numpy()
    mu = counts["denominator"].to_numpy() * rate
    v = _nominal_var(mu, rate, family) + omega2
    s2 = (
        pd.Series(mu * mu * v, index=counts["trust_code"].to_numpy()).groupby(level=0).sum()
        / pd.Series(mu, index=counts["trust_code"].to_numpy()).groupby(level=0).sum() ** 2
    )
    e = expected.reindex(obs.index)
    oe = obs / e
    y = np.log(np.maximum(obs, 0.5) / e)
    return pd.DataFrame(
        {
            "trust_code": obs.index,
            "observed": obs.to_numpy(),
            "denominator": den.to_numpy(),
            "expected": e.to_numpy(),
            "quarters": k.to_numpy(),
            "oe": oe.to_numpy(),
            "y": y.to_numpy(),
            "s2": s2.reindex(obs.index).to_numpy(),
        }
    )


def shrink(y, s2, estimate: str) -> tuple[np.ndarray, float]:
    """Empirical-Bayes estimates of log θ within one comparator population; returns (ŷ, τ²).

    τ² = max(0, var(y, ddof=1) − mean(s²)); B_i = τ²/(τ² + s_i²); ``shrunken``: ŷ = ȳ + B(y − ȳ) (posterior mean);
    ``constrained``: ŷ = ȳ + √B (y − ȳ) (spread matched to τ²); ``observed``: ŷ = y.

    Hand-worked: y = −1, 0, 1 (var 1), s² = 0.5 each → τ² = 0.5, B = 0.5: shrunken −0.5, 0, 0.5; constrained
    ±√0.5 = ±0.7071.

    >>> [round(float(v), 4) for v in shrink([-1.0, 0.0, 1.0], [0.5] * 3, "constrained")[0]]
    [-0.7071, 0.0, 0.7071]
    """
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}")
    y, s2 = np.asarray(y, float), np.asarray(s2, float)
    have = ~np.isnan(y) & ~np.isnan(s2)
    if estimate == "observed" or have.sum() < 3:
        return y.copy(), float("nan")
    ybar = float(np.mean(y[have]))
    tau2 = float(max(0.0, np.var(y[have], ddof=1) - np.mean(s2[have])))
    b = tau2 / (tau2 + s2) if tau2 > 0 else np.zeros_like(y)
    factor = b if estimate == "shrunken" else np.sqrt(b)
    return ybar + factor * (y - ybar), tau2


def _pooled_expected(
    counts: pd.DataFrame, metric: Metric, demographics: pd.DataFrame | None, adjusted: bool
) -> pd.Series:
    """E of each trust's pooled counts: the metric's demographic model refitted to them (adjusted basis), or
    n_i × the pooled rate of the comparator (crude basis)."""
    g = counts.groupby("trust_code", sort=True)
    obs, den = g["numerator"].sum(), g["denominator"].sum()
    if not adjusted:
        return den * (obs.sum() / den.sum())

    if demographics is None:
        raise ValueError("a pooled benchmark on the adjusted basis needs the demographics")
    adj = metric.adjustment
    assert adj is not None, "the adjusted basis needs the metric's adjustment"
    data = pd.DataFrame({"trust_code": obs.index, "numerator": obs.to_numpy(), "denominator": den.to_numpy()}).join(
        demographics.set_index("trust_code")[list(adj.covariates)], on="trust_code"
    )
    fit = expected_mod.metric_model(data, metric).fit()
    return fit.table.set_index("trust_code")["expected"].astype(float)


def metric_opportunity(
    table: pd.DataFrame,
    metric: Metric,
    annualise: int = 4,
    comparator: str = "type",
    peers: dict[str, list[str]] | None = None,
    *,
    observations: pd.DataFrame | None = None,
    demographics: pd.DataFrame | None = None,
    pool_quarters: int = 1,
    estimate: str = "observed",
    quarters: list[str] | None = None,
) -> pd.DataFrame:
    """Productivity opportunity of every trust in a metric result table (see the module docstring).

    ``table`` has the metric result columns trust_code, trust_type, status, numerator, denominator, value and,
    on the adjusted basis, expected (and adjusted_value). With ``comparator="peers"``, ``peers`` maps each trust
    to its peer codes and the benchmark is the upper quartile of the peers' θ (the trust itself excluded).

    ``pool_quarters`` > 1 or ``estimate`` other than "observed" need ``observations`` (the contract's
    observations.csv rows of every quarter: quarter, trust_code, metric_id, numerator, denominator, suppressed),
    ``quarters`` (every quarter of the inputs in order; default: those in ``observations``) and, on the adjusted
    basis, ``demographics``.
    """
    uc = metric.unit_cost
    if uc is None:
        raise ValueError(f"metric {metric.id} has no unit_cost")
    simple = pool_quarters == 1 and estimate == "observed"
    _check_opportunity_arguments(comparator, peers, estimate, pool_quarters, simple or observations is not None)
    t = table.reset_index(drop=True)
    n_rows = len(t)
    ok = (t["status"] == "ok").to_numpy()
    num = t["numerator"].to_numpy(float)
    den = t["denominator"].to_numpy(float)
    types = t["trust_type"].to_numpy()
    exp_col = t["expected"].to_numpy(float) if "expected" in t else np.full(n_rows, np.nan)
    adjusted = (metric.adjustment is not None) & ~np.isnan(exp_col)
    ref = _type_values(types, ok, num, den, metric.multiplier)
    rate = ref / metric.multiplier
    e_cur = np.where(adjusted, exp_col, den * rate)
    e_cur = np.where(ok, e_cur, np.nan)
    if "value" in t:
        value = t["value"].to_numpy(float)
    else:
        value = num / den * metric.multiplier
    theta = np.where(adjusted, num / exp_col, value / ref)
    theta = np.where(ok, theta, np.nan)
    k_used = np.where(ok & ~np.isnan(theta), 1, 0)
    if not simple:
        assert observations is not None, "pooled or estimated benchmarks need the observations"
        _pooled_theta(
            theta, k_used, t, metric, ok, adjusted, observations, demographics, quarters, pool_quarters, estimate
        )
    basis = np.where(adjusted, "demographically adjusted", "crude")
    bench, n_comp = _benchmarks(theta, t["trust_code"].to_numpy(), types, metric.direction, comparator, peers)
    g_theta = gap(theta, bench, metric.direction)
    activity = t[uc.activity].to_numpy(float)
    # crude basis: Better Care, Better Value's gap / multiplier × activity (= E × θ gap when activity is the
    # denominator); adjusted basis: the trust's expected activity × the O/E gap
    crude_resource = g_theta * ref / metric.multiplier * activity
    resource = np.where(adjusted, e_cur * g_theta, crude_resource)
    return pd.DataFrame(
        {
            "quarter": t["quarter"].to_numpy() if "quarter" in t else None,
            "trust_code": t["trust_code"].to_numpy(),
            "trust_type": types,
            "metric_id": metric.id,
            "metric_name": metric.name,
            "status": t["status"].to_numpy(),
            "basis": np.where(ok, basis, None),
            "comparator": comparator,
            "comparator_n": n_comp,
            "value": theta * ref,
            "benchmark": bench * ref,
            "gap": g_theta * ref,
            "unit": metric.unit,
            "activity": np.where(ok, activity, np.nan),
            "activity_measure": uc.activity,
            "resource_quarter": resource,
            "resource_annual": resource * annualise,
            "resource_unit": uc.unit,
            "unit_cost": uc.amount,
            "currency": uc.currency,
            "opportunity_quarter": resource * uc.amount,
            "opportunity_annual": resource * uc.amount * annualise,
            "oe": theta,
            "benchmark_oe": bench,
            "expected_activity": e_cur,
            "quarters_pooled": np.where(ok, k_used, 0),
            "estimate": estimate,
        }
    )


def _check_opportunity_arguments(
    comparator: str, peers: dict[str, list[str]] | None, estimate: str, pool_quarters: int, has_observations: bool
) -> None:
    """Reject a comparator, estimate or pooling :func:`metric_opportunity` does not know, or one it lacks the data
    for (peer groups; the observations of earlier quarters for a pooled or shrunken benchmark)."""
    if comparator not in ("type", "peers"):
        raise ValueError(f"comparator must be 'type' or 'peers', got {comparator!r}")
    if comparator == "peers" and peers is None:
        raise ValueError("comparator 'peers' needs the peer groups")
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}")
    if pool_quarters < 1:
        raise ValueError("pool_quarters must be at least 1")
    if not has_observations:
        raise ValueError("a pooled or shrunken benchmark needs the observations of earlier quarters")


def _type_values(types: np.ndarray, ok: np.ndarray, num: np.ndarray, den: np.ndarray, multiplier: float) -> np.ndarray:
    """Each row's trust type's value this quarter: pooled ΣO/Σn × multiplier over the trusts of the type with a
    figure (NaN where the type has none)."""
    ref = np.full(len(types), np.nan)
    for ttype in sorted(set(types)):
        rows = (types == ttype) & ok & ~np.isnan(num) & ~np.isnan(den)
        if rows.any() and den[rows].sum() > 0:
            ref[types == ttype] = num[rows].sum() / den[rows].sum() * multiplier
    return ref


def _pooled_theta(
    theta: np.ndarray,
    k_used: np.ndarray,
    t: pd.DataFrame,
    metric: Metric,
    ok: np.ndarray,
    adjusted: np.ndarray,
    observations: pd.DataFrame,
    demographics: pd.DataFrame | None,
    quarters: list[str] | None,
    pool_quarters: int,
    estimate: str,
) -> None:
    """θ from the last ``pool_quarters`` quarters' pooled counts (shrunken if asked), in place, with the number of
    quarters each trust's θ pooled."""
    types = t["trust_type"].to_numpy()
    qs = list(quarters) if quarters is not None else sorted(set(observations["quarter"]), key=quarter_key)
    current = str(t["quarter"].iloc[0]) if "quarter" in t and len(t) else qs[-1]
    upto = [q for q in qs if quarter_key(q) <= quarter_key(current)]
    window = upto[-pool_quarters:]
    noise_window = upto[-max(pool_quarters, 4) :]
    family = "binomial" if metric.statistic == "proportion" else "poisson"
    all_counts = _counts(observations, metric.id, noise_window)
    type_of = pd.Series(types, index=t["trust_code"].to_numpy())
    ok_codes = set(t["trust_code"].to_numpy()[ok])
    all_counts = all_counts.loc[all_counts["trust_code"].isin(ok_codes)]
    omega2 = quarter_noise(all_counts, type_of, family)
    code_pos = {c: i for i, c in enumerate(t["trust_code"])}
    for ttype in sorted(set(types)):
        codes_t = [c for c, ty in zip(t["trust_code"], types) if ty == ttype and c in ok_codes]
        cnt = all_counts.loc[all_counts["quarter"].isin(window) & all_counts["trust_code"].isin(codes_t)]
        if cnt.empty:
            continue
        adj_t = bool(adjusted[[code_pos[c] for c in codes_t]].any())
        e_pool = _pooled_expected(cnt, metric, demographics, adj_t)
        w = omega2.get(ttype, float("nan"))
        pr_ = pooled_ratios(cnt, e_pool, family, 0.0 if np.isnan(w) else w)
        yhat, _ = shrink(pr_["y"].to_numpy(), pr_["s2"].to_numpy(), estimate)
        est = np.exp(yhat) if estimate != "observed" else pr_["oe"].to_numpy(float)
        for c, th, kq in zip(pr_["trust_code"], est, pr_["quarters"]):
            theta[code_pos[c]] = th
            k_used[code_pos[c]] = int(kq)


def _benchmarks(
    theta: np.ndarray,
    codes: np.ndarray,
    types: np.ndarray,
    direction: str,
    comparator: str,
    peers: dict[str, list[str]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark θ of each trust (upper quartile of its type's, or its peers', θ) and how many it came from."""
    by_code = pd.Series(theta, index=codes)
    bench = np.full(len(theta), np.nan)
    n_comp = np.zeros(len(theta), dtype=int)
    if comparator == "type":
        for ttype in sorted(set(types)):
            rows = types == ttype
            vals = theta[rows]
            bench[rows] = upper_quartile(vals, direction)
            n_comp[rows] = int(np.sum(~np.isnan(vals)))
    else:
        assert peers is not None, "comparator 'peers' needs the peers"
        for i, code in enumerate(codes):
            vals = by_code.reindex(peers.get(code, [])).dropna().to_numpy()
            bench[i] = upper_quartile(vals, direction)
            n_comp[i] = len(vals)
    return bench, n_comp


def opportunities(
    metric_tables: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    methodology: Methodology,
    trusts: pd.DataFrame,
    demographics: pd.DataFrame | None = None,
    observations: pd.DataFrame | None = None,
    quarters: list[str] | None = None,
    memo: Callable[[Metric, Callable[[], pd.DataFrame]], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The opportunity table of a quarter: one row per trust and costed metric, sorted by metric then trust.

    ``observations`` (every quarter's rows of the contract's observations.csv) and ``quarters`` are needed when
    the methodology pools quarters or shrinks (methodology.productivity.pool_quarters / estimate). ``memo(metric,
    compute)``, when given, returns each metric's rows (:func:`metric_opportunity`'s frame), by calling ``compute``
    or from a cache keyed on what it reads (:mod:`leaguetables.publication.derived_cache`)."""
    settings = methodology.productivity
    peers = None
    if settings.comparator == "peers":
        if demographics is None:
            raise ValueError("comparator 'peers' needs the demographics")
        peers = peer_groups(demographics, trusts, methodology)
    frames = []
    for m in catalogue.metrics:
        if m.unit_cost is None or m.id not in metric_tables:
            continue
        compute = partial(
            metric_opportunity,
            metric_tables[m.id],
            m,
            settings.annualise,
            settings.comparator,
            peers,
            observations=observations,
            demographics=demographics,
            pool_quarters=settings.pool_quarters,
            estimate=settings.estimate,
            quarters=quarters,
        )
        frames.append(compute() if memo is None else memo(m, compute))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["trust_name"] = out["trust_code"].map(trusts.set_index("trust_code")["trust_name"])
    out = out.sort_values(["metric_id", "trust_type", "trust_code"], kind="mergesort").reset_index(drop=True)
    return out[COLUMNS]
