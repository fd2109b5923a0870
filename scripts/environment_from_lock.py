"""Write environment.yml (conda-forge) pinning every package of requirements.lock at the same version.

Run by ``make lock`` after pip-compile; ``tests/test_environment.py`` checks that the two files agree.
Conda-forge names are the PyPI names normalised (lower case, ``-``), except where CONDA_NAMES says otherwise.

    python scripts/environment_from_lock.py [--lock requirements.lock] [--out environment.yml]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"
# PyPI name (normalised) -> conda-forge name, where they differ
CONDA_NAMES: dict[str, str] = {}

HEADER = f"""\
# Conda environment for the leaguetables pipeline (conda-forge). Generated from requirements.lock by
# scripts/environment_from_lock.py (`make lock`): do not edit by hand. It pins every locked package at the
# lock's version; tests/test_environment.py checks they agree.
# conda env create -f environment.yml && conda activate leaguetables && pip install --no-deps -e .
name: leaguetables
channels:
  - conda-forge
dependencies:
  - python={PYTHON}
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a pip-compile lock file (comments, hashes and markers ignored)."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s]+)", line)
        if not m:
            raise ValueError(f"{path}: not a pinned requirement: {raw!r}")
        pins[normalise(m.group(1))] = m.group(3)
    return pins


def environment_yml(pins: dict[str, str]) -> str:
    lines = [f"  - {CONDA_NAMES.get(name, name)}={version}" for name, version in sorted(pins.items())]
    return HEADER + "\n".join(lines) + "\n  - pip\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    ap.add_argument("--out", type=Path, default=ROOT / "environment.yml")
    args = ap.parse_args(argv)
    pins = read_lock(args.lock)
    args.out.write_text(environment_yml(pins), encoding="utf-8")
    print(f"{args.out}: {len(pins)} packages pinned from {args.lock}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
