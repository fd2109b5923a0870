"""ODS trust register (``etr.csv``), successors of merged trusts, and the contract's trust table.

Publication: NHS England Organisation Data Service, "NHS Trusts and sites" → ``etr.csv`` (no
header row; 27 columns of which 12 are always empty: ``Organisation Code, Name, National
Grouping (NHS England region Y56–Y63), High Level Health Geography (ICB), Address 1–5, Postcode,
Open Date, Close Date, …, Contact Telephone, …, Amended Record Indicator, …, GOR Code, …``).
The shared copy ``ods_etr_nhs_trusts_2026-06.csv`` has a header and the 15 non-empty columns;
``read_ods`` reads both.

Trust type is not in ODS: ``build_trusts`` takes it from the NHS Staff Survey benchmarking
group (acute / acute specialist / mental health & LD / community / ambulance) and, for
organisations not in the survey, the sickness-absence ``ORG_TYPE``. Subtypes: ``Acute and Acute
& Community``, ``Specialist`` (acute); ``Mental Health and Learning Disability``, ``Community``,
``Care Trust`` (mental_health_community); ``Ambulance``.

Successors: the etr file gives close dates but not successors (ODS publishes those separately in
``succ.csv``, not among the inputs). ``SUCCESSORS`` is a curated table of the closures in the
register (public merger announcements; the successor is the surviving or new trust; for splits
the main successor, flagged ``split``), kept as data in ``config/sources/ods-successors.yaml``.
``successor_map(register, as_of)`` keeps the trusts closed on or before ``as_of`` and follows chains (Trafford → Central Manchester → Manchester University);
``read_succ`` reads an ODS ``succ.csv`` to extend or override it. Adapters sum numerators and
denominators of predecessors into the successor (mean scores: respondent-weighted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from leaguetables.config import load_successors
from leaguetables.inputs.sources.common import TRUST_COLUMNS

#: Column names of the published (header-less, 27-column) etr.csv.
ETR_COLUMNS_27 = [
    "org_code",
    "name",
    "national_grouping",
    "high_level_health_geography",
    "address_line_1",
    "address_line_2",
    "address_line_3",
    "address_line_4",
    "address_line_5",
    "postcode",
    "open_date",
    "close_date",
    "null_13",
    "null_14",
    "null_15",
    "null_16",
    "null_17",
    "contact_telephone",
    "null_19",
    "null_20",
    "null_21",
    "amended_record_indicator",
    "null_23",
    "gor_code",
    "null_25",
    "null_26",
    "null_27",
]
ETR_COLUMNS = [c for c in ETR_COLUMNS_27 if not c.startswith("null_")]

REGIONS = {
    "Y56": "London",
    "Y58": "South West",
    "Y59": "South East",
    "Y60": "Midlands",
    "Y61": "East of England",
    "Y62": "North West",
    "Y63": "North East and Yorkshire",
}

#: predecessor → (successor or None, effective date, note), from ``config/sources/ods-successors.yaml``. ``split`` =
#: services divided between several trusts; the main successor is given.
SUCCESSORS: dict[str, tuple[str | None, str, str]] = load_successors("ods-successors")


def _date(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip().replace({"": pd.NA})
    return pd.to_datetime(text, format="%Y%m%d", errors="coerce")


def read_ods(path: Path | str) -> pd.DataFrame:
    """Register rows ``org_code, name, national_grouping, high_level_health_geography, postcode,
    open_date, close_date, gor_code, region`` (dates as Timestamps)."""
    first = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=0, encoding="utf-8-sig")
    header = [c.strip().lower() for c in first.columns]
    if header and header[0] in ("org_code", "organisation code", "code"):
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        raw.columns = [c.strip().lower().replace(" ", "_") for c in raw.columns]
        raw = raw.rename(columns={"organisation_code": "org_code", "code": "org_code"})
    else:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, encoding="utf-8-sig")
        if raw.shape[1] == 27:
            raw.columns = ETR_COLUMNS_27
        elif raw.shape[1] == 15:
            raw.columns = ETR_COLUMNS
        else:
            raise ValueError(f"{path}: expected the 27-column ODS etr layout, got {raw.shape[1]} columns")
    out = pd.DataFrame(
        {
            "org_code": raw["org_code"].astype("string").str.strip().str.upper(),
            "name": raw["name"].astype("string").str.strip(),
            "national_grouping": raw["national_grouping"].astype("string").str.strip().replace({"": pd.NA}),
            "high_level_health_geography": raw["high_level_health_geography"].astype("string").str.strip(),
            "postcode": raw["postcode"].astype("string").str.strip() if "postcode" in raw else pd.NA,
            "open_date": _date(raw["open_date"]),
            "close_date": _date(raw["close_date"]),
            "gor_code": raw["gor_code"].astype("string").str.strip() if "gor_code" in raw else pd.NA,
        }
    )
    out["region"] = out["national_grouping"].map(REGIONS)
    return out.sort_values("org_code").reset_index(drop=True)


def read_succ(path: Path | str) -> dict[str, tuple[str | None, str, str]]:
    """ODS ``succ.csv`` (predecessor code, successor code, reason, effective date YYYYMMDD, …;
    with or without a header) → entries in the ``SUCCESSORS`` format."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, encoding="utf-8-sig")
    if not raw.empty and not any(ch.isdigit() for ch in str(raw.iloc[0, 0])) and len(str(raw.iloc[0, 0])) > 6:
        raw = raw.iloc[1:]  # header row
    out = {}
    for _, row in raw.iterrows():
        old, new = str(row.iloc[0]).strip().upper(), str(row.iloc[1]).strip().upper()
        date = next((str(v) for v in row.iloc[2:] if str(v).strip().isdigit() and len(str(v).strip()) == 8), "")
        eff = f"{date[:4]}-{date[4:6]}-{date[6:]}" if date else ""
        reason = str(row.iloc[2]).strip() if raw.shape[1] > 2 else ""
        out[old] = (new or None, eff, f"ODS succ.csv ({reason})" if reason else "ODS succ.csv")
    return out


