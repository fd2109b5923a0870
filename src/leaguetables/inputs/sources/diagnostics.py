"""Diagnostics waiting times — DM01 monthly web file, sheet "Provider" (NHS England).

Publication: NHS England, "Monthly Diagnostics Waiting Times and Activity" (DM01), web file
``Monthly-Diagnostics-Web-File-Provider-<Month>-<Year>.xls``: sheet "Provider" (all 15 key
tests together) and "Provider by Test". Columns: ``Regional Team Code/Name, Provider Code/Name,
Total Waiting List, Number waiting 6+ Weeks, Number waiting 13+ Weeks, Percentage waiting 6+
weeks``, week bands ``0 <01 weeks … 13+ weeks``, activity columns. The shared copy stacks 12
months and adds an ISO ``period`` column; a single published sheet has no period column — pass
``period=`` to ``read_dm01``.

Metric ``diag_6wk`` — share of the diagnostic waiting list (patients still waiting for one of the
15 key tests at month end) who have waited 6 weeks or more: numerator = Number waiting 6+ Weeks,
denominator = Total Waiting List. Lower is better; the constitutional standard is 1%.

**Quarterly rule:** the waiting list is a month-end snapshot, so the quarter is represented by
the snapshot at the end of its **last month** (March for Q4) — not a sum or mean of months.

Quirks: England total rows (``-`` / ``TOTAL`` / ``England``) are dropped; column labels differ
in case between years ("Number waiting 6+ Weeks" / "6+ weeks") and are matched case-insensitively;
``*`` marks suppressed cells, ``-`` not applicable. When the "Provider by Test" sheet is read,
only its ``Total`` rows are used (the 15 tests plus Total would double count).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources import common


def canonical_column(label: str) -> str | None:
    s = common.norm_name(label)
    if s == "period":
        return "period"
    if s in ("provider code", "org code", "provider org code"):
        return "org_code"
    if s in ("provider name", "org name", "provider org name"):
        return "org_name"
    if s in ("regional team code", "region code", "commissioning region code"):
        return "region_code"
    if s in ("diagnostic id", "diagnostic test id"):
        return "test_id"
    if s in ("diagnostic test name", "diagnostic test"):
        return "test_name"
    if re.match(r"^total waiting list", s):
        return "waiting_list"
    if re.match(r"^number waiting (6\+|six or more|over 6) ?weeks?", s):
        return "waiting_6plus"
    if re.match(r"^number waiting (13\+|thirteen or more|over 13) ?weeks?", s):
        return "waiting_13plus"
    return None


def _read_one(path: Path | str, period=None) -> pd.DataFrame:
    raw = common.read_renamed(path, canonical_column)
    missing = {"org_code", "waiting_list", "waiting_6plus"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    out = pd.DataFrame(index=raw.index)
    if period is not None:
        out["period"] = common.parse_month(period)
    elif "period" in raw:
        out["period"] = common.parse_months(raw["period"])
    else:
        raise ValueError(f"{path}: no period column; pass period='YYYY-MM'")
    out["org_code"] = raw["org_code"].astype("string").str.strip().str.upper()
    out["org_name"] = raw["org_name"].astype("string").str.strip() if "org_name" in raw else pd.NA
    out["region_code"] = raw["region_code"].astype("string").str.strip() if "region_code" in raw else pd.NA
    out["test_name"] = raw["test_name"].astype("string").str.strip() if "test_name" in raw else pd.NA
    supp = pd.Series(False, index=raw.index)
    for col in ("waiting_list", "waiting_6plus", "waiting_13plus"):
        if col in raw:
            out[col], s = common.to_number(raw[col])
            supp |= s
        else:
            out[col] = float("nan")
    out["suppressed"] = supp
    out = out[~common.is_total_row(out["org_code"], out["org_name"])]
    if "test_name" in raw:
        is_total = out["test_name"].str.upper().eq("TOTAL").fillna(False)
        if is_total.any():
            out = out[is_total]
    return out


def read_dm01(paths: Path | str | Iterable[Path | str], period=None) -> pd.DataFrame:
    """Provider rows ``period, org_code, org_name, region_code, waiting_list, waiting_6plus,
    waiting_13plus, suppressed`` (one row per provider-month, summed over tests if needed)."""
    df = common.read_each(paths, lambda path: _read_one(path, period))
    return common.sum_by(
        df,
        ["period", "org_code"],
        ["waiting_list", "waiting_6plus", "waiting_13plus"],
        any_flags=["suppressed"],
        first=["org_name", "region_code"],
    )


def dm01_observations(
    dm01: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None, allow_earlier: bool = False
) -> pd.DataFrame:
    """``diag_6wk`` observations: month-end snapshot of the last month of ``quarter``."""
    month = common.snapshot_month(dm01["period"].unique(), quarter, allow_earlier)
    df = dm01[dm01["period"] == month].copy()
    df["trust_code"] = common.map_codes(df["org_code"], successors)
    agg = common.sum_by(df, "trust_code", ["waiting_list", "waiting_6plus"], all_flags=["suppressed"])
    return common.ratio_observations(agg, quarter, "diag_6wk", "waiting_6plus", "waiting_list", "suppressed")


def national_month(dm01: pd.DataFrame, month) -> dict[str, float]:
    m = dm01[dm01["period"] == common.parse_month(month)]
    return {
        "waiting_list": float(m["waiting_list"].sum()),
        "waiting_6plus": float(m["waiting_6plus"].sum()),
        "share_6plus": float(m["waiting_6plus"].sum() / m["waiting_list"].sum()),
    }


__all__ = ["read_dm01", "dm01_observations", "national_month", "canonical_column"]
