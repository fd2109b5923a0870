"""Malformed record-level inputs (the corpus in tests/bad_inputs/records/cases.yaml): each gives one line naming the
file, the row and the column, exit code 2, no traceback, and writes nothing.

Every case runs in-process through the command line's ``main`` (``python -m leaguetables.inputs.records``); the
cases marked ``subprocess: true`` also run as a separate process.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from leaguetables.errors import InputError
from leaguetables.inputs.records.__main__ import main
from leaguetables.inputs.records.contract import load_records
from leaguetables.inputs.records.pandas_contract import load_records_pandas

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "bad_inputs" / "records"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))["cases"]
# one process each for a reader's own error (a damaged Parquet file) and for a message quoting text that was not
# UTF-8 (printed to the process's real stderr); every case, apc_duplicate_key's contract error among them, runs
# in-process through the same ``main`` in test_bad_record_input (issue 13: the unit group's time)
SUBPROCESS = {"apc_parquet_damaged", "op_not_utf8"}
# the reader's own words follow the contract's message in these (DuckDB's and pyarrow's or pandas' differ)
READER_WORDS = {"apc_parquet_damaged", "op_ragged_row"}
QUARTER = "2025-26-Q4"


def _csv(data: Path, dataset: str) -> Path:
    return data / dataset / f"{dataset}.csv"


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _to_parquet(data: Path, spec: dict) -> None:
    src = _csv(data, spec["dataset"])
    names = _rows(src)[0]
    table = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}))
    for col, typ in spec.get("types", {}).items():
        i = table.schema.get_field_index(col)
        table = table.set_column(i, col, table[col].cast(getattr(pa, typ)()))
    pq.write_table(table, src.with_suffix(".parquet"))
    src.unlink()


def _edit(data: Path, op: str, spec: dict) -> None:
    if op == "set":
        path = _csv(data, spec["dataset"])
        rows = _rows(path)
        rows[spec["line"] - 1][rows[0].index(spec["column"])] = str(spec["value"])
        _write_rows(path, rows)
    elif op == "drop_column":
        path = _csv(data, spec["dataset"])
        rows = _rows(path)
        j = rows[0].index(spec["column"])
        _write_rows(path, [r[:j] + r[j + 1 :] for r in rows])
    elif op == "duplicate":
        path = _csv(data, spec["dataset"])
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines.insert(spec["line"], lines[spec["line"] - 1])
        path.write_text("".join(lines), encoding="utf-8")
    elif op == "append":
        path = _csv(data, spec["dataset"])
        path.write_text(path.read_text(encoding="utf-8") + spec["text"] + "\n", encoding="utf-8")
    elif op == "encode":
        path = _csv(data, spec["dataset"])
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[1] += spec.get("insert", "")
        path.write_bytes(("\n".join(lines) + "\n").encode(spec["encoding"]))
    elif op == "to_parquet":
        _to_parquet(data, spec)
    elif op == "write_bytes":
        (data / spec["path"]).write_bytes(bytes.fromhex(spec["hex"]))
    elif op == "copy":
        (data / spec["to"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / spec["path"], data / spec["to"])
    elif op == "delete":
        target = data / spec["path"]
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    elif op == "empty_folder":
        shutil.rmtree(data / spec["dataset"])
        (data / spec["dataset"]).mkdir()
    else:
        raise ValueError(f"unknown edit {op!r}")


def build_case(case: dict, tmp: Path) -> tuple[Path, Path]:
    data = tmp / "records"
    shutil.copytree(CORPUS / "base", data)
    for edit in case.get("edits", []):
        ((op, spec),) = edit.items()
        _edit(data, op, spec)
    return data, tmp / "out"


def expected_line(case: dict, data: Path) -> tuple[str, str]:
    """(the error line's prefix: ``error: <file>, row <n>, column '<col>'``, the message it must contain)."""
    exp = case["expect"]
    parts = [str(data / exp["file"])]
    if "row" in exp:
        parts.append(f"row {exp['row']}")
    if "column" in exp:
        parts.append(f"column {exp['column']!r}")
    return "error: " + ", ".join(parts) + ": ", exp["message"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_record_input(case, tmp_path, capsys):
    """The command refuses each malformed case with one line naming the file, row and column of the case (exit 2,
    nothing written). The plain-pandas contract (the benchmark's baseline validates like the DuckDB contract) stops
    at the same file, row and column with the same line; where a reader's error is quoted, with the same start. (One
    test per case, so that each malformed folder is built and validated by DuckDB once.)"""
    data, out = build_case(case, tmp_path)
    code = main([str(data), QUARTER, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    prefix, message = expected_line(case, data)
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), (lines[0], prefix)  # the prefix ends ": ": no other row or column named
    assert message in lines[0], (lines[0], message)
    assert not out.exists()
    assert not any(p.name.startswith(".out-") for p in tmp_path.iterdir())
    with pytest.raises(InputError) as pand:
        load_records_pandas(data)
    p, exp = pand.value, case["expect"]
    assert (str(p.file), p.row, p.column) == (str(data / exp["file"]), exp.get("row"), exp.get("column"))
    pandas_line = f"error: {' '.join(str(p).split())}"
    if case["id"] in READER_WORDS:
        assert pandas_line.startswith(prefix) and message in pandas_line, pandas_line
    else:
        assert pandas_line == lines[0]


@pytest.mark.parametrize("case", [c for c in CASES if c["id"] in SUBPROCESS], ids=sorted(SUBPROCESS))
def test_bad_record_input_command_line(case, tmp_path):
    data, out = build_case(case, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "leaguetables.inputs.records", str(data), QUARTER, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    prefix, message = expected_line(case, data)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert proc.returncode == 2
    assert len(lines) == 1 and lines[0].startswith(prefix) and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_base_is_valid(tmp_path):
    """The corpus's base folder is valid: every error above comes from its one edit."""
    assert main([str(CORPUS / "base"), QUARTER, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "observations.csv").is_file()


def test_pandas_validator_accepts_the_base_with_the_contract_types(tmp_path):
    """On the valid base both contracts give the same typed rows (dates as dates, '-' as no operation)."""
    duck = load_records(CORPUS / "base")
    pand = load_records_pandas(CORPUS / "base")
    for name in ("apc", "op", "ae"):
        expected = duck.con.execute(f"SELECT * FROM {name} ORDER BY source_file, source_row").df()
        got = pand[name]
        assert list(got.columns) == list(expected.columns)
        for c in expected.columns:
            a, b = expected[c], got[c]
            if pd.api.types.is_datetime64_any_dtype(a) or pd.api.types.is_datetime64_any_dtype(b):
                a, b = pd.to_datetime(a).dt.date, pd.to_datetime(b).dt.date
            assert [None if pd.isna(x) else x for x in a] == [None if pd.isna(x) else x for x in b], (name, c)
