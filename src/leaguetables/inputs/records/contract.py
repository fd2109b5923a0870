"""The record-level input contract: HES-format admitted patient care episodes (``apc``), outpatient attendances
(``op``) and emergency care attendances (``ae``), validated on load *in DuckDB* so that the checks scale to a national
extract (tens of millions of rows).

Layout: one folder per dataset under a root (``<root>/apc/``, ``<root>/op/``, ``<root>/ae/``), each holding Parquet
files (any depth, e.g. hive-partitioned ``FYEAR=2025/quarter=Q4/PROCODE3=RXX/part-0.parquet``) and/or CSV files
with a header row. Columns are a subset of the real HES field names (:data:`DATASETS`); extra columns are allowed
and ignored. :func:`load_records` checks every row and leaves typed views ``apc``, ``op``, ``ae`` (the contract
columns in the contract types, plus ``source_file`` and ``source_row``) in a DuckDB connection for the indicators.

What is checked, in this order, with the first problem reported as one :class:`~leaguetables.errors.InputError`
line naming the file, the row and the column:

1. every file can be read, and holds every required column;
2. per row, column by column: not empty where a value is required; of the right type (text; whole number — a
   decimal string with no fraction such as ``'13.0'`` is accepted; ISO date ``YYYY-MM-DD``; time ``HHMM`` or
   ``HH:MM``); an allowed code or pattern; within range; not one of HES's sentinel dates (``1800-01-01`` "null",
   ``1801-01-01`` "invalid date submitted"); in a plausible year (1900–2100);
3. per row, dates in order (``ADMIDATE ≤ EPISTART ≤ EPIEND ≤ DISDATE``, ``ADMIDATE ≤ OPDATE_01 ≤ DISDATE``,
   ``ADMIDATE ≤ DOD``);
4. per dataset, the key (``EPIKEY``, ``ATTENDKEY``, ``AEKEY``) is unique across all its files.

Rows are numbered within their file: for CSV the header is row 1 and the first record row 2 (the line number when
no quoted field spans lines); for Parquet the first record is row 1.

Normalisation (documented HES conventions, applied before the checks): text is trimmed and an empty string is
missing; ``OPERTN_4_01`` ``'-'`` (in HES ``'-'`` padded with spaces) means "no operation" and becomes missing;
``ARRIVALTIME`` ``4000`` (HES A&E "null") becomes missing and ``HH:MM`` becomes ``HHMM``; ``OPDATE_01`` and ``DOD``
may be absent from a file (then missing in every row: the Artificial HES samples have neither).

``on_error="exclude"`` (for data that are known to be dirty, such as NHS Digital's Artificial HES samples) drops the
rows that fail a row check instead of stopping, and records how many per dataset, column and problem in
:attr:`Records.exclusions`; unreadable files, missing columns and duplicate keys still stop the load.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from leaguetables.errors import InputError

Kind = Literal["str", "int", "date", "time"]
SENTINEL_DATES = {"1800-01-01": "HES's 'null date' sentinel", "1801-01-01": "HES's 'invalid date submitted' sentinel"}
MIN_DATE, MAX_DATE = "1900-01-01", "2100-12-31"
INFANT_AGES = (7001, 7007)  # HES codes for ages under one year (7001 = under 1 day ... 7007 = 6 to 11 months)


@dataclass(frozen=True)
class Field:
    """One contract column: its type and what values it may take."""

    name: str
    kind: Kind = "str"
    nullable: bool = False
    required: bool = True  # must be present in every file (``False``: absent means missing in every row)
    codes: tuple[str, ...] | None = None
    pattern: str | None = None  # a regular expression the whole (trimmed) value must match
    lo: int | None = None
    hi: int | None = None
    infant_codes: bool = False  # also allow the HES infant age codes 7001-7007
    describe: str = ""  # what the allowed values are, for the error message


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str
    fields: tuple[Field, ...]
    order: tuple[tuple[str, str], ...] = ()  # (earlier, later) date pairs, checked where both are present

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _codes(*values: str) -> tuple[str, ...]:
    return tuple(values)


ADMIMETH_CODES = _codes(
    "11",
    "12",
    "13",
    "21",
    "22",
    "23",
    "24",
    "25",
    "26",
    "27",
    "28",
    "2A",
    "2B",
    "2C",
    "2D",
    "31",
    "32",
    "81",
    "82",
    "83",
)
SEX = Field("SEX", codes=_codes("0", "1", "2", "9"), describe="1 male, 2 female, 9 or 0 not known")
LSOA11 = Field("LSOA11", nullable=True, pattern=r"[EW]01[0-9]{6}", describe="an LSOA 2011 code such as E01000001")
PSEUDO_HESID = Field("PSEUDO_HESID")
PROCODE3 = Field("PROCODE3", pattern=r"[A-Z0-9]{3}", describe="a 3-character provider code")


def _age(name: str) -> Field:
    """An age in whole years (0-120) or one of HES's infant codes."""
    return Field(name, "int", lo=0, hi=120, infant_codes=True)


