#!/usr/bin/env python3
"""Run one quarter of the NHS trust league tables and publish it under reports/<quarter>/.

Examples:
  python run_quarter.py 2025-26-Q4                       # the synthetic demo quarter
  python run_quarter.py 2025-26-Q4 --metrics ae_4hr,cdiff --jobs 2
  python run_quarter.py 2024-25-Q4 --source nhse --raw ../shared/data/real
  python run_quarter.py 2025-26-Q1 --source nof      # from NHS England's published NOF values, every type
  python run_quarter.py 2025-26-Q4 --verify              # rerun from the recorded inputs; report differences
  python run_quarter.py 2025-26-Q4 --isolated            # a fresh kernel per notebook (same outputs, slower)
  python run_quarter.py 2025-26-Q3 --data DIR --revise   # republish a quarter with revised inputs

Warm kernels from a kernel server (opt-in; the same outputs, a kernel forked rather than started and its libraries
imported): `python -m leaguetables.run.kernel_server start PATH` (it exits after 10 idle minutes, or `... stop
PATH`), then runs with the environment variable LEAGUETABLES_KERNEL_SERVER=PATH ask it for their kernels. A server
that is absent or holds other code (the sources changed since it started) is not used: the kernel is started as
without it. --isolated never uses it.

Reruns: stages whose inputs, code and configuration have not changed are reused from reports/.cache/. A run whose
outputs are identical to the published quarter publishes nothing (a no-op); one that would change it is refused,
naming the differences, unless --revise (publish with tables/revisions.csv, revised figures marked [r]) or --force
(replace) is given; the replaced version is kept under reports/.superseded/.

Exit codes: 0 published, unchanged or verified; 1 the pipeline failed, a change to a published quarter was refused,
or --verify found differences (nothing published); 2 bad input or arguments (one line naming the file, row and
column; nothing published).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (``error: argument --jobs: invalid int value: 'two'``), exit code 2 — not
    argparse's usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())} (see run_quarter.py --help)\n")


def _stop_children() -> None:
    """Kill this process's children (the notebook kernels, started in their own sessions so a signal sent to this
    process alone never reaches them); their threads then see a dead kernel and unwind. A kernel killed here between
    its fork and its ``setsid`` dies in this process's group: ``kernels.SessionKernelManager`` then signals that
    kernel alone, never the group (which holds whatever started this run). Kernels forked by a kernel server
    (``LEAGUETABLES_KERNEL_SERVER``) are not this process's children: their process groups are killed too (the
    module is loaded only when the run has asked a server for a kernel, so nothing is imported here)."""
    forked = sys.modules.get("leaguetables.run.kernel_server")
    if forked is not None:
        forked.kill_forked()
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel
        return
    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


def _quiet_after_stop() -> None:
    """After a stop the run's one line is all it says: notebook threads winding down (their kernels killed) must
    not log "Kernel died" or a traceback around it, nor may the clean-up Python reports as "Exception ignored"
    (finalizers and exit callbacks of the killed kernels' clients: once, under load, a ``FileNotFoundError`` after
    the line)."""
    import logging
    import threading

    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    sys.unraisablehook = lambda unraisable: None


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP stop the run like Ctrl-C (its kernels killed first); each of the three is recorded
    (:func:`leaguetables.errors.stop`), so that a stop whose exception some library swallowed still stops the run at
    its next checkpoint, and before it publishes."""
    import signal

    from leaguetables.errors import stop

    def terminate(signum, frame):
        _quiet_after_stop()  # the kernels killed next make their threads log "Kernel died"
        _stop_children()
        raise stop(signum)

    def interrupt(signum, frame):
        raise stop(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)
    signal.signal(signal.SIGINT, interrupt)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from leaguetables.run.defaults import DEFAULT_OUT, DEFAULT_REAL_DATA, SOURCES

    ap = OneLineParser(
        prog="run_quarter.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("quarter", help="financial-year quarter, e.g. 2025-26-Q4 (January to March 2026)")
    ap.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help="demo: synthetic demo data (the default without --data); nhse: NHS England's published "
        "files under --raw; nof: NHS England's published NOF metric values under --raw (every "
        "trust type published for the quarter); files: the four contract CSV files in --data (the "
        "default with --data, unless the folder holds the demo generator's demo-source.json)",
    )
    ap.add_argument(
        "--data",
        type=Path,
        help="folder with trusts.csv, observations.csv, demographics.csv, "
        "status.csv (default for demo: data/demo, generated if missing)",
    )
    ap.add_argument(
        "--raw",
        type=Path,
        default=DEFAULT_REAL_DATA,
        help="folder of NHS England's published files for --source nhse (default: ../shared/data/real)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports folder (default: reports/)")
    ap.add_argument("--jobs", type=positive_int, default=2, help="metric notebooks run at once (default: 2)")
    ap.add_argument(
        "--metrics",
        help="comma-separated metric ids to run (default: all with data); the quarter is then "
        "published as a partial run, marked so in its title, banner and manifest",
    )
    ap.add_argument(
        "--methodology",
        default="nof-2025-26",
        help="methodology config in config/methodology/ (a name, or a path to a .yaml file)",
    )
    ap.add_argument(
        "--catalogue",
        help="metric catalogue in config/catalogues/ (a name, or a path to a .yaml file; default: the source's)",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify",
        action="store_true",
        help="rerun the published quarter from the inputs recorded in its manifest (no cache) and "
        "report every difference; exit 0 when identical, 1 when not",
    )
    mode.add_argument(
        "--revise",
        action="store_true",
        help="publish over an already published quarter, with tables/revisions.csv listing every "
        "figure changed since its first publication",
    )
    mode.add_argument(
        "--force",
        action="store_true",
        help="publish over an already published quarter, replacing it (no revisions table)",
    )
    ap.add_argument("--no-cache", action="store_true", help="execute every stage (do not reuse reports/.cache/)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--isolated",
        action="store_true",
        help="run every notebook on a fresh kernel with papermill's default engine (slower; the outputs "
        "are byte-identical to the default run, which reuses warm kernels)",
    )
    return ap.parse_args(argv)


