"""Are the record generator's draws what its truth file says? z of every ICB-quarter and trust-quarter over seeds.

    .venv/bin/python benchmarks/record_draw_dispersion.py [--seeds 20] [--first-seed 1] [--fraction 0.1]
        [--quarters 4] [--no-followups] [--out draws.csv]

:func:`leaguetables.inputs.records.recovery.generator_draws` calls the generator's own drawing functions
(``generate.emergency_spells``, ``generate.readmissions``, ``generate.op_table``) with its own chunk streams
(``generate.chunk_rng``) for every ICB of residence and quarter, at ``--fraction`` of the ONS population, for the
seeds ``first-seed … first-seed + seeds − 1`` (each seed its own effects and streams; the configured geography), and
compares each draw with the expectation the truth file is made of — no indicator, no SQL: the draw itself. Units and
z = (O − E)/√V:

* ICB first emergency admissions (ACSC and other, before readmissions) and ICB ACSC admissions: Poisson, V = E;
* ICB emergency admissions with the readmissions they lead to (what ``truth/ratios.csv`` counts): compound Poisson,
  V = Σ μ(1 + 3r) (r the expected 0/1 readmissions per index admission);
* trust readmissions given the index spells: Bernoulli, V = Σ p(1 − p); ``trust_readmissions_poisson_scale``: the same
  O with V = Σ p (what a Poisson interval assumes: var z ≈ 1 − p̄);
* trust outpatient follow-ups given the first attendances: Poisson, V = Σ μ.

If the generator draws what its truth says, every z has mean 0 and variance 1. Printed per outcome
(:func:`~leaguetables.inputs.records.recovery.dispersion`): units, mean E, mean and variance of z with the 95% range of
the variance of as many N(0, 1) draws, the largest |z|, the count of |z| > 3 against its expectation and the chance of
at least that many. A seed at full scale (``--fraction 1``) takes about 9 s of CPU with the follow-ups.

``--cells``: instead, per ICB-quarter the first emergency admissions of each population cell (LSOA × single year of
age × sex; ``generate.emergency_spells``' own spells counted by cell) against the cell's μ: the dispersion index
Σ (n − μ)²/Σ μ over every cell of every ICB-quarter (1 for Poisson draws, with an SD of √Σ (μ + 2μ²)/Σ μ — far
tighter than the ICB sums' var z, which it separates from correlation between cells) beside var z of the ICB sums.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from scipy import stats

from leaguetables.config import load_record_generator
from leaguetables.inputs.records import generate, geography, recovery

QUARTERS = ("2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4")


def cell_dispersion(geo, seeds: range, quarters: tuple[str, ...], fraction: float) -> dict[str, float]:
    """The first emergency admissions' dispersion index over every cell, and var z and |z| > 3 of the ICB sums."""
    squares = total = fourth = 0.0
    z = []
    for seed in seeds:
        eff = generate.draw_effects(seed, geo.trust_codes, len(geo.icb_codes))
        for qi, quarter in enumerate(quarters):
            per = generate.period(quarter, qi)
            for icb in range(len(geo.icb_codes)):
                cells = generate.cells_of(geo, icb)
                years = fraction * per.years
                rng = generate.chunk_rng(seed, per.index, icb, "apc")
                spells = generate.emergency_spells(rng, geo, cells, eff, per, years, icb)
                mu = sum(
                    generate.intensity(cells, k, years, generate.geo_effect(eff, k, icb)) for k in ("acsc", "emergency")
                )
                n = np.bincount(spells["cell"], minlength=len(mu))
                squares, total = squares + float(((n - mu) ** 2).sum()), total + float(mu.sum())
                fourth += float((mu + 2 * mu**2).sum())  # Σ var (n − μ)² of Poisson draws
                z.append((n.sum() - mu.sum()) / np.sqrt(mu.sum()))
    zz = np.asarray(z)
    return {
        "icb_quarters": len(zz),
        "cell_index": squares / total,
        "cell_index_sd": np.sqrt(fourth) / total,
        "var_z": float(zz.var(ddof=1)),
        "over_3": int((np.abs(zz) > 3).sum()),
        "expected_over_3": len(zz) * 2 * stats.norm.sf(3),
        "max_abs_z": float(np.abs(zz).max()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the ONS population drawn (national: 1)")
    ap.add_argument("--quarters", type=int, default=4, choices=range(1, 5))
    ap.add_argument("--no-followups", dest="followups", action="store_false")
    ap.add_argument("--out", default=None, help="write every unit's observed, expected and variance (CSV)")
    ap.add_argument(
        "--cells", action="store_true", help="the cell-level dispersion index of first emergency admissions"
    )
    args = ap.parse_args(argv)
    cfg = load_record_generator()
    geo = geography.load(geography.DEFAULT_REAL, seed=cfg.seed, demo_seed=cfg.demo_seed, acute_trusts=cfg.acute_trusts)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.cells:
        c0 = time.process_time()
        print(cell_dispersion(geo, seeds, QUARTERS[: args.quarters], args.fraction))
        print(f"{time.process_time() - c0:.0f} s CPU")
        return 0
    t0, c0 = time.perf_counter(), time.process_time()
    draws = recovery.generator_draws(geo, seeds, QUARTERS[: args.quarters], args.fraction, args.followups)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.out:
        draws.to_csv(args.out, index=False)
    print(
        f"fraction {args.fraction}, seeds {seeds.start}..{seeds.stop - 1}, {args.quarters} quarter(s): "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU"
    )
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(recovery.dispersion(draws).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
