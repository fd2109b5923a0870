"""`--source nof` inputs and the raw-statistics agreement table (issue 11, points 3 and 4), from NHS England's
published files in ../shared/data/real (each test skips, naming the absent folder). Expected counts come from the
published acute Q1 2025/26 and MH Q1–Q4 2025/26 files (SOURCE.md) and docs/nhse-vs-nof-q1-2025-26.md."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import real_data_or_skip

from leaguetables.inputs.contract import load_inputs
from leaguetables.inputs.sources import nhse, nof

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def q1():
    real_data_or_skip("nof_2025_26_q1_acute")
    real_data_or_skip("nof_2025_26_q4_mhc")
    return nof.load_nof_quarter("2025-26-Q1")


def test_q1_has_every_published_trust_of_both_types(q1):
    """Q1 2025/26: 134 acute + 61 MH and community = 195 trusts; OF5004 deficit flags (99 acute + 19 MH = 118)
    and OF5007 Recovery Support Programme flags (14 acute + 3 MH = 17) as status."""
    t = q1["trusts"]
    assert len(t) == 195 and t["trust_type"].value_counts().to_dict() == {"acute": 134, "mental_health_community": 61}
    st = q1["status"].merge(t, on="trust_code")
    assert st.groupby("trust_type")["deficit"].sum().to_dict() == {"acute": 99, "mental_health_community": 19}
    assert int(st.loc[st["trust_type"] == "acute", "improvement_programme"].sum()) == 14
    assert not st["deficit_support"].any()


def test_q1_observations_values_with_published_rank(q1):
    """Values only (no numerator/denominator) with the published within-type Rank as tiebreak; infection count
    rows of specialist trusts go to the _count metrics; CQC safe as the published score category."""
    o = q1["observations"]
    assert o["numerator"].isna().all() and o["denominator"].isna().all()
    v = o[o["value"].notna()]
    assert v["tiebreak"].notna().all()
    assert 1 <= o.loc[o["metric_id"] == "of0048_count", "trust_code"].nunique() <= 5
    assert set(o.loc[o["metric_id"] == "of1067", "category"]) <= {"score 1", "score 2", "score 3", "score 4"}
    assert o.loc[(o["metric_id"] == "of0013") & (o["trust_code"] == "RJ1"), "value"].item() == pytest.approx(78.8)


def test_q1_inputs_pass_the_contract(q1, tmp_path):
    """The four tables written and read back through the data contract (optional tiebreak column included)."""
    from leaguetables.config import load_catalogue

    nhse.write_quarter(q1, tmp_path)
    inputs = load_inputs(tmp_path, load_catalogue("nof-2025-26"), "2025-26-Q1")
    assert len(inputs.trusts) == 195 and "tiebreak" in inputs.observations.columns


def test_q2_has_mental_health_only():
    """Q2 2025/26: only the MH and community file covers it (61 trusts); Q1 2026/27 is covered by no file."""
    real_data_or_skip("nof_2025_26_q4_mhc")
    q2 = nof.load_nof_quarter("2025-26-Q2")
    assert len(q2["trusts"]) == 61 and set(q2["trusts"]["trust_type"]) == {"mental_health_community"}
    with pytest.raises(nof.NoNofData, match="no published NOF file covers 2026-27-Q1"):
        nof.load_nof_quarter("2026-27-Q1")


def test_raw_statistics_agreement_q1():
    """docs/nhse-vs-nof-q1-2025-26.md: cancer FDS and 62-day 118/118 equal at 2 dp, sickness absence (NOF lag:
    our 2024-25-Q4) 134/134, staff survey 132/134 each (RAL, RAX: mergers), A&E 4-hour 73/123 at the published
    1 dp from own attendances and 117/123 with the June 2022 type-3 attribution."""
    real_data_or_skip("nof_2025_26_q1_acute")
    from leaguetables.nof import agreement

    _, summ = agreement.agreement("2025-26-Q1")
    s = summ.set_index("metric_id")
    assert s.loc["cancer_fds_28d", ["compared", "equal"]].tolist() == [118, 118]
    assert s.loc["cancer_62d", ["compared", "equal"]].tolist() == [118, 118]
    assert s.loc["sickness_absence", ["our_quarter", "equal"]].tolist() == ["2024-25-Q4", 134]
    assert s.loc["staff_engagement", "equal"] == 132 and s.loc["staff_raising_concerns", "equal"] == 132
    assert s.loc["ae_4hr", ["published_decimals", "compared", "equal"]].tolist() == [1, 123, 73]
    assert s.loc["ae_4hr_attributed_2022", "equal"] == 117


@pytest.fixture(scope="module")
def nof_report(tmp_path_factory):
    import subprocess
    import sys
    from pathlib import Path

    real_data_or_skip("nof_2025_26_q1_acute")
    real_data_or_skip("nof_2025_26_q4_mhc")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("nof")
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run_quarter.py"),
            "2025-26-Q1",
            "--source",
            "nof",
            "--out",
            str(out),
            "--jobs",  # one notebook kernel: a second costs its start and imports (~3.5 CPU-s) and changes no output
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr
    return out / "2025-26-Q1"


@pytest.mark.slow
def test_source_nof_publishes_195_trusts_joining_the_published_file_row_for_row(nof_report):
    """`run_quarter.py 2025-26-Q1 --source nof`: 134 acute + 61 MH trusts in the league table; its NHS-layout long
    file has exactly the published (trust, Metric_ID) rows of the acute Q1 and MH Q1 files (9,507), with the
    published Metric_description, Units and Reporting_date on every row and every OF0xxx value equal."""
    lt = pd.read_csv(nof_report / "tables" / "league_table_full.csv", dtype={"trust_code": str})
    assert lt["trust_type"].value_counts().to_dict() == {"acute": 134, "mental_health_community": 61}
    assert (
        lt["segmentation_population"]
        .iloc[0]
        .startswith("pooled averages of acute + mental_health_community (195 trusts)")
    )
    ours = pd.read_csv(
        nof_report / "tables" / "nof_data_long.csv", dtype={"Trust_code": str}, keep_default_na=False, na_values=[""]
    )
    d = nof.read_all_nof_data(nof.find_all_nof_files())
    d = d[d["quarter"] == "2025-26-Q1"].rename(columns={"trust_code": "Trust_code", "metric_id": "Metric_ID"})
    j = ours.merge(d, on=["Trust_code", "Metric_ID"], how="outer", indicator=True)
    assert len(ours) == len(d) == 9507 and (j["_merge"] == "both").all()
    assert (j["Metric_description"] == j["metric_description"]).all()
    assert (j["Units"].astype(str) == j["units"].astype(str)).all()
    assert (j["Reporting_date"].fillna("").astype(str) == j["reporting_date"].fillna("").astype(str)).all()
    v = j[j["Metric_ID"].str.startswith("OF0")]
    assert ((pd.to_numeric(v["Value"]) - v["value"]).abs() < 1e-9).all()
    pages = "".join(p.read_text(encoding="utf-8") for p in sorted((nof_report / "metrics").glob("*.html")))
    assert (
        "Published as a value only (no numerator or denominator): no confidence interval and no funnel plot." in pages
    )
