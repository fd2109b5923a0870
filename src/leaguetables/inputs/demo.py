"""Synthetic demo data: ``python -m leaguetables.inputs.demo [--out data/demo] [--seed N]``.

Generates the four contract files for 205 obviously fictional trusts (134 acute, 61 mental health and community,
10 ambulance) over sixteen quarters (2022-23-Q1 … 2025-26-Q4), for every metric of the ``demo`` catalogue: the
eight standard quarters 2024-25-Q1 … 2025-26-Q4 exactly as the original eight-quarter demo drew them, and eight
earlier quarters from a second random stream (enough history for statistical process control).

With the real geography present (``../shared/data/real``), :func:`write` adds the record-level part of the latest
quarter: synthetic HES-format records for the same acute trusts (``records/``, :mod:`leaguetables.inputs.records`),
their standardised ratios as the catalogue's ``rl_*`` metrics, and the 42 fictional integrated care boards
(``DEMO-I01`` …, organisation type ``icb``) with their residents' standardised admissions. Every other row is the
same with or without it.

Trust codes are ``DEMO-A001`` (acute), ``DEMO-M001`` (mental health and community) and ``DEMO-B001`` (ambulance):
real ODS codes never contain a hyphen, so they cannot collide. Names are invented place names followed by
"Demo … Trust" and carry no "NHS".

Counts are drawn from a known model so that tests can check the modelling recovers it:

* proportions: ``x ~ Binomial(n, expit(α + Σ β_k z_k + u_i + γ t))``;
* rates: ``x ~ Poisson(n · exp(α + Σ β_k z_k + u_i + γ t))`` (a gamma-Poisson mixture where the catalogue's model
  allows overdispersion);
* ``z_k`` are the demographic covariates standardised within trust type (mean and standard deviation with
  ``ddof=1`` over all trusts of the type); ``u_i`` is a trust effect, partly shared across metrics through a latent
  trust quality so that the composite score means something.

The true coefficients (``truth/coefficients.csv``), trust effects (``truth/trust_effects.csv``), the
standardisation used (``truth/standardisation.csv``), the true value and true expected value of every
trust-quarter-metric (``truth/values.csv``: ``true_numerator`` m = n·expit(η) or n·exp(η) without the gamma mixing
draw, ``true_expected`` E* the same with u_i = 0, ``true_oe`` = m/E*), planted outliers and changes
(``truth/planted.csv``) and the scenario (``truth/scenario.csv``) are saved beside the data.

Scenarios for the simulation study (:mod:`leaguetables.validate`) are arguments of :func:`generate`: a separate
noise seed over a fixed truth, over-adjustment (quality correlated with deprivation, deprivation without effect),
planted outliers, a true change between two quarters, and no change at all between them.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import PROJECT_ROOT, DemoMetricModel, load_catalogue, load_demo_models
from leaguetables.inputs.demo_marker import DEMO_MARKER, is_demo_data  # noqa: F401 - is_demo_data re-exported
from leaguetables.inputs.demo_register import COVARS, make_demographics, make_trusts
from leaguetables.inputs.records import demo_quarter, geography
from leaguetables.inputs.records import generate as records_generate

DEFAULT_SEED = 20240401
DEFAULT_OUT = PROJECT_ROOT / "data" / "demo"
STANDARD_QUARTERS = [f"2024-25-Q{q}" for q in range(1, 5)] + [f"2025-26-Q{q}" for q in range(1, 5)]
EARLY_QUARTERS = [f"{y}-{(y + 1) % 100:02d}-Q{q}" for y in (2022, 2023) for q in range(1, 5)]
QUARTERS = EARLY_QUARTERS + STANDARD_QUARTERS  # 16 quarters, oldest first: enough for statistical process control


def _spec(model: DemoMetricModel) -> dict:
    """A metric's generator parameters as given in the configuration, a Poisson ``rate`` as the intercept
    ``alpha`` = log ``rate``."""
    out = model.model_dump(exclude_unset=True)
    if "rate" in out:
        out["alpha"] = np.log(out.pop("rate"))
    return out


# Per metric (config/demo/metric-models.yaml): family, intercept, base denominator for an average trust, covariate
# effects (per SD), trust-effect SD, trend per quarter, weight on the shared latent quality, and (rates) gamma-mixing
# shape for overdispersion.
SPEC: dict[str, dict] = {k: _spec(m) for k, m in load_demo_models("metric-models").items()}
RATINGS = ["Outstanding", "Good", "Requires improvement", "Inadequate"]


def _standardise(demo: pd.DataFrame, trusts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = demo.set_index("trust_code")
    ttype = trusts.set_index("trust_code")["trust_type"].reindex(d.index)
    z = {c: np.full(len(d), np.nan) for c in COVARS}
    rows = []
    for t in trusts["trust_type"].unique():
        at = (ttype == t).to_numpy()
        for c in COVARS:
            col = pd.Series(d[c].to_numpy(float)[at])  # the type's values in order: Series.mean and .std as before
            mu, sd = col.mean(), col.std(ddof=1)
            z[c][at] = ((col - mu) / sd).to_numpy()
            rows.append({"trust_type": t, "covariate": c, "mean": mu, "sd": sd})
    return pd.DataFrame(z, index=d.index, columns=COVARS), pd.DataFrame(rows)


def _streams(seed: int, noise_seed: int | None):
    """``(truth, noise, truth_early, noise_early)`` generators: the first pair for the standard quarters
    (:data:`STANDARD_QUARTERS`), the second for the earlier history quarters (:data:`EARLY_QUARTERS`).

    With ``noise_seed=None`` every draw of the standard quarters comes from the one stream ``default_rng(seed)``, in
    the order of the original eight-quarter demo (so those quarters are unchanged), and every draw of the earlier
    quarters from a second stream ``default_rng([seed, 2])``. With a ``noise_seed`` the sampling noise (binomial,
    Poisson and gamma-mixing draws) comes from ``default_rng(noise_seed)`` instead, so that the truth (trusts,
    demographics, trust effects, activity, reported values, ratings, status and missingness) is the same for every
    noise seed: the simulation study redraws the data from one fixed truth."""
    truth, early = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    if noise_seed is None:
        return truth, truth, early, early
    noise = np.random.default_rng(noise_seed)
    return truth, noise, early, noise


def _sign_better(spec: dict) -> float:
    """+1 when a higher trust effect is better quality (the latent-quality weight ``q`` is positive), else −1."""
    return 1.0 if spec["q"] >= 0 else -1.0


@dataclass
class _Draw:
    """What the metric generators share: the random streams, the trusts, their latent quality and the scenario,
    and the rows they append to."""

    rt: np.random.Generator
    rn: np.random.Generator
    rt_early: np.random.Generator
    rn_early: np.random.Generator
    codes: np.ndarray
    ttype: np.ndarray
    size: np.ndarray
    quality: np.ndarray
    z: pd.DataFrame
    planted: dict
    moved: np.ndarray
    changed_from: int
    held: int | None
    after_k: int | None
    deprivation_effect: bool
    outlier_scale: str = "between_trust"
    outlier_quarters: Mapping[str, int] = field(default_factory=dict)
    blocks: list = field(default_factory=list)
    truth_blocks: list = field(default_factory=list)
    coef_rows: list = field(default_factory=list)
    eff_rows: list = field(default_factory=list)

    @functools.cached_property
    def pos(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.codes)}


def _within_variance(spec: dict, size: float, z: pd.Series, beta: Mapping[str, float]) -> float:
    """The sampling variance of one quarter's model-scale value (logit, log or the reported value) of an average
    trust (trust effect 0) of relative ``size`` and standardised covariates ``z`` in the last demo quarter."""
    if spec["kind"] == "value":
        return float(spec["noise"]) ** 2
    n = max(round(spec["base"] * size), 20)
    eta0 = spec["alpha"] + sum(b * float(z[cov]) for cov, b in beta.items())
    if spec["kind"] == "binomial":
        p = 1 / (1 + np.exp(-eta0))
        return 1 / (n * p * (1 - p))
    return 1 / (n * np.exp(eta0)) + (1 / spec["shape"] if "shape" in spec else 0.0)


def _check_scenario(
    quality_deprivation_r: float, change, change_quarters, hold_quarters: bool, outlier_scale: str = "between_trust"
) -> None:
    if outlier_scale not in ("between_trust", "funnel"):
        raise ValueError(f"outlier_scale must be 'between_trust' or 'funnel', got {outlier_scale!r}")
    if not -1 < quality_deprivation_r < 1:
        raise ValueError(f"quality_deprivation_r must lie in (-1, 1), got {quality_deprivation_r!r}")
    if (change or hold_quarters) and change_quarters is None:
        raise ValueError("change and hold_quarters need change_quarters=(before, after)")
    if change_quarters is not None:
        before, after = change_quarters
        if before not in QUARTERS or after not in QUARTERS or QUARTERS.index(before) >= QUARTERS.index(after):
            raise ValueError(f"change_quarters must be two demo quarters in order, got {change_quarters!r}")


def generate(
    seed: int = DEFAULT_SEED,
    *,
    noise_seed: int | None = None,
    quality_deprivation_r: float = 0.0,
    deprivation_effect: bool = True,
    outliers=(),
    change=(),
    change_quarters: tuple[str, str] | None = None,
    hold_quarters: bool = False,
    outlier_scale: str = "between_trust",
    outlier_quarters: Mapping[str, int] | None = None,
) -> dict[str, pd.DataFrame]:
    """Generate the demo inputs and the truth behind them (deterministic for its arguments).

    The defaults give the standard demo. The other arguments are the scenarios of the simulation study
    (:mod:`leaguetables.validate`):

    ``noise_seed``
        Draw the sampling noise from its own seed, keeping the truth of ``seed`` fixed (see :func:`_streams`).
    ``quality_deprivation_r``, ``deprivation_effect``
        Over-adjustment: latent trust quality correlated with deprivation (``r``: correlation with minus the
        within-type standardised ``imd_score``, so that deprived areas have worse care) and, with
        ``deprivation_effect=False``, no true effect of ``imd_score`` on any metric (its true coefficient is 0).
    ``outliers``, ``outlier_scale``, ``outlier_quarters``
        Planted outliers: ``(metric_id, trust_code, k)`` sets the trust effect of that metric to ``k`` SD, on the
        model's scale. ``outlier_scale="between_trust"``: ``k`` times the metric's between-trust SD (3 SD above or
        below the average trust). ``outlier_scale="funnel"``: ``k`` times the SD of the trust's funnel, √(between-
        trust variance + the trust's within-trust variance) — the sampling variance of the model-scale value of an
        average trust of its size in the last demo quarter (binomial 1/(n·p·(1−p)); Poisson 1/E plus the gamma
        mixing variance 1/shape; reported values the noise variance), divided by ``outlier_quarters[metric_id]``
        (default 1) when the funnel pools that many quarters. A funnel-scale outlier sits, on average, ``k``
        funnel SDs from the target: on the 99.8% limit at ``k = 3``.
    ``change``, ``change_quarters``
        A true change: ``(trust_code, k)`` moves the trust's latent quality by ``k`` SD (positive = better) from the
        second quarter of ``change_quarters = (before, after)`` on, i.e. the effect of each of its modelled and
        reported-value metrics by ``k`` × the metric's between-trust SD in the better (or worse) direction.
    ``hold_quarters``
        No change between the two ``change_quarters`` other than ``change``: the second quarter has the first's
        activity (denominators), trend and seasonal terms, reported values, ratings, status and missing or
        suppressed figures; only the sampling noise is new.

    Returns the four contract tables and the truth: ``truth/coefficients``, ``truth/trust_effects`` (the persistent
    effect ``u_i`` per metric), ``truth/standardisation``, ``truth/values`` (per quarter, trust and metric: the
    denominator, the true numerator ``m = n·expit(η)`` or ``n·exp(η)`` without the gamma mixing draw, the true
    expected ``E*`` (the same with ``u_i = 0``), the true value ``m/n × multiplier`` and the true O/E ``m/E*``; for
    reported values and ratings the reported figure itself), ``truth/planted`` (outliers and changes) and
    ``truth/scenario`` (the arguments).
    """
    _check_scenario(quality_deprivation_r, change, change_quarters, hold_quarters, outlier_scale)
    rt, rn, rt_early, rn_early = _streams(seed, noise_seed)
    catalogue = load_catalogue("demo")
    trusts = make_trusts(rt)
    demo = make_demographics(rt, trusts)
    z, standardisation = _standardise(demo, trusts)
    codes = trusts["trust_code"].to_numpy()
    size = rt.lognormal(0, 0.45, len(trusts))
    quality = rt.normal(0, 1, len(trusts))  # latent trust quality shared across metrics (higher = better)
    if quality_deprivation_r:
        r = quality_deprivation_r
        quality = -r * z["imd_score"].to_numpy(float) + np.sqrt(1 - r * r) * quality
    planted = {(m, c): float(k) for m, c, k in outliers}
    unknown = sorted({c for _, c in planted} - set(codes)) + sorted({c for c, _ in change} - set(codes))
    if unknown:
        raise ValueError(f"unknown trust codes in the scenario: {unknown[:5]}")
    d = _Draw(
        rt,
        rn,
        rt_early,
        rn_early,
        codes,
        trusts["trust_type"].to_numpy(),
        size,
        quality,
        z,
        planted,
        np.zeros(len(trusts)),
        QUARTERS.index(change_quarters[1]) if change_quarters else len(QUARTERS),
        QUARTERS.index(change_quarters[0]) if (change_quarters and hold_quarters) else None,
        QUARTERS.index(change_quarters[1]) if change_quarters else None,
        deprivation_effect,
        outlier_scale,
        dict(outlier_quarters or {}),
    )
    for c, k in change:
        d.moved[d.pos[c]] = float(k)
    for metric in catalogue.metrics:
        if metric.id not in SPEC:  # record-level metrics: drawn from records (write), no aggregate model
            continue
        _metric_rows(d, metric)
    obs = _missing_and_suppressed(_frame(d.blocks), d, change_quarters)
    status = _status(obs, d, change_quarters)
    sort = ["quarter", "trust_code", "metric_id"]
    order = {q: i for i, q in enumerate(QUARTERS)}
    truth_values = _frame(d.truth_blocks)
    truth_values = truth_values.sort_values(
        sort, key=lambda s: s.map(order) if s.name == "quarter" else s, kind="mergesort"
    ).reset_index(drop=True)
    arguments = {
        "seed": str(seed),
        "noise_seed": "" if noise_seed is None else str(noise_seed),
        "quality_deprivation_r": repr(float(quality_deprivation_r)),
        "deprivation_effect": str(bool(deprivation_effect)),
        "change_quarters": "" if change_quarters is None else " ".join(change_quarters),
        "hold_quarters": str(bool(hold_quarters)),
    }
    if outliers:
        arguments["outlier_scale"] = outlier_scale
        arguments["outlier_quarters"] = " ".join(f"{m}={k}" for m, k in sorted((outlier_quarters or {}).items()))
    return {
        "trusts": trusts,
        "observations": obs.sort_values(sort, kind="mergesort").reset_index(drop=True),
        "demographics": demo,
        "status": status,
        "truth/coefficients": pd.DataFrame(d.coef_rows),
        "truth/trust_effects": pd.DataFrame(d.eff_rows),
        "truth/standardisation": standardisation,
        "truth/values": truth_values,
        "truth/planted": _planted_frame(planted, change, change_quarters),
        "truth/scenario": pd.DataFrame([{"argument": k, "value": v} for k, v in arguments.items()]),
    }


def _planted_frame(
    planted: dict[tuple[str, str], float], change, change_quarters: tuple[str, str] | None
) -> pd.DataFrame:
    """``truth/planted``: the planted outliers (metric, trust, SD multiple) and the true changes (trust, SD multiple,
    the quarter they start in)."""
    rows = [
        {"kind": "outlier", "metric_id": m, "trust_code": c, "sd_multiple": k, "from_quarter": None}
        for (m, c), k in sorted(planted.items())
    ]
    rows += [
        {
            "kind": "change",
            "metric_id": None,
            "trust_code": c,
            "sd_multiple": float(k),
            "from_quarter": change_quarters[1] if change_quarters else None,
        }
        for c, k in sorted(change)
    ]
    return pd.DataFrame(rows, columns=["kind", "metric_id", "trust_code", "sd_multiple", "from_quarter"])


def _metric_rows(d: _Draw, metric) -> None:
    """One metric's observations and truth over every quarter (draws in the order of the original generator)."""
    spec = SPEC[metric.id]
    idx = np.flatnonzero(np.isin(d.ttype, metric.trust_types))
    own = d.rt.normal(0, 1, len(d.codes))
    kind = spec["kind"]
    beta = dict(spec.get("beta", {}))
    if not d.deprivation_effect and "imd_score" in beta:
        beta["imd_score"] = 0.0
    if kind in ("binomial", "poisson", "value"):
        q = spec["q"]
        u = spec["sd"] * (q * d.quality + np.sqrt(1 - q * q) * own)
        for (mid, c), k in d.planted.items():
            if mid == metric.id:
                u[d.pos[c]] = k * _outlier_sd(d, spec, beta, mid, d.pos[c])
        shift = d.moved * spec["sd"] * _sign_better(spec)
        for i in idx:
            d.eff_rows.append({"metric_id": metric.id, "trust_code": d.codes[i], "effect": u[i]})
        if kind == "value":
            _value_rows(d, metric, spec, idx, u, shift)
        else:
            _count_rows(d, metric, spec, beta, idx, u, shift)
    elif kind == "bracket":
        _bracket_rows(d, metric, spec, idx, own)


