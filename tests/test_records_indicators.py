"""Record-level indicators (leaguetables.inputs.records.indicators).

* Known answers: a hand-made extract whose every count is worked out by hand below (spells from episodes, a
  transfer joining two providers into one continuous inpatient spell, readmissions on day 29 and day 30 across
  providers, deaths in hospital and 21 days after discharge, the day-case basket, telephone follow-ups, A&E
  durations either side of 12 hours and a non-type-1 department, residents with and without a known LSOA).
* Parity: DuckDB and the independent pandas implementation give identical count tables on a random extract that
  exercises every branch (tests/records_fixture.py); Spark is in tests/test_records_spark.py.
* SHMI: expected deaths sum to observed deaths within each modelled group (the logistic MLE with an intercept), and
  a provider with a tripled risk is banded "higher than expected".
* ICB standardisation: ISRs against England's own stratum rates average to 1 (ΣE = ΣO).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from records_fixture import write_geography, write_records

from leaguetables.errors import InputError
from leaguetables.inputs.records import indicators as ind
from leaguetables.inputs.records.contract import load_records
from leaguetables.inputs.records.pandas_contract import load_records_pandas
from leaguetables.inputs.records.pandas_reference import run_counts_pandas
from leaguetables.inputs.records.settings import load_record_settings

Q = "2025-26-Q4"  # 1 January to 31 March 2026
SETTINGS = load_record_settings()

APC_COLUMNS = [
    "PSEUDO_HESID",
    "EPIKEY",
    "PROCODE3",
    "ADMIDATE",
    "EPISTART",
    "EPIEND",
    "DISDATE",
    "EPIORDER",
    "ADMIMETH",
    "CLASSPAT",
    "DISMETH",
    "STARTAGE",
    "SEX",
    "LSOA11",
    "DIAG_4_01",
    "OPERTN_4_01",
    "OPDATE_01",
    "DOD",
]


def _ep(pid, key, pro, adm, start, end, dis, order, meth, cls, dism, age, sex, lsoa, diag, op="", opd="", dod=""):
    return [pid, key, pro, adm, start, end, dis, order, meth, cls, dism, age, sex, lsoa, diag, op, opd, dod]


KNOWN_APC = [
    # A: elective ordinary cataract at RAA, two episodes, operated on day 1, home on day 4
    _ep(
        "A",
        "A1",
        "RAA",
        "2026-01-10",
        "2026-01-10",
        "2026-01-12",
        "2026-01-14",
        1,
        "11",
        "1",
        "8",
        67,
        "1",
        "E01000001",
        "H251",
        "C751",
        "2026-01-11",
    ),
    _ep(
        "A",
        "A2",
        "RAA",
        "2026-01-10",
        "2026-01-12",
        "2026-01-14",
        "2026-01-14",
        2,
        "11",
        "1",
        "1",
        67,
        "1",
        "E01000001",
        "H251",
    ),
    # A: emergency at RBB 18 days later (a readmission for RAA), transferred to RCC the day of discharge, died there
    _ep(
        "A",
        "A3",
        "RBB",
        "2026-02-01",
        "2026-02-01",
        "2026-02-03",
        "2026-02-03",
        1,
        "21",
        "1",
        "1",
        67,
        "1",
        "E01000001",
        "J441",
    ),
    _ep(
        "A",
        "A4",
        "RCC",
        "2026-02-03",
        "2026-02-03",
        "2026-02-10",
        "2026-02-10",
        1,
        "81",
        "1",
        "4",
        67,
        "1",
        "E01000001",
        "J441",
        dod="2026-02-10",
    ),
    # B: day case hernia repair at RAA (basket), then an emergency at RAA 40 days later (not a readmission)
    _ep(
        "B",
        "B1",
        "RAA",
        "2026-01-20",
        "2026-01-20",
        "2026-01-20",
        "2026-01-20",
        1,
        "11",
        "2",
        "1",
        45,
        "2",
        "E01000002",
        "K409",
        "T202",
        "2026-01-20",
    ),
    _ep(
        "B",
        "B2",
        "RAA",
        "2026-03-01",
        "2026-03-01",
        "2026-03-04",
        "2026-03-04",
        1,
        "22",
        "1",
        "1",
        45,
        "2",
        "E01000002",
        "N390",
    ),
    # C: emergency at RBB, home alive, died 21 days after discharge (ONS)
    _ep(
        "C",
        "C1",
        "RBB",
        "2026-03-25",
        "2026-03-25",
        "2026-03-30",
        "2026-03-30",
        1,
        "21",
        "1",
        "1",
        88,
        "2",
        "E01000002",
        "I500",
        dod="2026-04-20",
    ),
    # D: elective at RDD, home 1 Feb; emergency at REE on 2 March (day 29: a readmission for RDD)
    _ep(
        "D",
        "D1",
        "RDD",
        "2026-01-30",
        "2026-01-30",
        "2026-02-01",
        "2026-02-01",
        1,
        "12",
        "1",
        "1",
        30,
        "1",
        "E01000099",
        "M170",
    ),
    _ep(
        "D",
        "D2",
        "REE",
        "2026-03-02",
        "2026-03-02",
        "2026-03-05",
        "2026-03-05",
        1,
        "2A",
        "1",
        "1",
        30,
        "1",
        "E01000099",
        "R69X",
    ),
    # E: elective at RDD, home 1 Feb; emergency at RDD on 3 March (day 30: not a readmission); no residence
    _ep(
        "E",
        "E1",
        "RDD",
        "2026-01-31",
        "2026-01-31",
        "2026-02-01",
        "2026-02-01",
        1,
        "11",
        "1",
        "1",
        7003,
        "9",
        "",
        "M170",
    ),
    _ep(
        "E", "E2", "RDD", "2026-03-03", "2026-03-03", "2026-03-04", "2026-03-04", 1, "21", "1", "1", 0, "9", "", "J459"
    ),
    # F: discharged in December (outside the quarter): in no provider figure
    _ep(
        "F",
        "F1",
        "RAA",
        "2025-12-01",
        "2025-12-01",
        "2025-12-05",
        "2025-12-05",
        1,
        "21",
        "1",
        "1",
        50,
        "1",
        "E01000001",
        "J459",
    ),
]
KNOWN_OP = pd.DataFrame(
    [
        ["A", f"O{i}", "RAA", "2026-02-02", first, att, 67, "1", "E01000001", "130"]
        for i, (first, att) in enumerate(
            [("1", "5"), ("3", "5"), ("2", "5"), ("4", "6"), ("2", "5"), ("2", "3"), ("1", "2")]
        )
    ],
    columns=[
        "PSEUDO_HESID",
        "ATTENDKEY",
        "PROCODE3",
        "APPTDATE",
        "FIRSTATT",
        "ATTENDED",
        "APPTAGE",
        "SEX",
        "LSOA11",
        "TRETSPEF",
    ],
)
KNOWN_AE = pd.DataFrame(
    [
        ["A", f"X{i}", "RBB", day, "1200", dur, dtype, 67, "1", "E01000001", "03"]
        for i, (day, dur, dtype) in enumerate(
            [
                ("2026-01-05", 721, "01"),
                ("2026-01-06", 720, "01"),
                ("2026-01-07", 30, "01"),
                ("2026-01-08", 900, "03"),
                ("2025-12-31", 800, "01"),
                ("2026-01-09", "", "01"),
            ]
        )
    ],
    columns=[
        "PSEUDO_HESID",
        "AEKEY",
        "PROCODE3",
        "ARRIVALDATE",
        "ARRIVALTIME",
        "DEPDUR",
        "AEDEPTTYPE",
        "ARRIVALAGE",
        "SEX",
        "LSOA11",
        "AEATTENDDISP",
    ],
)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    for name, frame in {"apc": pd.DataFrame(KNOWN_APC, columns=APC_COLUMNS), "op": KNOWN_OP, "ae": KNOWN_AE}.items():
        (root / name).mkdir()
        frame.to_csv(root / name / f"{name}.csv", index=False)
    geo = root / "geography"
    geo.mkdir()
    pd.DataFrame({"LSOA11": ["E01000001", "E01000002"], "icb_code": ["QX1", "QX2"], "imd_quintile": ["1", "4"]}).to_csv(
        geo / "lsoa_icb.csv", index=False
    )
    pd.DataFrame(
        [
            {"icb_code": i, "age": a, "sex": s, "imd_quintile": q, "population": 10.0}
            for i, q in (("QX1", "1"), ("QX2", "4"))
            for a in range(91)
            for s in ("1", "2")
        ]
    ).to_csv(geo / "population.csv", index=False)
    return ind.compute_indicators(root, Q)


def _count(res, table, **where):
    frame = res.counts[table]
    for k, v in where.items():
        frame = frame[frame[k] == v]
    return frame


def test_length_of_stay_and_preop_known(known):
    los = known.counts["los"].groupby(["trust_code", "admission"])[["spells", "bed_days"]].sum()
    # ordinary spells discharged in the quarter: A at RAA (4 days, elective), A at RBB (2, emergency; the transfer
    # spell at RCC is neither elective nor emergency), B's emergency (3), C (5), D (2) and E (1) electives at RDD,
    # D's emergency at REE (3), E's emergency at RDD (1); B's day case is not ordinary
    assert los.loc[("RAA", "elective")].tolist() == [1, 4]
    assert los.loc[("RAA", "emergency")].tolist() == [1, 3]
    assert los.loc[("RBB", "emergency")].tolist() == [2, 2 + 5]
    assert los.loc[("RDD", "elective")].tolist() == [2, 2 + 1]
    assert los.loc[("RDD", "emergency")].tolist() == [1, 1]
    assert los.loc[("REE", "emergency")].tolist() == [1, 3]
    assert "RCC" not in los.index.get_level_values(0)
    # the sum of the squared stays (the variance of a sum of stays): RBB's two emergency spells of 2 and 5 days
    squares = known.counts["los"].groupby(["trust_code", "admission"])["bed_days_sq"].sum()
    assert squares[("RBB", "emergency")] == 2**2 + 5**2 and squares[("RDD", "elective")] == 2**2 + 1**2
    pre = known.counts["preop"].set_index("trust_code")
    assert pre.loc["RAA"].tolist() == [1, 1, 1]  # A: operated the day after admission


def test_day_case_known(known):
    dc = known.counts["day_case"].set_index("procedure")
    # A's cataract (ordinary) and B's hernia repair (day case), each its basket procedure (the standardisation strata)
    assert dc.loc["Cataract extraction", ["trust_code", "spells", "day_cases"]].tolist() == ["RAA", 1, 0]
    assert dc.loc["Inguinal hernia repair", ["trust_code", "spells", "day_cases"]].tolist() == ["RAA", 1, 1]
    assert len(dc) == 2  # D's and E's M170 is not in the basket


def test_readmissions_known(known):
    r = known.counts["readmissions"].groupby("trust_code")[["index_spells", "readmissions"]].sum()
    # RAA: A's cataract (readmitted at RBB on day 18) and B's day case (emergency 40 days later: no) and B's
    # emergency; RDD: D (day 29 at REE: yes), E (day 30: no), E's emergency; the died CIPS (RBB→RCC) is no index
    assert r.loc["RAA"].tolist() == [3, 1]
    assert r.loc["RDD"].tolist() == [3, 1]
    assert r.loc["RBB"].tolist() == [1, 0]  # C (died after discharge, but discharged alive)
    assert "RCC" not in r.index


def test_mortality_known(known):
    m = known.counts["mortality"]
    by_trust = m.groupby("trust_code")[["spells", "deaths"]].sum()
    # the RBB→RCC CIPS is attributed to RCC (last provider) and died there; C died 21 days after discharge from RBB
    assert by_trust.loc["RCC"].tolist() == [1, 1]
    assert by_trust.loc["RBB"].tolist() == [1, 1]
    assert by_trust.loc["RAA"].tolist() == [3, 0]
    row = m[m["trust_code"] == "RCC"].iloc[0]
    assert (row["diagnosis_group"], row["admission"], row["age_band"]) == ("respiratory", "emergency", "65-69")
    # D's emergency follows no emergency; B's follows none either; E's emergency: none before (elective only)
    assert m["prior_emergency"].sum() == 0
    assert set(known.shmi["trust_code"]) == {"RAA", "RBB", "RCC", "RDD", "REE"}


def test_outpatients_and_ae_known(known):
    op = known.counts["op_follow_up"].groupby("trust_code")[["first_attendances", "follow_ups"]].sum()
    assert op.loc["RAA"].tolist() == [2, 3]  # firsts 1 and 3 (telephone); follow-ups 2, 4, 2 attended (not 2/3)
    ae = known.counts["ae_12hr"].groupby("trust_code")[["attendances", "over_12_hours"]].sum()
    assert ae.loc["RBB"].tolist() == [3, 1]  # type 1 in the quarter with a duration: 721 (> 12 h), 720, 30


def test_icb_strata_known(known):
    s = known.counts["icb_strata"]
    # emergency CIPS admitted in the quarter: A at RBB (QX1, 65-69, male, quintile 1), B (QX2, 45-49, female, 4),
    # C (QX2, 85-89, female, 4; ACSC I500), D (E01000099: not in the lookup), E (no LSOA); B's N390 is an ACSC
    assert s["emergency_admissions"].sum() == 3
    assert s["acsc_admissions"].sum() == 3  # J441 (COPD), N390 (urinary tract infection), I500 (heart failure)
    assert known.counts["icb_unmatched"]["emergency_admissions"].item() == 2
    # Σ over patients of admissions²: QX1 has A (one admission), QX2 has B and C (one each)
    patients = known.counts["icb_patients"].set_index("icb_code")
    assert patients["emergency_admissions_sq"].to_dict() == {"QX1": 1, "QX2": 2}
    obs = known.observations.set_index(["metric_id", "trust_code"])
    assert obs.loc[("icb_emergency_admissions", "QX2"), "numerator"] == 2
    # standardised: QX1 and QX2 share no stratum (IMD quintiles 1 and 4), so each is its own reference (E = O, ISR 1)
    # and the denominator is E ÷ England's crude rate (3 admissions in 2 × 91 × 2 × 10 residents)
    assert obs.loc[("icb_emergency_admissions", "QX2"), "denominator"] == pytest.approx(2 / (3 / 3640))
    assert obs.loc[("icb_emergency_admissions", "QX2"), "value"] == pytest.approx(3 / 3640 * 1e5)
    assert known.notes and "2 emergency admissions" in known.notes[0]


def test_observations_follow_the_data_contract(known):
    obs = known.observations
    assert list(obs.columns) == ind.OBSERVATION_COLUMNS
    assert set(obs["metric_id"]) == set(ind.PROVIDER_METRICS) | set(ind.RATIO_METRICS) | set(ind.ICB_METRICS)
    assert (obs["quarter"] == Q).all() and not obs.duplicated(["trust_code", "metric_id"]).any()
    los = obs[(obs["metric_id"] == "rl_los_emergency") & (obs["trust_code"] == "RBB")].iloc[0]
    assert (los["numerator"], los["denominator"], los["value"]) == (7, 2, 3.5)


def test_observed_over_expected_known():
    """Indirect standardisation worked by hand: national 12-hour rates 7/40 (band 60-64) and 10/20 (band 80-84);
    trust A expects 10 × 0.175 + 10 × 0.5 = 6.75 and has 6, trust B expects 30 × 0.175 + 10 × 0.5 = 10.25 and has
    11 (Σ O = Σ E = 17)."""
    ae = pd.DataFrame(
        {
            "trust_code": ["A", "A", "B", "B"],
            "age_band": ["60-64", "80-84", "60-64", "80-84"],
            "attendances": [10, 10, 30, 10],
            "over_12_hours": [1, 5, 6, 5],
        }
    )
    empty = {t: pd.DataFrame(columns=["trust_code", *cols]) for t, cols in EMPTY_COUNTS.items()}
    ratios = ind.standardised_ratios({**empty, "ae_12hr": ae}, pd.DataFrame()).set_index("trust_code")
    assert set(ratios["metric_id"]) == {"rl_ae_12hr_oe"}
    assert ratios.loc["A", ["observed", "expected"]].tolist() == pytest.approx([6, 6.75])
    assert ratios.loc["B", ["observed", "expected", "ratio"]].tolist() == pytest.approx([11, 10.25, 11 / 10.25])


def test_demo_ratio_rows_are_the_indicators_rows(known):
    """The O/E rows (rl_*_oe, rl_shmi) are the ratios table, numerator O and denominator E, Σ O = Σ E per metric."""
    obs = known.observations[known.observations["metric_id"].isin([*ind.RATIO_METRICS, "rl_shmi"])]
    ratios = known.ratios
    merged = obs.merge(ratios, on=["metric_id", "trust_code"], validate="one_to_one")
    assert len(merged) == len(ratios) > 0
    assert np.allclose(merged["numerator"], merged["observed"]) and np.allclose(
        merged["denominator"], merged["expected"]
    )
    sums = ratios.groupby("metric_id")[["observed", "expected"]].sum()
    assert np.allclose(sums["observed"], sums["expected"])


EMPTY_COUNTS = {
    "los": ["admission", "diagnosis_group", "age_band", "spells", "bed_days", "bed_days_sq"],
    "day_case": ["procedure", "spells", "day_cases"],
    "readmissions": ["age_band", "sex", "admission", "index_spells", "readmissions"],
    "op_follow_up": ["age_band", "first_attendances", "follow_ups"],
}


# ------------------------------------------------------------------------------------------------------- parity
@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    return load_records(write_records(tmp_path_factory.mktemp("extract"), n_patients=600))


def test_duckdb_equals_pandas(extract):
    residence, _ = ind.geography_for(extract.root, SETTINGS)
    duck = ind.run_counts(extract, Q, SETTINGS, residence)
    tables = {n: extract.con.execute(f"SELECT * FROM {n}").df() for n in ("apc", "op", "ae")}
    pand = run_counts_pandas(tables["apc"], tables["op"], tables["ae"], Q, SETTINGS, residence)
    assert list(duck) == list(pand)
    for name in duck:
        pd.testing.assert_frame_equal(duck[name], pand[name], obj=name)
    # the extract exercises the branches: transfers, readmissions, deaths, day cases, ACSCs, unknown residence
    assert duck["readmissions"]["readmissions"].sum() > 0 and duck["mortality"]["deaths"].sum() > 0
    assert duck["mortality"]["prior_emergency"].sum() > 0 and duck["day_case"]["day_cases"].sum() > 0
    assert duck["icb_unmatched"]["emergency_admissions"].item() > 0
    # some residents have two emergency admissions in the quarter (a readmission): Σ k² > Σ k
    assert duck["icb_patients"]["emergency_admissions_sq"].sum() > duck["icb_strata"]["emergency_admissions"].sum()


def test_pandas_contract_then_pandas_counts_equal_duckdb(extract):
    """The benchmark's pandas baseline end to end: the extract validated by the plain-pandas contract
    (``pandas_contract``; typed columns as pandas gives them) and counted by ``pandas_reference`` gives the DuckDB
    counts exactly."""
    residence, _ = ind.geography_for(extract.root, SETTINGS)
    duck = ind.run_counts(extract, Q, SETTINGS, residence)
    tables = load_records_pandas(extract.root)
    assert {n: len(t) for n, t in tables.items()} == extract.rows
    pand = run_counts_pandas(tables["apc"], tables["op"], tables["ae"], Q, SETTINGS, residence)
    for name in duck:
        pd.testing.assert_frame_equal(duck[name], pand[name], obj=name)


def test_patient_buckets_give_the_same_counts(extract):
    """Large extracts run in patient buckets (every step from the episodes on, per bucket of patient ids); the
    counts summed over 3 buckets equal those of one pass, and the outputs that do not read the episodes run once."""
    residence, _ = ind.geography_for(extract.root, SETTINGS)
    one = ind.run_counts(extract, Q, SETTINGS, residence, buckets=1)
    three = ind.run_counts(extract, Q, SETTINGS, residence, buckets=3)
    assert list(one) == list(three)
    for name in one:
        pd.testing.assert_frame_equal(one[name], three[name], obj=name)
    once = {s.name for s in ind.render_steps(SETTINGS, Q) if s.once}
    assert once == {"quarter_patients", "quarter_episodes", "op_follow_up", "ae_12hr"}
    assert {s.name for s in ind.render_steps(SETTINGS, Q) if s.bucketed} == {"quarter_episodes"}
    sizes = [
        extract.con.execute(f"SELECT count(*) FROM apc WHERE {ind.patient_filter(b, 3)}").fetchall()[0][0]
        for b in range(3)
    ]
    assert sum(sizes) == extract.rows["apc"] and min(sizes) > 0


def test_transfers_make_continuous_spells(extract):
    con = extract.con
    ind.DuckDBEngine(con).run([s for s in ind.render_steps(SETTINGS, Q) if s.kind != "output"][:3])
    n_spells = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT PSEUDO_HESID, PROCODE3, ADMIDATE FROM apc)"
    ).fetchall()
    transfers = con.execute("SELECT count(*) FROM apc WHERE ADMIMETH = '81' AND EPIORDER = 1").fetchall()
    assert n_spells[0][0] > 0 and transfers[0][0] > 0


# --------------------------------------------------------------------------------------------------------- SHMI
def _strata(rng, trusts=12, risk_factor=None):
    rows = []
    for t in range(trusts):
        for group in ("circulatory", "respiratory"):
            for age in ("60-64", "75-79", "85-89"):
                for sex in ("1", "2"):
                    n = int(rng.integers(80, 160))
                    p = {"60-64": 0.02, "75-79": 0.06, "85-89": 0.15}[age] * (1.3 if group == "respiratory" else 1)
                    p *= (risk_factor or {}).get(t, 1.0)
                    rows.append(
                        {
                            "trust_code": f"T{t:02d}",
                            "diagnosis_group": group,
                            "age_band": age,
                            "sex": sex,
                            "admission": "emergency",
                            "prior_emergency": 0,
                            "spells": n,
                            "deaths": int(rng.binomial(n, min(p, 1))),
                        }
                    )
    return pd.DataFrame(rows)


def test_shmi_expected_equals_observed_per_group():
    df, models = ind.shmi_expected(_strata(np.random.default_rng(3)), min_spells=20)
    sums = df.groupby("model_group")[["deaths", "expected"]].sum()
    np.testing.assert_allclose(sums["expected"], sums["deaths"], rtol=1e-6)
    assert set(models["model"]) == {"logistic model"}


def test_shmi_bands_a_high_risk_provider():
    shmi, _ = ind.shmi_table(_strata(np.random.default_rng(5), risk_factor={4: 3.0}), SETTINGS)
    shmi = shmi.set_index("trust_code")
    assert shmi.loc["T04", "banding"] == "higher than expected" and shmi.loc["T04", "ratio"] > 1.8
    assert (shmi.drop("T04")["band"] != 1).all()


def test_icb_isr_against_england_is_one_on_average(extract):
    res = ind.compute_indicators(extract, Q)
    std = res.icb_standardised
    for _metric, sub in std.groupby("metric_id"):
        expected = sub["observed"] / sub["isr"]
        assert expected[sub["observed"] > 0].sum() == pytest.approx(sub["observed"].sum(), rel=1e-9)


# ------------------------------------------------------------------------------------------------------- settings
def test_quarter_dates():
    assert ind.quarter_dates("2025-26-Q4") == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert ind.quarter_dates("2024-25-Q3") == (dt.date(2024, 10, 1), dt.date(2024, 12, 31))
    with pytest.raises(InputError):
        ind.quarter_dates("2025-26-Q5")


def test_bad_settings_are_one_line_errors(tmp_path):
    text = (Path(ind.__file__).resolve().parents[4] / "config" / "records" / "indicators.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("window_days: 30", "window_days: 0"))
    with pytest.raises(InputError, match=r"bad.yaml: readmissions.window_days"):
        load_record_settings(bad)
    bad.write_text(text.replace('opcs: ["T20"]', 'opcs: ["t20"]'))
    with pytest.raises(InputError, match="not a code"):
        load_record_settings(bad)


def test_sql_is_transpiled_for_spark():
    for step in ind.render_steps(SETTINGS, Q):
        spark_sql = ind.to_spark_sql(step.sql)
        assert "date_diff(" not in spark_sql.lower() or "DATEDIFF" in spark_sql
        assert "${" not in step.sql


def test_geography_from_generator_folder(tmp_path):
    write_geography(tmp_path / "geo")
    residence, population = ind.folder_geography(tmp_path / "geo", SETTINGS)
    assert list(residence.columns) == ["lsoa11", "icb", "imd_quintile"]
    assert set(population["age_band"]) == set(ind.band_labels(SETTINGS.icb.age_bands))


def test_only_the_quarters_patients_are_read_and_no_count_changes(extract, tmp_path, monkeypatch):
    """The episodes of patients with no episode admitted or discharged in the quarter cannot change a count
    (``quarter_patients``): the counts equal those computed from every patient's episodes; the extract has such
    patients, and patients whose spells were admitted before the quarter and discharged in it."""
    residence, _ = ind.geography_for(extract.root, SETTINGS)
    pruned = ind.run_counts(extract, Q, SETTINGS, residence, buckets=1)
    sql = ind.SQL_FILE.read_text(encoding="utf-8")
    where = "WHERE ADMIDATE BETWEEN DATE '${qstart}' AND DATE '${qend}' OR DISDATE BETWEEN DATE '${qstart}' AND DATE '${qend}'"
    assert sql.count(where) == 1
    every = tmp_path / "every_patient.sql"
    every.write_text(sql.replace(where, ""), encoding="utf-8")
    monkeypatch.setattr(ind, "SQL_FILE", every)
    full = ind.run_counts(extract, Q, SETTINGS, residence, buckets=1)
    for name in full:
        pd.testing.assert_frame_equal(pruned[name], full[name], obj=name)
    start, end = ind.quarter_dates(Q)
    con = extract.con
    patients = con.execute("SELECT count(DISTINCT PSEUDO_HESID) FROM apc").fetchall()[0][0]
    kept = con.execute(
        "SELECT count(DISTINCT PSEUDO_HESID) FROM apc WHERE ADMIDATE BETWEEN ? AND ? OR DISDATE BETWEEN ? AND ?",
        [start, end, start, end],
    ).fetchall()[0][0]
    across = con.execute("SELECT count(*) FROM apc WHERE ADMIDATE < ? AND DISDATE BETWEEN ? AND ?", [start, start, end])
    assert 0 < kept < patients and across.fetchall()[0][0] > 0


def test_buckets_are_sized_by_the_quarters_patients_episodes(extract, monkeypatch):
    """Without a bucket count, run_counts makes one bucket per EPISODES_PER_BUCKET episodes of the quarter's patients
    (not of the whole extract); the counts are those of one pass."""
    residence, _ = ind.geography_for(extract.root, SETTINGS)
    one = ind.run_counts(extract, Q, SETTINGS, residence, buckets=1)
    start, end = ind.quarter_dates(Q)
    relevant = extract.con.execute(
        "SELECT count(*) FROM apc WHERE PSEUDO_HESID IN (SELECT PSEUDO_HESID FROM apc WHERE ADMIDATE BETWEEN ? AND ? "
        "OR DISDATE BETWEEN ? AND ?)",
        [start, end, start, end],
    ).fetchall()[0][0]
    assert relevant < extract.rows["apc"]
    per = -(-relevant // 3)  # three buckets of the quarter's patients' episodes; more of the whole extract's
    monkeypatch.setattr(ind, "EPISODES_PER_BUCKET", per)
    assert -(-extract.rows["apc"] // per) > 3
    runner = ind.DuckDBEngine(extract.con)
    shared = [s for s in ind.render_steps(SETTINGS, Q) if s.once and s.kind == "table"]
    runner.run(shared)
    assert ind._bucket_count(runner, extract.rows["apc"]) == 3
    runner.drop(shared)
    auto = ind.run_counts(extract, Q, SETTINGS, residence)
    for name in one:
        pd.testing.assert_frame_equal(one[name], auto[name], obj=name)
