"""The synthetic record generator draws what its truth file states (leaguetables.inputs.records.generate).

Simulation tests where the truth is known: the generator's own draws, with its own functions and random streams
(``recovery.generator_draws``), against the expectations its truth file is made of. The study behind them, over many
seeds and at national scale, is benchmarks/record_draw_dispersion.py (benchmarks/results/record_level_intervals.md).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

from leaguetables.config import load_record_generator
from leaguetables.inputs.records import generate, geography, recovery

QUARTERS = ["2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4"]


def test_every_stream_of_the_generator_is_its_own():
    """No two of the generator's random streams are one: the effects', the geography's and every chunk's (4 quarters ×
    42 ICBs × 3 datasets) start with different words. numpy pads a seed of up to four words with zeros, so the former
    chunk seeds [seed, quarter, icb, dataset] made the first quarter's first ICB draw from the effects' stream
    [seed, 0] and the second quarter's from the geography's [seed, 1]."""
    seed = load_record_generator().seed
    streams = {"effects": generate.effects_rng(seed), "geography": geography.register_rng(seed)}
    for q, icb, dataset in itertools.product(range(4), range(42), generate.CHUNK_DATASETS):
        streams[f"chunk {q} {icb} {dataset}"] = generate.chunk_rng(seed, q, icb, dataset)
    first = {name: tuple(rng.integers(0, 2**63, 2)) for name, rng in streams.items()}
    assert len(set(first.values())) == len(first)


@pytest.mark.realdata
def test_draws_are_poisson_and_bernoulli_as_the_truth_states():
    """The configured seed, 30% of the ONS population, 4 quarters: 168 ICB-quarters (first emergency admissions and
    ACSC admissions: Poisson; emergency admissions with their readmissions: compound Poisson, variance Σ μ(1 + 3r))
    and 536 trust-quarters (readmissions given the index spells: Bernoulli; outpatient follow-ups given the first
    attendances: Poisson). For each, z = (O − E)/√V has a mean within 3.29 SE of 0 and a variance within the 99.9%
    range of the variance of as many N(0, 1) draws (χ²(n − 1)/(n − 1): 0.68–1.40 for 168, 0.81–1.21 for 536). An
    ICB-level random component of 0.5% that the truth leaves out would give var z ≈ 1 + 19,000 × 0.005² ≈ 1.5 here."""
    if not geography.available():
        pytest.skip(f"real geography absent: {geography.DEFAULT_REAL}")
    cfg = load_record_generator()
    geo = geography.load(geography.DEFAULT_REAL, seed=cfg.seed, demo_seed=cfg.demo_seed, acute_trusts=cfg.acute_trusts)
    draws = recovery.generator_draws(geo, [cfg.seed], QUARTERS, 0.3)
    table = recovery.dispersion(draws, level=0.999).set_index("outcome")
    assert set(table.index) == {
        "icb_first_emergency",
        "icb_acsc",
        "icb_emergency_with_readmissions",
        "trust_readmissions",
        "trust_readmissions_poisson_scale",
        "trust_followups",
    }
    assert table.loc["icb_first_emergency", "units"] == 168 and table.loc["trust_followups", "units"] == 536
    exact = table.drop(index="trust_readmissions_poisson_scale")  # the Poisson scale of a Bernoulli count: var z < 1
    z_mean = stats.norm.ppf(0.9995)
    assert (exact["mean_z"].abs() < z_mean / np.sqrt(exact["units"])).all(), exact
    assert ((exact["var_low"] < exact["var_z"]) & (exact["var_z"] < exact["var_high"])).all(), exact


@pytest.mark.realdata
def test_follow_up_counts_from_the_draws_are_op_tables_follow_up_rows():
    """``recovery`` counts each trust's follow-ups from ``generate.op_draws`` (each first attendance's count, at its
    trust) rather than from the rows ``op_table`` makes of the same draws: the two agree, trust by trust, on one
    ICB-quarter's chunk stream, as do the truth's Σ μ each path adds (both ``op_table`` and the count start with
    ``op_draws``)."""
    if not geography.available():
        pytest.skip(f"real geography absent: {geography.DEFAULT_REAL}")
    cfg = load_record_generator()
    geo = geography.load(geography.DEFAULT_REAL, seed=cfg.seed, demo_seed=cfg.demo_seed, acute_trusts=cfg.acute_trusts)
    eff = generate.draw_effects(cfg.seed, geo.trust_codes, len(geo.icb_codes))
    per, icb, fraction = generate.period(QUARTERS[1], 1), 3, 0.05
    truth = generate.Truth()
    chunk = generate.Chunk(geo, generate.cells_of(geo, icb), eff, per, fraction * per.years, truth)
    table = generate.op_table(generate.chunk_rng(cfg.seed, per.index, icb, "op"), chunk, 0)
    follow = table.filter(pc.is_in(table["FIRSTATT"], pa.array(["2", "4"])))["PROCODE3"].to_pylist()
    rows = pd.Series(follow).value_counts().reindex(geo.trust_procode, fill_value=0).to_numpy(float)
    counted, mu = recovery._followup_chunk_draws(geo, eff, per, icb, cfg.seed, fraction)
    assert rows.sum() > 1000 and (rows > 0).sum() > 3
    np.testing.assert_array_equal(counted, rows)
    t = truth.frame()
    np.testing.assert_allclose(mu, np.bincount(t["org"], weights=t["mu"], minlength=len(geo.trust_codes)), rtol=1e-12)
