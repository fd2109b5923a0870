"""Indirectly standardised ratios from the synthetic records, checked against the generator's truth.

A reading of the records independent of the truth files (DuckDB over the Parquet files, so it runs at national
scale in bounded memory): per acute trust, SHMI-style mortality, emergency readmissions within 0–29 days, emergency
bed days, basket day cases, 12 hours or more in A&E and outpatient follow-ups; per ICB of residence, emergency and
ACSC admissions. DuckDB sums the records per organisation and stratum (the strata of ``truth/definitions.json``);
each ratio is then ``O/E`` with ``E`` from the national rate of every stratum and the limits of
:func:`leaguetables.statistics.rates.ratio` (exact Poisson below 10 events, Byar's from 10), or for the ICBs
:func:`leaguetables.statistics.rates.isr` against the population of ``geography/population.csv``.

:func:`recovery` compares them with ``truth/ratios.csv``: the correlation of the estimated and the true ratio (and
of log ratio and true effect) and the share of 95% intervals covering the true ratio.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from leaguetables.inputs.records import model
from leaguetables.inputs.records.contract import connect
from leaguetables.statistics import rates

BAND = "least({age} // 5, 18)"  # 0–4 … 85–89, 90+ (generate.AGE_BANDS)


def _scan(folder: Path, dataset: str) -> str:
    path = str(Path(folder) / dataset / "**" / "*.parquet").replace("'", "''")
    return f"read_parquet('{path}', hive_partitioning = false)"


def _spells(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Temporary table ``spells``: emergency spells (patient, provider, admission date) from their episodes, with
    the diagnosis group, death in hospital or within 30 days of discharge, and bed days."""
    groups = pd.DataFrame([(c, i) for i, g in enumerate(model.GROUPS) for c in g["codes"]], columns=["code", "grp"])
    con.register("diag_groups", groups)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE spells AS
        WITH e AS (SELECT * FROM {_scan(folder, "apc")} WHERE ADMIMETH LIKE '2%')
        SELECT f.PSEUDO_HESID, f.PROCODE3, f.ADMIDATE, l.DISDATE, f.STARTAGE, f.SEX, f.LSOA11, f.DIAG_4_01, g.grp,
               (l.DISMETH = '4' OR (f.DOD IS NOT NULL AND f.DOD <= l.DISDATE + INTERVAL 30 DAY)) AS died,
               date_diff('day', f.ADMIDATE, l.DISDATE) AS bed_days
        FROM e AS f
        JOIN e AS l ON f.PSEUDO_HESID = l.PSEUDO_HESID AND f.PROCODE3 = l.PROCODE3 AND f.ADMIDATE = l.ADMIDATE
        LEFT JOIN diag_groups AS g ON g.code = f.DIAG_4_01
        WHERE f.EPIORDER = 1 AND l.DISDATE IS NOT NULL""")


def _isr(agg: pd.DataFrame, strata: list[str], outcome: str) -> pd.DataFrame:
    """O/E per organisation from sums per organisation and stratum (``org``, strata, ``n`` records, ``x`` events)."""
    agg = agg.astype({"n": float, "x": float})
    nat = agg.groupby(strata)[["x", "n"]].sum()
    rate = (nat["x"] / nat["n"]).rename("rate")
    agg = agg.join(rate, on=strata)
    agg["e"] = agg["n"] * agg["rate"]
    by = agg.groupby("org").agg(observed=("x", "sum"), expected=("e", "sum"), records=("n", "sum"))
    out = rates.ratio(by["observed"], by["expected"])
    out.insert(0, "expected", by["expected"].to_numpy())
    out.insert(0, "observed", by["observed"].to_numpy())
    out.insert(0, "org_code", by.index.to_numpy())
    out.insert(0, "outcome", outcome)
    return out.reset_index(drop=True)


def trust_ratios(folder: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """The six trust outcomes (``org_code`` is the records' ``PROCODE3``)."""
    con = con or connect()
    _spells(con, folder)
    band = BAND.format(age="STARTAGE")
    mort = con.sql(f"""SELECT PROCODE3 AS org, grp, {band} AS band, (SEX = '1')::INT AS male, count(*) AS n,
                              sum(died::INT) AS x, sum(bed_days) AS bed_days FROM spells GROUP BY ALL""").df()
    parts = [
        _isr(mort, ["grp", "band", "male"], "mortality"),
        _isr(
            mort.groupby(["org", "grp", "band"], as_index=False)[["n", "bed_days"]]
            .sum()
            .rename(columns={"bed_days": "x"}),
            ["grp", "band"],
            "los",
        ),
        _isr(_readmission_sums(con), ["band", "male"], "readmission"),
    ]
    basket = ", ".join(f"'{c}'" for c in model.BASKET_OPCS)
    dc = con.sql(f"""SELECT PROCODE3 AS org, OPERTN_4_01 AS proc, count(*) AS n, sum((CLASSPAT = '2')::INT) AS x
                     FROM {_scan(folder, "apc")} WHERE ADMIMETH LIKE '1%' AND EPIORDER = 1
                     AND OPERTN_4_01 IN ({basket}) GROUP BY ALL""").df()
    parts.append(_isr(dc, ["proc"], "daycase"))
    ae = con.sql(f"""SELECT PROCODE3 AS org, AEDEPTTYPE AS dtype, {BAND.format(age="ARRIVALAGE")} AS band,
                            count(*) AS n, sum((DEPDUR >= 720)::INT) AS x
                     FROM {_scan(folder, "ae")} WHERE DEPDUR IS NOT NULL GROUP BY ALL""").df()
    parts.append(_isr(ae, ["dtype", "band"], "ae_12hr"))
    fu = con.sql(f"""WITH op AS (SELECT * FROM {_scan(folder, "op")}),
                     fu AS (SELECT PSEUDO_HESID, count(*) AS k FROM op WHERE FIRSTATT IN ('2', '4') GROUP BY 1)
                     SELECT o.PROCODE3 AS org, {BAND.format(age="o.APPTAGE")} AS band, count(*) AS n,
                            sum(coalesce(fu.k, 0)) AS x
                     FROM op AS o LEFT JOIN fu USING (PSEUDO_HESID) WHERE o.FIRSTATT IN ('1', '3')
                     GROUP BY ALL""").df()
    parts.append(_isr(fu, ["band"], "followup"))
    return pd.concat(parts, ignore_index=True).assign(org_type="trust")


def _readmission_sums(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Index: emergency spells of patients who did not die within 30 days of discharge; readmitted: another, later
    emergency admission of the same patient (any provider) 0–29 days after the discharge."""
    return con.sql(f"""
        WITH idx AS (SELECT * FROM spells WHERE NOT died),
        hit AS (SELECT DISTINCT i.PSEUDO_HESID, i.PROCODE3, i.ADMIDATE FROM idx AS i
                JOIN spells AS r ON r.PSEUDO_HESID = i.PSEUDO_HESID AND r.ADMIDATE > i.ADMIDATE
                 AND r.ADMIDATE BETWEEN i.DISDATE AND i.DISDATE + INTERVAL 29 DAY)
        SELECT i.PROCODE3 AS org, {BAND.format(age="i.STARTAGE")} AS band, (i.SEX = '1')::INT AS male,
               count(*) AS n, count(h.PSEUDO_HESID) AS x
        FROM idx AS i LEFT JOIN hit AS h USING (PSEUDO_HESID, PROCODE3, ADMIDATE) GROUP BY ALL""").df()


def emergency_admissions(folder: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Emergency and ACSC admissions per ICB of residence, single year of age, sex and IMD quintile."""
    con = con or connect()
    _spells(con, folder)
    lsoa = str(Path(folder) / "geography" / "lsoa_icb.csv").replace("'", "''")
    acsc = ", ".join(f"'{c}'" for c in model.ACSC_CODES)
    return con.sql(f"""
        SELECT l.icb_code, least(s.STARTAGE, 90) AS age, s.SEX AS sex, l.imd_quintile::INT AS imd_quintile,
               count(*) AS emergency, sum((s.DIAG_4_01 IN ({acsc}))::INT) AS acsc
        FROM spells AS s JOIN read_csv('{lsoa}', header = true, all_varchar = true) AS l USING (LSOA11)
        GROUP BY ALL""").df()


def icb_ratios(folder: Path, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Emergency and ACSC admissions per ICB of residence, indirectly standardised by single year of age, sex and
    IMD quintile against the population the records represent (:func:`rates.isr`)."""
    folder = Path(folder)
    counts = emergency_admissions(folder, con)
    pop = pd.read_csv(folder / "geography" / "population.csv", dtype={"sex": str})
    keys = ["icb_code", "age", "sex", "imd_quintile"]
    local = (
        pop.merge(counts, on=keys, how="left").fillna({"emergency": 0, "acsc": 0}).rename(columns={"population": "n"})
    )
    out = []
    for outcome in ("emergency", "acsc"):
        ref = local.groupby(["age", "sex", "imd_quintile"], as_index=False)[[outcome, "n"]].sum()
        r = rates.isr(local, ref, on=["age", "sex", "imd_quintile"], by="icb_code", x=outcome, ref_x=outcome)
        obs = local.groupby("icb_code")[outcome].sum()
        r.insert(0, "observed", obs.reindex(r.index).to_numpy(float))
        r.insert(0, "org_code", r.index.to_numpy())
        r.insert(0, "outcome", outcome)
        out.append(r.reset_index(drop=True))
    return pd.concat(out, ignore_index=True).assign(org_type="icb")


COUNT_OUTCOMES = ("mortality", "readmission", "ae_12hr", "followup", "emergency", "acsc")


def recovery(folder: Path) -> pd.DataFrame:
    """Per outcome: organisations, correlation of estimated and true ratios, of log ratio and true effect, and the
    coverage of the 95% intervals (counts of events; bed days and day cases are not Poisson counts)."""
    folder = Path(folder)
    con = connect()
    trusts = trust_ratios(folder, con)
    reg = pd.read_csv(folder / "registers" / "trusts.csv")
    trusts["org_code"] = trusts["org_code"].map(dict(zip(reg["procode3"], reg["trust_code"])))
    est = pd.concat([trusts, icb_ratios(folder, con)], ignore_index=True)
    truth = pd.read_csv(folder / "truth" / "ratios.csv")
    eff = pd.read_csv(folder / "truth" / "effects.csv")
    m = est.merge(truth, on=["org_type", "org_code", "outcome"]).merge(eff, on=["org_type", "org_code", "outcome"])
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
                "poisson_count": outcome in COUNT_OUTCOMES,
                "covered": int(covered.sum()),
            }
        )
    return pd.DataFrame(rows)
