"""The data of the published pages (the data → context layer): the sections of the front page, shown by
``notebooks/report.ipynb``, and :class:`ReportData`, the data every published page of a quarter is built from
(also used by :mod:`leaguetables.publication.site`, :mod:`~leaguetables.publication.profiles` and
:mod:`~leaguetables.publication.methodology`).

No HTML is written here: each section is a Jinja2 template (``templates/pages/report/*.html.j2``, autoescaped)
rendered with plain values — sentences, and tables as :class:`Table` (captions, header cells with scope, data-
attributes for the table script). Figures are inline SVG with a text alternative and a data table beside them;
nothing depends on colour alone; no wall-clock time appears in a page (run times live in ``manifest.json`` only).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from markupsafe import Markup

from leaguetables import __version__
from leaguetables.config import (
    ICB_TYPES,
    TRUST_TYPE_LABELS,
    TRUST_TYPE_PLURAL,
    TRUST_TYPES,
    Catalogue,
    Methodology,
    Metric,
)
from leaguetables.inputs.contract import previous_quarter, quarter_label, quarter_period
from leaguetables.inputs.store import read_verified
from leaguetables.nof.league_files import read_league, read_metric_results
from leaguetables.publication import derived_cache, pages
from leaguetables.publication.finder import search_json
from leaguetables.run.manifest import git_state
from leaguetables.run.notebook_env import load_run
from leaguetables.statistics import productivity_totals as productivity_stats

METHODOLOGY_PAGE = "methodology.html"
TRUSTS_DIR = "trusts"
METRICS_DIR = "metrics"
TRUST_INDEX = f"{TRUSTS_DIR}/index.html"
REVISED = " [r]"
SHORTHAND = {"suppressed": "[c]", "missing": "[x]", "not_applicable": "[z]"}


def load_saved(work_dir, metric_id: str) -> dict[str, tuple[str, str]]:
    """SVG text and caption of each saved funnel plot of a metric: ``{trust_type: (svg, caption)}``."""
    out = {}
    for p in sorted((Path(work_dir) / "figures").glob(f"{metric_id}__*.svg")):
        ttype = p.stem.split("__", 1)[1]
        meta = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
        out[ttype] = (p.read_text(encoding="utf-8"), f"{meta['title']}. {meta['subtitle']}. {meta['alt']}")
    return out


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _missing(value) -> bool:
    """None, NaN or ±infinity (a figure that could not be computed is shown as [x], never as inf)."""
    if value is None or isinstance(value, str):
        return value is None
    if isinstance(value, float):  # the common case (numpy's float64 too), ~5x faster than pd.isna: same answer
        return not math.isfinite(value)
    if pd.isna(value):
        return True
    return isinstance(value, (float, np.floating)) and not np.isfinite(value)


def fmt(value, decimals: int = 1, suffix: str = "") -> str:
    if _missing(value):
        return "[x]"
    return f"{value:,.{decimals}f}{suffix}"


def money(value) -> str:
    """Pounds for a reader: £2.3 billion, £76.5 million, £411,000 (to the nearest £1,000), £0.

    >>> money(2.294e9), money(76_495_720), money(410_779.8), money(0), money(float("nan"))
    ('£2.3 billion', '£76.5 million', '£411,000', '£0', '[x]')
    """
    if _missing(value):
        return "[x]"
    v = float(value)
    if abs(v) >= 1e9:
        return f"£{v / 1e9:,.1f} billion"
    if abs(v) >= 1e6:
        return f"£{v / 1e6:,.1f} million"
    if v == 0:
        return "£0"
    return f"£{round(v, -3):,.0f}" if abs(v) >= 1000 else f"£{v:,.0f}"


def profile_file(trust_code: str) -> str:
    """File name of a trust's profile: the code itself when it is a safe file name, else a slug of it."""
    code = str(trust_code)
    if code.lower() == "index":  # trusts/index.html is the A–Z index of trusts
        return "trust-index.html"
    return f"{code}.html" if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", code) else f"{slug(code) or 'trust'}.html"


def profile_href(trust_code: str, from_root: bool = True) -> str:
    """Relative link to a trust's profile from the report (``trusts/X.html``) or from another profile."""
    return (f"{TRUSTS_DIR}/" if from_root else "") + profile_file(trust_code)


class Grouping(NamedTuple):
    """A way of grouping trusts into areas, each with its own "where you live" page (``<folder>/<slug>.html``):
    a column of the trust register, the folder of its pages and its name in words."""

    column: str
    folder: str
    label: str
    plural: str
    key: str  # the rows' data- attribute (data-region, data-icb) the table script filters on


# Area pages are built for every grouping whose column the trust register has; a new grouping is one line here.
GROUPINGS = (
    Grouping("region", "regions", "NHS England region", "NHS England regions", "region"),
    Grouping("icb_name", "icbs", "integrated care board", "integrated care boards", "icb"),
)
FILTERS = "region segment subtype"  # the league tables' filters (data-filters); a type's table has one type


def active_groupings(trusts: pd.DataFrame) -> list[Grouping]:
    """The groupings of :data:`GROUPINGS` whose column the register has with at least one value."""
    return [g for g in GROUPINGS if g.column in trusts.columns and trusts[g.column].notna().any()]


def area_file(area: str) -> str:
    return f"{slug(area) or 'area'}.html"


def area_href(grouping: Grouping, area: str, root: str = "") -> str:
    """Relative link to an area's page from a page at ``root`` of the release."""
    return f"{root}{grouping.folder}/{area_file(area)}"


# ------------------------------------------------------------------------------------------------------ revisions
def load_revisions(path: Path | str | None) -> pd.DataFrame | None:
    """The revisions table (``tables/revisions.csv``, written by ``run_quarter.py --revise``; the report notebook
    is given its copy in the store, named by its SHA-256, checked), or None when ``path`` is empty.

    Columns: quarter, table, trust_code, metric_id, quantity, previous, revised.
    """
    if not path:
        return None
    df = pd.read_csv(
        io.BytesIO(read_verified(path, "revisions table")),
        dtype={"quarter": str, "table": str, "trust_code": str, "metric_id": str, "quantity": str},
        keep_default_na=True,
    )
    return df.sort_values(
        [c for c in ("table", "trust_code", "metric_id", "quantity") if c in df.columns], kind="mergesort"
    ).reset_index(drop=True)


NHSE_RANK_RANGE = "NHS England likely range of rank"
NHSE_AVERAGE_RANGE = "NHS England likely range of average"

# quantity names (ours and NHS England's layout) → the column of the report's league table they revise
_LEAGUE_FIELDS = {
    "segment": "Segment",
    "unadjusted_segment": "Segment",
    "rank": "Rank",
    "rank_label": "Rank",
    "average_score": "Average score",
    "average_unrounded": "Average score",
    "average_lower": NHSE_AVERAGE_RANGE,
    "average_upper": NHSE_AVERAGE_RANGE,
    "likely_range_of_average_score": NHSE_AVERAGE_RANGE,
    "rank_lower": NHSE_RANK_RANGE,
    "rank_upper": NHSE_RANK_RANGE,
    "likely_range_of_rank": NHSE_RANK_RANGE,
    "financial_override": "Financial override",
    "rank_interval_lower": "Rank interval",
    "rank_interval_upper": "Rank interval",
    "rank_median": "Rank interval",
    "trust_in_financial_deficit": "Financial override",
    "in_financial_deficit": "Financial override",
    **{f"p_segment_{s}": f"P(segment {s})" for s in range(1, 5)},
}


def _norm(name) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def revised_marks(revisions: pd.DataFrame | None) -> tuple[set, set]:
    """``(league, metric)``: the revised cells of the league tables as (trust_code, report column) — an
    unrecognised league quantity marks the trust's name — and of the metrics as (trust_code, metric_id)."""
    league: set[tuple[str, str]] = set()
    metric: set[tuple[str, str]] = set()
    if revisions is None or revisions.empty:
        return league, metric
    for r in revisions.itertuples(index=False):
        code = getattr(r, "trust_code", None)
        if _missing(code):
            continue
        mid = getattr(r, "metric_id", None)
        if not _missing(mid) and str(mid).strip():
            metric.add((str(code), str(mid)))
            continue
        league.add((str(code), _LEAGUE_FIELDS.get(_norm(getattr(r, "quantity", "")), "Trust")))
    return league, metric


def revisions_html(revisions: pd.DataFrame | None, quarter: str) -> str:
    """The revisions section: every revised figure (``tables/revisions.csv``), or that none has been revised."""
    ctx: dict = {"quarter_label": quarter_label(quarter), "table": None}
    if revisions is not None and not revisions.empty:
        df = revisions

        def col(name, fill=None):
            s = df.get(name, pd.Series("", index=df.index))
            return (s.fillna(fill) if fill is not None else s).to_numpy()

        tab = pd.DataFrame(
            {
                "Table": col("table"),
                "Trust code": col("trust_code"),
                "Metric": col("metric_id", ""),
                "Quantity": col("quantity"),
                "Previously published": col("previous"),
                "Revised": col("revised"),
            }
        )
        ctx.update(
            n_figures=f"{len(tab):,}",
            n_trusts=f"{tab['Trust code'].nunique():,}",
            table=frame_table(
                tab,
                f"Revised figures, {quarter_label(quarter)}",
                "revisions-table",
                numeric=["Previously published", "Revised"],
            ),
        )
    return pages.section("revisions", ctx)


