"""Source adapters on NHS England's real published files (../shared/data/real).

For each adapter: figures for named trusts computed by hand from the raw rows (plain ``csv``
filtering, written below as literals and re-derived in the test), the number of organisations
per metric, and England totals against NHS England's published headlines. Skipped when the
real data are absent.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import pandas as pd
import pytest

from leaguetables.inputs.sources import ae, beds, cancer, common, diagnostics, ods, rtt, sickness, staff_survey

RAW = common.DEFAULT_RAW_DIR
PERF = RAW / "nhse_perf_2024_25"
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not PERF.is_dir(),
        reason=f"real NHS England data not found at {RAW} (../shared/data/real relative to the repository root)",
    ),
]

Q4 = "2024-25-Q4"
Q4_MONTHS = ("2025-01-01", "2025-02-01", "2025-03-01")
Q3_MONTHS = ("2024-10-01", "2024-11-01", "2024-12-01")
NHS_TRUST = re.compile(r"^R[A-Z0-9]{2}$")


def rows(path, **equal):
    """Raw rows of a CSV whose columns equal the given values (tuples = any of)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            if all(r[k] in v if isinstance(v, tuple) else r[k] == v for k, v in equal.items()):
                yield r


def one(obs, metric, code):
    sel = obs[(obs["metric_id"] == metric) & (obs["trust_code"] == code)]
    assert len(sel) == 1, (metric, code, len(sel))
    return sel.iloc[0]


def n_trusts(obs, metric):
    codes = obs.loc[obs["metric_id"] == metric, "trust_code"]
    return len(codes), int(codes.str.match(NHS_TRUST).sum())


@pytest.fixture(scope="module")
def successors_q4():
    return ods.successor_map(ods.read_ods(common.source_path(RAW, "ods")), common.quarter_end(Q4))


# ------------------------------------------------------------------------------------ A&E
AE_FILE = PERF / "ae_monthly_provider_2024-04_2025-07.csv"
#: Q4 2024-25 (Jan–Mar 2025): (name, within 4 h, attendances, 12 h DTA waits, emergency admissions via A&E)
AE_Q4 = {
    "R0A": ("Manchester University NHS Foundation Trust", 90402, 128576, 1061, 17239),
    "RGT": ("Cambridge University Hospitals NHS Foundation Trust", 34592, 49213, 1693, 7976),
    "RJ1": ("Guy's and St Thomas' NHS Foundation Trust", 39427, 50937, 161, 6051),
    "R1F": ("Isle of Wight NHS Trust", 12393, 17893, 423, 3723),
}


@pytest.fixture(scope="module")
def ae_monthly():
    return ae.read_ae(AE_FILE)


def test_ae_hand_calculations(ae_monthly, successors_q4):
    obs = ae.ae_observations(ae_monthly, Q4, successors_q4)
    for code, (_name, within, att, dta12, adm) in AE_Q4.items():
        acc = defaultdict(float)
        for r in rows(AE_FILE, **{"Org Code": code, "period": Q4_MONTHS}):
            acc["att"] += sum(float(v) for k, v in r.items() if k.startswith("A&E attendances"))
            acc["over"] += sum(float(v) for k, v in r.items() if k.startswith("Attendances over 4hrs"))
            acc["adm"] += sum(float(v) for k, v in r.items() if k.startswith("Emergency admissions via A&E"))
            acc["dta"] += float(r["Patients who have waited 12+ hrs from DTA to admission"])
        assert (acc["att"] - acc["over"], acc["att"], acc["dta"], acc["adm"]) == (within, att, dta12, adm)
        four = one(obs, "ae_4hr", code)
        assert (four["numerator"], four["denominator"]) == (within, att)
        twelve = one(obs, "ae_12hr_dta", code)
        assert (twelve["numerator"], twelve["denominator"]) == (dta12, adm)


