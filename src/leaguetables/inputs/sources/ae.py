"""A&E Attendances and Emergency Admissions — monthly provider CSV (NHS England).

Publication: NHS England, "A&E Attendances and Emergency Admissions" monthly sitrep, provider
CSV ``Monthly-AE-<Month>-<Year>.csv`` (one row per provider: NHS trusts and independent
UTCs/walk-in centres; the file ends with a national ``TOTAL`` row, dropped here). The shared
copy ``nhse_perf_2024_25/ae_monthly_provider_2024-04_2025-07.csv`` stacks 16 monthly files and
adds an ISO ``period`` column; ``read_ae`` reads either layout.

Department types: type 1 (consultant-led 24-hour major A&E), type 2 (consultant-led
single-specialty), other (type 3/4: UTC, minor injury unit, walk-in centre). Since 2020 each
type also has a "Booked Appointments" column (patients given a booked slot, e.g. via NHS 111);
older files have no booked columns (read as 0).

Metrics
-------
``ae_4hr`` — NHS England's 4-hour measure, all department types *including booked
appointments*: numerator = attendances − attendances over 4 hours (from arrival to admission,
transfer or discharge), denominator = all attendances.
**Quarterly rule:** sum both over the three months of the quarter (so the quarter's value is
attendance-weighted, as NHS England's quarterly A&E tables are).

``ae_12hr_dta`` — patients waiting more than 12 hours from decision to admit to admission
("trolley waits") per emergency admission via A&E (types 1, 2 and other). Numerator = "Patients
who have waited 12+ hrs from DTA to admission", denominator = "Emergency admissions via A&E"
(all types). **Quarterly rule:** sum both over the three months.

Quirks: column labels changed over the years ("Other A&E Department" / "Other Department",
"12+ hrs" / "12 hrs+", with/without "Number of"); labels are matched by pattern. Activity of
independent type 3 units is reported under their own codes, not attributed to acute trusts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources import common

DEPTS = ("type1", "type2", "other")
COUNT_COLUMNS = (
    [f"att_{d}" for d in DEPTS]
    + [f"att_booked_{d}" for d in DEPTS]
    + [f"over4_{d}" for d in DEPTS]
    + [f"over4_booked_{d}" for d in DEPTS]
    + ["dta_4_12h", "dta_12h"]
    + [f"emadm_{d}" for d in DEPTS]
    + ["emadm_other_routes"]
)

_DEPT = r"(type ?1|type ?2|other(?: a&e)? department|other)"


def _dept(label: str) -> str:
    label = label.replace(" ", "")
    return "type1" if label == "type1" else "type2" if label == "type2" else "other"


def canonical_column(label: str) -> str | None:
    """Canonical name of a published A&E column (``None`` if not a count we use)."""
    s = common.norm_name(label)
    m = re.match(rf"^(?:number of )?attendances? (?:over|>) ?4 ?(?:hrs|hours) (booked appointments? )?{_DEPT}$", s)
    if m:
        return f"over4_{'booked_' if m.group(1) else ''}{_dept(m.group(2))}"
    m = re.match(rf"^(?:number of )?a&e attendances? (booked appointments? )?{_DEPT}$", s)
    if m:
        return f"att_{'booked_' if m.group(1) else ''}{_dept(m.group(2))}"
    if re.search(r"12 ?(?:\+|hrs?\+|hours?\+|\+ ?hrs|\+ ?hours)", s) and re.search(r"(dta|decision to admit)", s):
        return "dta_12h"
    if re.search(r"4 ?- ?12 ?h", s) and re.search(r"(dta|decision to admit)", s):
        return "dta_4_12h"
    m = re.match(rf"^(?:number of )?emergency admissions via a&e ?-? ?{_DEPT}$", s)
    if m:
        return f"emadm_{_dept(m.group(1))}"
    if re.match(r"^(?:number of )?other emergency admissions", s):
        return "emadm_other_routes"
    return {"org code": "org_code", "org name": "org_name", "parent org": "region"}.get(s)


def _read_one(path: Path | str) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    out = pd.DataFrame(index=raw.index)
    # period: ISO ``period`` (shared copy) preferred over the ``Period`` label (MSitAE-MONTH-YEAR)
    period_cols = [c for c in raw.columns if common.norm_name(c) == "period"]
    if not period_cols:
        raise ValueError(f"{path}: no Period column")
    iso = [c for c in period_cols if raw[c].str.match(r"^\d{4}-\d{2}").all()]
    col = iso[0] if iso else period_cols[0]
    labels = raw[col]
    out["period"] = common.parse_months(labels)
    seen: set[str] = set()
    for c in raw.columns:
        key = canonical_column(c)
        if key is None or key in seen:
            continue
        seen.add(key)
        if key in ("org_code", "org_name", "region"):
            out[key] = raw[c].astype("string").str.strip()
        else:
            out[key], _ = common.to_number(raw[c])
    for key in COUNT_COLUMNS:
        if key not in out:
            if key.startswith(("att_booked", "over4_booked")):
                out[key] = 0.0  # files before booked appointments were split out
            else:
                out[key] = float("nan")
    for key in ("org_name", "region"):
        if key not in out:
            out[key] = pd.Series(pd.NA, index=raw.index, dtype="string")
    out["org_code"] = out["org_code"].str.upper()
    out = out[~common.is_total_row(out["org_code"], out["org_name"])]
    return out


def read_ae(paths: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """Monthly provider rows: ``period, org_code, org_name, region`` + ``COUNT_COLUMNS``.

    Accepts one or several files (the published monthly CSVs or the stacked shared copy).
    National total rows are dropped; a provider-month appearing twice (a revised file read after
    the original) keeps the last occurrence.
    """
    df = common.read_each(paths, _read_one).drop_duplicates(["period", "org_code"], keep="last")
    cols = ["period", "org_code", "org_name", "region"] + COUNT_COLUMNS
    return df[cols].sort_values(["period", "org_code"]).reset_index(drop=True)


def quarter_totals(monthly: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Counts summed over the months of ``quarter`` per (successor-mapped) provider, with
    ``attendances``, ``within_4h``, ``emergency_admissions_ae`` and ``months``."""
    df = common.quarter_rows(monthly, quarter, "A&E", successors)
    agg = df.groupby("trust_code", as_index=False)[COUNT_COLUMNS].sum(min_count=1)
    agg["months"] = df.groupby("trust_code")["period"].nunique().to_numpy()
    att = [f"att_{d}" for d in DEPTS] + [f"att_booked_{d}" for d in DEPTS]
    over = [f"over4_{d}" for d in DEPTS] + [f"over4_booked_{d}" for d in DEPTS]
    agg["attendances"] = agg[att].sum(axis=1, min_count=1)
    agg["over_4h"] = agg[over].sum(axis=1, min_count=1)
    agg["within_4h"] = agg["attendances"] - agg["over_4h"]
    agg["emergency_admissions_ae"] = agg[[f"emadm_{d}" for d in DEPTS]].sum(axis=1, min_count=1)
    agg["type1_attendances"] = agg[["att_type1", "att_booked_type1"]].sum(axis=1, min_count=1)
    return agg


