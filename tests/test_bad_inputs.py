"""Malformed inputs (the corpus in tests/bad_inputs/cases.yaml): each gives one line naming the file, row and column,
exit code 2, no traceback, and publishes nothing; input that is valid but hostile (HTML in a trust name) is
accepted; nothing a user can put in the inputs or arguments reaches a notebook as code.

Every case runs in-process through ``pipeline.prepare`` (the validation a run starts with, before it writes
anything); the cases marked ``subprocess: true`` also run through ``run_quarter.py`` itself.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leaguetables.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))["cases"]
QUARTER = "2025-26-Q4"


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _catalogue_copy(spec: dict, folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "config" / "catalogues" / "demo.yaml").read_text(encoding="utf-8"))
    entry = next(m for m in data["metrics"] if m["id"] == spec["metric"])
    *parents, last = spec["path"].split(".")
    for p in parents:
        entry = entry[p]
    if spec.get("remove"):
        entry.pop(last)
    else:
        entry[last] = spec["value"]
    path = folder / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def build_case(case: dict, tmp: Path) -> tuple[Path, dict]:
    """The case's data folder (a copy of base/ with its edits) and its run_quarter.py arguments."""
    data = tmp / "data"
    shutil.copytree(CORPUS / "base", data)
    args = {"quarter": QUARTER, "catalogue": "demo", "metrics": None, "out": str(tmp / "reports")}
    for edit in case.get("edits", []):
        (op, spec), = edit.items()
        path = data / spec["file"]
        if op == "set":
            rows = _rows(path)
            rows[spec["line"] - 1][rows[0].index(spec["column"])] = str(spec["value"])
            _write_rows(path, rows)
        elif op == "drop_column":
            rows = _rows(path)
            j = rows[0].index(spec["column"])
            _write_rows(path, [r[:j] + r[j + 1:] for r in rows])
        elif op == "add_column":
            rows = _rows(path)
            _write_rows(path, [rows[0] + [spec["column"]]] + [r + [spec["value"]] for r in rows[1:]])
        elif op == "duplicate":
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            lines.insert(spec["line"], lines[spec["line"] - 1])
            path.write_text("".join(lines), encoding="utf-8")
        elif op == "append":
            path.write_text(path.read_text(encoding="utf-8") + spec["text"] + "\n", encoding="utf-8")
        elif op == "write":
            path.write_text(spec["text"], encoding="utf-8")
        elif op == "encode":
            lines = path.read_text(encoding="utf-8").splitlines()
            lines[1] += spec.get("insert", "")
            path.write_bytes(("\n".join(lines) + "\n").encode(spec["encoding"]))
        elif op == "write_bytes":
            path.write_bytes(bytes.fromhex(spec["hex"]))
        elif op == "delete":
            path.unlink()
        else:
            raise ValueError(f"unknown edit {op!r} in case {case['id']}")
    if "catalogue" in case:
        args["catalogue"] = str(_catalogue_copy(case["catalogue"], tmp))
    if "catalogue_text" in case:
        args["catalogue"] = str(tmp / "catalogue.yaml")
        Path(args["catalogue"]).write_text(case["catalogue_text"]["text"], encoding="utf-8")
    args.update(case.get("args", {}))
    return data, args


def expected_message(case: dict, data: Path, args: dict) -> str:
    return case["expect"].replace("{data}", str(data)).replace("{catalogue}", str(args["catalogue"]))


def test_the_corpus_is_large_and_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert sum(1 for c in CASES if c.get("subprocess")) >= 8
    for c in CASES:
        assert c.get("exit", 2) in (0, 2) and (c.get("exit") == 0 or c.get("expect")), c["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_in_process(case, tmp_path):
    from leaguetables.pipeline import RunOptions, prepare

    data, args = build_case(case, tmp_path)
    opts = RunOptions(quarter=args["quarter"], source="files", data=data, out=Path(args["out"]),
                      catalogue=args["catalogue"],
                      metrics=args["metrics"].split(",") if args["metrics"] else None, progress=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.get("exit", 2) == 0:
        prep = prepare(opts, scratch)
        assert prep.metric_ids
        return
    with pytest.raises(InputError) as exc:
        prepare(opts, scratch)
    message = str(exc.value)
    assert expected_message(case, data, args) in message
    assert "\n" not in message, "one line"
    assert not Path(args["out"]).exists(), "nothing written to the reports folder"


SUBPROCESS = [c for c in CASES if c.get("subprocess")]


@pytest.mark.parametrize("case", SUBPROCESS, ids=[c["id"] for c in SUBPROCESS])
def test_through_run_quarter(case, tmp_path):
    data, args = build_case(case, tmp_path)
    out = Path(args["out"])
    (out / "2025-26-Q3").mkdir(parents=True)  # an earlier quarter already published: must stay untouched
    (out / "2025-26-Q3" / "index.html").write_text("published\n", encoding="utf-8")
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    cmd = [sys.executable, str(ROOT / "run_quarter.py"), args["quarter"], "--source", "files", "--data", str(data),
           "--out", str(out), "--catalogue", args["catalogue"], "--no-progress"]
    if args["metrics"]:
        cmd += ["--metrics", args["metrics"]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert expected_message(case, data, args) in lines[0]
    after = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    assert after == before and sorted(p.name for p in out.iterdir()) == ["2025-26-Q3"], "reports folder untouched"


# ------------------------------------------------------------------------------------- what reaches a notebook
HOSTILE = ['/tmp/a"b', "/tmp/a'b", "/tmp/a\\b", '/tmp/x"; import os; os.system("id") #', "/tmp/é ü 中",
           "/tmp/a\\\"; import os #", "/tmp/a\nimport os", "/tmp/\x00", "/tmp/a\u2028b"]


@pytest.mark.parametrize("value", HOSTILE)
def test_notebook_parameters_are_literals_of_exactly_the_values(value):
    """The injected parameters cell is nothing but ``name = <literal>`` lines whose literals equal the values: a
    path with quotes, backslashes, newlines or code in it stays one string."""
    import ast

    from leaguetables.pipeline import check_parameters

    params = {"quarter": QUARTER, "work_dir": value, "out_dir": value, "metric_id": "cdiff"}
    try:
        source = check_parameters(params)
    except InputError:
        return  # refused is safe too
    tree = ast.parse(source)
    assert [type(n) for n in tree.body] == [ast.Assign] * 4
    assert {n.targets[0].id: n.value.value for n in tree.body} == params


@pytest.mark.parametrize("params", [
    {"quarter": '2025-26-Q4"; import os #', "work_dir": "/tmp", "out_dir": "/tmp"},
    {"quarter": QUARTER, "work_dir": "/tmp", "out_dir": "/tmp", "metric_id": "x\nimport os"},
    {"quarter": QUARTER, "work_dir": "/tmp", "out_dir": "/tmp", "metric_id": "../cdiff"},
    {"quarter": QUARTER, "work_dir": "relative/path", "out_dir": "/tmp"},
])
def test_unsafe_notebook_parameters_are_refused(params):
    from leaguetables.pipeline import check_parameters

    with pytest.raises(InputError):
        check_parameters(params)
