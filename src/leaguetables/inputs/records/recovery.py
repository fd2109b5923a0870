"""Truth recovery: the record-level indicators of the synthetic records, checked against the generator's truth.

The estimates are the indicators themselves — :func:`leaguetables.inputs.records.indicators.compute_indicators`
(``indicators.sql`` on DuckDB), the same tables the demo quarter's ``rl_*`` and ``icb_*`` metrics come from — read
as standardised ratios: per acute trust the observed-over-expected ratios (``Indicators.ratios``: SHMI-style
mortality, emergency readmissions, emergency bed days, basket day cases, 12 hours in A&E, outpatient follow-ups) with
the limits of :func:`leaguetables.statistics.rates.ratio` (exact Poisson below 10 events, Byar's from 10; for the
ratios whose events are not a Poisson count — bed days, day cases — the scaled limits of the variance of O the
indicators carry, ``Indicators.ratios["variance"]``); per ICB of residence the indirectly standardised ratios of
emergency and ACSC admissions (``Indicators.icb_standardised``, limits scaled by the admissions' clustering in
patients).

:func:`recovery` compares them with ``truth/ratios.csv`` (the generator's true standardised ratios, over the
generated quarters; the model is the same in every quarter): the correlation of the estimated and the true ratio (and
of the log ratio and the true effect) and the share of 95% intervals covering the true ratio, with the interval used
(``interval``: "Poisson", or "scaled" where the indicators give the variance of O).

:func:`generator_draws` and :func:`dispersion` check the generator itself: its draws (with its own functions and
random streams) against the expectations its truth is made of, z = (O − E)/√V per ICB- and trust-quarter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from leaguetables.inputs.records import generate, model
from leaguetables.inputs.records.geography import Geography
from leaguetables.inputs.records.indicators import Indicators, compute_indicators
from leaguetables.statistics import rates

# outcome of truth/ratios.csv -> the metric id of the indicators that estimates it
TRUST_OUTCOMES = {
    "mortality": "rl_shmi",
    "readmission": "rl_readmissions_oe",
    "los": "rl_los_oe",
    "daycase": "rl_daycase_oe",
    "ae_12hr": "rl_ae_12hr_oe",
    "followup": "rl_followup_oe",
}
ICB_OUTCOMES = {"emergency": "icb_emergency_admissions", "acsc": "icb_acsc_admissions"}
ESTIMATE_COLUMNS = ["org_type", "org_code", "outcome", "observed", "expected", "value", "lower", "upper", "scaled"]


def latest_quarter(folder: Path) -> str:
    """The last quarter the generator wrote (``manifest.json``)."""
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))["quarters"][-1]


def trust_estimates(ind: Indicators, registers: pd.DataFrame) -> pd.DataFrame:
    """The trusts' observed-over-expected ratios with 95% limits; ``org_code`` the register's trust code (the
    records carry its ``procode3``)."""
    codes = dict(zip(registers["procode3"], registers["trust_code"]))
    parts = []
    for outcome, metric in TRUST_OUTCOMES.items():
        r = ind.ratios[(ind.ratios["metric_id"] == metric) & (ind.ratios["expected"] > 0)]
        variance = r["variance"].to_numpy(float)
        limits = rates.ratio(r["observed"].to_numpy(float), r["expected"].to_numpy(float), variance=variance)
        parts.append(
            pd.DataFrame(
                {
                    "org_type": "trust",
                    "org_code": r["trust_code"].map(codes).to_numpy(object),
                    "outcome": outcome,
                    "observed": r["observed"].to_numpy(float),
                    "expected": r["expected"].to_numpy(float),
                    "value": limits["value"].to_numpy(float),
                    "lower": limits["lower"].to_numpy(float),
                    "upper": limits["upper"].to_numpy(float),
                    "scaled": ~np.isnan(variance),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    if out["org_code"].isna().any():
        raise ValueError("a PROCODE3 of the records is not in registers/trusts.csv")
    return out


def icb_estimates(ind: Indicators) -> pd.DataFrame:
    """The ICBs' indirectly standardised ratios (age band, sex, IMD quintile) with their 95% limits."""
    s = ind.icb_standardised
    outcome = s["metric_id"].map({m: o for o, m in ICB_OUTCOMES.items()})
    return pd.DataFrame(
        {
            "org_type": "icb",
            "org_code": s["icb_code"].to_numpy(object),
            "outcome": outcome.to_numpy(object),
            "observed": s["observed"].to_numpy(float),
            "expected": s["expected"].to_numpy(float),
            "value": s["isr"].to_numpy(float),
            "lower": s["isr_lower"].to_numpy(float),
            "upper": s["isr_upper"].to_numpy(float),
            "scaled": s["variance"].notna().to_numpy(bool),
        }
    )[ESTIMATE_COLUMNS]


