"""Orchestration of one quarter: validate → validated inputs written as files → metric notebooks (papermill, in
parallel) → league → revisions → report → published documents → compare with what is published → publish.

The stages themselves are in :mod:`leaguetables.run.stages`, the notebook workers in :mod:`leaguetables.run.kernels`
(warm kernels, or ``isolated``: a fresh kernel per notebook) and their papermill engine in
:mod:`leaguetables.run.engine`; every notebook is given nothing but its parameters.

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

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from leaguetables.config import (
    PROJECT_ROOT,
    SAFE_ID,
    Catalogue,
    Methodology,
    file_sha256,
    load_catalogue,
    load_methodology,
)
from leaguetables.errors import InputError, PipelineError
from leaguetables.inputs.contract import QuarterInputs, check_quarter, load_inputs
from leaguetables.inputs.demo_marker import default_source  # noqa: F401 - re-exported for callers
from leaguetables.inputs.store import STORE_DIR
from leaguetables.run import manifest as manifest_mod
from leaguetables.run import publish, stages, uptodate
from leaguetables.run.cache import StageCache
from leaguetables.run.defaults import (  # noqa: F401
    DEFAULT_DEMO_DATA,
    DEFAULT_OUT,
    DEFAULT_REAL_DATA,
    SOURCE_CATALOGUE,
    SOURCES,
    check_metric_ids,
)
from leaguetables.run.kernels import (  # noqa: F401
    FAILED_DIR,
    KERNEL_NAME,
    NOTEBOOK_DIR,
    Workers,
    check_parameters,
    kernel_available,  # re-exported for callers
    remove_stale_ipc_dirs,
)
from leaguetables.run.verify import compare_folders, first_changed

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
    isolated: bool = False  # a fresh kernel per notebook, papermill's default engine (outputs byte-identical)
    log: Callable[[str], None] | None = None  # one-line progress messages (run_quarter.py: stderr)
    rerun_key: str | None = None  # recorded in the manifest: the up-to-date check of a rerun (run.uptodate)


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
    methodology_arg: str = ""  # the methodology config as the notebooks load it: an id, or a .yaml path
    catalogue_arg: str = ""  # the catalogue config as the notebooks load it: an id, or a .yaml path

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


def _check_options(opts: RunOptions) -> None:
    """The run's options, checked before anything is read."""
    check_quarter(opts.quarter)
    if opts.source not in SOURCES:
        raise InputError(f"unknown source {opts.source!r}; choose one of {list(SOURCES)}")
    if opts.mode not in MODES:
        raise InputError(f"unknown mode {opts.mode!r}")
    if opts.jobs < 1:
        raise InputError("--jobs must be at least 1")
    if opts.revise and opts.force:
        raise InputError(
            "--revise and --force cannot be combined: --revise publishes the changes as revisions, "
            "--force replaces the published quarter"
        )
    check_path(Path(opts.out), "--out")
    if opts.metrics is not None:
        opts.metrics = [m.strip() for m in opts.metrics if m.strip()]
        if not opts.metrics:
            raise InputError(
                "--metrics names no metric (give comma-separated metric ids, or leave --metrics out "
                "to run every metric)"
            )
    for m in opts.metrics or []:
        if not SAFE_ID.match(m):
            raise InputError(f"--metrics: {m!r} is not a metric id (lower-case letters, digits and underscores)")


def _methodology(opts: RunOptions) -> Methodology:
    methodology = load_methodology(opts.methodology)
    seg = methodology.segmentation
    if seg.unsourced:
        raise InputError(
            f"methodology {methodology.id}: its segment thresholds are not published in any source "
            "this project has, so segments cannot be computed; set segmentation.thresholds with "
            "thresholds_source to publish"
        )
    if seg.illustrative and opts.source != "demo":
        raise InputError(
            f"methodology {methodology.id}: its segment thresholds are illustrative, not NHS "
            f"England's; real data (--source {opts.source}) need thresholds with a published source"
        )
    return methodology


