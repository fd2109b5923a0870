"""End to end: a demo quarter through run_quarter.py, checked for internal consistency and determinism.

The quarter is the session's published demo quarter (``published_quarters`` in tests/conftest.py: ten metrics
covering all three trust types, adjusted metrics, a rate with a funnel plot, a bracket metric and the combined
finance group; movement since the previous quarter, computed from the inputs); this module reads it and never writes into it (determinism:
the session's second run of it, on one kernel). The tests that need a run of their own (wrong arguments, a trust
type with no scored metric) make one.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import PUBLISHED_METRICS as METRICS
from conftest import PUBLISHED_QUARTER as QUARTER

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_quarter(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_quarter.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def published(published_quarters, published_stdout):
    """(the published folder, what run_quarter.py printed)."""
    return published_quarters[0], published_stdout


def test_run_prints_the_report_path(published):
    folder, stdout = published
    assert f"published {folder / 'index.html'}" in stdout


def test_league_tables_are_consistent(published, demo_inputs):
    folder, _ = published
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    trusts = demo_inputs.trusts
    trusts = trusts[trusts["trust_type"] != "icb"]  # no ICB metric among METRICS: the ICBs are unscored
    assert sorted(lt["trust_code"]) == sorted(trusts["trust_code"]), "every trust in exactly one table"
    assert lt["trust_code"].is_unique
    assert set(lt["segment"]) <= {1, 2, 3, 4, 5}
    for ttype, g in lt.groupby("trust_type"):
        key = list(zip(g["segment"].where(g["segment"] < 5, 4), g["average_score"]))  # segment 5 ranks as 4
        expected = pd.Series([1 + sum(k2 < k for k2 in key) for k in key], index=g.index)
        assert (g["rank"] == expected).all(), f"{ttype}: ranks are not competition ranks by segment then average"
        assert (g["rank_of"] == len(g)).all()
    nhse = pd.read_csv(folder / "tables" / "league_table.csv")
    assert list(nhse.columns) == [
        "Quarter",
        "Region",
        "Trust_type",
        "Trust_subtype",
        "Trust_code",
        "Trust_name",
        "Average_score",
        "Likely_range_of_average_score",
        "Segment",
        "Trust_in_financial_deficit",
        "Rank",
        "Likely_range_of_rank",
    ]
    long = pd.read_csv(folder / "tables" / "nof_data_long.csv")
    assert list(long.columns) == [
        "Quarter",
        "Region",
        "Trust_type",
        "Trust_subtype",
        "Trust_code",
        "Trust_name",
        "Domain",
        "Sub-domain",
        "Metric_ID",
        "Metric_description",
        "Reporting_date",
        "Units",
        "Value",
        "Median_value",
        "Lower_quartile",
        "Upper_quartile",
        "Rank",
    ]
    assert {"OF5000", "OF5002", "OF5003", "OF5004"} <= set(long["Metric_ID"])
    # NHS England's own codes and labels only (config/nof/codes-2025-26.yaml, checked against the published files)
    from leaguetables.nof.codes import load_nof_codes

    codes = load_nof_codes()
    assert set(long["Metric_ID"]) <= set(codes.codes)
    for code, g in long.groupby("Metric_ID"):
        assert set(g["Metric_description"]) == {codes.get(code).description}, code
    assert set(long.loc[long["Metric_ID"] == "OF5004", "Value"]) <= {0, 1}  # the deficit flag


def test_html_has_each_league_table_and_no_code_or_external_scripts(published):
    folder, _ = published
    page = (folder / "index.html").read_text(encoding="utf-8")
    for caption in (
        "League table: acute trusts",
        "League table: mental health and community trusts",
        "League table: ambulance trusts",
    ):
        assert caption in page
    assert page.count("<h1") == 1
    assert "<title>NHS trust league tables: Q4 2025/26" in page
    assert "Demonstration: synthetic data" in page and "Official statistics in development" not in page
    assert "http://" not in page.split("<body", 1)[1].replace("http://www.w3.org", "")
    for bad in ("<script src", "cdn.", "jp-InputArea", "In&nbsp;[", "load_context", "notebook_env"):
        assert bad not in page, bad
    assert "<svg" not in page, "the funnel plots are on the metric pages, not the front page"
    metric_pages = [p.read_text(encoding="utf-8") for p in sorted((folder / "metrics").glob("*.html"))]
    assert sum(p.count('role="img"') for p in metric_pages) >= 2, "funnel plots are inline SVG with a text alternative"
    for bad in ("<script src", "cdn.", "jp-InputArea"):
        assert not any(bad in p for p in metric_pages), bad


def test_manifest_hashes_match_the_files(published):
    folder, _ = published
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["outputs"], "manifest lists the outputs"
    for rel, digest in manifest["outputs"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    for meta in manifest["inputs"].values():
        if meta["sha256"] is None:  # an input recorded as absent (no previous quarter published)
            assert not Path(meta["path"]).exists()
            continue
        assert hashlib.sha256(Path(meta["path"]).read_bytes()).hexdigest() == meta["sha256"]
    assert manifest["environment"]["kernel"] == "leaguetables"
    assert manifest["methodology"]["bootstrap_seed"] and manifest["timings_seconds"]["total"] > 0
    assert set(manifest["parameters"]["metrics"]) == set(METRICS.split(","))


def test_executed_notebooks_record_the_interpreter(published):
    folder, _ = published
    nbs = sorted((folder / "notebooks").glob("*.ipynb"))
    assert len(nbs) == len(METRICS.split(",")) + 2
    text = (folder / "notebooks" / "metric_ae_4hr.ipynb").read_text()
    assert "sys.executable" in text and sys.executable.split("/")[-3] in text


def test_second_run_gives_byte_identical_outputs(published_quarters):
    """The session's two runs of the quarter (``published_quarters``: each into its own folder, no cache shared, side
    by side, on warm kernels: two for the first, forked by the session's kernel server, one for the second, started
    as a process, as without a server): every published file byte-identical — tables,
    report, profiles, methodology, spreadsheet, figures — except the manifest (run times) and the executed
    notebooks, whose cell outputs must be identical (their metadata records the run); and --verify's comparison
    finds nothing. (The second ran with ``--isolated`` until issue 13's third round; that no state leaks between
    notebooks is also test_rerun.test_isolated_run_is_byte_identical_to_the_default_run's, on the corpus base.)"""
    from leaguetables.run.manifest import published_files
    from leaguetables.run.verify import compare_folders

    folder, again = published_quarters
    forked = json.loads((folder.parents[1] / "forked.json").read_text(encoding="utf-8"))
    if forked is not None:  # a session with a kernel server (unless LEAGUETABLES_TEST_KERNEL_SERVER=0)
        assert forked["a"] >= 1 and forked["b"] == 0, forked
    first = [p.relative_to(folder) for p in published_files(folder)]
    second = [p.relative_to(again) for p in published_files(again)]
    assert first == second and first
    assert any(p.parts[0] == "tables" for p in first) and Path("index.html") in first
    for rel in first:
        if rel.parts[0] != "notebooks":
            assert (folder / rel).read_bytes() == (again / rel).read_bytes(), f"{rel} differs between runs"
    comparison = compare_folders(folder, again)
    assert comparison.identical, comparison.report()


def test_wrong_arguments_exit_2_with_one_line(tmp_path):
    """A quarter the demo data does not have, refused once the data are read (the pipeline's path). A malformed
    quarter and an unknown metric, refused before the pipeline is imported, are the next test's (same messages, exit
    code, one line, nothing published); tests/test_bad_inputs.py runs the corpus through run_quarter.py."""
    for args, message in ((["2030-31-Q1"], "quarter 2030-31-Q1 is not in the data"),):
        proc = run_quarter(*args, "--out", str(tmp_path), "--no-progress")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir()), "nothing published"


