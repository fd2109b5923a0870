"""The data contract: the four inputs of a quarter, validated on load.

Whatever their source (the synthetic demo, NHS England's published files, an analyst's extract), the inputs of a
quarter are four CSV files in one folder — see ``docs/data-contract.md``:

* ``trusts.csv`` — the trust register;
* ``observations.csv`` — one row per quarter × trust × metric;
* ``demographics.csv`` — catchment population and covariates per trust;
* ``status.csv`` — finance and status flags per trust and quarter.

Every problem is reported as an :class:`~leaguetables.errors.InputError` naming the file, the row (as a line
number in the file, the header being line 1) and the column, so that a statistician can open the file and go
straight to it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leaguetables.config import TRUST_TYPES, Catalogue, Metric
from leaguetables.errors import InputError
from leaguetables.modules import without_module
from leaguetables.quarters import QUARTER_RE, check_quarter, quarter_key

# pandera's import tries ``import pyspark.pandas`` (pyspark patches pandas for its type hints), which imports the
# whole of pyspark (installed for the Spark parity test): ~0.2 CPU-s in every process that validates, the run's and
# each kernel's, for an API the contract does not use. Hidden while pandera is imported, importable afterwards.
with without_module("pyspark.pandas"):
    import pandera.pandas as pa

TRUST_CODE_RE = r"^[A-Z0-9][A-Z0-9-]{1,15}$"
MAX_COUNT = 1e10  # larger counts are not plausible for one trust in one quarter
MAX_VALUE = 1e7

FILES = ("trusts", "observations", "demographics", "status")


def previous_quarter(quarter: str) -> str:
    year, q = quarter_key(quarter)
    if q > 1:
        return f"{year}-{(year + 1) % 100:02d}-Q{q - 1}"
    return f"{year - 1}-{year % 100:02d}-Q4"


def quarter_label(quarter: str) -> str:
    """``2025-26-Q4`` → ``Q4 2025/26`` (NHS England's style)."""
    year, q = quarter_key(quarter)
    return f"Q{q} {year}/{(year + 1) % 100:02d}"


def quarter_period(quarter: str) -> str:
    """``2025-26-Q4`` → ``January to March 2026``."""
    year, q = quarter_key(quarter)
    months = {
        1: ("April", "June", year),
        2: ("July", "September", year),
        3: ("October", "December", year),
        4: ("January", "March", year + 1),
    }[q]
    return f"{months[0]} to {months[1]} {months[2]}"


# ----------------------------------------------------------------------------------------------------------- schemas
_str: dict[str, Any] = dict(nullable=False, coerce=False)

TRUSTS = pa.DataFrameSchema(
    {
        "trust_code": pa.Column(str, pa.Check.str_matches(TRUST_CODE_RE), unique=True, **_str),
        "trust_name": pa.Column(str, pa.Check.str_length(1, 200), **_str),
        "trust_type": pa.Column(str, pa.Check.isin(TRUST_TYPES), **_str),
        "trust_subtype": pa.Column(str, pa.Check.str_length(0, 100), **_str),
        "region": pa.Column(str, pa.Check.str_length(1, 100), **_str),
    },
    strict=True,
    name="trusts",
)

OBSERVATIONS = pa.DataFrameSchema(
    {
        "quarter": pa.Column(str, pa.Check.str_matches(QUARTER_RE.pattern), **_str),
        "trust_code": pa.Column(str, **_str),
        "metric_id": pa.Column(str, **_str),
        "numerator": pa.Column(float, [pa.Check.ge(0), pa.Check.le(MAX_COUNT)], nullable=True),
        "denominator": pa.Column(float, [pa.Check.gt(0), pa.Check.le(MAX_COUNT)], nullable=True),
        "value": pa.Column(float, [pa.Check.ge(-MAX_VALUE), pa.Check.le(MAX_VALUE)], nullable=True),
        "category": pa.Column(str, nullable=True),
        "suppressed": pa.Column(bool, nullable=False),
        # optional: the publisher's rank of the unrounded value within the trust type (1 = best), used only to
        # order values that are equal as published (NHS England ranks unrounded values; see metrics._scores)
        "tiebreak": pa.Column(float, [pa.Check.ge(1), pa.Check.le(100_000)], nullable=True, required=False),
        # optional: the variance of a numerator that is not a Poisson count (a sum of lengths of stay), for the
        # metrics whose catalogue entry says numerator_variance: reported (their interval: rates.scaled_poisson_limits)
        "numerator_variance": pa.Column(float, [pa.Check.ge(0), pa.Check.le(MAX_VALUE)], nullable=True, required=False),
    },
    strict=True,
    unique=["quarter", "trust_code", "metric_id"],
    name="observations",
)

_share = [pa.Check.ge(0), pa.Check.le(1)]
DEMOGRAPHICS = pa.DataFrameSchema(
    {
        "trust_code": pa.Column(str, unique=True, **_str),
        "population": pa.Column(float, [pa.Check.gt(0), pa.Check.le(1e8)], nullable=True),
        "share_65plus": pa.Column(float, _share, nullable=True),
        "share_85plus": pa.Column(float, _share, nullable=True),
        "imd_score": pa.Column(float, [pa.Check.ge(0), pa.Check.le(100)], nullable=True),
        "rural_share": pa.Column(float, _share, nullable=True),
        "ethnic_minority_share": pa.Column(float, _share, nullable=True),
    },
    strict=True,
    name="demographics",
)

STATUS = pa.DataFrameSchema(
    {
        "quarter": pa.Column(str, pa.Check.str_matches(QUARTER_RE.pattern), **_str),
        "trust_code": pa.Column(str, **_str),
        # empty = unknown (the source does not say): published as [x], never as "No"
        "deficit": pa.Column("boolean", nullable=True),
        "deficit_support": pa.Column("boolean", nullable=True),
        "improvement_programme": pa.Column("boolean", nullable=True),
    },
    strict=True,
    unique=["quarter", "trust_code"],
    name="status",
)

SCHEMAS = {"trusts": TRUSTS, "observations": OBSERVATIONS, "demographics": DEMOGRAPHICS, "status": STATUS}
#: Columns a file may leave out (absent = empty).
OPTIONAL = {"observations": ("tiebreak", "numerator_variance")}
NUMERIC = {
    "observations": ("numerator", "denominator", "value", "tiebreak", "numerator_variance"),
    "demographics": ("population", "share_65plus", "share_85plus", "imd_score", "rural_share", "ethnic_minority_share"),
}
BOOLEAN = {"observations": ("suppressed",), "status": ("deficit", "deficit_support", "improvement_programme")}
NULLABLE_TEXT = {"observations": ("category",)}
EMPTY_ALLOWED = {"trusts": ("trust_subtype",)}  # text that may be empty (kept as "")
NULLABLE_BOOLEAN = {"status": ("deficit", "deficit_support", "improvement_programme")}
TRUE_WORDS = {"true", "yes", "1", "y"}
FALSE_WORDS = {"false", "no", "0", "n"}


@dataclass(frozen=True)
class QuarterInputs:
    """The validated inputs of a quarter (all quarters of observations, for trends and movement)."""

    trusts: pd.DataFrame
    observations: pd.DataFrame
    demographics: pd.DataFrame
    status: pd.DataFrame
    files: dict[str, Path]
    #: the quarters of the data when ``observations`` holds part of it (a metric notebook's inputs: one metric's
    #: rows, where a quarter with no row for that metric is still a quarter of the data); None: those observed
    all_quarters: tuple[str, ...] | None = None
    #: SHA-256 of the contract files the inputs were validated from, by file name (None: hash ``files``)
    checksums: dict[str, str] | None = None

    def quarters(self) -> list[str]:
        if self.all_quarters is not None:
            return sorted(self.all_quarters, key=quarter_key)
        return sorted(self.observations["quarter"].unique(), key=quarter_key)


def _line(df: pd.DataFrame, i: int) -> int:
    """Row label in messages: the physical line number in the CSV file where the record starts (the header's line
    is 1 when the file starts with it; blank lines and lines continued inside quoted values are counted). The
    frames read by :func:`_read_csv` are indexed by that line number."""
    return int(df.index[i])


# One grammar for every number in the inputs: optional sign, digits with an optional decimal point, optional
# exponent. No thousands separators or decimal commas (``1,234`` and ``1,5`` are ambiguous between locales), no
# digit-group underscores (``1_000``: Python accepts it, no spreadsheet does), no words (``NaN``, ``inf``).
NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII digits only
NON_FINITE_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
MISSING_WORDS = {"na", "n/a", "null", "none", "-", ".."}
# characters never accepted in text: C0/C1 controls (tab and newline included) and the Unicode bidirectional
# controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), which can make one name display as another
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def parse_number(text: str) -> float:
    """``text`` as a finite float under the contract's number grammar; ``ValueError`` with the reason otherwise."""
    t = text.strip()
    if NUMBER_RE.fullmatch(t):
        v = float(t)
        if not math.isfinite(v):
            raise ValueError(f"{t[:40]!r} is not a finite number (too large)")
        return v
    if t.lower() in NON_FINITE_WORDS:
        raise ValueError(f"{t[:40]!r} is not a finite number")
    if t.lower() in MISSING_WORDS:
        raise ValueError(
            f"{t[:40]!r} is not a number (leave the cell empty for a missing value, or mark the row suppressed)"
        )
    if "," in t and NUMBER_RE.fullmatch(t.replace(",", "")):
        raise ValueError(
            f"{t[:40]!r} is not a number: no thousands separators or decimal commas (write 1234.5, "
            "not 1,234.5 or 1234,5)"
        )
    if "_" in t and NUMBER_RE.fullmatch(t.replace("_", "")):
        raise ValueError(f"{t[:40]!r} is not a number: no digit-group underscores (write 1000, not 1_000)")
    raise ValueError(f"{t[:40]!r} is not a number")


def control_character(text: str) -> str | None:
    """The first control or bidirectional-override character of ``text`` as ``U+XXXX``, or None."""
    m = CONTROL_RE.search(text)
    return f"U+{ord(m.group()):04X}" if m else None


def _read_csv(path: Path) -> pd.DataFrame:
    """A contract CSV as text cells, indexed by the physical line number each record starts on."""

    if path.exists() and not path.is_file():
        raise InputError("is a folder or a special file, not a CSV file", file=str(path))
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", file=str(path)) from None
    if not raw.strip():
        raise InputError("file is empty", file=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save the file as UTF-8", file=str(path)
        ) from None
    if "\x00" in text:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"contains NUL bytes (not a text file; first at line {line})", file=str(path))
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows, lines = [], []
    start = 1
    try:
        for rec in reader:
            line, start = start, reader.line_num + 1
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # a blank line (counted, never a record)
            if header is None:
                header = [c.strip() for c in rec]
                continue
            if len(rec) != len(header):
                raise InputError(f"{len(rec)} fields where the header has {len(header)}", file=str(path), row=line)
            rows.append(rec)
            lines.append(line)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc) or reader.line_num + 1 == start and not text.endswith(("\n", "\r")):
            msg = "not a readable CSV file (a quoted value is never closed)"
        else:
            msg = f"not a readable CSV file ({' '.join(str(exc).split())[:120]})"
        raise InputError(msg, file=str(path), row=start) from None
    if header is None:
        raise InputError("file is empty", file=str(path))
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise InputError(f"duplicate column(s) {dupes}", file=str(path), row=1)
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)