# ----------------------------------------------------------------------------------------------------- page parts
def thresholds_notice(methodology: Methodology) -> str:
    """The warning every page carries when the segment thresholds are illustrative (a 2026/27 demo: NHS England's
    thresholds are not published in anything the project has); empty otherwise. Plain text (escaped by callers)."""
    seg = methodology.segmentation
    if not seg.illustrative or seg.thresholds is None:  # without thresholds nothing is segmented (``unsourced``)
        return ""
    return (
        f"Illustrative segment thresholds ({', '.join(f'{t:g}' for t in seg.thresholds)}): not NHS England's. "
        f"{seg.thresholds_source}. The segments and ranks on this page show how the method works, not any "
        "trust's position."
    )


# What each source is, in words that are true of it (the header badge, the status line and the notice). None of
# them is an official statistic: the project is not a producer of official statistics.
SOURCE_LABELS = {
    "demo": (
        "Demonstration: synthetic data",
        "Demonstration only: synthetic data about fictional trusts and integrated care boards, generated by the "
        "project's code from a fixed seed. Not statistics about real NHS trusts or ICBs.",
    ),
    "nhse": (
        "Not an official statistic",
        "Not an official statistic: computed by this project from NHS England's published statistics. The "
        "methods are new and may change as they are reviewed.",
    ),
    "files": (
        "Not an official statistic",
        "Not an official statistic: computed by this project from data files supplied by whoever ran it; the "
        "project does not know or check where those data come from. The methods are new and may change as "
        "they are reviewed.",
    ),
}
SOURCE_NOTICES = {
    "demo": (
        "Demonstration only.",
        "Every trust, integrated care board, name and figure here is synthetic, "
        "generated by the project's code from a fixed seed. It is not a ranking of real "
        "NHS trusts or ICBs: where the record-level metrics use the real geography and "
        "ONS populations underneath, the organisations laid over them are invented.",
    ),
    "nhse": (
        "Reproduced from published data; not an official statistic.",
        "These figures were computed by this project from NHS England's published statistics. They are not "
        "NHS England's Oversight Framework segmentation, and some of its metrics are not in the published "
        "inputs.",
    ),
    "files": (
        "Computed from supplied data files; not an official statistic.",
        "These figures were computed by this project from the contract data files given to it (--source "
        "files); their origin is whatever the person who ran it supplied. They are not NHS England's "
        "Oversight Framework segmentation.",
    ),
}


def site_label(source: str) -> str:
    """The badge in every page's header."""
    return SOURCE_LABELS.get(source, SOURCE_LABELS["files"])[0]


def source_notice(source: str, catalogue: Catalogue | None = None, omitted: Sequence[str] = ()) -> Markup:
    """The notice under a page's title: what the figures are computed from, and, for a partial run, which metrics
    were left out."""
    head, body = SOURCE_NOTICES.get(source, SOURCE_NOTICES["files"])
    missing = "; ".join(catalogue.not_in_inputs) if source != "demo" and catalogue is not None else ""
    return pages.section(
        "source_notice",
        {
            "head": head,
            "body": body,
            "not_in_inputs": missing,
            "omitted": list(omitted),
            "omitted_count": _plural(len(omitted), "metric"),
        },
    )


def title_block(
    quarter: str, source: str, methodology: Methodology, catalogue: Catalogue | None = None, omitted: Sequence[str] = ()
) -> str:
    return pages.section(
        "title",
        {
            "h1": f"NHS trust league tables: {quarter_label(quarter)}" + (" (partial run)" if omitted else ""),
            "period": quarter_period(quarter),
            "quarter_label": quarter_label(quarter),
            "status": SOURCE_LABELS.get(source, SOURCE_LABELS["files"])[1],
            "methodology": methodology,
            "notice": source_notice(source, catalogue, omitted),
            "thresholds_notice": thresholds_notice(methodology),
        },
    )


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _level_pct(level: float) -> str:
    return f"{100 * level:g}%"


def funnel_finding(funnel_counts: pd.DataFrame, level: float = 0.95) -> str:
    """The key-findings sentence on funnel flags, with the number expected by chance beside the count.

    Expected by chance: ``n_tested × (1 − level)`` flags in all, half on each side, if no trust were truly
    different from the spread between trusts (:func:`leaguetables.statistics.funnel.expected_flags`)."""
    from leaguetables.statistics.funnel import expected_flags

    worse = int(funnel_counts["n_worse"].sum())
    better = int(funnel_counts["n_better"].sum())
    k = funnel_counts["metric_id"].nunique()
    pct = _level_pct(level)
    text = (
        f"Across {k:,} metrics with funnel plots, {worse:,} trust-metric results were worse than expected and "
        f"{better:,} better than expected beyond the {pct} limits"
    )
    if "n_tested" in funnel_counts and funnel_counts["n_tested"].notna().all():
        tested = int(funnel_counts["n_tested"].sum())
        side = expected_flags(tested, level) / 2.0
        text += (
            f", of {tested:,} tested; about {side:,.0f} on each side would be expected by chance alone if no "
            "trust were truly different"
        )
    return text + (
        ". A flag says that a result is further from the average of the trust type than the spread "
        "between trusts and chance would usually give: it is a prompt for a question, not proof of better "
        "or worse care, and a trust within the limits is not shown to be average."
    )


def funnel_method_text(f) -> str:
    """The funnel method in words, from the ``funnel`` settings of the methodology config (report and methodology
    page use this one text, so neither can describe a method other than the one run)."""
    pct = f"{100 * f.trim_by:g}%"
    band, outer = _level_pct(f.band_level), _level_pct(f.outer_level)
    what = (
        "Funnel plots compare each trust with the average of its trust type: on observed / expected (O/E) where "
        "the metric has a demographic model, on the proportion for other proportions, and on O/E against the "
        "type's crude rate for other rates. "
    )
    tail = (
        f" Trusts are banded at {band} (a value exactly on a limit is inside); the plots also show {outer} "
        f"limits. At {band}, about {100 * (1 - f.band_level):g} trusts in 100 fall outside the limits by chance "
        "alone even when no trust is truly different, so a flag is a prompt for a question, not a verdict on "
        "the quality of care, and a trust within the limits is not shown to be average."
    )
    if f.method == "spiegelhalter":
        if f.sr_method == "SHMI":
            disp = (
                f"O/E z-scores on the log scale (the SHMI method): the {pct} of trusts with the lowest and the "
                f"{pct} with the highest z-scores are truncated (left out, not winsorised) before φ = the mean "
                "squared z-score; proportions use the arcsine scale with "
                f"{pct} winsorisation in each tail"
            )
        else:
            disp = (
                f"O/E z-scores on the square-root scale (the CQC method) and proportions on the arcsine scale, "
                f"with {pct} winsorisation in each tail before φ = the mean squared z-score"
            )
        return (
            what
            + "Compatibility setting (reproduces NHS England's SHMI banding and FunnelPlotR"
            + (", including FunnelPlotR's quirks" if f.compat else "")
            + f"): {disp}; the between-trust "
            "variance τ² is the DerSimonian–Laird form around the target, and the limits are widened by τ² only "
            "when φ > 1. This robust φ is not corrected for the trimming (it estimates about 0.44 × the true "
            "dispersion after truncation, 0.68 × after winsorisation), so with no truly different trust more "
            f"than the nominal share are flagged." + tail
        )
    scale = "square-root" if f.sr_scale == "sqrt" else "log"
    pr = "logit" if f.pr_scale == "logit" else "arcsine"
    text = (
        what + "Project method (robust): trusts differ by more than chance even when none is unusual, so the "
        f"limits allow for a between-trust variance τ². z-scores on the {scale} scale (O/E) or the {pr} scale "
        f"(proportions) are winsorised at {pct} in each tail, and τ² is the value at which the mean squared "
        "adjusted z-score, divided by its value for normal data after the same winsorisation "
        "(0.679 at 10%), equals 1: without that correction the robust estimate is about two thirds of the true "
        "spread and too many trusts are flagged. The winsorisation limits how much a few truly different trusts "
        "widen the limits. The limits include τ² whenever it is above 0."
    )
    if f.pool_quarters > 1:
        when = (
            "For every funnel"
            if f.pool_when == "always"
            else f"Where events are rare this quarter (a median expected count below {f.rare_expected:g})"
        )
        text += (
            f" {when}, the counts of the latest {f.pool_quarters} quarters (those available) are pooled; "
            "the plot and its table say so."
        )
    if f.limits != "normal":
        rare = (
            "In every funnel"
            if f.limits == "exact"
            else f"Where events are still rare (a median expected count below {f.rare_expected:g})"
        )
        text += (
            f" {rare}, the limits are exact quantiles of the distribution of the count — Poisson or negative "
            "binomial for O/E, binomial or beta-binomial for proportions, with τ² estimated on the count scale "
            "— so a high count can always be flagged and φ is never infinite; these exact tests are "
            "conservative (fewer than the nominal share are flagged by chance), and where even no event at all "
            "would not be unusual a low result cannot be flagged."
        )
    return text + tail