def test_ae_national_headlines(ae_monthly):
    # NHS England monthly A&E statistics (as reported by Healthwatch, RCEM):
    dec = ae.national_month(ae_monthly, "2024-12")
    assert dec["attendances"] == 2_345_934 and round(100 * dec["within_4h_share"], 1) == 71.1
    assert dec["dta_12h"] == 54_207
    jan = ae.national_month(ae_monthly, "2025-01")
    assert jan["type1_attendances"] == 1_359_026 and jan["dta_12h"] == 61_529
    mar = ae.national_month(ae_monthly, "2025-03")
    assert mar["attendances"] == 2_389_064 and mar["type1_attendances"] == 1_450_686
    assert round(100 * mar["within_4h_share"], 1) == 75.0


def test_ae_trusts_per_metric(ae_monthly, successors_q4):
    obs = ae.ae_observations(ae_monthly, Q4, successors_q4)
    assert n_trusts(obs, "ae_4hr") == (189, 141)  # providers, of which NHS trusts
    assert n_trusts(obs, "ae_12hr_dta") == (128, 128)
    assert len(ae.type1_providers(ae_monthly, Q4, successors_q4)) == 121


# --------------------------------------------------------------------------------- cancer
CWT_FILES = common.source_path(RAW, "cancer")
#: Q4 2024-25: standard → (within standard, total treated); 31/62-day from ALL MODALITIES rows
CWT_Q4 = {
    "R0A": {"28-day FDS": (12291, 16580), "31-day Combined": (1600, 1840), "62-day Combined": (819.5, 1350.5)},
    "RGT": {"28-day FDS": (6445, 7633), "31-day Combined": (1977, 2504), "62-day Combined": (543, 736.5)},
    "RJ1": {"28-day FDS": (6054, 7600), "31-day Combined": (2745, 3059), "62-day Combined": (425, 829)},
    "R1F": {"28-day FDS": (1373, 1907), "31-day Combined": (286, 312), "62-day Combined": (125.5, 221.5)},
}
METRIC = {"28-day FDS": "cancer_fds_28d", "31-day Combined": "cancer_31d", "62-day Combined": "cancer_62d"}


@pytest.fixture(scope="module")
def cwt():
    return cancer.read_cwt(CWT_FILES)


def test_cancer_hand_calculations(cwt, successors_q4):
    acc = defaultdict(float)
    for r in rows(CWT_FILES[1], **{"ORG CODE": tuple(CWT_Q4), "PERIOD": Q4_MONTHS}):
        if r["STANDARD"] != "28-day FDS" and r["TREATMENT MODALITY"] != "ALL MODALITIES":
            continue  # the modality partition repeats the same patients
        acc[r["ORG CODE"], r["STANDARD"], "w"] += float(r["WITHIN STANDARD"])
        acc[r["ORG CODE"], r["STANDARD"], "t"] += float(r["TOTAL TREATED"])
    obs = cancer.cancer_observations(cwt, Q4, successors_q4)
    for code, by_std in CWT_Q4.items():
        for std, (within, total) in by_std.items():
            assert (acc[code, std, "w"], acc[code, std, "t"]) == (within, total), (code, std)
            o = one(obs, METRIC[std], code)
            assert (o["numerator"], o["denominator"]) == (within, total), (code, std)


def test_cancer_merger_royal_free_absorbs_north_middlesex_in_q3(cwt):
    # RAP closed 31 Dec 2024 -> counts of Oct–Dec 2024 go to RAL (62-day, ALL MODALITIES rows)
    succ = ods.successor_map(ods.read_ods(common.source_path(RAW, "ods")), common.quarter_end("2024-25-Q3"))
    assert succ["RAP"] == "RAL"
    acc = defaultdict(float)
    for r in rows(
        CWT_FILES[1],
        **{
            "ORG CODE": ("RAL", "RAP"),
            "PERIOD": Q3_MONTHS,
            "STANDARD": "62-day Combined",
            "TREATMENT MODALITY": "ALL MODALITIES",
        },
    ):
        acc[r["ORG CODE"], "w"] += float(r["WITHIN STANDARD"])
        acc[r["ORG CODE"], "t"] += float(r["TOTAL TREATED"])
    assert (acc["RAL", "w"], acc["RAL", "t"], acc["RAP", "w"], acc["RAP", "t"]) == (620.5, 1036.5, 187.5, 292.0)
    o = one(cancer.cancer_observations(cwt, "2024-25-Q3", succ), "cancer_62d", "RAL")
    assert (o["numerator"], o["denominator"]) == (620.5 + 187.5, 1036.5 + 292.0)


