"""A real quarter end to end: Q4 2024/25 for every acute trust in England (134, specialists included, as NHS England
ranks them), from NHS England's published files in ../shared/data/real (skips when they are absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import real_data_or_skip

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    raw = real_data_or_skip()
    out = tmp_path_factory.mktemp("real")
    # the README's command: a --raw relative to the project (as ../shared/data/real), two notebook threads
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_quarter.py"),
            "2024-25-Q4",
            "--source",
            "nhse",
            "--raw",
            os.path.relpath(raw, ROOT),
            "--out",
            str(out),
            "--jobs",
            "2",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    return out / "2024-25-Q4"


def test_real_quarter_has_at_least_eight_metrics_and_all_acute_trusts(real_report):
    lt = pd.read_csv(real_report / "tables" / "league_table_full.csv")
    assert len(lt) == 134 and set(lt["trust_type"]) == {"acute"}  # 121 with a type 1 A&E + 13 without
    metrics = json.loads((real_report / "manifest.json").read_text())["parameters"]["metrics"]
    assert len(metrics) >= 8
    assert all((real_report / "tables" / "metrics" / f"{m}.csv").exists() for m in metrics)
    assert (real_report / "tables" / "metrics" / "ae_4hr_model.csv").exists(), "demographic adjustment applied"
    assert set(lt["segment"]) == {1, 2, 3, 4}, "no finance or improvement-programme flags in the published inputs"


def test_real_report_is_offline_and_says_it_is_not_official(real_report):
    page = (real_report / "index.html").read_text(encoding="utf-8")
    assert "Reproduced from published data; not an official statistic" in page
    assert "CQC safe inspection rating" in page and "Finance" in page, "names the NOF metrics missing from the inputs"
    assert "<script src" not in page and "https://" not in page.replace("http://www.w3.org", "")
    metric_pages = [p.read_text(encoding="utf-8") for p in sorted((real_report / "metrics").glob("*.html"))]
    assert sum(p.count('role="img"') for p in metric_pages) >= 5, "funnel plots, one page per metric"
    assert not any("<script src" in p or "https://" in p.replace("http://www.w3.org", "") for p in metric_pages)


def test_real_quarter_labels_are_true_and_it_verifies(real_report):
    """Issue 12: the badge and status say what the release is (not "official statistics in development"); the
    finance flags NHS England's performance files do not carry are [x], not "No"; and the README's real-data
    command, run with two notebook threads and a relative --raw, passes --verify (no path recorded from a
    working directory changed by a thread)."""
    page = (real_report / "index.html").read_text(encoding="utf-8")
    assert "Official statistics in development" not in page
    assert '<strong class="site-label">Not an official statistic</strong>' in page
    lt = pd.read_csv(real_report / "tables" / "league_table.csv", dtype=str, keep_default_na=False)
    assert set(lt["Trust_in_financial_deficit"]) == {"[x]"}
    manifest = json.loads((real_report / "manifest.json").read_text())
    assert Path(manifest["parameters"]["raw"]) == real_data_or_skip()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_quarter.py"),
            "2024-25-Q4",
            "--verify",
            "--out",
            str(real_report.parent),
            "--jobs",  # one kernel: the rerun checks the outputs; the publishing run above has the two threads
            "1",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("verified:")