DATASETS: dict[str, Dataset] = {
    "apc": Dataset(
        "apc",
        "EPIKEY",
        (
            PSEUDO_HESID,
            Field("EPIKEY"),
            PROCODE3,
            Field("ADMIDATE", "date"),
            Field("EPISTART", "date"),
            Field("EPIEND", "date", nullable=True),
            Field("DISDATE", "date", nullable=True),
            Field("EPIORDER", "int", lo=1, hi=99),
            Field(
                "ADMIMETH",
                codes=ADMIMETH_CODES,
                describe="11-13 elective, 21-28 or 2A-2D emergency, 31-32 maternity, 81-83 other",
            ),
            Field(
                "CLASSPAT",
                codes=_codes("1", "2", "3", "4", "5"),
                describe="1 ordinary, 2 day case, 3-5 regular or maternity",
            ),
            Field(
                "DISMETH",
                nullable=True,
                codes=_codes("1", "2", "3", "4", "5", "8", "9"),
                describe="1-3 alive, 4 died, 5 stillbirth, 8 or 9 not applicable",
            ),
            _age("STARTAGE"),
            SEX,
            LSOA11,
            Field(
                "DIAG_4_01", pattern=r"[A-Z][0-9]{2}[0-9X-]", describe="an ICD-10 4-character code such as I219 or R69X"
            ),
            Field(
                "OPERTN_4_01",
                nullable=True,
                pattern=r"[A-Z][0-9]{3}",
                describe="an OPCS-4 4-character code such as W371, or '-' for none",
            ),
            Field("OPDATE_01", "date", nullable=True, required=False),
            Field("DOD", "date", nullable=True, required=False),
        ),
        order=(
            ("ADMIDATE", "EPISTART"),
            ("EPISTART", "EPIEND"),
            ("EPIEND", "DISDATE"),
            ("ADMIDATE", "DISDATE"),
            ("ADMIDATE", "OPDATE_01"),
            ("OPDATE_01", "DISDATE"),
            ("ADMIDATE", "DOD"),
        ),
    ),
    "op": Dataset(
        "op",
        "ATTENDKEY",
        (
            PSEUDO_HESID,
            Field("ATTENDKEY"),
            PROCODE3,
            Field("APPTDATE", "date"),
            Field(
                "FIRSTATT",
                codes=_codes("1", "2", "3", "4", "5", "X", "9"),
                describe="1 first, 2 follow-up, 3 first by telephone, 4 follow-up by telephone, 5 referral to "
                "treatment, X or 9 not known",
            ),
            Field(
                "ATTENDED",
                codes=_codes("0", "2", "3", "4", "5", "6", "7", "9"),
                describe="5 or 6 attended, 2, 3, 4 or 7 did not attend or cancelled, 0 or 9 not known",
            ),
            _age("APPTAGE"),
            SEX,
            LSOA11,
            Field("TRETSPEF", nullable=True),
        ),
    ),
    "ae": Dataset(
        "ae",
        "AEKEY",
        (
            PSEUDO_HESID,
            Field("AEKEY"),
            PROCODE3,
            Field("ARRIVALDATE", "date"),
            Field("ARRIVALTIME", "time", nullable=True),
            Field("DEPDUR", "int", nullable=True, lo=0, hi=100_000),
            Field(
                "AEDEPTTYPE",
                codes=_codes("01", "02", "03", "04", "99"),
                describe="01 major emergency department, 02 single specialty, 03 other or urgent treatment centre, "
                "04 walk-in centre, 99 not known",
            ),
            _age("ARRIVALAGE"),
            SEX,
            LSOA11,
            Field("AEATTENDDISP", nullable=True),
        ),
    ),
}


