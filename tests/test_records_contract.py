"""The record-level contract (leaguetables.inputs.records.contract): NHS Digital's Artificial HES samples load with
their documented quirks handled or rejected (docs/record-level.md), CSV and Parquet give the same typed rows, and the
rows are numbered as in their files.

The Artificial HES samples are read from ``$LEAGUETABLES_ARTIFICIAL_HES`` (default ``../shared/data/artificial_hes``;
never copied into the project); those tests skip when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from records_fixture import write_records

from leaguetables.errors import InputError
from leaguetables.inputs.records.contract import DATASETS, load_records
from leaguetables.inputs.records.pandas_contract import load_records_pandas

ROOT = Path(__file__).resolve().parents[1]
ARTIFICIAL = Path(os.environ.get("LEAGUETABLES_ARTIFICIAL_HES", ROOT / ".." / "shared" / "data" / "artificial_hes"))


@pytest.fixture(scope="module")
def artificial() -> Path:
    data = ARTIFICIAL.resolve() / "data"
    if not (data / "apc").is_dir():
        pytest.skip(f"Artificial HES samples not available: {data} is absent (set LEAGUETABLES_ARTIFICIAL_HES)")
    return data


# Artificial HES (NHS Digital, via CUREd-Plus/cuRed; SOURCE.md): the first invalid row of each sample, which is the
# same record in the CSV (header = row 1) and the Parquet conversion (first record = row 1)
FIRST_PROBLEM = {
    "apc": (55, "ADMIMETH", 'value "99" is not an allowed code'),
    "op": (811, "LSOA11", 'value "L99999999" is not an LSOA 2011 code'),
    "ae": (51, "ARRIVALAGE", "is empty (a value is required)"),
}
SAMPLE_ROWS = {"apc": 2075, "op": 1000, "ae": 1000}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("dataset", ["apc", "op", "ae"])
def test_artificial_hes_strict_names_first_invalid_row(artificial, dataset, fmt):
    row, column, message = FIRST_PROBLEM[dataset]
    with pytest.raises(InputError) as err:
        load_records(artificial, [dataset], fmt=fmt)
    e = err.value
    assert Path(e.file).suffix == f".{fmt}" and Path(e.file).parent.name == dataset
    assert e.row == row + (fmt == "csv") and e.column == column and message in str(e)


def test_artificial_hes_exclude_mode_counts_what_it_drops(artificial):
    """With on_error="exclude" each sample loads; the rows dropped are counted by column and problem, and the
    documented quirks are handled: the Parquet files' extra ``filename`` column ignored, the '-   ' no-operation
    code read as missing, the infant age codes 7001-7007 kept, decimal-string ages ('13.0') read as whole numbers,
    AEDEPTTYPE 99 (not known) kept, absent OPDATE_01 and DOD missing in every row."""
    kept = {}
    for dataset in ("apc", "op", "ae"):
        rec = load_records(artificial, [dataset], fmt="parquet", on_error="exclude")
        dropped = int(rec.exclusions["rows"].sum())
        assert rec.rows[dataset] + dropped == SAMPLE_ROWS[dataset]
        kept[dataset] = rec
    apc = kept["apc"].con.execute("SELECT * FROM apc").df()
    assert list(apc.columns) == [*DATASETS["apc"].columns, "source_file", "source_row"]
    assert apc["OPDATE_01"].isna().all() and apc["DOD"].isna().all()
    assert (apc["STARTAGE"] >= 7001).any()
    assert apc["OPERTN_4_01"].dropna().str.fullmatch(r"[A-Z][0-9]{3}").all()
    excl = kept["apc"].exclusions.set_index(["column", "problem"])["rows"]
    assert excl[("ADMIMETH", "code")] == 2 and excl[("ADMIDATE", "sentinel")] == 1
    ae = kept["ae"].con.execute("SELECT ARRIVALAGE, AEDEPTTYPE FROM ae").df()
    assert ae["ARRIVALAGE"].dtype == "int64" and set(ae["AEDEPTTYPE"]) == {"99"}


def test_artificial_hes_csv_and_parquet_agree(artificial):
    frames = []
    for fmt in ("csv", "parquet"):
        rec = load_records(artificial, ["op"], fmt=fmt, on_error="exclude")
        frames.append(rec.con.execute("SELECT * EXCLUDE (source_file, source_row) FROM op ORDER BY ATTENDKEY").df())
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_artificial_hes_both_formats_in_one_folder_are_duplicates(artificial):
    """Each sample folder holds the same records as CSV and as Parquet: reading both is refused (keys repeat)."""
    with pytest.raises(InputError, match="EPIKEY '.*' is not unique"):
        load_records(artificial, ["apc"], on_error="exclude")


def test_fixture_parquet_and_csv_load_the_same(tmp_path):
    a = load_records(write_records(tmp_path / "p", n_patients=60))
    b = load_records(write_records(tmp_path / "c", n_patients=60, fmt="csv"))
    for name in ("apc", "op", "ae"):
        x = a.con.execute(f"SELECT * EXCLUDE (source_file, source_row) FROM {name} ORDER BY ALL").df()
        y = b.con.execute(f"SELECT * EXCLUDE (source_file, source_row) FROM {name} ORDER BY ALL").df()
        pd.testing.assert_frame_equal(x, y, check_dtype=False)
    # rows are numbered within each file: two Parquet files per dataset, first record = row 1
    rows = a.con.execute(
        "SELECT source_file, min(source_row), max(source_row), count(*) FROM apc GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert len(rows) == 2 and all(r[1] == 1 and r[2] == r[3] for r in rows)


def test_hive_partition_columns_count_as_present(tmp_path):
    """A column carried only by the folder names of hive-partitioned files (PROCODE3=RAA/) satisfies the contract."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_records(tmp_path / "r", n_patients=40)
    table = pq.read_table(root / "op" / "part-0.parquet")
    for p in (root / "op").glob("*.parquet"):
        p.unlink()
    for code in sorted(set(table["PROCODE3"].to_pylist())):
        part = table.filter(pa.compute.equal(table["PROCODE3"], code)).drop_columns(["PROCODE3"])
        (root / "op" / f"PROCODE3={code}").mkdir()
        pq.write_table(part, root / "op" / f"PROCODE3={code}" / "data.parquet")
    rec = load_records(root, ["op"])
    assert rec.rows["op"] == table.num_rows
    codes = rec.con.execute("SELECT DISTINCT PROCODE3 FROM op").df()["PROCODE3"]
    assert set(codes) == set(table["PROCODE3"].to_pylist())


