"""Orchestration of one quarter: validate → metric notebooks (papermill, in parallel) → league → revisions → report
→ published documents → compare with what is published → publish.

* **Validation first**: the configuration, arguments and the four inputs are validated before anything is
  written; bad input raises :class:`~leaguetables.errors.InputError` and leaves the reports folder untouched.
* **Staging and atomic publishing**: everything is written into ``<out>/.staging-<quarter>/`` under the quarter's
  lock and moved into place by :func:`leaguetables.run.publish.publish` only when every stage has succeeded; a failed,
  interrupted or killed run never leaves a half-written quarter and never touches a published one. Staging folders
  of killed runs are removed by the next run.
* **Incremental**: each stage is keyed on the content of what it reads (:mod:`leaguetables.run.cache`); a stage whose
  key is in the cache is restored instead of executed.
* **Reruns**: a run over a published quarter compares its outputs with the published ones
  (:mod:`leaguetables.run.verify`): identical → nothing to do (a no-op); different → refused unless ``revise`` (publish
  with ``tables/revisions.csv``, :mod:`leaguetables.run.revisions`) or ``force`` (replace). The replaced version is kept
  under ``<out>/.superseded/``. ``mode="verify"`` reruns without the cache and reports the differences only.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from leaguetables.config import PROJECT_ROOT, SAFE_ID, Catalogue, Methodology, load_catalogue, load_methodology
from leaguetables.inputs.contract import QuarterInputs, check_quarter, load_inputs, previous_quarter, quarter_key
from leaguetables.errors import InputError, PipelineError

KERNEL_NAME = "leaguetables"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo"
DEFAULT_REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
DEFAULT_OUT = PROJECT_ROOT / "reports"
SOURCES = ("demo", "nhse", "nof", "files")
FAILED_DIR = ".failed"  # under the reports folder: the executed notebooks of the last failed run of a quarter
SOURCE_CATALOGUE = {"demo": "demo", "nhse": "nhse-acute", "nof": "nof-2025-26", "files": None}
#: Sources whose contract files are derived from --raw into a scratch folder (not the reports folder).
DERIVED_SOURCES = ("nhse", "nof")
MODES = ("publish", "verify")


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
    mode: str = "publish"  # "publish", or "verify": rerun without the cache, compare, never publish
    revise: bool = False  # publish over a published quarter, with tables/revisions.csv
    force: bool = False  # publish over a published quarter, replacing it (kept under .superseded/)
    use_cache: bool = True
    log: Callable[[str], None] | None = None  # one-line progress messages (run_quarter.py: stderr)


@dataclass
class Prepared:
    options: RunOptions
    methodology: Methodology
    catalogue: Catalogue
    inputs: QuarterInputs
    data_dir: Path
    metric_ids: list[str]
    methodology_path: Path | None = None
    catalogue_path: Path | None = None
    omitted: list[str] = field(default_factory=list)  # metrics with data for the quarter left out by --metrics

    @property
    def partial(self) -> bool:
        """A --metrics run that leaves out metrics the quarter has data for: marked partial wherever published."""
        return bool(self.omitted)


@dataclass
class Outcome:
    """What a run did: ``published``, ``unchanged`` (identical to the published quarter: nothing to do),
    ``refused`` (would change a published quarter without --revise/--force), ``verified`` or ``differs``."""

    status: str
    folder: Path
    comparison: object | None = None  # verify.Comparison
    cache: object | None = None  # cache.CacheReport
    timings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    revisions: int = 0


def default_source(data: Path | None) -> str:
    """The source when ``--source`` is not given: the demo without ``--data``; with ``--data``, ``demo`` only for a
    folder the demo generator wrote (its ``demo-source.json``), else ``files`` (the user's own data — never labelled
    synthetic)."""
    from leaguetables.inputs.demo import is_demo_data

    if data is None or is_demo_data(Path(data)):
        return "demo"
    return "files"


def kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME in KernelSpecManager().find_kernel_specs()


def _log(opts: RunOptions, message: str) -> None:
    if opts.log is not None:
        opts.log(message)


# --------------------------------------------------------------------------------------------------- validation
def check_path(path: Path, what: str) -> Path:
    """An absolute path with no control characters (it is passed to notebooks as a parameter)."""
    text = str(path)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InputError(f"{what} {text!r} contains a control character")
    return Path(os.path.abspath(text))


def _config_path(kind: str, name: str) -> Path:
    p = Path(name)
    return p.resolve() if p.suffix in (".yaml", ".yml") else PROJECT_ROOT / "config" / kind / f"{name}.yaml"


def _write_demo(data_dir: Path) -> None:
    """Generate the demo data atomically (a killed run never leaves a half-written data/demo)."""
    from leaguetables.inputs import demo

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}-", dir=data_dir.parent))
    try:
        demo.write(tmp)
        if data_dir.exists() and not (data_dir / "observations.csv").exists():
            shutil.rmtree(data_dir)
        try:
            os.rename(tmp, data_dir)
        except OSError:
            if not (data_dir / "observations.csv").exists():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(opts: RunOptions, scratch: Path) -> Prepared:
    """Resolve configuration and inputs, validating everything before any notebook runs (nothing is written to the
    reports folder)."""
    check_quarter(opts.quarter)
    if opts.source not in SOURCES:
        raise InputError(f"unknown source {opts.source!r}; choose one of {list(SOURCES)}")
    if opts.mode not in MODES:
        raise InputError(f"unknown mode {opts.mode!r}")
    if opts.jobs < 1:
        raise InputError("--jobs must be at least 1")
    if opts.revise and opts.force:
        raise InputError("--revise and --force cannot be combined: --revise publishes the changes as revisions, "
                         "--force replaces the published quarter")
    check_path(Path(opts.out), "--out")
    if opts.metrics is not None:
        opts.metrics = [m.strip() for m in opts.metrics if m.strip()]
        if not opts.metrics:
            raise InputError("--metrics names no metric (give comma-separated metric ids, or leave --metrics out "
                             "to run every metric)")
    for m in opts.metrics or []:
        if not SAFE_ID.match(m):
            raise InputError(f"--metrics: {m!r} is not a metric id (lower-case letters, digits and underscores)")
    methodology = load_methodology(opts.methodology)
    seg = methodology.segmentation
    if seg.unsourced:
        raise InputError(f"methodology {methodology.id}: its segment thresholds are not published in any source "
                         "this project has, so segments cannot be computed; set segmentation.thresholds with "
                         "thresholds_source to publish")
    if seg.illustrative and opts.source != "demo":
        raise InputError(f"methodology {methodology.id}: its segment thresholds are illustrative, not NHS "
                         f"England's; real data (--source {opts.source}) need thresholds with a published source")
    cat_name = opts.catalogue or SOURCE_CATALOGUE.get(opts.source) or methodology.catalogue
    catalogue = load_catalogue(cat_name)
    if opts.source == "demo":
        data_dir = Path(opts.data) if opts.data else DEFAULT_DEMO_DATA
        if not (data_dir / "observations.csv").exists() and opts.data is None:
            _write_demo(data_dir)
    elif opts.source == "nhse":
        from leaguetables.inputs.sources import nhse

        if not Path(opts.raw).is_dir():
            raise InputError(f"--raw folder {opts.raw} does not exist (NHS England's published files)")
        data_dir = scratch / "inputs"
        try:
            # every acute trust, specialists included, each on the metrics that apply (NHS England ranks all 134)
            nhse.write_quarter(nhse.load_nhse_quarter(opts.quarter, Path(opts.raw), type1_only=False), data_dir)
        except nhse.NoDataForQuarter as exc:
            raise InputError(f"--source nhse: {exc}") from None
    elif opts.source == "nof":
        from leaguetables.inputs.sources import nhse, nof

        if not Path(opts.raw).is_dir():
            raise InputError(f"--raw folder {opts.raw} does not exist (NHS England's published files)")
        data_dir = scratch / "inputs"
        try:
            nhse.write_quarter(nof.load_nof_quarter(opts.quarter, Path(opts.raw), catalogue), data_dir)
        except nof.NoNofData as exc:
            raise InputError(f"--source nof: {exc}") from None
    else:
        if opts.data is None:
            raise InputError("--source files needs --data DIR (a folder with the four contract CSV files)")
        data_dir = Path(opts.data)
    data_dir = check_path(data_dir, "data folder")
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
        omitted = [m for m in metric_ids if m not in opts.metrics]
        metric_ids = [m for m in metric_ids if m in opts.metrics]
    else:
        omitted = []
    if not metric_ids:
        raise InputError(f"no metric has data for {opts.quarter}")
    return Prepared(opts, methodology, catalogue, inputs, data_dir, metric_ids,
                    methodology_path=_config_path("methodology", opts.methodology),
                    catalogue_path=_config_path("catalogues", cat_name), omitted=omitted)


def check_parameters(parameters: dict) -> str:
    """The parameters cell papermill will inject, checked to be nothing but ``name = <literal>`` lines whose
    literals are exactly the values given (so no value can inject code into a notebook). Returns the cell source."""
    from papermill.translators import PythonTranslator

    source = PythonTranslator.codify(parameters)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}") from None
    names = []
    for node in tree.body:
        ok = (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and isinstance(node.value, ast.Constant))
        if not ok or parameters.get(node.targets[0].id, object()) != node.value.value:
            raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}")
        names.append(node.targets[0].id)
    if names != list(parameters):
        raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}")
    check_quarter(parameters["quarter"])
    if "metric_id" in parameters and not SAFE_ID.match(parameters["metric_id"]):
        raise InputError(f"metric id {parameters['metric_id']!r} is not safe")
    for key in ("work_dir", "out_dir"):
        if key in parameters and not os.path.isabs(parameters[key]):
            raise InputError(f"notebook parameter {key} must be an absolute path")
    return source


# ------------------------------------------------------------------------------------------------ notebook workers
RESET_SOURCE = ("# Added by run_quarter.py: this kernel is reused from the previous notebook of the run (to avoid a\n"
                "# process start and imports per notebook); its namespace is reset first. Outputs are not cached in\n"
                "# Out[] (nothing reads them), which spares the reset a full garbage collection; warnings already\n"
                "# shown by an earlier notebook are shown again, as they would be on a fresh kernel.\n"
                "get_ipython().displayhook.do_full_cache = False\n"
                "get_ipython().reset(new_session=True, aggressive=False)\n"
                "__import__('warnings')._filters_mutated()")

_ENGINE = "leaguetables"
_engine_lock = threading.Lock()


def _register_local_io() -> None:
    """Papermill's local file handler reads and writes inside ``chdir(cwd)``: a change of the whole process's working
    directory, made from every notebook thread at once. The pipeline passes absolute paths only (check_parameters,
    absolute_paths), so its handler opens them as they are and never changes directory."""
    from papermill.iorw import LocalHandler, papermill_io

    class _AbsoluteLocalHandler(LocalHandler):
        def read(self, path):
            if not os.path.isabs(path):
                return super().read(path)  # a notebook passed as JSON text, or a caller outside the pipeline
            with open(path, encoding="utf-8") as f:
                return f.read()

        def listdir(self, path):
            return [os.path.join(path, fn) for fn in os.listdir(path)]

        def write(self, buf, path):
            if not os.path.isabs(path):
                raise ValueError(f"the pipeline writes notebooks to absolute paths only, not {path!r}")
            dirname = os.path.dirname(path)
            if not os.path.isdir(dirname):
                raise FileNotFoundError(f"output folder {dirname} doesn't exist.")
            with open(path, "w", encoding="utf-8") as f:
                f.write(buf)

    papermill_io.register("local", _AbsoluteLocalHandler())


def _register_engine() -> None:
    """A papermill engine for warm kernels:

    * it writes the executed notebook once, at the end (papermill's default engine rewrites the whole notebook
      before and after every cell, to follow long runs live: ~25 writes per metric notebook);
    * it reuses the worker's kernel client from one notebook to the next (``client`` is a dict holding it): a new
      client per notebook costs ~0.2 s waiting for its IOPub subscription to catch the kernel's status messages.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    with _engine_lock:
        if _ENGINE in papermill_engines._engines:
            return
        _register_local_io()

        class _Manager(NotebookExecutionManager):
            _final = False

            def save(self, **kwargs):
                if self._final:
                    super().save(**kwargs)

            def notebook_complete(self, **kwargs):
                self._final = True
                super().notebook_complete(**kwargs)

        class _Engine(NBClientEngine):
            @classmethod
            def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                                 autosave_cell_every=30, **kwargs):
                nb_man = _Manager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                  autosave_cell_every=autosave_cell_every)
                nb_man.notebook_start()
                try:
                    cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
                finally:
                    nb_man.cleanup_pbar()
                    nb_man.notebook_complete()
                return nb_man.nb

            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                         stderr_file=None, start_timeout=60, execution_timeout=None, client=None,
                                         **kwargs):
                kwargs = remove_args(["input_path"], **kwargs)
                safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
                final_kwargs = merge_kwargs(
                    safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                    startup_timeout=start_timeout, kernel_name=kernel_name, log=logger, log_output=log_output,
                    stdout_file=stdout_file, stderr_file=stderr_file,
                    # one output per stream per cell: how a print() is split into messages depends on the
                    # kernel's flush timing under load, and must not change the saved notebook
                    coalesce_streams=True)
                nbc = PapermillNotebookClient(nb_man, **final_kwargs)
                if client is not None and client.get("kc") is not None:
                    nbc.kc = client["kc"]
                try:
                    return nbc.execute()
                finally:
                    if client is not None:
                        client["kc"] = nbc.kc

        papermill_engines.register(_ENGINE, _Engine)


