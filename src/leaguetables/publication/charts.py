"""Figures: the funnel plot and a simple distribution plot, each with alt text.

Style follows ``shared/docs/style-and-conventions.md`` §6.5: points in the
Analysis Function dark blue ``#12436D``; funnel limits in greys (95% dashed,
99.8% solid); units outside the limits shown by *marker shape* and a text
label as well as colour; labelled axes; a headline title and a statistical
subtitle; a text alternative returned with every figure.

Determinism: figures are built on :class:`matplotlib.figure.Figure` (no
pyplot state, nothing shown), with a fixed size, DPI and font; save them with
:func:`save_figure`, which fixes ``svg.hashsalt`` and drops the date metadata
so that identical inputs give byte-identical SVG/PNG/PDF files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from leaguetables.statistics.funnel import DIRECTIONS, FunnelResult, band, limits_grid

__all__ = ["AF_COLOURS", "FIGSIZE", "DPI", "SVG_HASHSALT", "funnel_figure", "distribution_figure", "save_figure"]

#: Analysis Function categorical palette (in order) and the greys used for limits.
AF_COLOURS = {
    "dark_blue": "#12436D",
    "turquoise": "#28A197",
    "dark_pink": "#801650",
    "orange": "#F46A25",
    "dark_grey": "#3D3D3D",
    "light_purple": "#A285D1",
}
LIMIT_GREY_998 = "#3D3D3D"
LIMIT_GREY_95 = "#707070"
TARGET_GREY = "#505A5F"

FIGSIZE = (8.0, 5.5)
DPI = 100
SVG_HASHSALT = "leaguetables"

#: rc settings applied while a figure is built and saved.
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#3D3D3D",
    "axes.labelcolor": "#0B0C0C",
    "xtick.color": "#0B0C0C",
    "ytick.color": "#0B0C0C",
    "svg.hashsalt": SVG_HASHSALT,
    "svg.fonttype": "none",  # text stays text in the SVG (no images of text; smaller pages)
    "path.simplify": False,
}

# Figures saved outside save_figure still get stable SVG ids (unless set elsewhere).
if mpl.rcParams.get("svg.hashsalt") is None:
    mpl.rcParams["svg.hashsalt"] = SVG_HASHSALT

# marker shape per band: shape carries the meaning, colour repeats it
_BAND_STYLE: dict[str, dict[str, Any]] = {
    "as expected": dict(marker="o", color=AF_COLOURS["dark_blue"], size=30, edge="white"),
    "higher than expected": dict(marker="^", color=AF_COLOURS["orange"], size=60, edge="#0B0C0C"),
    "lower than expected": dict(marker="v", color=AF_COLOURS["dark_pink"], size=60, edge="#0B0C0C"),
}


def _level_text(confidence: float) -> str:
    return "99.8%" if np.isclose(confidence, 0.998) else "95%"


def _plural(n: int, word: str = "trust") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(index: pd.Index, labels) -> pd.Series:
    if labels is None:
        return pd.Series([str(i) for i in index], index=index)
    if isinstance(labels, pd.Series):
        missing = index.difference(labels.index)
        if len(missing):
            raise ValueError(f"labels has no entry for units {list(missing)[:5]}")
        return labels.reindex(index).astype(str)
    if isinstance(labels, Mapping):
        return pd.Series([str(labels.get(i, i)) for i in index], index=index)
    values = list(labels)
    if len(values) != len(index):
        raise ValueError(f"labels has {len(values)} entries for {len(index)} units")
    return pd.Series([str(v) for v in values], index=index)


def _list_names(names: list[str], limit: int = 10) -> str:
    if not names:
        return ""
    shown = names[:limit]
    text = ", ".join(shown)
    if len(names) > limit:
        text += f" and {len(names) - limit} more"
    return text


def funnel_figure(
    result: FunnelResult,
    labels=None,
    title: str = "",
    subtitle: str = "",
    y_label: str = "",
    x_label: str = "",
    direction: str = "higher_better",
    multiplier: float = 1,
    *,
    confidence: float = 0.998,
    adjusted: bool | None = None,
    n_points: int = 100,
) -> tuple[Figure, str]:
    """Funnel plot of a :class:`~leaguetables.statistics.funnel.FunnelResult` with alt text.

    Parameters
    ----------
    result : FunnelResult
        From :func:`leaguetables.statistics.funnel.spiegelhalter`.
    labels : Series, mapping or sequence, optional
        Display names of the units (e.g. trust names) keyed like
        ``result.units``; the units outside the limits are labelled on the plot
        and named in the alt text.
    title, subtitle : str
        Headline (the message) and statistical subtitle (the data).
    y_label, x_label : str
        Axis labels (default "Indicator value" and "Precision").
    direction : {"higher_better", "lower_better"}
        The metric's polarity, used to word the alt text.
    multiplier : float
        Scale for the y axis (e.g. 100 for percentages); values and limits are
        multiplied, the x axis is not.
    confidence : float
        Level whose limits define "above/below the limits" (0.998 default,
        0.95 for SHMI-style banding).  Both levels are drawn.
    adjusted : bool, optional
        Draw/flag with overdispersion-adjusted limits; default as the result
        says (``adjusted_used``: φ > 1 for the compatibility methods, τ² > 0
        for the robust method).  The limits drawn are the ones the flags use
        (:func:`~leaguetables.statistics.funnel.limits_grid`), exact step limits included.

    Returns
    -------
    (Figure, str)
        The figure (not shown; save with :func:`save_figure`) and a text
        alternative giving the number of trusts above and below the limits.
    """
    _check_funnel_arguments(direction, confidence, multiplier)
    use_adjusted = result.adjusted_used if adjusted is None else bool(adjusted)
    units = result.units
    names = _names(units.index, labels)
    flags = result.flags(confidence, use_adjusted)
    bands = band(flags["high"], flags["low"], direction)
    bands.index = units.index
    valid = units["rr"].notna() & units["denominator"].notna() & bands["band"].notna()
    grid = limits_grid(result, n_points=n_points)
    suffix_adj = "_adj" if use_adjusted else ""
    x_label = x_label or "Precision"
    y_label = y_label or "Indicator value"

    with mpl.rc_context(STYLE):
        fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        x_max = float(units.loc[valid, "denominator"].max()) * 1.05 if valid.any() else 1.0
        x_min = 0.0
        ax.axhline(result.target * multiplier, color=TARGET_GREY, linewidth=1.0, linestyle=(0, (1, 2)), zorder=1)
        _draw_limits(ax, grid.loc[grid["precision"] <= x_max * 1.02], suffix_adj, multiplier)
        x = units["denominator"]
        y = units["rr"] * multiplier
        _draw_units(ax, x, y, valid, bands, names)
        if valid.any():
            x_lo = float(units.loc[valid, "denominator"].min())
            ax.set_ylim(*_y_range(y[valid].to_numpy(dtype=float), grid, x_lo, result.target, suffix_adj, multiplier))
        ax.set_xlim(x_min, x_max)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        if subtitle:
            ax.set_title(subtitle, loc="left", fontsize=10, color="#3D3D3D")
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
        handles = _legend_handles(_level_text(confidence))
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)

    above = [names[k] for k in units.index[(valid & (bands["band"] == "higher than expected")).to_numpy()]]
    below = [names[k] for k in units.index[(valid & (bands["band"] == "lower than expected")).to_numpy()]]
    labels_text = (x_label, y_label, _level_text(confidence))
    return fig, _funnel_alt_text(result, valid, above, below, direction, use_adjusted, multiplier, labels_text)


def _check_funnel_arguments(direction: str, confidence: float, multiplier: float) -> None:
    """Reject a polarity, confidence level or y-axis multiplier the funnel plot does not draw."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'higher_better' or 'lower_better'; got {direction!r}")
    if not np.isclose(confidence, 0.95) and not np.isclose(confidence, 0.998):
        raise ValueError(f"confidence must be 0.95 or 0.998; got {confidence!r}")
    if not (isinstance(multiplier, (int, float)) and multiplier > 0):
        raise ValueError(f"multiplier must be positive; got {multiplier!r}")


