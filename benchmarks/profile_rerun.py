"""Where a rerun after one metric's data changed spends its time: each stage's work profiled in-process.

    .venv/bin/python benchmarks/profile_rerun.py QUARTER_FOLDER [--stage league|metric|report|export|all]
        [--metric cdiff] [--top 25] [--no-profile]

``QUARTER_FOLDER`` is a published quarter (``reports/<quarter>``) made with the cache on, so the league's sampling
cache is warm (``<reports>/.cache/<quarter>/sampling``). Each stage is called as its notebook (or the run's process)
calls it, from the parameters recorded in the executed notebooks, writing into a temporary folder:

* ``league``: ``league.build_league`` with the warm :class:`SamplingCache`, then ``league.write_league``;
* ``metric``: ``metrics.compute_metric`` of ``--metric``, its two figures, the funnel SVGs and ``write_result``;
* ``report``: ``ReportData.load``, ``write_tables`` and every section of the front page;
* ``export``: ``documents.build_publication`` (profiles, site pages, methodology, ``index.html``, spreadsheet).

Prints wall and CPU seconds of each, and the top of its cProfile (cumulative); with ``--no-profile`` the times
without the profiler (which about doubles them) and no profile. Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _params(folder: Path, name: str) -> dict:
    nb = json.loads((folder / "notebooks" / name).read_text(encoding="utf-8"))
    return nb["metadata"]["papermill"]["parameters"]


def _timed(label: str, fn, top: int):
    """``fn()`` timed, and profiled unless ``top`` is negative (``--no-profile``)."""
    prof = cProfile.Profile()
    c0, t0 = time.process_time(), time.perf_counter()
    if top >= 0:
        prof.enable()
    out = fn()
    prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\n=== {label}: {wall:.2f} s wall, {cpu:.2f} CPU-s{'' if top >= 0 else ' (not profiled)'}")
    if top < 0:
        return out
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(top)
    print(s.getvalue())
    return out


def league_stage(folder: Path, tmp: Path, top: int) -> None:
    from leaguetables.nof import league as league_mod
    from leaguetables.run import notebook_env
    from leaguetables.run import sampling_cache as sc

    p = _params(folder, "league_table.ipynb")
    inputs, methodology, catalogue = notebook_env.load(
        p["methodology"], p["catalogue"], p["trusts"], p["observations"], p["demographics"], p["status"]
    )
    cache_dir = folder.parent / ".cache" / p["quarter"] / "sampling"
    copy = tmp / "sampling"
    shutil.copytree(cache_dir, copy)

    def work():
        tables = league_mod.read_metric_tables(p["metric_results"])
        cache = sc.SamplingCache(copy)
        lg = league_mod.build_league(tables, inputs, methodology, catalogue, p["quarter"], cache)
        print(f"sampling cache: {cache.hits} hits, {cache.misses} misses")
        league_mod.write_league(lg, inputs, catalogue, p["quarter"], tmp / "out", tmp / "work")

    _timed("league (build_league + write_league, warm sampling cache)", work, top)


def metric_stage(folder: Path, tmp: Path, top: int, metric_id: str) -> None:
    from leaguetables.publication import figures
    from leaguetables.run import notebook_env
    from leaguetables.statistics import metrics

    p = _params(folder, f"metric_{metric_id}.ipynb")
    inputs, methodology, catalogue = notebook_env.load(
        p["methodology"], p["catalogue"], p["trusts"], p["observations"], p["demographics"], quarters=p["quarters"]
    )
    metric = catalogue.metric(metric_id)

    def work():
        result = metrics.compute_metric(inputs, metric, p["quarter"], methodology)
        figures.distribution(result)
        figures.save_funnels(result, tmp / "work", methodology.funnel.band_level)
        metrics.write_result(result, tmp / "out", tmp / "work")

    _timed(f"metric {metric_id} (compute_metric, figures, write_result)", work, top)


def report_stage(folder: Path, tmp: Path, top: int) -> None:
    from leaguetables.publication import report as sections
    from leaguetables.run import notebook_env

    p = _params(folder, "report.ipynb")

    def work():
        inputs, methodology, catalogue = notebook_env.load(
            p["methodology"],
            p["catalogue"],
            p["trusts"],
            p["observations"],
            p["demographics"],
            p["status"],
            checksums=notebook_env.load_run(p["run"])["input_checksums"],
        )
        page = sections.ReportData.load(
            str(tmp / "out"), inputs, methodology, catalogue, p["quarter"], p["run"], p["league"],
            p["metric_results"], p["revisions"],
        )  # fmt: skip
        page.write_tables()
        for name in ("header", "key_findings", "segments", "league_tables", "sensitivity", "productivity_section",
                     "metrics", "about", "methodology_summary", "data_quality", "revisions_section", "footer"):  # fmt: skip
            getattr(page, name)()

    _timed("report notebook's cells (load, write_tables, sections)", work, top)


def export_stage(folder: Path, tmp: Path, top: int) -> None:
    from types import SimpleNamespace

    from leaguetables.publication import documents
    from leaguetables.run import notebook_env

    p = _params(folder, "report.ipynb")
    inputs, methodology, catalogue = notebook_env.load(
        p["methodology"], p["catalogue"], p["trusts"], p["observations"], p["demographics"], p["status"]
    )
    run = notebook_env.load_run(p["run"])
    staging = tmp / "staging"
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns("*.html", "*.ods"))
    prep = SimpleNamespace(
        inputs=inputs,
        methodology=methodology,
        catalogue=catalogue,
        metric_ids=run["metric_ids"],
        options=SimpleNamespace(quarter=p["quarter"], source=run["source"]),
    )
    params = p | {"out_dir": str(staging)}
    timings = _timed(
        "export (documents.build_publication)",
        lambda: documents.build_publication(prep, staging, folder.parent / ".work-none", params),
        top,
    )
    print("per document:", timings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--stage", default="all", choices=["league", "metric", "report", "export", "all"])
    ap.add_argument("--metric", default="cdiff")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-profile", action="store_true", help="time each stage without cProfile")
    args = ap.parse_args()
    folder = args.folder.resolve()
    if args.no_profile:
        args.top = -1
    with tempfile.TemporaryDirectory(prefix="profile-rerun-") as t:
        tmp = Path(t)
        if args.stage in ("league", "all"):
            league_stage(folder, tmp, args.top)
        if args.stage in ("metric", "all"):
            metric_stage(folder, tmp, args.top, args.metric)
        if args.stage in ("report", "all"):
            report_stage(folder, tmp, args.top)
        if args.stage in ("export", "all"):
            export_stage(folder, tmp, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
