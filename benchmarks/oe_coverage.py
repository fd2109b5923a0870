"""Coverage of the O/E intervals against the demo generator's known truth (issue 10; statistical-methods.md §6.2).

``python benchmarks/oe_coverage.py [--seeds 200] [--first 1]`` draws demo data sets with
:func:`leaguetables.inputs.demo.generate` (one per seed), runs the metric code path that produces the O/E columns
(:func:`leaguetables.statistics.metrics.observed_table`, :func:`~leaguetables.statistics.metrics.indicator`,
``metrics._fit_models`` with the methodology's ``expected:`` settings) for the last demo quarter, and counts how
often each 95% interval covers the **true O/E** of the truth agreed for issue 10: ``m/E*`` with
``m = n·expit(α + Σβz + u)`` (or ``n·exp(...)``) and ``E*`` the same with ``u = 0`` (the gamma mixing of
``los_emergency`` is sampling noise). Settings compared:

* ``re_delta``: the project default (``model: random_effects``, ``interval: delta``, ``within_variance:
  sampling_plus_history``, ``count_interval: mid_p``, τ² by REML for E and adjusted REML for shrinkage) —
  columns ``oe_lower/oe_upper`` and the shrunken ``oe_shrunk_lower/upper``;
* ``fixed_delta``: the GLM's E with the delta interval (and the history variance);
* ``fixed_o_only``: the conventional O-only interval (compatibility).

Prints one row per metric × trust type and writes ``--out`` (CSV). A few minutes for 200 seeds on one core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import ExpectedSettings, load_catalogue
from leaguetables.inputs import demo
from leaguetables.inputs.contract import QuarterInputs
from leaguetables.statistics import metrics

METRICS = ["ae_4hr", "ae_12hr", "ecoli", "cdiff", "los_emergency", "readmissions_30d", "sickness_absence"]
QUARTER = demo.QUARTERS[-1]
SETTINGS = {
    "re_delta": ExpectedSettings(model="random_effects", interval="delta", within_variance="sampling_plus_history"),
    "fixed_delta": ExpectedSettings(model="fixed", interval="delta", within_variance="sampling_plus_history"),
    "fixed_o_only": ExpectedSettings(model="fixed", interval="o_only", within_variance="sampling"),
}


def true_oe(data: dict[str, pd.DataFrame], metric_id: str, table: pd.DataFrame) -> pd.Series:
    """True O/E = m/E* of each row of ``table`` (trust_code, trust_type, denominator) in the last quarter."""
    spec = demo.SPEC[metric_id]
    dem = data["demographics"].set_index("trust_code")
    trusts = data["trusts"]
    u = data["truth/trust_effects"].query("metric_id == @metric_id").set_index("trust_code")["effect"]
    out = pd.Series(np.nan, index=table.index)
    for ttype, rows in table.groupby("trust_type").groups.items():
        codes_all = trusts.loc[trusts["trust_type"] == ttype, "trust_code"]
        codes = table.loc[rows, "trust_code"]
        eta0 = np.full(len(codes), spec["alpha"]) + spec["trend"] * (len(demo.QUARTERS) - 1 - 7)
        for cov, b in spec["beta"].items():
            v = dem.loc[codes_all, cov].astype(float)  # standardised over all trusts of the type, as generated
            eta0 = eta0 + b * ((dem.loc[codes, cov].to_numpy(float) - v.mean()) / v.std(ddof=1))
        ui = u.reindex(codes).to_numpy(float)
        if spec["kind"] == "binomial":
            ratio = (1 + np.exp(-eta0)) / (1 + np.exp(-(eta0 + ui)))
        else:
            ratio = np.exp(ui)
        out.loc[rows] = ratio
    return out


def run(seeds: list[int], confidence: float = 0.95, metric_ids: list[str] | None = None) -> pd.DataFrame:
    catalogue = load_catalogue("demo")
    by_id = {m.id: m for m in catalogue.metrics}
    rows = []
    for seed in seeds:
        data = demo.generate(seed)
        inputs = QuarterInputs(
            trusts=data["trusts"],
            observations=data["observations"],
            demographics=data["demographics"],
            status=data["status"],
            files={},
        )
        for mid in metric_ids or METRICS:
            metric = by_id[mid]
            df = metrics.observed_table(inputs, metric, QUARTER)
            df = pd.concat([df, metrics.indicator(df, metric, confidence)], axis=1)
            truth = None
            for name, settings in SETTINGS.items():
                result = metrics.MetricResult(metric=metric, quarter=QUARTER, table=df)
                ex = metrics._fit_models(result, df, inputs, confidence, settings)
                t = pd.concat([df[["trust_code", "trust_type"]], ex], axis=1).dropna(subset=["oe"])
                if truth is None:
                    truth = true_oe(data, mid, t)
                tv = truth.reindex(t.index)
                for ttype, g in t.groupby("trust_type"):
                    tt = tv.loc[g.index]
                    rec = {
                        "seed": seed,
                        "metric_id": mid,
                        "trust_type": ttype,
                        "setting": name,
                        "interval": "oe",
                        "n": len(g),
                        "covered": int(((g["oe_lower"] <= tt) & (tt <= g["oe_upper"])).sum()),
                        "log_width": float(np.mean(np.log(g["oe_upper"] / g["oe_lower"].clip(lower=1e-12)))),
                        "tau2": result.models[ttype].fit_info.get("tau2", np.nan),
                    }
                    rows.append(rec)
                    if name == "re_delta":
                        rows.append(
                            {
                                **rec,
                                "interval": "oe_shrunk",
                                "covered": int(((g["oe_shrunk_lower"] <= tt) & (tt <= g["oe_shrunk_upper"])).sum()),
                                "log_width": float(np.mean(np.log(g["oe_shrunk_upper"] / g["oe_shrunk_lower"]))),
                            }
                        )
    return pd.DataFrame(rows)


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    g = raw.groupby(["metric_id", "trust_type", "setting", "interval"])
    out = g[["covered", "n"]].sum()
    out["coverage"] = out["covered"] / out["n"]
    # replicate-level SE (trusts within a data set share the error of E, so they are not independent)
    rep = raw.assign(c=raw["covered"] / raw["n"]).groupby(["metric_id", "trust_type", "setting", "interval"])["c"]
    out["mc_se"] = rep.std(ddof=1) / np.sqrt(rep.count())
    out["log_width"] = g["log_width"].mean()
    out["replicates"] = rep.count()
    return out.drop(columns="covered").reset_index()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("oe_coverage.csv"))
    ap.add_argument("--metrics", nargs="*", default=None, help=f"metric ids (default: {' '.join(METRICS)})")
    args = ap.parse_args(argv)
    t0 = time.time()
    raw = run(list(range(args.first, args.first + args.seeds)), metric_ids=args.metrics)
    summary = summarise(raw)
    summary.to_csv(args.out, index=False, float_format="%.4f")
    wide = summary.pivot_table(index=["metric_id", "trust_type"], columns=["setting", "interval"], values="coverage")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide.round(3))
    print(f"{args.seeds} seeds in {time.time() - t0:.0f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
