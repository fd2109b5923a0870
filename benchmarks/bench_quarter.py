"""Time and memory of a cold demo quarter against its in-process floor, measured in the same run (``make bench``).

    .venv/bin/python benchmarks/bench_quarter.py [--quarter 2025-26-Q4] [--jobs 2] [--repeat 3] [--keep DIR]

Measures, on the demo data, ``--repeat`` times each (interleaved, so that the machine's load falls on both alike):

1. **cold quarter**: ``run_quarter.py QUARTER --no-cache`` into a fresh, empty reports folder — wall time, CPU time
   of the whole process tree (the run and its Jupyter kernels: ``getrusage(RUSAGE_CHILDREN)``, which counts every
   descendant once it has been waited for) and peak memory of the tree (RSS of the run and all its descendants,
   sampled every 50 ms and summed); the per-stage timings of the median run from its manifest;
2. **in-process floor**: the same computations and documents in one fresh Python process, with no notebook, no
   kernel, no cache and no publishing step — see :data:`FLOOR_INCLUDES` (printed with the figures). Wall and CPU
   time of that process, its start and imports included, as a cold run pays them;
3. **reruns** (:func:`reruns`, from ``bench_rerun.py``): the no-op rerun and the rerun after one metric's data
   changed, median of ``--repeat`` each, wall and CPU.

Targets (issue 13, 2 cores): cold quarter ≤ 1.3 × the floor of the same run, and ≤ 14 s (median of 3); no-op rerun
≤ 1.5 s; rerun after one metric's data changed ≤ 5 s; peak memory ≤ 2 GB. Prints a table of figures next to the targets, then the detail. Not a test: wall
times on a shared machine vary with its load (printed); CPU times vary less.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: what the in-process floor computes and writes (printed beside its figures)
FLOOR_INCLUDES = (
    "interpreter start and imports",
    "validation of the inputs (configuration, the four contract files)",
    "every metric with data for the quarter: compute_metric, its distribution figure and funnel plots drawn once "
    "as SVG, its tables and working files (write_result)",
    "the league tables with the bootstrap (build_league, write_league)",
    "the report's data and sections (the report notebook's code cells, executed in this process)",
    "the published documents (documents.build_publication: trust profiles with their SPC charts, methodology "
    "page, spreadsheet, and whatever else that stage writes), except the notebook → HTML export by nbconvert",
)
#: what the cold run does beyond the floor (its overhead)
OVERHEAD = (
    "kernel starts and their imports",
    "papermill, the executed notebooks and their outputs (figures as shown in the notebooks, tables' HTML)",
    "passing the inputs to the notebooks",
    "the nbconvert export of index.html",
    "cache keys, manifest, checksums, comparison with the published quarter, atomic publish",
)


# ------------------------------------------------------------------------------------------------------ measuring
def tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_measured(cmd: list[str]) -> dict:
    """Wall seconds, CPU seconds of the process tree and peak tree RSS (bytes) of a command, and its result."""
    peak = 0
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    return {
        "wall": wall,
        "cpu": _children_cpu() - cpu0,
        "peak": peak,
        "returncode": proc.returncode,
        "stdout": out,
        "stderr": err,
    }


def _fail(what: str, r: dict) -> None:
    print(f"{what} failed (exit {r['returncode']}):\n{r['stdout']}\n{r['stderr']}", file=sys.stderr)
    raise SystemExit(1)


def _median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# --------------------------------------------------------------------------------------------------- cold quarter
def cold_quarter(quarter: str, jobs: int, out: Path) -> dict:
    """One cold run into the empty folder ``out`` with the cache off; its manifest's stage timings added."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        sys.executable,
        str(ROOT / "run_quarter.py"),
        quarter,
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        "--no-progress",
        "--no-cache",
    ]
    r = run_measured(cmd)
    if r["returncode"] != 0:
        _fail("cold run", r)
    r["timings"] = json.loads((out / quarter / "manifest.json").read_text())["timings_seconds"]
    return r


# ----------------------------------------------------------------------------------------------- in-process floor
def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float], minus: tuple[float, float] = (0.0, 0.0)) -> list[float]:
    """[wall, CPU] seconds since ``start`` (a :func:`_clock`), less ``minus``."""
    now = _clock()
    return [now[0] - start[0] - minus[0], now[1] - start[1] - minus[1]]


def _without_loading(source: str) -> ast.Module:
    """A notebook cell without its statement loading the run's inputs (``inputs, methodology, catalogue = …``):
    the floor has them in memory already, as one process would."""
    tree = ast.parse(source)
    tree.body = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Tuple)
            and "inputs" in [getattr(e, "id", None) for e in node.targets[0].elts]
        )
    ]
    return tree


