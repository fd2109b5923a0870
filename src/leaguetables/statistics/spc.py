"""Statistical process control: XmR charts with NHS England's "Making Data Count" rules, per trust and metric.

For one series — a trust's value of a metric in every quarter available, in time order — :func:`analyse` computes

* the **XmR chart** (individuals and moving range, Wheeler's "process behaviour chart"): the mean x̄ of the
  points, the moving ranges mR_t = |x_t − x_{t−1}| between *adjacent* quarters, their mean m̄R, and the
  **process limits** ``x̄ ± 2.66 × m̄R`` (2.66 = 3 / d₂ with d₂ = 1.128 for ranges of two points: the limits are
  x̄ ± 3σ̂ with σ̂ = m̄R / 1.128). The *baseline* is every available quarter up to the current one (no rebasing,
  no locked limits); Making Data Count's Excel tools do not screen outlying moving ranges, nor does this by
  default (``spc.screen_outliers: true`` drops moving ranges ≥ 3.267 × m̄R before recomputing m̄R, Nelson 1982,
  as NHSRplotthedots does by default);
* the **Making Data Count rules** for special cause variation, each marking the points of the pattern:

  1. ``beyond_limits`` — a point above the upper or below the lower process limit;
  2. ``run`` — 7 (``spc.run_length``) or more consecutive points above the mean, or below it (a point exactly on
     the mean breaks the run);
  3. ``trend`` — 7 (``spc.trend_length``) or more consecutive points each strictly higher (rising) or lower
     (falling) than the one before;
  4. ``two_of_three`` — 2 of 3 consecutive points beyond two-thirds of the distance from the mean to a process
     limit (``x̄ ± (2/3) × 2.66 × m̄R``) but within the limits, with all 3 points on the same side of the mean;

* the **variation icon** in words: the state of the *latest* point (Making Data Count's icon shows the latest
  point): ``common_cause`` (no rule marks it), ``special_cause_improvement`` or ``special_cause_concern`` (a rule
  marks it, and it is on the better / worse side by the metric's direction: above the mean for "higher is
  better"; for a trend, the direction of the trend), or ``not_assessed`` (too few points, or a figure that repeats
  because it is updated less often than quarterly);
* the **assurance icon** in words, where the catalogue gives a target (``scoring.standard`` or ``scoring.floor``):
  ``consistently_passing`` (the target lies outside the process limits, on the side the whole process passes),
  ``consistently_failing`` (outside, on the failing side: the process will not meet it without a change) or
  ``hit_and_miss`` (the target lies within the limits: it will be met some quarters and missed in others by
  common cause variation alone); ``no_target`` otherwise.

Sources: NHS England / NHS Improvement, *Making Data Count* (2017, 2019) and *Making Data Count: Strengthening
your decisions* (2021), https://www.england.nhs.uk/publication/making-data-count/ (the rules, the variation and
assurance icons); the NHS-R community's R package NHSRplotthedots (the reference implementation of Making Data
Count's "plot the dots" tools: ``ptd_spc_standard``, ``ptd_calculate_point_type``,
``ptd_calculate_assurance_type``; 2.66, 2/3 × 2.66, 3.267, the 2-of-3 rule requiring all 3 points on one side,
the assurance comparison with the latest limits; its icon set — variation: common cause, improvement high/low,
concern high/low, neutral; assurance: pass, fail, inconsistent — is what the words here spell out, "hit and
miss" being Making Data Count's name for "inconsistent"); Wheeler D J, *Understanding Variation* (1993); Provost L P &
Murray S K, *The Health Care Data Guide* (2011). Deviations, deliberate and documented:

* a trend point is labelled improvement or concern by the direction of the trend (NHSRplotthedots labels every
  special-cause point by its side of the mean, so a rising trend still below the mean reads "concern");
* a missing or suppressed quarter breaks moving ranges, runs, trends and 2-of-3 windows (the quarters either side
  of a gap are not consecutive); NHSRplotthedots requires a series without gaps;
* fewer than ``spc.min_points`` (default 8) points: no limits and no rules (say so); Making Data Count and
  NHSRplotthedots treat limits from fewer than 12–15 points as trial limits, and this is said in words when fewer
  than 12 points are used;
* a series with half or more of its moving ranges exactly 0 (a figure published annually and repeated every
  quarter) is not assessed: its moving ranges do not measure quarter-to-quarter variation.

Chance alone triggers the rules: the four rules together over a whole series, and even on the latest point, fire
for a stable process more often than a single 3σ test suggests (measured in ``tests/test_spc.py`` and stated on
the methodology page), and a trust has one series per metric; a special cause is a prompt to look, not proof.

Public API: :class:`SPCResult`, :func:`xmr`, :func:`rule_flags`, :func:`analyse`, :func:`describe_variation`,
:func:`describe_assurance`, :func:`spc_table` (the rows of ``tables/spc.csv``, columns :data:`CSV_COLUMNS`),
:data:`RULES`. The charts themselves are drawn by :func:`leaguetables.publication.spc_chart.spc_svg`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from leaguetables.csv_output import TRUST_METRIC_COLUMNS

LIMIT = 2.66  # 3 / d2, d2 = 1.128 for moving ranges of two points
NEAR = 2.0 / 3.0  # "close to the limit": beyond two-thirds of the distance from the mean to a limit
SCREEN = 3.267  # D4 for n = 2: the upper limit of the moving-range chart (Nelson 1982)
TRIAL_POINTS = 12  # fewer points give "trial" limits (NHSRplotthedots; Making Data Count)

RULES = {
    "beyond_limits": "a point beyond a process limit",
    "run": "a run of points on one side of the mean",
    "trend": "a run of points each rising or each falling",
    "two_of_three": "2 of 3 points close to a process limit",
}
VARIATION = {
    "common_cause": "Common cause variation",
    "special_cause_improvement": "Special cause variation — improvement",
    "special_cause_concern": "Special cause variation — concern",
    "not_assessed": "Not assessed",
}
ASSURANCE = {
    "consistently_passing": "Consistently passing the target",
    "consistently_failing": "Consistently failing the target",
    "hit_and_miss": "Hit and miss: the target will sometimes be met and sometimes not",
    "no_target": "No target",
    "not_assessed": "Not assessed",
}
CSV_COLUMNS = [
    *TRUST_METRIC_COLUMNS,
    "unit",
    "direction",
    "quarters_used",
    "quarters_missing",
    "first_quarter",
    "last_quarter",
    "mean",
    "mean_moving_range",
    "lower_limit",
    "upper_limit",
    "latest_value",
    "latest_rules",
    "rules_triggered",
    "special_cause_points",
    "variation",
    "target",
    "target_kind",
    "assurance",
    "note",
]


@dataclass
class SPCResult:
    """The XmR chart of one series and the Making Data Count reading of it.

    ``values`` keeps a NaN for every missing quarter (in ``labels`` order). ``point_rules`` lists, per point, the
    rules that mark it; ``point_state`` is "common_cause", "improvement", "concern" or "missing" per point.
    ``mean``/``lower``/``upper``/``mr_bar`` are NaN when the series is not assessed (``note`` says why)."""

    labels: list[str]
    values: np.ndarray
    direction: str
    n_points: int
    mean: float = float("nan")
    mr_bar: float = float("nan")
    lower: float = float("nan")
    upper: float = float("nan")
    near_lower: float = float("nan")
    near_upper: float = float("nan")
    point_rules: list[list[str]] = field(default_factory=list)
    point_state: list[str] = field(default_factory=list)
    variation: str = "not_assessed"
    assurance: str = "not_assessed"
    target: float | None = None
    target_kind: str | None = None
    note: str = ""

    @property
    def assessed(self) -> bool:
        return self.variation != "not_assessed"

    @property
    def latest(self) -> int:
        """Index of the latest point with a value (−1 if none)."""
        idx = np.flatnonzero(~np.isnan(self.values))
        return int(idx[-1]) if idx.size else -1

    @property
    def rules_triggered(self) -> list[str]:
        return [r for r in RULES if any(r in p for p in self.point_rules)]

    @property
    def special_cause_points(self) -> int:
        return sum(1 for s in self.point_state if s in ("improvement", "concern"))


def xmr(values, screen_outliers: bool = False) -> tuple[float, float, np.ndarray]:
    """Mean, mean moving range and the moving ranges of a series (NaN = a missing quarter).

    Moving ranges are taken only between adjacent quarters that both have a value. Hand-worked: 1, 3, 2, NaN, 6, 5
    → mean 17/5 = 3.4; moving ranges 2, 1, (gap), (gap), 1 → m̄R = 4/3.

    >>> m, mr, r = xmr([1, 3, 2, float("nan"), 6, 5]); round(m, 4), round(mr, 4)
    (3.4, 1.3333)
    """
    v = np.asarray(values, dtype=float)
    mean = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
    mr = np.abs(np.diff(v))  # NaN wherever either neighbour is missing
    ok = ~np.isnan(mr)
    if not ok.any():
        return mean, float("nan"), mr
    mr_bar = float(np.mean(mr[ok]))
    if screen_outliers and mr_bar > 0:
        keep = ok & (mr < SCREEN * mr_bar)
        if keep.any():
            mr_bar = float(np.mean(mr[keep]))
    return mean, mr_bar, mr


def _runs(cond: np.ndarray, length: int) -> np.ndarray:
    """Mark every point of each run of ``length`` or more consecutive True values."""
    out = np.zeros(cond.size, dtype=bool)
    start = None
    for i, c in enumerate(list(cond) + [False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            if i - start >= length:
                out[start:i] = True
            start = None
    return out


def rule_flags(
    values, mean: float, lower: float, upper: float, run_length: int = 7, trend_length: int = 7
) -> dict[str, np.ndarray]:
    """The points each Making Data Count rule marks (boolean arrays), and each point's side ("high"/"low").

    Returns keys ``beyond_limits``, ``run``, ``trend``, ``two_of_three`` (bool per point) and ``side``: +1 for
    a point marked high (above the mean; a rising trend), −1 for low, 0 for unmarked or missing."""
    v = np.asarray(values, dtype=float)
    n = v.size
    have = ~np.isnan(v)
    rel = np.zeros(n)
    rel[have] = np.sign(v[have] - mean)
    beyond = have & ((v > upper) | (v < lower))
    run = _runs(rel > 0, run_length) | _runs(rel < 0, run_length)
    d = np.diff(v)  # NaN across a gap: breaks the trend
    up = np.zeros(n, dtype=bool)
    down = np.zeros(n, dtype=bool)
    # point t is "rising" if it is higher than point t − 1; a trend of k points has k − 1 rises
    rising = np.concatenate([[False], d > 0])
    falling = np.concatenate([[False], d < 0])
    for steps, mark in ((rising, up), (falling, down)):
        r = _runs(steps, trend_length - 1)
        # include the first point of each run of rises (the point the rises start from)
        starts = np.flatnonzero(r & ~np.concatenate([[False], r[:-1]]))
        mark |= r
        mark[np.maximum(starts - 1, 0)] = True
    trend = up | down
    near = have & ~beyond & ((v > mean + NEAR * (upper - mean)) | (v < mean - NEAR * (mean - lower)))
    two3 = np.zeros(n, dtype=bool)
    for s in range(max(n - 2, 0)):
        w = slice(s, s + 3)
        if have[w].all() and abs(rel[w].sum()) == 3 and near[w].sum() >= 2:
            two3[w] |= near[w]
    side = np.zeros(n, dtype=int)
    by_mean = beyond | run | two3
    side[by_mean] = rel[by_mean].astype(int)
    only_trend = trend & ~by_mean
    side[only_trend & up] = 1
    side[only_trend & down & ~up] = -1
    return {"beyond_limits": beyond, "run": run, "trend": trend, "two_of_three": two3, "side": side}


def analyse(
    values,
    labels: Sequence[str],
    direction: str,
    target: float | None = None,
    target_kind: str | None = None,
    *,
    min_points: int = 8,
    run_length: int = 7,
    trend_length: int = 7,
    screen_outliers: bool = False,
) -> SPCResult:
    """XmR chart, Making Data Count rules, variation and assurance of one series (see the module docstring).

    ``values`` in time order with NaN for a missing quarter, ``labels`` the quarters' labels; ``direction``
    "higher_better" or "lower_better"; ``target`` the catalogue's standard or floor (same units as the values)."""
    if direction not in ("higher_better", "lower_better"):
        raise ValueError(f"direction must be 'higher_better' or 'lower_better', got {direction!r}")
    v = np.asarray(values, dtype=float)
    if len(labels) != v.size:
        raise ValueError(f"{v.size} values but {len(labels)} labels")
    have = ~np.isnan(v)
    res = SPCResult(
        labels=list(labels),
        values=v,
        direction=direction,
        n_points=int(have.sum()),
        target=target,
        target_kind=target_kind,
        point_rules=[[] for _ in range(v.size)],
        point_state=["common_cause" if h else "missing" for h in have],
    )
    if res.n_points < min_points:
        res.note = (
            f"only {res.n_points} quarter{'s' if res.n_points != 1 else ''} with a value: process limits "
            f"need at least {min_points}"
        )
        return res
    mean, mr_bar, mr = xmr(v, screen_outliers)
    ok_mr = mr[~np.isnan(mr)]
    if ok_mr.size == 0:
        res.note = "no two adjacent quarters have values: no moving range"
        return res
    if np.all(v[have] == v[have][0]):
        res.note = "the value is the same in every quarter: there is no variation to chart"
        return res
    if np.mean(ok_mr == 0) >= 0.5:
        res.note = (
            "the value repeats from quarter to quarter (a figure updated less often than quarterly): "
            "quarterly process limits would not measure its variation"
        )
        return res
    res.mean, res.mr_bar = mean, mr_bar
    res.lower, res.upper = mean - LIMIT * mr_bar, mean + LIMIT * mr_bar
    res.near_lower, res.near_upper = mean - NEAR * LIMIT * mr_bar, mean + NEAR * LIMIT * mr_bar
    flags = rule_flags(v, mean, res.lower, res.upper, run_length, trend_length)
    good = 1 if direction == "higher_better" else -1
    marks = {r: flags[r].tolist() for r in RULES}  # plain lists: indexing numpy arrays point by point is slow
    side = flags["side"].tolist()
    for i in range(v.size):
        res.point_rules[i] = [r for r in RULES if marks[r][i]]
        if res.point_rules[i]:
            res.point_state[i] = "improvement" if side[i] == good else "concern"
    last = res.latest
    state = res.point_state[last]
    res.variation = {"improvement": "special_cause_improvement", "concern": "special_cause_concern"}.get(
        state, "common_cause"
    )
    if res.n_points < TRIAL_POINTS:
        res.note = f"trial limits: {res.n_points} quarters (12 or more give settled limits)"
    if target is None:
        res.assurance = "no_target"
    elif target > res.upper:
        res.assurance = "consistently_failing" if direction == "higher_better" else "consistently_passing"
    elif target < res.lower:
        res.assurance = "consistently_passing" if direction == "higher_better" else "consistently_failing"
    else:
        res.assurance = "hit_and_miss"
    return res


