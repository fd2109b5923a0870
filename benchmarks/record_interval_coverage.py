"""Coverage of the record-level intervals: every quarter of an extract, or every outcome over generator seeds.

    .venv/bin/python benchmarks/record_interval_coverage.py [--extract /tmp/records-national] [--quarters Q1,Q2,Q3,Q4]
        [--trusts]
    .venv/bin/python benchmarks/record_interval_coverage.py --seeds 20 [--first-seed 1] [--fraction 0.03]
        [--out coverage.csv]

The ICB ratios need only the admissions of their quarter (readmissions fall in the quarter of their index admission),
so each quarter of the extract is its own independent draw from the same model: 4 × 42 ICB intervals instead of 42.
Each quarter is read through a folder of links to its own Parquet files (the contract loader reads any depth) and its
indicators computed by DuckDB (``indicators.compute_indicators``). Printed per quarter and pooled: the coverage of
the true ICB ratios (``truth/ratios.csv``) by the scaled intervals the indicators publish (the variance of O: Σ over
patients of admissions², ``icb_patients``) and by the Poisson intervals of the same counts (``icb.numerator_variance``
emptied), and z = (O − true ratio × E)/√V. For the trusts only the last quarter counts (a single-quarter folder lacks
the stays admitted in the quarter before: its bed days are short): with ``--trusts``, ``recovery.recovery`` of the
whole extract's last quarter (as ``bench_record_level.py --child duckdb`` prints it).

With ``--seeds`` (:func:`seed_coverage`): one quarter (2025-26-Q4, as the demo) generated afresh for each generator
seed at ``--fraction`` of the population (the demo scale, 0.03, by default; the demo's trust effects, read from
``data/demo``), its indicators computed by DuckDB, and every organisation's 95% interval checked against the seed's
true ratio: per outcome the coverage pooled over the seeds with its Monte Carlo SE √(c(1 − c)/n), the mean and
variance of z = (O − true ratio × E)/√V (V the variance of O the interval uses: the reported one where the indicators
give it, else O; none where V = 0) and, for the outcomes whose interval changed (:data:`ALTERNATIVE`), the coverage
and var z of the interval they had before (``alt_coverage``, ``alt_var_z``: readmissions and 12 hours in A&E with the
Poisson interval, before their binomial variance; the outpatient follow-ups with E held fixed, the Poisson interval
of O) and, for the follow-ups, of Fieller's interval for the ratio of the two counts (``fieller_coverage``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.records import generate, indicators, recovery
from leaguetables.inputs.records.settings import load_record_settings
from leaguetables.statistics import rates

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


# the outcomes whose published interval changed, with the interval they had before (``alt_coverage``): the 0/1
# outcomes' Poisson interval (before their residual, binomial variance) and the follow-ups' Poisson interval of O with
# E held fixed (before the variance of their random expected count, standardisation.expected_variance)
BINARY = {"readmission": "rl_readmissions_oe", "ae_12hr": "rl_ae_12hr_oe"}
ALTERNATIVE = {**BINARY, "followup": "rl_followup_oe"}


def organisation_z(folder: Path, ind: indicators.Indicators) -> pd.DataFrame:
    """Every organisation and outcome of one extract: covered by its 95% interval, z against the true ratio, and for
    :data:`ALTERNATIVE` the coverage and z of the interval before (``alt_covered``, ``alt_z``); for the follow-ups
    also the coverage of Fieller's interval (``fieller_covered``)."""
    est = recovery.estimates(folder, ind)
    variance = pd.concat(
        [
            ind.ratios.assign(org_code=ind.ratios["trust_code"].map(_trust_codes(folder)))[
                ["metric_id", "org_code", "variance"]
            ],
            ind.icb_standardised.rename(columns={"icb_code": "org_code"})[["metric_id", "org_code", "variance"]],
        ]
    )
    metric = {**recovery.TRUST_OUTCOMES, **recovery.ICB_OUTCOMES}
    est["metric_id"] = est["outcome"].map(metric)
    est = est.merge(variance, on=["metric_id", "org_code"], how="left")
    truth = pd.read_csv(folder / "truth" / "ratios.csv")
    m = est.merge(truth, on=["org_type", "org_code", "outcome"])
    m["z"] = _z(m, m["variance"])
    m["covered"] = (m["lower"] <= m["true_ratio"]) & (m["true_ratio"] <= m["upper"])
    m = m.merge(alternatives(ind, _trust_codes(folder)), on=["metric_id", "org_code"], how="left")
    alt_covered = (m["alt_lower"] <= m["true_ratio"]) & (m["true_ratio"] <= m["alt_upper"])
    m["alt_covered"] = alt_covered.astype(float).where(m["alt_lower"].notna())
    m["alt_z"] = _z(m, m["alt_variance"]).where(m["alt_lower"].notna())
    fieller = (m["fieller_lower"] <= m["true_ratio"]) & (m["true_ratio"] <= m["fieller_upper"])
    m["fieller_covered"] = fieller.astype(float).where(m["fieller_lower"].notna())
    return m[["org_type", "org_code", "outcome", "scaled", "covered", "z", "alt_covered", "alt_z", "fieller_covered"]]


