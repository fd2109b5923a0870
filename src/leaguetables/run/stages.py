"""The stages of a run, each restored from the cache or executed: the metric notebooks (in parallel), the league
notebook, the revisions table, the report notebook and the published documents.

Every notebook is given its inputs as parameters only (:func:`notebook_parameters`): the quarter, the ids (or
paths) of the methodology and catalogue configs, the paths of the validated inputs written as content-addressed
files (:mod:`leaguetables.inputs.store`), and the run's output and working folders. The cache keys
(:class:`Keys`) are built from the same things: the names (content hashes) of the input files each stage reads.
"""

from __future__ import annotations

import importlib
import json
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from leaguetables.config import file_sha256
from leaguetables.inputs import bundles, store
from leaguetables.run import manifest, publish, revisions
from leaguetables.run.cache import CacheReport, changed_files, code_hash, sha256_json, snapshot, tree_hash
from leaguetables.run.kernels import NOTEBOOK_DIR, NotebookWorker, Workers

SAMPLING_CACHE = "sampling"  # under <out>/.cache/<quarter>/: the league's per-metric replicates (run/sampling_cache.py)
#: under <out>/.cache/<quarter>/: each metric's productivity opportunity and SPC (publication/derived_cache.py)
REPORT_CACHE = "report"
#: what this process's work during the league notebook imports (documents.early_data: the publication code, and the
#: productivity opportunity, whose pooled benchmark refits the demographic models with statsmodels)
PUBLICATION_MODULES = ("leaguetables.publication.documents", "leaguetables.statistics.productivity")


def input_checksums(prep) -> dict[str, str]:
    """SHA-256 of the contract files the run's inputs were validated from, by file name (the report shows them)."""
    return {Path(p).name: file_sha256(Path(p)) for p in prep.inputs.files.values() if Path(p).exists()}


def write_run(prep, work: Path, store_dir: Path) -> store.InputFiles:
    """Write the validated inputs into the store and ``run.json`` (the run's description, read by the report)."""
    work.mkdir(parents=True, exist_ok=True)
    files = store.write_inputs(prep.inputs, store_dir, prep.options.quarter, prep.metric_ids)
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
        "input_checksums": input_checksums(prep),
    }
    (work / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True), encoding="utf-8")
    return files


def notebook_parameters(
    prep,
    files: store.InputFiles,
    staging: Path,
    work: Path,
    metric_id: str | None = None,
    metric_results: str | None = None,
    report: dict[str, str] | None = None,
) -> dict:
    """The whole interface of a notebook: a metric notebook's when ``metric_id`` is given, the league's when
    ``metric_results`` is (the metric notebooks' result tables, see :func:`keep_metric_results`), the report's
    when ``report`` is (what the earlier stages wrote, kept in the store: :func:`report_inputs`; the report has no
    working folder)."""
    params = {"quarter": prep.options.quarter}
    if metric_id is not None:
        params["metric_id"] = metric_id
    params |= {"methodology": prep.methodology_arg, "catalogue": prep.catalogue_arg}
    params |= files.metric(metric_id) if metric_id is not None else files.common()
    if metric_results is not None:
        params["metric_results"] = metric_results
    if report is not None:
        return params | report | {"out_dir": str(staging)}
    return params | {"out_dir": str(staging), "work_dir": str(work)}


def keep_metric_results(prep, work: Path, store_dir: Path) -> str:
    """The metric notebooks' result tables (``_work/metrics/<id>.parquet``) kept in the store under their SHA-256,
    as the league notebook's parameter ``metric_results``: their paths, comma-separated, in the run's metric
    order. They stay after the run, so the executed league notebook reruns from its parameters alone."""
    return ",".join(str(store.keep_file(work / "metrics" / f"{m}.parquet", store_dir)) for m in prep.metric_ids)


def keep_metric_bundles(prep, work: Path, store_dir: Path) -> str:
    """The metric notebooks' bundles for the report and the documents (``_work/metrics/<id>.bundle.json`` and the
    tables it names, :mod:`leaguetables.inputs.bundles`) kept in the store, as the report notebook's parameter
    ``metric_results``: the kept JSON files' paths, comma-separated, in the run's metric order."""
    return ",".join(
        str(bundles.keep_bundle(work / "metrics" / f"{m}.{bundles.BUNDLE}", store_dir)) for m in prep.metric_ids
    )


