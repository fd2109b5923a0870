"""The real geography under the synthetic record-level data, and the fictional register laid over it.

Read from the real-data folder (default ``../shared/data/real``, never copied into the project):

* ``geography_population/lookup_lsoa11_sicbl22_icb22_ltla22.csv`` — LSOA 2011 → ICB (July 2022) → LTLA 2022;
* ``geography_population/population20_lsoa11.csv`` — ONS mid-2020 persons by LSOA 2011 and single year of age
  (0 … 89, 90+);
* ``geography_population/ons_sape_sicbl24_icb24_sex_syoa_mid2022.csv`` — ONS mid-2022 ICB population by sex and
  single year of age: the female share of each ICB and age splits the LSOA persons by sex (ONS publishes no LSOA
  population by sex in this folder; its SOURCE.md suggests exactly this);
* ``trust_catchment_demographics/imd2019_lsoa11_ranks_deciles.csv`` — IMD 2019 decile of each LSOA (quintile =
  ⌈decile/2⌉, 1 = most deprived);
* ``trust_catchment_demographics/ohid_catchment_trust22_to_ltla21.csv`` — the share of each acute trust's
  admissions that came from each LTLA (OHID). Turned into the probability that a resident of an LTLA is admitted to
  each trust by Bayes' rule, with each trust's volume solved so that the LTLAs' admissions match their populations
  (:func:`catchment_choice`).

The trusts and ICBs get the demo's fictional codes and names (:func:`fictional_register`): the records' acute
trusts are the demo register's acute trusts (``DEMO-A001`` …, matched to the real catchments by size rank), and the
42 ICBs are ``DEMO-I01`` … ``DEMO-I42`` with invented names. Nothing real is published under a real name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import PROJECT_ROOT
from leaguetables.errors import InputError
from leaguetables.inputs import demo_register

DEFAULT_REAL = PROJECT_ROOT.parent / "shared" / "data" / "real"
AGES = np.arange(91)  # single years 0 … 89 and 90+
FILES = {
    "lookup": "geography_population/lookup_lsoa11_sicbl22_icb22_ltla22.csv",
    "lsoa_pop": "geography_population/population20_lsoa11.csv",
    "icb_sex": "geography_population/ons_sape_sicbl24_icb24_sex_syoa_mid2022.csv",
    "icb_names": "geography_population/icb23_names_codes_en.csv",
    "imd": "trust_catchment_demographics/imd2019_lsoa11_ranks_deciles.csv",
    "catchment": "trust_catchment_demographics/ohid_catchment_trust22_to_ltla21.csv",
    "imd_ltla": "trust_catchment_demographics/imd2019_ltla22.csv",
    "rural_ltla": "trust_catchment_demographics/ruc2011_pct_rural_pop_ltla21_derived.csv",
}


@dataclass(frozen=True)
class Geography:
    """Arrays over the English LSOAs (2011), their ICB and LTLA, and the catchment choice of acute trust."""

    lsoa: np.ndarray  # (n_lsoa,) LSOA 2011 codes (E01…), sorted by ICB then code
    lsoa_icb: np.ndarray  # (n_lsoa,) ICB index 0 … 41 (into icb_codes)
    lsoa_ltla: np.ndarray  # (n_lsoa,) LTLA index (into ltla and the rows of choice)
    ltla: np.ndarray  # (n_ltla,) LTLA 2022 codes (= LAD 2021 in England), sorted
    lsoa_imdq: np.ndarray  # (n_lsoa,) IMD 2019 quintile, 1 = most deprived
    pop: np.ndarray  # (n_lsoa, 91) persons by single year of age (ONS mid-2020)
    female: np.ndarray  # (42, 91) female share by ICB and age (ONS mid-2022)
    icb_codes: np.ndarray  # (42,) fictional ICB codes, DEMO-I01 …
    icb_names: np.ndarray  # (42,) fictional ICB names
    icb_region: np.ndarray  # (42,) NHS region of the ICB (real region names)
    trust_codes: np.ndarray  # (n_trust,) fictional acute trust codes of the demo register (DEMO-A001 …)
    trust_procode: np.ndarray  # (n_trust,) their 3-character provider codes in the records (PROCODE3: Z01 …)
    choice: np.ndarray  # (n_ltla, n_trust) P(admitted to trust | resident of LTLA); rows sum to 1


_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def procode3(trust_code: str) -> str:
    """The 3-character provider code (HES ``PROCODE3``) of a demo trust in the records: ``DEMO-A001`` → ``Z01``,
    ``DEMO-A036`` → ``Z10`` (``Z`` and the trust's number in base 36). No NHS trust has a ``Z`` code."""
    m = re.fullmatch(r"DEMO-A(\d{3})", trust_code)
    if not m or not 0 < int(m.group(1)) < 36 * 36:
        raise ValueError(f"not a demo acute trust code: {trust_code!r}")
    i = int(m.group(1))
    return "Z" + _BASE36[i // 36] + _BASE36[i % 36]


def _read(root: Path, key: str, **kw) -> pd.DataFrame:
    path = Path(root) / FILES[key]
    if not path.is_file():
        raise InputError(f"{path}: file not found (the real-data folder is given by --real; default {DEFAULT_REAL})")
    return pd.read_csv(path, **kw)


def available(root: Path | str = DEFAULT_REAL) -> bool:
    """True when every real file the generator reads is present under ``root``."""
    return all((Path(root) / f).is_file() for f in FILES.values())


def catchment_choice(share: np.ndarray, demand: np.ndarray, iterations: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """``(P(trust | area), volume)`` from ``share[t, a]`` = the share of trust t's admissions from area a.

    Bayes' rule: P(t | a) ∝ volume_t · share[t, a]. The volumes are solved (multiplicatively, a fixed point) so that
    the admissions implied for every area, Σ_t volume_t · share[t, a], are proportional to ``demand[a]`` (its
    population) as nearly as the shares allow."""
    vol = np.full(share.shape[0], demand.sum() / share.shape[0])
    for _ in range(iterations):
        fitted = vol @ share
        ratio = np.divide(demand, fitted, out=np.ones_like(demand), where=fitted > 0)
        vol = vol * (share @ ratio)
    joint = vol[:, None] * share
    total = joint.sum(axis=0)
    choice = np.divide(joint, total, out=np.zeros_like(joint), where=total > 0).T
    return choice, vol


def _acute_register(demo_seed: int) -> pd.DataFrame:
    """The demo's acute trusts (codes, names, catchment population), exactly as inputs.demo draws them."""
    rng = np.random.default_rng(demo_seed)
    trusts = demo_register.make_trusts(rng)
    pop = demo_register.make_demographics(rng, trusts)
    reg = trusts.merge(pop[["trust_code", "population"]], on="trust_code")
    return reg[reg["trust_type"] == "acute"].reset_index(drop=True)


def _icb_register(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    places = demo_register.place_names(rng, n)
    codes = np.array([f"DEMO-I{i + 1:02d}" for i in range(n)], dtype=object)
    names = np.array([f"{p} Demo Integrated Care Board" for p in places], dtype=object)
    return codes, names


def register_rng(seed: int) -> np.random.Generator:
    """The stream of the fictional ICB register (which real ICB each fictional code stands for, and its name):
    ``default_rng([seed, 1])`` (``generate.effects_rng`` is ``[seed, 0]``, ``generate.chunk_rng`` ``[seed, 2, …]``)."""
    return np.random.default_rng([seed, 1])


def load(root: Path | str = DEFAULT_REAL, *, seed: int, demo_seed: int, acute_trusts: int) -> Geography:
    """Read the real geography under ``root`` and lay the fictional register over it (deterministic)."""
    root = Path(root)
    look = _read(root, "lookup", usecols=["lsoa11_code", "icb22_code_h", "ltla22_code"])
    pop = _read(root, "lsoa_pop").set_index("lsoa11_code")
    imd = _read(root, "imd", usecols=["lsoa11_code", "IMD_decile"]).set_index("lsoa11_code")["IMD_decile"]
    look = look.sort_values(["icb22_code_h", "lsoa11_code"]).reset_index(drop=True)
    icb_q = np.array(sorted(look["icb22_code_h"].unique()))
    sex = _read(root, "icb_sex").copy()
    names = _read(root, "icb_names").set_index("ICB23CD")["ICB23CDH"]
    sex["q"] = sex["ICB 2024 Code"].map(names)
    if sex["q"].isna().any() or set(sex["q"]) != set(icb_q):
        raise InputError(f"{root / FILES['icb_sex']}: ICB codes do not match {FILES['lookup']}")
    fcols, mcols = [f"F{a}" for a in AGES], [f"M{a}" for a in AGES]
    by_icb = sex.groupby("q")[fcols + mcols].sum().loc[icb_q]
    f, m = by_icb[fcols].to_numpy(float), by_icb[mcols].to_numpy(float)
    female = f / (f + m)
    region = sex.groupby("q")["NHSER 2024 Name"].first().loc[icb_q].to_numpy(object)

    ages = [str(a) for a in AGES[:-1]] + ["90+"]
    persons = pop.reindex(look["lsoa11_code"])[ages].to_numpy(float)
    decile = imd.reindex(look["lsoa11_code"]).to_numpy(float)
    if np.isnan(persons).any() or np.isnan(decile).any():
        raise InputError(f"{root / FILES['lsoa_pop']}: an English LSOA of the lookup has no population or IMD decile")

    rng = register_rng(seed)
    order = rng.permutation(len(icb_q))  # fictional ICB k is real ICB order[k]: codes carry no real ordering
    icb_index = pd.Series(np.argsort(order), index=icb_q)
    icb_codes, icb_names = _icb_register(rng, len(icb_q))
    lsoa_icb = icb_index.reindex(look["icb22_code_h"])
    ltla = np.array(sorted(look["ltla22_code"].unique()))
    lsoa_ltla = np.searchsorted(ltla, look["ltla22_code"].to_numpy())
    choice, codes = _trust_choice(root, ltla, np.bincount(lsoa_ltla, weights=persons.sum(1)), demo_seed, acute_trusts)
    keep = np.argsort(lsoa_icb.to_numpy(), kind="stable")  # LSOAs grouped by fictional ICB
    return Geography(
        lsoa=look["lsoa11_code"].to_numpy(object)[keep],
        lsoa_icb=lsoa_icb.to_numpy(int)[keep],
        lsoa_ltla=lsoa_ltla[keep],
        ltla=ltla,
        lsoa_imdq=((decile + 1) // 2).astype(np.int8)[keep],
        pop=persons[keep],
        female=female[order],
        icb_codes=icb_codes,
        icb_names=icb_names,
        icb_region=region[order],
        trust_codes=codes,
        trust_procode=np.array([procode3(c) for c in codes], dtype=object),
        choice=choice,
    )


def _trust_choice(
    root: Path, ltla: np.ndarray, demand: np.ndarray, demo_seed: int, n_keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """P(trust | LTLA) over the ``n_keep`` largest real catchments, relabelled with the demo's acute trusts.

    The real trusts are matched to the demo's acute trusts by size rank (catchment-implied volume against the demo's
    catchment population), so a "Large" demo trust has a large real catchment underneath; the real codes are dropped."""
    cat = _read(root, "catchment")
    real = np.array(sorted(cat["nhs_trust22_code"].unique()))
    share = np.zeros((len(real), len(ltla)))
    ti = np.searchsorted(real, cat["nhs_trust22_code"].to_numpy())
    li = np.searchsorted(ltla, cat["ltla21_code"].to_numpy())
    ok = (li < len(ltla)) & (ltla[np.minimum(li, len(ltla) - 1)] == cat["ltla21_code"].to_numpy())
    np.add.at(share, (ti[ok], li[ok]), cat["proportion_trust_came_from_ltla"].to_numpy(float)[ok])
    share = share / share.sum(axis=1, keepdims=True)
    _, vol = catchment_choice(share, demand)
    register = _acute_register(demo_seed)
    if n_keep != len(register) or n_keep > len(real):
        raise InputError(
            f"acute_trusts = {n_keep}, but the demo register has {len(register)} acute trusts and the "
            f"catchments {len(real)}"
        )
    kept = np.sort(np.argsort(-vol, kind="stable")[:n_keep])
    choice, vol = catchment_choice(share[kept], demand)
    if (choice.sum(axis=1) <= 0).any():
        raise InputError(f"{root / FILES['catchment']}: an LTLA is in no kept trust's catchment")
    by_size = register.sort_values(["population", "trust_code"], ascending=[False, True])["trust_code"].to_numpy()
    codes = np.empty(n_keep, dtype=object)
    codes[np.argsort(-vol, kind="stable")] = by_size
    order = np.argsort(codes)
    return choice[:, order], codes[order]


def icb_covariates(root: Path | str, geo: Geography) -> pd.DataFrame:
    """The demographics of each (fictional) ICB in the columns of the data contract's ``demographics.csv``.

    ``population`` and the shares aged 65+ and 85+: ONS mid-2020 LSOA persons; ``imd_score``: the IMD 2019 average
    score of the LTLAs (MHCLG, LAD 2022) weighted by the ICB's residents in each; ``rural_share``: the RUC 2011 rural
    share of the LTLAs, weighted likewise; ``ethnic_minority_share``: not available here (missing)."""
    root = Path(root)
    imd = _read(root, "imd_ltla", usecols=["ltla22_code", "Score"]).set_index("ltla22_code")["Score"]
    rural = _read(root, "rural_ltla").set_index("ltla21_code")["pct_rural_ruc2011"]
    persons = geo.pop.sum(axis=1)
    rows = []
    for i, code in enumerate(geo.icb_codes):
        sel = geo.lsoa_icb == i
        w = np.bincount(geo.lsoa_ltla[sel], weights=persons[sel], minlength=len(geo.ltla))
        share = w / w.sum()
        rows.append(
            {
                "trust_code": code,
                "population": float(np.round(persons[sel].sum(), -2)),
                "share_65plus": geo.pop[sel][:, 65:].sum() / persons[sel].sum(),
                "share_85plus": geo.pop[sel][:, 85:].sum() / persons[sel].sum(),
                "imd_score": float(share @ imd.reindex(geo.ltla).fillna(0).to_numpy(float)),
                "rural_share": float(share @ rural.reindex(geo.ltla).fillna(0).to_numpy(float)),
                "ethnic_minority_share": np.nan,
            }
        )
    return pd.DataFrame(rows).round({"share_65plus": 4, "share_85plus": 4, "imd_score": 2, "rural_share": 4})
