"""The record-level input contract in plain pandas: the same checks as :mod:`.contract` (which runs them in DuckDB),
written independently for the pandas baseline of ``benchmarks/bench_record_level.py``, so that both engines do the
same work before they compute: a plain-pandas pipeline that publishes must validate its input too.

:func:`load_records_pandas` reads the ``apc/``, ``op/`` and ``ae/`` folders (Parquet with pyarrow, CSV with
``pandas.read_csv``), checks every row and returns the contract columns in the contract types (text as pandas
strings, whole numbers as int64 — float64 where a nullable column has missing values —, dates as datetime64, times as
``HHMM`` text) with ``source_file`` and ``source_row``. The checks, their order and the error lines are those of the
DuckDB contract (``tests/test_records_bad_inputs.py`` runs the malformed corpus through both): unreadable files and
missing columns first, then per row the first failing check (columns in contract order, each column's checks in the
contract's order, then the order of the dates), the first such row by file and row number, then the uniqueness of the
key. The column checks are vectorised over each column's distinct values (``pandas.factorize``: a few thousand codes
or dates however many rows), the date order over the rows. Only ``on_error="raise"`` is implemented (the benchmark's
and the publishing path's mode).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leaguetables.errors import InputError
from leaguetables.inputs.records.contract import (
    DATASETS,
    INFANT_AGES,
    MAX_DATE,
    MIN_DATE,
    ROW_CHECKED,
    SENTINEL_DATES,
    Dataset,
    Field,
    _check_columns,
    _first_line,
    _partition_keys,
    dataset_files,
    record_root,
)

KIND_WORD = {"int": "a whole number", "date": "a date (YYYY-MM-DD)", "time": "a time (HHMM or HH:MM)"}
ISO_DATE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
TIME = r"([01][0-9]|2[0-3]):?[0-5][0-9]"


@dataclass
class _Column:
    """One contract column over the dataset's rows: ``codes`` index the distinct raw values (-1: missing), ``text``
    their trimmed text (NaN: missing), ``typed`` their contract-typed values (NaN/NaT: not valid), ``problem`` the
    index + 1 of their first failing check in ``checks`` (0: none)."""

    field: Field
    native: bool
    codes: np.ndarray
    text: pd.Series
    typed: pd.Series
    problem: np.ndarray
    checks: list[str]
    by_row: bool
    normal: bool  # the raw column already holds the typed values (native, or text in normal form)


# ---------------------------------------------------------------------------------------------------------- reading
def _read_parquet(ds: Dataset, folder: Path, files: list[Path]) -> list[tuple[pd.DataFrame, dict[str, str]]]:
    """Each Parquet file's contract columns (dates as datetime64) and the kinds of its columns' Arrow types."""
    schemas = {}
    for p in files:  # every file opened first, so that a damaged one is named before any column is checked
        try:
            schemas[p] = pq.read_schema(p)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot be read as Parquet: {_first_line(exc)}", file=str(p)) from None
    keys = {p: _partition_keys(folder, p) for p in files}
    hive = len({tuple(k) for k in keys.values()}) == 1 and bool(next(iter(keys.values())))
    parts = []
    for p in files:
        partition = dict(part.split("=", 1) for part in p.relative_to(folder).parts[:-1] if "=" in part) if hive else {}
        names = set(schemas[p].names)
        _check_columns(ds, p, names | (set(partition) & set(ds.columns)))
        cols = [c for c in ds.columns if c in names]
        try:
            frame = pq.read_table(p, columns=cols).to_pandas(date_as_object=False)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot be read as Parquet: {_first_line(exc)}", file=str(p)) from None
        kinds = {c: _arrow_kind(schemas[p].field(c).type) for c in cols}
        for c in set(partition) & set(ds.columns) - names:
            frame[c], kinds[c] = partition[c], "text"
        parts.append((frame, kinds))
    return parts


def _arrow_kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return "date"
    return "text"


def _read_csv(ds: Dataset, path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """One CSV file, every column as text (an empty field is '')."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    try:  # pyarrow's parser (through pandas) refuses a row with too few or too many fields
        header = pd.read_csv(io.StringIO(text), nrows=0).columns
        _check_columns(ds, path, header)
        cols = [c for c in ds.columns if c in header]
        frame = pd.read_csv(
            io.BytesIO(text.encode("utf-8")), dtype=str, keep_default_na=False, usecols=cols, engine="pyarrow"
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"cannot be read as CSV: {_first_line(exc)}", file=str(path)) from None
    return frame, dict.fromkeys(cols, "text")