def report_inputs(metric_bundles: str, staging: Path, work: Path, store_dir: Path) -> dict[str, str]:
    """The report notebook's parameters for what the earlier stages wrote, each kept in the store under its
    SHA-256: ``run`` (the run's description, ``run.json``), ``league`` (the league notebook's bundle),
    ``metric_results`` (``metric_bundles``, :func:`keep_metric_bundles`) and ``revisions`` (``tables/revisions.csv``
    when the run has one, else empty)."""
    revised = staging / "tables" / revisions.FILE
    return {
        "run": str(store.keep_file(work / "run.json", store_dir)),
        "league": str(bundles.keep_bundle(work / "league" / f"league.{bundles.BUNDLE}", store_dir)),
        "metric_results": metric_bundles,
        "revisions": str(store.keep_file(revised, store_dir)) if revised.is_file() else "",
    }


# ----------------------------------------------------------------------------------------------------- cache keys
class Keys:
    """Content keys of the stages of one run (see :mod:`leaguetables.run.cache`): made of the names of the input
    files each stage reads (their SHA-256), the code, the notebook and the configuration."""

    def __init__(self, prep, files: store.InputFiles):
        self.prep, self.files = prep, files
        self.methodology = sha256_json(prep.methodology.model_dump(mode="json"))
        self.catalogue = sha256_json(prep.catalogue.model_dump(mode="json"))
        self.common = {
            "quarter": prep.options.quarter,
            "code": code_hash(),
            "methodology": self.methodology,
            "trusts": files.trusts.stem,
            "demographics": files.demographics.stem,
        }
        self.metric_keys: dict[str, str] = {}

    @staticmethod
    def notebook(name: str) -> str:
        return file_sha256(NOTEBOOK_DIR / name)

    def metric(self, mid: str) -> tuple[str, dict]:
        describe = {
            "stage": "metric",
            "metric_id": mid,
            "notebook": self.notebook("metric.ipynb"),
            "metric": sha256_json(self.prep.catalogue.metric(mid).model_dump(mode="json")),
            "catalogue": [self.prep.catalogue.id, self.prep.catalogue.version],
            "observations": self.files.metrics[mid].stem,
            "quarters": self.files.quarters,
            **self.common,
        }
        key = sha256_json(describe)
        self.metric_keys[mid] = key
        return key, describe

    def league(self) -> tuple[str, dict]:
        describe = {
            "stage": "league",
            "notebook": self.notebook("league_table.ipynb"),
            "catalogue": self.catalogue,
            "metrics": dict(sorted(self.metric_keys.items())),
            "metric_ids": self.prep.metric_ids,
            "observations": self.files.observations.stem,
            "status": self.files.status.stem,
            **self.common,
        }
        self.league_key = sha256_json(describe)
        return self.league_key, describe

    def report(self, staging: Path) -> tuple[str, dict]:
        describe = {
            "stage": "report",
            "notebook": self.notebook("report.ipynb"),
            "league": self.league_key,
            "observations": self.files.observations.stem,
            "status": self.files.status.stem,
            "run": file_sha256(staging / "_work" / "run.json"),
            "tables": tree_hash(staging / "tables"),
            "git": manifest.git_state(),
            "catalogue": self.catalogue,
            **self.common,
        }
        describe["git"].pop("head", None)
        self.report_key = sha256_json(describe)
        return self.report_key, describe

    def publication(self) -> tuple[str, dict]:
        """The published documents: made from what the report stage reads (its key covers the staged tables) and
        what it writes (a function of the same), so keyed on the report's key alone."""
        describe = {"stage": "publication", "report": self.report_key}
        return sha256_json(describe), describe


def metric_outputs(staging: Path, mid: str, all_ids: list[str]) -> list[str]:
    """The files a metric notebook wrote: executed notebook, tables/metrics/<id>*.csv, _work/metrics/<id>.parquet,
    its bundle (_work/metrics/<id>.bundle.json and the tables it names), _work/figures/<id>__*."""
    longer = [m for m in all_ids if m != mid and m.startswith(mid)]
    out = []
    for folder, pattern in (
        ("notebooks", f"metric_{mid}.ipynb"),
        ("tables/metrics", f"{mid}*.csv"),
        ("_work/metrics", f"{mid}*"),
        ("_work/figures", f"{mid}__*"),
    ):
        for p in sorted((staging / folder).glob(pattern)):
            rel = p.relative_to(staging).as_posix()
            stem = p.name[len("metric_") :] if folder == "notebooks" else p.name
            if p.is_file() and not any(
                stem.startswith(m) and stem[len(m) : len(m) + 1] in ("", ".", "_") for m in longer
            ):
                out.append(rel)
    bundle = staging / "_work" / "metrics" / f"{mid}.{bundles.BUNDLE}"
    out += [p.relative_to(staging).as_posix() for p in bundles.files_of(bundle)] if bundle.is_file() else []
    return out