def _f(x: float, decimals: int, unit: str = "") -> str:
    """A number for a sentence: a percentage keeps its sign; other units are named once, beside the metric."""
    return f"{x:,.{decimals}f}{'%' if unit == '%' else ''}"


def _run_back(flags: np.ndarray, last: int) -> int:
    k = 0
    while last - k >= 0 and flags[last - k]:
        k += 1
    return k


def describe_variation(res: SPCResult, decimals: int = 1, unit: str = "") -> str:
    """The variation icon's meaning in words, with the rule(s) behind it and the limits."""
    if not res.assessed:
        return f"{VARIATION['not_assessed']}: {res.note}."
    last = res.latest
    v = res.values
    m = _f(res.mean, decimals, unit)
    limits = f"process limits {_f(res.lower, decimals, unit)} to {_f(res.upper, decimals, unit)}"
    head = VARIATION[res.variation]
    if res.variation == "common_cause":
        text = (
            f"{head}: the latest quarter ({res.labels[last]}, {_f(v[last], decimals, unit)}) shows no special "
            f"cause; the values vary around an average of {m} within the {limits} ({res.n_points} quarters)."
        )
    else:
        flags = rule_flags(v, res.mean, res.lower, res.upper)
        why = []
        rules = res.point_rules[last]
        if "beyond_limits" in rules:
            side = "above the upper" if v[last] > res.upper else "below the lower"
            why.append(f"the latest quarter ({_f(v[last], decimals, unit)}) is {side} process limit")
        if "run" in rules:
            k = _run_back(flags["run"], last)
            side = "above" if v[last] > res.mean else "below"
            why.append(f"the last {k} quarters were all {side} the average of {m}")
        if "trend" in rules:
            k = _run_back(flags["trend"], last)
            way = "rose" if v[last] > v[last - 1] else "fell"
            why.append(f"the value {way} in each of the last {k - 1} quarters")
        if "two_of_three" in rules:
            side = "upper" if v[last] > res.mean else "lower"
            why.append(f"2 of the last 3 quarters were close to the {side} process limit")
        if not why:
            why.append("the latest quarter belongs to a pattern marked by the rules")
        text = f"{head}: " + "; ".join(why) + f" (average {m}, {limits}; {res.n_points} quarters)."
    earlier = [i for i in range(last) if res.point_rules[i]]
    if earlier:
        kinds = sorted({res.point_state[i] for i in earlier})
        text += (
            f" Earlier special cause ({' and '.join(kinds)}) in {len(earlier)} "
            f"quarter{'s' if len(earlier) != 1 else ''}, from {res.labels[earlier[0]]}."
        )
    if res.note and not res.note.startswith("trial limits"):  # trial limits are said once, for the whole page
        text += f" Note: {res.note}."
    return text