IPC_PREFIX = "ltk-"  # <tmp>/ltk-<pid>-<random>/: the kernel's IPC sockets (unix socket paths must be short)


def remove_stale_ipc_dirs() -> list[str]:
    """Remove the kernel socket folders of runs that were killed (SIGKILL: no cleanup could run): only folders named
    ``ltk-<pid>-…`` whose process is gone and that hold nothing but a kernel's connection file and sockets."""
    removed = []
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(f"{IPC_PREFIX}*-*"):
        m = re.fullmatch(re.escape(IPC_PREFIX) + r"(\d+)-[A-Za-z0-9_]+", d.name)
        if not m or not d.is_dir() or d.is_symlink():
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue  # alive (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            names = [p.name for p in d.iterdir()]
        except OSError:
            continue
        if all(n == "kernel.json" or re.fullmatch(r"k-\d+", n) for n in names):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


class NotebookWorker:
    """One warm Jupyter kernel (the project's named kernel) in its own thread, reused for several notebooks.

    Starting a kernel and importing pandas, statsmodels and matplotlib costs seconds per notebook; a worker pays
    it once. Every notebook still runs, and is saved, as its own executed notebook; a notebook run on a reused
    kernel starts with a visible cell that resets the namespace.
    """

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.km = None
        self.client: dict = {}  # the kernel client, reused from one notebook to the next (see _register_engine)
        self.used = 0
        self.pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def execute(self, notebook: str, out_path: Path, parameters: dict) -> float:
        import nbformat
        import papermill as pm
        from jupyter_client.manager import AsyncKernelManager

        check_parameters(parameters)
        _register_engine()
        t0 = time.perf_counter()
        if self.km is None:
            # IPC sockets (no open TCP ports); unix socket paths must be short, hence a fresh /tmp folder
            remove_stale_ipc_dirs()
            self.ipc_dir = tempfile.mkdtemp(prefix=f"{IPC_PREFIX}{os.getpid()}-")
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
                engine_name=_ENGINE, progress_bar=False, start_timeout=120, execution_timeout=1200,
                log_output=False, client=self.client, resources={"metadata": {"path": str(self.cwd)}},
            )
        except pm.PapermillExecutionError as exc:
            raise PipelineError(f"{notebook} failed for {parameters.get('metric_id', parameters.get('quarter'))}: "
                                f"{exc.ename}: {exc.evalue} (see {FAILED_DIR}/{out_path.parent.parent.name}/"
                                f"notebooks/{out_path.name})") from None
        return time.perf_counter() - t0

    def _shutdown(self) -> None:
        if self.km is not None:
            from jupyter_core.utils import run_sync

            kc = self.client.pop("kc", None)
            if kc is not None:
                try:
                    kc.stop_channels()
                except Exception:  # noqa: BLE001 - best effort
                    pass
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - best effort: the process is gone either way
                pass
            self.km = None
            shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def close(self) -> None:
        self.pool.submit(self._shutdown).result()
        self.pool.shutdown(wait=True)


