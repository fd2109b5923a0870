"""The demo's fictional trust register and catchment demographics (obviously fictional names and ``DEMO-`` codes).

Shared by the aggregate demo generator (:mod:`leaguetables.inputs.demo`) and the synthetic record-level generator
(:mod:`leaguetables.inputs.records`), which lays the same acute trusts over the real geography; a module of its own
so that neither generator imports the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leaguetables.config import COVARIATES

COUNTS = {"acute": 134, "mental_health_community": 61, "ambulance": 10}
PREFIX = {"acute": "A", "mental_health_community": "M", "ambulance": "B"}
REGIONS = [
    "London",
    "South East",
    "South West",
    "Midlands",
    "East of England",
    "North West",
    "North East and Yorkshire",
]
COVARS = list(COVARIATES[1:])  # the shares and scores, without the population

_FIRST = [
    "Ash",
    "Bram",
    "Cor",
    "Dun",
    "Elm",
    "Fern",
    "Glen",
    "Hol",
    "Ivy",
    "Kes",
    "Lark",
    "Mar",
    "Nor",
    "Oak",
    "Pen",
    "Quil",
    "Rav",
    "Sal",
    "Thorn",
    "Umber",
    "Vel",
    "Wil",
    "Yar",
    "Zen",
    "Alder",
    "Birch",
    "Cran",
    "Dray",
]
_SECOND = [
    "ford",
    "mouth",
    "wick",
    "bury",
    "dale",
    "combe",
    "stead",
    "haven",
    "worth",
    "moor",
    "field",
    "brook",
    "ley",
    "gate",
    "holm",
    "thorpe",
]


def place_names(rng: np.random.Generator, n: int) -> list[str]:
    names = sorted({a + b for a in _FIRST for b in _SECOND})
    picked = rng.choice(len(names), size=n, replace=False)
    return [names[i] for i in picked]


def make_trusts(rng: np.random.Generator) -> pd.DataFrame:
    total = sum(COUNTS.values())
    places = place_names(rng, total * 2)
    rows, k = [], 0
    subtypes = {
        "acute": ["Large"] * 40 + ["Medium"] * 45 + ["Small"] * 20 + ["Teaching"] * 20 + ["Specialist"] * 9,
        "mental_health_community": ["Mental Health and Learning Disability"] * 45 + ["Community"] * 16,
        "ambulance": ["Ambulance"] * 10,
    }
    kind_word = {"acute": "Hospitals", "mental_health_community": "Care Partnership", "ambulance": "Ambulance Service"}
    for ttype, n in COUNTS.items():
        subs = list(rng.permutation(subtypes[ttype]))
        for i in range(n):
            a, b = places[k], places[k + 1]
            k += 2
            name = f"{a} Demo {kind_word[ttype]} Trust" if i % 3 else f"{a} and {b} Demo {kind_word[ttype]} Trust"
            if ttype == "mental_health_community" and subs[i] == "Community":
                name = f"{a} Demo Community Health Trust"
            rows.append(
                {
                    "trust_code": f"DEMO-{PREFIX[ttype]}{i + 1:03d}",
                    "trust_name": name,
                    "trust_type": ttype,
                    "trust_subtype": subs[i],
                    "region": REGIONS[int(rng.integers(len(REGIONS)))] if ttype != "ambulance" else REGIONS[i % 7],
                }
            )
    return pd.DataFrame(rows)


def make_demographics(rng: np.random.Generator, trusts: pd.DataFrame) -> pd.DataFrame:
    n = len(trusts)
    base_pop = (
        trusts["trust_type"]
        .map({"acute": 450_000, "mental_health_community": 1_100_000, "ambulance": 5_600_000})
        .to_numpy(float)
    )
    population = np.round(base_pop * rng.lognormal(0, 0.35, n), -2)
    london = (trusts["region"] == "London").to_numpy()
    rural = np.clip(rng.beta(1.2, 4.0, n) * np.where(london, 0.1, 1.0), 0, 0.95)
    share_65 = np.clip(0.185 + 0.09 * (rural - 0.23) - 0.05 * london + rng.normal(0, 0.03, n), 0.07, 0.35)
    share_85 = np.clip(share_65 * 0.13 + rng.normal(0, 0.003, n), 0.005, 0.06)
    imd = np.clip(rng.gamma(7.0, 3.1, n) - 6 * rural + 4 * london, 5, 55)
    eth = np.clip(rng.beta(1.5, 9, n) + 0.35 * london - 0.08 * rural, 0.01, 0.75)
    return pd.DataFrame(
        {
            "trust_code": trusts["trust_code"],
            "population": population,
            "share_65plus": np.round(share_65, 4),
            "share_85plus": np.round(share_85, 4),
            "imd_score": np.round(imd, 2),
            "rural_share": np.round(rural, 4),
            "ethnic_minority_share": np.round(eth, 4),
        }
    )
