"""Time the joint bootstrap of the NOF likely ranges: 10,000 replicates × 205 trusts (target ≤ 3 s on 2 cores).

    .venv/bin/python benchmarks/bench_bootstrap.py [--replicates 10000] [--repeat 3]

Synthetic scores shaped like 2025/26: 134 acute trusts with 22 metrics (three infection metrics at one third
each, two finance metrics combined into one), 61 mental health and community trusts with 12 and 10 ambulance
trusts with 10; about 8% of metric scores missing. Prints the best and median wall time of ``--repeat`` runs.
Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from leaguetables.nof import scoring

TYPES = (("acute", 134, 22), ("mental_health_community", 61, 12), ("ambulance", 10, 10))


def synthetic_scores(seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, reg = [], []
    for ttype, n, k in TYPES:
        for i in range(n):
            code = f"{ttype[:2].upper()}{i:03d}"
            reg.append({"trust_code": code, "trust_type": ttype, "deficit": bool(rng.random() < 0.2)})
            for j in range(k):
                if j >= 4 and rng.random() < 0.08:
                    continue  # missing metric
                metric = f"M{j:02d}"
                weight, group, score = 1.0, None, round(float(rng.uniform(1, 4)), 2)
                if ttype == "acute" and j < 3:
                    weight = 1 / 3  # infection metrics
                if j in (k - 2, k - 1):
                    group, score = "finance", float(rng.integers(1, 5))
                    metric = ("OF1079", "OF1081")[j - (k - 2)]
                rows.append(
                    {
                        "trust_code": code,
                        "metric_id": metric,
                        "score": score,
                        "weight": weight,
                        "combine_group": group,
                        "domain": "finance" if group else f"D{j % 4}",
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(reg).set_index("trust_code")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scores, reg = synthetic_scores()
    no = pd.Series(False, index=reg.index)
    times = []
    for r in range(args.repeat):
        t0 = time.perf_counter()
        out = scoring.joint_bootstrap(
            scores,
            reg["trust_type"],
            reg["deficit"],
            no,
            scoring.LeagueRules("quartiles_within_type"),
            replicates=args.replicates,
            seed=20260331 + r,
        )
        times.append(time.perf_counter() - t0)
    print(
        f"joint_bootstrap: {args.replicates:,} replicates × {len(out)} trusts "
        f"({len(scores):,} metric scores): best {min(times):.2f} s, median {statistics.median(times):.2f} s "
        f"over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
