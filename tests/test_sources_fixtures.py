"""Parsing edge cases of the source adapters on small fixtures in the published formats.

The fixtures (``tests/fixtures/sources/``) hold invented values in NHS England's layouts:
national total rows, booked appointments, renamed columns between years, suppressed cells
(``*``), ``-`` for not applicable, sector rows, header-less ODS files. No real data needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import assert_refused_edits

from leaguetables.config import CONFIG_DIR, load_successors
from leaguetables.inputs.sources import ae, beds, cancer, common, diagnostics, ods, rtt, sickness, staff_survey

FIX = Path(__file__).parent / "fixtures" / "sources"


def one(obs: pd.DataFrame, metric: str, code: str) -> pd.Series:
    rows = obs[(obs["metric_id"] == metric) & (obs["trust_code"] == code)]
    assert len(rows) == 1, f"{metric} {code}: {len(rows)} rows"
    return rows.iloc[0]


def test_obs_layout():
    obs = ae.ae_observations(ae.read_ae(FIX / "ae_monthly_2025-01_published.csv"), "2024-25-Q4")
    assert list(obs.columns) == common.OBS_COLUMNS
    assert obs["suppressed"].dtype == bool
    assert obs["numerator"].dtype == "float64" and obs["denominator"].dtype == "float64"
    assert (obs["quarter"] == "2024-25-Q4").all()


# ----------------------------------------------------------------------------- quarters
def test_quarter_helpers():
    assert common.quarter_months("2024-25-Q4") == [
        pd.Timestamp("2025-01-01"),
        pd.Timestamp("2025-02-01"),
        pd.Timestamp("2025-03-01"),
    ]
    assert common.quarter_months("2025-26-Q1")[0] == pd.Timestamp("2025-04-01")
    assert common.quarter_end("2024-25-Q3") == pd.Timestamp("2024-12-31")
    assert common.quarter_of("2025-03-15") == "2024-25-Q4"
    assert common.quarter_of("2026-04-01") == "2026-27-Q1"
    for bad in ("2024-26-Q4", "2024-25-Q5", "2024/25 Q4"):
        with pytest.raises(ValueError):
            common.parse_quarter(bad)
    assert common.parse_month("MSitAE-MARCH-2025") == pd.Timestamp("2025-03-01")
    assert common.parse_month("RTT-April-2026") == pd.Timestamp("2026-04-01")
    assert common.parse_month("31/01/2025") == pd.Timestamp("2025-01-01")


def test_default_raw_dir_is_sibling_of_repository():
    assert common.REPO_ROOT == Path(common.__file__).resolve().parents[4]
    assert (common.REPO_ROOT / "pyproject.toml").exists()
    assert common.DEFAULT_RAW_DIR == common.REPO_ROOT.parent / "shared" / "data" / "real"


# ------------------------------------------------------------------------------------ A&E
def test_ae_published_csv_total_row_and_booked_appointments():
    monthly = ae.read_ae(FIX / "ae_monthly_2025-01_published.csv")
    assert "TOTAL" not in set(monthly["org_code"])  # national row dropped
    assert set(monthly["period"]) == {pd.Timestamp("2025-01-01")}
    obs = ae.ae_observations(monthly, "2024-25-Q4")
    rxa = one(obs, "ae_4hr", "RXA")
    # all types incl. booked: 10000+500+2000+100+0+50 ; over 4h 4000+20+100+30+0+5
    assert rxa["denominator"] == 12650 and rxa["numerator"] == 12650 - 4155
    eye = one(obs, "ae_4hr", "RXB")  # type 2 only, booked type 2 counted
    assert (eye["numerator"], eye["denominator"]) == (1630, 1700)
    dta = one(obs, "ae_12hr_dta", "RXA")
    assert (dta["numerator"], dta["denominator"]) == (150, 2500 + 40 + 10)
    # UTC: no emergency admissions -> no 12-hour row (not applicable), but a 4-hour row
    assert ((obs["trust_code"] == "NXU01") & (obs["metric_id"] == "ae_12hr_dta")).sum() == 0
    assert one(obs, "ae_4hr", "NXU01")["denominator"] == 3000
    assert ae.type1_providers(monthly, "2024-25-Q4") == {"RXA", "RXP"}


def test_ae_successor_sums_predecessor_counts():
    monthly = ae.read_ae(FIX / "ae_monthly_2025-01_published.csv")
    obs = ae.ae_observations(monthly, "2024-25-Q4", {"RXP": "RXA"})
    assert "RXP" not in set(obs["trust_code"])
    rxa = one(obs, "ae_4hr", "RXA")
    assert (rxa["numerator"], rxa["denominator"]) == (8495 + 1200, 12650 + 2000)
    dta = one(obs, "ae_12hr_dta", "RXA")
    assert (dta["numerator"], dta["denominator"]) == (170, 3150)


def test_ae_older_layout_renamed_columns_no_booked_columns():
    monthly = ae.read_ae(FIX / "ae_monthly_2019-03_older_layout.csv")
    assert list(monthly["org_code"]) == ["RXA"]  # England row with code "-" dropped
    obs = ae.ae_observations(monthly, "2018-19-Q4")
    rxa = one(obs, "ae_4hr", "RXA")
    assert (rxa["numerator"], rxa["denominator"]) == (10900 - 1825, 10900)  # "9,000" parsed
    dta = one(obs, "ae_12hr_dta", "RXA")
    assert (dta["numerator"], dta["denominator"]) == (12, 2335)


def test_ae_no_data_for_quarter():
    monthly = ae.read_ae(FIX / "ae_monthly_2025-01_published.csv")
    with pytest.raises(common.NoDataForQuarter):
        ae.ae_observations(monthly, "2024-25-Q3")


# --------------------------------------------------------------------------------- cancer
def test_cancer_extract_without_period_double_partition_and_suppression():
    detail = cancer.read_cwt(FIX / "cwt_provider_extract_2025-26_no_period.csv")
    assert set(detail["period"]) == {pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")}
    assert "URGENT SUSPECTED CANCER" in set(detail["stage_route"])
    assert "Urgent Suspected Cancer" not in set(detail["stage_route"])
    obs = cancer.cancer_observations(detail, "2025-26-Q1")
    fds = one(obs, "cancer_fds_28d", "RXA")
    assert (fds["numerator"], fds["denominator"]) == (103, 130)
    d31 = one(obs, "cancer_31d", "RXA")  # ALL MODALITIES rows only: not 80 / 72
    assert (d31["numerator"], d31["denominator"]) == (36, 40)
    d62 = one(obs, "cancer_62d", "RXA")  # April ALL MODALITIES 11.5/15.5 + May modality rows 3/4
    assert (d62["numerator"], d62["denominator"]) == (14.5, 19.5)
    supp = one(obs, "cancer_fds_28d", "RXS")
    assert bool(supp["suppressed"]) and math.isnan(supp["numerator"])


# ---------------------------------------------------------------------------- diagnostics
def test_dm01_provider_sheet_total_row_suppressed_and_not_applicable():
    dm01 = diagnostics.read_dm01(FIX / "dm01_provider_sheet_2025-03.csv", period="2025-03")
    assert "-" not in set(dm01["org_code"])
    obs = diagnostics.dm01_observations(dm01, "2024-25-Q4")
    assert (one(obs, "diag_6wk", "RXA")[["numerator", "denominator"]] == [600, 5000]).all()
    assert (one(obs, "diag_6wk", "RXB")[["numerator", "denominator"]] == [110, 1200]).all()
    assert bool(one(obs, "diag_6wk", "RXC")["suppressed"])
    assert "RXD" not in set(obs["trust_code"])  # empty list, % shown as "-": no observation
    with pytest.raises(common.NoDataForQuarter):  # snapshot month of Q1 is June
        diagnostics.dm01_observations(dm01, "2025-26-Q1")
    with pytest.raises(ValueError):
        diagnostics.read_dm01(FIX / "dm01_provider_sheet_2025-03.csv")  # no period anywhere


def test_dm01_snapshot_is_last_month_of_quarter():
    a = diagnostics.read_dm01(FIX / "dm01_provider_sheet_2025-03.csv", period="2025-02")
    b = diagnostics.read_dm01(FIX / "dm01_provider_sheet_2025-03.csv", period="2025-03")
    b = b.assign(waiting_6plus=b["waiting_6plus"] * 2)
    obs = diagnostics.dm01_observations(pd.concat([a, b]), "2024-25-Q4")
    assert one(obs, "diag_6wk", "RXA")["numerator"] == 1200  # March, not February nor a sum


# ----------------------------------------------------------------------------------- beds
def test_kh03_dash_not_applicable_and_england_row():
    kh03 = beds.read_kh03(FIX / "kh03_trust_by_sector_2024-25-Q4.csv")
    assert set(kh03["quarter"]) == {"2024-25-Q4"}  # from Year + Period End
    assert "ENGLAND" not in set(kh03["org_name"].str.upper())
    obs = beds.kh03_observations(kh03, "2024-25-Q4")
    rxa = one(obs, "beds_ga_occupancy", "RXA")
    assert rxa["numerator"] == pytest.approx(1010.1) and rxa["denominator"] == pytest.approx(1100.25)
    assert "RXM" not in set(obs["trust_code"])  # no G&A beds ('-'): not applicable
    merged = beds.kh03_observations(kh03, "2024-25-Q4", {"RXP": "RXA"})
    assert one(merged, "beds_ga_occupancy", "RXA")["denominator"] == pytest.approx(1280.25)
    with pytest.raises(common.NoDataForQuarter):
        beds.kh03_observations(kh03, "2024-25-Q3")


# ------------------------------------------------------------------------------- sickness
def test_sickness_older_layout_cluster_group_and_suppression():
    sk = sickness.read_sickness(FIX / "sickness_absence_2019-03_older_layout.csv")
    obs = sickness.sickness_observations(sk, "2018-19-Q4")
    rxa = one(obs, "sickness_absence", "RXA")
    assert (rxa["numerator"], rxa["denominator"]) == (1500.5, 40000.0)
    rxm = one(obs, "sickness_absence", "RXM")
    assert bool(rxm["suppressed"]) and math.isnan(rxm["denominator"])
    types = sickness.organisation_types(sk).set_index("org_code")
    assert types.loc["RXA", "trust_type"] == "acute"
    assert types.loc["RXM", "trust_type"] == "mental_health_community"
    assert types.loc["RXZ", "trust_type"] == "ambulance"


def test_sickness_current_layout_types_and_icb_not_a_trust():
    sk = sickness.read_sickness(FIX / "sickness_absence_2025-01.csv")
    types = sickness.organisation_types(sk).set_index("org_code")
    assert "QXX" not in types.index
    assert tuple(types.loc["RXC", ["trust_type", "trust_subtype"]]) == ("mental_health_community", "Community")
    obs = sickness.sickness_observations(sk, "2024-25-Q4", {"RXP": "RXA"})
    rxa = one(obs, "sickness_absence", "RXA")
    assert (rxa["numerator"], rxa["denominator"]) == (2100.25, 41000.5)


# ---------------------------------------------------------------------------- staff survey
def test_nss_sector_rows_suppression_and_weighted_merger():
    nss = staff_survey.read_nss(FIX / "nss_org_results.csv", survey_year=2024)
    obs = staff_survey.nss_observations(nss, "2024-25-Q4")
    assert one(obs, "staff_engagement", "RXW")["value"] == 6.5  # acute sector stands for the trust
    assert one(obs, "staff_engagement", "RXW2")["value"] == 6.1
    assert one(obs, "staff_raising_concerns", "RXA")["value"] == 6.5  # PP3_2, not PP3 / PP3_1
    rxs = one(obs, "staff_engagement", "RXS")
    assert bool(rxs["suppressed"]) and math.isnan(rxs["value"])
    assert obs["numerator"].isna().all() and obs["denominator"].isna().all()
    merged = staff_survey.nss_observations(nss, "2024-25-Q4", {"RXP": "RXA"})
    assert one(merged, "staff_engagement", "RXA")["value"] == pytest.approx((7.0 * 1000 + 6.0 * 250) / 1250)
    assert one(merged, "staff_raising_concerns", "RXA")["value"] == pytest.approx((6.5 * 980 + 5.5 * 245) / 1225)
    types = staff_survey.organisation_types(nss).set_index("org_code")
    assert types.loc["RXW", "trust_type"] == "acute" and types.loc["RXW2", "trust_type"] == "ambulance"
    assert types.loc["RXS", "trust_subtype"] == "Specialist"
    assert types.loc["RXM", "trust_type"] == "mental_health_community"
    assert "QXX" not in types.index


def test_nss_survey_year_rule():
    assert staff_survey.survey_year_for_quarter("2024-25-Q4") == 2024  # published March 2025
    assert staff_survey.survey_year_for_quarter("2024-25-Q3") == 2023
    assert staff_survey.survey_year_for_quarter("2025-26-Q3") == 2024
    nss = staff_survey.read_nss(FIX / "nss_org_results.csv", survey_year=2024)
    with pytest.raises(common.NoDataForQuarter):
        staff_survey.nss_observations(nss, "2024-25-Q3")


# ------------------------------------------------------------------------------------ RTT
def test_rtt_full_extract_commissioners_summed_blank_total_and_no_c999():
    r = rtt.read_rtt(FIX / "rtt_full_extract_2026-04.csv")
    obs = rtt.rtt_observations(r, "2026-27-Q1", allow_earlier=True)
    w18 = one(obs, "rtt_18wk", "RXA")  # C_999 of both commissioners; C_130 not added
    assert (w18["numerator"], w18["denominator"]) == (100 + 25, 133 + 32)
    assert one(obs, "rtt_52wk", "RXA")["numerator"] == 8 + 2  # incl. the "Gt 104 Weeks" band
    rxb = one(obs, "rtt_18wk", "RXB")  # no C_999: specialties summed
    assert (rxb["numerator"], rxb["denominator"]) == (75, 100)
    assert one(obs, "rtt_52wk", "RXB")["numerator"] == 5
    with pytest.raises(common.NoDataForQuarter):
        rtt.rtt_observations(r, "2026-27-Q1")  # June snapshot not published
    with pytest.raises(common.NoDataForQuarter):
        rtt.rtt_observations(r, "2024-25-Q4", allow_earlier=True)


# ------------------------------------------------------------------------------------ ODS
def test_ods_headerless_etr_successors_and_trust_table():
    reg = ods.read_ods(FIX / "ods_etr_published_no_header.csv")
    assert list(reg["org_code"]) == ["RXA", "RXM", "RXN", "RXP"]
    assert reg.set_index("org_code").loc["RXP", "close_date"] == pd.Timestamp("2024-12-31")
    extra = ods.read_succ(FIX / "ods_succ_published.csv")
    assert extra["RXP"][0] == "RXA"
    assert ods.successor_map(reg, "2025-03-31", extra, curated=False) == {"RXP": "RXA", "RXQ": "RXA"}  # chain
    assert ods.successor_map(reg, "2024-09-30", extra, curated=False) == {"RXQ": "RXP"}  # RXP still open
    types = pd.DataFrame(
        {
            "org_code": ["RXA", "RXM", "RXN"],
            "trust_type": ["acute", "mental_health_community", "acute"],
            "trust_subtype": ["Acute and Acute & Community", "Mental Health and Learning Disability", "Specialist"],
        }
    )
    t = ods.build_trusts(reg, "2025-03-31", types=[types])
    assert list(t.columns) == common.TRUST_COLUMNS
    assert list(t["trust_code"]) == ["RXA", "RXM"]  # RXP closed, RXN not yet open
    assert t.iloc[0]["trust_name"] == "Example Acute Hospitals NHS Trust"
    assert t.iloc[0]["region"] == "North West"
    later = ods.build_trusts(
        reg, "2025-06-30", types=[types], names=[pd.Series({"RXA": "Example Acute (survey name)"})]
    )
    assert later.set_index("trust_code").loc["RXN", "trust_name"] == "The New King's NHS Trust"
    assert later.set_index("trust_code").loc["RXN", "region"] == "Unknown"
    assert later.set_index("trust_code").loc["RXA", "trust_name"] == "Example Acute (survey name)"


def test_curated_successors_follow_the_real_mergers():
    sm = {k: v for k, (v, _, _) in ods.SUCCESSORS.items()}
    assert sm["RAP"] == "RAL" and sm["RVY"] == "RBN" and sm["RA4"] == "RH5" and sm["RBZ"] == "RH8"


def test_curated_successors_are_read_strictly_from_their_file(tmp_path):
    """``config/sources/ods-successors.yaml`` is the table (72 closures, in file order); a predecessor given twice,
    a malformed code or date, or an unknown field is one error naming the file."""
    assert load_successors() == ods.SUCCESSORS and len(ods.SUCCESSORS) == 72
    assert list(ods.SUCCESSORS)[:2] == ["RAP", "RRP"] and ods.SUCCESSORS["RNK"] == (
        None,
        "2026-04-01",
        "Tavistock and Portman: successor not in these inputs",
    )
    good = (CONFIG_DIR / "sources" / "ods-successors.yaml").read_text(encoding="utf-8")
    entry = "- predecessor: RAP\n  successor: RAL\n  effective: '2025-01-01'\n  note: again\n"
    cases = [
        (good + entry, "successors: Value error, predecessors repeated: \\['RAP'\\]"),
        (good.replace("predecessor: RAP", "predecessor: rap"), "successors.0.predecessor"),
        (good.replace("effective: '2025-01-01'", "effective: 1 January 2025"), "successors.0.effective"),
        (good.replace("  note: North Middlesex", "  extra: 1\n  note: North Middlesex"), "successors.0.extra"),
    ]
    assert_refused_edits(load_successors, tmp_path / "successors.yaml", cases)


# ------------------------------------------------------------------------------- coverage
def test_coverage_table_counts_and_reasons():
    trusts = pd.DataFrame({"trust_code": ["A", "B", "C", "D", "E"]})
    obs = pd.concat(
        [
            common.make_observations(
                pd.DataFrame(
                    {
                        "trust_code": ["A", "B", "C", "Z"],
                        "numerator": [1, 5, np.nan, 1],
                        "denominator": [10, 4, np.nan, 2],
                        "suppressed": [False, False, True, False],
                    }
                ),
                "2024-25-Q4",
                "m1",
            ),
            common.make_observations(
                pd.DataFrame({"trust_code": ["A", "B"], "value": [6.5, np.nan]}), "2024-25-Q4", "m2"
            ),
        ]
    )
    cov = common.coverage_table(obs, trusts, {"m1": {"statistic": "proportion"}, "m2": {"statistic": "mean"}})
    m1 = cov.set_index("metric_id").loc["m1"]
    assert (m1["covered"], m1["suppressed"], m1["excluded"], m1["missing"], m1["not_in_register"]) == (1, 1, 1, 2, 1)
    assert "numerator > denominator: B" in m1["excluded_why"]
    assert m1["missing_codes"] == "D, E"
    m2 = cov.set_index("metric_id").loc["m2"]
    assert (m2["covered"], m2["excluded"], m2["missing"]) == (1, 1, 3)
    assert m2["excluded_why"] == "no value: B"
    # catalogue-like objects with .id / .statistic give the same table
    objs = [SimpleNamespace(id="m1", statistic="proportion"), SimpleNamespace(id="m2", statistic="mean")]
    pd.testing.assert_frame_equal(common.coverage_table(obs, trusts, SimpleNamespace(metrics=objs)), cov)