def describe_cache(report) -> str:
    """One line: which stages were reused from the cache and which were executed."""
    n = sum(1 for k in report.keys if k.startswith("metric:"))
    reused, executed = set(report.reused), set(report.executed)
    m_reused = sum(1 for r in reused if r.startswith("metric:"))
    m_run = n - m_reused
    stages = ("league", "report", "publication")
    if not executed:
        return f"reused everything from the cache: {n} metric notebooks, {', '.join(stages)}"
    parts = []
    done = [f"{m_run} of {n} metric notebooks"] if m_run else []
    parts.append("executed " + ", ".join(done + [s for s in stages if s in executed]))
    kept = ([f"{m_reused} metric notebooks"] if m_reused else []) + [s for s in stages if s in reused]
    if kept:
        parts.append("reused " + ", ".join(kept))
    return "; ".join(parts)


def parse_metrics(text: str | None) -> list[str] | None:
    """The metric ids of ``--metrics`` (None without it; an empty list when it names none)."""
    return None if text is None else [m.strip() for m in text.split(",") if m.strip()]


def up_to_date(args: argparse.Namespace, source: str, metrics: list[str] | None) -> str | None:
    """The line to print when the published quarter is up to date (:mod:`leaguetables.run.uptodate`: its manifest
    records this run's inputs, code and configuration, and its files are intact), found before the pipeline and
    its libraries are imported; None when the pipeline must run (it then reuses the cache where it can)."""
    if args.verify or args.revise or args.force or args.no_cache:
        return None
    t0 = time.perf_counter()
    from leaguetables.quarters import QUARTER_RE
    from leaguetables.run import uptodate

    data = uptodate.data_folder(source, args.data)
    if source not in uptodate.SOURCES or not QUARTER_RE.fullmatch(args.quarter) or not data.is_dir():
        return None
    key = uptodate.rerun_key(args.quarter, source, data, metrics, args.methodology, args.catalogue)
    folder = Path(os.path.abspath(args.out)) / args.quarter
    if not uptodate.unchanged(folder.parent, args.quarter, key):
        return None
    return (
        f"unchanged: {folder / 'index.html'} is identical to this run; nothing to publish (up to date: its manifest "
        f"records these inputs, code and configuration; {time.perf_counter() - t0:.1f} s)"
    )


