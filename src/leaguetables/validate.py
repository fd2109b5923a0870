"""The published simulation study: ``python -m leaguetables.validate`` (``make validate``).

Simulates replicate data sets from the demo generator's known truth (:mod:`leaguetables.inputs.demo`), runs the real code
paths of a quarter in-process — :func:`leaguetables.statistics.metrics.compute_metric` for every metric, the league of
:mod:`leaguetables.nof.league` (with its bootstrap), the change test between two quarters and
:func:`leaguetables.statistics.productivity.opportunities` — and measures the published statistics against the truth.
Writes ``reports/validation/index.html`` (accessible, offline, from the Jinja2 template
``templates/pages/validation.html.j2``) and one CSV per table.

Design
------
* **One fixed truth per scenario, redrawn data.** The truth (trusts, demographics, trust effects, activity,
  reported values, ratings, status, missing figures) comes from ``demo.generate(validation.seed, …)``; replicate
  ``r`` of a scenario redraws only the sampling noise (``noise_seed``), so the figures are frequencies *given the
  truth* — what a reader of one quarter's report can rely on. The exception is ``fresh_truth``: every replicate
  draws a new truth too (:func:`truth_seed`), and O/E coverage is judged there, over truths, because an O/E interval
  allows for the average trust of one set of trusts being itself estimated (given one truth that shift is fixed).
* **The oracle** of the segment probabilities is Bayesian: the exact posterior of every counted metric given its
  true prior (the true spread of trust effects), each draw's league recomputed — the best any method could publish
  from the same data (:func:`_oracle_probabilities`); its rank interval, by the published rule, is reported beside
  the published one.
* **Scenarios** (arguments of :func:`leaguetables.inputs.demo.generate`): ``standard`` (no true outliers: every trust
  effect from the between-trust normal distribution), ``outliers`` (±``outlier_sd`` SD of the trust's own funnel
  planted on ``outliers_per_metric`` trusts of every funnel metric and trust type; the detection target),
  ``outliers_between`` (the same at ±``outlier_sd`` between-trust SDs; context), ``no_change`` (nothing but the noise
  differs between ``previous`` and ``quarter``), ``change`` (the same, with ``change_share`` of each type moved by
  ±``change_sd`` SD of latent quality) and ``overadjust`` (latent quality correlated ``overadjust_r`` with
  deprivation, deprivation without true effect).
* **Truth of the league.** The NOF method (:func:`leaguetables.statistics.metrics._scores`,
  :func:`leaguetables.nof.scoring.average_scores`, :func:`~leaguetables.nof.scoring.assign_segments`,
  :func:`~leaguetables.nof.scoring.apply_financial_override`, :func:`~leaguetables.nof.scoring.rank_league`) applied to the
  true values (``truth/values``: ``m/n × multiplier``; reported values and ratings as reported) of the figures the
  quarter has. The true productivity opportunity: :func:`leaguetables.statistics.productivity.opportunities` applied to metric
  tables of true values (numerator m, expected E*, O/E = m/E*, adjusted value O/E × the type's true rate).
* **Monte-Carlo standard errors** by the jackknife over replicates (replicates are independent given the truth).
* The peer columns (``metrics._peers``) and the trend table of earlier quarters (``metrics.history``) are not
  measured: while the study runs they are replaced by empty tables (about half of each metric's time; nothing else
  changes), and the inputs hold only the quarters measured.

Public functions
----------------
:func:`scenario_arguments`, :func:`run_replicate`, :func:`run_study`, :func:`summarise`, :func:`write_report`,
:func:`main`. The tables :func:`summarise` returns (and the CSVs): ``summary`` (one row per target),
``oe_coverage``, ``funnel_rates``, ``funnel_detection``, ``rank_coverage``, ``reliability``, ``brier``,
``change_test``, ``productivity``, ``overadjustment``, ``degenerate_funnels``, ``timing``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.tools import add_constant

from leaguetables import __version__
from leaguetables.config import (
    PROJECT_ROOT,
    TRUST_TYPE_PLURAL,
    Catalogue,
    Methodology,
    Validation,
    load_catalogue,
    load_methodology,
    load_yaml_strict,
)
from leaguetables.csv_output import write_csv
from leaguetables.inputs import demo
from leaguetables.inputs.contract import QuarterInputs, quarter_key, quarter_label
from leaguetables.nof import league, scoring
from leaguetables.publication import pages, report
from leaguetables.run.manifest import git_state
from leaguetables.statistics import funnel, metrics, productivity, sampling

SCENARIOS = ("standard", "outliers", "outliers_between", "no_change", "change", "overadjust", "fresh_truth")
OUTLIER_SCALE = {"outliers": "funnel", "outliers_between": "between_trust"}
DEFAULT_OUT = PROJECT_ROOT / "reports" / "validation"
OK = metrics.STATUS_OK


# --------------------------------------------------------------------------------------------------- scenarios
def _pick(rng: np.random.Generator, codes: np.ndarray, k: int) -> list[str]:
    return sorted(rng.choice(codes, size=min(k, len(codes)), replace=False).tolist())


def scenario_arguments(
    name: str, v: Validation, trusts: pd.DataFrame, catalogue: Catalogue, funnel_quarters: dict[str, int] | None = None
) -> dict:
    """Keyword arguments of :func:`leaguetables.inputs.demo.generate` for a scenario (without ``noise_seed``).

    Planted trusts are chosen by ``numpy.random.default_rng([seed, 7])`` (outliers) and ``[seed, 8]`` (changes):
    the same in every replicate. ``outliers`` plants them ``outlier_sd`` SDs of the trust's own funnel from the
    target (the scale funnel limits are drawn on; ``funnel_quarters``: the quarters each metric's funnel pools,
    from :func:`funnel_quarters`), ``outliers_between`` ``outlier_sd`` between-trust SDs from the average trust."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of {SCENARIOS}")
    if name in ("standard", "fresh_truth"):
        return {}
    if name == "overadjust":
        return {"quality_deprivation_r": v.overadjust_r, "deprivation_effect": False}
    if name in OUTLIER_SCALE:
        rng = np.random.default_rng([v.seed, 7])
        out = []
        for m in catalogue.metrics:
            if not m.funnel:
                continue
            for t in m.trust_types:
                codes = trusts.loc[trusts["trust_type"] == t, "trust_code"].to_numpy()
                if len(codes) < 20:
                    continue
                chosen = _pick(rng, codes, v.outliers_per_metric)
                for j, c in enumerate(chosen):
                    out.append((m.id, c, v.outlier_sd if j % 2 == 0 else -v.outlier_sd))
        args: dict[str, object] = {"outliers": tuple(out), "outlier_scale": OUTLIER_SCALE[name]}
        if OUTLIER_SCALE[name] == "funnel":
            args["outlier_quarters"] = dict(sorted((funnel_quarters or {}).items()))
        return args
    args = {"change_quarters": (v.previous, v.quarter), "hold_quarters": True}
    if name == "change":
        rng = np.random.default_rng([v.seed, 8])
        moved = []
        for t in sorted(trusts["trust_type"].unique()):
            codes = trusts.loc[trusts["trust_type"] == t, "trust_code"].to_numpy()
            k = max(2, int(round(v.change_share * len(codes))))
            for j, c in enumerate(_pick(rng, codes, k)):
                moved.append((c, v.change_sd if j % 2 == 0 else -v.change_sd))
        args["change"] = tuple(moved)
    return args