def segmentation_sentence(table: pd.DataFrame) -> str:
    """What the segments are cut from, in words, from the league table's ``segmentation_rule`` column."""
    rule = table["segmentation_rule"].iloc[0] if "segmentation_rule" in table.columns and len(table) else None
    if rule == "quartiles_pooled":
        present = [t for t in TRUST_TYPES if (table["trust_type"] == t).any()]
        types = [TRUST_TYPE_PLURAL[t].lower() for t in present if t not in ICB_TYPES]
        text = (
            "Segments are quartiles of the average score of all trusts of the types scored together ("
            + ", ".join(types)
            + "), as NHS England cuts them, so about a quarter of those trusts are in "
            "segment 4 by construction, whatever their performance."
        )
        if any(t in ICB_TYPES for t in present):
            text += (
                " Integrated care boards are a different kind of organisation: their segments are quartiles "
                "of the ICBs' own average scores (the project's choice; NHS England's ICB thresholds are not "
                "published)."
            )
        return text
    if rule == "quartiles_within_type":
        return (
            "Segments are quartiles of the average score within each trust type, so about a quarter of each "
            "type is in segment 4 by construction, whatever its performance."
        )
    if rule == "fixed_thresholds":
        return "Segments come from fixed thresholds on the average score."
    return "Segments are quartiles of the average score over a configured population of trusts."


def key_findings(*args: Any, **kw: Any) -> str:
    """The key findings section: the sentences of :func:`key_finding_sentences`, given the same arguments."""
    return pages.section("key_findings", {"items": key_finding_sentences(*args, **kw)})


def segment_distribution(table: pd.DataFrame) -> str:
    rows = []
    calibrated = "rank_interval_lower" in table.columns
    for t in TRUST_TYPES:
        g = table[table["trust_type"] == t]
        if g.empty:
            continue
        counts = g["segment"].value_counts()
        row = {
            "Trust type": TRUST_TYPE_PLURAL[t],
            **{f"Segment {s}": int(counts.get(s, 0)) for s in range(1, 6)},
            "Moved by the financial override": int(g["financial_override"].astype(bool).sum()),
        }
        if calibrated:
            p = g[[f"p_segment_{k}" for k in range(1, 5)]].to_numpy(float)
            top = np.where(np.isnan(p), -np.inf, p).max(axis=1)  # trusts without probabilities are not counted
            row["Segment uncertain (no segment 90% likely)"] = int(((top > -np.inf) & (top < 0.9)).sum())
        row["Total"] = len(g)
        rows.append(row)
    df = pd.DataFrame(rows)
    return pages.section(
        "segments",
        {
            "calibrated": calibrated,
            "table": numbers_table(
                df, "Number of trusts in each segment, by trust type", "segment-distribution", "Trust type"
            ),
        },
    )


def _pct(p) -> str:
    return "" if pd.isna(p) else f"{100 * p:.0f}%"


def _level(table: pd.DataFrame) -> str:
    lvl = table.attrs.get("uncertainty", {}).get("level", 0.95)
    return f"{100 * lvl:g}%"


def movement_summary(movement: pd.DataFrame, previous: str, level: float = 0.95) -> str:
    """One sentence: segment changes beside the number expected by chance alone, and the trusts whose change of
    rank is beyond chance beside the number the test flags by chance (from :func:`leaguetables.nof.league.movement`)."""
    n = len(movement)
    changed = int((movement["segment_change"] != 0).sum())
    expected = float(movement["p_segment_change_by_chance"].sum())
    beyond = int(movement["change_beyond_chance"].astype(bool).sum())
    alpha = 1 - level
    return (
        f"Since {quarter_label(previous)}, {_plural(changed, 'trust')} of {n:,} changed segment; about "
        f"{expected:.1f} would be expected to change segment by chance alone if no trust's performance had "
        f"changed (a joint simulation of both quarters' data). The change of rank is larger than chance alone "
        f"would usually give (p < {alpha:g}) for {_plural(beyond, 'trust')}; about {alpha * n:.1f} would be "
        "flagged by chance even if nothing had changed."
    )


def movement_text(r) -> str:
    """Short movement wording for a table cell, from a row of :func:`leaguetables.nof.league.movement`:
    e.g. "segment 3 to 2; up 28; beyond chance (p = 0.004)"."""
    if _missing(getattr(r, "previous_rank", None)):
        return "not in last quarter's table"
    seg = (
        "same segment"
        if r.segment_change == 0
        else f"segment {int(r.previous_segment)} to {int(r.previous_segment + r.segment_change)}"
    )
    ch = int(r.rank_change)
    rank = "same rank" if ch == 0 else (f"up {-ch}" if ch < 0 else f"down {ch}")
    p = float(r.rank_change_p_value)
    where = "beyond chance" if bool(r.change_beyond_chance) else "within chance"
    return f"{seg}; {rank}; {where} (p {'< 0.001' if p < 0.001 else f'= {p:.3f}'})"


def league_table_html(*args: Any, **kw: Any) -> str:
    """One type's league table rendered (:func:`league_table_context`, given the same arguments); empty when the
    type has no trust."""
    ctx = league_table_context(*args, **kw)
    return "" if ctx is None else pages.section("league_table", {"lt": ctx})


def league_intro(
    previous: str | None, has_movement: bool, calibrated: bool = True, level: float = 0.95, shrinkage: bool = True
) -> str:
    return pages.section(
        "league_intro", {"intro": league_intro_context(previous, has_movement, calibrated, level, shrinkage)}
    )


def funnel_flag_sentence(summary: pd.DataFrame | None, ttype: str, direction: str) -> str:
    """A metric section's count of funnel flags for one trust type, with the number expected by chance."""
    if summary is None or summary.empty or "n_tested" not in summary:
        return ""
    row = summary[summary["trust_type"] == ttype]
    if row.empty:
        return ""
    r = row.iloc[0]
    level = float(r.get("band_level", 0.95))
    high, low, tested = int(r["n_higher"]), int(r["n_lower"]), int(r["n_tested"])
    better, worse = (high, low) if direction == "higher_better" else (low, high)
    side = float(r["n_expected_by_chance"]) / 2.0
    quarters = int(r.get("quarters", 1) or 1)
    pooled = f" (events pooled over the latest {quarters} quarters)" if quarters > 1 else ""
    exact = (
        " The limits are exact for rare events and conservative: fewer than this are expected by chance."
        if r.get("limits") == "exact"
        else ""
    )
    return (
        f"Of {tested:,} trusts tested{pooled}, {better:,} {'is' if better == 1 else 'are'} better and "
        f"{worse:,} worse than expected beyond the {_level_pct(level)} limits; about {side:,.1f} on each side "
        f"would be expected by chance alone if no trust were truly different.{exact}"
    )


def coefficient_frame(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Term": c["term"].to_numpy(),
            "Ratio per SD": c["exp_estimate"].map(lambda v: fmt(v, 3)).to_numpy(),
            "95% CI": [f"{a:.3f} to {b:.3f}" for a, b in zip(c["exp_lower"], c["exp_upper"])],
            "p-value": c["p_value"].map(lambda v: "<0.001" if v < 0.001 else f"{v:.3f}").to_numpy(),
        }
    )


