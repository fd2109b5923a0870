"""Methodology as data: the methodology config and the metric catalogue, validated on load.

Both live as versioned YAML files under ``config/``:

* ``config/methodology/<id>.yaml`` — segmentation rule, financial override, bootstrap settings, confidence
  levels, funnel and peer settings, productivity settings, and the default catalogue;
* ``config/catalogues/<id>.yaml`` — one entry per metric: definition, direction, statistic, scoring,
  weight, combine group, demographic-adjustment model, funnel, unit cost.

The methodology document published with each quarter is generated from these same objects
(:mod:`leaguetables.publication.methodology`), so the published description cannot drift from what was run.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leaguetables.errors import InputError
from leaguetables.quarters import check_quarter, quarter_key

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"

# Organisation types of the register (the column is called trust_type for history): the three provider types and
# integrated care boards (``icb``, scored on ICB-of-residence metrics; the 2026/27 framework segments the 42 ICBs).
TrustType = Literal["acute", "mental_health_community", "ambulance", "icb"]
TRUST_TYPES: tuple[str, ...] = ("acute", "mental_health_community", "ambulance", "icb")
PROVIDER_TYPES: tuple[str, ...] = ("acute", "mental_health_community", "ambulance")
ICB_TYPES: tuple[str, ...] = ("icb",)  # organisation kind "icb": never pooled with providers for cut points
TRUST_TYPE_LABELS = {
    "acute": "Acute trust",
    "mental_health_community": "Mental health and community trust",
    "ambulance": "Ambulance trust",
    "icb": "Integrated care board",
}
TRUST_TYPE_PLURAL = {
    "acute": "Acute trusts",
    "mental_health_community": "Mental health and community trusts",
    "ambulance": "Ambulance trusts",
    "icb": "Integrated care boards",
}

SAFE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
COVARIATES = ("population", "share_65plus", "share_85plus", "imd_score", "rural_share", "ethnic_minority_share")


# Characters never accepted in configuration text: C0/C1 controls other than tab and newline (which YAML's folded
# and literal blocks produce) and the Unicode bidirectional controls, which can make text display reordered.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 2000  # characters in one configuration string
MAX_DEPTH = 12  # nesting of mappings and lists in a configuration file
MAX_NODES = 100_000  # scalars, mappings and lists in a configuration file


def _check_text(value, where: str = "") -> None:
    if isinstance(value, str):
        m = _CONTROL.search(value)
        if m:
            raise ValueError(f"{where or 'text'} contains the control character U+{ord(m.group()):04X}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"{where or 'text'} is longer than {MAX_TEXT} characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, f"key {str(k)[:40]!r}")
            _check_text(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_text(v, where)


class _Strict(BaseModel):
    """The base of every configuration model — new sections inherit all of this by subclassing it:

    * unknown fields are errors (``extra="forbid"``); the objects are immutable;
    * no float field accepts NaN or ±infinity (``allow_inf_nan=False``), whatever its declared range;
    * no string anywhere in the section holds a control or bidirectional-override character, or is longer than
      :data:`MAX_TEXT` characters;
    * the YAML it is read from has no duplicate keys, anchors, merge keys or nesting deeper than
      :data:`MAX_DEPTH` (:func:`load_yaml_strict`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_control_text(cls, data):
        # this model's own text (strings, and the strings of its lists and plain mappings); a nested section is a
        # model of its own and checks itself, so the error names the innermost section
        if isinstance(data, dict):
            for k, v in data.items():
                _check_text(k, f"key {str(k)[:40]!r}")
                items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, (list, tuple)) else ()
                if isinstance(v, str):
                    _check_text(v, str(k))
                for kk, vv in items:
                    if isinstance(kk, str):
                        _check_text(kk, f"{k} key")
                    if isinstance(vv, str):
                        _check_text(vv, str(k))
        return data


class RelativeFloor(_Strict):
    """A floor relative to the trust's own baseline (2026/27 planning standards, e.g. RTT 18 weeks "+7 points or
    65%, whichever is greater"): floor = max(baseline + improvement, at_least) when higher is better,
    min(baseline − improvement, at_least) when lower is better; no baseline → at_least."""

    improvement: float = Field(gt=0, le=100, allow_inf_nan=False, description="points of improvement on the baseline")
    at_least: float = Field(
        ge=-1e6, le=1e6, allow_inf_nan=False, description="the absolute level that always suffices (65 for '… or 65%')"
    )
    baseline_quarters_back: int = Field(
        4, ge=1, le=8, description="the baseline is the trust's value this many quarters earlier"
    )
    source: str = Field(min_length=1, description="where the rule comes from; 'illustrative' if not NHS England's")


class Range(_Strict):
    """A closed target interval ``[low, high]`` of a validation figure."""

    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> Range:
        if not self.low <= self.high:
            raise ValueError(f"a target range needs low <= high, got {self.low} and {self.high}")
        return self


class ValidationTargets(_Strict):
    """The targets of the simulation study (issue 10's "done when"), shown beside the measured figures."""

    oe_coverage: Range = Range(low=0.93, high=0.97)
    funnel_false_flag_95: Range = Range(low=0.035, high=0.07)
    funnel_false_flag_998_max: float = Field(0.006, ge=0, le=1)
    funnel_detection_min: float = Field(0.80, ge=0, le=1)
    rank_coverage: Range = Range(low=0.93, high=0.97)
    brier_ratio_max: float = Field(1.25, ge=1)
    reliability_slope: Range = Range(low=0.8, high=1.2)
    change_size: Range = Range(low=0.03, high=0.07)
    change_power_min: float = Field(0.80, ge=0, le=1)
    productivity_bias_max: float = Field(0.10, ge=0)


