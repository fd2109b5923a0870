"""HTML sections of the published report (called by ``notebooks/report.ipynb``), and the data every published page
of a quarter is built from (:class:`ReportData`, also used by :mod:`leaguetables.publication.documents`).

Every data-derived string is escaped with :func:`html.escape`; tables have captions and header cells with scope;
figures are inline SVG with a text alternative and a data table beside them; nothing depends on colour alone; no
wall-clock time appears in a page (run times live in ``manifest.json`` only).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import TRUST_TYPE_LABELS, TRUST_TYPE_PLURAL, TRUST_TYPES, Catalogue, Methodology, Metric
from leaguetables.inputs.contract import previous_quarter, quarter_label, quarter_period

esc = html.escape

METHODOLOGY_PAGE = "methodology.html"
TRUSTS_DIR = "trusts"
REVISED = " [r]"
SHORTHAND = {"suppressed": "[c]", "missing": "[x]", "not_applicable": "[z]"}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _missing(value) -> bool:
    """None, NaN or ±infinity (a figure that could not be computed is shown as [x], never as inf)."""
    if value is None or isinstance(value, str):
        return value is None
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
    return f"{code}.html" if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", code) else f"{slug(code) or 'trust'}.html"


def profile_href(trust_code: str, from_root: bool = True) -> str:
    """Relative link to a trust's profile from the report (``trusts/X.html``) or from another profile."""
    return (f"{TRUSTS_DIR}/" if from_root else "") + profile_file(trust_code)


