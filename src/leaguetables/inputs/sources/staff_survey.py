"""NHS Staff Survey — organisation results, themes and People Promise elements (NHS England).

Publication: NHS Staff Survey (Survey Coordination Centre for NHS England), "detailed
spreadsheets — organisational results", sheets THEMES and PEOPLE PROMISE ELEMENTS: one row per
organisation (``ODS code, Organisation name, Benchmarking group, Region, ICS, Weighting``) with,
for each theme / sub-score, the score on a 0–10 scale and the number of responses (``base_n``).
The shared copy ``staff_survey_nss2024_org_themes.csv`` joins both sheets for NSS 2024.

Metrics (mean scores — no numerator/denominator, the score goes in ``value``):

* ``staff_engagement`` — "Staff Engagement" theme score (mean of the motivation, involvement and
  advocacy sub-scores; NOF metric "NHS staff survey engagement theme sub-score").
* ``staff_raising_concerns`` — People Promise element 3 "We each have a voice that counts",
  sub-score 3.2 "Raising concerns" (column ``PP3_2 - score``; NOF "NHS Staff survey – raising
  concerns sub-score").

**Quarterly rule:** the survey is annual (fieldwork October–November, results published in
March). A quarter uses the latest survey published by its end: quarters ending March–December of
year *Y* use survey *Y−1* (``2024-25-Q4`` and ``2025-26-Q1``–``Q3`` → NSS 2024). Organisations
that merged: successor score = mean of the predecessors' scores weighted by their numbers of
responses.

Quirks: the Isle of Wight NHS Trust is reported as two sectors (``R1F1`` acute sector, ``R1F2``
ambulance sector); the acute-sector row stands for ``R1F`` (the trust is classified acute), the
ambulance sector is not used. Blank or ``*`` scores (fewer than 11 responses) are suppressed.
Theme labels change between years ("Staff engagement" / "Staff Engagement"); matched
case-insensitively. Weighting is "Occupation Group" for trusts (unweighted for ICBs/CSUs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.sources.common import (
    NoDataForQuarter,
    make_observations,
    map_codes,
    norm_name,
    parse_quarter,
    quarter_end,
    to_number,
)

#: metric id → pattern of its score column (normalised label)
SCORE_COLUMNS = {
    "staff_engagement": r"^staff engagement( theme)? ?- ?score$",
    "staff_raising_concerns": r"^(pp3_2|raising concerns) ?- ?score$",
}

#: ``Benchmarking group`` → (trust_type, trust_subtype)
BENCHMARK_TYPES = {
    "acute and acute & community trusts": ("acute", "Acute and Acute & Community"),
    "acute specialist trusts": ("acute", "Specialist"),
    "mental health & learning disability and mental health, learning disability & community trusts": (
        "mental_health_community",
        "Mental Health and Learning Disability",
    ),
    "community trusts": ("mental_health_community", "Community"),
    "ambulance trusts": ("ambulance", "Ambulance"),
}


def survey_year_for_quarter(quarter: str) -> int:
    """Latest survey published (in March) by the end of ``quarter``."""
    end = quarter_end(quarter)
    return end.year - 1 if end.month >= 3 else end.year - 2


def read_nss(path: Path | str, survey_year: int | None = None) -> pd.DataFrame:
    """Organisation rows: ``org_code`` (sector rows mapped, see docstring), ``ods_code``,
    ``org_name``, ``benchmarking_group``, ``region`` and for each metric ``<metric>``,
    ``<metric>_n``, ``<metric>_suppressed``. ``attrs["survey_year"]`` from ``survey_year`` or the
    file name (``nss2024``)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    cols = {norm_name(c): c for c in raw.columns}
    need = {"ods code", "organisation name", "benchmarking group"}
    if not need <= set(cols):
        raise ValueError(f"{path}: needs columns {sorted(need)}")
    out = pd.DataFrame(index=raw.index)
    out["ods_code"] = raw[cols["ods code"]].astype("string").str.strip().str.upper()
    out["org_name"] = raw[cols["organisation name"]].astype("string").str.strip()
    out["benchmarking_group"] = raw[cols["benchmarking group"]].astype("string").str.strip()
    out["region"] = raw[cols["region"]].astype("string").str.strip() if "region" in cols else pd.NA
    for metric, pattern in SCORE_COLUMNS.items():
        label = next((c for n, c in cols.items() if re.match(pattern, n)), None)
        if label is None:
            raise ValueError(f"{path}: no column for {metric} (pattern {pattern})")
        out[metric], supp = to_number(raw[label])
        stem = re.sub(r"\s*-\s*score$", "", label, flags=re.I).strip()
        base = next((c for n, c in cols.items() if n == norm_name(f"{stem} base_n")), None)
        out[f"{metric}_n"] = to_number(raw[base])[0] if base else np.nan
        out[f"{metric}_suppressed"] = supp | out[metric].isna()
    # sector rows: "(acute sector)" row stands for the trust (R1F1 -> R1F)
    sector = out["org_name"].str.contains(r"\(acute sector\)", case=False, regex=True).fillna(False)
    out["org_code"] = out["ods_code"]
    out.loc[sector, "org_code"] = out.loc[sector, "ods_code"].str.replace(r"\d$", "", regex=True)
    out.loc[sector, "org_name"] = out.loc[sector, "org_name"].str.replace(
        r"\s*\(acute sector\)", "", case=False, regex=True
    )
    if survey_year is None:
        m = re.search(r"(?:nss|survey)[_\- ]?(20\d{2}|\d{2})", Path(path).name, flags=re.I)
        survey_year = (int(m.group(1)) + (2000 if len(m.group(1)) == 2 else 0)) if m else None
    out.attrs["survey_year"] = survey_year
    return out.reset_index(drop=True)