class Validation(_Strict):
    """The published simulation study (``make validate``, :mod:`leaguetables.validate`).

    One fixed truth (the demo generator with ``seed``) per scenario; each replicate redraws the sampling noise
    with its own seed derived from ``seed``. Replicates per scenario: ``replicates`` (standard: no true outliers),
    ``outlier_replicates`` (planted outliers), ``change_replicates`` (each of no change and a true change between
    ``previous`` and ``quarter``) and ``overadjust_replicates`` (quality correlated with deprivation)."""

    seed: int
    quarter: str = "2025-26-Q4"
    previous: str = "2025-26-Q3"
    replicates: int = Field(200, ge=10, le=100_000)
    outlier_replicates: int = Field(80, ge=10, le=100_000)
    change_replicates: int = Field(40, ge=10, le=100_000)
    overadjust_replicates: int = Field(60, ge=10, le=100_000)
    fresh_truth_replicates: int = Field(
        200, ge=10, le=100_000, description="replicates each with a new truth (O/E coverage over truths)"
    )
    workers: int = Field(2, ge=1, le=64)
    bootstrap_replicates: int | None = Field(
        None, ge=100, le=100_000, description="league bootstrap replicates in the study (default: the methodology's)"
    )
    sampling_replicates: int | None = Field(
        None,
        ge=200,
        le=100_000,
        description="replicates of the sampling bootstrap of the data in the study (default: the methodology's)",
    )
    outlier_sd: float = Field(3.0, gt=0, le=10)
    outliers_per_metric: int = Field(
        6, ge=2, le=40, description="planted per funnel metric and trust type, half above and half below"
    )
    change_sd: float = Field(2.0, gt=0, le=10)
    change_share: float = Field(
        0.1, gt=0, le=0.5, description="share of each trust type with a true change, half better and half worse"
    )
    overadjust_r: float = Field(0.5, gt=-1, lt=1)
    targets: ValidationTargets = ValidationTargets()

    @model_validator(mode="after")
    def _check(self) -> Validation:
        for q in (self.quarter, self.previous):
            try:
                check_quarter(q)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        if not quarter_key(self.previous) < quarter_key(self.quarter):
            raise ValueError(f"validation.previous ({self.previous}) must come before quarter ({self.quarter})")
        return self


class Scoring(_Strict):
    """How a metric becomes a NOF score (1.00 best – 4.00 worst)."""

    method: Literal["ranked", "bracket", "bands", "none"] = "ranked"
    standard: float | None = Field(
        None, ge=-1e9, le=1e9, description="trusts meeting it score 1.00; the rest spread 2.00–4.00"
    )
    floor: float | None = Field(
        None, ge=-1e9, le=1e9, description="trusts failing it score 4.00; the rest spread 1.00–3.00"
    )
    brackets: dict[str, float] | None = Field(None, min_length=1, max_length=20)
    bands: list[tuple[float | None, float] | tuple[float | None, float, Literal[">=", ">", "<=", "<"]]] | None = Field(
        None,
        max_length=20,
        description="[bound, score] or [bound, score, op] entries, best first: a value takes the first band "
        "whose condition 'value op bound' holds (op '>=' by default; '>=' / '>' with descending "
        "bounds, '<=' / '<' with ascending bounds); the last bound is null (everything else)",
    )
    relative_floor: RelativeFloor | None = Field(
        None, description="a floor relative to the trust's own baseline (scores 4.00 when failed)"
    )
    comparator: Literal["type", "all_listed_types"] = Field(
        "type",
        description="the comparator population: 'type' ranks each trust type separately; "
        "'all_listed_types' ranks the trusts of every type in trust_types together (NHS "
        "England's rule for a metric reported by several types, e.g. children's MH access)",
    )

    @model_validator(mode="after")
    def _check(self) -> Scoring:
        if self.method == "bracket" and not self.brackets:
            raise ValueError("a bracket metric needs 'brackets' (category → score)")
        if self.method != "bracket" and self.brackets:
            raise ValueError("'brackets' given but scoring method is not 'bracket'")
        if self.standard is not None and self.floor is not None:
            raise ValueError("a metric has a standard or a floor, not both")
        if self.relative_floor is not None and (
            self.method != "ranked" or self.floor is not None or self.standard is not None
        ):
            raise ValueError("'relative_floor' needs ranked scoring and no other floor or standard")
        if self.method == "bands":
            b = self.bands or []
            if len(b) < 2 or b[-1][0] is not None or any(x[0] is None for x in b[:-1]):
                raise ValueError("'bands' needs at least two [bound, score] pairs, the last with bound null")
            if any(not math.isfinite(x[0]) for x in b[:-1]) or any(  # type: ignore[arg-type]
                not math.isfinite(x[1]) for x in b
            ):
                raise ValueError("'bands' bounds and scores must be finite")
            ops = {(x[2] if len(x) > 2 else ">=") for x in b[:-1]}
            if not (ops <= {">=", ">"} or ops <= {"<=", "<"}):
                raise ValueError("'bands' mixes lower-bound ('>=', '>') and upper-bound ('<=', '<') operators")
            bounds = [float(x[0]) for x in b[:-1]]  # type: ignore[arg-type]  # not None: checked above
            descending = ops <= {">=", ">"}
            if (
                bounds != sorted(bounds, reverse=descending)
                or len(set(bounds)) != len(bounds)
                and ops in ({">="}, {"<="})
            ):
                raise ValueError(
                    "'bands' bounds must be in "
                    + ("descending" if descending else "ascending")
                    + " order (best band first)"
                )
            if any(not 1.0 <= x[1] <= 4.0 for x in b):
                raise ValueError("band scores must lie in 1–4")
        elif self.bands:
            raise ValueError("'bands' given but scoring method is not 'bands'")
        if self.brackets:
            bad = {k: v for k, v in self.brackets.items() if not 1.0 <= v <= 4.0}
            if bad:
                raise ValueError(f"bracket scores must lie in 1–4: {bad}")
        return self


