"""The published documents of a quarter, built after the report notebook has run: the report HTML (exported from
the executed notebook by nbconvert) and, beside it, the documents built from the same computed tables:

* ``trusts/<code>.html`` — a profile of every trust (:mod:`leaguetables.publication.profiles`);
* ``metrics/<metric_id>.html`` — one page per metric (definition, funnel plots, data tables, model),
  ``regions/<slug>.html`` — one page per region listing its trusts (and per area of any other grouping the register
  has, e.g. ``icbs/``), ``trusts/index.html`` — the A–Z index of trusts (:mod:`leaguetables.publication.site`);
* ``methodology.html`` — the methodology of the release, from the config and catalogue objects the run used
  (:mod:`leaguetables.publication.methodology`);
* ``tables/league_tables_<quarter>.ods`` — the accessible spreadsheet of the CSV tables
  (:mod:`leaguetables.publication.spreadsheet`).

Every document is deterministic: the same run gives the same bytes (no timestamps; stable order). The pipeline
imports this module only when the publication stage runs (its imports cost ~2.5 s): a no-op rerun never does.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

from leaguetables import __version__
from leaguetables.inputs.contract import quarter_label, quarter_period
from leaguetables.nof.league_files import read_metric_results
from leaguetables.publication import pages
from leaguetables.publication.derived_cache import DerivedCache, open_cache
from leaguetables.publication.methodology import write_methodology
from leaguetables.publication.notebook_html import export_html
from leaguetables.publication.profiles import ProfileIndex, spc_contexts, write_profiles
from leaguetables.publication.report import TRUSTS_DIR, ReportData, site_label
from leaguetables.publication.site import write_site
from leaguetables.publication.spreadsheet import Release, SheetCache, table_files, write_workbook


def build_publication(prep, staging: Path, work: Path, params: dict) -> dict:
    """Write the published documents into ``staging`` after the report notebook has run (``params``: its
    parameters); return timings in seconds per document."""
    timings: dict = {}
    data = load_data(prep, work, params, timings)
    write_documents(data, prep, staging, timings)
    finish(data, prep, staging, timings)
    return timings


def early_data(prep, staging: Path, metric_results: str, cache: DerivedCache | None = None) -> ReportData:
    """What the documents need that the league does not change — the metric results, the productivity opportunity
    and SPC of every trust and metric, the trust profiles' SPC sections —, computed from the metric notebooks'
    bundles (``metric_results``, the report notebook's parameter; the pipeline does this while the league notebook
    runs; :func:`load_data` takes them). ``cache``: each metric's productivity opportunity and SPC kept by content
    (:mod:`~leaguetables.publication.derived_cache`; the report notebook reads what this computes from it)."""
    data = ReportData(
        staging,
        prep.inputs,
        prep.methodology,
        prep.catalogue,
        prep.options.quarter,
        {},
        None,
        None,
        read_metric_results(metric_results),
    )
    data.cache = cache
    data.productivity, data.spc  # noqa: B018 - computed now (cached properties)
    data.profile_spc = spc_contexts(data)
    data.profile_index = ProfileIndex(data)
    return data


def while_the_league_runs(
    prep, staging: Path, metric_results: str, cache_folder: str
) -> tuple[ReportData, DerivedCache | None, SheetCache]:
    """What the run's process does while the league notebook runs: opens the report cache in ``cache_folder`` (none
    when empty), computes :func:`early_data` with it, the spreadsheet's cells it can (:func:`prepare_sheets`, kept
    between runs in the same cache) and compiles the page templates. Returns (early data, cache, sheet cells)."""
    cache = open_cache(cache_folder)
    early = early_data(prep, staging, metric_results, cache)
    sheets = SheetCache(cache)
    prepare_sheets(early, staging, sheets)
    pages.compile_templates()
    return early, cache, sheets


def prepare_sheets(early: ReportData, staging: Path, sheets: SheetCache) -> None:
    """The spreadsheet's cells of the tables written before the league notebook ends — the metric tables — and of
    the two the report notebook will write (productivity and SPC, made here from the same data into a temporary
    folder), kept in ``sheets`` by the SHA-256 of each file's bytes: the workbook reuses them for a file whose bytes
    are the same when it is written (:func:`finish`)."""
    sheets.add(table_files(staging, early.catalogue, list(early.metric_data)))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a speculative copy: the report notebook reports what its own tables lose
        sheets.add(Path(tmp) / rel for rel in early.write_tables(Path(tmp)))


def load_data(prep, work: Path, params: dict, timings: dict, early: ReportData | None = None) -> ReportData:
    """The :class:`~leaguetables.publication.report.ReportData` every page is built from: what the report notebook
    loads from its parameters ``params`` (the validated inputs already in memory), with the run's working folder
    ``work`` for the metric pages' figures and what :func:`early_data` computed when given."""
    t0 = time.perf_counter()
    data = ReportData.load(
        params["out_dir"],
        prep.inputs,
        prep.methodology,
        prep.catalogue,
        params["quarter"],
        params["run"],
        params["league"],
        params["metric_results"],
        params["revisions"],
        metric_data=None if early is None else early.metric_data,
        cache=params.get("report_cache", ""),
    )
    data.work_dir = work
    if early is not None:
        data.reuse(early)
    timings["load"] = round(time.perf_counter() - t0, 3)
    return data


def write_documents(data, prep, staging: Path, timings: dict) -> None:
    """The documents that need nothing the report notebook writes: trust profiles, the metric, region and index
    pages, the methodology page (the pipeline builds them while the report notebook runs)."""
    t0 = time.perf_counter()
    write_profiles(data, staging / TRUSTS_DIR)
    timings["profiles"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    write_site(data, staging)
    timings["pages"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    write_methodology(data, staging / "methodology.html")
    timings["methodology_html"] = round(time.perf_counter() - t0, 3)


def export_index(notebook: Path, html: Path, data: ReportData) -> None:
    """``index.html``: the executed report notebook ``notebook`` exported by nbconvert, titled from the run's
    description (its quarter; "(partial run)" when a run omitted metrics), with the search box's list of trusts."""
    title = f"NHS trust league tables: {quarter_label(data.quarter)} ({quarter_period(data.quarter)})"
    if data.run.get("partial"):
        title += " (partial run)"
    export_html(notebook, html, title, site_label(data.run["source"]), search_data=data.search_data)


def finish(data, prep, staging: Path, timings: dict, sheets: SheetCache | None = None) -> None:
    """The documents made from what the report notebook wrote: ``index.html`` (its executed notebook, exported) and
    the spreadsheet of every CSV table (its tables among them; cells reused from ``sheets``, :func:`prepare_sheets`)."""
    quarter = prep.options.quarter
    if not (staging / "tables" / "productivity.csv").exists():  # written by the report notebook; never skipped
        data.write_tables()
    t0 = time.perf_counter()
    export_index(staging / "notebooks" / "report.ipynb", staging / "index.html", data)
    timings["report_html"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    write_workbook(
        Release(staging, quarter, prep.methodology, prep.catalogue, prep.metric_ids, prep.options.source, __version__),
        sheets,
    )
    timings["spreadsheet_ods"] = round(time.perf_counter() - t0, 3)