def _outlier_sd(d: _Draw, spec: dict, beta: Mapping[str, float], metric_id: str, i: int) -> float:
    """The SD a planted outlier of trust ``i`` is measured in: between-trust, or of the trust's own funnel."""
    if d.outlier_scale != "funnel":
        return float(spec["sd"])
    within = _within_variance(spec, d.size[i], d.z.iloc[i], beta)
    return float(np.sqrt(spec["sd"] ** 2 + within / d.outlier_quarters.get(metric_id, 1)))


def _count_rows(d: _Draw, metric, spec: dict, beta: dict, idx: np.ndarray, u: np.ndarray, shift: np.ndarray) -> None:
    """Binomial or Poisson counts: the model's truth (coefficients, E*, m) and the drawn numerators."""
    base = np.full(len(d.codes), spec["alpha"])
    for cov, b in beta.items():
        base = base + b * d.z[cov].to_numpy(float)
    for t in metric.trust_types:
        d.coef_rows.append({"metric_id": metric.id, "trust_type": t, "term": "Intercept", "value": spec["alpha"]})
        for cov, b in beta.items():
            d.coef_rows.append({"metric_id": metric.id, "trust_type": t, "term": cov, "value": b})
    dens: dict[int, np.ndarray] = {}
    for k, quarter in enumerate(QUARTERS):
        early = quarter in EARLY_QUARTERS
        t_rng, n_rng = (d.rt_early, d.rn_early) if early else (d.rt, d.rn)
        season = 1.0 + 0.05 * np.cos(2 * np.pi * (k % 4) / 4)
        n = np.maximum(np.round(spec["base"] * d.size[idx] * season * t_rng.lognormal(0, 0.05, len(idx))), 20)
        kt = k
        if d.held is not None and k == d.after_k:
            n, kt = dens[d.held], d.held  # no change: the earlier quarter's activity, trend and season
        dens[k] = n
        eff = u[idx] + (shift[idx] if k >= d.changed_from else 0.0)
        eta0 = base[idx] + spec["trend"] * (kt - (len(QUARTERS) - 1))
        eta = eta0 + eff
        if spec["kind"] == "binomial":
            m, e_star = n / (1 + np.exp(-eta)), n / (1 + np.exp(-eta0))
            x = n_rng.binomial(n.astype(np.int64), 1 / (1 + np.exp(-eta)))
        else:
            m, e_star = n * np.exp(eta), n * np.exp(eta0)
            mu = m
            if "shape" in spec:  # gamma-Poisson mixture: extra-Poisson variation within trust-quarter
                mu = mu * n_rng.gamma(spec["shape"], 1 / spec["shape"], len(idx))
            x = n_rng.poisson(mu)
        d.blocks.append(_block(quarter, d.codes[idx], metric.id, numerator=x, denominator=n))
        d.truth_blocks.append(
            _truth_block(
                quarter,
                d.codes[idx],
                metric.id,
                denominator=n,
                true_numerator=m,
                true_expected=e_star,
                true_value=m / n * metric.multiplier,
                true_oe=m / e_star,
            )
        )


