"""A trust's XmR charts as one small inline SVG, drawn from the data with a Jinja2 template (no matplotlib).

Every trust profile carries a small-multiples figure of its statistical process control charts: one panel per
assessed metric, quarters left to right, each panel on its own vertical scale (the figures are in the page's
tables). Drawing them with matplotlib cost ~0.1 s of CPU and ~60 kB of markup per profile (205 profiles in the
demo); this module computes the panel geometry in Python (:func:`layout`) and writes the markup with the
template ``templates/charts/spc.svg.j2`` (autoescaped): a few kB per profile, in milliseconds.

Accessibility, as for every figure of the publication: ``role="img"`` with a ``<title>`` and a ``<desc>`` (the
text alternative: each metric's variation and assurance in words), referenced by ``aria-labelledby``; the
drawing inside is ``aria-hidden``; the values and limits are in the tables beside the chart. Meaning is carried
by shape as well as colour (▲ special cause improvement, ▼ concern; dashed process limits, dotted target).
Determinism: coordinates are rounded to 0.1 px and written in a fixed order; the same data give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np
from markupsafe import Markup

from leaguetables.statistics.spc import ASSURANCE, VARIATION, SPCResult

__all__ = ["spc_svg", "spc_alt", "layout", "Panel"]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "charts"

#: colours (the Analysis Function palette and greys of :mod:`leaguetables.publication.charts`)
COLOURS = {
    "value": "#12436D",
    "improvement": "#28A197",
    "concern": "#F46A25",
    "mean": "#3D3D3D",
    "limit": "#707070",
    "target": "#505A5F",
    "frame": "#B1B4B6",
    "text": "#0B0C0C",
}
#: geometry in px (SVG user units): panel plot box, gaps, title band, legend band, outer margin
PANEL_W, PANEL_H, GAP_X, GAP_Y, TITLE_H, LEGEND_H, MARGIN = 130.0, 46.0, 12.0, 10.0, 14.0, 34.0, 6.0
LEGEND_W = 440.0  # the legend's width: the figure is never narrower
MAX_TITLE = 31  # characters of a metric's name in its panel title (the full name is in the tables)


@dataclass
class Panel:
    """One panel's drawing, in px: its title, the polylines of the values (a gap breaks the line), the dots per
    point state, and the horizontal lines of the mean, the process limits and the target."""

    title: str
    x: str
    y: str
    values: list[str] = field(default_factory=list)
    common: list[tuple[str, str]] = field(default_factory=list)
    improvement: list[str] = field(default_factory=list)
    concern: list[str] = field(default_factory=list)
    mean: str = ""
    limits: str = ""
    target: str = ""
    frame: str = ""


def _c(v: float) -> str:
    """A coordinate, rounded to 0.1 px (``-0.0`` written ``0``)."""
    s = f"{v:.1f}"
    return "0" if s in ("-0.0", "0.0") else s.removesuffix(".0")


def _hline(x0: float, x1: float, y: float) -> str:
    return f"M{_c(x0)} {_c(y)}H{_c(x1)}"


def _triangle(x: float, y: float, up: bool, r: float = 3.6) -> str:
    """A path of a triangle centred on (x, y), pointing up (▲) or down (▼)."""
    s = -1.0 if up else 1.0
    return (
        f"M{_c(x)} {_c(y + s * r)}L{_c(x + 0.87 * r)} {_c(y - s * 0.5 * r)}L{_c(x - 0.87 * r)} {_c(y - s * 0.5 * r)}Z"
    )


def _panel(name: str, r: SPCResult, x0: float, y0: float) -> Panel:
    """The drawing of one assessed series in the plot box whose top left corner is (x0, y0)."""
    vals = np.asarray(r.values, dtype=float)
    lo, hi = min(r.lower, float(np.nanmin(vals))), max(r.upper, float(np.nanmax(vals)))
    if r.target is not None:
        lo, hi = min(lo, r.target), max(hi, r.target)
    pad = 0.06 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    def y_of(v: float) -> float:
        return y0 + (hi - v) / (hi - lo) * PANEL_H

    n = vals.size
    xs = x0 + np.arange(n) * PANEL_W / max(n - 1, 1)
    title = name if len(name) <= MAX_TITLE else name[: MAX_TITLE - 1] + "…"
    p = Panel(title=title, x=_c(x0), y=_c(y0 - 4.0))
    run: list[str] = []
    for x, v in zip(xs, vals):
        if np.isnan(v):
            if len(run) > 1:
                p.values.append(" ".join(run))
            run = []
        else:
            run.append(f"{_c(x)},{_c(y_of(v))}")
    if len(run) > 1:
        p.values.append(" ".join(run))
    for x, v, state in zip(xs, vals, r.point_state):
        if state == "common_cause":
            p.common.append((_c(x), _c(y_of(v))))
        elif state in ("improvement", "concern"):
            getattr(p, state).append(_triangle(x, y_of(v), up=state == "improvement"))
    x1 = x0 + PANEL_W
    p.mean = _hline(x0, x1, y_of(r.mean))
    p.limits = _hline(x0, x1, y_of(r.lower)) + _hline(x0, x1, y_of(r.upper))
    p.target = _hline(x0, x1, y_of(r.target)) if r.target is not None else ""
    p.frame = _hline(x0, x1, y0 + PANEL_H)
    return p


def layout(panels: Sequence[tuple[str, SPCResult]], columns: int = 4) -> tuple[list[Panel], float, float]:
    """The panels of the assessed series, in rows of ``columns``, and the figure's width and height (px)."""
    assessed = [(name, r) for name, r in panels if r.assessed]
    if not assessed:
        return [], 0.0, 0.0
    cols = min(columns, len(assessed))
    rows = (len(assessed) + cols - 1) // cols
    out = []
    for k, (name, r) in enumerate(assessed):
        i, j = divmod(k, cols)
        x0 = MARGIN + j * (PANEL_W + GAP_X)
        y0 = MARGIN + LEGEND_H + i * (TITLE_H + PANEL_H + GAP_Y) + TITLE_H
        out.append(_panel(name, r, x0, y0))
    width = 2 * MARGIN + max(cols * PANEL_W + (cols - 1) * GAP_X, LEGEND_W)
    height = 2 * MARGIN + LEGEND_H + rows * (TITLE_H + PANEL_H + GAP_Y) - GAP_Y
    return out, width, height