def describe_assurance(res: SPCResult, decimals: int = 1, unit: str = "") -> str:
    """The assurance icon's meaning in words (or why there is none)."""
    if res.assurance == "not_assessed":
        return "Assurance not assessed (no process limits)."
    if res.assurance == "no_target":
        return "No target for this metric, so no assurance."
    assert res.target is not None  # an assurance other than no_target has a target
    t = _f(res.target, decimals, unit)
    what = "standard" if res.target_kind == "standard" else "floor"
    limits = f"{_f(res.lower, decimals, unit)} to {_f(res.upper, decimals, unit)}"
    caveat = (
        " (this assumes the process stays as it is: it shows special cause)"
        if res.variation.startswith("special")
        else ""
    )
    if res.assurance == "hit_and_miss":
        return (
            f"{ASSURANCE['hit_and_miss']}: the {what} of {t} lies within the process limits ({limits}), so "
            f"common cause variation alone will meet it in some quarters and miss it in others{caveat}."
        )
    side = "passing" if res.assurance == "consistently_passing" else "failing"
    more = "every quarter should meet it" if side == "passing" else "it will not be met without a change to the process"
    return (
        f"{ASSURANCE[res.assurance]}: the {what} of {t} lies outside the process limits ({limits}) on the "
        f"{side} side: {more}{caveat}."
    )