def _value_rows(d: _Draw, metric, spec: dict, idx: np.ndarray, u: np.ndarray, shift: np.ndarray) -> None:
    """Reported values: mean + trust effect + (quarterly or annual) noise, rounded as published."""
    annual_noise: dict[str, np.ndarray] = {}
    unshifted: dict[int, np.ndarray] = {}
    for k, quarter in enumerate(QUARTERS):
        t_rng = d.rt_early if quarter in EARLY_QUARTERS else d.rt
        year = quarter[:7]
        draw = t_rng.normal(0, spec["noise"] + 1e-12, len(d.codes))  # drawn every quarter (stream order)
        noise = annual_noise.setdefault(year, draw) if spec.get("annual") else draw
        unshifted[k] = spec["mean"] + u + noise
        if d.held is not None and k == d.after_k:
            unshifted[k] = unshifted[d.held]  # no change: the earlier quarter's reported value
        v = np.round(unshifted[k] + (shift if k >= d.changed_from else 0.0), spec["decimals"])
        d.blocks.append(_block(quarter, d.codes[idx], metric.id, value=v[idx]))
        d.truth_blocks.append(_truth_block(quarter, d.codes[idx], metric.id, true_value=v[idx]))


def _bracket_rows(d: _Draw, metric, spec: dict, idx: np.ndarray, own: np.ndarray) -> None:
    """Ratings: brackets of a latent score, with a round of re-inspections at the start of 2025/26."""
    latent = spec["q"] * d.quality + np.sqrt(1 - spec["q"] ** 2) * own
    cuts = np.quantile(latent, [0.08, 0.70, 0.93])
    rating = np.array(RATINGS)[3 - np.searchsorted(cuts, latent)]
    ratings: dict[int, np.ndarray] = {}
    for k, quarter in enumerate(QUARTERS):
        if quarter == STANDARD_QUARTERS[4]:  # a round of re-inspections at the start of 2025/26
            change_r = d.rt.random(len(d.codes)) < 0.15
            step = np.where(d.rt.random(len(d.codes)) < 0.5, -1, 1)
            rpos = np.clip(np.array([RATINGS.index(r) for r in rating]) + step, 0, 3)
            rating = np.where(change_r, np.array(RATINGS)[rpos], rating)
        ratings[k] = ratings[d.held] if (d.held is not None and k == d.after_k) else rating
        rating = ratings[k]
        d.blocks.append(_block(quarter, d.codes[idx], metric.id, category=rating[idx].astype(object)))
        d.truth_blocks.append(_truth_block(quarter, d.codes[idx], metric.id, true_category=rating[idx].astype(object)))