def sensitivity_html(sens: pd.DataFrame, summary: dict) -> str:
    rows = [
        {
            "Trust type": TRUST_TYPE_PLURAL[t],
            "Trusts": v["n"],
            "Rank correlation of averages (Spearman)": "[x]"
            if pd.isna(v["spearman_average"])
            else f"{v['spearman_average']:.3f}",
            "Trusts whose segment changes": v["segment_changed"],
        }
        for t, v in summary.items()
    ]
    ctx: dict = {
        "summary": frame_table(
            pd.DataFrame(rows),
            "Raw and adjusted league tables compared",
            "sensitivity-summary",
            numeric=["Trusts", "Rank correlation of averages (Spearman)", "Trusts whose segment changes"],
            row_header="Trust type",
        ),
        "changes": None,
    }
    ch = sens[sens["segment_change"] != 0]
    if not ch.empty:
        ch = ch.reindex(ch["segment_change"].abs().sort_values(ascending=False, kind="mergesort").index)
        tab = pd.DataFrame(
            {
                "Trust": [trust_link(c, n) for c, n in zip(ch["trust_code"], ch["trust_name"])],
                "Code": ch["trust_code"].to_numpy(),
                "Type": ch["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
                "Segment (raw)": ch["segment"].astype(int).to_numpy(),
                "Segment (adjusted)": ch["segment_adjusted"].astype(int).to_numpy(),
                "Rank (raw)": ch["rank"].astype(int).to_numpy(),
                "Rank (adjusted)": ch["rank_adjusted"].astype(int).to_numpy(),
            }
        )
        ctx["changes"] = frame_table(
            tab,
            "Trusts whose segment changes with demographic adjustment",
            "sensitivity-changes",
            numeric=["Segment (raw)", "Segment (adjusted)", "Rank (raw)", "Rank (adjusted)"],
        )
    return pages.section("sensitivity", ctx)


def productivity_html(
    opp: pd.DataFrame, catalogue: Catalogue, methodology: Methodology, top: int = 10, source: str = "demo"
) -> str:
    settings = methodology.productivity
    ctx: dict = {
        "settings": settings,
        "empty": opp.empty,
        "source": source,
        "who": (
            "the upper-quartile (best 25%) level of its trust type"
            if settings.comparator == "type"
            else "the upper-quartile (best 25%) level of its demographic peers"
        ),
    }
    if not opp.empty:
        summ = productivity_stats.england_summary(opp)
        ctx["total"] = money(productivity_stats.england_total(opp)["opportunity_annual"])
        ctx["n_metrics"] = _plural(len(summ), "metric")
        ctx["england"], ctx["top"] = _productivity_tables(opp, catalogue, top)
    return pages.section("productivity", ctx)


def data_quality_html(
    results: pd.DataFrame,
    catalogue: Catalogue,
    metric_data: dict | None = None,
    source: str = "demo",
    unscored: pd.DataFrame | None = None,
) -> str:
    rows = []
    for m in catalogue.metrics:
        g = results[results["metric_id"] == m.id]
        if g.empty:
            continue
        rows.append(
            {
                "Metric": m.name,
                "Trusts in scope": len(g),
                "Reported": int((g["status"] == "ok").sum()),
                "Suppressed [c]": int((g["status"] == "suppressed").sum()),
                "Missing [x]": int((g["status"] == "missing").sum()),
                "Scored": "[z]" if m.scoring.method == "none" else int(g["score"].notna().sum()),
            }
        )
    df = pd.DataFrame(rows)
    totals = {
        k: int(df[c].sum()) if len(df) else 0
        for k, c in (
            ("cells", "Trusts in scope"),
            ("ok", "Reported"),
            ("sup", "Suppressed [c]"),
            ("mis", "Missing [x]"),
        )
    }
    errors = [
        f"{catalogue.metric(mid).name} ({TRUST_TYPE_PLURAL[ttype].lower()}): {err}"
        for mid, d in sorted((metric_data or {}).items())
        for ttype, err in sorted(d.get("model_errors", {}).items())
    ]
    return pages.section(
        "data_quality",
        {
            "source": source,
            "n": {k: f"{v:,}" for k, v in totals.items()},
            "errors": errors,
            "table": numbers_table(df, "Coverage of each metric this quarter", "data-quality-table", "Metric"),
            "unscored": []
            if unscored is None
            else list(zip(unscored["trust_code"].astype(str), unscored["trust_name"].astype(str))),
        },
    )


def methodology_summary_html(
    methodology: Methodology, catalogue: Catalogue, link: str | None = METHODOLOGY_PAGE
) -> str:
    b = methodology.bootstrap
    u = methodology.uncertainty
    f = methodology.funnel
    fo = methodology.financial_override
    items = [
        "Each metric is scored 1.00 (best) to 4.00 (worst) by rank within the trust type; with a standard, trusts "
        "meeting it score 1.00 and the rest 2.00–4.00; with a floor, trusts failing it score 4.00 and the rest "
        "1.00–3.00; ties take the best score of the tie; bracket metrics map categories to scores.",
        "The average metric score is the weighted mean over scored metrics (the three infection metrics one third "
        "each; the two finance metrics enter once as a combined score), rounded to 2 decimal places.",
        methodology.segmentation.description,
        (
            f"Financial override: a trust in segment {' or '.join(str(s) for s in fo.from_segments)} that reports a "
            f"deficit or receives deficit support is moved to segment {fo.to_segment}."
        )
        if fo.enabled
        else "No financial override.",
        *(
            [
                f"Rank intervals, median ranks and the probability of each segment: {u.replicates:,} simulated versions "
                f"of the quarter's data (seed {u.seed}), "
                + (
                    "each trust's true rates drawn from an empirical-Bayes posterior (its own counts and the spread "
                    "between trusts of its type)"
                    if u.shrinkage
                    else "each numerator redrawn around the observed rate"
                )
                + ", with scores, averages, cut points, override, segments and ranks recomputed in every one; "
                f"{100 * u.level:g}% intervals. Figures reported as a single value are held fixed."
            ]
            if u.method == "parametric_data"
            else []
        ),
        f"NHS England's likely ranges: a {100 * b.level:g}% percentile bootstrap ({b.replicates:,} replicates, seed "
        f"{b.seed}) of each trust's own metric scores, with segments, override and ranks recomputed in every "
        "replicate. They show how uneven a trust's scores are, not the play of chance.",
        funnel_method_text(f),
        f"Demographic peers: the {methodology.peers.k} most similar trusts"
        f"{' of the same type' if methodology.peers.within_type else ''} by catchment demographics (the "
        "“Similar 10” method of NHS RightCare).",
        f"Productivity opportunity: the gap to the upper quartile of the "
        f"{'trust type' if methodology.productivity.comparator == 'type' else 'demographic peers'} × activity × unit "
        f"cost, × {methodology.productivity.annualise} for a year.",
    ]
    return pages.section(
        "methodology_summary", {"items": items, "methodology": methodology, "catalogue": catalogue, "link": link}
    )


GLOSSARY = (
    (
        "Segment",
        "NHS England's grouping of trusts from 1 (highest performing) to 4 (most challenged), from the "
        "average metric score within each trust type; 5 is the Provider Improvement Programme.",
    ),
    ("Average metric score", "The mean of a trust's metric scores, each from 1.00 (best) to 4.00 (worst)."),
    (
        "Rank interval",
        "The range of ranks within which a trust's true rank lies with 95% probability, allowing for "
        "the play of chance in its counted metrics; the median rank is its middle.",
    ),
    (
        "NHS England likely range",
        "NHS England's range of rank or average score from resampling a trust's own "
        "metric scores: it shows how uneven the trust's scores are, not the play of "
        "chance.",
    ),
    (
        "Funnel plot",
        "A chart of each trust's value against its size, with limits showing the spread expected from "
        "chance and the usual differences between trusts; trusts outside the limits are 'better' or "
        "'worse than expected' — a prompt for a question, not a verdict on the quality of care.",
    ),
    (
        "Observed / expected",
        "A trust's events divided by the number expected for the population it serves, from "
        "the demographic model; 1 is what a trust of average quality would have with the "
        "same population.",
    ),
    (
        "Demographic peers",
        "The trusts of the same type whose catchment populations are most alike (ten by default: "
        "the “Similar 10” method).",
    ),
    (
        "Productivity opportunity",
        "The resource a trust would release by reaching the best-quartile level of its "
        "comparators on an efficiency metric, valued at a unit cost.",
    ),
)


def about_html(catalogue: Catalogue, trusts: pd.DataFrame, source: str, metric_ids: Sequence[str] = ()) -> str:
    used = [m for m in catalogue.metrics if not metric_ids or m.id in metric_ids]
    n = trusts["trust_type"].value_counts()
    cov = ", ".join(f"{int(n.get(t, 0))} {TRUST_TYPE_PLURAL[t].lower()}" for t in TRUST_TYPES if n.get(t, 0))
    return pages.section(
        "about",
        {
            "coverage": cov,
            "n_metrics": _plural(len(used), "metric"),
            "sources": sorted({m.source for m in used}),
            "glossary": GLOSSARY,
            "status": SOURCE_LABELS.get(source, SOURCE_LABELS["files"])[1],
        },
    )


def provenance_html(run: dict, git: dict, inputs: dict[str, str] | None = None) -> Markup:
    """The provenance footer: code and methodology versions and the run's parameters; never a wall-clock time."""
    sha = git.get("sha", "unknown")
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    metrics = run.get("metric_ids", [])
    rows = [
        ("Code", f"leaguetables {run.get('code_version', '')}, git {str(sha)[:12]}{dirty}"),
        (
            "Methodology",
            f"{run['methodology']} version {run['methodology_version']}; catalogue {run['catalogue']} "
            f"version {run['catalogue_version']}",
        ),
        (
            "Run parameters",
            f"quarter {run['quarter']}, source {run['source']}, {_plural(len(metrics), 'metric')} "
            f"({', '.join(metrics)})",
        ),
    ]
    if inputs:
        rows.append(("Inputs (SHA-256)", "; ".join(f"{k} {v[:12]}" for k, v in sorted(inputs.items()))))
    rows.append(("Run details", "file checksums, package versions and run times are in manifest.json"))
    return pages.section("provenance", {"rows": rows})


def input_checksums(inputs) -> dict[str, str]:
    from leaguetables.config import file_sha256

    files = getattr(inputs, "files", None) or {}
    return {Path(p).name: file_sha256(Path(p)) for p in files.values() if Path(p).exists()}


class Column(NamedTuple):
    """A column of a data table (``templates/pages/macros.html.j2``, macro ``table``): its header text, and
    whether it is numeric (right-aligned, ``data-type="number"``), kept on one line, the trust-name column, a
    visually hidden suffix of the header for screen readers, and extra CSS classes."""

    label: str
    num: bool = False
    nowrap: bool = False
    name: bool = False
    hint: str = ""
    cls: str = ""
    kind: str = ""  # "number" or "text": how the table script sorts it (default: number when numeric)


class Cell(NamedTuple):
    """A table cell that is more than text: a link (``href``), a second line (``note``, e.g. the trust code) or a
    sort key (``sort``, written as ``data-sort`` for cells whose text does not sort as it reads)."""

    text: str
    href: str | None = None
    note: str | None = None
    sort: float | str | None = None


class Row(NamedTuple):
    """A body row: its cells and the ``data-`` attributes the table script filters on (region, segment, …)."""

    cells: list
    data: dict = {}
    id: str | None = None


@dataclass
class Table:
    """A data table as plain values; rendered by the ``table`` macro (class ``lt-table``)."""

    id: str
    caption: str
    columns: list[Column]
    rows: list
    row_header: int | None = None
    cls: str | None = None
    attrs: dict = field(default_factory=dict)  # attributes of <table>: data-filters, data-noun, data-label


def frame_table(
    df: pd.DataFrame,
    caption: str,
    table_id: str,
    numeric: Iterable[str] = (),
    row_header: str | None = None,
    nowrap: Iterable[str] = (),
    hints: dict[str, str] | None = None,
    name_column: str | None = None,
    classes: dict[str, str] | None = None,
    row_data: Sequence[dict] | None = None,
) -> Table:
    """A :class:`Table` from a data frame: one column per frame column, missing values as empty cells; cells may
    be :class:`Cell` values (links). ``row_data`` gives each row's ``data-`` attributes."""
    numeric, nowrap, hints, classes = set(numeric), set(nowrap), hints or {}, classes or {}
    cols = [
        Column(str(c), c in numeric, c in nowrap, c == name_column, hints.get(c, ""), classes.get(c, ""))
        for c in df.columns
    ]
    rows = []
    for i, r in enumerate(df.itertuples(index=False)):
        cells = ["" if not isinstance(v, Cell) and _missing(v) else v if isinstance(v, Cell) else str(v) for v in r]
        rows.append(Row(cells, row_data[i]) if row_data is not None else cells)
    header = list(df.columns).index(row_header) if row_header is not None else None
    return Table(table_id, caption, cols, rows, header)


def numbers_table(df: pd.DataFrame, caption: str, table_id: str, row_header: str) -> Table:
    """A :func:`frame_table` whose ``row_header`` column names the rows and whose every other column is numeric."""
    return frame_table(df, caption, table_id, numeric=[c for c in df.columns if c != row_header], row_header=row_header)


def trust_link(code: str, name: str, root: str = "", mark: str = "", note: str | None = None) -> Cell:
    """A trust's name linking to its profile (``root`` is the path from the page to the release root)."""
    return Cell(f"{name}{mark}", f"{root}{profile_href(code)}", note)


def row_filters(trusts: pd.DataFrame, table: pd.DataFrame | None = None) -> dict[str, dict]:
    """The ``data-`` attributes of a trust's row (trust code → {code, type, region, subtype[, icb], segment}), in
    words ("Acute trust", "Segment 2"): what the table script filters on and shows as the filters' options."""
    info = {}
    seg = {} if table is None else dict(zip(table["trust_code"], table["segment"]))
    for r in trusts.itertuples(index=False):
        d = {
            "code": str(r.trust_code),
            "type": TRUST_TYPE_LABELS.get(r.trust_type, str(r.trust_type)),
            "region": str(r.region),
            "subtype": "" if _missing(getattr(r, "trust_subtype", None)) else str(r.trust_subtype),
        }
        for g in GROUPINGS:
            if g.key not in d and g.column in trusts.columns and not _missing(getattr(r, g.column)):
                d[g.key] = str(getattr(r, g.column))
        s: Any = seg.get(r.trust_code)
        d["segment"] = "Not segmented" if _missing(s) else f"Segment {int(s)}"
        info[str(r.trust_code)] = d
    return info


def figure_svg(svg: str) -> Markup:
    """Matplotlib's SVG without its XML declaration and doctype, to be placed inline (it carries its own
    ``<title>``/``<desc>``; see :mod:`leaguetables.publication.figures`). Trusted: written by the project's code."""
    svg = re.sub(r"<\?xml[^>]*>\s*", "", svg)
    return Markup(re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg))


