"""Find a trust, and tables a reader can work with: the data behind the search box on every published page and the
plain A–Z index of trusts (its no-JavaScript fallback).

The league table's rows and the register give the data; :attr:`leaguetables.publication.report.ReportData.search_data`
holds them for every page writer. Every page carries, in its header (``templates/leaguetables/site_header.html``):

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
from collections.abc import Callable

import pandas as pd

from leaguetables.config import TRUST_TYPE_LABELS

TRUSTS_DIR = "trusts"
# search fields: (key in the JSON, column of the league table or register); optional ones only when present
FIELDS = (
    ("name", "trust_name"),
    ("code", "trust_code"),
    ("type", "trust_type"),
    ("region", "region"),
    ("subtype", "trust_subtype"),
)
OPTIONAL_FIELDS = (("town", "town"), ("icb", "icb_name"))
CATEGORICAL = ("type", "region", "subtype", "town", "icb")  # written once each in the JSON (see search_json)
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _default_href(code: str) -> str:
    return f"{TRUSTS_DIR}/{code}.html"


def search_rows(
    table: pd.DataFrame, trusts: pd.DataFrame | None = None, href: Callable[[str], str] = _default_href
) -> tuple[list[str], list[list[str]]]:
    """The fields and rows of the search data: one row per trust of the league ``table`` (the trusts that have a
    profile), in name order then code; ``trusts`` (the register) supplies the optional town and ICB columns;
    ``href`` gives a profile's link from the release root (``report.profile_href``)."""
    t = table.drop_duplicates("trust_code").copy()
    optional = [(k, c) for k, c in OPTIONAL_FIELDS if c in t.columns or (trusts is not None and c in trusts.columns)]
    for _, col in optional:
        if col not in t.columns and trusts is not None:
            t = t.merge(trusts[["trust_code", col]].drop_duplicates("trust_code"), on="trust_code", how="left")
    fields = [k for k, _ in FIELDS] + [k for k, _ in optional] + ["href"]
    rows = []
    for r in t.to_dict("records"):
        row = [_text(r.get(col)) for _, col in (*FIELDS, *optional)]
        row[2] = TRUST_TYPE_LABELS.get(row[2], row[2])
        rows.append([*row, href(str(r["trust_code"]))])
    rows.sort(key=lambda row: (row[0].casefold(), row[0], row[1]))
    return fields, rows


def search_json(
    table: pd.DataFrame, trusts: pd.DataFrame | None = None, href: Callable[[str], str] = _default_href
) -> str:
    """The search data as compact JSON, safe inside ``<script type="application/json">`` (``<``, ``>``, ``&``
    escaped), deterministic (fixed key order, sorted rows and values).

    ``{"fields": [...], "values": {field: [sorted values]}, "rows": [[...], ...]}``: the repeated fields (type,
    region, subtype, town, ICB) are written once in ``values`` and as their index in the rows; ``href`` is ``""``
    when the profile is ``trusts/<code>.html`` — a third of the size of the plain list, on every page.
    """
    fields, rows = search_rows(table, trusts, href)
    values = {f: sorted({r[i] for r in rows}) for i, f in enumerate(fields) if f in CATEGORICAL}
    index = {f: {v: k for k, v in enumerate(vs)} for f, vs in values.items()}
    code, link = fields.index("code"), fields.index("href")
    encoded = []
    for r in rows:
        row = [index[f][v] if f in index else v for f, v in zip(fields, r)]
        row[link] = "" if r[link] == _default_href(r[code]) else r[link]
        encoded.append(row)
    text = json.dumps({"fields": fields, "values": values, "rows": encoded}, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)
