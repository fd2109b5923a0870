"""The command of a small ``run_quarter.py`` run, as the end-to-end tests make them (the six-trust corpus base or
another small data folder, the demo catalogue, a few metrics, one notebook kernel), shared by those tests and by
``benchmarks/bench_small_run.py``, which measures what such a run costs."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "tests" / "bad_inputs" / "base"  # the six-trust corpus base
METRICS = "ae_4hr,cdiff,cqc_safe"


def run_quarter_command(
    quarter: str, data: Path, out: Path, *extra: str, metrics: str = METRICS, jobs: int | None = 1
) -> list[str]:
    """``run_quarter.py quarter`` on the files in ``data`` into ``out`` with ``metrics``, ``jobs`` notebook kernels
    (None: the default) and no progress bar, then ``extra``."""
    return [
        sys.executable,
        str(ROOT / "run_quarter.py"),
        quarter,
        "--source",
        "files",
        "--data",
        str(data),
        "--catalogue",
        "demo",
        "--out",
        str(out),
        "--metrics",
        metrics,
        *(["--jobs", str(jobs)] if jobs is not None else []),
        "--no-progress",
        *extra,
    ]
