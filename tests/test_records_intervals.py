"""The intervals of the record-level ratios whose events are not a Poisson count: simulations where the truth is known.

Each test draws records from a known model at a small scale (a second or so, fixed seed), computes the ratios with
the indicators' own functions (``indicators.standardised_ratios``, ``indicators.standardise_icbs``: the same code as
the demo quarter's metrics) and counts how often the 95% intervals cover the true standardised ratio (Σ of the true
expected outcome of the organisation's records ÷ Σ of the national true mean of their strata, the generator's
``truth/ratios.csv`` definition). The Poisson interval of the same counts fails each test: bed days (a stay's
variance is many times its mean), day cases (a proportion near 0.8: binomial variance far below the Poisson one) and
emergency admissions clustered in patients (readmissions of the same resident).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.inputs.records import indicators as ind
from leaguetables.inputs.records.model import LOS_SHAPE
from leaguetables.inputs.records.settings import load_record_settings
from leaguetables.statistics import rates

SEED = 20261201
EMPTY = {
    "los": ["admission", "diagnosis_group", "age_band", "spells", "bed_days", "bed_days_sq"],
    "day_case": ["procedure", "spells", "day_cases"],
    "readmissions": ["age_band", "sex", "admission", "index_spells", "readmissions"],
    "op_follow_up": ["age_band", "first_attendances", "follow_ups"],
    "ae_12hr": ["age_band", "attendances", "over_12_hours"],
}


def _counts(**tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    empty = {t: pd.DataFrame(columns=["trust_code", *cols]) for t, cols in EMPTY.items()}
    return {**empty, **tables}


def _true_ratio(org: np.ndarray, stratum: np.ndarray, mu: np.ndarray, n: np.ndarray) -> pd.Series:
    """Σ μ of the organisation ÷ Σ of its records × the national true mean of their stratum."""
    t = pd.DataFrame({"org": org, "stratum": stratum, "mu": mu, "n": n})
    nat = t.groupby("stratum")[["mu", "n"]].transform("sum")
    t["expected"] = t["n"] * nat["mu"] / nat["n"]
    per = t.groupby("org")[["mu", "expected"]].sum()
    return per["mu"] / per["expected"]


def _coverage(observed, expected, truth, variance=None) -> float:
    lim = rates.ratio(np.asarray(observed, float), np.asarray(expected, float), variance=variance)
    t = np.asarray(truth, float)
    return float(((lim["lower"].to_numpy() <= t) & (t <= lim["upper"].to_numpy())).mean())


def test_bed_days_interval_from_the_squared_stays_covers():
    """600 trusts × 8 case-mix strata (mean stay 2–16 days), ~40 emergency spells a stratum, stays drawn as the
    generator draws them (Poisson around a gamma-mixed mean: variance ≈ 8 × the mean at 5 days), true trust effects SD
    0.1 on the log mean. The scaled interval of O with the variance Σ (L − r·m)² covers the true ratio 93–97% of the
    time; the Poisson interval of bed days (the old one) under 75%."""
    rng = np.random.default_rng([SEED, 1])
    trusts, means = 600, np.array([2.0, 4.0, 8.0, 12.0, 2.6, 5.2, 10.4, 15.6])
    effect = rng.normal(0, 0.1, trusts)
    spells = rng.poisson(40, (trusts, len(means)))
    org = np.repeat(np.arange(trusts), spells.sum(axis=1))
    stratum = np.concatenate([np.repeat(np.arange(len(means)), row) for row in spells])
    mu = means[stratum] * np.exp(effect[org])
    stay = rng.poisson(mu * rng.gamma(LOS_SHAPE, 1 / LOS_SHAPE, len(mu)))
    stays = pd.DataFrame({"trust_code": org.astype(str), "stratum": stratum, "y": stay, "y2": stay**2})
    los = stays.groupby(["trust_code", "stratum"], as_index=False).agg(
        spells=("y", "size"), bed_days=("y", "sum"), bed_days_sq=("y2", "sum")
    )
    los = los.assign(admission="emergency", diagnosis_group=los["stratum"].astype(str), age_band="60-64")
    r = ind.standardised_ratios(_counts(los=los.drop(columns="stratum")), pd.DataFrame(), ["rl_los_oe"])
    truth = _true_ratio(org, stratum, mu, np.ones(len(mu)))
    true = truth.reindex(r["trust_code"].astype(int)).to_numpy()
    assert r["variance"].notna().all() and (r["variance"] > 3 * r["observed"]).all()
    assert 0.93 <= _coverage(r["observed"], r["expected"], true, r["variance"]) <= 0.97
    assert _coverage(r["observed"], r["expected"], true) < 0.75  # bed days as a Poisson count


def test_day_case_interval_is_binomial_not_poisson():
    """800 trusts × 3 basket procedures (logit of the day-case probability 1, 2, 3: 73–95%), ~60 spells a procedure,
    true trust effects SD 0.35 on the logit scale. The scaled interval with the (binomial) variance Σ (y − r·p)²
    covers the true ratio 93–97%; the Poisson interval of the day cases (the old one) over 99.5%: far too wide."""
    rng = np.random.default_rng([SEED, 2])
    trusts, logit = 800, np.array([1.0, 2.0, 3.0])
    effect = rng.normal(0, 0.35, trusts)
    spells = rng.poisson(60, (trusts, len(logit)))
    org = np.repeat(np.arange(trusts), spells.sum(axis=1))
    proc = np.concatenate([np.repeat(np.arange(len(logit)), row) for row in spells])
    p = 1 / (1 + np.exp(-(logit[proc] + effect[org])))
    day = (rng.random(len(p)) < p).astype(int)
    frame = pd.DataFrame({"trust_code": org.astype(str), "procedure": proc.astype(str), "y": day})
    dc = frame.groupby(["trust_code", "procedure"], as_index=False).agg(spells=("y", "size"), day_cases=("y", "sum"))
    r = ind.standardised_ratios(_counts(day_case=dc), pd.DataFrame(), ["rl_daycase_oe"])
    true = _true_ratio(org, proc, p, np.ones(len(p))).reindex(r["trust_code"].astype(int)).to_numpy()
    assert 0.93 <= _coverage(r["observed"], r["expected"], true, r["variance"]) <= 0.97
    assert _coverage(r["observed"], r["expected"], true) > 0.995  # day cases as a Poisson count


def test_mortality_interval_is_binomial_not_poisson():
    """600 trusts, one diagnosis group, 3 age bands × 2 sexes (death probabilities 20%, 35% and 50%), ~30 spells a
    cell, true trust effects SD 0.2 on the logit scale; deaths drawn as 0/1 outcomes and the expected deaths from the
    SHMI-style logistic model (``indicators.shmi_table``, the demo's settings: ``rl_shmi`` in
    ``standardisation.numerator_variance``). The scaled interval with the (binomial) variance Σ (y − r·p)² covers
    the true ratio 93–97%; the Poisson interval of the deaths (the one before 1.2.0 of the settings) over 97.5%."""
    rng = np.random.default_rng([SEED, 4])
    trusts, base = 600, np.array([0.20, 0.35, 0.50])
    effect = rng.normal(0, 0.2, trusts)
    cells = rng.poisson(30, (trusts, 6))
    org = np.repeat(np.arange(trusts), cells.sum(axis=1))
    cell = np.concatenate([np.repeat(np.arange(6), row) for row in cells])
    age = cell // 2
    p = 1 / (1 + np.exp(-(np.log(base[age] / (1 - base[age])) + effect[org])))
    died = (rng.random(len(p)) < p).astype(int)
    frame = pd.DataFrame({"trust_code": org.astype(str), "age": age, "sex": (cell % 2 + 1).astype(str), "y": died})
    strata = frame.groupby(["trust_code", "age", "sex"], as_index=False).agg(spells=("y", "size"), deaths=("y", "sum"))
    strata = strata.assign(
        diagnosis_group="circulatory",
        age_band=np.array(["60-64", "75-79", "85-89"])[strata.pop("age")],
        admission="emergency",
        prior_emergency=0,
    )
    shmi, _ = ind.shmi_table(strata, load_record_settings("indicators"))
    true = _true_ratio(org, age, p, np.ones(len(p))).reindex(shmi["trust_code"].astype(int)).to_numpy()
    assert shmi["variance"].notna().all() and (shmi["variance"] < 0.8 * shmi["observed"]).all()
    assert 0.93 <= _coverage(shmi["observed"], shmi["expected"], true, shmi["variance"]) <= 0.97
    assert _coverage(shmi["observed"], shmi["expected"], true) > 0.975  # deaths as a Poisson count


def _icb_draw(rng: np.random.Generator, icbs: int, readmitted: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Strata (ICB × age band × sex), the icb_patients sums and the true ratio: index admissions Poisson in the
    population (rate by age band × ICB effect, SD 0.08), each followed by a readmission of the same patient with
    probability ``readmitted``; ACSC admissions a fifth of the index ones (never readmitted)."""
    bands, rate = np.array(["40-44", "60-64", "80-84"]), np.array([0.01, 0.03, 0.09])
    effect = rng.normal(0, 0.08, icbs)
    icb = np.repeat(np.arange(icbs), 6)
    band = np.tile(np.repeat(np.arange(3), 2), icbs)
    pop = rng.integers(2_000, 8_000, len(icb)).astype(float)
    mu_index = pop * rate[band] * np.exp(effect[icb])
    index = rng.poisson(mu_index)
    readm = rng.binomial(index, readmitted)
    acsc = rng.binomial(index, 0.2)
    codes = np.char.add("I", icb.astype(str))
    strata = pd.DataFrame(
        {
            "icb_code": codes,
            "age_band": bands[band],
            "sex": np.tile(["1", "2"], 3 * icbs),
            "imd_quintile": "3",
            "population": pop,
            "emergency_admissions": index + readm,
            "acsc_admissions": acsc,
        }
    )
    patients = (
        pd.DataFrame({"icb_code": codes, "emergency_admissions_sq": index + 3 * readm, "acsc_admissions_sq": acsc})
        .groupby("icb_code", as_index=False)
        .sum()
    )  # a readmitted patient has 2 admissions: 2² = 1 + 3
    truth = _true_ratio(codes, band * 2 + np.tile([0, 1], 3 * icbs), mu_index * (1 + readmitted), pop)
    return strata, patients, truth


