"""Bed availability and occupancy — KH03 overnight beds, sheet "NHS Trust by Sector" (NHS England).

Publication: NHS England, "Bed Availability and Occupancy Data – Overnight" (KH03), quarterly
web file ``Beds-Open-Overnight-Web_File-Q<n>-<yyyy-yy>.xlsx``, sheet "NHS Trust by Sector":
one row per trust with, for each sector (Total, General & Acute, Learning Disabilities,
Maternity, Mental Illness), the average daily number of available and of occupied overnight
beds over the quarter, and the % occupied. The published sheet has a two-row header (sector ×
Available/Occupied/% Occupied); the shared copy flattens it to ``Available General & Acute``,
``Occupied General & Acute``, ``% Occupied General & Acute`` and adds ``quarter_label``
(``January to March 2025``).

Metric ``beds_ga_occupancy`` — general and acute bed occupancy = occupied / available G&A
overnight beds (average daily counts over the quarter). Numerator and denominator are the
published average bed numbers (not bed-days), so they are not integers.

**Quarterly rule:** KH03 is itself quarterly: the quarter's return is used as published (no
aggregation). Trusts merged into a successor have their beds summed.

Quirks: ``%`` columns hold ``-`` where a trust has no beds in a sector (not applicable); the
percentage columns are ignored and occupancy is recomputed from the counts; rows with no G&A
beds (mental-health trusts) produce no observation. England total rows are dropped. The
quarter is read from ``quarter_label`` or from ``Year`` (``2024-25``) + ``Period End``
(``March``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources.common import (
    MONTHS,
    NoDataForQuarter,
    is_total_row,
    map_codes,
    norm_name,
    parse_quarter,
    quarter_of,
    ratio_observations,
    read_renamed,
    sum_by,
    to_number,
)

_SECTORS = {
    "total": "total",
    "general & acute": "ga",
    "general and acute": "ga",
    "g&a": "ga",
    "learning disabilities": "ld",
    "maternity": "maternity",
    "mental illness": "mi",
}


def canonical_column(label: str) -> str | None:
    s = norm_name(label)
    m = re.match(r"^(available|occupied)\s*[-:]?\s*(.+)$", s)
    if m and m.group(2) in _SECTORS:
        return f"{'avail' if m.group(1) == 'available' else 'occ'}_{_SECTORS[m.group(2)]}"
    return {
        "org code": "org_code",
        "organisation code": "org_code",
        "org name": "org_name",
        "organisation name": "org_name",
        "region code": "region_code",
        "year": "year",
        "period end": "period_end",
        "quarter_label": "quarter_label",
        "quarter": "quarter_label",
    }.get(s)


def _quarter_from_label(label: str) -> str:
    """``January to March 2025`` → ``2024-25-Q4``."""
    m = re.search(r"([A-Za-z]+)\s+to\s+([A-Za-z]+)\s+(\d{4})", str(label))
    if not m:
        raise ValueError(f"cannot read a quarter from {label!r}")
    end_month = next(v for k, v in MONTHS.items() if k.startswith(m.group(2).upper()[:3]))
    return quarter_of(pd.Timestamp(year=int(m.group(3)), month=end_month, day=1))


def _quarter_from_year(year: str, period_end: str) -> str:
    """``2024-25`` + ``March`` → ``2024-25-Q4``."""
    first = int(str(year)[:4])
    mon = next(v for k, v in MONTHS.items() if k.startswith(str(period_end).strip().upper()[:3]))
    return quarter_of(pd.Timestamp(year=first if mon >= 4 else first + 1, month=mon, day=1))


def read_kh03(path: Path | str, quarter: str | None = None) -> pd.DataFrame:
    """Trust rows ``quarter, org_code, org_name, region_code, avail_*, occ_*`` (sectors: total,
    ga, ld, maternity, mi). ``quarter`` is needed only if the file states none."""
    raw = read_renamed(path, canonical_column)
    if not {"org_code", "avail_ga", "occ_ga"} <= set(raw.columns):
        raise ValueError(f"{path}: needs Org Code, Available/Occupied General & Acute columns")
    out = pd.DataFrame(index=raw.index)
    if quarter is not None:
        parse_quarter(quarter)
        out["quarter"] = quarter
    elif "quarter_label" in raw:
        out["quarter"] = raw["quarter_label"].map(_quarter_from_label)
    elif {"year", "period_end"} <= set(raw.columns):
        out["quarter"] = [_quarter_from_year(y, p) for y, p in zip(raw["year"], raw["period_end"])]
    else:
        raise ValueError(f"{path}: no quarter in the file; pass quarter='YYYY-YY-QN'")
    out["org_code"] = raw["org_code"].astype("string").str.strip().str.upper()
    out["org_name"] = raw["org_name"].astype("string").str.strip() if "org_name" in raw else pd.NA
    out["region_code"] = raw["region_code"].astype("string").str.strip() if "region_code" in raw else pd.NA
    supp = pd.Series(False, index=raw.index)
    for sector in dict.fromkeys(_SECTORS.values()):
        for kind in ("avail", "occ"):
            col = f"{kind}_{sector}"
            if col in raw:
                out[col], s = to_number(raw[col])
                if sector == "ga":
                    supp |= s
    out["suppressed"] = supp
    return out[~is_total_row(out["org_code"], out["org_name"])].reset_index(drop=True)


def kh03_observations(kh03: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``beds_ga_occupancy`` observations of one quarter."""
    parse_quarter(quarter)
    df = kh03[kh03["quarter"] == quarter].copy()
    if df.empty:
        have = ", ".join(sorted(kh03["quarter"].unique()))
        raise NoDataForQuarter(f"KH03: no return for {quarter} (have {have})")
    df["trust_code"] = map_codes(df["org_code"], successors)
    agg = sum_by(df, "trust_code", ["avail_ga", "occ_ga"], all_flags=["suppressed"])
    return ratio_observations(agg, quarter, "beds_ga_occupancy", "occ_ga", "avail_ga", "suppressed")


def national_quarter(kh03: pd.DataFrame, quarter: str) -> dict[str, float]:
    q = kh03[kh03["quarter"] == quarter]
    return {
        "available_ga": float(q["avail_ga"].sum()),
        "occupied_ga": float(q["occ_ga"].sum()),
        "occupancy_ga": float(q["occ_ga"].sum() / q["avail_ga"].sum()),
    }


__all__ = ["read_kh03", "kh03_observations", "national_quarter", "canonical_column"]