def wrong_argument(args: argparse.Namespace, source: str, metrics: list[str] | None) -> str | None:
    """The one line refusing an empty ``--metrics``, a malformed quarter or a metric id the catalogue lacks, found
    before the pipeline and its libraries are imported (:func:`leaguetables.run.defaults.check_arguments`); None
    when there is none."""
    if metrics == []:
        return (
            "error: --metrics names no metric (give comma-separated metric ids, or leave --metrics out to "
            "run every metric)"
        )
    from leaguetables.errors import InputError
    from leaguetables.run.defaults import check_arguments

    try:
        check_arguments(args.quarter, source, None if args.verify else metrics, args.methodology, args.catalogue)
    except InputError as exc:
        return f"error: {' '.join(str(exc).split())}"
    return None


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    args = parse_args(argv)
    metrics = parse_metrics(args.metrics)
    from leaguetables.inputs.demo_marker import default_source

    source = args.source or default_source(args.data)  # the data folder's marker read once, for every check below
    refusal = wrong_argument(args, source, metrics)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    line = up_to_date(args, source, metrics)
    if line is not None:
        print(line)
        return 0
    from leaguetables.errors import InputError, PipelineError, Terminated
    from leaguetables.run.pipeline import RunOptions, run, verify

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    import warnings

    # warnings from the data sources (e.g. a source with no data for the quarter) are notes for the statistician:
    # one line each, without the Python source line
    warnings.showwarning = lambda message, category, *rest, **kw: log(f"note: {message}")

    try:
        opts = RunOptions(
            quarter=args.quarter,
            source=source,
            data=args.data,
            raw=args.raw,
            out=args.out,
            jobs=args.jobs,
            metrics=metrics,
            methodology=args.methodology,
            catalogue=args.catalogue,
            progress=not args.no_progress,
            revise=args.revise,
            force=args.force,
            use_cache=not args.no_cache,
            isolated=args.isolated,
            log=log,
        )
        outcome = verify(opts) if args.verify else run(opts)
    except InputError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Terminated as exc:
        import signal

        _quiet_after_stop()
        print(f"terminated ({signal.Signals(exc.signum).name}): nothing was published", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        _quiet_after_stop()
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    t = opts.timings or {}
    folder = outcome.folder
    cache_line = describe_cache(outcome.cache) if outcome.cache is not None else ""
    seconds = f"{t.get('total', 0):.1f} s"
    if args.verify:
        if outcome.status == "verified":
            print(f"verified: {folder} is reproduced exactly from its recorded inputs ({seconds})")
            return 0
        for note in outcome.notes:
            print(f"verify: {note}", file=sys.stderr)
        if outcome.comparison is None:
            print(f"verify: {folder} cannot be rerun from its recorded inputs", file=sys.stderr)
            return 1
        n = len(outcome.comparison.differences)
        print(f"verify: {folder} differs from a rerun of its inputs in {n} file(s):", file=sys.stderr)
        print(outcome.comparison.report(), file=sys.stderr)
        return 1
    if outcome.status == "unchanged":
        print(
            f"unchanged: {folder / 'index.html'} is identical to this run; nothing to publish ({cache_line}; {seconds})"
        )
        return 0
    if outcome.status == "refused":
        n = len(outcome.comparison.differences)
        print(
            f"refused: this run would change the published {args.quarter} ({folder}) in {n} file(s); rerun with "
            "--revise to publish the changes with a revisions table, or --force to replace it (the published "
            f"version is kept under {folder.parent / '.superseded'}). Differences:",
            file=sys.stderr,
        )
        print(outcome.comparison.report(max_files=12, max_rows=5), file=sys.stderr)
        return 1
    extra = ""
    if outcome.comparison is not None:
        extra = (
            f"; {outcome.revisions} revised figures listed in tables/revisions.csv"
            if args.revise
            else "; the previous version is kept under .superseded/"
        )
    print(f"published {folder / 'index.html'}  ({cache_line}; {seconds}{extra})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
