"""Tests of leaguetables.statistics.funnel: the PHE drawing grid and Spiegelhalter funnels against the reference packages, identities,
a seeded simulation, quirks/compatibility options, banding and validation.

Known-answer sources (each test's docstring names its own):

- PHEindicatormethods, github.com/ukhsa-collaboration/PHEindicatormethods, ``tests/testthat/``: the drawing grid
  of ``testdata_funnel_prop_outputs.csv`` (commit 63894a99103ffc9e0a3e8a15644200a3abb95669) and
  ``testdata_funnel_ratio_outputs.csv`` (commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac).
- FunnelPlotR, github.com/nhs-r-community/FunnelPlotR: ``tests/testthat/test-classes_methods.R`` (φ = 2.948033)
  and the README/vignette medpar example (Pearson χ²/df 6.24; 9 of 54 hospitals flagged), with the medpar data in
  ``tests/fixtures/medpar.csv`` (source in ``tests/fixtures/README.md``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM

from leaguetables.statistics import funnel, rates

FIXTURES = Path(__file__).parent / "fixtures"

# ---------------------------------------------------------------------------
# PHE drawing grid (§2.5)
# ---------------------------------------------------------------------------


def test_phe_funnel_grid_matches_PHEindicatormethods_population_column():
    """The Population column of testdata_funnel_prop_outputs.csv (commit 63894a9…): PHE's 100-point grid (§2.5).

    Inputs range 16,386 to 102,950 (max > 2·min, so the axis starts at 1) and the axis ends at 110,000.
    """
    grid = funnel.phe_funnel_grid([16386, 41980, 102950], statistic="proportion")
    assert len(grid) == 100
    assert grid[:20].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 22, 24, 27]
    assert grid[-5:].tolist() == [72486, 80452, 89294, 99108, 110000]


def test_phe_ratio_grid_matches_PHEindicatormethods_observed_events_column():
    """Observed_events of testdata_funnel_ratio_outputs.csv (commit 8ac28e5…): the ratio grid (offset j − 1, §2.5).

    The inputs' expected counts run from 4.293052052 to 706.7669173.
    """
    grid = funnel.phe_funnel_grid([4.293052052, 706.7669173], statistic="ratio")
    assert grid[:36].tolist() == list(range(1, 34)) + [35, 37, 39]
    assert grid[-5:].tolist() == [596, 624, 653, 684, 716]


# ---------------------------------------------------------------------------
# Spiegelhalter / FunnelPlotR (§3)
# ---------------------------------------------------------------------------


def test_phi_matches_FunnelPlotR_test_classes_methods():
    """FunnelPlotR tests/testthat/test-classes_methods.R: round(phi, 6) == 2.948033 (SHMI method, §3.6).

    With I = 6, truncation keeps all six units.
    """
    result = funnel.spiegelhalter([100, 150, 180, 80, 120, 225], [108, 112, 165, 95, 100, 220])
    assert round(result.phi, 6) == 2.948033
    assert result.n_kept == 6 and bool(result.units["kept"].all())
    assert result.adjusted_used and result.tau2 > 0
    assert result.target == 1.0


@pytest.fixture(scope="module")
def medpar_by_hospital():
    medpar = pd.read_csv(FIXTURES / "medpar.csv")
    medpar["type"] = medpar[["type1", "type2", "type3"]].to_numpy().argmax(axis=1) + 1
    model = GLM.from_formula(
        "los ~ hmo + died + age80 + C(type)", data=medpar, family=families.Poisson(), missing="raise"
    ).fit()
    medpar["expected"] = model.predict(medpar)
    by_hospital = medpar.groupby("provnum")[["los", "expected"]].sum()
    return model, by_hospital


def test_medpar_pearson_dispersion_matches_FunnelPlotR_vignette(medpar_by_hospital):
    """FunnelPlotR vignette on COUNT's medpar: Poisson GLM ``los ~ hmo + died + age80 + type``, Pearson χ²/df 6.24."""
    model, by_hospital = medpar_by_hospital
    assert model.nobs == 1495 and len(by_hospital) == 54
    assert round(model.pearson_chi2 / model.df_resid, 2) == 6.24


def test_medpar_shmi_adjusted_998_limits_flag_9_of_54_as_FunnelPlotR_vignette(medpar_by_hospital):
    """FunnelPlotR vignette: SHMI-method overdispersion-adjusted 99.8% limits flag 9 of the 54 hospitals (§3.6).

    Observed = Σ los and expected = Σ predictions per hospital; E is rounded to 2 dp (SHMI mode).
    """
    _, by_hospital = medpar_by_hospital
    result = funnel.spiegelhalter(by_hospital["los"], by_hospital["expected"], data_type="SR", sr_method="SHMI")
    assert result.adjusted_used
    assert int(result.flags(0.998)["outlier"].sum()) == 9
    assert len(result.units) == 54 and result.units.index.name == "unit"
    # truncation keeps units with 0 < floor(rank·10/55) < 9: 44 of 54
    assert result.n_kept == 44


