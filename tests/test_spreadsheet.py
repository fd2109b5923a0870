"""The accessible ODS writer (src/leaguetables/publication/spreadsheet.py): layout rules, shorthand, read-back equal to the CSV,
ODF table markup (checked with odfpy) and byte-identical output."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from leaguetables.publication import spreadsheet as ss

CSV = (
    "trust_code,status,value,lower,expected,flag,label\n"
    "A1,ok,1.5,1.25,,True,x & <y>\n"
    "A2,suppressed,,,,False,\n"
    "A3,missing,,,,True,z\n"
    "A4,ok,2,1e-05,,False,w\n"
)


@pytest.fixture()
def csv_path(tmp_path):
    p = tmp_path / "metric.csv"
    p.write_text(CSV, encoding="utf-8")
    return p


def sheets_for(csv_path):
    lines = ["This worksheet contains one table. The notes that apply to it: [note 1].", "Source: metric.csv."]
    data = ss.csv_sheet(csv_path, "metric", "A metric by trust", lines, "metric.csv")
    cover = ss.Sheet("Cover", "Title of the workbook", lines=["About it."])
    notes = ss.Sheet(
        "Notes",
        "Notes",
        lines=["This worksheet contains one table."],
        header=["Note number", "Note text"],
        rows=[[("string", "note 1"), ("string", "A note.")]],
    )
    return [cover, notes, data]


def test_empty_cells_get_shorthand(csv_path):
    """[z] for a column empty throughout (expected), [c] on a suppressed row, [x] otherwise; never empty."""
    sheet = ss.csv_sheet(csv_path, "metric", "t", [], "metric.csv")
    cells = {(r[0][1], sheet.header[j]): c for r in sheet.rows for j, c in enumerate(r)}
    assert cells[("A1", "expected")] == ("string", "[z]")
    assert cells[("A2", "value")] == ("string", "[c]")
    assert cells[("A3", "value")] == ("string", "[x]")
    assert cells[("A2", "label")] == ("string", "[c]")
    assert cells[("A1", "value")] == ("float", "1.5") and cells[("A4", "lower")] == ("float", "1e-05")
    assert cells[("A1", "flag")] == ("boolean", True)
    assert all(v not in ("", None) for r in sheet.rows for _, v in r)


def test_sheet_reads_back_equal_to_the_csv(csv_path, tmp_path):
    """pandas (engine="odf") reads the table back equal to the CSV once shorthand is read as empty."""
    path = tmp_path / "book.ods"
    path.write_bytes(ss.ods_bytes(sheets_for(csv_path), "Title of the workbook", "test"))
    sheet = sheets_for(csv_path)[2]
    back = pd.read_excel(path, sheet_name="metric", engine="odf", header=sheet.header_row)
    back = back.replace({"[c]": np.nan, "[x]": np.nan, "[z]": np.nan}).infer_objects()
    csv = pd.read_csv(csv_path)
    pd.testing.assert_frame_equal(back, csv, check_dtype=False)
    raw = pd.read_excel(path, sheet_name="metric", engine="odf", header=None)
    assert raw.iloc[0, 0] == "A metric by trust", "title in A1"
    assert raw.iloc[1, 0].endswith("[note 1].")


def test_odf_markup_one_table_per_sheet_with_a_header_row(csv_path):
    """odfpy sees one table:table per sheet with the sheet's name, the header row inside table:table-header-rows,
    a named range with a header over the table, no merged or spanned cells, document title and language."""
    from odf.opendocument import load
    from odf.table import DatabaseRange, Table, TableHeaderRows, TableRow

    data = ss.ods_bytes(sheets_for(csv_path), "Title of the workbook", "test")
    doc = load(io.BytesIO(data))
    tables = doc.spreadsheet.getElementsByType(Table)
    assert [t.getAttribute("name") for t in tables] == ["Cover", "Notes", "metric"]
    metric = tables[2]
    headers = metric.getElementsByType(TableHeaderRows)
    assert len(headers) == 1 and len(headers[0].getElementsByType(TableRow)) == 1
    assert "trust_code" in str(headers[0])
    ranges = doc.spreadsheet.getElementsByType(DatabaseRange)
    assert {r.getAttribute("targetrangeaddress") for r in ranges} == {"Notes.A3:Notes.B4", "metric.A4:metric.G8"}
    assert all(r.getAttribute("containsheader") == "true" for r in ranges)
    content = zipfile.ZipFile(io.BytesIO(data)).read("content.xml").decode()
    assert "number-columns-spanned" not in content and "number-rows-spanned" not in content
    assert "covered-table-cell" not in content
    meta = zipfile.ZipFile(io.BytesIO(data)).read("meta.xml").decode()
    assert "<dc:title>Title of the workbook</dc:title>" in meta and "<dc:language>en-GB</dc:language>" in meta
    assert "date" not in meta.lower(), "no creation or modification date"


def test_zip_is_deterministic_and_well_formed(csv_path):
    """Two writes give identical bytes; mimetype is the first entry, stored uncompressed; every entry has the
    fixed date; the manifest lists every file."""
    a = ss.ods_bytes(sheets_for(csv_path), "T", "test")
    b = ss.ods_bytes(sheets_for(csv_path), "T", "test")
    assert a == b
    z = zipfile.ZipFile(io.BytesIO(a))
    infos = z.infolist()
    assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
    assert z.read("mimetype") == ss.MIMETYPE.encode()
    assert {i.date_time for i in infos} == {ss.FIXED_DATE}
    assert [i.filename for i in infos] == [
        "mimetype",
        "content.xml",
        "styles.xml",
        "meta.xml",
        "settings.xml",
        "META-INF/manifest.xml",
    ]
    manifest = z.read("META-INF/manifest.xml").decode()
    for name in ("content.xml", "styles.xml", "meta.xml", "settings.xml"):
        assert f'full-path="{name}"' in manifest


def test_rows_must_match_the_header_and_names_be_unique():
    bad = ss.Sheet("A", "t", header=["x", "y"], rows=[[("string", "1")]])
    with pytest.raises(ValueError, match="one cell per header column"):
        ss.ods_bytes([bad], "t", "test")
    with pytest.raises(ValueError, match="unique"):
        ss.ods_bytes([ss.Sheet("A", "t"), ss.Sheet("a", "t")], "t", "test")
    used = {"cover"}
    assert ss._sheet_name("Cover", used) == "Cover_2"
    assert ss._sheet_name("a" * 40, used) == "a" * 31
    assert ss._column_letters(0) == "A" and ss._column_letters(26) == "AA" and ss._column_letters(27) == "AB"
