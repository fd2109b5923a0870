"""The record-level indicators in plain pandas: the same definitions as ``indicators.sql``, written independently, as
the benchmark's baseline and a third parity check (DuckDB = Spark = pandas on small extracts).

Input: the contract tables as pandas DataFrames (``apc``, ``op``, ``ae``; dates as datetime64 or dates) and the
residence lookup; output: the same count tables as :func:`indicators.run_counts` (after ``indicators.normalise``).
Dates are handled as whole days since 1970-01-01 (float, NaN where missing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leaguetables.inputs.records.indicators import band_labels, normalise, quarter_dates
from leaguetables.inputs.records.settings import RecordSettings


def _days(series: pd.Series) -> np.ndarray:
    values = pd.to_datetime(series).to_numpy("datetime64[D]")
    out = values.astype("int64").astype(float)
    out[np.isnat(values)] = np.nan
    return out


def _starts(codes: pd.Series, prefixes: list[str]) -> np.ndarray:
    text = codes.fillna("").astype(str)
    hit = np.zeros(len(text), bool)
    for p in sorted(set(prefixes)):
        hit |= text.str.startswith(p).to_numpy()
    return hit & codes.notna().to_numpy()


def _band(age: np.ndarray, bounds: list[int]) -> np.ndarray:
    labels = np.array(band_labels(bounds), dtype=object)
    return labels[np.searchsorted(np.asarray(bounds[1:]), age, side="right")]


def _diag_group(diag: pd.Series, settings: RecordSettings) -> np.ndarray:
    d3 = diag.fillna("").str.slice(0, 3).to_numpy(object)
    out = np.full(len(d3), "other", dtype=object)
    done = np.zeros(len(d3), bool)
    for g in settings.mortality.diagnosis_groups:
        hit = ~done & (d3 >= g.from_) & (d3 <= g.to) & (d3 != "")
        out[hit] = g.id
        done |= hit
    return out


def _procedure(opertn: pd.Series, settings: RecordSettings) -> np.ndarray:
    out = np.full(len(opertn), "other", dtype=object)
    done = np.zeros(len(opertn), bool)
    for p in settings.day_case.procedures:
        hit = ~done & _starts(opertn, p.opcs)
        out[hit] = p.name
        done |= hit
    return out


def _admission(admimeth: pd.Series, settings: RecordSettings) -> np.ndarray:
    c = settings.codes
    return np.select(
        [admimeth.isin(c.elective_admimeth), admimeth.isin(c.emergency_admimeth)], ["elective", "emergency"], "other"
    )


def _age(values: pd.Series) -> np.ndarray:
    age = values.to_numpy("int64")
    return np.where(age >= 7001, 0, age)


def spells(apc: pd.DataFrame) -> pd.DataFrame:
    """Provider spells (HES: same patient, provider and admission date); first- and last-episode fields."""
    text = {  # text columns keep their dtype (pandas' string dtype, Arrow-backed, for Parquet input)
        "pid": "PSEUDO_HESID",
        "procode": "PROCODE3",
        "epikey": "EPIKEY",
        "admimeth": "ADMIMETH",
        "classpat": "CLASSPAT",
        "dismeth": "DISMETH",
        "lsoa11": "LSOA11",
        "diag": "DIAG_4_01",
        "opertn": "OPERTN_4_01",
    }
    e = pd.DataFrame({k: apc[c] for k, c in text.items()})
    e = e.assign(
        admidate=_days(apc["ADMIDATE"]),
        epistart=_days(apc["EPISTART"]),
        epiorder=apc["EPIORDER"].to_numpy("int64"),
        disdate=_days(apc["DISDATE"]),
        age=_age(apc["STARTAGE"]),
        sex=apc["SEX"].where(apc["SEX"].isin(["1", "2"]), "9"),
        opdate=_days(apc["OPDATE_01"]),
        dod=_days(apc["DOD"]),
    )
    key = ["pid", "procode", "admidate"]
    e = e.sort_values(key + ["epiorder", "epistart", "epikey"], kind="stable")
    g = e.groupby(key, sort=False)
    e["rn"] = g.cumcount() + 1
    e["n"] = g["pid"].transform("size")
    first = e[e["rn"] == 1][key + ["admimeth", "classpat", "age", "sex", "lsoa11", "diag", "opertn", "opdate"]]
    last = e[e["rn"] == e["n"]][key + ["disdate", "dismeth"]]
    dod = e.groupby(key, sort=False, as_index=False, dropna=False)["dod"].max()
    return first.merge(last, on=key).merge(dod, on=key)


def quarter_episodes(apc: pd.DataFrame, quarter: str) -> pd.DataFrame:
    """The episodes of the patients with an episode admitted or discharged in the quarter: the other patients'
    episodes cannot change a count (``quarter_patients`` in ``indicators.sql``)."""
    touches = _in_quarter(pd.Series(_days(apc["ADMIDATE"])), quarter) | _in_quarter(
        pd.Series(_days(apc["DISDATE"])), quarter
    )
    # patients as codes (pandas.factorize): ``isin`` against the ~half a million ids of the quarter's patients costs
    # about ten times as much on pandas' Arrow-backed strings
    codes, uniques = pd.factorize(apc["PSEUDO_HESID"])
    kept = np.zeros(len(uniques) + 1, bool)  # the last entry: a missing id (code -1), never kept
    kept[codes[touches & (codes >= 0)]] = True
    return apc[kept[codes]]


def cips(sp: pd.DataFrame, settings: RecordSettings) -> pd.DataFrame:
    """Continuous inpatient spells: a spell admitted by transfer within the gap of the previous discharge continues
    it; then, per CIPS, the latest earlier emergency discharge and the first later eligible emergency admission."""
    c = settings.codes
    s = sp.sort_values(["pid", "admidate", "disdate", "procode"], na_position="last", kind="stable").reset_index(
        drop=True
    )
    g = s.groupby("pid", sort=False)
    prev = g["disdate"].shift(1)
    gap = s["admidate"] - prev
    cont = (
        s["admimeth"].isin(c.transfer_admimeth) & prev.notna() & (gap >= 0) & (gap <= settings.spells.transfer_gap_days)
    )
    s["new"] = np.where(cont, 0, 1)
    s["cips_no"] = s.groupby("pid", sort=False)["new"].cumsum()
    nxt = s.groupby("pid", sort=False)["new"].shift(-1)
    first = s[s["new"] == 1][["pid", "cips_no", "admidate", "admimeth", "classpat", "age", "sex", "lsoa11", "diag"]]
    last = s[nxt.isna() | (nxt == 1)][["pid", "cips_no", "disdate", "procode", "dismeth"]]
    dod = s.groupby(["pid", "cips_no"], sort=False, as_index=False, dropna=False)["dod"].max()
    ci = first.merge(last, on=["pid", "cips_no"]).merge(dod, on=["pid", "cips_no"])
    ci = ci.sort_values(["pid", "cips_no"], kind="stable").reset_index(drop=True)
    emerg = ci["admimeth"].isin(c.emergency_admimeth).to_numpy()
    prior = pd.Series(np.where(emerg, ci["disdate"], np.nan)).groupby(ci["pid"], sort=False).shift(1)
    ci["prior_emerg_dis"] = prior.groupby(ci["pid"], sort=False).cummax()
    ci["prior_emerg_dis"] = ci["prior_emerg_dis"].groupby(ci["pid"], sort=False).ffill()
    eligible = emerg & ~_starts(ci["diag"], settings.readmissions.exclude_diagnosis_prefixes)
    later = pd.Series(np.where(eligible, ci["admidate"], np.nan)).groupby(ci["pid"], sort=False).shift(-1)
    rev = later[::-1]
    nm = rev.groupby(ci["pid"][::-1], sort=False).cummin()
    ci["next_emerg_adm"] = nm.groupby(ci["pid"][::-1], sort=False).ffill()[::-1]
    return ci


def _in_quarter(days: pd.Series, quarter: str) -> np.ndarray:
    start, end = quarter_dates(quarter)
    lo = (np.datetime64(start, "D") - np.datetime64("1970-01-01", "D")).astype(int)
    hi = (np.datetime64(end, "D") - np.datetime64("1970-01-01", "D")).astype(int)
    return ((days >= lo) & (days <= hi)).to_numpy()


def _provider_counts(sp: pd.DataFrame, quarter: str, settings: RecordSettings) -> dict[str, pd.DataFrame]:
    c = settings.codes
    q = _in_quarter(sp["disdate"], quarter)
    elective, emergency = sp["admimeth"].isin(c.elective_admimeth), sp["admimeth"].isin(c.emergency_admimeth)
    los_classes = (
        c.ordinary_classpat
        if settings.length_of_stay.classpat == "ordinary"
        else c.ordinary_classpat + c.day_case_classpat + c.regular_attender_classpat + c.maternity_classpat
    )
    los = sp[q & sp["classpat"].isin(los_classes) & (elective | emergency)].copy()
    los["admission"] = np.where(los["admimeth"].isin(c.elective_admimeth), "elective", "emergency")
    los["bed_days"] = los["disdate"] - los["admidate"]
    los["bed_days_sq"] = los["bed_days"] * los["bed_days"]
    los["diagnosis_group"] = _diag_group(los["diag"], settings)
    los["age_band"] = _band(los["age"].to_numpy(), settings.standardisation.age_bands)
    out = {
        "los": los.groupby(["procode", "admission", "diagnosis_group", "age_band"], as_index=False, dropna=False).agg(
            spells=("pid", "size"), bed_days=("bed_days", "sum"), bed_days_sq=("bed_days_sq", "sum")
        )
    }
    pre = sp[q & elective & sp["classpat"].isin(c.ordinary_classpat) & sp["opdate"].notna()].copy()
    pre["preop_days"] = pre["opdate"] - pre["admidate"]
    pre["before"] = (pre["opdate"] > pre["admidate"]).astype(int)
    out["preop"] = pre.groupby("procode", as_index=False, dropna=False).agg(
        spells=("pid", "size"), preop_days=("preop_days", "sum"), admitted_before_day_of_surgery=("before", "sum")
    )
    dc = sp[
        q
        & elective
        & sp["classpat"].isin(c.ordinary_classpat + c.day_case_classpat)
        & _starts(sp["opertn"], settings.day_case.prefixes)
    ].copy()
    dc["dc"] = dc["classpat"].isin(c.day_case_classpat).astype(int)
    dc["procedure"] = _procedure(dc["opertn"], settings)
    out["day_case"] = dc.groupby(["procode", "procedure"], as_index=False, dropna=False).agg(
        spells=("pid", "size"), day_cases=("dc", "sum")
    )
    return {k: v.rename(columns={"procode": "trust_code"}) for k, v in out.items()}


def _cips_counts(
    ci: pd.DataFrame, quarter: str, settings: RecordSettings, residence: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    c = settings.codes
    q = _in_quarter(ci["disdate"], quarter)
    base = ~ci["admimeth"].isin(c.maternity_admimeth) & ~ci["classpat"].isin(
        c.regular_attender_classpat + c.maternity_classpat
    )
    died = ci["dismeth"].isin(c.died_dismeth)
    still = ci["dismeth"].isin(c.stillbirth_dismeth)
    idx = ci[q & base & ~died & ~still & ~_starts(ci["diag"], settings.readmissions.exclude_diagnosis_prefixes)].copy()
    gap = idx["next_emerg_adm"] - idx["disdate"]
    idx["re"] = ((gap >= 0) & (gap <= settings.readmissions.window_days - 1)).astype(int)
    idx["age_band"] = _band(idx["age"].to_numpy(), settings.standardisation.age_bands)
    idx["admission"] = _admission(idx["admimeth"], settings)
    out = {
        "readmissions": idx.groupby(["procode", "age_band", "sex", "admission"], as_index=False, dropna=False).agg(
            index_spells=("pid", "size"), readmissions=("re", "sum")
        )
    }
    m = ci[q & base & ~still].copy()
    after = m["dod"] - m["disdate"]
    within = (after >= 0) & (after <= settings.mortality.post_discharge_days)
    m["deaths"] = (m["dismeth"].isin(c.died_dismeth) | within).astype(int)
    m["diagnosis_group"] = _diag_group(m["diag"], settings)
    m["age_band"] = _band(m["age"].to_numpy(), settings.mortality.age_bands)
    m["admission"] = _admission(m["admimeth"], settings)
    since = m["admidate"] - m["prior_emerg_dis"]
    m["prior_emergency"] = ((since >= 0) & (since <= settings.mortality.comorbidity_lookback_days)).astype(int)
    keys = ["procode", "diagnosis_group", "age_band", "sex", "admission", "prior_emergency"]
    out["mortality"] = m.groupby(keys, as_index=False, dropna=False).agg(
        spells=("pid", "size"), deaths=("deaths", "sum")
    )
    out = {k: v.rename(columns={"procode": "trust_code"}) for k, v in out.items()}
    adm = ci[_in_quarter(ci["admidate"], quarter) & ci["admimeth"].isin(c.emergency_admimeth)]
    res = residence[["lsoa11", "icb", "imd_quintile"]]
    e = adm.merge(res, on="lsoa11", how="inner")
    e["age_band"] = _band(e["age"].to_numpy(), settings.icb.age_bands)
    e["acsc"] = _starts(e["diag"], settings.icb.acsc_prefixes).astype(int)
    out["icb_strata"] = (
        e.groupby(["icb", "age_band", "sex", "imd_quintile"], as_index=False, dropna=False)
        .agg(emergency_admissions=("pid", "size"), acsc_admissions=("acsc", "sum"))
        .rename(columns={"icb": "icb_code"})
    )
    out["icb_patients"] = _icb_patients(e)
    unmatched = len(adm) - int(adm["lsoa11"].isin(res["lsoa11"]).sum()) if len(adm) else 0
    out["icb_unmatched"] = pd.DataFrame({"emergency_admissions": [unmatched]})
    return out


def _icb_patients(e: pd.DataFrame) -> pd.DataFrame:
    """Per ICB: Σ over patients of the square of their emergency (and ACSC) admissions in the quarter."""
    per = e.groupby(["icb", "pid"], as_index=False).agg(k=("pid", "size"), a=("acsc", "sum"))
    per = per.assign(emergency_admissions_sq=per["k"] ** 2, acsc_admissions_sq=per["a"] ** 2)
    out = per.groupby("icb", as_index=False)[["emergency_admissions_sq", "acsc_admissions_sq"]].sum()
    return out.rename(columns={"icb": "icb_code"})


def _op_ae_counts(op: pd.DataFrame, ae: pd.DataFrame, quarter: str, settings: RecordSettings) -> dict:
    c = settings.codes
    o = op[_in_quarter(pd.Series(_days(op["APPTDATE"])), quarter) & op["ATTENDED"].isin(c.op_booked).to_numpy()]
    seen, first = o["ATTENDED"].isin(c.op_attended), o["FIRSTATT"].isin(c.op_first)
    o = o.assign(
        first=(first & seen).astype(int),
        fu=(o["FIRSTATT"].isin(c.op_follow_up) & seen).astype(int),
        booked=first.astype(int),
        seen=seen.astype(int),
    )
    a = ae[
        _in_quarter(pd.Series(_days(ae["ARRIVALDATE"])), quarter)
        & ae["AEDEPTTYPE"].isin(c.ae_type1).to_numpy()
        & ae["DEPDUR"].notna().to_numpy()
    ]
    a = a.assign(long=(a["DEPDUR"] > settings.ae.long_wait_minutes).astype(int))
    bands = settings.standardisation.age_bands
    o = o.assign(age_band=_band(_age(o["APPTAGE"]), bands))
    a = a.assign(age_band=_band(_age(a["ARRIVALAGE"]), bands))
    op_counts = o.groupby(["PROCODE3", "age_band"], as_index=False, dropna=False).agg(
        first_attendances=("first", "sum"),
        follow_ups=("fu", "sum"),
        booked_first_appointments=("booked", "sum"),
        seen=("seen", "sum"),
    )
    return {
        # the age bands with an attended appointment (booked first appointments counted in those bands only)
        "op_follow_up": op_counts[op_counts["seen"] > 0].drop(columns="seen"),
        "ae_12hr": a.groupby(["PROCODE3", "age_band"], as_index=False, dropna=False).agg(
            attendances=("long", "size"), over_12_hours=("long", "sum")
        ),
    }


def run_counts_pandas(
    apc: pd.DataFrame,
    op: pd.DataFrame,
    ae: pd.DataFrame,
    quarter: str,
    settings: RecordSettings,
    residence: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every count table of ``indicators.sql``, computed with pandas alone."""
    sp = spells(quarter_episodes(apc, quarter))
    out = _provider_counts(sp, quarter, settings)
    out |= _cips_counts(cips(sp, settings), quarter, settings, residence)
    op_ae = _op_ae_counts(op, ae, quarter, settings)
    out |= {k: v.rename(columns={"PROCODE3": "trust_code"}) for k, v in op_ae.items()}
    order = [
        "los",
        "preop",
        "day_case",
        "readmissions",
        "mortality",
        "op_follow_up",
        "ae_12hr",
        "icb_strata",
        "icb_patients",
        "icb_unmatched",
    ]
    return {k: normalise(out[k]) for k in order}