def test_icb_interval_from_admissions_clustered_in_patients_covers():
    """500 ICBs, 60% of emergency admissions followed by a readmission of the same resident (scale φ = (1 + 3q)/(1 +
    q) = 1.75): the ISR's scaled interval with the variance Σ over patients of admissions² covers the true ratio 93–97%;
    the Poisson interval of the admissions (the old one) under 90%. ACSC admissions are not clustered: Σ k² = O, the
    limits are the Poisson ones exactly."""
    strata, patients, truth = _icb_draw(np.random.default_rng([SEED, 3]), 500, 0.6)
    std = ind.standardise_icbs(strata, 100_000, patients, ["icb_emergency_admissions", "icb_acsc_admissions"])
    old = ind.standardise_icbs(strata, 100_000)
    em = std[std["metric_id"] == "icb_emergency_admissions"].set_index("icb_code")
    was = old[old["metric_id"] == "icb_emergency_admissions"].set_index("icb_code")
    true = truth.reindex(em.index).to_numpy()
    new_cover = ((em["isr_lower"] <= true) & (true <= em["isr_upper"])).mean()
    old_cover = ((was["isr_lower"] <= true) & (true <= was["isr_upper"])).mean()
    assert 0.93 <= new_cover <= 0.97
    assert old_cover < 0.90
    assert em["variance"].notna().all() and np.allclose(em["isr"], was["isr"])
    ac = std[std["metric_id"] == "icb_acsc_admissions"].set_index("icb_code")
    ac_old = old[old["metric_id"] == "icb_acsc_admissions"].set_index("icb_code")
    np.testing.assert_allclose(ac[["isr_lower", "isr_upper"]], ac_old[["isr_lower", "isr_upper"]], rtol=1e-12)


