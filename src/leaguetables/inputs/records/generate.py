"""Synthetic national record-level data: ``python -m leaguetables.inputs.records.generate --scale demo|national``.

Writes HES-format admitted patient care episodes (``apc/``), outpatient attendances (``op/``) and A&E attendances
(``ae/``) — the columns of the record-level contract — as Parquet, hive-partitioned by ``FYEAR`` (``2526``) and
``QUARTER`` (``Q1`` … ``Q4``), for fictional acute trusts (the demo register's ``DEMO-A…`` codes) and fictional ICBs
(``DEMO-I01`` …) laid over the real geography and populations (:mod:`.geography`): patients are drawn from the ONS
populations by LSOA, single year of age and sex, with real IMD 2019 deprivation, and admitted to trusts by the real
OHID catchment shares. The model (:mod:`.model`) is known and saved beside the data:

* ``truth/effects.csv`` — every trust's and ICB's true effect per outcome;
* ``truth/ratios.csv`` — per organisation and outcome the true standardised ratio (Σ of the true expected outcome of
  its records ÷ Σ of the national true mean of their strata), the estimand of an indirectly standardised ratio;
* ``registers/`` (the fictional trusts and ICBs), ``geography/`` (LSOA → fictional ICB and IMD quintile, and the
  population the records represent by ICB, sex, single year of age and IMD quintile), ``manifest.json``.

Generation is vectorised (numpy) and chunked by ICB of residence (memory bounded by the largest ICB); chunks use
their own random streams (:func:`chunk_rng`: ``default_rng([seed, 2, quarter, icb, dataset])``, none shared with
another chunk, the effects' or the geography's), so the output does not depend on the number of worker processes. Readmissions and follow-ups fall in the quarter of their index event (a readmission after the
quarter's end wraps to its start: the steady state of a continuous series), so each quarter's rates are exact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leaguetables.config import PROJECT_ROOT, load_record_generator
from leaguetables.errors import InputError
from leaguetables.inputs.records import geography, model
from leaguetables.inputs.records.geography import AGES, Geography

DEFAULT_OUT = {"demo": PROJECT_ROOT / "data" / "demo" / "records", "national": PROJECT_ROOT / "data" / "records"}
EPOCH = np.datetime64("1970-01-01", "D")
AGE_BANDS = np.minimum(AGES // 5, 18)  # 0–4 … 85–89, 90+
TRUST_OUTCOMES = ("mortality", "readmission", "los", "daycase", "ae_12hr", "followup")
ICB_OUTCOMES = ("emergency", "acsc")


@dataclass(frozen=True)
class Period:
    quarter: str  # 2025-26-Q4
    index: int  # position in the generated quarters
    start: int  # days since 1970-01-01
    days: int

    @property
    def fyear(self) -> str:
        return self.quarter[2:4] + self.quarter[5:7]

    @property
    def years(self) -> float:
        return self.days / 365.25


def period(quarter: str, index: int = 0) -> Period:
    y, q = int(quarter[:4]), int(quarter[-1])
    month = 3 * q + 1  # Q1 = April
    start = np.datetime64(f"{y + (month > 12):04d}-{(month - 1) % 12 + 1:02d}-01", "D")
    end = start.astype("datetime64[M]") + 3
    return Period(
        quarter, index, int((start - EPOCH).astype(int)), int((end.astype("datetime64[D]") - start).astype(int))
    )


@dataclass(frozen=True)
class Effects:
    trust: dict[str, np.ndarray]  # outcome -> (n_trust,)
    icb: dict[str, np.ndarray]  # outcome -> (42,)


def effects_rng(seed: int) -> np.random.Generator:
    """The stream of the true effects, ``default_rng([seed, 0])`` (the geography's is ``[seed, 1]``,
    :func:`geography.register_rng`; the chunks' ``[seed, 2, …]``, :func:`chunk_rng`)."""
    return np.random.default_rng([seed, 0])


def draw_effects(seed: int, trust_codes: np.ndarray, n_icb: int, demo_effects: pd.DataFrame | None = None) -> Effects:
    """The true effects: drawn from :func:`effects_rng`; with ``demo_effects`` (the demo's
    ``truth/trust_effects``: metric_id, trust_code, effect) the outcomes of :data:`model.DEMO_EFFECTS` take the demo
    trust's own effect instead (the draws are made all the same, so the others do not depend on it)."""
    rng = effects_rng(seed)
    trust = {k: rng.normal(0, sd, len(trust_codes)) for k, sd in model.TRUST_EFFECT_SD.items()}
    icb = {k: rng.normal(0, sd, n_icb) for k, sd in model.ICB_EFFECT_SD.items()}
    if demo_effects is not None:
        for outcome, metric_id in model.DEMO_EFFECTS.items():
            own = demo_effects[demo_effects["metric_id"] == metric_id].set_index("trust_code")["effect"]
            values = own.reindex(trust_codes).to_numpy(float)
            if np.isnan(values).any():
                raise InputError(f"the demo has no {metric_id} effect for some record-level trusts")
            trust[outcome] = values
    return Effects(trust, icb)


DEMO_TRUST_EFFECTS = PROJECT_ROOT / "data" / "demo" / "truth" / "trust_effects.csv"


def demo_trust_effects(path: Path = DEMO_TRUST_EFFECTS) -> pd.DataFrame:
    """The demo's true trust effects as ``make demo-data`` saved them (``data/demo/truth/trust_effects.csv``).

    Read from the file, not recomputed: :mod:`leaguetables.inputs.demo` calls this module to add the records to the
    demo (and passes its effects in memory), so this module does not import it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; the records' trust effects are the demo's: run make demo-data first")
    return pd.read_csv(path, dtype={"metric_id": str, "trust_code": str, "effect": float})


# ----------------------------------------------------------------------------------------------------- helpers


def _categorical(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A draw per row from the cumulative distributions ``cum[rows]`` (rows index the first axis)."""
    u = rng.random(len(rows))
    out = np.empty(len(rows), dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    keys, starts = np.unique(rows[order], return_index=True)
    bounds = np.append(starts, len(rows))
    for k, key in enumerate(keys):
        sel = order[bounds[k] : bounds[k + 1]]
        out[sel] = np.searchsorted(cum[key], u[sel], side="right")
    return np.minimum(out, cum.shape[1] - 1)


def _choice(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    return rng.choice(len(values), size=n, p=np.asarray(p) / np.sum(p))


_VOCAB: dict[int, tuple[np.ndarray, pa.Array]] = {}  # the geography's long code arrays, converted once per process


def _strings(vocab: list[str] | np.ndarray, idx: np.ndarray) -> pa.Array:
    if isinstance(vocab, np.ndarray):  # LSOA and provider codes: the Geography's arrays (kept alive by it)
        cached = _VOCAB.get(id(vocab))
        if cached is None or cached[0] is not vocab:
            cached = _VOCAB[id(vocab)] = (vocab, pa.array(list(vocab), pa.string()))
        table = cached[1]
    else:
        table = pa.array(vocab, pa.string())
    return pc.take(table, pa.array(idx, pa.int32()))


def _ids(prefix: str, base: int, n: int) -> pa.Array:
    num = pc.cast(pa.array(base + np.arange(n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), num, "")


def _patients(ids: np.ndarray) -> pa.Array:
    num = pc.cast(pa.array(np.asarray(ids, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar("SYN"), num, "")


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


# ----------------------------------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cells:
    """The population cells (LSOA × single year of age × sex) of one ICB."""

    lsoa: np.ndarray  # index into Geography.lsoa
    age: np.ndarray
    male: np.ndarray  # 1 male, 0 female
    pop: np.ndarray  # persons (real, not scaled)
    imdq: np.ndarray
    ltla: np.ndarray


def cells_of(geo: Geography, icb: int) -> Cells:
    lsoa = np.flatnonzero(geo.lsoa_icb == icb)
    n_l, n_a = len(lsoa), len(AGES)
    fem = geo.female[icb]
    pop = np.stack([geo.pop[lsoa] * (1 - fem), geo.pop[lsoa] * fem], axis=2)  # (n_l, 91, 2): male, female
    lsoa_c = np.repeat(lsoa, n_a * 2)
    return Cells(
        lsoa=lsoa_c,
        age=np.tile(np.repeat(AGES, 2), n_l),
        male=np.tile([1, 0], n_l * n_a),
        pop=pop.reshape(-1),
        imdq=geo.lsoa_imdq[lsoa_c],
        ltla=geo.lsoa_ltla[lsoa_c],
    )


def intensity(cells: Cells, kind: str, scale: float, icb_effect: float = 0.0) -> np.ndarray:
    """Expected events per cell: population × scale (person-years drawn) × rate × sex and deprivation ratios."""
    rr = np.where(cells.male == 1, model.MALE_RR[kind], 1.0) * model.DEP_RR[kind][cells.imdq - 1]
    return cells.pop * scale * model.RATE[kind][cells.age] * rr * np.exp(icb_effect)


def readmission_factor(geo: Geography, eff: Effects) -> dict[bool, np.ndarray]:
    """Expected readmissions per emergency index spell by (LTLA, age, male), for ACSC and other index groups.

    Σ_t P(t | LTLA) · P(readmitted | age, sex, t) · P(no death | group mix at age, sex, t): the readmission spells
    an ICB's emergency admissions include, so that its true expected count is exact."""
    age = AGES[:, None, None]
    male = np.array([0, 1])[None, :, None]
    out = {}
    for acsc in (True, False):
        idx, mix = model.group_mix(acsc)
        dead = sum(
            mix[:, k][:, None, None]
            * model.expit(model.mortality_logit(np.array(g), age, male, eff.trust["mortality"][None, None, :]))
            for k, g in enumerate(idx)
        )
        q = model.expit(model.readmission_logit(age, male, eff.trust["readmission"][None, None, :])) * (1 - dead)
        out[acsc] = np.einsum("lt,amt->lam", geo.choice, q)  # (n_ltla, 91, 2): [..., 0] female, [..., 1] male
    return out


# ----------------------------------------------------------------------------------------------------- truth sums


class Truth:
    """Sums of the true expected outcome and of the record count per organisation and stratum (chunks add up)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(
        self,
        org_type: str,
        outcome: str,
        org: np.ndarray,
        stratum: np.ndarray,
        mu: np.ndarray,
        n: np.ndarray | None = None,
    ) -> None:
        if len(org) == 0:
            return
        org, stratum = np.asarray(org, np.int64), np.asarray(stratum, np.int64)
        size = int(stratum.max()) + 1
        key = org * size + stratum
        length = int(key.max()) + 1
        rows = np.bincount(key, minlength=length)
        sums = np.bincount(key, weights=mu, minlength=length)
        counts = rows.astype(float) if n is None else np.bincount(key, weights=n, minlength=length)
        hit = np.flatnonzero(rows)
        self.parts.append(
            pd.DataFrame(
                {
                    "org_type": org_type,
                    "outcome": outcome,
                    "org": hit // size,
                    "stratum": hit % size,
                    "mu": sums[hit],
                    "n": counts[hit],
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        cols = ["org_type", "outcome", "org", "stratum", "mu", "n"]
        if not self.parts:
            return pd.DataFrame(columns=cols)
        return pd.concat(self.parts).groupby(cols[:4], as_index=False)[["mu", "n"]].sum()


# ----------------------------------------------------------------------------------------------------- admissions


def _rows(rng: np.random.Generator, mu: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(mu)), rng.poisson(mu))


def _trust_of(rng: np.random.Generator, geo: Geography, ltla: np.ndarray) -> np.ndarray:
    return _categorical(rng, np.cumsum(geo.choice, axis=1), ltla)


def emergency_spells(
    rng: np.random.Generator, geo: Geography, cells: Cells, eff: Effects, per: Period, scale: float, icb: int
) -> dict[str, np.ndarray]:
    """Emergency spells (ACSC and other) of one ICB's residents: case mix, trust, dates, stay, death."""
    parts = []
    for acsc in (True, False):
        kind = "acsc" if acsc else "emergency"
        rows = _rows(rng, intensity(cells, kind, scale, geo_effect(eff, kind, icb)))
        idx, mix = model.group_mix(acsc)
        g = np.asarray(idx)[_categorical(rng, np.cumsum(mix, axis=1), cells.age[rows])]
        parts.append((rows, g))
    rows = np.concatenate([p[0] for p in parts])
    group = np.concatenate([p[1] for p in parts])
    spells = {
        "cell": rows,
        "group": group,
        "trust": _trust_of(rng, geo, cells.ltla[rows]),
        "admit": per.start + rng.integers(0, per.days, len(rows)),
        "readmission": np.zeros(len(rows), bool),
    }
    return _stay_and_outcome(rng, cells, eff, spells, can_die=True)


def geo_effect(eff: Effects, kind: str, icb: int) -> float:
    return float(eff.icb[kind][icb]) if kind in eff.icb else 0.0


def _stay_and_outcome(rng: np.random.Generator, cells: Cells, eff: Effects, s: dict, can_die: bool) -> dict:
    age, male, t = cells.age[s["cell"]], cells.male[s["cell"]], s["trust"]
    m = model.los_mean(s["group"], age, eff.trust["los"][t])
    s["los_mu"] = m
    s["los"] = rng.poisson(m * rng.gamma(model.LOS_SHAPE, 1 / model.LOS_SHAPE, len(m)))
    p = (
        model.expit(model.mortality_logit(s["group"], age, male, eff.trust["mortality"][t]))
        if can_die
        else np.zeros(len(m))
    )
    s["p_death"] = p
    died = rng.random(len(m)) < p
    in_hosp = died & (rng.random(len(m)) < model.IN_HOSPITAL_DEATHS)
    s["discharge"] = s["admit"] + s["los"]
    s["dod"] = np.where(in_hosp, s["discharge"], np.where(died, s["discharge"] + rng.integers(1, 31, len(m)), -1))
    s["dismeth"] = np.where(in_hosp, 3, rng.choice(3, size=len(m), p=[0.95, 0.03, 0.02]))  # '1','2','3' or '4'
    s["died"] = died
    s["method"] = _choice(rng, model.EMERGENCY_METHODS, model.EMERGENCY_METHODS_P, len(m))
    return s


def readmissions(
    rng: np.random.Generator, geo: Geography, cells: Cells, eff: Effects, per: Period, idx: dict
) -> tuple[dict, np.ndarray]:
    """Emergency readmissions (0–29 days after discharge) of the index spells whose patient did not die; the
    readmission spells are not themselves followed up and do not end in death. Returns them and P(readmission)."""
    age, male, t = cells.age[idx["cell"]], cells.male[idx["cell"]], idx["trust"]
    p = np.where(idx["died"], 0.0, model.expit(model.readmission_logit(age, male, eff.trust["readmission"][t])))
    hit = np.flatnonzero(rng.random(len(p)) < p)
    when = idx["discharge"][hit] + rng.integers(0, 30, len(hit))
    when = when + (when == idx["admit"][hit])  # a distinct spell: not on the index spell's admission day
    when = per.start + (when - per.start) % per.days  # after the quarter's end: wraps to its start (steady state)
    when = np.where(when == idx["admit"][hit], per.start + (when + 1 - per.start) % per.days, when)
    cell = idx["cell"][hit]
    other = _trust_of(rng, geo, cells.ltla[cell])
    trust = np.where(rng.random(len(hit)) < model.READM_SAME_TRUST, t[hit], other)
    g_idx, mix = model.group_mix(False)
    group = np.asarray(g_idx)[_categorical(rng, np.cumsum(mix, axis=1), cells.age[cell])]
    spells = {
        "cell": cell,
        "group": group,
        "trust": trust,
        "admit": when,
        "readmission": np.ones(len(hit), bool),
        "patient_of": hit,
    }
    spells = _stay_and_outcome(rng, cells, eff, spells, can_die=False)
    spells["method"][:] = 0  # '21': via A&E
    return spells, p


def elective_spells(
    rng: np.random.Generator, geo: Geography, cells: Cells, eff: Effects, per: Period, scale: float
) -> dict:
    rows = _rows(rng, intensity(cells, "elective", scale))
    age = cells.age[rows]
    proc = _categorical(rng, np.cumsum(model.procedure_mix(), axis=1), age)
    trust = _trust_of(rng, geo, cells.ltla[rows])
    basket = np.array([p["basket"] for p in model.PROCEDURES])[proc]
    alpha = np.array([p["daycase"] for p in model.PROCEDURES])[proc]
    p_dc = model.expit(alpha + np.where(basket, eff.trust["daycase"][trust], 0.0))
    daycase = rng.random(len(rows)) < p_dc
    los_mu = np.array([p["los"] for p in model.PROCEDURES])[proc]
    los = np.where(daycase, 0, 1 + rng.poisson(np.maximum(los_mu - 1, 0)))
    admit = per.start + rng.integers(0, per.days, len(rows))
    return {
        "cell": rows,
        "proc": proc,
        "trust": trust,
        "basket": basket,
        "p_daycase": p_dc,
        "daycase": daycase,
        "los": los,
        "admit": admit,
        "discharge": admit + los,
        "method": _choice(rng, model.ELECTIVE_METHODS, model.ELECTIVE_METHODS_P, len(rows)),
    }


# ----------------------------------------------------------------------------------------------------- APC records

DIAG_VOCAB = [c for g in model.GROUPS for c in g["codes"]] + sorted({p["diag"] for p in model.PROCEDURES})
_GROUP_OFFSET = np.cumsum([0] + [len(g["codes"]) for g in model.GROUPS])[:-1]
_GROUP_NCODES = np.array([len(g["codes"]) for g in model.GROUPS])
EMERGENCY_PROCEDURE = {"hip_fracture": "W461", "myocardial_infarction": "K751"}
OPCS_VOCAB = sorted({p["opcs"] for p in model.PROCEDURES} | set(EMERGENCY_PROCEDURE.values()))


def _spell_frame(rng: np.random.Generator, em: dict, re: dict, el: dict, pid_base: int) -> dict[str, Any]:
    """All spells of a chunk as arrays (emergency index, readmission, elective), with patients and codes."""
    n_em, n_re, n_el = len(em["cell"]), len(re["cell"]), len(el["cell"])
    pid_em = pid_base + np.arange(n_em)
    patient = np.concatenate([pid_em, pid_em[re["patient_of"]], pid_base + n_em + np.arange(n_el)])
    g = np.concatenate([em["group"], re["group"]])
    diag_em = _GROUP_OFFSET[g] + (rng.random(len(g)) * _GROUP_NCODES[g]).astype(int)
    tail = _GROUP_OFFSET[-1] + _GROUP_NCODES[-1]
    diag_el = tail + np.searchsorted(DIAG_VOCAB[tail:], np.array([p["diag"] for p in model.PROCEDURES])[el["proc"]])
    op_em = np.array([EMERGENCY_PROCEDURE.get(x["name"], "-") for x in model.GROUPS])
    opertn_em = np.searchsorted(OPCS_VOCAB, op_em[g])
    opertn_el = np.searchsorted(OPCS_VOCAB, np.array([p["opcs"] for p in model.PROCEDURES])[el["proc"]])
    methods = model.EMERGENCY_METHODS + model.ELECTIVE_METHODS
    admit = np.concatenate([em["admit"], re["admit"], el["admit"]])
    opertn = np.concatenate([opertn_em, opertn_el])
    has_op = np.asarray(OPCS_VOCAB)[opertn] != "-"
    return {
        "cell": np.concatenate([em["cell"], re["cell"], el["cell"]]),
        "trust": np.concatenate([em["trust"], re["trust"], el["trust"]]),
        "patient": patient,
        "admit": admit,
        "discharge": np.concatenate([em["discharge"], re["discharge"], el["discharge"]]),
        "los": np.concatenate([em["los"], re["los"], el["los"]]),
        "method": np.concatenate([em["method"], re["method"], len(model.EMERGENCY_METHODS) + el["method"]]),
        "methods": methods,
        "classpat": np.concatenate([np.zeros(n_em + n_re, int), np.where(el["daycase"], 1, 0)]),  # '1' or '2'
        "dismeth": np.concatenate([em["dismeth"], re["dismeth"], rng.choice(3, size=n_el, p=[0.98, 0.01, 0.01])]),
        "dod": np.concatenate([em["dod"], re["dod"], np.full(n_el, -1)]),
        "diag": np.concatenate([diag_em, diag_el]),
        "opertn": opertn,
        "opdate": np.where(has_op, admit + np.minimum(1, np.concatenate([em["los"], re["los"], el["los"]])), -1),
    }


def apc_table(rng: np.random.Generator, geo: Geography, cells: Cells, s: dict, epi_base: int) -> pa.Table:
    """Episodes from spells: a second consultant episode for some stays of 2+ days (DISDATE and DISMETH on the
    last episode only)."""
    two = (s["los"] >= 2) & (rng.random(len(s["los"])) < model.SECOND_EPISODE)
    spell = np.repeat(np.arange(len(two)), 1 + two)
    order = np.ones(len(spell), dtype=np.int64)
    order[1:][spell[1:] == spell[:-1]] = 2
    last = (order == 2) | ~two[spell]
    split = s["admit"] + np.maximum(1, (rng.random(len(two)) * s["los"]).astype(int))
    start = np.where(order == 1, s["admit"][spell], split[spell])
    end = np.where(last, s["discharge"][spell], split[spell])
    cell = s["cell"][spell]
    dod = s["dod"][spell]
    return pa.table(
        {
            "PSEUDO_HESID": _patients(s["patient"][spell]),
            "EPIKEY": _ids("E", epi_base, len(spell)),
            "PROCODE3": _strings(geo.trust_procode, s["trust"][spell]),
            "ADMIDATE": _dates(s["admit"][spell]),
            "EPISTART": _dates(start),
            "EPIEND": _dates(end),
            "DISDATE": _dates(s["discharge"][spell], mask=~last),
            "EPIORDER": pa.array(order, pa.int64()),
            "ADMIMETH": _strings(s["methods"], s["method"][spell]),
            "CLASSPAT": _strings(["1", "2"], s["classpat"][spell]),
            "DISMETH": _strings(["1", "2", "3", "4", "8"], np.where(last, s["dismeth"][spell], 4)),
            "STARTAGE": pa.array(cells.age[cell], pa.int64()),
            "SEX": _strings(["2", "1"], cells.male[cell]),
            "LSOA11": _strings(geo.lsoa, cells.lsoa[cell]),
            "DIAG_4_01": _strings(DIAG_VOCAB, s["diag"][spell]),
            "OPERTN_4_01": _strings(OPCS_VOCAB, np.where(order == 1, s["opertn"][spell], OPCS_VOCAB.index("-"))),
            "OPDATE_01": _dates(s["opdate"][spell], mask=(s["opdate"][spell] < 0) | (order == 2)),
            "DOD": _dates(dod, mask=dod < 0),
        }
    )


# ----------------------------------------------------------------------------------------------------- A&E and OP

_HOUR_W = np.array([2, 1.5, 1, 1, 1, 1, 1.5, 2.5, 4, 5.5, 6, 6, 6, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5, 4.5, 4, 3.5, 3])


@dataclass(frozen=True)
class Chunk:
    """One ICB-quarter's setting for the A&E and outpatient draws: its geography, population cells, the true effects,
    the quarter, the person-years drawn per person (``scale``) and the truth sums they add to."""

    geo: Geography
    cells: Cells
    eff: Effects
    per: Period
    scale: float
    truth: Truth


def ae_table(rng: np.random.Generator, chunk: Chunk, key_base: int) -> pa.Table:
    """A&E attendances: department type, arrival, minutes to departure (12 hours or more by the trust's effect)."""
    geo, cells, eff, per, scale, truth = chunk.geo, chunk.cells, chunk.eff, chunk.per, chunk.scale, chunk.truth
    rows = _rows(rng, intensity(cells, "ae", scale))
    n, age = len(rows), cells.age[rows]
    trust = _trust_of(rng, geo, cells.ltla[rows])
    dtype = _choice(rng, model.AE_TYPES, model.AE_TYPE_P, n)
    p12 = np.where(dtype == 0, model.expit(model.ae12_logit(age, eff.trust["ae_12hr"][trust])), 0.0)
    long = rng.random(n) < p12
    short = np.where(dtype == 0, rng.lognormal(np.log(170), 0.55, n), rng.lognormal(np.log(70), 0.5, n))
    depdur = np.where(long, 720 + rng.gamma(1.5, 160, n), np.minimum(short, 719)).astype(np.int64)
    hour = rng.choice(24, size=n, p=_HOUR_W / _HOUR_W.sum())
    minute = rng.integers(0, 60, n)
    admitted = rng.random(n) < np.where(dtype == 0, 0.08 + 0.004 * np.maximum(age - 20, 0), 0.01)
    disp = np.where(admitted, 0, rng.choice([1, 2, 3], size=n, p=[0.35, 0.55, 0.10]))
    truth.add("trust", "ae_12hr", trust, dtype * 19 + AGE_BANDS[age], p12)
    hhmm = pc.utf8_lpad(pc.cast(pa.array(hour * 100 + minute), pa.string()), 4, "0")
    return pa.table(
        {
            "PSEUDO_HESID": _patients(key_base + np.arange(n)),
            "AEKEY": _ids("A", key_base, n),
            "PROCODE3": _strings(geo.trust_procode, trust),
            "ARRIVALDATE": _dates(per.start + rng.integers(0, per.days, n)),
            "ARRIVALTIME": hhmm,
            "DEPDUR": pa.array(depdur, pa.int64()),
            "AEDEPTTYPE": _strings(model.AE_TYPES, dtype),
            "ARRIVALAGE": pa.array(age, pa.int64()),
            "SEX": _strings(["2", "1"], cells.male[rows]),
            "LSOA11": _strings(geo.lsoa, cells.lsoa[rows]),
            "AEATTENDDISP": _strings(["01", "02", "03", "04"], disp),
        }
    )


def op_draws(rng: np.random.Generator, chunk: Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cells, trusts, follow-ups)``: the outpatient first attendances (the cell of each), the trust of each and its
    number of follow-ups (Poisson, mean by age and the trust's effect, added to the chunk's truth) — the first draws
    of :func:`op_table`, which makes the rows from them (a follow-up count by trust needs no rows: ``recovery``)."""
    geo, cells, eff, scale, truth = chunk.geo, chunk.cells, chunk.eff, chunk.scale, chunk.truth
    firsts = _rows(rng, intensity(cells, "op_first", scale))
    age = cells.age[firsts]
    trust = _trust_of(rng, geo, cells.ltla[firsts])
    mu = model.followup_mean(age, eff.trust["followup"][trust])
    n_fu = rng.poisson(mu)
    truth.add("trust", "followup", trust, AGE_BANDS[age], mu)
    return firsts, trust, n_fu


def op_table(rng: np.random.Generator, chunk: Chunk, key_base: int) -> pa.Table:
    """Outpatient first attendances and their follow-ups (:func:`op_draws`), all dated in the quarter (steady
    state)."""
    geo, cells, per = chunk.geo, chunk.cells, chunk.per
    firsts, trust, n_fu = op_draws(rng, chunk)
    owner = np.concatenate([np.arange(len(firsts)), np.repeat(np.arange(len(firsts)), n_fu)])
    first = np.arange(len(owner)) < len(firsts)
    n = len(owner)
    tele = rng.random(n) < np.where(first, 0.12, 0.20)
    firstatt = np.where(first, np.where(tele, 2, 0), np.where(tele, 3, 1))  # '1','2','3','4'
    attended = rng.choice(5, size=n, p=[0.90, 0.02, 0.05, 0.02, 0.01])
    cell = firsts[owner]
    return pa.table(
        {
            "PSEUDO_HESID": _patients(key_base + owner),
            "ATTENDKEY": _ids("O", key_base, n),
            "PROCODE3": _strings(geo.trust_procode, trust[owner]),
            "APPTDATE": _dates(per.start + rng.integers(0, per.days, n)),
            "FIRSTATT": _strings(["1", "2", "3", "4"], firstatt),
            "ATTENDED": _strings(["5", "6", "3", "2", "7"], attended),
            "APPTAGE": pa.array(cells.age[cell], pa.int64()),
            "SEX": _strings(["2", "1"], cells.male[cell]),
            "LSOA11": _strings(geo.lsoa, cells.lsoa[cell]),
            "TRETSPEF": _strings(
                model.TREATMENT_SPECIALTIES, rng.integers(0, len(model.TREATMENT_SPECIALTIES), len(firsts))[owner]
            ),
        }
    )


# ----------------------------------------------------------------------------------------------------- one chunk


def _icb_truth(truth: Truth, cells: Cells, eff: Effects, icb: int, scale: float, readm: dict[bool, np.ndarray]):
    """The ICB's exact expected emergency (with the readmissions they lead to) and ACSC admissions by stratum
    (single year of age × sex × IMD quintile), and the population they come from."""
    mu_a = intensity(cells, "acsc", scale, geo_effect(eff, "acsc", icb))
    mu_e = intensity(cells, "emergency", scale, geo_effect(eff, "emergency", icb))
    key = (cells.ltla, cells.age, cells.male)
    total = mu_a * (1 + readm[True][key]) + mu_e * (1 + readm[False][key])
    stratum = (cells.age * 2 + cells.male) * 5 + (cells.imdq - 1)
    org = np.full(len(stratum), icb)
    truth.add("icb", "acsc", org, stratum, mu_a, cells.pop * scale)
    truth.add("icb", "emergency", org, stratum, total, cells.pop * scale)


def _apc_truth(truth: Truth, cells: Cells, em: dict, re: dict, el: dict, p_readm: np.ndarray) -> None:
    both = {k: np.concatenate([em[k], re[k]]) for k in ("cell", "group", "trust", "p_death", "los_mu")}
    age, male = cells.age[both["cell"]], cells.male[both["cell"]]
    band = AGE_BANDS[age]
    truth.add("trust", "mortality", both["trust"], (both["group"] * 19 + band) * 2 + male, both["p_death"])
    truth.add("trust", "los", both["trust"], both["group"] * 19 + band, both["los_mu"])
    alive = ~em["died"]
    e_age, e_male = cells.age[em["cell"]][alive], cells.male[em["cell"]][alive]
    truth.add("trust", "readmission", em["trust"][alive], AGE_BANDS[e_age] * 2 + e_male, p_readm[alive])
    r_age, r_male = cells.age[re["cell"]], cells.male[re["cell"]]  # readmission spells: index spells never followed
    truth.add("trust", "readmission", re["trust"], AGE_BANDS[r_age] * 2 + r_male, np.zeros(len(r_age)))
    b = el["basket"]
    truth.add("trust", "daycase", el["trust"][b], el["proc"][b], el["p_daycase"][b])


CHUNK_DATASETS = ("apc", "ae", "op")
CHUNK_STREAM = 2  # the second word of every chunk's seed: 0 is the effects' stream, 1 the geography's


def chunk_rng(seed: int, quarter_index: int, icb: int, dataset: str) -> np.random.Generator:
    """The random stream of one chunk's dataset (``dataset``: apc, ae or op): ``default_rng([seed, 2, quarter, icb,
    dataset])``.

    Five words, so that no chunk shares its stream with the effects' (``[seed, 0]``) or the geography's
    (``[seed, 1]``): numpy's SeedSequence pads a seed of up to four words with zeros, so ``[seed, 0]`` and
    ``[seed, 0, 0, 0]`` are one stream — under the former four-word chunk seeds ``[seed, quarter, icb, dataset]`` the
    first ICB's admissions of the first quarter were drawn from the very bits of the effects, and of the second
    quarter from those of the geography's ICB order."""
    return np.random.default_rng([seed, CHUNK_STREAM, quarter_index, icb, CHUNK_DATASETS.index(dataset)])


def simulate_chunk(
    geo: Geography, eff: Effects, per: Period, icb: int, scale: float, seed: int, readm: dict[bool, np.ndarray]
) -> tuple[dict[str, pa.Table], Truth]:
    """All records of one ICB's residents in one quarter, and their truth sums."""
    cells = cells_of(geo, icb)
    years = scale * per.years
    base = (per.index * 64 + icb) * 10_000_000_000
    truth = Truth()
    rng = chunk_rng(seed, per.index, icb, "apc")
    em = emergency_spells(rng, geo, cells, eff, per, years, icb)
    re, p_readm = readmissions(rng, geo, cells, eff, per, em)
    el = elective_spells(rng, geo, cells, eff, per, years)
    spells = _spell_frame(rng, em, re, el, base)
    tables = {"apc": apc_table(rng, geo, cells, spells, base)}
    _apc_truth(truth, cells, em, re, el, p_readm)
    _icb_truth(truth, cells, eff, icb, years, readm)
    chunk = Chunk(geo, cells, eff, per, years, truth)
    tables["ae"] = ae_table(chunk_rng(seed, per.index, icb, "ae"), chunk, base + 3_000_000_000)
    tables["op"] = op_table(chunk_rng(seed, per.index, icb, "op"), chunk, base + 6_000_000_000)
    return tables, truth


# ----------------------------------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Job:
    real: Path
    out: Path
    scale_name: str
    fraction: float
    quarters: tuple[str, ...]
    seed: int
    demo_seed: int
    acute_trusts: int
    combine: bool


_STATE: dict = {}


def _setup(job: Job, demo_effects: pd.DataFrame | None) -> None:
    """Per process: the geography, effects and readmission factors (deterministic, so every worker agrees)."""
    geo = geography.load(job.real, seed=job.seed, demo_seed=job.demo_seed, acute_trusts=job.acute_trusts)
    eff = draw_effects(job.seed, geo.trust_codes, len(geo.icb_codes), demo_effects)
    _STATE.update(job=job, geo=geo, eff=eff, readm=readmission_factor(geo, eff))


def _part_dir(out: Path, dataset: str, per: Period) -> Path:
    return out / dataset / f"FYEAR={per.fyear}" / f"QUARTER=Q{per.quarter[-1]}"


def _task(arg: tuple[int, int]) -> tuple[dict[str, pa.Table] | None, pd.DataFrame, dict[str, int]]:
    qi, icb = arg
    job, geo = _STATE["job"], _STATE["geo"]
    per = period(job.quarters[qi], qi)
    tables, truth = simulate_chunk(geo, _STATE["eff"], per, icb, job.fraction, job.seed, _STATE["readm"])
    counts = {k: t.num_rows for k, t in tables.items()}
    if job.combine:
        return tables, truth.frame(), counts
    for name, table in tables.items():
        folder = _part_dir(job.out, name, per)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"icb-{geo.icb_codes[icb]}.parquet")
    return None, truth.frame(), counts


def run(job: Job, workers: int = 1, demo_effects: pd.DataFrame | None = None) -> dict:
    """Generate every chunk (quarter × ICB), write the records, the truth and the registers; return the manifest.

    ``demo_effects``: the demo's ``truth/trust_effects`` (read from the demo data folder when not given)."""
    if demo_effects is None:
        demo_effects = demo_trust_effects()
    _setup(job, demo_effects)
    geo = _STATE["geo"]
    t0 = time.perf_counter()
    tasks = [(qi, icb) for qi in range(len(job.quarters)) for icb in range(len(geo.icb_codes))]
    for dataset in ("apc", "op", "ae"):
        if (job.out / dataset).exists():
            _clear(job.out / dataset)
    truths: list[pd.DataFrame] = []
    counts = {"apc": 0, "op": 0, "ae": 0}
    pending: dict[tuple[str, int], list[pa.Table]] = {}
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_setup, initargs=(job, demo_effects)) as pool:
            results = pool.map(_task, tasks)
            _collect(results, tasks, truths, counts, pending)
    else:
        _collect(map(_task, tasks), tasks, truths, counts, pending)
    for (name, qi), tables in pending.items():
        folder = _part_dir(job.out, name, period(job.quarters[qi], qi))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), folder / "part-0.parquet")
    truth = pd.concat(truths).groupby(["org_type", "outcome", "org", "stratum"], as_index=False)[["mu", "n"]].sum()
    _write_truth(job.out, geo, _STATE["eff"], truth)
    _write_registers(job, geo)
    manifest = {
        "scale": job.scale_name,
        "seed": job.seed,
        "population_fraction": job.fraction,
        "quarters": list(job.quarters),
        "rows": counts,
        "generator": "leaguetables.inputs.records.generate",
        "fictional": True,
    }
    # the same seed and job write the same bytes: the time taken is returned (the command prints it), not written
    (job.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest | {"seconds": round(time.perf_counter() - t0, 1)}


def _collect(results, tasks, truths, counts, pending) -> None:
    for (qi, _), (tables, truth, n) in zip(tasks, results):
        truths.append(truth)
        for k, v in n.items():
            counts[k] += v
        if tables is not None:
            for name, table in tables.items():
                pending.setdefault((name, qi), []).append(table)


def _clear(folder: Path) -> None:
    for p in sorted(folder.rglob("*.parquet")):
        p.unlink()


def true_ratios(truth: pd.DataFrame, codes: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per organisation and outcome: the true observed Σμ, the true expected Σ n·(national Σμ/Σn of the stratum),
    and their ratio (the estimand of an indirectly standardised ratio)."""
    t = truth.copy()
    nat = t.groupby(["org_type", "outcome", "stratum"])[["mu", "n"]].transform("sum")
    t["expected"] = t["n"] * nat["mu"] / nat["n"]
    out = t.groupby(["org_type", "outcome", "org"], as_index=False)[["mu", "n", "expected"]].sum()
    out["org_code"] = [codes[o][i] for o, i in zip(out["org_type"], out["org"])]
    out["true_ratio"] = out["mu"] / out["expected"]
    out = out.rename(columns={"mu": "true_observed", "expected": "true_expected", "n": "records"})
    return (
        out[["org_type", "org_code", "outcome", "records", "true_observed", "true_expected", "true_ratio"]]
        .sort_values(["org_type", "outcome", "org_code"])
        .reset_index(drop=True)
    )


def _write_truth(out: Path, geo: Geography, eff: Effects, truth: pd.DataFrame) -> None:
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rows = [
        {"org_type": "trust", "org_code": c, "outcome": k, "effect": float(v[i])}
        for k, v in eff.trust.items()
        for i, c in enumerate(geo.trust_codes)
    ]
    rows += [
        {"org_type": "icb", "org_code": c, "outcome": k, "effect": float(v[i])}
        for k, v in eff.icb.items()
        for i, c in enumerate(geo.icb_codes)
    ]
    pd.DataFrame(rows).to_csv(out / "truth" / "effects.csv", index=False, lineterminator="\n", float_format="%.10g")
    ratios = true_ratios(truth, {"trust": geo.trust_codes, "icb": geo.icb_codes})
    ratios.to_csv(out / "truth" / "ratios.csv", index=False, lineterminator="\n", float_format="%.10g")
    (out / "truth" / "definitions.json").write_text(
        json.dumps(
            {
                "acsc_icd10": model.ACSC_CODES,
                "daycase_basket_opcs4": model.BASKET_OPCS,
                "strata": {
                    "mortality": "diagnosis group x 5-year age band x sex",
                    "los": "diagnosis group x age band",
                    "readmission": "age band x sex (index: emergency spells of patients who did not die)",
                    "daycase": "basket procedure",
                    "ae_12hr": "department type x age band (all attendances)",
                    "followup": "age band of the first attendance (follow-ups per first)",
                    "emergency": "single year of age x sex x IMD quintile (per resident)",
                    "acsc": "single year of age x sex x IMD quintile (per resident)",
                },
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )


def _write_registers(job: Job, geo: Geography) -> None:
    reg = job.out / "registers"
    geo_dir = job.out / "geography"
    reg.mkdir(parents=True, exist_ok=True)
    geo_dir.mkdir(parents=True, exist_ok=True)
    trusts = geography._acute_register(job.demo_seed)
    trusts = trusts[trusts["trust_code"].isin(geo.trust_codes)].drop(columns="population")
    trusts.insert(1, "procode3", [geography.procode3(c) for c in trusts["trust_code"]])
    trusts.to_csv(reg / "trusts.csv", index=False, lineterminator="\n")
    pd.DataFrame({"icb_code": geo.icb_codes, "icb_name": geo.icb_names, "region": geo.icb_region}).to_csv(
        reg / "icbs.csv", index=False, lineterminator="\n"
    )
    geography.icb_covariates(job.real, geo).to_csv(
        geo_dir / "icb_demographics.csv", index=False, lineterminator="\n", float_format="%.10g"
    )
    pd.DataFrame({"LSOA11": geo.lsoa, "icb_code": geo.icb_codes[geo.lsoa_icb], "imd_quintile": geo.lsoa_imdq}).to_csv(
        geo_dir / "lsoa_icb.csv", index=False, lineterminator="\n"
    )
    frames = []
    for icb in range(len(geo.icb_codes)):
        c = cells_of(geo, icb)
        f = pd.DataFrame(
            {
                "age": c.age,
                "sex": np.where(c.male == 1, "1", "2"),
                "imd_quintile": c.imdq,
                "population": c.pop * job.fraction,
            }
        )
        f = f.groupby(["age", "sex", "imd_quintile"], as_index=False)["population"].sum()
        f.insert(0, "icb_code", geo.icb_codes[icb])
        frames.append(f)
    pd.concat(frames).to_csv(geo_dir / "population.csv", index=False, lineterminator="\n", float_format="%.6g")
    (job.out / "README.md").write_text(
        "# Synthetic record-level hospital data (fictional trusts and ICBs)\n\n"
        f"Generated by `python -m leaguetables.inputs.records.generate --scale {job.scale_name}`; do not edit.\n"
        "Every trust, ICB, name, code, effect and record here is invented: no figure made from these records is a\n"
        "ranking of real organisations. The geography and populations underneath are real (ONS, OHID, MHCLG; OGL v3):\n"
        f"patients are drawn from {job.fraction:g} of the ONS population by LSOA, age and sex. `truth/` holds the\n"
        "model's effects and the true standardised ratios; `geography/population.csv` is the population the records\n"
        "represent (the real population times the fraction), by fictional ICB, single year of age, sex and IMD\n"
        "quintile (1 = most deprived).\n",
        encoding="utf-8",
    )


def make_job(scale: str, out: Path | None = None, real: Path | None = None, config: str = "synthetic") -> Job:
    cfg = load_record_generator(config)
    if scale not in cfg.scales:
        raise InputError(f"unknown scale {scale!r}: choose from {sorted(cfg.scales)}")
    s = cfg.scales[scale]
    return Job(
        real=Path(real or geography.DEFAULT_REAL),
        out=Path(out or DEFAULT_OUT.get(scale, DEFAULT_OUT["demo"])),
        scale_name=scale,
        fraction=s.population_fraction,
        quarters=tuple(s.quarters),
        seed=cfg.seed,
        demo_seed=cfg.demo_seed,
        acute_trusts=cfg.acute_trusts,
        combine=s.combine_files,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m leaguetables.inputs.records.generate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--scale", default="demo", help="a scale of config/records/synthetic.yaml (demo, national)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: data/demo/records or data/records)")
    ap.add_argument("--real", type=Path, default=None, help=f"real-data folder (default: {geography.DEFAULT_REAL})")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: the scale's setting)")
    args = ap.parse_args(argv)
    try:
        job = make_job(args.scale, args.out, args.real)
        workers = args.workers or load_record_generator().scales[args.scale].workers
        manifest = run(job, workers)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"records written to {job.out}: {manifest['rows']} in {manifest['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