def html_table(df: pd.DataFrame, caption: str, table_id: str, numeric: Iterable[str] = (),
               raw_html: Iterable[str] = (), row_header: str | None = None, caption_html: str | None = None,
               nowrap: Iterable[str] = (), header_html: dict[str, str] | None = None,
               name_column: str | None = None) -> str:
    """A static, accessible table: caption, ``<th scope="col">`` headers, an optional row-header column.

    Cell text is escaped unless the column is listed in ``raw_html`` (cells built by this module from escaped
    parts, such as links).
    """
    numeric, raw_html, nowrap = set(numeric), set(raw_html), set(nowrap)
    header_html = header_html or {}
    cls_of = {c: " ".join(k for k, on in (("num", c in numeric), ("nowrap", c in nowrap), ("name", c == name_column))
                          if on) for c in df.columns}
    attr = {c: f' class="{v}"' if v else "" for c, v in cls_of.items()}
    head = "".join(f'<th scope="col"{attr[c]}>{header_html.get(c, esc(str(c)))}</th>' for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            text = "" if _missing(v) else str(v)
            text = text if c in raw_html else esc(text)
            cls = attr[c]
            cells.append(f'<th scope="row"{cls}>{text}</th>' if c == row_header else f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = caption_html if caption_html is not None else esc(caption)
    return (f'<div class="table-wrap" role="region" aria-labelledby="{table_id}-caption" tabindex="0">'
            f'<table id="{table_id}"><caption id="{table_id}-caption">{cap}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def figure(svg: str, caption: str, fig_id: str) -> str:
    """Inline SVG figure; ``svg`` comes from matplotlib and carries its own <title>/<desc> (see figures)."""
    svg = re.sub(r"<\?xml[^>]*>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    return f'<figure id="{fig_id}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


# ------------------------------------------------------------------------------------------------------ revisions
def load_revisions(folder: Path | str | None) -> pd.DataFrame | None:
    """``tables/revisions.csv`` of the staging folder (written by ``run_quarter.py --revise``), or None.

    Columns: quarter, table, trust_code, metric_id, quantity, previous, revised.
    """
    if folder is None:
        return None
    path = Path(folder) / "tables" / "revisions.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype={"quarter": str, "table": str, "trust_code": str, "metric_id": str,
                                  "quantity": str}, keep_default_na=True)
    return df.sort_values([c for c in ("table", "trust_code", "metric_id", "quantity") if c in df.columns],
                          kind="mergesort").reset_index(drop=True)


NHSE_RANK_RANGE = "NHS England likely range of rank"
NHSE_AVERAGE_RANGE = "NHS England likely range of average"

# quantity names (ours and NHS England's layout) → the column of the report's league table they revise
_LEAGUE_FIELDS = {
    "segment": "Segment", "unadjusted_segment": "Segment", "rank": "Rank", "rank_label": "Rank",
    "average_score": "Average score", "average_unrounded": "Average score",
    "average_lower": NHSE_AVERAGE_RANGE, "average_upper": NHSE_AVERAGE_RANGE,
    "likely_range_of_average_score": NHSE_AVERAGE_RANGE,
    "rank_lower": NHSE_RANK_RANGE, "rank_upper": NHSE_RANK_RANGE,
    "likely_range_of_rank": NHSE_RANK_RANGE, "financial_override": "Financial override",
    "rank_interval_lower": "Rank interval", "rank_interval_upper": "Rank interval", "rank_median": "Rank interval",
    "trust_in_financial_deficit": "Financial override", "in_financial_deficit": "Financial override",
    **{f"p_segment_{s}": f"P(segment {s})" for s in range(1, 5)},
}


def _norm(name) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def revised_marks(revisions: pd.DataFrame | None) -> tuple[set, set]:
    """``(league, metric)``: the revised cells of the league tables as (trust_code, report column) — an
    unrecognised league quantity marks the trust's name — and of the metrics as (trust_code, metric_id)."""
    league, metric = set(), set()
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
    head = ('<h2 id="revisions">Revisions</h2><p>Scheduled revisions follow late or corrected source data; '
            "methodology changes are made only with a new methodology version and are announced in advance. "
            "Revised figures are marked [r] in the league tables and trust profiles.</p>")
    if revisions is None or revisions.empty:
        return head + (f"<p>This is the first publication of these figures for {esc(quarter_label(quarter))}; "
                       "none have been revised.</p>")
    df = revisions.copy()
    tab = pd.DataFrame({
        "Table": df.get("table", pd.Series("", index=df.index)).to_numpy(),
        "Trust code": df.get("trust_code", pd.Series("", index=df.index)).to_numpy(),
        "Metric": df.get("metric_id", pd.Series("", index=df.index)).fillna("").to_numpy(),
        "Quantity": df.get("quantity", pd.Series("", index=df.index)).to_numpy(),
        "Previously published": df.get("previous", pd.Series("", index=df.index)).to_numpy(),
        "Revised": df.get("revised", pd.Series("", index=df.index)).to_numpy(),
    })
    n_trusts = tab["Trust code"].nunique()
    return (head + f"<p>{len(tab):,} figures for {n_trusts:,} trusts have been revised since "
            f"{esc(quarter_label(quarter))} was first published. Every revised figure is listed below and in "
            "tables/revisions.csv.</p>"
            + html_table(tab, f"Revised figures, {quarter_label(quarter)}", "revisions-table",
                         numeric=["Previously published", "Revised"]))


# ----------------------------------------------------------------------------------------------------- page parts
def thresholds_notice(methodology: Methodology) -> str:
    """The warning every page carries when the segment thresholds are illustrative (a 2026/27 demo: NHS England's
    thresholds are not published in anything the project has); empty otherwise. Plain text (escaped by callers)."""
    seg = methodology.segmentation
    if not seg.illustrative:
        return ""
    return (f"Illustrative segment thresholds ({', '.join(f'{t:g}' for t in seg.thresholds)}): not NHS England's. "
            f"{seg.thresholds_source}. The segments and ranks on this page show how the method works, not any "
            "trust's position.")


# What each source is, in words that are true of it (the header badge, the status line and the notice). None of
# them is an official statistic: the project is not a producer of official statistics.
SOURCE_LABELS = {
    "demo": ("Demonstration: synthetic data",
             "Demonstration only: synthetic data about fictional trusts and integrated care boards, generated by the "
             "project's code from a fixed seed. Not statistics about real NHS trusts or ICBs."),
    "nhse": ("Not an official statistic",
             "Not an official statistic: computed by this project from NHS England's published statistics. The "
             "methods are new and may change as they are reviewed."),
    "files": ("Not an official statistic",
              "Not an official statistic: computed by this project from data files supplied by whoever ran it; the "
              "project does not know or check where those data come from. The methods are new and may change as "
              "they are reviewed."),
}
SOURCE_NOTICES = {
    "demo": ("Demonstration only.", "Every trust, integrated care board, name and figure here is synthetic, "
                                    "generated by the project's code from a fixed seed. It is not a ranking of real "
                                    "NHS trusts or ICBs: where the record-level metrics use the real geography and "
                                    "ONS populations underneath, the organisations laid over them are invented."),
    "nhse": ("Reproduced from published data; not an official statistic.",
             "These figures were computed by this project from NHS England's published statistics. They are not "
             "NHS England's Oversight Framework segmentation, and some of its metrics are not in the published "
             "inputs."),
    "files": ("Computed from supplied data files; not an official statistic.",
              "These figures were computed by this project from the contract data files given to it (--source "
              "files); their origin is whatever the person who ran it supplied. They are not NHS England's "
              "Oversight Framework segmentation."),
}


def site_label(source: str) -> str:
    """The badge in every page's header."""
    return SOURCE_LABELS.get(source, SOURCE_LABELS["files"])[0]


def source_notice(source: str, catalogue: Catalogue | None = None, omitted: Sequence[str] = ()) -> str:
    """The notice under a page's title: what the figures are computed from, and, for a partial run, which metrics
    were left out (HTML, escaped)."""
    head, body = SOURCE_NOTICES.get(source, SOURCE_NOTICES["files"])
    html_ = f'<div class="notice warning"><strong>{esc(head)}</strong> {esc(body)}'
    if source != "demo" and catalogue is not None and catalogue.not_in_inputs:
        html_ += " Not in these inputs: " + esc("; ".join(catalogue.not_in_inputs)) + "."
    html_ += "</div>"
    if omitted:
        html_ += ('<div class="notice warning partial-run"><strong>Partial run.</strong> This release was computed '
                  f"from a subset of the metrics (--metrics): {_plural(len(omitted), 'metric')} with data for the "
                  "quarter left out (" + esc(", ".join(omitted)) + "). Averages, segments and ranks are not "
                  "comparable with a full release.</div>")
    return html_


def title_block(quarter: str, source: str, methodology: Methodology, catalogue: Catalogue | None = None,
                omitted: Sequence[str] = ()) -> str:
    h1 = f"NHS trust league tables: {quarter_label(quarter)}" + (" (partial run)" if omitted else "")
    notice = source_notice(source, catalogue, omitted)
    return (f"<h1>{esc(h1)}</h1>"
            f'<p class="lede">Segments, scores and ranks of NHS trusts in England for {esc(quarter_period(quarter))}, '
            "with the uncertainty of every rank, adjustment for the populations trusts serve, funnel plots and "
            "the productivity opportunity of each trust.</p>"
            '<dl class="release-facts">'
            f"<dt>Period</dt><dd>{esc(quarter_period(quarter))} ({esc(quarter_label(quarter))})</dd>"
            f"<dt>Status</dt><dd>{esc(SOURCE_LABELS.get(source, SOURCE_LABELS['files'])[1])}</dd>"
            f"<dt>Methodology</dt><dd>{esc(methodology.name)}, version {esc(methodology.version)}</dd></dl>"
            f"{notice}"
            + (f'<div class="notice warning"><strong>{esc(thresholds_notice(methodology))}</strong></div>'
               if thresholds_notice(methodology) else ""))


def downloads(spreadsheet: str | None = None) -> str:
    """Links to the methodology page and the downloadable tables of the release."""
    links = [(METHODOLOGY_PAGE, "Methodology", "HTML page: every metric, model and rule of this release")]
    if spreadsheet:
        links.append((f"tables/{spreadsheet}", "League tables spreadsheet",
                      "ODS, accessible: cover, contents, notes and one table per sheet"))
    links += [("tables/league_table.csv", "League table", "CSV, NHS England's layout"),
              ("tables/nof_data_long.csv", "Metric values and scores", "CSV, NHS England's long layout"),
              ("tables/productivity.csv", "Productivity opportunity", "CSV, one row per trust and metric"),
              ("tables/spc.csv", "Statistical process control", "CSV, one row per trust and metric: process "
                                                                 "limits, rules triggered, variation and assurance")]
    items = "".join(f'<li><a href="{esc(h)}">{esc(t)}</a> ({esc(d)})</li>' for h, t, d in links)
    return f'<h2 id="downloads">Downloads and related pages</h2><ul class="downloads">{items}</ul>'


def contents(items: Sequence[tuple[str, str]]) -> str:
    lis = "".join(f'<li><a href="#{esc(a)}">{esc(t)}</a></li>' for a, t in items)
    return f'<nav class="contents" aria-labelledby="contents"><h2 id="contents">Contents</h2><ol>{lis}</ol></nav>'


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
    text = (f"Across {k:,} metrics with funnel plots, {worse:,} trust-metric results were worse than expected and "
            f"{better:,} better than expected beyond the {pct} limits")
    if "n_tested" in funnel_counts and funnel_counts["n_tested"].notna().all():
        tested = int(funnel_counts["n_tested"].sum())
        side = expected_flags(tested, level) / 2.0
        text += (f", of {tested:,} tested; about {side:,.0f} on each side would be expected by chance alone if no "
                 "trust were truly different")
    return text + (". A flag says that a result is further from the average of the trust type than the spread "
                   "between trusts and chance would usually give: it is a prompt for a question, not proof of better "
                   "or worse care, and a trust within the limits is not shown to be average.")


def funnel_method_text(f) -> str:
    """The funnel method in words, from the ``funnel`` settings of the methodology config (report and methodology
    page use this one text, so neither can describe a method other than the one run)."""
    pct = f"{100 * f.trim_by:g}%"
    band, outer = _level_pct(f.band_level), _level_pct(f.outer_level)
    what = ("Funnel plots compare each trust with the average of its trust type: on observed / expected (O/E) where "
            "the metric has a demographic model, on the proportion for other proportions, and on O/E against the "
            "type's crude rate for other rates. ")
    tail = (f" Trusts are banded at {band} (a value exactly on a limit is inside); the plots also show {outer} "
            f"limits. At {band}, about {100 * (1 - f.band_level):g} trusts in 100 fall outside the limits by chance "
            "alone even when no trust is truly different, so a flag is a prompt for a question, not a verdict on "
            "the quality of care, and a trust within the limits is not shown to be average.")
    if f.method == "spiegelhalter":
        if f.sr_method == "SHMI":
            disp = (f"O/E z-scores on the log scale (the SHMI method): the {pct} of trusts with the lowest and the "
                    f"{pct} with the highest z-scores are truncated (left out, not winsorised) before φ = the mean "
                    "squared z-score; proportions use the arcsine scale with "
                    f"{pct} winsorisation in each tail")
        else:
            disp = (f"O/E z-scores on the square-root scale (the CQC method) and proportions on the arcsine scale, "
                    f"with {pct} winsorisation in each tail before φ = the mean squared z-score")
        return (what + f"Compatibility setting (reproduces NHS England's SHMI banding and FunnelPlotR"
                + (", including FunnelPlotR's quirks" if f.compat else "") + f"): {disp}; the between-trust "
                "variance τ² is the DerSimonian–Laird form around the target, and the limits are widened by τ² only "
                "when φ > 1. This robust φ is not corrected for the trimming (it estimates about 0.44 × the true "
                "dispersion after truncation, 0.68 × after winsorisation), so with no truly different trust more "
                f"than the nominal share are flagged." + tail)
    scale = "square-root" if f.sr_scale == "sqrt" else "log"
    pr = "logit" if f.pr_scale == "logit" else "arcsine"
    text = (what + "Project method (robust): trusts differ by more than chance even when none is unusual, so the "
            f"limits allow for a between-trust variance τ². z-scores on the {scale} scale (O/E) or the {pr} scale "
            f"(proportions) are winsorised at {pct} in each tail, and τ² is the value at which the mean squared "
            "adjusted z-score, divided by its value for normal data after the same winsorisation "
            "(0.679 at 10%), equals 1: without that correction the robust estimate is about two thirds of the true "
            "spread and too many trusts are flagged. The winsorisation limits how much a few truly different trusts "
            "widen the limits. The limits include τ² whenever it is above 0.")
    if f.pool_quarters > 1:
        when = "For every funnel" if f.pool_when == "always" else \
            f"Where events are rare this quarter (a median expected count below {f.rare_expected:g})"
        text += (f" {when}, the counts of the latest {f.pool_quarters} quarters (those available) are pooled; "
                 "the plot and its table say so.")
    if f.limits != "normal":
        rare = ("In every funnel" if f.limits == "exact" else
                f"Where events are still rare (a median expected count below {f.rare_expected:g})")
        text += (f" {rare}, the limits are exact quantiles of the distribution of the count — Poisson or negative "
                 "binomial for O/E, binomial or beta-binomial for proportions, with τ² estimated on the count scale "
                 "— so a high count can always be flagged and φ is never infinite; these exact tests are "
                 "conservative (fewer than the nominal share are flagged by chance), and where even no event at all "
                 "would not be unusual a low result cannot be flagged.")
    return text + tail


def segmentation_sentence(table: pd.DataFrame) -> str:
    """What the segments are cut from, in words, from the league table's ``segmentation_rule`` column."""
    rule = table["segmentation_rule"].iloc[0] if "segmentation_rule" in table.columns and len(table) else None
    if rule == "quartiles_pooled":
        types = [TRUST_TYPE_PLURAL[t].lower() for t in TRUST_TYPES if (table["trust_type"] == t).any()]
        return ("Segments are quartiles of the average score of all trusts of the types scored together ("
                + ", ".join(types) + "), as NHS England cuts them, so about a quarter of those trusts are in "
                "segment 4 by construction, whatever their performance.")
    if rule == "quartiles_within_type":
        return ("Segments are quartiles of the average score within each trust type, so about a quarter of each "
                "type is in segment 4 by construction, whatever its performance.")
    if rule == "fixed_thresholds":
        return "Segments come from fixed thresholds on the average score."
    return "Segments are quartiles of the average score over a configured population of trusts."


def key_findings(table: pd.DataFrame, sensitivity_summary: dict, funnel_counts: pd.DataFrame,
                 movement: pd.DataFrame | None = None, previous: str | None = None,
                 productivity: pd.DataFrame | None = None, comparator: str = "type", level: float = 0.95, *,
                 funnel_level: float = 0.95, spc_counts: dict | None = None,
                 override: tuple[tuple[int, ...], int] = ((1, 2), 3)) -> str:
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
            for t in TRUST_TYPES if len(g := table[table["trust_type"] == t]))
        items.append(f"Of {n:,} trusts, {s1:,} {'is' if s1 == 1 else 'are'} in segment 1 ({per_type}) and "
                     f"{s45:,} in segment 4 or 5. " + segmentation_sentence(table))
        ov = table[table["financial_override"].astype(bool)]
        if len(ov):
            items.append(f"The financial override moved {_plural(len(ov), 'trust')} in deficit or receiving "
                         f"deficit support from segment {' or '.join(str(x) for x in override[0])} to segment "
                         f"{override[1]}.")
    if movement is not None and len(movement) and previous:
        items.append(movement_summary(movement, previous, level))
    if n and "rank_interval_lower" in table.columns:
        wide = table[(table["rank_interval_upper"] - table["rank_interval_lower"]) >= 0.25 * table["rank_of"]]
        sure = table[table[[f"p_segment_{k}" for k in range(1, 5)]].max(axis=1) >= 0.9]
        items.append(f"Allowing for the play of chance in the data, the {_level(table)} rank interval spans at least a "
                     f"quarter of the table for {len(wide):,} of {n:,} trusts, and {len(sure):,} of {n:,} trusts "
                     "are in their segment with a probability of 90% or more: small differences in rank are not "
                     "meaningful.")
    elif n:
        wide = table[(table["rank_upper"] - table["rank_lower"]) >= 0.25 * table["rank_of"]]
        items.append(f"NHS England's likely range of rank spans at least a quarter of the table for {len(wide):,} of "
                     f"{n:,} trusts; it describes how uneven a trust's metric scores are, not the play of chance.")
    if sensitivity_summary:
        changed = sum(v.get("segment_changed", 0) for v in sensitivity_summary.values())
        items.append(f"Adjusting for the demographics of the populations served would change the segment of "
                     f"{_plural(changed, 'trust')}.")
    if not funnel_counts.empty:
        items.append(funnel_finding(funnel_counts, funnel_level))
    if productivity is not None and not productivity.empty:
        total = productivity["opportunity_annual"].sum()
        k = productivity["metric_id"].nunique()
        who = "the best quarter of trusts of their type" if comparator == "type" else \
            "the best quarter of their demographic peers"
        items.append(f"If every trust matched {who} on {_plural(k, 'efficiency metric')}, resources worth about "
                     f"{money(total)} a year would be released (the quarter's opportunity × 4).")
    if spc_counts and spc_counts.get("assessed"):
        a, imp, con = spc_counts["assessed"], spc_counts["improvement"], spc_counts["concern"]
        items.append(f"Statistical process control (XmR charts, Making Data Count rules) on every trust profile: "
                     f"in {imp + con:,} of the {a:,} trust-metric series with enough quarters, the latest quarter "
                     f"shows special cause variation ({imp:,} improvement, {con:,} concern). With this many series "
                     f"some are expected by chance: a stable process marks its latest quarter about 1% of the time "
                     f"(about {round(0.01 * a):,} here), and rules fire somewhere in a series far more often, so a "
                     "special cause is a prompt to look, not proof.")
    return '<h2 id="key-findings">Key findings</h2><ul class="key-findings">' + "".join(
        f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def segment_distribution(table: pd.DataFrame) -> str:
    rows = []
    calibrated = "rank_interval_lower" in table.columns
    for t in TRUST_TYPES:
        g = table[table["trust_type"] == t]
        if g.empty:
            continue
        counts = g["segment"].value_counts()
        row = {"Trust type": TRUST_TYPE_PLURAL[t],
               **{f"Segment {s}": int(counts.get(s, 0)) for s in range(1, 6)},
               "Moved by the financial override": int(g["financial_override"].astype(bool).sum())}
        if calibrated:
            p = g[[f"p_segment_{k}" for k in range(1, 5)]].to_numpy(float)
            row["Segment uncertain (no segment 90% likely)"] = int((np.nanmax(p, axis=1) < 0.9).sum())
        row["Total"] = len(g)
        rows.append(row)
    df = pd.DataFrame(rows)
    note = (" A trust's segment is uncertain when no segment has a probability of 90% or more once the play of "
            "chance in the data is allowed for (see the league tables)." if calibrated else "")
    return ('<h2 id="segments">Segments by trust type</h2>'
            "<p>Segment 1 is the highest-performing group and segment 4 the most challenged; segment 5 is the "
            "Provider Improvement Programme, a judgement taken from an input flag and never computed." + note + "</p>"
            + html_table(df, "Number of trusts in each segment, by trust type", "segment-distribution",
                         numeric=[c for c in df.columns if c != "Trust type"], row_header="Trust type"))


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
    return (f"Since {quarter_label(previous)}, {_plural(changed, 'trust')} of {n:,} changed segment; about "
            f"{expected:.1f} would be expected to change segment by chance alone if no trust's performance had "
            f"changed (a joint simulation of both quarters' data). The change of rank is larger than chance alone "
            f"would usually give (p < {alpha:g}) for {_plural(beyond, 'trust')}; about {alpha * n:.1f} would be "
            "flagged by chance even if nothing had changed.")


def movement_text(r) -> str:
    """Short movement wording for a table cell, from a row of :func:`leaguetables.nof.league.movement`:
    e.g. "segment 3 to 2; up 28; beyond chance (p = 0.004)"."""
    if _missing(getattr(r, "previous_rank", None)):
        return "not in last quarter's table"
    seg = ("same segment" if r.segment_change == 0 else
           f"segment {int(r.previous_segment)} to {int(r.previous_segment + r.segment_change)}")
    ch = int(r.rank_change)
    rank = "same rank" if ch == 0 else (f"up {-ch}" if ch < 0 else f"down {ch}")
    p = float(r.rank_change_p_value)
    where = "beyond chance" if bool(r.change_beyond_chance) else "within chance"
    return f"{seg}; {rank}; {where} (p {'< 0.001' if p < 0.001 else f'= {p:.3f}'})"


def league_table_html(table: pd.DataFrame, trust_type: str, profile_links: bool = True,
                      movement: pd.DataFrame | None = None, previous: str | None = None,
                      revised: set | None = None) -> str:
    """A type's league table: the calibrated figures (rank interval, median rank, P(segment)) first, then NHS
    England's likely ranges, labelled as such, then the financial override and the movement."""
    g = table[table["trust_type"] == trust_type].sort_values(["rank", "trust_code"], kind="mergesort")
    if g.empty:
        return ""
    revised = revised or set()
    codes = g["trust_code"].astype(str).to_list()

    def mark(col, values):
        return [f"{v}{REVISED if (c, col) in revised else ''}" for c, v in zip(codes, values)]

    names = [esc(n) + (REVISED if (c, "Trust") in revised else "") for c, n in zip(codes, g["trust_name"])]
    if profile_links:
        names = [f'<a href="{esc(profile_href(c))}">{n}</a>' for c, n in zip(codes, names)]
    names = [f'{n}<span class="unit">{esc(c)}</span>' for c, n in zip(codes, names)]
    calibrated = "rank_interval_lower" in g.columns
    probs = {f"P({s})": mark(f"P(segment {s})", g[f"p_segment_{s}"].map(_pct)) for s in range(1, 5)}
    cols = {
        "Rank": mark("Rank", g["rank_label"].astype(str)),
        "Trust": names,
        "Segment": mark("Segment", ["[x]" if pd.isna(v) else str(int(v)) for v in g["segment"]]),
        "Average score": mark("Average score", g["average_score"].map(lambda v: fmt(v, 2))),
    }
    if calibrated:
        cols["Rank interval"] = mark("Rank interval", [
            "[x]" if pd.isna(a) or pd.isna(b) else f"{a:.0f} to {b:.0f}"
            for a, b in zip(g["rank_interval_lower"], g["rank_interval_upper"])])
        cols["Median rank"] = mark("Rank interval", ["[x]" if pd.isna(m) else f"{m:.0f}" for m in g["rank_median"]])
        cols.update(probs)
    cols[NHSE_RANK_RANGE] = mark(NHSE_RANK_RANGE, [
        "[x]" if pd.isna(a) or pd.isna(b) else f"{a:.0f} to {b:.0f}" for a, b in zip(g["rank_lower"], g["rank_upper"])])
    cols[NHSE_AVERAGE_RANGE] = mark(NHSE_AVERAGE_RANGE, [
        "[x]" if pd.isna(a) or pd.isna(b) else f"{a:.2f} to {b:.2f}"
        for a, b in zip(g["average_lower"], g["average_upper"])])
    if not calibrated:
        cols.update(probs)
    cols["Financial override"] = mark("Financial override", [
        "[x]" if "in_financial_deficit" in g and _missing(d) else "Yes" if bool(o) else "No"
        for o, d in zip(g["financial_override"],
                        g["in_financial_deficit"] if "in_financial_deficit" in g else g["financial_override"])])
    df = pd.DataFrame(cols)
    if movement is not None and not movement.empty:
        mv = {r.trust_code: movement_text(r) for r in movement.itertuples(index=False)}
        df[f"Movement since {quarter_label(previous)}" if previous else "Movement"] = [
            mv.get(c, "not in last quarter's table") for c in codes]
    plural = TRUST_TYPE_PLURAL[trust_type]
    anchor = f"league-{slug(trust_type)}"
    numeric = ["Segment", "Average score", *probs] + (["Median rank"] if calibrated else [])
    heads = {f"P({s})": f'P({s})<span class="visually-hidden">: probability of segment {s}</span>' for s in range(1, 5)}
    what = (f"rank interval and P(1) to P(4) allow for the play of chance in the data ({_level(g)} interval; "
            "probability of each segment); NHS England's likely ranges describe how uneven a trust's metric scores "
            "are, not chance" if calibrated else "P(1) to P(4): share of NHS England-style bootstrap replicates in "
            "each segment")
    return (f'<h3 id="{anchor}">{esc(plural)}</h3>'
            + html_table(df, f"League table: {plural.lower()}, ranked by segment then average score (lower is "
                             f"better); {what}", f"table-{anchor}",
                         numeric=numeric, raw_html=["Trust"],
                         nowrap=["Rank", "Rank interval", NHSE_RANK_RANGE, *probs], header_html=heads,
                         name_column="Trust"))


def league_intro(previous: str | None, has_movement: bool, calibrated: bool = True, level: float = 0.95,
                 shrinkage: bool = True) -> str:
    parts = ['<h2 id="league-tables">League tables</h2>',
             "<p>Trusts are ranked within their type by segment, then by average metric score (lower is better); "
             "equal keys share a rank. Each trust's name links to its profile.</p>"]
    if calibrated:
        parts.append(
            f"<p>The <strong>rank interval</strong> ({100 * level:g}%), the median rank and the probability of each "
            "segment (P(1) to P(4)) allow for the play of chance in the data: the whole method — metric values, "
            "scores, averages, cut points, financial override, segments and ranks — is recomputed on many "
            "simulated versions of the quarter's data, "
            + ("each drawing every trust's true rates from what its own numerators and denominators, and the spread "
               "between trusts of its type, allow. " if shrinkage else
               "each redrawing every numerator around the trust's observed rate. ")
            + "In simulations from a known truth (the demo generator's) the intervals contained the true rank about "
            "as often as their stated level, or slightly more often, as ranks are whole numbers. A rank whose "
            "interval is wide is not well determined; figures reported as a single value (finance, costs, staff "
            "survey scores, ratings) are taken as exact.</p>"
            "<p><strong>NHS England's likely ranges</strong> of rank and average score are reproduced as NHS England "
            "publishes them. They come from resampling each trust's own metric scores, so they show how uneven a "
            "trust's scores are across metrics, not how much its rank could change by chance; they are shown for "
            "comparison with NHS England's tables and should not be read as confidence intervals.</p>")
    else:
        parts.append("<p>The likely ranges of rank and average score are NHS England's: they come from resampling "
                     "each trust's own metric scores and show how uneven its scores are, not the play of chance.</p>")
    if previous and has_movement:
        parts.append(f"<p>Movement compares each trust with {esc(quarter_label(previous))}, both quarters computed "
                     "from the data: the change of segment (segments 1 to 4 after the financial override), the "
                     "change of rank (up is better), and a test of whether the change of rank is larger than chance "
                     "alone would give: both quarters' data are simulated together as if no trust's performance had "
                     "changed, and the p-value is the share of simulations with a larger change (equal changes count "
                     f"half; “beyond chance”: p &lt; {1 - level:g}; about 1 trust in {1 / (1 - level):.0f} is flagged "
                     "by chance even when nothing has changed). Changes in figures reported as a single value "
                     "(finance, costs, staff survey scores, ratings) count as real.</p>")
    elif previous:
        parts.append(f"<p>The inputs hold no data for {esc(quarter_label(previous))}, so movement since the "
                     "previous quarter is not shown.</p>")
    return "".join(parts)


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
    exact = (" The limits are exact for rare events and conservative: fewer than this are expected by chance."
             if r.get("limits") == "exact" else "")
    return (f"Of {tested:,} trusts tested{pooled}, {better:,} {'is' if better == 1 else 'are'} better and "
            f"{worse:,} worse than expected beyond the {_level_pct(level)} limits; about {side:,.1f} on each side "
            f"would be expected by chance alone if no trust were truly different.{exact}")


def metric_section(metric: Metric, data: dict, figures: dict[str, tuple[str, str]],
                   names: dict[str, str] | None = None) -> str:
    """One metric: definition, national figures, funnel plots with their data tables, model summary."""
    names = names or {}
    t = data["table"]
    better = "higher" if metric.direction == "higher_better" else "lower"
    parts = [f'<h3 id="metric-{esc(metric.id)}">{esc(metric.name)}</h3>',
             f"<p>{esc(metric.description)} Unit: {esc(metric.unit)}; {better} is better"]
    if metric.scoring.standard is not None:
        parts.append(f"; standard {metric.scoring.standard:g}")
    if metric.scoring.floor is not None:
        parts.append(f"; floor {metric.scoring.floor:g}")
    if metric.scoring.method == "none":
        parts.append("; not scored (context for the productivity opportunity)")
    parts.append(f'. <a href="{METHODOLOGY_PAGE}#metric-{esc(metric.id)}">Definition and method of {esc(metric.name)}'
                 "</a>.</p>")
    if not metric.funnel and metric.statistic in ("value", "bracket"):
        parts.append("<p>" + esc("Published as a value only (no numerator or denominator): no confidence interval "
                                 "and no funnel plot." if metric.statistic == "value" else
                                 "Published as a category or score only: no confidence interval and no funnel "
                                 "plot.") + "</p>")
    for ttype in metric.trust_types:
        g = t[t["trust_type"] == ttype]
        ok = g[g["status"] == "ok"]
        if g.empty:
            continue
        tv = g["type_value"].dropna()
        unit = metric.unit if metric.unit == "%" else f" {metric.unit}"
        summary = (f"{TRUST_TYPE_PLURAL[ttype]}: {len(ok)} of {len(g)} trusts reported"
                   + (f"; the figure for all of them together is {fmt(tv.iloc[0], metric.decimals)}{unit}"
                      if len(tv) and metric.statistic != "bracket" else "") + ".")
        parts.append(f"<p>{esc(summary)}</p>")
        if ttype in figures:
            svg, caption = figures[ttype]
            parts.append(figure(svg, caption, f"fig-{esc(metric.id)}-{slug(ttype)}"))
        flag_text = funnel_flag_sentence(data.get("funnel_summary"), ttype, metric.direction)
        if flag_text:
            parts.append(f"<p>{esc(flag_text)}</p>")
        if metric.funnel and ok["funnel_band"].notna().any():
            value_col = f"Value ({metric.unit})"
            tab = pd.DataFrame({
                "Trust": [f'<a href="{esc(profile_href(c))}">{esc(names.get(c, c))}</a>' for c in ok["trust_code"]],
                "Code": ok["trust_code"].to_numpy(),
                value_col: ok["value"].map(lambda v: fmt(v, metric.decimals)).to_numpy(),
                "95% CI": [f"{fmt(a, metric.decimals)} to {fmt(b, metric.decimals)}"
                           for a, b in zip(ok["lower"], ok["upper"])],
                "Observed / expected": ok["oe"].map(lambda v: "[z]" if pd.isna(v) else f"{v:.3f}").to_numpy(),
                "Band": ok["funnel_outcome"].fillna("[x]").to_numpy(),
            })
            parts.append("<details><summary>Data table for this funnel plot</summary>"
                         + html_table(tab, f"{metric.name}: {TRUST_TYPE_PLURAL[ttype].lower()}",
                                      f"data-{esc(metric.id)}-{slug(ttype)}",
                                      numeric=[value_col, "Observed / expected"], raw_html=["Trust"])
                         + "</details>")
    ms = data.get("model_summary")
    if ms is not None and not ms.empty:
        parts.append(model_tables(metric, data))
    for ttype, err in sorted(data.get("model_errors", {}).items()):
        parts.append(f"<p>No demographic model for {esc(TRUST_TYPE_PLURAL[ttype].lower())}: {esc(err)}</p>")
    return "".join(parts)


def coefficient_frame(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Term": c["term"].to_numpy(),
        "Ratio per SD": c["exp_estimate"].map(lambda v: fmt(v, 3)).to_numpy(),
        "95% CI": [f"{a:.3f} to {b:.3f}" for a, b in zip(c["exp_lower"], c["exp_upper"])],
        "p-value": c["p_value"].map(lambda v: "<0.001" if v < 0.001 else f"{v:.3f}").to_numpy(),
    })


def model_tables(metric: Metric, data: dict) -> str:
    ms = data["model_summary"]
    coefs = data["coefficients"]
    parts = ["<details><summary>Demographic model: coefficients and fit</summary>"]
    for _, r in ms.iterrows():
        ttype = r["trust_type"]
        parts.append(f"<p>{esc(TRUST_TYPE_PLURAL[ttype])}: {esc(str(r['family']))} model on {int(r['n_trusts'])} "
                     f"trusts; deviance explained {fmt(100 * r['deviance_explained'], 1)}%; dispersion "
                     f"(Pearson χ²/df) {fmt(r['dispersion'], 2)}.</p>")
        c = coefs[coefs["trust_type"] == ttype]
        if not c.empty:
            parts.append(html_table(coefficient_frame(c),
                                    f"{metric.name}: model coefficients ({TRUST_TYPE_PLURAL[ttype].lower()}); "
                                    "odds or rate ratio per standard deviation of each covariate",
                                    f"model-{esc(metric.id)}-{slug(ttype)}", numeric=["Ratio per SD", "p-value"]))
    parts.append("</details>")
    return "".join(parts)


def sensitivity_html(sens: pd.DataFrame, summary: dict) -> str:
    parts = ['<h2 id="sensitivity">What demographic adjustment changes</h2>',
             "<p>NHS England scores each metric on its raw value. For metrics with a demographic model, the table "
             "below recomputes the league on the adjusted values (observed/expected × the type's rate), "
             "leaving every other metric as it is. It is a sensitivity analysis beside the official, unadjusted "
             "league, not a replacement for it.</p>",
             "<p>What adjustment can tell: how much of a trust's position goes with the age, deprivation and "
             "rurality of the population it serves, on the assumption that these act on patients in the same way "
             "everywhere. What it cannot tell: the models are fitted across trusts (one row per trust), so they "
             "cannot separate an effect of deprivation on patients from poorer care in trusts that happen to "
             "serve deprived areas. Where quality and deprivation go together, adjustment credits part of a "
             "trust's real under-performance to its population (over-adjustment); the validation study "
             "simulates exactly this case and reports how far the adjusted comparison then moves from the "
             "truth.</p>"]
    rows = [{"Trust type": TRUST_TYPE_PLURAL[t], "Trusts": v["n"],
             "Rank correlation of averages (Spearman)": "[x]" if pd.isna(v["spearman_average"])
             else f"{v['spearman_average']:.3f}",
             "Trusts whose segment changes": v["segment_changed"]} for t, v in summary.items()]
    parts.append(html_table(pd.DataFrame(rows), "Raw and adjusted league tables compared", "sensitivity-summary",
                            numeric=["Trusts", "Rank correlation of averages (Spearman)",
                                     "Trusts whose segment changes"], row_header="Trust type"))
    ch = sens[sens["segment_change"] != 0]
    if not ch.empty:
        ch = ch.reindex(ch["segment_change"].abs().sort_values(ascending=False, kind="mergesort").index)
        tab = pd.DataFrame({"Trust": [f'<a href="{esc(profile_href(c))}">{esc(n)}</a>'
                                      for c, n in zip(ch["trust_code"], ch["trust_name"])],
                            "Code": ch["trust_code"].to_numpy(),
                            "Type": ch["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
                            "Segment (raw)": ch["segment"].astype(int).to_numpy(),
                            "Segment (adjusted)": ch["segment_adjusted"].astype(int).to_numpy(),
                            "Rank (raw)": ch["rank"].astype(int).to_numpy(),
                            "Rank (adjusted)": ch["rank_adjusted"].astype(int).to_numpy()})
        parts.append(html_table(tab, "Trusts whose segment changes with demographic adjustment", "sensitivity-changes",
                                numeric=["Segment (raw)", "Segment (adjusted)", "Rank (raw)", "Rank (adjusted)"],
                                raw_html=["Trust"]))
    return "".join(parts)


def productivity_html(opp: pd.DataFrame, catalogue: Catalogue, methodology: Methodology, top: int = 10,
                      source: str = "demo") -> str:
    from leaguetables.statistics.productivity import england_summary, trust_totals

    settings = methodology.productivity
    who = ("the upper-quartile (best 25%) level of its trust type" if settings.comparator == "type" else
           "the upper-quartile (best 25%) level of its demographic peers")
    pooled = (f" Each trust's value is pooled over the last {settings.pool_quarters} quarters" if
              settings.pool_quarters > 1 else " Each trust's value is this quarter's")
    if settings.estimate == "observed":
        pooled += ", as observed."
    else:
        pooled += (" and shrunken towards its type's average by empirical Bayes"
                   + (" with its spread kept equal to the real spread between trusts" if
                      settings.estimate == "constrained" else "") + ".")
    noise = ("" if settings.estimate == "constrained" and settings.pool_quarters > 1 else
             " One quarter's noisy values inflate the opportunity (the methodology gives the size of it).")
    parts = ['<h2 id="productivity">Productivity opportunity</h2>',
             "<p>Following Better Care, Better Value (NHS Institute, 2006–2009), each trust's productivity "
             f"opportunity on an efficiency metric is the resource it would release if it reached {who}: "
             f"the shortfall from that level × its activity × a unit cost, annualised × {settings.annualise:g}. "
             "A trust at or better than the level has no opportunity. Where a metric has a demographic model, "
             "trusts are compared on the adjusted value (observed / expected), and the shortfall is converted with "
             "the trust's expected activity (E × the shortfall in O/E) rather than its own."
             f"{pooled}{noise} These metrics are context: they do not enter the NOF average score.</p>"]
    if opp.empty:
        parts.append("<p>No metric of this release has a unit cost, so no opportunity is computed.</p>")
        return "".join(parts)
    order = {m.id: i for i, m in enumerate(catalogue.metrics)}
    summ = england_summary(opp)
    summ = summ.iloc[summ["metric_id"].map(order).argsort(kind="mergesort")]
    res = opp.groupby("metric_id")["resource_annual"].sum(min_count=1)
    rows = []
    for r in summ.itertuples(index=False):
        m = catalogue.metric(r.metric_id)
        uc = m.unit_cost
        rows.append({"Metric": f'<a href="#metric-{esc(m.id)}">{esc(m.name)}</a>',
                     "Trusts compared": f"{r.trusts:,}",
                     "Trusts with an opportunity": f"{r.trusts_with_opportunity:,}",
                     "Resource released a year": esc(fmt(res.get(m.id, np.nan), 0)),
                     "Priced at": esc(f"£{uc.amount:,.0f} per {uc.unit}"),
                     "Opportunity a year": esc(money(r.opportunity_annual))})
    total = opp["opportunity_annual"].sum()
    n_any = int((opp.groupby("trust_code")["opportunity_annual"].sum() > 0).sum())
    rows.append({"Metric": "All these metrics (an upper bound: they overlap)", "Trusts compared": "",
                 "Trusts with an opportunity": f"{n_any:,}",
                 "Resource released a year": "[z]", "Priced at": "[z]", "Opportunity a year": esc(money(total))})
    parts.append(f"<p>England: about <strong>{esc(money(total))} a year</strong> across "
                 f"{_plural(len(summ), 'metric')}.</p>")
    parts.append(html_table(pd.DataFrame(rows), "Productivity opportunity in England, by metric (a year; the "
                                               "resource is counted in the units it is priced at)",
                            "productivity-england", numeric=["Trusts compared", "Trusts with an opportunity",
                                                              "Resource released a year", "Opportunity a year"],
                            raw_html=["Metric", "Resource released a year", "Priced at", "Opportunity a year"],
                            row_header="Metric"))
    tt = trust_totals(opp).head(top)
    tab = pd.DataFrame({
        "Position": [str(i + 1) for i in range(len(tt))],
        "Trust": [f'<a href="{esc(profile_href(c))}">{esc(n)}</a>' for c, n in zip(tt["trust_code"], tt["trust_name"])],
        "Type": tt["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
        "Metrics with an opportunity": tt["metrics"].astype(int).to_numpy(),
        "Opportunity a year": tt["opportunity_annual"].map(money).to_numpy(),
    })
    parts.append(html_table(tab, f"The {len(tt)} trusts with the largest productivity opportunity (a year, all "
                                 "costed metrics)", "productivity-top",
                            numeric=["Position", "Metrics with an opportunity", "Opportunity a year"],
                            raw_html=["Trust"]))
    costs = "Unit costs are illustrative for the demo" if source == "demo" else "Unit costs are as the catalogue states"
    parts.append(f"<p>{costs}; each is named, with its source, in the methodology. The opportunity is an "
                 "indication of where to look, not a saving that could be banked: some variation is warranted, "
                 "and the metrics overlap. Every trust's figures are in tables/productivity.csv and its "
                 "profile.</p>")
    return "".join(parts)


def data_quality_html(results: pd.DataFrame, catalogue: Catalogue, metric_data: dict | None = None,
                      source: str = "demo") -> str:
    rows = []
    for m in catalogue.metrics:
        g = results[results["metric_id"] == m.id]
        if g.empty:
            continue
        rows.append({"Metric": m.name, "Trusts in scope": len(g), "Reported": int((g["status"] == "ok").sum()),
                     "Suppressed [c]": int((g["status"] == "suppressed").sum()),
                     "Missing [x]": int((g["status"] == "missing").sum()),
                     "Scored": "[z]" if m.scoring.method == "none" else int(g["score"].notna().sum())})
    df = pd.DataFrame(rows)
    n_cells = int(df["Trusts in scope"].sum()) if len(df) else 0
    n_ok = int(df["Reported"].sum()) if len(df) else 0
    n_sup = int(df["Suppressed [c]"].sum()) if len(df) else 0
    n_mis = int(df["Missing [x]"].sum()) if len(df) else 0
    errors = []
    for mid, d in sorted((metric_data or {}).items()):
        for ttype, err in sorted(d.get("model_errors", {}).items()):
            errors.append(f"{catalogue.metric(mid).name} ({TRUST_TYPE_PLURAL[ttype].lower()}): {err}")
    origin = ("synthetic data generated by the project (fixed seed); they exercise every step of the method but "
              "describe no real trust" if source == "demo" else
              "NHS England's published statistics, read without change by the project's source adapters"
              if source == "nhse" else
              "the contract data files supplied to the run (--source files); the project validates them against "
              "the data contract but does not know where they come from")
    dims = [
        ("Relevance", "The tables reproduce NHS England's Oversight Framework segmentation and add what "
                      "statisticians recommend beside league tables: rank intervals, demographic adjustment and "
                      "funnel plots with overdispersion."),
        ("Accuracy and reliability", f"Of {n_cells:,} trust-metric figures in scope, {n_ok:,} were reported, "
                                     f"{n_sup:,} suppressed by the source and {n_mis:,} missing; suppressed and "
                                     "missing figures are excluded from scoring, as in NHS England's method. Ranks "
                                     "are uncertain: see the rank intervals, which allow for the play of chance in "
                                     "the counted metrics but not for errors in the reported figures."),
        ("Timeliness and punctuality", "Each quarter is produced from the quarter's inputs by one command, so "
                                       "the release depends only on the availability of the source data."),
        ("Accessibility and clarity", "Every table is published as CSV and in an accessible spreadsheet (ODS), "
                                      "every chart has a text alternative and a data table, and the pages are "
                                      "checked automatically against WCAG 2.2 AA (axe-core); a manual screen-reader "
                                      "review is still to be done."),
        ("Coherence and comparability", "The league table and long data follow NHS England's published layouts. "
                                        "Quarters are comparable while the methodology version is unchanged."),
        ("Trade-offs, user needs, cost and confidentiality", "No new data are collected; figures suppressed by "
                                                             "their source stay suppressed ([c])."),
    ]
    parts = ['<h2 id="data-quality">Data quality</h2>', f"<p>Inputs: {esc(origin)}.</p>", '<dl class="glossary">']
    for term, text in dims:
        parts.append(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>")
    parts.append("</dl>")
    if errors:
        parts.append("<p>Demographic models that could not be fitted (those trusts are compared unadjusted):</p><ul>"
                     + "".join(f"<li>{esc(e)}</li>" for e in errors) + "</ul>")
    parts.append(html_table(df, "Coverage of each metric this quarter", "data-quality-table",
                            numeric=[c for c in df.columns if c != "Metric"], row_header="Metric"))
    return "".join(parts)


def methodology_summary_html(methodology: Methodology, catalogue: Catalogue,
                             link: str | None = METHODOLOGY_PAGE) -> str:
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
        (f"Financial override: a trust in segment {' or '.join(str(s) for s in fo.from_segments)} that reports a "
         f"deficit or receives deficit support is moved to segment {fo.to_segment}.") if fo.enabled
        else "No financial override.",
        *([f"Rank intervals, median ranks and the probability of each segment: {u.replicates:,} simulated versions "
           f"of the quarter's data (seed {u.seed}), "
           + ("each trust's true rates drawn from an empirical-Bayes posterior (its own counts and the spread "
              "between trusts of its type)" if u.shrinkage else "each numerator redrawn around the observed rate")
           + ", with scores, averages, cut points, override, segments and ranks recomputed in every one; "
           f"{100 * u.level:g}% intervals. Figures reported as a single value are held fixed."]
          if u.method == "parametric_data" else []),
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
    more = (f' The <a href="{esc(link)}">full methodology</a> defines every metric and lists every model and '
            "setting of this release." if link else "")
    return ('<h2 id="methodology">Methodology summary</h2><ul>' + "".join(f"<li>{esc(i)}</li>" for i in items)
            + f"</ul><p>Methodology {esc(methodology.id)} version {esc(methodology.version)}; metric catalogue "
            f"{esc(catalogue.id)} version {esc(catalogue.version)}.{more}</p>")


GLOSSARY = (
    ("Segment", "NHS England's grouping of trusts from 1 (highest performing) to 4 (most challenged), from the "
                "average metric score within each trust type; 5 is the Provider Improvement Programme."),
    ("Average metric score", "The mean of a trust's metric scores, each from 1.00 (best) to 4.00 (worst)."),
    ("Rank interval", "The range of ranks within which a trust's true rank lies with 95% probability, allowing for "
                      "the play of chance in its counted metrics; the median rank is its middle."),
    ("NHS England likely range", "NHS England's range of rank or average score from resampling a trust's own "
                                 "metric scores: it shows how uneven the trust's scores are, not the play of "
                                 "chance."),
    ("Funnel plot", "A chart of each trust's value against its size, with limits showing the spread expected from "
                    "chance and the usual differences between trusts; trusts outside the limits are 'better' or "
                    "'worse than expected' — a prompt for a question, not a verdict on the quality of care."),
    ("Observed / expected", "A trust's events divided by the number expected for the population it serves, from "
                            "the demographic model; 1 is what a trust of average quality would have with the "
                            "same population."),
    ("Demographic peers", "The trusts of the same type whose catchment populations are most alike (ten by default: "
                          "the “Similar 10” method)."),
    ("Productivity opportunity", "The resource a trust would release by reaching the best-quartile level of its "
                                 "comparators on an efficiency metric, valued at a unit cost."),
)


def about_html(catalogue: Catalogue, trusts: pd.DataFrame, source: str, metric_ids: Sequence[str] = ()) -> str:
    used = [m for m in catalogue.metrics if not metric_ids or m.id in metric_ids]
    sources = sorted({m.source for m in used})
    n = trusts["trust_type"].value_counts()
    cov = ", ".join(f"{int(n.get(t, 0))} {TRUST_TYPE_PLURAL[t].lower()}" for t in TRUST_TYPES if n.get(t, 0))
    gl = "".join(f"<dt>{esc(a)}</dt><dd>{esc(b)}</dd>" for a, b in GLOSSARY)
    src = "".join(f"<li>{esc(x)}</li>" for x in sources)
    return ('<h2 id="about">About these statistics</h2>'
            f"<p>Coverage: {esc(cov)} in England; {_plural(len(used), 'metric')}. Sources of the metrics:</p>"
            f'<ul class="sources">{src}</ul>'
            f"<p>Each metric's source is also given in its definition in the methodology.</p>"
            f"<p>{esc(SOURCE_LABELS.get(source, SOURCE_LABELS['files'])[1])} Feedback on the methods is welcome. "
            "Shorthand used in tables: [c] suppressed by the source, [x] not "
            "available, [z] not applicable, [r] revised.</p>"
            '<h3 id="definitions">Definitions</h3><dl class="glossary">' + gl + "</dl>"
            '<h3 id="related">Related statistics</h3><p>NHS England publishes the NHS Oversight Framework '
            "segmentation and league tables each quarter, with the methodology manual and technical metric "
            "specification this release follows.</p>")


def provenance_html(run: dict, git: dict, inputs: dict[str, str] | None = None) -> str:
    """The provenance footer: code and methodology versions and the run's parameters; never a wall-clock time."""
    sha = git.get("sha", "unknown")
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    metrics = run.get("metric_ids", [])
    rows = [("Code", f"leaguetables {run.get('code_version', '')}, git {str(sha)[:12]}{dirty}"),
            ("Methodology", f"{run['methodology']} version {run['methodology_version']}; catalogue {run['catalogue']} "
                            f"version {run['catalogue_version']}"),
            ("Run parameters", f"quarter {run['quarter']}, source {run['source']}, {_plural(len(metrics), 'metric')} "
                               f"({', '.join(metrics)})")]
    if inputs:
        rows.append(("Inputs (SHA-256)", "; ".join(f"{k} {v[:12]}" for k, v in sorted(inputs.items()))))
    rows.append(("Run details", "file checksums, package versions and run times are in manifest.json"))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return ('<footer class="provenance"><h2 id="provenance">Provenance</h2>'
            f'<dl class="facts">{items}</dl></footer>')


def input_checksums(inputs) -> dict[str, str]:
    from leaguetables.config import file_sha256

    files = getattr(inputs, "files", None) or {}
    return {Path(p).name: file_sha256(Path(p)) for p in files.values() if Path(p).exists()}


class ReportData:
    """Everything the published pages show, loaded once from the run's working folder."""

    def __init__(self, work_dir, out_dir, inputs, methodology, catalogue, quarter, run, league, movement, metric_data):
        self.work_dir, self.out_dir = work_dir, out_dir
        self.inputs, self.methodology, self.catalogue, self.quarter = inputs, methodology, catalogue, quarter
        self.run, self.league, self.movement, self.metric_data = run, league, movement, metric_data
        self.previous = previous_quarter(quarter)
        self.revisions = load_revisions(out_dir)
        self.revised_league, self.revised_metrics = revised_marks(self.revisions)
        self._productivity = None
        self._spc = None

    @classmethod
    def load(cls, work_dir, out_dir, inputs, methodology, catalogue, quarter) -> "ReportData":
        import pickle

        from leaguetables import __version__
        from leaguetables.nof.league import load_metric_results
        from leaguetables.run.notebook_env import load_run

        run = load_run(work_dir)
        run["code_version"] = __version__
        with open(Path(work_dir) / "league.pkl", "rb") as f:
            lg = pickle.load(f)
        return cls(work_dir, out_dir, inputs, methodology, catalogue, quarter, run, lg["league"], lg["movement"],
                   load_metric_results(work_dir))

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

            self._productivity = opportunities({k: v["table"] for k, v in self.metric_data.items()}, self.catalogue,
                                               self.methodology, self.inputs.trusts, self.inputs.demographics,
                                               observations=self.inputs.observations,
                                               quarters=self.inputs.quarters())
        return self._productivity

    @property
    def spc(self) -> tuple[dict, list[str]]:
        """Statistical process control of every trust and metric (:func:`leaguetables.statistics.spc.run_spc`):
        ``({metric_id: {trust_code: SPCResult}}, quarters)``."""
        if self._spc is None:
            from leaguetables.statistics.spc import run_spc

            self._spc = run_spc(self.metric_data, self.metrics_run, self.methodology.spc)
        return self._spc

    def spc_table(self) -> pd.DataFrame:
        from leaguetables.statistics.spc import spc_table

        results, quarters = self.spc
        return spc_table(results, self.catalogue, self.inputs.trusts, self.quarter, quarters)

    def _spc_counts(self) -> dict:
        from leaguetables.statistics.spc import summary

        return summary(self.spc[0])

    def write_tables(self) -> list[str]:
        """Tables computed for the report: the productivity opportunity (tables/productivity.csv) and statistical
        process control of every trust and metric (tables/spc.csv)."""
        from leaguetables.run.publish import write_csv

        write_csv(self.productivity, Path(self.out_dir) / "tables" / "productivity.csv")
        write_csv(self.spc_table(), Path(self.out_dir) / "tables" / "spc.csv")
        return ["tables/productivity.csv", "tables/spc.csv"]

    def _funnel_counts(self) -> pd.DataFrame:
        rows = []
        for mid, d in sorted(self.metric_data.items()):
            t = d["table"]
            if t["funnel_outcome"].notna().any():
                rows.append({"metric_id": mid, "n_worse": int((t["funnel_outcome"] == "worse than expected").sum()),
                             "n_better": int((t["funnel_outcome"] == "better than expected").sum()),
                             "n_tested": int(t["funnel_outcome"].notna().sum())})
        return pd.DataFrame(rows, columns=["metric_id", "n_worse", "n_better", "n_tested"])

    def header(self) -> str:
        """Title, period, statistics label and notice: the first screen shows them with the key findings."""
        return title_block(self.quarter, self.run["source"], self.methodology, self.catalogue,
                           self.run.get("omitted_metrics") or ())

    def key_findings(self) -> str:
        """Key findings, then the contents and the downloads."""
        items = [("key-findings", "Key findings"), ("downloads", "Downloads and related pages"),
                 ("segments", "Segments by trust type"), ("league-tables", "League tables"),
                 ("sensitivity", "What demographic adjustment changes"),
                 ("productivity", "Productivity opportunity"), ("metrics", "Metrics"),
                 ("about", "About these statistics"), ("methodology", "Methodology summary"),
                 ("data-quality", "Data quality"), ("revisions", "Revisions"), ("provenance", "Provenance")]
        return (key_findings(self.league.table, self.league.sensitivity_summary, self._funnel_counts(),
                             self.movement, self.previous, self.productivity,
                             self.methodology.productivity.comparator, self.methodology.uncertainty.level,
                             funnel_level=self.methodology.funnel.band_level, spc_counts=self._spc_counts(),
                             override=(tuple(self.methodology.financial_override.from_segments),
                                       self.methodology.financial_override.to_segment))
                + contents(items) + downloads(self.spreadsheet_name))

    def segments(self) -> str:
        return segment_distribution(self.league.table)

    def league_tables(self) -> str:
        has_move = self.movement is not None and not self.movement.empty
        t = self.league.table
        u = self.methodology.uncertainty
        parts = [league_intro(self.previous, has_move, "rank_interval_lower" in t.columns, u.level, u.shrinkage)]
        for t in TRUST_TYPES:
            parts.append(league_table_html(self.league.table, t, profile_links=True,
                                           movement=self.movement if has_move else None, previous=self.previous,
                                           revised=self.revised_league))
        return "".join(parts)

    def sensitivity(self) -> str:
        return sensitivity_html(self.league.sensitivity, self.league.sensitivity_summary)

    def productivity_section(self) -> str:
        return productivity_html(self.productivity, self.catalogue, self.methodology, source=self.run["source"])

    def metrics(self) -> str:
        from leaguetables.publication.figures import load_saved

        names = self.names
        parts = ['<h2 id="metrics">Metrics</h2>',
                 "<p>For each metric: its definition, the funnel plot of each trust type with the data table behind "
                 "it, and the demographic model where there is one.</p>"]
        for m in self.metrics_run:
            parts.append(metric_section(m, self.metric_data[m.id], load_saved(self.work_dir, m.id), names))
        return "".join(parts)

    def about(self) -> str:
        return about_html(self.catalogue, self.inputs.trusts, self.run["source"], self.run.get("metric_ids", ()))

    def methodology_summary(self) -> str:
        return methodology_summary_html(self.methodology, self.catalogue)

    def data_quality(self) -> str:
        html_ = data_quality_html(self.league.results, self.catalogue, self.metric_data, self.run["source"])
        u = self.league.unscored
        if u is not None and len(u):
            names = "; ".join(f"{esc(n)} ({esc(c)})" for c, n in zip(u["trust_code"], u["trust_name"]))
            html_ += (f"<p>{len(u)} trust(s) had no scored metric this quarter and are not segmented or ranked: "
                      f"{names}.</p>")
        return html_

    def revisions_section(self) -> str:
        return revisions_html(self.revisions, self.quarter)

    def footer(self) -> str:
        from leaguetables.run.publish import git_state

        return provenance_html(self.run, git_state(), input_checksums(self.inputs))