def spc_alt(panels: Sequence[tuple[str, SPCResult]], trust_name: str) -> str:
    """The text alternative of a trust's charts: each assessed metric's variation (and assurance) in words."""
    parts = [
        f"{name}: {VARIATION[r.variation].lower()}"
        + (
            f", {ASSURANCE[r.assurance].split(':')[0].lower()}"
            if r.assurance not in ("no_target", "not_assessed")
            else ""
        )
        for name, r in panels
        if r.assessed
    ]
    return (
        f"Statistical process control charts (XmR) of {trust_name}, one per metric, quarters left to right: "
        + "; ".join(parts)
        + ". The values and limits are in the tables beside the chart."
    )


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("spc.svg.j2")


def spc_svg(
    panels: Sequence[tuple[str, SPCResult]],
    trust_name: str,
    svg_id: str = "spc-chart",
    title: str | None = None,
    columns: int = 4,
) -> tuple[Markup, str]:
    """Inline SVG of a trust's XmR charts (one small panel per assessed metric) and its text alternative.

    ``panels`` are ``(metric name, SPCResult)`` in display order; series that are not assessed are left out.
    Returns ``(Markup(""), "")`` when no series is assessed."""
    drawn, width, height = layout(panels, columns)
    if not drawn:
        return Markup(""), ""
    alt = spc_alt(panels, trust_name)
    svg = _template().render(
        id=svg_id,
        title=title or f"{trust_name}: statistical process control charts",
        alt=alt,
        panels=drawn,
        width=_c(width),
        height=_c(height),
        colours=COLOURS,
        margin=_c(MARGIN),
        triangle=_triangle,
    )
    return Markup(svg.strip()), alt
