"""Indicator statistics: values and confidence intervals for one trust.

Implements sections 0-1 of ``shared/docs/statistical-methods.md``:

- proportions with Wilson score limits (§1.1);
- counts and crude rates with exact Poisson limits below 10 events and Byar's
  approximation from 10 (§1.2); an overdispersed count (a sum of lengths of
  stay, admissions clustered in patients) with the numerator's own variance:
  the same limits of its effective count, scaled (:func:`scaled_poisson_limits`);
- mean scores with Student's t limits (§1.2);
- directly standardised rates by the Dobson method, with the non-independent
  events adjustment and suppression below 10 events (§1.3);
- indirect standardisation: expected counts from reference rates, ISR and
  ISRate (§1.4).

Conventions
-----------
Every public *indicator* function returns a :class:`pandas.DataFrame` with the
columns ``value, lower, upper, confidence, statistic, method`` (one row per
input element, the input's index kept when a Series is given), as in
PHEindicatormethods.  ``method`` is per row because it can switch
(Exact/Byars).  Confidence levels are fractions in (0, 1] (0.95, 0.998);
unlike PHEindicatormethods, 95 or 99.8 are rejected.

Missing input gives missing output (NaN), never zero.  Invalid input raises
:class:`ValueError` with a message naming the offending position and value.

Library use: Wilson limits agree with
``statsmodels.stats.proportion.proportion_confint(method="wilson")`` and the
exact Poisson limits with ``statsmodels.stats.rates.confint_poisson(method="exact-c")``
(both checked in the tests); chi-square and normal quantiles come from scipy.
Byar, DSR, ISR and ISRate are hand-written because no library implements them.

References
----------
Wilson EB (1927) JASA 22:209-212.  Breslow NE, Day NE (1987) Statistical
Methods in Cancer Research vol. II, IARC (Byar's approximation).  Dobson AJ et
al. (1991) Stat Med 10:457-462.  PHE/OHID Technical Guide: Confidence
Intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any, Required, TypedDict, Unpack

import numpy as np
import pandas as pd
from scipy import stats as _sps

__all__ = [
    "ESP2013",
    "EXACT_BYAR_THRESHOLD",
    "DSR_MIN_EVENTS",
    "z_value",
    "wilson_limits",
    "exact_poisson_limits",
    "byar_limits",
    "poisson_limits",
    "scaled_poisson_limits",
    "proportion",
    "crude_rate",
    "mean_score",
    "ratio",
    "expected_from_reference",
    "IsrData",
    "isr",
    "israte",
    "dsr",
]

#: Exact Poisson limits are used below this many events, Byar's from it (§1.2).
EXACT_BYAR_THRESHOLD = 10

#: DSRs with fewer total events than this are suppressed (§1.3).
DSR_MIN_EVENTS = 10

#: 2013 European Standard Population, 19 age bands, total 100,000 (§1.3).
#: Keyed by age band so that strata are joined by key, never by position.
ESP2013 = pd.Series(
    [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000],
    index=pd.Index(
        [
            "0-4",
            "5-9",
            "10-14",
            "15-19",
            "20-24",
            "25-29",
            "30-34",
            "35-39",
            "40-44",
            "45-49",
            "50-54",
            "55-59",
            "60-64",
            "65-69",
            "70-74",
            "75-79",
            "80-84",
            "85-89",
            "90+",
        ],
        name="age_band",
    ),
    name="esp2013",
    dtype="float64",
)

OUTPUT_COLUMNS = ["value", "lower", "upper", "confidence", "statistic", "method"]

_NO_INTERVAL_MEAN = "no interval: mean score without respondent data"
_DSR_SUPPRESSED = "suppressed: total count < 10"


# ---------------------------------------------------------------------------
# input handling and validation
# ---------------------------------------------------------------------------


def _check_confidence(confidence: Any) -> float:
    """Return ``confidence`` as a float after checking it is a fraction in (0, 1]."""
    if isinstance(confidence, bool) or not isinstance(confidence, Real):
        raise ValueError(f"confidence must be a single number, a fraction in (0, 1] such as 0.95; got {confidence!r}")
    c = float(confidence)
    if not (0.0 < c <= 1.0):
        raise ValueError(
            f"confidence must be a fraction in (0, 1] such as 0.95 or 0.998; got {confidence!r}"
            + (" (percentages are not accepted: write 0.95, not 95)" if 1.0 < c <= 100.0 else "")
        )
    return c


def z_value(confidence: float) -> float:
    """Two-sided normal quantile ``z_c = Φ⁻¹(1 − (1−c)/2)`` (§0); ``inf`` for c = 1."""
    c = _check_confidence(confidence)
    return float(_sps.norm.ppf(1.0 - (1.0 - c) / 2.0))


def _is_series(obj: Any) -> bool:
    return isinstance(obj, pd.Series)


def _to_float_array(obj: Any, name: str) -> np.ndarray:
    if _is_series(obj):
        values = obj.to_numpy(dtype="float64", na_value=np.nan)
    else:
        try:
            values = np.asarray(obj, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric; could not convert {obj!r}") from exc
    return values


def _prepare(**named: Any) -> tuple[dict[str, np.ndarray], pd.Index | None, bool]:
    """Convert inputs to broadcast float arrays.

    Returns the arrays, the common index (when any input is a Series) and whether
    the inputs were all scalars.  Series inputs must share the same index: the
    caller aligns by key, this function never aligns by position silently.
    """
    index: pd.Index | None = None
    index_from = None
    for name, obj in named.items():
        if obj is None:
            continue
        if _is_series(obj):
            if index is None:
                index, index_from = obj.index, name
            elif not obj.index.equals(index):
                raise ValueError(f"{index_from} and {name} have different indexes; align them by key first")
    arrays = {name: _to_float_array(obj, name) for name, obj in named.items() if obj is not None}
    scalar = all(a.ndim == 0 for a in arrays.values())
    try:
        broadcast = np.broadcast_arrays(*arrays.values())
    except ValueError as exc:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
        raise ValueError(f"inputs have incompatible lengths: {shapes}") from exc
    out = {}
    for name, arr in zip(arrays, broadcast):
        arr = np.atleast_1d(np.array(arr, dtype="float64"))
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
        out[name] = arr
    if index is not None:
        length = next(iter(out.values())).shape[0]
        if len(index) != length:
            raise ValueError(f"index of {index_from} has length {len(index)}, inputs have length {length}")
    return out, index, scalar


def _position(i: int, index: pd.Index | None) -> str:
    if index is None:
        return f"position {i}"
    return f"position {i} (index {index[i]!r})"


def _raise_first(mask: np.ndarray, message: str, values: np.ndarray, index: pd.Index | None) -> None:
    """Raise ValueError naming the first element where ``mask`` is true."""
    bad = np.flatnonzero(mask)
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size} values in all)" if bad.size > 1 else ""
        raise ValueError(f"{message}; got {float(values[i])!r} at {_position(i, index)}{more}")


def _check_nonnegative(x: np.ndarray, name: str, index: pd.Index | None) -> None:
    _raise_first(np.isinf(x), f"{name} must be finite", x, index)
    _raise_first(x < 0, f"{name} must be >= 0", x, index)


def _check_positive(n: np.ndarray, name: str, index: pd.Index | None) -> None:
    _raise_first(np.isinf(n), f"{name} must be finite", n, index)
    _raise_first(n <= 0, f"{name} must be > 0", n, index)


def _check_x_le_n(x: np.ndarray, n: np.ndarray, index: pd.Index | None, xname="x", nname="n") -> None:
    bad = np.flatnonzero(x > n)
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size} values in all)" if bad.size > 1 else ""
        raise ValueError(
            f"{xname} must be <= {nname} for a proportion; got {xname}={float(x[i])!r} > {nname}={float(n[i])!r} "
            f"at {_position(i, index)}{more}"
        )


def _wrap(arr: np.ndarray, index: pd.Index | None, scalar: bool, name: str | None = None):
    """Return an array result as a Series (Series input), scalar (scalar input) or array."""
    if index is not None:
        return pd.Series(arr, index=index, name=name)
    if scalar:
        value = arr[0]
        return value.item() if isinstance(value, np.generic) else value
    return arr


def _frame(value, lower, upper, confidence, statistic, method, index, length) -> pd.DataFrame:
    if index is None:
        index = pd.RangeIndex(length)
    if isinstance(method, str):
        method = np.full(length, method, dtype=object)
    frame = pd.DataFrame(
        {
            "value": np.asarray(value, dtype="float64"),
            "lower": np.asarray(lower, dtype="float64"),
            "upper": np.asarray(upper, dtype="float64"),
            "confidence": np.full(length, confidence, dtype="float64"),
            "statistic": np.full(length, statistic, dtype=object),
            "method": np.asarray(method, dtype=object),
        },
        index=index,
    )
    # missing method labels stay missing (NaN in the string column)
    frame["statistic"] = frame["statistic"].astype("str")
    frame["method"] = frame["method"].astype("str")
    return frame


def _multiplier_text(multiplier: float) -> str:
    m = float(multiplier)
    return f"{int(m):,}" if m.is_integer() else f"{m:g}"


def _check_multiplier(multiplier: Any, name: str = "multiplier") -> float:
    bad = isinstance(multiplier, bool) or not isinstance(multiplier, Real)
    if bad or not np.isfinite(multiplier) or multiplier <= 0:
        raise ValueError(f"{name} must be a positive number; got {multiplier!r}")
    return float(multiplier)


# ---------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------


def _wilson(x: np.ndarray, n: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        if c == 1.0:
            lower = np.where(np.isnan(x) | np.isnan(n), np.nan, 0.0)
            upper = np.where(np.isnan(x) | np.isnan(n), np.nan, 1.0)
            return lower, upper
        z = float(_sps.norm.ppf(1.0 - (1.0 - c) / 2.0))
        z2 = z * z
        centre = 2.0 * x + z2
        half = z * np.sqrt(z2 + 4.0 * x * (1.0 - x / n))
        denom = 2.0 * (n + z2)
        lower = (centre - half) / denom
        upper = (centre + half) / denom
    # exact end points (the formula gives them only up to rounding)
    lower = np.where(x == 0, 0.0, lower)
    upper = np.where(x == n, 1.0, upper)
    return lower, upper


def wilson_limits(x, n, confidence: float = 0.95):
    """Wilson score limits for a proportion of 1 (§1.1).

    Parameters
    ----------
    x : array-like or Series
        Numerators (``0 <= x <= n``; non-integer weighted counts allowed).
    n : array-like or Series
        Denominators (``> 0``).
    confidence : float
        Two-sided confidence level as a fraction in (0, 1].

    Returns
    -------
    (lower, upper)
        Same shape as the input (Series when a Series was given).  ``x = 0``
        gives a lower limit of exactly 0, ``x = n`` an upper limit of exactly
        1; ``confidence = 1`` gives (0, 1).

    Raises
    ------
    ValueError
        If ``x < 0``, ``n <= 0``, ``x > n`` or the confidence is not a fraction
        in (0, 1].
    """
    c = _check_confidence(confidence)
    xa, na, index, scalar = _proportion_inputs(x, n)
    lower, upper = _wilson(xa, na, c)
    return _wrap(lower, index, scalar, "lower"), _wrap(upper, index, scalar, "upper")


def _proportion_inputs(x, n) -> tuple[np.ndarray, np.ndarray, pd.Index | None, bool]:
    """Numerators and denominators of proportions as float arrays, checked: ``0 <= x <= n``, ``n > 0``."""
    arrs, index, scalar = _prepare(x=x, n=n)
    xa, na = arrs["x"], arrs["n"]
    _check_nonnegative(xa, "x", index)
    _check_positive(na, "n", index)
    _check_x_le_n(xa, na, index)
    return xa, na, index, scalar


def _exact(x: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - c
    with np.errstate(invalid="ignore"):
        lower = np.where(x == 0, 0.0, _sps.chi2.ppf(alpha / 2.0, 2.0 * x) / 2.0)
        upper = _sps.chi2.ppf(1.0 - alpha / 2.0, 2.0 * x + 2.0) / 2.0
    lower = np.where(np.isnan(x), np.nan, lower)
    return lower, upper


def exact_poisson_limits(x, confidence: float = 0.95):
    """Exact (chi-square) Poisson limits for a count (§1.2).

    ``lower = χ²_{(1−c)/2}(2x)/2`` (0 when x = 0) and
    ``upper = χ²_{1−(1−c)/2}(2x+2)/2``; non-integer x is allowed.  Identical to
    ``statsmodels.stats.rates.confint_poisson(x, 1, method="exact-c")``.

    Returns ``(lower, upper)`` in the shape of the input.

    Raises
    ------
    ValueError
        If ``x < 0`` or the confidence is not a fraction in (0, 1].
    """
    return _count_limits(x, confidence, _exact)


def _count_limits(x, confidence: float, limits) -> tuple:
    """``limits(x, confidence)`` of checked counts ``x >= 0``, in the shape of the input."""
    c = _check_confidence(confidence)
    arrs, index, scalar = _prepare(x=x)
    xa = arrs["x"]
    _check_nonnegative(xa, "x", index)
    lower, upper = limits(xa, c)
    return _wrap(lower, index, scalar, "lower"), _wrap(upper, index, scalar, "upper")


def _byar(x: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    if c == 1.0:
        return np.where(np.isnan(x), np.nan, 0.0), np.where(np.isnan(x), np.nan, np.inf)
    z = float(_sps.norm.ppf(1.0 - (1.0 - c) / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = x * (1.0 - 1.0 / (9.0 * x) - z / (3.0 * np.sqrt(x))) ** 3
        x1 = x + 1.0
        upper = x1 * (1.0 - 1.0 / (9.0 * x1) + z / (3.0 * np.sqrt(x1))) ** 3
    # Byar's lower limit is undefined at 0 and can go negative for tiny counts:
    # a count cannot have a negative limit.
    lower = np.where(x == 0, 0.0, np.maximum(lower, 0.0))
    lower = np.where(np.isnan(x), np.nan, lower)
    return lower, upper


def byar_limits(x, confidence: float = 0.95):
    """Byar's approximation to the Poisson limits of a count (§1.2).

    ``lower = x(1 − 1/(9x) − z/(3√x))³``, ``upper = (x+1)(1 − 1/(9(x+1)) + z/(3√(x+1)))³``.
    The lower limit is floored at 0 (it is 0 at x = 0).  Use
    :func:`poisson_limits` for the project's exact-below-10 rule.

    Returns ``(lower, upper)`` in the shape of the input.
    """
    return _count_limits(x, confidence, _byar)


def _poisson(x: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    el, eu = _exact(x, c)
    bl, bu = _byar(x, c)
    use_exact = x < EXACT_BYAR_THRESHOLD
    lower = np.where(use_exact, el, bl)
    upper = np.where(use_exact, eu, bu)
    method = np.where(np.isnan(x), None, np.where(use_exact, "Exact", "Byars")).astype(object)
    return lower, upper, method


def poisson_limits(x, confidence: float = 0.95):
    """Poisson limits of a count: exact below 10 events, Byar's from 10 (§1.2, §9.3).

    Returns
    -------
    (lower, upper, method)
        ``method`` is ``"Exact"`` or ``"Byars"`` per element (missing where x
        is missing).
    """
    c = _check_confidence(confidence)
    arrs, index, scalar = _prepare(x=x)
    xa = arrs["x"]
    _check_nonnegative(xa, "x", index)
    lower, upper, method = _poisson(xa, c)
    return _wrap_limits(lower, upper, method, index, scalar)


def _wrap_limits(lower, upper, method, index, scalar):
    """(lower, upper, method) in the caller's shape: Series on its index, scalars, or arrays."""
    if index is not None:
        method_out = pd.Series(method, index=index, name="method", dtype="str")
    elif scalar:
        method_out = method[0]
    else:
        method_out = method
    return _wrap(lower, index, scalar, "lower"), _wrap(upper, index, scalar, "upper"), method_out


