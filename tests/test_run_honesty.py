"""Runs that are what they say (issue 12): no working-directory changes in threads, the previous quarter's table an
input of no other quarter (movement comes from the inputs), concurrent runs of consecutive quarters verified,
methodology settings honoured, spreadsheet-safe text and no non-finite number in any published table or cell.

End-to-end runs use the six-trust corpus base (``tests/bad_inputs/base``) and three metrics: seconds each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from small_run import BASE, METRICS, ROOT, run_quarter_command

from leaguetables.run.verify import compare_folders

Q3, Q4 = "2025-26-Q3", "2025-26-Q4"


def _cmd(quarter: str, data: Path, out: Path, *extra: str) -> list[str]:
    # one notebook kernel: the two-thread run is test_no_working_directory_change_while_notebooks_run's
    return run_quarter_command(quarter, data, out, *extra)


def _run(quarter: str, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(quarter, data, out, *extra), cwd=ROOT, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------------------------ working directory
@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One run, in-process with two notebook threads, of the corpus base with hostile text and a zero count
    (``_hostile_data``), with relative --data and --out and ``os.chdir`` forbidden: ``(the folder it ran in, the
    working directory after the run, the outcome)``. Read by the working-directory test and by the safe-cells test
    (one run for both since issue 13)."""
    from leaguetables.run.pipeline import RunOptions, run

    tmp = tmp_path_factory.mktemp("hostile")
    _hostile_data(tmp)

    def forbidden(path):
        raise AssertionError(f"os.chdir({path!r}) called during a run")

    opts = RunOptions(
        quarter=Q4,
        source="files",
        data=Path("data"),
        out=Path("reports"),
        jobs=2,
        metrics=METRICS.split(","),
        catalogue="demo",
        progress=False,
        use_cache=False,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setattr(os, "chdir", forbidden)
        outcome = run(opts)
        cwd = Path.cwd()
    return tmp, cwd, outcome


def test_no_working_directory_change_while_notebooks_run(hostile_run):
    """A run with two notebook threads never calls os.chdir (papermill's ``cwd`` changed the whole process's
    directory from two threads at once), leaves the working directory as it was, and records absolute paths for
    relative arguments."""
    tmp, cwd, outcome = hostile_run
    assert outcome.status == "published"
    assert cwd == tmp
    manifest = json.loads((tmp / "reports" / Q4 / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["data"] == str(tmp / "data")
    assert all(Path(v["path"]).is_absolute() for v in manifest["inputs"].values())


# ---------------------------------------------------------------------------------- the previous quarter
def _popen(quarter: str, data: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        _cmd(quarter, data, out, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_quarters_run_concurrently_read_no_other_quarters_outputs_and_verify(tmp_path):
    """Two claims on the same runs (two tests, seven runs, until issue 13; now five, three then two side by side).

    Concurrency: Q3 and Q4 started together in one reports folder (``both``): either both publish in a consistent
    order or the second is refused (exit 1, one line); every quarter that was published then passes --verify (Q3 by
    its own --verify; Q4 by being the same as ``alone``'s Q4, which passes --verify: every published file byte for
    byte, the notebooks' outputs and the manifest's defining part, as --verify compares them).

    No other quarter's outputs: movement is computed from the inputs (both quarters' observations), not from the
    previous quarter's published table. Q4 published alone (``alone``, at the same time as the other two runs) records
    no published file as an input and has movement; once Q3 is published beside it (``both``'s Q3, copied in), it
    still verifies byte for byte (--verify reruns it), and its movement table equals Q3's published league table
    where they meet: each trust's previous segment (after the financial override, which the base gives two trusts
    in Q3) and rank, and the rank change (on the corpus base with one acute trust made worse in Q3, so that ranks
    move; made on the published demo quarter, beside a third ten-metric run, until issue 13)."""
    data = _worse_in_q3(tmp_path)
    alone, both = tmp_path / "alone", tmp_path / "both"
    procs = {"alone": _popen(Q4, data, alone), Q3: _popen(Q3, data, both), Q4: _popen(Q4, data, both)}
    results = {k: (p.wait(timeout=300), p.stderr.read()) for k, p in procs.items()}
    assert results.pop("alone")[0] == 0
    assert any(rc == 0 for rc, _ in results.values()), results
    for rc, err in results.values():
        assert rc in (0, 1), err
        if rc == 1:
            assert "lock" in err and len(err.strip().splitlines()) == 1, err
    manifest = json.loads((alone / Q4 / "manifest.json").read_text(encoding="utf-8"))
    assert not any("league_table" in k for k in manifest["inputs"])
    assert (alone / Q4 / "tables" / "movement.csv").read_text(encoding="utf-8").count("\n") > 1  # movement present
    if (both / Q3).exists():
        shutil.copytree(both / Q3, alone / Q3)
    else:  # refused: published here instead
        assert _run(Q3, data, alone).returncode == 0
    verifies = {q: _popen(q, data, out, "--verify") for q, out in ((Q4, alone), (Q3, both)) if (out / q).exists()}
    for q, proc in verifies.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{q}: {err}"
    if (both / Q4).exists():
        comparison = compare_folders(alone / Q4, both / Q4)
        assert comparison.identical, comparison.report()
    _check_movement_against_the_previous_table(alone)


def _check_movement_against_the_previous_table(out: Path) -> None:
    now = pd.read_csv(out / Q4 / "tables" / "league_table_full.csv").set_index("trust_code")
    prev = pd.read_csv(out / Q3 / "tables" / "league_table_full.csv").set_index("trust_code")
    mv = pd.read_csv(out / Q4 / "tables" / "movement.csv").set_index("trust_code")
    assert set(mv.index) == set(now.index) & set(prev.index) and len(mv) == len(now)
    assert prev["financial_override"].astype(bool).any(), "the base has a trust moved by the financial override"
    adjusted = prev["unadjusted_segment"].where(~prev["financial_override"].astype(bool), 3)
    assert (mv["previous_segment"] == adjusted.loc[mv.index]).all()
    assert (mv["previous_rank"] == prev.loc[mv.index, "rank"]).all()
    assert (mv["rank_change"] == now.loc[mv.index, "rank"] - prev.loc[mv.index, "rank"]).all()
    assert mv["rank_change"].ne(0).any() and mv["segment_change"].ne(0).any(), "the quarters differ"


def _worse_in_q3(tmp: Path) -> Path:
    """The corpus base with DEMO-A002 (first of the three acute trusts in both quarters) made the last in Q3: half its
    four-hour A&E performance, four times its C. difficile cases and an inadequate CQC safe rating."""
    data = tmp / "data"
    shutil.copytree(BASE, data)
    path = data / "observations.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    col = {c: i for i, c in enumerate(rows[0])}
    edited = 0
    for r in rows[1:]:
        if r[col["quarter"]] == Q3 and r[col["trust_code"]] == "DEMO-A002":
            if r[col["metric_id"]] == "cdiff":
                r[col["numerator"]] = str(4 * int(r[col["numerator"]]))
                edited += 1
            elif r[col["metric_id"]] == "ae_4hr":
                r[col["numerator"]] = str(int(r[col["numerator"]]) // 2)
                edited += 1
            elif r[col["metric_id"]] == "cqc_safe":
                r[col["category"]] = "Inadequate"
                edited += 1
    assert edited == 3
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return data


# ------------------------------------------------------------------------------------ settings honoured
def _toy_league(**override):
    """Six acute trusts with average scores 1.0 … 3.5 (segments 1, 1, 2, 3, 4, 4 by within-type quartiles); the
    two best and the third are in deficit."""
    from leaguetables.nof import scoring

    codes = [f"T{i}" for i in range(6)]
    scores = pd.DataFrame(
        {
            "trust_code": codes,
            "metric_id": "m",
            "score": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
            "weight": 1.0,
            "combine_group": None,
            "domain": "d",
        }
    )
    trusts = pd.DataFrame(
        {"trust_code": codes, "trust_name": codes, "trust_type": "acute", "trust_subtype": "", "region": "r"}
    )
    status = pd.DataFrame(
        {
            "trust_code": codes,
            "deficit": [True, True, True, False, False, False],
            "deficit_support": False,
            "improvement_programme": False,
        }
    )
    return scoring.build_league_table(
        scores, trusts, status, segmentation_rule="quartiles_within_type", replicates=200, seed=1, **override
    ).set_index("trust_code")


def test_financial_override_settings_move_the_tables():
    """from_segments and to_segment are the ones the scoring uses (they were hard-coded to [1, 2] → 3)."""
    default = _toy_league()
    unadj = default["unadjusted_segment"]
    moved_default = default.index[default["financial_override"].astype(bool)]
    assert list(moved_default) and all(unadj[t] in (1, 2) for t in moved_default)
    assert all(default.loc[t, "segment"] == 3 for t in moved_default)
    to4 = _toy_league(from_segments=(1, 2), to_segment=4)
    assert all(to4.loc[t, "segment"] == 4 for t in moved_default)
    only1 = _toy_league(from_segments=(1,), to_segment=3)
    moved1 = only1.index[only1["financial_override"].astype(bool)]
    assert set(moved1) == {t for t in moved_default if unadj[t] == 1}
    assert not set(moved1) == set(moved_default), "the toy data must have a trust in segment 2 in deficit"


def test_league_passes_the_methodology_override_to_the_scoring(monkeypatch, demo_inputs):
    """league._build hands the methodology's financial_override settings to the scoring (the page prints them)."""
    from leaguetables.config import load_catalogue, load_methodology
    from leaguetables.nof import league, scoring

    meth = load_methodology("nof-2025-26")
    meth = meth.model_copy(
        update={
            "financial_override": meth.financial_override.model_copy(update={"from_segments": [1], "to_segment": 5})
        }
    )
    seen = {}

    def capture(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(scoring, "build_league_table", capture)
    scores = pd.DataFrame(
        {
            "trust_code": ["x"],
            "metric_id": ["m"],
            "score_raw": [1.0],
            "weight": [1.0],
            "combine_group": [None],
            "domain": ["d"],
        }
    )
    with pytest.raises(RuntimeError, match="stop"):
        league._build(scores, "score_raw", demo_inputs, demo_inputs.quarters()[-1], meth, load_catalogue("demo"))
    assert seen["from_segments"] == (1,) and seen["to_segment"] == 5


# ------------------------------------------------------------------ safe text and finite numbers, end to end
FORMULA = re.compile(r"^[=+\-@\t\r]")
NUMERIC = re.compile(r"^-?\d+(\.\d+)?(e[+-]?\d+)?( to -?\d+(\.\d+)?)?$", re.IGNORECASE)


def _hostile_data(tmp: Path) -> Path:
    data = tmp / "data"
    shutil.copytree(BASE, data)

    def edit(name, line, column, value):
        path = data / name
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        rows[line - 1][rows[0].index(column)] = value
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")

    edit("trusts.csv", 2, "trust_name", '=HYPERLINK("http://example.invalid","Click me")')
    edit("trusts.csv", 3, "region", "+44 Region")
    edit("trusts.csv", 4, "trust_subtype", "@SUM(A1:A9)")
    edit("trusts.csv", 5, "trust_name", "-2+3 Care Trust")
    edit("observations.csv", 30, "numerator", "0")  # DEMO-A001 cdiff: zero events in the quarter
    return data


def test_published_cells_are_safe_and_finite(hostile_run):
    """Names beginning with formula characters and a trust with zero events: no CSV cell and no ODS cell begins
    with a formula character (other than numbers the project writes), no CSV or ODS holds inf or NaN, the
    ODS is well-formed XML, and the notes sheet says how text is neutralised."""
    import xml.etree.ElementTree as ET

    tmp, _, outcome = hostile_run
    assert outcome.status == "published"
    folder = tmp / "reports" / Q4
    csvs = sorted((folder / "tables").rglob("*.csv"))
    assert csvs
    for path in csvs:
        for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
            for cell in row:
                assert not (FORMULA.match(cell) and not NUMERIC.match(cell)), f"{path.name}: {cell!r}"
                assert cell.lower() not in ("inf", "-inf", "nan", "infinity"), f"{path.name}: {cell!r}"
    names = pd.read_csv(folder / "tables" / "league_table.csv", dtype=str)["Trust_name"]
    assert '\'=HYPERLINK("http://example.invalid","Click me")' in set(names)
    assert "'-2+3 Care Trust" in set(names)
    odss = sorted(folder.rglob("*.ods"))
    assert odss
    ns = {
        "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
        "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    }
    content = zipfile.ZipFile(odss[0]).read("content.xml")
    root = ET.fromstring(content)  # well-formed
    for cell in root.iter(f"{{{ns['table']}}}table-cell"):
        value = cell.get(f"{{{ns['office']}}}value")
        if value is not None:
            assert np.isfinite(float(value)), value
        if cell.get(f"{{{ns['table']}}}formula") is not None:
            pytest.fail("a cell holds a formula")
        text = "".join(cell.itertext())
        assert not (FORMULA.match(text) and not NUMERIC.match(text)), text
    assert b"OWASP" in content
    for page in [folder / "index.html", *sorted((folder / "metrics").glob("*.html"))]:  # funnels: metric pages
        html = page.read_text(encoding="utf-8")
        assert "φ = inf" not in html and "ratio inf" not in html, page.name