def _each_distinct(df: pd.DataFrame, col: str, path: Path, convert: Callable[[str], Any]) -> dict[str, Any]:
    """``convert`` applied once to each distinct text of ``df[col]`` (the inputs repeat a few quarters, metric ids
    and trust codes over thousands of rows), in the order the texts first appear, so the first text it rejects
    (``ValueError`` or :class:`InputError`) is that of the first bad row in the file: reported with that message,
    the row's line and ``col``."""
    values = df[col].to_numpy()
    done: dict[str, Any] = {}
    for text in pd.unique(values):
        try:
            done[text] = convert(text)
        except (ValueError, InputError) as exc:
            i = int(np.flatnonzero(values == text)[0])
            raise InputError(str(exc), file=str(path), row=_line(df, i), column=col) from None
    return done


def _number_or_nan(text: str) -> float:
    return np.nan if text.strip() == "" else parse_number(text)


def _to_float(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    parsed = _each_distinct(df, col, path, _number_or_nan)
    values = df[col].tolist()
    return pd.Series(np.fromiter(map(parsed.__getitem__, values), float, len(values)), index=df.index, name=col)


def _bool_parser(nullable: bool) -> Callable[[str], bool | None]:
    def parse(text: str) -> bool | None:
        t = text.strip().lower()
        if t in TRUE_WORDS:
            return True
        if t in FALSE_WORDS:
            return False
        if nullable and t == "":
            return None
        raise ValueError(f"{text[:40]!r} is not true/false")

    return parse


def _to_bool(df: pd.DataFrame, col: str, path: Path, nullable: bool = False) -> pd.Series:
    parsed = _each_distinct(df, col, path, _bool_parser(nullable))
    values = list(map(parsed.__getitem__, df[col].tolist()))
    return pd.Series(values, index=df.index, name=col, dtype="boolean" if nullable else bool)


def _no_control_character(text: str) -> None:
    bad = control_character(text)
    if bad is not None:
        raise ValueError(
            f"contains the control or bidirectional-override character {bad}, which is not "
            "allowed in the inputs (it could hide or reorder text where the name is shown)"
        )


def _check_text(df: pd.DataFrame, col: str, path: Path) -> None:
    _each_distinct(df, col, path, _no_control_character)


def _check_quarters(df: pd.DataFrame, path: Path) -> None:
    _each_distinct(df, "quarter", path, check_quarter)


def _coerce(kind: str, df: pd.DataFrame, path: Path) -> pd.DataFrame:
    schema = SCHEMAS[kind]
    optional = OPTIONAL.get(kind, ())
    expected = [c for c in schema.columns if c not in optional or c in df.columns]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; expected {expected}", file=str(path))
    extra = [c for c in df.columns if c not in expected]
    if extra:
        raise InputError(f"unexpected column(s) {extra}; expected {expected}", file=str(path))
    if df.empty:
        raise InputError("file has a header but no rows", file=str(path))
    out = {}
    for col in expected:
        if col in NUMERIC.get(kind, ()):
            out[col] = _to_float(df, col, path)
            continue
        if col in BOOLEAN.get(kind, ()):
            out[col] = _to_bool(df, col, path, nullable=col in NULLABLE_BOOLEAN.get(kind, ()))
            continue
        _check_text(df, col, path)
        s = df[col].str.strip()
        if col in NULLABLE_TEXT.get(kind, ()):
            out[col] = s.where(s != "", None).astype(object)
            continue
        empty = s == ""
        if empty.any() and col not in EMPTY_ALLOWED.get(kind, ()):
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise InputError("empty value", file=str(path), row=_line(df, i), column=col)
        out[col] = s.astype(object)
    frame = pd.DataFrame(out, index=df.index)
    if "quarter" in frame.columns:
        _check_quarters(frame, path)
    return frame


def _validate(kind: str, df: pd.DataFrame, path: Path) -> pd.DataFrame:
    try:
        return SCHEMAS[kind].validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        fc = fc.assign(_idx=pd.to_numeric(fc["index"], errors="coerce")).sort_values("_idx", na_position="first")
        first = fc.iloc[0]
        col = first["column"] if isinstance(first["column"], str) else None
        check = str(first["check"])
        row = None if pd.isna(first["_idx"]) else int(first["_idx"])  # the index is the line number
        value = first["failure_case"]
        if "unique" in check or "duplicate" in check.lower():
            msg = f"duplicate row (same {col or 'key'} as an earlier row)"
        else:
            msg = f"value {str(value)[:60]!r} fails check {check}"
        raise InputError(msg, file=str(path), row=row, column=col) from None


def _check_duplicates(df: pd.DataFrame, keys: list[str], path: Path) -> None:
    dup = df.duplicated(keys, keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        key = ", ".join(f"{k}={df.iloc[i][k]}" for k in keys)
        raise InputError(f"duplicate row for {key}", file=str(path), row=_line(df, i), column=keys[-1])


def _first_bad(mask: pd.Series) -> int | None:
    idx = np.flatnonzero(mask.fillna(False).to_numpy(bool))
    return int(idx[0]) if len(idx) else None


# The cross-field plausibility checks of the contract (docs/data-contract.md lists them with these messages).
PLAUSIBILITY = (
    ("demographics", "share_85plus is at most share_65plus (the over-85s are among the over-65s)"),
    ("observations", "a proportion's numerator is at most its denominator"),
    (
        "observations",
        "a proportion or rate that is not suppressed has a numerator and a denominator (a value alone "
        "is not accepted: the statistics need the counts)",
    ),
    (
        "observations",
        "counts are whole numbers for a metric whose catalogue entry says counts: integer (the "
        "default); measured amounts (FTE days, average beds) are declared counts: real",
    ),
    (
        "observations",
        "a metric whose catalogue entry says numerator_variance: reported has it in every row that is not "
        "suppressed, and no other metric has one",
    ),
    ("observations", "a bracket metric that is not suppressed has a category, one of its brackets"),
    ("observations", "a value or mean metric that is not suppressed has a value (or a numerator and denominator)"),
    ("observations, status", "quarters are canonical YYYY-YY-QN with consecutive years, between 1990-91 and 2099-00"),
)


def _refuse_first(
    df: pd.DataFrame, bad: pd.Series, path: str, column: str, message: str | Callable[[int], str]
) -> None:
    """Raise :class:`InputError` naming the file, the line and ``column`` of the first row of ``df`` where ``bad``
    holds; ``message`` is the text, or a function of that row's position in ``df`` giving it."""
    i = _first_bad(bad)
    if i is not None:
        raise InputError(message(i) if callable(message) else message, file=path, row=_line(df, i), column=column)


def _cross_checks(trusts, obs, demo, status, catalogue: Catalogue | None, files: dict[str, Path]) -> None:
    """The checks across files and fields, in the order their errors are reported: trust codes in the register,
    the age shares, then (with a catalogue) the metrics, their counts, values and categories, and trust types."""
    _check_trust_codes(trusts, {"observations": obs, "demographics": demo, "status": status}, files)
    _check_age_shares(demo, str(files["demographics"]))
    path = str(files["observations"])
    if catalogue is None:
        return
    known = {m.id: m for m in catalogue.metrics}
    _refuse_first(
        obs,
        ~obs["metric_id"].isin(list(known)),
        path,
        "metric_id",
        lambda i: f"unknown metric {obs.iloc[i]['metric_id']!r} (not in catalogue {catalogue.id!r})",
    )
    stat = obs["metric_id"].map({k: m.statistic for k, m in known.items()})
    live = ~obs["suppressed"].astype(bool)
    _check_counts(obs, stat, live, known, path)
    _check_numerator_variance(obs, live, known, path)
    _check_values_and_categories(obs, stat, live, known, path)
    _check_trust_types(obs, trusts, known, path)


def _check_numerator_variance(obs: pd.DataFrame, live: pd.Series, known: dict[str, Metric], path: str) -> None:
    """A row of a metric whose numerator is not a Poisson count (catalogue ``numerator_variance: reported``) gives
    the numerator's variance; no other row does (it would be ignored)."""
    reported = obs["metric_id"].map(
        {k: getattr(m, "numerator_variance", "poisson") == "reported" for k, m in known.items()}
    )
    given = obs["numerator_variance"].notna() if "numerator_variance" in obs.columns else pd.Series(False, obs.index)
    _refuse_first(
        obs,
        reported.astype(bool) & live & ~given,
        path,
        "numerator_variance",
        lambda i: (
            f"no numerator_variance for {obs.iloc[i]['metric_id']!r}, whose numerator is not a Poisson count "
            "(numerator_variance: reported in the catalogue)"
        ),
    )
    _refuse_first(
        obs,
        ~reported.astype(bool) & given,
        path,
        "numerator_variance",
        lambda i: (
            f"a numerator_variance for {obs.iloc[i]['metric_id']!r}, whose catalogue entry treats the "
            "numerator as a Poisson count (numerator_variance: reported to use it)"
        ),
    )


def _check_trust_codes(trusts: pd.DataFrame, frames: dict[str, pd.DataFrame], files: dict[str, Path]) -> None:
    """Every trust code of the other files is in the trust register."""
    codes = set(trusts["trust_code"])
    for kind, df in frames.items():

        def message(i: int, df: pd.DataFrame = df) -> str:
            return f"unknown trust {df.iloc[i]['trust_code']!r} (not in the trust register)"

        _refuse_first(df, ~df["trust_code"].isin(codes), str(files[kind]), "trust_code", message)


def _check_age_shares(demo: pd.DataFrame, path: str) -> None:
    """The share aged 85+ is at most the share aged 65+."""

    def message(i: int) -> str:
        r = demo.iloc[i]
        return (
            f"share aged 85+ ({r['share_85plus']:g}) is above the share aged 65+ "
            f"({r['share_65plus']:g}); the over-85s are among the over-65s"
        )

    _refuse_first(demo, demo["share_85plus"] > demo["share_65plus"], path, "share_85plus", message)


def _check_counts(obs: pd.DataFrame, stat: pd.Series, live: pd.Series, known: dict[str, Metric], path: str) -> None:
    """A proportion or rate that is not suppressed has a numerator and a denominator, a proportion's numerator is
    at most its denominator, and counts are whole numbers where the catalogue says ``counts: integer``."""
    counted = stat.isin(["proportion", "rate"]) & live
    has_num = obs["numerator"].notna()
    _refuse_first(
        obs,
        counted & has_num & obs["denominator"].isna(),
        path,
        "denominator",
        "numerator given without a denominator",
    )
    _refuse_first(
        obs,
        counted & ~has_num,
        path,
        "numerator",
        lambda i: (
            f"{'a value alone' if pd.notna(obs.iloc[i]['value']) else 'no numerator'} for a {stat.iloc[i]} "
            "metric: it needs a numerator and a denominator (or mark the row suppressed)"
        ),
    )
    _refuse_first(
        obs,
        (stat == "proportion") & (obs["numerator"] > obs["denominator"]),
        path,
        "numerator",
        lambda i: (
            f"numerator {obs.iloc[i]['numerator']:g} is above denominator {obs.iloc[i]['denominator']:g} "
            "for a proportion"
        ),
    )
    integer = stat.isin(["proportion", "rate"]) & obs["metric_id"].map(
        {k: getattr(m, "counts", "integer") == "integer" for k, m in known.items()}
    ).astype(bool)
    for col in ("numerator", "denominator"):

        def not_whole(i: int, col: str = col) -> str:
            return (
                f"{obs.iloc[i][col]:g} is not a whole number: {obs.iloc[i]['metric_id']!r} counts "
                "events or people (counts: integer in the catalogue)"
            )

        v = obs[col]
        _refuse_first(obs, integer & v.notna() & (v != np.floor(v)), path, col, not_whole)


def _check_values_and_categories(
    obs: pd.DataFrame, stat: pd.Series, live: pd.Series, known: dict[str, Metric], path: str
) -> None:
    """A value or mean metric that is not suppressed has a value; a bracket metric has a category, one of its
    brackets."""
    _refuse_first(
        obs,
        stat.isin(["mean", "value"]) & live & obs["value"].isna() & obs["numerator"].isna(),
        path,
        "value",
        "no value for a metric reported as a value or mean score (leave the row out, or mark it suppressed)",
    )
    _refuse_first(
        obs,
        (stat == "bracket") & live & obs["category"].isna(),
        path,
        "category",
        lambda i: (
            f"no category for the bracket metric {obs.iloc[i]['metric_id']!r} (give one of its "
            "brackets, or mark the row suppressed)"
        ),
    )
    for mid, m in known.items():
        if m.statistic != "bracket":
            continue
        brackets = list(m.scoring.brackets or {})

        def not_a_bracket(i: int, brackets: list = brackets) -> str:
            return f"category {obs.iloc[i]['category']!r} is not one of {brackets}"

        rows = (obs["metric_id"] == mid) & obs["category"].notna()
        _refuse_first(obs, rows & ~obs["category"].isin(brackets), path, "category", not_a_bracket)


def _check_trust_types(obs: pd.DataFrame, trusts: pd.DataFrame, known: dict[str, Metric], path: str) -> None:
    """Each observation's metric applies to its trust's type (the catalogue's ``trust_types``)."""
    ttype = obs["trust_code"].map(dict(zip(trusts["trust_code"], trusts["trust_type"])))
    pairs = pd.MultiIndex.from_tuples(
        [(k, t) for k, m in known.items() for t in m.trust_types], names=["metric_id", "trust_type"]
    )
    applies = pd.MultiIndex.from_arrays([obs["metric_id"], ttype]).isin(pairs)
    _refuse_first(
        obs,
        ~pd.Series(applies, index=obs.index),
        path,
        "metric_id",
        lambda i: f"metric {obs.iloc[i]['metric_id']!r} does not apply to trust type {ttype.iloc[i]!r}",
    )


def load_inputs(data_dir: Path | str, catalogue: Catalogue | None = None, quarter: str | None = None) -> QuarterInputs:
    """Read and validate the four contract files of ``data_dir``; raise :class:`InputError` on the first problem."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    files = {k: data_dir / f"{k}.csv" for k in FILES}
    frames = {}
    for kind, path in files.items():
        df = _coerce(kind, _read_csv(path), path)
        if kind == "observations":
            _check_duplicates(df, ["quarter", "trust_code", "metric_id"], path)
        elif kind == "status":
            _check_duplicates(df, ["quarter", "trust_code"], path)
        else:
            _check_duplicates(df, ["trust_code"], path)
        frames[kind] = _validate(kind, df, path)
    _cross_checks(frames["trusts"], frames["observations"], frames["demographics"], frames["status"], catalogue, files)
    inputs = QuarterInputs(files=files, **{k: v.reset_index(drop=True) for k, v in frames.items()})
    if quarter is not None:
        check_quarter(quarter)
        if quarter not in set(inputs.observations["quarter"]):
            have = inputs.quarters()
            raise InputError(
                f"quarter {quarter} is not in the data (it has {have[0]} to {have[-1]})",
                file=str(files["observations"]),
                column="quarter",
            )
    return inputs
