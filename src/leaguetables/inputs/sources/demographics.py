"""Trust catchment demographics from OHID catchments and local-authority statistics.

Inputs (folder ``trust_catchment_demographics`` of the real data, all OGL v3.0):

* ``ohid_catchment_trust22_to_ltla21.csv`` — OHID "NHS Acute (Hospital) Trust Catchment
  Populations" (HES all admissions), as packaged by ``geographr``: for each acute trust (2022
  codes, 138 trusts) the share of its catchment population living in each lower-tier local
  authority (LTLA 2021); shares sum to 1 per trust (a multi-year average, c. 2015–2020).
* ``ons_population_mid2020_ltla21_single_year_age.csv`` — ONS mid-2020 population estimates by
  single year of age (0–89, 90+).
* ``imd2019_ltla22.csv`` — English Indices of Deprivation 2019, LAD summaries: ``Score`` =
  population-weighted average IMD score (LAD 2022 codes = LAD 2021 codes in England).
* ``ruc2011_pct_rural_pop_ltla21_derived.csv`` — share of each LAD's population living in
  RUC2011-rural LSOAs.

Covariates of a trust (catchment-weighted averages of LAD values, weights = the OHID shares —
a trust's catchment in a LAD is assumed to share the LAD's age structure and deprivation):

* ``share_65plus`` / ``share_85plus`` — Σ_l w_tl · (LAD population aged 65+ / 85+ ÷ total);
* ``imd_score`` — Σ_l w_tl · IMD 2019 average score;
* ``rural_share`` — Σ_l w_tl · rural share;
* ``population`` — catchment population. The OHID shares alone do not give it; OHID
  catchments partition each area's population between trusts, so Σ_t P_t · w_tl ≈ Pop_l for
  every English LAD. ``P`` is estimated by non-negative least squares over the 309 LADs
  (mid-2020 populations). Well identified for general acute trusts: against PHE's 2018
  catchment populations (THF trust reference file) for the 99 general acute trusts unchanged
  since April 2018, median ratio 1.011, 91% within ±10%, correlation 0.987. Specialist trusts
  with diffuse catchments are poorly identified; a zero estimate is returned as NaN.
* ``ethnic_minority_share`` — NaN: no ethnicity table among the inputs.

Mergers: catchments use 2022 codes; predecessors are mapped to their successor (``ods``) and
combined — population summed, shares population-weighted.

Agreement: the shares and scores reproduce ``trust_catchment_demographics_derived.csv``
(``pct_65_plus``, ``pct_85_plus``, ``imd2019_score``, ``pct_rural_ruc2011``) to floating-point
precision (max absolute difference < 1e-12 over the 138 trusts; see the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from leaguetables.inputs.sources.common import DEFAULT_RAW_DIR, DEMOGRAPHIC_COLUMNS, map_codes

DEFAULT_FOLDER = DEFAULT_RAW_DIR / "trust_catchment_demographics"
FILES = {
    "catchment": "ohid_catchment_trust22_to_ltla21.csv",
    "population": "ons_population_mid2020_ltla21_single_year_age.csv",
    "imd": "imd2019_ltla22.csv",
    "rural": "ruc2011_pct_rural_pop_ltla21_derived.csv",
}
COVARIATES = DEMOGRAPHIC_COLUMNS[2:]  # the shares and scores, without the trust code and population


def catchment_shares(folder: Path | str = DEFAULT_FOLDER) -> pd.DataFrame:
    """``trust_code, ltla_code, share`` (OHID, 2022 trust codes)."""
    c = pd.read_csv(Path(folder) / FILES["catchment"], dtype={"nhs_trust22_code": str, "ltla21_code": str})
    return pd.DataFrame(
        {
            "trust_code": c["nhs_trust22_code"].str.upper(),
            "ltla_code": c["ltla21_code"],
            "share": c["proportion_trust_came_from_ltla"].astype(float),
        }
    )


def lad_table(folder: Path | str = DEFAULT_FOLDER) -> pd.DataFrame:
    """Per LTLA 2021: ``population, share_65plus, share_85plus, imd_score, rural_share``."""
    folder = Path(folder)
    pop = pd.read_csv(folder / FILES["population"], dtype={"ltla21_code": str})
    ages = {c: (90 if c.strip() == "90+" else int(c)) for c in pop.columns if c.strip().rstrip("+").isdigit()}
    total = pop[list(ages)].sum(axis=1)
    out = pd.DataFrame(
        {
            "ltla_code": pop["ltla21_code"],
            "population": pop["total_population"].astype(float),
            "share_65plus": pop[[c for c, a in ages.items() if a >= 65]].sum(axis=1) / total,
            "share_85plus": pop[[c for c, a in ages.items() if a >= 85]].sum(axis=1) / total,
        }
    ).set_index("ltla_code")
    imd = pd.read_csv(folder / FILES["imd"], dtype={"ltla22_code": str}).set_index("ltla22_code")["Score"]
    rural = pd.read_csv(folder / FILES["rural"], dtype={"ltla21_code": str}).set_index("ltla21_code")[
        "pct_rural_ruc2011"
    ]
    out["imd_score"] = imd.reindex(out.index)
    out["rural_share"] = rural.reindex(out.index)
    return out


def catchment_populations(shares: pd.DataFrame, lad: pd.DataFrame) -> pd.Series:
    """NNLS estimate of each trust's catchment population (see module docstring)."""
    matrix = shares.pivot_table(index="ltla_code", columns="trust_code", values="share", aggfunc="sum", fill_value=0.0)
    england = [c for c in lad.index if str(c).startswith("E")]
    matrix = matrix.reindex(england, fill_value=0.0)
    estimate, _ = nnls(
        matrix.to_numpy(), lad.loc[england, "population"].to_numpy(dtype=float), maxiter=50 * matrix.shape[1]
    )
    pop = pd.Series(estimate, index=matrix.columns, name="population")
    return pop.where(pop > 0)


