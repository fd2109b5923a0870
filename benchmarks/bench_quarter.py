"""Time and memory of a full demo quarter, against its floor (notebook overhead) and pure computation.

    .venv/bin/python benchmarks/bench_quarter.py [--quarter 2025-26-Q4] [--jobs 2] [--keep DIR]

Measures, in one run on the demo data:

1. **cold run**: ``run_quarter.py`` into an empty reports folder (so an empty cache) — wall time, the per-stage
   timings recorded in the manifest, and the peak memory of the whole process tree (the Jupyter kernels are child
   processes: the RSS of the run and all its descendants is sampled every 50 ms and summed);
2. **no-op rerun**: the same command again (every stage reused from the cache, nothing published);
3. **floor**: what notebooks cost by themselves — a bare notebook with the metric notebook's parameters cell, run
   by the pipeline's own warm-kernel worker: its first run (kernel start) and the following ones (a reused kernel);
   floor = first + (notebooks / jobs − 1) × following (each job starts one kernel, then reuses it);
4. **pure computation**: the same work without notebooks — imports, validation, every metric
   (``metrics.compute_metric``, its figures and tables: once in this process, and once spread over ``jobs`` fresh
   processes as the kernels are, their start, imports and context loading included), the league tables
   (``league.build_league`` with the bootstrap, ``write_league``) and the report notebook's code; the published
   documents stage (nbconvert export, trust profiles, methodology, spreadsheet) is not notebook work and is taken
   from the cold run's manifest.

Targets (2 cores): cold run ≤ 60 s and ≤ 1.5 × (floor + pure computation with the metrics over ``jobs``
processes); no-op rerun ≤ 5 s; peak memory ≤ 2 GB. Prints a table of figures next to the targets. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


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


def run_measured(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Wall seconds and peak tree RSS (bytes) of a command."""
    peak = 0
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
    return wall, peak, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def floor(jobs: int, n_notebooks: int, repeat: int = 6) -> dict:
    """A bare notebook with the metric notebook's parameters cell, on the pipeline's warm-kernel worker."""
    import nbformat

    from leaguetables.run.kernels import NOTEBOOK_DIR, NotebookWorker

    src = nbformat.read(NOTEBOOK_DIR / "metric.ipynb", as_version=4)
    params = next(c for c in src.cells if "parameters" in c.metadata.get("tags", []))
    nb = nbformat.v4.new_notebook(metadata=src.metadata)
    nb.cells = [params]
    tmp = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        path = tmp / "bare.ipynb"
        nbformat.write(nb, path)
        w = NotebookWorker(tmp)
        times = []
        try:
            for i in range(repeat):
                p = {"quarter": "2025-26-Q4", "work_dir": str(tmp), "out_dir": str(tmp), "metric_id": "cdiff"}
                times.append(w.submit(w.execute, str(path), tmp / f"out{i}.ipynb", p).result())
        finally:
            w.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    first, rest = times[0], sorted(times[1:])[len(times[1:]) // 2]
    per_job = n_notebooks / jobs
    return {"first": first, "following": rest, "floor": first + max(per_job - 1, 0) * rest,
            "naive": first * per_job}


_POOL: dict = {}


def _pool_init(context: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from leaguetables.publication import figures
    from leaguetables.statistics import metrics

    with open(context, "rb") as f:
        ctx = pickle.load(f)
    _POOL.update(ctx, metrics=metrics, figures=figures)


def _pool_metric(args: tuple[str, str]) -> float:
    mid, quarter = args
    t0 = time.perf_counter()
    metrics, figures = _POOL["metrics"], _POOL["figures"]
    result = metrics.compute_metric(_POOL["inputs"], _POOL["catalogue"].metric(mid), quarter, _POOL["methodology"])
    figures.distribution(result)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    try:
        figures.save_funnels(result, tmp)
        metrics.write_result(result, tmp, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return time.perf_counter() - t0


def pure_parallel(quarter: str, context: Path, metric_ids: list[str], jobs: int) -> float:
    """Wall time of the metric computations spread over ``jobs`` processes (no notebooks): process start, imports
    and loading the run's context included, as a kernel pays them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters that import everything, as kernels do
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pool_init, initargs=(str(context),)) as ex:
        list(ex.map(_pool_metric, [(m, quarter) for m in metric_ids]))
    return time.perf_counter() - t0


def pure(quarter: str, data: Path, jobs: int) -> dict:
    """The notebooks' work in this process: validation, metrics, league, report sections."""
    import matplotlib

    matplotlib.use("Agg")
    t_import = time.perf_counter()
    from leaguetables.publication import figures
    from leaguetables.nof import league
    from leaguetables.statistics import metrics
    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.inputs.contract import load_inputs

    out = {"imports": time.perf_counter() - t_import}
    t0 = time.perf_counter()
    catalogue, methodology = load_catalogue("demo"), load_methodology("nof-2025-26")
    inputs = load_inputs(data, catalogue, quarter)
    out["validate"] = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench-pure-"))
    try:
        work, stage = tmp / "_work", tmp / "stage"
        work.mkdir()
        present = set(inputs.observations.loc[inputs.observations["quarter"] == quarter, "metric_id"])
        per_metric = {}
        for m in catalogue.metrics:
            if m.id not in present:
                continue
            t0 = time.perf_counter()
            result = metrics.compute_metric(inputs, m, quarter, methodology)
            figures.distribution(result)
            figures.save_funnels(result, work)
            result.model_summary(), result.coefficients(), result.funnel_summary()
            metrics.write_result(result, stage, work)
            per_metric[m.id] = time.perf_counter() - t0
        out["metrics"] = per_metric
        with open(work / "context.pkl", "wb") as f:
            pickle.dump({"inputs": inputs, "methodology": methodology, "catalogue": catalogue}, f)
        order = sorted(per_metric, key=lambda m: catalogue.metric(m).adjustment is None)  # as the pipeline does
        out["metrics_parallel"] = pure_parallel(quarter, work / "context.pkl", order, jobs)
        t0 = time.perf_counter()
        lg = league.build_league(work, inputs, methodology, catalogue, quarter)
        league.write_league(lg, inputs, catalogue, quarter, stage, work)
        out["league"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:  # the report notebook's own code cells, executed here with display() doing nothing
            import IPython.display
            import nbformat

            from leaguetables.inputs import store

            (work / "run.json").write_text(json.dumps({"quarter": quarter, "source": "demo",
                                                       "methodology": methodology.id,
                                                       "methodology_version": methodology.version,
                                                       "catalogue": catalogue.id,
                                                       "catalogue_version": catalogue.version,
                                                       "metric_ids": sorted(per_metric), "jobs": 1,
                                                       "input_checksums": {}}))
            IPython.display.display = lambda *a, **k: None
            nb = nbformat.read(ROOT / "notebooks" / "report.ipynb", as_version=4)
            files = store.write_inputs(inputs, tmp / "store", quarter, [])
            ns = {"quarter": quarter, "methodology": methodology.id, "catalogue": catalogue.id, **files.common(),
                  "work_dir": str(work), "out_dir": str(stage)}
            for cell in nb.cells:
                if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
                    exec(compile(cell.source, "report.ipynb", "exec"), ns)
            out["report"] = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - the report is being changed by another stream of work
            out["report"] = float("nan")
            out["report_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quarter", default="2025-26-Q4")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="reports folder to use and keep (default: a temporary one)")
    args = ap.parse_args()
    from leaguetables.run.pipeline import DEFAULT_DEMO_DATA

    if not (DEFAULT_DEMO_DATA / "observations.csv").exists():
        subprocess.run([sys.executable, "-m", "leaguetables.inputs.demo"], cwd=ROOT, check=True)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-quarter-"))
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, str(ROOT / "run_quarter.py"), args.quarter, "--out", str(out), "--jobs", str(args.jobs),
           "--no-progress"]
    try:
        print(f"cold run: {' '.join(cmd)}", flush=True)
        cold_wall, cold_peak, proc = run_measured(cmd)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        manifest = json.loads((out / args.quarter / "manifest.json").read_text())
        t = manifest["timings_seconds"]
        n_metrics = len(t["metrics"])
        print("no-op rerun", flush=True)
        noop_wall, noop_peak, proc2 = run_measured(cmd)
        if proc2.returncode != 0 or not proc2.stdout.startswith("unchanged"):
            print(proc2.stdout, proc2.stderr, file=sys.stderr)
        print("floor (bare notebooks)", flush=True)
        fl = floor(args.jobs, n_metrics + 2)
        print("pure computation (in-process)", flush=True)
        pu = pure(args.quarter, DEFAULT_DEMO_DATA, args.jobs)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)

    metrics_serial = sum(pu["metrics"].values())
    publication = t.get("export", 0.0)
    report_s = pu["report"] if pu["report"] == pu["report"] else 0.0
    rest = pu["imports"] + pu["validate"] + pu["league"] + report_s + publication
    pure_serial = rest + metrics_serial
    pure_par = rest + pu["metrics_parallel"]
    ideal = fl["floor"] + pure_par
    rows = [
        ("cold full quarter, wall", f"{cold_wall:.1f} s", "≤ 60 s", cold_wall <= 60),
        ("  … vs floor + pure computation", f"{cold_wall / ideal:.2f} ×  ({ideal:.1f} s)", "≤ 1.5 ×",
         cold_wall <= 1.5 * ideal),
        ("no-op rerun, wall", f"{noop_wall:.1f} s", "≤ 5 s", noop_wall <= 5),
        ("peak memory, process tree", f"{cold_peak / 2**30:.2f} GB", "≤ 2 GB", cold_peak <= 2 * 2**30),
    ]
    print()
    print(f"{'figure':44s} {'measured':>26s}  {'target':>9s}  ok")
    for name, val, target, ok in rows:
        print(f"{name:44s} {val:>26s}  {target:>9s}  {'yes' if ok else 'NO'}")
    print()
    print(f"cold run stages (manifest, s): validate {t['validate']:.1f}; metric notebooks {t['metrics_wall']:.1f} "
          f"({n_metrics} notebooks, {sum(t['metrics'].values()):.1f} s summed over {args.jobs} jobs); "
          f"league {t['league']:.1f}; report {t['report']:.1f}; published documents {publication:.1f} "
          f"({', '.join(f'{k} {v:.1f}' for k, v in t['publication'].items()) if isinstance(t['publication'], dict) else ''}); "
          f"total {t['total']:.1f}")
    slow = sorted(t["metrics"].items(), key=lambda kv: -kv[1])[:3]
    print(f"slowest metric notebooks (s): {', '.join(f'{k} {v:.1f}' for k, v in slow)}")
    print(f"floor: first bare notebook {fl['first']:.2f} s (kernel start), then {fl['following']:.2f} s each on a "
          f"warm kernel → {fl['floor']:.1f} s for {n_metrics + 2} notebooks on {args.jobs} jobs "
          f"(a fresh kernel per notebook would be {fl['naive']:.1f} s)")
    print(f"pure computation (s): imports {pu['imports']:.1f}; validate {pu['validate']:.1f}; metrics "
          f"{metrics_serial:.1f} in one process, {pu['metrics_parallel']:.1f} wall over {args.jobs} processes "
          f"(with their start, imports and context); league {pu['league']:.1f}; report sections {report_s:.1f}; "
          f"published documents {publication:.1f} (the run's own stage: no notebook) → {pure_serial:.1f} serial, "
          f"{pure_par:.1f} with the metrics over {args.jobs} processes (the comparison above)")
    if "report_error" in pu:
        print(f"  (report sections not measured: {pu['report_error']})")
    print(f"no-op rerun: {proc2.stdout.strip()}")
    print(f"peak memory: no-op rerun {noop_peak / 2**30:.2f} GB; machine load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
