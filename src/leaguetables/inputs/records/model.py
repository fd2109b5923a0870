"""The known model the synthetic records are drawn from: rates, case mix, effects (invented, of realistic size).

Rates are per person-year by single year of age (linear between the knots), times a sex rate ratio, an IMD-quintile
rate ratio (quintile 1 = most deprived) and, for emergency and ambulatory-care-sensitive (ACSC) admissions, the
ICB-of-residence effect ``exp(v_icb)``. Trust effects act on the scale of each outcome's model (log for lengths of
stay and follow-ups, logit for probabilities). Every number here is invented; none is a published figure.
"""

from __future__ import annotations

import functools
from typing import TypedDict

import numpy as np

from leaguetables.inputs.records.geography import AGES

_KNOTS = [0, 1, 5, 15, 20, 40, 60, 70, 80, 90]


def _curve(values: list[float]) -> np.ndarray:
    return np.interp(AGES, _KNOTS, values)


# Spells or attendances per person-year by age; multiplied by the sex and deprivation rate ratios below.
RATE = {
    "emergency": _curve([0.34, 0.14, 0.07, 0.065, 0.085, 0.085, 0.14, 0.24, 0.46, 0.75]),  # non-ACSC emergency
    "acsc": _curve([0.04, 0.02, 0.008, 0.006, 0.006, 0.009, 0.022, 0.042, 0.085, 0.14]),
    "elective": _curve([0.014, 0.014, 0.03, 0.045, 0.07, 0.12, 0.24, 0.34, 0.34, 0.16]),
    "ae": _curve([0.70, 0.55, 0.35, 0.35, 0.50, 0.38, 0.36, 0.42, 0.62, 0.95]),
    "op_first": _curve([0.05, 0.04, 0.04, 0.05, 0.06, 0.07, 0.10, 0.13, 0.14, 0.12]),
}
MALE_RR = {"emergency": 1.05, "acsc": 1.0, "elective": 0.95, "ae": 1.05, "op_first": 0.9}
DEP_RR = {  # IMD quintile 1 (most deprived) … 5
    "emergency": np.array([1.35, 1.18, 1.05, 0.95, 0.85]),
    "acsc": np.array([1.70, 1.35, 1.10, 0.90, 0.72]),
    "elective": np.array([1.05, 1.02, 1.00, 0.98, 0.96]),
    "ae": np.array([1.40, 1.20, 1.05, 0.92, 0.80]),
    "op_first": np.array([1.10, 1.05, 1.00, 0.97, 0.93]),
}

# Levels are set so that the demo quarter's record-level figures are near the demo's aggregate ones (mean stay 4.8
# days, day cases 82%, readmissions 11%, 12 hours in A&E 8%, 1.7 follow-ups per first attendance).
# Between-organisation SDs of the true effects (log or logit scale of each outcome's model).
TRUST_EFFECT_SD = {
    "los": 0.10,
    "daycase": 0.35,
    "readmission": 0.15,
    "mortality": 0.15,
    "followup": 0.12,
    "ae_12hr": 0.40,
}
ICB_EFFECT_SD = {"emergency": 0.08, "acsc": 0.15}
# Outcomes whose trust effects are the demo's own (inputs.demo truth/trust_effects.csv, the same SDs), so that the
# demo's acute trusts keep their standing from the aggregate quarters into the record-level one.
DEMO_EFFECTS = {
    "los": "los_emergency",
    "daycase": "daycase_rate",
    "readmission": "readmissions_30d",
    "followup": "op_followup_ratio",
    "ae_12hr": "ae_12hr",
}


class Group(TypedDict):
    """An emergency diagnosis group (see GROUPS)."""

    name: str
    codes: list[str]
    acsc: bool
    weight: float
    slope: float
    mort: float
    los: float


class Procedure(TypedDict):
    """An elective procedure (see PROCEDURES)."""

    opcs: str
    diag: str
    basket: bool
    weight: float
    slope: float
    daycase: float
    los: float


