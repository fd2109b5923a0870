"""Simulation study: bias of the England productivity opportunity total against the demo's known truth.

    .venv/bin/python benchmarks/productivity_noise.py [--replicates 40] [--seed 1]

Each replicate draws a fresh demo data set (``leaguetables.inputs.demo.generate``, 8 quarters), computes the costed
metrics of the last quarter through the real code path (``metrics.compute_metric``) and the opportunity with
``productivity.metric_opportunity`` under each setting (pooled quarters × estimate). The truth (truth.md): the
same method applied to the true values — E*_iq (expected count with u_i = 0) × max(0, θ_i − θ_b) with θ_i the
true O/E (exp(u_i) for rates, expit(η+u)/expit(η) for proportions) and θ_b the upper quartile of the true θ.
Prints, per metric and setting, the mean of (estimated total / true total − 1) over replicates. Not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from leaguetables.config import load_catalogue, load_methodology
from leaguetables.inputs import demo
from leaguetables.inputs.contract import QuarterInputs
from leaguetables.statistics import metrics, productivity

COSTED = ["los_emergency", "daycase_rate", "readmissions_30d", "op_followup_ratio", "sickness_absence"]
SETTINGS = [
    (1, "observed"),
    (4, "observed"),
    (1, "constrained"),
    (4, "shrunken"),
    (4, "constrained"),
    (8, "constrained"),
]


def true_totals(data: dict, metric, quarter: str, table: pd.DataFrame) -> float:
    """True England resource (numerator units) for one metric in one quarter (see the module docstring)."""
    spec = demo.SPEC[metric.id]
    qi = demo.QUARTERS.index(quarter)
    z, _ = demo._standardise(data["demographics"], data["trusts"])
    eff = data["truth/trust_effects"]
    u = eff[eff["metric_id"] == metric.id].set_index("trust_code")["effect"]
    t = table[table["status"] == "ok"].set_index("trust_code")
    total = 0.0
    for ttype in metric.trust_types:
        codes = t.index[t["trust_type"] == ttype]
        lin = np.full(len(codes), spec["alpha"]) + spec["trend"] * (qi - len(demo.QUARTERS) + 1)
        for cov, b in spec["beta"].items():
            lin = lin + b * z.loc[codes, cov].to_numpy(float)
        n = t.loc[codes, "denominator"].to_numpy(float)
        uu = u.reindex(codes).to_numpy(float)
        if spec["kind"] == "binomial":
            f = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        else:
            f = np.exp
        e_star = n * f(lin)
        theta = f(lin + uu) / f(lin)
        bench = productivity.upper_quartile(theta, metric.direction)
        total += float(np.sum(e_star * productivity.gap(theta, bench, metric.direction)))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cat = load_catalogue("demo")
    meth = load_methodology("nof-2025-26")
    quarter = demo.QUARTERS[-1]
    rows = []
    t0 = time.perf_counter()
    for r in range(args.replicates):
        data = demo.generate(args.seed * 100_000 + r)
        inputs = QuarterInputs(data["trusts"], data["observations"], data["demographics"], data["status"], {})
        for mid in COSTED:
            m = cat.metric(mid)
            res = metrics.compute_metric(inputs, m, quarter, meth)
            truth = true_totals(data, m, quarter, res.table)
            for k, est in SETTINGS:
                opp = productivity.metric_opportunity(
                    res.table,
                    m,
                    4,
                    observations=data["observations"],
                    demographics=data["demographics"],
                    pool_quarters=k,
                    estimate=est,
                    quarters=demo.QUARTERS,
                )
                rows.append(
                    {
                        "replicate": r,
                        "metric_id": mid,
                        "setting": f"{k}q {est}",
                        "ratio": opp["resource_quarter"].sum() / truth - 1,
                    }
                )
        print(f"replicate {r + 1}: {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    tab = df.groupby(["metric_id", "setting"])["ratio"].agg(["mean", "std", "count"])
    tab["se"] = tab["std"] / np.sqrt(tab["count"])
    pd.set_option("display.width", 200)
    print(tab.round(3).to_string())
    print(df.groupby("setting")["ratio"].agg(["mean", "min", "max"]).round(3).to_string())


if __name__ == "__main__":
    main()
