"""Funnel-plot limits, overdispersion and banding.

Implements sections 2-3 (and the banding rules of §4, §9) of
``shared/docs/statistical-methods.md``:

- the Fingertips/PHE drawing grid (§2.5, :func:`phe_funnel_grid`), used for the drawn limits;
- the Spiegelhalter/FunnelPlotR method: z-scores on variance-stabilising
  scales, SHMI truncation or winsorisation, dispersion φ, between-unit
  variance τ², unadjusted and overdispersion-adjusted limits at each unit's
  precision and outlier flags (§3.1-3.5);
- the project's own default, :func:`robust_funnel` (the §3.3 note): τ² from
  winsorised z-scores corrected for consistency (:func:`consistency_constant`,
  :func:`robust_tau2`), adjusted limits whenever τ² > 0, and for rare events
  (:func:`is_rare`) a moment τ² on the count scale (:func:`pearson_tau2`)
  with exact negative-binomial / beta-binomial limits (:func:`exact_limits`);
  shown right by simulation (tests/test_funnel_robust.py,
  benchmarks/funnel_calibration.py), not by a reference package;
- :func:`funnel`, which runs the configured method (``method="robust"`` or
  ``"spiegelhalter"``, the compatibility method), and :func:`expected_flags`,
  the number of flags expected by chance;
- banding of flags into "higher/lower than expected" and, through the
  metric's polarity, "better/worse than expected".

:func:`spiegelhalter` is the compatibility method: it reproduces SHMI and
FunnelPlotR exactly (robust φ without consistency correction, adjusted limits
only when φ > 1).  Package quirks are reproduced only with ``compat=...``
(§9.8): by default the statistically correct forms are used.

Conventions: limits and values are on the natural scale of the indicator
(ratio, proportion of 1) without a multiplier unless a ``multiplier`` argument
says otherwise; a value exactly on a limit is inside (strict comparisons).
Confidence levels are fractions (0.95, 0.998).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from numbers import Real
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
from scipy import stats as _sps
from scipy.optimize import brentq

__all__ = [
    "LEVELS",
    "FUNNELPLOTR_Z",
    "phe_funnel_grid",
    "FunnelResult",
    "spiegelhalter",
    "METHODS",
    "consistency_constant",
    "robust_tau2",
    "pearson_tau2",
    "exact_limits",
    "is_rare",
    "robust_funnel",
    "FunnelOptions",
    "funnel",
    "expected_flags",
    "limits_grid",
    "band",
]

#: The two funnel levels (two-sided confidence) and their column suffixes.
LEVELS = {0.95: "95", 0.998: "998"}

#: The first columns of :attr:`FunnelResult.units`, before the limits and flags of each level.
UNIT_COLUMNS = ("numerator", "denominator", "rr", "y", "s", "z", "kept", "wz", "z_adjusted")

#: FunnelPlotR's hard-coded z constants (compatibility only, §9.1).
FUNNELPLOTR_Z = {0.95: 1.959964, 0.998: 3.090232}

BAND_HIGH, BAND_AS_EXPECTED, BAND_LOW = "higher than expected", "as expected", "lower than expected"
OUTCOME_BETTER, OUTCOME_AS_EXPECTED, OUTCOME_WORSE = "better than expected", "as expected", "worse than expected"
DIRECTIONS = ("higher_better", "lower_better")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _level(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real):
        raise ValueError(f"confidence must be a fraction such as 0.95 or 0.998; got {confidence!r}")
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(
            f"confidence must be a fraction in (0, 1) such as 0.95 or 0.998; got {confidence!r}"
            + (" (percentages are not accepted)" if 1.0 < c <= 100.0 else "")
        )
    return c


def _z(confidence: float, compat: str | None = None) -> float:
    if compat == "FunnelPlotR":
        for level, value in FUNNELPLOTR_Z.items():
            if math.isclose(confidence, level):
                return value
    return float(_sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def _array(obj: Any, name: str) -> np.ndarray:
    if isinstance(obj, pd.Series):
        return obj.to_numpy(dtype="float64", na_value=np.nan)
    try:
        arr = np.asarray(obj, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    return np.atleast_1d(arr)


def _raise_first(mask: np.ndarray, message: str, values: np.ndarray, labels: Sequence | None = None) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        i = int(bad[0])
        where = f"position {i}" if labels is None else f"position {i} ({labels[i]!r})"
        more = f" ({bad.size} values in all)" if bad.size > 1 else ""
        raise ValueError(f"{message}; got {float(values[i])!r} at {where}{more}")


def _check_compat(compat: str | None, allowed: tuple[str, ...]) -> None:
    if compat is not None and compat not in allowed:
        raise ValueError(f"compat must be None or one of {allowed}; got {compat!r}")


def _signif_floor(x: float, percentage_down: float = 0.95) -> float:
    """PHE's axis rounding down (Funnels.R ``signif.floor``)."""
    if x == 0:
        return 0.0
    n = len(str(int(math.floor(x * percentage_down)))) - 1
    return math.floor(x * percentage_down / 10**n) * 10**n


def _signif_ceiling(x: float, percentage_up: float = 1.05) -> float:
    """PHE's axis rounding up (Funnels.R ``signif.ceiling``)."""
    if x == 0:
        return 0.0
    n = len(str(int(math.ceil(x * percentage_up)))) - 2
    return math.ceil(x * percentage_up / 10**n) * 10**n


def _geometric_grid(start: float, stop: float, n_points: int, ratio_offset: bool = False) -> np.ndarray:
    """PHE's plotting grid: geometric steps to ``stop``, each step rounded and at least +1 (§2.5)."""
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2; got {n_points}")
    grid = [float(start)]
    for j in range(2, n_points + 1):
        offset = j - 1 if ratio_offset else j
        prev = grid[-1]
        step = (stop / prev) ** (1.0 / (n_points + 1 - offset)) * prev
        grid.append(max(float(np.round(step)), prev + 1.0))
    return np.asarray(grid)


def phe_funnel_grid(
    denominators,
    *,
    statistic: str = "proportion",
    years_of_data: float = 1,
    av: float | None = None,
    n_points: int = 100,
) -> np.ndarray:
    """The x-axis grid of a PHE funnel plot (§2.5, plots only).

    ``n_points`` values spaced geometrically from ``max(1, axis_min)`` to
    ``axis_max``, each step at least +1, where ``axis_min`` is 0 when
    ``max > 2·min`` and PHE's rounded-down minimum otherwise.  For
    ``statistic="rate"`` the denominators are the derived populations and the
    grid is in events (``av`` the average rate per person).  Significance never
    depends on this grid.
    """
    den = _array(denominators, "denominators")
    den = den[~np.isnan(den)]
    if den.size == 0:
        raise ValueError("denominators has no non-missing value")
    lo, hi = float(den.min()), float(den.max())
    if statistic not in ("proportion", "ratio", "rate"):
        raise ValueError(f"statistic must be 'proportion', 'ratio' or 'rate'; got {statistic!r}")
    if statistic == "rate":
        axis_min = 0.0 if hi > 2 * lo else _signif_floor(lo / years_of_data) * years_of_data
        axis_max = _signif_ceiling(hi / years_of_data) * years_of_data
        if av is None:
            raise ValueError("av (the average rate per unit of population) is needed for a rate grid")
        axis_min, axis_max = math.floor(axis_min * av), math.ceil(axis_max * av)
    else:
        axis_min = 0.0 if hi > 2 * lo else _signif_floor(lo)
        axis_max = _signif_ceiling(hi)
    return _geometric_grid(max(1.0, axis_min), axis_max, n_points, ratio_offset=(statistic == "ratio"))