def test_cancer_national_headlines(cwt):
    # NHS England Cancer Waiting Times: Feb 2025 FDS 80.2%, 62-day 67.0%, 31-day 91.8%;
    # Mar 2025 FDS 78.9% of 275.4k told, 62-day 71.4%, 31-day 91% of 55k treated.
    feb = cancer.national_month(cwt, "2025-02")
    assert round(100 * feb["FDS"]["share"], 1) == 80.2
    assert round(100 * feb["62D"]["share"], 1) == 67.0
    assert round(100 * feb["31D"]["share"], 1) == 91.8
    mar = cancer.national_month(cwt, "2025-03")
    assert round(100 * mar["FDS"]["share"], 1) == 78.9 and round(mar["FDS"]["total"] / 1000, 1) == 275.4
    assert round(100 * mar["62D"]["share"], 1) == 71.4
    assert round(100 * mar["31D"]["share"]) == 91 and round(mar["31D"]["total"] / 1000) == 55


def test_cancer_trusts_per_metric(cwt, successors_q4):
    obs = cancer.cancer_observations(cwt, Q4, successors_q4)
    assert n_trusts(obs, "cancer_fds_28d") == (141, 135)
    assert n_trusts(obs, "cancer_31d") == (140, 136)
    assert n_trusts(obs, "cancer_62d") == (152, 139)


# ---------------------------------------------------------------------------- diagnostics
DM01_FILE = PERF / "diagnostics_dm01_provider_2024-08_2025-07.csv"
#: March 2025 snapshot (stands for Q4): (waiting 6+ weeks, total waiting list)
DM01_Q4 = {
    "R0A": ("Manchester University NHS Foundation Trust", 3227, 27541),
    "RGT": ("Cambridge University Hospitals NHS Foundation Trust", 1021, 10268),
    "RJ1": ("Guy's and St Thomas' NHS Foundation Trust", 5028, 19785),
    "R1F": ("Isle of Wight NHS Trust", 1552, 4980),
}


@pytest.fixture(scope="module")
def dm01():
    return diagnostics.read_dm01(DM01_FILE)


def test_dm01_hand_calculations(dm01, successors_q4):
    obs = diagnostics.dm01_observations(dm01, Q4, successors_q4)
    for code, (name, six, total) in DM01_Q4.items():
        (r,) = rows(DM01_FILE, **{"Provider Code": code, "period": "2025-03-01"})
        assert (r["Provider Name"], int(r["Number waiting 6+ Weeks"]), int(r["Total Waiting List"])) == (
            name,
            six,
            total,
        )
        o = one(obs, "diag_6wk", code)
        assert (o["numerator"], o["denominator"]) == (six, total)


def test_dm01_national_and_counts(dm01, successors_q4):
    assert round(100 * diagnostics.national_month(dm01, "2025-07")["share_6plus"], 1) == 21.9  # SOURCE.md headline
    mar = diagnostics.national_month(dm01, "2025-03")
    assert (mar["waiting_list"], mar["waiting_6plus"]) == (1_703_242, 312_744)  # 18.4%
    obs = diagnostics.dm01_observations(dm01, Q4, successors_q4)
    assert n_trusts(obs, "diag_6wk") == (365, 155)


# ----------------------------------------------------------------------------------- beds
KH03_FILE = PERF / "beds_kh03_provider_2024q2_2025q1.csv"
#: Q4 2024-25 KH03: (occupied G&A, available G&A) — quarterly average overnight beds
KH03_Q4 = {
    "R0A": (2089.311111111111, 2215.0222222222224),
    "RGT": (958.0888888888888, 1029.6),
    "RJ1": (1022.1, 1268.4666666666667),
    "R1F": (287.6111111111111, 291.6222222222222),
}