def _draw_limits(ax: Axes, grid: pd.DataFrame, suffix_adj: str, multiplier: float) -> None:
    """The 99.8% (solid) and 95% (dashed) control limits over the plotted range of precision."""
    for tag, colour, style in (("998", LIMIT_GREY_998, "-"), ("95", LIMIT_GREY_95, "--")):
        lo = grid[f"lower_{tag}{suffix_adj}"] * multiplier
        hi = grid[f"upper_{tag}{suffix_adj}"] * multiplier
        ax.plot(grid["precision"], lo, color=colour, linestyle=style, linewidth=1.2, zorder=2)
        ax.plot(grid["precision"], hi, color=colour, linestyle=style, linewidth=1.2, zorder=2)


def _draw_units(ax: Axes, x: pd.Series, y: pd.Series, valid: pd.Series, bands: pd.DataFrame, names: pd.Series) -> None:
    """The units as points, one marker shape per band, the ones outside the limits labelled with their names."""
    for name, st in _BAND_STYLE.items():
        sel = valid & (bands["band"] == name)
        if sel.any():
            ax.scatter(
                x[sel],
                y[sel],
                marker=st["marker"],
                s=st["size"],
                c=st["color"],
                edgecolors=st["edge"],
                linewidths=0.6,
                zorder=3 if name == "as expected" else 4,
            )
    outliers = valid & (bands["band"] != "as expected")
    for key in x.index[outliers.to_numpy()]:
        below = bands.loc[key, "band"] == "lower than expected"
        ax.annotate(
            names[key],
            (x[key], y[key]),
            xytext=(4, -11 if below else 4),
            textcoords="offset points",
            fontsize=8,
            color="#0B0C0C",
            zorder=5,
        )