def _target(metric) -> tuple[float | None, str | None]:
    s = metric.scoring
    if s.standard is not None:
        return float(s.standard), "standard"
    if s.floor is not None:
        return float(s.floor), "floor"
    return None, None


def series(history: pd.DataFrame, quarters: Sequence[str]) -> dict[str, np.ndarray]:
    """Each trust's values in ``quarters`` order (NaN where missing or not reported) from a metric history."""
    h = history.loc[history["status"] == "ok"] if "status" in history else history
    wide = h.pivot_table(index="trust_code", columns="quarter", values="value", aggfunc="first", dropna=False).reindex(
        columns=list(quarters)
    )
    all_codes = sorted(set(history["trust_code"]))
    wide = wide.reindex(all_codes)
    return dict(zip(wide.index, wide.to_numpy(float)))


def analyse_metric(
    history: pd.DataFrame, metric, quarters: Sequence[str], labels: Sequence[str], settings=None
) -> dict[str, SPCResult]:
    """:func:`analyse` for every trust in a metric's history (``metrics.history``); ``settings`` is the
    methodology's ``spc`` section (defaults when None)."""
    kw = (
        {}
        if settings is None
        else dict(
            min_points=settings.min_points,
            run_length=settings.run_length,
            trend_length=settings.trend_length,
            screen_outliers=settings.screen_outliers,
        )
    )
    target, kind = _target(metric)
    return {
        code: analyse(vals, labels, metric.direction, target, kind, **kw)
        for code, vals in series(history, quarters).items()
    }


