"""The demo quarter's record-level metrics: synthetic records → rows of the existing data contract.

The latest demo quarter (the records' quarter, ``2025-26-Q4``) gets, for the demo's acute trusts (the same codes
and register: the records' ``PROCODE3`` ``Z01`` … is ``DEMO-A001`` …, :func:`.geography.procode3`), the record-level
ratios of the demo catalogue (``rl_*``: numerator observed, denominator expected) and, for the 42 fictional ICBs
(a new organisation type ``icb`` in ``trusts.csv``, with ``demographics.csv`` rows from the real ONS populations
and IMD), emergency and ACSC admissions of residents per 100,000, indirectly standardised by age, sex and IMD
quintile (:func:`leaguetables.statistics.rates.isr`): numerator the admissions, denominator the standardised
population (expected admissions ÷ the national rate), so the notebooks' rate is ``ISR × national rate``.

Every existing row of the demo is kept as it is: the record-level metrics are additional metric ids, and the ICBs
additional organisations, so the providers' scores, segments and ranks do not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.records import recovery

RECORD_METRICS = {  # metric id of the demo catalogue -> outcome of recovery.trust_ratios
    "rl_shmi": "mortality",
    "rl_los_oe": "los",
    "rl_daycase_oe": "daycase",
    "rl_readmissions_oe": "readmission",
    "rl_followup_oe": "followup",
    "rl_ae_12hr_oe": "ae_12hr",
}
ICB_METRICS = {"icb_emergency_admissions": "emergency", "icb_acsc_admissions": "acsc"}
ICB_SUBTYPE = "Integrated care board"


def _rows(quarter: str, codes, metric_id: str, numerator, denominator) -> pd.DataFrame:
    n = len(codes)
    return pd.DataFrame(
        {
            "quarter": quarter,
            "trust_code": np.asarray(codes, dtype=object),
            "metric_id": metric_id,
            "numerator": np.asarray(numerator, float),
            "denominator": np.asarray(denominator, float),
            "value": np.full(n, np.nan),
            "category": np.full(n, None, dtype=object),
            "suppressed": np.zeros(n, bool),
        }
    )


def trust_observations(folder: Path, quarter: str) -> pd.DataFrame:
    """The ``rl_*`` rows of the acute trusts: observed and expected of each standardised ratio."""
    folder = Path(folder)
    est = recovery.trust_ratios(folder)
    reg = pd.read_csv(folder / "registers" / "trusts.csv")
    est["trust_code"] = est["org_code"].map(dict(zip(reg["procode3"], reg["trust_code"])))
    if est["trust_code"].isna().any():
        raise ValueError(f"{folder}: a PROCODE3 of the records is not in registers/trusts.csv")
    parts = []
    for metric_id, outcome in RECORD_METRICS.items():
        g = est[est["outcome"] == outcome].sort_values("trust_code")
        parts.append(_rows(quarter, g["trust_code"], metric_id, g["observed"].round(6), g["expected"].round(6)))
    return pd.concat(parts, ignore_index=True)


def icb_observations(folder: Path, quarter: str) -> pd.DataFrame:
    """The ICB rows: admissions and the standardised population (expected ÷ national rate) per ICB."""
    est = recovery.icb_ratios(Path(folder))
    parts = []
    for metric_id, outcome in ICB_METRICS.items():
        g = est[est["outcome"] == outcome].sort_values("org_code")
        pop = _standardised_population(Path(folder), g)
        parts.append(_rows(quarter, g["org_code"], metric_id, g["observed"], pop.round(3)))
    return pd.concat(parts, ignore_index=True)


def _standardised_population(folder: Path, g: pd.DataFrame) -> pd.Series:
    """Expected admissions ÷ the national crude rate: the population that, at the national rate, would have the
    ICB's expected admissions (so that O / it = ISR × national rate)."""
    pop = pd.read_csv(folder / "geography" / "population.csv")
    crude = g["observed"].sum() / pop["population"].sum()
    expected = (g["observed"] / g["value"]).to_numpy()
    return pd.Series(expected / crude, index=g.index)


def icb_register(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(trusts rows, demographics rows)`` of the fictional ICBs (organisation type ``icb``)."""
    folder = Path(folder)
    icbs = pd.read_csv(folder / "registers" / "icbs.csv")
    trusts = pd.DataFrame(
        {
            "trust_code": icbs["icb_code"],
            "trust_name": icbs["icb_name"],
            "trust_type": "icb",
            "trust_subtype": ICB_SUBTYPE,
            "region": icbs["region"],
        }
    )
    demo = pd.read_csv(folder / "geography" / "icb_demographics.csv")
    return trusts, demo


def merge_into_demo(frames: dict[str, pd.DataFrame], folder: Path, quarter: str) -> dict[str, pd.DataFrame]:
    """The demo's contract tables with the record-level rows added (nothing existing is changed)."""
    trusts, demo = icb_register(folder)
    obs = pd.concat(
        [frames["observations"], trust_observations(folder, quarter), icb_observations(folder, quarter)],
        ignore_index=True,
    )
    obs = obs.sort_values(["quarter", "trust_code", "metric_id"], kind="mergesort").reset_index(drop=True)
    out = dict(frames)
    out["trusts"] = pd.concat([frames["trusts"], trusts], ignore_index=True)
    out["demographics"] = pd.concat([frames["demographics"], demo[frames["demographics"].columns]], ignore_index=True)
    out["observations"] = obs
    # the demo models no ICB finances: in the records' quarter no ICB reports a deficit or receives support
    status = pd.DataFrame(
        {
            "quarter": quarter,
            "trust_code": trusts["trust_code"],
            "deficit": False,
            "deficit_support": False,
            "improvement_programme": False,
        }
    )
    out["status"] = pd.concat([frames["status"], status[frames["status"].columns]], ignore_index=True)
    return out
