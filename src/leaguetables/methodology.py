"""The methodology document of a quarter (``methodology.html``), generated from the objects the run used.

Everything on the page comes from the validated methodology config (``prep.methodology``), the metric
catalogue (``prep.catalogue``) and the run's own results (fitted model coefficients, funnel overdispersion,
segment cut points, interval methods): the page cannot describe a method other than the one that produced the
numbers. Each metric's section lists every field of its catalogue entry — generically, so a field added to the
catalogue schema appears without a change here — and the appendix lists every setting of the methodology config.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from markupsafe import Markup, escape

from . import pages
from .config import TRUST_TYPE_PLURAL, TRUST_TYPES, Metric
from .contract import quarter_label, quarter_period
from .report import ReportData, coefficient_frame, fmt, input_checksums, provenance_html

# readable names of catalogue and config fields; a field not listed here is shown by its own name
LABELS = {
    "id": "Identifier", "nof_id": "NOF metric code", "name": "Name", "description": "Definition",
    "domain": "Domain", "sub_domain": "Sub-domain", "unit": "Unit", "trust_types": "Trust types",
    "direction": "Direction", "statistic": "Statistic", "multiplier": "Multiplier", "decimals": "Decimal places",
    "scoring": "Scoring", "method": "Method", "standard": "Standard", "floor": "Floor", "brackets": "Brackets",
    "bands": "Bands", "comparator": "Comparator population", "weight": "Weight", "combine_group": "Combine group",
    "adjustment": "Demographic adjustment model", "family": "Family", "covariates": "Covariates",
    "scale": "Scale (dispersion)", "funnel": "Funnel plot", "unit_cost": "Unit cost", "amount": "Amount",
    "currency": "Currency", "activity": "Activity", "source": "Source", "version": "Version",
    "catalogue": "Default catalogue", "confidence_levels": "Confidence levels", "segmentation": "Segmentation",
    "rule": "Rule", "thresholds": "Thresholds", "financial_override": "Financial override", "enabled": "Enabled",
    "from_segments": "From segments", "to_segment": "To segment", "bootstrap": "Bootstrap",
    "replicates": "Replicates", "seed": "Seed", "level": "Level", "sr_method": "Overdispersion method",
    "trim_by": "Winsorisation (each tail)", "band_level": "Band level", "outer_level": "Outer limit level",
    "peers": "Demographic peers", "k": "Number of peers", "within_type": "Within trust type", "weights": "Weights",
    "productivity": "Productivity opportunity", "benchmark": "Benchmark", "annualise": "Annualisation factor",
}
VALUES = {
    "higher_better": "higher is better", "lower_better": "lower is better", "ranked": "ranked (standard ranking)",
    "bracket": "bracket (category to score)", "bands": "value bands", "none": "not scored",
    "quartiles_within_type": "quartiles of the average score within each trust type",
    "quartiles_over_population": "quartiles over a configured population", "fixed_thresholds": "fixed thresholds",
    "upper_quartile": "upper quartile (best 25%)", "type": "trust type", "peers": "demographic peers",
    "all_listed_types": "all the metric's trust types together", "X2": "Pearson χ²/df (quasi-likelihood)",
    "nof_finance": "NHS England's combined-finance rule", "weighted_mean": "weighted mean",
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
    """Columns and rows for the table macro; Markup cells (links built here from escaped parts) stay Markup."""
    rows = [[v if isinstance(v, Markup) else str(v) for v in row] for row in df.itertuples(index=False)]
    return {"columns": [(c, c in numeric) for c in df.columns], "rows": rows}


def metric_context(m: Metric, data: dict | None) -> dict:
    ctx = {"id": m.id, "name": m.name, "description": m.description, "fields": settings(m), "models": [],
           "funnels": None, "bands": None, "brackets": None, "intervals": STATISTICS.get(m.statistic, ""),
           "run_methods": "", "in_run": data is not None}
    s = m.scoring
    if s.bands:
        ctx["bands"] = _table(pd.DataFrame({"Lower bound": ["below the band above" if b is None else f"{b:g}"
                                                            for b, _ in s.bands],
                                            "Score": [f"{sc:g}" for _, sc in s.bands]}), numeric=("Score",))
    if s.brackets:
        ctx["brackets"] = _table(pd.DataFrame({"Category": list(s.brackets),
                                               "Score": [f"{v:g}" for v in s.brackets.values()]}), numeric=("Score",))
    if data is None:
        return ctx
    t = data["table"]
    ok = t[t["status"] == "ok"]
    methods = sorted(ok["method"].dropna().astype(str).unique())
    stats = sorted(ok["statistic"].dropna().astype(str).unique())
    conf = sorted(ok["confidence"].dropna().unique())
    ctx["run_methods"] = (f"In this run: statistic {', '.join(stats) or 'none'}; interval method "
                          f"{', '.join(methods) or 'none'}"
                          + (f" at {', '.join(f'{100 * c:g}%' for c in conf)}" if conf else "") + ".")
    ms, coefs = data.get("model_summary"), data.get("coefficients")
    if ms is not None and not ms.empty:
        for r in ms.itertuples(index=False):
            c = coefs[coefs["trust_type"] == r.trust_type] if coefs is not None and not coefs.empty else pd.DataFrame()
            ctx["models"].append({
                "type": TRUST_TYPE_PLURAL[r.trust_type], "anchor": f"model-{m.id}-{r.trust_type}".replace("_", "-"),
                "text": (f"{r.family} GLM on {int(r.n_trusts)} trusts ({int(r.n_excluded)} excluded); deviance "
                         f"explained {fmt(100 * r.deviance_explained, 1)}%; Pearson χ²/df {fmt(r.dispersion, 2)}; "
                         f"scale used {fmt(r.scale_used, 2)}; {'converged' if r.converged else 'did not converge'}."),
                "table": _table(coefficient_frame(c), numeric=("Ratio per SD", "p-value")) if len(c) else None,
            })
    for ttype, err in sorted(data.get("model_errors", {}).items()):
        ctx["models"].append({"type": TRUST_TYPE_PLURAL[ttype], "anchor": f"model-{m.id}-{ttype}".replace("_", "-"),
                              "text": f"not fitted: {err}", "table": None})
    fs = data.get("funnel_summary")
    if fs is not None and not fs.empty:
        ctx["funnels"] = _table(pd.DataFrame({
            "Trust type": fs["trust_type"].map(TRUST_TYPE_PLURAL).to_numpy(),
            "Data": fs["data_type"].map({"SR": "observed / expected", "PR": "proportion"}).fillna(fs["data_type"]),
            "Method": fs["method"].astype(str).to_numpy(),
            "φ (overdispersion)": fs["phi"].map(lambda v: fmt(v, 2)).to_numpy(),
            "τ²": fs["tau2"].map(lambda v: fmt(v, 4)).to_numpy(),
            "Limits adjusted": fs["adjusted_limits"].map(lambda v: "yes" if bool(v) else "no").to_numpy(),
            "Higher than expected": fs["n_higher"].astype(int).to_numpy(),
            "Lower than expected": fs["n_lower"].astype(int).to_numpy(),
        }), numeric=("φ (overdispersion)", "τ²", "Higher than expected", "Lower than expected"))
    return ctx


VALIDATION_PAGE = ("validation", "index.html")  # beside the quarters' folders: reports/validation/index.html


def validation_link(page: Path | None) -> dict:
    """The simulation study's report as seen from a page of a quarter (``reports/<quarter>/…``): its relative link
    and whether it exists there yet (``make validate`` writes it)."""
    href = "../" + "/".join(VALIDATION_PAGE)
    exists = page is not None and Path(page).resolve().parent.parent.joinpath(*VALIDATION_PAGE).exists()
    return {"href": href, "exists": bool(exists)}


def context(data: ReportData, page: Path | None = None) -> dict:
    from .publish import git_state

    meth, cat = data.methodology, data.catalogue
    run_ids = set(data.metric_data)
    metrics = [m for m in cat.metrics if m.id in run_ids]
    overview = pd.DataFrame([{
        "Metric": Markup(f'<a href="#metric-{escape(m.id)}">{escape(m.name)}</a>'),
        "Trust types": ", ".join(TRUST_TYPE_PLURAL[t] for t in m.trust_types),
        "Direction": VALUES[m.direction], "Statistic": m.statistic,
        "Scoring": VALUES.get(m.scoring.method, m.scoring.method)
        + (f", standard {m.scoring.standard:g}" if m.scoring.standard is not None else "")
        + (f", floor {m.scoring.floor:g}" if m.scoring.floor is not None else ""),
        "Weight": f"{m.weight:.3g}", "Combine group": m.combine_group or "[z]",
        "Demographic model": m.adjustment.family if m.adjustment else "[z]",
        "Funnel plot": "yes" if m.funnel else "no",
    } for m in metrics])
    cuts = []
    for t in TRUST_TYPES:
        if t in data.league.cut_points:
            cp = data.league.cut_points[t]
            cuts.append([TRUST_TYPE_PLURAL[t], *[fmt(x, 4) for x in cp]])
    costed = [m for m in metrics if m.unit_cost]
    unit_costs = _table(pd.DataFrame({
        "Metric": [m.name for m in costed],
        "Unit cost": [f"£{m.unit_cost.amount:,.0f} per {m.unit_cost.unit}" for m in costed],
        "Activity": [m.unit_cost.activity for m in costed],
        "Source of the cost": [m.unit_cost.source for m in costed],
    })) if costed else None
    groups = [{"name": g.name, "id": gid, "fields": settings(g),
               "members": [m.name for m in cat.metrics if m.combine_group == gid]}
              for gid, g in cat.combine_groups.items()]
    ql = quarter_label(data.quarter)
    return {
        "title": f"Methodology: NHS trust league tables, {ql}",
        "breadcrumbs": [("index.html", f"League tables {ql}"), (None, "Methodology")],
        "quarter_label": ql, "period": quarter_period(data.quarter),
        "meth": meth, "cat": cat, "code_version": data.run.get("code_version", ""),
        "git": git_state().get("sha", "unknown")[:12],
        "overview": _table(overview), "cuts": cuts, "unit_costs": unit_costs, "groups": groups,
        "metrics": [metric_context(m, data.metric_data.get(m.id)) for m in metrics],
        "not_run": [m for m in cat.metrics if m.id not in run_ids],
        "config": settings(meth),
        "peer_weights": [[LABELS.get(k, k.replace("_", " ")), f"{v:g}"] for k, v in meth.peers.weights.items()],
        "demo": data.run.get("source") == "demo",
        "provenance": Markup(provenance_html(data.run, git_state(), input_checksums(data.inputs))),
        "validation": validation_link(page),
    }


def write_methodology(data: ReportData, path: Path) -> int:
    """Write ``methodology.html``; return its size in bytes."""
    return pages.write(Path(path), pages.render("methodology.html.j2", **context(data, Path(path))))
