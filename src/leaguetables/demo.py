"""Synthetic demo data: ``python -m leaguetables.demo [--out data/demo] [--seed N]``.

Generates the four contract files for 205 obviously fictional trusts (134 acute, 61 mental health and community,
10 ambulance) over eight quarters (2024-25-Q1 … 2025-26-Q4), for every metric of the ``demo`` catalogue.

Trust codes are ``DEMO-A001`` (acute), ``DEMO-M001`` (mental health and community) and ``DEMO-B001`` (ambulance):
real ODS codes never contain a hyphen, so they cannot collide. Names are invented place names followed by
"Demo … Trust" and carry no "NHS".

Counts are drawn from a known model so that tests can check the modelling recovers it:

* proportions: ``x ~ Binomial(n, expit(α + Σ β_k z_k + u_i + γ t))``;
* rates: ``x ~ Poisson(n · exp(α + Σ β_k z_k + u_i + γ t))`` (a gamma-Poisson mixture where the catalogue's model
  allows overdispersion);
* ``z_k`` are the demographic covariates standardised within trust type (mean and standard deviation with
  ``ddof=1`` over all trusts of the type); ``u_i`` is a trust effect, partly shared across metrics through a latent
  trust quality so that the composite score means something.

The true coefficients (``truth/coefficients.csv``), trust effects (``truth/trust_effects.csv``) and the
standardisation used (``truth/standardisation.csv``) are saved beside the data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .config import PROJECT_ROOT, load_catalogue

DEFAULT_SEED = 20240401
DEFAULT_OUT = PROJECT_ROOT / "data" / "demo"
QUARTERS = [f"2024-25-Q{q}" for q in range(1, 5)] + [f"2025-26-Q{q}" for q in range(1, 5)]
COUNTS = {"acute": 134, "mental_health_community": 61, "ambulance": 10}
PREFIX = {"acute": "A", "mental_health_community": "M", "ambulance": "B"}
REGIONS = ["London", "South East", "South West", "Midlands", "East of England", "North West",
           "North East and Yorkshire"]
COVARS = ["share_65plus", "share_85plus", "imd_score", "rural_share", "ethnic_minority_share"]

_FIRST = ["Ash", "Bram", "Cor", "Dun", "Elm", "Fern", "Glen", "Hol", "Ivy", "Kes", "Lark", "Mar", "Nor", "Oak",
          "Pen", "Quil", "Rav", "Sal", "Thorn", "Umber", "Vel", "Wil", "Yar", "Zen", "Alder", "Birch", "Cran", "Dray"]
_SECOND = ["ford", "mouth", "wick", "bury", "dale", "combe", "stead", "haven", "worth", "moor", "field", "brook",
           "ley", "gate", "holm", "thorpe"]


def _place_names(rng: np.random.Generator, n: int) -> list[str]:
    names = sorted({a + b for a in _FIRST for b in _SECOND})
    picked = rng.choice(len(names), size=n, replace=False)
    return [names[i] for i in picked]


def make_trusts(rng: np.random.Generator) -> pd.DataFrame:
    total = sum(COUNTS.values())
    places = _place_names(rng, total * 2)
    rows, k = [], 0
    subtypes = {
        "acute": ["Large"] * 40 + ["Medium"] * 45 + ["Small"] * 20 + ["Teaching"] * 20 + ["Specialist"] * 9,
        "mental_health_community": ["Mental Health and Learning Disability"] * 45 + ["Community"] * 16,
        "ambulance": ["Ambulance"] * 10,
    }
    kind_word = {"acute": "Hospitals", "mental_health_community": "Care Partnership", "ambulance": "Ambulance Service"}
    for ttype, n in COUNTS.items():
        subs = list(rng.permutation(subtypes[ttype]))
        for i in range(n):
            a, b = places[k], places[k + 1]
            k += 2
            name = f"{a} Demo {kind_word[ttype]} Trust" if i % 3 else f"{a} and {b} Demo {kind_word[ttype]} Trust"
            if ttype == "mental_health_community" and subs[i] == "Community":
                name = f"{a} Demo Community Health Trust"
            rows.append({
                "trust_code": f"DEMO-{PREFIX[ttype]}{i + 1:03d}",
                "trust_name": name,
                "trust_type": ttype,
                "trust_subtype": subs[i],
                "region": REGIONS[int(rng.integers(len(REGIONS)))] if ttype != "ambulance" else REGIONS[i % 7],
            })
    return pd.DataFrame(rows)


def make_demographics(rng: np.random.Generator, trusts: pd.DataFrame) -> pd.DataFrame:
    n = len(trusts)
    base_pop = trusts["trust_type"].map({"acute": 450_000, "mental_health_community": 1_100_000,
                                         "ambulance": 5_600_000}).to_numpy(float)
    population = np.round(base_pop * rng.lognormal(0, 0.35, n), -2)
    london = (trusts["region"] == "London").to_numpy()
    rural = np.clip(rng.beta(1.2, 4.0, n) * np.where(london, 0.1, 1.0), 0, 0.95)
    share_65 = np.clip(0.185 + 0.09 * (rural - 0.23) - 0.05 * london + rng.normal(0, 0.03, n), 0.07, 0.35)
    share_85 = np.clip(share_65 * 0.13 + rng.normal(0, 0.003, n), 0.005, 0.06)
    imd = np.clip(rng.gamma(7.0, 3.1, n) - 6 * rural + 4 * london, 5, 55)
    eth = np.clip(rng.beta(1.5, 9, n) + 0.35 * london - 0.08 * rural, 0.01, 0.75)
    return pd.DataFrame({
        "trust_code": trusts["trust_code"],
        "population": population,
        "share_65plus": np.round(share_65, 4),
        "share_85plus": np.round(share_85, 4),
        "imd_score": np.round(imd, 2),
        "rural_share": np.round(rural, 4),
        "ethnic_minority_share": np.round(eth, 4),
    })


# Per metric: family, intercept, base denominator for an average trust, covariate effects (per SD), trust-effect
# SD, trend per quarter, weight on the shared latent quality, and (rates) gamma-mixing shape for overdispersion.
SPEC: dict[str, dict] = {
    "rtt_18wk": dict(kind="binomial", alpha=0.35, base=45_000, beta={}, sd=0.30, trend=0.01, q=0.6),
    "rtt_52wk": dict(kind="binomial", alpha=-3.9, base=45_000, beta={}, sd=0.55, trend=-0.04, q=-0.5),
    "cancer_fds": dict(kind="binomial", alpha=1.25, base=3_800, beta={}, sd=0.25, trend=0.02, q=0.5),
    "cancer_62d": dict(kind="binomial", alpha=0.85, base=260, beta={}, sd=0.22, trend=0.01, q=0.5),
    "ae_4hr": dict(kind="binomial", alpha=1.05, base=38_000, sd=0.30, trend=0.01, q=0.6,
                   beta={"share_65plus": -0.10, "share_85plus": -0.08, "imd_score": -0.12, "rural_share": 0.05}),
    "ae_12hr": dict(kind="binomial", alpha=-2.45, base=38_000, sd=0.40, trend=-0.01, q=-0.6,
                    beta={"share_65plus": 0.12, "share_85plus": 0.10, "imd_score": 0.15}),
    "community_52wk": dict(kind="binomial", alpha=-3.6, base=8_000, beta={}, sd=0.8, trend=-0.03, q=-0.5),
    "amb_cat2_mean": dict(kind="value", mean=33.0, sd=4.5, noise=2.5, q=-0.6, decimals=1),
    "amb_handover_45": dict(kind="binomial", alpha=-1.7, base=60_000, beta={}, sd=0.35, trend=-0.02, q=-0.5),
    "mrsa": dict(kind="poisson", alpha=np.log(1.6e-5), base=62_000, beta={}, sd=0.10, trend=0.0, q=-0.2),
    "ecoli": dict(kind="poisson", alpha=np.log(1.5e-4), base=62_000, sd=0.12, trend=0.0, q=-0.3,
                  beta={"share_65plus": 0.12, "share_85plus": 0.08}),
    "cdiff": dict(kind="poisson", alpha=np.log(2.4e-4), base=62_000, sd=0.15, trend=0.0, q=-0.3,
                  beta={"share_65plus": 0.10, "share_85plus": 0.10, "imd_score": 0.06}),
    "mh_crisis_24h": dict(kind="binomial", alpha=0.4, base=650, beta={}, sd=0.45, trend=0.02, q=0.5),
    "staff_raising_concerns": dict(kind="value", mean=6.55, sd=0.18, noise=0.03, q=0.5, decimals=2, annual=True),
    "cqc_safe": dict(kind="bracket", q=0.7),
    "finance_plan": dict(kind="value", mean=0.45, sd=1.6, noise=0.0, q=0.3, decimals=2, annual=True),
    "finance_variance": dict(kind="value", mean=0.0, sd=0.8, noise=0.35, q=0.3, decimals=2),
    "relative_cost": dict(kind="value", mean=100.0, sd=6.0, noise=1.0, q=-0.3, decimals=1, annual=True),
    "los_emergency": dict(kind="poisson", alpha=np.log(4.8), base=9_000, sd=0.10, trend=-0.005, q=-0.3, shape=60.0,
                          beta={"share_65plus": 0.07, "share_85plus": 0.06, "imd_score": 0.03}),
    "daycase_rate": dict(kind="binomial", alpha=1.5, base=6_000, beta={}, sd=0.35, trend=0.01, q=0.4),
    "readmissions_30d": dict(kind="binomial", alpha=-2.05, base=24_000, sd=0.08, trend=0.0, q=-0.3,
                             beta={"share_65plus": 0.06, "share_85plus": 0.05, "imd_score": 0.08,
                                   "ethnic_minority_share": 0.03}),
    "op_followup_ratio": dict(kind="poisson", alpha=np.log(1.7), base=30_000, beta={}, sd=0.12, trend=0.0, q=-0.3,
                              shape=80.0),
    "staff_engagement": dict(kind="value", mean=6.85, sd=0.20, noise=0.03, q=0.6, decimals=2, annual=True),
    "sickness_absence": dict(kind="binomial", alpha=-2.9, base=550_000, sd=0.12, trend=0.0, q=-0.4,
                             beta={"imd_score": 0.07, "share_65plus": 0.02}),
    "mh_long_stay": dict(kind="binomial", alpha=-1.4, base=320, beta={}, sd=0.35, trend=0.0, q=-0.4),
    "ucr_2hr": dict(kind="binomial", alpha=1.55, base=2_600, beta={}, sd=0.45, trend=0.01, q=0.5),
}
RATINGS = ["Outstanding", "Good", "Requires improvement", "Inadequate"]


def _standardise(demo: pd.DataFrame, trusts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = demo.set_index("trust_code")
    ttype = trusts.set_index("trust_code")["trust_type"]
    z = pd.DataFrame(index=d.index, columns=COVARS, dtype=float)
    rows = []
    for t in ttype.unique():
        idx = ttype.index[ttype == t]
        for c in COVARS:
            mu, sd = d.loc[idx, c].mean(), d.loc[idx, c].std(ddof=1)
            z.loc[idx, c] = (d.loc[idx, c] - mu) / sd
            rows.append({"trust_type": t, "covariate": c, "mean": mu, "sd": sd})
    return z, pd.DataFrame(rows)


def generate(seed: int = DEFAULT_SEED) -> dict[str, pd.DataFrame]:
    """Generate the demo inputs and the truth behind them (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    catalogue = load_catalogue("demo")
    trusts = make_trusts(rng)
    demo = make_demographics(rng, trusts)
    z, standardisation = _standardise(demo, trusts)
    codes = trusts["trust_code"].to_numpy()
    ttype = trusts["trust_type"].to_numpy()
    size = rng.lognormal(0, 0.45, len(trusts))
    quality = rng.normal(0, 1, len(trusts))  # latent trust quality shared across metrics (higher = better)

    obs_rows, coef_rows, eff_rows = [], [], []
    for metric in catalogue.metrics:
        spec = SPEC[metric.id]
        elig = np.isin(ttype, metric.trust_types)
        idx = np.flatnonzero(elig)
        own = rng.normal(0, 1, len(trusts))
        kind = spec["kind"]
        if kind in ("binomial", "poisson"):
            q = spec["q"]
            u = spec["sd"] * (q * quality + np.sqrt(1 - q * q) * own)
            lin = np.full(len(trusts), spec["alpha"]) + u
            for cov, b in spec["beta"].items():
                lin = lin + b * z[cov].to_numpy(float)
            for t in metric.trust_types:
                coef_rows.append({"metric_id": metric.id, "trust_type": t, "term": "Intercept", "value": spec["alpha"]})
                for cov, b in spec["beta"].items():
                    coef_rows.append({"metric_id": metric.id, "trust_type": t, "term": cov, "value": b})
            for i in idx:
                eff_rows.append({"metric_id": metric.id, "trust_code": codes[i], "effect": u[i]})
            for qi, quarter in enumerate(QUARTERS):
                season = 1.0 + 0.05 * np.cos(2 * np.pi * (qi % 4) / 4)
                n = np.maximum(np.round(spec["base"] * size[idx] * season * rng.lognormal(0, 0.05, len(idx))), 20)
                eta = lin[idx] + spec["trend"] * (qi - 7)
                if kind == "binomial":
                    x = rng.binomial(n.astype(np.int64), 1 / (1 + np.exp(-eta)))
                else:
                    mu = n * np.exp(eta)
                    if "shape" in spec:  # gamma-Poisson mixture: extra-Poisson variation within trust-quarter
                        mu = mu * rng.gamma(spec["shape"], 1 / spec["shape"], len(idx))
                    x = rng.poisson(mu)
                for j, i in enumerate(idx):
                    obs_rows.append((quarter, codes[i], metric.id, float(x[j]), float(n[j]), np.nan, None))
        elif kind == "value":
            q = spec["q"]
            u = spec["sd"] * (q * quality + np.sqrt(1 - q * q) * own)
            for i in idx:
                eff_rows.append({"metric_id": metric.id, "trust_code": codes[i], "effect": u[i]})
            annual_noise = {}
            for qi, quarter in enumerate(QUARTERS):
                year = quarter[:7]
                if spec.get("annual"):
                    noise = annual_noise.setdefault(year, rng.normal(0, spec["noise"] + 1e-12, len(trusts)))
                else:
                    noise = rng.normal(0, spec["noise"] + 1e-12, len(trusts))
                v = np.round(spec["mean"] + u + noise, spec["decimals"])
                for i in idx:
                    obs_rows.append((quarter, codes[i], metric.id, np.nan, np.nan, float(v[i]), None))
        elif kind == "bracket":
            latent = spec["q"] * quality + np.sqrt(1 - spec["q"] ** 2) * own
            cuts = np.quantile(latent, [0.08, 0.70, 0.93])
            rating = np.array(RATINGS)[3 - np.searchsorted(cuts, latent)]
            for qi, quarter in enumerate(QUARTERS):
                if qi == 4:  # a round of re-inspections at the start of 2025/26
                    change = rng.random(len(trusts)) < 0.15
                    step = np.where(rng.random(len(trusts)) < 0.5, -1, 1)
                    pos = np.clip(np.array([RATINGS.index(r) for r in rating]) + step, 0, 3)
                    rating = np.where(change, np.array(RATINGS)[pos], rating)
                for i in idx:
                    obs_rows.append((quarter, codes[i], metric.id, np.nan, np.nan, np.nan, str(rating[i])))

    obs = pd.DataFrame(obs_rows, columns=["quarter", "trust_code", "metric_id", "numerator", "denominator", "value",
                                          "category"])
    obs["suppressed"] = False
    # A few suppressed figures (withheld by the source) and a few missing rows (not submitted).
    sup = rng.random(len(obs)) < 0.004
    obs.loc[sup, "suppressed"] = True
    obs.loc[sup, ["numerator", "denominator", "value"]] = np.nan
    obs.loc[sup, "category"] = None
    obs = obs.loc[~(rng.random(len(obs)) < 0.004)].reset_index(drop=True)

    # Finance and status: a deficit follows the planned surplus/deficit; deficit support for the worst plans;
    # the improvement programme (segment 5) for the trusts of lowest latent quality, from 2025/26.
    plan = obs[obs["metric_id"] == "finance_plan"].set_index(["quarter", "trust_code"])["value"]
    worst = set(codes[np.argsort(quality)[:3]])
    status_rows = []
    for quarter in QUARTERS:
        for code in codes:
            p = plan.get((quarter, code), np.nan)
            status_rows.append({
                "quarter": quarter, "trust_code": code,
                "deficit": bool(p < 0) if not np.isnan(p) else False,
                "deficit_support": bool(p < -2.5) if not np.isnan(p) else False,
                "improvement_programme": code in worst and quarter.startswith("2025-26"),
            })
    status = pd.DataFrame(status_rows)
    sort = ["quarter", "trust_code", "metric_id"]
    return {
        "trusts": trusts,
        "observations": obs.sort_values(sort, kind="mergesort").reset_index(drop=True),
        "demographics": demo,
        "status": status,
        "truth/coefficients": pd.DataFrame(coef_rows),
        "truth/trust_effects": pd.DataFrame(eff_rows),
        "truth/standardisation": standardisation,
    }


def write(out: Path, seed: int = DEFAULT_SEED) -> Path:
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    for name, df in generate(seed).items():
        df.to_csv(out / f"{name}.csv", index=False, lineterminator="\n", float_format="%.10g")
    (out / "README.md").write_text(
        "# Synthetic demo data (fictional trusts)\n\n"
        f"Generated by `python -m leaguetables.demo --seed {seed}`; do not edit by hand. Every trust, name and\n"
        "figure here is invented: this is not a ranking of real NHS trusts. `truth/` holds the model the counts\n"
        "were drawn from (coefficients per SD of each covariate within trust type, trust effects, standardisation).\n",
        encoding="utf-8")
    (out / DEMO_MARKER).write_text(json.dumps({"source": "demo", "generator": "leaguetables.demo", "seed": seed},
                                              indent=1) + "\n", encoding="utf-8")
    return out


DEMO_MARKER = "demo-source.json"  # written beside the demo's contract files: their provenance, for the labels


def is_demo_data(folder: Path) -> bool:
    """True when ``folder`` was written by :func:`write` (the synthetic demo), by its provenance file."""
    try:
        return json.loads((Path(folder) / DEMO_MARKER).read_text(encoding="utf-8")).get("source") == "demo"
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaguetables.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: data/demo)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    args = ap.parse_args(argv)
    path = write(args.out, args.seed)
    print(f"demo data written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
