"""Sampling uncertainty of the league: a vectorised parametric bootstrap of the *data*.

NHS England's "likely ranges" (:func:`leaguetables.nof.scoring.joint_bootstrap`) resample a trust's own metric
*scores*; their width follows how uneven the trust's scores are, not how precisely its data are measured
(``statistical-methods.md`` §6.1). This module instead simulates the data and re-runs the whole method in every
replicate: values, metric scores within the method's comparator populations, combination groups, weighted
averages, cut points, financial override, segments and league ranks.

What is simulated
-----------------
* proportions (``statistic: proportion``): the numerator is binomial given the denominator;
* rates (``statistic: rate``): the numerator is Poisson given the denominator, or, for a metric whose numerator is
  not a Poisson count (catalogue ``numerator_variance: reported``: bed days, admissions clustered in patients),
  quasi-Poisson with the row's reported variance V: with the scale φ = V/x (:attr:`MetricData.phi`; φ = 1 where
  x = 0, as the published interval, :func:`leaguetables.statistics.rates.scaled_poisson_limits`), the count is
  φ × a Poisson count of mean (expected count)/φ, so its variance is φ × its mean. Every draw below uses x/φ
  events over the exposure n/φ (the effective count and exposure) and multiplies back by φ; with φ = 1 the draws
  are those of a Poisson count, bit for bit;
* everything reported as a bare value (finance, relative cost, mean response times), mean scores (staff survey)
  and ratings (CQC) carries no sampling model in the inputs: it is held at its reported value in every replicate,
  so its uncertainty is ignored;
* expected counts E of the adjusted league are held at their fitted values (their own uncertainty is not added).

Two ways of drawing (``uncertainty.shrinkage`` in the methodology configuration):

* **empirical Bayes (shrinkage on, the default)** — each replicate draws every trust's *true* rate from its
  posterior given the quarter's data: a beta (proportions) or gamma (rates) distribution of true rates across the
  trusts of the type, with mean and between-trust variance τ² estimated per metric and trust type by moments
  (:func:`between_trust_variance`, whose within-trust variance of a quasi-Poisson rate is φ·m/n, so τ² is not
  inflated by the extra variance), updated by the trust's own numerator and denominator (conjugate beta-binomial
  and gamma-Poisson; quasi-Poisson: gamma(a + x/φ, β + n/φ), the Poisson likelihood of x/φ events over n/φ). A replicate is then a draw of the *true* league; its 2.5th–97.5th percentile ranks are an
  interval for the true rank and its segment shares the probability of the true segment;
* **plug-in (shrinkage off)** — every numerator is redrawn from the binomial/Poisson distribution with the
  trust's observed rate (quasi-Poisson: φ·Poisson(x/φ)) (a plain parametric bootstrap of the data). It describes how much the *published* league
  would move on another draw of the data, centred on the observed rates, which already contain one draw of noise.

On the demo's truth (``benchmarks/rank_uncertainty_study.py``, 100 data sets) the empirical-Bayes 95% rank
intervals covered the true rank 96.9% of the time (an oracle knowing the true between-trust spread: 96.8%; the
excess over 95% comes from whole-number, tied ranks) and P(segment) had a Brier score 1.04 × the oracle's with a
reliability slope of 1.00; the plug-in bootstrap 94.3%, 1.14 × and 0.99; NHS England's likely range of rank 100%
(3.6 times as wide), 2.3 × and 1.17.

Random streams and reuse between runs
-------------------------------------
Each metric's replicates are drawn from its own stream, :func:`metric_rng` (``default_rng([seed, 3, purpose, w0,
w1])``, ``w0, w1`` from the SHA-256 of the metric id; purpose :data:`DRAWS` for the league's draws on both bases,
:data:`NULL` for the change test's draws of both quarters). Metrics were drawn independently before too, from
consecutive stretches of one stream, so the distribution of the replicates is unchanged; what changes is that one
metric's replicates no longer depend on the others' data. Each metric's share of the work — its draws, its score
matrix over the replicates, its scores in the checked replicates, its observed scores — is a
:class:`MetricReplicates` kept in a :class:`MetricCache` (:mod:`leaguetables.run.sampling_cache`) under a key of the
metric's definition and rows (from which its prior is pooled: nothing of another metric enters), the seed, the number
of replicates and the settings; after one metric's data changed only that metric is drawn and scored again, and the
replicate leagues are combined from the kept parts, the same with or without the cache.

Reuse of the method
-------------------
The replicates are computed with numpy arrays (replicates × trusts), following the rules of
:func:`leaguetables.statistics.metrics._scores` / :func:`leaguetables.statistics.metrics.comparator_groups` /
:func:`leaguetables.nof.scoring.score_ranked` / :func:`leaguetables.statistics.metrics.score_bands` (scores),
:func:`leaguetables.nof.scoring.combine_scores` (combination groups, evaluated with the catalogue's rules),
:func:`leaguetables.nof.scoring.round_half_up` (2-dp averages), :func:`leaguetables.nof.scoring._cut_points` and
:func:`leaguetables.nof.scoring._segment_from_cuts` (cut points, segments), the financial override and
:func:`leaguetables.nof.scoring._competition_rank_rows` (the rank rule of :func:`leaguetables.nof.scoring.rank_league`).
Every run also passes a few replicates and the observed data through the *reference path* — exactly the
functions the published league uses (:func:`metrics._scores`, :func:`scoring.average_scores`,
:func:`scoring.assign_segments`, :func:`scoring.apply_financial_override`, :func:`scoring.rank_league`) — and
compares: if a scoring rule has changed so that the fast path no longer agrees, every replicate is computed by the
reference path instead (slower, never wrong) and a warning says so.

The public names are those of ``__all__``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import stats as sps

from leaguetables.config import ICB_TYPES, Catalogue, Metric
from leaguetables.nof import scoring
from leaguetables.statistics import metrics as metrics_mod
from leaguetables.statistics import rates

__all__ = [
    "MetricData",
    "QuarterData",
    "Replicates",
    "quarter_data",
    "between_trust_variance",
    "rankability",
    "draw_values",
    "league_replicates",
    "observed_league",
    "summarise",
    "sample_league",
    "null_values",
    "change_test",
    "CHANGE_COLUMNS",
    "metric_rng",
    "MetricCache",
]

SIMULATED = {"proportion": "binomial", "rate": "poisson"}
TAU2_FLOOR_CV = 0.01  # floor of the between-trust SD as a fraction of the mean (keeps true rates distinct)


# --------------------------------------------------------------------------------------------------------
# random streams: one per metric and purpose
# --------------------------------------------------------------------------------------------------------
#: the second word of every stream of this module (the record generator's streams are [seed, 0], [seed, 1] and
#: [seed, 2, …]; the validation study's [seed, 7], [seed, 8] and [seed, 9, …])
SAMPLING_STREAM = 3
DRAWS, NULL = 0, 1  # the third word: the league's draws (both bases), the change test's null draws (both quarters)


def metric_words(metric_id: str) -> tuple[int, int]:
    """Two 32-bit words naming a metric in its random streams: the first 8 bytes of the SHA-256 of its id (stable
    across processes and versions, unlike Python's ``hash``)."""
    d = hashlib.sha256(metric_id.encode("utf-8")).digest()
    return int.from_bytes(d[:4], "little"), int.from_bytes(d[4:8], "little")


def metric_rng(seed: int, metric_id: str, purpose: int) -> np.random.Generator:
    """The random stream of one metric's replicates: ``default_rng([seed, 3, purpose, w0, w1])`` (``w0, w1``:
    :func:`metric_words`). Five words, so no stream of this module is another zero-padded one (numpy's SeedSequence
    pads a seed of up to four words with zeros: ``seed`` alone is ``[seed, 0, 0, 0]``); each metric's draws depend on
    nothing but its own data and the seed, so a change to one metric leaves every other metric's replicates as they
    were (and reusable, :class:`MetricCache`). ``seed`` is one 32-bit word."""
    if not 0 <= int(seed) < 1 << 32:
        raise ValueError(f"the sampling seed must be a 32-bit unsigned integer, got {seed!r}")
    return np.random.default_rng([int(seed), SAMPLING_STREAM, purpose, *metric_words(metric_id)])


class MetricCache(Protocol):
    """Where each metric's replicate work is kept between runs, by content key (:mod:`leaguetables.run.sampling_cache`):
    ``get`` returns the arrays stored under a key, or None."""

    def get(self, key: str) -> dict[str, np.ndarray] | None: ...

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> None: ...


def frame_digest(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's content: column names, dtypes, index and values (numbers by their bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, df.columns)), [str(t) for t in df.dtypes]]).encode())
    h.update(repr(df.index).encode())
    for c in df.columns:
        a = df[c].to_numpy()
        if a.dtype.kind in "biufc":
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update("\x1f".join(map(repr, a.tolist())).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def _metric_describe(md: MetricData | None):
    """Everything of one metric's data its replicates depend on (None: the metric is absent)."""
    if md is None:
        return None
    return {
        "metric": md.metric.model_dump(mode="json"),
        "kind": md.kind,
        "judge_observed": md.judge_observed,
        "frame": frame_digest(md.frame),
    }


def content_key(**parts) -> str:
    """SHA-256 of a JSON description (the key of a :class:`MetricCache` entry)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------------
# data of a quarter
# --------------------------------------------------------------------------------------------------------
@dataclass
class MetricData:
    """One scored metric in one quarter: the rows the metric notebook scores (one per eligible trust)."""

    metric: Metric
    #: trust_code, trust_type, status, value, category, numerator, denominator, factor, adjusted (and, where the
    #: inputs have them, tiebreak, baseline, numerator_variance)
    frame: pd.DataFrame
    kind: str  # "binomial", "poisson" or "fixed"
    #: adjusted basis with ``expected.adjusted_standards: observed_value``: standards, floors and bands are judged
    #: on the observed value (value / factor), the adjusted value only orders the trusts between them
    #: (:func:`leaguetables.statistics.metrics.score_adjusted`)
    judge_observed: bool = False

    @property
    def simulated(self) -> np.ndarray:
        """Rows whose value is redrawn (status ok, a numerator and a denominator)."""
        f = self.frame
        if self.kind == "fixed":
            return np.zeros(len(f), dtype=bool)
        counted = (
            f["numerator"].notna() & f["denominator"].notna() & (f["denominator"] > 0) & f["value"].notna()
        ).to_numpy()
        return (f["status"].to_numpy() == metrics_mod.STATUS_OK) & counted  # numpy's text comparison: ~10× pandas'

    @property
    def phi(self) -> np.ndarray:
        """Per row, the scale φ = V/x of a numerator that is not a Poisson count (catalogue
        ``numerator_variance: reported``; V the row's ``numerator_variance``), else 1. φ = 1 where x = 0, V = 0 or V
        is missing, as in the published interval (:func:`leaguetables.statistics.rates.scaled_poisson_limits`): a zero
        count says nothing of its own dispersion, and φ = 1 keeps the draws of that row those of its interval."""
        f = self.frame
        if self.kind != "poisson" or self.metric.numerator_variance != "reported" or "numerator_variance" not in f:
            return np.ones(len(f))
        return rates.quasi_poisson_scale(f["numerator"], f["numerator_variance"])


@dataclass
class QuarterData:
    """Everything the league of one quarter is computed from (one basis: raw or adjusted values)."""

    quarter: str
    basis: str  # "raw" or "adjusted"
    trusts: pd.DataFrame  # trust_code, trust_type (the trusts of the league, sorted by code)
    in_deficit: np.ndarray  # bool per trust (deficit or deficit support; all False if the override is off)
    metrics: list[MetricData]
    segmentation_rule: scoring.SegmentationRule
    thresholds: Sequence[float] | Mapping[str, Sequence[float]] | None = None
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = field(default_factory=dict)
    pool_types: list[str] | None = None  # trust types whose averages give pooled cut points (quartiles_pooled)
    override_from: tuple[int, ...] = (1, 2)  # the financial override (financial_override.from_segments/to_segment)
    override_to: int = 3
    _observed: pd.DataFrame | None = field(default=None, repr=False)
    _template: pd.DataFrame | None = field(default=None, repr=False)
    _league: tuple[np.ndarray, ...] | None = field(default=None, repr=False)  # the observed league (reference path)

    @property
    def codes(self) -> np.ndarray:
        return self.trusts["trust_code"].to_numpy()

    def observed_values(self) -> dict[str, np.ndarray]:
        return {md.metric.id: md.frame["value"].to_numpy(float) for md in self.metrics}

    def observed_scores(self) -> pd.DataFrame:
        """Long scores of the observed data by the reference path (cached)."""
        if self._observed is None:
            self._observed = _reference_scores(self.metrics, self.observed_values())
        return self._observed

    def long_template(self) -> pd.DataFrame | None:
        """The long frame of every replicate's scores (:func:`_long_scores`) with the observed scores, made once
        (None when the league has no metric)."""
        if self._template is None and self.metrics:
            self._template = self.observed_scores()
        return self._template


def _kind(metric: Metric) -> str:
    return SIMULATED.get(metric.statistic, "fixed")


def quarter_data(
    inputs,
    catalogue: Catalogue,
    quarter: str,
    *,
    segmentation_rule: scoring.SegmentationRule,
    thresholds: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    override: bool = True,
    basis: str = "raw",
    results: pd.DataFrame | None = None,
    confidence: float = 0.95,
    combine_rules=None,
    metric_ids=None,
    adjusted_standards: str = "observed_value",
    pool_types=None,
    override_segments: tuple[tuple[int, ...], int] = ((1, 2), 3),
    cache: MetricCache | None = None,
    observed: dict[tuple[str, str], pd.DataFrame] | None = None,
) -> QuarterData:
    """The data of the league of ``quarter`` from the validated inputs (all quarters are in the inputs).

    Values come from :func:`leaguetables.statistics.metrics.observed_table` and :func:`leaguetables.statistics.metrics.indicator`, the
    functions of the metric notebooks. ``basis="adjusted"`` needs the quarter's metric ``results`` (the stacked
    metric result tables): the adjusted value of a trust is its value × n·(pooled rate)/(E·multiplier), i.e.
    O/E × the pooled rate with E held at its fitted value; rows with no adjusted value are scored on the value, as
    in :func:`leaguetables.statistics.metrics.compute_metric`, and ``adjusted_standards`` says on which value an absolute
    standard, floor or band is judged there (:func:`leaguetables.statistics.metrics.score_adjusted`). The league's trusts are
    those with at least one scored metric.
    ``metric_ids`` restricts the metrics to those of the run (default: every scored metric of the catalogue).
    ``cache``: where each metric's observed scores are kept between runs (:func:`sample_league`).
    ``observed``: each metric's observed table with its indicator by (quarter, metric id), filled here and reused by
    the next call on the same inputs and ``confidence`` (the raw and the adjusted basis of one league).
    """
    if basis not in ("raw", "adjusted"):
        raise ValueError(f"basis must be 'raw' or 'adjusted', got {basis!r}")
    if basis == "adjusted" and results is None:
        raise ValueError("the adjusted basis needs the quarter's metric results (expected values)")
    mds = []
    rows_of = _metric_inputs(inputs, quarter)
    results_of: dict = {}  # the quarter's result rows of each metric (adjusted basis), split once
    if basis == "adjusted":
        assert results is not None, "checked above: the adjusted basis has the metric results"
        mine = results[results["quarter"] == quarter]
        results_of = {str(k): g for k, g in mine.groupby("metric_id", sort=False)}
    for m in catalogue.metrics:
        if m.scoring.method == "none" or (metric_ids is not None and m.id not in metric_ids):
            continue
        base = None if observed is None else observed.get((quarter, m.id))
        if base is None:
            base = metrics_mod.observed_table(rows_of(m.id), m, quarter)
            base = pd.concat([base, metrics_mod.indicator(base, m, confidence)], axis=1)
            if observed is not None:
                observed[(quarter, m.id)] = base
        df = base.copy()
        df["factor"] = 1.0
        df["adjusted"] = False
        if basis == "adjusted" and m.has_adjustment:
            assert results is not None, "checked above: the adjusted basis has the metric results"
            r = results_of.get(m.id, results.iloc[:0]).set_index("trust_code")
            adj = df["trust_code"].map(r["adjusted_value"]).astype(float)
            expected = df["trust_code"].map(r["expected"]).astype(float)
            value = df["value"].astype(float)
            # adjusted = O/E × pooled rate = value × factor; factor = adjusted/value (value 0: from n, E and the rate)
            for _t, g in df[adj.notna()].groupby("trust_type"):
                national = g["numerator"].sum() / g["denominator"].sum() * m.multiplier
                fallback = g["denominator"] * national / (expected[g.index] * m.multiplier)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = adj[g.index] / value[g.index]
                df.loc[g.index, "factor"] = np.where(value[g.index] > 0, ratio, fallback).astype(float)
            df.loc[adj.notna(), "value"] = adj[adj.notna()].to_numpy(float)  # the published adjusted value
            df["adjusted"] = adj.notna().to_numpy()
        keep = [
            "trust_code",
            "trust_type",
            "status",
            "value",
            "category",
            "numerator",
            "denominator",
            "factor",
            "adjusted",
            *[c for c in ("tiebreak", "baseline", "numerator_variance") if c in df.columns],
        ]
        judge = basis == "adjusted" and adjusted_standards == "observed_value"
        mds.append(MetricData(m, df[keep].reset_index(drop=True), _kind(m), judge))

    # the league's trusts: at least one scored metric in the observed data (as league._build); these scores are
    # QuarterData.observed_scores() (the same function of the same values), kept rather than made again
    obs = _observed_scores(mds, cache)
    scored = sorted(set(obs.loc[obs["score"].notna(), "trust_code"]))
    reg = inputs.trusts.set_index("trust_code").loc[scored, ["trust_type"]].reset_index()
    st = inputs.status.loc[inputs.status["quarter"] == quarter].set_index("trust_code")
    flags = np.zeros(len(reg), dtype=bool)
    if override:
        for c in ("deficit", "deficit_support"):
            if c in st.columns:
                flags |= reg["trust_code"].map(st[c]).fillna(False).astype(bool).to_numpy()
    return QuarterData(
        quarter,
        basis,
        reg,
        flags,
        mds,
        segmentation_rule,
        thresholds,
        dict(combine_rules) if combine_rules is not None else {},
        list(pool_types) if pool_types is not None else None,
        tuple(override_segments[0]),
        int(override_segments[1]),
        _observed=obs,
    )


def _metric_inputs(inputs, quarter: str) -> Callable[[str], Any]:
    """The inputs as :func:`metrics.observed_table` reads them for one metric: the register and that metric's rows of
    ``quarter`` (split once, rather than the whole table filtered for every metric: the same rows in the same
    order)."""
    obs = inputs.observations
    obs = obs[obs["quarter"] == quarter]
    groups = {str(k): g for k, g in obs.groupby("metric_id", sort=False)}

    def rows(metric_id: str):
        part = copy.copy(inputs)
        object.__setattr__(part, "observations", groups.get(metric_id, obs.iloc[:0]))
        return part

    return rows


def _observed_scores(mds: list[MetricData], cache: MetricCache | None) -> pd.DataFrame:
    """Long scores of the observed data by the reference path, each metric's kept in ``cache`` under its data."""

    def one(md: MetricData) -> np.ndarray:
        def work() -> dict[str, np.ndarray]:
            return {"score": _reference_metric_scores(md, md.frame["value"].to_numpy(float))}

        return _cached(cache, content_key(what="observed", data=_metric_describe(md)), work)["score"]

    return _long_scores(mds, {md.metric.id: one(md) for md in mds})


# --------------------------------------------------------------------------------------------------------
# between-trust variance, rankability, draws
# --------------------------------------------------------------------------------------------------------
def between_trust_variance(x, n, kind: str, phi=None) -> tuple[float, float, float]:
    """Mean rate and between-trust variance τ² of true rates across trusts, by moments (DerSimonian–Laird).

    ``kind`` ``"binomial"`` (x of n, rates are proportions) or ``"poisson"`` (x events over exposure n).
    With m = Σx/Σn and S = Σ n_i (x_i/n_i − m)², E[S] = (k − 1)·V(m) + τ²·(Σn − Σn²/Σn) where V(m) is the
    within-trust variance of one unit, m(1 − m) (binomial) or m (Poisson). With the quasi-Poisson scales ``phi``
    (φ_i, :attr:`MetricData.phi`) the within-trust variance of x_i/n_i is φ_i·m/n_i and the term (k − 1)·m becomes
    m·(Σφ − Σnφ/Σn) (the same when every φ is 1). τ² is floored at
    (``TAU2_FLOOR_CV`` × m)² (binomial: × min(m, 1 − m)) so true rates stay distinct when the data cannot tell
    them apart. Returns ``(m, tau2, unit_variance)`` (the unit variance for φ = 1).

    Hand-worked (Poisson): x = (10, 30), n = (100, 100): m = 0.2, S = 100·0.01 + 100·0.01 = 2,
    E-term (k−1)·m = 0.2, Σn − Σn²/Σn = 100 → τ² = 0.018.
    """
    x = np.asarray(x, float)
    n = np.asarray(n, float)
    k = len(x)
    if k == 0 or n.sum() <= 0:
        return np.nan, np.nan, np.nan
    m = x.sum() / n.sum()
    unit = m * (1 - m) if kind == "binomial" else m
    base = min(m, 1 - m) if kind == "binomial" else m
    floor = (TAU2_FLOOR_CV * base) ** 2
    if k < 2:
        return m, floor, unit
    s = float(np.sum(n * (x / n - m) ** 2))
    c = n.sum() - np.sum(n**2) / n.sum()
    if phi is None or np.all(np.asarray(phi, float) == 1.0):
        within = (k - 1) * unit
    else:
        ph = np.asarray(phi, float)
        within = unit * (ph.sum() - np.sum(n * ph) / n.sum())
    tau2 = (s - within) / c if c > 0 else 0.0
    if kind == "binomial":
        tau2 = min(tau2, 0.99 * m * (1 - m))  # a beta distribution needs τ² < m(1 − m)
    return m, max(tau2, floor), unit


def _prior(md: MetricData) -> pd.DataFrame:
    """Per simulated row: the type's prior (m, τ²) and the within-trust variance of the rate (φ·unit/n)."""
    f = md.frame
    sim = md.simulated
    phi = pd.Series(md.phi, index=f.index)
    out = pd.DataFrame({"m": np.nan, "tau2": np.nan, "se2": np.nan}, index=f.index)
    for _t, g in f[sim].groupby("trust_type", sort=True):
        ph = phi[g.index].to_numpy(float)
        m, tau2, unit = between_trust_variance(g["numerator"], g["denominator"], md.kind, ph)
        out.loc[g.index, "m"] = m
        out.loc[g.index, "tau2"] = tau2
        out.loc[g.index, "se2"] = ph * unit / g["denominator"].to_numpy(float)
    return out


def rankability(qd: QuarterData) -> pd.DataFrame:
    """Rankability ρ = τ²/(τ² + median se²) per simulated metric and trust type (``statistical-methods.md`` §6):
    the share of the spread of observed rates that is real between-trust difference. Near 1, the data order the
    trusts; near 0 the order is mostly chance. Columns ``metric_id, trust_type, n_trusts, mean_rate, tau2,
    median_se2, rankability`` (rates on the per-unit scale, before the metric's multiplier)."""
    rows = []
    for md in qd.metrics:
        if md.kind == "fixed":
            continue
        pr = _prior(md)
        sim = md.simulated
        for t, g in md.frame[sim].groupby("trust_type", sort=True):
            p = pr.loc[g.index]
            tau2, se2 = float(p["tau2"].iloc[0]), float(np.median(p["se2"]))
            rows.append(
                {
                    "metric_id": md.metric.id,
                    "trust_type": t,
                    "n_trusts": len(g),
                    "mean_rate": float(p["m"].iloc[0]),
                    "tau2": tau2,
                    "median_se2": se2,
                    "rankability": tau2 / (tau2 + se2),
                }
            )
    return pd.DataFrame(
        rows, columns=["metric_id", "trust_type", "n_trusts", "mean_rate", "tau2", "median_se2", "rankability"]
    )


def draw_values(qd: QuarterData, seed: int, replicates: int, shrinkage: bool = True) -> dict[str, np.ndarray]:
    """Replicate values of every simulated metric: ``{metric_id: (replicates, rows) array}`` (rows of the
    metric's frame; rows not simulated keep their reported value), each metric drawn from its own stream
    (:func:`metric_rng` of ``seed``, the metric and :data:`DRAWS`), so its replicates depend on its data alone.

    ``shrinkage=True``: true rates from the empirical-Bayes posterior, beta(a + x, b + n − x) for proportions
    and gamma(a + x, rate β + n) for rates, where the prior (a, b) or (a, β) has the type's mean m and
    between-trust variance τ² (:func:`between_trust_variance`, over the metric's own rows of the type).
    ``shrinkage=False``: numerators redrawn binomial(n, x/n) or Poisson(x), the value recomputed. A quasi-Poisson
    numerator (scale φ = :attr:`MetricData.phi`) enters as x/φ events over n/φ: gamma(a + x/φ, rate β + n/φ), or
    φ·Poisson(x/φ)/n (φ = 1: the Poisson draws). Values are multiplied by the metric's multiplier and, on the
    adjusted basis, by the trust's adjustment factor."""
    b = int(replicates)
    return {md.metric.id: _draw_metric(md, metric_rng(seed, md.metric.id, DRAWS), b, shrinkage) for md in qd.metrics}


def _draw_metric(md: MetricData, rng: np.random.Generator, b: int, shrinkage: bool) -> np.ndarray:
    """One metric's replicate values (:func:`draw_values`)."""
    f = md.frame
    base = np.broadcast_to(f["value"].to_numpy(float), (b, len(f))).copy()
    sim = md.simulated
    if not sim.any():
        return base
    x = f.loc[sim, "numerator"].to_numpy(float)
    n = f.loc[sim, "denominator"].to_numpy(float)
    phi = md.phi[sim]  # 1 unless quasi-Poisson: x/1.0 and n/1.0 are x and n exactly
    mult = md.metric.multiplier * f.loc[sim, "factor"].to_numpy(float)
    if shrinkage:
        pr = _prior(md).loc[sim]
        m, tau2 = pr["m"].to_numpy(float), pr["tau2"].to_numpy(float)
        if md.kind == "binomial":
            ab = m * (1 - m) / tau2 - 1
            rate = rng.beta(m * ab + x, (1 - m) * ab + n - x, size=(b, len(x)))
        else:
            shape, beta = m * m / tau2, m / tau2
            rate = rng.gamma(shape + x / phi, 1.0 / (beta + n / phi), size=(b, len(x)))
    elif md.kind == "binomial":
        rate = rng.binomial(n.astype(np.int64), np.clip(x / n, 0, 1), size=(b, len(x))) / n
    else:
        rate = phi * rng.poisson(x / phi, size=(b, len(x))) / n
    base[:, sim] = rate * mult
    return base


def null_values(
    prev: QuarterData, now: QuarterData, seed: int, replicates: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Joint replicate values of two quarters under the hypothesis that no trust's performance changed.

    Per simulated metric, trust type and quarter q, the type's pooled rate sets the quarter's level δ_q
    (logit of Σx/Σn for proportions, log for rates), so changes common to the whole type (trends, seasons) are
    kept. Each trust's relative position d_i is the precision-weighted mean over the two quarters of
    y_iq − δ_q (y = logit((x + ½)/(n + 1)), variance 1/(x + ½) + 1/(n − x + ½); rates log((x + ½)/n),
    variance 1/(x + ½)). Both quarters' numerators are then drawn independently from binomial/Poisson with the
    quarter's own denominator and the common true rate expit(δ_q + d_i) (or exp(·)); a quasi-Poisson numerator
    (scale φ, :attr:`MetricData.phi`) has variance of y φ/(x + ½) and is drawn φ·Poisson(n·e^η/φ). A trust with
    data in one quarter only keeps its own rate there. Values not simulated keep their reported values. Each
    metric's two quarters are drawn from its own stream (:func:`metric_rng` of ``seed``, the metric and
    :data:`NULL`), the previous quarter first.
    """
    b = int(replicates)
    vals: list[dict[str, np.ndarray]] = [{}, {}]
    by_id = {md.metric.id: md for md in now.metrics}
    prev_ids = {md.metric.id: md for md in prev.metrics}
    for mid in sorted(set(by_id) | set(prev_ids)):
        pair = _null_metric(prev_ids.get(mid), by_id.get(mid), metric_rng(seed, mid, NULL), b)
        for qi, v in enumerate(pair):
            if v is not None:
                vals[qi][mid] = v
    return vals[0], vals[1]


def _null_position(md: MetricData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One quarter of one metric: each row's y, its variance (NaN where not simulated) and its type's level δ."""
    f = md.frame
    sim = md.simulated
    x = f["numerator"].to_numpy(float)
    n = f["denominator"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if md.kind == "binomial":
            y = np.log((x + 0.5) / (n - x + 0.5))
            v = 1 / (x + 0.5) + 1 / (n - x + 0.5)
        else:
            y = np.log((x + 0.5) / n)
            v = md.phi / (x + 0.5)  # φ = 1: 1/(x + ½) exactly
    delta = np.full(len(f), np.nan)
    for _t, g in f[sim].groupby("trust_type"):
        pooled = g["numerator"].sum() / g["denominator"].sum()
        if md.kind == "binomial":
            pooled = np.clip(pooled, 1e-9, 1 - 1e-9)
            delta[g.index] = np.log(pooled / (1 - pooled))
        else:
            delta[g.index] = np.log(max(pooled, 1e-12))
    return np.where(sim, y, np.nan), np.where(sim, v, np.nan), delta


def _null_metric(
    prev: MetricData | None, now: MetricData | None, rng: np.random.Generator, b: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One metric's null values of both quarters (:func:`null_values`; None where the quarter lacks the metric)."""
    mds = (prev, now)
    parts = {qi: _null_position(md) for qi, md in enumerate(mds) if md is not None}
    pos: dict[str, tuple[float, float]] = {}  # common relative position per trust
    for qi, (y, v, delta) in parts.items():
        md = mds[qi]
        assert md is not None
        for code, di, vi in zip(md.frame["trust_code"], y - delta, v):
            if np.isfinite(di):
                s, w = pos.get(code, (0.0, 0.0))
                pos[code] = (s + di / vi, w + 1 / vi)
    out: list[np.ndarray | None] = [None, None]
    for qi, (_y, _v, delta) in parts.items():
        md = mds[qi]
        assert md is not None
        f = md.frame
        base = np.broadcast_to(f["value"].to_numpy(float), (b, len(f))).copy()
        sim = md.simulated
        if sim.any():
            dbar = np.array([pos[c][0] / pos[c][1] for c in f.loc[sim, "trust_code"]])
            eta = delta[sim] + dbar
            n = f.loc[sim, "denominator"].to_numpy(float)
            if md.kind == "binomial":
                x = rng.binomial(n.astype(np.int64), 1 / (1 + np.exp(-eta)), size=(b, len(n)))
            else:
                phi = md.phi[sim]
                x = phi * rng.poisson(n * np.exp(eta) / phi, size=(b, len(n)))
            mult = md.metric.multiplier * f.loc[sim, "factor"].to_numpy(float)
            base[:, sim] = x / n * mult
        out[qi] = base
    return out[0], out[1]


# --------------------------------------------------------------------------------------------------------
# the league in every replicate
# --------------------------------------------------------------------------------------------------------
@dataclass
class Replicates:
    """Replicate leagues: arrays (replicates, trusts) in the order of ``trusts``."""

    trusts: np.ndarray
    trust_type: np.ndarray
    average: np.ndarray  # 2-dp averages
    segment: np.ndarray  # adjusted segment 1–4 (after the financial override)
    rank: np.ndarray
    path: str = "vectorised"  # or "reference" when the fast path disagreed with the reference functions


def _reference_metric_scores(md: MetricData, v: np.ndarray) -> np.ndarray:
    """One metric's scores of one replicate's values by the functions the metric notebooks use."""
    if md.judge_observed:
        f = md.frame
        df = f.assign(value=v / f["factor"].to_numpy(float), adjusted_value=np.where(f["adjusted"], v, np.nan))
        sc, _ = metrics_mod.score_adjusted(df, md.metric, "observed_value")
    else:
        sc = metrics_mod._scores(md.frame.assign(_v=v), md.metric, "_v")
    return sc.to_numpy(float)


def _long_scores(
    mds: list[MetricData], scores: Mapping[str, np.ndarray], template: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Long scores of one replicate from each metric's scores (``{metric_id: scores of its rows}``). ``template``:
    the long frame of the same metrics made before (:meth:`QuarterData.long_template`), whose scores are replaced
    (the same frame, without building one frame per metric for every replicate)."""
    if template is not None:
        out = template.copy()
        out["score"] = np.concatenate([scores[md.metric.id] for md in mds])
        return out
    parts = [
        pd.DataFrame(
            {
                "trust_code": md.frame["trust_code"].to_numpy(),
                "metric_id": md.metric.id,
                "score": scores[md.metric.id],
                "weight": md.metric.weight,
                "combine_group": md.metric.combine_group,
                "domain": md.metric.domain,
            }
        )
        for md in mds
    ]
    return pd.concat(parts, ignore_index=True)


def _reference_scores(
    mds: list[MetricData], values: Mapping[str, np.ndarray], template: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Long scores of one replicate by the functions the metric notebooks use (:func:`metrics._scores`)."""
    scores = {md.metric.id: _reference_metric_scores(md, values[md.metric.id]) for md in mds}
    return _long_scores(mds, scores, template)


def _reference_league(qd: QuarterData, values: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """(2-dp average, adjusted segment, rank) per trust of ``qd`` for one replicate (``None``: the observed
    data), by the published path."""
    if values is None:  # the observed league, made once (the calibrated columns and the change test both use it)
        if qd._league is None:
            qd._league = _reference_league_of(qd, qd.observed_scores())
        return tuple(a.copy() for a in qd._league)
    return _reference_league_of(qd, _reference_scores(qd.metrics, values, qd.long_template()))


def _reference_league_of(qd: QuarterData, sc: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """:func:`_reference_league` from the long scores of one replicate."""
    sc = sc.dropna(subset=["score"])
    sc = sc[sc["trust_code"].isin(set(qd.codes))]
    idx = pd.Index(qd.codes)
    avg = scoring.average_scores(sc, qd.combine_rules).set_index("trust_code")["average_score"].reindex(idx)
    tt = pd.Series(qd.trusts["trust_type"].to_numpy(), index=idx)
    seg, _ = scoring.assign_segments(avg, tt, qd.segmentation_rule, qd.thresholds, pool_types=qd.pool_types)
    flag = pd.Series(qd.in_deficit, index=idx)
    adjusted, _ = scoring.apply_financial_override(
        seg, flag, pd.Series(False, index=idx), from_segments=qd.override_from, to_segment=qd.override_to
    )
    rk = scoring.rank_league(adjusted, avg, tt)["rank"]
    return (
        avg.to_numpy(float),
        adjusted.astype("Float64").to_numpy(float, na_value=np.nan),
        rk.astype("Float64").to_numpy(float, na_value=np.nan),
    )


def _ranked_matrix(v: np.ndarray, direction: str, standard, floor, judged: np.ndarray | None = None) -> np.ndarray:
    """:func:`scoring.score_ranked` on every row of ``v`` (replicates × organisations, no NaN) at once; the standard
    and floor are judged on ``judged`` (same shape) when given, else on ``v``."""
    sign = -1.0 if direction == "higher_better" else 1.0
    o = sign * v
    oj = o if judged is None else sign * judged
    meets = oj <= sign * standard if standard is not None else np.zeros(v.shape, bool)
    fails = oj > sign * floor if floor is not None else np.zeros(v.shape, bool)
    lo = 2.0 if standard is not None else 1.0
    hi = 3.0 if floor is not None else 4.0
    spread = ~meets & ~fails
    r = sps.rankdata(np.where(spread, o, np.inf), method="min", axis=1)
    ns = spread.sum(axis=1, keepdims=True)
    raw = np.where(ns > 1, lo + (hi - lo) * (r - 1) / np.maximum(ns - 1, 1), lo)
    return np.where(meets, 1.0, np.where(fails, 4.0, scoring.round_half_up(raw)))


def _score_matrix(md: MetricData, v: np.ndarray, fixed_scores: np.ndarray) -> np.ndarray:
    """Scores (replicates × rows) of one metric, by the rules of :func:`metrics._scores`."""
    s = md.metric.scoring
    b = v.shape[0]
    if md.kind == "fixed" or s.method == "bracket":
        return np.broadcast_to(fixed_scores, (b, len(fixed_scores)))
    judged = v / md.frame["factor"].to_numpy(float)[None, :] if md.judge_observed else v
    if s.method == "bands":
        return metrics_mod.score_bands(judged.ravel(), s.bands or []).reshape(v.shape)
    out = np.full(v.shape, np.nan)
    tt = md.frame["trust_type"].to_numpy()
    for types in metrics_mod.comparator_groups(md.metric):
        cols = np.flatnonzero(np.isin(tt, types) & ~np.isnan(v).any(axis=0))
        if len(cols):
            out[:, cols] = _ranked_matrix(v[:, cols], md.metric.direction, s.standard, s.floor, judged[:, cols])
    return out


def _fast_league(
    qd: QuarterData, scores: Mapping[str, np.ndarray], obs_scores: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(2-dp averages, adjusted segments, ranks) of every replicate from each metric's score matrix
    (:func:`_score_matrix`)."""
    codes = qd.codes
    where = pd.Index(codes)
    b = next(iter(scores.values())).shape[0]
    # sums by trust (rows) and replicate (columns): each metric's scores added as rows of a contiguous array, in
    # the metrics' order (the same sums, several times faster than columns of a (replicates, trusts) array)
    num = np.zeros((len(codes), b))
    den = np.zeros((len(codes), b))
    groups: dict[str, list[MetricData]] = {}
    for md in qd.metrics:
        if md.metric.combine_group:
            groups.setdefault(md.metric.combine_group, []).append(md)
            continue
        cols = where.get_indexer(md.frame["trust_code"])
        keep = cols >= 0
        s = scores[md.metric.id][:, keep].T
        ok = ~np.isnan(s)
        num[cols[keep]] += np.where(ok, s, 0.0) * md.metric.weight  # one row per trust: no repeated rows
        den[cols[keep]] += ok * md.metric.weight
    for g, mds in sorted(groups.items()):
        if any(md.simulated.any() for md in mds):
            raise _FallBack(f"combination group {g!r} has simulated metrics")
        rows = obs_scores[obs_scores["combine_group"] == g].dropna(subset=["score"])
        units = scoring.combine_scores(rows, qd.combine_rules)
        at = where.get_indexer(units["trust_code"])
        for i, score, weight in zip(at, units["score"].to_numpy(float), units["weight"].to_numpy(float)):
            if i >= 0:
                num[i] += score * weight
                den[i] += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = scoring.round_half_up(np.ascontiguousarray((num / den).T))
    avg = np.asarray(avg, float).reshape(b, len(codes))
    tt = qd.trusts["trust_type"].to_numpy()
    obs_avg = pd.Series(avg[0], index=codes)
    fixed_cuts = scoring._cut_points(
        obs_avg, pd.Series(tt, index=codes), qd.segmentation_rule, qd.thresholds, pool_types=qd.pool_types
    )
    pooled_cuts = None
    pooled_rule = qd.segmentation_rule == "quartiles_pooled"
    if pooled_rule:  # as scoring._pool_mask: the pooled types' averages
        pool = np.ones(len(tt), bool) if qd.pool_types is None else np.isin(tt, qd.pool_types)
        pool &= ~np.isin(tt, ICB_TYPES)  # ICBs are never pooled with providers (scoring._pool_mask)
        if pool.any():
            pooled_cuts = _row_quartiles(avg[:, pool])[:, :, None]
    seg = np.zeros((b, len(codes)), dtype=np.int64)
    rank = np.zeros((b, len(codes)), dtype=np.int64)
    cents = np.floor(np.round(avg * 100.0, 6) + 0.5).astype(np.int64)
    for t in sorted(set(tt)):
        cols = np.flatnonzero(tt == t)
        a = avg[:, cols]
        icb_pooled = pooled_rule and t in ICB_TYPES  # as scoring._cut_points: ICBs among ICBs
        if qd.segmentation_rule == "quartiles_within_type" or icb_pooled:
            cuts = np.percentile(a, scoring.QUARTILES, axis=1)[:, :, None]
        elif pooled_cuts is not None:
            cuts = pooled_cuts
        else:
            cuts = np.asarray(fixed_cuts[t], dtype=float)[:, None, None]
        sg = scoring._segment_from_cuts(a, cuts).astype(np.int64)
        sg = np.where(np.isin(sg, qd.override_from) & qd.in_deficit[cols][None, :], qd.override_to, sg)
        seg[:, cols] = sg
        rank[:, cols] = scoring._competition_rank_rows(sg * 100_000 + cents[:, cols])
    return avg, seg, rank


def _row_quartiles(a: np.ndarray) -> np.ndarray:
    """``numpy.nanpercentile(a, QUARTILES, axis=1)``, fast when every row has its NaNs in the same columns (a trust
    unscored in one replicate is unscored in all): the percentiles of the other columns, the very values
    ``nanpercentile`` computes row by row once it has dropped each row's NaNs."""
    nan = np.isnan(a)
    cols = nan.any(axis=0)
    if (nan == cols[None, :]).all() and not cols.all():
        return np.percentile(a[:, ~cols], scoring.QUARTILES, axis=1)
    return np.nanpercentile(a, scoring.QUARTILES, axis=1)


class _FallBack(Exception):
    pass


@dataclass
class MetricReplicates:
    """One metric's share of the replicate leagues: its scores in every replicate by the vectorised rules
    (:func:`_score_matrix`) and, for the first replicates (the check of :func:`league_replicates`), by the reference
    functions. It depends on nothing but the metric's data, the seed and the settings, so it can be kept between
    runs (:class:`MetricCache`)."""

    scores: np.ndarray  # (replicates, rows of the metric's frame)
    check_scores: np.ndarray  # (checked replicates, rows)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}scores": self.scores, f"{prefix}check_scores": self.check_scores}

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], prefix: str = "") -> MetricReplicates:
        return cls(arrays[f"{prefix}scores"], arrays[f"{prefix}check_scores"])


def _fixed_scores(qd: QuarterData, md: MetricData) -> np.ndarray:
    obs = qd.observed_scores()
    return obs.loc[obs["metric_id"] == md.metric.id, "score"].to_numpy(float)


def _metric_replicates(md: MetricData, v: np.ndarray, fixed: np.ndarray, check: int) -> MetricReplicates:
    """:class:`MetricReplicates` of one metric's replicate values ``v``; ``fixed``: its observed scores."""
    c = min(int(check), v.shape[0])
    if md.kind == "fixed":  # every replicate holds the observed values: the observed scores
        return MetricReplicates(_score_matrix(md, v, fixed), np.broadcast_to(fixed, (c, len(fixed))))
    check_scores = np.stack([_reference_metric_scores(md, v[i]) for i in range(c)]) if c else np.empty((0, v.shape[1]))
    return MetricReplicates(_score_matrix(md, v, fixed), check_scores)


def league_replicates(qd: QuarterData, values: Mapping[str, np.ndarray], check: int = 3) -> Replicates:
    """The league of every replicate of ``values`` (from :func:`draw_values` or :func:`null_values`).

    The fast vectorised path is checked against the reference path (the published league's functions) on the
    first ``check`` replicates; on any difference every replicate goes through the reference path (with a
    warning). Trusts keep the order of ``qd.trusts``."""
    mreps = {
        md.metric.id: _metric_replicates(md, values[md.metric.id], _fixed_scores(qd, md), check) for md in qd.metrics
    }
    return _league_from(qd, mreps, lambda: values, check)


def _league_from(
    qd: QuarterData,
    mreps: Mapping[str, MetricReplicates],
    values: Callable[[], Mapping[str, np.ndarray]],
    check: int,
) -> Replicates:
    """:func:`league_replicates` from each metric's :class:`MetricReplicates`; ``values`` gives the replicate values
    when the reference path has to compute every replicate."""
    b = next(iter(mreps.values())).scores.shape[0]
    obs_scores = qd.observed_scores()
    path = "vectorised"
    try:
        avg, seg, rank = _fast_league(qd, {k: r.scores for k, r in mreps.items()}, obs_scores)
        for i in range(min(int(check), b)):
            long = _long_scores(qd.metrics, {k: r.check_scores[i] for k, r in mreps.items()}, qd.long_template())
            ra, rs, rr = _reference_league_of(qd, long)
            if not (
                np.allclose(ra, avg[i], equal_nan=True) and np.array_equal(rs, seg[i]) and np.array_equal(rr, rank[i])
            ):
                raise _FallBack(f"replicate {i} differs from the reference scoring path")
    except _FallBack as exc:
        warnings.warn(
            f"sampling: the vectorised league disagrees with the scoring functions ({exc}); "
            "computing every replicate with the reference functions (slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        path = "reference"
        vals = values()
        res = [_reference_league(qd, {k: v[i] for k, v in vals.items()}) for i in range(b)]
        avg = np.stack([r[0] for r in res])
        seg = np.stack([r[1] for r in res]).astype(np.int64)
        rank = np.stack([r[2] for r in res]).astype(np.int64)
    return Replicates(qd.codes, qd.trusts["trust_type"].to_numpy(), avg, seg, rank, path)


def observed_league(qd: QuarterData) -> pd.DataFrame:
    """The league of the observed data by the reference path: ``trust_code, trust_type, average_score,
    segment`` (adjusted for the override, before segment 5) and ``rank``."""
    a, s, r = _reference_league(qd)
    return pd.DataFrame(
        {
            "trust_code": qd.codes,
            "trust_type": qd.trusts["trust_type"].to_numpy(),
            "average_score": a,
            "segment": s,
            "rank": r,
        }
    )


def _quantile(a: np.ndarray, q: float) -> np.ndarray:
    return np.quantile(a, q, axis=0, method="inverted_cdf")


RANK_INTERVAL_RULES = ("average_probability", "equal_tailed")
_LEVEL_STEP = 0.0025


def _central(ranks: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The central ``level`` interval of each column of replicate ranks (inverted-CDF quantiles, so its ends are
    ranks that occurred) and the share of replicates inside it."""
    tail = (1 - level) / 2
    lo, hi = _quantile(ranks, tail), _quantile(ranks, 1 - tail)
    return lo, hi, ((ranks >= lo) & (ranks <= hi)).mean(axis=0)


def _smallest_level(ranks: np.ndarray, level: float) -> float:
    """The smallest level on the grid 0.50, 0.5025, …, ``level`` whose central intervals hold on average at least
    ``level`` of the replicate ranks (bisection: the intervals, and so the share they hold, grow with the level)."""
    grid = np.minimum(0.5 + _LEVEL_STEP * np.arange(int(np.ceil((level - 0.5) / _LEVEL_STEP)) + 1), level)
    lo, hi = 0, len(grid) - 1  # the answer is grid[hi] when nothing smaller qualifies
    while lo < hi:
        mid = (lo + hi) // 2
        if _central(ranks, float(grid[mid]))[2].mean() >= level:
            hi = mid
        else:
            lo = mid + 1
    return float(grid[hi])


def rank_intervals(
    reps: Replicates, level: float = 0.95, rule: str = "average_probability"
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rank intervals of every trust: ``rank_interval_lower``, ``rank_interval_upper`` and
    ``rank_interval_probability`` (the share of replicates whose rank lies in the interval), and the central
    level used for each trust type.

    Ranks are whole numbers and often tied, so a central ``level`` interval of one trust's replicate ranks holds
    *more* than ``level`` of them (it cannot stop part-way through a rank): in the simulation study such intervals
    contained the true rank 98% of the time at ``level`` 0.95, and so did the intervals of the Bayes oracle.

    ``rule``:

    ``equal_tailed``
        The central ``level`` interval of each trust.
    ``average_probability`` (the project's default)
        Central intervals at the smallest level ``L`` ≤ ``level`` (a grid of step 0.25 points) at which the
        intervals of a trust type hold, averaged over its trusts, at least ``level`` of the replicate ranks. Each
        trust's own probability is published beside its interval. ``L`` is chosen from this quarter's replicates
        alone (not from the simulation study)."""
    if rule not in RANK_INTERVAL_RULES:
        raise ValueError(f"rank interval rule must be one of {RANK_INTERVAL_RULES}, got {rule!r}")
    n = len(reps.trusts)
    lower, upper, prob = np.zeros(n), np.zeros(n), np.zeros(n)
    levels: dict[str, float] = {}
    for t in sorted(set(reps.trust_type)):
        cols = np.flatnonzero(reps.trust_type == t)
        r = reps.rank[:, cols]
        chosen = _smallest_level(r, level) if rule == "average_probability" else level
        lower[cols], upper[cols], prob[cols] = _central(r, chosen)
        levels[str(t)] = round(chosen, 4)
    out = pd.DataFrame(
        {
            "trust_code": reps.trusts,
            "rank_interval_lower": lower.astype(int),
            "rank_interval_upper": upper.astype(int),
            "rank_interval_probability": prob,
        }
    )
    return out, levels


def summarise(reps: Replicates, level: float = 0.95, rule: str = "average_probability") -> pd.DataFrame:
    """Per trust: ``rank_median``, the rank interval of :func:`rank_intervals` (``rule``), ``average_interval_lower``
    / ``average_interval_upper`` (the central ``level`` interval of the 2-dp average score) and
    ``p_segment_1..4`` (share of replicates in each adjusted segment). The central level of the rank intervals of
    each trust type is in ``attrs["rank_interval_levels"]``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    tail = (1 - level) / 2
    intervals, levels = rank_intervals(reps, level, rule)
    out = pd.DataFrame(
        {
            "trust_code": reps.trusts,
            "rank_median": _quantile(reps.rank, 0.5).astype(int),
            "rank_interval_lower": intervals["rank_interval_lower"].to_numpy(),
            "rank_interval_upper": intervals["rank_interval_upper"].to_numpy(),
            "rank_interval_probability": intervals["rank_interval_probability"].to_numpy(),
            "average_interval_lower": _quantile(reps.average, tail),
            "average_interval_upper": _quantile(reps.average, 1 - tail),
        }
    )
    for k in range(1, 5):
        out[f"p_segment_{k}"] = (reps.segment == k).mean(axis=0)
    out.attrs["rank_interval_levels"] = levels
    return out


def sample_league(
    qd: QuarterData,
    replicates: int,
    seed: int,
    level: float = 0.95,
    shrinkage: bool = True,
    check: int = 3,
    rule: str = "average_probability",
    cache: MetricCache | None = None,
) -> tuple[pd.DataFrame, Replicates]:
    """:func:`summarise` of :func:`league_replicates` on :func:`draw_values` (each metric's stream from ``seed``).

    With a ``cache``, each metric's :class:`MetricReplicates` are kept under a key of everything they depend on —
    the metric's definition and data (its rows, from which its prior is pooled), ``seed``, ``replicates``,
    ``shrinkage`` and ``check`` — and reused when they are the same: after one metric's data changed, only that
    metric is drawn and scored again. The result is the same with or without the cache."""
    b = int(replicates)
    describe = {"what": "draws", "seed": int(seed), "replicates": b, "shrinkage": bool(shrinkage), "check": int(check)}

    def one(md: MetricData) -> MetricReplicates:
        def work() -> dict[str, np.ndarray]:
            v = _draw_metric(md, metric_rng(seed, md.metric.id, DRAWS), b, shrinkage)
            return _metric_replicates(md, v, _fixed_scores(qd, md), check).arrays()

        if md.kind == "fixed":
            return MetricReplicates.of(work())
        return MetricReplicates.of(_cached(cache, content_key(**describe, data=_metric_describe(md)), work))

    mreps = {md.metric.id: one(md) for md in qd.metrics}
    reps = _league_from(qd, mreps, lambda: draw_values(qd, seed, b, shrinkage), check)
    return summarise(reps, level, rule), reps


def _cached(cache: MetricCache | None, key: str, work: Callable[[], dict[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    """The arrays kept under ``key``, or ``work()`` (then kept)."""
    if cache is None:
        return work()
    hit = cache.get(key)
    if hit is not None:
        return hit
    arrays = work()
    cache.put(key, arrays)
    return arrays


# --------------------------------------------------------------------------------------------------------
# change between two quarters
# --------------------------------------------------------------------------------------------------------
def _mid_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Mid-p value of each column: (#{null > observed} + ½·#{null = observed}) / B. Ranks and segments are
    discrete, so the ordinary (inclusive) p-value would test at well below its nominal size."""
    gt = (null > observed[None, :]).sum(axis=0)
    eq = (null == observed[None, :]).sum(axis=0)
    return (gt + 0.5 * eq) / null.shape[0]


CHANGE_COLUMNS = [
    "trust_code",
    "previous_segment",
    "previous_rank",
    "segment_change",
    "rank_change",
    "rank_change_p_value",
    "change_beyond_chance",
    "segment_change_p_value",
    "p_segment_change_by_chance",
]


def _null_replicates(
    prev: QuarterData, now: QuarterData, seed: int, b: int, check: int, cache: MetricCache | None
) -> tuple[dict[str, MetricReplicates], dict[str, MetricReplicates]]:
    """Each metric's :class:`MetricReplicates` of both quarters under no change (:func:`null_values`), kept in
    ``cache`` under a key of both quarters' data of the metric, ``seed``, ``b`` and ``check``."""
    qds = (prev, now)
    ids = [{md.metric.id: md for md in qd.metrics} for qd in qds]
    out: tuple[dict[str, MetricReplicates], dict[str, MetricReplicates]] = ({}, {})
    for mid in sorted(set(ids[0]) | set(ids[1])):
        mds = (ids[0].get(mid), ids[1].get(mid))

        def work(mds=mds, mid=mid) -> dict[str, np.ndarray]:
            pair = _null_metric(mds[0], mds[1], metric_rng(seed, mid, NULL), b)
            arrays: dict[str, np.ndarray] = {}
            for qi, (md, v) in enumerate(zip(mds, pair)):
                if md is not None and v is not None:
                    arrays |= _metric_replicates(md, v, _fixed_scores(qds[qi], md), check).arrays(f"q{qi}_")
            return arrays

        fixed = all(md is None or md.kind == "fixed" for md in mds)
        key = content_key(
            what="null", seed=seed, replicates=b, check=int(check), data=[_metric_describe(md) for md in mds]
        )
        arrays = work() if fixed else _cached(cache, key, work)
        for qi, md in enumerate(mds):
            if md is not None:
                out[qi][mid] = MetricReplicates.of(arrays, f"q{qi}_")
    return out


def change_test(
    prev: QuarterData,
    now: QuarterData,
    replicates: int,
    seed: int,
    level: float = 0.95,
    check: int = 3,
    cache: MetricCache | None = None,
) -> pd.DataFrame:
    """Test, per trust in both leagues (same type), whether its change of rank and segment between the two
    quarters is larger than chance alone would give.

    The null distribution comes from a joint simulation of both quarters under "no trust changed"
    (:func:`null_values`): in every replicate both quarters' leagues are recomputed and the trust's change of
    rank Δr* and segment Δs* recorded. ``rank_change_p_value`` is the two-sided mid-p value
    (#{|Δr*| > |Δr|} + ½·#{|Δr*| = |Δr|})/B of the observed change Δr (1 when the rank did not change);
    ``change_beyond_chance`` = p < 1 − ``level``.
    ``segment_change_p_value`` is the same for the segment (1 when the segment did not change), and
    ``p_segment_change_by_chance``
    = P(Δs* ≠ 0): summed over trusts, the number of segment changes expected from chance alone.
    Observed segments and ranks are recomputed from both quarters' data (adjusted segment 1–4, before segment 5).
    With a ``cache``, each metric's null replicates are kept and reused as in :func:`sample_league`.
    """
    b = int(replicates)
    m0, m1 = _null_replicates(prev, now, int(seed), b, check, cache)
    r0 = _league_from(prev, m0, lambda: null_values(prev, now, seed, b)[0], check)
    r1 = _league_from(now, m1, lambda: null_values(prev, now, seed, b)[1], check)
    o0, o1 = observed_league(prev), observed_league(now)
    both = o1.merge(o0, on="trust_code", suffixes=("", "_prev"))
    both = both[both["trust_type"] == both["trust_type_prev"]]
    i1 = pd.Index(r1.trusts).get_indexer(both["trust_code"])
    i0 = pd.Index(r0.trusts).get_indexer(both["trust_code"])
    dr = r1.rank[:, i1] - r0.rank[:, i0]
    ds = r1.segment[:, i1] - r0.segment[:, i0]
    obs_dr = (both["rank"] - both["rank_prev"]).to_numpy(float)
    obs_ds = (both["segment"] - both["segment_prev"]).to_numpy(float)
    p_rank = np.where(obs_dr == 0, 1.0, _mid_p(np.abs(dr), np.abs(obs_dr)))
    p_seg = np.where(obs_ds == 0, 1.0, _mid_p(np.abs(ds), np.abs(obs_ds)))
    out = pd.DataFrame(
        {
            "trust_code": both["trust_code"].to_numpy(),
            "previous_segment": both["segment_prev"].astype("Int64").to_numpy(),
            "previous_rank": both["rank_prev"].astype("Int64").to_numpy(),
            "segment_change": obs_ds.astype(int),
            "rank_change": obs_dr.astype(int),
            "rank_change_p_value": p_rank,
            "change_beyond_chance": p_rank < 1 - level,
            "segment_change_p_value": p_seg,
            "p_segment_change_by_chance": (ds != 0).mean(axis=0),
        }
    )
    out.attrs.update({"replicates": int(replicates), "seed": seed, "level": level, "path": (r0.path, r1.path)})
    return out
