"""Structure rules of the developers' guide that a reader can check mechanically: no function in ``src/`` longer than
80 lines of code (its docstring not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "leaguetables"
MAX_LINES = 80


def code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    body = fn.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    return fn.end_lineno - first.lineno + 1


def long_functions(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > limit:
                out[f"{path.relative_to(root).as_posix()}:{node.name}"] = code_lines(node)
    return out


def test_code_lines_counts_from_the_first_statement_after_the_docstring(tmp_path):
    """Known answer: a docstring of 3 lines and 4 lines of code count 4; without the docstring, all 5 lines."""
    (tmp_path / "m.py").write_text(
        'def f():\n    """a\n    b\n    """\n    x = 1\n    y = 2\n\n    return x + y\n'
        "def g():\n    x = 1\n    y = 2\n    z = 3\n    return x\n"
    )
    assert long_functions(tmp_path, limit=3) == {"m.py:f": 4, "m.py:g": 4}
    assert long_functions(tmp_path, limit=4) == {}


def test_no_function_over_80_lines_of_code():
    found = long_functions(SRC)
    assert found == {}