def nss_observations(
    nss: pd.DataFrame, quarter: str, successors: Mapping[str, str] | None = None, *, check_year: bool = True
) -> pd.DataFrame:
    """``staff_engagement`` and ``staff_raising_concerns`` observations (``value`` = score)."""
    parse_quarter(quarter)
    year = nss.attrs.get("survey_year")
    if check_year and year is not None and year != survey_year_for_quarter(quarter):
        raise NoDataForQuarter(
            f"staff survey {year} does not stand for {quarter} (needs the {survey_year_for_quarter(quarter)} survey)"
        )
    df = nss.copy()
    df["trust_code"] = map_codes(df["org_code"], successors)
    parts = []
    for metric in SCORE_COLUMNS:
        rows = []
        for code, g in df.groupby("trust_code"):
            ok = g[~g[f"{metric}_suppressed"]]
            if ok.empty:
                rows.append((code, np.nan, True))
                continue
            w = ok[f"{metric}_n"].to_numpy(dtype=float)
            v = ok[metric].to_numpy(dtype=float)
            value = float(np.average(v, weights=w)) if len(ok) > 1 and np.all(w > 0) else float(v.mean())
            rows.append((code, value, False))
        frame = pd.DataFrame(rows, columns=["trust_code", "value", "suppressed"])
        parts.append(make_observations(frame, quarter, metric))
    return pd.concat(parts, ignore_index=True)


def organisation_types(nss: pd.DataFrame) -> pd.DataFrame:
    """``org_code, trust_type, trust_subtype`` from the benchmarking group."""
    # a list comprehension, not Series.map: with pyarrow installed a "string" column maps tuples to arrow lists
    mapped = [BENCHMARK_TYPES.get(v) for v in nss["benchmarking_group"].fillna("").astype(str).str.lower()]
    out = pd.DataFrame(
        {
            "org_code": nss["org_code"].astype(str).to_numpy(),
            "trust_type": [m[0] if isinstance(m, tuple) else None for m in mapped],
            "trust_subtype": [m[1] if isinstance(m, tuple) else None for m in mapped],
        }
    )
    return out.dropna(subset=["trust_type"]).drop_duplicates("org_code").reset_index(drop=True)


def organisation_names(nss: pd.DataFrame) -> pd.Series:
    """code → organisation name as printed in the survey."""
    d = nss.drop_duplicates("org_code")
    return pd.Series(d["org_name"].to_numpy(), index=d["org_code"].astype(str).to_numpy())


__all__ = [
    "read_nss",
    "nss_observations",
    "organisation_types",
    "organisation_names",
    "survey_year_for_quarter",
    "SCORE_COLUMNS",
    "BENCHMARK_TYPES",
]