# Emergency diagnosis groups: ICD-10 4-character codes, ACSC or not, relative frequency at 60 and its change per
# 10 years of age (log scale), mortality intercept (logit at 60, male 0), mean length of stay at 60 (days).
GROUPS: list[Group] = [
    Group(name="pneumonia", codes=["J181", "J189", "J690"], acsc=False, weight=1.0, slope=0.25, mort=-2.6, los=6.5),
    Group(name="stroke", codes=["I639", "I619", "I64X"], acsc=False, weight=0.5, slope=0.30, mort=-2.4, los=10.0),
    Group(name="myocardial_infarction", codes=["I214", "I219"], acsc=False, weight=0.5, slope=0.15, mort=-3.2, los=5.0),
    Group(name="hip_fracture", codes=["S720", "S721"], acsc=False, weight=0.3, slope=0.50, mort=-3.0, los=14.0),
    Group(name="sepsis", codes=["A419", "A415"], acsc=False, weight=0.4, slope=0.20, mort=-2.2, los=8.0),
    Group(name="injury", codes=["S069", "S525", "T149"], acsc=False, weight=1.2, slope=-0.10, mort=-5.5, los=2.0),
    Group(name="abdominal", codes=["K359", "K802", "R104"], acsc=False, weight=1.5, slope=-0.05, mort=-5.5, los=3.0),
    Group(name="chest_pain", codes=["R074", "R079"], acsc=False, weight=1.2, slope=0.00, mort=-6.5, los=1.0),
    Group(
        name="other_medical",
        codes=["R55X", "G459", "K922", "R69X"],  # not G40 (epilepsy: an ACSC)
        acsc=False,
        weight=2.5,
        slope=0.05,
        mort=-4.5,
        los=3.0,
    ),
    Group(name="copd", codes=["J441", "J440"], acsc=True, weight=1.0, slope=0.30, mort=-3.3, los=5.0),
    Group(name="heart_failure", codes=["I500", "I509"], acsc=True, weight=0.7, slope=0.45, mort=-2.6, los=8.0),
    Group(name="uti", codes=["N390", "N10X"], acsc=True, weight=1.0, slope=0.20, mort=-4.2, los=4.0),
    Group(name="cellulitis", codes=["L031", "L039"], acsc=True, weight=0.7, slope=0.05, mort=-5.5, los=4.0),
    Group(name="diabetes", codes=["E101", "E119"], acsc=True, weight=0.4, slope=0.00, mort=-5.0, los=4.0),
    Group(name="asthma", codes=["J459", "J46X"], acsc=True, weight=0.5, slope=-0.20, mort=-6.5, los=2.0),
]
ACSC_CODES = sorted(c for g in GROUPS if g["acsc"] for c in g["codes"])
MORT_AGE, MORT_MALE, IN_HOSPITAL_DEATHS = 0.045, 0.15, 0.55  # per year of age; male; share of deaths in hospital
LOS_AGE, LOS_SHAPE, LOS_SCALE = 0.012, 1.5, 1.1  # log mean per year of age; gamma mixing shape (overdispersed bed days)
READM_ALPHA, READM_AGE, READM_MALE, READM_SAME_TRUST = -1.7, 0.008, 0.10, 0.85
SECOND_EPISODE = 0.15  # share of spells of 2+ days with a second consultant episode

