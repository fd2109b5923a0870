"""Productivity opportunity, after Better Care, Better Value (NHS Institute, 2006–2009).

For every metric with a ``unit_cost`` in the catalogue, and every trust of a type the metric covers::

    benchmark   = the upper-quartile (best 25%) value of the comparator — the trust's type, or its "Similar 10"
                  demographic peers (methodology.productivity.comparator) — by the metric's direction:
                  the 25th percentile when lower is better, the 75th when higher is better
                  (numpy's default linear percentile, as for the segment cut points)
    gap         = value − benchmark (lower is better)  or  benchmark − value (higher is better)
    resource    = max(0, gap) / multiplier × activity     (bed days, day cases, ... released in the quarter)
    opportunity = resource × unit cost                    (per quarter)
    annual      = opportunity × methodology.productivity.annualise   (4: a quarter × 4)

``activity`` is the metric's denominator (or numerator, as the unit cost says): admissions for length of stay,
procedures for the day-case rate, discharges for readmissions, first attendances for the follow-up ratio, FTE
days available for sickness absence. Dividing by the metric's multiplier turns a percentage gap into a share.

Where the metric has a demographic model, trusts are compared on the demographically adjusted value (observed /
expected × the type's value), as Better Care, Better Value compared like with like within age, sex and
deprivation groups; otherwise on the crude value. The ``basis`` column says which. A trust better than the
benchmark has no opportunity (0), never a negative one. Only reported figures count (status ``ok``); the
benchmark is taken over the trusts of the comparator that have a value. The England figure is the sum over
trusts; metrics overlap (a shorter stay and fewer readmissions may release the same bed days), so a sum over
metrics is an upper bound, as Better Care, Better Value said of its own total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Catalogue, Methodology, Metric

COLUMNS = ["quarter", "trust_code", "trust_name", "trust_type", "metric_id", "metric_name", "status", "basis",
           "comparator", "comparator_n", "value", "benchmark", "gap", "unit", "activity", "activity_measure",
           "resource_quarter", "resource_annual", "resource_unit", "unit_cost", "currency", "opportunity_quarter",
           "opportunity_annual"]


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


def peer_groups(demographics: pd.DataFrame, trusts: pd.DataFrame, methodology: Methodology) -> dict[str, list[str]]:
    """Each trust's "Similar 10" peers, computed exactly as the metric tables' peer columns are
    (:func:`leaguetables.metrics.peer_table`)."""
    from .metrics import peer_table

    table = peer_table(demographics, trusts, methodology)
    return {t: list(g["peer_code"]) for t, g in table.groupby("trust_code", sort=True)}


def metric_opportunity(table: pd.DataFrame, metric: Metric, annualise: int = 4, comparator: str = "type",
                       peers: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Productivity opportunity of every trust in a metric result table (see the module docstring).

    ``table`` has the metric result columns trust_code, trust_type, status, numerator, denominator, value and
    adjusted_value. With ``comparator="peers"``, ``peers`` maps each trust to its peer codes and the benchmark is
    the upper quartile of the peers' values (the trust itself excluded).
    """
    uc = metric.unit_cost
    if uc is None:
        raise ValueError(f"metric {metric.id} has no unit_cost")
    if comparator not in ("type", "peers"):
        raise ValueError(f"comparator must be 'type' or 'peers', got {comparator!r}")
    if comparator == "peers" and peers is None:
        raise ValueError("comparator 'peers' needs the peer groups")
    t = table.reset_index(drop=True)
    ok = (t["status"] == "ok").to_numpy()
    adjusted = t["adjusted_value"].to_numpy(float) if "adjusted_value" in t else np.full(len(t), np.nan)
    use_adjusted = metric.adjustment is not None
    compared = np.where(use_adjusted & ~np.isnan(adjusted), adjusted, t["value"].to_numpy(float))
    basis = np.where(use_adjusted & ~np.isnan(adjusted), "demographically adjusted", "crude")
    compared = np.where(ok, compared, np.nan)
    by_code = pd.Series(compared, index=t["trust_code"].to_numpy())
    bench = np.full(len(t), np.nan)
    n_comp = np.zeros(len(t), dtype=int)
    if comparator == "type":
        for ttype in sorted(t["trust_type"].unique()):
            rows = (t["trust_type"] == ttype).to_numpy()
            vals = compared[rows]
            bench[rows] = upper_quartile(vals, metric.direction)
            n_comp[rows] = int(np.sum(~np.isnan(vals)))
    else:
        for i, code in enumerate(t["trust_code"]):
            vals = by_code.reindex(peers.get(code, [])).dropna().to_numpy()
            bench[i] = upper_quartile(vals, metric.direction)
            n_comp[i] = len(vals)
    g = gap(compared, bench, metric.direction)
    activity = t[uc.activity].to_numpy(float)
    resource = g / metric.multiplier * activity  # units of uc.unit (bed days, day cases, ...) in the quarter
    return pd.DataFrame({
        "quarter": t["quarter"].to_numpy() if "quarter" in t else None,
        "trust_code": t["trust_code"].to_numpy(),
        "trust_type": t["trust_type"].to_numpy(),
        "metric_id": metric.id,
        "metric_name": metric.name,
        "status": t["status"].to_numpy(),
        "basis": np.where(ok, basis, None),
        "comparator": comparator,
        "comparator_n": n_comp,
        "value": compared,
        "benchmark": bench,
        "gap": g,
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
    })


def opportunities(metric_tables: dict[str, pd.DataFrame], catalogue: Catalogue, methodology: Methodology,
                  trusts: pd.DataFrame, demographics: pd.DataFrame | None = None) -> pd.DataFrame:
    """The opportunity table of a quarter: one row per trust and costed metric, sorted by metric then trust."""
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
        frames.append(metric_opportunity(metric_tables[m.id], m, settings.annualise, settings.comparator, peers))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["trust_name"] = out["trust_code"].map(trusts.set_index("trust_code")["trust_name"])
    out = out.sort_values(["metric_id", "trust_type", "trust_code"], kind="mergesort").reset_index(drop=True)
    return out[COLUMNS]


def england_summary(opp: pd.DataFrame) -> pd.DataFrame:
    """Totals per metric (annual, and the number of trusts with an opportunity), plus an all-metrics row."""
    if opp.empty:
        return pd.DataFrame(columns=["metric_id", "metric_name", "trusts", "trusts_with_opportunity",
                                     "opportunity_annual"])
    g = opp.groupby(["metric_id", "metric_name"], sort=False)
    out = pd.DataFrame({
        "trusts": g["value"].apply(lambda v: int(v.notna().sum())),
        "trusts_with_opportunity": g["opportunity_annual"].apply(lambda v: int((v > 0).sum())),
        "opportunity_annual": g["opportunity_annual"].sum(min_count=1),
    }).reset_index()
    return out


def trust_totals(opp: pd.DataFrame) -> pd.DataFrame:
    """Annual opportunity per trust summed over metrics, largest first (ties by trust code)."""
    if opp.empty:
        return pd.DataFrame(columns=["trust_code", "trust_name", "trust_type", "opportunity_annual", "metrics"])
    g = opp.groupby(["trust_code", "trust_name", "trust_type"], sort=True)
    out = pd.DataFrame({"opportunity_annual": g["opportunity_annual"].sum(min_count=1),
                        "metrics": g["opportunity_annual"].apply(lambda v: int((v > 0).sum()))}).reset_index()
    out = out.sort_values(["opportunity_annual", "trust_code"], ascending=[False, True], kind="mergesort")
    return out.reset_index(drop=True)