def test_residual_variance_worked_by_hand():
    """Two trusts, two strata; national means m = 30/10 = 3 (stratum a) and 20/10 = 2 (stratum b). Trust T: stratum a 4
    stays summing to 16 (squares 80), stratum b 6 stays summing to 10 (squares 30): O = 26, E = 4·3 + 6·2 = 24,
    r = 26/24. V = Σ y² − 2·r·m·Σ y + (r·m)²·n per stratum = (80 − 2·3r·16 + 9r²·4) + (30 − 2·2r·10 + 4r²·6)."""
    los = pd.DataFrame(
        {
            "trust_code": ["T", "T", "U", "U"],
            "admission": "emergency",
            "diagnosis_group": ["a", "b", "a", "b"],
            "age_band": "60-64",
            "spells": [4, 6, 6, 4],
            "bed_days": [16, 10, 14, 10],
            "bed_days_sq": [80, 30, 40, 30],
        }
    )
    r = ind.standardised_ratios(_counts(los=los), pd.DataFrame(), ["rl_los_oe"]).set_index("trust_code")
    k = 26 / 24
    want = (80 - 6 * k * 16 + 9 * k**2 * 4) + (30 - 4 * k * 10 + 4 * k**2 * 6)
    assert r.loc["T", ["observed", "expected", "variance"]].tolist() == pytest.approx([26, 24, want])
    plain = ind.standardised_ratios(_counts(los=los), pd.DataFrame()).set_index("trust_code")
    assert plain["variance"].isna().all()  # a metric not listed: O is a Poisson count
