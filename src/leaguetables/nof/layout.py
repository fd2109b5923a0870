"""The league table and the long data table in NHS England's published NOF layouts (nof-methodology.md), with
NHS England's own codes and labels (:mod:`leaguetables.nof.codes`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leaguetables.config import TRUST_TYPE_LABELS
from leaguetables.inputs.contract import quarter_label
from leaguetables.inputs.sources.nof import DATA_COLUMNS as NHSE_LONG_COLUMNS  # the layout the reader reads
from leaguetables.nof.codes import load_nof_codes
from leaguetables.nof.codes import reporting_date as nof_date
from leaguetables.nof.codes import units as nof_units
from leaguetables.nof.scoring import _slug, combine_scores


def _range(lo, hi, fmt="{:.2f}") -> str:
    """``1.25 to 2.00`` (two decimals, as the HTML prints it); empty when either end is missing or not finite."""
    if pd.isna(lo) or pd.isna(hi) or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"{fmt.format(lo)} to {fmt.format(hi)}"


def nhse_league_table(table: pd.DataFrame, quarter: str) -> pd.DataFrame:
    """The league table in NHS England's published column layout (nof-methodology.md)."""
    t = table.sort_values(["trust_type", "rank", "trust_code"], kind="mergesort")
    return pd.DataFrame(
        {
            "Quarter": quarter_label(quarter),
            "Region": t["region"].to_numpy(),
            "Trust_type": t["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
            "Trust_subtype": t["trust_subtype"].to_numpy(),
            "Trust_code": t["trust_code"].to_numpy(),
            "Trust_name": t["trust_name"].to_numpy(),
            "Average_score": t["average_score"].round(2).to_numpy(),
            "Likely_range_of_average_score": [_range(a, b) for a, b in zip(t["average_lower"], t["average_upper"])],
            "Segment": t["segment"].astype("Int64").to_numpy(),
            "Trust_in_financial_deficit": [
                "[x]"
                if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                else "Yes"
                if bool(v)
                else "No"
                for v in t["in_financial_deficit"]
            ],
            "Rank": t["rank"].astype("Int64").to_numpy(),
            "Likely_range_of_rank": [_range(a, b, "{:.0f}") for a, b in zip(t["rank_lower"], t["rank_upper"])],
        }
    )


def _competition_rank(values: pd.Series, higher_better: bool) -> pd.Series:
    return (-values if higher_better else values).rank(method="min")


def _quartiles(values: pd.Series) -> tuple:
    """Lower quartile, median and upper quartile of the values (NaNs dropped; all NaN when none is left): what
    ``values.quantile([0.25, 0.5, 0.75])`` gives — numpy's linear percentiles of the non-missing values —
    without pandas' overhead per call."""
    v = values.to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if not v.size:
        return (np.nan, np.nan, np.nan)
    return tuple(np.percentile(v, [25.0, 50.0, 75.0]))


def _nof_row(codes, code: str, ttype: str, quarter: str) -> dict:
    """Metric_ID, Metric_description, Domain, Sub-domain, Units and Reporting_date of an NHS England code."""
    e = codes.get(code)
    return {
        "Metric_ID": code,
        "Metric_description": e.description,
        "Domain": e.domain,
        "Sub-domain": e.sub_domain,
        "Units": nof_units(e, ttype),
        "Reporting_date": nof_date(e, quarter, ttype),
    }


class _NofRows:
    """:func:`_nof_row` of each (code, trust type) worked out once for the table's thousands of rows (a fresh dict
    each call: a caller may change its Units)."""

    def __init__(self, codes, quarter: str):
        self.codes, self.quarter = codes, quarter
        self.made: dict[tuple, dict] = {}

    def __call__(self, code: str, ttype) -> dict:
        key = (code, ttype)
        if key not in self.made:
            self.made[key] = _nof_row(self.codes, code, ttype, self.quarter)
        return dict(self.made[key])


def _columns(df: pd.DataFrame, *names: str):
    """The rows of ``df``'s columns ``names`` as tuples of the very values :meth:`pandas.DataFrame.iterrows` gives
    (each column as objects, as the frame's object interleave makes them), without a Series per row."""
    return zip(*(df[n].to_numpy(dtype=object) for n in names))


def nhse_long_table(
    league, catalogue, trusts: pd.DataFrame, quarter: str, codes=None, *, combine_rules=None
) -> pd.DataFrame:
    """The long data table in NHS England's layout, with NHS England's own codes and labels only.

    Rows: metric values (``OF0xxx``) and scores (``OF1xxx``) of every catalogue metric whose ``nof_id`` is an
    NHS England code in the registry (:mod:`leaguetables.nof.codes`); the combined-finance score (the combine
    group's ``nof_id``, ``OF1080``); domain scores and segments (``OF40xx``/``OF41xx``); ``OF5000`` adjusted
    segment 1–4 (its Rank = league position), ``OF5002`` average, ``OF5003`` unadjusted segment, ``OF5004``
    the deficit flag (1 = in deficit or on deficit support: the override's *input*, as NHS England publishes
    it), ``OF5005`` final segment 1–5 and ``OF5007`` Recovery Support Programme flag. Metric_description,
    Domain, Sub-domain, Units and Reporting_date come from the registry, so the file joins NHS England's
    published file row for row. Metrics without an NHS England code are *not* written here: they are in the
    project's own tables (``tables/metrics/<metric>.csv``). ``combine_rules``: the scoring functions of the
    catalogue's combine groups (:func:`leaguetables.nof.league.combine_rules`), for the combined-finance score.
    """
    codes = codes if codes is not None else load_nof_codes()
    nof = _NofRows(codes, quarter)
    info = trusts.set_index("trust_code")
    rows = _metric_rows(league.results, catalogue, nof)
    rows += _combined_finance_rows(league, catalogue, nof, combine_rules)
    rows += _domain_rows(league.table, catalogue, nof)
    rows += _summary_rows(league.table, nof)
    long = pd.DataFrame(rows)
    long.insert(0, "Quarter", quarter_label(quarter))
    long.insert(1, "Region", long["Trust_code"].map(info["region"]))
    long.insert(2, "Trust_type", long["Trust_code"].map(info["trust_type"]).map(TRUST_TYPE_LABELS))
    long.insert(3, "Trust_subtype", long["Trust_code"].map(info["trust_subtype"]))
    long.insert(5, "Trust_name", long["Trust_code"].map(info["trust_name"]))
    long = long[NHSE_LONG_COLUMNS]
    long = long.sort_values(["Trust_type", "Trust_code", "Metric_ID"], kind="mergesort").reset_index(drop=True)
    return long


def _metric_rows(res: pd.DataFrame, catalogue, nof: _NofRows) -> list[dict]:
    """Metric values (OF0xxx) and scores (OF1xxx) of every catalogue metric with an NHS England code."""
    rows = []
    codes = nof.codes
    # each metric's rows (in their order), of the columns read here only
    cols = ["metric_id", "trust_type", "trust_code", "value", "score"]
    by_metric = {str(k): g for k, g in res[cols].groupby("metric_id", sort=False)}
    for m in catalogue.metrics:
        sub = by_metric.get(m.id)
        if sub is None or sub.empty or not m.nof_id:
            continue
        value_code, score_code = m.nof_id, "OF1" + m.nof_id[3:]
        has_value = codes.get(value_code) is not None
        has_score = m.scoring.method != "none" and codes.get(score_code) is not None
        if not (has_value or has_score):
            continue
        value_rows = has_value and m.statistic != "bracket"
        types = sub["trust_type"]
        trust, value, score = (sub[c].to_numpy(dtype=object) for c in ("trust_code", "value", "score"))
        for ttype in sorted(set(types.dropna())):  # as groupby("trust_type", sort=True)
            mine = (types == ttype).to_numpy()
            vals = sub["value"][mine]
            q1, med, q3 = _quartiles(vals)
            rank = _competition_rank(vals, m.direction == "higher_better")
            for code, v, sc, rk in zip(trust[mine], value[mine], score[mine], rank):
                # NHS England lists a trust under a metric only when it has a figure
                if value_rows and pd.notna(v):
                    row = nof(value_code, ttype)
                    if m.unit == "count":  # e.g. OF0048/OF0088 published as a count for small specialist trusts
                        row["Units"] = "count"
                    rows.append(_long_row(code, row, v, rank=rk, spread=(med, q1, q3)))
                if has_score and pd.notna(sc):
                    rows.append(_long_row(code, nof(score_code, ttype), sc, rank=rk if has_value else np.nan))
    return rows


def _combined_finance_rows(league, catalogue, nof: _NofRows, combine_rules) -> list[dict]:
    """The combined-finance score (the combine group's NHS England code)."""
    rows: list[dict] = []
    t = league.table
    ttypes = dict(_columns(t, "trust_code", "trust_type"))
    # combined finance (the combine group's NHS England code)
    scores = getattr(league, "scores", None)
    if scores is None or not len(scores):
        return rows
    for name, g in catalogue.combine_groups.items():
        if not g.nof_id or nof.codes.get(g.nof_id) is None:
            continue
        # the group's combined score: a combine group's unit is made from the group's own rows only
        sc = scores[scores["combine_group"] == name].dropna(subset=["score"])
        units = combine_scores(
            sc[["trust_code", "metric_id", "score", "weight", "combine_group", "domain"]], combine_rules
        )
        for code, score in _columns(units[units["metric_id"] == name], "trust_code", "score"):
            if code in ttypes:
                rows.append(_long_row(code, nof(g.nof_id, ttypes[code]), score))
    return rows


def _long_row(trust_code, nof: dict, value, rank=np.nan, spread=(np.nan, np.nan, np.nan)) -> dict:
    """One row of the long data table: a trust's figure under an NHS England code (``nof``: the code's columns from
    :func:`_nof_row`), with its rank and, for a metric's value, the type's median and quartiles (``spread``)."""
    median, lower, upper = spread
    return {
        "Trust_code": trust_code,
        **nof,
        "Value": value,
        "Median_value": median,
        "Lower_quartile": lower,
        "Upper_quartile": upper,
        "Rank": rank,
    }


def _domain_rows(t: pd.DataFrame, catalogue, nof: _NofRows) -> list[dict]:
    """Domain scores and segments (OF40xx/OF41xx)."""
    rows: list[dict] = []
    by_desc = {e.description: c for c, e in nof.codes.codes.items()}
    dom_cols = [c for c in t.columns if c.startswith("domain_score_")]
    domain_names = {}
    for m in catalogue.metrics:
        domain_names[_slug(m.domain)] = m.domain
    for col in dom_cols:
        slug = col[len("domain_score_") :]
        name = domain_names.get(slug)
        for kind, prefix in (("score", "domain_score_"), ("segment", "domain_segment_")):
            code = by_desc.get(f"{name} domain {kind}") if name else None
            if code is None or f"{prefix}{slug}" not in t.columns:
                continue
            for trust, ttype, v in _columns(t, "trust_code", "trust_type", f"{prefix}{slug}"):
                if pd.isna(v):
                    continue
                rows.append(_long_row(trust, nof(code, ttype), v))
    return rows


def _summary_rows(t: pd.DataFrame, nof: _NofRows) -> list[dict]:
    """OF5000 (adjusted segment 1–4, Rank = league position), OF5002–OF5005 and OF5007."""
    rows: list[dict] = []
    # OF5000 is the segment after the financial override (1–4): segment 5 is a judgement published in OF5005
    moved = (
        t["unadjusted_segment"].astype("Int64").mask(t["financial_override"].astype(bool), t.attrs.get("to_segment", 3))
    )
    adjusted = t["segment"].astype("Int64").where(t["segment"].astype("Int64") != 5, moved)
    deficit = t["in_financial_deficit"]
    unknown_finance = deficit.isna()  # no finance status in the inputs: [x], never a default
    summary = {
        "OF5000": adjusted,
        "OF5002": t["average_score"],
        "OF5003": t["unadjusted_segment"].astype("Int64"),
        "OF5004": pd.Series(
            [("[x]" if u else int(bool(d))) for u, d in zip(unknown_finance, deficit)], index=t.index, dtype=object
        ),
        "OF5005": t["segment"].astype("Int64"),
        "OF5007": (t["segment"].astype("Int64") == 5).fillna(False).astype(int),
    }
    trusts = list(_columns(t, "trust_code", "trust_type", "rank"))
    for code, values in summary.items():
        if nof.codes.get(code) is None:
            continue
        for (trust, ttype, rank), v in zip(trusts, values):
            rows.append(_long_row(trust, nof(code, ttype), v, rank=rank if code == "OF5000" else np.nan))
    return rows