def test_wrong_arguments_are_refused_before_the_pipeline_is_imported(tmp_path):
    """A malformed quarter, an empty --metrics and a metric the catalogue lacks are refused from the arguments alone
    (run_quarter.wrong_argument): neither the pipeline nor pandas is imported, so the refusal takes a fraction of
    the second those imports cost."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import run_quarter; "
        "rc = run_quarter.main(sys.argv[2:]); "
        "print(rc, 'leaguetables.run.pipeline' in sys.modules, 'pandas' in sys.modules)"
    )
    for args, message in (
        (["2025-26-Q9"], "quarter '2025-26-Q9'"),
        (["2025-26-Q4", "--metrics", " , "], "--metrics names no metric"),
        (["2025-26-Q4", "--metrics", "ae_4hr,nope"], "unknown metric(s) ['nope']"),
        (["2025-26-Q4", "--catalogue", "nhse-acute", "--metrics", "cdiff"], "the catalogue 'nhse-acute' has"),
    ):
        cmd = [sys.executable, "-c", probe, str(ROOT), *args, "--out", str(tmp_path), "--no-progress"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.stdout.split() == ["2", "False", "False"], (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    assert not any(tmp_path.iterdir()), "nothing published"


def test_a_trust_type_with_no_scored_metric_is_left_out_of_the_league_and_said_so(tmp_path):
    """With only acute and mental-health metrics selected, ambulance trusts have no score: they are not segmented
    or ranked, the run still publishes, and the data-quality section names them. On the six-trust corpus base
    (tests/bad_inputs/base: three acute, two mental health and community, one ambulance trust)."""
    base = ROOT / "tests" / "bad_inputs" / "base"
    proc = run_quarter(
        QUARTER,
        "--source",
        "files",
        "--data",
        str(base),
        "--catalogue",
        "demo",
        "--out",
        str(tmp_path),
        "--metrics",
        "ae_4hr,mh_crisis_24h",
        "--jobs",
        "1",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / QUARTER
    lt = pd.read_csv(folder / "tables" / "league_table_full.csv")
    assert set(lt["trust_type"]) == {"acute", "mental_health_community"}
    assert len(lt) == 5 and "DEMO-B001" not in set(lt["trust_code"])
    assert lt["segment"].notna().all()
    page = (folder / "index.html").read_text(encoding="utf-8")
    found = re.search(
        r"(\d+) trust\(s\) had no scored metric this quarter and are not segmented or ranked: ([^<]*)", page
    )
    assert found and int(found.group(1)) == 1, "the ambulance trust"
    assert "(DEMO-B001)" in found.group(2)