class Workers:
    """Up to ``jobs`` warm kernels, started only when a stage has to be executed (a no-op run starts none)."""

    def __init__(self, jobs: int, cwd: Path):
        self.jobs, self.cwd = jobs, cwd
        self.workers: list[NotebookWorker] = []

    def get(self, n: int) -> list[NotebookWorker]:
        while len(self.workers) < min(n, self.jobs):
            self.workers.append(NotebookWorker(self.cwd))
        return self.workers[:n]

    def run_one(self, notebook: str, out_path: Path, parameters: dict) -> float:
        w = self.get(1)[0]
        return w.submit(w.execute, notebook, out_path, parameters).result()

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []


# ----------------------------------------------------------------------------------------------------- cache keys
class Keys:
    """Content keys of the stages of one run (see :mod:`leaguetables.run.cache`)."""

    def __init__(self, prep: Prepared, out_root: Path):
        from leaguetables.run.cache import code_hash, frame_hash, sha256_json

        self.prep, self.out_root = prep, out_root
        q = prep.options.quarter
        inputs = prep.inputs
        self.code = code_hash()
        self.methodology = sha256_json(prep.methodology.model_dump(mode="json"))
        self.catalogue = sha256_json(prep.catalogue.model_dump(mode="json"))
        self.quarters = [x for x in inputs.quarters() if quarter_key(x) <= quarter_key(q)]
        st = inputs.status
        self.common = {"quarter": q, "code": self.code, "methodology": self.methodology,
                       "trusts": frame_hash(inputs.trusts), "demographics": frame_hash(inputs.demographics),
                       "status": frame_hash(st[st["quarter"] == q]), "quarters": self.quarters}
        obs = inputs.observations
        self._obs = obs[obs["quarter"].isin(self.quarters)]
        self._frame_hash, self._sha = frame_hash, sha256_json
        self.metric_keys: dict[str, str] = {}

    @staticmethod
    def notebook(name: str) -> str:
        from leaguetables.config import file_sha256

        return file_sha256(NOTEBOOK_DIR / name)

    def metric(self, mid: str) -> tuple[str, dict]:
        obs = self._obs[self._obs["metric_id"] == mid].sort_values(["quarter", "trust_code"], kind="mergesort")
        describe = {"stage": "metric", "metric_id": mid, "notebook": self.notebook("metric.ipynb"),
                    "metric": self._sha(self.prep.catalogue.metric(mid).model_dump(mode="json")),
                    "catalogue": [self.prep.catalogue.id, self.prep.catalogue.version],
                    "observations": self._frame_hash(obs.reset_index(drop=True)), **self.common}
        key = self._sha(describe)
        self.metric_keys[mid] = key
        return key, describe

    def league(self) -> tuple[str, dict]:
        # movement is computed from the inputs (both quarters' observations, in the metric keys, and status flags)
        prev_q = previous_quarter(self.prep.options.quarter)
        st = self.prep.inputs.status
        describe = {"stage": "league", "notebook": self.notebook("league_table.ipynb"), "catalogue": self.catalogue,
                    "metrics": dict(sorted(self.metric_keys.items())), "metric_ids": self.prep.metric_ids,
                    "previous_quarter_status": self._frame_hash(st[st["quarter"] == prev_q].reset_index(drop=True)),
                    **self.common}
        self.league_key = self._sha(describe)
        return self.league_key, describe

    def report(self, staging: Path) -> tuple[str, dict]:
        from leaguetables.run.cache import tree_hash
        from leaguetables.config import file_sha256
        from leaguetables.run.manifest import git_state

        inputs = self.prep.inputs
        describe = {"stage": "report", "notebook": self.notebook("report.ipynb"), "league": self.league_key,
                    "inputs": {k: self._frame_hash(getattr(inputs, k))
                               for k in ("trusts", "observations", "demographics", "status")},
                    "input_files": {k: file_sha256(Path(v)) for k, v in sorted(inputs.files.items())},
                    "run": file_sha256(staging / "_work" / "run.json"), "tables": tree_hash(staging / "tables"),
                    "git": git_state(), "catalogue": self.catalogue, **self.common}
        describe["git"].pop("head", None)
        self.report_key = self._sha(describe)
        return self.report_key, describe

    def publication(self, staging: Path) -> tuple[str, dict]:
        from leaguetables.run.cache import tree_hash

        describe = {"stage": "publication", "report": self.report_key, "tables": tree_hash(staging / "tables")}
        return self._sha(describe), describe