class Adjustment(_Strict):
    """The demographic-adjustment model of a metric (fitted within trust type)."""

    family: Literal["binomial", "poisson", "negative_binomial"]
    covariates: list[str] = Field(max_length=len(COVARIATES))
    scale: Literal["X2"] | None = None

    @field_validator("covariates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown covariates {unknown}; known: {list(COVARIATES)}")
        if not v:
            raise ValueError("an adjustment model needs at least one covariate")
        if len(set(v)) != len(v):
            raise ValueError("a covariate is listed twice")
        return v


class UnitCost(_Strict):
    """Price of a unit of activity, for the productivity opportunity (Better Care, Better Value)."""

    amount: float = Field(gt=0, le=1e9)
    currency: Literal["GBP"] = "GBP"
    unit: str = Field(min_length=1)
    activity: Literal["denominator", "numerator"] = "denominator"
    source: str


class Metric(_Strict):
    id: str
    nof_id: str | None = Field(
        None,
        pattern=r"^OF0\d{3}$",
        description="NHS England's value code (OF0xxx; the score is OF1xxx); "
        "None for a metric NHS England does not publish",
    )
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    domain: str = Field(min_length=1, max_length=100)
    sub_domain: str = Field(min_length=1, max_length=100)
    unit: str = Field(min_length=1, max_length=40)
    trust_types: list[TrustType]
    direction: Literal["higher_better", "lower_better"]
    statistic: Literal["proportion", "rate", "mean", "bracket", "value"]
    counts: Literal["integer", "real"] = Field(
        "integer",
        description="proportion and rate: whole counts (integer) or measured amounts (real: FTE days, "
        "average occupied beds); integer counts are checked to be whole numbers",
    )
    multiplier: float = Field(
        1.0, gt=0, le=1e9, description="positive and finite: 100 for a percentage, 100000 for a rate per 100,000"
    )
    numerator_variance: Literal["poisson", "reported"] = Field(
        "poisson",
        description="rate: the numerator is a Poisson count (poisson: its variance is itself) or not (reported: "
        "the observation's numerator_variance, e.g. a sum of lengths of stay, or admissions clustered in patients; "
        "the interval is the scaled Poisson one, statistics.rates.scaled_poisson_limits)",
    )
    decimals: int = Field(1, ge=0, le=6)
    scoring: Scoring
    weight: float = Field(1.0, gt=0, le=1)
    combine_group: str | None = None
    adjustment: Adjustment | None = None
    funnel: bool = False
    unit_cost: UnitCost | None = None
    source: str

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not SAFE_ID.match(v):
            raise ValueError(f"metric id {v!r} must match {SAFE_ID.pattern} (lower case, digits, underscores)")
        return v

    @model_validator(mode="after")
    def _check(self) -> Metric:
        if not self.trust_types:
            raise ValueError("trust_types is empty")
        if len(set(self.trust_types)) != len(self.trust_types):
            raise ValueError("a trust type is listed twice in trust_types")
        if any(self.name.startswith(c) for c in "=+-@") or any(self.unit.startswith(c) for c in "=+@"):
            raise ValueError("a metric name or unit begins with a spreadsheet formula character (=, +, -, @)")
        if self.statistic == "bracket" and self.scoring.method != "bracket":
            raise ValueError("a bracket statistic must use bracket scoring")
        counted = self.statistic in ("proportion", "rate")
        if self.adjustment is not None and not counted:
            raise ValueError("demographic adjustment needs a proportion or rate (numerator and denominator)")
        if self.adjustment is not None and self.statistic == "proportion" and self.adjustment.family != "binomial":
            raise ValueError("a proportion is adjusted with the binomial family")
        if self.adjustment is not None and self.statistic == "rate" and self.adjustment.family == "binomial":
            raise ValueError("a rate is adjusted with the poisson or negative_binomial family")
        if self.funnel and not counted:
            raise ValueError("a funnel plot needs a proportion or rate (numerator and denominator)")
        if self.unit_cost is not None and not counted:
            raise ValueError("a unit cost needs a proportion or rate")
        if self.numerator_variance == "reported" and self.statistic != "rate":
            raise ValueError("numerator_variance: reported applies to a rate (a count over an exposure) only")
        return self

    @property
    def has_adjustment(self) -> bool:
        return self.adjustment is not None


