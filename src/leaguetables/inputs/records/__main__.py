"""Record-level indicators from the command line:

    python -m leaguetables.inputs.records ROOT QUARTER --out DIR [--engine duckdb|spark] [--real DIR]
        [--geography DIR] [--settings NAME_OR_YAML] [--on-error raise|exclude]

Validates the ``apc/``, ``op/`` and ``ae/`` folders under ROOT (the record-level contract), computes every indicator
of QUARTER and writes ``observations.csv`` (the observations data contract), ``strata.csv`` (ICB standardisation
strata), ``icb_standardised.csv``, ``ratios.csv`` (the providers' observed-over-expected ratios), ``shmi.csv``, ``shmi_models.csv`` and one ``counts_<table>.csv`` per SQL output
into DIR — all or nothing: the files are written to a temporary folder beside DIR and moved into place at the end.

Exit codes: 0 written; 2 bad input or arguments (one line naming the file, row and column; nothing written).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from leaguetables.errors import InputError
from leaguetables.inputs.records.contract import load_records
from leaguetables.inputs.records.indicators import (
    DEFAULT_REAL_DATA,
    Indicators,
    compute_indicators,
    local_spark_session,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())}\n")


def write(ind: Indicators, out: Path) -> None:
    """The indicator tables as CSV files in ``out``, atomically (nothing is left behind if writing fails)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        ind.observations.to_csv(tmp / "observations.csv", index=False, lineterminator="\n")
        ind.strata.to_csv(tmp / "strata.csv", index=False, lineterminator="\n")
        ind.icb_standardised.to_csv(tmp / "icb_standardised.csv", index=False, lineterminator="\n")
        ind.ratios.to_csv(tmp / "ratios.csv", index=False, lineterminator="\n")
        ind.shmi.to_csv(tmp / "shmi.csv", index=False, lineterminator="\n")
        ind.shmi_models.to_csv(tmp / "shmi_models.csv", index=False, lineterminator="\n")
        for name, frame in ind.counts.items():
            frame.to_csv(tmp / f"counts_{name}.csv", index=False, lineterminator="\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m leaguetables.inputs.records", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder with apc/, op/ and ae/ (Parquet or CSV)")
    ap.add_argument("quarter", help="financial-year quarter, e.g. 2025-26-Q4")
    ap.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    ap.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    ap.add_argument(
        "--real", type=Path, default=DEFAULT_REAL_DATA, help="real-data folder (LSOA lookup, IMD, populations)"
    )
    ap.add_argument("--geography", type=Path, default=None, help="geography folder (lsoa_icb.csv, population.csv)")
    ap.add_argument("--settings", default="indicators", help="config/records/<name>.yaml or a .yaml path")
    ap.add_argument(
        "--on-error",
        choices=("raise", "exclude"),
        default="raise",
        help="raise: stop at the first invalid row; exclude: drop invalid rows and count them",
    )
    args = ap.parse_args(argv)
    try:
        records = load_records(args.root, on_error=args.on_error)
        engine = local_spark_session(2) if args.engine == "spark" else "duckdb"
        ind = compute_indicators(
            records, args.quarter, engine=engine, settings=args.settings, real=args.real, geography=args.geography
        )
        write(ind, args.out)
    except InputError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for note in ind.notes:
        print(f"note: {note}", file=sys.stderr)
    if len(records.exclusions):
        print(
            f"note: {int(records.exclusions['rows'].sum())} invalid rows excluded (--on-error exclude)", file=sys.stderr
        )
    print(f"{len(ind.observations)} observations written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