# ---------------------------------------------------------------------------
# Spiegelhalter / FunnelPlotR (§3)
# ---------------------------------------------------------------------------

_LIMIT_COLUMNS = [f"{side}_{lvl}{adj}" for adj in ("", "_adj") for lvl in ("95", "998") for side in ("lower", "upper")]


@dataclass(frozen=True)
class FunnelResult:
    """Result of :func:`spiegelhalter`.

    Attributes
    ----------
    units : DataFrame
        One row per unit (index: unit key, sorted): ``numerator, denominator``
        (after aggregation; SHMI-rounded E when used), ``rr`` (the indicator:
        O/E, O/n or O/D), ``y, s, z`` (transformed value, its standard error
        and unadjusted z-score), ``kept`` (used for φ), ``wz`` (winsorised or
        truncated z; missing when truncated), ``z_adjusted`` (z^D with τ²),
        limits ``lower_95, upper_95, lower_998, upper_998`` (unadjusted) and
        the same with ``_adj`` (overdispersion-adjusted), and flags
        ``high_*``/``low_*``/``outlier_*`` for each limit set.
    target : float
        θ0 on the natural scale (1 for SR by default; pooled p0 or θ0).
    phi, tau2 : float
        Dispersion ratio and between-unit variance (§3.3).
    n_kept : int
        Units used in φ (after SHMI truncation).
    method : str
        Description, e.g. "SR, SHMI (log) with 10% truncation".
    adjusted_used : bool
        Compatibility methods: ``phi > 1`` (FunnelPlotR's rule, §3.3).  The
        robust method: ``tau2 > 0`` (adjusted limits whenever τ² > 0; with
        τ² = 0 the two limit sets are the same).
    estimator : str
        ``"spiegelhalter"`` (SHMI/FunnelPlotR compatibility) or ``"robust"``
        (the project's default, :func:`robust_funnel`).
    exact : bool
        The limits are exact quantiles of the discrete predictive distribution
        of the count (rare events, :func:`robust_funnel`), not normal limits
        on a transformed scale.
    scale : str or None
        Scale of ``y``, ``z`` and τ²: "log", "sqrt", "logit", "arcsine" (normal
        limits) or "relative" (exact limits: τ² is the variance of the
        trust's true ratio to the target).
    periods : int
        Number of quarters pooled into the counts (set by the caller).
    """

    units: pd.DataFrame
    target: float
    phi: float
    tau2: float
    n_kept: int
    method: str
    adjusted_used: bool
    data_type: str = "SR"
    sr_method: str | None = "SHMI"
    trim_by: float = 0.1
    compat: str | None = None
    theta0: float = field(default=0.0, repr=False)
    estimator: str = "spiegelhalter"
    exact: bool = False
    scale: str | None = None
    periods: int = 1

    def limits(self, confidence: float = 0.998, adjusted: bool | None = None) -> pd.DataFrame:
        """Lower and upper limits at each unit for a level; ``adjusted=None`` means as used."""
        suffix = _suffix(confidence, self.adjusted_used if adjusted is None else adjusted)
        return self.units[[f"lower_{suffix}", f"upper_{suffix}"]].set_axis(["lower", "upper"], axis=1)

    def flags(self, confidence: float = 0.998, adjusted: bool | None = None) -> pd.DataFrame:
        """``high``, ``low`` and ``outlier`` flags for a level; ``adjusted=None`` means as used."""
        suffix = _suffix(confidence, self.adjusted_used if adjusted is None else adjusted)
        return self.units[[f"high_{suffix}", f"low_{suffix}", f"outlier_{suffix}"]].set_axis(
            ["high", "low", "outlier"], axis=1
        )


def _suffix(confidence: float, adjusted: bool) -> str:
    for level, tag in LEVELS.items():
        if math.isclose(float(confidence), level):
            return tag + ("_adj" if adjusted else "")
    raise ValueError(f"confidence must be 0.95 or 0.998; got {confidence!r}")


