"""Coverage of the record-level intervals on the national synthetic extract, every quarter: Poisson against scaled.

    .venv/bin/python benchmarks/record_interval_coverage.py [--extract /tmp/records-national] [--quarters Q1,Q2,Q3,Q4]
        [--trusts]

The ICB ratios need only the admissions of their quarter (readmissions fall in the quarter of their index admission),
so each quarter of the extract is its own independent draw from the same model: 4 × 42 ICB intervals instead of 42.
Each quarter is read through a folder of links to its own Parquet files (the contract loader reads any depth) and its
indicators computed by DuckDB (``indicators.compute_indicators``). Printed per quarter and pooled: the coverage of
the true ICB ratios (``truth/ratios.csv``) by the scaled intervals the indicators publish (the variance of O: Σ over
patients of admissions², ``icb_patients``) and by the Poisson intervals of the same counts (``icb.numerator_variance``
emptied), and z = (O − true ratio × E)/√V. For the trusts only the last quarter counts (a single-quarter folder lacks
the stays admitted in the quarter before: its bed days are short): with ``--trusts``, ``recovery.recovery`` of the
whole extract's last quarter (as ``bench_record_level.py --child duckdb`` prints it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.records import indicators, recovery
from leaguetables.inputs.records.settings import load_record_settings

SHARED = ("geography", "registers", "truth", "manifest.json")


def quarter_view(extract: Path, quarter: str, folder: Path) -> Path:
    """A folder holding links to the Parquet files of one quarter (``QUARTER=Qn``) and to the extract's metadata."""
    for dataset in ("apc", "op", "ae"):
        for f in sorted((extract / dataset).rglob(f"QUARTER={quarter}/*.parquet")):
            target = folder / f.relative_to(extract)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    for name in SHARED:
        (folder / name).symlink_to(extract / name)
    return folder


def icb_coverage(ind: indicators.Indicators, truth: pd.DataFrame) -> pd.DataFrame:
    """Per ICB outcome and interval (scaled as published, Poisson): intervals, covered, var and mean of z."""
    settings = load_record_settings("indicators")
    rows = []
    for interval, kinds in (("scaled", settings.icb.numerator_variance), ("Poisson", [])):
        s = indicators.standardise_icbs(ind.strata, settings.icb.per, ind.counts["icb_patients"], kinds)
        for outcome, metric in recovery.ICB_OUTCOMES.items():
            g = s[s["metric_id"] == metric].set_index("icb_code")
            t = truth[(truth["org_type"] == "icb") & (truth["outcome"] == outcome)].set_index("org_code")
            true = t["true_ratio"].reindex(g.index)
            v = g["variance"].where(g["variance"].notna(), g["observed"])
            z = (g["observed"] - true * g["expected"]) / np.sqrt(v)
            covered = (g["isr_lower"] <= true) & (true <= g["isr_upper"])
            rows.append(
                {
                    "outcome": outcome,
                    "interval": interval,
                    "intervals": len(g),
                    "covered": int(covered.sum()),
                    "var_z": float(np.var(z)),
                    "mean_z": float(np.mean(z)),
                    "phi_median": float(np.median(v / g["observed"])),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", type=Path, default=Path("/tmp/records-national"))
    ap.add_argument("--quarters", default="Q1,Q2,Q3,Q4")
    ap.add_argument("--trusts", action="store_true", help="also the recovery of the whole extract's last quarter")
    args = ap.parse_args(argv)
    quarters = json.loads((args.extract / "manifest.json").read_text())["quarters"]
    truth = pd.read_csv(args.extract / "truth" / "ratios.csv")
    parts = []
    for q in args.quarters.split(","):
        quarter = next(x for x in quarters if x.endswith(q))
        with tempfile.TemporaryDirectory(prefix="rec-cover-") as tmp:
            ind = indicators.compute_indicators(quarter_view(args.extract, q, Path(tmp)), quarter)
        parts.append(icb_coverage(ind, truth).assign(quarter=quarter))
        print(parts[-1].to_string(index=False), flush=True)
    table = pd.concat(parts, ignore_index=True)
    pooled = table.groupby(["outcome", "interval"], as_index=False)[["intervals", "covered"]].sum()
    pooled["coverage"] = pooled["covered"] / pooled["intervals"]
    print("pooled over the quarters:")
    print(pooled.to_string(index=False))
    if not args.trusts:
        return 0
    last = quarters[-1]
    print(f"trusts and ICBs, {last}, the whole extract (recovery.recovery):")
    print(recovery.recovery(args.extract, quarter=last).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