@pytest.fixture(scope="module")
def kh03():
    return beds.read_kh03(KH03_FILE)


def test_kh03_hand_calculations(kh03, successors_q4):
    obs = beds.kh03_observations(kh03, Q4, successors_q4)
    for code, (occ, avail) in KH03_Q4.items():
        (r,) = rows(KH03_FILE, **{"Org Code": code, "quarter_label": "January to March 2025"})
        assert (float(r["Occupied General & Acute"]), float(r["Available General & Acute"])) == (occ, avail)
        o = one(obs, "beds_ga_occupancy", code)
        assert o["numerator"] == pytest.approx(occ, rel=1e-12) and o["denominator"] == pytest.approx(avail, rel=1e-12)


def test_kh03_national_and_counts(kh03, successors_q4):
    nat = beds.national_quarter(kh03, Q4)
    assert round(nat["available_ga"]) == 106_068 and round(100 * nat["occupancy_ga"], 1) == 92.5
    obs = beds.kh03_observations(kh03, Q4, successors_q4)
    assert n_trusts(obs, "beds_ga_occupancy") == (153, 153)
    assert (obs["numerator"] <= obs["denominator"]).all()


# ------------------------------------------------------------------------------- sickness
SICK_FILE = PERF / "sickness_absence_org_monthly_2024-04_2025-03.csv"
#: Q4 2024-25: (FTE days lost, FTE days available)
SICK_Q4 = {
    "R0A": (154838.11731, 2490481.15961),
    "RGT": (48221.62435, 1144602.63614),
    "RJ1": (95133.90982, 2037443.49494),
    "R1F": (13117.97651, 246754.32289),
}


@pytest.fixture(scope="module")
def sick():
    return sickness.read_sickness(SICK_FILE)


def test_sickness_hand_calculations(sick, successors_q4):
    obs = sickness.sickness_observations(sick, Q4, successors_q4)
    for code, (lost, avail) in SICK_Q4.items():
        rs = list(rows(SICK_FILE, ORG_CODE=code, month=Q4_MONTHS))
        assert len(rs) == 3
        assert sum(float(r["FTE_DAYS_LOST"]) for r in rs) == pytest.approx(lost, abs=1e-6)
        assert sum(float(r["FTE_DAYS_AVAILABLE"]) for r in rs) == pytest.approx(avail, abs=1e-6)
        o = one(obs, "sickness_absence", code)
        assert o["numerator"] == pytest.approx(lost, abs=1e-6) and o["denominator"] == pytest.approx(avail, abs=1e-6)


def test_sickness_national_headlines_and_merger(sick):
    # NHS England "NHS Sickness Absence Rates, January 2025": England 5.7% (Dec 2024 5.7%);
    # ambulance trusts 7.5% (Dec 2024 8.1%)
    assert round(100 * sickness.national_month(sick, "2025-01"), 1) == 5.7
    assert round(100 * sickness.national_month(sick, "2024-12"), 1) == 5.7
    assert round(100 * sickness.national_month(sick, "2025-01", "Ambulance"), 1) == 7.5
    assert round(100 * sickness.national_month(sick, "2024-12", "Ambulance"), 1) == 8.1
    # Q3: North Middlesex (RAP, Oct–Nov rows) summed into Royal Free (RAL)
    o = one(sickness.sickness_observations(sick, "2024-25-Q3", {"RAP": "RAL"}), "sickness_absence", "RAL")
    assert o["numerator"] == pytest.approx(64130.73226 + 13771.52102, abs=1e-6)
    assert o["denominator"] == pytest.approx(1423964.819 + 287528.21974, abs=1e-6)


def test_sickness_counts_and_types(sick, successors_q4):
    obs = sickness.sickness_observations(sick, Q4, successors_q4)
    assert n_trusts(obs, "sickness_absence") == (280, 201)
    types = sickness.organisation_types(sick)
    assert types["trust_type"].value_counts().to_dict() == {
        "acute": 135,
        "mental_health_community": 85,
        "ambulance": 10,
    }