def catchment_demographics(folder: Path | str = DEFAULT_FOLDER) -> pd.DataFrame:
    """Covariates per 2022 trust code (the 138 OHID acute trusts), contract columns."""
    shares = catchment_shares(folder)
    lad = lad_table(folder)
    m = shares.join(lad, on="ltla_code")
    if m[["share_65plus", "imd_score", "rural_share"]].isna().any().any():
        bad = sorted(m.loc[m[["share_65plus", "imd_score", "rural_share"]].isna().any(axis=1), "ltla_code"].unique())
        raise ValueError(f"LAD covariates missing for {bad}")
    cols = ["share_65plus", "share_85plus", "imd_score", "rural_share"]
    weighted = m[cols].mul(m["share"], axis=0)
    weighted["trust_code"] = m["trust_code"]
    out = weighted.groupby("trust_code")[cols].sum() / m.groupby("trust_code")["share"].sum().to_numpy()[:, None]
    out["population"] = catchment_populations(shares, lad).reindex(out.index)
    out["ethnic_minority_share"] = np.nan
    return out.reset_index()[DEMOGRAPHIC_COLUMNS]


def combine(demo: pd.DataFrame, successors: Mapping[str, str] | None) -> pd.DataFrame:
    """Map predecessors to successors: population summed, covariates population-weighted."""
    df = demo.copy()
    df["trust_code"] = map_codes(df["trust_code"], successors).astype(str)
    rows = []
    for code, g in df.groupby("trust_code", sort=True):
        if len(g) == 1:
            rows.append(g.iloc[0].to_dict())
            continue
        w = g["population"].to_numpy(dtype=float)
        if np.isnan(w).all():
            w = np.ones(len(g))
        w = np.nan_to_num(w)
        row = {"trust_code": code, "population": g["population"].sum(min_count=1)}
        for col in COVARIATES:
            v = g[col].to_numpy(dtype=float)
            ok = ~np.isnan(v) & (w > 0)
            row[col] = float(np.average(v[ok], weights=w[ok])) if ok.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)[DEMOGRAPHIC_COLUMNS]


def trust_demographics(
    trust_codes: Iterable[str], successors: Mapping[str, str] | None = None, folder: Path | str = DEFAULT_FOLDER
) -> pd.DataFrame:
    """Contract demographics table: one row per trust in ``trust_codes`` (NaN where the trust has
    no OHID catchment, e.g. mental-health, community and ambulance trusts)."""
    codes = pd.Index(pd.Series(list(trust_codes), dtype="str"), name="trust_code")
    demo = combine(catchment_demographics(folder), successors).set_index("trust_code")
    out = demo.reindex(codes).reset_index()
    out["trust_code"] = out["trust_code"].astype("str")
    for col in DEMOGRAPHIC_COLUMNS[1:]:
        out[col] = out[col].astype("float64")
    return out[DEMOGRAPHIC_COLUMNS]


__all__ = [
    "catchment_shares",
    "lad_table",
    "catchment_populations",
    "catchment_demographics",
    "combine",
    "trust_demographics",
    "DEFAULT_FOLDER",
]