def _transform(data_type: str, sr_method: str, o: np.ndarray, d: np.ndarray, target: float):
    """Y, s and θ0 on the transformed scale (§3.1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if data_type == "SR" and sr_method == "SHMI":
            return np.log(o / d), 1.0 / np.sqrt(d), math.log(target)
        if data_type == "SR":
            return np.sqrt(o / d), 1.0 / (2.0 * np.sqrt(d)), math.sqrt(target)
        if data_type == "PR":
            return np.arcsin(np.sqrt(o / d)), 1.0 / (2.0 * np.sqrt(d)), math.asin(math.sqrt(target))
        y = np.log((o + 0.5) / (d + 0.5))
        s = np.sqrt(o / (o + 0.5) ** 2 + d / (d + 0.5) ** 2)
        return y, s, math.log(target)


def _truncate(z: np.ndarray, valid: np.ndarray, trim_by: float) -> np.ndarray:
    """SHMI truncation: keep ``0 < floor(rank·k/(I+1)) < k−1`` (§3.2)."""
    k = 1.0 / trim_by
    kept = np.zeros(z.shape, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size:
        ranks = _sps.rankdata(z[idx], method="average")
        sp = np.floor(ranks * k / (idx.size + 1))
        kept[idx] = (sp > 0) & (sp < k - 1)
    return kept


def _winsorise(z: np.ndarray, valid: np.ndarray, trim_by: float) -> np.ndarray:
    """Winsorisation at the trim_by and 1−trim_by quantiles (R type 7), §3.2."""
    wz = np.full(z.shape, np.nan)
    zv = z[valid]
    if zv.size:
        lz, uz = np.quantile(zv, [trim_by, 1.0 - trim_by])
        wz[valid] = np.clip(zv, lz, uz)
    return wz


def _tau2(n: int, phi: float, s: np.ndarray) -> float:
    """Between-unit variance τ² centred on the target (§3.3)."""
    if n == 0 or s.size == 0:
        return 0.0
    if n * phi < n - 1:
        return 0.0
    w = 1.0 / s**2
    return max(0.0, (n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum()))


def _limits_at(
    data_type: str,
    sr_method: str,
    precision: np.ndarray,
    target: float,
    theta0: float,
    tau2: float,
    confidence: float,
    adjusted: bool,
    compat: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Funnel limits at each precision (E, n or D) on the natural scale (§3.4)."""
    z = _z(confidence, compat)
    t2 = tau2 if adjusted else 0.0
    p = (1.0 - confidence) / 2.0
    x = np.asarray(precision, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        if data_type == "SR":
            if not adjusted:
                lower = target * _sps.chi2.ppf(p, 2.0 * x) / (2.0 * x)
                upper = target * _sps.chi2.ppf(1.0 - p, 2.0 * (x + 1.0)) / (2.0 * x)
            elif sr_method == "SHMI":
                half = z * np.sqrt(1.0 / x + t2)
                lower, upper = np.exp(theta0 - half), np.exp(theta0 + half)
            else:
                half = z * np.sqrt(1.0 / (4.0 * x) + t2)
                lower, upper = theta0 - half, theta0 + half
                if compat != "FunnelPlotR":
                    lower, upper = np.maximum(lower, 0.0) ** 2, upper**2
        elif data_type == "PR":
            half = z * np.sqrt(1.0 / (4.0 * x) + t2)
            lo_arg = np.clip(theta0 - half, 0.0, math.pi / 2.0)
            hi_arg = np.clip(theta0 + half, 0.0, math.pi / 2.0)
            lower, upper = np.sin(lo_arg) ** 2, np.sin(hi_arg) ** 2
        else:  # RC
            if compat == "FunnelPlotR":
                s2 = 1.0 / (4.0 * x)
            else:
                o_t = target * x
                s2 = o_t / (o_t + 0.5) ** 2 + x / (x + 0.5) ** 2
            half = z * np.sqrt(s2 + t2)
            lower, upper = np.exp(theta0 - half), np.exp(theta0 + half)
    return lower, upper


def _aggregate(numerator, denominator, groups) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    if groups is not None:
        keys = groups if isinstance(groups, pd.Series) else pd.Series(np.asarray(groups))
        frame = pd.DataFrame(
            {"o": _array(numerator, "numerator"), "d": _array(denominator, "denominator"), "g": keys.to_numpy()}
        )
    elif isinstance(numerator, pd.Series) or isinstance(denominator, pd.Series):
        ref = numerator if isinstance(numerator, pd.Series) else denominator
        other = denominator if ref is numerator else numerator
        if isinstance(other, pd.Series) and not other.index.equals(ref.index):
            raise ValueError("numerator and denominator have different indexes; align them by key first")
        frame = pd.DataFrame(
            {"o": _array(numerator, "numerator"), "d": _array(denominator, "denominator"), "g": ref.index.to_numpy()}
        )
    else:
        o = _array(numerator, "numerator")
        d = _array(denominator, "denominator")
        if o.shape != d.shape:
            raise ValueError(f"numerator and denominator have different lengths ({o.size} and {d.size})")
        return o, d, pd.RangeIndex(o.size, name="unit")
    if frame["g"].is_unique and frame["g"].notna().all():  # one row per unit (the usual case): nothing to sum
        agg = frame.set_index("g").sort_index(kind="stable")
    else:  # sum by unit (min_count=len keeps a unit with a missing row missing)
        agg = frame.groupby("g", sort=True).agg(
            o=("o", lambda s: s.sum(min_count=len(s))), d=("d", lambda s: s.sum(min_count=len(s)))
        )
    agg.index.name = "unit"
    return agg["o"].to_numpy(dtype="float64"), agg["d"].to_numpy(dtype="float64"), agg.index


def _flag_columns(suffix: str, rr: np.ndarray, lower: np.ndarray, upper: np.ndarray, valid: np.ndarray) -> dict:
    """The limit and flag columns of one level and set: strictly outside a limit is flagged (a value on a limit
    is inside); units without data get missing limits and flags."""
    lower, upper = np.where(valid, lower, np.nan), np.where(valid, upper, np.nan)
    high, low = rr > upper, rr < lower
    return {
        f"lower_{suffix}": lower,
        f"upper_{suffix}": upper,
        f"high_{suffix}": pd.arrays.BooleanArray(high, ~valid),
        f"low_{suffix}": pd.arrays.BooleanArray(low, ~valid),
        f"outlier_{suffix}": pd.arrays.BooleanArray(high | low, ~valid),
    }


def _target_value(target, data_type: str, o: np.ndarray, d: np.ndarray, valid: np.ndarray) -> float:
    """The funnel's target: the one given (checked), else 1 for O/E and the pooled ΣO/Σn of the plotted units."""
    if target is None:
        return 1.0 if data_type == "SR" else float(o[valid].sum() / d[valid].sum())
    if isinstance(target, bool) or not isinstance(target, Real) or not float(target) > 0:
        raise ValueError(f"target must be a positive number; got {target!r}")
    if data_type == "PR" and float(target) > 1:
        raise ValueError(f"a proportion target must be <= 1; got {target!r}")
    return float(target)


def _checked_counts(numerator, denominator, groups, data_type: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Counts summed per unit (:func:`_aggregate`), with the checks every funnel method makes of them."""
    o, d, index = _aggregate(numerator, denominator, groups)
    labels = list(index)
    _raise_first(np.isinf(o), "numerator must be finite", o, labels)
    _raise_first(o < 0, "numerator must be >= 0", o, labels)
    _raise_first(np.isinf(d), "denominator must be finite", d, labels)
    _raise_first(d <= 0, "denominator must be > 0", d, labels)
    if data_type == "PR":
        _raise_first(o > d, "numerator must be <= denominator for proportions", o, labels)
    return o, d, index


def spiegelhalter(
    numerator,
    denominator,
    data_type: str = "SR",
    sr_method: str = "SHMI",
    trim_by: float = 0.1,
    target: float | None = None,
    shmi_round_expected: bool = True,
    compat: str | None = None,
    *,
    groups=None,
) -> FunnelResult:
    """Spiegelhalter funnel: z-scores, overdispersion and limits, as FunnelPlotR (§3).

    Pipeline (§3.5): aggregate by unit (ΣO, Σdenominator) → (SHMI) round E to
    2 dp → transform → unadjusted z → truncate (SHMI) or winsorise (others) →
    φ → τ² → limits at each unit's precision → outlier flags.

    Parameters
    ----------
    numerator, denominator : array-like or Series
        Observed events and E (``data_type="SR"``), n (``"PR"``) or the
        comparison count D (``"RC"``).  With Series (or ``groups``) rows
        sharing a key are summed first; units are sorted by key.
    data_type : {"SR", "PR", "RC"}
        Standardised ratio, proportion or ratio of counts.
    sr_method : {"SHMI", "CQC"}
        For SR: log scale with SHMI truncation, or square-root scale with
        winsorisation.
    trim_by : float
        Fraction trimmed at each end (0.1).
    target : float, optional
        θ0 on the natural scale: default 1 (SR), ΣO/Σn (PR) or ΣO/ΣD (RC).
    shmi_round_expected : bool
        Round E to 2 dp before everything else in SHMI mode (§9.5).
    compat : None or "FunnelPlotR"
        Reproduce FunnelPlotR quirks: CQC adjusted limits not squared back,
        RC limits with s = 1/(2√D), and its rounded z constants.

    Returns
    -------
    FunnelResult

    Raises
    ------
    ValueError
        Bad arguments, ``numerator < 0``, ``denominator <= 0`` or (PR)
        ``numerator > denominator``.
    """
    if data_type not in ("SR", "PR", "RC"):
        raise ValueError(f"data_type must be 'SR', 'PR' or 'RC'; got {data_type!r}")
    if sr_method not in ("SHMI", "CQC"):
        raise ValueError(f"sr_method must be 'SHMI' or 'CQC'; got {sr_method!r}")
    if isinstance(trim_by, bool) or not isinstance(trim_by, Real) or not (0.0 < trim_by < 0.5):
        raise ValueError(f"trim_by must be a fraction in (0, 0.5); got {trim_by!r}")
    _check_compat(compat, ("FunnelPlotR",))

    o, d, index = _checked_counts(numerator, denominator, groups, data_type)
    labels = list(index)
    shmi = data_type == "SR" and sr_method == "SHMI"
    if shmi and shmi_round_expected:
        d = np.round(d, 2)
        _raise_first(d <= 0, "expected counts must be >= 0.005 (they round to 0 at 2 dp)", d, labels)
    valid = ~np.isnan(o) & ~np.isnan(d)

    target_value = _target_value(target, data_type, o, d, valid)

    y, s, theta0 = _transform(data_type, sr_method, o, d, target_value)
    with np.errstate(invalid="ignore"):
        z = (y - theta0) / s

    if shmi:
        kept = _truncate(z, valid, trim_by)
        wz = np.where(kept, z, np.nan)
        trimming = f"{trim_by:.0%} truncation"
    else:
        kept = valid.copy()
        wz = _winsorise(z, valid, trim_by)
        trimming = f"{trim_by:.0%} winsorisation"
    n_kept = int(kept.sum())
    phi = float(np.mean(wz[kept] ** 2)) if n_kept else float("nan")
    tau2 = _tau2(n_kept, phi, s[kept]) if n_kept else 0.0
    adjusted_used = bool(phi > 1.0)
    with np.errstate(invalid="ignore"):
        z_adj = (y - theta0) / np.sqrt(s**2 + tau2)

    with np.errstate(invalid="ignore", divide="ignore"):
        rr = o / d
    columns: dict[str, Any] = dict(zip(UNIT_COLUMNS, (o, d, rr, y, s, z, kept, wz, z_adj), strict=True))
    for adjusted in (False, True):
        for level, tag in LEVELS.items():
            suffix = tag + ("_adj" if adjusted else "")
            lower, upper = _limits_at(data_type, sr_method, d, target_value, theta0, tau2, level, adjusted, compat)
            columns.update(_flag_columns(suffix, rr, lower, upper, valid))
    units = pd.DataFrame(columns, index=index)

    if data_type == "SR":
        scale = "SHMI (log scale)" if sr_method == "SHMI" else "CQC (square-root scale)"
        method = f"SR, {scale} with {trimming}"
    else:
        method = f"{data_type} with {trimming}"
    if compat:
        method += f", {compat} compatibility"
    return FunnelResult(
        units=units,
        target=target_value,
        phi=phi,
        tau2=float(tau2),
        n_kept=n_kept,
        method=method,
        adjusted_used=adjusted_used,
        data_type=data_type,
        sr_method=sr_method if data_type == "SR" else None,
        trim_by=float(trim_by),
        compat=compat,
        theta0=theta0,
    )


# ---------------------------------------------------------------------------
# The project's default: a robust, consistency-corrected τ² (§3.3 note)
# ---------------------------------------------------------------------------

METHOD_ROBUST, METHOD_SPIEGELHALTER = "robust", "spiegelhalter"
METHODS = (METHOD_ROBUST, METHOD_SPIEGELHALTER)
SR_SCALES = ("log", "sqrt")
PR_SCALES = ("logit", "arcsine")
LIMIT_RULES = ("auto", "normal", "exact")


def consistency_constant(trim_by: float, how: str = "winsorise") -> float:
    """E[W(Z)²] for Z ~ N(0, 1) after winsorising (or truncating) ``trim_by`` of each tail.

    The mean of winsorised squared z-scores estimates this constant × the
    variance, not the variance: 0.6787 for 10% winsorisation and 0.4377 for
    SHMI-style 10% truncation (§3.3).  Dividing by it makes the robust
    dispersion consistent for normal data.  With ``q = Φ⁻¹(1 − trim_by)``:
    ``E[Z²; |Z| < q] = (1 − 2·trim_by) − 2qφ(q)``; winsorising adds
    ``2·trim_by·q²``, truncating divides by ``1 − 2·trim_by``.
    """
    if isinstance(trim_by, bool) or not isinstance(trim_by, Real) or not (0.0 < trim_by < 0.5):
        raise ValueError(f"trim_by must be a fraction in (0, 0.5); got {trim_by!r}")
    q = float(_sps.norm.ppf(1.0 - trim_by))
    inner = (1.0 - 2.0 * trim_by) - 2.0 * q * float(_sps.norm.pdf(q))
    if how == "winsorise":
        return inner + 2.0 * trim_by * q * q
    if how == "truncate":
        return inner / (1.0 - 2.0 * trim_by)
    raise ValueError(f"how must be 'winsorise' or 'truncate'; got {how!r}")


def _winsorised_ms(z: np.ndarray, trim_by: float) -> float:
    lz, uz = np.quantile(z, [trim_by, 1.0 - trim_by])
    return float(np.mean(np.clip(z, lz, uz) ** 2))


def robust_tau2(y, s, theta0: float, trim_by: float = 0.1, ddof: int = 1) -> tuple[float, float]:
    """Robust between-unit variance: τ² at which the corrected winsorised mean of z^D² is (I − ddof)/I.

    ``z^D_i(τ²) = (y_i − θ0)/√(s_i² + τ²)`` is winsorised at its ``trim_by``
    and ``1 − trim_by`` quantiles (R type 7) and the mean of squares divided
    by :func:`consistency_constant`; τ² solves ``mean/c = (I − ddof)/I``
    (``ddof = 1`` for the estimated target, as in DerSimonian–Laird), or is 0
    when that mean is already at most the goal at τ² = 0.  Like a
    Paule–Mandel estimator it makes the adjusted z-scores have variance 1,
    and like the SHMI method it is centred on the target and robust: the
    winsorisation bounds the influence of a few true outliers.

    Returns
    -------
    (tau2, phi)
        τ² ≥ 0 and the consistency-corrected dispersion ratio at τ² = 0
        (``mean(W(z)²)/c``; about 1 with no overdispersion).
    """
    y, s = np.asarray(y, dtype="float64"), np.asarray(s, dtype="float64")
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    y, s = y[ok], s[ok]
    n = y.size
    if n < 2:
        return 0.0, float("nan")
    c = consistency_constant(trim_by)
    goal = (n - ddof) / n
    dev2 = (y - theta0) ** 2

    def g(t2: float) -> float:
        return _winsorised_ms((y - theta0) / np.sqrt(s**2 + t2), trim_by) / c - goal

    phi = g(0.0) + goal
    if g(0.0) <= 0.0:
        return 0.0, float(phi)
    hi = float(dev2.max()) / (c * goal) + 1e-12
    tau2 = _sps_brentq(g, 0.0, hi)
    return float(tau2), float(phi)


def _sps_brentq(f, lo: float, hi: float) -> float:
    return float(brentq(f, lo, hi, xtol=1e-14, rtol=1e-12, maxiter=500))


def _pearson_variance(data_type: str, mu: np.ndarray, n: np.ndarray | None, p0: float, t2: float) -> np.ndarray:
    """Variance of a count under the rare-event model: Poisson–gamma (SR) or beta-binomial (PR)."""
    if data_type == "PR":
        assert n is not None, "proportions need n"
        return n * p0 * (1.0 - p0) * (1.0 + (n - 1.0) * t2)
    return mu + t2 * mu**2


def pearson_tau2(
    observed, mu, data_type: str = "SR", n=None, p0: float | None = None, ddof: int = 1
) -> tuple[float, float]:
    """Moment (Paule–Mandel) τ² on the count scale for rare events: Σ (O − μ)²/V(τ²) = I − ddof.

    ``V = μ + τ²μ²`` (a Poisson count whose rate varies between units with
    relative variance τ²: the negative binomial) or, for proportions,
    ``V = n·p0·(1 − p0)·(1 + (n − 1)τ²)`` (beta-binomial, intra-unit
    correlation τ²).  Pearson residuals have mean 0 and variance 1 under the
    model whatever the size of the counts, so the estimator stays consistent
    when many counts are 0 (where log-scale z-scores are −∞).  It is not
    winsorised: with small counts the sampling noise dominates and one outlier
    moves it little, while winsorising skewed count residuals would bias it.

    Returns ``(tau2, phi)`` with ``phi = Σ (O − μ)²/V(0) / (I − ddof)``.
    """
    o = np.asarray(observed, dtype="float64")
    m = np.asarray(mu, dtype="float64")
    nn = None if n is None else np.asarray(n, dtype="float64")
    k = o.size
    if k - ddof < 1:
        return 0.0, float("nan")
    pp = float(p0) if p0 is not None else 0.0
    dev2 = (o - m) ** 2
    goal = float(k - ddof)

    def g(t2: float) -> float:
        return float(np.sum(dev2 / _pearson_variance(data_type, m, nn, pp, t2))) - goal

    g0 = g(0.0)
    phi = (g0 + goal) / goal
    if g0 <= 0.0:
        return 0.0, float(phi)
    if data_type == "PR":
        assert nn is not None, "proportions need n"
        base = nn * pp * (1.0 - pp) * np.maximum(nn - 1.0, 1.0)
        hi = float(np.sum(dev2 / base)) / goal
        cap = 1.0 - 1e-9
        if g(min(hi, cap)) > 0.0:
            return cap, float(phi)
        hi = min(hi, cap)
    else:
        hi = float(np.sum(dev2 / m**2)) / goal
    return _sps_brentq(g, 0.0, hi), float(phi)


def _predictive(data_type: str, precision: np.ndarray, target: float, t2: float):
    """The frozen discrete predictive distribution of the count at each precision (rare-event limits)."""
    x = np.asarray(precision, dtype="float64")
    if data_type == "PR":
        nn = np.round(x)
        if t2 <= 0.0:
            return _sps.binom(nn, target)
        k = 1.0 / t2 - 1.0
        return _sps.betabinom(nn, target * k, (1.0 - target) * k)
    mu = target * x
    if t2 <= 0.0:
        return _sps.poisson(mu)
    r = 1.0 / t2
    return _sps.nbinom(r, r / (r + mu))


def _bisect_quantile(cdf, q: float, n: int) -> float:
    """scipy's quantile search of a discrete distribution on 0..n (``_drv2_ppfsingle``, step for step): the
    smallest count whose ``cdf`` reaches ``q``, by bisection from (0, n) with the CDF at n taken as 1."""
    a, b, qa, qb = 0, n, cdf(0), 1.0
    while True:
        if qa == q:
            return a
        if qb == q:
            return b
        if b <= a + 1:
            return a if qa > q else b
        c = int((a + b) / 2.0)
        qc = cdf(c)
        if qc < q:
            a, qa = c, qc
        elif qc > q:
            b, qb = c, qc
        else:
            return c


def _betabinom_ppf(q: float, n: np.ndarray, a: float, b: float) -> np.ndarray:
    """``scipy.stats.betabinom(n, a, b).ppf(q)`` for q in (0, 1), the same figures faster.

    The beta-binomial has no closed-form quantile: scipy bisects, each step summing the pmf from 0 to the step's
    count, through its generic per-call machinery (~0.5 ms a step). Here the pmf of each distinct n is computed once
    (scipy's own ``_pmf``) and each step sums the same values in the same way (``np.sum`` of the first c + 1), with
    scipy's bisection (:func:`_bisect_quantile`): bit-identical, checked against scipy in test_funnel_robust. An n
    that is not a count ≥ 0 (or a or b ≤ 0) gives NaN, as scipy's does."""
    n = np.asarray(n, dtype="float64")
    out = np.full(n.shape, np.nan)
    if not (a > 0 and b > 0):
        return out
    good = (n >= 0) & (n == np.floor(n))
    for size in np.unique(n[good]):
        pmf = _sps.betabinom._pmf(np.arange(0.0, size + 1.0), size, a, b)
        out[n == size] = _bisect_quantile(lambda c, pmf=pmf: np.sum(pmf[: c + 1], axis=0), q, int(size))
    return out


def _ppf(dist, q: float) -> np.ndarray:
    """The quantile ``q`` of a frozen distribution of :func:`_predictive` (the beta-binomial's by
    :func:`_betabinom_ppf`)."""
    if dist.dist.name == "betabinom":
        n, a, b = dist.args
        return _betabinom_ppf(q, n, float(a), float(b))
    return dist.ppf(q)


def exact_limits(data_type: str, precision, target: float, tau2: float, confidence: float):
    """Exact limits of a discrete predictive distribution, on the indicator's scale (O/E or O/n).

    The upper limit is ``F⁻¹(1 − p)/x`` and the lower ``F⁻¹(p)/x`` (p the
    one-sided tail, ``F⁻¹`` the smallest count whose CDF reaches the level) of
    the count's predictive distribution at precision ``x`` for a unit drawn
    from the between-unit distribution around the target: Poisson (τ² = 0) or
    negative binomial with ``Var = μ + τ²μ²``, ``μ = θ0·x`` (SR), binomial or
    beta-binomial with intra-unit correlation τ² (PR, x = n).  With strict
    comparisons a unit is flagged high when ``O > F⁻¹(1 − p)``, which has
    probability ``1 − F(F⁻¹(1 − p)) ≤ p``: the test is exact and conservative
    (its size is at most nominal; how far below depends on the counts).  The
    upper limit is always finite, so a high count can always be flagged; the
    lower limit is 0 where even O = 0 is not unusual (too few expected events
    to detect a low rate).
    """
    c = _level(confidence)
    p = (1.0 - c) / 2.0
    x = np.asarray(precision, dtype="float64")
    dist = _predictive(data_type, x, target, tau2)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = _ppf(dist, p)
        hi = _ppf(dist, 1.0 - p)
        den = np.round(x) if data_type == "PR" else x
        return lo / den, hi / den


def is_rare(numerator, precision, data_type: str, target: float, rare_expected: float, sr_scale: str = "log") -> bool:
    """Rare events: the median expected count (PR: the smaller of events and non-events at the target; RC: the same
    for the share of O in O + D) is below ``rare_expected``, or (SR on the log scale) some unit has O = 0, whose
    log-scale z-score is −∞."""
    o = np.asarray(numerator, dtype="float64")
    x = np.asarray(precision, dtype="float64")
    if data_type == "RC":  # O given O + D is binomial with share θ/(1 + θ): the proportions' rule on O + D
        return is_rare(o, o + x, "PR", target / (1.0 + target), rare_expected)
    if data_type == "PR":
        expected = np.minimum(target, 1.0 - target) * x
    else:
        expected = target * x
        if sr_scale == "log" and np.any(o == 0):
            return True
    return bool(np.median(expected) < rare_expected)


def _exact_fit(data_type: str, o: np.ndarray, d: np.ndarray, valid: np.ndarray, target: float) -> tuple:
    """The exact (rare-event) robust funnel's ``y, s, z, z_adjusted, wz, θ0, τ², φ``: the indicator itself, the
    moment τ² on the count scale (:func:`pearson_tau2`) and Pearson residuals without and with it."""
    n = d if data_type == "PR" else None
    mu = target * d
    tau2, phi = pearson_tau2(o[valid], mu[valid], data_type, None if n is None else n[valid], target)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd0 = np.sqrt(_pearson_variance(data_type, mu, n, target, 0.0))
        z = (o - mu) / sd0
        z_adj = (o - mu) / np.sqrt(_pearson_variance(data_type, mu, n, target, tau2))
        return o / d, sd0 / d, z, z_adj, np.where(valid, z, np.nan), target, tau2, phi


def _normal_fit(
    data_type: str, scale: str, o: np.ndarray, d: np.ndarray, valid: np.ndarray, target: float, trim_by: float
) -> tuple:
    """The normal-limits robust funnel's ``y, s, z, z_adjusted, wz, θ0, τ², φ`` on ``scale`` (logit for
    proportions, else §3.1's transforms) with the winsorised, consistency-corrected τ² (:func:`robust_tau2`)."""
    if scale == "logit":
        y = np.log((o + 0.5) / (d - o + 0.5))
        s = 1.0 / np.sqrt(d * target * (1.0 - target))
        theta0 = math.log(target / (1.0 - target))
    else:
        y, s, theta0 = _transform(data_type, "SHMI" if scale == "log" else "CQC", o, d, target)
    tau2, phi = robust_tau2(y[valid], s[valid], theta0, trim_by)
    with np.errstate(invalid="ignore"):
        z = (y - theta0) / s
        z_adj = (y - theta0) / np.sqrt(s**2 + tau2)
    return y, s, z, z_adj, _winsorise(z, valid, trim_by), theta0, tau2, phi


def _check_robust_arguments(
    data_type: str, sr_scale: str, pr_scale: str, limits: str, trim_by: float, rare_expected: float
) -> None:
    """The settings of :func:`robust_funnel`, each checked with a one-line error naming it."""
    if data_type not in ("SR", "PR", "RC"):
        raise ValueError(f"data_type must be 'SR', 'PR' or 'RC'; got {data_type!r}")
    if sr_scale not in SR_SCALES:
        raise ValueError(f"sr_scale must be 'log' or 'sqrt'; got {sr_scale!r}")
    if pr_scale not in PR_SCALES:
        raise ValueError(f"pr_scale must be 'logit' or 'arcsine'; got {pr_scale!r}")
    if limits not in LIMIT_RULES:
        raise ValueError(f"limits must be 'auto', 'normal' or 'exact'; got {limits!r}")
    if isinstance(trim_by, bool) or not isinstance(trim_by, Real) or not (0.0 < trim_by < 0.5):
        raise ValueError(f"trim_by must be a fraction in (0, 0.5); got {trim_by!r}")
    if isinstance(rare_expected, bool) or not isinstance(rare_expected, Real) or not rare_expected >= 0:
        raise ValueError(f"rare_expected must be a number >= 0; got {rare_expected!r}")


def robust_funnel(
    numerator,
    denominator,
    data_type: str = "SR",
    *,
    trim_by: float = 0.1,
    sr_scale: str = "sqrt",
    pr_scale: str = "logit",
    limits: str = "auto",
    rare_expected: float = 10.0,
    target: float | None = None,
    groups=None,
) -> FunnelResult:
    """The project's default funnel: flags at the nominal rate when no unit is truly different.

    Both limit sets of the result (``_adj`` and unadjusted) come from one
    model: the unit's transformed value is ``θ0 + u_i + noise_i`` with the
    between-unit effect ``u_i ~ N(0, τ²)``.  Adjusted limits are used
    whenever τ² > 0 (no "φ > 1" gate), so that, for trusts drawn from the
    between-trust distribution, about 5% fall outside the 95% limits.

    Normal limits (``limits="normal"``, or ``"auto"`` with enough events):
    z-scores on the scales of §3.1 (SR: ``sr_scale`` log — the SHMI scale —
    or sqrt) or, for proportions, ``pr_scale``
    "logit" (the scale of a random-intercept logistic model: ``y =
    ln((O + ½)/(n − O + ½))`` with ``s² = 1/(n·p0·(1 − p0))``, the binomial
    variance at the target, as §3.4 recommends for RC) or "arcsine" (§3.1), τ² by
    :func:`robust_tau2` (winsorised, consistency-corrected), limits
    ``θ0 ± z·√(s² + τ²)`` transformed back (§3.4's recommended forms).

    Exact limits (``limits="exact"``, or ``"auto"`` when :func:`is_rare`):
    τ² by :func:`pearson_tau2` and limits by :func:`exact_limits` (negative
    binomial / beta-binomial predictive distribution; Poisson / binomial when
    τ² = 0).  Never φ = inf, never an infinite upper limit.

    Ratios of counts (RC, O against a comparison count D) are tested
    conditionally on the total O + D (:func:`_conditional_rc`): given the
    total, O is binomial with share θ/(1 + θ) — the exact way to compare two
    Poisson counts — so RC runs the proportions' method (logit scale or exact
    limits) on O out of O + D and reports it on the ratio scale.  The
    unconditional log-ratio normal limits flagged about 1% of trusts outside
    99.8% limits with 10–15 events per quarter (the simulation study).

    ``z`` and ``z_adjusted`` are the unit's z-score without and with τ² (for
    exact limits, the Pearson residual ``(O − μ)/√V``): descriptive; the flags
    come from the limits, strict comparisons (a value on a limit is inside).

    Parameters are as :func:`spiegelhalter` plus ``sr_scale``, ``pr_scale``, ``limits``
    ("auto", "normal" or "exact") and ``rare_expected`` (the median expected
    count below which "auto" uses exact limits).
    """
    _check_robust_arguments(data_type, sr_scale, pr_scale, limits, trim_by, rare_expected)
    o, d, index = _checked_counts(numerator, denominator, groups, data_type)
    valid = ~np.isnan(o) & ~np.isnan(d)
    if not valid.any():
        raise ValueError("no unit has both a numerator and a denominator")
    target_value = _target_value(target, data_type, o, d, valid)
    if data_type == "RC":
        kwargs = {"trim_by": trim_by, "limits": limits, "rare_expected": rare_expected}
        return _conditional_rc(o, d, index, target_value, **kwargs)
    if target_value <= 0 or (data_type == "PR" and target_value >= 1):
        raise ValueError(
            f"the target must be inside the range of the indicator; got {target_value!r} "
            "(no events, or every unit at 100%)"
        )

    exact = limits == "exact" or (
        limits == "auto" and is_rare(o[valid], d[valid], data_type, target_value, rare_expected, sr_scale)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = o / d
    if exact:
        scale = "relative"
        fit = _exact_fit(data_type, o, d, valid, target_value)
    else:
        scale = pr_scale if data_type == "PR" else sr_scale
        fit = _normal_fit(data_type, scale, o, d, valid, target_value, trim_by)
    y, s, z, z_adj, wz, theta0, tau2, phi = fit
    kept = valid.copy()

    columns: dict[str, Any] = dict(zip(UNIT_COLUMNS, (o, d, rr, y, s, z, kept, wz, z_adj), strict=True))
    for adjusted in (False, True):
        for level, tag in LEVELS.items():
            suffix = tag + ("_adj" if adjusted else "")
            lower, upper = _robust_limits_at(
                data_type, scale, exact, d, target_value, theta0, tau2 if adjusted else 0.0, level
            )
            columns.update(_flag_columns(suffix, rr, lower, upper, valid))
    units = pd.DataFrame(columns, index=index)
    return FunnelResult(
        units=units,
        target=target_value,
        phi=float(phi),
        tau2=float(tau2),
        n_kept=int(kept.sum()),
        method=f"{data_type}, robust (project default): {_robust_description(data_type, scale, exact, trim_by)}",
        adjusted_used=bool(tau2 > 0),
        data_type=data_type,
        sr_method=sr_scale if data_type == "SR" else None,
        trim_by=float(trim_by),
        compat=None,
        theta0=float(theta0),
        estimator=METHOD_ROBUST,
        exact=bool(exact),
        scale=scale,
    )


def _robust_description(data_type: str, scale: str, exact: bool, trim_by: float) -> str:
    """How a robust funnel's limits and τ² are made (the end of its ``method`` text)."""
    if exact:
        dist = "binomial/beta-binomial" if data_type == "PR" else "Poisson/negative binomial"
        return f"exact {dist} limits for rare events, moment τ² on the count scale"
    return f"{scale} scale, τ² from the {trim_by:.0%}-winsorised z-scores corrected for consistency"


def _odds(p: np.ndarray) -> np.ndarray:
    """A share of O + D on the ratio scale O/D: ``p/(1 − p)`` (infinite at p = 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p >= 1.0, np.inf, p / (1.0 - p))


def _conditional_rc(o: np.ndarray, d: np.ndarray, index: pd.Index, ratio: float, **kwargs: Any) -> FunnelResult:
    """The robust RC funnel: O out of the total O + D against the share ``π0 = θ0/(1 + θ0)``, by the proportions'
    method (logit-scale normal limits with the robust τ², or exact binomial / beta-binomial limits when the events
    are rare), reported on the ratio scale: ``rr = O/D`` and every limit ``p/(1 − p)``.  The flags are the
    proportions' flags (the map is increasing, so a share outside its limits is a ratio outside its limits).
    The share is always on the logit scale (``pr_scale`` applies to proportions only).
    ``units`` gains ``total`` (O + D, the funnel's precision: :func:`limits_grid` draws against it); ``theta0``
    and ``tau2`` are on the share's scale (the logit of π0 — equal to ln θ0 — or π0 for exact limits)."""
    if not ratio > 0:
        raise ValueError(f"the target must be inside the range of the indicator; got {ratio!r} (no events)")
    share = robust_funnel(
        pd.Series(o, index=index), pd.Series(o + d, index=index), "PR", target=ratio / (1.0 + ratio), **kwargs
    )
    units = share.units.copy()
    units.insert(2, "total", units.pop("denominator"))
    units.insert(1, "denominator", d)
    with np.errstate(divide="ignore", invalid="ignore"):
        units["rr"] = o / d
    for column in units.columns:
        if column.startswith(("lower_", "upper_")):
            units[column] = _odds(units[column].to_numpy(dtype="float64"))
    how = _robust_description("PR", share.scale or "logit", share.exact, share.trim_by)
    method = f"RC, robust (project default): O of O + D against the pooled share (conditional binomial), {how}"
    return replace(share, units=units, target=float(ratio), data_type="RC", method=method)


def _robust_limits_at(
    data_type: str,
    scale: str,
    exact: bool,
    precision: np.ndarray,
    target: float,
    theta0: float,
    tau2: float,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Limits of the robust method on the natural scale: exact, or ``θ0 ± z·√(s² + τ²)`` back-transformed."""
    if exact:
        return exact_limits(data_type, precision, target, tau2, confidence)
    if scale == "logit":
        x = np.asarray(precision, dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            half = _z(confidence) * np.sqrt(1.0 / (x * target * (1.0 - target)) + tau2)
        return _sps.logistic.cdf(theta0 - half), _sps.logistic.cdf(theta0 + half)
    sr_method = "SHMI" if scale == "log" else "CQC"
    return _limits_at(data_type, sr_method, precision, target, theta0, tau2, confidence, True, None)


class FunnelOptions(TypedDict, total=False):
    """The keyword arguments :func:`funnel` passes on: to :func:`robust_funnel` ``trim_by``, ``sr_scale``,
    ``pr_scale``, ``limits``, ``rare_expected``, ``target`` and ``groups``; to :func:`spiegelhalter` ``trim_by``,
    ``sr_method``, ``compat``, ``target`` and ``groups`` (their defaults are the methods' own)."""

    trim_by: float
    sr_method: str
    compat: str | None
    sr_scale: str
    pr_scale: str
    limits: str
    rare_expected: float
    target: float | None
    groups: Any


#: The options of :class:`FunnelOptions` each method takes.
METHOD_OPTIONS = {
    METHOD_ROBUST: ("trim_by", "sr_scale", "pr_scale", "limits", "rare_expected", "target", "groups"),
    METHOD_SPIEGELHALTER: ("trim_by", "sr_method", "compat", "target", "groups"),
}


def funnel(
    numerator, denominator, data_type: str = "SR", *, method: str = METHOD_ROBUST, **options: Unpack[FunnelOptions]
) -> FunnelResult:
    """A funnel by the configured method: ``"robust"`` (:func:`robust_funnel`, the project's default) or
    ``"spiegelhalter"`` (:func:`spiegelhalter`, which reproduces SHMI / FunnelPlotR exactly: ``sr_method``,
    ``compat``).  Options (:class:`FunnelOptions`) not used by the chosen method are ignored."""
    unknown = sorted(set(options) - FunnelOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"funnel() got unexpected keyword arguments {unknown}")
    if method not in METHOD_OPTIONS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    used: dict[str, Any] = {name: value for name, value in options.items() if name in METHOD_OPTIONS[method]}
    if method == METHOD_ROBUST:
        return robust_funnel(numerator, denominator, data_type, **used)
    return spiegelhalter(numerator, denominator, data_type=data_type, **used)


def expected_flags(n_tested: int, confidence: float) -> float:
    """The number of results expected outside two-sided limits at ``confidence`` by chance alone when no unit is
    truly different: ``n_tested × (1 − confidence)`` (half of them on each side)."""
    return float(n_tested) * (1.0 - _level(confidence))


def limits_grid(result: FunnelResult, n_points: int = 100) -> pd.DataFrame:
    """Limits on a drawing grid of precisions (plots only, §2.5).

    The grid runs geometrically from ``max(1, axis_min)`` to ``axis_max`` of
    the units' precisions (each step at least +1, PHE's rule).  For the robust
    method the limits are those its flags use (normal or exact, with τ²) on a
    geometric grid from half the smallest to the largest precision (exact
    limits are step functions of the precision, so the grid is 8× denser).  Returns a
    DataFrame with ``precision``, ``target`` and the eight limit columns of
    :class:`FunnelResult` (unadjusted and adjusted, 95% and 99.8%).
    """
    den = result.units["denominator"].to_numpy(dtype="float64")
    if result.estimator == METHOD_ROBUST:
        if result.data_type == "RC":  # tested on the total O + D (conditional binomial): drawn against it
            return _robust_grid(result, result.units["total"].to_numpy(dtype="float64"), n_points)
        return _robust_grid(result, den, n_points)
    grid = phe_funnel_grid(den, statistic="proportion", n_points=n_points)
    out = pd.DataFrame({"precision": grid, "target": np.full(grid.shape, result.target)})
    sr_method = result.sr_method or "SHMI"
    for adjusted in (False, True):
        for level, tag in LEVELS.items():
            suffix = tag + ("_adj" if adjusted else "")
            lower, upper = _limits_at(
                result.data_type,
                sr_method,
                grid,
                result.target,
                result.theta0,
                result.tau2,
                level,
                adjusted,
                result.compat,
            )
            out[f"lower_{suffix}"], out[f"upper_{suffix}"] = lower, upper
    if result.data_type == "PR" and result.compat == "FunnelPlotR":
        # FunnelPlotR forces the limits to be monotone along the grid
        for tag in ("95", "998", "95_adj", "998_adj"):
            out[f"lower_{tag}"] = np.maximum.accumulate(out[f"lower_{tag}"].to_numpy())
            out[f"upper_{tag}"] = np.minimum.accumulate(out[f"upper_{tag}"].to_numpy())
    return out


def _robust_grid(result: FunnelResult, den: np.ndarray, n_points: int) -> pd.DataFrame:
    den = den[np.isfinite(den) & (den > 0)]
    if den.size == 0:
        raise ValueError("no unit has a positive denominator")
    lo, hi = float(den.min()) * 0.5, float(den.max())
    count = n_points * (8 if result.exact else 1)
    grid = np.geomspace(lo, hi, count) if hi > lo else np.array([lo, hi * 2.0])
    rc = result.data_type == "RC"  # limits of the share of O in O + D, shown as ratios
    if result.exact and result.data_type in ("PR", "RC"):
        grid = np.unique(np.maximum(np.round(grid), 1.0))
    out = pd.DataFrame({"precision": grid, "target": np.full(grid.shape, result.target)})
    scale = result.scale or "log"
    target = result.target / (1.0 + result.target) if rc else result.target
    for adjusted in (False, True):
        for level, tag in LEVELS.items():
            suffix = tag + ("_adj" if adjusted else "")
            lower, upper = _robust_limits_at(
                "PR" if rc else result.data_type,
                scale,
                result.exact,
                grid,
                target,
                result.theta0,
                result.tau2 if adjusted else 0.0,
                level,
            )
            if rc:
                lower, upper = _odds(lower), _odds(upper)
            out[f"lower_{suffix}"], out[f"upper_{suffix}"] = lower, upper
    return out


# ---------------------------------------------------------------------------
# banding
# ---------------------------------------------------------------------------


def band(flag_high, flag_low, direction: str) -> pd.DataFrame:
    """Band and outcome from funnel flags and the metric's polarity.

    Parameters
    ----------
    flag_high, flag_low : array-like of bool (or nullable boolean)
        The unit is above the upper / below the lower limit.  Computing the
        flags with strict comparisons makes a value on a limit count as inside.
    direction : {"higher_better", "lower_better"}
        The metric's polarity.

    Returns
    -------
    DataFrame with ``band`` ("higher than expected" / "as expected" / "lower
    than expected") and ``outcome`` ("better than expected" / "as expected" /
    "worse than expected"); missing where a flag is missing.

    Raises
    ------
    ValueError
        Unknown direction, or a unit flagged both high and low.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'higher_better' or 'lower_better'; got {direction!r}")
    index = flag_high.index if isinstance(flag_high, pd.Series) else None
    hi = pd.array(np.asarray(flag_high, dtype=object), dtype="boolean")
    lo = pd.array(np.asarray(flag_low, dtype=object), dtype="boolean")
    if len(hi) != len(lo):
        raise ValueError(f"flag_high and flag_low have different lengths ({len(hi)} and {len(lo)})")
    both = (hi & lo).fillna(False).to_numpy(dtype=bool)
    if both.any():
        i = int(np.flatnonzero(both)[0])
        raise ValueError(f"a unit cannot be both above and below its limits (position {i})")
    missing = hi.isna() | lo.isna()
    h = hi.fillna(False).to_numpy(dtype=bool)
    lw = lo.fillna(False).to_numpy(dtype=bool)
    bands = np.where(h, BAND_HIGH, np.where(lw, BAND_LOW, BAND_AS_EXPECTED)).astype(object)
    better, worse = (h, lw) if direction == "higher_better" else (lw, h)
    outcome = np.where(better, OUTCOME_BETTER, np.where(worse, OUTCOME_WORSE, OUTCOME_AS_EXPECTED)).astype(object)
    bands[missing] = None
    outcome[missing] = None
    return pd.DataFrame({"band": pd.array(bands, dtype="str"), "outcome": pd.array(outcome, dtype="str")}, index=index)