def spc_table(
    results: dict[str, dict[str, SPCResult]], catalogue, trusts: pd.DataFrame, quarter: str, quarters: Sequence[str]
) -> pd.DataFrame:
    """The rows of ``tables/spc.csv``: one per trust and metric with a series (``results[metric_id][trust]``),
    sorted by metric (catalogue order) then trust type and code. ``rules`` are ``;``-separated rule names."""
    info = trusts.set_index("trust_code")
    rows = []
    for m in catalogue.metrics:
        if m.id not in results:
            continue
        for code, r in results[m.id].items():
            have = ~np.isnan(r.values)
            idx = np.flatnonzero(have)
            last = r.latest
            rows.append(
                {
                    "quarter": quarter,
                    "trust_code": code,
                    "trust_name": info["trust_name"].get(code),
                    "trust_type": info["trust_type"].get(code),
                    "metric_id": m.id,
                    "metric_name": m.name,
                    "unit": m.unit,
                    "direction": m.direction,
                    "quarters_used": r.n_points,
                    "quarters_missing": int((~have).sum()),
                    "first_quarter": quarters[idx[0]] if idx.size else None,
                    "last_quarter": quarters[idx[-1]] if idx.size else None,
                    "mean": r.mean,
                    "mean_moving_range": r.mr_bar,
                    "lower_limit": r.lower,
                    "upper_limit": r.upper,
                    "latest_value": r.values[last] if last >= 0 else np.nan,
                    "latest_rules": ";".join(r.point_rules[last]) if last >= 0 else "",
                    "rules_triggered": ";".join(r.rules_triggered),
                    "special_cause_points": r.special_cause_points,
                    "variation": r.variation,
                    "target": r.target,
                    "target_kind": r.target_kind,
                    "assurance": r.assurance,
                    "note": r.note,
                }
            )
    out = pd.DataFrame(rows, columns=CSV_COLUMNS)
    if len(out):
        order = {m.id: i for i, m in enumerate(catalogue.metrics)}
        out = out.iloc[
            np.lexsort(
                (
                    out["trust_code"].to_numpy(),
                    out["trust_type"].astype(str).to_numpy(),
                    out["metric_id"].map(order).to_numpy(),
                )
            )
        ].reset_index(drop=True)
    return out