def _y_range(
    y_vals: np.ndarray, grid: pd.DataFrame, x_lo: float, target: float, suffix_adj: str, multiplier: float
) -> tuple[float, float]:
    """The y axis range: the points and the 99.8% limits from half the smallest unit's precision (not the funnel's
    extreme mouth at tiny precision) and the target, padded by 5%, not below zero for non-negative values."""
    body = grid.loc[grid["precision"] >= x_lo * 0.5]
    lim_vals = (
        np.concatenate([body[f"lower_998{suffix_adj}"].to_numpy(), body[f"upper_998{suffix_adj}"].to_numpy()])
        * multiplier
    )
    span = np.concatenate([y_vals, lim_vals, [target * multiplier]])
    span = span[np.isfinite(span)]
    lo_y, hi_y = float(span.min()), float(span.max())
    pad = 0.05 * (hi_y - lo_y if hi_y > lo_y else abs(hi_y) or 1.0)
    return (max(lo_y - pad, 0.0) if lo_y >= 0 else lo_y - pad, hi_y + pad)


def _legend_handles(level: str) -> list[Line2D]:
    """Legend entries: the three marker shapes (within, above, below the limits at ``level``), the limits, the
    target."""
    outside: dict[str, Any] = {"linestyle": "", "markeredgecolor": "#0B0C0C"}  # the markers of units outside
    return [
        Line2D([], [], marker="o", linestyle="", color=AF_COLOURS["dark_blue"], label="Within the limits"),
        Line2D([], [], marker="^", color=AF_COLOURS["orange"], label=f"Above the upper {level} limit", **outside),
        Line2D([], [], marker="v", color=AF_COLOURS["dark_pink"], label=f"Below the lower {level} limit", **outside),
        Line2D([], [], color=LIMIT_GREY_998, linestyle="-", label="99.8% limits"),
        Line2D([], [], color=LIMIT_GREY_95, linestyle="--", label="95% limits"),
        Line2D([], [], color=TARGET_GREY, linestyle=(0, (1, 2)), label="Target"),
    ]