def floor_measure(quarter: str, out_json: Path) -> None:
    """The floor itself (run in a fresh process by :func:`floor`): write the timings of its parts to ``out_json``."""
    t_start = _clock()
    parts: dict = {}
    import matplotlib

    matplotlib.use("Agg")
    import IPython.display
    import nbformat

    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.inputs.contract import load_inputs
    from leaguetables.nof import league
    from leaguetables.publication import documents, figures
    from leaguetables.run import stages
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA
    from leaguetables.statistics import metrics

    parts["imports"] = _since(t_start)
    t0 = _clock()
    methodology, catalogue = load_methodology("nof-2025-26"), load_catalogue("demo")
    inputs = load_inputs(DEFAULT_DEMO_DATA, catalogue, quarter)
    parts["validate"] = _since(t0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        work, stage, store_dir = tmp / "_work", tmp / "stage", tmp / "store"
        work.mkdir()
        present = set(inputs.observations.loc[inputs.observations["quarter"] == quarter, "metric_id"])
        metric_ids = [m.id for m in catalogue.metrics if m.id in present]
        t0 = _clock()
        t_fig = (0.0, 0.0)
        tables = {}
        for mid in metric_ids:
            result = metrics.compute_metric(inputs, catalogue.metric(mid), quarter, methodology)
            tables[mid] = result.table
            t1 = _clock()
            figures.distribution(result)
            figures.save_funnels(result, work, methodology.funnel.band_level)
            t_fig = tuple(a + b for a, b in zip(t_fig, _since(t1)))
            metrics.write_result(result, stage, work)
        parts["metrics"] = _since(t0, t_fig)
        parts["figures"] = list(t_fig)
        t0 = _clock()
        lg = league.build_league(tables, inputs, methodology, catalogue, quarter)
        league.write_league(lg, inputs, catalogue, quarter, stage, work)
        parts["league"] = _since(t0)
        (work / "run.json").write_text(
            json.dumps(
                {
                    "quarter": quarter,
                    "source": "demo",
                    "methodology": methodology.id,
                    "methodology_version": methodology.version,
                    "catalogue": catalogue.id,
                    "catalogue_version": catalogue.version,
                    "metric_ids": metric_ids,
                    "jobs": 1,
                    "partial": False,
                    "omitted_metrics": [],
                },
                indent=1,
                sort_keys=True,
            ),
            encoding="utf-8",
        )
        t0 = _clock()
        shown: list = []
        IPython.display.display = lambda *a, **k: shown.extend(a)  # the sections' HTML is built, not shown
        nb = nbformat.read(ROOT / "notebooks" / "report.ipynb", as_version=4)
        params = {"quarter": quarter, "out_dir": str(stage)} | stages.report_inputs(
            stages.keep_metric_bundles(SimpleNamespace(metric_ids=metric_ids), work, store_dir),
            stage,
            work,
            store_dir,
        )
        # productivity and SPC computed once, by the report's cells, and read back by the documents, as in a run
        params["report_cache"] = str(tmp / "report-cache")
        ns = params | {"inputs": inputs, "methodology": methodology, "catalogue": catalogue}
        for cell in nb.cells:
            if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
                exec(compile(_without_loading(cell.source), "report.ipynb", "exec"), ns)
        parts["report"] = _since(t0)
        t0 = _clock()
        prep = SimpleNamespace(
            options=SimpleNamespace(quarter=quarter, source="demo", jobs=1),
            inputs=inputs,
            methodology=methodology,
            catalogue=catalogue,
            metric_ids=metric_ids,
            partial=False,
            omitted=[],
        )
        documents.export_html = lambda *a, **k: None  # the nbconvert export is notebook work: not in the floor
        documents.build_publication(prep, stage, work, params)
        parts["documents"] = _since(t0)
        parts["pages"] = sum(1 for _ in stage.rglob("*.html"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    parts["total"] = [time.perf_counter() - t_start[0], time.process_time()]  # CPU since the process started
    out_json.write_text(json.dumps(parts), encoding="utf-8")


def floor(quarter: str) -> dict:
    """The in-process floor in a fresh Python process: its wall, CPU and peak memory, and its parts' timings."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-json-") as d:
        path = Path(d) / "floor.json"
        r = run_measured(
            [sys.executable, str(Path(__file__).resolve()), "--quarter", quarter, "--floor-worker", str(path)]
        )
        if r["returncode"] != 0:
            _fail("in-process floor", r)
        r["parts"] = json.loads(path.read_text(encoding="utf-8"))
    return r


# -------------------------------------------------------------------------------------------------------- reruns
def _bench_rerun():
    """``bench_rerun.py`` (rerun figures, the machine line), imported when needed, not by the floor's process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_rerun

    return bench_rerun


def reruns(quarter: str, jobs: int, repeat: int) -> dict:
    """The rerun figures of ``bench_rerun.py`` (median of ``repeat`` each, on a copy of the demo data): the no-op
    rerun and the rerun after one metric's data changed, as ``{name: {"wall": s, "cpu": s, "target": s or None,
    "note": str}}``, printed with the other figures."""
    return _bench_rerun().figures(quarter, jobs, repeat)


# --------------------------------------------------------------------------------------------------------- report
def _fmt_runs(runs: list[dict], key: str) -> str:
    return ", ".join(f"{r[key]:.1f}" for r in runs)


def report(cold: list[dict], floors: list[dict], rr: dict, jobs: int, load_before: tuple) -> None:
    c_wall, c_cpu = _median_of(cold, "wall"), _median_of(cold, "cpu")
    f_wall, f_cpu = _median_of(floors, "wall"), _median_of(floors, "cpu")
    peak = max(r["peak"] for r in cold)
    ratio = c_wall / f_wall
    rows = [
        ("cold quarter, wall (median)", f"{c_wall:.1f} s", "≤ 14 s", c_wall <= 14),
        ("in-process floor, wall (median)", f"{f_wall:.1f} s", "", None),
        ("  cold quarter / floor, wall", f"{ratio:.2f} ×", "≤ 1.3 ×", ratio <= 1.3),
        ("cold quarter, CPU of the process tree", f"{c_cpu:.1f} s", "", None),
        ("in-process floor, CPU", f"{f_cpu:.1f} s", "", None),
        ("  cold quarter / floor, CPU", f"{c_cpu / f_cpu:.2f} ×", "", None),
        ("peak memory, cold run's process tree", f"{peak / 2**30:.2f} GB", "≤ 2 GB", peak <= 2 * 2**30),
    ]
    for name, r in rr.items():
        rows.append(
            (
                f"{name}, wall",
                f"{r['wall']:.1f} s",
                f"≤ {r['target']:g} s" if r["target"] else "",
                None if r["target"] is None else r["wall"] <= r["target"],
            )
        )
        rows.append((f"{name}, CPU", f"{r['cpu']:.1f} s", "", None))
    print()
    print(f"{'figure':58s} {'measured':>10s}  {'target':>9s}  ok")
    for name, val, target, ok in rows:
        print(f"{name:58s} {val:>10s}  {target:>9s}  {'' if ok is None else ('yes' if ok else 'NO')}")
    print()
    print(
        f"cold quarter ({len(cold)} runs, {jobs} jobs, --no-cache, fresh folder each): wall {_fmt_runs(cold, 'wall')} s; "
        f"CPU {_fmt_runs(cold, 'cpu')} s"
    )
    print(
        f"in-process floor ({len(floors)} runs, one process): wall {_fmt_runs(floors, 'wall')} s; "
        f"CPU {_fmt_runs(floors, 'cpu')} s"
    )
    med = sorted(cold, key=lambda r: r["wall"])[len(cold) // 2]
    t = med["timings"]
    pub = t.get("publication")
    pub_s = ", ".join(f"{k} {v:.1f}" for k, v in pub.items()) if isinstance(pub, dict) else str(pub)
    print(
        f"  median cold run's stages (manifest, s): validate {t.get('validate', 0):.1f}; metric notebooks "
        f"{t.get('metrics_wall', 0):.1f} wall ({len(t.get('metrics', {}))} notebooks, "
        f"{sum(t.get('metrics', {}).values()):.1f} s summed over {jobs} kernels); league {t.get('league', 0):.1f}; "
        f"report {t.get('report', 0):.1f}; documents {t.get('export', 0):.1f} ({pub_s}); "
        f"total {t.get('total', 0):.1f}"
    )
    fp = sorted(floors, key=lambda r: r["wall"])[len(floors) // 2]["parts"]
    names = {
        "imports": "imports",
        "validate": "validate",
        "metrics": "metrics",
        "figures": "their figures",
        "league": "league",
        "report": "report sections",
        "documents": "documents",
    }
    print(
        "  median floor's parts (wall / CPU s): "
        + "; ".join(f"{label} {fp[k][0]:.1f} / {fp[k][1]:.1f}" for k, label in names.items())
        + f" ({fp['pages']} HTML pages); CPU of the process {fp['total'][1]:.1f}"
    )
    print("  the floor includes: " + "; ".join(FLOOR_INCLUDES) + ".")
    print("  the cold run adds: " + "; ".join(OVERHEAD) + ".")
    for name, r in rr.items():
        print(f"{name}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s{'; ' + r['note'] if r['note'] else ''}")
    print(f"{_bench_rerun().machine_line()}; before: {', '.join(f'{x:.1f}' for x in load_before)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quarter", default="2025-26-Q4")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="cold runs and floors measured (medians reported)")
    ap.add_argument("--keep", type=Path, help="reports folder to use and keep (default: a temporary one)")
    ap.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)  # internal: the floor's own process
    args = ap.parse_args()
    if args.floor_worker is not None:
        floor_measure(args.quarter, args.floor_worker)
        return 0
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA

    if not (DEFAULT_DEMO_DATA / "observations.csv").exists():
        subprocess.run([sys.executable, "-m", "leaguetables.inputs.demo"], cwd=ROOT, check=True)
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-quarter-"))
    load_before = os.getloadavg()
    cold, floors = [], []
    try:
        for i in range(args.repeat):
            print(f"cold quarter {i + 1}/{args.repeat}", flush=True)
            cold.append(cold_quarter(args.quarter, args.jobs, base / f"cold{i}"))
            print(f"in-process floor {i + 1}/{args.repeat}", flush=True)
            floors.append(floor(args.quarter))
        print("reruns", flush=True)
        rr = reruns(args.quarter, args.jobs, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report(cold, floors, rr, args.jobs, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