def _data_dir(opts: RunOptions, catalogue: Catalogue, scratch: Path) -> Path:
    """The folder of the four contract files: the demo's (generated if missing), the user's, or derived from
    NHS England's published files (--raw) into ``scratch``."""
    if opts.source == "demo":
        data_dir = Path(opts.data) if opts.data else DEFAULT_DEMO_DATA
        if not (data_dir / "observations.csv").exists() and opts.data is None:
            _write_demo(data_dir)
    elif opts.source == "nhse":
        from leaguetables.inputs.sources import nhse  # the adapters only for a real-data run (heavy imports)

        if not Path(opts.raw).is_dir():
            raise InputError(f"--raw folder {opts.raw} does not exist (NHS England's published files)")
        data_dir = scratch / "inputs"
        try:
            # every acute trust, specialists included, each on the metrics that apply (NHS England ranks all 134)
            nhse.write_quarter(nhse.load_nhse_quarter(opts.quarter, Path(opts.raw), type1_only=False), data_dir)
        except nhse.NoDataForQuarter as exc:
            raise InputError(f"--source nhse: {exc}") from None
    elif opts.source == "nof":
        from leaguetables.inputs.sources import nhse, nof  # the adapters only for a real-data run (heavy imports)

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
    return check_path(data_dir, "data folder")


def _select_metrics(opts: RunOptions, catalogue: Catalogue, inputs: QuarterInputs) -> tuple[list[str], list[str]]:
    """``(metric ids to run, metrics with data left out by --metrics)``, in catalogue order."""
    present = set(inputs.observations.loc[inputs.observations["quarter"] == opts.quarter, "metric_id"])
    metric_ids = [m.id for m in catalogue.metrics if m.id in present]
    omitted: list[str] = []
    if opts.metrics:
        absent = [m for m in opts.metrics if m not in present]
        if absent:
            raise InputError(f"--metrics: no data for {absent} in {opts.quarter}")
        omitted = [m for m in metric_ids if m not in opts.metrics]
        metric_ids = [m for m in metric_ids if m in opts.metrics]
    if not metric_ids:
        raise InputError(f"no metric has data for {opts.quarter}")
    return metric_ids, omitted


