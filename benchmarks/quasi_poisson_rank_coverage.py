"""Coverage of the true rank by the rank intervals of a rate whose numerator is not a Poisson count.

    .venv/bin/python benchmarks/quasi_poisson_rank_coverage.py [--datasets 100] [--replicates 200] [--seed 1]

The truth (as ``tests/test_sampling_quasi_poisson.py``): 40 ICBs with populations 2–10 × 10⁵ and true admission
rates 0.002·exp(u_i), u_i ~ N(0, 0.05²); patients Poisson, each with 2 admissions with probability 0.2 (else 1),
so x = Σk, V = Σk² and the true scale φ = E[k²]/E[k] = 1.33. One ranked metric; the true rank is the league of the
true rates. Each data set is run through ``sampling.sample_league`` twice on the same seed: with the reported
variance (quasi-Poisson draws, catalogue ``numerator_variance: reported``) and as a Poisson count (the draws before
the variance was used), for empirical Bayes (the default) and the plug-in bootstrap. Prints the coverage of the
95% rank interval pooled over ICBs and data sets, its Monte Carlo standard error (from the spread of the per-data-set
coverages, so the correlation of the ICBs of one data set is allowed for) and the mean width of the intervals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_sampling_quasi_poisson import catalogue, clustered, inputs, qdata  # noqa: E402  (the test's truth)

from leaguetables.statistics import sampling  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cover: dict[tuple[str, bool], list[float]] = {}
    width: dict[tuple[str, bool], list[float]] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.datasets):
        rows, codes, truth = clustered(rng)
        seed = int(rng.integers(1 << 31))
        for kind in ("reported", "poisson"):
            qd = qdata(inputs(rows, codes, kind == "reported"), catalogue(kind))
            _, _, trank = sampling._reference_league(qd, {"adm": truth})
            for shrink in (True, False):
                s, _ = sampling.sample_league(qd, args.replicates, seed, shrinkage=shrink, check=1)
                lo, hi = s["rank_interval_lower"].to_numpy(), s["rank_interval_upper"].to_numpy()
                cover.setdefault((kind, shrink), []).append(float(((lo <= trank) & (trank <= hi)).mean()))
                width.setdefault((kind, shrink), []).append(float((hi - lo + 1).mean()))
    print(f"{args.datasets} data sets × 40 ICBs, {args.replicates} replicates, seed {args.seed}")
    print(f"{'draws':<10} {'method':<16} {'coverage':>9} {'MCSE':>7} {'width (ranks)':>14}")
    for (kind, shrink), c in cover.items():
        mcse = np.std(c, ddof=1) / np.sqrt(len(c))
        meth = "empirical Bayes" if shrink else "plug-in"
        print(f"{kind:<10} {meth:<16} {np.mean(c):>9.3f} {mcse:>7.3f} {np.mean(width[(kind, shrink)]):>14.1f}")
    print(f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
