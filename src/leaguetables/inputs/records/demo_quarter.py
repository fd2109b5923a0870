"""The demo quarter's record-level metrics: synthetic records → rows of the existing data contract.

The rows are the record-level indicators themselves (:func:`leaguetables.inputs.records.indicators.compute_indicators`,
``indicators.sql`` on DuckDB: one definition of every metric). The latest demo quarter (the records' quarter,
``2025-26-Q4``) gets, for the demo's acute trusts (the same codes and register: the records' ``PROCODE3`` ``Z01`` …
is ``DEMO-A001`` …, :func:`.geography.procode3`), the observed-over-expected ratios of the demo catalogue (``rl_*``:
numerator observed, denominator expected) and, for the 42 fictional ICBs (a new organisation type ``icb`` in
``trusts.csv``, with ``demographics.csv`` rows from the real ONS populations and IMD), emergency and ACSC admissions
of residents per 100,000, indirectly standardised by age band, sex and IMD quintile: numerator the admissions,
denominator the standardised population (expected admissions ÷ the national rate), so the notebooks' rate is
``ISR × national rate``.

Every existing row of the demo is kept as it is: the record-level metrics are additional metric ids, and the ICBs
additional organisations, so the providers' scores, segments and ranks do not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.records.indicators import Indicators, compute_indicators

# the record-level metrics of the demo catalogue (config/catalogues/demo.yaml), all rows of the indicators
RECORD_METRICS = ("rl_shmi", "rl_los_oe", "rl_daycase_oe", "rl_readmissions_oe", "rl_followup_oe", "rl_ae_12hr_oe")
ICB_METRICS = ("icb_emergency_admissions", "icb_acsc_admissions")
ICB_SUBTYPE = "Integrated care board"


def _contract_rows(obs: pd.DataFrame, metrics: tuple[str, ...], codes: dict[str, str] | None) -> pd.DataFrame:
    """The indicators' rows of ``metrics`` as demo rows: trust codes of the register, numerator, denominator and the
    numerator's variance (where O is not a Poisson count) rounded (6 decimals: stable CSV text), the value and
    category left to the pipeline."""
    rows = obs[obs["metric_id"].isin(metrics)].copy()
    if codes is not None:
        rows["trust_code"] = rows["trust_code"].map(codes)
        if rows["trust_code"].isna().any():
            raise ValueError("a PROCODE3 of the records is not in registers/trusts.csv")
    rows["numerator"] = rows["numerator"].astype(float).round(6)
    rows["denominator"] = rows["denominator"].astype(float).round(6)
    rows["numerator_variance"] = rows["numerator_variance"].astype(float).round(6)
    rows["value"] = np.nan
    rows["category"] = None
    rows["suppressed"] = False
    return rows.sort_values(["metric_id", "trust_code"]).reset_index(drop=True)


def record_observations(folder: Path, quarter: str, ind: Indicators | None = None) -> pd.DataFrame:
    """The ``rl_*`` rows of the acute trusts and the ``icb_*`` rows of the ICBs from the records in ``folder``."""
    folder = Path(folder)
    ind = ind if ind is not None else compute_indicators(folder, quarter)
    reg = pd.read_csv(folder / "registers" / "trusts.csv", dtype=str)
    codes = dict(zip(reg["procode3"], reg["trust_code"]))
    return pd.concat(
        [_contract_rows(ind.observations, RECORD_METRICS, codes), _contract_rows(ind.observations, ICB_METRICS, None)],
        ignore_index=True,
    )


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


def merge_into_demo(
    frames: dict[str, pd.DataFrame], folder: Path, quarter: str, ind: Indicators | None = None
) -> dict[str, pd.DataFrame]:
    """The demo's contract tables with the record-level rows added (nothing existing is changed); ``ind``: the
    indicators of ``folder``'s records when already computed (:func:`record_observations`)."""
    trusts, demo = icb_register(folder)
    obs = pd.concat([frames["observations"], record_observations(folder, quarter, ind)], ignore_index=True)
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