def _missing_and_suppressed(obs: pd.DataFrame, d: _Draw, change_quarters) -> pd.DataFrame:
    """A few suppressed figures (withheld by the source) and a few missing rows (not submitted): drawn over the
    rows of each stream in generation order (the standard quarters exactly as the original demo drew them)."""
    obs["suppressed"] = False
    keep = np.ones(len(obs), dtype=bool)
    sup = np.zeros(len(obs), dtype=bool)
    for stream, rows in (
        (d.rt, ~obs["quarter"].isin(EARLY_QUARTERS).to_numpy()),
        (d.rt_early, obs["quarter"].isin(EARLY_QUARTERS).to_numpy()),
    ):
        where = np.flatnonzero(rows)
        sup[where[stream.random(len(where)) < 0.004]] = True
        keep[where[stream.random(len(where)) < 0.004]] = False
    if d.held is not None:  # the later quarter keeps the earlier quarter's suppressed and missing figures
        key = ["trust_code", "metric_id"]
        b_rows = np.flatnonzero((obs["quarter"] == change_quarters[0]).to_numpy())
        a_rows = np.flatnonzero((obs["quarter"] == change_quarters[1]).to_numpy())
        ref = pd.DataFrame(
            {"sup": sup[b_rows], "keep": keep[b_rows]}, index=pd.MultiIndex.from_frame(obs.loc[b_rows, key])
        )
        k_idx = pd.MultiIndex.from_frame(obs.loc[a_rows, key])
        sup[a_rows] = ref["sup"].reindex(k_idx).to_numpy(bool)
        keep[a_rows] = ref["keep"].reindex(k_idx).to_numpy(bool)
    obs.loc[sup, "suppressed"] = True
    obs.loc[sup, ["numerator", "denominator", "value"]] = np.nan
    obs.loc[sup, "category"] = None
    return obs.loc[keep].reset_index(drop=True)


