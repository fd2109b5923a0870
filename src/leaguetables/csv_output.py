"""The published CSV format, shared by every stage that writes a table: deterministic (UTF-8, ``\\n`` line ends,
10 significant digits), no non-finite number, and no cell a spreadsheet would evaluate as a formula."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting with these as a formula
_NUMERIC_TEXT = re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?( to -?\d+(\.\d+)?)?", re.IGNORECASE)
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: The first columns of a published table with one row per trust and metric (productivity.csv, spc.csv).
TRUST_METRIC_COLUMNS = ("quarter", "trust_code", "trust_name", "trust_type", "metric_id", "metric_name")


def safe_cell(value):
    """Text that is safe in a spreadsheet cell (OWASP, CSV injection): a string beginning with ``=``, ``+``, ``-``,
    ``@``, tab or carriage return is prefixed with a single quote, so that Excel, LibreOffice and Google Sheets
    show it as text instead of evaluating it (``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``). Numbers written as text by the
    project (``-1.6``, ``-1.6 to 2.00``) are left alone; control and bidirectional-override characters (refused in
    the inputs) are removed as a last line of defence. Anything that is not a string is returned unchanged."""
    if not isinstance(value, str):
        return value
    value = _UNSAFE_TEXT.sub("", value)
    if value.startswith(FORMULA_START) and not _NUMERIC_TEXT.fullmatch(value):
        return "'" + value
    return value


def published_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame as it may be published: ±infinity (a figure that could not be computed, e.g. a log of zero events)
    becomes empty — ``[x]`` in the spreadsheet — and every text cell is made spreadsheet-safe (:func:`safe_cell`).
    Returns the frame and the number of non-finite values blanked per column."""
    out = df.copy()
    blanked = {}
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_float_dtype(col.dtype):
            bad = np.isinf(col.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                blanked[str(c)] = int(bad.sum())
                out[c] = col.mask(bad)
        elif pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype):
            vals = col.to_numpy(dtype=object)
            bad = np.array([isinstance(v, float) and bool(np.isinf(v)) for v in vals], dtype=bool).reshape(-1)
            if bad.any():
                blanked[str(c)] = int(bad.sum())
            out[c] = pd.Series([None if b else safe_cell(v) for v, b in zip(vals, bad)], index=out.index, dtype=object)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out, blanked


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: UTF-8, ``\\n`` line ends, 10 significant digits, no index; no non-finite number and no
    cell a spreadsheet would evaluate (:func:`published_frame`). A value blanked for being non-finite is reported
    as a warning (a one-line note in run_quarter.py's output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df, blanked = published_frame(df)
    for col, n in blanked.items():
        warnings.warn(
            f"{path.name}: {n} value(s) of {col} could not be computed (not finite); published as "
            "empty ([x] in the spreadsheet)",
            stacklevel=2,
        )
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g", encoding="utf-8")
