"""The data tables of every page rendered in Python: what the ``table``, ``cell_content``, ``cell_attrs`` and
``spark`` macros of ``templates/pages/macros.html.j2`` wrote, byte for byte, without Jinja's per-cell work.

A trust profile holds seven tables of up to a few hundred cells and a release ~250 profiles, so the macros made a
million template calls and escapes; the macros now call :func:`table_html` and :func:`cell_html` (template globals,
:func:`leaguetables.publication.pages.environment`). Autoescaping is kept: every value is escaped by
:func:`markupsafe.escape` as Jinja's ``{{ value }}`` escapes it (a :class:`~markupsafe.Markup` value as it is), and a
value is read as Jinja reads ``value.name`` (an attribute, else an item, else undefined: ``_get``).
tests/test_html_table.py renders the macros as they were and these functions on the same tables and compares.
"""

from __future__ import annotations

from numbers import Number
from typing import Any

from markupsafe import Markup, escape

_UNDEFINED = object()
#: markupsafe's escapes (``&#34;`` and ``&#39;`` for the quotes, as Jinja writes them), for plain strings
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})


def _esc(value: Any) -> str:
    """``str(markupsafe.escape(value))``; a plain string without a character to escape (most cells) is returned as
    it is, without making a Markup object (~5x faster: a page escapes a thousand values)."""
    if type(value) is str:
        if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
            return value.translate(_ESCAPES)
        return value
    return str(escape(value))


def _get(obj: Any, name: str) -> Any:
    """``obj.name`` as Jinja's ``Environment.getattr`` reads it: the attribute, else the item, else undefined."""
    try:
        return getattr(obj, name)
    except AttributeError:
        pass
    try:
        return obj[name]
    except (TypeError, LookupError, AttributeError):
        return _UNDEFINED


def _plain(cell: Any) -> bool:
    """Jinja's ``cell is string or cell is number``."""
    return isinstance(cell, (str, Number))


def spark_html(s: Any) -> Markup:
    """The ``spark`` macro: a sparkline (:class:`leaguetables.publication.profiles.Spark`) as inline SVG."""
    alt, width, height = _esc(_get(s, "alt")), _esc(_get(s, "width")), _esc(_get(s, "height"))
    lines = "".join(f'<polyline points="{_esc(p)}"/>' for p in _get(s, "lines"))
    return Markup(
        f'<svg class="spark" role="img" aria-label="{alt}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" focusable="false"><title>{alt}</title>{lines}'
        f'<circle cx="{_esc(_get(s, "cx"))}" cy="{_esc(_get(s, "cy"))}" r="2.5"/></svg>'
    )


def _cell_inner(cell: Any) -> str:
    """A cell's content as plain ``str`` (a Markup operand would escape the text added to it)."""
    if _plain(cell):
        return _esc(cell)
    if _get(cell, "lines") is not _UNDEFINED and _get(cell, "alt") is not _UNDEFINED:
        return str(spark_html(cell))
    href = _get(cell, "href")
    if href is not _UNDEFINED and href is not None:
        return f'<a href="{_esc(href)}">{_esc(_get(cell, "text"))}</a>'
    text = _get(cell, "text")
    if text is not _UNDEFINED:
        return _esc(text)
    return "" if cell is None else _esc(cell)


def cell_html(cell: Any) -> Markup:
    """The ``cell_content`` macro: a cell's content — text (escaped), a number, Markup, a link or a sparkline —
    and its ``note`` as a second line."""
    note = _get(cell, "note")
    tail = f'<span class="unit">{_esc(note)}</span>' if note is not _UNDEFINED and note else ""
    return Markup(_cell_inner(cell) + tail)


def _classes(col: Any) -> str:
    """The ``cell_attrs`` macro of a header or a column (no ``data-sort``): its ``class`` attribute or ""."""
    n = len(col)
    classes = []
    if col[1]:
        classes.append("num")
    if n > 2 and col[2]:
        classes.append("nowrap")
    if n > 3 and col[3]:
        classes.append("name")
    if n > 5 and col[5]:
        classes.append(col[5])
    return f' class="{" ".join(_esc(c) for c in classes)}"' if classes else ""


def _header(col: Any) -> str:
    kind = col[6] if len(col) > 6 and col[6] else ("number" if col[1] else "text")
    hint = f'<span class="visually-hidden">{_esc(col[4])}</span>' if len(col) > 4 and col[4] else ""
    return f'<th scope="col"{_classes(col)} data-type="{_esc(kind)}">{_esc(col[0])}{hint}</th>'


def _row(row: Any, column_classes: list[str], row_header: Any) -> str:
    cells = _get(row, "cells")
    cells = row if cells is _UNDEFINED else cells
    out = ["<tr"]
    rid = _get(row, "id")
    if rid is not _UNDEFINED and rid:
        out.append(f' id="{_esc(rid)}"')
    data = _get(row, "data")
    if data is not _UNDEFINED:
        out.extend(f' data-{_esc(k)}="{_esc(v)}"' for k, v in data.items())
    out.append(">")
    for i, cell in enumerate(cells):
        tag = "th" if i == row_header else "td"
        out.append(f'<{tag} scope="row"' if tag == "th" else f"<{tag}")
        out.append(column_classes[i])
        if _plain(cell):
            out.append(f">{_esc(cell)}</{tag}>")
            continue
        sort = None if cell is None else _get(cell, "sort")
        if sort is not _UNDEFINED and sort is not None:
            out.append(f' data-sort="{_esc(sort)}"')
        out.append(f">{cell_html(cell)}</{tag}>")
    out.append("</tr>\n")
    return "".join(out)


def table_html(
    id: str,  # noqa: A002 - the macro's argument names
    caption: Any,
    columns: Any,
    rows: Any,
    row_header: Any = None,
    class_: Any = None,
    attrs: Any = None,
) -> Markup:
    """The ``table`` macro: caption, column headers with scope, an optional row-header column, class ``lt-table``
    and the ``<table>``'s attributes (see the macro's comment for the arguments)."""
    tid = _esc(id)
    extra = f" {_esc(class_)}" if class_ else ""
    attributes = "".join(f' {_esc(k)}="{_esc(v)}"' for k, v in (attrs or {}).items())
    head = "".join(_header(col) for col in columns)
    column_classes = [_classes(col) for col in columns]
    body = "".join(_row(row, column_classes, row_header) for row in rows)
    return Markup(
        f'<div class="table-wrap" role="region" aria-labelledby="{tid}-caption" tabindex="0">\n'
        f'<table id="{tid}" class="lt-table{extra}"{attributes}><caption id="{tid}-caption">{_esc(caption)}'
        f"</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>"
    )
