"""The synthetic record-level generator (leaguetables.inputs.records.generate) at its demo scale.

Needs the real geography in ../shared/data/real (ONS populations and lookups, IMD 2019, OHID catchments): every test
skips, naming the folder, when it is absent. The truth-recovery figures are a simulation where the truth is known:
the generator's own true standardised ratios (truth/ratios.csv) against the ratios a plain reading of the records
gives (leaguetables.inputs.records.recovery); the full national-scale figure is benchmarks/bench_records_generate.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from leaguetables.inputs.records import contract, demo_quarter, generate, geography, indicators, recovery
from leaguetables.statistics import rates

pytestmark = pytest.mark.realdata

APC = [
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
OP = [
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
]
AE = [
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
]


@pytest.fixture(scope="module")
def demo_records(demo_dir):
    """The demo-scale records the session's demo data holds (``demo.write`` ran ``generate.run(generate.make_job(
    "demo", demo_dir / "records"), 1, demo_effects=demo.generate()["truth/trust_effects"])``: the same job, written
    once per session rather than again here); read, never written."""
    if not geography.available():
        pytest.skip(f"real geography absent: {geography.DEFAULT_REAL}")
    out = demo_dir / "records"
    assert json.loads((out / "manifest.json").read_text())["scale"] == "demo"
    return out


def test_the_records_manifest_holds_nothing_that_varies_between_generations(demo_records):
    """The manifest of the generated records says what was generated (scale, seed, fraction, quarters, row counts)
    and nothing a second generation with the same seed would write differently (the time it took, once)."""
    manifest = json.loads((demo_records / "manifest.json").read_text())
    assert set(manifest) == {"scale", "seed", "population_fraction", "quarters", "rows", "generator", "fictional"}


@pytest.fixture(scope="module")
def demo_indicators(demo_records):
    return indicators.compute_indicators(demo_records, "2025-26-Q4")


def _read(folder, dataset):
    return pd.read_parquet(folder / dataset)


@pytest.mark.parametrize("dataset,columns,key", [("apc", APC, "EPIKEY"), ("op", OP, "ATTENDKEY"), ("ae", AE, "AEKEY")])
def test_records_have_the_contract_columns_unique_keys_and_fictional_providers(demo_records, dataset, columns, key):
    files = sorted((demo_records / dataset).rglob("*.parquet"))
    assert files and all("FYEAR=2526" in str(f) and "QUARTER=Q4" in str(f) for f in files)
    schema = pq.read_schema(files[0])
    assert schema.names == columns
    df = _read(demo_records, dataset)
    assert df[key].is_unique and len(df) > 50_000
    assert df["PROCODE3"].str.fullmatch(r"Z[0-9A-Z]{2}").all()  # fictional: no NHS trust code begins with Z
    assert df["LSOA11"].str.startswith("E01").all()


def test_apc_episodes_are_coherent(demo_records):
    apc = _read(demo_records, "apc")
    for c in ("ADMIDATE", "EPISTART", "EPIEND", "DISDATE", "OPDATE_01", "DOD"):
        apc[c] = pd.to_datetime(apc[c])
    assert (apc["EPISTART"] >= apc["ADMIDATE"]).all() and (apc["EPIEND"] >= apc["EPISTART"]).all()
    assert apc["ADMIDATE"].between("2026-01-01", "2026-03-31").all()
    last = apc["DISDATE"].notna()
    assert (apc.loc[~last, "DISMETH"] == "8").all() and (apc.loc[last, "DISMETH"] != "8").all()
    died = apc["DISMETH"] == "4"
    assert (apc.loc[died, "DOD"] == apc.loc[died, "DISDATE"]).all()
    assert set(apc["CLASSPAT"]) == {"1", "2"} and set(apc["EPIORDER"]) == {1, 2}
    assert apc["STARTAGE"].between(0, 90).all() and set(apc["SEX"]) == {"1", "2"}
    spells = apc.groupby(["PSEUDO_HESID", "PROCODE3", "ADMIDATE"])["DISDATE"].count()
    assert (spells == 1).all()  # exactly one episode of every spell carries the discharge


def test_registers_are_fictional_and_match_the_demo_acute_trusts(demo_records):
    trusts = pd.read_csv(demo_records / "registers" / "trusts.csv")
    icbs = pd.read_csv(demo_records / "registers" / "icbs.csv")
    assert len(trusts) == 134 and trusts["trust_code"].str.fullmatch(r"DEMO-A\d{3}").all()
    assert trusts["procode3"].is_unique and (trusts["procode3"] == trusts["trust_code"].map(geography.procode3)).all()
    assert trusts["trust_name"].str.contains(" Demo ").all()
    assert len(icbs) == 42 and icbs["icb_code"].str.fullmatch(r"DEMO-I\d{2}").all()
    assert icbs["icb_name"].str.contains(" Demo Integrated Care Board").all()
    assert not icbs["icb_name"].str.contains("NHS").any()
    manifest = json.loads((demo_records / "manifest.json").read_text())
    assert manifest["fictional"] is True and manifest["scale"] == "demo"


def test_population_represented_is_the_ons_population_times_the_fraction(demo_records):
    """The ONS mid-2020 LSOA total for England (56,550,138, geography_population/SOURCE.md) × 0.03."""
    pop = pd.read_csv(demo_records / "geography" / "population.csv")
    assert pop["population"].sum() == pytest.approx(56_550_138 * 0.03, rel=1e-6)
    assert pop["icb_code"].nunique() == 42 and set(pop["imd_quintile"]) == {1, 2, 3, 4, 5}


def test_generation_is_deterministic_in_the_chunk_streams(demo_records):
    """Chunks draw from their own streams: one ICB's chunk is identical whatever ran before it."""
    job = generate.make_job("demo", demo_records)
    geo = geography.load(job.real, seed=job.seed, demo_seed=job.demo_seed, acute_trusts=job.acute_trusts)
    eff = generate.draw_effects(job.seed, geo.trust_codes, len(geo.icb_codes))
    readm = generate.readmission_factor(geo, eff)
    per = generate.period("2025-26-Q4")
    a, _ = generate.simulate_chunk(geo, eff, per, 5, job.fraction, job.seed, readm)
    generate.simulate_chunk(geo, eff, per, 6, job.fraction, job.seed, readm)
    b, _ = generate.simulate_chunk(geo, eff, per, 5, job.fraction, job.seed, readm)
    assert a["apc"].equals(b["apc"]) and a["ae"].equals(b["ae"]) and a["op"].equals(b["op"])


