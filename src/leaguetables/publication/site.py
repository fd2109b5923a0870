"""The pages of a release beside the front page and the profiles: one page per metric (``metrics/<id>.html``), one
"where you live" page per area (``regions/<slug>.html``, and one per area of every other grouping of
:data:`leaguetables.publication.report.GROUPINGS` the trust register has) and the A–Z index of trusts
(``trusts/index.html``, the no-JavaScript way to find a trust).

Each page is a context of plain values from :class:`~leaguetables.publication.report.ReportData` rendered by one
Jinja2 template extending ``templates/pages/base.html.j2``; the same data give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leaguetables.config import TRUST_TYPE_LABELS, TRUST_TYPE_PLURAL, TRUST_TYPES
from leaguetables.inputs.contract import quarter_label
from leaguetables.publication import pages
from leaguetables.publication.report import (
    METRICS_DIR,
    TRUST_INDEX,
    Cell,
    Column,
    Grouping,
    ReportData,
    _missing,
    active_groupings,
    area_file,
    frame_table,
    metric_page_file,
    movement_sort,
    movement_text,
    profile_file,
    row_filters,
    site_label,
    source_notice,
    thresholds_notice,
    trust_link,
)

SPECIAL = {"special_cause_improvement": "improvement", "special_cause_concern": "concern"}


def _common(data: ReportData, title: str, breadcrumbs: list, root: str = "../") -> dict:
    """What every page of the release carries: title, breadcrumbs, header label, notices and provenance."""
    source = data.run.get("source", "files")
    return {
        "title": title,
        "breadcrumbs": breadcrumbs,
        "root": root,
        "site_label": site_label(source),
        "thresholds_notice": thresholds_notice(data.methodology),
        "source_notice": source_notice(source, None, data.run.get("omitted_metrics") or ()),
        "provenance": data.provenance,
        "quarter_label": quarter_label(data.quarter),
        "search_data": data.search_data,
    }


def write_metric_pages(data: ReportData, folder: Path) -> list[str]:
    """``metrics/<id>.html`` for every metric of the run: definition, funnel plots, data tables, model."""
    written = []
    ql = quarter_label(data.quarter)
    for m in data.metrics_run:
        ctx = _common(
            data,
            f"{m.name}: NHS trust league tables {ql}",
            [("../index.html", f"League tables {ql}"), ("../index.html#metrics", "Metrics"), (None, m.name)],
        )
        ctx.update(data.metric_page(m, "../"))
        pages.write(folder / metric_page_file(m.id), pages.render("metric.html.j2", **ctx))
        written.append(f"{METRICS_DIR}/{metric_page_file(m.id)}")
    return written


def moved_metrics(data: ReportData) -> dict[str, list[tuple[str, str]]]:
    """Trust code → (metric name, "improvement"/"concern") of the metrics whose latest quarter shows special cause
    variation on the trust's XmR chart (the metrics that moved beyond common-cause variation), catalogue order."""
    results, _ = data.spc
    out: dict[str, list[tuple[str, str]]] = {}
    for m in data.metrics_run:
        for code, r in sorted(results.get(m.id, {}).items()):
            if r.variation in SPECIAL:
                out.setdefault(code, []).append((m.name, SPECIAL[r.variation]))
    return out


def _area_rows(data: ReportData, codes: list[str], moved: dict, filters: dict) -> list[dict]:
    lt = data.league.table.set_index("trust_code")
    mv = {} if data.movement is None else {r.trust_code: r for r in data.movement.itertuples(index=False)}
    trusts = data.inputs.trusts.set_index("trust_code")
    rows = []
    for c in codes:
        info = trusts.loc[c]
        r = lt.loc[c] if c in lt.index else None
        interval = (
            "[x]"
            if r is None or "rank_interval_lower" not in lt.columns or _missing(r["rank_interval_lower"])
            else Cell(
                f"{r['rank_interval_lower']:.0f} to {r['rank_interval_upper']:.0f}",
                sort=float(r["rank_interval_lower"]),
            )
        )
        m = mv.get(c)
        rows.append(
            {
                "type": str(info["trust_type"]),
                "data": filters.get(c, {"code": c}),
                "cells": [
                    trust_link(c, str(info["trust_name"]), "../", note=c),
                    "" if _missing(info.get("trust_subtype")) else str(info["trust_subtype"]),
                    "[x]" if r is None or _missing(r["segment"]) else str(int(r["segment"])),
                    "[x]" if r is None else Cell(str(r["rank_label"]), sort=float(r["rank"])),
                    interval,
                    "[z]" if m is None else Cell(movement_text(m), sort=movement_sort(m)),
                    "; ".join(f"{name} ({kind})" for name, kind in moved.get(c, [])) or "none",
                ],
            }
        )
    return rows


AREA_COLUMNS = [
    Column("Trust", name=True),
    Column("Subtype"),
    Column("Segment", True),
    Column("Rank", True, True),
    Column("Rank interval", True, True),
    Column("Movement since the previous quarter", cls="movement", kind="number"),
    Column("Metrics that moved (latest quarter)"),
]


def _listed(data: ReportData) -> pd.DataFrame:
    """The register rows of the organisations with a profile: those in the league table (a run whose metrics
    apply to no ICB, for example, has no ICB profile to link to)."""
    reg = data.inputs.trusts
    return reg[reg["trust_code"].isin(set(data.league.table["trust_code"]))]


