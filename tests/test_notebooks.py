"""Meta-tests of the notebooks: typed parameters cell, no stored outputs, logic kept in src/."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TYPED = re.compile(r"^(\w+): (str|int|float|bool) = .+  # .+$")


def test_the_three_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} == {"metric", "league_table", "report"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_typed_parameters_cell_and_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5, "nbformat 4.5 with stable cell ids"
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    lines = [ln for ln in "".join(params[0]["source"]).splitlines() if ln.strip()]
    assert lines, "empty parameters cell"
    for line in lines:
        assert TYPED.match(line), f"parameters line is not 'name: type = value  # help': {line!r}"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: stored outputs in cell {cell.get('id')}"
            assert cell.get("execution_count") is None, f"{path.name}: stored execution count"
        assert re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cell["id"])
    assert nb["metadata"]["kernelspec"]["name"] == "leaguetables"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_is_thin(path):
    """Notebooks call into src/: no function or class definitions, and short cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        tree = ast.parse(src)
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))], (
            f"{path.name}: define functions in src/, not in the notebook"
        )
        assert len(src.splitlines()) <= 15, f"{path.name}: cell {cell['id']} is long; move logic to src/"
