"""Tests of leaguetables.publication.charts: accessible, deterministic funnel and distribution figures.

Expectations come from the project's style guide (shared/docs/style-and-conventions.md §5.3, §6.5) and the brief:
AF dark blue points, grey limits (95% dashed, 99.8% solid), outliers by marker shape and colour, alt text with
counts above/below the limits, labelled axes, byte-identical saved output, no pyplot.
"""

from __future__ import annotations

import io

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from leaguetables.publication import charts
from leaguetables.statistics import funnel


@pytest.fixture(scope="module")
def result():
    """Ten units near target, one far above and one far below (SHMI method; truncation drops both)."""
    o = [100, 112, 160, 96, 104, 199, 150, 251, 300, 98, 400, 60]
    e = [108, 112, 165, 95, 100, 200, 150, 250, 310, 100, 220, 180]
    codes = [f"R{i:02d}" for i in range(len(o))]
    return funnel.spiegelhalter(pd.Series(o, index=codes), pd.Series(e, index=codes))


def _figure(result, **kwargs):
    names = {code: f"Trust {code}" for code in result.units.index}
    args = dict(
        labels=names,
        title="Two trusts outside the limits",
        subtitle="Ratio of observed to expected",
        y_label="Observed / expected",
        x_label="Expected deaths",
        direction="lower_better",
    )
    args.update(kwargs)
    return charts.funnel_figure(result, **args)


def test_funnel_figure_returns_figure_and_alt_text_with_counts(result):
    """Alt text gives the number of trusts above and below the limits and names them (brief; style guide §6.5)."""
    flags = result.flags(0.998)
    assert int(flags["high"].sum()) == 1 and int(flags["low"].sum()) == 1
    fig, alt = _figure(result)
    assert isinstance(fig, Figure)
    assert "for 12 trusts" in alt
    assert "1 trust is above the upper 99.8% limit (higher than expected, worse than expected): Trust R10." in alt
    assert "1 trust is below the lower 99.8% limit (lower than expected, better than expected): Trust R11." in alt
    assert "10 trusts are within the limits" in alt
    kind = "overdispersion-adjusted" if result.adjusted_used else "unadjusted"
    assert f"Limits are {kind}" in alt and "dispersion ratio" in alt


def test_funnel_figure_axes_colours_and_marker_shapes(result):
    """Labelled axes; points #12436D; outliers by shape (^ above, v below) and colour; limits grey, 95% dashed."""
    fig, _ = _figure(result)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Expected deaths" and ax.get_ylabel() == "Observed / expected"
    assert ax.get_title(loc="left") == "Ratio of observed to expected"
    assert fig.get_suptitle() == "Two trusts outside the limits"
    collections = ax.collections
    assert len(collections) == 3
    colours = [mcolors.to_hex(c.get_facecolor()[0]).upper() for c in collections]
    assert colours[0] == "#12436D"
    shapes = [tuple(np.round(c.get_paths()[0].vertices, 6).ravel()) for c in collections]
    assert len(set(shapes)) == 3, "within, above and below must have different marker shapes"
    assert len(set(colours)) == 3
    sizes = [len(c.get_offsets()) for c in collections]
    assert sizes == [10, 1, 1]
    limit_lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    styles = {line.get_linestyle() for line in limit_lines}
    assert styles == {"-", "--"}
    for line in limit_lines:
        r, g, b, _ = mcolors.to_rgba(line.get_color())
        assert r == g == b, "limits are drawn in greys"
    texts = [t.get_text() for t in ax.texts]
    assert sorted(texts) == ["Trust R10", "Trust R11"]


def test_funnel_figure_multiplier_and_level(result):
    """The multiplier scales y only; confidence=0.95 flags against the 95% limits."""
    fig, alt = _figure(result, multiplier=100, confidence=0.95)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert offsets[:, 1].max() > 50  # ratios near 1 drawn near 100
    assert "95% limit" in alt and "the target line is at 100" in alt