def test_shmi_truncation_and_tau2_by_hand():
    """SHMI truncation keeps 0 < floor(rank·k/(I+1)) < k − 1; τ² is the DerSimonian–Laird form around 0 (§3.2-3.3)."""
    rng = np.random.default_rng(11)
    e = rng.uniform(20, 400, 30).round(2)
    o = rng.poisson(e * rng.lognormal(0, 0.15, 30))
    result = funnel.spiegelhalter(o, e)
    z = np.sqrt(e) * np.log(o / e)
    ranks = pd.Series(z).rank(method="average").to_numpy()
    sp = np.floor(ranks * 10 / 31)
    kept = (sp > 0) & (sp < 9)
    assert result.units["kept"].tolist() == kept.tolist()
    n = kept.sum()
    phi = np.mean(z[kept] ** 2)
    w = e[kept]
    tau2 = max(0.0, (n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum())) if n * phi >= n - 1 else 0.0
    assert result.phi == pytest.approx(phi, rel=1e-12)
    assert result.tau2 == pytest.approx(tau2, rel=1e-12)
    np.testing.assert_allclose(result.units["z"], z, rtol=1e-12)
    np.testing.assert_allclose(result.units["z_adjusted"], np.log(o / e) / np.sqrt(1 / e + tau2), rtol=1e-12)
    np.testing.assert_allclose(result.units["upper_998_adj"], np.exp(rates.z_value(0.998) * np.sqrt(1 / e + tau2)))


def test_winsorisation_uses_type7_quantiles():
    """CQC/PR/RC winsorise z at the 10% and 90% quantiles by R type 7 (numpy's default) and keep all units (§3.2)."""
    rng = np.random.default_rng(5)
    n = rng.integers(100, 2000, 25)
    x = rng.binomial(n, rng.uniform(0.2, 0.4, 25))
    result = funnel.spiegelhalter(x, n, data_type="PR")
    z = result.units["z"].to_numpy()
    lz, uz = np.quantile(z, [0.1, 0.9])
    np.testing.assert_allclose(result.units["wz"], np.clip(z, lz, uz))
    assert result.n_kept == 25
    assert result.phi == pytest.approx(np.mean(np.clip(z, lz, uz) ** 2), rel=1e-12)
    p0 = x.sum() / n.sum()
    assert result.target == pytest.approx(p0)
    np.testing.assert_allclose(z, (np.arcsin(np.sqrt(x / n)) - np.arcsin(np.sqrt(p0))) * 2 * np.sqrt(n))