# ---------------------------------------------------------------------------------------------------------- stages
class RunContext:
    """What the stages of one run share: the prepared run, its folders, input files, workers, cache and keys."""

    def __init__(self, prep, staging: Path, work: Path, files: store.InputFiles, workers: Workers, cache):
        self.prep, self.staging, self.work, self.files = prep, staging, work, files
        self.workers, self.cache = workers, cache
        self.early = None  # what the documents need that the league does not change (documents.early_data)
        self.metric_bundles = ""  # the report's parameter metric_results (keep_metric_bundles)
        #: the spreadsheet's cells made before the workbook is written (documents.prepare_sheets; a SheetCache)
        self.sheets: Any = None
        #: each metric's productivity opportunity and SPC by content (documents.while_the_league_runs), once the run's process
        #: computes them; closed (pruned) at the end of the run
        self.derived: Any = None
        self.store_dir = files.trusts.parent
        self.keys = Keys(prep, files)
        self.report = CacheReport()
        self.nb_dir = staging / "notebooks"
        self.nb_dir.mkdir(parents=True, exist_ok=True)

    def parameters(self, metric_id: str | None = None, metric_results: str | None = None) -> dict:
        return notebook_parameters(self.prep, self.files, self.staging, self.work, metric_id, metric_results)

    def report_parameters(self) -> dict:
        """The report notebook's parameters (after the league and revisions stages)."""
        report = report_inputs(self.metric_bundles, self.staging, self.work, self.store_dir)
        report["report_cache"] = self.report_cache()
        return notebook_parameters(self.prep, self.files, self.staging, self.work, report=report)

    def report_cache(self) -> str:
        """The folder keeping each metric's productivity opportunity and SPC between runs, by content (the report
        notebook's parameter ``report_cache``; empty with --no-cache)."""
        return str((self.cache.root / REPORT_CACHE).absolute()) if self.cache.enabled else ""


def _restore_metrics(ctx: RunContext) -> tuple[list[str], dict[str, dict]]:
    """Restore the metric stages whose key is in the cache; return the metrics to execute and every description."""
    todo: list[str] = []
    describe: dict[str, dict] = {}
    for mid in ctx.prep.metric_ids:
        key, describe[mid] = ctx.keys.metric(mid)
        ctx.report.keys[f"metric:{mid}"] = key
        if ctx.cache.restore(f"metric-{mid}", key, ctx.staging) is not None:
            ctx.report.reused.append(f"metric:{mid}")
        else:
            if not todo:  # the first miss: a kernel is needed; it starts while the other metrics are restored
                ctx.workers.warm_up()
            todo.append(mid)
    return todo, describe


def _progress(ctx: RunContext, total: int):
    if not ctx.prep.options.progress:
        return None
    return tqdm(total=total, desc="metric notebooks", unit="nb", leave=True)


def _execute_metrics(ctx: RunContext, todo: list[str], describe: dict[str, dict], timings: dict) -> None:
    """Execute the metric notebooks of ``todo`` on the workers, the slowest (demographic models) first, so the
    workers finish together; the first failure stops the others taking new notebooks."""
    q: queue.Queue = queue.Queue()
    for mid in sorted(todo, key=lambda m: ctx.prep.catalogue.metric(m).adjustment is None):
        q.put(mid)
    lock, failed = threading.Lock(), threading.Event()
    progress = _progress(ctx, len(todo))

    def drain(worker: NotebookWorker) -> None:
        while not failed.is_set():
            try:
                mid = q.get_nowait()
            except queue.Empty:
                return
            try:
                publish.checkpoint("metric-started")
                seconds = worker.execute("metric.ipynb", ctx.nb_dir / f"metric_{mid}.ipynb", ctx.parameters(mid))
                ctx.cache.store(
                    f"metric-{mid}",
                    ctx.keys.metric_keys[mid],
                    ctx.staging,
                    metric_outputs(ctx.staging, mid, ctx.prep.catalogue.ids),
                    describe[mid],
                )
            except BaseException:
                failed.set()
                raise
            with lock:
                timings["metrics"][mid] = round(seconds, 3)
                ctx.report.executed.append(f"metric:{mid}")
                if progress is not None:
                    progress.update(1)
            publish.checkpoint("metric-done")

    try:
        futures = [w.submit(drain, w) for w in ctx.workers.get(len(todo))]
        preload_publication()  # this process is idle until the notebooks end
        for f in futures:
            f.result()
    finally:
        failed.set()
        if progress is not None:
            progress.close()