def prepare(opts: RunOptions, scratch: Path) -> Prepared:
    """Resolve configuration and inputs, validating everything before any notebook runs (nothing is written to the
    reports folder)."""
    _check_options(opts)
    methodology = _methodology(opts)
    cat_name = opts.catalogue or SOURCE_CATALOGUE.get(opts.source) or methodology.catalogue
    catalogue = load_catalogue(cat_name)
    check_metric_ids(opts.metrics, catalogue)  # before any data is read
    data_dir = _data_dir(opts, catalogue, scratch)
    inputs = load_inputs(data_dir, catalogue, opts.quarter)
    metric_ids, omitted = _select_metrics(opts, catalogue, inputs)
    return Prepared(
        opts,
        methodology,
        catalogue,
        inputs,
        data_dir,
        metric_ids,
        methodology_path=_config_path("methodology", opts.methodology),
        catalogue_path=_config_path("catalogues", cat_name),
        omitted=omitted,
        methodology_arg=str(opts.methodology),
        catalogue_arg=str(cat_name),
    )


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
    t_start = time.perf_counter()
    absolute_paths(opts)
    out_root = opts.out
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"--out {out_root} is a file, not a folder")
    # only --source nhse writes anything outside the reports folder: the contract files it derives from --raw
    scratch = Path(tempfile.mkdtemp(prefix="leaguetables-inputs-")) if opts.source in DERIVED_SOURCES else out_root
    # the notebooks' workers: started only once the run holds the quarter's lock and a stage has to be executed
    # (:func:`_warm_up_when_cold`, :func:`leaguetables.run.stages.run_metric_stage`)
    work = publish.staging_path(out_root, opts.quarter) / "_work"
    workers = Workers(opts.jobs, work, isolated=opts.isolated)
    try:
        t0 = time.perf_counter()
        if inputs_changed(opts):  # a stage will be executed: the kernel starts while the inputs are validated
            workers.warm_up()
        prep = prepare(opts, scratch)  # bad input stops here: nothing written under out_root
        if opts.source in uptodate.SOURCES:
            opts.rerun_key = uptodate.rerun_key(
                opts.quarter, opts.source, prep.data_dir, opts.metrics, opts.methodology, opts.catalogue
            )
        validate_s = round(time.perf_counter() - t0, 3)
        publish.checkpoint("validated")
        publish.claim_out(out_root)  # a file, an unwritable folder or one holding foreign entries: refused here
        publish.checkpoint("claimed")
        try:
            # a quarter reads no other quarter's published outputs (movement is computed from the inputs), so
            # only runs of the same quarter exclude each other
            with publish.quarter_lock(out_root, opts.quarter):
                return _run_locked(prep, out_root, t_start, validate_s, workers)
        except publish.LockBusy:
            raise PipelineError(
                f"another run holds the lock of {opts.quarter} in {out_root} "
                f"({out_root / ('.lock-' + opts.quarter)}); try again when it has "
                "finished"
            ) from None
    finally:
        workers.close()
        if scratch != out_root:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_locked(prep: Prepared, out_root: Path, t_start: float, validate_s: float, workers: Workers) -> Outcome:
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
        _warm_up_when_cold(cache, workers)
        files = stages.write_run(prep, work, out_root / STORE_DIR)
        try:
            timings, report, n_revisions = stages.build(prep, staging, work, files, cache, target, workers)
        finally:
            workers.close()  # before a failed run's notebooks are kept or the staged quarter is compared
        timings = {"validate": validate_s, **timings, "total": round(time.perf_counter() - t_start, 3)}
        opts.timings = timings
        manifest_mod.write_manifest(prep, staging, timings, report.as_dict())
        publish.checkpoint("manifest")
        outcome = Outcome("published", target, cache=report, timings=timings, notes=notes, revisions=n_revisions)
        return _conclude(outcome, opts, staging, target)
    except PipelineError as exc:
        raise _keep_failed(exc, out_root, staging) from None
    finally:
        if publish.journal_path(out_root, quarter).exists():
            publish.recover(out_root, quarter)  # publish() was interrupted by an error: finish it
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def inputs_changed(opts: RunOptions) -> bool:
    """True when the quarter is published and the data folder's contract files are not the bytes its manifest records
    (``inputs``: path and SHA-256 of each file the published run read): the league stage at least is keyed on them,
    so the run will execute a notebook, and :func:`run` starts the first kernel before validating the inputs rather
    than at the first stage missing from the cache (a rerun after one metric's data changed gains the kernel's start
    and imports, ~2 s). False for anything else — a first run, a source derived from ``--raw``, a manifest without
    the record —, where the kernel starts as before (:func:`_warm_up_when_cold`, the metric stage's first miss); a
    run refused after this said True closes the kernel it started (:meth:`Workers.close`)."""
    if opts.source not in uptodate.SOURCES:
        return False
    try:
        recorded = json.loads((opts.out / opts.quarter / "manifest.json").read_text(encoding="utf-8"))["inputs"]
        data = uptodate.data_folder(opts.source, opts.data)
        files = {data / Path(r["path"]).name: r["sha256"] for r in recorded.values()}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(not p.is_file() or file_sha256(p) != digest for p, digest in files.items())


def _warm_up_when_cold(cache: StageCache, workers: Workers) -> None:
    """Start the first worker's kernel and its imports now (:meth:`Workers.warm_up`), while the run writes its
    inputs and computes the stages' keys, when every stage will be executed: the cache is off (``--no-cache``,
    ``--verify``) or holds nothing of this quarter. Otherwise the metric stage starts it at its first miss
    (:func:`leaguetables.run.stages.run_metric_stage`), and a run that restores every stage, is refused, is
    stopped or fails before a notebook runs starts no kernel at all (a kernel's start and imports cost ~4 CPU-s)."""
    if not cache.enabled or not cache.root.is_dir():
        workers.warm_up()


