"""The accessible spreadsheet of a quarter: ``tables/league_tables_<quarter>.ods`` (OpenDocument, GOV.UK's open
standard), following the Analysis Function guidance "Releasing statistics in spreadsheets":

* cover, contents and notes sheets, then one table per sheet;
* each sheet's title in A1, a few lines of context below it in column A (what the sheet holds, which notes
  apply, the source, the shorthand), then the table: one header row — marked up as ODF header rows and as a
  named database range with a header — against the left edge, with nothing below it;
* no merged cells, no blank rows or columns, no colour, images, filters, frozen panes or hidden rows;
* a cell that would be empty holds shorthand instead: ``[c]`` suppressed by the source, ``[x]`` not available,
  ``[z]`` not applicable; notes are cited as ``[note 1]`` in the context lines, never in data cells;
* document title and language set; the workbook opens on the cover sheet with the cursor in A1.

Each data sheet holds exactly the figures of one published CSV file (``tables/…``): numbers are written with
the CSV's own text as their value, so the sheet reads back equal to the CSV.

Why the XML is written here rather than through gptables or the odfpy DOM: gptables writes only XLSX, and its
conversion to ODS needs LibreOffice, too heavy for CI; odfpy's DOM builds a quarter's ~100,000 cells in about
half a minute and stamps every zip entry with the current time. The ODF written here is small and regular
(content, styles, meta, settings, manifest); the tests read it back with odfpy and pandas (``engine="odf"``),
check its table markup, and check that two writes give identical bytes: the zip entries are written in a fixed
order with a fixed date, and meta.xml carries no creation or modification date.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

import pandas as pd

from leaguetables.config import Catalogue, Methodology
from leaguetables.inputs.contract import quarter_label, quarter_period
from leaguetables.publication.report import SOURCE_LABELS, SOURCE_NOTICES

MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
SHORTHAND = {"[c]": "suppressed by the source (confidential)", "[x]": "not available", "[z]": "not applicable"}
NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
    'xmlns:config="urn:oasis:names:tc:opendocument:xmlns:config:1.0"'
)


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_SPECIAL = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')  # what xml() changes


def xml(text) -> str:
    """Escaped for XML; characters XML 1.0 cannot hold (C0 controls other than tab and line ends) are dropped, so no
    cell can make the document unreadable."""
    text = str(text)
    if not _XML_SPECIAL.search(text):  # most cells (numbers, codes): nothing to change
        return text
    return _xml_escape(_XML_INVALID.sub("", text), {'"': "&quot;"})


@dataclass
class Sheet:
    """One worksheet: a title (A1), context lines below it, and optionally one table (header + rows).

    Cells are ``(type, value)``: ``("string", text)``, ``("float", text as in the CSV)``,
    ``("boolean", True/False)`` or ``("link", (text, "#Sheet.A1"))``.
    """

    name: str
    title: str
    lines: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[tuple]] = field(default_factory=list)
    source: str | None = None  # the CSV the table holds, relative to the release folder
    #: the rows as content.xml holds them (:meth:`rows_xml`), made once; a :class:`SheetCache` keeps them with the cells
    body: str | None = field(default=None, repr=False)

    @property
    def header_row(self) -> int:
        """0-based row index of the table's header row (title and context lines come first)."""
        return 1 + len(self.lines)

    def rows_xml(self) -> str:
        """The table's rows (not the header) as ``<table:table-row>`` elements of content.xml."""
        if self.body is None:
            self.body = "".join(
                "<table:table-row>" + "".join(_cell(k, v) for k, v in row) + "</table:table-row>" for row in self.rows
            )
        return self.body