# ---------------------------------------------------------------------------- staff survey
NSS_FILE = PERF / "staff_survey_nss2024_org_themes.csv"
#: NSS 2024: ODS code in the file → (engagement score, n, raising concerns PP3_2 score, n)
NSS_2024 = {
    "R0A": (6.792762973949508, 13200, 6.476169569937082, 13043),
    "RGT": (7.021458612467684, 7004, 6.553003437080855, 6945),
    "RJ1": (7.148444232197537, 13119, 6.741461352225673, 12968),
    "R1F1": (6.490796861425831, 1183, 5.930332770573663, 1175),
    "RAL": (6.9466983693679865, 6732, 6.424420568104839, 6638),
    "RAP": (6.876047821150627, 3103, 6.30067573330838, 3029),
}


@pytest.fixture(scope="module")
def nss():
    return staff_survey.read_nss(NSS_FILE)


def test_nss_hand_values_sector_and_merger(nss, successors_q4):
    for code, expected in NSS_2024.items():
        (r,) = rows(NSS_FILE, **{"ODS code": code})
        got = (
            float(r["Staff Engagement - score"]),
            int(r["Staff Engagement base_n"]),
            float(r["PP3_2 - score"]),
            int(r["PP3_2 base_n"]),
        )
        assert got == expected
    assert nss.attrs["survey_year"] == 2024
    obs = staff_survey.nss_observations(nss, Q4, successors_q4)
    for code in ("R0A", "RGT", "RJ1"):
        assert one(obs, "staff_engagement", code)["value"] == NSS_2024[code][0]
        assert one(obs, "staff_raising_concerns", code)["value"] == NSS_2024[code][2]
    assert one(obs, "staff_engagement", "R1F")["value"] == NSS_2024["R1F1"][0]  # Isle of Wight, acute sector
    # Royal Free + North Middlesex (merged 1 Jan 2025), weighted by responses
    ral, rap = NSS_2024["RAL"], NSS_2024["RAP"]
    assert one(obs, "staff_engagement", "RAL")["value"] == pytest.approx(
        (ral[0] * ral[1] + rap[0] * rap[1]) / (ral[1] + rap[1])
    )
    assert one(obs, "staff_raising_concerns", "RAL")["value"] == pytest.approx(
        (ral[2] * ral[3] + rap[2] * rap[3]) / (ral[3] + rap[3])
    )
    assert "RAP" not in set(obs["trust_code"])
    assert obs["value"].between(0, 10).all()


def test_nss_counts_and_types(nss, successors_q4):
    obs = staff_survey.nss_observations(nss, Q4, successors_q4)
    assert n_trusts(obs, "staff_engagement") == (260, 201)
    groups = staff_survey.organisation_types(nss).groupby(["trust_type", "trust_subtype"]).size().to_dict()
    assert groups == {
        ("acute", "Acute and Acute & Community"): 122,
        ("acute", "Specialist"): 13,
        ("ambulance", "Ambulance"): 11,
        ("mental_health_community", "Community"): 14,
        ("mental_health_community", "Mental Health and Learning Disability"): 50,
    }


# ------------------------------------------------------------------------------------ RTT
RTT_FILE = RAW / "nhse_rtt_2026_04" / "rtt_provider_tfc_weekbands_2026_04.csv"
#: April 2026, Part_2 (incomplete pathways), C_999: (within 18 weeks, over 52 weeks, waiting list)
RTT_2026_04 = {
    "R0A": ("MANCHESTER UNIVERSITY NHS FOUNDATION TRUST", 106261, 1487, 168774),
    "RGT": ("CAMBRIDGE UNIVERSITY HOSPITALS NHS FOUNDATION TRUST", 37901, 940, 59754),
    "RJ1": ("GUY'S AND ST THOMAS' NHS FOUNDATION TRUST", 75138, 689, 109898),
}


@pytest.fixture(scope="module")
def rtt_rows():
    return rtt.read_rtt(RTT_FILE)


