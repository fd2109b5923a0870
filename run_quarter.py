#!/usr/bin/env python3
"""Run one quarter of the NHS trust league tables and publish it under reports/<quarter>/.

Examples:
  python run_quarter.py 2025-26-Q4                       # the synthetic demo quarter
  python run_quarter.py 2025-26-Q4 --metrics ae_4hr,cdiff --jobs 2
  python run_quarter.py 2024-25-Q4 --source nhse --raw ../shared/data/real

Exit codes: 0 published; 1 the pipeline failed (nothing published); 2 bad input or arguments (nothing published).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from leaguetables.pipeline import DEFAULT_OUT, DEFAULT_REAL_DATA, SOURCES

    ap = argparse.ArgumentParser(
        prog="run_quarter.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("quarter", help="financial-year quarter, e.g. 2025-26-Q4 (January to March 2026)")
    ap.add_argument("--source", choices=SOURCES, default="demo",
                    help="demo: synthetic demo data (default); nhse: NHS England's published files under --raw; "
                         "files: the four contract CSV files in --data")
    ap.add_argument("--data", type=Path, help="folder with trusts.csv, observations.csv, demographics.csv, "
                                              "status.csv (default for demo: data/demo, generated if missing)")
    ap.add_argument("--raw", type=Path, default=DEFAULT_REAL_DATA,
                    help="folder of NHS England's published files for --source nhse (default: ../shared/data/real)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports folder (default: reports/)")
    ap.add_argument("--jobs", type=int, default=2, help="metric notebooks run at once (default: 2)")
    ap.add_argument("--metrics", help="comma-separated metric ids to run (default: all with data)")
    ap.add_argument("--methodology", default="nof-2025-26", help="methodology config in config/methodology/")
    ap.add_argument("--catalogue", help="metric catalogue in config/catalogues/ (default: the source's)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from leaguetables.errors import InputError, PipelineError
    from leaguetables.pipeline import RunOptions, run

    opts = RunOptions(
        quarter=args.quarter, source=args.source, data=args.data, raw=args.raw, out=args.out, jobs=args.jobs,
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None,
        methodology=args.methodology, catalogue=args.catalogue, progress=not args.no_progress,
    )
    try:
        published = run(opts)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    t = opts.timings
    print(f"published {published / 'index.html'}  ({len(t.get('metrics', {}))} metric notebooks, "
          f"{t.get('total', 0):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