class SheetCache:
    """The cells of CSV tables (:func:`csv_sheet`) and their rows as content.xml (:meth:`Sheet.rows_xml`), by the
    SHA-256 of each file's bytes, which are all they depend on: the pipeline fills it with the tables already
    written while the league notebook runs (:meth:`add`), and the workbook reuses them only for a file whose bytes
    are the same when it is written."""

    def __init__(self, store=None) -> None:
        self._tables: dict[str, tuple[list[str], list[list[tuple]], str]] = {}
        #: where the cells are kept between runs by the same key (a DerivedCache of the run's report cache), or None
        self.store = store

    def table(self, csv_path: Path) -> tuple[list[str], list[list[tuple]], str]:
        """``(header, rows, rows as content.xml)`` of a CSV file, made now unless a file of the same bytes was (in
        this run, or in an earlier one when the cache has a ``store``)."""
        data = Path(csv_path).read_bytes()
        key = hashlib.sha256(data).hexdigest()
        if key not in self._tables:
            made = lambda: _sheet_cells(data)  # noqa: E731
            self._tables[key] = made() if self.store is None else self.store.sheet(f"sheet\0{key}", made)
        return self._tables[key]

    def add(self, paths) -> None:
        """Make the cells and rows of ``paths`` now (CSV files that will not change before the workbook is written,
        or whose change the content key catches)."""
        for path in paths:
            self.table(path)


def _column_letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _fill_value(status, i: int, all_empty: bool) -> str:
    if all_empty:
        return "[z]"
    if status is not None and status[i] == "suppressed":
        return "[c]"
    return "[x]"


def csv_sheet(
    csv_path: Path, name: str, title: str, lines: list[str], source: str, cache: SheetCache | None = None
) -> Sheet:
    """A sheet holding one CSV file: CSV text as cell values, shorthand for empty cells (see module docstring).

    Empty cells: ``[z]`` when the whole column is empty (the quantity does not apply to this table, e.g. the
    expected value of a metric without a demographic model) and in the ``revision`` column (rows not revised);
    ``[c]`` on a row whose ``status`` is
    ``suppressed``; ``[x]`` otherwise (not available: not submitted, not computed). ``cache``: cells already made
    from a file of the same bytes are reused.
    """
    cache = cache or SheetCache()
    header, rows, body = cache.table(csv_path)
    return Sheet(name=name, title=title, lines=lines, header=header, rows=rows, source=source, body=body)


def _sheet_cells(data: bytes) -> tuple[list[str], list[list[tuple]], str]:
    """``(header, rows, rows as content.xml)`` of a CSV file's bytes (:class:`SheetCache`)."""
    header, rows = _csv_cells(data)
    return header, rows, Sheet("", "", header=header, rows=rows).rows_xml()


def _csv_cells(data: bytes) -> tuple[list[str], list[list[tuple]]]:
    """The header and the cells of a CSV file's bytes (see :func:`csv_sheet`)."""
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[])
    typed = pd.read_csv(io.BytesIO(data))
    status = text["status"].to_numpy() if "status" in text.columns else None
    header = [str(c) for c in text.columns]
    kinds = {}
    for c in text.columns:
        dt = typed[c].dtype
        vals = set(text[c]) - {""}
        if pd.api.types.is_bool_dtype(dt) or (vals and vals <= {"True", "False"}):
            kinds[c] = "boolean"
        elif pd.api.types.is_numeric_dtype(dt):
            kinds[c] = "float"
        else:
            kinds[c] = "string"
    # [z] for a column empty throughout, and for the revision marks column (written by --revise) on rows not revised
    empty_cols = {c for c in text.columns if (text[c] == "").all() or c == "revision"}
    rows = []
    cols = list(text.columns)
    arrays = [text[c].to_numpy() for c in cols]
    for i in range(len(text)):
        row = []
        for c, arr in zip(cols, arrays):
            v = arr[i]
            if v == "":
                row.append(("string", _fill_value(status, i, c in empty_cols)))
            elif kinds[c] == "float":
                try:
                    finite = math.isfinite(float(v))
                except ValueError:
                    finite = False
                row.append(("float", v) if finite else ("string", "[x]"))
            elif kinds[c] == "boolean":
                row.append(("boolean", v == "True"))
            else:
                row.append(("string", v))
        rows.append(row)
    return header, rows