class CombineGroup(_Strict):
    """Metrics that enter the average once, as one combined score."""

    name: str
    nof_id: str | None = Field(None, pattern=r"^OF1\d{3}$", description="NHS England's code of the combined score")
    rule: Literal["nof_finance", "weighted_mean"]
    planned: str | None = Field(None, description="nof_finance: the planned surplus/deficit metric")
    variance: str | None = Field(None, description="nof_finance: the year-to-date variance-to-plan metric")
    lookup: list[list[int]] | None = Field(
        None,
        description="nof_finance: 4×4 combined score, row = planned score 1–4, column = variance score 1–4 "
        "(null: NHS England's table, leaguetables.nof.scoring.NOF_FINANCE_LOOKUP)",
    )
    source: str | None = Field(None, description="where the lookup comes from (required with a lookup)")

    @model_validator(mode="after")
    def _check(self) -> CombineGroup:
        if self.rule == "nof_finance" and not (self.planned and self.variance):
            raise ValueError("the nof_finance rule needs 'planned' and 'variance' metric ids")
        if self.lookup is not None:
            if self.rule != "nof_finance":
                raise ValueError("'lookup' applies to the nof_finance rule only")
            if len(self.lookup) != 4 or any(len(r) != 4 for r in self.lookup):
                raise ValueError("'lookup' must be 4 rows of 4 scores")
            if any(not 1 <= x <= 4 for r in self.lookup for x in r):
                raise ValueError("'lookup' scores must lie in 1–4")
            # cross-check: a worse component never gives a better combined score
            for i in range(4):
                for j in range(4):
                    if (i and self.lookup[i][j] < self.lookup[i - 1][j]) or (
                        j and self.lookup[i][j] < self.lookup[i][j - 1]
                    ):
                        raise ValueError("'lookup' must not decrease along a row or down a column")
            if not self.source:
                raise ValueError("a 'lookup' needs its 'source'")
        return self


class Catalogue(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str
    combine_groups: dict[str, CombineGroup] = {}
    not_in_inputs: list[str] = Field([], description="NOF metrics the inputs of this catalogue cannot provide")
    metrics: list[Metric] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        ids = [m.id for m in self.metrics]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate metric ids: {dupes}")
        used = {m.combine_group for m in self.metrics if m.combine_group}
        undefined = sorted(used - set(self.combine_groups))
        if undefined:
            raise ValueError(f"combine_group(s) {undefined} used by metrics but not defined in combine_groups")
        for name, g in self.combine_groups.items():
            for mid in (g.planned, g.variance):
                if mid is not None and (mid not in ids or self.metric(mid).combine_group != name):
                    raise ValueError(f"combine group {name!r} names {mid!r}, which is not a metric of that group")
        return self

    def metric(self, metric_id: str) -> Metric:
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.metrics]


class Segmentation(_Strict):
    rule: Literal["quartiles_within_type", "quartiles_pooled", "quartiles_over_population", "fixed_thresholds"]
    thresholds: list[float] | None = Field(None, description="3 ascending cut points for fixed_thresholds")
    pool_types: list[TrustType] | None = Field(
        None,
        description="quartiles_pooled: the trust types whose averages are pooled for the cut points (those "
        "present in a run are used, and the output names them)",
    )
    thresholds_source: str | None = Field(
        None,
        description="fixed_thresholds: where the thresholds come from; 'illustrative' marks values that "
        "are not NHS England's (refused on real data)",
    )
    description: str

    @model_validator(mode="after")
    def _check(self) -> Segmentation:
        if self.rule == "fixed_thresholds":
            if self.thresholds is None:
                pass  # not published anywhere we can cite: valid config, but nothing can be segmented (see unsourced)
            elif (
                len(self.thresholds) != 3
                or sorted(self.thresholds) != self.thresholds
                or len(set(self.thresholds)) != 3
            ):
                raise ValueError("fixed_thresholds needs 3 ascending thresholds, no two equal")
            elif any(not (math.isfinite(t) and 1.0 <= t <= 4.0) for t in self.thresholds):
                raise ValueError("fixed_thresholds must be finite and lie in 1–4 (the range of average scores)")
            if self.thresholds is not None and not self.thresholds_source:
                raise ValueError("fixed_thresholds needs 'thresholds_source' (a citation, or 'illustrative')")
        elif self.thresholds is not None or self.thresholds_source is not None:
            raise ValueError("'thresholds' and 'thresholds_source' apply to fixed_thresholds only")
        if self.rule == "quartiles_pooled":
            if not self.pool_types or len(set(self.pool_types)) != len(self.pool_types):
                raise ValueError("quartiles_pooled needs 'pool_types': distinct trust types")
        elif self.pool_types is not None:
            raise ValueError("'pool_types' applies to quartiles_pooled only")
        return self

    @property
    def unsourced(self) -> bool:
        """Fixed thresholds whose values are not (yet) published: segments cannot be computed."""
        return self.rule == "fixed_thresholds" and self.thresholds is None

    @property
    def illustrative(self) -> bool:
        return self.rule == "fixed_thresholds" and str(self.thresholds_source).strip().lower().startswith(
            "illustrative"
        )


SEGMENTS = (1, 2, 3, 4, 5)  # NOF segments: 1–4 from the average score; 5 the Recovery Support Programme


