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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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
