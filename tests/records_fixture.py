"""Small record-level extracts for the tests: a seeded random extract that exercises every branch of the indicator
definitions (multi-episode spells, transfers between providers, readmissions across providers, deaths in hospital
and after discharge, day cases, telephone follow-ups, type 1 and 3 departments, residents of three fictional ICBs,
unknown residence), with its own geography folder so no real data are needed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVIDERS = ["RAA", "RBB", "RCC", "RDD", "REE"]
ICBS = ["QX1", "QX2", "QX3"]
LSOAS = [f"E0100{i:04d}" for i in range(12)]
DIAGS = ["I219", "J441", "N390", "L031", "C509", "O800", "R69X", "S720", "E119", "K358", "J459", "Z511"]
PROCS = ["C751", "T202", "W852", "M459", "H011", "W381"]
ADMIMETH = ["11", "12", "21", "22", "2A", "28", "31", "81"]
START = dt.date(2025, 11, 1)
DAYS = 200  # November 2025 to May 2026: the quarter 2025-26-Q4 with time either side


def _day(n: int) -> dt.date:
    return START + dt.timedelta(days=int(n))


def _spell(rng, pid, pat, procode, adm, admimeth, rows, key) -> tuple[dt.date, bool]:
    """Append a provider spell's episodes; returns its discharge date."""
    elective = admimeth in ("11", "12")
    los = 0 if elective and rng.random() < 0.5 else int(rng.integers(1, 15))
    n_epi = 1 if los < 2 else int(rng.integers(1, min(los, 3) + 1))
    cuts = sorted(rng.choice(np.arange(1, los), size=n_epi - 1, replace=False)) if n_epi > 1 else []
    bounds = [0, *(int(x) for x in cuts), los]
    dis = adm + dt.timedelta(days=los)
    died = rng.random() < 0.06
    proc = PROCS[int(rng.integers(len(PROCS)))] if elective or rng.random() < 0.2 else None
    opday = adm + dt.timedelta(days=int(rng.integers(0, min(los, 3) + 1))) if proc else None
    dod = dis if died else (dis + dt.timedelta(days=int(rng.integers(0, 60))) if rng.random() < 0.04 else None)
    for i in range(n_epi):
        last = i == n_epi - 1
        rows.append(
            {
                "PSEUDO_HESID": pid,
                "EPIKEY": f"E{key + i:07d}",
                "PROCODE3": procode,
                "ADMIDATE": adm,
                "EPISTART": adm + dt.timedelta(days=bounds[i]),
                "EPIEND": adm + dt.timedelta(days=bounds[i + 1]),
                "DISDATE": dis,
                "EPIORDER": i + 1,
                "ADMIMETH": admimeth,
                "CLASSPAT": "2" if elective and los == 0 else "1",
                "DISMETH": ("4" if died else "1") if last else "8",
                "STARTAGE": pat["age"],
                "SEX": pat["sex"],
                "LSOA11": pat["lsoa"],
                "DIAG_4_01": pat["diag"],
                "OPERTN_4_01": proc if i == 0 else None,
                "OPDATE_01": opday if i == 0 else None,
                "DOD": dod,
            }
        )
    return dis, died