# ------------------------------------------------------------------------------------------------------- writing
def _cell(kind: str, value, style: str | None = None) -> str:
    st = f' table:style-name="{style}"' if style else ""
    if kind == "float":
        return (
            f'<table:table-cell{st} office:value-type="float" office:value="{xml(value)}"><text:p>{xml(value)}'
            "</text:p></table:table-cell>"
        )
    if kind == "boolean":
        b = "true" if value else "false"
        return (
            f'<table:table-cell{st} office:value-type="boolean" office:boolean-value="{b}"><text:p>'
            f"{'TRUE' if value else 'FALSE'}</text:p></table:table-cell>"
        )
    if kind == "link":
        label, href = value
        return (
            f'<table:table-cell{st} office:value-type="string"><text:p><text:a xlink:type="simple" '
            f'xlink:href="{xml(href)}">{xml(label)}</text:a></text:p></table:table-cell>'
        )
    return f'<table:table-cell{st} office:value-type="string"><text:p>{xml(value)}</text:p></table:table-cell>'


def _widths(sheet: Sheet) -> list[float]:
    """Column widths in cm from the longest of the header and the first 500 values (title lines overflow)."""
    n = max(len(sheet.header), 1)
    longest = [len(h) for h in sheet.header] or [0]
    for row in sheet.rows[:500]:
        for j, (kind, v) in enumerate(row):
            text = v[0] if kind == "link" else ("FALSE" if kind == "boolean" else str(v))
            longest[j] = max(longest[j], len(text))
    if not sheet.header:
        return [18.0]
    return [min(max(0.22 * longest[j] + 0.4, 1.8), 12.0) for j in range(n)]


def content_xml(sheets: list[Sheet]) -> str:
    widths: dict[float, None] = {}
    for s in sheets:
        for w in _widths(s):
            widths.setdefault(round(w * 2) / 2, None)
    col_styles = {w: f"co{i + 1}" for i, w in enumerate(sorted(widths))}
    auto = [
        f'<style:style style:name="{name}" style:family="table-column"><style:table-column-properties '
        f'fo:break-before="auto" style:column-width="{w:.1f}cm"/></style:style>'
        for w, name in col_styles.items()
    ]
    auto += [
        '<style:style style:name="title" style:family="table-cell" style:parent-style-name="Default">'
        '<style:text-properties fo:font-size="14pt" fo:font-weight="bold"/></style:style>',
        '<style:style style:name="head" style:family="table-cell" style:parent-style-name="Default">'
        '<style:table-cell-properties fo:wrap-option="wrap"/>'
        '<style:text-properties fo:font-weight="bold"/></style:style>',
        '<style:style style:name="ta1" style:family="table"><style:table-properties table:display="true" '
        'style:writing-mode="lr-tb"/></style:style>',
    ]
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<office:document-content {NS} office:version="1.2">',
        "<office:automatic-styles>",
        *auto,
        "</office:automatic-styles>",
        "<office:body><office:spreadsheet>",
    ]
    ranges = []
    for s in sheets:
        out.append(f'<table:table table:name="{xml(s.name)}" table:style-name="ta1">')
        for w in _widths(s):
            out.append(f'<table:table-column table:style-name="{col_styles[round(w * 2) / 2]}"/>')
        out.append(f"<table:table-row>{_cell('string', s.title, 'title')}</table:table-row>")
        for line in s.lines:
            out.append(f"<table:table-row>{_cell('string', line)}</table:table-row>")
        if s.header:
            out.append(
                "<table:table-header-rows><table:table-row>"
                + "".join(_cell("string", h, "head") for h in s.header)
                + "</table:table-row></table:table-header-rows>"
            )
            out.append(s.rows_xml())
            first, last = s.header_row + 1, s.header_row + 1 + len(s.rows)
            ranges.append(
                f'<table:database-range table:name="table_{xml(s.name)}" table:target-range-address='
                f'"{xml(s.name)}.A{first}:{xml(s.name)}.{_column_letters(len(s.header) - 1)}{last}" '
                'table:contains-header="true" table:display-filter-buttons="false"/>'
            )
        out.append("</table:table>")
    if ranges:
        out += ["<table:database-ranges>", *ranges, "</table:database-ranges>"]
    out.append("</office:spreadsheet></office:body></office:document-content>")
    return "".join(out)


