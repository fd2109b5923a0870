"""The data contract: valid inputs load; bad inputs give one line naming file, row and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leaguetables.config import load_catalogue
from leaguetables.errors import InputError
from leaguetables.inputs.contract import check_quarter, load_inputs, previous_quarter, quarter_label, quarter_period

# the six-trust corpus base (three acute, two mental health and community, one ambulance trust; two quarters): a
# bad cell is named the same way in any valid file, and this one loads in a fraction of the demo's time
BASE = Path(__file__).resolve().parent / "bad_inputs" / "base"


def test_quarter_labels():
    assert check_quarter("2025-26-Q4") == "2025-26-Q4"
    assert quarter_label("2025-26-Q4") == "Q4 2025/26"
    assert quarter_period("2025-26-Q4") == "January to March 2026"
    assert quarter_period("2024-25-Q1") == "April to June 2024"
    assert previous_quarter("2025-26-Q1") == "2024-25-Q4"
    assert previous_quarter("2025-26-Q3") == "2025-26-Q2"
    for bad in ("2025Q4", "2025-27-Q4", "2025-26-Q5", "../2025-26-Q4", "2025-26-Q4/.."):
        with pytest.raises(InputError):
            check_quarter(bad)


@pytest.fixture
def copy_demo(demo_dir, tmp_path):
    """The demo's four contract files (not its record-level extracts or its truth, which load_inputs never reads)."""
    dst = tmp_path / "data"
    shutil.copytree(demo_dir, dst, ignore=shutil.ignore_patterns("records", "truth"))
    return dst


@pytest.fixture
def copy_base(tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(BASE, dst)
    return dst


def _edit(path, line_no: int, column: str, value: str):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line_no - 1].split(",")
    cells[header.index(column)] = value
    lines[line_no - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("numerator", "-3", "fails check greater_than_or_equal_to(0)"),
        ("numerator", "abc", "'abc' is not a number"),
        ("numerator", "inf", "is not a finite number"),
        ("numerator", "99999999999", "fails check less_than_or_equal_to"),
        ("trust_code", "RXX", "unknown trust 'RXX'"),
        ("metric_id", "made_up", "unknown metric 'made_up'"),
        ("suppressed", "maybe", "'maybe' is not true/false"),
        ("numerator", "1e9", "is above denominator"),
    ],
)
def test_bad_observation_names_file_row_and_column(copy_base, column, value, message):
    """On the corpus base (row 2: DEMO-A001's ae_4hr in 2025-26-Q3, a count with a denominator)."""
    path = copy_base / "observations.csv"
    load_inputs(copy_base, load_catalogue("demo"))  # valid before the edit
    _edit(path, 2, column, value)
    with pytest.raises(InputError) as exc:
        load_inputs(copy_base, load_catalogue("demo"))
    text = str(exc.value)
    assert text.startswith(f"{path}, row 2, column '{column}'"), text
    assert message in text


@pytest.mark.parametrize(
    "column, first, later, message",
    [
        ("numerator", "abc", "1_000", "'abc' is not a number"),
        ("suppressed", "maybe", "perhaps", "'maybe' is not true/false"),
        ("trust_name", "Bad\u202eName", "Worse\u0007Name", "character U+202E"),
        ("quarter", "2025-27-Q1", "Q4", "quarter '2025-27-Q1' is not of the form"),
    ],
)
def test_the_first_bad_row_in_the_file_is_named_when_one_bad_text_repeats(copy_base, column, first, later, message):
    """Each distinct text of a column is checked once: with the bad text ``first`` on rows 3 and 5 and another
    bad text on row 4, the message is ``first``'s, at row 3 (not row 5, not row 4's text). File: the corpus base
    (trusts.csv for the trust name, observations.csv otherwise)."""
    path = copy_base / ("trusts.csv" if column == "trust_name" else "observations.csv")
    for line, value in ((5, first), (4, later), (3, first)):
        _edit(path, line, column, value)
    with pytest.raises(InputError) as exc:
        load_inputs(copy_base, load_catalogue("demo"))
    text = str(exc.value)
    assert text.startswith(f"{path}, row 3, column '{column}'"), text
    assert message in text, text


def test_quarter_absent_from_the_data(copy_base):
    with pytest.raises(InputError, match="quarter 2030-31-Q1 is not in the data"):
        load_inputs(copy_base, load_catalogue("demo"), "2030-31-Q1")


def _line_of(path, metric_id: str) -> int:
    """The file line of the first observation of ``metric_id`` (the header is line 1)."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if f",{metric_id}," in line:
            return n
    raise AssertionError(f"no {metric_id} row")


@pytest.mark.parametrize(
    "metric_id, value, message",
    [
        ("rl_los_oe", "", "no numerator_variance for 'rl_los_oe', whose numerator is not a Poisson count"),
        ("op_followup_ratio", "12.5", "a numerator_variance for 'op_followup_ratio', whose catalogue entry treats"),
        ("rl_los_oe", "-1", "fails check greater_than_or_equal_to(0)"),
    ],
)
def test_numerator_variance_is_required_exactly_where_the_catalogue_reports_it(copy_demo, metric_id, value, message):
    """The record-level rows of a metric whose catalogue entry says numerator_variance: reported (bed days, day
    cases, readmissions, 12 hours in A&E, deaths, follow-ups, ICB admissions) carry the numerator's variance; any
    other metric's rows (the aggregate follow-up ratio) do not (it would be ignored)."""
    path = copy_demo / "observations.csv"
    header, *rows = path.read_text().splitlines()
    if "numerator_variance" not in header:
        pytest.skip("the demo has no record-level rows (real geography absent)")
    # the metric's own rows only (a valid file: the contract asks no metric to have rows), read in a quarter of the
    # whole file's time (issue 13)
    path.write_text("\n".join([header, *(r for r in rows if f",{metric_id}," in r)]) + "\n")
    load_inputs(copy_demo, load_catalogue("demo"))
    line = _line_of(path, metric_id)
    _edit(path, line, "numerator_variance", value)
    with pytest.raises(InputError) as exc:
        load_inputs(copy_demo, load_catalogue("demo"))
    text = str(exc.value)
    assert text.startswith(f"{path}, row {line}, column 'numerator_variance'"), text
    assert message in text