def download_links(spreadsheet: str | None = None) -> list[tuple[str, str, str]]:
    """(href, title, description) of the methodology page and the downloadable tables of the release."""
    links = [(METHODOLOGY_PAGE, "Methodology", "HTML page: every metric, model and rule of this release")]
    if spreadsheet:
        links.append(
            (
                f"tables/{spreadsheet}",
                "League tables spreadsheet",
                "ODS, accessible: cover, contents, notes and one table per sheet",
            )
        )
    links += [
        ("tables/league_table.csv", "League table", "CSV, NHS England's layout"),
        ("tables/nof_data_long.csv", "Metric values and scores", "CSV, NHS England's long layout"),
        ("tables/productivity.csv", "Productivity opportunity", "CSV, one row per trust and metric"),
        (
            "tables/spc.csv",
            "Statistical process control",
            "CSV, one row per trust and metric: process limits, rules triggered, variation and assurance",
        ),
    ]
    return links


def key_finding_sentences(
    table: pd.DataFrame,
    sensitivity_summary: dict,
    funnel_counts: pd.DataFrame,
    movement: pd.DataFrame | None = None,
    previous: str | None = None,
    productivity: pd.DataFrame | None = None,
    comparator: str = "type",
    level: float = 0.95,
    *,
    funnel_level: float = 0.95,
    spc_counts: dict | None = None,
    override: tuple[tuple[int, ...], int] = ((1, 2), 3),
) -> list[str]:
    """Sentences with numbers, computed from the league table, movement, sensitivity, funnels, productivity and SPC.

    ``funnel_counts`` has ``metric_id, n_worse, n_better`` and, for the number expected by chance, ``n_tested``
    (trust-metric results banded at ``funnel_level``); ``level`` is the level of the rank intervals; ``override``
    is the methodology's financial override: (from_segments, to_segment)."""
    items = []
    n = len(table)
    if n:
        s1 = int((table["segment"] == 1).sum())
        s45 = int((table["segment"] >= 4).sum())
        per_type = "; ".join(
            f"{int((g['segment'] == 1).sum())} of {len(g)} {TRUST_TYPE_PLURAL[t].lower()}"
            for t in TRUST_TYPES
            if len(g := table[table["trust_type"] == t])
        )
        noun = "organisations" if table["trust_type"].isin(ICB_TYPES).any() else "trusts"
        items.append(
            f"Of {n:,} {noun}, {s1:,} {'is' if s1 == 1 else 'are'} in segment 1 ({per_type}) and "
            f"{s45:,} in segment 4 or 5. " + segmentation_sentence(table)
        )
        ov = table[table["financial_override"].astype(bool)]
        if len(ov):
            items.append(
                f"The financial override moved {_plural(len(ov), 'trust')} in deficit or receiving "
                f"deficit support from segment {' or '.join(str(x) for x in override[0])} to segment "
                f"{override[1]}."
            )
    if movement is not None and len(movement) and previous:
        items.append(movement_summary(movement, previous, level))
    if n and "rank_interval_lower" in table.columns:
        wide = table[(table["rank_interval_upper"] - table["rank_interval_lower"]) >= 0.25 * table["rank_of"]]
        sure = table[table[[f"p_segment_{k}" for k in range(1, 5)]].max(axis=1) >= 0.9]
        items.append(
            f"Allowing for the play of chance in the data, the {_level(table)} rank interval spans at least a "
            f"quarter of the table for {len(wide):,} of {n:,} trusts, and {len(sure):,} of {n:,} trusts "
            "are in their segment with a probability of 90% or more: small differences in rank are not "
            "meaningful."
        )
    elif n:
        wide = table[(table["rank_upper"] - table["rank_lower"]) >= 0.25 * table["rank_of"]]
        items.append(
            f"NHS England's likely range of rank spans at least a quarter of the table for {len(wide):,} of "
            f"{n:,} trusts; it describes how uneven a trust's metric scores are, not the play of chance."
        )
    if sensitivity_summary:
        changed = sum(v.get("segment_changed", 0) for v in sensitivity_summary.values())
        items.append(
            f"Adjusting for the demographics of the populations served would change the segment of "
            f"{_plural(changed, 'trust')}."
        )
    if not funnel_counts.empty:
        items.append(funnel_finding(funnel_counts, funnel_level))
    if productivity is not None and not productivity.empty:
        total = productivity["opportunity_annual"].sum()
        k = productivity["metric_id"].nunique()
        who = (
            "the best quarter of trusts of their type"
            if comparator == "type"
            else "the best quarter of their demographic peers"
        )
        items.append(
            f"If every trust matched {who} on {_plural(k, 'efficiency metric')}, resources worth about "
            f"{money(total)} a year would be released (the quarter's opportunity × 4)."
        )
    if spc_counts and spc_counts.get("assessed"):
        a, imp, con = spc_counts["assessed"], spc_counts["improvement"], spc_counts["concern"]
        items.append(
            f"Statistical process control (XmR charts, Making Data Count rules) on every trust profile: "
            f"in {imp + con:,} of the {a:,} trust-metric series with enough quarters, the latest quarter "
            f"shows special cause variation ({imp:,} improvement, {con:,} concern). With this many series "
            f"some are expected by chance: a stable process marks its latest quarter about 1% of the time "
            f"(about {round(0.01 * a):,} here), and rules fire somewhere in a series far more often, so a "
            "special cause is a prompt to look, not proof."
        )
    return items