# Elective procedures: OPCS-4 code, diagnosis, in the day-case basket, relative frequency, logit of the day-case
# probability (basket) and mean length of stay if not a day case. The basket is an open, documented list of common
# day-case procedures (after the British Association of Day Surgery directory, whose list is not public).
PROCEDURES: list[Procedure] = [
    Procedure(opcs="C751", diag="H259", basket=True, weight=2.0, slope=0.6, daycase=3.0, los=1.0),  # cataract
    Procedure(opcs="T202", diag="K409", basket=True, weight=0.8, slope=0.1, daycase=0.8, los=1.5),  # inguinal hernia
    Procedure(
        opcs="J183", diag="K802", basket=True, weight=0.6, slope=0.0, daycase=0.3, los=1.5
    ),  # lap. cholecystectomy
    Procedure(opcs="W852", diag="M232", basket=True, weight=0.6, slope=0.0, daycase=2.0, los=1.2),  # knee arthroscopy
    Procedure(opcs="A651", diag="G560", basket=True, weight=0.5, slope=0.1, daycase=3.2, los=1.0),  # carpal tunnel
    Procedure(opcs="L852", diag="I839", basket=True, weight=0.3, slope=0.0, daycase=1.5, los=1.2),  # varicose veins
    Procedure(opcs="M459", diag="R31X", basket=True, weight=1.0, slope=0.3, daycase=2.5, los=1.2),  # cystoscopy
    Procedure(opcs="F341", diag="J350", basket=True, weight=0.3, slope=-0.6, daycase=0.5, los=1.0),  # tonsillectomy
    Procedure(opcs="W371", diag="M161", basket=False, weight=0.6, slope=0.4, daycase=-4.0, los=3.5),  # hip replacement
    Procedure(opcs="W401", diag="M171", basket=False, weight=0.6, slope=0.4, daycase=-4.0, los=3.5),  # knee replacement
    Procedure(
        opcs="H071", diag="C180", basket=False, weight=0.2, slope=0.3, daycase=-5.0, los=7.0
    ),  # right hemicolectomy
    Procedure(opcs="Q074", diag="D259", basket=False, weight=0.3, slope=-0.2, daycase=-3.0, los=2.5),  # hysterectomy
    Procedure(
        opcs="-", diag="Z511", basket=False, weight=2.5, slope=0.0, daycase=1.0, los=2.0
    ),  # medical, no procedure
]
BASKET_OPCS = sorted(p["opcs"] for p in PROCEDURES if p["basket"])

AE_ALPHA, AE_AGE = -2.7, 0.02  # logit of 12 hours or more in a type 1 department, per year of age over 50
AE_TYPES, AE_TYPE_P = ["01", "02", "03", "04"], [0.75, 0.02, 0.22, 0.01]
FOLLOWUP_MEAN, FOLLOWUP_AGE = 1.7, 0.004  # follow-ups per first attendance at 50, per year of age (log)

EMERGENCY_METHODS = ["21", "22", "23", "24", "28", "2A", "2B", "2D"]
EMERGENCY_METHODS_P = [0.70, 0.12, 0.02, 0.03, 0.05, 0.04, 0.02, 0.02]
ELECTIVE_METHODS, ELECTIVE_METHODS_P = ["11", "12", "13"], [0.70, 0.20, 0.10]
TREATMENT_SPECIALTIES = ["100", "101", "110", "120", "130", "300", "301", "320", "330", "340", "400", "502"]


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@functools.cache
def group_mix(acsc: bool) -> tuple[list[int], np.ndarray]:
    """``(group indices, P(group | age) of shape (91, k))`` for the ACSC or the other emergency groups."""
    idx = [i for i, g in enumerate(GROUPS) if g["acsc"] == acsc]
    w = np.array([[GROUPS[i]["weight"] * np.exp(GROUPS[i]["slope"] * (a - 60) / 10) for i in idx] for a in AGES])
    return idx, w / w.sum(axis=1, keepdims=True)


@functools.cache
def procedure_mix() -> np.ndarray:
    w = np.array([[p["weight"] * np.exp(p["slope"] * (a - 60) / 10) for p in PROCEDURES] for a in AGES])
    return w / w.sum(axis=1, keepdims=True)


def mortality_logit(group: np.ndarray, age: np.ndarray, male: np.ndarray, effect: np.ndarray) -> np.ndarray:
    alpha = np.array([g["mort"] for g in GROUPS])[group]
    return alpha + MORT_AGE * (age - 60) + MORT_MALE * male + effect


def readmission_logit(age: np.ndarray, male: np.ndarray, effect: np.ndarray) -> np.ndarray:
    return READM_ALPHA + READM_AGE * (age - 60) + READM_MALE * male + effect


def los_mean(group: np.ndarray, age: np.ndarray, effect: np.ndarray) -> np.ndarray:
    return LOS_SCALE * np.array([g["los"] for g in GROUPS])[group] * np.exp(LOS_AGE * (age - 60) + effect)


def ae12_logit(age: np.ndarray, effect: np.ndarray) -> np.ndarray:
    return AE_ALPHA + AE_AGE * np.maximum(age - 50, 0) + effect


def followup_mean(age: np.ndarray, effect: np.ndarray) -> np.ndarray:
    return FOLLOWUP_MEAN * np.exp(FOLLOWUP_AGE * (age - 50) + effect)