def run_spc(
    metric_data: dict, metrics, settings=None, memo: Callable | None = None
) -> tuple[dict[str, dict[str, SPCResult]], list[str]]:
    """SPC of every trust and metric of a run from the metric histories (``metric_data[id]["history"]``, as the
    metric results carry them): ``({metric_id: {trust_code: SPCResult}}, quarters in order)``. Bracket metrics
    (a category, not a number) are left out. ``memo(metric, history, quarters, compute)``, when given, returns each
    metric's results, by calling ``compute`` or from a cache keyed on what it reads
    (:mod:`leaguetables.publication.derived_cache`)."""
    from leaguetables.inputs.contract import previous_quarter, quarter_key, quarter_label

    quarters: set[str] = set()
    for m in metrics:
        h = metric_data.get(m.id, {}).get("history")
        if h is not None and not h.empty:
            quarters |= set(h["quarter"])
    ordered = sorted(quarters, key=quarter_key)
    if ordered:  # every quarter from the first to the last: a quarter absent from the inputs is a gap, not skipped
        full = [ordered[-1]]
        while quarter_key(full[-1]) > quarter_key(ordered[0]):
            full.append(previous_quarter(full[-1]))
        ordered = full[::-1]
    labels = [quarter_label(q) for q in ordered]
    out = {}
    for m in metrics:
        h = metric_data.get(m.id, {}).get("history")
        if h is None or h.empty or m.statistic == "bracket":
            continue
        compute = partial(analyse_metric, h, m, ordered, labels, settings)
        out[m.id] = compute() if memo is None else memo(m, h, ordered, compute)
    return out, ordered


def summary(results: dict[str, dict[str, SPCResult]]) -> dict[str, int]:
    """Counts over all trust-metric series: assessed, and the latest point's variation."""
    flat = [r for per in results.values() for r in per.values()]
    return {
        "series": len(flat),
        "assessed": sum(r.assessed for r in flat),
        "improvement": sum(r.variation == "special_cause_improvement" for r in flat),
        "concern": sum(r.variation == "special_cause_concern" for r in flat),
        "any_rule": sum(bool(r.rules_triggered) for r in flat),
    }