def metric_outputs(staging: Path, mid: str, all_ids: list[str]) -> list[str]:
    """The files a metric notebook wrote: executed notebook, tables/metrics/<id>*.csv, _work/metrics/<id>.pkl,
    _work/figures/<id>__*."""
    longer = [m for m in all_ids if m != mid and m.startswith(mid)]
    out = []
    for folder, pattern in (("notebooks", f"metric_{mid}.ipynb"), ("tables/metrics", f"{mid}*.csv"),
                            ("_work/metrics", f"{mid}*"), ("_work/figures", f"{mid}__*")):
        for p in sorted((staging / folder).glob(pattern)):
            rel = p.relative_to(staging).as_posix()
            stem = p.name[len("metric_"):] if folder == "notebooks" else p.name
            if p.is_file() and not any(stem.startswith(m) and stem[len(m):len(m) + 1] in ("", ".", "_")
                                       for m in longer):
                out.append(rel)
    return out


# ---------------------------------------------------------------------------------------------------------- stages
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
        "partial": prep.partial,
        "omitted_metrics": prep.omitted,
    }
    (work / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True), encoding="utf-8")


def run_metric_stage(prep: Prepared, staging: Path, work: Path, workers: Workers, cache, keys: Keys, report,
                     timings: dict) -> None:
    """The metric notebooks: restored from the cache where their key is there, the rest executed in parallel."""
    import queue

    opts = prep.options
    nb_dir = staging / "notebooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    common = {"quarter": opts.quarter, "work_dir": str(work), "out_dir": str(staging)}
    timings["metrics"] = {}
    t0 = time.perf_counter()
    todo: list[str] = []
    describe: dict[str, dict] = {}
    for mid in prep.metric_ids:
        key, describe[mid] = keys.metric(mid)
        report.keys[f"metric:{mid}"] = key
        if cache.restore(f"metric-{mid}", key, staging) is not None:
            report.reused.append(f"metric:{mid}")
        else:
            todo.append(mid)
    if todo:
        progress = None
        if opts.progress:
            from tqdm import tqdm

            progress = tqdm(total=len(todo), desc="metric notebooks", unit="nb", leave=True)
        # the slowest metrics (demographic models) first, so the workers finish together
        q: queue.Queue = queue.Queue()
        for mid in sorted(todo, key=lambda m: prep.catalogue.metric(m).adjustment is None):
            q.put(mid)
        lock = threading.Lock()
        failed = threading.Event()

        def drain(worker: NotebookWorker) -> None:
            while not failed.is_set():
                try:
                    mid = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    seconds = worker.execute("metric.ipynb", nb_dir / f"metric_{mid}.ipynb",
                                             {**common, "metric_id": mid})
                    cache.store(f"metric-{mid}", keys.metric_keys[mid], staging,
                                metric_outputs(staging, mid, prep.catalogue.ids), describe[mid])
                except BaseException:
                    failed.set()
                    raise
                with lock:
                    timings["metrics"][mid] = round(seconds, 3)
                    report.executed.append(f"metric:{mid}")
                    if progress is not None:
                        progress.update(1)

        try:
            futures = [w.submit(drain, w) for w in workers.get(len(todo))]
            for f in futures:
                f.result()
        finally:
            failed.set()
            if progress is not None:
                progress.close()
    timings["metrics_wall"] = round(time.perf_counter() - t0, 3)