def preload_publication() -> None:
    """Import :data:`PUBLICATION_MODULES` (~2.5 CPU-s) while the metric notebooks run, when this process only waits
    for them, rather than at the start of the league stage, where they delay the work it does beside the league
    notebook (:func:`_execute_league`); executed metric notebooks mean the league is executed too. Not at the top of
    the module: a run that restores every stage never needs them."""
    for name in PUBLICATION_MODULES:
        importlib.import_module(name)


def run_metric_stage(ctx: RunContext, timings: dict) -> None:
    """The metric notebooks: restored from the cache where their key is there, the rest executed in parallel."""
    timings["metrics"] = {}
    t0 = time.perf_counter()
    todo, describe = _restore_metrics(ctx)
    if todo:
        _execute_metrics(ctx, todo, describe, timings)
    timings["metrics_wall"] = round(time.perf_counter() - t0, 3)


def run_cached(
    name: str, key: str, describe: dict, ctx: RunContext, execute: Callable[[], object], skip: tuple[str, ...] = ()
) -> float:
    """A sequential stage: restore its files from the cache, or execute it and store what it wrote."""
    t0 = time.perf_counter()
    ctx.report.keys[name] = key
    if ctx.cache.restore(name, key, ctx.staging) is not None:
        ctx.report.reused.append(name)
        return 0.0
    before = snapshot(ctx.staging, skip) if ctx.cache.enabled else {}
    execute()
    if ctx.cache.enabled:
        ctx.cache.store(name, key, ctx.staging, changed_files(before, snapshot(ctx.staging, skip)), describe)
    ctx.report.executed.append(name)
    return round(time.perf_counter() - t0, 3)


def _revisions(ctx: RunContext, target: Path) -> int:
    """``tables/revisions.csv`` when the run republishes a quarter with --revise (or a revised one): the count."""
    opts = ctx.prep.options
    if not (target / "manifest.json").exists() or opts.force:
        return 0
    if not (opts.revise or (target / "tables" / revisions.FILE).exists()):
        return 0
    revs = revisions.compute(opts.quarter, target, ctx.staging)
    revisions.write(revs, ctx.staging)
    return len(revs)


def _notebook_stages(ctx: RunContext, target: Path, timings: dict) -> int:
    run_metric_stage(ctx, timings)
    ctx.metric_bundles = keep_metric_bundles(ctx.prep, ctx.work, ctx.store_dir)
    publish.checkpoint("metrics")
    key, describe = ctx.keys.league()
    timings["league"] = run_cached("league", key, describe, ctx, lambda: _execute_league(ctx))
    publish.checkpoint("league")
    t0 = time.perf_counter()
    n_revisions = _revisions(ctx, target)
    timings["revisions"] = round(time.perf_counter() - t0, 3)
    return n_revisions


def _execute_league(ctx: RunContext) -> None:
    """The league notebook on a kernel; meanwhile this process, idle otherwise, imports the publication code,
    computes what the documents need that the league does not change (:func:`documents.early_data`; each metric's
    productivity opportunity and SPC read from the report cache where its inputs are unchanged, and kept there for the
    report notebook), the spreadsheet's cells of the tables it can (:func:`documents.prepare_sheets`) and compiles the
    page templates."""
    params = ctx.parameters(metric_results=keep_metric_results(ctx.prep, ctx.work, ctx.store_dir))
    # each metric's replicates, kept between runs by content (run/sampling_cache.py); none with --no-cache
    params["sampling_cache"] = str((ctx.cache.root / SAMPLING_CACHE).absolute()) if ctx.cache.enabled else ""
    worker = ctx.workers.get(1)[0]
    league = worker.submit(worker.execute, "league_table.ipynb", ctx.nb_dir / "league_table.ipynb", params)
    try:
        ctx.early, ctx.derived, ctx.sheets = _documents().while_the_league_runs(
            ctx.prep, ctx.staging, ctx.metric_bundles, ctx.report_cache()
        )
    finally:
        league.result()