def quasi_poisson_scale(x, v) -> np.ndarray:
    """The scale φ = V/x of a count x with variance V; 1 where x or V is 0 or V is missing (nothing to scale by: the
    Poisson case). The published interval (:func:`scaled_poisson_limits`) and the sampling bootstrap
    (:attr:`leaguetables.statistics.sampling.MetricData.phi`) both use it."""
    x, v = np.asarray(x, float), np.asarray(v, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((x > 0) & (v > 0), v / x, 1.0)


def _scaled_poisson(x: np.ndarray, v: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """φ·L(x/φ) with φ = v/x (:func:`quasi_poisson_scale`)."""
    phi = quasi_poisson_scale(x, v)
    lower, upper, method = _poisson(x / phi, c)
    scaled = np.where(phi == 1.0, method, np.char.add(method.astype(str), ", scaled"))
    method = np.where(np.isnan(x), None, scaled).astype(object)
    return lower * phi, upper * phi, method


def scaled_poisson_limits(x, variance, confidence: float = 0.95):
    """Limits of a count whose variance is not its mean (quasi-Poisson): with the scale ``φ = V/x`` and the
    effective count ``x/φ = x²/V``, ``limits = φ · L(x/φ)``, L the exact (effective count < 10) or Byar limits
    (§1.2). ``V = x`` gives :func:`poisson_limits`; x = 0 or V = 0 too (φ = 1: nothing to scale by).

    ``variance`` is the count's estimated variance: for a sum of lengths of stay, the sum of the squared
    deviations of the stays from their expected values; for admissions clustered in patients, Σ over patients of
    (admissions per patient)². ``method`` is "Exact, scaled" / "Byars, scaled" (or "Exact" / "Byars" where φ = 1).

    Raises
    ------
    ValueError
        If ``x < 0``, ``variance < 0`` or the confidence is not a fraction in (0, 1].
    """
    c = _check_confidence(confidence)
    arrs, index, scalar = _prepare(x=x, variance=variance)
    xa, va = arrs["x"], arrs["variance"]
    _check_nonnegative(xa, "x", index)
    _check_nonnegative(va, "variance", index)
    lower, upper, method = _scaled_poisson(xa, va, c)
    return _wrap_limits(lower, upper, method, index, scalar)


# ---------------------------------------------------------------------------
# indicator statistics
# ---------------------------------------------------------------------------


def proportion(x, n, confidence: float = 0.95, multiplier: float = 100) -> pd.DataFrame:
    """Proportion with Wilson score limits (§1.1).

    ``value = x/n × multiplier``; limits are the Wilson limits × multiplier.
    ``statistic`` is "proportion of 1" (multiplier 1), "percentage"
    (multiplier 100) or "proportion per <multiplier>"; ``method`` "Wilson".

    Raises
    ------
    ValueError
        If ``x < 0``, ``n <= 0``, ``x > n``, a bad confidence or multiplier.
    """
    c = _check_confidence(confidence)
    m = _check_multiplier(multiplier)
    xa, na, index, _ = _proportion_inputs(x, n)
    lower, upper = _wilson(xa, na, c)
    value = xa / na * m
    if m == 1:
        statistic = "proportion of 1"
    elif m == 100:
        statistic = "percentage"
    else:
        statistic = f"proportion per {_multiplier_text(m)}"
    method = np.where(np.isnan(value), None, "Wilson").astype(object)
    return _frame(value, lower * m, upper * m, c, statistic, method, index, xa.size)


def crude_rate(x, n, confidence: float = 0.95, multiplier: float = 100_000, variance=None) -> pd.DataFrame:
    """Crude rate with exact (< 10 events) or Byar (>= 10) limits (§1.2).

    ``value = x/n × multiplier``, ``limits = L(x)/n × multiplier``.  ``x > n``
    is allowed.  ``statistic`` is "rate per <multiplier>".  With ``variance``
    (the count's variance, where it is not x: :func:`scaled_poisson_limits`)
    L is the scaled limits.
    """
    c = _check_confidence(confidence)
    m = _check_multiplier(multiplier)
    return _count_per(x, n, ("x", "n"), c, m, f"rate per {_multiplier_text(m)}", variance)


def _count_per(x, d, names: tuple[str, str], c: float, scale: float, statistic: str, variance=None) -> pd.DataFrame:
    """A count over a positive denominator (population or expected count) × ``scale``, with the exact (< 10) or
    Byar limits of the count over the same denominator: the crude rate and the standardised ratio. With
    ``variance``, the scaled limits of an overdispersed count (:func:`scaled_poisson_limits`)."""
    named = {names[0]: x, names[1]: d} if variance is None else {names[0]: x, names[1]: d, "variance": variance}
    arrs, index, _ = _prepare(**named)
    xa, da = arrs[names[0]], arrs[names[1]]
    _check_nonnegative(xa, names[0], index)
    _check_positive(da, names[1], index)
    if variance is None:
        lower, upper, method = _poisson(xa, c)
    else:
        _check_nonnegative(arrs["variance"], "variance", index)
        lower, upper, method = _scaled_poisson(xa, arrs["variance"], c)
    method = np.where(np.isnan(da), None, method).astype(object)
    return _frame(xa / da * scale, lower / da * scale, upper / da * scale, c, statistic, method, index, xa.size)


def mean_score(mean, sd=None, n=None, confidence: float = 0.95) -> pd.DataFrame:
    """Mean score with a Student's t interval when respondent data exist (§1.2).

    ``limits = mean ∓ t_{1−(1−c)/2, n−1} · sd/√n``.  Without ``sd`` and ``n``
    (survey scores published as a mean only) the limits are missing and the
    method says "no interval: mean score without respondent data"; rows where
    ``sd`` or ``n`` is missing, or ``n = 1``, get the same label.

    Raises
    ------
    ValueError
        If only one of ``sd`` and ``n`` is given, ``sd < 0`` or ``n <= 0``.
    """
    c = _check_confidence(confidence)
    if (sd is None) != (n is None):
        raise ValueError("give both sd and n for a t interval, or neither")
    arrs, index, _ = _prepare(mean=mean, sd=sd, n=n)
    ma = arrs["mean"]
    _raise_first(np.isinf(ma), "mean must be finite", ma, index)
    length = ma.size
    if sd is None:
        lower = upper = np.full(length, np.nan)
        method = np.where(np.isnan(ma), None, _NO_INTERVAL_MEAN).astype(object)
    else:
        sa, na = arrs["sd"], arrs["n"]
        _check_nonnegative(sa, "sd", index)
        _check_positive(na, "n", index)
        ok = ~np.isnan(sa) & ~np.isnan(na) & (na > 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if c == 1.0:
                t = np.where(ok, np.inf, np.nan)
            else:
                t = _sps.t.ppf(1.0 - (1.0 - c) / 2.0, np.where(ok, na - 1.0, np.nan))
            half = t * sa / np.sqrt(na)
        lower = np.where(ok, ma - half, np.nan)
        upper = np.where(ok, ma + half, np.nan)
        method = np.where(ok, "Student's t-distribution", _NO_INTERVAL_MEAN).astype(object)
        method = np.where(np.isnan(ma), None, method).astype(object)
    return _frame(ma, lower, upper, c, "mean", method, index, length)


def _ratio_text(refvalue: float) -> str:
    return "indirectly standardised ratio" + ("" if refvalue == 1 else f" x {_multiplier_text(refvalue)}")


def ratio(observed, expected, confidence: float = 0.95, refvalue: float = 1, variance=None) -> pd.DataFrame:
    """Observed/expected ratio (the ISR when E comes from reference rates), §1.4.

    ``value = O/E × refvalue``; ``limits = {Exact if O < 10 else Byar}(O)/E × refvalue``. With ``variance`` (the
    variance of O where O is not a Poisson count: bed days, admissions clustered in patients) the limits are the
    scaled ones of :func:`scaled_poisson_limits`.

    Raises
    ------
    ValueError
        If ``O < 0``, ``E <= 0``, or a bad confidence/refvalue.
    """
    c = _check_confidence(confidence)
    r = _check_multiplier(refvalue, "refvalue")
    return _count_per(observed, expected, ("observed", "expected"), c, r, _ratio_text(r), variance)


# ---------------------------------------------------------------------------
# indirect standardisation (§1.4)
# ---------------------------------------------------------------------------


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise ValueError(f"{what} has no column(s) {missing}; it has {list(frame.columns)}")


def _join_reference(
    local: pd.DataFrame, reference: pd.DataFrame, on: list[str], ref_x: str, ref_n: str
) -> pd.DataFrame:
    """Join reference rates to local strata by key (never by position)."""
    _require_columns(reference, on + [ref_x, ref_n], "reference")
    ref = reference[on + [ref_x, ref_n]].rename(columns={ref_x: "_ref_x", ref_n: "_ref_n"})
    dup = ref.duplicated(on, keep=False)
    if dup.any():
        keys = ref.loc[dup, on].drop_duplicates().to_dict("records")
        raise ValueError(f"reference has duplicated strata {on}: {keys[:5]}")
    rx = ref["_ref_x"].to_numpy(dtype="float64", na_value=np.nan)
    rn = ref["_ref_n"].to_numpy(dtype="float64", na_value=np.nan)
    ridx = pd.Index(range(len(ref)))
    _check_nonnegative(rx, f"reference {ref_x}", ridx)
    _check_positive(rn, f"reference {ref_n}", ridx)
    joined = local.merge(ref, on=on, how="left", indicator=True, validate="many_to_one")
    unmatched = joined["_merge"] == "left_only"
    if unmatched.any():
        keys = joined.loc[unmatched, on].drop_duplicates().to_dict("records")
        raise ValueError(f"{int(unmatched.sum())} local rows have strata not in the reference, e.g. {keys[:5]}")
    return joined.drop(columns="_merge")


def expected_from_reference(
    local: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    on: str | Sequence[str],
    n: str = "n",
    ref_x: str = "x",
    ref_n: str = "n",
    by: str | Sequence[str] | None = None,
):
    """Expected counts by indirect standardisation, strata joined by key (§1.4).

    ``E = Σ_i (xref_i / nref_i) · n_i`` summed over each group's strata.

    Parameters
    ----------
    local : DataFrame
        One row per (group, stratum) with the local population in column ``n``.
        ``n = 0`` is allowed; missing ``n`` contributes 0.
    reference : DataFrame
        One row per stratum with reference events ``ref_x`` (missing contributes
        0) and population ``ref_n`` (> 0).
    on : str or list of str
        Stratum key column(s) present in both frames, e.g. ``["age_band", "sex"]``.
    by : str or list of str, optional
        Grouping column(s) of ``local`` (e.g. trust code).  Without it the
        whole of ``local`` is one group and a float is returned.

    Returns
    -------
    float or Series
        E per group (Series indexed by ``by``, sorted by key).

    Raises
    ------
    ValueError
        Missing columns, duplicated reference strata, local strata absent from
        the reference, negative counts or non-positive reference populations.
    """
    on_cols, by_cols = _as_list(on), _as_list(by)
    if not on_cols:
        raise ValueError("on must name at least one stratum key column")
    if set(on_cols) & set(by_cols):
        raise ValueError(f"by and on must not share columns; both name {sorted(set(on_cols) & set(by_cols))}")
    _require_columns(local, on_cols + by_cols + [n], "local")
    loc = local[by_cols + on_cols + [n]].rename(columns={n: "_n"})
    dup = loc.duplicated(by_cols + on_cols, keep=False)
    if dup.any():
        raise ValueError(
            f"local has duplicated strata for {by_cols + on_cols}: "
            f"{loc.loc[dup, by_cols + on_cols].drop_duplicates().to_dict('records')[:5]}"
        )
    na = loc["_n"].to_numpy(dtype="float64", na_value=np.nan)
    _check_nonnegative(na, f"local {n}", pd.Index(range(len(loc))))
    joined = _join_reference(loc, reference, on_cols, ref_x, ref_n)
    contrib = (joined["_ref_x"].astype("float64") / joined["_ref_n"].astype("float64")) * joined["_n"].astype("float64")
    joined["_e"] = contrib.fillna(0.0)
    if not by_cols:
        return float(joined["_e"].sum())
    return joined.groupby(by_cols, sort=True)["_e"].sum().rename("expected")


def _observed_by_group(local: pd.DataFrame, x: str, by_cols: list[str]):
    _require_columns(local, [x], "local")
    xa = local[x].to_numpy(dtype="float64", na_value=np.nan)
    _check_nonnegative(xa, f"local {x}", pd.Index(range(len(local))))
    if not by_cols:
        return float(np.nansum(xa))
    return local.assign(_x=xa).groupby(by_cols, sort=True)["_x"].sum(min_count=0).rename("observed")


class IsrData(TypedDict, total=False):
    """The keyword arguments :func:`isr` and :func:`israte` share: how the local and reference tables are read.

    ``on`` (required): the stratum key column(s), in both tables; ``by``: the group key of ``local`` (one result
    row per group; default: one overall row); ``observed``: the observed total O (a number, or with ``by`` a Series
    indexed by the group key; default: the sum of ``local[x]`` per group); ``x``, ``n`` (default ``"x"``, ``"n"``):
    the local events and population columns; ``ref_x``, ``ref_n`` (default ``"x"``, ``"n"``): the reference
    events and population columns; ``confidence`` (default 0.95): the two-sided level of the limits."""

    on: Required[str | Sequence[str]]
    by: str | Sequence[str] | None
    observed: Any
    x: str
    n: str
    ref_x: str
    ref_n: str
    confidence: float


def _isr_inputs(local: pd.DataFrame, reference: pd.DataFrame, data: IsrData):
    """Observed and expected counts of :func:`isr` and :func:`israte` (with ``data``'s defaults applied)."""
    unknown = sorted(set(data) - IsrData.__required_keys__ - IsrData.__optional_keys__)
    if unknown or "on" not in data:
        raise TypeError(f"unexpected keyword arguments {unknown}" if unknown else "missing keyword argument 'on'")
    by = data.get("by")
    by_cols = _as_list(by)
    ref_x, ref_n = data.get("ref_x", "x"), data.get("ref_n", "n")
    expected = expected_from_reference(
        local, reference, on=data["on"], n=data.get("n", "n"), ref_x=ref_x, ref_n=ref_n, by=by
    )
    obs = data.get("observed")
    if obs is None:
        obs = _observed_by_group(local, data.get("x", "x"), by_cols)
    if by_cols:
        if not _is_series(obs):
            raise ValueError("with by=..., observed must be a Series indexed by the group key")
        missing = expected.index.difference(obs.index)
        if len(missing):
            raise ValueError(f"observed has no value for groups {list(missing)[:5]}")
        obs = obs.reindex(expected.index)
    return obs, expected


def isr(local: pd.DataFrame, reference: pd.DataFrame, *, refvalue: float = 1, **data: Unpack[IsrData]) -> pd.DataFrame:
    """Indirectly standardised ratio (§1.4).

    ``ISR = O/E × refvalue``, with E from :func:`expected_from_reference` and
    limits ``{Exact if O < 10 else Byar}(O)/E × refvalue``.  O is the sum of
    ``local[x]`` per group (missing strata counts are 0), or a trust total
    given as ``observed`` (a Series indexed by the group key when ``by`` is
    given).  The other keyword arguments are those of :class:`IsrData`.
    Returns the standard six columns, one row per group.
    """
    obs, expected = _isr_inputs(local, reference, data)
    return ratio(obs, expected, confidence=data.get("confidence", 0.95), refvalue=refvalue)


def israte(
    local: pd.DataFrame, reference: pd.DataFrame, *, multiplier: float = 100_000, **data: Unpack[IsrData]
) -> pd.DataFrame:
    """Indirectly standardised rate (§1.4).

    ``ref_rate = Σxref/Σnref × multiplier`` (the crude reference rate),
    ``ISRate = O/E × ref_rate``, limits ``L(O)/E × ref_rate`` with the
    exact/Byar switch at 10.  ``statistic`` is "indirectly standardised rate
    per <multiplier>".  The other keyword arguments are those of :class:`IsrData`.
    """
    m = _check_multiplier(multiplier)
    ref_x, ref_n = data.get("ref_x", "x"), data.get("ref_n", "n")
    _require_columns(reference, [ref_x, ref_n], "reference")
    rx = reference[ref_x].to_numpy(dtype="float64", na_value=np.nan)
    rn = reference[ref_n].to_numpy(dtype="float64", na_value=np.nan)
    ref_rate = np.nansum(rx) / np.nansum(rn) * m
    obs, expected = _isr_inputs(local, reference, data)
    out = ratio(obs, expected, confidence=data.get("confidence", 0.95), refvalue=1)
    out[["value", "lower", "upper"]] = out[["value", "lower", "upper"]] * ref_rate
    out["statistic"] = pd.array([f"indirectly standardised rate per {_multiplier_text(m)}"] * len(out), dtype="str")
    return out


# ---------------------------------------------------------------------------
# directly standardised rates (§1.3)
# ---------------------------------------------------------------------------


def dsr(
    data: pd.DataFrame,
    *,
    x: str = "x",
    n: str = "n",
    by: str | Sequence[str] | None = None,
    standard: pd.Series = ESP2013,
    strata: str | Sequence[str] | None = None,
    confidence: float = 0.95,
    multiplier: float = 100_000,
    independent_events: bool = True,
    event_frequency: str | None = None,
    min_events: int = DSR_MIN_EVENTS,
) -> pd.DataFrame:
    """Directly standardised rate with Dobson limits (§1.3).

    ``DSR = Σ(w_i x_i/n_i)/Σw``, ``var = Σ x_i (w_i/n_i)²/(Σw)²`` and
    ``limits = DSR + √(var/O)·(Byar(O) − O)``, all × multiplier.  Byar is used
    for every O; groups with ``O < min_events`` (10) are suppressed.

    Parameters
    ----------
    data : DataFrame
        One row per (group, stratum) -- or per (group, stratum, event
        frequency) when events are not independent -- with events ``x``
        (missing counts as 0) and population ``n`` (> 0).
    by : str or list of str, optional
        Grouping columns; one output row per group (sorted by key).
    standard : Series
        Standard population weights keyed by the stratum key(s); the index
        name(s) must be columns of ``data``.  Default :data:`ESP2013` keyed by
        ``age_band``.  Strata are joined by key: each group must have every
        standard stratum, and no stratum a second time.
    strata : str or list of str, optional
        Further stratum columns not in the standard (e.g. ``sex`` for a persons
        DSR against a standard by age band only; each sex then carries the
        band's weight).
    independent_events : bool
        When False, ``x`` counts *persons* with ``event_frequency`` events each
        (column named by ``event_frequency``): events ``x_i = Σ_f f·p_{f,i}``
        and ``var = Σ_f f² Σ_i p_{f,i}(w_i/n_i)²/(Σw)²``.

    Returns
    -------
    DataFrame
        ``value, lower, upper, confidence, statistic, method, status`` plus
        ``total_count`` and ``total_pop``.  ``status`` is "ok",
        "suppressed: total count < 10" or "missing input" (a missing
        population); suppressed and missing rows have missing value and limits.

    Raises
    ------
    ValueError
        Missing columns, strata not in the standard, a group lacking a
        standard stratum, duplicated strata, ``x < 0``, ``n <= 0``, a frequency
        table whose population differs between frequencies, bad confidence.
    """
    c = _check_confidence(confidence)
    m = _check_multiplier(multiplier)
    w, on_cols = _standard_weights(standard)
    by_cols, extra = _as_list(by), _as_list(strata)
    freq_cols = []
    if not independent_events:
        if event_frequency is None:
            raise ValueError("event_frequency must name the event-frequency column when independent_events=False")
        freq_cols = [event_frequency]
    _require_columns(data, by_cols + on_cols + extra + freq_cols + [x, n], "data")
    df = _dsr_rows(data, x, n, by_cols + on_cols + extra, freq_cols)
    strat = _dsr_strata(df, w, on_cols, by_cols, by_cols + on_cols + extra, freq_cols)
    strat["_wr"] = strat["_w"] * strat["_x"] / strat["_n"]
    agg_spec = dict(
        total_count=("_x", "sum"),
        total_pop=("_n", lambda s: s.sum(min_count=len(s))),
        _sw=("_w", "sum"),
        _swr=("_wr", "sum"),
        _var=("_var", "sum"),
        _nmiss=("_n", lambda s: int(s.isna().sum())),
    )
    if by_cols:
        res = strat.groupby(by_cols, sort=True).agg(**agg_spec)
    else:
        res = strat.assign(_all=0).groupby("_all").agg(**agg_spec)
        res.index = pd.RangeIndex(1)
    return _dsr_frame(res, c, m, min_events, independent_events)


def _standard_weights(standard: pd.Series) -> tuple[pd.Series, list[str]]:
    """The standard population's weights (float, checked) and its stratum key columns."""
    if not isinstance(standard, pd.Series):
        raise ValueError("standard must be a pandas Series of weights indexed by the stratum key(s)")
    on_cols = [name for name in standard.index.names]
    if any(name is None for name in on_cols):
        raise ValueError("standard's index must be named after the stratum key column(s), e.g. 'age_band'")
    w = standard.astype("float64")
    _check_positive(w.to_numpy(), "standard weight", w.index)
    if w.index.has_duplicates:
        raise ValueError("standard has duplicated strata")
    return w, on_cols


def _dsr_rows(data: pd.DataFrame, x: str, n: str, key_cols: list[str], freq_cols: list[str]) -> pd.DataFrame:
    """The rows of :func:`dsr` with checked events ``_x`` (missing = 0) and populations ``_n``."""
    df = data[key_cols + freq_cols + [x, n]].copy()
    df["_x"] = df[x].astype("float64")
    df["_n"] = df[n].astype("float64")
    rows = pd.Index(range(len(df)))
    _check_nonnegative(df["_x"].to_numpy(na_value=np.nan), x, rows)
    _check_positive(df["_n"].to_numpy(na_value=np.nan), n, rows)
    df["_x"] = df["_x"].fillna(0.0)
    for col in freq_cols:
        f = df[col].astype("float64").to_numpy(na_value=np.nan)
        _raise_first(np.isnan(f), f"{col} must not be missing", f, rows)
        _raise_first(f <= 0, f"{col} must be > 0", f, rows)
    dup = df.duplicated(key_cols + freq_cols, keep=False)
    if dup.any():
        raise ValueError(
            f"data has duplicated strata for {key_cols + freq_cols}: "
            f"{df.loc[dup, key_cols + freq_cols].drop_duplicates().to_dict('records')[:5]}"
        )
    return df


def _dsr_strata(
    df: pd.DataFrame, w: pd.Series, on_cols: list[str], by_cols: list[str], key_cols: list[str], freq_cols: list[str]
) -> pd.DataFrame:
    """One row per group and stratum with its weight ``_w`` and variance term ``_var`` (event frequencies
    collapsed); every group must have every standard stratum."""
    weights = w.rename("_w").reset_index()
    joined = df.merge(weights, on=on_cols, how="left", indicator=True, validate="many_to_one")
    unmatched = joined["_merge"] == "left_only"
    if unmatched.any():
        keys = joined.loc[unmatched, on_cols].drop_duplicates().to_dict("records")
        raise ValueError(f"{int(unmatched.sum())} rows have strata not in the standard population, e.g. {keys[:5]}")
    joined = joined.drop(columns="_merge")
    if freq_cols:
        joined["_f"] = joined[freq_cols[0]].astype("float64")
        joined["_events"] = joined["_f"] * joined["_x"]
        joined["_wn2"] = joined["_x"] * joined["_f"] ** 2 * (joined["_w"] / joined["_n"]) ** 2
        grouped = joined.groupby(key_cols, sort=True, dropna=False)
        nuniq = grouped["_n"].nunique(dropna=False)
        if (nuniq > 1).any():
            bad = nuniq[nuniq > 1].index[:5].tolist()
            raise ValueError(f"rows of the same stratum have different populations across event frequencies: {bad}")
        strat = grouped.agg(
            _x=("_events", "sum"), _n=("_n", "first"), _w=("_w", "first"), _var=("_wn2", "sum")
        ).reset_index()
    else:
        strat = joined
        strat["_var"] = strat["_x"] * (strat["_w"] / strat["_n"]) ** 2
    n_std = len(w)
    if by_cols:
        counts = strat.groupby(by_cols, sort=True)[on_cols].apply(lambda g: len(g.drop_duplicates()))
        short = counts[counts < n_std]
        if len(short):
            raise ValueError(f"groups {short.index[:5].tolist()} lack some of the {n_std} standard strata")
    elif len(strat[on_cols].drop_duplicates()) < n_std:
        raise ValueError(f"data lacks some of the {n_std} standard strata")
    return strat


def _dsr_frame(res: pd.DataFrame, c: float, m: float, min_events: int, independent_events: bool) -> pd.DataFrame:
    """The DSR, its Dobson limits and status per group from the group sums."""
    count = res["total_count"].to_numpy(dtype="float64")
    sw = res["_sw"].to_numpy(dtype="float64")
    value = res["_swr"].to_numpy(dtype="float64") / sw
    var = res["_var"].to_numpy(dtype="float64") / sw**2
    bl, bu = _byar(count, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(var / count)
        lower = (value + scale * (bl - count)) * m
        upper = (value + scale * (bu - count)) * m
    value = value * m
    missing = res["_nmiss"].to_numpy() > 0
    suppressed = (count < min_events) & ~missing
    status = np.where(missing, "missing input", np.where(suppressed, _DSR_SUPPRESSED, "ok")).astype(object)
    blank = missing | suppressed
    value, lower, upper = (np.where(blank, np.nan, a) for a in (value, lower, upper))
    method = "Dobson" if independent_events else "Dobson, with confidence adjusted for non-independent events"
    methods = np.where(blank, None, method).astype(object)
    out = _frame(value, lower, upper, c, f"dsr per {_multiplier_text(m)}", methods, res.index, len(res))
    out["status"] = pd.array(status, dtype="str")
    out["total_count"] = count
    out["total_pop"] = res["total_pop"].to_numpy(dtype="float64")
    return out