def styles_xml() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-styles {NS} office:version="1.2"><office:styles>'
        '<style:default-style style:family="table-cell"><style:text-properties fo:font-size="11pt" '
        'fo:language="en" fo:country="GB"/></style:default-style>'
        '<style:style style:name="Default" style:family="table-cell"/>'
        "</office:styles></office:document-styles>"
    )


def meta_xml(title: str, generator: str) -> str:
    """Title, language and generator; deliberately no creation or modification date (byte-identical output)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-meta {NS} office:version="1.2"><office:meta>'
        f"<meta:generator>{xml(generator)}</meta:generator><dc:title>{xml(title)}</dc:title>"
        "<dc:language>en-GB</dc:language></office:meta></office:document-meta>"
    )


def settings_xml(sheets: list[Sheet]) -> str:
    """Open on the first sheet with the cursor in A1 on every sheet."""
    tables = "".join(
        f'<config:config-item-map-entry config:name="{xml(s.name)}">'
        '<config:config-item config:name="CursorPositionX" config:type="int">0</config:config-item>'
        '<config:config-item config:name="CursorPositionY" config:type="int">0</config:config-item>'
        '<config:config-item config:name="HorizontalSplitMode" config:type="short">0</config:config-item>'
        '<config:config-item config:name="VerticalSplitMode" config:type="short">0</config:config-item>'
        "</config:config-item-map-entry>"
        for s in sheets
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document-settings {NS} office:version="1.2"><office:settings>'
        '<config:config-item-set config:name="ooo:view-settings">'
        '<config:config-item-map-indexed config:name="Views"><config:config-item-map-entry>'
        '<config:config-item config:name="ViewId" config:type="string">view1</config:config-item>'
        f'<config:config-item-map-named config:name="Tables">{tables}</config:config-item-map-named>'
        f'<config:config-item config:name="ActiveTable" config:type="string">{xml(sheets[0].name)}'
        "</config:config-item></config:config-item-map-entry></config:config-item-map-indexed>"
        "</config:config-item-set></office:settings></office:document-settings>"
    )


def manifest_xml() -> str:
    entries = [
        ("/", MIMETYPE),
        ("content.xml", "text/xml"),
        ("styles.xml", "text/xml"),
        ("meta.xml", "text/xml"),
        ("settings.xml", "text/xml"),
    ]
    body = "".join(
        f' <manifest:file-entry manifest:full-path="{p}" manifest:media-type="{t}"'
        + (' manifest:version="1.2"' if p == "/" else "")
        + "/>\n"
        for p, t in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
        f'opendocument:xmlns:manifest:1.0" manifest:version="1.2">\n{body}</manifest:manifest>\n'
    )


def ods_bytes(sheets: list[Sheet], title: str, generator: str) -> bytes:
    """The .ods file: entries in a fixed order, each with a fixed date and permissions; mimetype first, stored."""
    names = [s.name for s in sheets]
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"sheet names must be unique: {names}")
    for s in sheets:
        if any(len(r) != len(s.header) for r in s.rows):
            raise ValueError(f"sheet {s.name}: every row must have one cell per header column")
    parts = [
        ("mimetype", MIMETYPE, zipfile.ZIP_STORED),
        ("content.xml", content_xml(sheets), zipfile.ZIP_DEFLATED),
        ("styles.xml", styles_xml(), zipfile.ZIP_DEFLATED),
        ("meta.xml", meta_xml(title, generator), zipfile.ZIP_DEFLATED),
        ("settings.xml", settings_xml(sheets), zipfile.ZIP_DEFLATED),
        ("META-INF/manifest.xml", manifest_xml(), zipfile.ZIP_DEFLATED),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text, method in parts:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = method
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            z.writestr(info, text.encode("utf-8"), compress_type=method, compresslevel=6)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- the quarter's workbook
def _sheet_name(base: str, used: set[str]) -> str:
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base)[:31] or "Sheet"
    candidate, i = name, 2
    while candidate.lower() in used:
        suffix = f"_{i}"
        candidate, i = name[: 31 - len(suffix)] + suffix, i + 1
    used.add(candidate.lower())
    return candidate


@dataclass(frozen=True)
class Release:
    """What a quarter's workbook is made from: the release folder (its CSV tables under ``folder/tables``), the
    quarter, the methodology and catalogue of the run, its metrics, its data source and the code version."""

    folder: Path
    quarter: str
    methodology: Methodology
    catalogue: Catalogue
    metric_ids: list[str]
    source: str
    code_version: str


def quarter_workbook(release: Release, cache: SheetCache | None = None) -> tuple[list[Sheet], str]:
    """The sheets of a quarter's workbook from the CSV tables already written under ``release.folder/tables`` (their
    cells reused from ``cache`` where a file's bytes are those it was given)."""
    tables = Path(release.folder) / "tables"
    ql = f"{quarter_label(release.quarter)} ({quarter_period(release.quarter)})"
    notes = _notes(release.methodology, release.source)
    specs = _table_specs(ql, release.catalogue, release.metric_ids)
    present = []
    specs = [(rel, base, title, [*cited, "text"]) for rel, base, title, cited in specs]
    for rel, base, title, cited in specs:
        path = tables / rel
        if path.exists() and path.stat().st_size and not pd.read_csv(path, nrows=1).empty:
            present.append((rel, base, title, cited))  # a header-only CSV (e.g. no previous quarter): no blank sheet
    number: dict[str, int] = {}
    for *_, cited in present:  # notes numbered in order of first citation, so the notes sheet has no gaps
        for key in cited:
            number.setdefault(key, len(number) + 1)
    used = {"cover", "contents", "notes"}
    data_sheets = []
    for rel, base, title, cited in present:
        lines = [
            "This worksheet contains one table. The notes that apply to it: "
            + ", ".join(f"[note {number[k]}]" for k in cited)
            + ".",
            f"Source: tables/{rel} in this release (the same figures as CSV).",
            "Shorthand in cells: [c] suppressed by the source, [x] not available, [z] not applicable.",
        ]
        data_sheets.append(csv_sheet(tables / rel, _sheet_name(base, used), title, lines, f"tables/{rel}", cache))
    title = f"NHS trust league tables: {ql}"
    cover = _cover_sheet(title, release)
    contents = Sheet(
        "Contents",
        "Table of contents",
        lines=["This worksheet contains one table."],
        header=["Sheet name", "Table description", "Source CSV"],
        rows=[[("link", ("Notes", "#Notes.A1")), ("string", "Notes cited by the tables"), ("string", "[z]")]]
        + [[("link", (s.name, f"#{s.name}.A1")), ("string", s.title), ("string", s.source)] for s in data_sheets],
    )
    notes_sheet = Sheet(
        "Notes",
        "Notes",
        lines=["This worksheet contains one table."],
        header=["Note number", "Note text"],
        rows=[[("string", f"note {i}"), ("string", notes[k])] for k, i in number.items()],
    )
    return [cover, contents, notes_sheet, *data_sheets], title