def test_adjusted_limits_only_when_phi_above_one():
    """FunnelPlotR uses adjusted limits only when φ > 1, even if τ² > 0 for (n−1)/n ≤ φ ≤ 1 (§3.3)."""
    # units exactly on target except one small deviation: phi just under 1 but n·phi >= n − 1
    e = np.array([100.0, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    z_target = np.array([0.9, -0.9, 1.1, -1.1, 0.95, -0.95, 1.0, -1.0, 0.97, -0.97])
    o = e * np.exp(z_target / np.sqrt(e))
    result = funnel.spiegelhalter(o, e, shmi_round_expected=False, data_type="SR", sr_method="CQC")
    assert (len(e) - 1) / len(e) <= result.phi <= 1.0
    assert not result.adjusted_used
    flags = result.flags(0.998)
    assert flags.equals(result.flags(0.998, adjusted=False))


def test_cqc_adjusted_limits_squared_by_default_and_FunnelPlotR_quirk():
    """CQC adjusted limits: (1 ∓ z√(1/(4E)+τ²))² by default; FunnelPlotR draws them unsquared (§3.4 quirk)."""
    o, e = [100, 150, 180, 80, 120, 225], [108, 112, 165, 95, 100, 220]
    good = funnel.spiegelhalter(o, e, sr_method="CQC")
    quirk = funnel.spiegelhalter(o, e, sr_method="CQC", compat="FunnelPlotR")
    e = np.asarray(e, float)
    half = rates.z_value(0.95) * np.sqrt(1 / (4 * e) + good.tau2)
    np.testing.assert_allclose(good.units["upper_95_adj"], (1 + half) ** 2)
    np.testing.assert_allclose(good.units["lower_95_adj"], np.maximum(1 - half, 0) ** 2)
    np.testing.assert_allclose(quirk.units["upper_95_adj"], 1 + 1.959964 * np.sqrt(1 / (4 * e) + quirk.tau2))
    assert good.phi == pytest.approx(quirk.phi)


def test_rc_limits_use_rc_variance_at_target_by_default_and_FunnelPlotR_quirk():
    """RC limits: the §3.1 variance at O = θ0·D by default, FunnelPlotR's 1/(4D) with compat (§3.4 quirk)."""
    o, d = np.array([30, 45, 80, 12, 60]), np.array([40, 40, 90, 20, 50])
    good = funnel.spiegelhalter(o, d, data_type="RC")
    quirk = funnel.spiegelhalter(o, d, data_type="RC", compat="FunnelPlotR")
    theta0 = o.sum() / d.sum()
    s2 = theta0 * d / (theta0 * d + 0.5) ** 2 + d / (d + 0.5) ** 2
    z95 = rates.z_value(0.95)
    np.testing.assert_allclose(good.units["upper_95"], np.exp(np.log(theta0) + z95 * np.sqrt(s2)))
    np.testing.assert_allclose(quirk.units["upper_95"], np.exp(np.log(theta0) + 1.959964 * np.sqrt(1 / (4 * d))))
    z = (np.log((o + 0.5) / (d + 0.5)) - np.log(theta0)) / np.sqrt(o / (o + 0.5) ** 2 + d / (d + 0.5) ** 2)
    np.testing.assert_allclose(good.units["z"], z)


def test_sr_unadjusted_limits_are_exact_poisson_around_target():
    """SR unadjusted limits χ²_p(2E)/(2E) and χ²_{1−p}(2(E+1))/(2E) (§3.4)."""
    e = np.array([3.5, 20.0, 150.25])
    result = funnel.spiegelhalter([4, 25, 140], e)
    from scipy.stats import chi2

    np.testing.assert_allclose(result.units["lower_998"], chi2.ppf(0.001, 2 * e) / (2 * e))
    np.testing.assert_allclose(result.units["upper_95"], chi2.ppf(0.975, 2 * (e + 1)) / (2 * e))


def test_units_aggregated_by_key_and_sorted():
    """Rows sharing a unit key are summed first (ΣO, ΣE), units sorted by key (§3.5)."""
    o = pd.Series([50, 50, 180, 80], index=["RB2", "RB2", "RA1", "RC3"])
    e = pd.Series([54, 54, 165, 95], index=["RB2", "RB2", "RA1", "RC3"])
    result = funnel.spiegelhalter(o, e)
    assert result.units.index.tolist() == ["RA1", "RB2", "RC3"]
    assert result.units.loc["RB2", ["numerator", "denominator"]].tolist() == [100, 108]


def test_shmi_rounds_expected_to_two_decimals():
    """SHMI mode rounds E to 2 dp before z-scores (§3.5, §9.5); CQC does not."""
    result = funnel.spiegelhalter([10, 20, 30], [10.004, 19.996, 30.123456])
    assert result.units["denominator"].tolist() == [10.0, 20.0, 30.12]
    raw = funnel.spiegelhalter([10, 20, 30], [10.004, 19.996, 30.123456], shmi_round_expected=False)
    assert raw.units["denominator"].tolist() == [10.004, 19.996, 30.123456]


def test_simulation_without_overdispersion_about_nominal_outside_unadjusted_limits():
    """Seeded simulation (200 data sets × 200 units): with no overdispersion about 5% and 0.2% of units fall
    outside the unadjusted 95% and 99.8% limits (accept 4–6% and 0.1–0.35%), for SR (Poisson O, exact limits)
    and PR (binomial x, arcsine limits); φ averages about 1 (§3.3: I·φ ~ χ²_I).
    """
    rng = np.random.default_rng(20250401)
    counts = {"SR": [0, 0], "PR": [0, 0]}
    phis = []
    total = 0
    for _ in range(200):
        e = rng.uniform(50, 2000, 200)
        sr = funnel.spiegelhalter(rng.poisson(e), e, shmi_round_expected=False)
        n = rng.integers(200, 5000, 200)
        pr = funnel.spiegelhalter(rng.binomial(n, 0.3), n, data_type="PR", target=0.3)
        for key, res in (("SR", sr), ("PR", pr)):
            counts[key][0] += int(res.units["outlier_95"].sum())
            counts[key][1] += int(res.units["outlier_998"].sum())
        phis.append(pr.phi)
        total += 200
    for key in counts:
        assert 0.04 <= counts[key][0] / total <= 0.06, (key, counts[key][0] / total)
        assert 0.001 <= counts[key][1] / total <= 0.0035, (key, counts[key][1] / total)
    # winsorisation shrinks φ below 1 without overdispersion; it must not suggest overdispersion
    assert 0.6 < np.mean(phis) < 1.05


def test_limits_grid_columns_and_shape():
    """limits_grid: precision grid by PHE's rule plus the eight limit columns, monotone funnels (§2.5)."""
    result = funnel.spiegelhalter([100, 150, 180, 80, 120, 225], [108, 112, 165, 95, 100, 220])
    grid = funnel.limits_grid(result, n_points=50)
    assert len(grid) == 50 and grid["precision"].iloc[0] == 1
    expected_cols = {"precision", "target"} | {
        f"{s}_{lvl}{a}" for s in ("lower", "upper") for lvl in ("95", "998") for a in ("", "_adj")
    }
    assert set(grid.columns) == expected_cols
    assert (np.diff(grid["upper_998_adj"]) < 0).all() and (np.diff(grid["lower_998_adj"]) > 0).all()
    assert (grid["upper_998_adj"] > grid["upper_95_adj"]).all()


# ---------------------------------------------------------------------------
# banding
# ---------------------------------------------------------------------------


def test_band_and_outcome_follow_direction():
    """High/low flags give neutral bands; polarity maps them to better/worse (§2.4, §4, §9.15)."""
    idx = pd.Index(["A", "B", "C", "D"])
    high = pd.Series([True, False, False, None], index=idx, dtype="boolean")
    low = pd.Series([False, True, False, False], index=idx, dtype="boolean")
    up = funnel.band(high, low, "higher_better")
    down = funnel.band(high, low, "lower_better")
    assert up.index.equals(idx)
    assert up["band"].tolist()[:3] == ["higher than expected", "lower than expected", "as expected"]
    assert up["outcome"].tolist()[:3] == ["better than expected", "worse than expected", "as expected"]
    assert down["outcome"].tolist()[:3] == ["worse than expected", "better than expected", "as expected"]
    assert pd.isna(up.loc["D", "band"]) and pd.isna(up.loc["D", "outcome"])


def test_band_from_funnel_result_flags():
    """band() composes with FunnelResult.flags (as-used limits)."""
    o = [100, 112, 160, 96, 104, 199, 150, 251, 300, 98, 400]
    e = [108, 112, 165, 95, 100, 200, 150, 250, 310, 100, 220]
    result = funnel.spiegelhalter(o, e)
    flags = result.flags(0.95)
    out = funnel.band(flags["high"], flags["low"], "lower_better")
    assert out.loc[10, "band"] == "higher than expected" and out.loc[10, "outcome"] == "worse than expected"
    assert (out.loc[:9, "band"] == "as expected").all()


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: funnel.spiegelhalter([1, 2], [1, 2], data_type="XX"), r"data_type must be"),
        (lambda: funnel.spiegelhalter([1, 2], [1, 2], sr_method="NHS"), r"sr_method must be"),
        (lambda: funnel.spiegelhalter([1, 2], [1, 2], trim_by=0.6), r"trim_by must be"),
        (lambda: funnel.spiegelhalter([1, 2], [1, 2], compat="PHE"), r"compat must be None or one of"),
        (lambda: funnel.spiegelhalter([1, -2], [1, 2]), r"numerator must be >= 0; got -2.0 at position 1"),
        (lambda: funnel.spiegelhalter([1, 2], [1, 0]), r"denominator must be > 0; got 0.0 at position 1"),
        (
            lambda: funnel.spiegelhalter(
                pd.Series([5, 12], index=["RA1", "RB2"]), pd.Series([10, 10], index=["RA1", "RB2"]), data_type="PR"
            ),
            r"numerator must be <= denominator.*position 1 \('RB2'\)",
        ),
        (lambda: funnel.expected_flags(10, 95), r"confidence must be a fraction"),
        (lambda: funnel.band([True], [True], "higher_better"), r"both above and below"),
        (lambda: funnel.band([True], [False], "up"), r"direction must be"),
    ],
)
def test_invalid_arguments(call, message):
    """Invalid arguments raise ValueError with a precise message."""
    with pytest.raises(ValueError, match=message):
        call()


def test_levels_and_constants():
    """z constants: exact by default, FunnelPlotR's rounded ones only as compatibility (§9.1)."""
    assert rates.z_value(0.95) == pytest.approx(1.959963984540054, rel=1e-15)
    assert rates.z_value(0.998) == pytest.approx(3.090232306167813, rel=1e-15)
    assert math.isclose(funnel.FUNNELPLOTR_Z[0.998], 3.090232)