def test_truth_is_recovered_by_standardised_ratios(demo_records, demo_indicators):
    """Simulation with known truth (one demo-scale draw, 3% of the population for one quarter): the record-level
    indicators' standardised ratios (the demo's rl_* and icb_* metrics) have 95% intervals that cover the true
    ratios 93–98.5% pooled over every outcome (888 intervals; Bernoulli outcomes under exact Poisson limits are a
    little conservative), bed days, day cases, the 0/1 outcomes and follow-ups (whose expected count is random too) with
    the scaled interval of their reported variance
    (the Poisson intervals of bed days and day cases covered 56% and 100% on this draw), and the outcomes with enough events per organisation (ICB
    emergency admissions, 12 hours in A&E) correlate ≥ 0.9 with the truth."""
    table = recovery.recovery(demo_records, demo_indicators).set_index(["org_type", "outcome"])
    pooled = table["covered"].sum() / table["organisations"].sum()
    assert 0.93 <= pooled <= 0.985, table
    scaled = table[table["interval"] == "scaled"]
    assert set(scaled.index) == {
        ("trust", "los"),
        ("trust", "daycase"),
        ("trust", "readmission"),
        ("trust", "ae_12hr"),
        ("trust", "mortality"),
        ("trust", "followup"),
        ("icb", "emergency"),
        ("icb", "acsc"),
    }
    assert (scaled["coverage"] >= 0.9).all(), table
    for key in [("icb", "emergency"), ("trust", "ae_12hr")]:
        assert table.loc[key, "corr_ratio"] >= 0.9, table
    # the rarer outcomes are too noisy at 3% of one quarter for 0.9 (the national figure is the benchmark's), but
    # every estimate still follows its truth
    assert (table["corr_ratio"] > 0.15).all(), table


def test_records_pass_the_record_level_contract(demo_records):
    """The generated folder loads through the validating contract loader (every row checked in DuckDB)."""
    records = contract.load_records(demo_records)
    assert records.exclusions.empty


def test_procode3_is_z_and_base36():
    assert geography.procode3("DEMO-A001") == "Z01" and geography.procode3("DEMO-A036") == "Z10"
    assert geography.procode3("DEMO-A134") == "Z3Q"
    with pytest.raises(ValueError):
        geography.procode3("RXX")


