"""What every executed notebook loads first: the quarter's work folder, and provenance of the interpreter.

Kept small and free of heavy imports so that a notebook's first cell is fast.
"""

from __future__ import annotations

import json
import pickle
import platform
import sys
from importlib import metadata
from pathlib import Path

PROVENANCE_PACKAGES = ("leaguetables", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn",
                       "papermill", "nbconvert", "pandera")


def versions(names) -> dict:
    """Installed version of each distribution name (``None`` when it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    """Interpreter and package versions of the running kernel (shown and recorded in each executed notebook)."""
    return {"sys.executable": sys.executable, "python": platform.python_version(),
            "packages": versions(PROVENANCE_PACKAGES)}


def load_context(work_dir: str | Path):
    """Return (inputs, methodology, catalogue) saved by the pipeline for this run."""
    with open(Path(work_dir) / "context.pkl", "rb") as f:
        ctx = pickle.load(f)
    return ctx["inputs"], ctx["methodology"], ctx["catalogue"]


def load_run(work_dir: str | Path) -> dict:
    return json.loads((Path(work_dir) / "run.json").read_text(encoding="utf-8"))
