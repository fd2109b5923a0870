"""A quarter assembled from the real files: ``load_nhse_quarter``, coverage, demographics, CLI.

Skipped when ../shared/data/real is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.inputs.sources import common, demographics, nhse, ods

RAW = common.DEFAULT_RAW_DIR
DEMO = RAW / "trust_catchment_demographics"
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (RAW / "nhse_perf_2024_25").is_dir() or not DEMO.is_dir(),
        reason=f"real NHS England data not found at {RAW} (../shared/data/real relative to the repository root)",
    ),
]
Q4 = "2024-25-Q4"
Q4_METRICS = [
    "ae_4hr",
    "ae_12hr_dta",
    "cancer_fds_28d",
    "cancer_31d",
    "cancer_62d",
    "diag_6wk",
    "beds_ga_occupancy",
    "sickness_absence",
    "staff_engagement",
    "staff_raising_concerns",
]


@pytest.fixture(scope="module")
def q4():
    with pytest.warns(UserWarning, match="rtt: skipped"):
        return nhse.load_nhse_quarter(Q4)


def test_quarter_tables_and_layout(q4):
    assert set(q4) == {"trusts", "observations", "demographics", "status"}
    assert list(q4["trusts"].columns) == common.TRUST_COLUMNS
    assert list(q4["observations"].columns) == common.OBS_COLUMNS
    assert list(q4["demographics"].columns) == common.DEMOGRAPHIC_COLUMNS
    assert list(q4["status"].columns) == common.STATUS_COLUMNS
    trusts = q4["trusts"]
    assert len(trusts) == 121 and trusts["trust_code"].is_unique
    assert set(trusts["trust_type"]) == {"acute"}
    assert trusts["region"].nunique() == 7 and not trusts.isna().any().any()
    t = trusts.set_index("trust_code")
    assert t.loc["R1F", "trust_name"] == "Isle of Wight NHS Trust"
    assert "RAP" not in t.index  # merged into Royal Free on 1 January 2025
    obs = q4["observations"]
    assert set(obs["metric_id"]) == set(Q4_METRICS) and set(obs["metric_id"]) <= set(common.METRICS)
    assert set(obs["trust_code"]) <= set(trusts["trust_code"])
    assert not obs.duplicated(["quarter", "trust_code", "metric_id"]).any()
    assert (obs["quarter"] == Q4).all()
    counts = obs[obs["numerator"].notna()]
    assert (counts["numerator"] >= 0).all() and (counts["denominator"] > 0).all()
    assert (counts["numerator"] <= counts["denominator"]).all()
    means = obs[obs["metric_id"].str.startswith("staff_")]
    assert means["numerator"].isna().all() and means["value"].between(0, 10).all()


def test_coverage_every_metric_121_trusts(q4):
    cov = common.coverage_table(q4["observations"], q4["trusts"], common.METRICS).set_index("metric_id")
    for metric in Q4_METRICS:
        assert cov.loc[metric, "covered"] == 121, metric
        assert cov.loc[metric, ["missing", "suppressed", "excluded"]].sum() == 0
    assert cov.loc["rtt_18wk", "missing"] == 121  # only April 2026 is published


def test_named_trusts_match_the_adapters(q4):
    obs = q4["observations"].set_index(["trust_code", "metric_id"])
    assert tuple(obs.loc[("R0A", "ae_4hr"), ["numerator", "denominator"]]) == (90402, 128576)
    assert tuple(obs.loc[("RGT", "cancer_62d"), ["numerator", "denominator"]]) == (543, 736.5)
    assert tuple(obs.loc[("RJ1", "diag_6wk"), ["numerator", "denominator"]]) == (5028, 19785)
    assert obs.loc[("R1F", "staff_engagement"), "value"] == pytest.approx(6.490796861425831)


def test_status_flags_false_with_note(q4):
    status = q4["status"]
    assert len(status) == 121 and not status[["deficit", "deficit_support", "improvement_programme"]].any().any()
    assert "not published" in status.attrs["note"]


def test_other_trust_types():
    with pytest.warns(UserWarning):
        data = nhse.load_nhse_quarter(Q4, trust_types=("mental_health_community", "ambulance"))
    types = data["trusts"]["trust_type"].value_counts().to_dict()
    assert types == {"mental_health_community": 58, "ambulance": 10}
    cov = common.coverage_table(data["observations"], data["trusts"], common.METRICS).set_index("metric_id")
    assert cov.loc["sickness_absence", "covered"] == 68
    assert cov.loc["staff_engagement", "covered"] == 68
    assert data["demographics"]["population"].isna().all()  # OHID catchments are acute only


# ---------------------------------------------------------------------------- demographics
def test_demographics_agree_with_the_derived_table():
    ours = demographics.catchment_demographics(DEMO).set_index("trust_code")
    derived = pd.read_csv(DEMO / "trust_catchment_demographics_derived.csv").set_index("nhs_trust22_code")
    assert len(ours) == len(derived) == 138 and set(ours.index) == set(derived.index)
    pairs = {
        "share_65plus": "pct_65_plus",
        "share_85plus": "pct_85_plus",
        "imd_score": "imd2019_score",
        "rural_share": "pct_rural_ruc2011",
    }
    for ours_col, their_col in pairs.items():
        diff = (ours[ours_col] - derived.loc[ours.index, their_col]).abs().max()
        assert diff < 1e-12, (ours_col, diff)
    assert ours["ethnic_minority_share"].isna().all()  # no ethnicity source among the inputs


def test_catchment_population_against_phe_2018():
    """NNLS catchment populations vs PHE catchments (THF trust reference file, 2018) for general
    acute trusts unchanged since April 2018: 99 trusts, median ratio 1.011, 91% within ±10%."""
    ours = demographics.catchment_demographics(DEMO).set_index("trust_code")["population"]
    thf = pd.read_csv(DEMO / "thf_trust_ref_file_2011_2021.csv")
    phe = thf[thf["year"] == 2018].set_index("procode")["catchment_cat"].dropna()
    nss = pd.read_csv(RAW / "nhse_perf_2024_25" / "staff_survey_nss2024_org_themes.csv")
    general = set(nss.loc[nss["Benchmarking group"].str.startswith("Acute and"), "ODS code"]) | {"R1F"}
    changed = set()
    for old, (new, eff, _) in ods.SUCCESSORS.items():
        if eff >= "2018-04-01":
            changed |= {old, new}
    codes = sorted(c for c in ours.dropna().index if c in phe.index and c in general and c not in changed)
    ratio = ours[codes] / phe[codes]
    assert len(codes) == 99
    assert 0.99 < ratio.median() < 1.03
    assert (ratio.sub(1).abs() < 0.10).mean() > 0.85
    assert np.corrcoef(ours[codes], phe[codes])[0, 1] > 0.98
    # the estimate reproduces England's population (sum of LAD populations, mid-2020)
    lad = demographics.lad_table(DEMO)
    england = lad.loc[[c for c in lad.index if c.startswith("E")], "population"].sum()
    assert ours.sum() == pytest.approx(england, rel=0.001)


def test_demographics_of_merged_trusts(q4):
    base = demographics.catchment_demographics(DEMO).set_index("trust_code")
    demo = q4["demographics"].set_index("trust_code")
    assert len(demo) == 121 and not demo.drop(columns="ethnic_minority_share").isna().any().any()
    for successor, preds in {
        "RAL": ["RAL", "RAP"],
        "RH5": ["RH5", "RA4"],
        "RBN": ["RBN", "RVY"],
        "RH8": ["RH8", "RBZ"],
    }.items():
        pop = base.loc[preds, "population"]
        assert demo.loc[successor, "population"] == pytest.approx(pop.sum())
        for col in ("share_65plus", "share_85plus", "imd_score", "rural_share"):
            assert demo.loc[successor, col] == pytest.approx(np.average(base.loc[preds, col], weights=pop))
    assert demo.loc["RGT", "imd_score"] == pytest.approx(base.loc["RGT", "imd_score"])


# ------------------------------------------------------------------------------------- CLI
def test_cli_writes_four_contract_csvs(tmp_path, capsys):
    with pytest.warns(UserWarning):
        assert nhse.main([Q4, "--raw", str(RAW), "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["demographics.csv", "observations.csv", "status.csv", "trusts.csv"]
    trusts = pd.read_csv(tmp_path / "trusts.csv")
    obs = pd.read_csv(tmp_path / "observations.csv")
    status = pd.read_csv(tmp_path / "status.csv")
    assert len(trusts) == 121 and len(obs) == 1210
    # NHS England's performance files carry no finance data: the flags are unknown (empty), never a default False
    assert status[["deficit", "deficit_support", "improvement_programme"]].isna().all().all()
    assert list(obs.columns) == common.OBS_COLUMNS
    out = capsys.readouterr()
    assert "121 trusts" in out.out and "not published" in out.err


def test_written_quarter_passes_the_data_contract(q4, tmp_path):
    contract = pytest.importorskip("leaguetables.inputs.contract")
    nhse.write_quarter(q4, tmp_path)
    inputs = contract.load_inputs(tmp_path, quarter=Q4)
    assert len(inputs.trusts) == 121 and len(inputs.observations) == 1210


def test_missing_raw_dir_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="real NHS England data not found"):
        nhse.load_nhse_quarter(Q4, raw_dir=tmp_path)