def _notes(methodology: Methodology, source: str) -> dict[str, str]:
    """The notes the table sheets cite, by key."""
    u = methodology.uncertainty
    return {
        "data": " ".join(SOURCE_NOTICES.get(source, SOURCE_NOTICES["files"])),
        "score": (
            "Metric scores run from 1.00 (best) to 4.00 (worst). Segments run from 1 (highest performing) to 4 "
            "(most challenged); segment 5 is the Provider Improvement Programme, read from an input flag. "
            "Ranks are within each trust type, by segment then average score."
        ),
        "range": _likely_range_note(methodology),
        "move": (
            "Movement compares each trust's segment (1 to 4, after the financial override) and rank with the "
            "previous quarter, both computed from the data: segment_change and rank_change are this quarter "
            "minus last (negative is better); rank_change_p_value is a two-sided mid-p value from a joint "
            "simulation of both quarters in which no trust's performance changed; change_beyond_chance is "
            f"TRUE when it is below {1 - u.level:g}; p_segment_change_by_chance is the probability of a change "
            "of segment by chance alone (its sum is the number of segment changes expected by chance)."
        ),
        "rank": (
            "Rankability of each counted metric within a trust type: tau2 is the between-trust variance of "
            "the true rates (per unit, before the multiplier), median_se2 the median sampling variance of a "
            "trust's rate, and rankability = tau2 / (tau2 + median_se2): near 1 the data order the trusts, "
            "near 0 the order is mostly chance."
        ),
        "prod": _productivity_note(methodology, source),
        "metric": (
            "Metric tables: one row per trust of the types the metric covers. status is ok, suppressed "
            "([c]: suppressed by the source) or missing ([x]: not submitted). lower and upper are the "
            "confidence interval at the level in confidence. expected, oe and adjusted_value exist only for "
            "metrics with a demographic model ([z] otherwise); funnel columns only for metrics with a funnel "
            "plot; peer columns compare the trust with its demographic peers (peer_rank 1 is best)."
        ),
        "sens": (
            "Sensitivity analysis: the league table recomputed on demographically adjusted metric scores, "
            "every other metric unchanged. It is not the published segmentation."
        ),
        "spc": (
            "Statistical process control: an XmR chart of each trust's value of each metric over the quarters "
            "available, process limits mean ± 2.66 × mean moving range, NHS England's Making Data Count rules "
            "(beyond_limits, run, trend, two_of_three; ';'-separated); variation is that of the latest quarter, "
            "assurance compares the standard or floor with the limits. Empty limits: not assessed (see note)."
        ),
        "rev": (
            "Revisions: figures changed since this quarter was first published, with the previous and revised values."
        ),
        "text": (
            "Text that begins with =, +, -, @, a tab or a carriage return (for example a name in the inputs) is "
            "published with a leading apostrophe (') so that no spreadsheet evaluates it as a formula, as the "
            "OWASP guidance on CSV injection advises; the CSV files are written the same way. A figure that "
            "could not be computed (not a finite number) is published as [x]."
        ),
    }


