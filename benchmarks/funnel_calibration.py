"""Funnel calibration on demo-like data: false-flag and detection rates of the funnel methods, per metric and
data type, through the pipeline's own code path (``metrics.observed_table → indicator → _fit_models →
_funnels``), from a known truth.

    .venv/bin/python benchmarks/funnel_calibration.py [--reps 200] [--seed 20251201] [--out DIR]

Truth (as the demo generator, ``leaguetables.inputs.demo``): the demo's trusts, demographics and sizes; for each
replicate and funnel metric, fresh trust effects ``u_i ~ N(0, sd²)`` (the metric's between-trust SD) and counts
for the four quarters of 2025/26 (binomial, or Poisson with the metric's gamma mixing), quarter 2025-26-Q4 being
the one published. Scenarios: ``null`` (no true outlier) and ``planted`` (about 3% of the trusts of each type —
at least one — at u = ±3 SD, alternating signs; the other trusts as in ``null``).

Methods: ``robust`` (the configured project default), ``robust_1q`` (the same without pooling quarters),
``robust_pool_all`` (the same pooling every funnel, ``pool_when: always``; not run unless asked), ``shmi`` (the
old default: the SHMI / FunnelPlotR compatibility method, SHMI truncation for O/E, winsorisation
for proportions, adjusted limits only when φ > 1). A synthetic ratio-of-counts (RC) case, which the demo
catalogue does not use, is run directly through ``funnel.funnel``.

Writes ``funnel_calibration_by_metric.csv`` and ``funnel_calibration_by_type.csv`` to ``--out`` and prints the
by-type table. False-flag rate: share of trusts that are not planted outside the limits at 95% (the band) and at
99.8%; detection: share of planted trusts outside the 95% limits. Sizes are per trust-metric result.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables import config
from leaguetables.inputs import demo
from leaguetables.inputs.contract import QuarterInputs
from leaguetables.statistics import funnel, metrics

QUARTERS = ["2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4"]
QI = {q: 4 + i for i, q in enumerate(QUARTERS)}  # the demo's quarter index (0 = 2024-25-Q1)
PUBLISHED = QUARTERS[-1]


def _design(seed: int):
    rng = np.random.default_rng(demo.DEFAULT_SEED)
    trusts = demo.make_trusts(rng)
    demographics = demo.make_demographics(rng, trusts)
    z, _ = demo._standardise(demographics, trusts)
    size = np.random.default_rng(seed).lognormal(0, 0.45, len(trusts))
    return trusts, demographics, z, size


def _simulate(rng, metric, spec, trusts, z, size, planted: bool):
    ttype = trusts["trust_type"].to_numpy()
    codes = trusts["trust_code"].to_numpy()
    u = rng.normal(0, spec["sd"], len(trusts))
    is_planted = np.zeros(len(trusts), dtype=bool)
    if planted:
        for t in metric.trust_types:
            idx = np.flatnonzero(ttype == t)
            k = max(1, int(round(0.03 * idx.size)))
            u[idx[:k]] = 3 * spec["sd"] * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
            is_planted[idx[:k]] = True
    lin = spec["alpha"] + u
    for cov, b in spec["beta"].items():
        lin = lin + b * z[cov].to_numpy(float)
    idx = np.flatnonzero(np.isin(ttype, metric.trust_types))
    rows = []
    for q in QUARTERS:
        qi = QI[q]
        season = 1.0 + 0.05 * np.cos(2 * np.pi * (qi % 4) / 4)
        n = np.maximum(np.round(spec["base"] * size[idx] * season * rng.lognormal(0, 0.05, idx.size)), 20)
        eta = lin[idx] + spec["trend"] * (qi - 7)
        if spec["kind"] == "binomial":
            x = rng.binomial(n.astype(np.int64), 1 / (1 + np.exp(-eta)))
        else:
            mu = n * np.exp(eta)
            if "shape" in spec:
                mu = mu * rng.gamma(spec["shape"], 1 / spec["shape"], idx.size)
            x = rng.poisson(mu)
        rows.append(
            pd.DataFrame(
                {
                    "quarter": q,
                    "trust_code": codes[idx],
                    "metric_id": metric.id,
                    "numerator": x.astype(float),
                    "denominator": n,
                    "value": np.nan,
                    "category": None,
                    "suppressed": False,
                }
            )
        )
    obs = pd.concat(rows, ignore_index=True)
    return obs, pd.Series(is_planted, index=codes)


def _run_methods(inputs, metric, methodologies):
    df = metrics.observed_table(inputs, metric, PUBLISHED)
    base = metrics.MetricResult(metric=metric, quarter=PUBLISHED, table=df)
    conf = 0.95
    df = pd.concat([df, metrics.indicator(df, metric, conf)], axis=1)
    df = pd.concat([df, metrics._fit_models(base, df, inputs, conf)], axis=1)
    out = {}
    for name, meth in methodologies.items():
        res = metrics.MetricResult(metric=metric, quarter=PUBLISHED, table=df, models=base.models)
        with np.errstate(divide="ignore", invalid="ignore"):
            fun = metrics._funnels(res, df, meth, inputs)
        out[name] = (df.assign(**{c: fun[c] for c in fun.columns}), res)
    return out


def _rc_case(rng, planted: bool, methods: dict) -> list[dict]:
    n_units, sd = 134, 0.3
    size = rng.lognormal(0, 0.45, n_units)
    u = rng.normal(0, sd, n_units)
    mask = np.zeros(n_units, dtype=bool)
    if planted:
        u[:4] = 3 * sd * np.array([1, -1, 1, -1])
        mask[:4] = True
    o = rng.poisson(5000 * size * 0.5 * np.exp(u))
    d = np.maximum(rng.poisson(5000 * size), 1)
    rows = []
    for name, kwargs in methods.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            res = funnel.funnel(o, d, "RC", **kwargs)
        f95 = res.flags(0.95)["outlier"].to_numpy(dtype=bool)
        f998 = res.flags(0.998)["outlier"].to_numpy(dtype=bool)
        rows.append(
            {
                "method": name,
                "metric_id": "synthetic_rc",
                "trust_type": "acute",
                "data_type": "RC",
                "exact": False,
                "quarters": 1,
                "n_null": int((~mask).sum()),
                "flag95": int(f95[~mask].sum()),
                "flag998": int(f998[~mask].sum()),
                "n_planted": int(mask.sum()),
                "detected": int(f95[mask].sum()),
                "phi_finite": bool(np.isfinite(res.phi)),
            }
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20251201)
    ap.add_argument("--out", type=Path, default=Path("reports") / "funnel_calibration")
    ap.add_argument("--metrics", nargs="*", default=None, help="metric ids (default: every funnel metric)")
    ap.add_argument(
        "--variants",
        nargs="*",
        default=None,
        help="methods to compare: robust, robust_1q, shmi (default) and robust_pool_all (pool every "
        "funnel over 4 quarters)",
    )
    args = ap.parse_args(argv)

    meth = config.load_methodology("nof-2025-26")
    cat = config.load_catalogue("demo")
    f = meth.funnel
    variants = {
        "robust": meth,
        "robust_1q": meth.model_copy(update={"funnel": f.model_copy(update={"pool_quarters": 1})}),
        "shmi": meth.model_copy(
            update={
                "funnel": config.FunnelSettings(method="spiegelhalter", sr_method="SHMI", trim_by=0.1, pool_quarters=1)
            }
        ),
        "robust_pool_all": meth.model_copy(update={"funnel": f.model_copy(update={"pool_when": "always"})}),
    }
    rc_methods = {
        "robust": dict(method="robust", trim_by=f.trim_by),
        "robust_1q": dict(method="robust", trim_by=f.trim_by),
        "shmi": dict(method="spiegelhalter", sr_method="SHMI", trim_by=0.1),
        "robust_pool_all": dict(method="robust", trim_by=f.trim_by),
    }
    chosen_variants = args.variants or ["robust", "robust_1q", "shmi"]
    variants = {k: v for k, v in variants.items() if k in chosen_variants}
    rc_methods = {k: v for k, v in rc_methods.items() if k in chosen_variants}
    trusts, demographics, z, size = _design(args.seed)
    status = pd.DataFrame(columns=["quarter", "trust_code", "deficit", "deficit_support", "improvement_programme"])
    chosen = [m for m in cat.metrics if m.funnel and (args.metrics is None or m.id in args.metrics)]
    rng = np.random.default_rng(args.seed)
    rows = []
    t0 = time.time()
    for rep in range(args.reps):
        for scenario in ("null", "planted"):
            planted = scenario == "planted"
            for metric in chosen:
                spec = demo.SPEC[metric.id]
                obs, truth = _simulate(rng, metric, spec, trusts, z, size, planted)
                inputs = QuarterInputs(
                    trusts=trusts, observations=obs, demographics=demographics, status=status, files={}
                )
                for name, (table, res) in _run_methods(inputs, metric, variants).items():
                    for ttype, fr in res.funnels.items():
                        g = table[(table["trust_type"] == ttype) & table["funnel_band"].notna()]
                        codes = g["trust_code"].to_numpy()
                        flag95 = (g["funnel_band"] != "as expected").to_numpy()
                        flag998 = fr.flags(0.998)["outlier"].reindex(codes).to_numpy(dtype=bool)
                        pl = truth.reindex(codes).to_numpy(dtype=bool)
                        rows.append(
                            {
                                "scenario": scenario,
                                "rep": rep,
                                "method": name,
                                "metric_id": metric.id,
                                "trust_type": ttype,
                                "data_type": fr.data_type,
                                "exact": fr.exact,
                                "quarters": fr.periods,
                                "n_null": int((~pl).sum()),
                                "flag95": int(flag95[~pl].sum()),
                                "flag998": int(flag998[~pl].sum()),
                                "n_planted": int(pl.sum()),
                                "detected": int(flag95[pl].sum()),
                                "phi_finite": bool(np.isfinite(fr.phi)),
                            }
                        )
            for r in _rc_case(rng, planted, rc_methods):
                rows.append({"scenario": scenario, "rep": rep, **r})
        if rep % 20 == 19:
            print(f"  {rep + 1} replicates, {time.time() - t0:.0f} s", file=sys.stderr)
    raw = pd.DataFrame(rows)
    keys = ["method", "metric_id", "trust_type", "data_type"]
    null = (
        raw[raw["scenario"] == "null"]
        .groupby(keys, sort=True)
        .agg(
            n=("n_null", "sum"),
            flag95=("flag95", "sum"),
            flag998=("flag998", "sum"),
            exact=("exact", "mean"),
            quarters=("quarters", "mean"),
            phi_finite=("phi_finite", "mean"),
        )
    )
    pl = (
        raw[raw["scenario"] == "planted"]
        .groupby(keys, sort=True)
        .agg(
            n_planted=("n_planted", "sum"),
            detected=("detected", "sum"),
            n_other=("n_null", "sum"),
            flag95_other=("flag95", "sum"),
        )
    )
    by_metric = null.join(pl)
    by_metric["false_flag_95"] = by_metric["flag95"] / by_metric["n"]
    by_metric["false_flag_998"] = by_metric["flag998"] / by_metric["n"]
    by_metric["detection_95"] = by_metric["detected"] / by_metric["n_planted"]
    by_metric["false_flag_95_with_planted"] = by_metric["flag95_other"] / by_metric["n_other"]
    by_type = by_metric.groupby(["method", "data_type"]).sum(numeric_only=True)
    by_type["false_flag_95"] = by_type["flag95"] / by_type["n"]
    by_type["false_flag_998"] = by_type["flag998"] / by_type["n"]
    by_type["detection_95"] = by_type["detected"] / by_type["n_planted"]
    by_type["false_flag_95_with_planted"] = by_type["flag95_other"] / by_type["n_other"]
    args.out.mkdir(parents=True, exist_ok=True)
    cols = ["false_flag_95", "false_flag_998", "detection_95", "false_flag_95_with_planted"]
    by_metric.reset_index().round(5).to_csv(args.out / "funnel_calibration_by_metric.csv", index=False)
    by_type[["n", *cols]].reset_index().round(5).to_csv(args.out / "funnel_calibration_by_type.csv", index=False)
    pd.set_option("display.width", 200)
    print(f"{args.reps} replicates in {time.time() - t0:.0f} s")
    print(by_type[["n", *cols]].round(4).to_string())
    print(by_metric[["exact", "quarters", *cols]].round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