def _conclude(outcome: Outcome, opts: RunOptions, staging: Path, target: Path) -> Outcome:
    """Compare the staged quarter with the published one; publish it, or not (see the module docstring)."""
    if opts.mode == "verify":
        shutil.rmtree(staging / "_work", ignore_errors=True)
        outcome.comparison = compare_folders(target, staging)
        outcome.status = "verified" if outcome.comparison.identical else "differs"
        return outcome
    if target.exists():
        # a run that publishes whatever the differences needs only to know whether there is one (verify.first_changed)
        quick = first_changed(target, staging) if opts.revise or opts.force else None
        outcome.comparison = quick or compare_folders(target, staging)
        if outcome.comparison.identical:
            outcome.status = "unchanged"
            return outcome
        if not (opts.revise or opts.force):
            outcome.status = "refused"
            return outcome
    publish.publish(staging, target)
    publish.checkpoint("published")
    return outcome


def _keep_failed(exc: PipelineError, out_root: Path, staging: Path) -> PipelineError:
    """Keep the executed notebooks of a failed run under .failed/.staging-<quarter>; only that entry (made by an
    earlier failed run of this quarter) is ever replaced — nothing else under .failed/ is touched."""
    failed = out_root / FAILED_DIR / staging.name
    if failed.is_dir() and not failed.is_symlink():
        shutil.rmtree(failed, ignore_errors=True)
    failed.parent.mkdir(exist_ok=True)
    shutil.rmtree(staging / "_work", ignore_errors=True)
    os.replace(staging, failed)
    return PipelineError(str(exc).replace(f"{FAILED_DIR}/{staging.name}", str(failed)))


# ---------------------------------------------------------------------------------------------------------- verify
def verify(opts: RunOptions) -> Outcome:
    """Rerun a published quarter from the inputs recorded in its manifest (no cache) and compare.

    An input whose SHA-256 no longer matches the manifest is itself a difference: it is reported first, and the
    rerun (from the inputs as they are now) shows what the change does to the outputs.
    """
    check_quarter(opts.quarter)
    out_root = check_path(Path(opts.out), "--out")
    target = out_root / opts.quarter
    manifest = manifest_mod.read_manifest(target)
    if manifest is None:
        raise InputError(f"--verify: {target} has no readable manifest.json (is {opts.quarter} published there?)")
    params = manifest.get("parameters", {})
    input_notes = []
    for kind, meta in sorted(manifest.get("inputs", {}).items()):
        path = Path(meta.get("path", ""))
        if params.get("source") in DERIVED_SOURCES:
            continue  # derived from --raw in a scratch folder: checked after the rerun, through the outputs
        if not path.is_file():
            input_notes.append(
                f"input {kind}: {path} no longer exists (recorded sha256 {meta.get('sha256', '')[:12]}…)"
            )
        elif file_sha256(path) != meta.get("sha256"):
            input_notes.append(
                f"input {kind}: {path} has changed since publication (sha256 "
                f"{meta.get('sha256', '')[:12]}… recorded, {file_sha256(path)[:12]}… now)"
            )
    missing = [n for n in input_notes if "no longer exists" in n]
    if missing:
        return Outcome("differs", target, notes=input_notes)
    rerun = RunOptions(
        quarter=opts.quarter,
        source=params.get("source", "demo"),
        data=Path(params["data"]) if params.get("data") and params.get("source") not in DERIVED_SOURCES else None,
        raw=Path(params.get("raw") or opts.raw),
        out=out_root,
        jobs=opts.jobs,
        metrics=params["metrics_arg"] if "metrics_arg" in params else params.get("metrics"),
        methodology=params.get("methodology_arg") or params.get("methodology", opts.methodology),
        catalogue=params["catalogue_arg"] if "catalogue_arg" in params else params.get("catalogue"),
        progress=opts.progress,
        mode="verify",
        use_cache=False,
        isolated=opts.isolated,
        log=opts.log,
    )
    outcome = run(rerun)
    opts.timings = rerun.timings
    outcome.notes = input_notes + outcome.notes
    if input_notes and outcome.status == "verified":
        outcome.status = "differs"
    return outcome