def _read_dataset(root: Path, ds: Dataset, fmt: str) -> tuple[pd.DataFrame, dict[str, str], list[Path]]:
    """The dataset's files in one frame (with ``source_file``, ``source_row``) and each column's kind: ``int`` or
    ``date`` where every file stores it natively, else ``text``."""
    parquet, csvs = dataset_files(root, ds.name, fmt)
    parts = _read_parquet(ds, Path(root) / ds.name, parquet) if parquet else []
    parts += [_read_csv(ds, p) for p in csvs]
    frames = []
    for (frame, _kinds), path, first in zip(parts, parquet + csvs, [1] * len(parquet) + [2] * len(csvs), strict=True):
        frames.append(frame.assign(source_file=str(path), source_row=np.arange(first, first + len(frame))))
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    kinds = {}
    for c in ds.columns:
        found = {k[c] for _f, k in parts if c in k}
        if found:
            kinds[c] = found.pop() if len(found) == 1 else "text"
    return data, kinds, parquet + csvs


# ----------------------------------------------------------------------------------------------------------- checks
def _texts(values: pd.Index | np.ndarray, f: Field, native: bool) -> pd.Series:
    """The trimmed text of each distinct value (NaN: missing): what the checks and the error line show."""
    s = pd.Series(values)
    if native and f.kind == "date":
        return pd.Series(pd.DatetimeIndex(values).strftime("%Y-%m-%d"), dtype="str")
    if native:
        return s.astype("int64").astype("str")
    text = s.astype("str").str.strip()
    return text.where(text != "")


def _typed(f: Field, native: bool, values: pd.Index | np.ndarray, text: pd.Series) -> pd.Series:
    """The contract-typed value of each distinct value (NaN/NaT where the text is not valid)."""
    if f.kind == "str":
        return text.where(text != "-") if f.name == "OPERTN_4_01" else text
    if f.kind == "int":
        if native:
            return pd.Series(values, dtype="float64")
        number = pd.to_numeric(text, errors="coerce")
        return number.where((number == np.floor(number)) & (number.abs() < 1e15))
    if f.kind == "date":
        if native:
            return pd.Series(pd.DatetimeIndex(values).as_unit("s"))
        iso = text.str.fullmatch(ISO_DATE).fillna(False).astype(bool)
        return pd.to_datetime(text.where(iso), format="%Y-%m-%d", errors="coerce").dt.as_unit("s")
    ok = text.str.fullmatch(TIME).fillna(False).astype(bool) & (text != "4000")
    return text.str.replace(":", "", regex=False).where(ok)