def area_context(data: ReportData, grouping: Grouping, area: str, moved: dict, filters: dict) -> dict:
    """One area's page: its trusts by type, with segment, rank, rank interval, movement and the metrics that
    moved."""
    reg = _listed(data)
    codes = sorted(
        reg.loc[reg[grouping.column].astype(str) == area, "trust_code"].astype(str),
        key=lambda c: (str(reg.set_index("trust_code").loc[c, "trust_name"]).lower(), c),
    )
    rows = _area_rows(data, codes, moved, filters)
    ql = quarter_label(data.quarter)
    tables = []
    for t in TRUST_TYPES:
        body = [{"cells": r["cells"], "data": r["data"]} for r in rows if r["type"] == t]
        if body:
            tables.append(
                {
                    "plural": TRUST_TYPE_PLURAL[t],
                    "id": f"area-{t.replace('_', '-')}",
                    "rows": body,
                    "attrs": {
                        "data-filters": "segment subtype",
                        "data-noun": "trust|trusts",
                        "data-label": f"{TRUST_TYPE_PLURAL[t]} in {area}",
                    },
                    "caption": f"{TRUST_TYPE_PLURAL[t]} in {area}, {ql}: segment, rank within all "
                    f"{TRUST_TYPE_PLURAL[t].lower()} in England, rank interval, movement and the "
                    "metrics that moved",
                }
            )
    ctx = _common(
        data,
        f"{area}: NHS trusts, league tables {ql}",
        [
            ("../index.html", f"League tables {ql}"),
            ("../index.html#find", grouping.plural[:1].upper() + grouping.plural[1:]),
            (None, area),
        ],
    )
    ctx.update(
        {
            "area": area,
            "grouping": grouping,
            "n_trusts": len(codes),
            "tables": tables,
            "columns": AREA_COLUMNS,
            "previous_label": quarter_label(data.previous) if data.previous else "",
        }
    )
    return ctx


def write_area_pages(data: ReportData, root: Path) -> list[str]:
    """The pages of every area of every grouping the register has (``regions/<slug>.html``, …)."""
    moved, filters = moved_metrics(data), row_filters(data.inputs.trusts, data.league.table)
    written = []
    listed = _listed(data)
    for g in active_groupings(listed):
        for area in sorted(listed[g.column].dropna().astype(str).unique()):
            rel = f"{g.folder}/{area_file(area)}"
            pages.write(root / rel, pages.render("area.html.j2", **area_context(data, g, area, moved, filters)))
            written.append(rel)
    return written


def trust_index_context(data: ReportData) -> dict:
    """The A–Z index of trusts: name → profile, code, type, town (when the register has it) and areas."""
    reg = _listed(data).copy()
    reg["_key"] = reg["trust_name"].astype(str).str.lower()
    reg = reg.sort_values(["_key", "trust_code"], kind="mergesort")
    groupings = active_groupings(data.inputs.trusts)
    extra = [c for c in ("town",) if c in reg.columns]
    filters = row_filters(data.inputs.trusts, data.league.table)
    rows = []
    for r in reg.to_dict("records"):
        code, name = str(r["trust_code"]), str(r["trust_name"])
        letter = name[:1].upper() if name[:1].isalpha() else "#"
        cells = {
            "Trust": Cell(name, profile_file(code)),
            "Code": code,
            "Type": TRUST_TYPE_LABELS.get(r["trust_type"], str(r["trust_type"])),
        }
        for c in extra:
            cells[c.capitalize()] = "" if _missing(r.get(c)) else str(r[c])
        for g in groupings:
            v = r.get(g.column)
            cells[g.label[:1].upper() + g.label[1:]] = (
                "" if _missing(v) else Cell(str(v), f"../{g.folder}/{area_file(str(v))}")
            )
        rows.append((letter, cells, filters.get(code, {"code": code})))
    letters = sorted({x[0] for x in rows}, key=lambda s: (s == "#", s))
    row_ids, first = [], set()
    for letter, _, _ in rows:
        row_ids.append(None if letter in first else f"letter-{'other' if letter == '#' else letter.lower()}")
        first.add(letter)
    df = pd.DataFrame([c for _, c, _ in rows])
    tab = frame_table(
        df,
        f"All {len(df)} trusts from A to Z, each linking to its profile",
        "trust-index",
        name_column="Trust",
        row_data=[d for _, _, d in rows],
    )
    tab.rows = [r._replace(id=i) for r, i in zip(tab.rows, row_ids)]
    tab.attrs = {
        "data-filters": " ".join(["type", *(g.key for g in groupings), "segment"]),
        "data-noun": "trust|trusts",
        "data-label": "Trusts A to Z",
    }
    ql = quarter_label(data.quarter)
    ctx = _common(
        data,
        f"Trusts A to Z: NHS trust league tables {ql}",
        [("../index.html", f"League tables {ql}"), (None, "Trusts A to Z")],
    )
    ctx.update(
        {
            "table": tab,
            "letters": [(x, f"letter-{'other' if x == '#' else x.lower()}") for x in letters],
            "n_trusts": len(df),
            "groupings": groupings,
        }
    )
    return ctx


def write_trust_index(data: ReportData, root: Path) -> str:
    pages.write(root / TRUST_INDEX, pages.render("trust_index.html.j2", **trust_index_context(data)))
    return TRUST_INDEX


def write_site(data: ReportData, root: Path) -> list[str]:
    """Every page of this module; returns their paths relative to the release root."""
    return [*write_metric_pages(data, root / METRICS_DIR), *write_area_pages(data, root), write_trust_index(data, root)]