def _replicates(v: Validation, name: str) -> int:
    return {
        "standard": v.replicates,
        "outliers": v.outlier_replicates,
        "outliers_between": max(10, v.outlier_replicates // 2),
        "no_change": v.change_replicates,
        "change": v.change_replicates,
        "overadjust": v.overadjust_replicates,
        "fresh_truth": v.fresh_truth_replicates,
    }[name]


def truth_seed(v: Validation, name: str, r: int) -> int:
    """The seed of the truth of replicate ``r``: the study's seed (one fixed truth) except in ``fresh_truth``,
    where every replicate draws new trusts, demographics and trust effects (coverage over truths, the frequentist
    statement an O/E interval makes: the average trust of a sample of trusts is itself estimated)."""
    return int(v.seed) + 7_919 * (r + 1) if name == "fresh_truth" else int(v.seed)


def noise_seed(v: Validation, name: str, r: int) -> int:
    """The noise seed of replicate ``r`` of a scenario (distinct for every scenario and replicate)."""
    return int(v.seed) * 10 + 1_000_003 * (SCENARIOS.index(name) + 1) + r


# ------------------------------------------------------------------------------------------------ the quarter
INPUT_QUARTERS = 8  # quarters of data the methods see: enough for every pooled or historical estimate they make


def _inputs(data: dict, upto: str) -> QuarterInputs:
    """The contract tables of the last :data:`INPUT_QUARTERS` quarters up to ``upto`` (the methods may use earlier
    quarters: pooled rare-event funnels, within-trust variance, pooled productivity benchmarks; nothing after the
    quarter is shown)."""
    obs, st = data["observations"], data["status"]
    keep = [q for q in demo.QUARTERS if quarter_key(q) <= quarter_key(upto)][-INPUT_QUARTERS:]
    return QuarterInputs(
        trusts=data["trusts"],
        observations=obs[obs["quarter"].isin(keep)].reset_index(drop=True),
        demographics=data["demographics"],
        status=st[st["quarter"].isin(keep)].reset_index(drop=True),
        files={},
    )


_ORIGINAL = {"_peers": metrics._peers, "history": metrics.history}


def _no_peers(df, inputs, metric, methodology):  # the peer columns are not measured by the study
    return pd.DataFrame(np.nan, index=df.index, columns=["peer_median", "peer_rank", "peer_n"])


def _no_history(inputs, metric, quarter, confidence):  # nor the trend table of earlier quarters
    return pd.DataFrame(
        columns=["quarter", "metric_id", "trust_code", "trust_type", "status", "value", "lower", "upper"]
    )


def _skip_unmeasured() -> None:
    """Replace the two pieces of :func:`metrics.compute_metric` the study does not measure (the peer columns and
    the history of earlier quarters) by empty tables: half of each metric's time, nothing else changes."""
    metrics._peers = _no_peers
    metrics.history = _no_history


def _restore() -> None:
    for k, f in _ORIGINAL.items():
        setattr(metrics, k, f)


def _results(
    inputs: QuarterInputs, quarter: str, catalogue: Catalogue, methodology: Methodology, only=None
) -> dict[str, metrics.MetricResult]:
    return {
        m.id: metrics.compute_metric(inputs, m, quarter, methodology)
        for m in catalogue.metrics
        if only is None or m.id in only
    }


def _truth_table(res: metrics.MetricResult, truth: pd.DataFrame) -> pd.DataFrame:
    """The metric result table with the true figures in place of the observed ones (same rows and status)."""
    t = res.table.copy()
    tv = truth.set_index("trust_code")
    codes = t["trust_code"]
    m = res.metric
    if m.statistic in ("proportion", "rate"):
        t["numerator"] = codes.map(tv["true_numerator"]).to_numpy(float)
        t["value"] = codes.map(tv["true_value"]).to_numpy(float)
        adjusted = m.adjustment is not None
        t["expected"] = codes.map(tv["true_expected"]).to_numpy(float) if adjusted else np.nan
        t["oe"] = codes.map(tv["true_oe"]).to_numpy(float) if adjusted else np.nan
        ok = t["status"] == OK
        for col in ("numerator", "value", "expected", "oe"):
            t.loc[~ok, col] = np.nan
        for ttype in m.trust_types:
            rows = (t["trust_type"] == ttype) & ok
            if rows.any():
                rate = t.loc[rows, "numerator"].sum() / t.loc[rows, "denominator"].sum() * m.multiplier
                t.loc[t["trust_type"] == ttype, "type_value"] = rate
        t["adjusted_value"] = np.where(t["oe"].notna() & (m.adjustment is not None), t["oe"] * t["type_value"], np.nan)
        t["oe_lower"] = t["oe_upper"] = np.nan
    t["score"] = metrics._scores(t, m, "value")
    return t


def _segments(
    scores: pd.DataFrame, trusts: pd.DataFrame, status: pd.DataFrame, methodology: Methodology, catalogue: Catalogue
) -> pd.DataFrame:
    """Average, adjusted segment (1–4, after the financial override) and rank per trust by the NOF method."""
    rules = league.combine_rules(catalogue)
    sc = scores.dropna(subset=["score"])
    avg = scoring.average_scores(sc, rules).set_index("trust_code")
    types = trusts.set_index("trust_code")["trust_type"].reindex(avg.index)
    seg = methodology.segmentation
    unadj, _ = scoring.assign_segments(avg["average_score"], types, seg.rule, seg.thresholds)
    st = status.set_index("trust_code").reindex(avg.index)
    deficit = st["deficit"].fillna(False).astype(bool)
    support = st["deficit_support"].fillna(False).astype(bool)
    if not methodology.financial_override.enabled:
        deficit = support = deficit & False
    adj, _ = scoring.apply_financial_override(unadj, deficit, support)
    rk = scoring.rank_league(adj, avg["average_score"], types)
    return pd.DataFrame(
        {
            "trust_code": avg.index,
            "trust_type": types.to_numpy(),
            "average": avg["average_score"].to_numpy(float),
            "segment": adj.astype(float).to_numpy(),
            "rank": rk["rank"].astype(float).to_numpy(),
        }
    )


def _sampling_on(methodology: Methodology) -> bool:
    """Whether the league gains the calibrated columns of the sampling bootstrap (``uncertainty.method``)."""
    return methodology.uncertainty.method == "parametric_data"


def _observed_league(
    res: dict[str, metrics.MetricResult],
    inputs: QuarterInputs,
    quarter: str,
    methodology: Methodology,
    catalogue: Catalogue,
    calibrated: bool = True,
):
    """The published league table of the quarter, through the real code path: ``league._build`` (NHS England's
    method with its likely ranges) and, when the methodology asks for it, ``league.add_calibrated`` on the
    sampling data of ``league._quarter_data`` — the steps of :func:`leaguetables.nof.league.build_league` for the
    published (raw) table. Returns ``(table, quarter_data or None)``; ``calibrated=False`` skips the calibrated
    columns (the change scenarios need only the quarter data for the change test)."""
    results = pd.concat([r.table for r in res.values()], ignore_index=True)
    scores = league.scores_long(results, catalogue)
    table, _ = league._build(scores, "score", inputs, quarter, methodology, catalogue)
    qd = None
    if _sampling_on(methodology):
        qd = league._quarter_data(inputs, quarter, methodology, catalogue, "raw", metric_ids=set(results["metric_id"]))
        if calibrated:
            table = league.add_calibrated(table, qd, methodology)
    return table, qd


def _adjusted_segment(table: pd.DataFrame) -> np.ndarray:
    """Segment 1–4 after the financial override (segment 5 is a judgement, not simulated)."""
    un = table["unadjusted_segment"].astype(float).to_numpy()
    deficit = table["in_financial_deficit"].astype(bool).to_numpy()
    return np.where((un <= 2) & deficit, 3.0, un)


def _rank_columns(table: pd.DataFrame) -> tuple[str, str, list[str], str]:
    """The rank interval, segment-probability columns and their source in a league table: the calibrated
    (sampling) columns when the league has them, NHS England's likely range otherwise."""
    for lo, hi, p, label in (
        ("rank_interval_lower", "rank_interval_upper", "p_true_segment_", "sampling bootstrap"),
        ("sampling_rank_lower", "sampling_rank_upper", "sampling_p_segment_", "sampling bootstrap"),
    ):
        if lo in table.columns and hi in table.columns:
            ps = [f"{p}{k}" for k in range(1, 5)]
            if not all(c in table.columns for c in ps):
                ps = [f"p_segment_{k}" for k in range(1, 5)]
            return lo, hi, ps, label
    return "rank_lower", "rank_upper", [f"p_segment_{k}" for k in range(1, 5)], "NHS England likely range"


def _change_flags(
    prev_table: pd.DataFrame, table: pd.DataFrame, prev_qd, qd, methodology: Methodology
) -> tuple[pd.DataFrame, str]:
    """Per trust: whether the published change test calls the trust changed between the quarters.

    With the sampling bootstrap: :func:`leaguetables.statistics.sampling.change_test` of both quarters (as
    :func:`leaguetables.nof.league.build_league` calls it) read through :func:`leaguetables.nof.league.movement`
    (``change_beyond_chance``; ``segment_change_p_value`` below 1 − level for the segment test). Otherwise NHS
    England-style "rank beyond last quarter's likely range" (``beyond_likely_range``)."""
    u = methodology.uncertainty
    if qd is not None and prev_qd is not None and u.change_test:
        change = sampling.change_test(prev_qd, qd, u.replicates, u.seed + 1, u.level, u.check_replicates)
        mv = league.movement(table, change)
        seg_p = mv["segment_change_p_value"].astype(float) if "segment_change_p_value" in mv else np.nan
        return (
            pd.DataFrame(
                {
                    "trust_code": mv["trust_code"],
                    "flagged": mv["change_beyond_chance"].astype(bool),
                    "flagged_segment": (seg_p < 1 - u.level) if np.ndim(seg_p) else np.nan,
                    "segment_change": mv["segment_change"].astype(float),
                }
            ),
            "rank change beyond chance (joint simulation of both quarters)",
        )
    return _beyond_likely_range(prev_table, table), "rank beyond last quarter's likely range"


def _beyond_likely_range(prev_table: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """NHS England-style movement: a trust (in both quarters' leagues) is called changed when this quarter's rank
    lies outside last quarter's likely range of rank (``rank_lower``–``rank_upper``); segments 1–4 after the
    financial override. (:func:`leaguetables.nof.league.movement` reads the joint change test instead.)"""
    prev = prev_table.set_index("trust_code")
    now = table[table["trust_code"].isin(prev.index)].reset_index(drop=True)
    codes = now["trust_code"]
    rank = now["rank"].astype(float)
    lo, hi = (codes.map(prev[c].astype(float)) for c in ("rank_lower", "rank_upper"))
    prev_segment = pd.Series(_adjusted_segment(prev_table), index=prev_table["trust_code"].to_numpy())
    return pd.DataFrame(
        {
            "trust_code": codes,
            "flagged": ((rank < lo) | (rank > hi)).astype(bool),
            "flagged_segment": np.nan,
            "segment_change": _adjusted_segment(now) - codes.map(prev_segment).to_numpy(float),
        }
    )


# ----------------------------------------------------------------------------------------------- one replicate
@dataclass(frozen=True)
class Job:
    scenario: str
    replicate: int
    validation: Validation
    methodology: Methodology
    catalogue: Catalogue
    scenario_args: dict


def _oe_records(res, truth_q) -> list[dict]:
    out = []
    for mid, r in res.items():
        if r.metric.adjustment is None:
            continue
        t = r.table.merge(truth_q[truth_q["metric_id"] == mid][["trust_code", "true_oe"]], on="trust_code")
        for ttype, g in t.groupby("trust_type", sort=True):
            g = g[(g["status"] == OK) & g["oe"].notna() & g["oe_lower"].notna()]
            if g.empty:
                continue
            crude = g["value"] / g["type_value"]
            shrunk = {}
            if "oe_shrunk_lower" in g.columns and g["oe_shrunk_lower"].notna().all():
                shrunk = {
                    "covered_shrunk": int(
                        ((g["oe_shrunk_lower"] <= g["true_oe"]) & (g["true_oe"] <= g["oe_shrunk_upper"])).sum()
                    )
                }
            out.append(
                {
                    **shrunk,
                    "metric_id": mid,
                    "trust_type": ttype,
                    "n": len(g),
                    "covered": int(((g["oe_lower"] <= g["true_oe"]) & (g["true_oe"] <= g["oe_upper"])).sum()),
                    "below": int((g["true_oe"] < g["oe_lower"]).sum()),
                    "above": int((g["true_oe"] > g["oe_upper"]).sum()),
                    "corr_adjusted": float(np.corrcoef(g["oe"], g["true_oe"])[0, 1]) if len(g) > 2 else np.nan,
                    "corr_crude": float(np.corrcoef(crude, g["true_oe"])[0, 1]) if len(g) > 2 else np.nan,
                }
            )
    return out


def _funnel_records(res, planted: pd.DataFrame, levels=(0.95, 0.998)) -> tuple[list[dict], list[dict]]:
    rates, detect = [], []
    pl = planted[planted["kind"] == "outlier"] if len(planted) else planted
    for mid, r in res.items():
        for ttype, f in r.funnels.items():
            codes = r.table.loc[(r.table["trust_type"] == ttype) & (r.table["status"] == OK), "trust_code"]
            planted_here = pl[(pl["metric_id"] == mid) & pl["trust_code"].isin(set(codes))] if len(pl) else pl
            up = set(planted_here.loc[planted_here["sd_multiple"] > 0, "trust_code"]) if len(pl) else set()
            down = set(planted_here.loc[planted_here["sd_multiple"] < 0, "trust_code"]) if len(pl) else set()
            rec = {
                "metric_id": mid,
                "trust_type": ttype,
                "data_type": f.data_type,
                "method": f.method,
                "phi": float(f.phi),
                "tau2": float(f.tau2),
                "adjusted_used": bool(f.adjusted_used),
            }
            degenerate = bool(np.isinf(f.phi) or np.isinf(f.tau2))  # φ = inf: the MRSA failure of issue 10
            for lvl in levels:
                fl = f.flags(confidence=lvl)
                lim = f.limits(confidence=lvl)
                tag = "95" if lvl == 0.95 else "998"
                normal = [c for c in fl.index if c not in up | down]
                hi = fl.loc[normal, "high"].fillna(False).astype(bool)
                lo = fl.loc[normal, "low"].fillna(False).astype(bool)
                rec["n"] = len(normal)
                rec[f"high_{tag}"] = int(hi.sum())
                rec[f"low_{tag}"] = int(lo.sum())
                top = 1.0 if f.data_type == "PR" else np.inf  # rr scale: a proportion cannot exceed 1
                lower, upper = lim["lower"].to_numpy(float), lim["upper"].to_numpy(float)
                with np.errstate(invalid="ignore"):
                    can_flag = (lower > 0) | (upper < top)
                if not can_flag.any():  # limits that no value could ever fall outside
                    degenerate = True
                for code in sorted(up | down):
                    if code not in fl.index:
                        continue
                    want = "high" if code in up else "low"
                    detect.append(
                        {
                            "metric_id": mid,
                            "trust_type": ttype,
                            "data_type": f.data_type,
                            "trust_code": code,
                            "direction": want,
                            "level": lvl,
                            "detected": bool(pd.notna(fl.loc[code, want]) and bool(fl.loc[code, want])),
                        }
                    )
            rec["degenerate"] = bool(degenerate)
            rates.append(rec)
    return rates, detect


def _rc_funnel(methodology: Methodology, num: pd.Series, den: pd.Series):
    """A ratio-of-counts (RC) funnel by the methodology's funnel settings (the function and arguments
    ``metrics._funnels`` uses); no demo metric publishes an RC funnel, so the study makes one."""
    return funnel.funnel(num, den, "RC", **metrics.funnel_arguments(methodology.funnel))


def _rc_records(results: dict[str, dict], previous: str, quarter: str, methodology: Methodology) -> list[dict]:
    """RC funnels of each rate metric (Poisson counts): this quarter's events against last quarter's, when nothing
    but the noise differs between them (no-change scenario: the true ratio is 1 for every trust, no true outlier).
    Proportions are left out: a binomial numerator varies less than the Poisson variance RC assumes."""

    class _R:  # the shape _funnel_records reads
        def __init__(self, table, funnels):
            self.table, self.funnels = table, funnels

    res = {}
    for mid, r_now in results[quarter].items():
        m = r_now.metric
        if not m.funnel or m.statistic != "rate":  # RC's variance is Poisson's: counted events, not proportions
            continue
        now = r_now.table.set_index("trust_code")
        prev = results[previous][mid].table.set_index("trust_code")
        funnels = {}
        for ttype in m.trust_types:
            ok = now.index[(now["trust_type"] == ttype) & (now["status"] == OK)]
            ok = ok.intersection(prev.index[prev["status"] == OK])
            if len(ok) < 20:
                continue
            num, den = now.loc[ok, "numerator"].astype(float), prev.loc[ok, "numerator"].astype(float)
            if num.sum() <= 0 or den.sum() <= 0:
                continue
            try:
                funnels[ttype] = _rc_funnel(methodology, num, den)
            except ValueError:
                continue
        if funnels:
            res[mid] = _R(r_now.table, funnels)
    rates, _ = _funnel_records(res, pd.DataFrame())
    return rates


ORACLE_DRAWS = 200  # posterior draws of the Bayes oracle per replicate
_ORACLE_GRID = np.linspace(-5.0, 5.0, 401)  # trust effect in units of the metric's true between-trust SD


def _oracle_probabilities(
    qd, truth_q: pd.DataFrame, rng: np.random.Generator, draws: int = ORACLE_DRAWS
) -> pd.DataFrame:
    """P(segment) of the **Bayes oracle**: the best any method could publish from the quarter's data. It knows what
    no real method knows — each metric's true prior, ``u ~ N(0, sd²)`` around the true rate of an average trust
    with the same demographics (``demo.SPEC[...]["sd"]``, ``truth/values.true_expected``) — and draws every
    counted metric's true rate from its exact posterior (a 401-point grid), with figures reported as a single
    value held as reported, exactly as the published method holds them; each draw's league is recomputed by
    :func:`leaguetables.statistics.sampling.league_replicates`. Cross-metric correlation of trust quality is not used (as by
    the published method). Returns ``trust_code, oracle_rank_lower, oracle_rank_upper`` (its 95% rank interval by
    the published interval rule, :func:`leaguetables.statistics.sampling.summarise`) and ``o1..o4``."""
    tq = truth_q.set_index(["metric_id", "trust_code"])
    values = {}
    for md in qd.metrics:
        f = md.frame
        base = np.broadcast_to(f["value"].to_numpy(float), (draws, len(f))).copy()
        sim = md.simulated
        spec = demo.SPEC.get(md.metric.id, {})
        if sim.any() and "sd" in spec and md.kind in ("binomial", "poisson"):
            keys = pd.MultiIndex.from_arrays([[md.metric.id] * int(sim.sum()), f.loc[sim, "trust_code"]])
            e_rate = tq["true_expected"].reindex(keys).to_numpy(float) / f.loc[sim, "denominator"].to_numpy(float)
            eta0 = np.log(e_rate / (1 - e_rate)) if md.kind == "binomial" else np.log(e_rate)
            x = f.loc[sim, "numerator"].to_numpy(float)[:, None]
            n = f.loc[sim, "denominator"].to_numpy(float)[:, None]
            eta = eta0[:, None] + _ORACLE_GRID[None, :] * float(spec["sd"])
            if md.kind == "binomial":
                rate = 1 / (1 + np.exp(-eta))
                ll = x * np.log(rate) + (n - x) * np.log1p(-rate)
            else:
                rate = np.exp(eta)
                ll = x * np.log(n * rate) - n * rate
            lw = ll - 0.5 * _ORACLE_GRID[None, :] ** 2
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            cdf = np.cumsum(w, axis=1)
            cdf /= cdf[:, -1:]
            u = rng.random((len(x), draws))
            k = np.minimum(np.array([np.searchsorted(c, uu) for c, uu in zip(cdf, u)]), rate.shape[1] - 1)
            base[:, sim] = (np.take_along_axis(rate, k, axis=1) * md.metric.multiplier).T
        values[md.metric.id] = base
    reps = sampling.league_replicates(qd, values, check=1)
    summ = sampling.summarise(reps)
    out = pd.DataFrame(
        {
            "trust_code": reps.trusts,
            "oracle_rank_lower": summ["rank_interval_lower"].to_numpy(float),
            "oracle_rank_upper": summ["rank_interval_upper"].to_numpy(float),
        }
    )
    for k in range(1, 5):
        out[f"o{k}"] = summ[f"p_segment_{k}"].to_numpy(float)
    return out


def _league_records(table: pd.DataFrame, true_league: pd.DataFrame) -> pd.DataFrame:
    lo, hi, ps, source = _rank_columns(table)
    t = table.merge(
        true_league[["trust_code", "segment", "rank", "average"]].rename(
            columns={"segment": "true_segment", "rank": "true_rank", "average": "true_average"}
        ),
        on="trust_code",
    )
    out = pd.DataFrame(
        {
            "trust_code": t["trust_code"],
            "trust_type": t["trust_type"],
            "true_segment": t["true_segment"].to_numpy(float),
            "true_rank": t["true_rank"].to_numpy(float),
            "rank": t["rank"].astype(float).to_numpy(),
            "rank_lower": t[lo].astype(float).to_numpy(),
            "rank_upper": t[hi].astype(float).to_numpy(),
            "observed_segment": _adjusted_segment(t),
            "source": source,
        }
    )
    for k, c in enumerate(ps, start=1):
        out[f"p{k}"] = t[c].astype(float).to_numpy()
    return out


def _truth_methodology(methodology: Methodology) -> Methodology:
    """The methodology applied to the true values: the same, but each trust's own quarter (no pooling over
    quarters, no shrinkage), because the true values carry no noise to pool or shrink away."""
    p = methodology.productivity
    return methodology.model_copy(
        update={"productivity": p.model_copy(update={"pool_quarters": 1, "estimate": "observed"})}
    )


def _productivity_records(res, true_tables, catalogue, methodology, data, quarter) -> list[dict]:
    quarters = [q for q in demo.QUARTERS if quarter_key(q) <= quarter_key(quarter)][-INPUT_QUARTERS:]
    obs_rows = data["observations"]
    kw = {"observations": obs_rows[obs_rows["quarter"].isin(quarters)].reset_index(drop=True), "quarters": quarters}
    obs = productivity.opportunities(
        {k: r.table for k, r in res.items()}, catalogue, methodology, data["trusts"], data["demographics"], **kw
    )
    tru = productivity.opportunities(
        true_tables, catalogue, _truth_methodology(methodology), data["trusts"], data["demographics"], **kw
    )
    out = []
    for mid in sorted(set(obs["metric_id"])):
        out.append(
            {
                "metric_id": mid,
                "observed": float(obs.loc[obs["metric_id"] == mid, "opportunity_annual"].sum()),
                "truth": float(tru.loc[tru["metric_id"] == mid, "opportunity_annual"].sum()),
            }
        )
    return out


_TRUTH: dict[tuple, tuple[dict[str, pd.DataFrame], pd.DataFrame]] = {}


def _truth(job: Job, quarter: str, res: dict, truth: pd.DataFrame, inputs: QuarterInputs, data: dict):
    """The true metric tables and the true league of a scenario's quarter.

    The truth, the status flags and the missing figures are the same in every replicate of a scenario, so they are
    computed once per process (keyed by the scenario, its arguments and the quarter)."""
    key = (job.scenario, repr(sorted(job.scenario_args.items())), job.validation.seed, quarter)
    if key not in _TRUTH:
        tq = truth[truth["quarter"] == quarter]
        tables = {mid: _truth_table(r, tq[tq["metric_id"] == mid]) for mid, r in res.items()}
        scores = league.scores_long(pd.concat(tables.values(), ignore_index=True), job.catalogue)
        status = inputs.status[inputs.status["quarter"] == quarter]
        _TRUTH[key] = (tables, _segments(scores, data["trusts"], status, job.methodology, job.catalogue))
    return _TRUTH[key]


def run_replicate(job: Job) -> dict[str, pd.DataFrame]:
    """Simulate one replicate data set of a scenario and measure it; returns small tables of counts."""
    t0, c0 = time.perf_counter(), time.process_time()
    v, meth, cat = job.validation, job.methodology, job.catalogue
    data = demo.generate(
        truth_seed(v, job.scenario, job.replicate),
        noise_seed=noise_seed(v, job.scenario, job.replicate),
        **job.scenario_args,
    )
    truth = data["truth/values"]
    planted = data["truth/planted"]
    out: dict[str, list] = {}
    q = v.quarter
    truth_q = truth[truth["quarter"] == q]
    if job.scenario in ("standard", "overadjust", "fresh_truth"):
        inputs = _inputs(data, q)
        only = None if job.scenario == "standard" else {m.id for m in cat.metrics if m.adjustment is not None}
        res = _results(inputs, q, cat, meth, only)
        out["oe"] = _oe_records(res, truth_q)
        if job.scenario == "standard":
            rates, _ = _funnel_records(res, planted)
            out["funnel"] = rates
            true_tables, true_league = _truth(job, q, res, truth, inputs, data)
            table, qd = _observed_league(res, inputs, q, meth, cat)
            true_league = true_league[true_league["trust_code"].isin(set(table["trust_code"]))]
            records = _league_records(table, true_league)
            if qd is not None:
                rng = np.random.default_rng([int(v.seed), 9, job.replicate])
                records = records.merge(_oracle_probabilities(qd, truth_q, rng), on="trust_code", how="left")
            out["league"] = records
            out["productivity"] = _productivity_records(res, true_tables, cat, meth, data, q)
    elif job.scenario in OUTLIER_SCALE:
        inputs = _inputs(data, q)
        res = _results(inputs, q, cat, meth, {m.id for m in cat.metrics if m.funnel})
        out["funnel"], out["detection"] = _funnel_records(res, planted)
    else:  # no_change, change
        p = v.previous
        tables, qds, truths, all_res = {}, {}, {}, {}
        for quarter in (p, q):
            qin = _inputs(data, quarter)
            res = all_res[quarter] = _results(qin, quarter, cat, meth)
            tables[quarter], qds[quarter] = _observed_league(res, qin, quarter, meth, cat, calibrated=False)
            truths[quarter] = _truth(job, quarter, res, truth, qin, data)[1].set_index("trust_code")
        flags, test = _change_flags(tables[p], tables[q], qds[p], qds[q], meth)
        moved = planted[planted["kind"] == "change"].set_index("trust_code")["sd_multiple"] if len(planted) else {}
        flags["trust_type"] = flags["trust_code"].map(data["trusts"].set_index("trust_code")["trust_type"])
        flags["true_change_sd"] = flags["trust_code"].map(moved).fillna(0.0).astype(float) if len(planted) else 0.0
        flags["true_segment_change"] = (
            flags["trust_code"].map(truths[q]["segment"]) - flags["trust_code"].map(truths[p]["segment"])
        ).astype(float)
        flags["test"] = test
        out["change"] = flags
        if job.scenario == "no_change":
            out["funnel"] = _rc_records(all_res, p, q, meth)
    frames = {k: (v_ if isinstance(v_, pd.DataFrame) else pd.DataFrame(v_)) for k, v_ in out.items()}
    for k in frames:
        frames[k].insert(0, "replicate", job.replicate)
        frames[k].insert(0, "scenario", job.scenario)
    frames["timing"] = pd.DataFrame(
        [
            {
                "scenario": job.scenario,
                "replicate": job.replicate,
                "seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0,
            }
        ]
    )
    return frames


def _init_worker() -> None:
    _skip_unmeasured()
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def funnel_quarters(data: dict, v: Validation, methodology: Methodology, catalogue: Catalogue) -> dict[str, int]:
    """The quarters each funnel metric's funnel pools in the study's quarter of ``data`` (the real code path:
    the rare-event rule of the methodology), the most over its trust types."""
    _skip_unmeasured()
    try:
        res = _results(
            _inputs(data, v.quarter), v.quarter, catalogue, methodology, {m.id for m in catalogue.metrics if m.funnel}
        )
    finally:
        _restore()
    return {mid: max(int(f.periods) for f in r.funnels.values()) for mid, r in res.items() if r.funnels}


def study_methodology(methodology: Methodology, v: Validation) -> Methodology:
    """The methodology as the study runs it: the same, with the bootstrap replicates of the study's settings
    (``bootstrap_replicates`` for NHS England's likely ranges, ``sampling_replicates`` for the sampling bootstrap
    of the data) where they are set."""
    upd: dict[str, object] = {}
    if v.bootstrap_replicates:
        upd["bootstrap"] = methodology.bootstrap.model_copy(update={"replicates": v.bootstrap_replicates})
    u = methodology.uncertainty
    if v.sampling_replicates:
        upd["uncertainty"] = u.model_copy(update={"replicates": v.sampling_replicates})
    return methodology.model_copy(update=upd) if upd else methodology


def run_study(
    methodology: Methodology,
    catalogue: Catalogue,
    validation: Validation | None = None,
    scenarios=SCENARIOS,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Run every replicate of the scenarios (in ``workers`` processes) and stack their tables, sorted by
    scenario and replicate (the same figures whatever the scheduling)."""
    v = _study(methodology, validation)
    meth = study_methodology(methodology, v)
    base = demo.generate(v.seed, noise_seed=0)
    pooled = funnel_quarters(base, v, meth, catalogue) if "outliers" in scenarios else {}
    jobs = []
    for s in scenarios:
        args = scenario_arguments(s, v, base["trusts"], catalogue, pooled)
        jobs += [Job(s, r, v, meth, catalogue, args) for r in range(_replicates(v, s))]
    # the most expensive scenarios first, so that the workers finish together
    cost = {
        "no_change": 0,
        "change": 1,
        "standard": 2,
        "outliers_between": 3,
        "outliers": 4,
        "overadjust": 5,
        "fresh_truth": 6,
    }
    jobs.sort(key=lambda j: (cost[j.scenario], j.replicate))
    workers = int(workers or v.workers)
    frames: dict[str, list[pd.DataFrame]] = {}
    done = 0
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) if workers > 1 else None
    if pool is None:
        _skip_unmeasured()  # restored below: the in-process run leaves the module as it found it
    try:
        it = pool.map(run_replicate, jobs, chunksize=2) if pool is not None else map(run_replicate, jobs)
        for res in it:
            for k, df in res.items():
                frames.setdefault(k, []).append(df)
            done += 1
            if progress and done % 25 == 0:
                print(f"  {done} of {len(jobs)} replicates", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
        else:
            _restore()
    out = {}
    for k, dfs in frames.items():
        dfs = [d for d in dfs if not d.empty]
        df = pd.concat(dfs, ignore_index=True) if dfs else pd.DataFrame()
        if not df.empty:
            df = df.sort_values(["scenario", "replicate"], kind="mergesort").reset_index(drop=True)
        out[k] = df
    return out


# ------------------------------------------------------------------------------------------------ summaries
def _jackknife(num: pd.Series, den: pd.Series) -> tuple[float, float]:
    """Ratio estimate Σnum/Σden over replicates and its delete-one-replicate jackknife standard error.

    ``num`` and ``den`` are per-replicate sums (index: replicate)."""
    num, den = num.astype(float), den.astype(float)
    tn, td = num.sum(), den.sum()
    est = tn / td if td else float("nan")
    r = len(num)
    if r < 2 or not td:
        return est, float("nan")
    loo = (tn - num) / (td - den)
    return float(est), float(np.sqrt((r - 1) / r * np.sum((loo - loo.mean()) ** 2)))


def _rate(df: pd.DataFrame, num: str, den: str) -> tuple[float, float, int]:
    g = df.groupby("replicate")
    est, se = _jackknife(g[num].sum(), g[den].sum())
    return est, se, int(df[den].sum())


def _check(value: float, low: float | None = None, high: float | None = None) -> bool | None:
    if value is None or not np.isfinite(value):
        return None
    return bool((low is None or value >= low) and (high is None or value <= high))


def _pct(x: float, dp: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{dp}f}%"


TYPE_NAME = {t: p.lower() for t, p in TRUST_TYPE_PLURAL.items()}


def _oe_tables(raw: pd.DataFrame, cat: Catalogue, tg, rows: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    if raw is None or raw.empty:
        return pd.DataFrame(), pd.DataFrame()
    basis = "fresh_truth" if (raw["scenario"] == "fresh_truth").any() else "standard"
    std = raw[raw["scenario"] == basis]
    fixed = raw[raw["scenario"] == "standard"]
    cov = []
    for (mid, ttype), g in std.groupby(["metric_id", "trust_type"], sort=True):
        est, se, n = _rate(g, "covered", "n")
        f = fixed[(fixed["metric_id"] == mid) & (fixed["trust_type"] == ttype)]
        given_one = _rate(f, "covered", "n")[0] if len(f) else np.nan
        below, _, _ = _rate(g, "below", "n")
        above, _, _ = _rate(g, "above", "n")
        judged = ttype in ("acute", "mental_health_community")
        ok = _check(est, tg.oe_coverage.low, tg.oe_coverage.high) if judged else None
        shrunk = (
            _rate(g, "covered_shrunk", "n")[0]
            if "covered_shrunk" in g and g["covered_shrunk"].notna().all()
            else np.nan
        )
        cov.append(
            {
                "metric_id": mid,
                "metric": cat.metric(mid).name,
                "trust_type": ttype,
                "trust_years": n,
                "coverage": est,
                "mcse": se,
                "coverage_shrunken_interval": shrunk,
                "truths": "a new truth in every replicate" if basis == "fresh_truth" else "one fixed truth",
                "coverage_given_one_truth": given_one,
                "true_below_interval": below,
                "true_above_interval": above,
                "target_low": tg.oe_coverage.low,
                "target_high": tg.oe_coverage.high,
                "judged": judged,
                "pass": ok,
            }
        )
        rows.append(
            {
                "section": "oe",
                "figure": f"O/E 95% interval coverage: {cat.metric(mid).name}",
                "scope": TYPE_NAME[ttype],
                "measured": est,
                "mcse": se,
                "target": (
                    f"{_pct(tg.oe_coverage.low, 0)} to {_pct(tg.oe_coverage.high, 0)}"
                    if judged
                    else "stated (10 trusts)"
                ),
                "pass": ok,
                "sentence": f"The 95% O/E interval contained the true O/E for {_pct(est)} of "
                f"{TYPE_NAME[ttype]} (true value below the interval {_pct(below)}, above it "
                f"{_pct(above)})"
                + (
                    f", over data sets each with new trusts and trust effects; given the one fixed "
                    f"truth of the other scenarios it was {_pct(given_one)}, because the average "
                    "trust of one set of trusts is itself estimated"
                    if basis == "fresh_truth" and not np.isnan(given_one)
                    else ""
                )
                + ".",
            }
        )
    over = []
    for (sc, mid, ttype), g in raw.groupby(["scenario", "metric_id", "trust_type"], sort=True):
        over.append(
            {
                "scenario": sc,
                "metric_id": mid,
                "metric": cat.metric(mid).name,
                "trust_type": ttype,
                "replicates": int(g["replicate"].nunique()),
                "corr_adjusted_oe_true_oe": float(g["corr_adjusted"].mean()),
                "corr_adjusted_mcse": float(g["corr_adjusted"].std(ddof=1) / np.sqrt(len(g))),
                "corr_crude_ratio_true_oe": float(g["corr_crude"].mean()),
                "corr_crude_mcse": float(g["corr_crude"].std(ddof=1) / np.sqrt(len(g))),
            }
        )
    return pd.DataFrame(cov), pd.DataFrame(over)


def _funnel_tables(raw: pd.DataFrame, det: pd.DataFrame, tg, rows: list):
    """The funnel sections of the study: false-flag rates by data type and by metric, degenerate funnels and
    detection of planted outliers (tables, and the summary ``rows`` they add)."""
    by_type, by_metric = _false_flag_tables(raw, tg, rows)
    degenerate = _degenerate_table(raw, rows)
    return by_type, by_metric, _detection_table(det, tg, rows), degenerate


def _false_flag_tables(raw: pd.DataFrame, tg, rows: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """False flags with no true outliers: the standard scenario (SR and PR funnels of the published metrics) and,
    for RC, this quarter's counts against last quarter's under no change."""
    by_type: list[dict] = []
    by_metric: list[dict] = []
    if raw.empty:
        return pd.DataFrame(by_type), pd.DataFrame(by_metric)
    std = raw[(raw["scenario"] == "standard") | ((raw["scenario"] == "no_change") & (raw["data_type"] == "RC"))]
    if std.empty:
        return pd.DataFrame(by_type), pd.DataFrame(by_metric)
    std = std.assign(flag_95=std["high_95"] + std["low_95"], flag_998=std["high_998"] + std["low_998"])
    for dt in ("SR", "PR", "RC"):
        g = std[std["data_type"] == dt]
        by_type.append(_false_flag_type(dt, g, tg, rows) if not g.empty else _unmeasured_type(dt, rows))
    for (mid, ttype, dt), g in std.groupby(["metric_id", "trust_type", "data_type"], sort=True):
        r95, se95, n = _rate(g, "flag_95", "n")
        r998, se998, _ = _rate(g, "flag_998", "n")
        by_metric.append(
            {
                "metric_id": mid,
                "trust_type": ttype,
                "data_type": dt,
                "method": g["method"].iloc[0],
                "trust_results": n,
                "false_flag_95": r95,
                "mcse_95": se95,
                "false_flag_998": r998,
                "mcse_998": se998,
                "median_phi": float(g["phi"].median()),
                "adjusted_limits_share": float(g["adjusted_used"].mean()),
                "degenerate_share": float(g["degenerate"].mean()),
            }
        )
    return pd.DataFrame(by_type), pd.DataFrame(by_metric)


def _unmeasured_type(dt: str, rows: list) -> dict:
    """A data type with no funnel in the scenarios run: its row of the table, empty, and the summary rows saying so."""
    row = {
        "data_type": dt,
        "funnels": 0,
        "trust_results": 0,
        "false_flag_95": np.nan,
        "mcse_95": np.nan,
        "false_flag_998": np.nan,
        "mcse_998": np.nan,
        "pass_95": None,
        "pass_998": None,
        "metrics": "",
    }
    for lvl in ("95", "99.8"):
        rows.append(
            {
                "section": "funnel",
                "figure": f"Funnel false-flag rate at {lvl}%",
                "scope": dt,
                "measured": np.nan,
                "mcse": np.nan,
                "target": "",
                "pass": None,
                "sentence": f"Not measured: no {dt} funnel without true outliers in the scenarios run.",
            }
        )
    return row


def _false_flag_type(dt: str, g: pd.DataFrame, tg, rows: list) -> dict:
    """One data type's false-flag rates at 95% and 99.8% with their Monte Carlo SEs, judged against the targets."""
    r95, se95, n = _rate(g, "flag_95", "n")
    r998, se998, _ = _rate(g, "flag_998", "n")
    p95 = _check(r95, tg.funnel_false_flag_95.low, tg.funnel_false_flag_95.high)
    p998 = _check(r998, None, tg.funnel_false_flag_998_max)
    row = {
        "data_type": dt,
        "funnels": int(len(g)),
        "trust_results": n,
        "false_flag_95": r95,
        "mcse_95": se95,
        "false_flag_998": r998,
        "mcse_998": se998,
        "pass_95": p95,
        "pass_998": p998,
        "metrics": ", ".join(sorted(g["metric_id"].unique())),
    }
    rows.append(
        {
            "section": "funnel",
            "figure": "Funnel false-flag rate at 95%",
            "scope": dt,
            "measured": r95,
            "mcse": se95,
            "target": f"{_pct(tg.funnel_false_flag_95.low)} to {_pct(tg.funnel_false_flag_95.high)}",
            "pass": p95,
            "sentence": f"With no true outliers, {_pct(r95)} of trust results on {dt} funnels fell "
            f"outside the 95% limits (about 5% is what the limits promise)"
            + (
                " — RC: this quarter's count against last quarter's, with no change between them, tested as "
                "this quarter's share of the two quarters' total (no demo metric publishes an RC funnel)."
                if dt == "RC"
                else "."
            ),
        }
    )
    rows.append(
        {
            "section": "funnel",
            "figure": "Funnel false-flag rate at 99.8%",
            "scope": dt,
            "measured": r998,
            "mcse": se998,
            "target": f"at most {_pct(tg.funnel_false_flag_998_max)}",
            "pass": p998,
            "sentence": f"With no true outliers, {_pct(r998, 2)} of trust results on {dt} funnels fell "
            f"outside the 99.8% limits (about 0.2% is what the limits promise).",
        }
    )
    return row


def _degenerate_table(raw: pd.DataFrame, rows: list) -> pd.DataFrame:
    """Funnels with φ infinite or limits that cannot flag, in every scenario."""
    degenerate: list[dict] = []
    if raw.empty:
        return pd.DataFrame(degenerate)
    for (sc, mid, ttype), g in raw.groupby(["scenario", "metric_id", "trust_type"], sort=True):
        degenerate.append(
            {
                "scenario": sc,
                "metric_id": mid,
                "trust_type": ttype,
                "funnels": int(len(g)),
                "degenerate": int(g["degenerate"].sum()),
                "phi_infinite": int((~np.isfinite(g["phi"])).sum()),
            }
        )
    deg = pd.DataFrame(degenerate)
    total = int(deg["degenerate"].sum())
    rows.append(
        {
            "section": "funnel",
            "figure": "Degenerate funnels (φ infinite, or limits that cannot flag)",
            "scope": "all funnels, all scenarios",
            "measured": float(total),
            "mcse": np.nan,
            "target": "none",
            "pass": total == 0,
            "sentence": f"{total} of {int(deg['funnels'].sum())} funnels computed in the study had an "
            f"infinite overdispersion ratio or limits that could not flag.",
        }
    )
    return pd.DataFrame(degenerate)


def _detection_table(det: pd.DataFrame, tg, rows: list) -> pd.DataFrame:
    """Detection of planted outliers, by data type (judged at 95% for the funnel-scale scenario) and by metric."""
    detection = []
    if det is not None and not det.empty:
        det = det.assign(hit=det["detected"].astype(int), one=1)
        for scenario, scale in OUTLIER_SCALE.items():
            target = scenario == "outliers"  # the target: 3 SD on the funnel's own scale
            for lvl in (0.95, 0.998):
                d = det[(det["level"] == lvl) & (det["scenario"] == scenario)]
                for dt, g in d.groupby("data_type", sort=True):
                    est, se, n = _rate(g, "hit", "one")
                    ok = _check(est, tg.funnel_detection_min, None) if (lvl == 0.95 and target) else None
                    detection.append(
                        {
                            "scale": scale,
                            "data_type": dt,
                            "metric_id": "(all)",
                            "level": lvl,
                            "planted": n,
                            "detection": est,
                            "mcse": se,
                            "pass": ok,
                        }
                    )
                    if lvl == 0.95:
                        rows.append(_detection_row(scale, dt, est, se, ok, tg, target))
                for (mid, dt), g in d.groupby(["metric_id", "data_type"], sort=True):
                    est, se, n = _rate(g, "hit", "one")
                    detection.append(
                        {
                            "scale": scale,
                            "data_type": dt,
                            "metric_id": mid,
                            "level": lvl,
                            "planted": n,
                            "detection": est,
                            "mcse": se,
                            "pass": None,
                        }
                    )
    return pd.DataFrame(detection)


def _detection_row(scale: str, dt: str, est: float, se: float, ok, tg, target: bool) -> dict:
    if scale == "funnel":
        figure = "Detection of planted outliers at 3 funnel SDs (95% limits)"
        what = (
            "Trusts given a true effect 3 SDs of their own funnel (between-trust and sampling variation at "
            "their size) from the target"
        )
    else:
        figure = "Detection of planted outliers at 3 between-trust SDs (95% limits; context)"
        what = (
            "Trusts given a true effect 3 between-trust SDs from the average trust (for rare or noisy metrics "
            "much smaller than their sampling variation, so no funnel can find most of them)"
        )
    return {
        "section": "funnel",
        "figure": figure,
        "scope": dt,
        "measured": est,
        "mcse": se,
        "target": f"at least {_pct(tg.funnel_detection_min, 0)}" if target else "none (context)",
        "pass": ok,
        "sentence": f"{what} were flagged on the correct side of the 95% limits {_pct(est)} of the time on "
        f"{dt} funnels.",
    }


def _league_tables(lg: pd.DataFrame, tg, rows: list):
    """The rank and segment sections of the study: rank-interval coverage, Brier scores against the oracle and the
    reliability of P(segment) (tables, and the summary ``rows`` they add)."""
    if lg is None or lg.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    lg = lg.copy()
    lg["covered"] = ((lg["rank_lower"] <= lg["true_rank"]) & (lg["true_rank"] <= lg["rank_upper"])).astype(int)
    has_oracle = "oracle_rank_lower" in lg.columns and lg["oracle_rank_lower"].notna().all()
    if has_oracle:
        lg["covered_oracle"] = (
            (lg["oracle_rank_lower"] <= lg["true_rank"]) & (lg["true_rank"] <= lg["oracle_rank_upper"])
        ).astype(int)
    lg["one"] = 1
    lg["width"] = lg["rank_upper"] - lg["rank_lower"]
    cov = _rank_coverage(lg, has_oracle, tg, rows)
    brier, p, y = _brier_table(lg, tg, rows)
    return cov, brier, _reliability_table(p, y, lg["replicate"].to_numpy(), tg, rows)


def _rank_coverage(lg: pd.DataFrame, has_oracle: bool, tg, rows: list) -> pd.DataFrame:
    """How often the published rank interval (and the oracle's, by the same rule) held the true rank."""
    cov = []
    source = lg["source"].iloc[0]
    for ttype, g in [("all", lg)] + list(lg.groupby("trust_type", sort=True)):
        est, se, n = _rate(g, "covered", "one")
        ok = _check(est, tg.rank_coverage.low, tg.rank_coverage.high) if ttype == "all" else None
        cov.append(
            {
                "trust_type": ttype,
                "trust_results": n,
                "coverage": est,
                "mcse": se,
                "mean_interval_width": float(g["width"].mean()),
                "oracle_coverage": _rate(g, "covered_oracle", "one")[0] if has_oracle else np.nan,
                "source": source,
                "pass": ok,
            }
        )
    all_cov = cov[0]
    rows.append(
        {
            "section": "ranks",
            "figure": "Rank-interval coverage of the true rank",
            "scope": "all trust types",
            "measured": all_cov["coverage"],
            "mcse": all_cov["mcse"],
            "target": f"{_pct(tg.rank_coverage.low, 0)} to {_pct(tg.rank_coverage.high, 0)}",
            "pass": all_cov["pass"],
            "sentence": f"The published 95% rank interval ({source}) contained the trust's true rank "
            f"{_pct(all_cov['coverage'])} of the time; the intervals were "
            f"{all_cov['mean_interval_width']:.1f} places wide on average"
            + (
                f". The Bayes oracle's interval, built by the same rule, covered "
                f"{_pct(all_cov['oracle_coverage'])}: whole-number ranks, tied at 2-decimal "
                "averages, make a percentile interval of ranks cover more than its nominal level"
                if has_oracle
                else ""
            )
            + ".",
        }
    )
    return pd.DataFrame(cov)


def _brier_table(lg: pd.DataFrame, tg, rows: list) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Brier scores of P(segment) against the truth, the oracle's and their ratio (jackknife MCSEs over
    replicates); returns the table and the probabilities and outcomes (trust-replicate × segment)."""
    source = lg["source"].iloc[0]
    # Brier score and the oracle (frequencies of the observed segment given the truth, leave-one-replicate-out)
    p = lg[[f"p{k}" for k in range(1, 5)]].to_numpy(float)
    y = np.stack([(lg["true_segment"].to_numpy() == k) for k in range(1, 5)], axis=1).astype(float)
    obs = np.stack([(lg["observed_segment"].to_numpy() == k) for k in range(1, 5)], axis=1).astype(float)
    counts = pd.DataFrame(obs, columns=range(4)).groupby(lg["trust_code"].to_numpy()).transform("sum").to_numpy()
    reps = lg.groupby("trust_code")["replicate"].transform("count").to_numpy(float)
    frequency = (counts - obs) / np.maximum(reps - 1, 1)[:, None]
    bayes = "o1" in lg.columns and lg[[f"o{k}" for k in range(1, 5)]].notna().all().all()
    # the oracle: the Bayes posterior given the true priors (the best any method could publish from the data);
    # without it, the frequencies of the published segment given the truth (leave-one-replicate-out)
    oracle = lg[[f"o{k}" for k in range(1, 5)]].to_numpy(float) if bayes else frequency
    lg["brier"] = ((p - y) ** 2).sum(axis=1)
    lg["brier_oracle"] = ((oracle - y) ** 2).sum(axis=1)
    lg["brier_published_frequency"] = ((frequency - y) ** 2).sum(axis=1)
    brier = []
    for ttype, g in [("all", lg)] + list(lg.groupby("trust_type", sort=True)):
        gr = g.groupby("replicate")
        b, b_se = _jackknife(gr["brier"].sum(), gr["one"].sum())
        o, o_se = _jackknife(gr["brier_oracle"].sum(), gr["one"].sum())
        ratio, ratio_se = _jackknife(gr["brier"].sum(), gr["brier_oracle"].sum())
        fq, _ = _jackknife(gr["brier_published_frequency"].sum(), gr["one"].sum())
        ok = _check(ratio, None, tg.brier_ratio_max) if ttype == "all" else None
        brier.append(
            {
                "trust_type": ttype,
                "trust_results": int(len(g)),
                "brier": b,
                "brier_mcse": b_se,
                "brier_oracle": o,
                "brier_oracle_mcse": o_se,
                "ratio": ratio,
                "ratio_mcse": ratio_se,
                "oracle": "Bayes posterior given the true priors"
                if bayes
                else "frequency of the published segment given the truth",
                "brier_published_segment_frequency": fq,
                "source": source,
                "pass": ok,
            }
        )
    a = brier[0]
    rows.append(
        {
            "section": "ranks",
            "figure": "P(segment) Brier score relative to the oracle's",
            "scope": "all trust types",
            "measured": a["ratio"],
            "mcse": a["ratio_mcse"],
            "target": f"at most {tg.brier_ratio_max:.2f}",
            "pass": a["pass"],
            "sentence": f"The published segment probabilities scored a Brier score of {a['brier']:.3f} against "
            f"the true segment; "
            + (
                "a Bayes oracle — the posterior given each metric's true spread of trust effects, "
                "the best any method could publish from the same data — scored "
                if bayes
                else "an oracle that knows the truth and only the noise is unknown scored "
            )
            + f"{a['brier_oracle']:.3f} (ratio {a['ratio']:.2f}; lower is better, 0 is perfect). "
            f"Predicting with the frequency of the published segment given the truth (which no "
            f"method can know) would score {a['brier_published_segment_frequency']:.3f}.",
        }
    )
    return pd.DataFrame(brier), p, y


def _reliability_table(p: np.ndarray, y: np.ndarray, replicate: np.ndarray, tg, rows: list) -> pd.DataFrame:
    """Reliability of P(segment): binned probabilities against the share in that segment, the linear slope
    (jackknife MCSE over replicates) and the logistic calibration slope."""
    # reliability: every (trust, replicate, segment) probability against whether that segment is the true one
    pf, yf = p.ravel(), y.ravel()
    rep = np.repeat(replicate, 4)
    edges = np.array([0, 0.001, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.999, 1.0000001])
    b_idx = np.clip(np.searchsorted(edges, pf, side="right") - 1, 0, len(edges) - 2)
    rel = []
    for j in range(len(edges) - 1):
        m = b_idx == j
        if not m.any():
            continue
        rel.append(
            {
                "bin_low": edges[j],
                "bin_high": min(edges[j + 1], 1.0),
                "n": int(m.sum()),
                "mean_predicted": float(pf[m].mean()),
                "observed_frequency": float(yf[m].mean()),
            }
        )

    def slope(idx) -> float:
        x, yy = pf[idx], yf[idx]
        vx = np.var(x)
        return float(np.cov(x, yy, bias=True)[0, 1] / vx) if vx > 0 else float("nan")

    est = slope(np.ones(len(pf), dtype=bool))
    reps_u = np.unique(rep)
    loo = np.array([slope(rep != r) for r in reps_u]) if len(reps_u) > 1 else np.array([np.nan])
    se = (
        float(np.sqrt((len(reps_u) - 1) / len(reps_u) * np.sum((loo - loo.mean()) ** 2)))
        if len(reps_u) > 1
        else float("nan")
    )
    ok = _check(est, tg.reliability_slope.low, tg.reliability_slope.high)
    rows.append(
        {
            "section": "ranks",
            "figure": "Reliability slope of P(segment)",
            "scope": "all trust types",
            "measured": est,
            "mcse": se,
            "target": f"{tg.reliability_slope.low:g} to {tg.reliability_slope.high:g}",
            "pass": ok,
            "sentence": f"Regressing whether a segment was the true one on its published probability gave a "
            f"slope of {est:.2f} (1 is perfectly calibrated; below 1 the probabilities are "
            f"over-confident, above 1 under-confident).",
        }
    )
    # the logistic calibration slope (Cox 1958): logit P(true) = a + b·logit(p); b < 1 over-confident, > 1
    # under-confident (probabilities of exactly 0 or 1 clipped to 0.001 and 0.999)
    lp = np.log(np.clip(pf, 1e-3, 1 - 1e-3) / (1 - np.clip(pf, 1e-3, 1 - 1e-3)))
    try:
        cox = float(GLM(yf, add_constant(lp), family=families.Binomial()).fit().params[1])
    except Exception:  # noqa: BLE001 — perfect separation: no finite slope
        cox = float("nan")
    rows.append(
        {
            "section": "ranks",
            "figure": "Logistic calibration slope of P(segment)",
            "scope": "all trust types",
            "measured": cox,
            "mcse": np.nan,
            "target": "shown (1 is calibrated)",
            "pass": None,
            "sentence": f"On the log-odds scale the slope was {cox:.2f} (below 1 the probabilities are too "
            f"extreme, above 1 too cautious); this is more sensitive than the linear slope to "
            f"small probabilities that should have been near 0.",
        }
    )
    relt = pd.DataFrame(rel)
    relt["slope"] = est
    relt["slope_mcse"] = se
    relt["logistic_calibration_slope"] = cox
    return relt


def _change_tables(ch: pd.DataFrame, tg, rows: list) -> pd.DataFrame:
    if ch is None or ch.empty:
        return pd.DataFrame()
    ch = ch.assign(hit=ch["flagged"].astype(int), one=1)
    test = ch["test"].iloc[0]
    out = []
    null = ch[ch["scenario"] == "no_change"]
    alt = ch[(ch["scenario"] == "change") & (ch["true_change_sd"] != 0)]
    for label, df, kind in (("size (no change)", null, "size"), ("power (2-SD change)", alt, "power")):
        for ttype, g in [("all", df)] + list(df.groupby("trust_type", sort=True)):
            if g.empty:
                continue
            est, se, n = _rate(g, "hit", "one")
            if kind == "size":
                ok = _check(est, tg.change_size.low, tg.change_size.high) if ttype == "all" else None
            else:
                ok = _check(est, tg.change_power_min, None) if ttype == "all" else None
            seg = g["flagged_segment"].astype(float) if "flagged_segment" in g else pd.Series(np.nan, index=g.index)
            out.append(
                {
                    "measure": label,
                    "trust_type": ttype,
                    "trust_results": n,
                    "rate": est,
                    "mcse": se,
                    "segment_test_rate": float(seg.mean()) if seg.notna().any() else np.nan,
                    "test": test,
                    "pass": ok,
                    "true_segment_changed": float((g["true_segment_change"].fillna(0) != 0).mean()),
                }
            )
    size = next(r for r in out if r["measure"].startswith("size") and r["trust_type"] == "all")
    rows.append(
        {
            "section": "change",
            "figure": "Change test: size under no change",
            "scope": "all trust types",
            "measured": size["rate"],
            "mcse": size["mcse"],
            "target": f"{_pct(tg.change_size.low, 0)} to {_pct(tg.change_size.high, 0)}",
            "pass": size["pass"],
            "sentence": f"When nothing but the sampling noise differed between the two quarters, the change "
            f"test ({test}) called {_pct(size['rate'])} of trusts changed.",
        }
    )
    power = [r for r in out if r["measure"].startswith("power") and r["trust_type"] == "all"]
    if power:
        pw = power[0]
        rows.append(
            {
                "section": "change",
                "figure": "Change test: power at a 2-SD change",
                "scope": "all trust types",
                "measured": pw["rate"],
                "mcse": pw["mcse"],
                "target": f"at least {_pct(tg.change_power_min, 0)}",
                "pass": pw["pass"],
                "sentence": f"Trusts whose latent quality truly moved by 2 SD between the quarters were called "
                f"changed {_pct(pw['rate'])} of the time.",
            }
        )
    return pd.DataFrame(out)


def _productivity_table(pr: pd.DataFrame, cat: Catalogue, tg, rows: list) -> pd.DataFrame:
    if pr is None or pr.empty:
        return pd.DataFrame()
    out = []
    groups = [(mid, g) for mid, g in pr.groupby("metric_id", sort=True)]
    total = pr.groupby("replicate")[["observed", "truth"]].sum().reset_index().assign(metric_id="(all)")
    for mid, g in groups + [("(all)", total)]:
        truth = float(g["truth"].mean())
        obs = g["observed"].to_numpy(float)
        bias = obs.mean() / truth - 1 if truth else float("nan")
        se = obs.std(ddof=1) / np.sqrt(len(obs)) / truth if truth and len(obs) > 1 else float("nan")
        ok = _check(abs(bias), None, tg.productivity_bias_max) if mid == "(all)" else None
        out.append(
            {
                "metric_id": mid,
                "metric": cat.metric(mid).name if mid != "(all)" else "England total, all costed metrics",
                "replicates": len(obs),
                "true_total_annual": truth,
                "mean_published_total_annual": float(obs.mean()),
                "relative_bias": bias,
                "mcse": se,
                "pass": ok,
            }
        )
    a = out[-1]
    rows.append(
        {
            "section": "productivity",
            "figure": "Productivity opportunity: bias of the England total",
            "scope": "all costed metrics",
            "measured": a["relative_bias"],
            "mcse": a["mcse"],
            "target": f"within ±{_pct(tg.productivity_bias_max, 0)}",
            "pass": a["pass"],
            "sentence": f"On average the published England total was £{a['mean_published_total_annual'] / 1e6:,.1f}m "
            f"a year against a true opportunity of £{a['true_total_annual'] / 1e6:,.1f}m "
            f"({'+' if a['relative_bias'] >= 0 else ''}{_pct(a['relative_bias'])}).",
        }
    )
    return pd.DataFrame(out)


def _study(methodology: Methodology, validation: Validation | None) -> Validation:
    """The study's settings: those given, else the methodology's validation section."""
    v = validation or methodology.validation
    if v is None:
        raise ValueError(f"methodology {methodology.id} has no validation section")
    return v


def summarise(
    raw: dict[str, pd.DataFrame], methodology: Methodology, catalogue: Catalogue, validation: Validation | None = None
) -> dict[str, pd.DataFrame]:
    """The study's tables from the stacked replicate tables of :func:`run_study`."""
    v = _study(methodology, validation)
    tg = v.targets
    rows: list[dict] = []
    empty = pd.DataFrame()
    oe, over = _oe_tables(raw.get("oe", empty), catalogue, tg, rows)
    f_type, f_metric, f_det, f_deg = _funnel_tables(raw.get("funnel", empty), raw.get("detection"), tg, rows)
    r_cov, brier, rel = _league_tables(raw.get("league"), tg, rows)
    change = _change_tables(raw.get("change"), tg, rows)
    prod = _productivity_table(raw.get("productivity"), catalogue, tg, rows)
    if not over.empty:
        o = over.groupby("scenario")[["corr_adjusted_oe_true_oe", "corr_crude_ratio_true_oe"]].mean()
        if "overadjust" in o.index:
            oa = o.loc["overadjust"]
            sa = o.loc["standard"] if "standard" in o.index else None
            rows.append(
                {
                    "section": "overadjust",
                    "figure": "Over-adjustment: correlation of adjusted O/E with true performance",
                    "scope": "adjusted metrics, mean",
                    "measured": float(oa.iloc[0]),
                    "mcse": np.nan,
                    "target": "shown (no target)",
                    "pass": None,
                    "sentence": f"When true quality was correlated with deprivation and deprivation had no true "
                    f"effect, adjusted O/E correlated {oa.iloc[0]:.2f} with true performance and the "
                    f"unadjusted ratio {oa.iloc[1]:.2f}"
                    + (f" (standard scenario: {sa.iloc[0]:.2f} and {sa.iloc[1]:.2f})." if sa is not None else "."),
                }
            )
    summary = pd.DataFrame(
        rows, columns=["section", "figure", "scope", "measured", "mcse", "target", "pass", "sentence"]
    )
    timing = raw.get("timing", empty)
    if not timing.empty and "cpu_seconds" not in timing:
        timing = timing.assign(cpu_seconds=np.nan)
    tim = (
        timing.groupby("scenario")
        .agg(replicates=("seconds", "size"), wall_seconds=("seconds", "sum"), cpu_seconds=("cpu_seconds", "sum"))
        .reset_index()
        if not timing.empty
        else empty
    )
    if not tim.empty:
        tim["cpu_seconds_per_replicate"] = tim["cpu_seconds"] / tim["replicates"]
    return {
        "summary": summary,
        "oe_coverage": oe,
        "overadjustment": over,
        "funnel_rates": f_type,
        "funnel_rates_by_metric": f_metric,
        "funnel_detection": f_det,
        "degenerate_funnels": f_deg,
        "rank_coverage": r_cov,
        "brier": brier,
        "reliability": rel,
        "change_test": change,
        "productivity": prod,
        "timing": tim,
    }


# -------------------------------------------------------------------------------------------------- the report
SCENARIO_TEXT = {
    "standard": "the demo as it is: no true outliers (every trust effect from the normal between-trust distribution).",
    "outliers": "as standard, with {k} trusts of every funnel metric and trust type given an effect {sd:g} "
    "standard deviations of their own funnel above or below the target (half each way): the SD of the "
    "funnel at the trust's size, between-trust and sampling variation together, over the quarters the "
    "funnel pools — the scale funnel limits are drawn on, so such a trust sits on the 99.8% limit on "
    "average.",
    "outliers_between": "as outliers, but the effect is {sd:g} between-trust standard deviations from the average "
    "trust (context: for rare or noisy metrics this is much smaller than the sampling variation "
    "of one trust's figure).",
    "no_change": "{previous} and {quarter} have the same truth (activity, trend, reported values, ratings, status "
    "and missing figures); only the sampling noise differs.",
    "change": "as no change, except that {share:.0%} of each trust type move by {csd:g} SD of latent quality between "
    "the quarters (half better, half worse) — every metric's effect by {csd:g} × its between-trust SD.",
    "overadjust": "latent quality correlated {r:g} with deprivation (deprived areas have worse care) and deprivation "
    "with no true effect on any metric.",
    "fresh_truth": "as standard, but every replicate draws a new truth (trusts, demographics, trust effects) as well as "
    "new noise: the O/E coverage figures are judged here, over truths, since an O/E interval allows "
    "for the average trust of the sample being itself estimated.",
}


#: How :func:`_cell` writes a figure of each kind (any other kind: ``str``).
_CELL_FORMATS: dict[str, Callable[[Any], str]] = {
    "pct": lambda x: f"{100 * x:.1f}%",
    "pct2": lambda x: f"{100 * x:.2f}%",
    "signed_pct": lambda x: f"{'+' if x >= 0 else ''}{100 * x:.1f}%",
    "f2": lambda x: f"{x:.2f}",
    "f3": lambda x: f"{x:.3f}",
    "int": lambda x: f"{int(x):,}",
    "money": lambda x: f"£{x / 1e6:,.1f}m",
    "pass": lambda x: "Meets target" if bool(x) else "Misses target",
    "type": lambda x: TYPE_NAME.get(x, x).capitalize() if x != "all" else "All trust types",
}


def _cell(x, kind: str = "") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "not measured" if kind != "pass" else "no target"
    return _CELL_FORMATS.get(kind, str)(x)


def _html_table(df: pd.DataFrame, spec: list[tuple[str, str, str, bool]]) -> dict:
    """``{"columns": [(label, numeric)], "rows": [[cells]]}`` for the table macro; spec: (column, label, kind,
    numeric)."""
    if df is None or df.empty:
        return {
            "columns": [(label, num) for _, label, _, num in spec],
            "rows": [["not measured"] + [""] * (len(spec) - 1)],
        }
    rows = [[_cell(r[c], kind) if c in df.columns else "" for c, _, kind, _ in spec] for _, r in df.iterrows()]
    return {"columns": [(label, num) for _, label, _, num in spec], "rows": rows}


def _summary_cell(row) -> str:
    sec, m = row["section"], row["measured"]
    if not np.isfinite(m):
        return "not measured"
    if sec == "overadjust" or "Brier" in row["figure"] or "slope" in row["figure"]:  # ratios and slopes
        return f"{m:.2f}"
    if "Degenerate" in row["figure"]:
        return f"{int(m)}"
    if sec == "productivity":
        return _cell(m, "signed_pct")
    return _cell(m, "pct2" if "99.8" in row["figure"] else "pct")


#: The study page's tables (context key → study table, columns, headings), as data beside the page's template.
PAGE_TABLES_FILE = pages.TEMPLATE_DIR / "pages" / "validation_tables.yaml"


class _PageTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str
    columns: list[str] = Field(min_length=1)
    headings: dict[str, str] = {}


class _PageTables(BaseModel):
    """``validation_tables.yaml``: each column's ``[heading, cell format, numeric]`` and each table's columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, tuple[str, str, bool]]
    tables: dict[str, _PageTable]

    @model_validator(mode="after")
    def _known_columns(self) -> _PageTables:
        formats = {c: f for c, (_, f, _) in self.columns.items() if f and f not in _CELL_FORMATS}
        if formats:
            raise ValueError(f"unknown cell formats {formats} (known: {sorted(_CELL_FORMATS)})")
        for key, t in self.tables.items():
            unknown = [c for c in [*t.columns, *t.headings] if c not in self.columns or c not in t.columns]
            if unknown:
                raise ValueError(f"table {key}: columns {unknown} are not in its columns or not in `columns`")
        return self

    def specs(self) -> dict[str, tuple[str, list[tuple[str, str, str, bool]]]]:
        """Context key → (study table, ``(column, heading, format, numeric)`` of each column) for :func:`_html_table`."""
        out = {}
        for key, t in self.tables.items():
            cols = [(c, t.headings.get(c, self.columns[c][0]), *self.columns[c][1:]) for c in t.columns]
            out[key] = (t.table, cols)
        return out


def _page_tables() -> dict[str, tuple[str, list[tuple[str, str, str, bool]]]]:
    """The study page's tables from :data:`PAGE_TABLES_FILE`."""
    return _PageTables.model_validate(load_yaml_strict(PAGE_TABLES_FILE.read_text(encoding="utf-8"))).specs()


def _summary_table(s: pd.DataFrame) -> dict:
    """The summary table of the study page: one row per judged figure, with its MCSE, target and result."""
    return {
        "columns": [
            ("Figure", False),
            ("Scope", False),
            ("Measured", True),
            ("MCSE", True),
            ("Target", False),
            ("Result", False),
            ("What it shows", False),
        ],
        "rows": [
            [
                r["figure"],
                r["scope"],
                _summary_cell(r),
                ""
                if not np.isfinite(r["mcse"])
                else (
                    f"{r['mcse']:.3f}"
                    if ("Brier" in r["figure"] or "slope" in r["figure"])
                    else _cell(r["mcse"], "pct2")
                ),
                r["target"],
                "Shown (no target)" if r["pass"] is None or pd.isna(r["pass"]) else _cell(bool(r["pass"]), "pass"),
                r["sentence"],
            ]
            for _, r in s.iterrows()
        ],
    }


def _scenario_list(v: Validation, reps: dict[str, int]) -> list[dict]:
    """The scenarios run, with their replicates and what each simulates, in the study's order."""
    return [
        {
            "name": n.replace("_", " ").capitalize(),
            "replicates": f"{reps.get(n, 0):,}",
            "text": SCENARIO_TEXT[n].format(
                k=v.outliers_per_metric,
                sd=v.outlier_sd,
                previous=quarter_label(v.previous),
                quarter=quarter_label(v.quarter),
                share=v.change_share,
                csd=v.change_sd,
                r=v.overadjust_r,
            ),
        }
        for n in SCENARIOS
        if reps.get(n)
    ]


def _provenance(methodology: Methodology, v: Validation, reps: dict[str, int]):
    """The page's provenance footer (the report's template): code version and commit, methodology, seed and
    replicates."""
    rows = [
        ("Code", f"leaguetables {__version__}, git {git_state().get('sha', 'unknown')[:12]}"),
        ("Methodology", f"{methodology.id} version {methodology.version}"),
        ("Study", f"seed {v.seed}; replicates " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in reps.items())),
    ]
    return pages.section("provenance", {"rows": rows})


def write_report(
    tables: dict[str, pd.DataFrame],
    methodology: Methodology,
    out: Path,
    validation: Validation | None = None,
    replicates: dict[str, int] | None = None,
) -> Path:
    """Write ``index.html`` and one CSV per table into ``out``; return the page's path."""
    v = _study(methodology, validation)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, df in tables.items():
        if name == "timing":
            continue
        write_csv(df, out / f"{name}.csv")
        files.append(f"{name}.csv")
    if "timing" in tables:
        write_csv(tables["timing"], out / "timing.csv")
        files.append("timing.csv")
    s = tables["summary"].copy()
    summary = _summary_table(s)
    judged = s[s["pass"].notna()]
    n_pass = int(judged["pass"].astype(bool).sum())
    reps = replicates or {}
    ctx = {
        "title": "Validation: a simulation study of the league tables' statistics",
        "breadcrumbs": [(None, "Validation")],
        "v": v,
        "meth": methodology,
        "quarter_label": quarter_label(v.quarter),
        "previous_label": quarter_label(v.previous),
        "total_replicates": f"{sum(reps.values()):,}",
        "scenarios": _scenario_list(v, reps),
        "summary": summary,
        "n_pass": n_pass,
        "n_judged": len(judged),
        "n_fail": len(judged) - n_pass,
        "degenerate_sentence": next((r["sentence"] for _, r in s.iterrows() if "Degenerate" in r["figure"]), ""),
        "files": files,
        "provenance": _provenance(methodology, v, reps),
    }
    ctx |= {key: _html_table(tables[name], columns) for key, (name, columns) in _page_tables().items()}
    ctx["site_label"] = report.site_label("demo")  # the header's honest label of the source (synthetic demo data)
    page = out / "index.html"
    pages.write(page, pages.render("validation.html.j2", **ctx))
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaguetables.validate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--methodology", default="nof-2025-26", help="methodology config (default: nof-2025-26)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: reports/validation)")
    ap.add_argument(
        "--replicates",
        type=int,
        default=None,
        help="replicates of every scenario (default: the configuration's, per scenario)",
    )
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: the configuration's)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios (default: all)")
    args = ap.parse_args(argv)
    meth = load_methodology(args.methodology)
    cat = load_catalogue(meth.catalogue)
    v = meth.validation
    if v is None:
        print(f"methodology {meth.id} has no validation section", file=sys.stderr)
        return 2
    if args.replicates:
        v = v.model_copy(
            update={
                k: args.replicates
                for k in (
                    "replicates",
                    "outlier_replicates",
                    "change_replicates",
                    "overadjust_replicates",
                    "fresh_truth_replicates",
                )
            }
        )
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        print(f"unknown scenarios {bad}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    reps = {s: _replicates(v, s) for s in scenarios}
    t0 = time.perf_counter()
    print(
        f"validation: {sum(reps.values())} replicates ({', '.join(f'{k} {n}' for k, n in reps.items())}) "
        f"on {args.workers or v.workers} processes",
        flush=True,
    )
    raw = run_study(meth, cat, v, scenarios, args.workers, progress=True)
    tables = summarise(raw, meth, cat, v)
    wall = time.perf_counter() - t0
    cpu = float(tables["timing"]["cpu_seconds"].sum()) if not tables["timing"].empty else np.nan
    tables["timing"] = pd.concat(
        [
            tables["timing"],
            pd.DataFrame(
                [
                    {
                        "scenario": "(whole study)",
                        "replicates": sum(reps.values()),
                        "wall_seconds": wall,
                        "cpu_seconds": cpu,
                        "cpu_seconds_per_replicate": np.nan,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    page = write_report(tables, meth, args.out, v, reps)
    s = tables["summary"]
    for _, r in s.iterrows():
        res = "shown" if r["pass"] is None or pd.isna(r["pass"]) else ("PASS" if r["pass"] else "FAIL")
        print(f"  {res:5s} {r['figure']} [{r['scope']}]: {_summary_cell(r)} (target {r['target']})")
    print(
        f"validation report written to {page} in {wall:.0f} s (replicates: {cpu:.0f} CPU seconds, i.e. "
        f"{cpu / max(1, int(args.workers or v.workers)) / 60:.1f} min on {args.workers or v.workers} unshared cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