def run_cached(name: str, key: str, describe: dict, staging: Path, cache, report, execute: Callable[[], object],
               skip: tuple[str, ...] = ()) -> float:
    """A sequential stage: restore its files from the cache, or execute it and store what it wrote."""
    from leaguetables.run.cache import changed_files, snapshot

    t0 = time.perf_counter()
    report.keys[name] = key
    if cache.restore(name, key, staging) is not None:
        report.reused.append(name)
        return 0.0
    before = snapshot(staging, skip) if cache.enabled else {}
    execute()
    if cache.enabled:
        cache.store(name, key, staging, changed_files(before, snapshot(staging, skip)), describe)
    report.executed.append(name)
    return round(time.perf_counter() - t0, 3)


def build(prep: Prepared, staging: Path, work: Path, cache, out_root: Path, target: Path) -> tuple[dict, object, int]:
    """Every stage into ``staging``: (timings, cache report, number of revisions)."""
    from leaguetables.run import publish
    from leaguetables.run import revisions
    from leaguetables.run.cache import CacheReport
    from leaguetables.publication.documents import build_publication

    opts = prep.options
    report = CacheReport()
    keys = Keys(prep, out_root)
    common = {"quarter": opts.quarter, "work_dir": str(work), "out_dir": str(staging)}
    nb_dir = staging / "notebooks"
    workers = Workers(opts.jobs, work)
    timings: dict = {}
    n_revisions = 0
    try:
        run_metric_stage(prep, staging, work, workers, cache, keys, report, timings)
        publish.checkpoint("metrics")
        key, describe = keys.league()
        timings["league"] = run_cached("league", key, describe, staging, cache, report,
                                       lambda: workers.run_one("league_table.ipynb", nb_dir / "league_table.ipynb",
                                                               common))
        publish.checkpoint("league")
        t0 = time.perf_counter()
        published = target / "manifest.json"
        if published.exists() and not opts.force and (
                opts.revise or (target / "tables" / revisions.FILE).exists()):
            revs = revisions.compute(opts.quarter, target, staging)
            revisions.write(revs, staging)
            n_revisions = len(revs)
        timings["revisions"] = round(time.perf_counter() - t0, 3)
        key, describe = keys.report(staging)
        timings["report"] = run_cached("report", key, describe, staging, cache, report,
                                       lambda: workers.run_one("report.ipynb", nb_dir / "report.ipynb", common))
        publish.checkpoint("report")
    finally:
        workers.close()
    t0 = time.perf_counter()
    key, describe = keys.publication(staging)
    pub_timings: dict = {}
    run_cached("publication", key, describe, staging, cache, report,
               lambda: pub_timings.update(build_publication(prep, staging, work)), skip=("_work",))
    timings["publication"] = pub_timings or "cached"
    publish.checkpoint("publication")
    timings["export"] = round(time.perf_counter() - t0, 3)
    return timings, report, n_revisions


