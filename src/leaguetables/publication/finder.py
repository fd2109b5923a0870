"""Find a trust, and tables a reader can work with: the data behind the search box on every published page and the
plain A–Z index of trusts (its no-JavaScript fallback).

Every page carries, in its header (``templates/leaguetables/site_header.html``):

* a link to the A–Z index of trusts (``trusts/index.html``) — the whole of the feature without JavaScript;
* a search box (``_search.html.j2``: WAI-ARIA combobox with a listbox popup and a live region), shown by the shared
  inline script (``_script.html.j2``) and fed by a small inline JSON list of the published trusts
  (:func:`search_json`, the template variable ``search_data``): name, code, type, region, subtype, and the town and
  ICB when the register has them.

The JSON is the same bytes on every page of a quarter (rows in name order, then code; links relative to the
publication's root); each page says where the root is (``root``, written as ``data-root``), so one list serves the
front page (``""``) and the pages one folder down (``"../"``).

The same script makes every table marked ``class="lt-table"`` sortable (header buttons, ``aria-sort``) and, when the
table names ``data-filters`` (e.g. ``"region segment subtype"``), filterable by the matching ``data-*`` attributes
of its rows, with the number of rows shown announced in a live region (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from leaguetables.config import TRUST_TYPE_LABELS
from leaguetables.inputs.contract import quarter_label
from leaguetables.publication import pages
from leaguetables.publication.report import input_checksums, profile_href, provenance_html, site_label
from leaguetables.run.publish import git_state

TRUSTS_DIR = "trusts"
INDEX_FILE = "index.html"  # trusts/index.html: the A–Z index, the search box's no-JavaScript fallback
# search fields: (key in the JSON, column of the league table or register); optional ones only when present
FIELDS = (("name", "trust_name"), ("code", "trust_code"), ("type", "trust_type"), ("region", "region"),
          ("subtype", "trust_subtype"))
OPTIONAL_FIELDS = (("town", "town"), ("icb", "icb_name"))
CATEGORICAL = ("type", "region", "subtype", "town", "icb")  # written once each in the JSON (see search_json)
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def search_rows(table: pd.DataFrame, trusts: pd.DataFrame | None = None) -> tuple[list[str], list[list[str]]]:
    """The fields and rows of the search data: one row per trust of the league ``table`` (the trusts that have a
    profile), in name order then code; ``trusts`` (the register) supplies the optional town and ICB columns."""
    t = table.drop_duplicates("trust_code").copy()
    optional = [(k, c) for k, c in OPTIONAL_FIELDS
                if c in t.columns or (trusts is not None and c in trusts.columns)]
    for _, col in optional:
        if col not in t.columns:
            t = t.merge(trusts[["trust_code", col]].drop_duplicates("trust_code"), on="trust_code", how="left")
    fields = [k for k, _ in FIELDS] + [k for k, _ in optional] + ["href"]
    rows = []
    for r in t.to_dict("records"):
        row = [_text(r.get(col)) for _, col in (*FIELDS, *optional)]
        row[2] = TRUST_TYPE_LABELS.get(row[2], row[2])
        rows.append([*row, profile_href(str(r["trust_code"]))])
    rows.sort(key=lambda row: (row[0].casefold(), row[0], row[1]))
    return fields, rows


def search_json(table: pd.DataFrame, trusts: pd.DataFrame | None = None) -> str:
    """The search data as compact JSON, safe inside ``<script type="application/json">`` (``<``, ``>``, ``&``
    escaped), deterministic (fixed key order, sorted rows and values).

    ``{"fields": [...], "values": {field: [sorted values]}, "rows": [[...], ...]}``: the repeated fields (type,
    region, subtype, town, ICB) are written once in ``values`` and as their index in the rows; ``href`` is ``""``
    when the profile is ``trusts/<code>.html`` — a third of the size of the plain list, on every page.
    """
    fields, rows = search_rows(table, trusts)
    values = {f: sorted({r[i] for r in rows}) for i, f in enumerate(fields) if f in CATEGORICAL}
    index = {f: {v: k for k, v in enumerate(vs)} for f, vs in values.items()}
    code, href = fields.index("code"), fields.index("href")
    encoded = []
    for r in rows:
        row = [index[f][v] if f in index else v for f, v in zip(fields, r)]
        row[href] = "" if r[href] == f"{TRUSTS_DIR}/{r[code]}.html" else r[href]
        encoded.append(row)
    text = json.dumps({"fields": fields, "values": values, "rows": encoded}, ensure_ascii=False,
                      separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def index_rows(table: pd.DataFrame) -> list[dict]:
    """Rows of the A–Z index: every trust with a profile, in name order, with its initial letter."""
    fields, rows = search_rows(table)
    out = []
    for row in rows:
        r = dict(zip(fields, row))
        r["href"] = r["href"].split("/", 1)[1]  # the index sits beside the profiles
        r["letter"] = (r["name"][:1] or "#").upper() if r["name"][:1].isalpha() else "#"
        out.append(r)
    return out


def write_trust_index(data, folder: Path, data_json: str) -> int:
    """Write ``trusts/index.html``, the A–Z index of trusts (name, code, type, region → profile); return bytes."""
    rows = index_rows(data.league.table)
    letters = sorted({r["letter"] for r in rows})
    ql = quarter_label(data.quarter)
    context = {
        "title": f"Trusts A to Z: NHS trust league tables {ql}",
        "breadcrumbs": [("../index.html", f"League tables {ql}"), (None, "Trusts A to Z")],
        "site_label": site_label(data.run.get("source", "files")),
        "provenance": Markup(provenance_html(data.run, git_state(), input_checksums(data.inputs))),
        "root": "../", "search_data": data_json,
        "rows": rows, "letters": letters, "quarter_label": ql,
    }
    return pages.write(Path(folder) / INDEX_FILE, pages.render("trust_index.html.j2", **context))
