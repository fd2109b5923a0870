"""``trusts/index.html``: the plain A–Z index of trusts (name, code, type, region → profile), the search box's
no-JavaScript fallback. A minimal page; the ``html`` branch's ``publication/site.py`` builds the full one (a
filterable table, per-area links) and supersedes this module when both are merged."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from leaguetables.inputs.contract import quarter_label
from leaguetables.publication import pages
from leaguetables.publication.finder import search_rows
from leaguetables.publication.report import ReportData, input_checksums, profile_href, provenance_html, site_label
from leaguetables.run.publish import git_state

INDEX_FILE = "index.html"  # in trusts/, beside the profiles


def index_rows(data: ReportData) -> list[dict]:
    """Rows of the A–Z index: every trust with a profile, in name order, with its initial letter."""
    fields, rows = search_rows(data.league.table, data.inputs.trusts, profile_href)
    out = []
    for row in rows:
        r = dict(zip(fields, row))
        r["href"] = r["href"].split("/", 1)[1]  # the index sits beside the profiles
        r["letter"] = r["name"][:1].upper() if r["name"][:1].isalpha() else "#"
        out.append(r)
    return out


def write_trust_index(data: ReportData, folder: Path) -> int:
    """Write ``<folder>/index.html`` (``folder``: the release's ``trusts/``); return its size in bytes."""
    rows = index_rows(data)
    ql = quarter_label(data.quarter)
    context = {
        "title": f"Trusts A to Z: NHS trust league tables {ql}",
        "breadcrumbs": [("../index.html", f"League tables {ql}"), (None, "Trusts A to Z")],
        "site_label": site_label(data.run.get("source", "files")),
        "provenance": Markup(provenance_html(data.run, git_state(), input_checksums(data.inputs))),
        "root": "../", "search_data": data.search_data,
        "rows": rows, "letters": sorted({r["letter"] for r in rows}), "quarter_label": ql,
    }
    return pages.write(Path(folder) / INDEX_FILE, pages.render("trust_index.html.j2", **context))