def _status(obs: pd.DataFrame, d: _Draw, change_quarters) -> pd.DataFrame:
    """Finance and status: a deficit follows the planned surplus/deficit; deficit support for the worst plans; the
    improvement programme (segment 5) for the trusts of lowest latent quality, from 2025/26."""
    codes = d.codes
    plan = obs[obs["metric_id"] == "finance_plan"].set_index(["quarter", "trust_code"])["value"]
    worst = set(codes[np.argsort(d.quality)[:3]])
    status = pd.DataFrame(
        {
            "quarter": np.repeat(QUARTERS, len(codes)).astype(object),
            "trust_code": np.tile(codes, len(QUARTERS)).astype(object),
        }
    )
    p = plan.reindex(pd.MultiIndex.from_frame(status)).to_numpy(float)
    with np.errstate(invalid="ignore"):
        status["deficit"] = np.where(np.isnan(p), False, p < 0)
        status["deficit_support"] = np.where(np.isnan(p), False, p < -2.5)
    status["improvement_programme"] = (
        status["trust_code"].isin(worst) & status["quarter"].str.startswith("2025-26")
    ).to_numpy()
    if d.held is not None:  # the same status in both quarters
        b_q, a_q = change_quarters
        ref = status[status["quarter"] == b_q].set_index("trust_code")
        rows = status["quarter"] == a_q
        for col in ("deficit", "deficit_support", "improvement_programme"):
            status.loc[rows, col] = status.loc[rows, "trust_code"].map(ref[col]).to_numpy(bool)
    return status


