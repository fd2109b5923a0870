"""Cancer Waiting Times — CWT-CRS provider data extract (NHS England).

Publication: NHS England, Cancer Waiting Times monthly statistics, "CWT-CRS Provider Data
Extract" (one row per month × standard × provider × stage/route × treatment modality × cancer
type, columns ``YEAR, MONTH, STANDARD, ORG CODE, STAGE/ROUTE, TREATMENT MODALITY, CANCER TYPE,
TOTAL TREATED, WITHIN STANDARD, BREACHES``). The shared copies add an ISO ``PERIOD`` column;
without it the month is built from ``YEAR`` (financial year ``2024/25``) and ``MONTH`` (``APR``).

Standards (since October 2023):

* ``cancer_fds_28d`` — 28-day Faster Diagnosis Standard: patients told they have cancer, or that
  cancer is ruled out, within 28 days of an urgent suspected-cancer referral, breast-symptomatic
  referral or screening referral. Numerator = WITHIN STANDARD, denominator = TOTAL TREATED
  (patients told).
* ``cancer_31d`` — 31-day combined: decision to treat → first or subsequent treatment within
  31 days.
* ``cancer_62d`` — 62-day combined: urgent suspected-cancer referral, breast-symptomatic,
  screening or consultant upgrade → first definitive treatment within 62 days. Patients shared
  between providers are counted as 0.5 at each, hence half counts.

**Quarterly rule:** sum WITHIN STANDARD and TOTAL TREATED over the three months of the quarter
(within standard / total treated).

Quirk (double partition): for the 31- and 62-day standards the extract gives each
provider-month twice — once split by cancer type with ``TREATMENT MODALITY = ALL MODALITIES``
and once split by modality with ``CANCER TYPE = ALL CANCERS``. Summing every row doubles the
counts (ratios are unaffected); only the ``ALL MODALITIES`` rows are summed here (if a
provider-month has none, all its rows are used). The 28-day rows have no modality. STAGE/ROUTE
labels change case between the 2024/25 and 2025/26 extracts (``Urgent Suspected Cancer`` /
``URGENT SUSPECTED CANCER``): they are upper-cased on reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources import common

METRIC_BY_STANDARD = {"FDS": "cancer_fds_28d", "31D": "cancer_31d", "62D": "cancer_62d"}

_ALIASES = {
    "period": "period",
    "year": "year",
    "month": "month",
    "standard": "standard",
    "org code": "org_code",
    "provider code": "org_code",
    "stage/route": "stage_route",
    "stage / route": "stage_route",
    "treatment modality": "modality",
    "cancer type": "cancer_type",
    "total treated": "total",
    "total": "total",
    "within standard": "within",
    "breaches": "breaches",
}


def standard_code(label: str) -> str:
    """``28-day FDS`` → ``FDS``; ``31-day Combined`` → ``31D``; ``62-day Combined`` → ``62D``."""
    s = common.norm_name(label)
    if "fds" in s or "faster diagnosis" in s or s.startswith("28"):
        return "FDS"
    m = re.match(r"^(31|62)", s)
    if m:
        return f"{m.group(1)}D"
    raise ValueError(f"unknown cancer standard {label!r}")


def _month_from_year(year: str, month: str) -> pd.Timestamp:
    first = int(str(year)[:4])
    mon = next(v for k, v in common.MONTHS.items() if k.startswith(str(month).strip().upper()[:3]))
    return pd.Timestamp(year=first if mon >= 4 else first + 1, month=mon, day=1)


def _read_one(path: Path | str) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    counts = {"total treated", "total", "within standard", "breaches"}
    raw = pd.read_csv(
        path,
        dtype={c: str for c in header if common.norm_name(c) not in counts},
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8-sig",
    )
    raw = raw.rename(columns={c: _ALIASES[common.norm_name(c)] for c in raw.columns if common.norm_name(c) in _ALIASES})
    missing = {"standard", "org_code", "total", "within"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    out = pd.DataFrame(index=raw.index)
    if "period" in raw and raw["period"].notna().all():
        out["period"] = common.parse_months(raw["period"])
    else:
        out["period"] = [_month_from_year(y, m) for y, m in zip(raw["year"], raw["month"])]
    out["standard"] = raw["standard"].map({v: standard_code(v) for v in raw["standard"].unique()})
    out["org_code"] = raw["org_code"].astype("string").str.strip().str.upper()
    for col in ("stage_route", "modality", "cancer_type"):
        out[col] = (
            raw[col].astype("string").fillna("").str.strip().str.upper()
            if col in raw
            else pd.Series("", index=raw.index, dtype="string")
        )
    out["total"], s1 = common.to_number(raw["total"])
    out["within"], s2 = common.to_number(raw["within"])
    out["suppressed"] = s1 | s2
    return out[~common.is_total_row(out["org_code"])]


def read_cwt(paths: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """Detail rows of one or several provider extracts: ``period, standard (FDS/31D/62D),
    org_code, stage_route, modality, cancer_type, total, within, suppressed``."""
    return common.read_each(paths, _read_one)


def provider_months(detail: pd.DataFrame) -> pd.DataFrame:
    """Month × standard × provider totals without the double partition (see module docstring)."""
    df = detail.copy()
    is_all = df["modality"].fillna("").eq("ALL MODALITIES")
    has_all = is_all.groupby([df["period"], df["standard"], df["org_code"]]).transform("any")
    df = df[is_all | ~has_all]
    return common.sum_by(df, ["period", "standard", "org_code"], ["total", "within"], any_flags=["suppressed"])


def cancer_observations(
    detail: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """``cancer_fds_28d``, ``cancer_31d``, ``cancer_62d`` observations of one quarter."""
    months = provider_months(detail)
    months = common.quarter_rows(months, quarter, "cancer waiting times", successors)
    parts = []
    for std, metric_id in METRIC_BY_STANDARD.items():
        m = months[months["standard"] == std]
        agg = common.sum_by(m, "trust_code", ["total", "within"], all_flags=["suppressed"])
        parts.append(common.ratio_observations(agg, quarter, metric_id, "within", "total", "suppressed"))
    return pd.concat(parts, ignore_index=True)


def national_month(detail: pd.DataFrame, month) -> dict[str, dict[str, float]]:
    """England totals of one month per standard: ``{std: {total, within, share}}``."""
    pm = provider_months(detail)
    pm = pm[pm["period"] == common.parse_month(month)]
    out = {}
    for std, g in pm.groupby("standard"):
        out[std] = {
            "total": float(g["total"].sum()),
            "within": float(g["within"].sum()),
            "share": float(g["within"].sum() / g["total"].sum()),
        }
    return out


__all__ = [
    "read_cwt",
    "provider_months",
    "cancer_observations",
    "national_month",
    "standard_code",
    "METRIC_BY_STANDARD",
]