def test_catchment_choice_inverts_the_trust_shares():
    """Bayes' rule with volumes solved to the areas' demand: with shares that allow it exactly, the implied
    admissions per area equal the demand and the choice rows sum to 1."""
    share = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    demand = np.array([100.0, 150.0, 150.0])
    choice, vol = generate.geography.catchment_choice(share, demand, iterations=2000)
    assert np.allclose(vol @ share, demand, rtol=1e-6)
    assert np.allclose(choice.sum(axis=1), 1)
    assert np.allclose(choice[0], [1, 0]) and np.allclose(choice[2], [0, 1])


def test_icb_rows_give_the_indirectly_standardised_rate(demo_records, demo_indicators):
    """The ICB contract rows (numerator: admissions; denominator: the standardised population) give, as a rate per
    100,000, exactly rates.israte of the same admissions against the population of geography/population.csv
    (strata: age band × sex × IMD quintile, the indicators' strata table)."""
    rows = demo_quarter.record_observations(demo_records, "2025-26-Q4", demo_indicators)
    strata = demo_indicators.strata
    local = strata[strata["population"] > 0].rename(columns={"emergency_admissions": "x", "population": "n"})
    on = ["age_band", "sex", "imd_quintile"]
    ref = local.groupby(on, as_index=False)[["x", "n"]].sum()
    want = rates.israte(local, ref, on=on, by="icb_code", multiplier=100_000)
    got = rows[rows["metric_id"] == "icb_emergency_admissions"].set_index("trust_code")
    assert np.allclose(got["numerator"] / got["denominator"] * 1e5, want["value"].reindex(got.index), rtol=1e-6)
    assert len(got) == 42 and got.index.str.fullmatch(r"DEMO-I\d{2}").all()


def test_record_rows_are_observed_over_expected_and_merge_adds_only(demo_records, demo_indicators):
    """Every rl_* row's numerator sums to its denominator over the trusts (internal standardisation: Σ O = Σ E), the
    rows are the indicators' own (one definition), and merging into contract tables keeps every existing row and adds
    the ICBs as organisation type icb."""
    rows = demo_quarter.record_observations(demo_records, "2025-26-Q4", demo_indicators)
    rows = rows[rows["metric_id"].str.startswith("rl_")]
    sums = rows.groupby("metric_id")[["numerator", "denominator"]].sum()
    assert set(sums.index) == set(demo_quarter.RECORD_METRICS)
    assert np.allclose(sums["numerator"], sums["denominator"], rtol=1e-6)
    assert rows["trust_code"].str.fullmatch(r"DEMO-A\d{3}").all()
    ratios = demo_indicators.ratios.set_index(["metric_id", "trust_code"])
    first = rows.iloc[0]
    code = geography.procode3(first["trust_code"])
    assert first["numerator"] == pytest.approx(ratios.loc[(first["metric_id"], code), "observed"])
    frames = {
        "trusts": pd.DataFrame(
            {
                "trust_code": ["DEMO-A001"],
                "trust_name": ["X Demo Hospitals Trust"],
                "trust_type": ["acute"],
                "trust_subtype": ["Large"],
                "region": ["London"],
            }
        ),
        "observations": rows.iloc[:0].assign(metric_id=[]),
        "status": pd.DataFrame(
            columns=["quarter", "trust_code", "deficit", "deficit_support", "improvement_programme"]
        ),
        "demographics": pd.DataFrame(
            {
                c: [1.0]
                for c in [
                    "trust_code",
                    "population",
                    "share_65plus",
                    "share_85plus",
                    "imd_score",
                    "rural_share",
                    "ethnic_minority_share",
                ]
            }
        ),
    }
    out = demo_quarter.merge_into_demo(frames, demo_records, "2025-26-Q4", demo_indicators)
    assert out["trusts"].iloc[0].equals(frames["trusts"].iloc[0])
    assert (out["trusts"]["trust_type"] == "icb").sum() == 42 and len(out["demographics"]) == 43
    assert (
        out["demographics"].set_index("trust_code").loc["DEMO-I01", "ethnic_minority_share"]
        != out["demographics"].set_index("trust_code").loc["DEMO-I01", "ethnic_minority_share"]
    )  # NaN: not available
