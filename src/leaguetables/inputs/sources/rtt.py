"""Referral to Treatment (RTT) waiting times — monthly full CSV extract (NHS England).

Publication: NHS England, "Consultant-led Referral to Treatment Waiting Times", monthly full CSV
extract ``<yyyymmdd>-RTT-<Month>-<Year>-full-extract.csv``: one row per provider × commissioner ×
RTT part × treatment function, with 105 week bands ``Gt 00 To 01 Weeks SUM 1`` … ``Gt 104 Weeks
SUM 1``, ``Total``, ``Patients with unknown clock start date`` and ``Total All``. The shared copy
``rtt_provider_tfc_weekbands_2026_04.csv`` is the April 2026 extract already summed over
commissioners (same columns without the commissioner keys); ``read_rtt`` sums over commissioners
when they are present, so both read the same way.

RTT parts: ``Part_1A`` completed admitted, ``Part_1B`` completed non-admitted, ``Part_2``
incomplete pathways (the waiting list), ``Part_2A`` incomplete with a decision to admit,
``Part_3`` new clock starts. Treatment function ``C_999`` is the provider total (not added to
the specialty rows).

Metrics (``Part_2``, provider total ``C_999``; the denominator is the waiting list with a known
clock start = the sum of the week bands, as in NHS England's headline percentage):

* ``rtt_18wk`` — incomplete pathways waiting 18 weeks or less (bands up to ``Gt 17 To 18``) /
  waiting list. Constitutional standard 92%; 2025-26 target 65% nationally by March 2026.
* ``rtt_52wk`` — incomplete pathways waiting more than 52 weeks (bands from ``Gt 52 To 53``) /
  waiting list. Target: under 1% of the list by March 2026.

**Quarterly rule:** the waiting list is a month-end snapshot: the quarter is represented by its
last month (June for Q1). Only April 2026 is available, so RTT does not feed 2024-25-Q4;
``rtt_observations(..., allow_earlier=True)`` uses the latest month of the quarter when its last
month is not published (for testing the format).

Quirks: ``Total`` is blank for ``Part_2``/``Part_2A`` in the published extract (the week bands
carry the counts); if a provider has no ``C_999`` row its specialty rows are summed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources.common import (
    map_codes,
    norm_name,
    parse_month,
    parse_months,
    ratio_observations,
    snapshot_month,
    to_number,
)

_BAND = re.compile(r"^gt (\d+) to (\d+) weeks sum 1$")
_TOP = re.compile(r"^gt (\d+) weeks sum 1$")
_COUNT_LABELS = {"total", "patients with unknown clock start date", "total all"}


def _bands(columns) -> dict[str, tuple[int, int | None]]:
    out: dict[str, tuple[int, int | None]] = {}
    for c in columns:
        s = norm_name(c)
        m = _BAND.match(s)
        if m:
            out[c] = (int(m.group(1)), int(m.group(2)))
            continue
        m = _TOP.match(s)
        if m:
            out[c] = (int(m.group(1)), None)
    return out


def read_rtt(path: Path | str) -> pd.DataFrame:
    """Provider × part × treatment-function rows: ``period, org_code, org_name, part, tfc,
    within_18, over_18, over_52, waiting_known, unknown_clock_start`` (summed over commissioners)."""
    header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    text_cols = [c for c in header if not (_bands([c]) or norm_name(c) in _COUNT_LABELS)]
    raw = pd.read_csv(
        path, dtype={c: str for c in text_cols}, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
    )
    cols = {norm_name(c): c for c in raw.columns}
    need = {"period", "provider org code", "rtt part type", "treatment function code"}
    if not need <= set(cols):
        raise ValueError(f"{path}: needs columns {sorted(need)}")
    bands = _bands(raw.columns)
    if not bands:
        raise ValueError(f"{path}: no week-band columns ('Gt 00 To 01 Weeks SUM 1' …)")
    values = pd.DataFrame({c: to_number(raw[c])[0].fillna(0.0) for c in bands}, index=raw.index)
    out = pd.DataFrame(
        {
            "period": parse_months(raw[cols["period"]]),
            "org_code": raw[cols["provider org code"]].astype("string").str.strip().str.upper(),
            "org_name": (
                raw[cols["provider org name"]].astype("string").str.strip() if "provider org name" in cols else pd.NA
            ),
            "part": raw[cols["rtt part type"]].astype("string").str.strip().str.upper(),
            "tfc": raw[cols["treatment function code"]].astype("string").str.strip().str.upper(),
        }
    )
    out["within_18"] = values[[c for c, (lo, hi) in bands.items() if hi is not None and hi <= 18]].sum(axis=1)
    out["over_18"] = values[[c for c, (lo, hi) in bands.items() if lo >= 18]].sum(axis=1)
    out["over_52"] = values[[c for c, (lo, hi) in bands.items() if lo >= 52]].sum(axis=1)
    out["waiting_known"] = values.sum(axis=1)
    unknown = cols.get("patients with unknown clock start date")
    out["unknown_clock_start"] = to_number(raw[unknown])[0].fillna(0.0) if unknown else 0.0
    keys = ["period", "org_code", "part", "tfc"]
    num = ["within_18", "over_18", "over_52", "waiting_known", "unknown_clock_start"]
    agg = out.groupby(keys, as_index=False).agg(org_name=("org_name", "first"), **{c: (c, "sum") for c in num})
    return agg[keys[:2] + ["org_name"] + keys[2:] + num]


def provider_totals(rtt: pd.DataFrame, part: str = "PART_2") -> pd.DataFrame:
    """Provider totals of one RTT part: the ``C_999`` row, or the sum of specialties if absent."""
    df = rtt[rtt["part"] == part.upper()]
    has_total = df["tfc"].eq("C_999").groupby([df["period"], df["org_code"]]).transform("any")
    df = df[df["tfc"].eq("C_999") | ~has_total]
    return df.groupby(["period", "org_code"], as_index=False)[
        ["within_18", "over_18", "over_52", "waiting_known", "unknown_clock_start"]
    ].sum()


def rtt_observations(
    rtt: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None, allow_earlier: bool = False
) -> pd.DataFrame:
    """``rtt_18wk`` and ``rtt_52wk`` observations (snapshot of the quarter's last month)."""
    month = snapshot_month(rtt["period"].unique(), quarter, allow_earlier)
    tot = provider_totals(rtt)
    tot = tot[tot["period"] == month].copy()
    tot["trust_code"] = map_codes(tot["org_code"], successors)
    agg = tot.groupby("trust_code", as_index=False)[["within_18", "over_52", "waiting_known"]].sum()
    return pd.concat(
        [
            ratio_observations(agg, quarter, "rtt_18wk", "within_18", "waiting_known"),
            ratio_observations(agg, quarter, "rtt_52wk", "over_52", "waiting_known"),
        ],
        ignore_index=True,
    )


def national_month(rtt: pd.DataFrame, month) -> dict[str, float]:
    tot = provider_totals(rtt)
    tot = tot[tot["period"] == parse_month(month)]
    wl = tot["waiting_known"].sum()
    return {
        "waiting_list": float(wl),
        "within_18_share": float(tot["within_18"].sum() / wl),
        "over_52": float(tot["over_52"].sum()),
    }


__all__ = ["read_rtt", "provider_totals", "rtt_observations", "national_month"]
