"""Figures of a metric for the notebook and the report: deterministic, accessible inline SVG.

The drawing itself is in :mod:`leaguetables.publication.charts`; this module chooses what to draw for a metric result and
turns figures into SVG text with a ``<title>`` and ``<desc>`` (the alt text), ``role="img"``, a fixed hash salt
and no date, so the same data always give the same bytes.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from pathlib import Path

from leaguetables.config import TRUST_TYPE_PLURAL
from leaguetables.inputs.contract import quarter_label
from leaguetables.publication import charts


def to_svg(fig, title: str, alt: str, svg_id: str) -> str:
    """Inline SVG of a figure, saved deterministically by :func:`charts.save_figure`, with its alt text."""
    buf = io.BytesIO()
    charts.save_figure(fig, buf, format="svg")
    svg = buf.getvalue().decode("utf-8")
    svg = re.sub(r"<\?xml[^>]*>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # unique ids per figure: matplotlib's ids are only unique within one file
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{svg_id}-{m.group(1)}"', svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{svg_id}-{m.group(2)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{svg_id}-{m.group(1)})", svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{svg_id}-title {svg_id}-desc" ', 1)
    svg = re.sub(
        r"(<svg[^>]*>)",
        lambda m: (
            m.group(1) + f'<title id="{svg_id}-title">{html.escape(title)}</title>'
            f'<desc id="{svg_id}-desc">{html.escape(alt)}</desc>'
        ),
        svg,
        count=1,
    )
    return svg


class SavedSVG:
    """A figure already saved as SVG text, shown in a notebook as that SVG: the executed notebook carries the same
    drawing as the report, and the figure is not drawn a second time (as a PNG) to be shown."""

    def __init__(self, svg: str, title: str):
        self.svg, self.title = svg, title

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:  # the notebook's text/plain output: deterministic (no memory address)
        return f"<figure: {self.title}>"


def distribution(result) -> tuple[SavedSVG, str]:
    """The histogram of a metric's values (scores for a bracket metric) over the trusts, drawn once as accessible
    SVG (shown in the metric notebook), and its alt text."""
    m = result.metric
    t = result.table
    if m.statistic == "bracket":
        labels = ", ".join(f"{v:g} {k}" for k, v in (m.scoring.brackets or {}).items())
        fig, alt = charts.distribution_figure(
            t.loc[t["status"] == "ok", "score"], title=m.name, x_label=f"Score ({labels})"
        )
    else:
        fig, alt = charts.distribution_figure(t.loc[t["status"] == "ok", "value"], title=m.name, x_label=m.unit)
    title = f"{m.name}: distribution over the trusts"
    return SavedSVG(to_svg(fig, title, alt, f"dist-{m.id}".replace("_", "-")), title), alt


def save_funnels(result, work_dir, band_level: float = 0.95) -> dict[str, tuple[SavedSVG, str]]:
    """Draw the funnel plot of each trust type, save SVG and alt text for the report, return each as
    ``{trust_type: (SavedSVG, alt text)}`` (shown in a notebook as the saved SVG).

    Points are marked as outside the limits at ``band_level`` (the methodology's banding level), so the figure
    agrees with the bands in the tables; both the 95% and 99.8% limits are drawn."""
    m = result.metric
    out = {}
    fig_dir = Path(work_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for ttype, res in result.funnels.items():
        t = result.table
        ok = t[(t["trust_type"] == ttype) & t["trust_code"].isin(list(res.units.index))]
        adjusted = ttype in result.models
        pooled = f" ({res.periods} quarters)" if res.periods > 1 else ""
        if adjusted:
            y_label, x_label = "Observed / expected (demographically adjusted)", f"Expected events{pooled}"
        elif m.statistic == "proportion":
            y_label, x_label = f"{m.name} (proportion)", f"Denominator{pooled}"
        else:
            y_label, x_label = "Observed / expected (against the type's rate)", f"Expected events{pooled}"
        title = f"{m.name}: {TRUST_TYPE_PLURAL[ttype].lower()}"
        period = (
            f"{res.periods} quarters to {quarter_label(result.quarter)}"
            if res.periods > 1
            else quarter_label(result.quarter)
        )
        limits = (
            "exact limits (rare events)"
            if res.exact
            else ("limits widened for between-trust variation" if res.adjusted_used else "unadjusted limits")
        )
        phi = f"φ = {res.phi:.2f}" if math.isfinite(res.phi) else "φ not computable"
        subtitle = f"{period}; {len(ok)} trusts; {phi}, τ² = {res.tau2:.4g}; {limits}"
        fig, alt = charts.funnel_figure(
            res,
            labels=list(res.units.index),
            title=title,
            subtitle=subtitle,
            y_label=y_label,
            x_label=x_label,
            direction=m.direction,
            confidence=band_level,
        )
        svg_id = f"fig-{m.id}-{ttype}".replace("_", "-")
        svg = to_svg(fig, title, alt, svg_id)
        (fig_dir / f"{m.id}__{ttype}.svg").write_text(svg, encoding="utf-8")
        (fig_dir / f"{m.id}__{ttype}.json").write_text(
            json.dumps({"title": title, "alt": alt, "subtitle": subtitle}), encoding="utf-8"
        )
        out[ttype] = (SavedSVG(svg, title), alt)
    return out
