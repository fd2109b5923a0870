"""Backtest against NHS England's published NOF 2025/26 files (mental health and community trusts, Q1–Q4).

The files are read in place from ../shared/data/real/nof_2025_26_q4_mhc (never copied). Every test skips,
saying why, when that folder is absent. Expected figures come from the published files themselves; the rules
recomputed are those of ../shared/docs/nof-methodology.md as implemented in leaguetables.scoring.
"""

from __future__ import annotations

import pandas as pd
import pytest

from leaguetables import reconcile as rec
from leaguetables.sources import nof

pytestmark = pytest.mark.realdata

QUARTERS = ["2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4"]


@pytest.fixture(scope="module")
def files() -> nof.NofFiles:
    try:
        return nof.find_nof_files(nof.DEFAULT_NOF_DIR)
    except FileNotFoundError:
        pytest.skip(f"published NOF files not found at {nof.DEFAULT_NOF_DIR} (needs ../shared/data/real beside "
                    "the project)")


@pytest.fixture(scope="module")
def result(files) -> rec.Reconciliation:
    return rec.reconcile(files.data.parent, replicates=rec.REPLICATES, seed=rec.SEED)


def rows(result, quantity, quarter=None) -> pd.DataFrame:
    r = result.rows[result.rows["quantity"] == quantity]
    return r if quarter is None else r[r["quarter"] == quarter]


def test_reads_bom_and_normalises(files):
    """Published data CSV starts with a UTF-8 BOM; the first column must still be read as Quarter. 8,771
    rows (SOURCE.md), quarters as YYYY-YY-QN, one trust type, 61 trusts per quarter."""
    assert files.data.read_bytes()[:3] == b"\xef\xbb\xbf"
    data = nof.read_nof_data(files.data)
    assert len(data) == 8771
    assert sorted(data["quarter"].unique()) == QUARTERS
    assert set(data["trust_type"]) == {"mental_health_community"}
    assert data.groupby("quarter")["trust_code"].nunique().eq(61).all()


def test_league_table_ranges_parsed(files):
    """Published league table row 1: RYY, 1.53, "1.2 to 1.89", segment 1, rank 1, "1 to 11"."""
    lt = nof.read_league_table(files.league_table).set_index("trust_code")
    assert len(lt) == 61
    assert lt.loc["RYY", ["average_score", "average_lower", "average_upper"]].tolist() == [1.53, 1.2, 1.89]
    assert lt.loc["RYY", ["segment", "rank", "rank_lower", "rank_upper"]].tolist() == [1, 1, 1, 11]
    assert nof.parse_range("1 to 34") == (1.0, 34.0)
    with pytest.raises(ValueError, match="unrecognised range"):
        nof.parse_range("1-34")


@pytest.mark.parametrize("quarter", QUARTERS)
def test_ranks_from_published_segments_and_averages(result, quarter):
    """Published Rank of OF5000, every trust, each quarter: rank within type by OF5000 then OF5002, 1,2,2,4."""
    r = rows(result, "rank", quarter)
    assert len(r) == 61 and (r["status"] == "exact").all(), r[r["status"] != "exact"]


@pytest.mark.parametrize("quarter", QUARTERS)
def test_financial_override(result, quarter):
    """Published OF5000 from OF5003 and the OF5004 flag, every trust, each quarter."""
    r = rows(result, "segment_after_override", quarter)
    assert len(r) == 61 and (r["status"] == "exact").all(), r[r["status"] != "exact"]


def test_segment_5_where_published(result):
    """Published OF5005 (Q1–Q2 only) = 5 exactly where OF5007 = 1, else OF5000."""
    r = rows(result, "segment_5")
    assert sorted(r["quarter"].unique()) == QUARTERS[:2] and (r["status"] == "exact").all()


@pytest.mark.parametrize("quarter", QUARTERS)
def test_combined_finance_score(result, quarter):
    """Published OF1080 from OF1079 and OF1081 (combine_finance), every trust, each quarter."""
    r = rows(result, "combined_finance_score", quarter)
    assert len(r) == 61 and (r["status"] == "exact").all(), r[r["status"] != "exact"]


@pytest.mark.parametrize("quarter", QUARTERS)
def test_averages_from_published_scores_within_001(result, quarter):
    """Published OF5002 from the published metric scores (finance once, combined): every trust within 0.01,
    most exactly (the rest: NHS England averages unrounded scores)."""
    r = rows(result, "average", quarter)
    assert len(r) == 61 and (r["difference"].abs() <= 0.01 + 1e-9).all()
    assert (r["status"] == "exact").mean() >= 0.9