def test_rtt_hand_calculations(rtt_rows):
    obs = rtt.rtt_observations(rtt_rows, "2026-27-Q1", allow_earlier=True)
    band = re.compile(r"^Gt (\d+)(?: To (\d+))? Weeks SUM 1$")
    raw = {
        r["Provider Org Code"]: r
        for r in rows(
            RTT_FILE,
            **{"Provider Org Code": tuple(RTT_2026_04), "RTT Part Type": "Part_2", "Treatment Function Code": "C_999"},
        )
    }
    for code, (name, w18, o52, total) in RTT_2026_04.items():
        r = raw[code]
        bands = {band.match(k).groups(): float(v) for k, v in r.items() if band.match(k)}
        got = (
            r["Provider Org Name"],
            sum(v for (lo, hi), v in bands.items() if hi is not None and int(hi) <= 18),
            sum(v for (lo, hi), v in bands.items() if int(lo) >= 52),
            sum(bands.values()),
        )
        assert got == (name, w18, o52, total)
        a = one(obs, "rtt_18wk", code)
        assert (a["numerator"], a["denominator"]) == (w18, total)
        b = one(obs, "rtt_52wk", code)
        assert (b["numerator"], b["denominator"]) == (o52, total)


def test_rtt_national_counts_and_summary_file(rtt_rows):
    # SOURCE.md: England incomplete pathways 7.12 m, 64.9% within 18 weeks, 100,665 over 52 weeks
    nat = rtt.national_month(rtt_rows, "2026-04")
    assert nat["waiting_list"] == 7_123_980 and round(100 * nat["within_18_share"], 1) == 64.9
    assert nat["over_52"] == 100_665
    obs = rtt.rtt_observations(rtt_rows, "2026-27-Q1", allow_earlier=True)
    codes = obs.loc[obs["metric_id"] == "rtt_18wk", "trust_code"]
    assert len(codes) == 528 and codes.str.startswith("R").sum() == 153  # SOURCE.md: 153 R-coded
    assert n_trusts(obs, "rtt_18wk") == (528, 147)  # of which 147 three-character NHS trust codes
    summary = pd.read_csv(RAW / "nhse_rtt_2026_04" / "rtt_provider_summary_2026_04.csv")
    summary = summary[(summary["RTT Part Type"] == "Part_2") & (summary["Treatment Function Code"] == "C_999")]
    s = summary.set_index("Provider Org Code")
    a = obs[obs["metric_id"] == "rtt_18wk"].set_index("trust_code")
    assert (a["numerator"] == s.loc[a.index, "within_18_weeks"]).all()
    assert (a["denominator"] == s.loc[a.index, "total_in_week_bands"]).all()
    with pytest.raises(common.NoDataForQuarter):
        rtt.rtt_observations(rtt_rows, Q4)  # does not feed 2024-25-Q4


# ------------------------------------------------------------------------------------ ODS
def test_ods_register_and_successors():
    reg = ods.read_ods(common.source_path(RAW, "ods"))
    assert len(reg) == 274 and reg["close_date"].notna().sum() == 72
    closed = set(reg.loc[reg["close_date"].notna(), "org_code"])
    assert closed == set(ods.SUCCESSORS)  # every closure has a curated entry
    codes = set(reg["org_code"])
    for old, (new, eff, _note) in ods.SUCCESSORS.items():
        close = reg.loc[reg["org_code"] == old, "close_date"].iloc[0]
        assert abs((pd.Timestamp(eff) - pd.Timedelta(days=1) - close).days) <= 1, old
        assert new is None or new in codes
    sm = ods.successor_map(reg, "2025-03-31")
    assert sm["RAP"] == "RAL" and sm["RVY"] == "RBN" and sm["RA4"] == "RH5" and sm["RM4"] == "R0A"
    assert "RVJ" not in sm  # North Bristol closes 30 June 2026
    assert "RAP" not in ods.successor_map(reg, "2024-09-30")
    assert ods.successor_map(reg, "2026-09-30")["RVJ"] == "RA7"