def _likely_range_note(methodology: Methodology) -> str:
    """The note on NHS England's likely ranges (a bootstrap of each trust's metric scores) and, with the parametric
    simulation of the data, on the rank intervals and segment probabilities that allow for chance."""
    b = methodology.bootstrap
    u = methodology.uncertainty
    return (
        f"rank_lower/rank_upper and average_lower/average_upper (Likely_range_of_rank and "
        f"Likely_range_of_average_score) are NHS England's likely ranges: {100 * b.level:g}% percentile "
        f"intervals of a bootstrap ({b.replicates:,} replicates, seed {b.seed}) of each trust's own metric "
        "scores; they show how uneven a trust's scores are, not the play of chance. "
        + (
            f"rank_interval_lower/rank_interval_upper ({100 * u.level:g}%"
            + (
                " on average over a trust type; rank_interval_probability is each trust's own share of the "
                "simulated ranks inside its interval"
                if u.rank_interval == "average_probability"
                else ""
            )
            + "), rank_median, "
            "average_interval_lower/average_interval_upper and p_segment_1 to p_segment_4 come from "
            f"{u.replicates:,} simulations of the quarter's data (seed {u.seed}) and allow for the play of "
            "chance in the counted metrics; nof_p_segment_1 to nof_p_segment_4 are the segment shares of "
            "NHS England's bootstrap."
            if u.method == "parametric_data"
            else "p_segment_1 to p_segment_4 are the shares of those replicates in each segment."
        )
    )


def _productivity_note(methodology: Methodology, source: str) -> str:
    """The note on the productivity opportunity: the formula, the comparator, pooling, and the unit costs."""
    return (
        f"Productivity opportunity (Better Care, Better Value): max(0, gap to the upper-quartile level of "
        f"the {methodology.productivity.comparator}) / multiplier × activity × unit cost; on the "
        "demographically adjusted basis expected_activity (E) × max(0, oe − benchmark_oe); each trust's "
        f"oe from {methodology.productivity.pool_quarters} quarter(s), estimate "
        f"{methodology.productivity.estimate}; annual = the "
        f"quarter × {methodology.productivity.annualise}. Unit costs are "
        f"{'illustrative (demo)' if source == 'demo' else 'as named in the catalogue'}; sums over metrics "
        "are an upper bound because the metrics overlap."
    )