def _block(
    quarter: str, codes: np.ndarray, metric_id: str, numerator=None, denominator=None, value=None, category=None
) -> tuple[dict, int]:
    n = len(codes)
    nan = np.full(n, np.nan)
    return (
        {
            "quarter": quarter,
            "trust_code": codes,
            "metric_id": metric_id,
            "numerator": nan if numerator is None else np.asarray(numerator, dtype=float),
            "denominator": nan if denominator is None else np.asarray(denominator, dtype=float),
            "value": nan if value is None else np.asarray(value, dtype=float),
            "category": np.full(n, None, dtype=object) if category is None else category,
        },
        n,
    )


def _truth_block(
    quarter: str,
    codes: np.ndarray,
    metric_id: str,
    *,
    denominator=np.nan,
    true_numerator=np.nan,
    true_expected=np.nan,
    true_value=np.nan,
    true_oe=np.nan,
    true_category=None,
) -> tuple[dict, int]:
    """A block of ``truth/values`` rows (one quarter, one metric, these trusts); what a kind of metric has no truth
    for stays missing."""
    return (
        {
            "quarter": quarter,
            "trust_code": codes,
            "metric_id": metric_id,
            "denominator": denominator,
            "true_numerator": true_numerator,
            "true_expected": true_expected,
            "true_value": true_value,
            "true_oe": true_oe,
            "true_category": true_category,
        },
        len(codes),
    )