def _range_cell(a, b, decimals: int = 0) -> Cell | str:
    """ "a to b", sorted by its lower end."""
    return "[x]" if pd.isna(a) or pd.isna(b) else Cell(f"{a:.{decimals}f} to {b:.{decimals}f}", sort=float(a))


def movement_sort(r) -> float | None:
    """Sort key of a movement cell: the change of rank (negative is up, better)."""
    return None if _missing(getattr(r, "previous_rank", None)) else float(r.rank_change)


def _league_columns(g: pd.DataFrame, mark, names: list) -> dict:
    calibrated = "rank_interval_lower" in g.columns
    probs = {f"P({s})": mark(f"P(segment {s})", g[f"p_segment_{s}"].map(_pct)) for s in range(1, 5)}
    cols = {
        "Rank": mark("Rank", g["rank_label"].astype(str)),
        "Trust": names,
        "Segment": mark("Segment", ["[x]" if pd.isna(v) else str(int(v)) for v in g["segment"]]),
        "Average score": mark("Average score", g["average_score"].map(lambda v: fmt(v, 2))),
    }
    if calibrated:
        cols["Rank interval"] = mark(
            "Rank interval", [_range_cell(a, b) for a, b in zip(g["rank_interval_lower"], g["rank_interval_upper"])]
        )
        cols["Median rank"] = mark("Rank interval", ["[x]" if pd.isna(m) else f"{m:.0f}" for m in g["rank_median"]])
        cols.update(probs)
    cols[NHSE_RANK_RANGE] = mark(NHSE_RANK_RANGE, [_range_cell(a, b) for a, b in zip(g["rank_lower"], g["rank_upper"])])
    cols[NHSE_AVERAGE_RANGE] = mark(
        NHSE_AVERAGE_RANGE, [_range_cell(a, b, 2) for a, b in zip(g["average_lower"], g["average_upper"])]
    )
    if not calibrated:
        cols.update(probs)
    deficit = g["in_financial_deficit"] if "in_financial_deficit" in g else g["financial_override"]
    cols["Financial override"] = mark(
        "Financial override",
        [
            "[x]" if "in_financial_deficit" in g and _missing(d) else "Yes" if bool(o) else "No"
            for o, d in zip(g["financial_override"], deficit)
        ],
    )
    return cols


def league_table_context(
    table: pd.DataFrame,
    trust_type: str,
    profile_links: bool = True,
    movement: pd.DataFrame | None = None,
    previous: str | None = None,
    revised: set | None = None,
    filters: dict[str, dict] | None = None,
) -> dict | None:
    """A type's league table: the calibrated figures (rank interval, median rank, P(segment)) first, then NHS
    England's likely ranges, labelled as such, then the financial override and the movement. ``filters`` gives
    each trust's row its ``data-`` attributes (:func:`row_filters`)."""
    g = table[table["trust_type"] == trust_type].sort_values(["rank", "trust_code"], kind="mergesort")
    if g.empty:
        return None
    revised = revised or set()
    codes = g["trust_code"].astype(str).to_list()

    def mark(col, values):
        out = []
        for c, v in zip(codes, values):
            r = REVISED if (c, col) in revised else ""
            out.append(v._replace(text=v.text + r) if isinstance(v, Cell) else f"{v}{r}")
        return out

    names = [
        Cell(n + (REVISED if (c, "Trust") in revised else ""), profile_href(c) if profile_links else None, c)
        for c, n in zip(codes, g["trust_name"])
    ]
    calibrated = "rank_interval_lower" in g.columns
    df = pd.DataFrame(_league_columns(g, mark, names))
    move_col = None
    if movement is not None and not movement.empty:
        mv = {r.trust_code: Cell(movement_text(r), sort=movement_sort(r)) for r in movement.itertuples(index=False)}
        move_col = f"Movement since {quarter_label(previous)}" if previous else "Movement"
        df[move_col] = [mv.get(c, "not in last quarter's table") for c in codes]
    plural = TRUST_TYPE_PLURAL[trust_type]
    anchor = f"league-{slug(trust_type)}"
    probs = [f"P({s})" for s in range(1, 5)]
    what = (
        f"rank interval and P(1) to P(4) allow for the play of chance in the data ({_level(g)} interval; "
        "probability of each segment); NHS England's likely ranges describe how uneven a trust's metric scores "
        "are, not chance"
        if calibrated
        else "P(1) to P(4): share of NHS England-style bootstrap replicates in each segment"
    )
    filters = filters or {}
    tab = frame_table(
        df,
        f"League table: {plural.lower()}, ranked by segment then average score (lower is better); {what}",
        f"table-{anchor}",
        numeric=["Segment", "Average score", *probs] + (["Median rank"] if calibrated else []),
        nowrap=["Rank", "Rank interval", NHSE_RANK_RANGE, *probs],
        hints={p: f": probability of segment {p[2]}" for p in probs},
        name_column="Trust",
        classes={move_col: "movement"} if move_col else None,
        row_data=[filters.get(c, {"code": c}) for c in codes],
    )
    tab.columns = [c._replace(kind="number") if c.label == move_col else c for c in tab.columns]
    tab.attrs = {
        "data-filters": FILTERS
        + "".join(f" {g.key}" for g in GROUPINGS[1:] if any(g.key in filters.get(c, {}) for c in codes)),
        "data-noun": "trust|trusts",
        "data-label": plural,
    }
    return {"anchor": anchor, "plural": plural, "table": tab}


def league_intro_context(
    previous: str | None, has_movement: bool, calibrated: bool = True, level: float = 0.95, shrinkage: bool = True
) -> dict:
    return {
        "previous_label": quarter_label(previous) if previous else None,
        "has_movement": has_movement,
        "calibrated": calibrated,
        "level_pct": f"{100 * level:g}%",
        "shrinkage": shrinkage,
        "alpha": f"{1 - level:g}",
        "one_in": f"{1 / (1 - level):.0f}",
    }


def metric_page_file(metric_id: str) -> str:
    """File name of a metric's page under ``metrics/``: the id when it is a safe file name, else a slug of it."""
    mid = str(metric_id)
    return f"{mid}.html" if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", mid) else f"{slug(mid) or 'metric'}.html"


def metric_href(metric_id: str, root: str = "") -> str:
    """Relative link to a metric's page from a page at ``root`` of the release (``""`` or ``"../"``)."""
    return f"{root}{METRICS_DIR}/{metric_page_file(metric_id)}"


def _funnel_data_table(metric: Metric, ok: pd.DataFrame, ttype: str, names: dict[str, str], root: str) -> Table:
    value_col = f"Value ({metric.unit})"
    tab = pd.DataFrame(
        {
            "Trust": [trust_link(c, names.get(c, c), root) for c in ok["trust_code"]],
            "Code": ok["trust_code"].to_numpy(),
            value_col: ok["value"].map(lambda v: fmt(v, metric.decimals)).to_numpy(),
            "95% CI": [
                f"{fmt(a, metric.decimals)} to {fmt(b, metric.decimals)}" for a, b in zip(ok["lower"], ok["upper"])
            ],
            "Observed / expected": ok["oe"].map(lambda v: "[z]" if pd.isna(v) else f"{v:.3f}").to_numpy(),
            "Band": ok["funnel_outcome"].fillna("[x]").to_numpy(),
        }
    )
    return frame_table(
        tab,
        f"{metric.name}: {TRUST_TYPE_PLURAL[ttype].lower()}",
        f"data-{metric.id}-{slug(ttype)}",
        numeric=[value_col, "Observed / expected"],
        name_column="Trust",
    )


