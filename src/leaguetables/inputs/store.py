"""Validated inputs written as files: what the notebooks are given, as paths in their ``parameters`` cell.

The pipeline validates the four contract files once (:func:`leaguetables.inputs.contract.load_inputs`, with the
cross-file checks), then writes the validated tables here, one CSV per table, each **content-addressed**: the file
name is the SHA-256 of its bytes (``<store>/<sha256>.csv``). A notebook reads them back with :func:`read_inputs`,
which checks every file's bytes against its name and validates it against the contract's schema — so a notebook
can be rerun from its parameters alone (``papermill notebooks/metric.ipynb out.ipynb -p metric_id … -p
observations …``), and the cache (:mod:`leaguetables.run.cache`) keys each stage on the names of the files it reads.

The files are canonical: columns in the contract's order, UTF-8, ``\\n`` line ends, numbers written so that they
read back exactly (``repr`` of the float), missing values empty. A metric notebook is given its own metric's
observations only (:func:`metric_observations`), so a change to one metric's data changes that metric's file and
key alone. Files stay in the store (``<out>/.inputs/``) after the run: the executed notebooks name them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leaguetables.errors import InputError
from leaguetables.inputs.contract import (
    BOOLEAN,
    FILES,
    NULLABLE_BOOLEAN,
    NULLABLE_TEXT,
    NUMERIC,
    SCHEMAS,
    QuarterInputs,
    _validate,
    quarter_key,
)

STORE_DIR = ".inputs"  # under the reports folder: the validated inputs of every run, by content


def _dtypes(kind: str, columns) -> dict[str, object]:
    """The pandas dtype of each column of a validated table of ``kind`` (what :func:`read_frame` parses)."""
    out: dict[str, object] = {}
    for col in columns:
        if col in NUMERIC.get(kind, ()):
            out[col] = "float64"
        elif col in NULLABLE_BOOLEAN.get(kind, ()):
            out[col] = "boolean"
        elif col in BOOLEAN.get(kind, ()):
            out[col] = bool
        else:
            out[col] = str
    return out


def frame_bytes(df: pd.DataFrame) -> bytes:
    """The canonical CSV bytes of a validated table (floats in full precision, missing values empty)."""
    return df.to_csv(index=False, lineterminator="\n", encoding="utf-8").encode("utf-8")


def write_frame(df: pd.DataFrame, folder: Path) -> Path:
    """Write a validated table as ``<folder>/<sha256 of its bytes>.csv`` (atomically; an existing file with that
    name already holds exactly these bytes and is kept). Returns its path."""
    return write_bytes(frame_bytes(df), folder, ".csv")


def keep_file(path: Path, folder: Path) -> Path:
    """A copy of the file ``path`` in the store ``folder``, named by the SHA-256 of its bytes (its suffix kept):
    e.g. a metric notebook's result table, which the league notebook is given (:func:`read_verified`)."""
    return write_bytes(Path(path).read_bytes(), folder, Path(path).suffix)


def read_verified(path: str | Path, what: str) -> bytes:
    """The bytes of a content-addressed file, checked against its name; :class:`InputError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what} cannot be read ({exc.strerror or exc})", file=str(path)) from None
    if hashlib.sha256(data).hexdigest() != path.stem:
        raise InputError(
            f"{what}: the file's SHA-256 is not its name (it was changed after it was written)", file=str(path)
        )
    return data


def write_bytes(data: bytes, folder: Path, suffix: str) -> Path:
    """Write ``data`` as ``<folder>/<sha256 of data><suffix>`` (atomically; an existing file with that name already
    holds exactly these bytes and is kept). Returns its path."""
    folder = Path(folder)
    path = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_frame(kind: str, path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_frame` and validate it: its bytes must hash to its name, its columns
    and values must satisfy the contract's schema of ``kind``. Raises :class:`InputError` naming the file."""
    if kind not in SCHEMAS:
        raise InputError(f"unknown input table {kind!r}; expected one of {list(FILES)}")
    path = Path(path)
    data = read_verified(path, f"{kind} input")
    header = data.split(b"\n", 1)[0].decode("utf-8").split(",")
    expected = [c for c in SCHEMAS[kind].columns if c in header]
    if header != expected:
        raise InputError(f"{kind} input: columns {header}, expected {list(SCHEMAS[kind].columns)}", file=str(path))
    nullable = (*NUMERIC.get(kind, ()), *NULLABLE_BOOLEAN.get(kind, ()), *NULLABLE_TEXT.get(kind, ()))
    text_na = {c: [""] for c in header if c in nullable}  # other text is read as it is ("" allowed or invalid)
    # pandas' default float parser reads back exactly what repr() wrote (its float_precision argument is deprecated)
    df = pd.read_csv(path, dtype=_dtypes(kind, header), keep_default_na=False, na_values=text_na, encoding="utf-8")
    for col in NULLABLE_TEXT.get(kind, ()):
        if col in df.columns:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    for col, dtype in _dtypes(kind, header).items():
        if dtype is str:
            df[col] = df[col].astype(object)
    return _validate(kind, df, path)