def successor_map(
    register: pd.DataFrame, as_of, extra: Mapping[str, tuple] | None = None, curated: bool = True
) -> dict[str, str]:
    """Predecessor → final successor for organisations closed on or before ``as_of``.

    Entries: the curated ``SUCCESSORS`` (unless ``curated=False``) updated with ``extra`` (e.g.
    ``read_succ``). The close date comes from the register (else the day before the effective
    date); chains are followed to the last successor; closures without a known successor are
    left out.
    """
    as_of = pd.Timestamp(as_of)
    table = dict(SUCCESSORS) if curated else {}
    if extra:
        table.update(extra)
    closed = dict(zip(register["org_code"].astype(str), register["close_date"]))
    direct = {}
    for old, (new, eff, _note) in table.items():
        if not new:
            continue
        if old in closed:
            close = closed[old]
            if pd.isna(close):
                continue  # still open in the register
        else:
            close = pd.Timestamp(eff) - pd.Timedelta(days=1) if eff else pd.NaT
        if pd.notna(close) and close <= as_of:
            direct[old] = new
    final = {}
    for old in direct:
        seen, code = {old}, direct[old]
        while code in direct and code not in seen:
            seen.add(code)
            code = direct[code]
        final[old] = code
    return final


def predecessors(successors: Mapping[str, str]) -> dict[str, list[str]]:
    """Successor → sorted predecessor codes."""
    out: dict[str, list[str]] = {}
    for old, new in successors.items():
        out.setdefault(new, []).append(old)
    return {k: sorted(v) for k, v in out.items()}


_SMALL = {"and", "of", "the", "for", "in", "on", "at", "upon", "with"}
_UPPER = {"NHS", "UK", "ICB", "CIC", "LLP", "II"}


def title_name(name: str) -> str:
    """``ROYAL FREE LONDON NHS FOUNDATION TRUST`` → ``Royal Free London NHS Foundation Trust``."""
    words = str(name).split()
    out = []
    for i, w in enumerate(words):
        lw = w.lower()
        if w.upper() in _UPPER:
            out.append(w.upper())
        elif i > 0 and lw in _SMALL:
            out.append(lw)
        else:
            out.append("-".join(p[:1].upper() + p[1:] for p in lw.split("-")))
    return " ".join(out)


def open_at(register: pd.DataFrame, as_of) -> pd.DataFrame:
    """Organisations open on ``as_of`` (opened by then, not closed on or before it)."""
    as_of = pd.Timestamp(as_of)
    mask = (register["open_date"].isna() | (register["open_date"] <= as_of)) & (
        register["close_date"].isna() | (register["close_date"] > as_of)
    )
    return register[mask]


def build_trusts(
    register: pd.DataFrame, as_of, types: Sequence[pd.DataFrame] = (), names: Iterable[pd.Series] = ()
) -> pd.DataFrame:
    """Contract trust table of the trusts open at ``as_of`` whose type is known.

    ``types``: frames ``org_code, trust_type, trust_subtype`` in priority order (staff survey
    benchmarking group, then sickness ``ORG_TYPE``); ``names``: code → name series in priority
    order (the ODS name, title-cased, is the fallback). Region = NHS England region of the ODS
    national grouping.
    """
    reg = open_at(register, as_of).copy()
    reg["trust_type"] = pd.Series(pd.NA, index=reg.index, dtype="string")
    reg["trust_subtype"] = pd.Series(pd.NA, index=reg.index, dtype="string")
    for frame in types:
        lookup = frame.drop_duplicates("org_code").set_index("org_code")
        todo = reg["trust_type"].isna() & reg["org_code"].isin(lookup.index)
        codes = reg.loc[todo, "org_code"]
        reg.loc[todo, "trust_type"] = lookup.loc[codes, "trust_type"].to_numpy()
        reg.loc[todo, "trust_subtype"] = lookup.loc[codes, "trust_subtype"].to_numpy()
    reg["trust_name"] = pd.Series(pd.NA, index=reg.index, dtype="string")
    for series in names:
        series = series[~series.index.duplicated()].dropna()
        todo = reg["trust_name"].isna() & reg["org_code"].isin(series.index)
        reg.loc[todo, "trust_name"] = series.loc[reg.loc[todo, "org_code"]].to_numpy()
    fallback = reg["trust_name"].isna()
    reg.loc[fallback, "trust_name"] = reg.loc[fallback, "name"].map(title_name)
    out = reg[reg["trust_type"].notna()].rename(columns={"org_code": "trust_code"})
    out = out.assign(region=out["region"].fillna("Unknown"))
    return out[TRUST_COLUMNS].astype("str").sort_values("trust_code").reset_index(drop=True)


__all__ = [
    "read_ods",
    "read_succ",
    "successor_map",
    "predecessors",
    "build_trusts",
    "open_at",
    "title_name",
    "SUCCESSORS",
    "REGIONS",
    "ETR_COLUMNS",
    "ETR_COLUMNS_27",
]
