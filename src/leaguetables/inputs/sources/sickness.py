"""NHS Sickness Absence Rates — monthly organisation CSV (NHS England, formerly NHS Digital).

Publication: "NHS Sickness Absence Rates" (official statistics, monthly, about three months in
arrears), organisation-level CSV from the Electronic Staff Record: ``DATE, NHSE_REGION_CODE,
NHSE_REGION_NAME, ICS_CODE, ICS_NAME, ORG_CODE, ORG_NAME, ORG_TYPE, FTE_DAYS_LOST,
FTE_DAYS_AVAILABLE, SICKNESS_ABSENCE_RATE_PERCENT``. Older files label the organisation type
``CLUSTER_GROUP`` (or ``BENCHMARK_GROUP``) instead of ``ORG_TYPE``; both are read. The shared
copy stacks April 2024 – March 2025 and adds an ISO ``month`` column.

Metric ``sickness_absence`` — NHS England's definition: full-time-equivalent days lost to
sickness absence / FTE days available (rate = lost / available; published ×100 as a percent).

**Quarterly rule:** sum FTE days lost and FTE days available over the three months of the quarter
(the quarterly rate is the available-days-weighted mean of the monthly rates, as in NHS
England's quarterly/annual summaries).

The ``ORG_TYPE`` column also classifies organisations (``Acute``, ``Mental Health``,
``Community Provider Trust``, ``Ambulance``, ICBs, CSUs, others): used by ``organisation_types``
as a trust-type source when the staff survey has no benchmarking group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources import common

_ALIASES = {
    "month": "period",
    "date": "date",
    "org_code": "org_code",
    "org code": "org_code",
    "org_name": "org_name",
    "org name": "org_name",
    "org_type": "org_type",
    "cluster_group": "org_type",
    "benchmark_group": "org_type",
    "organisation type": "org_type",
    "nhse_region_code": "region_code",
    "nhse_region_name": "region_name",
    "fte_days_lost": "lost",
    "fte days lost": "lost",
    "fte_days_sick": "lost",
    "fte_days_available": "available",
    "fte days available": "available",
    "sickness_absence_rate_percent": "rate_percent",
}

#: ``ORG_TYPE`` → (trust_type, trust_subtype); other organisation types are not trusts.
ORG_TYPES = {
    "acute": ("acute", "Acute"),
    "mental health": ("mental_health_community", "Mental Health and Learning Disability"),
    "community provider trust": ("mental_health_community", "Community"),
    "community": ("mental_health_community", "Community"),
    "care trust": ("mental_health_community", "Care Trust"),
    "ambulance": ("ambulance", "Ambulance"),
}


def _canonical_column(label: str) -> str | None:
    return _ALIASES.get(common.norm_name(label))


def _read_one(path: Path | str) -> pd.DataFrame:
    raw = common.read_renamed(path, _canonical_column)
    if not {"org_code", "lost", "available"} <= set(raw.columns):
        raise ValueError(f"{path}: needs ORG_CODE, FTE_DAYS_LOST, FTE_DAYS_AVAILABLE")
    out = pd.DataFrame(index=raw.index)
    if "period" in raw:
        out["period"] = common.parse_months(raw["period"])
    elif "date" in raw:
        out["period"] = common.parse_months(raw["date"])
    else:
        raise ValueError(f"{path}: no DATE column")
    out["org_code"] = raw["org_code"].astype("string").str.strip().str.upper()
    for col in ("org_name", "org_type", "region_code"):
        out[col] = raw[col].astype("string").str.strip() if col in raw else pd.NA
    out["lost"], s1 = common.to_number(raw["lost"])
    out["available"], s2 = common.to_number(raw["available"])
    out["suppressed"] = s1 | s2
    return out[~common.is_total_row(out["org_code"], out["org_name"])]


def read_sickness(paths: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """Organisation-month rows ``period, org_code, org_name, org_type, region_code, lost,
    available, suppressed``."""
    df = common.read_each(paths, _read_one).drop_duplicates(["period", "org_code"], keep="last")
    return df.sort_values(["period", "org_code"]).reset_index(drop=True)


def sickness_observations(
    sickness: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """``sickness_absence`` observations of one quarter."""
    df = common.quarter_rows(sickness, quarter, "sickness absence", successors)
    agg = common.sum_by(df, "trust_code", ["lost", "available"], all_flags=["suppressed"])
    return common.ratio_observations(agg, quarter, "sickness_absence", "lost", "available", "suppressed")


def organisation_types(sickness: pd.DataFrame) -> pd.DataFrame:
    """``org_code, trust_type, trust_subtype`` from the latest ``ORG_TYPE`` of each organisation."""
    latest = sickness.sort_values("period").drop_duplicates("org_code", keep="last")
    # a list comprehension, not Series.map: with pyarrow installed a "string" column maps tuples to arrow lists
    mapped = [ORG_TYPES.get(v) for v in latest["org_type"].fillna("").astype(str).str.strip().str.lower()]
    out = pd.DataFrame(
        {
            "org_code": latest["org_code"].astype(str).to_numpy(),
            "trust_type": [m[0] if isinstance(m, tuple) else None for m in mapped],
            "trust_subtype": [m[1] if isinstance(m, tuple) else None for m in mapped],
        }
    )
    return out.dropna(subset=["trust_type"]).reset_index(drop=True)


def latest_names(sickness: pd.DataFrame, as_of=None) -> pd.Series:
    """Organisation names (proper case) as last published on or before ``as_of``: code → name."""
    df = sickness if as_of is None else sickness[sickness["period"] <= pd.Timestamp(as_of)]
    latest = df.sort_values("period").drop_duplicates("org_code", keep="last")
    return pd.Series(latest["org_name"].to_numpy(), index=latest["org_code"].astype(str).to_numpy())


def national_month(sickness: pd.DataFrame, month, org_type: str | None = None) -> float:
    """England sickness absence rate of one month (optionally one organisation type)."""
    m = sickness[sickness["period"] == common.parse_month(month)]
    if org_type is not None:
        m = m[m["org_type"].str.lower() == org_type.lower()]
    return float(m["lost"].sum() / m["available"].sum())


__all__ = [
    "read_sickness",
    "sickness_observations",
    "organisation_types",
    "latest_names",
    "national_month",
    "ORG_TYPES",
]