def _checks(f: Field, native: bool, text: pd.Series, typed: pd.Series) -> list[tuple[str, pd.Series, str]]:
    """(problem id, which distinct values fail, message after 'value "…"') of one column, in the contract's order."""
    missing = text.isna()
    if f.kind == "time":
        missing |= text == "4000"
    if f.name == "OPERTN_4_01":
        missing |= text == "-"
    has = typed.notna()
    out = []
    if not f.nullable:
        out.append(("missing", missing, ""))
    if f.kind in KIND_WORD and not native:
        out.append(("type", ~missing & ~has, f" is not {KIND_WORD[f.kind]}"))
    allowed = f" ({f.describe})" if f.describe else ""
    if f.codes is not None:
        out.append(("code", has & ~typed.isin(f.codes), " is not an allowed code" + allowed))
    if f.pattern is not None:
        match = typed.str.fullmatch(f.pattern).fillna(False).astype(bool) if has.any() else has
        out.append(("pattern", has & ~match, f" is not {f.describe or 'valid'}"))
    if f.lo is not None and f.hi is not None:
        outside = has & ((typed < f.lo) | (typed > f.hi))
        allowed = f" ({f.lo}-{f.hi})"
        if f.infant_codes:
            outside &= ~typed.between(*INFANT_AGES)
            allowed = f" ({f.lo}-{f.hi}, or {INFANT_AGES[0]}-{INFANT_AGES[1]} for ages under one year)"
        out.append(("range", outside, " is out of range" + allowed))
    if f.kind == "date":
        for day, what in SENTINEL_DATES.items():
            out.append(("sentinel", has & (typed == pd.Timestamp(day)), f" is {what}"))
        plausible = typed.between(pd.Timestamp(MIN_DATE), pd.Timestamp(MAX_DATE))
        out.append(("implausible", has & ~plausible, " is not a plausible date (years 1900-2100)"))
    return out


def _column(f: Field, raw: pd.Series, kind: str, by_row: bool) -> _Column:
    """One column's checks: on its distinct values (``pandas.factorize``; code -1 for the missing value, whose checks
    are the last entry of ``problem``), or row by row (``by_row``: the key and the patient id, a distinct value in
    nearly every row, where factorising would cost more than it saves)."""
    native = kind == f.kind and kind in ("int", "date")
    if by_row:
        codes, values = np.arange(len(raw)), raw.reset_index(drop=True)
    else:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        values = pd.Series(uniques)
    text = _texts(values.to_numpy() if native else values, f, native)
    typed = _typed(f, native, values.to_numpy() if native else values, text)
    checks = _checks(f, native, text, typed)
    problem = np.zeros(len(text) + 1, np.int16)
    for k, (pid, mask, _msg) in reversed(list(enumerate(checks))):
        problem[:-1][mask.to_numpy(bool)] = k + 1
        if pid == "missing":
            problem[-1] = k + 1
    normal = native
    if f.kind == "str":  # the raw text is already the typed value (trimmed, not '' or '-'): passed through as read
        same = (text == values).fillna(False).astype(bool) | (values.isna() & text.isna())
        normal = bool(same.all()) and (f.name != "OPERTN_4_01" or not (text == "-").any())
    return _Column(f, native, codes, text, typed, problem, [c[2] for c in checks], by_row, normal)


def _row_values(col: _Column) -> pd.Series:
    """The column's typed value in every row."""
    if col.by_row:
        return col.typed.reset_index(drop=True)
    return pd.Series(col.typed.array.take(col.codes, allow_fill=True))


def _order_problems(ds: Dataset, cols: dict[str, _Column]) -> list[tuple[str, str, np.ndarray]]:
    """(earlier, later, rows where the later date is before the earlier) for the date pairs present."""
    out = []
    for a, b in ds.order:
        if a in cols and b in cols:
            ta, tb = _row_values(cols[a]).to_numpy(), _row_values(cols[b]).to_numpy()
            out.append((a, b, ta > tb))  # NaT compares False
    return out


def _first_problem(data: pd.DataFrame, ds: Dataset, cols: dict[str, _Column]) -> None:
    """Raise the first failing check of the first bad row (by file, then row number), as the DuckDB contract does."""
    order = _order_problems(ds, cols)
    bad = np.zeros(len(data), bool)
    for col in cols.values():
        bad |= col.problem[col.codes] > 0
    for _a, _b, wrong in order:
        bad |= wrong
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    files, numbers = data["source_file"].to_numpy()[rows], data["source_row"].to_numpy()[rows]
    i = rows[np.lexsort((numbers, files.astype(str)))[0]]
    file, row = str(data["source_file"].iat[i]), int(data["source_row"].iat[i])
    for name, col in cols.items():
        k = int(col.problem[col.codes[i]])
        if k:
            message = col.checks[k - 1]
            if message:  # every check but "missing" names the value
                message = f'value "{str(col.text.iat[col.codes[i]])[:40]}"' + message
            raise InputError(message or "is empty (a value is required)", file=file, row=row, column=name)
    for a, b, wrong in order:
        if wrong[i]:
            ta, tb = (_row_values(cols[c]).iat[i].strftime("%Y-%m-%d") for c in (a, b))
            raise InputError(f"{b} {tb} is before {a} {ta}", file=file, row=row, column=b)