def make_records(n_patients: int = 600, seed: int = 11) -> dict[str, pd.DataFrame]:
    """The extract as DataFrames (contract columns; dates as ``datetime.date``)."""
    rng = np.random.default_rng(seed)
    apc, op, ae = [], [], []
    for p in range(n_patients):
        pid = f"P{p:06d}"
        age = int(rng.choice([7003, *range(0, 100)]))
        pat = {
            "age": age,
            "sex": str(rng.choice(["1", "2", "9"], p=[0.48, 0.48, 0.04])),
            "lsoa": None if rng.random() < 0.03 else str(rng.choice(LSOAS)),
            "diag": str(rng.choice(DIAGS)),
        }
        day = int(rng.integers(0, 60))
        for _ in range(int(rng.integers(1, 4))):
            procode = str(rng.choice(PROVIDERS))
            admimeth = str(rng.choice(ADMIMETH[:7]))
            dis, died = _spell(rng, pid, pat, procode, _day(day), admimeth, apc, len(apc))
            if not died and rng.random() < 0.15:  # transfer to another provider, same or next day
                other = str(rng.choice([x for x in PROVIDERS if x != procode]))
                dis, died = _spell(
                    rng, pid, pat, other, dis + dt.timedelta(days=int(rng.integers(0, 2))), "81", apc, len(apc)
                )
            if died:
                break
            day = (dis - START).days + int(rng.integers(0, 45))
            pat["diag"] = str(rng.choice(DIAGS))
            if day > DAYS:
                break
        for _j in range(int(rng.integers(0, 4))):
            op.append(
                {
                    "PSEUDO_HESID": pid,
                    "ATTENDKEY": f"O{len(op):07d}",
                    "PROCODE3": str(rng.choice(PROVIDERS)),
                    "APPTDATE": _day(rng.integers(0, DAYS)),
                    "FIRSTATT": str(rng.choice(["1", "2", "3", "4", "9"])),
                    "ATTENDED": str(rng.choice(["5", "6", "2", "3"], p=[0.7, 0.1, 0.1, 0.1])),
                    "APPTAGE": min(age, 120) if age < 7001 else 0,
                    "SEX": pat["sex"],
                    "LSOA11": pat["lsoa"],
                    "TRETSPEF": "300",
                }
            )
        for _j in range(int(rng.integers(0, 3))):
            ae.append(
                {
                    "PSEUDO_HESID": pid,
                    "AEKEY": f"A{len(ae):07d}",
                    "PROCODE3": str(rng.choice(PROVIDERS)),
                    "ARRIVALDATE": _day(rng.integers(0, DAYS)),
                    "ARRIVALTIME": f"{rng.integers(0, 24):02d}:15",
                    "DEPDUR": None if rng.random() < 0.05 else int(rng.gamma(2.0, 200)),
                    "AEDEPTTYPE": str(rng.choice(["01", "03"], p=[0.8, 0.2])),
                    "ARRIVALAGE": age,
                    "SEX": pat["sex"],
                    "LSOA11": pat["lsoa"],
                    "AEATTENDDISP": "03",
                }
            )
    return {"apc": pd.DataFrame(apc), "op": pd.DataFrame(op), "ae": pd.DataFrame(ae)}


SCHEMAS = {
    "apc": {
        "ADMIDATE": pa.date32(),
        "EPISTART": pa.date32(),
        "EPIEND": pa.date32(),
        "DISDATE": pa.date32(),
        "OPDATE_01": pa.date32(),
        "DOD": pa.date32(),
        "EPIORDER": pa.int32(),
        "STARTAGE": pa.int32(),
    },
    "op": {"APPTDATE": pa.date32(), "APPTAGE": pa.int32()},
    "ae": {"ARRIVALDATE": pa.date32(), "DEPDUR": pa.int32(), "ARRIVALAGE": pa.int32()},
}


def write_geography(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "LSOA11": LSOAS,
            "icb_code": [ICBS[i % 3] for i in range(len(LSOAS))],
            "imd_quintile": [str(1 + i % 5) for i in range(len(LSOAS))],
        }
    ).to_csv(folder / "lsoa_icb.csv", index=False)
    rows = [
        {"icb_code": icb, "age": a, "sex": s, "imd_quintile": str(q), "population": 40.0 + a % 7 + q}
        for icb in ICBS
        for a in range(91)
        for s in ("1", "2")
        for q in range(1, 6)
    ]
    pd.DataFrame(rows).to_csv(folder / "population.csv", index=False)


def write_records(root: Path, n_patients: int = 600, seed: int = 11, fmt: str = "parquet") -> Path:
    """The extract under ``root`` (``apc/``, ``op/``, ``ae/`` as Parquet — two files per dataset — or CSV) and its
    ``geography/``."""
    frames = make_records(n_patients, seed)
    for name, df in frames.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
            continue
        table = pa.Table.from_pandas(df, preserve_index=False)
        for col, typ in SCHEMAS[name].items():
            table = table.set_column(table.schema.get_field_index(col), col, table[col].cast(typ))
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), folder / "part-0.parquet")
        pq.write_table(table.slice(half), folder / "part-1.parquet")
    write_geography(root / "geography")
    return root