def table_files(folder: Path, catalogue: Catalogue, metric_ids: list[str]) -> list[Path]:
    """The CSV files under ``folder/tables`` that the workbook would hold, of those written so far."""
    tables = Path(folder) / "tables"
    return [tables / rel for rel, *_ in _table_specs("", catalogue, metric_ids) if (tables / rel).is_file()]


def _table_specs(ql: str, catalogue: Catalogue, metric_ids: list[str]) -> list[tuple[str, str, str, list[str]]]:
    """(CSV path under tables/, sheet name, title, cited note keys) of every table the workbook may hold."""
    specs = [
        ("league_table.csv", "League_table", f"League table in NHS England's layout, {ql}", ["data", "score", "range"]),
        (
            "league_table_full.csv",
            "League_table_full",
            f"League table with every column: segment probabilities, domain scores and cut points, {ql}",
            ["data", "score", "range"],
        ),
        (
            "movement.csv",
            "Movement",
            f"Movement in segment and rank since the previous quarter, {ql}",
            ["data", "move"],
        ),
        ("rankability.csv", "Rankability", f"Rankability of each counted metric by trust type, {ql}", ["data", "rank"]),
        ("productivity.csv", "Productivity", f"Productivity opportunity by trust and metric, {ql}", ["data", "prod"]),
        ("spc.csv", "SPC", f"Statistical process control of each trust and metric, {ql}", ["data", "spc"]),
        (
            "sensitivity.csv",
            "Sensitivity",
            f"Segments and ranks on raw and demographically adjusted scores, {ql}",
            ["data", "sens"],
        ),
        (
            "league_table_adjusted.csv",
            "League_table_adjusted",
            f"League table on demographically adjusted scores (sensitivity analysis), {ql}",
            ["data", "sens"],
        ),
        ("revisions.csv", "Revisions", f"Revised figures, {ql}", ["rev"]),
    ]
    for m in catalogue.metrics:
        if m.id in metric_ids:
            specs.append(
                (
                    f"metrics/{m.id}.csv",
                    m.id,
                    f"{m.name}: values, intervals, bands, scores and peers by trust, {ql}",
                    ["data", "metric"],
                )
            )
    return specs


def _cover_sheet(title: str, release: Release) -> Sheet:
    """The cover sheet: what the release holds, its source, methodology, shorthand and licence."""
    quarter, methodology, catalogue, source = release.quarter, release.methodology, release.catalogue, release.source
    return Sheet(
        "Cover",
        title,
        lines=[
            f"League tables of NHS trusts in England for {quarter_period(quarter)}: segments, average scores and ranks "
            "with likely ranges, movement since the previous quarter, the productivity opportunity, and every metric's "
            "values with confidence intervals, funnel-plot bands, scores and peer comparisons.",
            SOURCE_LABELS.get(source, SOURCE_LABELS["files"])[1],
            " ".join(SOURCE_NOTICES.get(source, SOURCE_NOTICES["files"])),
            f"Methodology: {methodology.name} ({methodology.id}, version {methodology.version}); metric catalogue "
            f"{catalogue.id} version {catalogue.version}. The methodology page (methodology.html) of this release "
            "defines every metric and setting.",
            "Each table sheet holds the same figures as one CSV file of the release (named on the sheet). The long data "
            "table in NHS England's layout (tables/nof_data_long.csv) is published as CSV only.",
            "Shorthand: [c] suppressed by the source (confidential), [x] not available, [z] not applicable.",
            "The contents sheet lists the tables; the notes sheet holds the notes they cite as [note 1] and so on.",
            f"Produced by the leaguetables pipeline, code version {release.code_version}. Text and data: Open Government "
            "Licence v3.0.",
        ],
    )


def write_workbook(release: Release, cache: SheetCache | None = None) -> Path:
    """Write ``folder/tables/league_tables_<quarter>.ods`` from the CSV tables of the release (cells reused from
    ``cache``, :class:`SheetCache`); return its path."""
    sheets, title = quarter_workbook(release, cache)
    path = Path(release.folder) / "tables" / f"league_tables_{release.quarter}.ods"
    path.write_bytes(ods_bytes(sheets, title, f"leaguetables/{release.code_version}"))
    return path