@pytest.mark.parametrize("quarter", QUARTERS)
def test_domain_scores_within_001(result, quarter):
    """Published OF40xx domain scores from the published metric scores: every trust within 0.01."""
    r = result.rows[(result.rows["quarter"] == quarter) & result.rows["quantity"].str.startswith("domain_score")]
    assert len(r) > 290 and (r["status"] != "differs").all()


def test_q4_segments_within_type_quartiles(result):
    """Published Q4 2025/26 OF5003 vs within-type quartiles of the 61 published averages (cut points 2.11 /
    2.29 / 2.57, numpy default; a trust on a cut point goes to the better segment).

    Every trust matches except the three whose average is exactly the lowest cut point 2.11 (RPG, RWX, RX3):
    NHS England put them in segment 2, although the trusts exactly on 2.29 and 2.57 went to the better
    segment, so no single tie rule on the published 2-dp averages reproduces all 61 (an open question,
    reported in reports/reconciliation/summary.md). This pins that known discrepancy so any change shows.
    """
    seg = result.segments.set_index("quarter").loc["2025-26-Q4"]
    assert (seg["cut_1"], seg["cut_2"], seg["cut_3"]) == pytest.approx((2.11, 2.29, 2.57))
    r = rows(result, "segment_within_type_quartiles", "2025-26-Q4")
    assert len(r) == 61
    assert set(r.loc[r["status"] != "exact", "trust_code"]) == {"RPG", "RWX", "RX3"}
    on_lowest_cut = set(seg["trusts_on_a_cut"].split()) & {"RPG", "RWX", "RX3"}
    assert on_lowest_cut == {"RPG", "RWX", "RX3"}


def test_q1_q3_segment_sizes_reported(result):
    """Published segment sizes Q1–Q3 (16/16/12/17, 18/13/13/17, 18/17/14/12) differ from within-type quartile
    sizes; the reconciliation reports both."""
    seg = result.segments.set_index("quarter")
    assert seg.loc["2025-26-Q1", "published_sizes"] == "16/16/12/17"
    assert seg.loc["2025-26-Q2", "published_sizes"] == "18/13/13/17"
    assert seg.loc["2025-26-Q3", "published_sizes"] == "18/17/14/12"
    assert (seg.loc[QUARTERS[:3], "published_sizes"] != seg.loc[QUARTERS[:3], "quartile_sizes"]).all()


def test_q4_likely_ranges(result):
    """Published Q4 league table: likely range of average within 0.02 at both ends and likely range of rank
    within ±1 at both ends for ≥ 95% of the 61 trusts (joint bootstrap, 50,000 replicates, fixed seed)."""
    r = result.rows[(result.rows["quarter"] == "2025-26-Q4") & result.rows["quantity"].str.startswith("likely_range")]
    wide = r.pivot(index="trust_code", columns="quantity", values="difference").abs()
    avg_ok = (wide["likely_range: average_lower"] <= 0.02 + 1e-9) & (wide["likely_range: average_upper"] <= 0.02 + 1e-9)
    rank_ok = (wide["likely_range: rank_lower"] <= 1) & (wide["likely_range: rank_upper"] <= 1)
    assert len(wide) == 61
    assert avg_ok.mean() >= 0.95, wide[~avg_ok]
    assert rank_ok.mean() >= 0.95, wide[~rank_ok]


@pytest.mark.parametrize("quarter", QUARTERS)
@pytest.mark.parametrize("metric", ["OF1061", "OF1084"])
def test_staff_survey_scores_from_published_values(result, quarter, metric):
    """Published OF1061/OF1084 from OF0061/OF0084: 1 + 3(r − 1)/60, r the rank of the published value (ties in
    the 2-dp values broken by the published rank), every trust, each quarter."""
    r = rows(result, f"staff_survey_score: {metric}", quarter)
    assert len(r) == 61 and (r["status"] == "exact").all(), r[r["status"] != "exact"]


def test_cli_writes_outputs(files, tmp_path):
    """`python -m leaguetables.reconcile --nof-dir DIR --out DIR` writes the four outputs."""
    code = rec.main(["--nof-dir", str(files.data.parent), "--out", str(tmp_path), "--replicates", "500"])
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["reconciliation.csv", "segments.csv", "summary.csv", "summary.md"]
    table = pd.read_csv(tmp_path / "reconciliation.csv")
    assert list(table.columns) == ["quarter", "trust_code", "quantity", "published", "recomputed", "difference",
                                   "tolerance", "status"]
    assert set(table["status"]) <= {"exact", "within_rounding", "differs"}


def test_cli_missing_folder(tmp_path, capsys):
    """A folder without the NOF CSVs: exit code 2 and a message naming the folder."""
    assert rec.main(["--nof-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no NOF data CSV" in capsys.readouterr().err
