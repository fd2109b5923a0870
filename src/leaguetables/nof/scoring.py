"""NHS Oversight Framework (NOF) 2025/26 scoring, segmentation, league ranks and likely ranges.

Pure functions with explicit arguments (Series, DataFrames, scalars); no configuration objects.
The rules are those of ``../shared/docs/nof-methodology.md``; every choice the manual leaves open is an
argument here and is named in the docstring.

Pipeline for one quarter (see :func:`build_league_table`):

1. metric scores 1.00 (best) to 4.00 (worst): :func:`score_ranked`, :func:`score_bracket`;
2. combination groups (finance: OF1079 + OF1081 → one combined-finance score, as NHS England's OF1080):
   :func:`combine_scores`, :func:`combine_finance`;
3. weighted average of the scored metrics (2 dp) and domain scores: :func:`average_scores`,
   :func:`domain_scores`;
4. segments 1–4 from the average: :func:`assign_segments`; financial override:
   :func:`apply_financial_override`; segment 5 from an input flag: :func:`apply_segment_5`;
5. league rank within the trust type: :func:`rank_league`;
6. likely ranges by bootstrap: :func:`likely_range_average`, :func:`joint_bootstrap`.

Rounding
--------
Scores and averages are rounded to 2 dp *half away from zero* (:func:`round_half_up`), the convention of
Excel's and SQL's ``ROUND`` and the plain meaning of "rounded to 2 dp" in the manual, after removing binary
floating-point noise (``2.555`` is stored as ``2.55499…``). ``numpy.round`` instead rounds exact halves to even
(``2.545`` → 2.54). The published files cannot settle the choice: the staff-survey scores (the only metric
scores reproducible from the published table) are multiples of 0.05 (n = 61), so never a half; for the
averages (OF5002) recomputed from the published 2-dp scores, half-up matches 231 of 244 trust-quarters exactly,
``numpy.round`` 230 and decimal half-even 232, and of the 9 whose mean is an exact half, 5, 4 and 6 — noise,
because NHS England averages the *unrounded* metric scores (every average is within 0.01 whichever rule).
Half-up is used as the conventional rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from leaguetables.config import ICB_TYPES

__all__ = [
    "DIRECTIONS",
    "SEGMENTATION_RULES",
    "round_half_up",
    "score_ranked",
    "score_bracket",
    "relative_floor",
    "combine_finance",
    "finance_rule",
    "DEFAULT_COMBINE_RULES",
    "combine_scores",
    "average_scores",
    "domain_scores",
    "quartile_cut_points",
    "NOF_FINANCE_LOOKUP",
    "segmentation_population",
    "assign_segments",
    "apply_financial_override",
    "apply_segment_5",
    "rank_league",
    "likely_range_average",
    "LeagueRules",
    "joint_bootstrap",
    "build_league_table",
]

Direction = Literal["higher_better", "lower_better"]
SegmentationRule = Literal["quartiles_within_type", "quartiles_pooled", "quartiles_over_population", "fixed_thresholds"]
DIRECTIONS = ("higher_better", "lower_better")
SEGMENTATION_RULES = ("quartiles_within_type", "quartiles_pooled", "quartiles_over_population", "fixed_thresholds")


@dataclass(frozen=True)
class LeagueRules:
    """The rules that turn a quarter's scores into segments and ranks, as :func:`build_league_table` applies them
    and :func:`joint_bootstrap` re-applies them in every replicate: the segmentation rule with its fixed
    ``thresholds`` or configured ``population_average`` and the trust types ``pool_types`` pooled by
    ``"quartiles_pooled"`` (see :func:`assign_segments`), the scoring functions of the combine groups
    ``combine_rules`` (see :func:`combine_scores`), and the financial override (a trust in deficit in one of
    ``from_segments`` moves to ``to_segment``: see :func:`apply_financial_override`)."""

    segmentation_rule: SegmentationRule
    thresholds: Any = None
    population_average: Any = None
    pool_types: Sequence[str] | None = None
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None
    from_segments: Sequence[int] = (1, 2)
    to_segment: int = 3


#: NHS England's 4×4 combined-finance lookup (OF1080): row = planned surplus/deficit score OF1079 (1–4),
#: column = year-to-date variance-to-plan score OF1081 (1–4). Every cell observed in the published acute Q1
#: 2025/26 and MH Q1–Q4 2025/26 files is reproduced (378 trust-quarters, 100%); see :func:`combine_finance`.
NOF_FINANCE_LOOKUP: tuple[tuple[int, int, int, int], ...] = ((1, 1, 2, 3), (2, 2, 3, 4), (2, 3, 3, 4), (2, 3, 4, 4))
QUARTILES = (25.0, 50.0, 75.0)
# Replicates are drawn in blocks of this size, so memory stays bounded and results depend only on the seed
# and the number of replicates (the first 1,000 replicates of a 10,000-replicate run are a 1,000-run).
_BLOCK = 1000


# --------------------------------------------------------------------------------------------------------
# rounding
# --------------------------------------------------------------------------------------------------------
def round_half_up(x, decimals: int = 2):
    """Round to ``decimals`` places, halves away from zero, ignoring binary floating-point noise.

    ``x`` is first scaled by ``10**decimals`` and rounded to 6 further places, so a value whose decimal form
    is an exact half (``2.555``, stored as ``2.55499999…``) is treated as the half it stands for.
    NaN stays NaN. Returns a float for a scalar input, else a float ndarray (a Series keeps its index).

    >>> round_half_up(1.075), round_half_up(2.555), round_half_up(-0.125)
    (1.08, 2.56, -0.13)
    """
    if isinstance(x, pd.Series):
        return pd.Series(round_half_up(x.to_numpy(dtype=float), decimals), index=x.index, name=x.name)
    out = _half_up_units(x, decimals) / 10.0**decimals
    out = out + 0.0  # turn -0.0 into 0.0
    return float(out) if out.ndim == 0 else out


def _half_up_units(x, decimals: int) -> np.ndarray:
    """``x`` rounded half up in units of ``10**-decimals`` (a float array of whole numbers): the numpy core of
    :func:`round_half_up`, and the 2-dp averages as whole cents in the bootstrap."""
    scaled = np.round(np.asarray(x, dtype=float) * 10.0**decimals, 6)
    return np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)


# --------------------------------------------------------------------------------------------------------
# step 1: metric scores
# --------------------------------------------------------------------------------------------------------
def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _threshold(threshold, index: pd.Index, name: str) -> pd.Series | None:
    """A scalar or per-organisation threshold, aligned to ``index`` (NaN = no threshold for that organisation)."""
    if threshold is None:
        return None
    if isinstance(threshold, pd.Series):
        return threshold.reindex(index).astype(float)
    if not np.isscalar(threshold) or not np.isfinite(float(threshold)):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number or a Series indexed by organisation, got {threshold!r}")
    return pd.Series(float(threshold), index=index)  # type: ignore[arg-type]


def score_ranked(
    values: pd.Series,
    direction: Direction,
    standard=None,
    floor=None,
    comparator_values: pd.Series | None = None,
    *,
    tiebreak: pd.Series | None = None,
    tiebreak_group: pd.Series | None = None,
    decimals: int | None = 2,
) -> pd.Series:
    """Score a continuous ("standard ranking") metric 1.00 (best) to 4.00 (worst) by rank.

    Parameters
    ----------
    values
        Metric value per organisation scored (index ``trust_code``). NaN = missing, suppressed or not
        submitted: the score is NaN (the manual's "score 0", excluded from the average).
    direction
        ``"higher_better"`` or ``"lower_better"``.
    standard
        Optional standard (scalar, or a Series per organisation). Organisations meeting it (value ≥ standard
        when higher is better, ≤ when lower is better) score 1.00; the others are spread 2.00–4.00.
    floor
        Optional floor (scalar, or a Series per organisation, e.g. its own baseline for "improve on
        baseline"). Organisations failing it (value < floor when higher is better, > floor when lower is
        better) score 4.00; the others are spread 1.00–3.00. With both a standard and a floor the spread is
        2.00–3.00 (not stated by the manual).
    comparator_values
        Values of further organisations in NHS England's ranking population that are not scored here (e.g.
        the other trusts that run the service). They take part in the ranking and in n but get no score.
        Organisations present in both ``values`` and ``comparator_values`` are taken from ``values``.
    tiebreak
        Optional secondary key, lower = better, for values that are equal as given (e.g. the published rank,
        which orders values that tie only after rounding for publication). Must cover every ranked
        organisation.
    tiebreak_group
        Optional group per ranked organisation (e.g. its trust type) within which ``tiebreak`` applies: when a
        pooled population is ranked and the tiebreak is NHS England's published ``Rank``, which is within type,
        equal values of the *same* type are ordered by it and equal values of different types tie (min rank).
        Rank r = 1 + #(strictly better) + #(equal, same group, better tiebreak).
    decimals
        Rounding of the score (half up, :func:`round_half_up`); ``None`` keeps the unrounded score.

    Returns
    -------
    pd.Series
        ``score`` per organisation of ``values`` (same index and order), float.

    Notes
    -----
    ``score = lo + (hi − lo) × (r − 1)/(n − 1)`` where r is the rank (1 = best) among the n organisations
    being spread (the ranking population less those meeting the standard or failing the floor); ties take the
    best rank of the tie cluster (min rank). One organisation, or all values equal, scores ``lo``.
    """
    _check_direction(direction)
    if not isinstance(values, pd.Series):
        raise TypeError("values must be a pandas Series indexed by organisation code")
    if values.index.has_duplicates:
        raise ValueError(f"values has duplicate organisation codes: {sorted(values.index[values.index.duplicated()])}")
    vals = pd.to_numeric(values, errors="raise").astype(float)
    pop = vals.dropna()
    if comparator_values is not None:
        comp = pd.to_numeric(comparator_values, errors="raise").astype(float).dropna()
        if comp.index.has_duplicates:
            raise ValueError("comparator_values has duplicate organisation codes")
        pop = pd.concat([pop, comp[~comp.index.isin(vals.index)]])
    out = pd.Series(np.nan, index=values.index, name="score", dtype=float)
    if pop.empty:
        return out

    sign = -1.0 if direction == "higher_better" else 1.0  # oriented value: lower = better
    oriented = sign * pop
    std = _threshold(standard, pop.index, "standard")
    flo = _threshold(floor, pop.index, "floor")
    meets = (oriented <= sign * std).fillna(False) if std is not None else pd.Series(False, index=pop.index)
    fails = (oriented > sign * flo).fillna(False) if flo is not None else pd.Series(False, index=pop.index)
    lo = 2.0 if std is not None else 1.0
    hi = 3.0 if flo is not None else 4.0

    score = pd.Series(np.nan, index=pop.index, dtype=float)
    # .loc with the masks: plain score[mask] first tries the mask as a label, and pandas formats the whole mask
    # into the error message it then catches (milliseconds per call; this runs thousands of times a quarter)
    score.loc[meets] = 1.0
    score.loc[fails & ~meets] = 4.0
    spread = ~meets & ~fails
    n = int(spread.sum())
    if n:
        key = oriented[spread]
        if tiebreak is not None:
            tb = pd.to_numeric(tiebreak, errors="raise").astype(float).reindex(key.index)
            if tb.isna().any():
                raise ValueError(f"tiebreak has no value for {sorted(tb.index[tb.isna()])}")
        if tiebreak is not None and tiebreak_group is not None:
            grp = tiebreak_group.reindex(key.index)
            if grp.isna().any():
                raise ValueError(f"tiebreak_group has no value for {sorted(grp.index[grp.isna()])}")
            k, t, g = key.to_numpy(float), tb.to_numpy(float), grp.astype(str).to_numpy()
            better = (k[None, :] < k[:, None]).sum(axis=1)
            same = ((k[None, :] == k[:, None]) & (g[None, :] == g[:, None]) & (t[None, :] < t[:, None])).sum(axis=1)
            rank = pd.Series(1 + better + same, index=key.index, dtype=float)
        elif tiebreak is not None:
            frame = pd.DataFrame({"k": key, "t": tb})
            order = frame.sort_values(["k", "t"], kind="mergesort")
            new_run = (order["k"].diff() != 0) | (order["t"].diff() != 0)
            pos = pd.Series(np.arange(1, n + 1), index=order.index)
            rank = pos.where(new_run).ffill().reindex(key.index)
        else:
            rank = key.rank(method="min")
        raw = lo + (hi - lo) * (rank - 1) / (n - 1) if n > 1 else pd.Series(lo, index=key.index)
        raw_a = raw.to_numpy(dtype=float)
        score.loc[spread] = raw_a if decimals is None else round_half_up(raw_a, decimals)
    out.loc[pop.index.intersection(values.index)] = score.reindex(pop.index.intersection(values.index))
    return out


def relative_floor(baseline: pd.Series, direction: Direction, improvement: float, at_least: float) -> pd.Series:
    """Per-organisation floor relative to its own baseline (the 2026/27 planning standards' "+7 points or 65%,
    whichever is greater"): ``max(baseline + improvement, at_least)`` when higher is better,
    ``min(baseline − improvement, at_least)`` when lower is better; a missing baseline gives ``at_least``.
    Pass the result as ``floor`` to :func:`score_ranked` (failing it scores 4.00).

    >>> relative_floor(pd.Series({"a": 50.0, "b": 62.0, "c": np.nan}), "higher_better", 7, 65).tolist()
    [65.0, 69.0, 65.0]
    """
    _check_direction(direction)
    b = pd.to_numeric(baseline, errors="raise").astype(float)
    if direction == "higher_better":
        out = np.fmax(b + improvement, at_least)
    else:
        out = np.fmin(b - improvement, at_least)
    return pd.Series(np.asarray(out, dtype=float), index=b.index, name="floor").fillna(float(at_least))


def score_bracket(categories: pd.Series, mapping: Mapping[str, float]) -> pd.Series:
    """Score a bespoke (bracket) metric by mapping each category straight to a score.

    E.g. CQC "safe" rating ``{"Outstanding": 1, "Good": 2, "Requires improvement": 3, "Inadequate": 4}``.
    Missing categories (NaN/None/empty) score NaN (excluded). A category absent from ``mapping`` raises
    ``ValueError`` naming it. Scores must lie in [1, 4].
    """
    bad_scores = {k: v for k, v in mapping.items() if not 1.0 <= float(v) <= 4.0}
    if bad_scores:
        raise ValueError(f"bracket scores must lie in [1, 4]: {bad_scores}")

    def missing(c) -> bool:
        return c is None or (not isinstance(c, str) and pd.isna(c)) or (isinstance(c, str) and not c.strip())

    cats = categories.astype("object")
    unknown = sorted({c for c in cats if not missing(c) and c not in mapping})
    if unknown:
        raise ValueError(f"categories not in the bracket mapping: {unknown}")
    out = [np.nan if missing(c) else float(mapping[c]) for c in cats]
    return pd.Series(out, index=categories.index, dtype=float, name="score")


# --------------------------------------------------------------------------------------------------------
# step 2: combination groups, averages, domains
# --------------------------------------------------------------------------------------------------------
def combine_finance(planned: pd.Series, variance: pd.Series, *, lookup=None) -> pd.Series:
    """Combined finance score (NHS England's OF1080) from the planned surplus/deficit score (OF1079) and the
    year-to-date variance-to-plan score (OF1081).

    ``lookup`` (keyword, default :data:`NOF_FINANCE_LOOKUP`): a 4×4 table, row = planned score 1–4, column =
    variance score 1–4, of combined scores 1–4 (configuration: the combine group's ``lookup``). With
    ``lookup=False`` the older step rule below is used instead (kept for comparison; it differs from NHS
    England's table in cells (2,2) and (3,3), which the acute Q1 2025/26 file shows as 2 and 3).

    Older rule found from the published MH Q1–Q4 2025/26 files (244 trust-quarters, all reproduced): the variance
    score moved one step, better (−1) when the trust plans breakeven or surplus (planned score 1), worse (+1)
    when it plans a deficit (planned score 2–4), kept within 1–4::

        combined = clip(variance − 1, 1, 4)  if planned == 1
                   clip(variance + 1, 1, 4)  if planned > 1

    Observed (planned, variance) → combined: (1,1)→1 ×173, (1,2)→1 ×7, (1,3)→2 ×6, (1,4)→3 ×10, (2,1)→2 ×16,
    (3,1)→2 ×15, (3,2)→3 ×4, (3,4)→4 ×5, (4,1)→2 ×6, (4,2)→3 ×1, (4,4)→4 ×1. No mean of the two scores
    with any rounding or weights fits: (1,2)→1 but (2,1)→2, and (1,4)→3 but (4,1)→2. The cells (2,2),
    (2,3), (2,4), (3,3), (4,3) never occur in the files and follow the rule by extrapolation **[open]**.
    With only one component scored, the combined score is that component's score **[open]**; with neither,
    NaN. Scores are expected to be the integers 1–4 (the finance metrics are bracket-scored).
    """
    idx = planned.index.union(variance.index)
    p = pd.to_numeric(planned, errors="raise").astype(float).reindex(idx).to_numpy()
    v = pd.to_numeric(variance, errors="raise").astype(float).reindex(idx).to_numpy()
    has_p, has_v = ~np.isnan(p), ~np.isnan(v)
    if lookup is False:
        both = np.where(p == 1.0, np.clip(v - 1.0, 1.0, 4.0), np.clip(v + 1.0, 1.0, 4.0))
    else:
        table = np.asarray(NOF_FINANCE_LOOKUP if lookup is None else lookup, dtype=float)
        if table.shape != (4, 4) or not np.isin(table, (1.0, 2.0, 3.0, 4.0)).all():
            raise ValueError(f"lookup must be a 4×4 table of scores 1–4, got {lookup!r}")
        ok = np.isin(p, (1.0, 2.0, 3.0, 4.0)) & np.isin(v, (1.0, 2.0, 3.0, 4.0))
        bad = has_p & has_v & ~ok
        if bad.any():
            raise ValueError(f"finance scores must be the integers 1–4 for a lookup; got {idx[bad].tolist()[:5]}")
        pi = np.where(ok, np.where(has_p, p, 1.0) - 1, 0).astype(int)
        vi = np.where(ok, np.where(has_v, v, 1.0) - 1, 0).astype(int)
        both = np.where(ok, table[pi, vi], np.nan)
    out = np.where(has_p & has_v, both, np.where(has_p, p, v))
    return pd.Series(out, index=idx, name="score", dtype=float)


def finance_rule(
    planned_metric: str = "OF1079", variance_metric: str = "OF1081", *, lookup=None
) -> Callable[[pd.DataFrame], pd.Series]:
    """A combination rule for :func:`combine_scores` applying :func:`combine_finance` (with ``lookup``) to the
    two metrics."""

    def rule(rows: pd.DataFrame) -> pd.Series:
        other = sorted(set(rows["metric_id"]) - {planned_metric, variance_metric})
        if other:
            raise ValueError(
                f"finance combination group has unexpected metrics {other}; "
                f"expected {planned_metric} and {variance_metric}"
            )
        if rows.duplicated(["trust_code", "metric_id"]).any():
            raise ValueError("finance combination group has duplicate trust × metric rows")
        # each metric's scores by trust code (every code of the rows, sorted; NaN where the metric has no row)
        codes = rows["trust_code"].to_numpy(dtype=object)
        ids = rows["metric_id"].to_numpy(dtype=object)
        score = rows["score"].to_numpy(dtype=float)
        index = pd.Index(sorted(set(codes)), name="trust_code")

        def column(metric: str) -> pd.Series:
            mine = ids == metric
            return pd.Series(score[mine], index=codes[mine], dtype=float).reindex(index)

        return combine_finance(column(planned_metric), column(variance_metric), lookup=lookup)

    return rule


DEFAULT_COMBINE_RULES: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = {"finance": finance_rule()}

_SCORE_COLUMNS = ("trust_code", "metric_id", "score")


def _clean_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Validate the long score table; drop missing scores (NaN or 0, the manual's "score 0")."""
    missing = [c for c in _SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores is missing columns {missing}")
    df = scores.copy()
    for col, default in (("weight", 1.0), ("combine_group", None), ("domain", None)):
        if col not in df.columns:
            df[col] = default
    df["trust_code"] = df["trust_code"].astype(str)
    df["metric_id"] = df["metric_id"].astype(str)
    df["score"] = pd.to_numeric(df["score"], errors="raise").astype(float)
    df["weight"] = pd.to_numeric(df["weight"], errors="raise").astype(float).fillna(1.0)
    dup = df.duplicated(["trust_code", "metric_id"])
    if dup.any():
        raise ValueError(
            f"scores has duplicate trust × metric rows: {df.loc[dup, ['trust_code', 'metric_id']].to_numpy().tolist()[:5]}"
        )
    df = df[df["score"].notna() & (df["score"] != 0)]
    out_of_range = df[(df["score"] < 1) | (df["score"] > 4)]
    if not out_of_range.empty:
        raise ValueError(f"scores must lie in [1, 4]: {out_of_range[list(_SCORE_COLUMNS)].to_numpy().tolist()[:5]}")
    if (df["weight"] <= 0).any():
        raise ValueError("weights must be > 0")
    return df


def combine_scores(
    scores: pd.DataFrame,
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
    decimals: int = 2,
) -> pd.DataFrame:
    """One row per trust and *scored unit*: metrics outside a combination group as they are, each group's
    metrics replaced by one combined score.

    ``scores`` columns: ``trust_code, metric_id, score`` and optionally ``weight`` (NaN/absent → 1),
    ``combine_group`` (NaN/absent → none), ``domain``. Missing scores (NaN or 0) are dropped first.
    ``combine_rules`` maps a group name to a function of that group's rows (all trusts) returning the combined
    score per ``trust_code``; default :data:`DEFAULT_COMBINE_RULES` (``"finance"`` → :func:`finance_rule`).
    A group without a rule is combined as the weighted mean of its scores, rounded to ``decimals``.
    The combined row has ``metric_id`` = the group name, weight = mean weight of the group's rows and the
    group's domain (which must be unique per trust).
    """
    rules = DEFAULT_COMBINE_RULES if combine_rules is None else combine_rules
    df = _clean_scores(scores)
    grouped = df["combine_group"].notna() & (df["combine_group"].astype("object") != "")
    plain = df.loc[~grouped, ["trust_code", "metric_id", "score", "weight", "domain"]]
    parts = [plain]
    for group, rows in df[grouped].groupby("combine_group", sort=True):
        rows = rows.copy()
        if group in rules:
            combined = rules[group](rows).rename("score")
        else:
            ws = (rows["score"] * rows["weight"]).groupby(rows["trust_code"]).sum()
            combined = round_half_up(ws / rows.groupby("trust_code")["weight"].sum(), decimals).rename("score")
        block = pd.DataFrame(
            {
                "trust_code": combined.index.astype(str),
                "metric_id": str(group),
                "score": combined.to_numpy(dtype=float),
                "weight": rows.groupby("trust_code")["weight"].mean().reindex(combined.index).to_numpy(dtype=float),
                "domain": _group_domain(rows, group).reindex(combined.index).to_numpy(dtype=object),
            }
        )
        parts.append(block[block["score"].notna()])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["trust_code", "metric_id"], kind="mergesort", ignore_index=True)


def _group_domain(rows: pd.DataFrame, group) -> pd.Series:
    """The domain of a combination group's rows per trust (by trust code, sorted; None where every domain is
    missing): the first non-missing one, which must be the only one (:class:`ValueError` naming the trusts)."""
    codes = rows["trust_code"].to_numpy(dtype=object)
    known = rows["domain"].notna().to_numpy()
    first: dict = {}
    multi = set()
    for code, domain in zip(codes[known], rows["domain"].to_numpy(dtype=object)[known]):
        if first.setdefault(code, domain) != domain:
            multi.add(code)
    if multi:
        raise ValueError(f"combination group {group!r} spans several domains for {sorted(multi)[:5]}")
    out = pd.Series(None, index=sorted(set(rows["trust_code"])), dtype=object)  # missing: as pandas makes it
    if first:
        out.loc[list(first)] = list(first.values())
    return out


def _weighted_average(units: pd.DataFrame, by: list[str], decimals: int) -> pd.DataFrame:
    u = units.assign(ws=units["score"] * units["weight"])
    g = u.groupby(by, sort=True)
    res = pd.DataFrame(
        {
            "n_scored": g.size(),
            "weight_total": g["weight"].sum(),
            "average_unrounded": g["ws"].sum() / g["weight"].sum(),
        }
    )
    res["average_score"] = round_half_up(res["average_unrounded"].to_numpy(dtype=float), decimals)
    return res.reset_index()


def average_scores(
    scores: pd.DataFrame,
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
    decimals: int = 2,
) -> pd.DataFrame:
    """Average metric score per trust: the weighted mean Σw·s/Σw over its scored units.

    Units are the metrics after :func:`combine_scores` (finance's two metrics enter once, as the combined
    score). Weights: 1, except e.g. the three infection metrics at 1/3 each; if one of the three is missing
    the other two keep their 1/3 each **[open]**. Missing metrics are excluded (not zero). All metrics count
    equally whatever their domain.

    Returns ``trust_code, average_score`` (rounded half up to ``decimals``), ``average_unrounded``,
    ``n_scored`` (number of scored units) and ``weight_total`` (Σw), one row per trust with at least one
    scored unit, sorted by trust code.
    """
    return _averages(combine_scores(scores, combine_rules, decimals), decimals)


def _averages(units: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """:func:`average_scores` of the scored units (:func:`combine_scores`)."""
    res = _weighted_average(units, ["trust_code"], decimals)
    return res[["trust_code", "average_score", "average_unrounded", "n_scored", "weight_total"]]


def domain_scores(
    scores: pd.DataFrame,
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
    decimals: int = 2,
) -> pd.DataFrame:
    """Domain score per trust and domain: the weighted mean of the trust's scored units in the domain (the
    combined finance score counts once in "Finance and productivity"). Context only; it does not feed the
    segment. Returns ``trust_code, domain, domain_score, domain_unrounded, n_scored``."""
    return _domains(combine_scores(scores, combine_rules, decimals), decimals)


def _domains(units: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """:func:`domain_scores` of the scored units (:func:`combine_scores`)."""
    units = units[units["domain"].notna()]
    res = _weighted_average(units, ["trust_code", "domain"], decimals)
    res = res.rename(columns={"average_score": "domain_score", "average_unrounded": "domain_unrounded"})
    return res[["trust_code", "domain", "domain_score", "domain_unrounded", "n_scored"]]


# --------------------------------------------------------------------------------------------------------
# step 3: segments, override, segment 5
# --------------------------------------------------------------------------------------------------------
def quartile_cut_points(values) -> tuple[float, float, float]:
    """25th/50th/75th percentiles of the non-missing values (numpy default, linear interpolation);
    NaNs if there are none."""
    a = np.asarray(values, dtype=float)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return (np.nan, np.nan, np.nan)
    c = np.percentile(a, QUARTILES)
    return (float(c[0]), float(c[1]), float(c[2]))


def _segment_from_cuts(values: np.ndarray, cuts) -> np.ndarray:
    """Segment 1–4 from three cut points; a value exactly on a cut point goes to the better segment.
    Works on any array shape when ``cuts`` broadcasts (e.g. cuts of shape (3, B, 1) for values (B, n))."""
    c1, c2, c3 = cuts
    return 1 + (values > c1).astype(np.int8) + (values > c2) + (values > c3)


def _check_cuts(cuts, name: str) -> tuple[float, float, float]:
    c = tuple(float(x) for x in cuts)
    if len(c) != 3 or not (c[0] <= c[1] <= c[2]) or not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be three finite, non-decreasing cut points, got {cuts!r}")
    return c


def _pool_mask(trust_type: pd.Series, pool_types) -> pd.Series:
    """The organisations whose averages give the pooled cut points: those of ``pool_types`` (default every type),
    never an ICB (organisations of another kind are segmented among themselves)."""
    provider = ~trust_type.astype("object").isin(list(ICB_TYPES))
    if pool_types is None:
        return trust_type.notna() & provider
    return trust_type.astype("object").isin(list(pool_types)) & provider


def segmentation_population(trust_type: pd.Series, average: pd.Series, rule: str, pool_types=None) -> str:
    """One line naming the population the cut points came from (recorded in the league table)."""
    tt = trust_type.reindex(average.index)
    ok = average.notna()
    if rule == "quartiles_pooled":
        m = _pool_mask(tt, pool_types) & ok
        types = sorted(pd.unique(tt[m].astype(str)))
        named = list(pool_types) if pool_types is not None else types
        absent = [t for t in named if t not in types]
        text = f"pooled averages of {' + '.join(types)} ({int(m.sum())} trusts)"
        own = sorted(pd.unique(tt[tt.astype("object").isin(list(ICB_TYPES)) & ok].astype(str)))
        text += f"; {', '.join(own)}: averages of their own type" if own else ""
        return text + (f"; configured but absent: {', '.join(absent)}" if absent else "")
    if rule == "quartiles_within_type":
        return "averages of the trust's own type"
    if rule == "quartiles_over_population":
        return "configured population of averages"
    return "fixed thresholds"


def _cut_points(
    average: pd.Series,
    trust_type: pd.Series,
    rule: str,
    thresholds=None,
    population_average=None,
    *,
    pool_types=None,
) -> dict[str, tuple[float, float, float]]:
    if rule not in SEGMENTATION_RULES:
        raise ValueError(f"segmentation rule must be one of {SEGMENTATION_RULES}, got {rule!r}")
    types = sorted(pd.unique(trust_type.dropna().astype(str)))
    cuts: dict[str, tuple[float, float, float]] = {}
    pooled = None
    if rule == "quartiles_pooled":
        tt = trust_type.reindex(average.index)
        pooled = quartile_cut_points(average[_pool_mask(tt, pool_types)])
    for t in types:
        if rule == "quartiles_pooled" and t in ICB_TYPES:
            cuts[t] = quartile_cut_points(average[trust_type == t])  # ICBs are pooled with ICBs only
        elif rule == "quartiles_pooled":
            assert pooled is not None
            cuts[t] = pooled
        elif rule == "quartiles_within_type":
            cuts[t] = quartile_cut_points(average[trust_type == t])
        elif rule == "quartiles_over_population":
            if population_average is None:
                raise ValueError("rule 'quartiles_over_population' needs population_average")
            pop = population_average.get(t) if isinstance(population_average, Mapping) else population_average
            if pop is None:
                raise ValueError(f"population_average has no population for trust type {t!r}")
            cuts[t] = quartile_cut_points(pop)
        else:
            if thresholds is None:
                raise ValueError("rule 'fixed_thresholds' needs thresholds")
            th = thresholds.get(t) if isinstance(thresholds, Mapping) else thresholds
            if th is None:
                raise ValueError(f"thresholds has no cut points for trust type {t!r}")
            cuts[t] = _check_cuts(th, f"thresholds[{t!r}]")
    return cuts


def assign_segments(
    average: pd.Series,
    trust_type: pd.Series,
    rule: SegmentationRule,
    thresholds: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    population_average: pd.Series | Mapping[str, pd.Series] | None = None,
    *,
    pool_types: Sequence[str] | None = None,
) -> tuple[pd.Series, dict[str, tuple[float, float, float]]]:
    """Segment 1 (best) – 4 from the average metric score, per trust type.

    Rules (recorded by the caller in the output):

    * ``"quartiles_within_type"`` — cut points are the 25/50/75th percentiles (numpy default) of the averages
      of the trust's own type (2025/26). On the published Q4 2025/26 averages this gives cut points 2.11 /
      2.29 / 2.57 and reproduces 58 of the 61 published segments; the 3 others lie exactly on the lowest cut
      point and were published in the worse segment (while trusts on 2.29 and 2.57 went to the better one),
      so no single tie rule on 2-dp averages reproduces all 61 **[open]**. Q1–Q3 are not within-type
      quartiles of the published trusts at all;
    * ``"quartiles_pooled"`` — NHS England's 2025/26 rule as the published files show it: one set of cut
      points for every type, the 25/50/75th percentiles of the averages of all trusts whose type is in
      ``pool_types`` (keyword; default every type in ``trust_type``). Q1 2025/26 acute + MH (195 trusts):
      2.05 / 2.33 / 2.60, reproducing the published unadjusted segment of all 134 acute trusts and 60 of 61 MH
      trusts (``python -m leaguetables.nof.reconcile``);
    * ``"quartiles_over_population"`` — the same percentiles of ``population_average`` (a Series, or a
      mapping trust type → Series), a configured population other than the trusts segmented;
    * ``"fixed_thresholds"`` — ``thresholds``: three cut points, or a mapping trust type → three cut points
      (2026/27).

    A trust exactly on a cut point goes to the better segment. A missing average gives a missing segment; a
    type with no averages gets NaN cut points and no segments.

    Returns the segment (nullable ``Int64``, index as ``average``) and the cut points per trust type.
    """
    average = pd.to_numeric(average, errors="raise").astype(float)
    trust_type = trust_type.reindex(average.index)
    cuts = _cut_points(average, trust_type, rule, thresholds, population_average, pool_types=pool_types)
    seg = pd.Series(pd.NA, index=average.index, dtype="Int64", name="segment")
    for t, c in cuts.items():
        mask = (trust_type == t) & average.notna()
        if mask.any() and not np.isnan(c[0]):
            seg.loc[mask] = _segment_from_cuts(average[mask].to_numpy(), c).astype(int)
    return seg, cuts


def _as_bool(flag: pd.Series, index: pd.Index, name: str) -> pd.Series:
    f = flag.reindex(index)
    if f.isna().any():
        raise ValueError(f"{name} is missing for {sorted(map(str, f.index[f.isna()]))[:10]}")
    return f.astype(bool)


def apply_financial_override(
    segment: pd.Series,
    deficit: pd.Series,
    deficit_support: pd.Series,
    *,
    from_segments: Sequence[int] = (1, 2),
    to_segment: int = 3,
) -> tuple[pd.Series, pd.Series]:
    """Financial override: a trust in one of ``from_segments`` (NOF: 1 or 2) that reports a deficit or receives
    deficit support is moved to ``to_segment`` (NOF: 3); other segments are unchanged. The methodology's
    ``financial_override.from_segments`` and ``to_segment`` are passed here (config.FinancialOverride).

    Returns ``(adjusted_segment, financial_override)`` where the flag says the override moved the trust.
    The unadjusted ``segment`` is not modified (keep it alongside). Flags are aligned on the index of
    ``segment`` and must be present for every trust.
    """
    seg = segment.astype("Int64")
    in_deficit = _as_bool(deficit, seg.index, "deficit") | _as_bool(deficit_support, seg.index, "deficit_support")
    moved = pd.Series(
        _overridden(seg.to_numpy(dtype=float, na_value=np.nan), in_deficit.to_numpy(dtype=bool), from_segments),
        index=seg.index,
    )
    adjusted = seg.mask(moved, int(to_segment)).rename("segment")
    return adjusted, moved.rename("financial_override")


def _overridden(segment: np.ndarray, in_deficit: np.ndarray, from_segments: Sequence[int]) -> np.ndarray:
    """Where the financial override moves a trust (numpy core, any shape that broadcasts): its segment is one of
    ``from_segments`` and it is in deficit or on deficit support. A missing (NaN) segment is never moved."""
    return np.isin(segment, list(from_segments)) & in_deficit


def apply_segment_5(segment: pd.Series, improvement_programme: pd.Series) -> pd.Series:
    """Final segment: 5 where the trust is in the Provider Improvement Programme (an input flag, a
    regional judgement never computed here), else ``segment`` unchanged."""
    seg = segment.astype("Int64")
    flag = _as_bool(improvement_programme, seg.index, "improvement_programme")
    return seg.mask(flag, 5).rename("segment")


# --------------------------------------------------------------------------------------------------------
# step 4: league rank
# --------------------------------------------------------------------------------------------------------
def _competition_rank_rows(key: np.ndarray) -> np.ndarray:
    """Competition rank (1, 2, 2, 4) of each element within its row of a 2-D integer array."""
    b, n = key.shape
    if n == 0:
        return np.zeros((b, 0), dtype=np.int64)
    span = int(key.max() - key.min()) + 1
    offset = (np.arange(b, dtype=np.int64) * span)[:, None]
    shifted = (key - key.min()) + offset
    flat_sorted = np.sort(shifted, axis=1).ravel()
    pos = np.searchsorted(flat_sorted, shifted.ravel(), side="left").reshape(b, n)
    return pos - (np.arange(b, dtype=np.int64) * n)[:, None] + 1


def rank_league(adjusted_segment: pd.Series, average: pd.Series, trust_type: pd.Series) -> pd.DataFrame:
    """League position within the trust type: by adjusted segment (1–4, before segment 5) first, then by
    average score (lower is better); equal (segment, average) share the lowest rank and the next rank is
    skipped (competition ranking 1, 2, 2, 4). Pass the *published* (2-dp) average, as NHS England ranks on it.

    Trusts with a missing segment or average are not ranked. Returns, indexed like ``adjusted_segment``:
    ``rank`` (Int64), ``rank_of`` (Y, the number ranked in the type, Int64) and ``rank_label`` ("X of Y").
    """
    idx = adjusted_segment.index
    seg = adjusted_segment.astype("Float64").astype(float)
    avg = pd.to_numeric(average.reindex(idx), errors="raise").astype(float)
    typ = trust_type.reindex(idx)
    seg_a, avg_a = seg.to_numpy(dtype=float), avg.to_numpy(dtype=float)
    ok = ~np.isnan(seg_a) & ~np.isnan(avg_a) & typ.notna().to_numpy()
    typ_a = typ.astype(object).to_numpy()
    rank = np.zeros(len(idx), dtype=np.int64)
    rank_of = np.zeros(len(idx), dtype=np.int64)
    for t in sorted(pd.unique(typ[ok].astype(str))):
        m = ok & (typ_a == t)
        # lexicographic competition rank on (segment, average): the averages as order-preserving whole numbers
        values, code = np.unique(avg_a[m], return_inverse=True)
        key = seg_a[m].astype(np.int64) * len(values) + code.astype(np.int64)
        rank[m] = _competition_rank_rows(key[None, :])[0]
        rank_of[m] = int(m.sum())
    out = pd.DataFrame(
        {"rank": pd.arrays.IntegerArray(rank, ~ok), "rank_of": pd.arrays.IntegerArray(rank_of, ~ok)}, index=idx
    )
    labels = [f"{r} of {y}" if k else pd.NA for r, y, k in zip(rank.tolist(), rank_of.tolist(), ok.tolist())]
    out["rank_label"] = pd.array(labels, dtype="string")
    return out


# --------------------------------------------------------------------------------------------------------
# step 5: likely ranges (bootstrap)
# --------------------------------------------------------------------------------------------------------
class _Units:
    """Scored units per trust, grouped by how many each trust has (for vectorised resampling)."""

    def __init__(self, units: pd.DataFrame, trust_order: Sequence[str]):
        self.trusts = list(trust_order)
        pos = {t: i for i, t in enumerate(self.trusts)}
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (trust positions, s·w, w)
        by = units.groupby("trust_code", sort=True).indices  # each trust's rows, in their order
        weight, score = units["weight"].to_numpy(dtype=float), units["score"].to_numpy(dtype=float)
        counts: dict[int, list[str]] = {}
        for t in self.trusts:
            if t in by:
                counts.setdefault(len(by[t]), []).append(t)
        for k in sorted(counts):
            ts = counts[k]
            w = np.stack([weight[by[t]] for t in ts])
            s = np.stack([score[by[t]] for t in ts])
            self.groups.append((np.array([pos[t] for t in ts]), s * w, w))

    def means(self, rng: np.random.Generator, replicates: int) -> np.ndarray:
        """(replicates, n_trusts) bootstrap means; NaN for trusts without scored units."""
        out = np.full((replicates, len(self.trusts)), np.nan)
        for start in range(0, replicates, _BLOCK):
            b = min(_BLOCK, replicates - start)
            for where, sw, w in self.groups:
                n, k = sw.shape
                # draw position j of trust i's k units, as an index into the flattened (n, k) arrays
                flat = rng.integers(0, k, size=(b, n, k)) + (np.arange(n) * k)[None, :, None]
                num = sw.ravel()[flat].sum(axis=2)
                den = k if np.all(w == 1.0) else w.ravel()[flat].sum(axis=2)
                out[start : start + b, where] = num / den
        return out


def _check_level(level: float, replicates: int) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be a fraction in (0, 1), got {level!r}")
    if int(replicates) < 1:
        raise ValueError(f"replicates must be ≥ 1, got {replicates!r}")
    tail = (1 - level) / 2 * 100
    return tail, 100 - tail


def _percentiles(a: np.ndarray, q: tuple[float, float]) -> np.ndarray:
    """Column percentiles ignoring all-NaN columns (numpy default linear interpolation)."""
    out = np.full((2, a.shape[1]), np.nan)
    ok = ~np.isnan(a).any(axis=0)
    if ok.any():
        out[:, ok] = np.percentile(a[:, ok], q, axis=0)
    return out


def likely_range_average(
    scores: pd.DataFrame,
    replicates: int,
    seed: int,
    level: float = 0.95,
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
) -> pd.DataFrame:
    """Likely range of each trust's average score: percentile bootstrap of the trust's own scored units.

    In each of ``replicates`` replicates the trust's k scored units are resampled with replacement (k draws)
    and averaged (weighted mean); the range is the (1−level)/2 and 1−(1−level)/2 percentiles of the
    replicate averages, rounded half up to 2 dp. Seeded ``numpy.random.default_rng(seed)``; identical to the
    average range returned by :func:`joint_bootstrap` with the same scores, seed and replicates.
    Returns ``trust_code, average_lower, average_upper`` sorted by trust code.
    """
    q = _check_level(level, replicates)
    units = combine_scores(scores, combine_rules)
    trusts = sorted(units["trust_code"].unique())
    means = _Units(units, trusts).means(np.random.default_rng(seed), int(replicates))
    lohi = _percentiles(means, q)
    return pd.DataFrame(
        {"trust_code": trusts, "average_lower": round_half_up(lohi[0]), "average_upper": round_half_up(lohi[1])}
    )


def _joint_inputs(
    scores: pd.DataFrame,
    trust_type: pd.Series,
    deficit: pd.Series,
    deficit_support: pd.Series,
    rules: LeagueRules,
    units: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The joint bootstrap's scored units (combined; ``units`` when the caller has them, else
    :func:`combine_scores` of ``scores``), trust types and deficit flags (either flag), by trust code (sorted), with
    a one-line error for an unknown segmentation rule or a trust with no type."""
    if rules.segmentation_rule not in SEGMENTATION_RULES:
        raise ValueError(f"segmentation rule must be one of {SEGMENTATION_RULES}, got {rules.segmentation_rule!r}")
    if units is None:
        units = combine_scores(scores, rules.combine_rules)
    trusts = pd.Index(sorted(units["trust_code"].unique()))
    tt = trust_type.reindex(trusts)
    if tt.isna().any():
        raise ValueError(f"trust_type is missing for {sorted(tt.index[tt.isna()])[:10]}")
    in_deficit = _as_bool(deficit, trusts, "deficit") | _as_bool(deficit_support, trusts, "deficit_support")
    return units, tt, in_deficit.to_numpy()


def _joint_replicates(
    units: pd.DataFrame,
    tt: pd.Series,
    in_deficit: np.ndarray,
    rules: LeagueRules,
    replicates: int,
    seed: int,
    recompute_cuts: bool,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Replicate arrays of the joint bootstrap (inputs from :func:`_joint_inputs`): (trusts, means, adjusted
    segments, ranks), each (B, n)."""
    segmentation_rule, pool_types = rules.segmentation_rule, rules.pool_types
    trusts = list(tt.index)
    # cut points of the observed quarter (used unless within-type quartiles are recomputed per replicate)
    observed = _weighted_average(units, ["trust_code"], 2).set_index("trust_code")["average_score"]
    fixed_cuts = _cut_points(
        observed.reindex(trusts),
        tt,
        segmentation_rule,
        rules.thresholds,
        rules.population_average,
        pool_types=pool_types,
    )

    b = int(replicates)
    means = _Units(units, trusts).means(np.random.default_rng(seed), b)
    cents = _half_up_units(means, 2).astype(np.int64)  # 2-dp averages, as whole cents
    avg2 = cents / 100.0
    ranks = np.zeros((b, len(trusts)), dtype=np.int64)
    segs = np.zeros((b, len(trusts)), dtype=np.int8)
    tt_arr = tt.astype(str).to_numpy()
    pooled_cuts = None
    if recompute_cuts and segmentation_rule == "quartiles_pooled":
        pool_cols = np.flatnonzero(_pool_mask(tt, pool_types).to_numpy())
        pooled_cuts = np.percentile(avg2[:, pool_cols], QUARTILES, axis=1)[:, :, None]  # (3, B, 1)
    for t in sorted(set(tt_arr)):
        cols = np.flatnonzero(tt_arr == t)
        a = avg2[:, cols]
        if pooled_cuts is not None:
            cuts = pooled_cuts
        elif recompute_cuts and segmentation_rule == "quartiles_within_type":
            cuts = np.percentile(a, QUARTILES, axis=1)[:, :, None]  # (3, B, 1)
        else:
            cuts = np.asarray(fixed_cuts[t], dtype=float)[:, None, None]
        seg = _segment_from_cuts(a, cuts)
        moved = _overridden(seg, in_deficit[cols][None, :], rules.from_segments)
        seg = np.where(moved, int(rules.to_segment), seg).astype(np.int8)
        segs[:, cols] = seg
        key = seg.astype(np.int64) * 100_000 + cents[:, cols]
        ranks[:, cols] = _competition_rank_rows(key)
    return trusts, means, segs, ranks


def joint_bootstrap(
    scores: pd.DataFrame,
    trust_type: pd.Series,
    deficit: pd.Series,
    deficit_support: pd.Series,
    rules: LeagueRules,
    *,
    replicates: int,
    seed: int,
    level: float = 0.95,
    recompute_cuts: bool = False,
    units: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Likely ranges of average and rank, and segment probabilities, from one joint bootstrap.

    ``rules`` are the quarter's segmentation, combination and override rules (:class:`LeagueRules`); with
    ``"quartiles_pooled"`` and ``recompute_cuts=True`` the pooled quartiles are recomputed from each replicate's
    pooled averages.

    In every replicate every trust's scored units are resampled (as :func:`likely_range_average`) and its
    average rounded half up to 2 dp; the trust's segment is re-derived from that average; the financial
    override is re-applied from the (fixed) deficit flags; and the whole type is re-ranked by (adjusted
    segment, average) with competition ranks.

    The cut points are those of the observed quarter (from ``rules``), held fixed across
    replicates — this reproduces NHS England's published Q4 2025/26 likely ranges of rank (all 61 trusts
    within ±1; see the reconciliation). With ``recompute_cuts=True`` and within-type quartiles, the quartiles
    are recomputed from each replicate's averages instead, so the ranges also carry the uncertainty of the
    cut points (wider for trusts near a cut; 4 of the 61 published lower bounds are then off by 2).

    ``trust_type``, ``deficit`` and ``deficit_support`` are Series indexed by trust code; trusts with no
    scored unit are left out. ``units``: the scored units of ``scores`` (:func:`combine_scores` with
    ``rules.combine_rules``) when the caller has made them already. Returns per trust: ``average_lower, average_upper`` (identical to
    :func:`likely_range_average` for the same scores, seed and replicates), ``rank_lower, rank_upper``
    (percentiles of the replicate ranks, numpy default interpolation, rounded half up to whole ranks) and
    ``p_segment_1..4`` — the share of replicates in which the trust's *adjusted* segment is 1–4 (beyond NHS
    England, which publishes no such figure; segment 5 is a judgement and is not simulated).
    """
    q = _check_level(level, replicates)
    units, tt, in_deficit = _joint_inputs(scores, trust_type, deficit, deficit_support, rules, units)
    trusts, means, segs, ranks = _joint_replicates(units, tt, in_deficit, rules, replicates, seed, recompute_cuts)
    avg_range = _percentiles(means, q)
    rank_range = np.percentile(ranks, q, axis=0)
    out = pd.DataFrame(
        {
            "trust_code": trusts,
            "average_lower": round_half_up(avg_range[0]),
            "average_upper": round_half_up(avg_range[1]),
            "rank_lower": round_half_up(rank_range[0], 0).astype(int),
            "rank_upper": round_half_up(rank_range[1], 0).astype(int),
        }
    )
    for k in range(1, 5):
        out[f"p_segment_{k}"] = (segs == k).mean(axis=0)
    return out


# --------------------------------------------------------------------------------------------------------
# top level
# --------------------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(text).lower()).strip("_").replace("__", "_")


def build_league_table(
    scores: pd.DataFrame,
    trusts: pd.DataFrame,
    status: pd.DataFrame,
    segmentation_rule: SegmentationRule,
    thresholds=None,
    replicates: int = 1000,
    *,
    seed: int,
    level: float = 0.95,
    population_average=None,
    recompute_cuts: bool = False,
    combine_rules: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
    pool_types: Sequence[str] | None = None,
    from_segments: Sequence[int] = (1, 2),
    to_segment: int = 3,
) -> pd.DataFrame:
    """The NOF league table of one quarter, one row per trust of ``trusts``.

    Parameters
    ----------
    scores
        Long metric scores ``trust_code, metric_id, score, weight, combine_group, domain``.
    trusts
        Register ``trust_code, trust_name, trust_type, trust_subtype, region``.
    status
        ``trust_code, deficit, deficit_support, improvement_programme`` (booleans) for every trust.
    segmentation_rule, thresholds, population_average
        See :func:`assign_segments`.
    replicates, seed, level, recompute_cuts
        Bootstrap replicates, seed (from configuration), level of the likely ranges, and whether within-type
        quartiles are recomputed in each replicate (see :func:`joint_bootstrap`; default: the quarter's cut
        points held fixed, as NHS England's published ranges imply).
    combine_rules
        See :func:`combine_scores`.

    Returns
    -------
    pd.DataFrame
        Columns ``trust_code, trust_name, trust_type, trust_subtype, region, n_scored, average_score,
        average_unrounded, average_lower, average_upper, unadjusted_segment, in_financial_deficit,
        financial_override, segment, segmentation_rule, segmentation_population, cut_point_1..3, rank, rank_of, rank_label,
        rank_lower, rank_upper, p_segment_1..p_segment_4`` and ``domain_score_<domain>`` /
        ``domain_segment_<domain>`` (context only: each domain's scores segmented with the same rule — with
        fixed thresholds the overall thresholds, with a configured population within-type quartiles, as no
        domain population is configured; NHS England's published domain segments do not reproduce from
        within-type quartiles **[open]**), sorted by trust type, rank, trust code.
        ``segment`` is the adjusted segment, 5 where ``improvement_programme``; the league ``rank`` uses the
        adjusted segment 1–4, as NHS England does. ``attrs`` records ``cut_points`` (per type),
        ``segmentation_rule``, ``replicates``, ``seed``, ``level`` and ``recompute_cuts``.
    """
    reg, flags = _register_and_flags(scores, trusts, status)
    units = combine_scores(scores, combine_rules)  # the scored units: the average, the bootstrap and the domains
    avg = _averages(units).set_index("trust_code").reindex(reg.index)
    out = reg.copy()
    out["n_scored"] = avg["n_scored"].fillna(0).astype(int)
    out["average_score"] = avg["average_score"]
    out["average_unrounded"] = avg["average_unrounded"]

    unadj, cuts = assign_segments(
        out["average_score"],
        reg["trust_type"],
        segmentation_rule,
        thresholds,
        population_average,
        pool_types=pool_types,
    )
    adjusted, moved = apply_financial_override(
        unadj, flags["deficit"], flags["deficit_support"], from_segments=from_segments, to_segment=to_segment
    )
    out["unadjusted_segment"] = unadj
    out["in_financial_deficit"] = flags["deficit"] | flags["deficit_support"]
    out["financial_override"] = moved
    out["segment"] = apply_segment_5(adjusted, flags["improvement_programme"])
    out["segmentation_rule"] = segmentation_rule
    population = segmentation_population(reg["trust_type"], out["average_score"], segmentation_rule, pool_types)
    out["segmentation_population"] = population
    for i in range(3):
        out[f"cut_point_{i + 1}"] = reg["trust_type"].map(lambda t: cuts.get(t, (np.nan,) * 3)[i]).astype(float)  # noqa: B023
    out = out.join(rank_league(adjusted, out["average_score"], reg["trust_type"]))

    rules = LeagueRules(
        segmentation_rule, thresholds, population_average, pool_types, combine_rules, from_segments, to_segment
    )
    boot = joint_bootstrap(
        scores,
        reg["trust_type"],
        flags["deficit"],
        flags["deficit_support"],
        rules,
        replicates=replicates,
        seed=seed,
        level=level,
        recompute_cuts=recompute_cuts,
        units=units,
    ).set_index("trust_code")
    for col in ("average_lower", "average_upper"):
        out[col] = boot[col].reindex(reg.index)
    for col in ("rank_lower", "rank_upper"):
        out[col] = boot[col].reindex(reg.index).astype("Int64")
    for k in range(1, 5):
        out[f"p_segment_{k}"] = boot[f"p_segment_{k}"].reindex(reg.index)

    for col, values in _domain_columns(units, reg, segmentation_rule, thresholds, pool_types).items():
        out[col] = values
    out = out.reset_index(drop=True)
    out = out.sort_values(["trust_type", "rank", "trust_code"], kind="mergesort", na_position="last", ignore_index=True)
    out.attrs.update(
        {
            "cut_points": cuts,
            "segmentation_rule": segmentation_rule,
            "segmentation_population": population,
            "pool_types": None if pool_types is None else list(pool_types),
            "replicates": int(replicates),
            "seed": seed,
            "level": level,
            "recompute_cuts": recompute_cuts,
        }
    )
    return out


def _register_and_flags(
    scores: pd.DataFrame, trusts: pd.DataFrame, status: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """The register indexed by trust code (sorted, codes as strings) and each trust's status flags (deficit,
    deficit support, improvement programme); an error for missing columns, duplicate codes or scored trusts not in
    the register."""
    need = {"trust_code", "trust_name", "trust_type", "trust_subtype", "region"}
    if missing := sorted(need - set(trusts.columns)):
        raise ValueError(f"trusts is missing columns {missing}")
    need_s = {"trust_code", "deficit", "deficit_support", "improvement_programme"}
    if missing := sorted(need_s - set(status.columns)):
        raise ValueError(f"status is missing columns {missing}")
    reg = trusts[["trust_code", "trust_name", "trust_type", "trust_subtype", "region"]].copy()
    reg["trust_code"] = reg["trust_code"].astype(str)
    if reg["trust_code"].duplicated().any():
        raise ValueError("trusts has duplicate trust codes")
    reg = reg.set_index("trust_code", drop=False).sort_index()
    st = status.assign(trust_code=status["trust_code"].astype(str)).set_index("trust_code")
    if st.index.duplicated().any():
        raise ValueError("status has duplicate trust codes")
    unknown = sorted(set(scores["trust_code"].astype(str)) - set(reg.index))
    if unknown:
        raise ValueError(f"scores has trusts not in the register: {unknown[:10]}")
    st = st.reindex(reg.index)
    return reg, {c: _as_bool(st[c], reg.index, c) for c in ("deficit", "deficit_support", "improvement_programme")}


def _domain_columns(
    units: pd.DataFrame,
    reg: pd.DataFrame,
    segmentation_rule: SegmentationRule,
    thresholds,
    pool_types: Sequence[str] | None,
) -> dict[str, pd.Series]:
    """Context columns ``domain_score_<domain>`` and ``domain_segment_<domain>``: each domain's average score (of
    the scored units, :func:`combine_scores`), segmented with the overall rule and thresholds."""
    dom = _domains(units)
    # No domain population is configured, so quartiles over a population fall back to within-type quartiles;
    # pooled quartiles pool the domain scores of the same types.
    dom_rule = "quartiles_within_type" if segmentation_rule == "quartiles_over_population" else segmentation_rule
    columns = {}
    for d in sorted(dom["domain"].unique()):
        ds = dom[dom["domain"] == d].set_index("trust_code")["domain_score"].reindex(reg.index)
        dseg, _ = assign_segments(ds, reg["trust_type"], dom_rule, thresholds, pool_types=pool_types)
        columns[f"domain_score_{_slug(d)}"] = ds
        columns[f"domain_segment_{_slug(d)}"] = dseg
    return columns
