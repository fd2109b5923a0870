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
the main successor, flagged ``split``). ``successor_map(register, as_of)`` keeps the trusts closed
on or before ``as_of`` and follows chains (Trafford → Central Manchester → Manchester University);
``read_succ`` reads an ODS ``succ.csv`` to extend or override it. Adapters sum numerators and
denominators of predecessors into the successor (mean scores: respondent-weighted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

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

#: predecessor → (successor or None, effective date, note). ``split`` = services divided between
#: several trusts; the main successor is given.
SUCCESSORS: dict[str, tuple[str | None, str, str]] = {
    # 2024–2026
    "RAP": ("RAL", "2025-01-01", "North Middlesex University Hospital joined Royal Free London"),
    "RRP": ("G6V2S", "2024-11-01", "BEH and Camden & Islington MH trusts formed North London NHS FT"),
    "RY9": ("RAX", "2024-11-01", "Hounslow & Richmond Community merged with Kingston: Kingston and Richmond NHS FT"),
    "R1C": ("RW1", "2024-10-01", "Solent joined Southern Health: Hampshire and Isle of Wight Healthcare NHS FT"),
    "RYK": ("RNA", "2024-10-01", "split: Dudley Integrated Health and Care services to Dudley Group (main) and others"),
    "RVJ": ("RA7", "2026-07-01", "North Bristol merged with UH Bristol and Weston (RA7 renamed Bristol NHS FT)"),
    "RNK": (None, "2026-04-01", "Tavistock and Portman: successor not in these inputs"),
    "RY2": (None, "2026-04-01", "Bridgewater Community Healthcare: successor not in these inputs"),
    "RYV": (None, "2026-04-01", "Cambridgeshire Community Services: successor not in these inputs"),
    # 2019–2023
    "RVY": (
        "RBN",
        "2023-07-01",
        "Southport and Ormskirk merged with St Helens and Knowsley: Mersey and West Lancashire",
    ),
    "RA4": ("RH5", "2023-04-01", "Yeovil District Hospital merged into Somerset NHS FT"),
    "RBZ": ("RH8", "2022-04-01", "Northern Devon merged with RD&E: Royal Devon University Healthcare"),
    "RW6": (
        "RM3",
        "2021-10-01",
        "split: Pennine Acute to Northern Care Alliance (main) and Manchester University (North Manchester)",
    ),
    "RTV": ("RW4", "2021-06-01", "split: North West Boroughs to Mersey Care (main) and Greater Manchester MH"),
    "RXH": ("RYR", "2021-04-01", "Brighton and Sussex merged with Western Sussex: University Hospitals Sussex"),
    "RT3": ("RJ1", "2021-02-01", "Royal Brompton & Harefield joined Guy's and St Thomas'"),
    "RD3": ("R0D", "2020-10-01", "Poole merged with Royal Bournemouth: University Hospitals Dorset"),
    "RDZ": ("R0D", "2020-10-01", "Royal Bournemouth merged with Poole: University Hospitals Dorset"),
    "RA3": ("RA7", "2020-04-01", "Weston Area Health merged with University Hospitals Bristol"),
    "RBA": ("RH5", "2020-04-01", "Taunton and Somerset merged with Somerset Partnership: Somerset NHS FT"),
    "RQ8": ("RAJ", "2020-04-01", "Mid Essex merged into Mid and South Essex"),
    "RDD": ("RAJ", "2020-04-01", "Basildon and Thurrock merged into Mid and South Essex"),
    "RC1": ("RC9", "2020-04-01", "Bedford merged with Luton and Dunstable: Bedfordshire Hospitals"),
    "R0C": (None, "2020-03-27", "Project Nightingale: dissolved"),
    "RNL": (
        "RNN",
        "2019-10-01",
        "North Cumbria University Hospitals merged with Cumbria Partnership: North Cumbria Integrated Care",
    ),
    "RQ6": ("REM", "2019-10-01", "Royal Liverpool and Broadgreen merged with Aintree: Liverpool University Hospitals"),
    "R1J": ("RTQ", "2019-10-01", "Gloucestershire Care Services merged with 2gether: Gloucestershire Health and Care"),
    "RE9": ("R0B", "2019-04-01", "South Tyneside merged with City Hospitals Sunderland"),
    "RLN": ("R0B", "2019-04-01", "City Hospitals Sunderland merged with South Tyneside"),
    # 2014–2018
    "RGQ": ("RDE", "2018-07-01", "Ipswich merged with Colchester: East Suffolk and North Essex"),
    "RJF": ("RTG", "2018-07-01", "Burton merged with Derby: University Hospitals of Derby and Burton"),
    "R1E": ("RRE", "2018-06-01", "Staffordshire and Stoke on Trent Partnership services to Midlands Partnership"),
    "RR1": ("RRK", "2018-04-01", "Heart of England acquired by University Hospitals Birmingham"),
    "RY1": ("RW4", "2018-04-01", "split: Liverpool Community Health to Mersey Care (main) and others"),
    "RJD": (
        "RJE",
        "2017-11-01",
        "split: Mid Staffordshire dissolved; County Hospital to UHNM (main), Cannock to Royal Wolverhampton",
    ),
    "RM2": ("R0A", "2017-10-01", "University Hospital of South Manchester merged: Manchester University"),
    "RW3": ("R0A", "2017-10-01", "Central Manchester merged: Manchester University"),
    "RQQ": ("RGN", "2017-04-01", "Hinchingbrooke merged with Peterborough and Stamford: North West Anglia"),
    "RRD": ("R1L", "2017-04-01", "North Essex Partnership merged: Essex Partnership University"),
    "RWN": ("R1L", "2017-04-01", "South Essex Partnership merged: Essex Partnership University"),
    "RLU": ("RQ3", "2017-02-01", "Birmingham Women's merged with Birmingham Children's"),
    "RJX": ("RW4", "2016-07-01", "Calderstones acquired by Mersey Care"),
    "R1G": ("RA9", "2015-10-01", "Torbay and Southern Devon Health and Care merged with South Devon Healthcare"),
    "RFW": ("RQM", "2015-09-01", "West Middlesex acquired by Chelsea and Westminster"),
    "RBB": (
        "RD1",
        "2015-02-01",
        "Royal National Hospital for Rheumatic Diseases acquired by Royal United Hospitals Bath",
    ),
    "RD7": ("RDU", "2014-10-01", "Heatherwood and Wexham Park acquired by Frimley Park"),
    "RC3": ("R1K", "2014-10-01", "Ealing merged with North West London Hospitals: London North West"),
    "RV8": ("R1K", "2014-10-01", "North West London Hospitals merged with Ealing: London North West"),
    "RVL": ("RAL", "2014-07-01", "Barnet and Chase Farm acquired by Royal Free"),
    # before 2014
    "RYH": (None, "2014-04-01", "NHS Direct: dissolved"),
    "RYQ": ("RJ2", "2013-10-01", "split: South London Healthcare dissolved; QEH to Lewisham and Greenwich (main)"),
    "RHX": ("RW1", "2012-11-01", "Oxfordshire Learning Disability acquired by Southern Health"),
    "RCC": ("RCB", "2012-07-01", "Scarborough and North East Yorkshire acquired by York"),
    "RNH": ("R1H", "2012-04-01", "Newham merged: Barts Health"),
    "RGC": ("R1H", "2012-04-01", "Whipps Cross merged: Barts Health"),
    "RNJ": ("R1H", "2012-04-01", "Barts and the London merged: Barts Health"),
    "RM4": ("RW3", "2012-04-01", "Trafford Healthcare acquired by Central Manchester"),
    "RN1": ("RN5", "2012-01-09", "Winchester and Eastleigh merged with Basingstoke: Hampshire Hospitals"),
    "RT6": (
        "RMY",
        "2012-01-01",
        "Suffolk Mental Health Partnership merged with Norfolk and Waveney: Norfolk and Suffolk",
    ),
    "RBF": (
        "RTH",
        "2011-11-01",
        "Nuffield Orthopaedic Centre merged with Oxford Radcliffe: Oxford University Hospitals",
    ),
    "RWQ": ("R1A", "2011-07-01", "Worcestershire Mental Health Partnership: Worcestershire Health and Care"),
    "RV7": ("RWN", "2010-04-01", "Bedfordshire and Luton MH acquired by South Essex Partnership"),
    "RGZ": ("RYQ", "2009-04-01", "Queen Mary's Sidcup merged: South London Healthcare"),
    "RPL": ("RYR", "2009-04-01", "Worthing and Southlands merged: Western Sussex Hospitals"),
    "RPR": ("RYR", "2009-04-01", "Royal West Sussex merged: Western Sussex Hospitals"),
    "RJ5": ("RYJ", "2007-10-01", "St Mary's merged: Imperial College Healthcare"),
    "RQN": ("RYJ", "2007-10-01", "Hammersmith Hospitals merged: Imperial College Healthcare"),
    "RCS": ("RX1", "2006-04-01", "Nottingham City Hospital merged: Nottingham University Hospitals"),
    "RVX": ("RX3", "2006-04-01", "Tees and North East Yorkshire merged: Tees, Esk and Wear Valleys"),
    "RW9": ("RX4", "2006-04-01", "South of Tyne and Wearside MH merged: Northumberland, Tyne and Wear"),
    "RW8": ("RX2", "2006-04-01", "West Sussex Health and Social Care merged: Sussex Partnership"),
    "RXD": (None, "2006-04-01", "East Sussex County Healthcare: services divided, successor not recorded here"),
}


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
