"""What one notebook hands to the next, as content-addressed files: a **bundle** of tables and plain values.

A metric notebook's results (its table, history, model and funnel summaries, notes) and the league notebook's
league are written as a JSON file naming Parquet files by the SHA-256 of their bytes; the pipeline keeps them in the
store (``<out>/.inputs/``, :mod:`leaguetables.inputs.store`) under their own SHA-256, and the report notebook is
given the paths of the JSON files as parameters. Reading a bundle checks every file against its name.

The round trip is exact (no pickle): each table's column dtypes and ``attrs`` are recorded beside it and restored
on read (Parquet reads text columns back as pandas' ``str`` dtype; an ``object`` column is made ``object`` again),
floats keep every bit, an ``object`` column's missing values come back as the None or NaN they were, and the plain values are JSON with tuples tagged (``{"__tuple__": [...]}``) so that they
come back as tuples. :func:`write_bundle` reads what it wrote and refuses a table that would not come back equal.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.errors import InputError
from leaguetables.inputs.store import read_verified, write_bytes

BUNDLE = "bundle.json"  # the suffix of a bundle's JSON file in the working folder: ``<name>.bundle.json``
_TUPLE = "__tuple__"


def _plain(value):
    """``value`` as JSON-ready data: tuples tagged, numpy scalars as Python numbers, dict keys kept (strings)."""
    if isinstance(value, tuple):
        return {_TUPLE: [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"bundle values: dict keys must be strings, found {sorted(map(repr, value))}")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"bundle values: {type(value).__name__} cannot be written as JSON")


def _unplain(value):
    if isinstance(value, dict):
        if set(value) == {_TUPLE}:
            return tuple(_unplain(v) for v in value[_TUPLE])
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


def _json_bytes(value) -> bytes:
    return json.dumps(value, indent=1, allow_nan=True).encode("utf-8")  # dicts in their order (it is shown)


def _frame_entry(df: pd.DataFrame, folder: Path) -> dict | None:
    """Write ``df`` as ``<folder>/<sha256>.parquet``; its entry in the bundle (None: an empty frame, no columns)."""
    if df.shape == (0, 0):
        return None
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
        raise TypeError("bundle tables: a default index expected (reset_index first)")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    path = write_bytes(buf.getvalue(), folder, ".parquet")
    objects = [c for c in df.columns if df[c].dtype == object]
    return {
        "file": path.name,
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "attrs": _plain(df.attrs),
        "none_rows": {str(c): np.flatnonzero(df[c].map(lambda v: v is None).to_numpy(bool)).tolist() for c in objects},
    }


def _read_frame(entry: dict | None, folder: Path) -> pd.DataFrame:
    if entry is None:
        return pd.DataFrame()
    df = pd.read_parquet(io.BytesIO(read_verified(folder / entry["file"], "table of a bundle")))
    for col, dtype in entry["dtypes"].items():
        if str(df[col].dtype) != dtype:
            df[col] = df[col].astype(dtype)
    for col, rows in entry["none_rows"].items():  # Parquet has one null: None here, NaN elsewhere, as written
        values = df[col].to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = np.nan
        values[rows] = None
        df[col] = pd.Series(values, index=df.index, dtype=object)
    df.attrs = _unplain(entry["attrs"])
    return df


def _check_same(back: pd.DataFrame, df: pd.DataFrame, name: str) -> None:
    """``back`` equals ``df``: columns, dtypes, values to the last bit, the Python type of every ``object`` cell,
    attrs; else a ValueError (a table this module cannot write exactly)."""
    try:
        pd.testing.assert_frame_equal(back, df, check_exact=True)
    except AssertionError as exc:
        raise ValueError(f"bundle table {name} does not read back equal: {exc}") from None
    same_types = all(back[c].map(type).equals(df[c].map(type)) for c in df.columns if df[c].dtype == object)
    if not same_types or back.attrs != df.attrs:
        raise ValueError(f"bundle table {name} does not read back equal (object cells' types or attrs)")


def write_bundle(frames: dict[str, pd.DataFrame | None], values: dict, folder: Path | str, name: str) -> Path:
    """Write tables (Parquet, named by SHA-256, in ``folder``) and plain values as ``<folder>/<name>.bundle.json``;
    return its path. A table that would not read back equal (dtypes, values to the last bit, attrs) is an error."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {k: (None if df is None else _frame_entry(df, folder)) for k, df in frames.items()}
    nulls = [k for k, df in frames.items() if df is None]
    for k, entry in entries.items():
        if entry is not None:
            _check_same(_read_frame(entry, folder), frames[k], k)
    doc = {"frames": entries, "none": nulls, "values": _plain(values)}
    path = folder / f"{name}.{BUNDLE}"
    path.write_bytes(_json_bytes(doc))
    return path


def files_of(path: Path | str) -> list[Path]:
    """The Parquet files a bundle's JSON names (in its folder)."""
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    return sorted({path.parent / e["file"] for e in doc["frames"].values() if e is not None})


def keep_bundle(path: Path | str, store_dir: Path) -> Path:
    """Copy a bundle (its JSON and the tables it names) into the store; the JSON is kept under its SHA-256 (the
    tables already are). Returns the kept JSON's path: what a notebook is given."""
    for f in files_of(path):
        write_bytes(f.read_bytes(), store_dir, ".parquet")
    return write_bytes(Path(path).read_bytes(), store_dir, ".json")


def read_bundle(path: Path | str, what: str) -> tuple[dict[str, pd.DataFrame | None], dict]:
    """``(tables, values)`` of a bundle kept in the store (:func:`keep_bundle`): every file checked against its
    name (:class:`InputError` naming a changed file)."""
    path = Path(path)
    try:
        doc = json.loads(read_verified(path, what))
        entries, values = doc["frames"], doc["values"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{what}: not a bundle ({exc})", file=str(path)) from None
    frames: dict[str, pd.DataFrame | None] = {
        k: (None if k in doc.get("none", ()) else _read_frame(e, path.parent)) for k, e in entries.items()
    }
    return frames, _unplain(values)