class FinancialOverride(_Strict):
    enabled: bool = True
    from_segments: list[Literal[1, 2, 3, 4]] = Field([1, 2], min_length=1, max_length=4)
    to_segment: Literal[1, 2, 3, 4, 5] = 3

    @model_validator(mode="after")
    def _check(self) -> FinancialOverride:
        if len(set(self.from_segments)) != len(self.from_segments):
            raise ValueError("a segment is listed twice in from_segments")
        if self.to_segment <= max(self.from_segments):
            raise ValueError(
                f"to_segment {self.to_segment} must be worse (higher) than every segment in "
                f"from_segments {self.from_segments}: the override moves trusts down"
            )
        return self


class Bootstrap(_Strict):
    replicates: int = Field(ge=100, le=100_000)
    seed: int = Field(ge=0, lt=2**32)
    level: float = Field(0.95, gt=0, lt=1)


FUNNEL_LEVELS = (0.95, 0.998)


class Uncertainty(_Strict):
    """Sampling uncertainty of the league (``leaguetables.statistics.sampling``): rank intervals, median rank, P(segment),
    rankability, and the test of change between quarters."""

    method: Literal["parametric_data", "none"] = Field(
        "parametric_data",
        description="parametric_data: simulate the metrics' numerators and recompute the whole league in every "
        "replicate; none: publish NHS England's likely ranges only (no calibrated columns, no test of change)",
    )
    replicates: int = Field(2000, ge=200, le=100_000)
    seed: int = Field(ge=0)
    level: float = Field(0.95, ge=0.5, lt=1)
    shrinkage: bool = Field(
        True,
        description="draw true rates from the empirical-Bayes posterior (true) or redraw "
        "numerators around the observed rates (false, a plug-in bootstrap)",
    )
    rank_interval: Literal["average_probability", "equal_tailed"] = Field(
        "average_probability",
        description="average_probability: central intervals at the smallest level at which a "
        "trust type's intervals hold on average `level` of the replicate ranks (ranks are whole numbers, so central "
        "`level` intervals hold more than `level`); equal_tailed: the central `level` interval of every trust",
    )
    change_test: bool = Field(True, description="test the change of rank and segment since the previous quarter")
    check_replicates: int = Field(
        3,
        ge=1,
        le=50,
        description="replicates recomputed with the published scoring functions to check the vectorised path",
    )

    @model_validator(mode="after")
    def _check(self) -> Uncertainty:
        if self.method == "none" and self.change_test:
            raise ValueError("the test of change needs method parametric_data (set change_test: false)")
        if self.level * self.replicates < 20 or (1 - self.level) / 2 * self.replicates < 5:
            raise ValueError("too few replicates for the interval level: need (1 − level)/2 × replicates ≥ 5")
        return self


class FunnelSettings(_Strict):
    """How funnel plots estimate overdispersion, draw limits and band trusts (``leaguetables.statistics.funnel``).

    ``method: robust`` is the project's default (``funnel.robust_funnel``: consistency-corrected robust τ²,
    adjusted limits whenever τ² > 0, exact limits for rare events, optional pooling of quarters);
    ``method: spiegelhalter`` reproduces SHMI / FunnelPlotR exactly (``funnel.spiegelhalter`` with ``sr_method``
    and ``compat``) and uses a single quarter."""

    method: Literal["robust", "spiegelhalter"] = "robust"
    trim_by: float = Field(0.1, gt=0, lt=0.5, description="fraction winsorised (or truncated) in each tail")
    sr_method: Literal["SHMI", "CQC"] = Field(
        "SHMI", description="spiegelhalter only: SHMI (log scale, truncation) or CQC (square root, winsorised)"
    )
    compat: Literal["FunnelPlotR"] | None = Field(None, description="spiegelhalter only: reproduce FunnelPlotR quirks")
    sr_scale: Literal["log", "sqrt"] = Field("sqrt", description="robust only: scale of O/E z-scores")
    pr_scale: Literal["logit", "arcsine"] = Field("logit", description="robust only: scale of proportion z-scores")
    limits: Literal["auto", "normal", "exact"] = Field(
        "auto", description="robust only: exact discrete limits when events are rare (auto), always, or never"
    )
    rare_expected: float = Field(
        10.0, ge=0, le=1000, description="robust only: median expected events below which events are rare"
    )
    pool_quarters: int = Field(4, ge=1, le=8, description="quarters pooled (the latest, ending with the quarter)")
    pool_when: Literal["rare", "always"] = Field("rare", description="pool only when events are rare, or always")
    band_level: float = 0.95
    outer_level: float = 0.998

    @model_validator(mode="after")
    def _check(self) -> FunnelSettings:
        for name in ("band_level", "outer_level"):
            if not any(abs(getattr(self, name) - lv) < 1e-12 for lv in FUNNEL_LEVELS):
                raise ValueError(
                    f"{name} {getattr(self, name)} is not one of the allowed levels "
                    f"{list(FUNNEL_LEVELS)} (the funnel's two limit levels)"
                )
        if self.outer_level <= self.band_level:
            raise ValueError(f"outer_level {self.outer_level} must be above band_level {self.band_level}")
        if self.method == "spiegelhalter" and self.pool_quarters != 1:
            raise ValueError(
                "the spiegelhalter (SHMI / FunnelPlotR) compatibility method uses one quarter: set pool_quarters to 1"
            )
        if self.method == "robust" and self.compat is not None:
            raise ValueError("compat reproduces a reference tool's quirks: it needs method spiegelhalter")
        return self


