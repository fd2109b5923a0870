"""HTML sections of the published report (called by ``notebooks/report.ipynb``), and the data every published page
of a quarter is built from (:class:`ReportData`, also used by :mod:`leaguetables.publication`).

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

from .config import TRUST_TYPE_LABELS, TRUST_TYPE_PLURAL, TRUST_TYPES, Catalogue, Methodology, Metric
from .contract import previous_quarter, quarter_label, quarter_period

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


# quantity names (ours and NHS England's layout) → the column of the report's league table they revise
_LEAGUE_FIELDS = {
    "segment": "Segment", "unadjusted_segment": "Segment", "rank": "Rank", "rank_label": "Rank",
    "average_score": "Average score", "average_unrounded": "Average score",
    "average_lower": "Likely range of average", "average_upper": "Likely range of average",
    "likely_range_of_average_score": "Likely range of average",
    "rank_lower": "Likely range of rank", "rank_upper": "Likely range of rank",
    "likely_range_of_rank": "Likely range of rank", "financial_override": "Financial override",
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
# What each source is, in words that are true of it (the header badge, the status line and the notice). None of
# them is an official statistic: the project is not a producer of official statistics.
SOURCE_LABELS = {
    "demo": ("Demonstration: synthetic data",
             "Demonstration only: synthetic data about fictional trusts, generated by the project's code from a "
             "fixed seed. Not statistics about real NHS trusts."),
    "nhse": ("Not an official statistic",
             "Not an official statistic: computed by this project from NHS England's published statistics. The "
             "methods are new and may change as they are reviewed."),
    "files": ("Not an official statistic",
              "Not an official statistic: computed by this project from data files supplied by whoever ran it; the "
              "project does not know or check where those data come from. The methods are new and may change as "
              "they are reviewed."),
}
SOURCE_NOTICES = {
    "demo": ("Demonstration only.", "Every trust, name and figure here is synthetic, generated by the project's "
                                    "code from a fixed seed. It is not a ranking of real NHS trusts."),
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
            f"{notice}")


def downloads(spreadsheet: str | None = None) -> str:
    """Links to the methodology page and the downloadable tables of the release."""
    links = [(METHODOLOGY_PAGE, "Methodology", "HTML page: every metric, model and rule of this release")]
    if spreadsheet:
        links.append((f"tables/{spreadsheet}", "League tables spreadsheet",
                      "ODS, accessible: cover, contents, notes and one table per sheet"))
    links += [("tables/league_table.csv", "League table", "CSV, NHS England's layout"),
              ("tables/nof_data_long.csv", "Metric values and scores", "CSV, NHS England's long layout"),
              ("tables/productivity.csv", "Productivity opportunity", "CSV, one row per trust and metric")]
    items = "".join(f'<li><a href="{esc(h)}">{esc(t)}</a> ({esc(d)})</li>' for h, t, d in links)
    return f'<h2 id="downloads">Downloads and related pages</h2><ul class="downloads">{items}</ul>'


def contents(items: Sequence[tuple[str, str]]) -> str:
    lis = "".join(f'<li><a href="#{esc(a)}">{esc(t)}</a></li>' for a, t in items)
    return f'<nav class="contents" aria-labelledby="contents"><h2 id="contents">Contents</h2><ol>{lis}</ol></nav>'


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def key_findings(table: pd.DataFrame, sensitivity_summary: dict, funnel_counts: pd.DataFrame,
                 movement: pd.DataFrame | None = None, previous: str | None = None,
                 productivity: pd.DataFrame | None = None, comparator: str = "type",
                 override: tuple[tuple[int, ...], int] = ((1, 2), 3)) -> str:
    """Sentences with numbers, computed from the league table, movement, sensitivity, funnels and productivity.
    ``override`` is the methodology's financial override: (from_segments, to_segment)."""
    items = []
    n = len(table)
    if n:
        s1 = int((table["segment"] == 1).sum())
        s45 = int((table["segment"] >= 4).sum())
        per_type = "; ".join(
            f"{int((g['segment'] == 1).sum())} of {len(g)} {TRUST_TYPE_PLURAL[t].lower()}"
            for t in TRUST_TYPES if len(g := table[table["trust_type"] == t]))
        items.append(f"Of {n:,} trusts, {s1:,} {'is' if s1 == 1 else 'are'} in segment 1 ({per_type}) and "
                     f"{s45:,} in segment 4 or 5. "
                     "Segments are quartiles of the average score within each trust type, so about a quarter of "
                     "each type is in segment 4 by construction.")
        ov = table[table["financial_override"].astype(bool)]
        if len(ov):
            items.append(f"The financial override moved {_plural(len(ov), 'trust')} in deficit or receiving "
                         f"deficit support from segment {' or '.join(str(x) for x in override[0])} to segment "
                         f"{override[1]}.")
    if movement is not None and len(movement) and previous:
        changed = int((movement["segment_change"] != 0).sum())
        beyond = int(movement["beyond_likely_range"].astype(bool).sum())
        both = f"{len(movement):,} trusts in both quarters"
        items.append(f"Since {quarter_label(previous)}, {_plural(changed, 'trust')} changed segment. "
                     + (f"For {beyond:,} of the {both} the new rank lies outside last quarter's likely range of "
                        "rank, a change larger than chance alone would usually give." if beyond else
                        f"For none of the {both} does the new rank lie outside last quarter's likely range of "
                        "rank: the movements are within what chance alone could give."))
    if n:
        wide = table[(table["rank_upper"] - table["rank_lower"]) >= 0.25 * table["rank_of"]]
        items.append(f"The likely range of rank spans at least a quarter of the table for {len(wide):,} of {n:,} "
                     "trusts: small differences in rank are not meaningful.")
    if sensitivity_summary:
        changed = sum(v.get("segment_changed", 0) for v in sensitivity_summary.values())
        items.append(f"Adjusting for the demographics of the populations served would change the segment of "
                     f"{_plural(changed, 'trust')}.")
    if not funnel_counts.empty:
        worse = int(funnel_counts["n_worse"].sum())
        items.append(f"Across {funnel_counts['metric_id'].nunique():,} metrics with funnel plots, {worse:,} "
                     "trust-metric results were worse than expected beyond the 95% overdispersed limits.")
    if productivity is not None and not productivity.empty:
        total = productivity["opportunity_annual"].sum()
        k = productivity["metric_id"].nunique()
        who = "the best quarter of trusts of their type" if comparator == "type" else \
            "the best quarter of their demographic peers"
        items.append(f"If every trust matched {who} on {_plural(k, 'efficiency metric')}, resources worth about "
                     f"{money(total)} a year would be released (this quarter's figures × 4).")
    return '<h2 id="key-findings">Key findings</h2><ul class="key-findings">' + "".join(
        f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def segment_distribution(table: pd.DataFrame) -> str:
    rows = []
    for t in TRUST_TYPES:
        g = table[table["trust_type"] == t]
        if g.empty:
            continue
        counts = g["segment"].value_counts()
        rows.append({"Trust type": TRUST_TYPE_PLURAL[t],
                     **{f"Segment {s}": int(counts.get(s, 0)) for s in range(1, 6)},
                     "Moved by the financial override": int(g["financial_override"].astype(bool).sum()),
                     "Total": len(g)})
    df = pd.DataFrame(rows)
    return ('<h2 id="segments">Segments by trust type</h2>'
            "<p>Segment 1 is the highest-performing group and segment 4 the most challenged; segment 5 is the "
            "Provider Improvement Programme, a judgement taken from an input flag and never computed.</p>"
            + html_table(df, "Number of trusts in each segment, by trust type", "segment-distribution",
                         numeric=[c for c in df.columns if c != "Trust type"], row_header="Trust type"))


def _pct(p) -> str:
    return "" if pd.isna(p) else f"{100 * p:.0f}%"


def movement_text(r) -> str:
    """Short movement wording for a table cell, from a row of :func:`leaguetables.league.movement`:
    e.g. "segment 3 to 2; up 28; within range" (range: last quarter's likely range of rank)."""
    if _missing(getattr(r, "previous_rank", None)):
        return "not in last quarter's table"
    seg = ("same segment" if r.segment_change == 0 else
           f"segment {int(r.previous_segment)} to {int(r.previous_segment + r.segment_change)}")
    ch = int(r.rank_change)
    rank = "same rank" if ch == 0 else (f"up {-ch}" if ch < 0 else f"down {ch}")
    where = "beyond range" if bool(r.beyond_likely_range) else "within range"
    return f"{seg}; {rank}; {where}"


def league_table_html(table: pd.DataFrame, trust_type: str, profile_links: bool = True,
                      movement: pd.DataFrame | None = None, previous: str | None = None,
                      revised: set | None = None) -> str:
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
    probs = {f"P({s})": mark(f"P(segment {s})", g[f"p_segment_{s}"].map(_pct)) for s in range(1, 5)}
    df = pd.DataFrame({
        "Rank": mark("Rank", g["rank_label"].astype(str)),
        "Trust": names,
        "Segment": mark("Segment", ["[x]" if pd.isna(v) else str(int(v)) for v in g["segment"]]),
        "Average score": mark("Average score", g["average_score"].map(lambda v: fmt(v, 2))),
        "Likely range of average": mark("Likely range of average", [
            "[x]" if pd.isna(a) or pd.isna(b) else f"{a:.2f} to {b:.2f}"
            for a, b in zip(g["average_lower"], g["average_upper"])]),
        "Likely range of rank": mark("Likely range of rank", [
            "[x]" if pd.isna(a) or pd.isna(b) else f"{a:.0f} to {b:.0f}"
            for a, b in zip(g["rank_lower"], g["rank_upper"])]),
        **probs,
        "Financial override": mark("Financial override",
                                   ["[x]" if "in_financial_deficit" in g and _missing(d) else "Yes" if bool(o) else "No"
                                    for o, d in zip(g["financial_override"],
                                                    g["in_financial_deficit"] if "in_financial_deficit" in g
                                                    else g["financial_override"])]),
    })
    if movement is not None and not movement.empty:
        mv = {r.trust_code: movement_text(r) for r in movement.itertuples(index=False)}
        df[f"Movement since {quarter_label(previous)}" if previous else "Movement"] = [
            mv.get(c, "not in last quarter's table") for c in codes]
    plural = TRUST_TYPE_PLURAL[trust_type]
    anchor = f"league-{slug(trust_type)}"
    numeric = ["Segment", "Average score", *probs]
    heads = {f"P({s})": f'P({s})<span class="visually-hidden">: probability of segment {s}</span>' for s in range(1, 5)}
    return (f'<h3 id="{anchor}">{esc(plural)}</h3>'
            + html_table(df, f"League table: {plural.lower()}, ranked by segment then average score (lower is "
                             "better); P(1) to P(4): the probability of each segment", f"table-{anchor}",
                         numeric=numeric, raw_html=["Trust"], nowrap=["Rank", "Likely range of rank", *probs],
                         header_html=heads, name_column="Trust"))


def league_intro(previous: str | None, has_movement: bool) -> str:
    parts = ['<h2 id="league-tables">League tables</h2>',
             "<p>Trusts are ranked within their type by segment, then by average metric score (lower is better); "
             "equal keys share a rank. The likely ranges and the probability of each segment come from the "
             "bootstrap described in the methodology: a rank whose likely range is wide is not well determined. "
             "Each trust's name links to its profile.</p>"]
    if previous and has_movement:
        parts.append(f"<p>Movement compares each trust with {esc(quarter_label(previous))}: the change of segment, "
                     "the change of rank (up is better), and whether the new rank lies within or beyond the likely "
                     "range of rank published last quarter (“within range” means the movement may be chance).</p>")
    elif previous:
        parts.append(f"<p>No league table for {esc(quarter_label(previous))} was found beside this release, so "
                     "movement since the previous quarter is not shown.</p>")
    return "".join(parts)


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
             "leaving every other metric as it is.</p>"]
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
    from .productivity import england_summary, trust_totals

    settings = methodology.productivity
    who = ("the upper-quartile (best 25%) level of its trust type" if settings.comparator == "type" else
           "the upper-quartile (best 25%) level of its demographic peers")
    parts = ['<h2 id="productivity">Productivity opportunity</h2>',
             "<p>Following Better Care, Better Value (NHS Institute, 2006–2009), each trust's productivity "
             f"opportunity on an efficiency metric is the resource it would release if it reached {who}: "
             f"the shortfall from that level × its activity × a unit cost, annualised × {settings.annualise:g}. "
             "A trust at or better than the level has no opportunity. Where a metric has a demographic model, "
             "trusts are compared on the adjusted value. These metrics are context: they do not enter the NOF "
             "average score.</p>"]
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
                      "statisticians recommend beside league tables: likely ranges, demographic adjustment and "
                      "funnel plots with overdispersion."),
        ("Accuracy and reliability", f"Of {n_cells:,} trust-metric figures in scope, {n_ok:,} were reported, "
                                     f"{n_sup:,} suppressed by the source and {n_mis:,} missing; suppressed and "
                                     "missing figures are excluded from scoring, as in NHS England's method. Ranks "
                                     "are uncertain: see the likely ranges."),
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
        f"Likely ranges: a {100 * b.level:g}% percentile bootstrap ({b.replicates:,} replicates, seed {b.seed}) of "
        "each trust's metric scores, with segments, override and ranks recomputed in every replicate; the same "
        "replicates give each trust's probability of each segment.",
        f"Funnel plots: Spiegelhalter z-scores with {f.sr_method}-method overdispersion ({100 * f.trim_by:g}% "
        f"trimming, additive τ²), banded at {100 * f.band_level:g}%; limits adjusted only when φ > 1.",
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
    ("Likely range", "The range within which a trust's average score or rank lies in 95% of bootstrap replicates; "
                     "it shows how much the rank could change by chance."),
    ("Funnel plot", "A chart of each trust's value against its size, with limits showing the variation expected "
                    "by chance; trusts outside the limits are 'better' or 'worse than expected'."),
    ("Observed / expected", "A trust's events divided by the number expected for the population it serves, from "
                            "the demographic model; 1 is as expected."),
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
    from .config import file_sha256

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

    @classmethod
    def load(cls, work_dir, out_dir, inputs, methodology, catalogue, quarter) -> "ReportData":
        import pickle

        from . import __version__
        from .league import load_metric_results
        from .notebook_env import load_run

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
            from .productivity import opportunities

            self._productivity = opportunities({k: v["table"] for k, v in self.metric_data.items()}, self.catalogue,
                                               self.methodology, self.inputs.trusts, self.inputs.demographics)
        return self._productivity

    def write_tables(self) -> list[str]:
        """Tables computed for the report: the productivity opportunity (tables/productivity.csv)."""
        from .publish import write_csv

        write_csv(self.productivity, Path(self.out_dir) / "tables" / "productivity.csv")
        return ["tables/productivity.csv"]

    def _funnel_counts(self) -> pd.DataFrame:
        rows = []
        for mid, d in sorted(self.metric_data.items()):
            t = d["table"]
            if t["funnel_outcome"].notna().any():
                rows.append({"metric_id": mid, "n_worse": int((t["funnel_outcome"] == "worse than expected").sum()),
                             "n_better": int((t["funnel_outcome"] == "better than expected").sum())})
        return pd.DataFrame(rows, columns=["metric_id", "n_worse", "n_better"])

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
                             self.methodology.productivity.comparator,
                             (tuple(self.methodology.financial_override.from_segments),
                              self.methodology.financial_override.to_segment))
                + contents(items) + downloads(self.spreadsheet_name))

    def segments(self) -> str:
        return segment_distribution(self.league.table)

    def league_tables(self) -> str:
        has_move = self.movement is not None and not self.movement.empty
        parts = [league_intro(self.previous, has_move)]
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
        from .figures import load_saved

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
        from .publish import git_state

        return provenance_html(self.run, git_state(), input_checksums(self.inputs))
