"""Orchestration of one quarter: validate → metric notebooks (papermill, in parallel) → league → report → publish.

Everything is written into a staging folder beside the published one and moved into place only when every stage
has succeeded, so a failed or interrupted run never leaves a half-written quarter (see :mod:`leaguetables.publish`).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .config import PROJECT_ROOT, Catalogue, Methodology, load_catalogue, load_methodology
from .contract import QuarterInputs, check_quarter, load_inputs
from .errors import InputError, PipelineError

KERNEL_NAME = "leaguetables"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo"
DEFAULT_REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
DEFAULT_OUT = PROJECT_ROOT / "reports"
SOURCES = ("demo", "nhse", "files")
SOURCE_CATALOGUE = {"demo": "demo", "nhse": "nhse-acute", "files": None}


@dataclass
class RunOptions:
    quarter: str
    source: str = "demo"
    data: Path | None = None
    raw: Path = DEFAULT_REAL_DATA
    out: Path = DEFAULT_OUT
    jobs: int = 2
    metrics: list[str] | None = None
    methodology: str = "nof-2025-26"
    catalogue: str | None = None
    progress: bool = True
    timings: dict = field(default_factory=dict)


@dataclass
class Prepared:
    options: RunOptions
    methodology: Methodology
    catalogue: Catalogue
    inputs: QuarterInputs
    data_dir: Path
    metric_ids: list[str]


def kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME in KernelSpecManager().find_kernel_specs()


def prepare(opts: RunOptions, scratch: Path) -> Prepared:
    """Resolve configuration and inputs, validating everything before any notebook runs."""
    check_quarter(opts.quarter)
    if opts.source not in SOURCES:
        raise InputError(f"unknown source {opts.source!r}; choose one of {list(SOURCES)}")
    if opts.jobs < 1:
        raise InputError("--jobs must be at least 1")
    methodology = load_methodology(opts.methodology)
    cat_name = opts.catalogue or SOURCE_CATALOGUE.get(opts.source) or methodology.catalogue
    catalogue = load_catalogue(cat_name)
    if opts.source == "demo":
        data_dir = Path(opts.data) if opts.data else DEFAULT_DEMO_DATA
        if not (data_dir / "observations.csv").exists() and opts.data is None:
            from . import demo

            demo.write(data_dir)
    elif opts.source == "nhse":
        from .sources import nhse

        data_dir = scratch / "inputs"
        nhse.write_quarter(opts.quarter, Path(opts.raw), data_dir)
    else:
        if opts.data is None:
            raise InputError("--source files needs --data DIR (a folder with the four contract CSV files)")
        data_dir = Path(opts.data)
    inputs = load_inputs(data_dir, catalogue, opts.quarter)
    present = set(inputs.observations.loc[inputs.observations["quarter"] == opts.quarter, "metric_id"])
    metric_ids = [m.id for m in catalogue.metrics if m.id in present]
    if opts.metrics:
        unknown = [m for m in opts.metrics if m not in catalogue.ids]
        if unknown:
            raise InputError(f"--metrics: unknown metric(s) {unknown}; the catalogue {catalogue.id!r} has "
                             f"{catalogue.ids}")
        absent = [m for m in opts.metrics if m not in present]
        if absent:
            raise InputError(f"--metrics: no data for {absent} in {opts.quarter}")
        metric_ids = [m for m in metric_ids if m in opts.metrics]
    if not metric_ids:
        raise InputError(f"no metric has data for {opts.quarter}")
    return Prepared(opts, methodology, catalogue, inputs, data_dir, metric_ids)


def _execute(notebook: str, out_path: Path, parameters: dict, cwd: Path) -> float:
    import papermill as pm

    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(NOTEBOOK_DIR / notebook), str(out_path), parameters=parameters, kernel_name=KERNEL_NAME,
            progress_bar=False, start_timeout=120, execution_timeout=1200, cwd=str(cwd), log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        raise PipelineError(f"{notebook} failed for {parameters.get('metric_id', parameters.get('quarter'))}: "
                            f"{exc.ename}: {exc.evalue} (see {out_path})") from None
    return time.perf_counter() - t0


def run_notebooks(prep: Prepared, staging: Path, work: Path) -> dict:
    """Execute the metric notebooks in parallel, then the league and report notebooks."""
    opts = prep.options
    nb_dir = staging / "notebooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    common = {"quarter": opts.quarter, "work_dir": str(work), "out_dir": str(staging)}
    timings: dict = {"metrics": {}}
    t0 = time.perf_counter()
    progress = None
    if opts.progress:
        from tqdm import tqdm

        progress = tqdm(total=len(prep.metric_ids), desc="metric notebooks", unit="nb", leave=True)
    with ThreadPoolExecutor(max_workers=min(opts.jobs, len(prep.metric_ids))) as pool:
        futures = {
            pool.submit(_execute, "metric.ipynb", nb_dir / f"metric_{mid}.ipynb", {**common, "metric_id": mid},
                        work): mid
            for mid in prep.metric_ids
        }
        try:
            for fut in as_completed(futures):
                timings["metrics"][futures[fut]] = round(fut.result(), 3)
                if progress is not None:
                    progress.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            if progress is not None:
                progress.close()
    timings["metrics_wall"] = round(time.perf_counter() - t0, 3)
    timings["league"] = round(_execute("league_table.ipynb", nb_dir / "league_table.ipynb", common, work), 3)
    timings["report"] = round(_execute("report.ipynb", nb_dir / "report.ipynb", common, work), 3)
    return timings


def write_context(prep: Prepared, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "context.pkl", "wb") as f:
        pickle.dump({"inputs": prep.inputs, "methodology": prep.methodology, "catalogue": prep.catalogue}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)
    run = {
        "quarter": prep.options.quarter,
        "source": prep.options.source,
        "methodology": prep.methodology.id,
        "methodology_version": prep.methodology.version,
        "catalogue": prep.catalogue.id,
        "catalogue_version": prep.catalogue.version,
        "metric_ids": prep.metric_ids,
        "jobs": prep.options.jobs,
    }
    (work / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True), encoding="utf-8")


def run(opts: RunOptions) -> Path:
    """Run a quarter end to end and publish it; return the published folder."""
    from . import publish

    t_start = time.perf_counter()
    out_root = Path(opts.out).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    staging = out_root / f".staging-{opts.quarter}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    work = staging / "_work"
    work.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        prep = prepare(opts, work)
        timings = {"validate": round(time.perf_counter() - t0, 3)}
        if not kernel_available():
            raise PipelineError(f"Jupyter kernel {KERNEL_NAME!r} is not registered; run `make setup`")
        write_context(prep, work)
        timings.update(run_notebooks(prep, staging, work))
        t0 = time.perf_counter()
        publish.finalise(prep, staging, work, timings)
        timings["publish"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - t_start, 3)
        opts.timings = timings
        return publish.publish(staging, out_root / opts.quarter, timings)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