def _check_unique(data: pd.DataFrame, ds: Dataset, key: pd.Series) -> None:
    """The key (typed) is unique across the dataset's files; the error names the second row of the first repeated
    key (keys ordered by their first file, then their first row number) and the first in its message."""
    if key.is_unique:
        return
    dup = key.duplicated(keep=False).to_numpy()
    rows = pd.DataFrame({"key": key[dup], "file": data["source_file"][dup], "row": data["source_row"][dup]})
    firsts = rows.groupby("key").agg(file=("file", "min"), row=("row", "min")).sort_values(["file", "row"])
    value = firsts.index[0]
    two = rows[rows["key"] == value].sort_values(["file", "row"]).head(2)
    (f0, r0), (f1, r1) = two[["file", "row"]].itertuples(index=False)
    raise InputError(f"{ds.key} {value!r} is not unique (also in {f0} row {r0})", file=f1, row=int(r1), column=ds.key)


def _typed_frame(ds: Dataset, data: pd.DataFrame, cols: dict[str, _Column]) -> pd.DataFrame:
    out = {}
    for f in ds.fields:
        if f.name not in cols:  # an optional column absent from every file: missing in every row
            empty = {"str": "str", "time": "str", "int": "float64", "date": "datetime64[s]"}[f.kind]
            out[f.name] = pd.Series(np.nan, index=data.index, dtype=empty)
            continue
        values = data[f.name] if cols[f.name].normal else _row_values(cols[f.name])
        if f.kind == "int" and values.notna().all():
            values = values.astype("int64")
        out[f.name] = values.set_axis(data.index)
    out["source_file"], out["source_row"] = data["source_file"], data["source_row"]
    return pd.DataFrame(out)


def read_dataset(root: Path | str, ds: Dataset, fmt: str = "auto") -> tuple[pd.DataFrame, dict[str, str]]:
    """One dataset folder as read (raw columns, ``source_file``, ``source_row``) and each column's kind; unreadable
    files and missing columns are refused here."""
    data, kinds, _files = _read_dataset(Path(root), ds, fmt)
    return data, kinds


def check_dataset(ds: Dataset, data: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Check every row of a dataset as read; its contract columns in the contract types (see the module docstring)."""
    by_row = {ds.key, *ROW_CHECKED}
    cols = {f.name: _column(f, data[f.name], kinds[f.name], f.name in by_row) for f in ds.fields if f.name in kinds}
    _first_problem(data, ds, cols)
    key = cols[ds.key]
    _check_unique(data, ds, data[ds.key] if key.normal else _row_values(key).set_axis(data.index))
    return _typed_frame(ds, data, cols)


def validate_dataset(root: Path | str, ds: Dataset, fmt: str = "auto") -> pd.DataFrame:
    """Read and check one dataset folder (:func:`read_dataset`, :func:`check_dataset`)."""
    return check_dataset(ds, *read_dataset(root, ds, fmt))


def load_records_pandas(
    root: Path | str, datasets: Sequence[str] = ("apc", "op", "ae"), fmt: str = "auto"
) -> dict[str, pd.DataFrame]:
    """Validate the record-level folders under ``root`` with pandas; raises :class:`InputError` (one line: file, row,
    column) for the first problem, as :func:`.contract.load_records` does."""
    root = record_root(root, datasets)
    return {name: validate_dataset(root, DATASETS[name], fmt) for name in datasets}