def written_by_report(rel: str) -> bool:
    """A file of the staging folder the report notebook writes (its executed notebook and the tables computed for
    the report: ``tables/productivity.csv``, ``tables/spc.csv``), not the publication stage (pages, ``.ods``)."""
    return rel.startswith("notebooks/") or (rel.startswith("tables/") and rel.endswith(".csv"))


def _report_with_documents(
    ctx: RunContext, keys: dict[str, tuple[str, dict]], timings: dict, pub: dict, documents, params: dict
) -> None:
    """Both stages executed at once (neither is in the cache): the report notebook on a kernel while this process
    builds the documents that need nothing the notebook writes (:func:`documents.write_documents`); then, the
    notebook done, ``index.html`` and the spreadsheet. Each stage's files are stored under its own key."""
    staging = ctx.staging
    before = snapshot(staging, ("_work",)) if ctx.cache.enabled else {}
    ready = documents.table_files(staging, ctx.prep.catalogue, ctx.prep.metric_ids)  # the report adds its own later
    worker = ctx.workers.get(1)[0]
    report = worker.submit(worker.execute, "report.ipynb", ctx.nb_dir / "report.ipynb", params)
    data = documents.load_data(ctx.prep, ctx.work, params, pub, ctx.early)
    documents.write_documents(data, ctx.prep, staging, pub)
    ctx.sheets = ctx.sheets or documents.SheetCache()
    ctx.sheets.add(ready)  # the spreadsheet's cells of the tables already written, while the notebook may still run
    timings["report"] = round(report.result(), 3)
    publish.checkpoint("report")
    documents.finish(data, ctx.prep, staging, pub, ctx.sheets)
    changed = changed_files(before, snapshot(staging, ("_work",))) if ctx.cache.enabled else []
    for name in ("report", "publication"):
        key, describe = keys[name]
        mine = [f for f in changed if written_by_report(f) == (name == "report")]
        ctx.cache.store(name, key, staging, mine, describe)
        ctx.report.keys[name] = key
        ctx.report.executed.append(name)


def _documents():
    """:mod:`leaguetables.publication.documents`, imported when the publication stage runs, not at the top: it pulls
    in nbconvert, statsmodels and the report code (~2.5 s), which a no-op rerun never needs."""
    from leaguetables.publication import documents

    return documents


def _report_and_publication(ctx: RunContext, timings: dict) -> None:
    """The report notebook and the published documents, each restored from the cache or executed; when both are
    executed, at once (:func:`_report_with_documents`)."""
    t0 = time.perf_counter()
    keys = {"report": ctx.keys.report(ctx.staging), "publication": ctx.keys.publication()}
    pub: dict = {}
    params = ctx.report_parameters()
    if all(ctx.cache.lookup(name, key) is None for name, (key, _) in keys.items()):
        _report_with_documents(ctx, keys, timings, pub, _documents(), params)
    else:
        timings["report"] = run_cached(
            "report",
            *keys["report"],
            ctx,
            lambda: ctx.workers.run_one("report.ipynb", ctx.nb_dir / "report.ipynb", params),
        )
        publish.checkpoint("report")
        t0 = time.perf_counter()
        run_cached(
            "publication",
            *keys["publication"],
            ctx,
            lambda: pub.update(_documents().build_publication(ctx.prep, ctx.staging, ctx.work, params)),
            skip=("_work",),
        )
    timings["publication"] = pub or "cached"
    publish.checkpoint("publication")
    timings["export"] = round(time.perf_counter() - t0, 3)


def build(
    prep, staging: Path, work: Path, files: store.InputFiles, cache, target: Path, workers: Workers
) -> tuple[dict, CacheReport, int]:
    """Every stage into ``staging`` (notebooks on ``workers``, which the caller closes): (timings, cache report,
    number of revisions)."""
    ctx = RunContext(prep, staging, work, files, workers, cache)
    timings: dict = {}
    n_revisions = _notebook_stages(ctx, target, timings)
    _report_and_publication(ctx, timings)
    if ctx.derived is not None:
        ctx.derived.close()
    return timings, ctx.report, n_revisions