def absolute_paths(opts: RunOptions) -> RunOptions:
    """Every path of the options made absolute once, before any thread starts: nothing later depends on the
    process's working directory (which papermill used to change from several threads at once)."""
    opts.out = check_path(Path(opts.out), "--out")
    if opts.data is not None:
        opts.data = check_path(Path(opts.data), "--data")
    if opts.raw is not None:
        opts.raw = check_path(Path(opts.raw), "--raw")
    for attr in ("methodology", "catalogue"):
        v = getattr(opts, attr)
        if v is not None and Path(str(v)).suffix in (".yaml", ".yml"):
            setattr(opts, attr, str(check_path(Path(str(v)), f"--{attr}")))
    return opts


def run(opts: RunOptions) -> Outcome:
    """Run a quarter end to end; publish it, or find it identical to the published one, or refuse (see module)."""
    from leaguetables.run import publish

    t_start = time.perf_counter()
    absolute_paths(opts)
    out_root = opts.out
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"--out {out_root} is a file, not a folder")
    # only --source nhse writes anything outside the reports folder: the contract files it derives from --raw
    scratch = Path(tempfile.mkdtemp(prefix="leaguetables-inputs-")) if opts.source in DERIVED_SOURCES else out_root
    try:
        t0 = time.perf_counter()
        prep = prepare(opts, scratch)  # bad input stops here: nothing written under out_root
        validate_s = round(time.perf_counter() - t0, 3)
        publish.checkpoint("validated")
        publish.claim_out(out_root)  # a file, an unwritable folder or one holding foreign entries: refused here
        publish.checkpoint("claimed")
        try:
            # a quarter reads no other quarter's published outputs (movement is computed from the inputs), so
            # only runs of the same quarter exclude each other
            with publish.quarter_lock(out_root, opts.quarter):
                return _run_locked(prep, out_root, t_start, validate_s)
        except publish.LockBusy:
            raise PipelineError(f"another run holds the lock of {opts.quarter} in {out_root} "
                                f"({out_root / ('.lock-' + opts.quarter)}); try again when it has "
                                "finished") from None
    finally:
        if scratch != out_root:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_locked(prep: Prepared, out_root: Path, t_start: float, validate_s: float) -> Outcome:
    from leaguetables.run import manifest, publish
    from leaguetables.run.cache import StageCache
    from leaguetables.run.verify import compare_folders

    opts = prep.options
    quarter = opts.quarter
    notes = publish.cleanup_stale(out_root, own_quarter=quarter)
    remove_stale_ipc_dirs()
    for n in notes:
        _log(opts, n)
    cache = StageCache(out_root, quarter, enabled=opts.use_cache and opts.mode == "publish")
    cache.clean_tmp()
    target = out_root / quarter
    staging = publish.staging_path(out_root, quarter)
    work = staging / "_work"
    work.mkdir(parents=True)
    try:
        publish.checkpoint("staging")
        if not kernel_available():
            raise PipelineError(f"Jupyter kernel {KERNEL_NAME!r} is not registered; run `make setup`")
        write_context(prep, work)
        timings, report, n_revisions = build(prep, staging, work, cache, out_root, target)
        timings = {"validate": validate_s, **timings, "total": round(time.perf_counter() - t_start, 3)}
        opts.timings = timings
        manifest.write_manifest(prep, staging, timings, report.as_dict())
        publish.checkpoint("manifest")
        outcome = Outcome("published", target, cache=report, timings=timings, notes=notes, revisions=n_revisions)
        if opts.mode == "verify":
            shutil.rmtree(work, ignore_errors=True)
            outcome.comparison = compare_folders(target, staging)
            outcome.status = "verified" if outcome.comparison.identical else "differs"
            return outcome
        if target.exists():
            outcome.comparison = compare_folders(target, staging)
            if outcome.comparison.identical:
                outcome.status = "unchanged"
                return outcome
            if not (opts.revise or opts.force):
                outcome.status = "refused"
                return outcome
        publish.publish(staging, target)
        publish.checkpoint("published")
        return outcome
    except PipelineError as exc:
        # the executed notebooks of the failed run are kept under .failed/.staging-<quarter>; only that entry (made
        # by an earlier failed run of this quarter) is ever replaced — nothing else under .failed/ is touched
        failed = out_root / FAILED_DIR / staging.name
        if failed.is_dir() and not failed.is_symlink():
            shutil.rmtree(failed, ignore_errors=True)
        failed.parent.mkdir(exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        os.replace(staging, failed)
        raise PipelineError(str(exc).replace(f"{FAILED_DIR}/{staging.name}", str(failed))) from None
    finally:
        if publish.journal_path(out_root, quarter).exists():
            publish.recover(out_root, quarter)  # publish() was interrupted by an error: finish it
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------- verify
def verify(opts: RunOptions) -> Outcome:
    """Rerun a published quarter from the inputs recorded in its manifest (no cache) and compare.

    An input whose SHA-256 no longer matches the manifest is itself a difference: it is reported first, and the
    rerun (from the inputs as they are now) shows what the change does to the outputs.
    """
    from leaguetables.config import file_sha256
    from leaguetables.run.manifest import read_manifest

    check_quarter(opts.quarter)
    out_root = check_path(Path(opts.out), "--out")
    target = out_root / opts.quarter
    manifest = read_manifest(target)
    if manifest is None:
        raise InputError(f"--verify: {target} has no readable manifest.json (is {opts.quarter} published there?)")
    params = manifest.get("parameters", {})
    input_notes = []
    for kind, meta in sorted(manifest.get("inputs", {}).items()):
        path = Path(meta.get("path", ""))
        if params.get("source") in DERIVED_SOURCES:
            continue  # derived from --raw in a scratch folder: checked after the rerun, through the outputs
        if not path.is_file():
            input_notes.append(f"input {kind}: {path} no longer exists (recorded sha256 {meta.get('sha256', '')[:12]}…)")
        elif file_sha256(path) != meta.get("sha256"):
            input_notes.append(f"input {kind}: {path} has changed since publication (sha256 "
                               f"{meta.get('sha256', '')[:12]}… recorded, {file_sha256(path)[:12]}… now)")
    missing = [n for n in input_notes if "no longer exists" in n]
    if missing:
        return Outcome("differs", target, notes=input_notes)
    rerun = RunOptions(
        quarter=opts.quarter, source=params.get("source", "demo"), data=Path(params["data"]) if params.get("data")
        and params.get("source") not in DERIVED_SOURCES else None, raw=Path(params.get("raw") or opts.raw), out=out_root,
        jobs=opts.jobs, metrics=params["metrics_arg"] if "metrics_arg" in params else params.get("metrics"),
        methodology=params.get("methodology_arg")
        or params.get("methodology", opts.methodology),
        catalogue=params["catalogue_arg"] if "catalogue_arg" in params else params.get("catalogue"),
        progress=opts.progress, mode="verify", use_cache=False, log=opts.log)
    outcome = run(rerun)
    opts.timings = rerun.timings
    outcome.notes = input_notes + outcome.notes
    if input_notes and outcome.status == "verified":
        outcome.status = "differs"
    return outcome