def empty_frame(kind: str) -> pd.DataFrame:
    """A validated table of ``kind`` with no rows (for a stage that does not read that table)."""
    cols = [c for c in SCHEMAS[kind].columns if c not in ("tiebreak",)]
    return pd.DataFrame({c: pd.Series(dtype=t if t is not str else object) for c, t in _dtypes(kind, cols).items()})


def metric_observations(inputs: QuarterInputs, quarter: str, metric_ids: list[str]) -> dict[str, pd.DataFrame]:
    """The observations each metric notebook reads: its own metric's rows, quarters up to ``quarter``, in file
    order (empty for a metric with no row)."""
    obs = inputs.observations
    upto = [q for q in obs["quarter"].unique() if quarter_key(q) <= quarter_key(quarter)]
    obs = obs.loc[obs["quarter"].isin(upto)]
    groups = {m: g.reset_index(drop=True) for m, g in obs.groupby("metric_id", sort=False)}
    return {m: groups.get(m, obs.iloc[:0].reset_index(drop=True)) for m in metric_ids}


def quarters_up_to(inputs: QuarterInputs, quarter: str) -> str:
    """The quarters of the inputs up to ``quarter``, comma-separated (a metric notebook's ``quarters`` parameter: a
    quarter with no row for its metric is still a quarter of the data)."""
    return ",".join(q for q in inputs.quarters() if quarter_key(q) <= quarter_key(quarter))


@dataclass(frozen=True)
class InputFiles:
    """The validated inputs of a run as files in the store: the paths the notebooks are given."""

    trusts: Path
    observations: Path
    demographics: Path
    status: Path
    metrics: dict[str, Path]  # metric id -> that metric's observations up to the quarter
    quarters: str  # quarters of the inputs up to the run's quarter, comma-separated

    def common(self) -> dict[str, str]:
        """The parameters of the league and report notebooks for the inputs."""
        return {
            "trusts": str(self.trusts),
            "observations": str(self.observations),
            "demographics": str(self.demographics),
            "status": str(self.status),
        }

    def metric(self, metric_id: str) -> dict[str, str]:
        """The parameters of a metric notebook for the inputs (no status: a metric does not read it)."""
        return {
            "trusts": str(self.trusts),
            "observations": str(self.metrics[metric_id]),
            "demographics": str(self.demographics),
            "quarters": self.quarters,
        }


def write_inputs(inputs: QuarterInputs, folder: Path, quarter: str, metric_ids: list[str]) -> InputFiles:
    """Write the validated inputs of a run into the store ``folder`` (see the module docstring)."""
    return InputFiles(
        trusts=write_frame(inputs.trusts, folder),
        observations=write_frame(inputs.observations, folder),
        demographics=write_frame(inputs.demographics, folder),
        status=write_frame(inputs.status, folder),
        metrics={m: write_frame(df, folder) for m, df in metric_observations(inputs, quarter, metric_ids).items()},
        quarters=quarters_up_to(inputs, quarter),
    )


def read_inputs(
    trusts: str | Path,
    observations: str | Path,
    demographics: str | Path,
    status: str | Path = "",
    quarters: str = "",
    checksums: dict[str, str] | None = None,
) -> QuarterInputs:
    """The validated inputs a notebook was given (paths written by :func:`write_inputs`). ``status`` may be empty
    (a metric notebook does not read it: an empty table); ``quarters`` (comma-separated) fixes the quarters of the
    data when ``observations`` holds one metric's rows only; ``checksums`` are the SHA-256 of the contract files the
    inputs were validated from, by file name (shown in the report's provenance)."""
    files = {"trusts": Path(trusts), "observations": Path(observations), "demographics": Path(demographics)}
    if status:
        files["status"] = Path(status)
    frames = {k: read_frame(k, p) for k, p in files.items()}
    if "status" not in frames:
        frames["status"] = empty_frame("status")
    listed = tuple(q for q in quarters.split(",") if q) if quarters else None
    return QuarterInputs(files=files, all_quarters=listed, checksums=checksums, **frames)