def metric_context(
    metric: Metric,
    data: dict,
    figures: dict[str, tuple[str, str]],
    names: dict[str, str] | None = None,
    root: str = "../",
) -> dict:
    """One metric's page: definition, national figures, funnel plots with their data tables, model summary."""
    names = names or {}
    t = data["table"]
    facts = [f"{'higher' if metric.direction == 'higher_better' else 'lower'} is better"]
    if metric.scoring.standard is not None:
        facts.append(f"standard {metric.scoring.standard:g}")
    if metric.scoring.floor is not None:
        facts.append(f"floor {metric.scoring.floor:g}")
    if metric.scoring.method == "none":
        facts.append("not scored (context for the productivity opportunity)")
    value_only = None
    if not metric.funnel and metric.statistic in ("value", "bracket"):
        value_only = (
            "Published as a value only (no numerator or denominator): no confidence interval and no funnel plot."
            if metric.statistic == "value"
            else "Published as a category or score only: no confidence interval and no funnel plot."
        )
    types = []
    for ttype in metric.trust_types:
        g = t[t["trust_type"] == ttype]
        if g.empty:
            continue
        ok = g[g["status"] == "ok"]
        tv = g["type_value"].dropna()
        unit = metric.unit if metric.unit == "%" else f" {metric.unit}"
        summary = (
            f"{TRUST_TYPE_PLURAL[ttype]}: {len(ok)} of {len(g)} trusts reported"
            + (
                f"; the figure for all of them together is {fmt(tv.iloc[0], metric.decimals)}{unit}"
                if len(tv) and metric.statistic != "bracket"
                else ""
            )
            + "."
        )
        fig = figures.get(ttype)
        types.append(
            {
                "type": ttype,
                "plural": TRUST_TYPE_PLURAL[ttype],
                "summary": summary,
                "figure_id": f"fig-{metric.id}-{slug(ttype)}",
                "svg": figure_svg(fig[0]) if fig else None,
                "caption": fig[1] if fig else "",
                "flags": funnel_flag_sentence(data.get("funnel_summary"), ttype, metric.direction),
                "data_table": _funnel_data_table(metric, ok, ttype, names, root)
                if metric.funnel and ok["funnel_band"].notna().any()
                else None,
            }
        )
    return {
        "metric": metric,
        "facts": "; ".join(facts),
        "value_only": value_only,
        "types": types,
        "models": model_context(metric, data),
        "methodology_href": f"{root}{METHODOLOGY_PAGE}#metric-{metric.id}",
        "model_errors": [
            (TRUST_TYPE_PLURAL[tt].lower(), err) for tt, err in sorted(data.get("model_errors", {}).items())
        ],
    }


def model_context(metric: Metric, data: dict) -> list[dict]:
    """The demographic model of each trust type: family, fit and the coefficient table."""
    ms = data.get("model_summary")
    if ms is None or ms.empty:
        return []
    coefs = data["coefficients"]
    out = []
    for _, r in ms.iterrows():
        ttype = r["trust_type"]
        c = coefs[coefs["trust_type"] == ttype]
        out.append(
            {
                "text": f"{TRUST_TYPE_PLURAL[ttype]}: {r['family']} model on {int(r['n_trusts'])} trusts; "
                f"deviance explained {fmt(100 * r['deviance_explained'], 1)}%; dispersion (Pearson "
                f"χ²/df) {fmt(r['dispersion'], 2)}.",
                "table": None
                if c.empty
                else frame_table(
                    coefficient_frame(c),
                    f"{metric.name}: model coefficients "
                    f"({TRUST_TYPE_PLURAL[ttype].lower()}); odds or rate ratio per standard deviation of each "
                    "covariate",
                    f"model-{metric.id}-{slug(ttype)}",
                    numeric=["Ratio per SD", "p-value"],
                ),
            }
        )
    return out


def metric_list_table(metrics: Sequence[Metric], funnel_counts: pd.DataFrame, root: str = "") -> Table:
    """The front page's list of metrics, each linking to its page, with its funnel flags."""
    counts = funnel_counts.set_index("metric_id").to_dict("index") if len(funnel_counts) else {}
    rows = []
    for m in metrics:
        c = counts.get(m.id)
        rows.append(
            {
                "Metric": Cell(m.name, metric_href(m.id, root), m.unit),
                "Domain": m.domain,
                "Trust types": ", ".join(TRUST_TYPE_PLURAL[t] for t in m.trust_types),
                "Worse than expected": "[z]" if c is None else f"{c['n_worse']:,}",
                "Better than expected": "[z]" if c is None else f"{c['n_better']:,}",
                "Trusts tested": "[z]" if c is None else f"{c['n_tested']:,}",
            }
        )
    df = pd.DataFrame(
        rows,
        columns=["Metric", "Domain", "Trust types", "Worse than expected", "Better than expected", "Trusts tested"],
    )
    return frame_table(
        df,
        "Metrics of this release, with the number of trusts outside their funnel-plot limits ([z]: no funnel plot)",
        "metric-list",
        numeric=["Worse than expected", "Better than expected", "Trusts tested"],
        row_header="Metric",
    )


