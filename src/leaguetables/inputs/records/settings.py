"""The record-level indicator settings (``config/records/*.yaml``), validated on load by strict pydantic models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from leaguetables.config import CONFIG_DIR, _load_yaml, _Strict, _validation_message
from leaguetables.errors import InputError

CODE = re.compile(r"^[A-Z0-9]{1,4}$")
DEFAULT = "indicators"


def _codes(values: list[str]) -> list[str]:
    for v in values:
        if not CODE.match(v):
            raise ValueError(f"{v!r} is not a code of 1 to 4 capital letters or digits")
    return values


class Codes(_Strict):
    elective_admimeth: list[str]
    emergency_admimeth: list[str]
    maternity_admimeth: list[str]
    transfer_admimeth: list[str]
    died_dismeth: list[str]
    stillbirth_dismeth: list[str]
    ordinary_classpat: list[str]
    day_case_classpat: list[str]
    regular_attender_classpat: list[str]
    maternity_classpat: list[str]
    op_attended: list[str]
    # the outpatient appointments that were booked (the attendance status is known: attended, did not attend or
    # cancelled); the attended ones (op_attended) are among them
    op_booked: list[str]
    op_first: list[str]
    op_follow_up: list[str]
    ae_type1: list[str]

    @model_validator(mode="after")
    def _valid(self):
        for name in type(self).model_fields:
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} is empty")
            _codes(values)
        if not set(self.op_attended) <= set(self.op_booked):
            raise ValueError("op_booked must hold every op_attended code (an attended appointment was booked)")
        return self


class Spells(_Strict):
    transfer_gap_days: int = Field(ge=0, le=7)


class LengthOfStay(_Strict):
    classpat: str = Field(pattern="^(ordinary|all)$")


class Readmissions(_Strict):
    window_days: int = Field(ge=1, le=365)
    exclude_diagnosis_prefixes: list[str]

    _prefixes = field_validator("exclude_diagnosis_prefixes")(_codes)


class Procedure(_Strict):
    name: str
    opcs: list[str] = Field(min_length=1)

    _opcs = field_validator("opcs")(_codes)


class DayCase(_Strict):
    name: str
    note: str
    procedures: list[Procedure] = Field(min_length=1)

    @property
    def prefixes(self) -> list[str]:
        return sorted({c for p in self.procedures for c in p.opcs})


class AE(_Strict):
    long_wait_minutes: int = Field(ge=1, le=10_000)


class DiagnosisGroup(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    from_: str = Field(alias="from", pattern=r"^[A-Z][0-9]{2}$")
    to: str = Field(pattern=r"^[A-Z][0-9]{2}$")


def _bands(values: list[int]) -> list[int]:
    if not values or values[0] != 0 or any(b <= a for a, b in zip(values, values[1:])) or values[-1] > 120:
        raise ValueError("age bands must start at 0 and increase (lower bounds, in years, at most 120)")
    return values


class Mortality(_Strict):
    post_discharge_days: int = Field(ge=0, le=365)
    comorbidity_lookback_days: int = Field(ge=1, le=3650)
    min_spells_per_group: int = Field(ge=1)
    banding_confidence: float = Field(gt=0.5, lt=1)
    diagnosis_groups: list[DiagnosisGroup] = Field(min_length=1)
    age_bands: list[int]

    _ages = field_validator("age_bands")(_bands)

    @model_validator(mode="after")
    def _groups(self):
        ids = [g.id for g in self.diagnosis_groups]
        if len(set(ids)) != len(ids) or "other" in ids:
            raise ValueError("diagnosis group ids must be unique and not 'other'")
        for g in self.diagnosis_groups:
            if g.to < g.from_:
                raise ValueError(f"diagnosis group {g.id}: 'to' {g.to} is before 'from' {g.from_}")
        return self


class Condition(_Strict):
    name: str
    icd10: list[str] = Field(min_length=1)

    _icd = field_validator("icd10")(_codes)


class ICB(_Strict):
    age_bands: list[int]
    per: float = Field(gt=0)
    acsc: list[Condition] = Field(min_length=1)
    # the ICB metrics whose admissions are counted as clustered in patients: the variance of O is Σ over patients of
    # their admissions squared (indicators.standardise_icbs), not O
    numerator_variance: list[Literal["icb_emergency_admissions", "icb_acsc_admissions"]] = Field(default_factory=list)

    _ages = field_validator("age_bands")(_bands)

    @property
    def acsc_prefixes(self) -> list[str]:
        return sorted({c for cond in self.acsc for c in cond.icd10})


class Standardisation(_Strict):
    """Case-mix strata of the observed-over-expected provider ratios (``rl_*_oe``): age bands (lower bounds); the
    ratios whose events are not a Poisson count, given the variance of O (``indicators.residual_variance``); the
    ratios whose records are themselves random (the attended share of the booked records), given the variance of
    O − θE, E's binomial variance included (``indicators.expected_variance``)."""

    age_bands: list[int]
    numerator_variance: list[
        Literal["rl_los_oe", "rl_daycase_oe", "rl_readmissions_oe", "rl_ae_12hr_oe", "rl_shmi"]
    ] = Field(default_factory=list)
    expected_variance: list[Literal["rl_followup_oe"]] = Field(default_factory=list)

    _ages = field_validator("age_bands")(_bands)


class RecordSettings(_Strict):
    id: str
    version: str
    description: str
    codes: Codes
    spells: Spells
    length_of_stay: LengthOfStay
    readmissions: Readmissions
    day_case: DayCase
    ae: AE
    mortality: Mortality
    standardisation: Standardisation
    icb: ICB


def load_record_settings(name_or_path: str | Path = DEFAULT) -> RecordSettings:
    """``config/records/<name>.yaml`` (or a path to a .yaml file), validated; bad settings raise ``InputError``."""
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") else CONFIG_DIR / "records" / f"{name_or_path}.yaml"
    data = _load_yaml(path)
    try:
        return RecordSettings.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(path, exc, data)) from None