def ae_observations(monthly: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``ae_4hr`` and ``ae_12hr_dta`` observations of one quarter (contract layout)."""
    agg = quarter_totals(monthly, quarter, successors)
    return pd.concat(
        [
            common.ratio_observations(agg, quarter, "ae_4hr", "within_4h", "attendances"),
            common.ratio_observations(agg, quarter, "ae_12hr_dta", "dta_12h", "emergency_admissions_ae"),
        ],
        ignore_index=True,
    )


def type1_providers(monthly: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None) -> set[str]:
    """Codes (successor-mapped) with type 1 attendances (incl. booked) in the quarter."""
    agg = quarter_totals(monthly, quarter, successors)
    return set(agg.loc[agg["type1_attendances"] > 0, "trust_code"].astype(str))


def national_month(monthly: pd.DataFrame, month) -> dict[str, float]:
    """England totals of one month (all providers): attendances, 4-hour share, 12 h DTA waits."""
    m = monthly[monthly["period"] == common.parse_month(month)]
    att = m[[c for c in COUNT_COLUMNS if c.startswith("att_")]].to_numpy().sum()
    over = m[[c for c in COUNT_COLUMNS if c.startswith("over4_")]].to_numpy().sum()
    return {
        "attendances": float(att),
        "type1_attendances": float(m[["att_type1", "att_booked_type1"]].to_numpy().sum()),
        "within_4h_share": float(1 - over / att),
        "dta_12h": float(m["dta_12h"].sum()),
    }


__all__ = [
    "read_ae",
    "ae_observations",
    "type1_providers",
    "quarter_totals",
    "national_month",
    "canonical_column",
    "COUNT_COLUMNS",
]