def test_unknown_options_are_refused(tmp_path):
    with pytest.raises(InputError, match="unknown record-level dataset"):
        load_records(write_records(tmp_path, n_patients=5), ["ecds"])
    with pytest.raises(ValueError):
        load_records(tmp_path, on_error="ignore")


def _set_first_rows(root: Path, dataset: str, column: str, values: list[str]) -> Path:
    """Overwrite ``column`` in the first rows of the dataset's first Parquet file; returns that file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = sorted((root / dataset).glob("*.parquet"))[0]
    table = pq.read_table(path)
    col = table[column].to_pylist()
    col[: len(values)] = values
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(col, pa.string())), path)
    return path


@pytest.mark.parametrize("pad", [" ", "\u00a0", "\u3000"])
def test_keys_equal_once_trimmed_are_duplicates(tmp_path, pad):
    """The key is checked row by row without trimming when every value is plain ASCII with no space at either end;
    a key padded with a space, a no-break space or an ideographic space (trimmed by normalisation) repeats the
    unpadded key and is reported as a duplicate."""
    root = write_records(tmp_path / "r", n_patients=40)
    path = _set_first_rows(root, "apc", "EPIKEY", ["K1", pad + "K1" + pad])
    with pytest.raises(InputError, match="EPIKEY 'K1' is not unique") as err:
        load_records(root, ["apc"])
    assert err.value.file == str(path) and err.value.row == 2 and err.value.column == "EPIKEY"


@pytest.mark.parametrize("value", ["", "   ", "\u00a0"])
def test_blank_patient_id_is_missing(tmp_path, value):
    root = write_records(tmp_path / "r", n_patients=40)
    path = _set_first_rows(root, "ae", "PSEUDO_HESID", ["P1", value])
    with pytest.raises(InputError, match="is empty") as err:
        load_records(root, ["ae"])
    assert err.value.file == str(path) and err.value.row == 2 and err.value.column == "PSEUDO_HESID"


def test_padded_keys_are_trimmed_and_counted(tmp_path):
    """A padded (not repeated) key loads trimmed; the row count comes from the same pass as the checks."""
    root = write_records(tmp_path / "r", n_patients=40)
    _set_first_rows(root, "op", "ATTENDKEY", ["\u00a0X1 "])
    rec = load_records(root, ["op"])
    assert rec.con.execute("SELECT count(*) FROM op WHERE ATTENDKEY = 'X1'").fetchall()[0][0] == 1
    assert rec.rows["op"] == rec.con.execute("SELECT count(*) FROM op").fetchall()[0][0]


@pytest.mark.parametrize(
    ("dataset", "column", "values"),
    [
        ("apc", "EPIKEY", ["K1", " K1 "]),
        ("apc", "EPIKEY", ["K1", "\u00a0K1\u00a0"]),
        ("ae", "PSEUDO_HESID", ["P1", "   "]),
        ("ae", "PSEUDO_HESID", ["P1", "\u3000"]),
        ("op", "LSOA11", ["E0100000", " E01000001 "]),
    ],
)
def test_pandas_contract_agrees_on_padded_parquet_text(tmp_path, dataset, column, values):
    """The plain-pandas contract (the benchmark's baseline) trims and refuses Parquet text as the DuckDB contract
    does: padded keys repeat, blank patient ids are missing, a short LSOA code is named with its trimmed value."""
    root = write_records(tmp_path / "r", n_patients=40)
    _set_first_rows(root, dataset, column, values)
    with pytest.raises(InputError) as duck:
        load_records(root, [dataset])
    with pytest.raises(InputError) as pand:
        load_records_pandas(root, [dataset])
    assert str(pand.value) == str(duck.value)


def test_concurrent_validation_raises_the_first_datasets_error(tmp_path):
    """Parquet datasets are validated at the same time; the error raised is the first dataset's (in the order asked
    for), as when they are validated one after the other, and a valid extract loads every dataset."""
    root = write_records(tmp_path / "r", n_patients=40)
    assert set(load_records(root).rows) == {"apc", "op", "ae"}
    _set_first_rows(root, "ae", "PSEUDO_HESID", ["P1", ""])
    ae_path = sorted((root / "ae").glob("*.parquet"))[0]
    with pytest.raises(InputError) as err:
        load_records(root)
    assert err.value.file == str(ae_path) and err.value.column == "PSEUDO_HESID"
    apc_path = _set_first_rows(root, "apc", "SEX", ["7"])
    for _ in range(3):
        with pytest.raises(InputError) as err:
            load_records(root)
        assert err.value.file == str(apc_path) and err.value.row == 1 and err.value.column == "SEX"
    with pytest.raises(InputError) as err:
        load_records(root, ["ae", "apc"])
    assert err.value.file == str(ae_path)