def test_saved_figures_are_byte_identical_and_undated(result):
    """Determinism (style guide §5.3): fixed svg.hashsalt, no date metadata, fixed size and DPI."""
    outputs = []
    for _ in range(2):
        fig, _ = _figure(result)
        buffer = io.BytesIO()
        charts.save_figure(fig, buffer, format="svg")
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1]
    assert b"<dc:date>" not in outputs[0]
    png = []
    for _ in range(2):
        fig, _ = _figure(result)
        buffer = io.BytesIO()
        charts.save_figure(fig, buffer, format="png")
        png.append(buffer.getvalue())
    assert png[0] == png[1]
    fig, _ = _figure(result)
    assert tuple(fig.get_size_inches()) == charts.FIGSIZE and fig.dpi == charts.DPI


def test_no_pyplot_figures_are_opened(result):
    """Figures are built without pyplot (never shown, no global state)."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    _figure(result)
    charts.distribution_figure([1.0, 2.0, 3.0], "t", "x")
    assert plt.get_fignums() == before
    assert matplotlib.rcParams["svg.hashsalt"] is not None


def test_funnel_figure_validates_arguments(result):
    """Bad direction, level or labels raise ValueError."""
    with pytest.raises(ValueError, match="direction"):
        _figure(result, direction="up")
    with pytest.raises(ValueError, match="confidence"):
        _figure(result, confidence=0.9)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        _figure(result, labels=["a", "b"])


def test_distribution_figure_alt_text_counts_missing():
    """distribution_figure: histogram with alt text summarising the values and counting missing ones."""
    values = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan], index=list("abcde"))
    fig, alt = charts.distribution_figure(values, "Spread of scores", "Score")
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_xlabel() == "Score" and fig.axes[0].get_ylabel() == "Number of trusts"
    assert alt.startswith("Histogram of Score for 4 trusts: median 2.5")
    assert "range 1 to 4" in alt and "1 trust with missing values is not shown" in alt


def test_save_funnels_shows_the_saved_svg_in_a_notebook(demo_inputs, tmp_path):
    """A metric notebook shows each funnel plot as the SVG saved for the report (not drawn again as a PNG): the
    object save_funnels returns gives IPython that SVG, with the accessible title and description, and a text
    repr with no memory address (executed notebooks are byte-identical from run to run)."""
    from IPython.core.formatters import DisplayFormatter

    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.publication import figures
    from leaguetables.statistics import metrics

    inputs, catalogue = demo_inputs, load_catalogue("demo")
    methodology = load_methodology("nof-2025-26")
    result = metrics.compute_metric(inputs, catalogue.metric("cdiff"), "2025-26-Q4", methodology)
    saved = figures.save_funnels(result, tmp_path, methodology.funnel.band_level)
    assert saved and set(saved) == set(result.funnels)
    for ttype, (shown, alt) in saved.items():
        on_disk = (tmp_path / "figures" / f"cdiff__{ttype}.svg").read_text(encoding="utf-8")
        data, _ = DisplayFormatter().format(shown)
        assert data["image/svg+xml"] == on_disk and "image/png" not in data
        assert f'<desc id="fig-cdiff-{ttype.replace("_", "-")}-desc">' in on_disk and alt
        assert " at 0x" not in data["text/plain"] and "C. difficile" in data["text/plain"]


def test_distribution_is_drawn_once_as_accessible_svg(demo_inputs):
    """figures.distribution: the metric notebook's histogram, drawn once as SVG with a title and the alt text as
    its description (no seaborn, no pyplot); the same result gives the same bytes."""
    import xml.etree.ElementTree as ET

    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.publication import figures
    from leaguetables.statistics import metrics

    catalogue, methodology = load_catalogue("demo"), load_methodology("nof-2025-26")
    result = metrics.compute_metric(demo_inputs, catalogue.metric("ae_4hr"), "2025-26-Q4", methodology)
    shown, alt = figures.distribution(result)
    again, _ = figures.distribution(result)
    assert shown._repr_svg_() == again._repr_svg_()
    root = ET.fromstring(shown._repr_svg_())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "dist-ae-4hr-title dist-ae-4hr-desc"
    assert root.find(f"{ns}desc").text == alt
    n_ok = int((result.table["status"] == "ok").sum())
    assert alt.startswith(f"Histogram of % for {n_ok} trusts: median")
