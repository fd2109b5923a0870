"""One metric for one quarter: the metric result table (run by ``notebooks/metric.ipynb``).

For every trust of the types the metric applies to, in order:

1. the indicator value and its confidence interval (:mod:`leaguetables.statistics.rates`), with the statistic, method and
   confidence level on every row; suppressed or missing figures are kept as rows with a status and no value;
2. where the catalogue asks for one, the expected value from the demographic model fitted within trust type
   (:mod:`leaguetables.statistics.expected`, settings from the methodology's ``expected:`` section): E, O/E with its
   interval (including the uncertainty of E by default), shrunken O/E (random-effects model), and the adjusted
   value (O/E × the type's rate) with its interval (:data:`MODEL_COLUMNS`);
3. where the catalogue asks for a funnel plot, the Spiegelhalter z-score, overdispersion and band within trust
   type (:mod:`leaguetables.statistics.funnel`): on O/E when the metric is adjusted, on the proportion otherwise, and on
   O/E against the type's crude rate for unadjusted rates;
4. the NOF score 1.00–4.00 (:mod:`leaguetables.nof.scoring`) on the raw value — NHS England's method — and, for the
   sensitivity analysis, on the adjusted value (:func:`score_adjusted`: absolute standards, floors and value bands
   judged on the observed value by default, ``standard_judged_on`` saying so);
5. the trust's position among its demographic peers (:mod:`leaguetables.statistics.peers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leaguetables.config import ExpectedSettings, FunnelSettings, Methodology, Metric
from leaguetables.csv_output import write_csv
from leaguetables.inputs import bundles
from leaguetables.inputs.contract import QuarterInputs, previous_quarter, quarter_key
from leaguetables.nof import scoring
from leaguetables.statistics import expected as expected_mod
from leaguetables.statistics import funnel as funnel_mod
from leaguetables.statistics import peers as peers_mod
from leaguetables.statistics import rates
from leaguetables.statistics.peers import peer_table

RESULT_COLUMNS = [
    "quarter",
    "metric_id",
    "trust_code",
    "trust_type",
    "status",
    "numerator",
    "denominator",
    "value",
    "lower",
    "upper",
    "confidence",
    "statistic",
    "method",
    "category",
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "adjusted_value",
    "funnel_z",
    "funnel_band",
    "funnel_outcome",
    "score",
    "score_adjusted",
    "type_value",
    "peer_median",
    "peer_rank",
    "peer_n",
    # expected values (issue 10): interval method, SD of log E, shrunken O/E (random-effects model), adjusted
    # value's interval, and the basis on which the adjusted league judged an absolute standard/floor/band
    "oe_method",
    "se_log_expected",
    "oe_shrunk",
    "oe_shrunk_lower",
    "oe_shrunk_upper",
    "adjusted_lower",
    "adjusted_upper",
    "standard_judged_on",
    "funnel_value",
    "funnel_lower",
    "funnel_upper",
    "funnel_quarters",
]
#: Columns filled from the expected-value model (:class:`leaguetables.statistics.expected.ExpectedModel`).
MODEL_COLUMNS = [
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "oe_method",
    "se_log_expected",
    "oe_shrunk",
    "oe_shrunk_lower",
    "oe_shrunk_upper",
    "adjusted_value",
    "adjusted_lower",
    "adjusted_upper",
]
STATUS_OK, STATUS_SUPPRESSED, STATUS_MISSING = "ok", "suppressed", "missing"


@dataclass
class MetricResult:
    metric: Metric
    quarter: str
    table: pd.DataFrame
    models: dict[str, expected_mod.ExpectedResults] = field(default_factory=dict)
    within_variance: str | None = None  # the methodology's expected.within_variance the models were fitted with
    model_errors: dict[str, str] = field(default_factory=dict)
    funnels: dict[str, funnel_mod.FunnelResult] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    funnel_level: float = 0.95

    def coefficients(self) -> pd.DataFrame:
        """All fitted models' coefficient tables, one block per trust type (for export and peer review)."""
        frames = [m.coefficients.assign(metric_id=self.metric.id, trust_type=t) for t, m in self.models.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def model_summary(self) -> pd.DataFrame:
        keys = [
            "family",
            "n_trusts",
            "n_excluded",
            "deviance_explained",
            "dispersion",
            "scale_used",
            "aic",
            "converged",
            # issue 10: how E and the O/E intervals were made
            "model",
            "interval",
            "count_interval",
            "within_variance",
            "within_extra_variance_mean",
            "df_expected",
            "tau2",
            "tau2_shrinkage",
        ]
        rows = [
            {
                "metric_id": self.metric.id,
                "trust_type": t,
                **{k: self.within_variance if k == "within_variance" else m.fit_info.get(k) for k in keys},
            }
            for t, m in self.models.items()
        ]
        return pd.DataFrame(rows)

    def funnel_summary(self) -> pd.DataFrame:
        """One row per funnel (trust type): method, target, φ, τ², limits used, flags at the band level and the
        number of flags expected by chance (``n_tested`` × (1 − level)) if no trust were truly different."""
        rows = []
        for t, f in self.funnels.items():
            g = self.table.loc[self.table["trust_type"] == t]
            n_high = int((g["funnel_band"] == "higher than expected").sum())
            n_low = int((g["funnel_band"] == "lower than expected").sum())
            n_tested = int(g["funnel_band"].notna().sum())
            rows.append(
                {
                    "metric_id": self.metric.id,
                    "trust_type": t,
                    "data_type": f.data_type,
                    "method": f.method,
                    "target": f.target,
                    "phi": f.phi,
                    "tau2": f.tau2,
                    "adjusted_limits": f.adjusted_used,
                    "n_higher": n_high,
                    "n_lower": n_low,
                    "estimator": f.estimator,
                    "limits": "exact" if f.exact else "normal",
                    "scale": f.scale,
                    "quarters": f.periods,
                    "band_level": self.funnel_level,
                    "n_tested": n_tested,
                    "n_expected_by_chance": funnel_mod.expected_flags(n_tested, self.funnel_level),
                }
            )
        return pd.DataFrame(rows)


def _set_status(df: pd.DataFrame) -> None:
    """The ``status`` column of observations joined to the eligible trusts: missing (no row), suppressed, or ok
    (missing too when the row has no figure)."""
    no_row = df["suppressed"].isna().to_numpy()
    suppressed = df["suppressed"].fillna(False).astype(bool).to_numpy()
    has_figure = df[["numerator", "reported_value", "category"]].notna().any(axis=1).to_numpy()
    df["status"] = np.where(  # one assignment of the whole column (issue 13: the unit tests' time)
        no_row | ~(suppressed | has_figure), STATUS_MISSING, np.where(suppressed, STATUS_SUPPRESSED, STATUS_OK)
    )


def _text_equal(column: pd.Series, value: str) -> np.ndarray:
    """``column == value`` as a bool array, the fastest way for the column's type: pyarrow's comparison for Arrow-backed
    text (pandas' ``==``), numpy's for an object array (~4× pandas' there)."""
    if column.dtype == object:
        return column.to_numpy() == value
    return (column == value).to_numpy(dtype=bool, na_value=False)


def _metric_rows(obs: pd.DataFrame, metric_id: str, quarters) -> np.ndarray:
    """The positions of ``obs``' rows of ``metric_id`` in one of ``quarters``, in row order: the rows of pandas'
    ``(obs["metric_id"] == metric_id) & obs["quarter"].isin(quarters)``, found several times faster (issue 13: the
    unit tests' time) by comparing the metric column (:func:`_text_equal`), then the quarters of its rows only."""
    rows = np.flatnonzero(_text_equal(obs["metric_id"], metric_id))
    wanted = set(quarters)
    return rows[np.fromiter((q in wanted for q in obs["quarter"].iloc[rows]), dtype=bool, count=len(rows))]


def observed_table(inputs: QuarterInputs, metric: Metric, quarter: str) -> pd.DataFrame:
    """Eligible trusts joined to their observation for the quarter, with a status per trust."""
    trusts = inputs.trusts.loc[inputs.trusts["trust_type"].isin(metric.trust_types), ["trust_code", "trust_type"]]
    obs = inputs.observations
    obs = obs.iloc[_metric_rows(obs, metric.id, (quarter,))]
    obs = obs.drop(columns=["quarter", "metric_id"]).rename(columns={"value": "reported_value"})
    df = trusts.merge(obs, on="trust_code", how="left")
    _set_status(df)
    df.insert(0, "metric_id", metric.id)
    df.insert(0, "quarter", quarter)
    return df.sort_values(["trust_type", "trust_code"], kind="mergesort").reset_index(drop=True)


def indicator(df: pd.DataFrame, metric: Metric, confidence: float) -> pd.DataFrame:
    """Value, lower, upper, confidence, statistic, method for each row (NaN where there is no figure)."""
    ok = df["status"] == STATUS_OK
    sub = df.loc[ok]
    if metric.statistic == "rate" and metric.numerator_variance == "reported" and len(sub):
        res = rates.crude_rate(  # an overdispersed numerator: the scaled limits of its reported variance
            sub["numerator"].to_numpy(float),
            sub["denominator"].to_numpy(float),
            confidence=confidence,
            multiplier=metric.multiplier,
            variance=sub.get("numerator_variance", pd.Series(np.nan, index=sub.index)).to_numpy(float),
        )
    elif metric.statistic in ("proportion", "rate") and len(sub):
        estimate = rates.proportion if metric.statistic == "proportion" else rates.crude_rate
        res = estimate(
            sub["numerator"].to_numpy(float),
            sub["denominator"].to_numpy(float),
            confidence=confidence,
            multiplier=metric.multiplier,
        )
    elif metric.statistic == "mean" and len(sub):
        res = rates.mean_score(sub["reported_value"].to_numpy(float), confidence=confidence)
    else:
        value = sub["reported_value"].to_numpy(float) if metric.statistic == "value" else np.full(len(sub), np.nan)
        res = pd.DataFrame(
            {
                "value": value,
                "lower": np.nan,
                "upper": np.nan,
                "confidence": np.nan,
                "statistic": "reported value" if metric.statistic == "value" else "rating",
                "method": "as reported",
            }
        )
    return _spread_rows(res, np.flatnonzero(ok.to_numpy(bool)), df.index)


def _spread_rows(res: pd.DataFrame, rows: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """:func:`indicator`'s table: ``res`` (one row per position of ``rows``) at those positions of ``index``, NaN
    elsewhere; value, lower, upper and confidence as floats, statistic and method as objects."""
    cols: dict[str, object] = {}
    for col in ("value", "lower", "upper", "confidence", "statistic", "method"):
        kind = object if col in ("statistic", "method") else float
        a = np.full(len(index), np.nan, dtype=kind)
        if len(rows):
            a[rows] = res[col].to_numpy(kind)
        cols[col] = pd.Series(a, index=index, dtype=kind, copy=False)
    return pd.DataFrame(cols, index=index)


def _fit_models(
    result: MetricResult,
    df: pd.DataFrame,
    inputs: QuarterInputs,
    confidence: float,
    settings: ExpectedSettings | None = None,
) -> pd.DataFrame:
    """Expected values per trust type (``settings`` = the methodology's ``expected:`` section)."""
    settings = settings or ExpectedSettings()
    adj = result.metric.adjustment
    extra = pd.DataFrame(np.nan, index=df.index, columns=MODEL_COLUMNS).astype({"oe_method": object})
    if adj is None:
        return extra
    demo = inputs.demographics.set_index("trust_code")
    for ttype in result.metric.trust_types:
        rows = df.index[(df["trust_type"] == ttype) & (df["status"] == STATUS_OK)]
        if len(rows) == 0:
            continue
        data = df.loc[rows, ["trust_code", "numerator", "denominator"]].join(demo[adj.covariates], on="trust_code")
        try:
            within = 0.0
            if settings.within_variance == "sampling_plus_history":
                within = expected_mod.within_extra_variance(
                    _count_history(inputs, result.metric, result.quarter, ttype, settings.history_quarters), adj.family
                )
            fit = expected_mod.metric_model(
                data,
                result.metric,
                confidence=confidence,
                interval=settings.interval,
                model=settings.model,
                within_extra_variance=within,
                count_interval=settings.count_interval,
                tau2_method=settings.between_variance,
                shrinkage_tau2_method=settings.shrinkage_variance,
            ).fit()
        except expected_mod.ModelError as exc:
            result.model_errors[ttype] = str(exc)
            result.notes.append(f"No demographic model for {ttype}: {exc}")
            continue
        result.within_variance = settings.within_variance
        result.models[ttype] = fit
        t = fit.table.set_index("trust_code")
        codes = df.loc[rows, "trust_code"]
        for col in MODEL_COLUMNS:
            if col == "oe_method":
                extra.loc[rows, col] = codes.map(t[col].astype(object)).to_numpy(object)
            else:
                extra.loc[rows, col] = codes.map(t[col]).to_numpy(float)
        bad = t.index[t["status"] != "ok"]
        for code in bad:
            result.notes.append(f"{code}: {t.loc[code, 'status']}")
    return extra


def _count_history(inputs: QuarterInputs, metric: Metric, quarter: str, ttype: str, n_quarters: int) -> pd.DataFrame:
    """Numerator and denominator of the trusts of one type over the last ``n_quarters`` quarters up to ``quarter``
    (for the extra within-trust variance), with ``period`` = the quarter's position (consecutive integers)."""
    quarters = [q for q in inputs.quarters() if quarter_key(q) <= quarter_key(quarter)][-n_quarters:]
    period = {q: i for i, q in enumerate(quarters)}
    obs = inputs.observations
    obs = obs.iloc[_metric_rows(obs, metric.id, quarters)]
    obs = obs.loc[~obs["suppressed"].fillna(False).astype(bool)]
    types = inputs.trusts.set_index("trust_code")["trust_type"]
    obs = obs.loc[obs["trust_code"].map(types) == ttype]
    return pd.DataFrame(
        {
            "trust_code": obs["trust_code"].to_numpy(),
            "period": obs["quarter"].map(period).to_numpy(),
            "numerator": obs["numerator"].to_numpy(float),
            "denominator": obs["denominator"].to_numpy(float),
        }
    )


FUNNEL_COLUMNS = [
    "funnel_z",
    "funnel_band",
    "funnel_outcome",
    "funnel_value",
    "funnel_lower",
    "funnel_upper",
    "funnel_quarters",
]


def _funnel_counts(df: pd.DataFrame, rows, m: Metric, ttype: str, model_types) -> tuple[pd.Series, pd.Series, str]:
    """Numerator and comparison denominator of a funnel (indexed by trust code), and its data type: O against E
    (SR) where the metric has a model for the type, the proportion (PR), or O against the type's crude rate (SR)."""
    codes = df.loc[rows, "trust_code"].to_numpy()
    num = pd.Series(df.loc[rows, "numerator"].to_numpy(float), index=codes)
    if ttype in model_types:
        return num, pd.Series(df.loc[rows, "expected"].to_numpy(float), index=codes), "SR"
    den = pd.Series(df.loc[rows, "denominator"].to_numpy(float), index=codes)
    if m.statistic == "proportion":
        return num, den, "PR"
    return num, den * (num.sum() / den.sum()), "SR"


def _pooled_counts(
    inputs: QuarterInputs,
    m: Metric,
    quarter: str,
    k: int,
    num: pd.Series,
    den: pd.Series,
    data_type: str,
    adjusted: bool,
) -> tuple[pd.Series, pd.Series, int]:
    """Counts pooled over the latest ``k`` quarters ending with ``quarter`` (those the inputs hold).

    Each trust's numerator and denominator are summed over the quarters it reported (status ok). Proportions:
    ΣO against Σn. Rates against the type's rate: ΣO against Σn × the pooled rate. O/E with a model: the trust's
    expected rate of this quarter (E/n) × its pooled denominator, rescaled so that ΣE = ΣO over the pooled
    quarters (the model is fitted to this quarter; its covariate effects are applied to the earlier ones)."""
    quarters = sorted((q for q in inputs.quarters() if quarter_key(q) <= quarter_key(quarter)), key=quarter_key)[-k:]
    codes = num.index
    o_sum = pd.Series(0.0, index=codes)
    n_sum = pd.Series(0.0, index=codes)
    for q in quarters:
        t = observed_table(inputs, m, q).set_index("trust_code")
        t = t.loc[t.index.intersection(codes)]
        ok = (t["status"] == STATUS_OK) & t["numerator"].notna() & t["denominator"].notna()
        o_sum = o_sum.add(t.loc[ok, "numerator"].astype(float), fill_value=0.0)
        n_sum = n_sum.add(t.loc[ok, "denominator"].astype(float), fill_value=0.0)
    o_sum, n_sum = o_sum.reindex(codes), n_sum.reindex(codes)
    if data_type == "PR":
        return o_sum, n_sum, len(quarters)
    if adjusted:
        current = observed_table(inputs, m, quarter).set_index("trust_code")["denominator"].reindex(codes).astype(float)
        e = den / current * n_sum
    else:
        e = n_sum.copy()
    return o_sum, e * (o_sum.sum() / e.sum()), len(quarters)


def funnel_arguments(f: FunnelSettings) -> dict[str, Any]:
    """The arguments of :func:`leaguetables.statistics.funnel.funnel` set by the methodology's funnel settings."""
    names = ("method", "trim_by", "sr_method", "compat", "sr_scale", "pr_scale", "limits", "rare_expected")
    return {name: getattr(f, name) for name in names}


def _funnels(
    result: MetricResult, df: pd.DataFrame, methodology: Methodology, inputs: QuarterInputs | None = None
) -> pd.DataFrame:
    """Funnel z-score, band and outcome of each trust (and the limits the band used), by the configured method.

    The ``funnel`` section of the methodology config is passed to :func:`leaguetables.statistics.funnel.funnel` as explicit
    arguments. With the robust method, a funnel whose events are rare this quarter (or every funnel, with
    ``pool_when: always``) is computed on counts pooled over the latest ``pool_quarters`` quarters the inputs hold
    (``funnel_quarters`` says how many); ``funnel_value``, ``funnel_lower`` and ``funnel_upper`` are the plotted
    indicator (O/E or the proportion of 1) and the limits at the band level that decided the band."""
    m = result.metric
    out = pd.DataFrame({c: np.nan for c in FUNNEL_COLUMNS}, index=df.index)
    out = out.astype({"funnel_band": object, "funnel_outcome": object})
    if not m.funnel:
        return out
    f = methodology.funnel
    result.funnel_level = f.band_level
    args = funnel_arguments(f)
    for ttype in m.trust_types:
        rows = df.index[(df["trust_type"] == ttype) & (df["status"] == STATUS_OK)]
        if ttype in result.models:
            rows = rows[df.loc[rows, "expected"].notna().to_numpy()]
        if len(rows) < 3 or df.loc[rows, "numerator"].sum() <= 0:
            result.notes.append(f"No funnel plot for {ttype}: fewer than 3 trusts or no events")
            continue
        num, den, data_type = _funnel_counts(df, rows, m, ttype, result.models)
        if data_type == "PR" and num.sum() >= den.sum():
            result.notes.append(f"No funnel plot for {ttype}: every trust is at 100%")
            continue
        periods = 1
        if f.method == funnel_mod.METHOD_ROBUST and f.pool_quarters > 1 and inputs is not None:
            target = 1.0 if data_type == "SR" else float(num.sum() / den.sum())
            rare = funnel_mod.is_rare(num.to_numpy(), den.to_numpy(), data_type, target, f.rare_expected, f.sr_scale)
            if f.pool_when == "always" or rare:
                num, den, periods = _pooled_counts(
                    inputs, m, result.quarter, f.pool_quarters, num, den, data_type, ttype in result.models
                )
        codes = num.index.to_numpy()
        res = funnel_mod.funnel(num, den, data_type, **args)
        if periods > 1:
            res = replace(res, periods=periods)
            result.notes.append(f"Funnel for {ttype}: events are pooled over the latest {periods} quarters")
        result.funnels[ttype] = res
        flags = res.flags(confidence=f.band_level).reindex(codes)
        bands = funnel_mod.band(flags["high"], flags["low"], m.direction)
        z = res.units["z_adjusted" if res.adjusted_used else "z"].reindex(codes)
        lim = res.limits(confidence=f.band_level).reindex(codes)
        out.loc[rows, "funnel_z"] = z.to_numpy(float)
        out.loc[rows, "funnel_band"] = bands["band"].astype(object).to_numpy()
        out.loc[rows, "funnel_outcome"] = bands["outcome"].astype(object).to_numpy()
        out.loc[rows, "funnel_value"] = res.units["rr"].reindex(codes).to_numpy(float)
        out.loc[rows, "funnel_lower"] = lim["lower"].to_numpy(float)
        out.loc[rows, "funnel_upper"] = lim["upper"].to_numpy(float)
        out.loc[rows, "funnel_quarters"] = float(periods)
    return out


def _scores(df: pd.DataFrame, metric: Metric, column: str) -> pd.Series:
    s = metric.scoring
    scores = pd.Series(np.nan, index=df.index)
    if s.method == "none":
        return scores
    if s.method == "bracket":
        ok = df["status"] == STATUS_OK
        scores.loc[ok] = scoring.score_bracket(df.loc[ok, "category"], dict(s.brackets or {})).to_numpy(float)
        return scores
    if s.method == "bands":
        return pd.Series(score_bands(df[column].to_numpy(float), s.bands or []), index=df.index)
    for types in comparator_groups(metric):
        rows = df.index[df["trust_type"].isin(types) & df[column].notna()]
        if len(rows) == 0:
            continue
        codes = df.loc[rows, "trust_code"].to_numpy()
        values = pd.Series(df.loc[rows, column].to_numpy(float), index=codes)
        tiebreak = group = None
        if "tiebreak" in df.columns and df.loc[rows, "tiebreak"].notna().all():
            # values published rounded, with the publisher's rank of the unrounded values (within type)
            tiebreak = pd.Series(df.loc[rows, "tiebreak"].to_numpy(float), index=codes)
            group = pd.Series(df.loc[rows, "trust_type"].to_numpy(), index=codes)
        floor = s.floor
        if s.relative_floor is not None:
            base = (
                pd.Series(df.loc[rows, "baseline"].to_numpy(float), index=codes)
                if "baseline" in df.columns
                else pd.Series(np.nan, index=codes)
            )
            rf = s.relative_floor
            floor = scoring.relative_floor(base, metric.direction, rf.improvement, rf.at_least)
        sc = scoring.score_ranked(
            values,
            metric.direction,
            standard=s.standard,
            floor=floor,
            tiebreak=tiebreak,
            tiebreak_group=group if len(types) > 1 else None,
        )
        scores.loc[rows] = sc.reindex(values.index).to_numpy(float)
    return scores


def score_adjusted(df: pd.DataFrame, metric: Metric, rule: str = "observed_value") -> tuple[pd.Series, pd.Series]:
    """The adjusted (sensitivity) score, and on which value an absolute standard, floor or band was judged.

    The value scored is the adjusted value (O/E × the type's rate) where there is one, else the observed value.
    With ``rule="observed_value"`` (the project's rule) an absolute threshold is a statement about what patients
    received, so it is judged on the **observed** value: a trust meeting a standard on its observed value scores
    1.00 and one failing a floor 4.00, exactly as in the official league; the adjustment only changes the order
    (and so the scores) of the trusts spread between them. Value bands (``method: bands``) are judged on the
    observed value, so the adjusted score equals the official one. ``rule="adjusted_value"`` judges them on the
    adjusted value (a trust can then "meet" a standard only on the adjusted scale).

    Returns ``(score_adjusted, standard_judged_on)``: the second is ``"observed value"`` or ``"adjusted value"``
    on rows with an adjusted value whose metric has a standard, floor or bands, else missing."""
    if rule not in ("observed_value", "adjusted_value"):
        raise ValueError(f"rule must be 'observed_value' or 'adjusted_value'; got {rule!r}")
    s = metric.scoring
    has_adj = df["adjusted_value"].notna() if "adjusted_value" in df.columns else pd.Series(False, index=df.index)
    adjusted = df["adjusted_value"].where(has_adj, df["value"]) if "adjusted_value" in df.columns else df["value"]
    thresholds = s.method == "bands" or (s.method == "ranked" and (s.standard is not None or s.floor is not None))
    judged = pd.Series(None, index=df.index, dtype=object)
    if thresholds:
        judged[has_adj] = "observed value" if rule == "observed_value" else "adjusted value"
    if rule == "adjusted_value" or not thresholds:
        return _scores(df.assign(adjusted_for_scoring=adjusted), metric, "adjusted_for_scoring"), judged
    if s.method == "bands":
        return _scores(df, metric, "value"), judged
    scores = pd.Series(np.nan, index=df.index)
    sign = 1.0 if metric.direction == "higher_better" else -1.0  # oriented: higher = better
    for types in comparator_groups(metric):
        rows = df.index[df["trust_type"].isin(types) & adjusted.notna()]
        if len(rows) == 0:
            continue
        codes = df.loc[rows, "trust_code"].to_numpy()
        observed = sign * df.loc[rows, "value"].to_numpy(float)
        # per-trust thresholds that reproduce the observed-value decision whatever the adjusted value is
        std = flo = None
        if s.standard is not None:
            meets = observed >= sign * float(s.standard)
            std = pd.Series(np.where(meets, -np.inf, np.inf) * sign, index=codes)
        if s.floor is not None:
            fails = observed < sign * float(s.floor)
            flo = pd.Series(np.where(fails, np.inf, -np.inf) * sign, index=codes)
        values = pd.Series(adjusted.loc[rows].to_numpy(float), index=codes)
        sc = scoring.score_ranked(values, metric.direction, standard=std, floor=flo)
        scores.loc[rows] = sc.reindex(values.index).to_numpy(float)
    return scores, judged


def comparator_groups(metric: Metric) -> list[list[str]]:
    """The comparator populations a ranked metric is scored within: lists of trust types, each scored together.

    The one place this rule lives: the metric notebooks and the sampling bootstrap of the league both use it."""
    if metric.scoring.comparator == "all_listed_types":
        return [list(metric.trust_types)]
    return [[t] for t in metric.trust_types]


_BAND_OPS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def score_bands(values: np.ndarray, bands) -> np.ndarray:
    """Score by value bands, best first: the first band ``(bound, score[, op])`` whose condition
    ``value op bound`` holds (op ``>=`` when not given); the last band (bound ``None``) takes everything else.
    Missing values stay missing.

    NHS England's finance bands (config ``nof-2025-26`` catalogue; published acute Q1 and MH Q1–Q4 2025/26
    files, 100%): planned surplus/deficit OF0079 ``[[0, 1], [-1, 2, ">"], [-2, 3], [null, 4]]`` —
    ≥ 0 → 1, (−1, 0) → 2, [−2, −1] → 3, < −2 → 4."""
    values = np.asarray(values, dtype=float)
    out = np.full(len(values), np.nan)
    todo = ~np.isnan(values)
    for band in bands:
        bound, score = band[0], band[1]
        op = _BAND_OPS[band[2] if len(band) > 2 else ">="]
        hit = todo if bound is None else todo & op(values, bound)
        out[hit] = score
        todo = todo & ~hit
    return out


def _type_values(df: pd.DataFrame, metric: Metric) -> pd.Series:
    """The pooled value of each trust type (ΣO/Σn × multiplier; mean of values otherwise)."""
    out = pd.Series(np.nan, index=df.index)
    for ttype in metric.trust_types:
        rows = (df["trust_type"] == ttype) & (df["status"] == STATUS_OK)
        if not rows.any():
            continue
        if metric.statistic in ("proportion", "rate"):
            v = df.loc[rows, "numerator"].sum() / df.loc[rows, "denominator"].sum() * metric.multiplier
        elif metric.statistic in ("mean", "value"):
            v = df.loc[rows, "value"].mean()
        else:
            v = np.nan
        out.loc[df["trust_type"] == ttype] = v
    return out


def _peers(df: pd.DataFrame, inputs: QuarterInputs, metric: Metric, methodology: Methodology) -> pd.DataFrame:
    out = pd.DataFrame(np.nan, index=df.index, columns=["peer_median", "peer_rank", "peer_n"])
    if metric.statistic == "bracket":
        return out
    values = pd.Series(df["value"].to_numpy(float), index=df["trust_code"].to_numpy()).dropna()
    pos = peers_mod.peer_position(
        values, peer_table(inputs.demographics, inputs.trusts, methodology), metric.direction
    ).set_index("trust_code")
    for col in out.columns:
        out[col] = df["trust_code"].map(pos[col]).to_numpy(float)
    return out


def baseline_values(inputs: QuarterInputs, metric: Metric, quarter: str, confidence: float, back: int) -> pd.Series:
    """The metric's value per trust ``back`` quarters before ``quarter`` (the baseline of a relative floor);
    empty when that quarter is not in the inputs."""
    q = quarter
    for _ in range(back):
        q = previous_quarter(q)
    if q not in inputs.quarters():
        return pd.Series(dtype=float)
    df = observed_table(inputs, metric, q)
    return pd.Series(indicator(df, metric, confidence)["value"].to_numpy(float), index=df["trust_code"].to_numpy())


def _observed_tables(inputs: QuarterInputs, metric: Metric, quarters: list[str]) -> pd.DataFrame:
    """:func:`observed_table`'s rows and status for each of ``quarters``, stacked in that order: one join of the
    eligible trusts × the quarters with the metric's observations instead of one a quarter (the same rows, order,
    values and types; the columns :func:`history` and :func:`indicator` read)."""
    trusts = inputs.trusts.loc[inputs.trusts["trust_type"].isin(metric.trust_types), ["trust_code", "trust_type"]]
    obs = inputs.observations
    obs = obs.iloc[_metric_rows(obs, metric.id, quarters)]
    order = pd.Series(np.arange(len(quarters)), index=quarters)
    obs = obs.assign(_order=obs["quarter"].map(order).to_numpy(np.int64))
    obs = obs.drop(columns=["quarter", "metric_id"]).rename(columns={"value": "reported_value"})
    grid = trusts.merge(pd.DataFrame({"quarter": quarters, "_order": order.to_numpy()}), how="cross")
    df = grid.merge(obs, on=["trust_code", "_order"], how="left")
    _set_status(df)
    df.insert(0, "metric_id", metric.id)
    df = df.sort_values(["_order", "trust_type", "trust_code"], kind="mergesort").reset_index(drop=True)
    return df.drop(columns=["_order"])


def history(inputs: QuarterInputs, metric: Metric, quarter: str, confidence: float) -> pd.DataFrame:
    """The metric's value for every trust in every quarter up to and including ``quarter`` (for trends)."""
    quarters = [q for q in inputs.quarters() if quarter_key(q) <= quarter_key(quarter)]
    if not quarters:
        raise ValueError(f"no quarter of the inputs is on or before {quarter}")
    df = _observed_tables(inputs, metric, quarters)
    ind = indicator(df, metric, confidence)
    return pd.concat(
        [df[["quarter", "metric_id", "trust_code", "trust_type", "status"]], ind[["value", "lower", "upper"]]], axis=1
    )


def compute_metric(inputs: QuarterInputs, metric: Metric, quarter: str, methodology: Methodology) -> MetricResult:
    """The metric result table of one metric for one quarter; see the module docstring for the steps."""
    confidence = methodology.confidence_levels[0]
    df = observed_table(inputs, metric, quarter)
    result = MetricResult(metric=metric, quarter=quarter, table=df)
    df = pd.concat([df, indicator(df, metric, confidence)], axis=1)
    df = pd.concat([df, _fit_models(result, df, inputs, confidence, methodology.expected)], axis=1)
    df = pd.concat([df, _funnels(result, df, methodology, inputs)], axis=1)
    if metric.scoring.relative_floor is not None:
        df["baseline"] = (
            baseline_values(inputs, metric, quarter, confidence, metric.scoring.relative_floor.baseline_quarters_back)
            .reindex(df["trust_code"])
            .to_numpy(float)
        )
    df["score"] = _scores(df, metric, "value")
    df["score_adjusted"], df["standard_judged_on"] = score_adjusted(df, metric, methodology.expected.adjusted_standards)
    df["type_value"] = _type_values(df, metric)
    df = pd.concat([df, _peers(df, inputs, metric, methodology)], axis=1)
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    result.table = df[RESULT_COLUMNS]
    result.history = history(inputs, metric, quarter, confidence)
    if metric.statistic in ("value", "bracket") and metric.funnel is False:
        result.notes.append(
            "Published as a value only (no numerator or denominator): no confidence interval and no funnel plot."
            if metric.statistic == "value"
            else "Published as a category or score only: no confidence interval and no funnel plot."
        )
    n_sup = int((df["status"] == STATUS_SUPPRESSED).sum())
    n_mis = int((df["status"] == STATUS_MISSING).sum())
    if n_sup or n_mis:
        result.notes.append(f"{n_sup} trust(s) suppressed and {n_mis} missing: excluded from scoring")
    return result


def write_result(result: MetricResult, out_dir, work_dir) -> None:
    """Write the metric's published tables and the working objects the league and report notebooks read."""

    tables = Path(out_dir) / "tables" / "metrics"
    tables.mkdir(parents=True, exist_ok=True)
    write_csv(result.table, tables / f"{result.metric.id}.csv")
    coefs = result.coefficients()
    if not coefs.empty:
        write_csv(coefs, tables / f"{result.metric.id}_model.csv")
        write_csv(result.model_summary(), tables / f"{result.metric.id}_model_fit.csv")
    if result.funnels:
        write_csv(result.funnel_summary(), tables / f"{result.metric.id}_funnel.csv")
    work = Path(work_dir) / "metrics"
    work.mkdir(parents=True, exist_ok=True)
    # what the report and the documents read (tables as Parquet named by SHA-256, the rest as JSON: a bundle the
    # pipeline keeps in the store and names in the report notebook's parameter ``metric_results``)
    bundles.write_bundle(
        {
            "table": result.table,
            "history": result.history,
            "model_summary": result.model_summary(),
            "coefficients": coefs,
            "funnel_summary": result.funnel_summary(),
        },
        {
            "metric_id": result.metric.id,
            "notes": result.notes,
            "model_errors": result.model_errors,
            "model_text": {t: m.summary() for t, m in result.models.items()},
        },
        work,
        result.metric.id,
    )
    # the result table as the league notebook reads it (lossless: dtypes and floats as computed); the pipeline
    # keeps it in the store under its SHA-256 and names it in the league notebook's parameters
    result.table.to_parquet(work / f"{result.metric.id}.parquet", index=False)
