"""Orchestration of one quarter: validate → metric notebooks (papermill, in parallel) → league → report → publish.

Everything is written into a staging folder beside the published one and moved into place only when every stage
has succeeded, so a failed or interrupted run never leaves a half-written quarter (see :mod:`leaguetables.publish`).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
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
FAILED_DIR = ".failed"  # under the reports folder: the executed notebooks of the last failed run of a quarter
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

        if not Path(opts.raw).is_dir():
            raise InputError(f"--raw folder {opts.raw} does not exist (NHS England's published files)")
        data_dir = scratch / "inputs"
        try:
            nhse.write_quarter(nhse.load_nhse_quarter(opts.quarter, Path(opts.raw)), data_dir)
        except nhse.NoDataForQuarter as exc:
            raise InputError(f"--source nhse: {exc}") from None
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


RESET_SOURCE = ("# Added by run_quarter.py: this kernel is reused from the previous notebook of the run (to avoid a\n"
                "# process start and imports per notebook); its namespace is reset first.\n"
                "get_ipython().reset(new_session=True, aggressive=False)")


class NotebookWorker:
    """One warm Jupyter kernel (the project's named kernel) in its own thread, reused for several notebooks.

    Starting a kernel and importing pandas, statsmodels and matplotlib costs seconds per notebook; a worker pays
    it once. Every notebook still runs, and is saved, as its own executed notebook; a notebook run on a reused
    kernel starts with a visible cell that resets the namespace.
    """

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.km = None
        self.used = 0
        self.pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def execute(self, notebook: str, out_path: Path, parameters: dict) -> float:
        import nbformat
        import papermill as pm
        from jupyter_client.manager import AsyncKernelManager

        t0 = time.perf_counter()
        if self.km is None:
            # IPC sockets (no open TCP ports); unix socket paths must be short, hence a fresh /tmp folder
            self.ipc_dir = tempfile.mkdtemp(prefix="ltk-")
            self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc")
            self.km.connection_file = os.path.join(self.ipc_dir, "kernel.json")
            self.km.ip = os.path.join(self.ipc_dir, "k")
        nb = nbformat.read(NOTEBOOK_DIR / notebook, as_version=4)
        if self.used:
            cell = nbformat.v4.new_code_cell(RESET_SOURCE)
            cell.id = "kernel-reset"
            cell.metadata["tags"] = ["remove-cell"]
            nb.cells.insert(0, cell)
        self.used += 1
        try:
            pm.execute_notebook(
                nb, str(out_path), parameters=parameters, kernel_name=KERNEL_NAME, km=self.km,
                progress_bar=False, start_timeout=120, execution_timeout=1200, cwd=str(self.cwd), log_output=False,
            )
        except pm.PapermillExecutionError as exc:
            raise PipelineError(f"{notebook} failed for {parameters.get('metric_id', parameters.get('quarter'))}: "
                                f"{exc.ename}: {exc.evalue} (see {FAILED_DIR}/{out_path.parent.parent.name}/"
                                f"notebooks/{out_path.name})") from None
        return time.perf_counter() - t0

    def _shutdown(self) -> None:
        if self.km is not None:
            from jupyter_core.utils import run_sync

            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - best effort: the process is gone either way
                pass
            self.km = None
            shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def close(self) -> None:
        self.pool.submit(self._shutdown).result()
        self.pool.shutdown(wait=True)


def run_notebooks(prep: Prepared, staging: Path, work: Path) -> dict:
    """Execute the metric notebooks in parallel on warm kernels, then the league and report notebooks."""
    import queue
    import threading

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
    todo: queue.Queue = queue.Queue()
    # the slowest metrics (demographic models) first, so the two workers finish together
    for mid in sorted(prep.metric_ids, key=lambda m: prep.catalogue.metric(m).adjustment is None):
        todo.put(mid)
    lock = threading.Lock()
    failed = threading.Event()

    def drain(worker: NotebookWorker) -> None:
        while not failed.is_set():
            try:
                mid = todo.get_nowait()
            except queue.Empty:
                return
            try:
                seconds = worker.execute("metric.ipynb", nb_dir / f"metric_{mid}.ipynb", {**common, "metric_id": mid})
            except BaseException:
                failed.set()
                raise
            with lock:
                timings["metrics"][mid] = round(seconds, 3)
                if progress is not None:
                    progress.update(1)

    workers = [NotebookWorker(work) for _ in range(min(opts.jobs, len(prep.metric_ids)))]
    try:
        futures = [w.submit(drain, w) for w in workers]
        for f in futures:
            f.result()
        if progress is not None:
            progress.close()
        timings["metrics_wall"] = round(time.perf_counter() - t0, 3)
        w = workers[0]
        timings["league"] = round(w.submit(w.execute, "league_table.ipynb", nb_dir / "league_table.ipynb",
                                           common).result(), 3)
        timings["report"] = round(w.submit(w.execute, "report.ipynb", nb_dir / "report.ipynb", common).result(), 3)
    finally:
        failed.set()
        for w in workers:
            w.close()
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
    from .publication import build_publication

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
        timings["publication"] = build_publication(prep, staging, work)
        timings["export"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - t_start, 3)
        opts.timings = timings
        publish.write_manifest(prep, staging, timings)
        return publish.publish(staging, out_root / opts.quarter)
    except PipelineError as exc:
        failed = out_root / FAILED_DIR / staging.name
        shutil.rmtree(out_root / FAILED_DIR, ignore_errors=True)
        failed.parent.mkdir(parents=True)
        shutil.rmtree(work, ignore_errors=True)
        os.replace(staging, failed)
        raise PipelineError(str(exc).replace(f"{FAILED_DIR}/{staging.name}", str(failed))) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
