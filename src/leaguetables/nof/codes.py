"""NHS England's NOF metric codes, descriptions, units and reporting-date conventions (config/nof/codes-*.yaml).

Every NHS-layout output (``nof_data_long.csv``) takes its ``Metric_ID``, ``Metric_description``, ``Domain``,
``Sub-domain``, ``Units`` and ``Reporting_date`` from this registry, so a file written by the project joins
NHS England's published file row for row. The registry was transcribed from the published acute Q1 2025/26 and
mental health and community Q1–Q4 2025/26 data files (``../shared/data/real/nof_2025_26_q1_acute``,
``nof_2025_26_q4_mhc``); ``tests/test_nof_codes.py`` checks it against both.

Reporting dates follow a per-code rule applied to the quarter (``YYYY-YY-QN``):

* ``quarter`` — ``Q1 2025/26``; ``quarter_short`` — ``Q1 2025`` (year of the quarter's last month);
* ``month_end`` — last month of the quarter, ``Jun-25``;
* ``rolling_12_months`` — ``Jul 24 - Jun 25``;
* ``rolling_12_months_vs_previous`` — ``Oct 24 - Sep 25 vs Oct 23 - Sep 24``;
* ``previous_quarter`` — the quarter before, ``Q1 2025/26`` (one-quarter lag, e.g. sickness absence);
* ``survey_year`` — the calendar year before the quarter's last month (the latest NHS Staff Survey published);
* ``financial_year`` — ``2025/26``; ``ytd_month`` — ``Month 3 2025`` (year-to-date month of the financial year);
* ``text`` — the entry's ``text``, whatever the quarter.

``overrides`` (quarter → text) record the published labels that follow no rule (e.g. Q1's
``Jun 24 - Jun 25 vs Jun 23 - Jun 24``, 13 months).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leaguetables.config import CONFIG_DIR, PROVIDER_TYPES
from leaguetables.errors import InputError

__all__ = ["NofCode", "NofCodes", "DATE_RULES", "load_nof_codes", "reporting_date", "quarter_parts"]

DATE_RULES = (
    "quarter",
    "quarter_short",
    "month_end",
    "rolling_12_months",
    "rolling_12_months_vs_previous",
    "previous_quarter",
    "survey_year",
    "financial_year",
    "ytd_month",
    "text",
    "none",
)
_MONTH = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
CODE_PATTERN = r"^OF[0145]\d{3}$"


class NofCode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    sub_domain: str = Field(min_length=1)
    units: dict[Literal["acute", "mental_health_community", "ambulance"], str] = Field(
        description="Units column per trust type (the acute file says 'percent' where the MH file says '%')"
    )
    reporting_date: Literal[DATE_RULES]  # type: ignore[valid-type]
    text: str | None = None
    overrides: dict[str, str] = {}
    blank_for: list[Literal["acute", "mental_health_community", "ambulance"]] = Field(
        [], description="trust types whose file leaves Reporting_date blank for this code (acute OF5005/OF5007)"
    )

    @model_validator(mode="after")
    def _check(self) -> NofCode:
        if not self.units:
            raise ValueError("units needs at least one trust type")
        if (self.reporting_date == "text") != (self.text is not None):
            raise ValueError("'text' is given exactly when reporting_date is 'text'")
        for q in self.overrides:
            if not re.fullmatch(r"\d{4}-\d{2}-Q[1-4]", q):
                raise ValueError(f"override quarter {q!r} must look like 2025-26-Q1")
        return self


class NofCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str = Field(min_length=1)
    codes: dict[str, NofCode]

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: dict[str, NofCode]) -> dict[str, NofCode]:
        bad = [c for c in v if not re.fullmatch(CODE_PATTERN, c)]
        if bad:
            raise ValueError(f"codes must look like OF0003 / OF1003 / OF4000 / OF5000: {bad}")
        # cross-check: a score code OF1xxx with a value code OF0xxx shares its description
        for c, e in v.items():
            if c.startswith("OF1") and ("OF0" + c[3:]) in v and v["OF0" + c[3:]].description != e.description:
                raise ValueError(f"{c} and OF0{c[3:]} have different descriptions")
        return v

    def get(self, code: str) -> NofCode | None:
        return self.codes.get(code)


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=8)
def load_nof_codes(name: str = "codes-2025-26") -> NofCodes:
    path = CONFIG_DIR / "nof" / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    # libyaml's parser when PyYAML has it (the same safe constructors and resolver, several times faster)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    try:
        return NofCodes.model_validate(data)
    except Exception as exc:  # pydantic ValidationError
        raise InputError(f"{path}: {str(exc).splitlines()[0]} {str(exc).splitlines()[-1].strip()}") from None


def quarter_parts(quarter: str) -> tuple[int, int]:
    """``"2025-26-Q1"`` → (2025, 1): the financial year's first calendar year and the quarter."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-Q([1-4])", quarter)
    if not m:
        raise ValueError(f"quarter {quarter!r} must look like 2025-26-Q1")
    return int(m.group(1)), int(m.group(3))


def _last_month(fy: int, q: int) -> tuple[int, int]:
    """(calendar year, month 1–12) of the quarter's last month."""
    month = {1: 6, 2: 9, 3: 12, 4: 3}[q]
    return (fy + 1 if q == 4 else fy), month


def _span(year: int, month: int) -> str:
    """12 months ending in (year, month): ``Jul 24 - Jun 25``."""
    start_m = month % 12 + 1
    start_y = year - 1 if start_m != 1 else year
    return f"{_MONTH[start_m - 1]} {start_y % 100:02d} - {_MONTH[month - 1]} {year % 100:02d}"


def reporting_date(entry: NofCode, quarter: str, trust_type: str | None = None) -> str:
    """The published ``Reporting_date`` label of a code for a quarter (see the module docstring); blank for a
    trust type in the entry's ``blank_for``."""
    if trust_type is not None and trust_type in entry.blank_for:
        return ""
    if quarter in entry.overrides:
        return entry.overrides[quarter]
    fy, q = quarter_parts(quarter)
    y, m = _last_month(fy, q)
    rule = entry.reporting_date
    if rule == "quarter":
        return f"Q{q} {fy}/{(fy + 1) % 100:02d}"
    if rule == "quarter_short":
        return f"Q{q} {y}"
    if rule == "month_end":
        return f"{_MONTH[m - 1]}-{y % 100:02d}"
    if rule == "rolling_12_months":
        return _span(y, m)
    if rule == "rolling_12_months_vs_previous":
        return f"{_span(y, m)} vs {_span(y - 1, m)}"
    if rule == "previous_quarter":
        pfy, pq = (fy, q - 1) if q > 1 else (fy - 1, 4)
        return f"Q{pq} {pfy}/{(pfy + 1) % 100:02d}"
    if rule == "survey_year":
        return str(y - 1)
    if rule == "financial_year":
        return f"{fy}/{(fy + 1) % 100:02d}"
    if rule == "ytd_month":
        return f"Month {3 * q} {fy}"
    if rule == "text":
        return str(entry.text)
    return ""


def units(entry: NofCode, trust_type: str) -> str:
    """The Units label for a trust type (the first listed type's label when the type has none)."""
    return entry.units.get(trust_type, next(iter(entry.units.values())))  # type: ignore[call-overload]


TYPE_FROM_LABEL = {
    "Acute trust": "acute",
    "Mental health and community trust": "mental_health_community",
    "Ambulance trust": "ambulance",
}
assert set(TYPE_FROM_LABEL.values()) == set(PROVIDER_TYPES)  # NHS England's 2025/26 files: providers only
