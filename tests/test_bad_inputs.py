"""Malformed inputs (the corpus in tests/bad_inputs/cases.yaml): each gives one line naming the file, row and column,
exit code 2, no traceback, and publishes nothing; input that is valid but hostile (HTML in a trust name) is
accepted; nothing a user can put in the inputs or arguments reaches a notebook as code.

Every case runs in-process through ``pipeline.prepare`` (the validation a run starts with, before it writes
anything); the cases marked ``subprocess: true`` also run through ``run_quarter.py``'s entry point,
``run_quarter.main`` (in-process: the same code as the command line, without an interpreter start and imports per
case), and the first such case of each class through ``run_quarter.py`` itself, as a command in its own process
(the exit status, stderr and the reports folder as a user sees them).
"""

from __future__ import annotations

import copy
import csv
import functools
import importlib.util
import io
import shutil
import signal
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


@functools.cache
def _config_data(kind: str, name: str) -> dict:
    """config/<kind>/<name>.yaml parsed once per process (the pure-Python YAML parser costs ~0.1 s a catalogue)."""
    return yaml.safe_load((ROOT / "config" / kind / f"{name}.yaml").read_text(encoding="utf-8"))


def _config_copy(kind: str, name: str, spec: dict, folder: Path) -> Path:
    """A copy of config/<kind>/<name>.yaml with one field changed (in a metric's entry when ``metric`` is given)."""
    data = copy.deepcopy(_config_data(kind, name))
    entry = next(m for m in data["metrics"] if m["id"] == spec["metric"]) if "metric" in spec else data
    *parents, last = spec["path"].split(".")
    for p in parents:
        entry = entry[p]
    if spec.get("remove"):
        entry.pop(last)
    else:
        entry[last] = spec["value"]
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def build_case(case: dict, tmp: Path) -> tuple[Path, dict]:
    """The case's data folder (a copy of base/ with its edits) and its run_quarter.py arguments."""
    data = tmp / "data"
    shutil.copytree(CORPUS / "base", data)
    args = {
        "quarter": QUARTER,
        "catalogue": "demo",
        "methodology": "nof-2025-26",
        "metrics": None,
        "out": str(tmp / "reports"),
        "data": str(data),
    }
    for edit in case.get("edits", []):
        ((op, spec),) = edit.items()
        path = data / spec["file"]
        if op == "set":
            rows = _rows(path)
            rows[spec["line"] - 1][rows[0].index(spec["column"])] = str(spec["value"])
            _write_rows(path, rows)
        elif op == "drop_column":
            rows = _rows(path)
            j = rows[0].index(spec["column"])
            _write_rows(path, [r[:j] + r[j + 1 :] for r in rows])
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
        elif op == "insert_line":
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            lines.insert(spec["line"] - 1, spec["text"] + "\n")
            path.write_text("".join(lines), encoding="utf-8")
        elif op == "crlf":
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        elif op == "bom":
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        elif op == "replace_with_folder":
            path.unlink()
            path.mkdir()
        else:
            raise ValueError(f"unknown edit {op!r} in case {case['id']}")
    if "catalogue" in case:
        args["catalogue"] = str(_config_copy("catalogues", "demo", case["catalogue"], tmp))
    if "catalogue_text" in case:
        args["catalogue"] = str(tmp / "catalogue.yaml")
        Path(args["catalogue"]).write_text(case["catalogue_text"]["text"], encoding="utf-8")
    if "methodology" in case:
        args["methodology"] = str(_config_copy("methodology", "nof-2025-26", case["methodology"], tmp))
    if "methodology_text" in case:
        args["methodology"] = str(tmp / "methodology.yaml")
        Path(args["methodology"]).write_text(case["methodology_text"]["text"], encoding="utf-8")
    args.update(case.get("args", {}))
    out = Path(args["out"])
    if case.get("out_file"):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("a file where the reports folder should be\n", encoding="utf-8")
    for rel, text in (case.get("out_entries") or {}).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return data, args


def expected_message(case: dict, data: Path, args: dict) -> str:
    return (
        case["expect"]
        .replace("{data}", str(data))
        .replace("{catalogue}", str(args["catalogue"]))
        .replace("{methodology}", str(args["methodology"]))
        .replace("{out}", str(args["out"]))
    )


