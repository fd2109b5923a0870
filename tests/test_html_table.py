"""The data tables rendered in Python (publication/html_table.py) are what the Jinja macros they replace wrote.

``tests/data/macros_jinja.html.j2`` keeps the ``table``, ``cell_content``, ``cell_attrs`` and ``spark`` macros as they
were in Jinja (templates/pages/macros.html.j2 before the change); both render the same tables — every kind of cell
(text needing escapes, Markup, int, float, numpy float, bool, None, links, notes, sort keys, sparklines), plain and
:class:`Row` rows with ``data-`` attributes and ids, row headers, classes, hints, sort kinds, ``<table>``
attributes — and must give the same bytes. The whole-publication claim (every published page byte-identical to
main's) was checked by publishing the demo quarter with both (the report of issue 13's export stage).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np
import pytest
from markupsafe import Markup

from leaguetables.publication import pages
from leaguetables.publication.profiles import Spark
from leaguetables.publication.report import Cell, Column, Row

pytestmark = pytest.mark.unit

OLD = (Path(__file__).parent / "data" / "macros_jinja.html.j2").read_text(encoding="utf-8")
CALL = (
    "{% from 'macros.html.j2' import table, cell_content %}"
    "{{ table(id, caption, columns, rows, row_header=row_header, class=cls, attrs=attrs) }}|"
    "{% for c in cells %}{{ cell_content(c) }}/{% endfor %}"
)


def _old_env() -> jinja2.Environment:
    new = pages.environment()
    return jinja2.Environment(
        loader=jinja2.DictLoader({"macros.html.j2": OLD, "call.html.j2": CALL}),
        autoescape=True,
        trim_blocks=new.trim_blocks,
        lstrip_blocks=new.lstrip_blocks,
        keep_trailing_newline=new.keep_trailing_newline,
        undefined=jinja2.StrictUndefined,
    )


def _new_env() -> jinja2.Environment:
    new = pages.environment()
    assert new.loader is not None
    return new.overlay(loader=jinja2.ChoiceLoader([jinja2.DictLoader({"call.html.j2": CALL}), new.loader]))


SPARK = Spark('Trend of "A & B"', 60, 16, ["0.0,1.0 2.0,3.5", "4,5"], "4.0", "5.0")
CELLS = [
    "plain",
    "a < b & \"c\" 'd'",
    Markup("<em>kept</em>"),
    3,
    2.5,
    np.float64(0.1 + 0.2),
    True,
    None,
    "",
    Cell("Link & name", "../trusts/R1.html", "R1 <code>", 4.25),
    Cell("No link", None, None, None),
    Cell("Sorted", None, "", "b&c"),
    Cell("Noted", note="unit"),
    SPARK,
]
COLUMNS = [
    ("Name", False),
    ("Value", True),
    Column("Wide & long", False, True, True, "hint <x>", "extra cls", "text"),
    Column("Kind", True, False, False, "", "", "number"),
    ("Two", False, True),
    ("Three", True, False, True),
    ("Five", False, False, False, "", "c5"),
]


def _rows() -> list:
    width = len(COLUMNS)
    plain = [CELLS[i : i + width] for i in range(0, len(CELLS), width)]
    plain = [r + [""] * (width - len(r)) for r in plain]
    rows: list = list(plain)
    rows.append(Row(plain[0], {"region": "North & East", "segment": 2}, "row-1"))
    rows.append(Row(plain[1], {}, None))
    rows.append(Row(plain[1]))
    return rows


@pytest.mark.parametrize("row_header", [None, 0, 2])
@pytest.mark.parametrize(
    ("cls", "attrs"), [(None, None), ("compact", {"data-filters": "region segment", "data-noun": 'trust "x"'})]
)
def test_tables_render_as_the_jinja_macros_did(row_header, cls, attrs):
    args: dict = dict(
        id="t-1", caption="Caption & <b>", columns=COLUMNS, rows=_rows(), row_header=row_header, cls=cls, attrs=attrs
    )
    cells = CELLS + [Cell(Markup("<i>m</i>"), "a?b=1&c=2")]
    old = _old_env().get_template("call.html.j2").render(**args, cells=cells)
    new = _new_env().get_template("call.html.j2").render(**args, cells=cells)
    assert new == old
    assert "&lt;b&gt;" in new and 'data-region="North &amp; East"' in new and "<em>kept</em>" in new


def test_empty_table_and_markup_caption_render_as_before():
    args: dict = dict(id="e", caption=Markup("<abbr>A</abbr>"), columns=[("Only", False)], rows=[], row_header=None)
    old = _old_env().get_template("call.html.j2").render(**args, cls=None, attrs={}, cells=[])
    new = _new_env().get_template("call.html.j2").render(**args, cls=None, attrs={}, cells=[])
    assert new == old


def test_a_row_longer_than_its_columns_is_refused_as_before():
    args: dict = dict(
        id="x", caption="c", columns=[("A", False)], rows=[["1", "2"]], row_header=None, cls=None, attrs={}
    )
    with pytest.raises(jinja2.UndefinedError):
        _old_env().get_template("call.html.j2").render(**args, cells=[])
    with pytest.raises(IndexError):
        _new_env().get_template("call.html.j2").render(**args, cells=[])
