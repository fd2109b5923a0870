"""Rerun speed of a demo quarter: a no-op rerun, and a rerun after one metric's data changed.

    .venv/bin/python benchmarks/bench_rerun.py [--quarter 2025-26-Q4] [--jobs 2] [--repeat 3]

1. a cold run of the demo quarter (a copy of data/demo) into an empty reports folder (not timed here:
   ``bench_quarter.py`` measures it);
2. **no-op rerun**: the same command again — every stage reused from the cache, the outputs found identical to the
   published quarter, nothing published;
3. **one metric changed**: one trust's numerator of one metric (``cdiff``) in the quarter changed by one, then the
   quarter rerun with ``--force``: that metric's notebook, the league and report notebooks and the published
   documents are executed again, the other metric notebooks reused from the cache. Each repeat adds one more, so
   every repeat gives the metric a value no earlier run had (alternating between two values would find the second
   and later repeats in the cache, which keeps two entries per stage).

Each figure is the median of ``--repeat`` runs: wall time of the ``run_quarter.py`` process (imports included) and
its CPU time with its children's (the kernels). Printed twice: without a kernel server (every kernel started), and
with one (``leaguetables.run.kernel_server``, started before the cold run: the kernels forked from it; their CPU,
counted by the server, is added to the run's). Targets (issue 13, 2 cores): no-op rerun ≤ 1.5 s; one metric changed
≤ 5 s. :func:`figures` returns them in ``bench_quarter.reruns``'s format (``{name: {"wall", "cpu", "target",
"note"}}``) for ``make bench`` to print next to the cold run. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
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

from leaguetables.run import kernel_server  # noqa: E402

TARGETS = {"noop": 1.5, "one_metric": 5.0}  # seconds (issue 13)
CHANGED_METRIC = "cdiff"


def _cmd(quarter: str, data: Path, out: Path, jobs: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "run_quarter.py"),
        quarter,
        "--data",
        str(data),
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        "--no-progress",
        *extra,
    ]


REFERENCE_LOOP = 20_000_000  # additions of the machine line's pure-Python loop


def reference_seconds(n: int = REFERENCE_LOOP, repeat: int = 3) -> float:
    """Seconds of a fixed pure-Python loop (``n`` additions), the best of ``repeat``: a rough sign of how fast the
    machine is at the time (on the project's 2-core machines it has varied by up to 2×, sometimes within a session).
    Only rough: the figures depend on memory, start-up and I/O too, which the loop does not measure."""
    best = float("inf")
    for _ in range(repeat):
        t0, total = time.perf_counter(), 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best


def machine_line() -> str:
    return (
        f"machine: {os.cpu_count()} CPUs; a fixed pure-Python loop ({REFERENCE_LOOP:,} additions) "
        f"{reference_seconds():.2f} s"
        f" (best of 3); load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min)"
    )


def _timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (the process and its waited-for descendants, or forked kernels) of a command."""
    c0, t0 = kernel_server.children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, kernel_server.children_cpu_seconds() - c0, proc


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
    """Wall and CPU seconds of each no-op rerun and each rerun after one metric's data changed, on the published
    quarter in ``out`` made from ``data`` (a folder this function edits: give it a copy), and the last summary
    lines."""
    runs: dict = {"noop": [], "one_metric": [], "lines": {}}
    for _ in range(repeat):
        wall, cpu, proc = _timed(_cmd(quarter, data, out, jobs))
        if proc.returncode != 0 or not proc.stdout.startswith("unchanged"):
            raise RuntimeError(f"no-op rerun: {proc.stdout}{proc.stderr}")
        runs["noop"].append((wall, cpu))
        runs["lines"]["noop"] = proc.stdout.strip()
    for _ in range(repeat):
        change_one_value(data, quarter, CHANGED_METRIC, 1)
        wall, cpu, proc = _timed(_cmd(quarter, data, out, jobs, "--force"))
        if proc.returncode != 0 or not proc.stdout.startswith("published"):
            raise RuntimeError(f"rerun after a change: {proc.stdout}{proc.stderr}")
        runs["one_metric"].append((wall, cpu))
        runs["lines"]["one_metric"] = proc.stdout.strip()
        runs.setdefault("stages", []).append(stage_walls(out / quarter / "manifest.json"))
    return runs


def stage_walls(manifest: Path) -> dict[str, float]:
    """Wall seconds of each stage of the run that published ``manifest`` (its ``timings_seconds``): validation, the
    metric notebooks, the league notebook, the report notebook, the report with the documents (``export``: the
    report stage and the publication stage together) and each document."""
    t = json.loads(manifest.read_text(encoding="utf-8"))["timings_seconds"]
    walls = {k: t[k] for k in ("validate", "metrics_wall", "league", "report", "export", "total") if k in t}
    if isinstance(t.get("publication"), dict):
        walls |= {f"publication.{k}": v for k, v in t["publication"].items()}
    return walls


def figures(quarter: str = "2025-26-Q4", jobs: int = 2, repeat: int = 3) -> dict:
    """The rerun figures in ``bench_quarter.reruns``'s format, on a copy of the demo data in a temporary folder
    (a cold run with the cache first, not timed)."""
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA

    tmp = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    try:
        data, out = tmp / "data", tmp / "reports"
        shutil.copytree(DEFAULT_DEMO_DATA, data)
        _, _, proc = _timed(_cmd(quarter, data, out, jobs))
        if proc.returncode != 0:
            raise RuntimeError(f"cold run: {proc.stdout}{proc.stderr}")
        runs = rerun_figures(quarter, data, out, jobs, repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = {"noop": "no-op rerun (median)", "one_metric": "rerun after one metric's data changed (median)"}
    out_figs = {}
    for key, name in names.items():
        walls, cpus = [w for w, _ in runs[key]], [c for _, c in runs[key]]
        out_figs[name] = {
            "wall": statistics.median(walls),
            "cpu": statistics.median(cpus),
            "target": TARGETS[key],
            "note": f"walls {', '.join(f'{w:.1f}' for w in walls)} s; {runs['lines'][key]}",
        }
    stages = runs.get("stages") or []
    if stages:
        median = {k: statistics.median(s[k] for s in stages if k in s) for k in stages[-1]}
        out_figs[names["one_metric"]]["note"] += "; stage walls (median): " + ", ".join(
            f"{k} {v:.2f} s" for k, v in median.items()
        )
    return out_figs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quarter", default="2025-26-Q4")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA

    if not (DEFAULT_DEMO_DATA / "observations.csv").exists():
        subprocess.run([sys.executable, "-m", "leaguetables.inputs.demo"], cwd=ROOT, check=True)
    for label, figs in (("without a kernel server", without_server(args)), ("with a kernel server", with_server(args))):
        print(f"\n{label}:\n{'figure':48s} {'wall':>7s} {'CPU':>7s}  {'target':>7s}  ok")
        for name, f in figs.items():
            ok = "yes" if f["wall"] <= f["target"] else "NO"
            print(f"{name:48s} {f['wall']:6.1f}s {f['cpu']:6.1f}s  ≤ {f['target']:.1f}s  {ok}")
        for name, f in figs.items():
            print(f"{name}: {f['note']}")
    print(machine_line())
    return 0


def without_server(args: argparse.Namespace) -> dict:
    os.environ.pop(kernel_server.ENV, None)
    return figures(args.quarter, args.jobs, args.repeat)


def with_server(args: argparse.Namespace) -> dict:
    """The figures with a kernel server of its own (started before the cold run, stopped after)."""
    folder = tempfile.mkdtemp(prefix="bench-kernels-")
    path = os.path.join(folder, "k.sock")
    kernel_server.start(path)
    os.environ[kernel_server.ENV] = path
    try:
        return figures(args.quarter, args.jobs, args.repeat)
    finally:
        os.environ.pop(kernel_server.ENV, None)
        kernel_server.stop(path)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
