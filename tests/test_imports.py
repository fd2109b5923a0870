"""The package's import graph: no import cycle between modules of ``leaguetables`` — counting imports inside
functions too, which hide a dependency without removing it — and every module imports in a fresh interpreter in
any order (checked forwards and backwards; with an acyclic graph the order cannot matter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports (at module level or inside a function)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[mod] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in mods:
                    graph[mod].add(node.module)
                graph[mod] |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
        graph[mod].discard(mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle_hidden_inside_a_function(tmp_path):
    """Known answer: a imports b at module level, b imports a inside a function — one cycle {a, b}; c → a is not
    part of it."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    (tmp_path / "c.py").write_text("import a\n")
    mods = {p.stem: p for p in tmp_path.glob("*.py")}
    assert cycles(import_graph(mods)) == [["a", "b"]]
    (tmp_path / "b.py").write_text("def f():\n    return 1\n")
    assert cycles(import_graph(mods)) == []


def test_no_import_cycle_in_the_package():
    graph = import_graph(_modules())
    assert len(graph) > 50
    assert cycles(graph) == []


# The run's own process (``run_quarter.py``: the pipeline and the publication stage) and the libraries it must not
# import (test_the_runs_own_process_imports_no_statistics_libraries)
RUN_PROCESS = ("leaguetables.run.pipeline", "leaguetables.publication.documents")
HEAVY = ("scipy", "statsmodels", "matplotlib", "pyspark")
# imports the modules of its first argument (comma-separated), prints which of HEAVY are then loaded, then imports
# the others in order
FRESH = (
    "import importlib, sys\n"
    "for n in filter(None, sys.argv[1].split(',')):\n    importlib.import_module(n)\n"
    f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    "for n in sys.argv[2:]:\n    importlib.import_module(n)\n"
)


@pytest.fixture(scope="module")
def fresh_interpreters() -> dict[str, subprocess.CompletedProcess]:
    """Two fresh interpreters, each importing every module of the package: ``forwards`` in sorted order,
    ``backwards`` the run's own process's two modules first (:data:`RUN_PROCESS`, what it has loaded then printed)
    and then the others in reverse order. One interpreter serves both proofs since issue 13 (each start-up imports
    pandas, scipy, pyarrow, …: ~3.5 CPU-s)."""
    names = sorted(_modules())
    orders = {"forwards": ("", names), "backwards": (",".join(RUN_PROCESS), names[::-1])}
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    return {
        order: subprocess.run([sys.executable, "-c", FRESH, first, *rest], capture_output=True, text=True, env=env)
        for order, (first, rest) in orders.items()
    }


@pytest.mark.parametrize("order", ["forwards", "backwards"])
def test_every_module_imports_in_a_fresh_interpreter(order, fresh_interpreters):
    proc = fresh_interpreters[order]
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_without_module_blocks_an_import_inside_the_block_only():
    """``modules.without_module``: the import fails inside the block and succeeds after it (``tabnanny``, a
    standard-library module nothing here imports)."""
    from leaguetables.modules import without_module

    sys.modules.pop("tabnanny", None)
    with without_module("tabnanny"), pytest.raises(ModuleNotFoundError):
        import tabnanny  # noqa: F401
    assert "tabnanny" not in sys.modules
    import tabnanny  # noqa: F401, F811

    assert sys.modules["tabnanny"] is not None


def test_the_runs_own_process_imports_no_statistics_libraries(fresh_interpreters):
    """The run's own process (``run_quarter.py``: the pipeline and the publication stage) reads what the notebooks
    computed and writes the documents: it imports none of scipy, statsmodels, matplotlib (the kernels' libraries,
    ~1.5–2 CPU-s a run) nor pyspark (which pandera would import, for ``pyspark.pandas``, were it not hidden while
    pandera is imported; ``contract``). A fresh interpreter: the first imports of ``fresh_interpreters``'
    backwards one."""
    proc = fresh_interpreters["backwards"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == "[]", proc.stdout.splitlines()[0]
    assert fresh_interpreters["forwards"].stdout.strip() == "[]"  # nothing imported before its first print