def _z(m: pd.DataFrame, variance: pd.Series) -> pd.Series:
    """z = (O − true ratio × E)/√V, V the given variance or else O (none where V = 0)."""
    v = variance.where(variance.notna(), m["observed"])
    return (m["observed"] - m["true_ratio"] * m["expected"]) / np.sqrt(v.where(v > 0))


def alternatives(ind: indicators.Indicators, codes: dict[str, str]) -> pd.DataFrame:
    """Per trust and :data:`ALTERNATIVE` metric: the limits and variance of the interval before, and for the
    follow-ups Fieller's 95% interval for O/E with V(O) = O and V(E) the binomial one (``indicators.expected_variance``):
    the θ with (O − θE)² ≤ 1.96² (O + θ² V(E))."""
    settings = load_record_settings("indicators")
    before = [v for v in settings.standardisation.numerator_variance if v not in BINARY.values()]
    alt = indicators.standardised_ratios(ind.counts, ind.shmi, before)
    alt = alt[alt["metric_id"].isin(ALTERNATIVE.values()) & (alt["expected"] > 0)]
    lim = rates.ratio(alt["observed"], alt["expected"].to_numpy(float), variance=alt["variance"])
    alt = alt.assign(
        org_code=alt["trust_code"].map(codes),
        alt_lower=lim["lower"].to_numpy(float),
        alt_upper=lim["upper"].to_numpy(float),
        alt_variance=alt["variance"],
    )
    t = ind.counts["op_follow_up"]
    national = t.groupby("age_band")[["follow_ups", "first_attendances"]].transform("sum")
    rate = (national["follow_ups"] / national["first_attendances"].where(national["first_attendances"] > 0)).fillna(0)
    v_e = indicators.expected_variance(t, "first_attendances", "booked_first_appointments", rate)
    fu = alt["metric_id"] == "rl_followup_oe"
    o, e = alt["observed"].to_numpy(float), alt["expected"].to_numpy(float)
    b = alt["trust_code"].map(v_e).to_numpy(float)
    z2 = 1.959963984540054**2
    a = e**2 - z2 * b
    root = np.sqrt(np.clip((o * e) ** 2 - a * (o**2 - z2 * o), 0, None))
    alt["fieller_lower"] = np.where(fu & (a > 0), (o * e - root) / a, np.nan)
    alt["fieller_upper"] = np.where(fu & (a > 0), (o * e + root) / a, np.nan)
    cols = ["alt_lower", "alt_upper", "alt_variance", "fieller_lower", "fieller_upper"]
    return alt[["metric_id", "org_code", *cols]]


def _trust_codes(folder: Path) -> dict[str, str]:
    reg = pd.read_csv(folder / "registers" / "trusts.csv", dtype=str)
    return dict(zip(reg["procode3"], reg["trust_code"]))


def seed_coverage(seeds: range, fraction: float, demo_effects: pd.DataFrame) -> pd.DataFrame:
    """One demo-like quarter per generator seed (in a temporary folder) and :func:`organisation_z` of each."""
    base = generate.make_job("demo")
    parts = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="rec-seed-") as tmp:
            job = dataclasses.replace(base, out=Path(tmp), seed=seed, fraction=fraction)
            t0, c0 = time.perf_counter(), time.process_time()
            generate.run(job, 1, demo_effects)
            ind = indicators.compute_indicators(job.out, job.quarters[-1])
            parts.append(organisation_z(job.out, ind).assign(seed=seed))
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", flush=True)
    return pd.concat(parts, ignore_index=True)


def coverage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per outcome: intervals, coverage and its Monte Carlo SE, mean and variance of z, the binary alternative."""
    rows = []
    for (otype, outcome), g in frame.groupby(["org_type", "outcome"], sort=True):
        n, c = len(g), float(g["covered"].mean())
        alt = g["alt_covered"].dropna().astype(float)
        fieller = g["fieller_covered"].dropna().astype(float)
        rows.append(
            {
                "org_type": otype,
                "outcome": outcome,
                "interval": "scaled" if g["scaled"].any() else "Poisson",
                "intervals": n,
                "coverage": c,
                "mc_se": np.sqrt(c * (1 - c) / n),
                "mean_z": float(g["z"].mean()),
                "var_z": float(g["z"].var()),
                "alt_coverage": float(alt.mean()) if len(alt) else np.nan,
                "alt_var_z": float(g["alt_z"].var()) if len(alt) else np.nan,
                "fieller_coverage": float(fieller.mean()) if len(fieller) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", type=Path, default=Path("/tmp/records-national"))
    ap.add_argument("--quarters", default="Q1,Q2,Q3,Q4")
    ap.add_argument("--trusts", action="store_true", help="also the recovery of the whole extract's last quarter")
    ap.add_argument("--seeds", type=int, default=0, help="generate this many seeds instead of reading --extract")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=0.03, help="with --seeds: share of the population drawn")
    ap.add_argument("--out", type=Path, default=None, help="with --seeds: every organisation's row (CSV)")
    args = ap.parse_args(argv)
    if args.seeds:
        frame = seed_coverage(
            range(args.first_seed, args.first_seed + args.seeds), args.fraction, generate.demo_trust_effects()
        )
        if args.out:
            frame.to_csv(args.out, index=False)
        with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
            print(coverage_table(frame).to_string(index=False))
        return 0
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