class ExpectedSettings(_Strict):
    """Expected values, O/E intervals and the adjusted league (statistical-methods.md §6.2; issue 10).

    model
        ``random_effects``: E is the expected count of a trust of average quality (normal random trust effect
        on the link scale, τ² by REML) and shrunken O/E estimates are published; ``fixed``: E from the GLM
        alone (population-averaged, ΣE = ΣO), no shrunken estimates.
    interval
        ``delta``: O/E intervals include the variance of log E (delta method) and the within-trust variance;
        ``o_only``: the conventional SHMI-style interval from O alone (compatibility).
    within_variance
        ``sampling``: binomial/Poisson sampling variance only; ``sampling_plus_history``: plus the extra
        within-trust variance estimated from quarter-to-quarter changes over the last ``history_quarters``
        quarters (needs ``interval: delta`` or ``model: random_effects`` to have an effect).
    count_interval
        Within-trust interval of a count in the delta interval: ``mid_p`` (mid-p exact Poisson, about nominal
        coverage) or ``exact_byar`` (exact below 10 events, Byar from 10; conservative for small counts).
    between_variance
        Estimator of the between-trust variance τ² of the random-effects model: ``reml`` or ``areml`` (adjusted
        REML of Li & Lahiri 2010, never 0) for E and its interval.
    shrinkage_variance
        The same for the shrunken estimates (default ``areml``: a REML estimate of 0 would shrink every trust
        fully, with intervals that ignore the between-trust variation).
    adjusted_standards
        How the adjusted (sensitivity) league treats absolute standards, floors and value bands:
        ``observed_value`` — judged on the observed value, the adjustment only re-orders the trusts between them;
        ``adjusted_value`` — judged on the adjusted value (a trust can then "meet" a standard only on the adjusted
        scale).
    """

    model: Literal["fixed", "random_effects"] = "random_effects"
    interval: Literal["delta", "o_only"] = "delta"
    within_variance: Literal["sampling", "sampling_plus_history"] = "sampling_plus_history"
    history_quarters: int = Field(8, ge=2, le=40)
    count_interval: Literal["mid_p", "exact_byar"] = "mid_p"
    between_variance: Literal["reml", "areml"] = "reml"
    shrinkage_variance: Literal["reml", "areml"] = "areml"
    adjusted_standards: Literal["observed_value", "adjusted_value"] = "observed_value"

    @model_validator(mode="after")
    def _consistent(self) -> ExpectedSettings:
        if self.within_variance != "sampling" and self.interval == "o_only" and self.model == "fixed":
            raise ValueError(
                "within_variance: sampling_plus_history has no effect with interval: o_only and model: fixed "
                "(the O-only interval uses sampling variance only); set within_variance: sampling"
            )
        return self


