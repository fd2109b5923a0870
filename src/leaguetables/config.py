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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A closed target interval ``[low, high]`` of a validation figure."""

    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> "Range":
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
    workers: int = Field(2, ge=1, le=64)
    bootstrap_replicates: int | None = Field(None, ge=100, le=100_000, description="league bootstrap replicates in "
                                             "the study (default: the methodology's)")
    sampling_replicates: int | None = Field(None, ge=200, le=100_000, description="replicates of the sampling "
                                            "bootstrap of the data in the study (default: the methodology's)")
    outlier_sd: float = Field(3.0, gt=0, le=10)
    outliers_per_metric: int = Field(6, ge=2, le=40, description="planted per funnel metric and trust type, half "
                                     "above and half below")
    change_sd: float = Field(2.0, gt=0, le=10)
    change_share: float = Field(0.1, gt=0, le=0.5, description="share of each trust type with a true change, half "
                                "better and half worse")
    overadjust_r: float = Field(0.5, gt=-1, lt=1)
    targets: ValidationTargets = ValidationTargets()

    @model_validator(mode="after")
    def _check(self) -> "Validation":
        from .contract import check_quarter, quarter_key

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
    standard: float | None = Field(None, description="trusts meeting it score 1.00; the rest spread 2.00–4.00")
    floor: float | None = Field(None, description="trusts failing it score 4.00; the rest spread 1.00–3.00")
    brackets: dict[str, float] | None = None
    bands: list[tuple[float | None, float]] | None = Field(
        None, description="[lower bound, score] pairs, best first; the last bound is null (everything below)")
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
    covariates: list[str]
    scale: Literal["X2"] | None = None

    @field_validator("covariates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown covariates {unknown}; known: {list(COVARIATES)}")
        if not v:
            raise ValueError("an adjustment model needs at least one covariate")
        return v


class UnitCost(_Strict):
    """Price of a unit of activity, for the productivity opportunity (Better Care, Better Value)."""

    amount: float = Field(gt=0)
    currency: str = "GBP"
    unit: str
    activity: Literal["denominator", "numerator"] = "denominator"
    source: str


class Metric(_Strict):
    id: str
    nof_id: str | None = None
    name: str
    description: str
    domain: str
    sub_domain: str
    unit: str
    trust_types: list[TrustType]
    direction: Literal["higher_better", "lower_better"]
    statistic: Literal["proportion", "rate", "mean", "bracket", "value"]
    multiplier: float = 1.0
    decimals: int = 1
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
    id: str
    version: str
    description: str
    combine_groups: dict[str, CombineGroup] = {}
    not_in_inputs: list[str] = Field([], description="NOF metrics the inputs of this catalogue cannot provide")
    metrics: list[Metric]

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
            if not self.thresholds or len(self.thresholds) != 3 or sorted(self.thresholds) != self.thresholds:
                raise ValueError("fixed_thresholds needs 3 ascending thresholds")
        return self


class FinancialOverride(_Strict):
    enabled: bool = True
    from_segments: list[int] = [1, 2]
    to_segment: int = 3


class Bootstrap(_Strict):
    replicates: int = Field(ge=100, le=100_000)
    seed: int
    level: float = Field(0.95, gt=0, lt=1)


FUNNEL_LEVELS = (0.95, 0.998)
class Uncertainty(_Strict):
    """Sampling uncertainty of the league (``leaguetables.sampling``): rank intervals, median rank, P(segment),
    rankability, and the test of change between quarters."""

    method: Literal["parametric_data", "none"] = Field(
        "parametric_data", description="parametric_data: simulate the metrics' numerators and recompute the whole "
        "league in every replicate; none: publish NHS England's likely ranges only (no calibrated columns, no "
        "test of change)")
    replicates: int = Field(2000, ge=200, le=100_000)
    seed: int = Field(ge=0)
    level: float = Field(0.95, ge=0.5, lt=1)
    shrinkage: bool = Field(True, description="draw true rates from the empirical-Bayes posterior (true) or redraw "
                            "numerators around the observed rates (false, a plug-in bootstrap)")
    change_test: bool = Field(True, description="test the change of rank and segment since the previous quarter")
    check_replicates: int = Field(3, ge=1, le=50, description="replicates recomputed with the published scoring "
                                  "functions to check the vectorised path")

    @model_validator(mode="after")
    def _check(self) -> "Uncertainty":
        if self.method == "none" and self.change_test:
            raise ValueError("the test of change needs method parametric_data (set change_test: false)")
        if self.level * self.replicates < 20 or (1 - self.level) / 2 * self.replicates < 5:
            raise ValueError("too few replicates for the interval level: need (1 − level)/2 × replicates ≥ 5")
        return self


class FunnelSettings(_Strict):
    """How funnel plots estimate overdispersion, draw limits and band trusts (``leaguetables.funnel``).

    ``method: robust`` is the project's default (``funnel.robust_funnel``: consistency-corrected robust τ²,
    adjusted limits whenever τ² > 0, exact limits for rare events, optional pooling of quarters);
    ``method: spiegelhalter`` reproduces SHMI / FunnelPlotR exactly (``funnel.spiegelhalter`` with ``sr_method``
    and ``compat``) and uses a single quarter."""

    method: Literal["robust", "spiegelhalter"] = "robust"
    trim_by: float = Field(0.1, gt=0, lt=0.5, description="fraction winsorised (or truncated) in each tail")
    sr_method: Literal["SHMI", "CQC"] = Field(
        "SHMI", description="spiegelhalter only: SHMI (log scale, truncation) or CQC (square root, winsorised)")
    compat: Literal["FunnelPlotR"] | None = Field(None, description="spiegelhalter only: reproduce FunnelPlotR quirks")
    sr_scale: Literal["log", "sqrt"] = Field("sqrt", description="robust only: scale of O/E z-scores")
    pr_scale: Literal["logit", "arcsine"] = Field("logit", description="robust only: scale of proportion z-scores")
    limits: Literal["auto", "normal", "exact"] = Field(
        "auto", description="robust only: exact discrete limits when events are rare (auto), always, or never")
    rare_expected: float = Field(10.0, ge=0, le=1000,
                                 description="robust only: median expected events below which events are rare")
    pool_quarters: int = Field(4, ge=1, le=8, description="quarters pooled (the latest, ending with the quarter)")
    pool_when: Literal["rare", "always"] = Field("rare", description="pool only when events are rare, or always")
    band_level: float = 0.95
    outer_level: float = 0.998

    @model_validator(mode="after")
    def _check(self) -> "FunnelSettings":
        for name in ("band_level", "outer_level"):
            if not any(abs(getattr(self, name) - lv) < 1e-12 for lv in FUNNEL_LEVELS):
                raise ValueError(f"{name} must be one of {FUNNEL_LEVELS} (the funnel's two limit levels)")
        if abs(self.band_level - self.outer_level) < 1e-12:
            raise ValueError("band_level and outer_level must differ")
        if self.method == "spiegelhalter" and self.pool_quarters != 1:
            raise ValueError("the spiegelhalter (SHMI / FunnelPlotR) compatibility method uses one quarter: "
                             "set pool_quarters to 1")
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
    def _consistent(self) -> "ExpectedSettings":
        if self.within_variance != "sampling" and self.interval == "o_only" and self.model == "fixed":
            raise ValueError(
                "within_variance: sampling_plus_history has no effect with interval: o_only and model: fixed "
                "(the O-only interval uses sampling variance only); set within_variance: sampling")
        return self


class PeerSettings(_Strict):
    k: int = Field(10, ge=1)
    within_type: bool = True
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [c for c in v if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown peer variables {unknown}")
        return v


class Productivity(_Strict):
    """Productivity opportunity settings (:mod:`leaguetables.productivity`). Left out, ``pool_quarters`` and
    ``estimate`` take Better Care, Better Value's single-quarter observed values (the compatibility setting)."""

    benchmark: Literal["upper_quartile"] = "upper_quartile"
    comparator: Literal["type", "peers"] = "type"
    annualise: int = Field(4, ge=1, le=12)
    pool_quarters: int = Field(1, ge=1, le=12, description="quarters pooled for each trust's O/E, up to this one")
    estimate: Literal["observed", "shrunken", "constrained"] = Field(
        "observed", description="observed O/E, empirical-Bayes posterior mean, or constrained (spread-matched) EB")


class SPCSettings(_Strict):
    """Statistical process control on every trust profile (:mod:`leaguetables.spc`): XmR charts with NHS
    England's Making Data Count rules. Left out, the Making Data Count values below apply."""

    min_points: int = Field(8, ge=3, le=100, description="fewer quarters with a value: no process limits")
    run_length: int = Field(7, ge=5, le=12, description="points on one side of the mean that make a run")
    trend_length: int = Field(7, ge=5, le=12, description="points each rising (or falling) that make a trend")
    screen_outliers: bool = Field(False, description="drop moving ranges ≥ 3.267 × mean before the limits")


class Methodology(_Strict):
    id: str
    version: str
    name: str
    catalogue: str
    confidence_levels: list[float]
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
    def _seeds(self) -> "Methodology":
        if self.uncertainty.seed == self.bootstrap.seed:
            raise ValueError("uncertainty.seed must differ from bootstrap.seed (independent random streams)")
        return self

    @field_validator("confidence_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < c < 1 for c in v):
            raise ValueError("confidence levels are fractions in (0, 1), e.g. 0.95 and 0.998")
        return v


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
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
