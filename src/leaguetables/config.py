"""Methodology as data: the methodology config and the metric catalogue, validated on load.

Both live as versioned YAML files under ``config/``:

* ``config/methodology/<id>.yaml`` — segmentation rule, financial override, bootstrap settings, confidence
  levels, funnel and peer settings, productivity settings, and the default catalogue;
* ``config/catalogues/<id>.yaml`` — one entry per metric: definition, direction, statistic, scoring,
  weight, combine group, demographic-adjustment model, funnel, unit cost.

The methodology document published with each quarter is generated from these same objects
(:mod:`leaguetables.methodology`), so the published description cannot drift from what was run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"

TrustType = Literal["acute", "mental_health_community", "ambulance"]
TRUST_TYPES: tuple[str, ...] = ("acute", "mental_health_community", "ambulance")
TRUST_TYPE_LABELS = {
    "acute": "Acute trust",
    "mental_health_community": "Mental health and community trust",
    "ambulance": "Ambulance trust",
}
TRUST_TYPE_PLURAL = {
    "acute": "Acute trusts",
    "mental_health_community": "Mental health and community trusts",
    "ambulance": "Ambulance trusts",
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


class Scoring(_Strict):
    """How a metric becomes a NOF score (1.00 best – 4.00 worst)."""

    method: Literal["ranked", "bracket", "bands", "none"] = "ranked"
    standard: float | None = Field(None, ge=-1e9, le=1e9,
                                   description="trusts meeting it score 1.00; the rest spread 2.00–4.00")
    floor: float | None = Field(None, ge=-1e9, le=1e9,
                                description="trusts failing it score 4.00; the rest spread 1.00–3.00")
    brackets: dict[str, float] | None = Field(None, min_length=1, max_length=20)
    bands: list[tuple[float | None, float]] | None = Field(
        None, max_length=20,
        description="[lower bound, score] pairs, best first; the last bound is null (everything below)")
    comparator: Literal["type", "all_listed_types"] = "type"

    @model_validator(mode="after")
    def _check(self) -> "Scoring":
        if self.method == "bracket" and not self.brackets:
            raise ValueError("a bracket metric needs 'brackets' (category → score)")
        if self.method != "bracket" and self.brackets:
            raise ValueError("'brackets' given but scoring method is not 'bracket'")
        if self.standard is not None and self.floor is not None:
            raise ValueError("a metric has a standard or a floor, not both")
        if self.method == "bands":
            b = self.bands or []
            if len(b) < 2 or b[-1][0] is not None or any(x[0] is None for x in b[:-1]):
                raise ValueError("'bands' needs at least two [lower bound, score] pairs, the last with bound null")
            bounds = [x[0] for x in b[:-1]]
            if bounds != sorted(bounds, reverse=True):
                raise ValueError("'bands' lower bounds must be in descending order (best band first)")
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
    nof_id: str | None = Field(None, pattern=r"^OF\d{4}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    domain: str = Field(min_length=1, max_length=100)
    sub_domain: str = Field(min_length=1, max_length=100)
    unit: str = Field(min_length=1, max_length=40)
    trust_types: list[TrustType]
    direction: Literal["higher_better", "lower_better"]
    statistic: Literal["proportion", "rate", "mean", "bracket", "value"]
    counts: Literal["integer", "real"] = Field(
        "integer", description="proportion and rate: whole counts (integer) or measured amounts (real: FTE days, "
                               "average occupied beds); integer counts are checked to be whole numbers")
    multiplier: float = Field(1.0, gt=0, le=1e9, description="positive and finite: 100 for a percentage, "
                                                              "100000 for a rate per 100,000")
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
    def _check(self) -> "Metric":
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
        return self

    @property
    def has_adjustment(self) -> bool:
        return self.adjustment is not None


class CombineGroup(_Strict):
    """Metrics that enter the average once, as one combined score."""

    name: str
    nof_id: str | None = None
    rule: Literal["nof_finance", "weighted_mean"]
    planned: str | None = Field(None, description="nof_finance: the planned surplus/deficit metric")
    variance: str | None = Field(None, description="nof_finance: the year-to-date variance-to-plan metric")

    @model_validator(mode="after")
    def _check(self) -> "CombineGroup":
        if self.rule == "nof_finance" and not (self.planned and self.variance):
            raise ValueError("the nof_finance rule needs 'planned' and 'variance' metric ids")
        return self


class Catalogue(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str
    combine_groups: dict[str, CombineGroup] = {}
    not_in_inputs: list[str] = Field([], description="NOF metrics the inputs of this catalogue cannot provide")
    metrics: list[Metric] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> "Catalogue":
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
    rule: Literal["quartiles_within_type", "quartiles_over_population", "fixed_thresholds"]
    thresholds: list[float] | None = Field(None, description="3 ascending cut points for fixed_thresholds")
    description: str

    @model_validator(mode="after")
    def _check(self) -> "Segmentation":
        if self.rule == "fixed_thresholds":
            t = self.thresholds
            if not t or len(t) != 3 or sorted(t) != t or len(set(t)) != 3 or not all(1 <= x <= 4 for x in t):
                raise ValueError("fixed_thresholds needs 3 ascending thresholds (strictly, within 1–4: the score scale)")
        elif self.thresholds is not None:
            raise ValueError(f"'thresholds' given but the rule is {self.rule!r}, which does not use them")
        return self


SEGMENTS = (1, 2, 3, 4, 5)  # NOF segments: 1–4 from the average score; 5 the Recovery Support Programme


class FinancialOverride(_Strict):
    enabled: bool = True
    from_segments: list[Literal[1, 2, 3, 4]] = Field([1, 2], min_length=1, max_length=4)
    to_segment: Literal[1, 2, 3, 4, 5] = 3

    @model_validator(mode="after")
    def _check(self) -> "FinancialOverride":
        if len(set(self.from_segments)) != len(self.from_segments):
            raise ValueError("a segment is listed twice in from_segments")
        if self.to_segment <= max(self.from_segments):
            raise ValueError(f"to_segment {self.to_segment} must be worse (higher) than every segment in "
                             f"from_segments {self.from_segments}: the override moves trusts down")
        return self


class Bootstrap(_Strict):
    replicates: int = Field(ge=100, le=100_000)
    seed: int = Field(ge=0, lt=2**32)
    level: float = Field(0.95, gt=0, lt=1)


# the levels the funnel computes limits at (funnel.LEVELS): a band or outer level must be one of them, or the
# metric notebooks would fail when they look its limits up
BAND_LEVELS = (0.95, 0.998)


class FunnelSettings(_Strict):
    sr_method: Literal["SHMI", "CQC"] = "SHMI"
    trim_by: float = Field(0.1, ge=0, lt=0.5)
    band_level: float = 0.95
    outer_level: float = 0.998

    @model_validator(mode="after")
    def _check(self) -> "FunnelSettings":
        for name in ("band_level", "outer_level"):
            if getattr(self, name) not in BAND_LEVELS:
                raise ValueError(f"{name} {getattr(self, name)} is not one of the allowed levels {list(BAND_LEVELS)}")
        if self.outer_level <= self.band_level:
            raise ValueError(f"outer_level {self.outer_level} must be above band_level {self.band_level}")
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
    benchmark: Literal["upper_quartile"] = "upper_quartile"
    comparator: Literal["type", "peers"] = "type"
    annualise: Literal[1, 4] = Field(4, description="4: a quarter's opportunity × 4 for a year; 1: per quarter")


class Methodology(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    name: str = Field(min_length=1, max_length=300)
    catalogue: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    confidence_levels: list[float] = Field(min_length=1, max_length=5)
    segmentation: Segmentation
    financial_override: FinancialOverride
    bootstrap: Bootstrap
    funnel: FunnelSettings
    peers: PeerSettings
    productivity: Productivity

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
                raise yaml.YAMLError(f"a mapping key is not a plain value (line {key_node.start_mark.line + 1})") \
                    from None
            if key in seen:
                raise yaml.YAMLError(f"key {str(key)[:40]!r} is given twice in one mapping (lines {seen[key]} and "
                                     f"{key_node.start_mark.line + 1})")
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
        raise yaml.YAMLError(f"the document expands to more than {MAX_NODES} values (anchors and aliases used "
                             "recursively?)")
    return data


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
        data = load_yaml_strict(text)
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


def load_catalogue(name_or_path: str | Path) -> Catalogue:
    path = _resolve("catalogues", name_or_path)
    data = _load_yaml(path)
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(path, exc, data)) from None


def load_methodology(name_or_path: str | Path) -> Methodology:
    path = _resolve("methodology", name_or_path)
    data = _load_yaml(path)
    try:
        return Methodology.model_validate(data)
    except ValidationError as exc:
        raise InputError(_validation_message(path, exc, data)) from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
