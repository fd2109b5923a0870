"""Indirectly standardised ratios from the synthetic records, checked against the generator's truth.

A plain-pandas reading of the records (independent of the truth files): per acute trust, SHMI-style mortality,
emergency readmissions within 0–29 days, emergency bed days, basket day cases, 12 hours or more in A&E and outpatient
follow-ups; per ICB of residence, emergency and ACSC admissions. Each is ``O/E`` with ``E`` from the national rate
of every stratum (the strata of ``truth/definitions.json``) and the limits of
:func:`leaguetables.statistics.rates.ratio` (exact Poisson below 10 events, Byar's from 10), or for the ICBs
:func:`leaguetables.statistics.rates.isr` against the population of ``geography/population.csv``.

:func:`recovery` compares them with ``truth/ratios.csv``: the correlation of the estimated and the true ratio (and
of log ratio and true effect) and the share of 95% intervals covering the true ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.inputs.records import model
from leaguetables.inputs.records.generate import AGE_BANDS
from leaguetables.statistics import rates

_GROUP_OF = {c: i for i, g in enumerate(model.GROUPS) for c in g["codes"]}


def read(folder: Path, dataset: str, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(Path(folder) / dataset, columns=columns)


def emergency_spells(folder: Path) -> pd.DataFrame:
    """Spells (patient, provider, admission date) of emergency admissions, from their episodes."""
    apc = read(folder, "apc", ["PSEUDO_HESID", "PROCODE3", "ADMIDATE", "DISDATE", "EPIORDER", "ADMIMETH",
                               "DISMETH", "STARTAGE", "SEX", "LSOA11", "DIAG_4_01", "DOD"])
    apc = apc[apc["ADMIMETH"].str.startswith("2")]
    first = apc[apc["EPIORDER"] == 1].drop(columns=["DISDATE", "DISMETH"])
    last = apc.dropna(subset=["DISDATE"])[["PSEUDO_HESID", "PROCODE3", "ADMIDATE", "DISDATE", "DISMETH"]]
    s = first.merge(last, on=["PSEUDO_HESID", "PROCODE3", "ADMIDATE"], how="inner")
    for c in ("ADMIDATE", "DISDATE", "DOD"):
        s[c] = pd.to_datetime(s[c])
    s["group"] = s["DIAG_4_01"].map(_GROUP_OF)
    s["band"] = AGE_BANDS[np.minimum(s["STARTAGE"].to_numpy(), 90)]
    s["male"] = (s["SEX"] == "1").astype(int)
    s["died"] = (s["DISMETH"] == "4") | (s["DOD"].notna() & (s["DOD"] <= s["DISDATE"] + pd.Timedelta(days=30)))
    return s


def _isr(frame: pd.DataFrame, org: str, strata: list[str], observed: str, outcome: str) -> pd.DataFrame:
    """O/E per organisation with the national stratum rates (``observed`` per record, records as denominator)."""
    f = frame[[org, *strata, observed]].copy()
    f["n"] = 1.0
    f[observed] = f[observed].astype(float)
    nat = f.groupby(strata)[[observed, "n"]].sum()
    rate = (nat[observed] / nat["n"]).rename("rate")
    f = f.join(rate, on=strata)
    by = f.groupby(org).agg(observed=(observed, "sum"), expected=("rate", "sum"), records=("n", "sum"))
    out = rates.ratio(by["observed"], by["expected"])
    out.insert(0, "expected", by["expected"].to_numpy())
    out.insert(0, "observed", by["observed"].to_numpy())
    out.insert(0, "org_code", by.index.to_numpy())
    out.insert(0, "outcome", outcome)
    return out.reset_index(drop=True)


def trust_ratios(folder: Path) -> pd.DataFrame:
    s = emergency_spells(folder)
    parts = [_isr(s, "PROCODE3", ["group", "band", "male"], "died", "mortality")]
    s["bed_days"] = (s["DISDATE"] - s["ADMIDATE"]).dt.days
    parts.append(_isr(s, "PROCODE3", ["group", "band"], "bed_days", "los"))
    parts.append(_isr(_readmissions(s), "PROCODE3", ["band", "male"], "readmitted", "readmission"))
    el = read(folder, "apc", ["ADMIMETH", "CLASSPAT", "OPERTN_4_01", "PROCODE3", "EPIORDER"])
    el = el[el["ADMIMETH"].str.startswith("1") & el["OPERTN_4_01"].isin(model.BASKET_OPCS) & (el["EPIORDER"] == 1)]
    el = el.assign(daycase=el["CLASSPAT"] == "2")
    parts.append(_isr(el, "PROCODE3", ["OPERTN_4_01"], "daycase", "daycase"))
    ae = read(folder, "ae", ["PROCODE3", "AEDEPTTYPE", "ARRIVALAGE", "DEPDUR"])
    ae = ae.assign(band=AGE_BANDS[np.minimum(ae["ARRIVALAGE"].to_numpy(), 90)], long=ae["DEPDUR"] >= 720)
    parts.append(_isr(ae, "PROCODE3", ["AEDEPTTYPE", "band"], "long", "ae_12hr"))
    parts.append(_followups(folder))
    return pd.concat(parts, ignore_index=True).assign(org_type="trust")


def _readmissions(s: pd.DataFrame) -> pd.DataFrame:
    """Index: emergency spells of patients who did not die within 30 days of discharge; readmitted: an emergency
    admission of the same patient (any provider) 0–29 days after the discharge."""
    idx = s[~s["died"]].reset_index(drop=True)
    pairs = idx[["PSEUDO_HESID", "ADMIDATE", "DISDATE"]].reset_index().merge(
        s[["PSEUDO_HESID", "ADMIDATE"]].rename(columns={"ADMIDATE": "READMIDATE"}), on="PSEUDO_HESID")
    gap = (pairs["READMIDATE"] - pairs["DISDATE"]).dt.days
    later = pairs["READMIDATE"] > pairs["ADMIDATE"]  # another, later spell (not the index spell itself)
    hit = pairs.loc[later & (gap >= 0) & (gap <= 29), "index"].unique()
    idx["readmitted"] = False
    idx.loc[hit, "readmitted"] = True
    return idx


def _followups(folder: Path) -> pd.DataFrame:
    op = read(folder, "op", ["PSEUDO_HESID", "PROCODE3", "FIRSTATT", "APPTAGE"])
    first = op[op["FIRSTATT"].isin(["1", "3"])]
    fu = op[op["FIRSTATT"].isin(["2", "4"])].groupby("PSEUDO_HESID").size().rename("followups")
    f = first.join(fu, on="PSEUDO_HESID").fillna({"followups": 0})
    f["band"] = AGE_BANDS[np.minimum(f["APPTAGE"].to_numpy(), 90)]
    return _isr(f, "PROCODE3", ["band"], "followups", "followup")


def icb_ratios(folder: Path) -> pd.DataFrame:
    """Emergency and ACSC admissions per ICB of residence, indirectly standardised by single year of age, sex and
    IMD quintile against the population the records represent (:func:`rates.isr`)."""
    folder = Path(folder)
    s = emergency_spells(folder)
    lsoa = pd.read_csv(folder / "geography" / "lsoa_icb.csv", dtype={"imd_quintile": int})
    pop = pd.read_csv(folder / "geography" / "population.csv", dtype={"sex": str})
    s = s.merge(lsoa, on="LSOA11", how="left")
    s["age"] = np.minimum(s["STARTAGE"], 90)
    s["sex"] = s["SEX"]
    s["acsc"] = s["DIAG_4_01"].isin(model.ACSC_CODES)
    keys = ["icb_code", "age", "sex", "imd_quintile"]
    out = []
    for outcome, rows in (("emergency", s), ("acsc", s[s["acsc"]])):
        local = pop.merge(rows.groupby(keys).size().rename("x").reset_index(), on=keys, how="left").fillna({"x": 0})
        local = local.rename(columns={"population": "n"})
        ref = local.groupby(["age", "sex", "imd_quintile"], as_index=False)[["x", "n"]].sum()
        r = rates.isr(local, ref, on=["age", "sex", "imd_quintile"], by="icb_code")
        obs = local.groupby("icb_code")["x"].sum()
        r.insert(0, "observed", obs.reindex(r.index).to_numpy())
        r.insert(0, "org_code", r.index.to_numpy())
        r.insert(0, "outcome", outcome)
        out.append(r.reset_index(drop=True))
    return pd.concat(out, ignore_index=True).assign(org_type="icb")


COUNT_OUTCOMES = ("mortality", "readmission", "ae_12hr", "followup", "emergency", "acsc")


def recovery(folder: Path) -> pd.DataFrame:
    """Per outcome: organisations, correlation of estimated and true ratios, of log ratio and true effect, and the
    coverage of the 95% intervals (counts of events; bed days and day cases are not Poisson counts)."""
    folder = Path(folder)
    trusts = trust_ratios(folder)
    reg = pd.read_csv(folder / "registers" / "trusts.csv")
    trusts["org_code"] = trusts["org_code"].map(dict(zip(reg["procode3"], reg["trust_code"])))
    est = pd.concat([trusts, icb_ratios(folder)], ignore_index=True)
    truth = pd.read_csv(folder / "truth" / "ratios.csv")
    eff = pd.read_csv(folder / "truth" / "effects.csv")
    m = est.merge(truth, on=["org_type", "org_code", "outcome"]).merge(eff, on=["org_type", "org_code", "outcome"])
    rows = []
    for (otype, outcome), g in m.groupby(["org_type", "outcome"], sort=True):
        covered = (g["lower"] <= g["true_ratio"]) & (g["true_ratio"] <= g["upper"])
        rows.append({"org_type": otype, "outcome": outcome, "organisations": len(g),
                     "corr_ratio": float(np.corrcoef(g["value"], g["true_ratio"])[0, 1]),
                     "corr_log_effect": float(np.corrcoef(np.log(g["value"].clip(lower=1e-9)), g["effect"])[0, 1]),
                     "coverage": float(covered.mean()), "poisson_count": outcome in COUNT_OUTCOMES,
                     "covered": int(covered.sum())})
    return pd.DataFrame(rows)