@dataclass
class Records:
    """Validated record-level data: DuckDB views ``apc``, ``op``, ``ae`` (those loaded) in :attr:`con`."""

    con: duckdb.DuckDBPyConnection
    root: Path
    datasets: tuple[str, ...]
    files: dict[str, list[Path]]
    rows: dict[str, int]
    exclusions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["dataset", "column", "problem", "rows"])
    )


# ---------------------------------------------------------------------------------------------------------- reading
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def dataset_files(root: Path, name: str, fmt: str = "auto") -> tuple[list[Path], list[Path]]:
    """The Parquet and CSV files of one dataset folder (sorted, any depth; ``fmt`` "parquet" or "csv" reads only
    those)."""
    folder = Path(root) / name
    if not folder.is_dir():
        raise InputError(
            f"no {name}/ folder of {name.upper()} records (expected Parquet or CSV files in it)", file=str(folder)
        )
    parquet = sorted(p for p in folder.rglob("*.parquet") if p.is_file()) if fmt != "csv" else []
    csv = sorted(p for p in folder.rglob("*.csv") if p.is_file()) if fmt != "parquet" else []
    if not parquet and not csv:
        what = {"auto": ".parquet or .csv", "parquet": ".parquet", "csv": ".csv"}[fmt]
        raise InputError(f"no {what} files in the {name}/ folder", file=str(folder))
    return parquet, csv


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _check_columns(ds: Dataset, path: Path, columns: Iterable[str]) -> None:
    have = set(columns)
    missing = [f.name for f in ds.fields if f.required and f.name not in have]
    if missing:
        raise InputError(
            f"required {ds.name.upper()} column(s) missing: {', '.join(missing)}", file=str(path), column=missing[0]
        )