def _funnel_alt_text(
    result: FunnelResult,
    valid: pd.Series,
    above: list[str],
    below: list[str],
    direction: str,
    use_adjusted: bool,
    multiplier: float,
    labels: tuple[str, str, str],
) -> str:
    """The figure's text alternative: how many units (and which) are above, below and within the limits, the kind
    of limits and the target. ``labels`` are the x-axis label, the y-axis label and the confidence level's text."""
    x_label, y_label, level = labels
    n_total = int(valid.sum())
    within = n_total - len(above) - len(below)
    high_word = "better" if direction == "higher_better" else "worse"
    low_word = "worse" if direction == "higher_better" else "better"
    limit_kind = "overdispersion-adjusted" if use_adjusted else "unadjusted"
    if result.exact:
        limit_kind = "exact (discrete, for rare events; " + limit_kind + ")"
    parts = [
        f"Funnel plot of {y_label} against {x_label} for {_plural(n_total)}.",
        f"{_plural(len(above))} {'is' if len(above) == 1 else 'are'} above the upper {level} limit "
        f"(higher than expected, {high_word} than expected)" + (f": {_list_names(above)}." if above else "."),
        f"{_plural(len(below))} {'is' if len(below) == 1 else 'are'} below the lower {level} limit "
        f"(lower than expected, {low_word} than expected)" + (f": {_list_names(below)}." if below else "."),
        f"{_plural(within)} {'is' if within == 1 else 'are'} within the limits.",
        f"Limits are {limit_kind} ({result.method}; dispersion ratio "
        f"{f'{result.phi:.2f}' if np.isfinite(result.phi) else 'not computable'}); "
        f"the target line is at {result.target * multiplier:.4g}.",
    ]
    missing = int((~valid).sum())
    if missing:
        parts.append(f"{_plural(missing)} with missing data {'is' if missing == 1 else 'are'} not shown.")
    return " ".join(parts)


def distribution_figure(values, title: str = "", x_label: str = "") -> tuple[Figure, str]:
    """Histogram with a strip of the individual values, and its alt text.

    Missing values are left out and counted in the alt text.
    """
    series = pd.Series(values, dtype="float64") if not isinstance(values, pd.Series) else values.astype("float64")
    finite = series[np.isfinite(series.to_numpy(dtype=float, na_value=np.nan))]
    x_label = x_label or "Value"
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        if len(finite):
            bins = int(min(30, max(5, np.ceil(np.sqrt(len(finite))))))
            ax.hist(finite.to_numpy(), bins=bins, color=AF_COLOURS["dark_blue"], edgecolor="white", linewidth=0.8)
            ymax = ax.get_ylim()[1]
            ax.plot(
                finite.to_numpy(),
                np.full(len(finite), -0.04 * ymax),
                linestyle="",
                marker="|",
                color=AF_COLOURS["dark_grey"],
                markersize=8,
                clip_on=False,
            )
            ax.set_ylim(-0.08 * ymax, ymax)
        ax.set_xlabel(x_label)
        ax.set_ylabel("Number of trusts")
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    n = len(finite)
    missing = len(series) - n
    if n:
        alt = (
            f"Histogram of {x_label} for {_plural(n)}: median {finite.median():.4g}, "
            f"middle half from {finite.quantile(0.25):.4g} to {finite.quantile(0.75):.4g}, "
            f"range {finite.min():.4g} to {finite.max():.4g}."
        )
    else:
        alt = f"Histogram of {x_label}: no trust has a value."
    if missing:
        alt += f" {_plural(missing)} with missing values {'is' if missing == 1 else 'are'} not shown."
    return fig, alt


def save_figure(fig: Figure, target, format: str | None = None) -> None:
    """Save a figure deterministically (fixed hash salt, no date metadata).

    ``target`` is a path or a binary file object; ``format`` defaults to the
    path's suffix (svg, png or pdf).
    """
    if format is None:
        if isinstance(target, (str, Path)):
            format = Path(target).suffix.lstrip(".").lower() or "svg"
        else:
            format = "svg"
    metadata: dict[str, Any]
    if format == "svg":
        metadata = {"Date": None}
    elif format == "pdf":
        metadata = {"CreationDate": None, "ModDate": None}
    elif format == "png":
        metadata = {"Software": None}
    else:
        metadata = {}
    with mpl.rc_context(STYLE):
        fig.savefig(target, format=format, dpi=DPI, metadata=metadata, bbox_inches="tight")