def estimates(folder: Path, ind: Indicators | None = None, quarter: str | None = None) -> pd.DataFrame:
    """Every organisation's estimated standardised ratio (``ind``, or the indicators of ``quarter``, by default the
    latest generated quarter, computed from ``folder``)."""
    folder = Path(folder)
    ind = ind if ind is not None else compute_indicators(folder, quarter or latest_quarter(folder))
    registers = pd.read_csv(folder / "registers" / "trusts.csv", dtype=str)
    return pd.concat([trust_estimates(ind, registers), icb_estimates(ind)], ignore_index=True)


def recovery(folder: Path, ind: Indicators | None = None, quarter: str | None = None) -> pd.DataFrame:
    """Per outcome: organisations, correlation of estimated and true ratios, of log ratio and true effect, the
    coverage of the 95% intervals and their kind (``interval``: "scaled" where the indicators give the variance of
    O, else "Poisson")."""
    folder = Path(folder)
    est = estimates(folder, ind, quarter)
    truth = pd.read_csv(folder / "truth" / "ratios.csv")
    eff = pd.read_csv(folder / "truth" / "effects.csv")
    keys = ["org_type", "org_code", "outcome"]
    m = est.merge(truth, on=keys).merge(eff, on=keys)
    rows = []
    for (otype, outcome), g in m.groupby(["org_type", "outcome"], sort=True):
        covered = (g["lower"] <= g["true_ratio"]) & (g["true_ratio"] <= g["upper"])
        rows.append(
            {
                "org_type": otype,
                "outcome": outcome,
                "organisations": len(g),
                "corr_ratio": float(np.corrcoef(g["value"], g["true_ratio"])[0, 1]),
                "corr_log_effect": float(np.corrcoef(np.log(g["value"].clip(lower=1e-9)), g["effect"])[0, 1]),
                "coverage": float(covered.mean()),
                "interval": "scaled" if g["scaled"].any() else "Poisson",
                "covered": int(covered.sum()),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ the generator's draws
# What the generator draws, against the expectation the truth file is made of (no indicator, no SQL): per ICB-quarter
# the Poisson counts of first emergency and of ACSC admissions, and the emergency admissions with the readmissions they
# lead to (a compound Poisson count: each index admission brings a 0/1 readmission of mean r, so the variance is
# Σ μ·E[(1 + R)²] = Σ μ·(1 + 3r)); per trust-quarter the readmissions of its index spells (Bernoulli: Σ p, Σ p(1 − p))
# and its outpatient follow-ups (Poisson given the first attendances: Σ μ).
DRAW_COLUMNS = ["outcome", "seed", "quarter", "unit", "observed", "expected", "variance"]


def _icb_chunk_draws(
    geo: Geography,
    eff: generate.Effects,
    readm: dict[bool, np.ndarray],
    per: generate.Period,
    icb: int,
    seed: int,
    fraction: float,
) -> tuple[list[tuple[str, int, float, float]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One ICB-quarter's emergency draws (outcome, observed, expected, variance) and its readmissions by trust."""
    cells = generate.cells_of(geo, icb)
    years = fraction * per.years
    rng = generate.chunk_rng(seed, per.index, icb, "apc")
    em = generate.emergency_spells(rng, geo, cells, eff, per, years, icb)
    re, p = generate.readmissions(rng, geo, cells, eff, per, em)
    mu_a = generate.intensity(cells, "acsc", years, generate.geo_effect(eff, "acsc", icb))
    mu_e = generate.intensity(cells, "emergency", years, generate.geo_effect(eff, "emergency", icb))
    key = (cells.ltla, cells.age, cells.male)
    r_a, r_e = readm[True][key], readm[False][key]
    first, acsc = float(mu_a.sum() + mu_e.sum()), float(mu_a.sum())
    n_acsc = int(np.isin(em["group"], model.group_mix(True)[0]).sum())
    with_readm = float((mu_a * (1 + r_a) + mu_e * (1 + r_e)).sum())
    var = float((mu_a * (1 + 3 * r_a) + mu_e * (1 + 3 * r_e)).sum())
    rows = [
        ("icb_first_emergency", len(em["cell"]), first, first),
        ("icb_acsc", n_acsc, acsc, acsc),
        ("icb_emergency_with_readmissions", len(em["cell"]) + len(re["cell"]), with_readm, var),
    ]
    n_t = len(geo.trust_codes)
    readmitted = np.bincount(em["trust"][re["patient_of"]], minlength=n_t).astype(float)
    expected = np.bincount(em["trust"], weights=p, minlength=n_t)
    return rows, (readmitted, expected, np.bincount(em["trust"], weights=p * (1 - p), minlength=n_t))


def _followup_chunk_draws(
    geo: Geography, eff: generate.Effects, per: generate.Period, icb: int, seed: int, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """One ICB-quarter's outpatient follow-ups by trust: drawn, and Σ μ of their first attendances (the truth's).

    The draws are ``generate.op_draws``, from which ``generate.op_table`` makes its rows: a follow-up row per unit of
    each first attendance's count, at that attendance's trust, so the count by trust is the sum of the counts by
    trust, without the rows (test_records_draws checks it against ``op_table``'s rows)."""
    truth = generate.Truth()
    rng = generate.chunk_rng(seed, per.index, icb, "op")
    chunk = generate.Chunk(geo, generate.cells_of(geo, icb), eff, per, fraction * per.years, truth)
    _, trust, n_fu = generate.op_draws(rng, chunk)
    n_t = len(geo.trust_codes)
    t = truth.frame()
    mu = np.bincount(t["org"].to_numpy(int), weights=t["mu"].to_numpy(float), minlength=n_t)
    return np.bincount(trust, weights=n_fu, minlength=n_t).astype(float), mu


def generator_draws(
    geo: Geography, seeds: Sequence[int], quarters: Sequence[str], fraction: float, followups: bool = True
) -> pd.DataFrame:
    """The generator's draws with its own functions and chunk streams (``generate.chunk_rng``) for every seed, quarter
    and ICB at ``fraction`` of the population (each seed its own effects, the geography ``geo``): one row per unit
    (ICB- or trust-quarter) and outcome, :data:`DRAW_COLUMNS` (trust readmissions twice: with their Bernoulli variance
    and, as ``trust_readmissions_poisson_scale``, with the Poisson one a Poisson interval assumes)."""
    rows: list[tuple] = []
    n_t = len(geo.trust_codes)
    for seed in seeds:
        eff = generate.draw_effects(seed, geo.trust_codes, len(geo.icb_codes))
        readm = generate.readmission_factor(geo, eff)
        for qi, quarter in enumerate(quarters):
            per = generate.period(quarter, qi)
            trust = np.zeros((5, n_t))
            for icb in range(len(geo.icb_codes)):
                icb_rows, readmissions = _icb_chunk_draws(geo, eff, readm, per, icb, seed, fraction)
                rows += [(o, seed, quarter, icb, x, e, v) for o, x, e, v in icb_rows]
                trust[:3] += np.stack(readmissions)
                if followups:
                    trust[3:] += np.stack(_followup_chunk_draws(geo, eff, per, icb, seed, fraction))
            units = [("trust_readmissions", 0, 1, 2), ("trust_readmissions_poisson_scale", 0, 1, 1)]
            units += [("trust_followups", 3, 4, 4)] if followups else []
            for name, o, e, v in units:
                rows += [(name, seed, quarter, t, trust[o, t], trust[e, t], trust[v, t]) for t in range(n_t)]
    frame = pd.DataFrame(rows, columns=DRAW_COLUMNS)
    return frame[frame["expected"] > 0].reset_index(drop=True)


def dispersion(draws: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per outcome of :func:`generator_draws`: z = (O − E)/√V of every unit, its mean and variance, the ``level``
    range of the variance of n draws of N(0, 1) (χ²(n − 1)/(n − 1)), the largest |z|, and the count of |z| > 3
    against its expectation under N(0, 1) with the chance of at least that many (binomial)."""
    p3 = 2 * stats.norm.sf(3)
    rows = []
    for outcome, g in draws.groupby("outcome", sort=False):
        z = ((g["observed"] - g["expected"]) / np.sqrt(g["variance"])).to_numpy(float)
        n, over = len(z), int((np.abs(z) > 3).sum())
        rows.append(
            {
                "outcome": outcome,
                "units": n,
                "mean_expected": float(g["expected"].mean()),
                "mean_z": float(z.mean()),
                "var_z": float(z.var(ddof=1)),
                "var_low": float(stats.chi2.ppf((1 - level) / 2, n - 1) / (n - 1)),
                "var_high": float(stats.chi2.ppf((1 + level) / 2, n - 1) / (n - 1)),
                "max_abs_z": float(np.abs(z).max()),
                "over_3": over,
                "expected_over_3": n * p3,
                "p_at_least": float(stats.binom.sf(over - 1, n, p3)),
            }
        )
    return pd.DataFrame(rows)
