"""Time the synthetic record-level generator and check the truth is recovered.

    .venv/bin/python benchmarks/bench_records_generate.py [--scale national] [--out DIR] [--recovery]

Prints the rows written, wall time, the peak resident memory of this process and of its worker processes
(``resource.getrusage``), and with ``--recovery`` the truth-recovery table of
:func:`leaguetables.inputs.records.recovery.recovery` (the record-level indicators of the latest quarter, DuckDB,
against the true standardised ratios: correlation and the coverage of their 95% intervals). The national figures
are also printed by ``benchmarks/bench_record_level.py`` from its own DuckDB run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from leaguetables.inputs import demo
from leaguetables.inputs.records import generate, recovery


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="national")
    ap.add_argument("--out", type=Path, default=Path("/tmp/records-national"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--recovery", action="store_true")
    args = ap.parse_args(argv)
    job = generate.make_job(args.scale, args.out)
    workers = args.workers or generate.load_record_generator().scales[args.scale].workers
    t0 = time.perf_counter()
    manifest = generate.run(job, workers, demo_effects=demo.generate()["truth/trust_effects"])
    wall = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"scale {args.scale}: rows {manifest['rows']}, {wall:.1f} s wall with {workers} worker(s); "
        f"peak RSS {own:.0f} MB (main), {kids:.0f} MB (largest worker)"
    )
    if args.recovery:
        t1 = time.perf_counter()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(recovery.recovery(job.out).to_string(index=False))
        print(f"recovery: {time.perf_counter() - t1:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