def _frame(blocks: list[tuple[dict, int]]) -> pd.DataFrame:
    """One frame from column blocks (scalars repeated over the block's rows), in block order."""
    cols = {}
    sizes = [n for _, n in blocks]
    for name in blocks[0][0]:
        values = [cols_b[name] for cols_b, _ in blocks]
        kinds = {object if (v is None or isinstance(v, str)) else float for v in values if np.ndim(v) == 0}
        if len(kinds) == 1 and all(np.ndim(v) == 0 for v in values):  # scalars of one kind: repeated at once
            arr = np.repeat(np.array(values, dtype=kinds.pop()), sizes)
        else:
            parts = []
            for v, n in zip(values, sizes, strict=True):
                if np.ndim(v) == 0:
                    v = np.full(n, v, dtype=object if (v is None or isinstance(v, str)) else float)
                parts.append(np.asarray(v))
            arr = np.concatenate(parts)
        if arr.dtype.kind in "UO" or name in ("category", "true_category"):
            arr = arr.astype(object)
        cols[name] = arr
    return pd.DataFrame(cols)


def write(out: Path, seed: int = DEFAULT_SEED, *, records: bool = True) -> Path:
    """Write the demo's contract files, truth and README to ``out``. With ``records`` (and the real geography
    present), the latest quarter also gets the record-level metrics and the ICBs from synthetic records written to
    ``out/records`` (:mod:`leaguetables.inputs.records.demo_quarter`); without the real data the demo is the
    aggregate one alone, and ``demo-source.json`` says so."""
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    frames = generate(seed)
    record_info = _add_records(frames, out, seed) if records else None
    for name, df in frames.items():
        df.to_csv(out / f"{name}.csv", index=False, lineterminator="\n", float_format="%.10g")
    (out / "README.md").write_text(
        "# Synthetic demo data (fictional trusts and ICBs)\n\n"
        f"Generated by `python -m leaguetables.inputs.demo --seed {seed}`; do not edit by hand. Every trust, name and\n"
        "figure here is invented: this is not a ranking of real NHS trusts. `truth/` holds the model the counts\n"
        "were drawn from (coefficients per SD of each covariate within trust type, trust effects, standardisation,\n"
        "the true value and true expected value of every trust, quarter and metric, planted outliers and changes,\n"
        "and the scenario arguments).\n",
        encoding="utf-8",
    )
    (out / DEMO_MARKER).write_text(
        json.dumps(
            {"source": "demo", "generator": "leaguetables.inputs.demo", "seed": seed, "records": record_info}, indent=1
        )
        + "\n",
        encoding="utf-8",
    )
    return out


def _add_records(frames: dict[str, pd.DataFrame], out: Path, seed: int) -> dict | None:
    """Generate the demo-scale records (if the real geography is present) and add their rows to ``frames``."""
    if seed != DEFAULT_SEED or not geography.available():
        return None
    job = records_generate.make_job("demo", out / "records")
    manifest = records_generate.run(job, 1, demo_effects=frames["truth/trust_effects"])
    quarter = job.quarters[-1]
    frames.update(demo_quarter.merge_into_demo(frames, job.out, quarter))
    return {
        "folder": "records",
        "quarter": quarter,
        "rows": manifest["rows"],
        "generator": "leaguetables.inputs.records.generate",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaguetables.inputs.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: data/demo)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    args = ap.parse_args(argv)
    path = write(args.out, args.seed)
    print(f"demo data written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