def snapshot(out: Path) -> dict | bytes | None:
    """Everything under the reports folder (a file's bytes when it is a file; None when it does not exist)."""
    if out.is_file():
        return out.read_bytes()
    if not out.exists():
        return None
    return {p.relative_to(out).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(out.rglob("*"))}


CLASSES = (
    "contract",
    "numbers",
    "line-numbers",
    "plausibility",
    "text",
    "configuration",
    "output-folder",
    "arguments",
    "accepted",
)


def test_the_corpus_is_large_and_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 100 and len(set(ids)) == len(ids)
    assert sum(1 for c in CASES if c.get("subprocess") or c.get("subprocess_only")) >= 25
    for c in CASES:
        assert c.get("exit", 2) in (0, 2) and (c.get("exit") == 0 or c.get("expect")), c["id"]
        assert c.get("class") in CLASSES, f"{c['id']}: class {c.get('class')!r} not one of {CLASSES}"
    assert {c["class"] for c in CASES} == set(CLASSES), "every class has cases"


IN_PROCESS = [c for c in CASES if not c.get("subprocess_only")]


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c["id"] for c in IN_PROCESS])
def test_in_process(case, tmp_path):
    """The validation a run starts with (pipeline.prepare, then publish.claim_out for the reports folder)."""
    from leaguetables.run.pipeline import RunOptions, prepare
    from leaguetables.run.publish import claim_out

    data, args = build_case(case, tmp_path)
    opts = RunOptions(
        quarter=args["quarter"],
        source="files",
        data=Path(args["data"]),
        out=Path(args["out"]),
        catalogue=args["catalogue"],
        methodology=args["methodology"],
        metrics=args["metrics"].split(",") if args["metrics"] is not None else None,
        progress=False,
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = Path(args["out"])
    before = snapshot(out)
    if case.get("exit", 2) == 0:
        prep = prepare(opts, scratch)
        assert prep.metric_ids
        return
    with pytest.raises(InputError) as exc:
        prepare(opts, scratch)
        claim_out(out)
    message = str(exc.value)
    assert expected_message(case, data, args) in message
    assert "\n" not in message, "one line"
    assert snapshot(out) == before, "nothing written to the reports folder, nothing in it changed"


SUBPROCESS = [c for c in CASES if c.get("subprocess") or c.get("subprocess_only")]
#: the cases also run through run_quarter.py as a command (its own process): one for each way the command line
#: refuses, each ending in its own exit path of run_quarter.main — the exit status, stderr and stdout a shell sees
COMMAND_IDS = {
    "jobs-not-a-number": "argparse (OneLineParser.error exits)",
    "metrics-only-commas": "the argument check before the pipeline is imported (wrong_argument)",
    "trusts-missing-column": "the contract (pipeline.prepare: InputError)",
    "catalogue-unknown-statistic": "the configuration (InputError)",
    "output-folder-is-a-file": "--out a file (pipeline.run)",
    "output-folder-with-a-foreign-failed-folder": "a reports folder the project does not own (publish.claim_out)",
}
COMMAND = [c for c in SUBPROCESS if c["id"] in COMMAND_IDS]


def _argv(case: dict, tmp_path: Path) -> tuple[list[str], Path, dict, Path]:
    """The case's run_quarter.py arguments (after building its data folder and reports folder, with a published
    earlier quarter in it that must stay untouched): ``(argv, data, args, out)``."""
    data, args = build_case(case, tmp_path)
    out = Path(args["out"])
    if not out.is_file():
        (out / "2025-26-Q3").mkdir(parents=True, exist_ok=True)  # an earlier quarter: must stay untouched
        (out / "2025-26-Q3" / "index.html").write_text("published\n", encoding="utf-8")
    argv = [
        args["quarter"],
        "--source",
        "files",
        "--data",
        args["data"],
        "--out",
        str(out),
        "--catalogue",
        args["catalogue"],
        "--methodology",
        args["methodology"],
        "--no-progress",
    ]
    if args["metrics"] is not None:
        argv += ["--metrics", args["metrics"]]
    return argv + [str(a) for a in case.get("argv", [])], data, args, out


def _check_refusal(case: dict, returncode, stderr: str, data: Path, args: dict) -> None:
    """Exit 2, exactly one line on stderr with the expected message, no traceback."""
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert expected_message(case, data, args) in lines[0]


@pytest.fixture(scope="module")
def run_quarter_main():
    """``run_quarter.main`` (the function ``run_quarter.py`` runs), loaded from the file."""
    spec = importlib.util.spec_from_file_location("run_quarter", ROOT / "run_quarter.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# leaguetables/__init__.py ignores pyspark's warning about pandas 3 (pyspark, a test dependency, is imported by
# pandera): pytest drops filters set while it collects, so the test sets it again, as the command line has it
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.parametrize("case", SUBPROCESS, ids=[c["id"] for c in SUBPROCESS])
def test_through_run_quarter(case, tmp_path, run_quarter_main, capsys, monkeypatch):
    """run_quarter.py's entry point, in-process: exit 2 (returned, or argparse's SystemExit), exactly one line on
    stderr with the expected message, no traceback, and the reports folder (with a published earlier quarter and
    the case's own files in it) byte-for-byte unchanged. The signal handlers and the warnings hook main() installs
    for the command line are put back afterwards."""
    argv, data, args, out = _argv(case, tmp_path)
    before = snapshot(out)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr("warnings.showwarning", __import__("warnings").showwarning)
    capsys.readouterr()
    try:
        returncode = run_quarter_main(argv)
    except SystemExit as exc:  # argparse's errors: OneLineParser.error exits, as it does on the command line
        returncode = exc.code
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    _check_refusal(case, returncode, captured.err, data, args)
    assert captured.out == ""
    assert snapshot(out) == before, "reports folder untouched"


@pytest.mark.parametrize("case", COMMAND, ids=[c["id"] for c in COMMAND])
def test_through_the_run_quarter_command(case, tmp_path):
    """run_quarter.py as a command, in its own process: exit status 2, exactly one line on stderr with the expected
    message, no traceback, nothing on stdout, and the reports folder byte-for-byte unchanged."""
    argv, data, args, out = _argv(case, tmp_path)
    before = snapshot(out)
    cmd = [sys.executable, str(ROOT / "run_quarter.py"), *argv]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    _check_refusal(case, proc.returncode, proc.stderr, data, args)
    assert proc.stdout == ""
    assert snapshot(out) == before, "reports folder untouched"


def test_the_command_cases_are_in_the_corpus():
    """Every case named in COMMAND_IDS is a case of the corpus run through run_quarter.py."""
    assert sorted(c["id"] for c in COMMAND) == sorted(COMMAND_IDS)


# ------------------------------------------------------------------------------------- what reaches a notebook
HOSTILE = [
    '/tmp/a"b',
    "/tmp/a'b",
    "/tmp/a\\b",
    '/tmp/x"; import os; os.system("id") #',
    "/tmp/é ü 中",
    '/tmp/a\\"; import os #',
    "/tmp/a\nimport os",
    "/tmp/\x00",
    "/tmp/a\u2028b",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_notebook_parameters_are_literals_of_exactly_the_values(value):
    """The injected parameters cell is nothing but ``name = <literal>`` lines whose literals equal the values: a
    path with quotes, backslashes, newlines or code in it stays one string."""
    import ast

    from leaguetables.run.pipeline import check_parameters

    params = {"quarter": QUARTER, "work_dir": value, "out_dir": value, "metric_id": "cdiff"}
    try:
        source = check_parameters(params)
    except InputError:
        return  # refused is safe too
    tree = ast.parse(source)
    assert [type(n) for n in tree.body] == [ast.Assign] * 4
    assert {n.targets[0].id: n.value.value for n in tree.body} == params


@pytest.mark.parametrize(
    "params",
    [
        {"quarter": '2025-26-Q4"; import os #', "work_dir": "/tmp", "out_dir": "/tmp"},
        {"quarter": QUARTER, "work_dir": "/tmp", "out_dir": "/tmp", "metric_id": "x\nimport os"},
        {"quarter": QUARTER, "work_dir": "/tmp", "out_dir": "/tmp", "metric_id": "../cdiff"},
        {"quarter": QUARTER, "work_dir": "relative/path", "out_dir": "/tmp"},
    ],
)
def test_unsafe_notebook_parameters_are_refused(params):
    from leaguetables.run.pipeline import check_parameters

    with pytest.raises(InputError):
        check_parameters(params)