class PeerSettings(_Strict):
    k: int = Field(10, ge=1, le=100)
    within_type: bool = True
    weights: dict[str, float] = Field(min_length=1)

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [c for c in v if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown peer variables {unknown}")
        bad = {k: w for k, w in v.items() if not 0 <= w <= 100}
        if bad:
            raise ValueError(f"peer weights must lie in 0–100: {bad}")
        if not any(w > 0 for w in v.values()):
            raise ValueError("at least one peer weight must be positive")
        return v


class Productivity(_Strict):
    """Productivity opportunity settings (:mod:`leaguetables.statistics.productivity`). Left out, ``pool_quarters`` and
    ``estimate`` take Better Care, Better Value's single-quarter observed values (the compatibility setting)."""

    benchmark: Literal["upper_quartile"] = "upper_quartile"
    comparator: Literal["type", "peers"] = "type"
    annualise: Literal[1, 4] = Field(4, description="4: a quarter's opportunity × 4 for a year; 1: per quarter")
    pool_quarters: int = Field(1, ge=1, le=12, description="quarters pooled for each trust's O/E, up to this one")
    estimate: Literal["observed", "shrunken", "constrained"] = Field(
        "observed", description="observed O/E, empirical-Bayes posterior mean, or constrained (spread-matched) EB"
    )


class SPCSettings(_Strict):
    """Statistical process control on every trust profile (:mod:`leaguetables.statistics.spc`): XmR charts with NHS
    England's Making Data Count rules. Left out, the Making Data Count values below apply."""

    min_points: int = Field(8, ge=3, le=100, description="fewer quarters with a value: no process limits")
    run_length: int = Field(7, ge=5, le=12, description="points on one side of the mean that make a run")
    trend_length: int = Field(7, ge=5, le=12, description="points each rising (or falling) that make a trend")
    screen_outliers: bool = Field(False, description="drop moving ranges ≥ 3.267 × mean before the limits")


class Methodology(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    name: str = Field(min_length=1, max_length=300)
    catalogue: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    organisation_kinds: list[Literal["provider", "icb"]] = Field(
        ["provider"], description="the kinds of organisation scored and segmented (2026/27: providers and ICBs)"
    )
    confidence_levels: list[float] = Field(min_length=1, max_length=5)
    segmentation: Segmentation
    financial_override: FinancialOverride
    bootstrap: Bootstrap
    uncertainty: Uncertainty
    funnel: FunnelSettings
    peers: PeerSettings
    productivity: Productivity
    expected: ExpectedSettings = ExpectedSettings()
    spc: SPCSettings = SPCSettings()
    validation: Validation | None = None

    @model_validator(mode="after")
    def _seeds(self) -> Methodology:
        if self.uncertainty.seed == self.bootstrap.seed:
            raise ValueError("uncertainty.seed must differ from bootstrap.seed (independent random streams)")
        return self

    @field_validator("organisation_kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("organisation_kinds must name distinct kinds (provider, icb)")
        return v

    @field_validator("confidence_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < c < 1 for c in v):
            raise ValueError("confidence levels are fractions in (0, 1), e.g. 0.95 and 0.998")
        if len(set(v)) != len(v):
            raise ValueError("a confidence level is listed twice")
        return v


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last one silently) and
    nesting deeper than :data:`MAX_DEPTH`; anchors and aliases are allowed, but the document they expand to is
    bounded (:data:`MAX_NODES`, checked by :func:`load_yaml_strict`: a small file can expand to billions of
    values)."""

    def compose_node(self, parent, index):
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"nesting deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # explicit keys override merged ones (YAML's rule): not a duplicate
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.YAMLError(
                    f"a mapping key is not a plain value (line {key_node.start_mark.line + 1})"
                ) from None
            if key in seen:
                raise yaml.YAMLError(
                    f"key {str(key)[:40]!r} is given twice in one mapping (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1})"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(data, budget: int) -> int:
    """The number of values ``data`` expands to (aliases counted each time they are used), stopping past
    ``budget``."""
    n, stack = 0, [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        n += 1
        if n > budget:
            return n
        if depth > MAX_DEPTH * 4:
            return budget + 1
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
            n += len(obj)
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)
    return n


def load_yaml_strict(text: str):
    """YAML text to Python objects with :class:`_StrictLoader` (``yaml.YAMLError`` on any refusal)."""
    data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    if _expanded_size(data, MAX_NODES) > MAX_NODES:
        raise yaml.YAMLError(
            f"the document expands to more than {MAX_NODES} values (anchors and aliases used recursively?)"
        )
    return data


@functools.lru_cache(maxsize=32)
def _parsed_yaml(text: str):
    """:func:`load_yaml_strict` of ``text``, kept for the process by the text itself (the pure-Python parser costs
    ~50 ms for the demo catalogue, read by every metric notebook, the demo generator and many tests): callers get
    a deep copy (:func:`_load_yaml`), so that no one changes another's configuration. A refusal is not kept."""
    return load_yaml_strict(text)


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = copy.deepcopy(_parsed_yaml(text))
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _validation_message(path: Path, exc: ValidationError, data: dict) -> str:
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ".".join(str(p) for p in loc)
    if loc[:1] == ["metrics"] and len(loc) > 1 and isinstance(loc[1], int):
        try:
            mid = data["metrics"][loc[1]].get("id", "?")
            where = f"metric {mid!r}, field {'.'.join(str(p) for p in loc[2:]) or '(entry)'}"
        except (KeyError, IndexError, AttributeError, TypeError):
            pass
    return f"{path}: {where}: {err['msg']}"


def _resolve(kind: str, name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    if not SAFE_ID.match(str(name_or_path).replace("-", "_")):
        raise InputError(f"{kind} name {str(name_or_path)!r} is not a valid name")
    return CONFIG_DIR / kind / f"{name_or_path}.yaml"


_M = TypeVar("_M", bound=BaseModel)


def _load_model(kind: str, name_or_path: str | Path, model: type[_M]) -> _M:
    """``config/<kind>/<name>.yaml`` (or a path) read strictly and validated by ``model``; a failure is one
    :class:`InputError` line naming the file and the field."""
    path = _resolve(kind, name_or_path)
    data = _load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(path, exc, data)) from None


def load_catalogue(name_or_path: str | Path) -> Catalogue:
    return _load_model("catalogues", name_or_path, Catalogue)


def load_methodology(name_or_path: str | Path) -> Methodology:
    return _load_model("methodology", name_or_path, Methodology)


def _unique_by(key: str, what: str) -> AfterValidator:
    """A list field's validator: no two items with the same ``key`` (the error names ``what`` and the repeats)."""

    def check(items: list) -> list:
        values = [getattr(item, key) for item in items]
        if len(set(values)) != len(values):
            raise ValueError(f"{what} repeated: {sorted({v for v in values if values.count(v) > 1})}")
        return items

    return AfterValidator(check)


class SourceMetric(_Strict):
    """One metric an NHS England adapter produces from the published files (``config/sources/<name>.yaml``)."""

    id: str = Field(min_length=1, max_length=60)
    name: str = Field(min_length=1)
    unit: str
    direction: Literal["higher_better", "lower_better"]
    statistic: Literal["proportion", "rate", "mean"]
    standard: float | None = Field(description="NOF / operational standard as a fraction or score, if any")
    standard_note: str
    domain: str
    source: str = Field(description="the adapter module (leaguetables.inputs.sources.<source>)")
    quarterly_rule: str


class SourceMetrics(_Strict):
    metrics: Annotated[list[SourceMetric], _unique_by("id", "metric ids")] = Field(min_length=1)


def load_source_metrics(name_or_path: str | Path = "nhse-metrics") -> dict[str, SourceMetric]:
    """The metrics of ``config/sources/<name>.yaml`` by id, in file order."""
    return {m.id: m for m in _load_model("sources", name_or_path, SourceMetrics).metrics}


class Succession(_Strict):
    """One closure of the ODS trust register: the trust closed, its successor and the date (``config/sources/
    ods-successors.yaml``; read by :mod:`leaguetables.inputs.sources.ods`)."""

    predecessor: str = Field(pattern=r"^[A-Z0-9]{3,5}$")
    successor: str | None = Field(pattern=r"^[A-Z0-9]{3,5}$", description="None: no successor in these inputs")
    effective: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="the date the successor took over")
    note: str = Field(min_length=1, description="what happened; 'split: …' when services were divided")


class Successions(_Strict):
    successors: Annotated[list[Succession], _unique_by("predecessor", "predecessors")] = Field(min_length=1)


def load_successors(name_or_path: str | Path = "ods-successors") -> dict[str, tuple[str | None, str, str]]:
    """Predecessor → (successor or None, effective date, note) from ``config/sources/<name>.yaml``, in file
    order."""
    table = _load_model("sources", name_or_path, Successions)
    return {s.predecessor: (s.successor, s.effective, s.note) for s in table.successors}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The aggregate demo generator (leaguetables.inputs.demo): config/demo/<id>.yaml
# ---------------------------------------------------------------------------------------------------------------
class DemoMetricModel(_Strict):
    """How the demo draws one metric (``leaguetables.inputs.demo.SPEC``). ``binomial``: logit-scale intercept
    ``alpha``; ``poisson``: events per unit of denominator ``rate`` (intercept log ``rate``), with gamma mixing of
    shape ``shape`` for overdispersion; both with ``base`` (the denominator of an average trust), covariate
    effects per SD ``beta``, trust-effect SD ``sd`` and ``trend`` per quarter. ``value``: ``mean``, trust SD
    ``sd``, quarterly ``noise``, ``decimals``, ``annual`` (one value a year). ``bracket``: ratings. ``q``: the
    weight on the trusts' shared latent quality (every kind)."""

    kind: Literal["binomial", "poisson", "value", "bracket"]
    q: float = Field(ge=-1, le=1)
    alpha: float | None = None
    rate: float | None = Field(default=None, gt=0)
    base: int | None = Field(default=None, gt=0)
    beta: dict[str, float] | None = None
    sd: float | None = Field(default=None, ge=0)
    trend: float | None = None
    shape: float | None = Field(default=None, gt=0)
    mean: float | None = None
    noise: float | None = Field(default=None, ge=0)
    decimals: int | None = Field(default=None, ge=0)
    annual: bool | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> DemoMetricModel:
        need = {
            "binomial": ("alpha", "base", "beta", "sd", "trend"),
            "poisson": ("rate", "base", "beta", "sd", "trend"),
            "value": ("mean", "sd", "noise", "decimals"),
            "bracket": (),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} metric needs {', '.join(missing)}")
        return self


class DemoMetricModels(_Strict):
    metrics: dict[str, DemoMetricModel] = Field(min_length=1)


def load_demo_models(name_or_path: str | Path = "metric-models") -> dict[str, DemoMetricModel]:
    """Metric id → how the demo draws it, from ``config/demo/<name>.yaml``, in file order."""
    return dict(_load_model("demo", name_or_path, DemoMetricModels).metrics)


# ---------------------------------------------------------------------------------------------------------------
# The synthetic record-level generator (leaguetables.inputs.records.generate): config/records/<id>.yaml
# ---------------------------------------------------------------------------------------------------------------

QUARTER_RE = r"^\d{4}-\d{2}-Q[1-4]$"


class RecordScale(_Strict):
    """One size of the synthetic record-level extract."""

    population_fraction: float = Field(gt=0, le=1, description="share of the real ONS population drawn as patients")
    quarters: list[str] = Field(min_length=1, description="financial quarters generated (YYYY-YY-QN), in order")
    workers: int = Field(default=1, ge=1, le=8, description="worker processes (one ICB chunk each at a time)")
    combine_files: bool = Field(default=True, description="one Parquet file per partition instead of one per ICB")

    @field_validator("quarters")
    @classmethod
    def _quarters(cls, v: list[str]) -> list[str]:
        bad = [q for q in v if not re.match(QUARTER_RE, q)]
        if bad:
            raise ValueError(f"quarters must look like 2025-26-Q4, got {bad[0]!r}")
        if len(set(v)) != len(v):
            raise ValueError("a quarter is listed twice")
        return v


class RecordGenerator(_Strict):
    """Settings of the synthetic national record-level generator (seed, sizes, the fictional register's source)."""

    id: str
    version: str
    description: str
    seed: int = Field(ge=0)
    demo_seed: int = Field(
        ge=0, description="seed of the demo register (inputs.demo) whose acute trust codes the records use"
    )
    acute_trusts: int = Field(
        ge=1,
        description="acute trusts kept from the OHID catchments (the largest, by the "
        "catchment-implied volume), matched to the demo's acute trusts",
    )
    scales: dict[str, RecordScale]
    source: str

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: dict[str, RecordScale]) -> dict[str, RecordScale]:
        missing = {"demo", "national"} - set(v)
        if missing:
            raise ValueError(f"scales must define {sorted(missing)}")
        return v


def load_record_generator(name_or_path: str | Path = "synthetic") -> RecordGenerator:
    return _load_model("records", name_or_path, RecordGenerator)
