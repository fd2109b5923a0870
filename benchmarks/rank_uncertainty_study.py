"""Simulation study of the league's uncertainty figures on demo-like data (``leaguetables.statistics.sampling``).

    .venv/bin/python benchmarks/rank_uncertainty_study.py [--datasets 100] [--replicates 500] [--out FILE.csv]

The truth is the demo generator's (``truth.md``): the demo data (``data/demo``, seed 20240401) are generated once
with their saved trust effects; then, for every simulated data set, the numerators of the binomial and Poisson
metrics of two quarters (2025-26-Q3 and Q4) are redrawn from the true rates ``expit(α + Σβz + u_i + γt)`` (or
``exp``) with the quarter's denominators. Metrics reported as a bare value, mean scores and ratings are held at
their reported values (Q4's in both quarters, so nothing changes there under "no change"), as are the deficit flags.
True scores, averages, segments and ranks are the method applied to the true rates (``truth.md``).

Scenarios: "no change" (Q3 and Q4 share every trust effect) and "2-SD change" (in every data set 20 acute and
10 mental health trusts, chosen at random, move by ±2 × the metric's between-trust SD on every simulated
metric in Q4, half better and half worse).

Measured, on the raw league of Q4, pooled over trusts and data sets:

* coverage of the true rank by the 95% rank interval: empirical Bayes (the default), plug-in parametric bootstrap,
  and NHS England's likely range of rank (``scoring.joint_bootstrap``);
* Brier score of P(segment) against the true segment (mean over trusts of Σ_k (p_k − 1[true = k])²) and the
  reliability slope (least-squares slope of the indicator 1[true = k] on p_k, pooled over k): the same three
  methods, and an *oracle* that knows each metric's true distribution of trust effects (normal, the true SD,
  centred on the true α + Σβz + γt) and draws the true rates from the exact posterior on a grid;
* the change test (``sampling.change_test``): share of trusts flagged under "no change" (size) and share of the
  changed trusts flagged under "2-SD change" (power); beside it NHS England-style "beyond last quarter's likely
  range of rank"; and the number of segment changes against the number expected by chance.

Measured with ``--datasets 100 --replicates 500 --seed 1`` (all 205 trusts pooled; by type in brackets):

=========================  ===================================  ===========================  ===========
method                     coverage of the true rank (95%)      Brier of P(segment)          reliability
                                                                                             slope
=========================  ===================================  ===========================  ===========
empirical Bayes (default)  0.969 (acute 0.975, MH 0.952)        0.110 (1.04 × the oracle)    1.00
plug-in bootstrap          0.943 (acute 0.938, MH 0.945)        0.121 (1.14 ×)               0.99
oracle                     0.968 (acute 0.973, MH 0.951)        0.106                        1.00
NHS England likely range   1.000 (width 47.5 ranks vs 13.3)     0.246 (2.3 ×)                1.17
=========================  ===================================  ===========================  ===========

Ambulance (10 trusts, ranks driven by figures taken as exact): coverage 1.000 for every method. Change test: size
0.051 under no change, power 0.955 at a 2-SD change; NHS England-style "beyond last quarter's likely range" size
0.000. Under no change 25.4 segment changes were observed on average against 23.9 expected by the joint simulation.
Coverage above 95% for the empirical-Bayes and oracle intervals comes from whole-number ranks with ties (competition
ranking on 2-dp averages): the interval rule is the same for all methods and the oracle over-covers equally.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from leaguetables.config import load_catalogue, load_methodology
from leaguetables.inputs import demo
from leaguetables.inputs.contract import load_inputs
from leaguetables.nof import league, scoring
from leaguetables.statistics import sampling

ROOT = Path(__file__).resolve().parents[1]
Q_PREV, Q_NOW = "2025-26-Q3", "2025-26-Q4"


def truth_frame(data_dir: Path) -> pd.DataFrame:
    """True linear predictor (without u) and u per (quarter, trust, metric) for the simulated metrics."""
    trusts = pd.read_csv(data_dir / "trusts.csv")
    demog = pd.read_csv(data_dir / "demographics.csv")
    z, _ = demo._standardise(demog, trusts)
    eff = pd.read_csv(data_dir / "truth" / "trust_effects.csv").set_index(["metric_id", "trust_code"])["effect"]
    rows = []
    for mid, spec in demo.SPEC.items():
        if spec["kind"] not in ("binomial", "poisson"):
            continue
        for qi, q in enumerate(demo.QUARTERS):
            if q not in (Q_PREV, Q_NOW):
                continue
            lin = spec["alpha"] + spec["trend"] * (qi - 7)
            for code in trusts["trust_code"]:
                if (mid, code) not in eff.index:
                    continue
                b = sum(beta * float(z.loc[code, c]) for c, beta in spec["beta"].items())
                rows.append((q, code, mid, spec["kind"], lin + b, float(eff[(mid, code)]), spec["sd"]))
    return pd.DataFrame(rows, columns=["quarter", "trust_code", "metric_id", "kind", "eta0", "u", "sd"])


def true_rate(eta, kind):
    return 1 / (1 + np.exp(-eta)) if kind == "binomial" else np.exp(eta)


def league_rules(qd, combine_rules) -> scoring.LeagueRules:
    """The rules of ``qd``'s league, as NHS England's joint bootstrap re-applies them."""
    return scoring.LeagueRules(
        qd.segmentation_rule,
        qd.thresholds,
        pool_types=qd.pool_types,
        combine_rules=combine_rules,
        from_segments=qd.override_from,
        to_segment=qd.override_to,
    )


def oracle_values(qd, tf: pd.DataFrame, rng, b: int) -> dict[str, np.ndarray]:
    """Draws of the true values from the exact posterior given the true per-metric prior N(0, sd²) for u."""
    out = {}
    grid = np.linspace(-5, 5, 401)
    tq = tf[tf["quarter"] == qd.quarter].set_index(["metric_id", "trust_code"])
    for md in qd.metrics:
        f = md.frame
        base = np.broadcast_to(f["value"].to_numpy(float), (b, len(f))).copy()
        sim = md.simulated
        if sim.any():
            keys = list(zip([md.metric.id] * int(sim.sum()), f.loc[sim, "trust_code"]))
            t = tq.loc[keys]
            sd, eta0 = t["sd"].to_numpy(), t["eta0"].to_numpy()
            x = f.loc[sim, "numerator"].to_numpy(float)[:, None]
            n = f.loc[sim, "denominator"].to_numpy(float)[:, None]
            u = grid[None, :] * sd[:, None]
            p = true_rate(eta0[:, None] + u, md.kind)
            if md.kind == "binomial":
                ll = x * np.log(p) + (n - x) * np.log1p(-p)
            else:
                ll = x * np.log(n * p) - n * p
            lw = ll - 0.5 * grid[None, :] ** 2
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            cdf = np.cumsum(w, axis=1)
            cdf /= cdf[:, -1:]
            draws = np.empty((b, len(x)))
            uu = rng.random((b, len(x)))
            for j in range(len(x)):
                k = np.searchsorted(cdf[j], uu[:, j])
                draws[:, j] = p[j, np.minimum(k, p.shape[1] - 1)]
            base[:, sim] = draws * md.metric.multiplier
        out[md.metric.id] = base
    return out


def brier(p: np.ndarray, true_seg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    y = np.stack([(true_seg == k).astype(float) for k in range(1, 5)], axis=1)
    return float(((p - y) ** 2).sum(axis=1).mean()), p.ravel(), y.ravel()


def slope(p: np.ndarray, y: np.ndarray) -> float:
    c = np.cov(p, y)
    return float(c[0, 1] / c[0, 0])


def make_inputs(base, obs: pd.DataFrame):
    return SimpleNamespace(trusts=base.trusts, observations=obs, status=base.status, demographics=base.demographics)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    data_dir = ROOT / "data" / "demo"
    if not (data_dir / "truth" / "trust_effects.csv").exists():
        demo.write(data_dir)
    cat = load_catalogue("demo")
    meth = load_methodology("nof-2025-26")
    base = load_inputs(data_dir, cat)
    rules = league.combine_rules(cat)
    tf = truth_frame(data_dir)
    rng = np.random.default_rng(args.seed)
    b = args.replicates

    # the league of the aggregate metrics and providers the truth frame knows (the study predates the record-level
    # metrics and the ICBs, whose truths the demo keeps elsewhere)
    studied = set(tf["metric_id"]) | {m for m, spec in demo.SPEC.items() if spec["kind"] not in ("binomial", "poisson")}
    obs0 = base.observations[
        base.observations["quarter"].isin([Q_PREV, Q_NOW]) & base.observations["metric_id"].isin(studied)
    ].copy()
    # hold values, means and ratings at Q4's reported figures in both quarters, and Q4's deficit flags
    now_fixed = obs0[obs0["quarter"] == Q_NOW].set_index(["trust_code", "metric_id"])
    prev_rows = obs0["quarter"] == Q_PREV
    key = list(zip(obs0.loc[prev_rows, "trust_code"], obs0.loc[prev_rows, "metric_id"]))
    for col in ("value", "category"):
        obs0.loc[prev_rows, col] = now_fixed[col].reindex(key).to_numpy()
    status = base.status.copy()
    st_now = status[status["quarter"] == Q_NOW].set_index("trust_code")
    sp = status["quarter"] == Q_PREV
    for c in ("deficit", "deficit_support", "improvement_programme"):
        status.loc[sp, c] = status.loc[sp, "trust_code"].map(st_now[c]).to_numpy()
    base = SimpleNamespace(trusts=base.trusts, status=status, demographics=base.demographics)

    sim_mask = obs0["metric_id"].isin(set(tf["metric_id"])) & obs0["numerator"].notna()
    tfi = tf.set_index(["quarter", "trust_code", "metric_id"])
    k_sim = list(zip(obs0.loc[sim_mask, "quarter"], obs0.loc[sim_mask, "trust_code"], obs0.loc[sim_mask, "metric_id"]))
    t_sim = tfi.loc[k_sim]
    n_sim = obs0.loc[sim_mask, "denominator"].to_numpy(float)
    kinds = t_sim["kind"].to_numpy()
    k_index = pd.MultiIndex.from_tuples(k_sim)
    acute = base.trusts.loc[base.trusts["trust_type"] == "acute", "trust_code"].to_numpy()
    mh = base.trusts.loc[base.trusts["trust_type"] == "mental_health_community", "trust_code"].to_numpy()

    rec: list[dict] = []
    seg_rows: list[dict] = []
    t0 = time.time()
    for d in range(args.datasets):
        for scenario in ("no change", "2-SD change"):
            u = t_sim["u"].to_numpy().copy()
            changed = set()
            if scenario == "2-SD change":
                movers = list(rng.choice(acute, 20, replace=False)) + list(rng.choice(mh, 10, replace=False))
                direction = {c: (1 if i % 2 else -1) for i, c in enumerate(movers)}
                changed = set(movers)
                q_now = t_sim.index.get_level_values(0) == Q_NOW
                codes = t_sim.index.get_level_values(1)
                mids = t_sim.index.get_level_values(2)
                for i in np.flatnonzero(q_now & np.isin(codes, movers)):
                    # "better": higher for higher-better metrics, lower for lower-better ones
                    better = 1 if cat.metric(mids[i]).direction == "higher_better" else -1
                    u[i] += 2 * direction[codes[i]] * better * t_sim["sd"].iloc[i]
            eta = t_sim["eta0"].to_numpy() + u
            p = np.where(kinds == "binomial", 1 / (1 + np.exp(-np.clip(eta, -30, 30))), np.exp(eta))
            x = np.where(
                kinds == "binomial",
                rng.binomial(n_sim.astype(np.int64), np.clip(p, 0, 1)),
                rng.poisson(n_sim * np.where(kinds == "binomial", 0, p)),
            )
            obs = obs0.copy()
            obs.loc[sim_mask, "numerator"] = x.astype(float)
            inputs = make_inputs(base, obs)
            qds = {
                q: sampling.quarter_data(inputs, cat, q, segmentation_rule=meth.segmentation.rule, combine_rules=rules)
                for q in (Q_PREV, Q_NOW)
            }
            # the truth: the method applied to the true rates
            truth = {}
            for q, qd in qds.items():
                tv = {}
                for md in qd.metrics:
                    v = md.frame["value"].to_numpy(float).copy()
                    sim = md.simulated
                    if sim.any():
                        kk = list(
                            zip([q] * int(sim.sum()), md.frame.loc[sim, "trust_code"], [md.metric.id] * int(sim.sum()))
                        )
                        pos = k_index.get_indexer(kk)
                        v[sim] = p[pos] * md.metric.multiplier
                    tv[md.metric.id] = v
                a, s, r = sampling._reference_league(qd, tv)
                truth[q] = pd.DataFrame({"trust_code": qd.codes, "segment": s, "rank": r}).set_index("trust_code")
            qd = qds[Q_NOW]
            tr = truth[Q_NOW].reindex(qd.codes)
            if scenario == "no change":
                res = {}
                for name, vals in (
                    ("empirical Bayes", sampling.draw_values(qd, int(rng.integers(2**32)), b, True)),
                    ("plug-in bootstrap", sampling.draw_values(qd, int(rng.integers(2**32)), b, False)),
                    ("oracle", oracle_values(qd, tf, rng, b)),
                ):
                    reps = sampling.league_replicates(qd, vals)
                    res[name] = sampling.summarise(reps, 0.95).set_index("trust_code").reindex(qd.codes)
                sc = sampling._reference_scores(
                    qd.metrics, {md.metric.id: md.frame["value"].to_numpy(float) for md in qd.metrics}
                ).dropna(subset=["score"])
                tt = pd.Series(qd.trusts["trust_type"].to_numpy(), index=qd.codes)
                fl = pd.Series(qd.in_deficit, index=qd.codes)
                nof = (
                    scoring.joint_bootstrap(
                        sc,
                        tt,
                        fl,
                        pd.Series(False, index=qd.codes),
                        league_rules(qd, rules),
                        replicates=b,
                        seed=int(rng.integers(1 << 31)),
                    )
                    .set_index("trust_code")
                    .reindex(qd.codes)
                )
                nof = nof.rename(columns={"rank_lower": "rank_interval_lower", "rank_upper": "rank_interval_upper"})
                res["NHS England likely range"] = nof
                for name, s in res.items():
                    cover = (s["rank_interval_lower"] <= tr["rank"]) & (tr["rank"] <= s["rank_interval_upper"])
                    pk = s[[f"p_segment_{k}" for k in range(1, 5)]].to_numpy(float)
                    br, pp, yy = brier(pk, tr["segment"].to_numpy())
                    types = qd.trusts["trust_type"].to_numpy()
                    sq = ((pk - np.stack([(tr["segment"].to_numpy() == k) for k in range(1, 5)], axis=1)) ** 2).sum(1)
                    rec.append(
                        {
                            "dataset": d,
                            "method": name,
                            "coverage": float(cover.mean()),
                            "brier": br,
                            "width": float((s["rank_interval_upper"] - s["rank_interval_lower"]).mean()),
                            **{f"coverage {t}": float(cover.to_numpy()[types == t].mean()) for t in set(types)},
                            **{f"brier {t}": float(sq[types == t].mean()) for t in set(types)},
                        }
                    )
                    seg_rows.append({"method": name, "p": pp, "y": yy})
                # NHS England-style movement on the no-change data: previous quarter's likely range
                prev_sc = sampling._reference_scores(
                    qds[Q_PREV].metrics, {md.metric.id: md.frame["value"].to_numpy(float) for md in qds[Q_PREV].metrics}
                ).dropna(subset=["score"])
                qp = qds[Q_PREV]
                nofp = scoring.joint_bootstrap(
                    prev_sc,
                    pd.Series(qp.trusts["trust_type"].to_numpy(), index=qp.codes),
                    pd.Series(qp.in_deficit, index=qp.codes),
                    pd.Series(False, index=qp.codes),
                    league_rules(qp, rules),
                    replicates=b,
                    seed=int(rng.integers(1 << 31)),
                ).set_index("trust_code")
                obs_now = sampling.observed_league(qd).set_index("trust_code")
                common = obs_now.index.intersection(nofp.index)
                beyond = (obs_now.loc[common, "rank"] < nofp.loc[common, "rank_lower"]) | (
                    obs_now.loc[common, "rank"] > nofp.loc[common, "rank_upper"]
                )
                rec.append({"dataset": d, "method": "NHS England-style movement", "size": float(beyond.mean())})
            ch = sampling.change_test(qds[Q_PREV], qd, b, int(rng.integers(1 << 31))).set_index("trust_code")
            flagged = ch["change_beyond_chance"]
            if scenario == "no change":
                rec.append(
                    {
                        "dataset": d,
                        "method": "change test",
                        "size": float(flagged.mean()),
                        "segment_changes": int((ch["segment_change"] != 0).sum()),
                        "expected_segment_changes": float(ch["p_segment_change_by_chance"].sum()),
                    }
                )
            else:
                mv = [c for c in changed if c in flagged.index]
                rest = flagged.drop(mv)
                rec.append(
                    {
                        "dataset": d,
                        "method": "change test",
                        "power": float(flagged.loc[mv].mean()),
                        "size_unchanged_trusts": float(rest.mean()),
                    }
                )
        if (d + 1) % 10 == 0:
            print(f"{d + 1} data sets, {time.time() - t0:.0f} s", file=sys.stderr)

    df = pd.DataFrame(rec)
    print(f"{args.datasets} data sets × {b} replicates; raw league of {Q_NOW}; all trust types pooled")
    for name in ("empirical Bayes", "plug-in bootstrap", "oracle", "NHS England likely range"):
        g = df[df["method"] == name]
        ps = [r for r in seg_rows if r["method"] == name]
        pp = np.concatenate([r["p"] for r in ps])
        yy = np.concatenate([r["y"] for r in ps])
        print(
            f"{name:26s} rank coverage {g['coverage'].mean():.3f}  mean width {g['width'].mean():5.1f}  "
            f"Brier {g['brier'].mean():.3f}  reliability slope {slope(pp, yy):.2f}"
        )
        print(
            " " * 27
            + "by type: "
            + "; ".join(
                f"{t} coverage {g[f'coverage {t}'].mean():.3f}, Brier {g[f'brier {t}'].mean():.3f}"
                for t in ("acute", "mental_health_community", "ambulance")
                if f"coverage {t}" in g
            )
        )
    ch = df[df["method"] == "change test"]
    print(
        f"change test: size {ch['size'].mean():.3f} (no change); power {ch['power'].mean():.3f} at a 2-SD change "
        f"(flag rate of the trusts that did not change themselves, whose true rank still moves with the others: "
        f"{ch['size_unchanged_trusts'].mean():.3f})"
    )
    print(
        f"segment changes under no change: {ch['segment_changes'].mean():.1f} observed on average, "
        f"{ch['expected_segment_changes'].mean():.1f} expected by the test's joint simulation"
    )
    nm = df[df["method"] == "NHS England-style movement"]
    print(f"NHS England-style 'beyond last quarter's likely range': size {nm['size'].mean():.3f}")
    if args.out:
        df.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