def _read_csv(ds: Dataset, path: Path) -> pa.Table:
    """One CSV file as text columns with its row numbers (header = row 1): pyarrow keeps the file's order, which
    DuckDB's parallel CSV reader does not promise."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            cols = next(csv.reader(fh), [])
        _check_columns(ds, path, cols)
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in cols},
                include_columns=[f.name for f in ds.fields if f.name in cols],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except InputError:
        raise
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise InputError(f"cannot be read as CSV: {_first_line(exc)}", file=str(path)) from None
    n = table.num_rows
    return table.append_column("source_row", pa.array(range(2, n + 2), pa.int64())).append_column(
        "source_file", pa.array([str(path)] * n, pa.string())
    )


def _parquet_relation(con: duckdb.DuckDBPyConnection, ds: Dataset, folder: Path, files: list[Path]) -> str:
    """A SQL expression reading the dataset's Parquet files (columns named, with ``source_file``/``source_row``);
    every file is opened first so a damaged one is named."""
    listing = "[" + ", ".join(_lit(str(p)) for p in files) + "]"
    try:
        schema = con.execute(f"SELECT file_name, name FROM parquet_schema({listing})").fetchall()
    except duckdb.Error:
        schema = []
        for p in files:
            try:
                schema += con.execute(f"SELECT file_name, name FROM parquet_schema({_lit(str(p))})").fetchall()
            except duckdb.Error as exc:
                raise InputError(f"cannot be read as Parquet: {_first_line(exc)}", file=str(p)) from None
    by_file: dict[str, set[str]] = {str(p): set() for p in files}
    for fname, col in schema:
        by_file.setdefault(fname, set()).add(col)
    keys = {str(p): _partition_keys(folder, p) for p in files}
    hive = len({tuple(k) for k in keys.values()}) == 1 and bool(next(iter(keys.values())))
    for p in files:
        from_path = set(keys[str(p)]) & set(ds.columns) if hive else set()
        _check_columns(ds, p, by_file.get(str(p), set()) | from_path)
    return (
        f"read_parquet({listing}, hive_partitioning={'true' if hive else 'false'}, union_by_name=true, "
        f"filename='source_file', file_row_number=true)"
    )


def _partition_keys(folder: Path, path: Path) -> list[str]:
    """The hive partition keys in a file's folders below the dataset folder (``FYEAR=2526/PROCODE3=RXX`` → FYEAR,
    PROCODE3). Partition columns are read only when every file has the same keys (otherwise DuckDB refuses them)."""
    return [part.split("=", 1)[0] for part in path.relative_to(folder).parts[:-1] if "=" in part]


# ----------------------------------------------------------------------------------------------------------- checks
def _text(col: str) -> str:
    return f"NULLIF(trim(CAST({_q(col)} AS VARCHAR)), '')"


def _typed_expr(f: Field, source_type: str | None) -> str:
    """SQL for the contract-typed value of ``f`` from the raw column (``NULL`` where the text is not valid)."""
    if source_type is None:  # an optional column absent from every file
        return {
            "str": "CAST(NULL AS VARCHAR)",
            "int": "CAST(NULL AS BIGINT)",
            "date": "CAST(NULL AS DATE)",
            "time": "CAST(NULL AS VARCHAR)",
        }[f.kind]
    t = _text(f.name)
    if f.kind == "str":
        return f"NULLIF({t}, '-')" if f.name == "OPERTN_4_01" else t
    if f.kind == "int":
        if re.match(r"U?(BIG|SMALL|TINY|HUGE)?INT(EGER)?$", source_type):
            return f"CAST({_q(f.name)} AS BIGINT)"
        return (
            f"CASE WHEN TRY_CAST({t} AS DOUBLE) = floor(TRY_CAST({t} AS DOUBLE)) "
            f"AND abs(TRY_CAST({t} AS DOUBLE)) < 1e15 THEN CAST(TRY_CAST({t} AS DOUBLE) AS BIGINT) END"
        )
    if f.kind == "date":
        if source_type == "DATE":
            return _q(f.name)
        if source_type.startswith("TIMESTAMP"):
            return f"CAST({_q(f.name)} AS DATE)"
        iso = "'[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}'"
        return f"CASE WHEN regexp_full_match({t}, {iso}) THEN TRY_CAST({t} AS DATE) END"
    # time: HHMM or HH:MM; 4000 is HES A&E's "null"
    hhmm = f"replace({t}, ':', '')"
    return (
        f"CASE WHEN {t} = '4000' THEN NULL WHEN regexp_full_match({t}, '([01][0-9]|2[0-3]):?[0-5][0-9]') "
        f"THEN {hhmm} END"
    )


def _native(f: Field, source_type: str | None) -> bool:
    """The source column already has the contract type (typed Parquet): no text to parse or check."""
    if source_type is None:
        return False
    return (f.kind == "date" and source_type == "DATE") or (
        f.kind == "int" and re.match(r"U?(BIG|SMALL|TINY|HUGE)?INT(EGER)?$", source_type) is not None
    )


def _problems(f: Field, typed: str, source_type: str | None) -> list[tuple[str, str, str]]:
    """(problem id, SQL condition on the typed value ``typed`` and raw text, SQL message) for one field."""
    if source_type is None:
        return []
    native = _native(f, source_type)
    t = _text(f.name)
    value = f"'value \"' || left({t}, 40) || '\"'"
    raw_missing = f"{t} IS NULL" if f.kind != "time" else f"({t} IS NULL OR {t} = '4000')"
    if f.name == "OPERTN_4_01":
        raw_missing = f"({t} IS NULL OR {t} = '-')"
    if native:
        raw_missing = f"{_q(f.name)} IS NULL"
    out: list[tuple[str, str, str]] = []
    if not f.nullable:
        out.append(("missing", raw_missing, "'is empty (a value is required)'"))
    kind_word = {"int": "a whole number", "date": "a date (YYYY-MM-DD)", "time": "a time (HHMM or HH:MM)"}
    if f.kind in kind_word and not native:
        out.append(("type", f"NOT {raw_missing} AND {typed} IS NULL", f"{value} || ' is not {kind_word[f.kind]}'"))
    allowed = f" ({f.describe})" if f.describe else ""
    if f.codes is not None:
        codes = ", ".join(_lit(c) for c in f.codes)
        out.append(("code", f"{typed} NOT IN ({codes})", f"{value} || {_lit(' is not an allowed code' + allowed)}"))
    if f.pattern is not None:
        out.append(
            (
                "pattern",
                f"NOT regexp_full_match({typed}, {_lit(f.pattern)})",
                f"{value} || {_lit(' is not ' + (f.describe or 'valid'))}",
            )
        )
    if f.lo is not None or f.hi is not None:
        rng = f"{typed} < {f.lo} OR {typed} > {f.hi}"
        if f.infant_codes:
            rng = f"({rng}) AND {typed} NOT BETWEEN {INFANT_AGES[0]} AND {INFANT_AGES[1]}"
            allowed = f" ({f.lo}-{f.hi}, or {INFANT_AGES[0]}-{INFANT_AGES[1]} for ages under one year)"
        else:
            allowed = f" ({f.lo}-{f.hi})"
        out.append(("range", rng, f"{value} || {_lit(' is out of range' + allowed)}"))
    if f.kind == "date":
        for day, what in SENTINEL_DATES.items():
            out.append(("sentinel", f"{typed} = DATE {_lit(day)}", f"{value} || {_lit(' is ' + what)}"))
        out.append(
            (
                "implausible",
                f"{typed} NOT BETWEEN DATE {_lit(MIN_DATE)} AND DATE {_lit(MAX_DATE)}",
                f"{value} || ' is not a plausible date (years 1900-2100)'",
            )
        )
    return out


def _order_problems(ds: Dataset, present: set[str]) -> list[tuple[str, str, str, str]]:
    out = []
    for a, b in ds.order:
        if a in present and b in present:
            out.append(
                (
                    b,
                    "order",
                    f"{_q('t_' + a)} > {_q('t_' + b)}",
                    f"'{b} ' || CAST({_q('t_' + b)} AS VARCHAR) || ' is before {a} ' || "
                    f"CAST({_q('t_' + a)} AS VARCHAR)",
                )
            )
    return out


def _check_sql(ds: Dataset, source: str, types: dict[str, str]) -> tuple[str, str]:
    """(the typed SELECT with a ``problem`` column: NULL, or 'column<TAB>id<TAB>message' for the first problem of the
    row; the list of typed columns)."""
    typed_cols = []
    whens = []
    for f in ds.fields:
        src = types.get(f.name)
        expr = _typed_expr(f, src)
        typed_cols.append(f"{expr} AS {_q('t_' + f.name)}")
        for pid, cond, msg in _problems(f, expr, src):
            whens.append(f"WHEN {cond} THEN {_lit(f.name + chr(9) + pid + chr(9))} || {msg}")
    inner = f"SELECT *, {', '.join(typed_cols)} FROM {source}"
    order = [
        f"WHEN {cond} THEN {_lit(col + chr(9) + pid + chr(9))} || {msg}"
        for col, pid, cond, msg in _order_problems(ds, {f.name for f in ds.fields if f.name in types})
    ]
    case = "CASE " + " ".join(whens + order) + " END" if whens or order else "NULL"
    out_cols = ", ".join(f"{_q('t_' + f.name)} AS {_q(f.name)}" for f in ds.fields)
    return (f"SELECT {out_cols}, source_file, source_row, {case} AS problem FROM ({inner})", out_cols)


ROW_CHECKED = ("PSEUDO_HESID",)  # besides the key: columns with (nearly) a distinct value per row, checked row by row


def _normal_form(f: Field) -> str:
    """SQL: the raw text of ``f`` is already what normalisation would make of it (trimmed, not empty, not '-')."""
    raw = _q(f.name)
    dash = f" AND {raw} <> '-'" if f.name == "OPERTN_4_01" else ""
    return f"({raw} IS NULL OR ({raw} = trim({raw}) AND {raw} <> ''{dash}))"


def _plain(f: Field) -> str:
    """SQL, cheap (no trimming): the raw text of ``f`` is present, not empty, ASCII and has no space at either end, so
    it is in normal form and not missing (``trim`` removes only spaces: Unicode category Zs, which outside ASCII are
    never plain)."""
    raw = _q(f.name)
    dash = f" AND {raw} <> '-'" if f.name == "OPERTN_4_01" else ""
    return (
        f"({raw} IS NOT NULL AND {raw} <> ''{dash} AND NOT prefix({raw}, ' ') AND NOT suffix({raw}, ' ') "
        f"AND strlen({raw}) = length({raw}))"
    )


@dataclass
class _Scan:
    """What the cheap checks found: every row valid (``clean``), the text columns already in normal form, the row
    count and whether the key is proven unique (its 64-bit hashes all different)."""

    clean: bool
    normal: set[str] = field(default_factory=set)
    rows: int = 0
    unique: bool = False


def _distinct_checks(
    con: duckdb.DuckDBPyConnection, ds: Dataset, source: str, types: dict[str, str]
) -> set[str] | None:
    """The checks of the columns other than the key and the patient id, on each column's distinct values (at most a
    few thousand, however many rows): ``None`` if a value fails, else the text columns already in normal form."""
    normal = set()
    for f in ds.fields:
        src = types.get(f.name)
        if f.name == ds.key or f.name in ROW_CHECKED or src is None:
            continue
        text = f.kind == "str" and src == "VARCHAR"
        bad = " OR ".join(f"({c})" for _pid, c, _msg in _problems(f, _typed_expr(f, src), src)) or "FALSE"
        problems, is_normal = con.execute(
            f"SELECT count(*) FILTER (WHERE {bad}), bool_and({_normal_form(f) if text else 'FALSE'}) "
            f"FROM (SELECT DISTINCT {_q(f.name)} FROM {source})"
        ).fetchall()[0]
        if problems:
            return None
        if is_normal:
            normal.add(f.name)
    return normal


def _row_checks(
    con: duckdb.DuckDBPyConnection, ds: Dataset, source: str, types: dict[str, str], cheap: bool
) -> tuple[_Scan, bool]:
    """One pass over the rows, fetched to numpy: per row the key's 64-bit hash and a bit mask of the checks of the key
    and the patient id and the order of the dates (bit 0: a problem; then one bit per text column found not in normal
    form); the row count is the number of rows, and if every row passed the key is unique when its hashes are
    (:func:`_hashes_distinct`; one scan of the key where a count and a separate fetch of the hashes took two).
    ``cheap``: a text column whose only check is "not missing" is tested with :func:`_plain` instead of trimming every
    value; returns ``(scan, False)`` when a value is not plain (then the exact pass, ``cheap=False``, decides)."""
    conditions, flagged, plain = [], [], []
    for f in (f for f in ds.fields if f.name == ds.key or f.name in ROW_CHECKED):
        src = types.get(f.name)
        problems = _problems(f, _typed_expr(f, src), src)
        text = f.kind == "str" and src == "VARCHAR"
        if cheap and text and [p for p, _c, _m in problems] == ["missing"]:
            plain.append(f)
            continue
        conditions += [c for _pid, c, _msg in problems]
        flagged += [f] if text else []
    conditions += [cond for _col, _pid, cond, _msg in _order_problems(ds, set(types))]
    typed = ", ".join(f"{_typed_expr(f, types.get(f.name))} AS {_q('t_' + f.name)}" for f in ds.fields)
    where = " OR ".join(f"({c})" for c in conditions) or "FALSE"
    key = _q(ds.key) if any(f.name == ds.key for f in plain) else _q("t_" + ds.key)
    tests = [f"NOT {_plain(f)}" for f in plain] + [f"NOT {_normal_form(f)}" for f in flagged]
    mask = " + ".join(
        [f"CAST(coalesce({where}, FALSE) AS UTINYINT)"]
        + [f"CAST({t} AS UTINYINT) * {2 << i}" for i, t in enumerate(tests)]
    )
    got = con.execute(f"SELECT hash({key}) AS h, {mask} AS m FROM (SELECT *, {typed} FROM {source})").fetchnumpy()
    hashes, bits = np.asarray(got["h"]), np.bitwise_or.reduce(np.asarray(got["m"], dtype=np.uint8), initial=0)
    off = [bool(int(bits) & (2 << i)) for i in range(len(tests))]  # a value not plain / not in normal form
    if any(off[: len(plain)]):
        return _Scan(clean=False), False
    normal = {f.name for f in plain} | {f.name for f, bad in zip(flagged, off[len(plain) :]) if not bad}
    clean = not int(bits) & 1
    return _Scan(clean=clean, normal=normal, rows=len(hashes), unique=clean and _hashes_distinct(hashes)), True


def _hashes_distinct(hashes: np.ndarray) -> bool:
    """Whether the key's 64-bit hashes are all different, which proves the key unique: sorted with numpy (a fraction
    of the cost of fetching them; DuckDB's hash aggregate over them, ``count(DISTINCT ...)``, costs 3-4 times the
    fetch) and compared with their neighbours. Equal hashes (a duplicate or a collision) leave it to the exact
    check."""
    hashes.sort()
    return not bool((hashes[1:] == hashes[:-1]).any())


def _fast_check(con: duckdb.DuckDBPyConnection, ds: Dataset, source: str, types: dict[str, str]) -> _Scan:
    """Whether every row passes every check, found cheaply: a column's checks depend on its value alone, so they run
    on its distinct values, and only the key, the patient id and the date order row by row, in one pass that also
    counts the rows; the key's hashes are then compared (:func:`_hashes_distinct`). Also finds the text columns already in normal form (passed
    through without trimming). When a problem exists the full row-by-row check (:func:`_check_sql`) finds and names
    its first row."""
    normal = _distinct_checks(con, ds, source, types)
    if normal is None:
        return _Scan(clean=False)
    scan, decided = _row_checks(con, ds, source, types, cheap=True)
    if not decided:
        scan, _ = _row_checks(con, ds, source, types, cheap=False)
    scan.normal |= normal
    return scan


def _source_types(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


def _raise_problem(row: tuple) -> None:
    column, _pid, message = row[0].split("\t", 2)
    raise InputError(message, file=row[1], row=int(row[2]), column=column)


def _check_unique(con: duckdb.DuckDBPyConnection, ds: Dataset, view: str) -> None:
    """The key is unique across the dataset's files. Keys are first grouped by their 64-bit hash (8 bytes a row
    however long the key, so the check fits in memory at national scale); only the keys of repeated hashes are then
    compared exactly, so a hash collision is never reported as a duplicate."""
    key = _q(ds.key)
    repeated = con.execute(f"SELECT hash({key}) FROM {view} GROUP BY 1 HAVING count(*) > 1").fetchall()
    if not repeated:
        return
    dup = con.execute(
        f"SELECT {key}, min(source_file), min(source_row) FROM {view} WHERE hash({key}) IN (SELECT unnest(?)) "
        f"GROUP BY 1 HAVING count(*) > 1 ORDER BY 2, 3 LIMIT 1",
        [[h for (h,) in repeated]],
    ).fetchall()
    if not dup:
        return
    rows = con.execute(
        f"SELECT source_file, source_row FROM {view} WHERE {key} = ? ORDER BY source_file, source_row LIMIT 2",
        [dup[0][0]],
    ).fetchall()
    raise InputError(
        f"{ds.key} {dup[0][0]!r} is not unique (also in {rows[0][0]} row {rows[0][1]})",
        file=rows[1][0],
        row=int(rows[1][1]),
        column=ds.key,
    )


def _load_dataset(
    con: duckdb.DuckDBPyConnection, root: Path, ds: Dataset, on_error: str, fmt: str
) -> tuple[list[Path], pd.DataFrame, int | None]:
    parquet, csvs = dataset_files(root, ds.name, fmt)
    parts = []
    if parquet:
        rel = _parquet_relation(con, ds, Path(root) / ds.name, parquet)
        parts.append(f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS source_row FROM {rel}")
    for i, p in enumerate(csvs):
        con.register(f"_csv_{ds.name}_{i}", _read_csv(ds, p))
        parts.append(f"SELECT * FROM _csv_{ds.name}_{i}")
    source = "(" + " UNION ALL BY NAME ".join(parts) + ")"
    try:
        types = _source_types(con, source)
        check, cols = _check_sql(ds, source, types)
        con.execute(f"CREATE OR REPLACE VIEW _checked_{ds.name} AS {check}")
        scan = _fast_check(con, ds, source, types)
        found = (
            []
            if scan.clean
            else con.execute(
                f"SELECT problem, source_file, source_row FROM _checked_{ds.name} "
                f"WHERE problem IS NOT NULL ORDER BY source_file, source_row LIMIT 1"
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise InputError(f"cannot be read: {_first_line(exc)}", file=str(Path(root) / ds.name)) from None
    excluded = pd.DataFrame(columns=["dataset", "column", "problem", "rows"])
    first = found[0] if found else None
    if first is not None and on_error == "raise":
        _raise_problem(first)
    columns = ", ".join(_q(f.name) for f in ds.fields) + ", source_file, source_row"
    if first is not None:
        excluded = con.execute(
            f"SELECT '{ds.name}' AS dataset, split_part(problem, chr(9), 1) AS column, split_part(problem, chr(9), 2) "
            f"AS problem, count(*) AS rows FROM _checked_{ds.name} WHERE problem IS NOT NULL GROUP BY ALL "
            f"ORDER BY 2, 3"
        ).df()
        con.execute(
            f"CREATE OR REPLACE TABLE {ds.name} AS SELECT {columns} FROM _checked_{ds.name} WHERE problem IS NULL"
        )
    else:  # every row valid: typed columns straight from the source (text already in normal form passed through)
        typed = ", ".join(
            f"{_q(f.name) if f.name in scan.normal else _typed_expr(f, types.get(f.name))} AS {_q(f.name)}"
            for f in ds.fields
        )
        con.execute(f"CREATE OR REPLACE VIEW {ds.name} AS SELECT {typed}, source_file, source_row FROM {source}")
    if not (scan.clean and scan.unique):  # unique: the key's hashes all different
        _check_unique(con, ds, ds.name)
    return parquet + csvs, excluded, scan.rows if scan.clean else None


def _parquet_only(root: Path, datasets: Sequence[str], fmt: str) -> bool:
    """Every dataset folder holds Parquet files and no CSV (a folder that cannot be listed: ``False``, so that its
    error comes in its turn)."""
    try:
        return all(not dataset_files(root, name, fmt)[1] for name in datasets)
    except InputError:
        return False


def _load_datasets(
    con: duckdb.DuckDBPyConnection, root: Path, datasets: Sequence[str], on_error: str, fmt: str
) -> list[tuple[list[Path], pd.DataFrame, int | None]]:
    """:func:`_load_dataset` of each dataset. Parquet datasets are validated at the same time, one thread and cursor
    each (DuckDB releases the GIL, and so does numpy's sort of the key hashes): the many small checks of one dataset
    leave DuckDB's threads idle between queries, which the others' queries fill. The first error in the order of
    ``datasets`` is raised, as when they are validated one after the other. CSV files are registered with the
    connection (not visible to another cursor), so a folder with CSV files is validated on ``con`` alone."""
    if len(datasets) < 2 or not _parquet_only(root, datasets, fmt):
        return [_load_dataset(con, root, DATASETS[name], on_error, fmt) for name in datasets]
    cursors = [con.cursor() for _ in datasets]
    try:
        with ThreadPoolExecutor(len(datasets)) as pool:
            jobs = [
                pool.submit(_load_dataset, cur, root, DATASETS[name], on_error, fmt)
                for cur, name in zip(cursors, datasets, strict=True)
            ]
            return [job.result() for job in jobs]  # the first failed dataset in order raises its error
    finally:
        for cur in cursors:
            cur.close()


def connect(
    threads: int = 2,
    memory_limit: str = "2500MB",
    database: str | Path = ":memory:",
    temp_directory: str | Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the project's limits: 2 threads and 2.5 GB for DuckDB's buffers (so that the
    process stays within 3 GB), insertion order not kept (the outputs are sorted explicitly), no progress bar. A
    ``database`` file keeps the intermediate tables compressed on disk (national scale); spilled data go to
    ``temp_directory``."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": threads,
        "memory_limit": memory_limit,
        "preserve_insertion_order": False,
    }
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    con = duckdb.connect(str(database), config=config)
    con.execute("SET enable_progress_bar = false")
    return con


def record_root(root: Path | str, datasets: Sequence[str]) -> Path:
    """``root`` as a path, once it is a folder and ``datasets`` are all known (:data:`DATASETS`); else InputError."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("record-level data folder not found", file=str(root))
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise InputError(f"unknown record-level dataset(s) {', '.join(unknown)} (known: {', '.join(DATASETS)})")
    return root


def load_records(
    root: Path | str,
    datasets: Sequence[str] = ("apc", "op", "ae"),
    *,
    on_error: Literal["raise", "exclude"] = "raise",
    fmt: Literal["auto", "parquet", "csv"] = "auto",
    con: duckdb.DuckDBPyConnection | None = None,
) -> Records:
    """Validate the record-level folders under ``root`` and return them as typed DuckDB views.

    Raises :class:`InputError` (one line: file, row, column) for the first problem found; with
    ``on_error="exclude"`` the rows failing a row check are dropped and counted in ``Records.exclusions`` instead.
    """
    if on_error not in ("raise", "exclude"):
        raise ValueError(f"on_error must be 'raise' or 'exclude', not {on_error!r}")
    if fmt not in ("auto", "parquet", "csv"):
        raise ValueError(f"fmt must be 'auto', 'parquet' or 'csv', not {fmt!r}")
    root = record_root(root, datasets)
    con = con or connect()
    files, rows, excl = {}, {}, []
    for name, (files[name], ex, n) in zip(datasets, _load_datasets(con, root, datasets, on_error, fmt), strict=True):
        excl.append(ex)
        rows[name] = n if n is not None else con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    exclusions = (
        pd.concat([e for e in excl if len(e)], ignore_index=True)
        if any(len(e) for e in excl)
        else pd.DataFrame(columns=["dataset", "column", "problem", "rows"])
    )
    return Records(con=con, root=root, datasets=tuple(datasets), files=files, rows=rows, exclusions=exclusions)
