"""Rerun speed of a demo quarter: a no-op rerun, and a rerun after one metric's data changed.

    .venv/bin/python benchmarks/bench_rerun.py [--quarter 2025-26-Q4] [--jobs 2] [--repeat 3]

1. a cold run of the demo quarter (a copy of data/demo) into an empty reports folder (not timed here:
   ``bench_quarter.py`` measures it);
2. **no-op rerun**: the same command again — every stage reused from the cache, the outputs found identical to the
   published quarter, nothing published;
3. **one metric changed**: one trust's numerator of one metric (``cdiff``) in the quarter changed by one, then the
   quarter rerun with ``--force``: that metric's notebook, the league and report notebooks and the published
   documents are executed again, the other metric notebooks reused from the cache. Alternates between the changed
   and the original value, so every repeat changes the data.

Each figure is the median of ``--repeat`` runs (wall time of the ``run_quarter.py`` process, imports included).
Targets (issue 13, 2 cores): no-op rerun ≤ 1.5 s; one metric changed ≤ 5 s. :func:`rerun_figures` is what
``bench_quarter.py`` can call to print these next to the cold run. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGETS = {"noop": 1.5, "one_metric": 5.0}  # seconds (issue 13)
CHANGED_METRIC = "cdiff"


def _cmd(quarter: str, data: Path, out: Path, jobs: int, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_quarter.py"), quarter, "--data", str(data), "--out", str(out),
            "--jobs", str(jobs), "--no-progress", *extra]


def _timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def change_one_value(data: Path, quarter: str, metric_id: str, delta: float) -> None:
    """Add ``delta`` to the numerator of the first trust's ``metric_id`` row of ``quarter`` (rewritten in place)."""
    path = data / "observations.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    q, m, n = header.index("quarter"), header.index("metric_id"), header.index("numerator")
    row = next(r for r in rows[1:] if r[q] == quarter and r[m] == metric_id and r[n])
    row[n] = f"{float(row[n]) + delta:g}"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def rerun_figures(quarter: str, data: Path, out: Path, jobs: int = 2, repeat: int = 3) -> dict:
    """Median wall seconds of a no-op rerun and of a rerun after one metric's data changed, on the published quarter
    in ``out`` made from ``data`` (a folder this function may edit: give it a copy). Returns the figures and the
    last run's summary lines."""
    noop, changed, lines = [], [], {}
    for _ in range(repeat):
        seconds, proc = _timed(_cmd(quarter, data, out, jobs))
        if proc.returncode != 0 or not proc.stdout.startswith("unchanged"):
            raise RuntimeError(f"no-op rerun: {proc.stdout}{proc.stderr}")
        noop.append(seconds)
        lines["noop"] = proc.stdout.strip()
    for i in range(repeat):
        change_one_value(data, quarter, CHANGED_METRIC, 1 if i % 2 == 0 else -1)
        seconds, proc = _timed(_cmd(quarter, data, out, jobs, "--force"))
        if proc.returncode != 0 or not proc.stdout.startswith("published"):
            raise RuntimeError(f"rerun after a change: {proc.stdout}{proc.stderr}")
        changed.append(seconds)
        lines["one_metric"] = proc.stdout.strip()
    return {"noop": statistics.median(noop), "one_metric": statistics.median(changed), "noop_all": noop,
            "one_metric_all": changed, "lines": lines}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quarter", default="2025-26-Q4")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA

    if not (DEFAULT_DEMO_DATA / "observations.csv").exists():
        subprocess.run([sys.executable, "-m", "leaguetables.inputs.demo"], cwd=ROOT, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    try:
        data, out = tmp / "data", tmp / "reports"
        shutil.copytree(DEFAULT_DEMO_DATA, data)
        print("cold run (not timed)", flush=True)
        seconds, proc = _timed(_cmd(args.quarter, data, out, args.jobs))
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        print(f"  {seconds:.1f} s", flush=True)
        fig = rerun_figures(args.quarter, data, out, args.jobs, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'figure':40s} {'median':>8s} {'runs':>24s}  {'target':>7s}  ok")
    for key, name in (("noop", "no-op rerun, wall"), ("one_metric", f"rerun after {CHANGED_METRIC} changed, wall")):
        runs = ", ".join(f"{s:.1f}" for s in fig[f"{key}_all"])
        ok = "yes" if fig[key] <= TARGETS[key] else "NO"
        print(f"{name:40s} {fig[key]:7.1f}s {runs:>24s}  ≤ {TARGETS[key]:.1f}s  {ok}")
    for key, line in fig["lines"].items():
        print(f"{key}: {line}")
    print(f"machine load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