def _productivity_tables(opp: pd.DataFrame, catalogue: Catalogue, top: int) -> tuple[Table, Table]:
    summ = productivity_stats.england_summary(opp, {m.id: i for i, m in enumerate(catalogue.metrics)})
    total = productivity_stats.england_total(opp)
    rows = []
    for r in summ.itertuples(index=False):
        m = catalogue.metric(r.metric_id)
        uc = m.unit_cost
        assert uc is not None, "a metric with a productivity opportunity has a unit cost"
        rows.append(
            {
                "Metric": Cell(m.name, metric_href(m.id)),
                "Trusts compared": f"{r.trusts:,}",
                "Trusts with an opportunity": f"{r.trusts_with_opportunity:,}",
                "Resource released a year": fmt(r.resource_annual, 0),
                "Priced at": f"£{uc.amount:,.0f} per {uc.unit}",
                "Opportunity a year": Cell(money(r.opportunity_annual), sort=float(r.opportunity_annual)),
            }
        )
    rows.append(
        {
            "Metric": "All these metrics (an upper bound: they overlap)",
            "Trusts compared": "",
            "Trusts with an opportunity": f"{total['trusts_with_opportunity']:,}",
            "Resource released a year": "[z]",
            "Priced at": "[z]",
            "Opportunity a year": money(total["opportunity_annual"]),
        }
    )
    england = frame_table(
        pd.DataFrame(rows),
        "Productivity opportunity in England, by metric (a year; the resource is counted in the units it is priced at)",
        "productivity-england",
        numeric=["Trusts compared", "Trusts with an opportunity", "Resource released a year", "Opportunity a year"],
        row_header="Metric",
    )
    tt = productivity_stats.trust_totals(opp).head(top)
    tab = pd.DataFrame(
        {
            "Position": [str(i + 1) for i in range(len(tt))],
            "Trust": [trust_link(c, n) for c, n in zip(tt["trust_code"], tt["trust_name"])],
            "Type": tt["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
            "Metrics with an opportunity": tt["metrics"].astype(int).to_numpy(),
            "Opportunity a year": [Cell(money(v), sort=float(v)) for v in tt["opportunity_annual"]],
        }
    )
    top_table = frame_table(
        tab,
        f"The {len(tt)} trusts with the largest productivity opportunity (a year, all costed metrics)",
        "productivity-top",
        numeric=["Position", "Metrics with an opportunity", "Opportunity a year"],
    )
    return england, top_table


class ReportData:
    """Everything the published pages show: the report notebook's parameters loaded once (:meth:`load`)."""

    def __init__(
        self, out_dir, inputs, methodology, catalogue, quarter, run, league, movement, metric_data, revisions=None
    ):
        self.out_dir = out_dir
        self.work_dir: Path | None = None  # the run's working folder: the figures the metric pages show (documents)
        self.inputs, self.methodology, self.catalogue, self.quarter = inputs, methodology, catalogue, quarter
        self.run, self.league, self.movement, self.metric_data = run, league, movement, metric_data
        self.previous = previous_quarter(quarter)
        self.revisions = revisions
        self.revised_league, self.revised_metrics = revised_marks(self.revisions)
        self._productivity = None
        self._spc = None
        #: every trust profile's SPC section by trust code (:func:`leaguetables.publication.profiles.spc_contexts`),
        #: when made before the league was read (the pipeline does, while the league notebook runs)
        self.profile_spc: dict[str, dict] | None = None
        #: the trust profiles' index of what the league does not change (:class:`~leaguetables.publication.profiles.
        #: ProfileIndex`), when made before the league was read (the pipeline does, while the league notebook runs)
        self.profile_index: Any = None
        #: each metric's productivity opportunity and SPC kept between runs by content (a
        #: :class:`~leaguetables.publication.derived_cache.DerivedCache`; the notebook's parameter ``report_cache``)
        self.cache: Any = None

    @classmethod
    def load(
        cls,
        out_dir,
        inputs,
        methodology,
        catalogue,
        quarter,
        run: str,
        league: str,
        metric_results: str,
        revisions: str = "",
        metric_data: dict | None = None,
        cache: str = "",
    ) -> ReportData:
        """The report notebook's data from its parameters: ``run`` (the run's description, JSON), ``league`` (the
        league notebook's bundle) and ``metric_results`` (the metric notebooks' bundles, comma-separated), files in
        the store named by their SHA-256 (checked), and ``revisions`` (``tables/revisions.csv`` kept in the store,
        or empty). ``metric_data``: what :func:`~leaguetables.nof.league.read_metric_results` already read from
        ``metric_results`` (the pipeline reads it while the league notebook runs), not read again. ``cache``: the
        folder of :mod:`~leaguetables.publication.derived_cache` (empty: productivity and SPC computed here)."""
        description = load_run(run)
        description["code_version"] = __version__
        lg, movement = read_league(league)
        data = cls(
            out_dir,
            inputs,
            methodology,
            catalogue,
            quarter,
            description,
            lg,
            movement,
            read_metric_results(metric_results) if metric_data is None else metric_data,
            load_revisions(revisions),
        )
        data.cache = derived_cache.open_cache(cache)
        return data

    def reuse(self, other: ReportData) -> None:
        """Take the productivity opportunity, SPC, the profiles' SPC sections and their index ``other`` computed from
        the same metric results (the pipeline computes them while the league notebook runs: they do not depend on
        the league)."""
        self._productivity, self._spc = other._productivity, other._spc
        self.profile_spc = other.profile_spc
        self.profile_index = other.profile_index

    @cached_property
    def provenance(self) -> Markup:
        """The provenance every page's footer shows (:func:`provenance_html`: the run, the git state of the code, the
        checksums of the input files), read once for all the pages of a release: the git state is three ``git``
        processes and the checksums read every input file, and the pages of one release show the same."""
        return provenance_html(self.run, git_state(), input_checksums(self.inputs))

    @cached_property
    def search_data(self) -> str:
        """The search box's list of trusts (JSON, :func:`leaguetables.publication.finder.search_json`): the same
        bytes on every page of the release (template variable ``search_data``)."""
        return search_json(self.league.table, self.inputs.trusts, profile_href)

    @property
    def metrics_run(self) -> list[Metric]:
        return [m for m in self.catalogue.metrics if m.id in self.metric_data]

    @property
    def names(self) -> dict[str, str]:
        return dict(zip(self.inputs.trusts["trust_code"], self.inputs.trusts["trust_name"]))

    @property
    def spreadsheet_name(self) -> str:
        return f"league_tables_{self.quarter}.ods"

    @property
    def productivity(self) -> pd.DataFrame:
        if self._productivity is None:
            from leaguetables.statistics.productivity import opportunities

            self._productivity = opportunities(
                {k: v["table"] for k, v in self.metric_data.items()},
                self.catalogue,
                self.methodology,
                self.inputs.trusts,
                self.inputs.demographics,
                observations=self.inputs.observations,
                quarters=self.inputs.quarters(),
                memo=None if self.cache is None else self.cache.productivity_memo(self),
            )
        return self._productivity

    @property
    def spc(self) -> tuple[dict, list[str]]:
        """Statistical process control of every trust and metric (:func:`leaguetables.statistics.spc.run_spc`):
        ``({metric_id: {trust_code: SPCResult}}, quarters)``."""
        if self._spc is None:
            from leaguetables.statistics.spc import run_spc

            settings = self.methodology.spc
            memo = None if self.cache is None else self.cache.spc_memo(settings)
            self._spc = run_spc(self.metric_data, self.metrics_run, settings, memo)
        return self._spc

    def spc_table(self) -> pd.DataFrame:
        from leaguetables.statistics.spc import spc_table

        results, quarters = self.spc
        return spc_table(results, self.catalogue, self.inputs.trusts, self.quarter, quarters)

    def _spc_counts(self) -> dict:
        from leaguetables.statistics.spc import summary

        return summary(self.spc[0])

    def write_tables(self, folder: Path | None = None) -> list[str]:
        """Tables computed for the report: the productivity opportunity (tables/productivity.csv) and statistical
        process control of every trust and metric (tables/spc.csv), under ``folder`` (default ``out_dir``)."""
        from leaguetables.csv_output import write_csv

        folder = Path(self.out_dir) if folder is None else Path(folder)
        write_csv(self.productivity, folder / "tables" / "productivity.csv")
        write_csv(self.spc_table(), folder / "tables" / "spc.csv")
        return ["tables/productivity.csv", "tables/spc.csv"]

    def _funnel_counts(self) -> pd.DataFrame:
        rows = []
        for mid, d in sorted(self.metric_data.items()):
            t = d["table"]
            if t["funnel_outcome"].notna().any():
                rows.append(
                    {
                        "metric_id": mid,
                        "n_worse": int((t["funnel_outcome"] == "worse than expected").sum()),
                        "n_better": int((t["funnel_outcome"] == "better than expected").sum()),
                        "n_tested": int(t["funnel_outcome"].notna().sum()),
                    }
                )
        return pd.DataFrame(rows, columns=["metric_id", "n_worse", "n_better", "n_tested"])

    @property
    def filters(self) -> dict[str, dict]:
        """Each trust's ``data-`` attributes for the tables (:func:`row_filters`)."""
        return row_filters(self.inputs.trusts, self.league.table)

    def areas(self) -> list[dict]:
        """The "where you live" pages of the release: for each grouping the register has (:data:`GROUPINGS`), its
        label and the (name, href, number of trusts) of every area, in alphabetical order."""
        out = []
        listed = self.inputs.trusts[self.inputs.trusts["trust_code"].isin(set(self.league.table["trust_code"]))]
        for g in active_groupings(listed):  # the organisations with a profile (site._listed)
            counts = listed[g.column].dropna().astype(str).value_counts()
            out.append({"grouping": g, "areas": [(a, area_href(g, a), int(counts[a])) for a in sorted(counts.index)]})
        return out

    def header(self) -> str:
        """Title, period, statistics label and notice: the first screen shows them with the key findings."""
        return title_block(
            self.quarter, self.run["source"], self.methodology, self.catalogue, self.run.get("omitted_metrics") or ()
        )

    def key_findings(self) -> str:
        """Key findings, then where to find a trust, the contents and the downloads."""
        contents = [
            ("key-findings", "Key findings"),
            ("find", "Find a trust or area"),
            ("downloads", "Downloads and related pages"),
            ("segments", "Segments by trust type"),
            ("league-tables", "League tables"),
            ("sensitivity", "What demographic adjustment changes"),
            ("productivity", "Productivity opportunity"),
            ("metrics", "Metrics"),
            ("about", "About these statistics"),
            ("methodology", "Methodology summary"),
            ("data-quality", "Data quality"),
            ("revisions", "Revisions"),
            ("provenance", "Provenance"),
        ]
        items = key_finding_sentences(
            self.league.table,
            self.league.sensitivity_summary,
            self._funnel_counts(),
            self.movement,
            self.previous,
            self.productivity,
            self.methodology.productivity.comparator,
            self.methodology.uncertainty.level,
            funnel_level=self.methodology.funnel.band_level,
            spc_counts=self._spc_counts(),
            override=(
                tuple(self.methodology.financial_override.from_segments),
                self.methodology.financial_override.to_segment,
            ),
        )
        return pages.section(
            "front_links",
            {
                "items": items,
                "contents": contents,
                "areas": self.areas(),
                "trust_index": TRUST_INDEX,
                "downloads": download_links(self.spreadsheet_name),
            },
        )

    def segments(self) -> str:
        return segment_distribution(self.league.table)

    def league_tables(self) -> str:
        has_move = self.movement is not None and not self.movement.empty
        u = self.methodology.uncertainty
        filters = self.filters
        tables = [
            league_table_context(
                self.league.table,
                t,
                profile_links=True,
                movement=self.movement if has_move else None,
                previous=self.previous,
                revised=self.revised_league,
                filters=filters,
            )
            for t in TRUST_TYPES
        ]
        return pages.section(
            "league_tables",
            {
                "intro": league_intro_context(
                    self.previous, has_move, "rank_interval_lower" in self.league.table.columns, u.level, u.shrinkage
                ),
                "tables": [t for t in tables if t],
            },
        )

    def sensitivity(self) -> str:
        return sensitivity_html(self.league.sensitivity, self.league.sensitivity_summary)

    def productivity_section(self) -> str:
        return productivity_html(self.productivity, self.catalogue, self.methodology, source=self.run["source"])

    def metrics(self) -> str:
        """The list of metrics, each linking to its page (``metrics/<id>.html``: funnel plots and data tables)."""
        return pages.section("metrics", {"table": metric_list_table(self.metrics_run, self._funnel_counts())})

    def metric_page(self, metric: Metric, root: str = "../") -> dict:
        """The context of one metric's page (:func:`metric_context`), its figures read from the working folder."""
        return metric_context(
            metric, self.metric_data[metric.id], load_saved(self.work_dir, metric.id), self.names, root
        )

    def about(self) -> str:
        return about_html(self.catalogue, self.inputs.trusts, self.run["source"], self.run.get("metric_ids", ()))

    def methodology_summary(self) -> str:
        return methodology_summary_html(self.methodology, self.catalogue)

    def data_quality(self) -> str:
        return data_quality_html(
            self.league.results, self.catalogue, self.metric_data, self.run["source"], self.league.unscored
        )

    def revisions_section(self) -> str:
        return revisions_html(self.revisions, self.quarter)

    def footer(self) -> str:
        return self.provenance
