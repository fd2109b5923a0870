"""The methodology document of a quarter (``methodology.html``), generated from the objects the run used.

Everything on the page comes from the validated methodology config (``prep.methodology``), the metric
catalogue (``prep.catalogue``) and the run's own results (fitted model coefficients, funnel overdispersion,
segment cut points, interval methods): the page cannot describe a method other than the one that produced the
numbers. Each metric's section lists every field of its catalogue entry — generically, so a field added to the
catalogue schema appears without a change here — and the appendix lists every setting of the methodology config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from leaguetables.config import TRUST_TYPE_PLURAL, TRUST_TYPES, Catalogue, Metric, UnitCost
from leaguetables.inputs.contract import quarter_label, quarter_period
from leaguetables.publication import pages
from leaguetables.publication.report import (
    Cell,
    ReportData,
    coefficient_frame,
    fmt,
    funnel_method_text,
    input_checksums,
    metric_page_file,
    provenance_html,
    site_label,
    source_notice,
    thresholds_notice,
)
from leaguetables.run.manifest import git_state
from leaguetables.statistics.spc import summary as spc_summary

# readable names of catalogue and config fields; a field not listed here is shown by its own name
LABELS = {
    "id": "Identifier",
    "nof_id": "NOF metric code",
    "name": "Name",
    "description": "Definition",
    "domain": "Domain",
    "sub_domain": "Sub-domain",
    "unit": "Unit",
    "trust_types": "Trust types",
    "direction": "Direction",
    "statistic": "Statistic",
    "multiplier": "Multiplier",
    "numerator_variance": "Variance of the numerator",
    "decimals": "Decimal places",
    "scoring": "Scoring",
    "method": "Method",
    "standard": "Standard",
    "floor": "Floor",
    "brackets": "Brackets",
    "bands": "Bands",
    "comparator": "Comparator population",
    "weight": "Weight",
    "combine_group": "Combine group",
    "adjustment": "Demographic adjustment model",
    "family": "Family",
    "covariates": "Covariates",
    "scale": "Scale (dispersion)",
    "funnel": "Funnel plot",
    "unit_cost": "Unit cost",
    "amount": "Amount",
    "currency": "Currency",
    "activity": "Activity",
    "source": "Source",
    "version": "Version",
    "catalogue": "Default catalogue",
    "confidence_levels": "Confidence levels",
    "segmentation": "Segmentation",
    "rule": "Rule",
    "thresholds": "Thresholds",
    "pool_types": "Pooled trust types",
    "thresholds_source": "Source of the thresholds",
    "organisation_kinds": "Organisations scored",
    "relative_floor": "Floor relative to the trust's baseline",
    "improvement": "Improvement (points)",
    "at_least": "Or at least",
    "baseline_quarters_back": "Baseline (quarters back)",
    "lookup": "Lookup table",
    "financial_override": "Financial override",
    "enabled": "Enabled",
    "from_segments": "From segments",
    "to_segment": "To segment",
    "bootstrap": "Bootstrap",
    "replicates": "Replicates",
    "seed": "Seed",
    "level": "Level",
    "sr_method": "SHMI or CQC method (compatibility)",
    "trim_by": "Winsorisation or truncation (each tail)",
    "band_level": "Band level",
    "outer_level": "Outer limit level",
    "sr_scale": "Scale of O/E z-scores (robust method)",
    "pr_scale": "Scale of proportion z-scores (robust method)",
    "limits": "Limits (robust method)",
    "rare_expected": "Rare events: median expected count below",
    "pool_quarters": "Quarters pooled",
    "pool_when": "Pool quarters",
    "compat": "Reference-tool quirks",
    "peers": "Demographic peers",
    "k": "Number of peers",
    "within_type": "Within trust type",
    "weights": "Weights",
    "productivity": "Productivity opportunity",
    "benchmark": "Benchmark",
    "annualise": "Annualisation factor",
    "expected": "Expected values and O/E intervals",
    "model": "Model",
    "interval": "O/E interval",
    "within_variance": "Within-trust variance",
    "history_quarters": "Quarters for the within-trust variance",
    "count_interval": "Interval of a count",
    "between_variance": "Between-trust variance (τ²) for E",
    "shrinkage_variance": "Between-trust variance (τ²) for the shrunken estimates",
    "adjusted_standards": "Standards in the adjusted league",
    "uncertainty": "Sampling uncertainty (rank intervals, segment probabilities, change)",
    "shrinkage": "Empirical-Bayes shrinkage",
    "change_test": "Test of change between quarters",
    "check_replicates": "Replicates checked against the published scoring functions",
    "estimate": "Estimate of each trust's O/E",
    "spc": "Statistical process control",
    "min_points": "Fewest quarters for a chart",
    "run_length": "Run rule (points on one side of the mean)",
    "trend_length": "Trend rule (points rising or falling)",
    "screen_outliers": "Screen outlying moving ranges",
}
VALUES = {
    "reported": "reported with each observation (the numerator is not a Poisson count, or the denominator is random)",
    "higher_better": "higher is better",
    "lower_better": "lower is better",
    "ranked": "ranked (standard ranking)",
    "bracket": "bracket (category to score)",
    "bands": "value bands",
    "none": "not scored",
    "quartiles_within_type": "quartiles of the average score within each trust type",
    "quartiles_over_population": "quartiles over a configured population",
    "fixed_thresholds": "fixed thresholds",
    "quartiles_pooled": "quartiles of the pooled average scores of the configured trust types",
    "upper_quartile": "upper quartile (best 25%)",
    "type": "trust type",
    "peers": "demographic peers",
    "all_listed_types": "all the metric's trust types together",
    "X2": "Pearson χ²/df (quasi-likelihood)",
    "nof_finance": "NHS England's combined-finance rule",
    "weighted_mean": "weighted mean",
    "random_effects": "random effects (expected value of a trust of average quality; shrunken O/E published)",
    "delta": "includes the uncertainty of E (delta method) and the within-trust variance",
    "o_only": "from O alone (conventional, SHMI-style; ignores the uncertainty of E)",
    "sampling": "sampling variance only",
    "sampling_plus_history": "sampling variance plus the extra "
    "quarter-to-quarter variance estimated from earlier quarters",
    "mid_p": "mid-p exact Poisson",
    "exact_byar": "exact below 10 events, Byar from 10",
    "reml": "REML",
    "areml": "adjusted REML (Li and Lahiri)",
    "observed_value": "judged on the observed value",
    "adjusted_value": "judged on the adjusted value",
    "robust": "robust (project default: consistency-corrected τ², adjusted whenever τ² > 0)",
    "spiegelhalter": "Spiegelhalter (SHMI / FunnelPlotR compatibility)",
    "sqrt": "square root",
    "auto": "exact when events are rare, otherwise normal",
    "exact": "exact",
    "normal": "normal",
    "rare": "only when events are rare",
    "always": "always",
    "parametric_data": "parametric bootstrap of the data",
    "observed": "observed (this quarter's or the pooled O/E)",
    "shrunken": "empirical Bayes posterior mean",
    "constrained": "constrained empirical Bayes (spread matched to the between-trust variance)",
    "provider": "NHS trusts (providers)",
    "icb": "integrated care boards",
    **TRUST_TYPE_PLURAL,
}
STATISTICS = {
    "proportion": "Proportion (numerator / denominator × multiplier); 95% Wilson score interval.",
    "rate": "Crude rate (events / exposure × multiplier); exact Poisson interval below 10 events, Byar's "
    "approximation from 10 events.",
    "mean": "Mean score as reported; an interval only when respondent-level data are available.",
    "value": "Value as reported by the source; no interval.",
    "bracket": "Category as reported (e.g. a CQC rating), mapped to a score.",
}
# a rate whose numerator is not a Poisson count (catalogue numerator_variance: reported)
SCALED_RATE = (
    "Rate (numerator / denominator × multiplier) whose numerator is not a Poisson count (a sum of lengths of stay, "
    "a proportion's events, admissions clustered in patients), or whose denominator, an expected count, is random "
    "too (outpatient follow-ups: the attended first appointments are a share of the booked ones; V is then the "
    "delta-method variance of numerator − ratio × denominator, the numerator's plus ratio² × the expected count's "
    "binomial variance): with the numerator's variance V reported with each "
    "observation, scale φ = V / numerator and effective count numerator / φ, the limits are φ × L(numerator / φ) / "
    "denominator × multiplier, L the exact Poisson limits below 10 effective events and Byar's approximation from 10 "
    "(V = numerator gives the Poisson interval)."
)


def _value(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return VALUES.get(v, v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) if v else "none"
    return str(v)


def settings(obj) -> list[dict]:
    """A nested list of ``{"label", "value"}`` / ``{"label", "children"}`` items from a pydantic model or dict."""
    data = obj.model_dump() if hasattr(obj, "model_dump") else obj
    out = []
    for key, v in data.items():
        label = LABELS.get(key, key.replace("_", " "))
        if isinstance(v, dict) and v:
            out.append({"label": label, "children": settings(v)})
        elif isinstance(v, list) and v and isinstance(v[0], (list, tuple)):
            out.append({"label": label, "value": "; ".join(" → ".join(_value(x) for x in pair) for pair in v)})
        else:
            out.append({"label": label, "value": _value(v)})
    return out


def _table(df: pd.DataFrame, numeric=()) -> dict:
    """Columns and rows for the table macro; Cell values (links) and Markup cells stay as they are."""
    rows = [[v if isinstance(v, (Markup, Cell)) else str(v) for v in row] for row in df.itertuples(index=False)]
    return {"columns": [(c, c in numeric) for c in df.columns], "rows": rows}


def _expected_text(r) -> str:
    """How E and the O/E interval of one fitted model were made (issue 10), from its model-summary row."""
    model, interval = getattr(r, "model", None), getattr(r, "interval", None)
    if model is None or pd.isna(model):
        return ""
    out = ""
    if model == "random_effects":
        out += (
            f" Random-effects model: between-trust SD {fmt(float(r.tau2) ** 0.5, 3)} on the model's scale; E is "
            "the expected count of a trust of average quality."
        )
    if interval == "delta":
        extra = getattr(r, "within_extra_variance_mean", 0.0)
        out += (
            " O/E interval includes the uncertainty of E (delta method)"
            + (
                f" and an extra within-trust variance of {fmt(float(extra), 4)} (link scale) from earlier quarters"
                if extra and float(extra) > 0
                else ""
            )
            + "."
        )
    elif interval == "o_only":
        out += " O/E interval from O alone (conventional; the uncertainty of E is ignored)."
    return out


def metric_context(m: Metric, data: dict | None) -> dict:
    """One metric's section of the methodology page: its settings and scoring, and with the run's data the
    interval methods used, the case-mix models and the funnel summary."""
    ctx: dict[str, Any] = {
        "id": m.id,
        "name": m.name,
        "page": metric_page_file(m.id),
        "description": m.description,
        "fields": settings(m.model_dump(exclude={"numerator_variance"} if m.numerator_variance == "poisson" else None)),
        "models": [],
        "funnels": None,
        "bands": None,
        "brackets": None,
        "intervals": SCALED_RATE if m.numerator_variance == "reported" else STATISTICS.get(m.statistic, ""),
        "run_methods": "",
        "in_run": data is not None,
    }
    s = m.scoring
    if s.bands:
        ctx["bands"] = _bands_table(s.bands)
    if s.brackets:
        ctx["brackets"] = _table(
            pd.DataFrame({"Category": list(s.brackets), "Score": [f"{v:g}" for v in s.brackets.values()]}),
            numeric=("Score",),
        )
    if data is None:
        return ctx
    ctx["run_methods"] = _run_methods(data["table"])
    ctx["models"] = _model_entries(m, data)
    fs = data.get("funnel_summary")
    if fs is not None and not fs.empty:
        ctx["funnels"] = _funnel_summary_table(fs)
    return ctx


def _bands_table(bands: list) -> dict:
    """The scoring bands as a table of conditions (the first that holds gives the score) and scores."""

    def cond(band) -> str:
        if band[0] is None:
            return "otherwise"
        op = band[2] if len(band) > 2 else ">="
        return f"value {dict(zip(('>=', '>', '<=', '<'), ('≥', '>', '≤', '<')))[op]} {band[0]:g}"

    return _table(
        pd.DataFrame({"Condition (first that holds)": [cond(b) for b in bands], "Score": [f"{b[1]:g}" for b in bands]}),
        numeric=("Score",),
    )


def _run_methods(table: pd.DataFrame) -> str:
    """The sentence naming the statistics, interval methods and confidence levels this run used for the metric."""
    ok = table[table["status"] == "ok"]
    methods = sorted(ok["method"].dropna().astype(str).unique())
    stats = sorted(ok["statistic"].dropna().astype(str).unique())
    conf = sorted(ok["confidence"].dropna().unique())
    return (
        f"In this run: statistic {', '.join(stats) or 'none'}; interval method "
        f"{', '.join(methods) or 'none'}" + (f" at {', '.join(f'{100 * c:g}%' for c in conf)}" if conf else "") + "."
    )


def _model_entries(m: Metric, data: dict) -> list[dict]:
    """The case-mix model of each trust type: its fit in a sentence and its coefficients, or why it was not
    fitted."""
    models = []
    ms, coefs = data.get("model_summary"), data.get("coefficients")
    if ms is not None and not ms.empty:
        for r in ms.itertuples(index=False):
            c = coefs[coefs["trust_type"] == r.trust_type] if coefs is not None and not coefs.empty else pd.DataFrame()
            models.append(
                {
                    "type": TRUST_TYPE_PLURAL[r.trust_type],
                    "anchor": f"model-{m.id}-{r.trust_type}".replace("_", "-"),
                    "text": (
                        f"{r.family} GLM on {int(r.n_trusts)} trusts ({int(r.n_excluded)} excluded); deviance "
                        f"explained {fmt(100 * r.deviance_explained, 1)}%; Pearson χ²/df {fmt(r.dispersion, 2)}; "
                        f"scale used {fmt(r.scale_used, 2)}; {'converged' if r.converged else 'did not converge'}."
                        + _expected_text(r)
                    ),
                    "table": _table(coefficient_frame(c), numeric=("Ratio per SD", "p-value")) if len(c) else None,
                }
            )
    for ttype, err in sorted(data.get("model_errors", {}).items()):
        models.append(
            {
                "type": TRUST_TYPE_PLURAL[ttype],
                "anchor": f"model-{m.id}-{ttype}".replace("_", "-"),
                "text": f"not fitted: {err}",
                "table": None,
            }
        )
    return models


def _funnel_summary_table(fs: pd.DataFrame) -> dict:
    """The funnel of each trust type: data, method, overdispersion, limits and how many trusts are outside them
    (with how many chance alone would put there)."""
    return _table(
        pd.DataFrame(
            {
                "Trust type": fs["trust_type"].map(TRUST_TYPE_PLURAL).to_numpy(),
                "Data": fs["data_type"].map({"SR": "observed / expected", "PR": "proportion"}).fillna(fs["data_type"]),
                "Method": fs["method"].astype(str).to_numpy(),
                "φ (overdispersion)": fs["phi"].map(lambda v: fmt(v, 2)).to_numpy(),
                "τ²": fs["tau2"].map(lambda v: fmt(v, 4)).to_numpy(),
                "Limits adjusted": fs["adjusted_limits"].map(lambda v: "yes" if bool(v) else "no").to_numpy(),
                "Limits": (
                    fs["limits"].map({"exact": "exact (rare events)", "normal": "normal"}).to_numpy()
                    if "limits" in fs
                    else "normal"
                ),
                "Quarters": fs["quarters"].astype(int).to_numpy() if "quarters" in fs else 1,
                "Trusts tested": fs["n_tested"].astype(int).to_numpy() if "n_tested" in fs else "[x]",
                "Higher than expected": fs["n_higher"].astype(int).to_numpy(),
                "Lower than expected": fs["n_lower"].astype(int).to_numpy(),
                "Expected by chance (each side)": (
                    fs["n_expected_by_chance"].map(lambda v: fmt(v / 2, 1)).to_numpy()
                    if "n_expected_by_chance" in fs
                    else "[x]"
                ),
            }
        ),
        numeric=(
            "φ (overdispersion)",
            "τ²",
            "Quarters",
            "Trusts tested",
            "Higher than expected",
            "Lower than expected",
            "Expected by chance (each side)",
        ),
    )


VALIDATION_PAGE = ("validation", "index.html")  # beside the quarters' folders: reports/validation/index.html


def validation_link(page: Path | None) -> dict:
    """The simulation study's report as seen from a page of a quarter (``reports/<quarter>/…``): its relative link
    and whether it exists there yet (``make validate`` writes it)."""
    href = "../" + "/".join(VALIDATION_PAGE)
    exists = page is not None and Path(page).resolve().parent.parent.joinpath(*VALIDATION_PAGE).exists()
    return {"href": href, "exists": bool(exists)}


def context(data: ReportData, page: Path | None = None) -> dict:
    """The methodology page's template context: the metrics of the run, the league's settings and the run's
    figures about them (cut points, rankability, SPC signals), and the provenance."""
    meth, cat = data.methodology, data.catalogue
    run_ids = set(data.metric_data)
    metrics = [m for m in cat.metrics if m.id in run_ids]
    cuts = [
        [TRUST_TYPE_PLURAL[t], *[fmt(x, 4) for x in data.league.cut_points[t]]]
        for t in TRUST_TYPES
        if t in data.league.cut_points
    ]
    costed = [(m, m.unit_cost) for m in metrics if m.unit_cost is not None]
    groups = [
        {
            "name": g.name,
            "id": gid,
            "fields": settings(g),
            "members": [m.name for m in cat.metrics if m.combine_group == gid],
        }
        for gid, g in cat.combine_groups.items()
    ]
    ql = quarter_label(data.quarter)
    rk = getattr(data.league, "rankability", None)
    rankability = _rankability_table(rk, cat) if rk is not None and len(rk) else None
    unit_costs = _unit_costs_table(costed) if costed else None
    overview = _metrics_overview(metrics)

    spc_results, spc_quarters = data.spc
    sc = spc_summary(spc_results)
    return {
        "spc_quarters": len(spc_quarters),
        "spc_assessed": sc["assessed"],
        "spc_special": sc["improvement"] + sc["concern"],
        "spc_expected": round(0.01 * sc["assessed"]),
        "title": f"Methodology: NHS trust league tables, {ql}",
        "breadcrumbs": [("index.html", f"League tables {ql}"), (None, "Methodology")],
        "quarter_label": ql,
        "period": quarter_period(data.quarter),
        "meth": meth,
        "cat": cat,
        "code_version": data.run.get("code_version", ""),
        "git": git_state().get("sha", "unknown")[:12],
        "overview": _table(overview),
        "cuts": cuts,
        "rankability": rankability,
        "population": (
            data.league.table["segmentation_population"].iloc[0]
            if "segmentation_population" in data.league.table.columns and len(data.league.table)
            else None
        ),
        "unit_costs": unit_costs,
        "groups": groups,
        "metrics": [metric_context(m, data.metric_data.get(m.id)) for m in metrics],
        "not_run": [m for m in cat.metrics if m.id not in run_ids],
        "config": settings(meth),
        "funnel_text": funnel_method_text(meth.funnel),
        "peer_weights": [[LABELS.get(k, k.replace("_", " ")), f"{v:g}"] for k, v in meth.peers.weights.items()],
        "demo": data.run.get("source") == "demo",
        "thresholds_notice": thresholds_notice(meth),
        "site_label": site_label(data.run.get("source", "files")),
        "source_notice": source_notice(data.run.get("source", "files"), None, data.run.get("omitted_metrics") or ()),
        "provenance": provenance_html(data.run, git_state(), input_checksums(data.inputs)),
        "validation": validation_link(page),
        "root": "",
        "search_data": data.search_data,
    }


def _metrics_overview(metrics: list[Metric]) -> pd.DataFrame:
    """One row a metric of the run: trust types, direction, statistic, scoring, weight, group, model, funnel."""
    return pd.DataFrame(
        [
            {
                "Metric": Cell(m.name, f"#metric-{m.id}"),
                "Trust types": ", ".join(TRUST_TYPE_PLURAL[t] for t in m.trust_types),
                "Direction": VALUES[m.direction],
                "Statistic": m.statistic,
                "Scoring": VALUES.get(m.scoring.method, m.scoring.method)
                + (f", standard {m.scoring.standard:g}" if m.scoring.standard is not None else "")
                + (f", floor {m.scoring.floor:g}" if m.scoring.floor is not None else ""),
                "Weight": f"{m.weight:.3g}",
                "Combine group": m.combine_group or "[z]",
                "Demographic model": m.adjustment.family if m.adjustment else "[z]",
                "Funnel plot": "yes" if m.funnel else "no",
            }
            for m in metrics
        ]
    )


def _unit_costs_table(costed: list[tuple[Metric, UnitCost]]) -> dict:
    """The unit cost of each costed metric (the productivity opportunity's price), with its activity and source."""
    return _table(
        pd.DataFrame(
            {
                "Metric": [m.name for m, _ in costed],
                "Unit cost": [f"£{uc.amount:,.0f} per {uc.unit}" for _, uc in costed],
                "Activity": [uc.activity for _, uc in costed],
                "Source of the cost": [uc.source for _, uc in costed],
            }
        )
    )


def _rankability_table(rk: pd.DataFrame, cat: Catalogue) -> dict:
    """The rankability (share of the spread that is not chance) of each metric and trust type."""
    names = {m.id: m.name for m in cat.metrics}
    return _table(
        pd.DataFrame(
            {
                "Metric": [names.get(m, m) for m in rk["metric_id"]],
                "Trust type": [TRUST_TYPE_PLURAL[t] for t in rk["trust_type"]],
                "Trusts": rk["n_trusts"].astype(int).to_numpy(),
                "Rankability ρ": [f"{v:.2f}" for v in rk["rankability"]],
            }
        ),
        numeric=("Trusts", "Rankability ρ"),
    )


def write_methodology(data: ReportData, path: Path) -> int:
    """Write ``methodology.html``; return its size in bytes."""
    return pages.write(Path(path), pages.render("methodology.html.j2", **context(data, Path(path))))
