"""Tests of leaguetables.statistics.rates: known answers, library identities, edge cases and validation.

Known-answer sources (each test's docstring names its own):

- PHEindicatormethods (github.com/ukhsa-collaboration/PHEindicatormethods):
  ``tests/testthat/testdata_funnel_ratio_outputs.csv`` at commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac
  (exact Poisson limits found by PHE's bisection) and ``R/isr_sheet.csv`` at commit
  39a8c9fb74bc43b241336a7a4126e51abb935dc4 (a worked indirect-standardisation sheet).
  PHE's Wilson/Byar/DSR/ISR fixtures (``testdata_*.xlsx``) are binary spreadsheets that could not be read as text,
  so those statistics are checked through library identities, hand-worked values and exact identities instead.
- statsmodels: ``proportion_confint(method="wilson")`` and ``confint_poisson(method="exact-c")``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from leaguetables.statistics import rates

COLUMNS = ["value", "lower", "upper", "confidence", "statistic", "method"]


# ---------------------------------------------------------------------------
# Wilson (§1.1)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.998])
def test_wilson_equals_statsmodels_proportion_confint_wilson(confidence):
    """Wilson limits equal statsmodels ``proportion_confint(method="wilson")`` to 1e-13 (§1.1, §8)."""
    x = np.array([0, 1, 3, 65, 1045, 0.445, 99, 100, 12.5])
    n = np.array([10, 1, 7, 100, 5000, 1, 100, 100, 40])
    lower, upper = rates.wilson_limits(x, n, confidence)
    ref_lower, ref_upper = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    np.testing.assert_allclose(lower, ref_lower, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(upper, ref_upper, rtol=1e-13, atol=1e-15)


def test_wilson_end_points_are_exact():
    """x = 0 gives a lower limit of exactly 0, x = n an upper limit of exactly 1, c = 1 gives (0, 1) (§1.1)."""
    lower, upper = rates.wilson_limits([0, 5, 5], [5, 5, 9], 0.95)
    assert lower[0] == 0.0 and upper[1] == 1.0
    lower, upper = rates.wilson_limits([0, 3, 9], [9, 9, 9], confidence=1)
    assert list(lower) == [0.0, 0.0, 0.0] and list(upper) == [1.0, 1.0, 1.0]


def test_wilson_scalar_and_series_shapes():
    """Scalars give floats; a Series keeps its index (one row per input element)."""
    lo, hi = rates.wilson_limits(65, 100)
    assert isinstance(lo, float) and isinstance(hi, float)
    idx = pd.Index(["RA1", "RB2"], name="trust_code")
    lo, hi = rates.wilson_limits(pd.Series([1, 2], index=idx), pd.Series([10, 10], index=idx))
    assert lo.index.equals(idx) and hi.index.equals(idx)


def test_proportion_frame_and_labels():
    """proportion(): value × multiplier, Wilson limits × multiplier, per-row method, statistic text."""
    idx = pd.Index(["A", "B", "C"])
    out = rates.proportion(pd.Series([0, 30, 40], index=idx), pd.Series([40, 40, 40], index=idx))
    assert list(out.columns) == COLUMNS and out.index.equals(idx)
    assert out["value"].tolist() == [0.0, 75.0, 100.0]
    assert out.loc["A", "lower"] == 0.0 and out.loc["C", "upper"] == 100.0
    ref_lo, ref_hi = proportion_confint(30, 40, alpha=0.05, method="wilson")
    assert out.loc["B", "lower"] == pytest.approx(100 * ref_lo, rel=1e-13)
    assert out.loc["B", "upper"] == pytest.approx(100 * ref_hi, rel=1e-13)
    assert set(out["method"]) == {"Wilson"} and set(out["statistic"]) == {"percentage"}
    assert set(out["confidence"]) == {0.95}
    assert rates.proportion([1], [4], multiplier=1)["statistic"].iloc[0] == "proportion of 1"
    assert rates.proportion([1], [4], multiplier=1000)["statistic"].iloc[0] == "proportion per 1,000"


# ---------------------------------------------------------------------------
# exact Poisson and Byar (§1.2)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.998])
def test_exact_equals_statsmodels_confint_poisson_exact_c(confidence):
    """Exact Poisson limits equal statsmodels ``confint_poisson(method="exact-c")`` (§1.2, §8)."""
    x = np.array([0, 1, 2, 5, 9, 10, 65, 1045, 2.5])
    lower, upper = rates.exact_poisson_limits(x, confidence)
    ref_lower, ref_upper = confint_poisson(x, np.ones_like(x), method="exact-c", alpha=1 - confidence)
    np.testing.assert_allclose(lower, np.nan_to_num(ref_lower), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(upper, ref_upper, rtol=1e-12)


def test_exact_poisson_limits_match_PHEindicatormethods_funnel_ratio_outputs():
    """PHEindicatormethods testdata_funnel_ratio_outputs.csv (commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac).

    PHE's ratio funnel finds, for each observed count O, the expected counts at the limits by bisection: the
    ``lower_*_exp_events`` column is the exact upper Poisson limit of O and ``upper_*_exp_events`` the exact lower
    limit (2s = 95%, 3s = 99.8%).  Bisection to 1e-7 on E/(1+O+E) differs from the closed form by up to ~5e-5
    relative, hence rel 1e-4 (§2.2, §9.9).
    """
    # Observed_events, lower_2s_exp_events, upper_2s_exp_events, lower_3s_exp_events, upper_3s_exp_events
    rows = np.array(
        [
            [1, 5.571644585, 0.025317898, 9.233410143, 0.001000547],
            [2, 7.224687515, 0.242209467, 11.22886836, 0.04540199],
            [9, 17.08479966, 4.11537405, 22.65737951, 2.452425215],
            [10, 18.39035799, 4.795387629, 24.13397235, 2.960519925],
            [33, 46.34427966, 22.71567629, 54.89565059, 18.04631223],
            [100, 121.6268111, 81.36400699, 134.9243187, 71.92139974],
            [716, 770.4222128, 664.5083011, 802.60414, 636.1521174],
        ]
    )
    o = rows[:, 0]
    lo95, up95 = rates.exact_poisson_limits(o, 0.95)
    lo998, up998 = rates.exact_poisson_limits(o, 0.998)
    np.testing.assert_allclose(up95, rows[:, 1], rtol=1e-4)
    np.testing.assert_allclose(lo95, rows[:, 2], rtol=1e-4)
    np.testing.assert_allclose(up998, rows[:, 3], rtol=1e-4)
    np.testing.assert_allclose(lo998, rows[:, 4], rtol=1e-4)


def test_byar_hand_worked_value_at_100():
    """Byar at x = 100, 95%: hand-worked in 40-digit decimal arithmetic from the formula of PHEindicatormethods
    R/Byars.R (commit 056ff0d11ba3885f3518f5a6eba58c6ae65c215a), §1.2:

    lower = 100·(1 − 1/900 − z/30)³ = 81.362105490527864,
    upper = 101·(1 − 1/909 + z/(3·√101))³ = 121.62793757920648, with z = 1.959963984540054.
    """
    lower, upper = rates.byar_limits(100, 0.95)
    assert lower == pytest.approx(81.362105490527864, rel=1e-13)
    assert upper == pytest.approx(121.62793757920648, rel=1e-13)


def test_scaled_poisson_limits_hand_worked():
    """An overdispersed count x = 400 with variance V = 1600: φ = V/x = 4, effective count x/φ = 100, limits
    φ·Byar(100) = 4 × the hand-worked Byar values at 100 above (81.362105490527864, 121.62793757920648). Below 10
    effective events the exact limits: x = 20, V = 80 → 4 × exact(5) = 4 × (χ²₀.₀₂₅(10)/2, χ²₀.₉₇₅(12)/2) =
    4 × (3.246973/2, 23.336664/2) from the chi-square table. V = x (or x = 0) is the Poisson interval itself."""
    lower, upper, method = rates.scaled_poisson_limits(400, 1600)
    assert (lower, upper) == pytest.approx((4 * 81.362105490527864, 4 * 121.62793757920648), rel=1e-13)
    assert method == "Byars, scaled"
    lower, upper, method = rates.scaled_poisson_limits(20, 80)
    assert (lower, upper) == pytest.approx((2 * 3.246973, 2 * 23.336664), rel=1e-6)
    assert method == "Exact, scaled"
    x = np.array([0.0, 3.0, 10.0, 250.0])
    lower, upper, method = rates.scaled_poisson_limits(x, x)
    pl, pu, pm = rates.poisson_limits(x)
    np.testing.assert_array_equal(lower, pl)
    np.testing.assert_array_equal(upper, pu)
    assert list(method) == list(pm)
    with pytest.raises(ValueError, match="variance"):
        rates.scaled_poisson_limits(10, -1)


def test_ratio_and_crude_rate_take_the_numerator_variance():
    """O/E and a crude rate with a reported variance of the count: the scaled limits over the denominator; a missing
    variance (NaN) leaves that row's Poisson limits."""
    out = rates.ratio([400, 30], [320, 25], variance=[1600, np.nan])
    assert out.loc[0, ["lower", "upper"]].tolist() == pytest.approx(
        [4 * 81.362105490527864 / 320, 4 * 121.62793757920648 / 320], rel=1e-12
    )
    assert out["method"].tolist() == ["Byars, scaled", "Byars"]
    assert out.loc[1, ["lower", "upper"]].tolist() == rates.ratio(30, 25)[["lower", "upper"]].iloc[0].tolist()
    rate = rates.crude_rate(400, 200_000, variance=1600)
    assert rate.loc[0, "upper"] == pytest.approx(4 * 121.62793757920648 / 200_000 * 100_000, rel=1e-12)


def test_byar_close_to_exact_from_ten_events():
    """From 10 events Byar's approximation is within 1.5% of the exact limits (why it is used there, §1.2)."""
    x = np.arange(10, 2000, 7.0)
    for c in (0.95, 0.998):
        bl, bu = rates.byar_limits(x, c)
        el, eu = rates.exact_poisson_limits(x, c)
        np.testing.assert_allclose(bl, el, rtol=0.015)
        np.testing.assert_allclose(bu, eu, rtol=0.015)


def test_poisson_limits_switch_to_exact_below_ten():
    """O < 10 uses Exact, O >= 10 Byars, with the label per row (§1.2, §9.3)."""
    x = np.array([0, 1, 9, 9.5, 10, 11, 500])
    lower, upper, method = rates.poisson_limits(x, 0.95)
    assert list(method) == ["Exact"] * 4 + ["Byars"] * 3
    el, eu = rates.exact_poisson_limits(x[:4], 0.95)
    bl, bu = rates.byar_limits(x[4:], 0.95)
    np.testing.assert_array_equal(lower, np.r_[el, bl])
    np.testing.assert_array_equal(upper, np.r_[eu, bu])
    assert lower[0] == 0.0


def test_crude_rate_values_and_switch():
    """crude_rate(): x/n × 100,000 with L(x)/n × 100,000; x > n allowed; method per row (§1.2)."""
    out = rates.crude_rate([0, 9, 10, 250], [1000, 1000, 1000, 100])
    assert out["value"].tolist() == pytest.approx([0.0, 900.0, 1000.0, 250000.0])
    assert out["method"].tolist() == ["Exact", "Exact", "Byars", "Byars"]
    assert out["statistic"].iloc[0] == "rate per 100,000"
    el, eu = rates.exact_poisson_limits(9, 0.95)
    assert out.loc[1, "lower"] == pytest.approx(el / 1000 * 1e5, rel=1e-14)
    assert out.loc[1, "upper"] == pytest.approx(eu / 1000 * 1e5, rel=1e-14)


# ---------------------------------------------------------------------------
# means (§1.2)
# ---------------------------------------------------------------------------


def test_mean_score_t_interval_equals_scipy():
    """mean ∓ t_{0.975, n−1}·sd/√n equals scipy.stats.t.interval (§1.2)."""
    out = rates.mean_score([7.2, 6.1], sd=[1.5, 2.0], n=[120, 15], confidence=0.95)
    for i, (m, s, n) in enumerate([(7.2, 1.5, 120), (6.1, 2.0, 15)]):
        lo, hi = sps.t.interval(0.95, n - 1, loc=m, scale=s / np.sqrt(n))
        assert out.loc[i, "lower"] == pytest.approx(lo, rel=1e-13)
        assert out.loc[i, "upper"] == pytest.approx(hi, rel=1e-13)
    assert set(out["method"]) == {"Student's t-distribution"}


def test_mean_score_without_respondent_data_has_no_interval():
    """Published mean scores without sd/n: limits missing, method says why (brief, §1.2)."""
    out = rates.mean_score(pd.Series([7.1, np.nan], index=["A", "B"]))
    assert out.loc["A", "value"] == 7.1 and np.isnan(out.loc["A", "lower"]) and np.isnan(out.loc["A", "upper"])
    assert out.loc["A", "method"] == "no interval: mean score without respondent data"
    assert pd.isna(out.loc["B", "method"]) and np.isnan(out.loc["B", "value"])
    with pytest.raises(ValueError, match="both sd and n"):
        rates.mean_score([1.0], sd=[1.0])


# ---------------------------------------------------------------------------
# indirect standardisation (§1.4)
# ---------------------------------------------------------------------------

# PHEindicatormethods R/isr_sheet.csv (commit 39a8c9fb74bc43b241336a7a4126e51abb935dc4):
# obs, pop, refcount, refpop, Ei  (li = refcount/refpop is left out; Ei = li × pop)
ISR_SHEET = [
    (127, 636, 10303, 50520, 129.7052257),
    (25, 558, 2824, 57173, 27.56182114),
    (18, 609, 3225, 60213, 32.61795626),
    (21, 543, 3615, 54659, 35.91256701),
    (12, 384, 3641, 44345, 31.52878566),
    (27, 594, 3490, 50128, 41.35533035),
    (48, 669, 3789, 62163, 40.77732735),
    (27, 843, 3213, 67423, 40.17262655),
    (29, 660, 3031, 62899, 31.80432121),
    (32, 576, 2771, 55463, 28.7776716),
    (32, 606, 3089, 60479, 30.95180145),
    (34, 522, 3490, 49974, 36.45455637),
    (45, 426, 3595, 44140, 34.69574082),
    (65, 273, 4745, 40888, 31.68130014),
    (38, 300, 5514, 37239, 44.42117135),
    (68, 288, 7125, 30819, 66.58230312),
    (74, 153, 5694, 18136, 48.03606087),
    (82, 123, 6210, 15325, 49.84208809),
    (91, 207, 5757, 13918, 85.62286248),
]


def _isr_frames():
    bands = list(rates.ESP2013.index)
    sheet = pd.DataFrame(ISR_SHEET, columns=["obs", "pop", "refcount", "refpop", "Ei"])
    sheet["age_band"] = bands
    local = sheet[["age_band", "obs", "pop"]].assign(trust="T1")
    reference = sheet[["age_band", "refcount", "refpop"]]
    return sheet, local, reference


def test_expected_counts_match_PHEindicatormethods_isr_sheet():
    """PHEindicatormethods R/isr_sheet.csv (commit 39a8c9fb74bc43b241336a7a4126e51abb935dc4): E_i = li × pop.

    Each stratum's expected count and their total agree with PHE's sheet to 1e-8 relative (§1.4).
    """
    sheet, local, reference = _isr_frames()
    per_stratum = rates.expected_from_reference(
        local.assign(stratum=local["age_band"]),
        reference,
        on="age_band",
        n="pop",
        ref_x="refcount",
        ref_n="refpop",
        by="stratum",
    )
    got = per_stratum.reindex(sheet["age_band"]).to_numpy()
    np.testing.assert_allclose(got, sheet["Ei"].to_numpy(), rtol=1e-8)
    total = rates.expected_from_reference(local, reference, on="age_band", n="pop", ref_x="refcount", ref_n="refpop")
    assert total == pytest.approx(sheet["Ei"].sum(), rel=1e-8)


def test_isr_from_isr_sheet_uses_byar_and_key_join():
    """ISR of the PHE sheet: ΣO/ΣE × 100 with Byar limits (O ≥ 10), independent of row order (§1.4, §9.13)."""
    sheet, local, reference = _isr_frames()
    out = rates.isr(
        local, reference, on="age_band", by="trust", x="obs", n="pop", ref_x="refcount", ref_n="refpop", refvalue=100
    )
    o, e = sheet["obs"].sum(), sheet["Ei"].sum()
    bl, bu = rates.byar_limits(o, 0.95)
    assert out.loc["T1", "value"] == pytest.approx(o / e * 100, rel=1e-8)
    assert out.loc["T1", "lower"] == pytest.approx(bl / e * 100, rel=1e-8)
    assert out.loc["T1", "upper"] == pytest.approx(bu / e * 100, rel=1e-8)
    assert out.loc["T1", "method"] == "Byars"
    assert out.loc["T1", "statistic"] == "indirectly standardised ratio x 100"
    shuffled = rates.isr(
        local.sample(frac=1, random_state=1),
        reference.iloc[::-1],
        on="age_band",
        by="trust",
        x="obs",
        n="pop",
        ref_x="refcount",
        ref_n="refpop",
        refvalue=100,
    )
    pd.testing.assert_frame_equal(out, shuffled)


def test_israte_uses_crude_reference_rate():
    """ISRate = O/E × (Σxref/Σnref × 100,000) and its limits likewise (§1.4)."""
    sheet, local, reference = _isr_frames()
    out = rates.israte(local, reference, on="age_band", x="obs", n="pop", ref_x="refcount", ref_n="refpop")
    ref_rate = sheet["refcount"].sum() / sheet["refpop"].sum() * 1e5
    o, e = sheet["obs"].sum(), sheet["Ei"].sum()
    assert out["value"].iloc[0] == pytest.approx(o / e * ref_rate, rel=1e-8)
    assert out["statistic"].iloc[0] == "indirectly standardised rate per 100,000"


def test_isr_with_trust_total_and_small_counts():
    """O may be a trust total; O < 10 switches to exact limits (§1.4, §9.3)."""
    _, local, reference = _isr_frames()
    out = rates.isr(
        local,
        reference,
        on="age_band",
        by="trust",
        observed=pd.Series({"T1": 7}),
        n="pop",
        ref_x="refcount",
        ref_n="refpop",
    )
    assert out.loc["T1", "method"] == "Exact"
    el, eu = rates.exact_poisson_limits(7, 0.95)
    e = sum(r[4] for r in ISR_SHEET)
    assert out.loc["T1", "upper"] == pytest.approx(eu / e, rel=1e-8)


def test_expected_from_reference_rejects_unmatched_and_duplicated_strata():
    """Strata are joined by key: unknown or duplicated strata raise instead of being matched by position."""
    _, local, reference = _isr_frames()
    with pytest.raises(ValueError, match="not in the reference"):
        rates.expected_from_reference(
            local, reference.iloc[1:], on="age_band", n="pop", ref_x="refcount", ref_n="refpop"
        )
    with pytest.raises(ValueError, match="duplicated"):
        rates.expected_from_reference(
            local, pd.concat([reference, reference.iloc[:1]]), on="age_band", n="pop", ref_x="refcount", ref_n="refpop"
        )


def test_expected_missing_reference_events_contribute_zero():
    """Missing xref_i or n_i contributes 0 to E; n_i = 0 is allowed (§1.4)."""
    local = pd.DataFrame({"band": ["a", "b", "c"], "n": [100.0, np.nan, 0.0]})
    ref = pd.DataFrame({"band": ["a", "b", "c"], "x": [10.0, 5.0, np.nan], "n": [1000.0, 1000.0, 1000.0]})
    assert rates.expected_from_reference(local, ref, on="band") == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# DSR (§1.3)
# ---------------------------------------------------------------------------


def _dsr_data(k: float = 3.0, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age_band": rates.ESP2013.index,
            "x": rng.integers(0, 40, len(rates.ESP2013)),
            "n": rates.ESP2013.to_numpy() * k,
        }
    )


def test_dsr_with_standard_shaped_population_equals_crude_rate_with_byar():
    """Exact identity: when n_i ∝ w_i the DSR and its Dobson limits equal the crude rate with Byar limits (§1.3).

    With n_i = k·w_i, DSR = O/N and √(var/O) = 1/N, so lower = Byar(O)/N.
    """
    data = _dsr_data()
    out = rates.dsr(data)
    o, n = data["x"].sum(), data["n"].sum()
    bl, bu = rates.byar_limits(o, 0.95)
    assert out["value"].iloc[0] == pytest.approx(o / n * 1e5, rel=1e-12)
    assert out["lower"].iloc[0] == pytest.approx(bl / n * 1e5, rel=1e-12)
    assert out["upper"].iloc[0] == pytest.approx(bu / n * 1e5, rel=1e-12)
    assert out["method"].iloc[0] == "Dobson" and out["status"].iloc[0] == "ok"
    assert out["statistic"].iloc[0] == "dsr per 100,000"
    assert out["total_count"].iloc[0] == o


def test_dsr_hand_worked_two_strata():
    """Hand-worked Dobson DSR for a two-band standard (§1.3).

    w = (1, 3), x = (4, 36), n = (100, 900): DSR = (1·0.04 + 3·0.04)/4 = 0.04,
    var = (4·(1/100)² + 36·(3/900)²)/16 = (0.0004 + 0.0004)/16 = 5e-5, O = 40,
    lower = 0.04 + √(5e-5/40)·(Byar_lower(40) − 40).
    """
    standard = pd.Series([1.0, 3.0], index=pd.Index(["young", "old"], name="band"))
    data = pd.DataFrame({"band": ["old", "young"], "x": [36, 4], "n": [900, 100]})
    out = rates.dsr(data, standard=standard, multiplier=1)
    bl, bu = rates.byar_limits(40, 0.95)
    assert out["value"].iloc[0] == pytest.approx(0.04, rel=1e-14)
    assert out["lower"].iloc[0] == pytest.approx(0.04 + np.sqrt(5e-5 / 40) * (bl - 40), rel=1e-12)
    assert out["upper"].iloc[0] == pytest.approx(0.04 + np.sqrt(5e-5 / 40) * (bu - 40), rel=1e-12)


def test_dsr_suppressed_below_ten_events_with_status():
    """O < 10: value and limits missing, status flags the suppression (§1.3)."""
    data = pd.concat([_dsr_data().assign(trust="A"), _dsr_data().assign(trust="B", x=[0] * 18 + [9])])
    out = rates.dsr(data, by="trust")
    assert out.loc["A", "status"] == "ok" and np.isfinite(out.loc["A", "value"])
    assert out.loc["B", "status"] == "suppressed: total count < 10"
    assert np.isnan(out.loc["B", ["value", "lower", "upper"]].astype(float)).all()
    assert out.loc["B", "total_count"] == 9


def test_dsr_missing_counts_are_zero_and_rows_join_by_key():
    """Missing event counts count as 0 (PHE DSR vignette); row order does not matter (join by key, §1.3)."""
    data = _dsr_data()
    with_missing = data.assign(x=data["x"].where(data["x"] > 5))
    zeroed = data.assign(x=data["x"].where(data["x"] > 5, 0))
    pd.testing.assert_frame_equal(rates.dsr(with_missing), rates.dsr(zeroed))
    pd.testing.assert_frame_equal(rates.dsr(data), rates.dsr(data.iloc[::-1].reset_index(drop=True)))


def test_dsr_non_independent_events_same_value_wider_interval():
    """Non-independent events: the DSR is unchanged and the interval wider (PHE DSR vignette), method labelled.

    Persons with f events: x_i = Σ f·p_{f,i}, var = Σ_f f² Σ_i p_{f,i}(w_i/n_i)²/(Σw)² (§1.3).
    """
    base = _dsr_data(seed=3)
    persons2 = base["x"] // 4
    persons1 = base["x"] - 2 * persons2
    freq = pd.concat([base.assign(x=persons1, f=1), base.assign(x=persons2, f=2)])
    independent = rates.dsr(base)
    adjusted = rates.dsr(freq, independent_events=False, event_frequency="f")
    assert adjusted["value"].iloc[0] == pytest.approx(independent["value"].iloc[0], rel=1e-13)
    assert adjusted["lower"].iloc[0] < independent["lower"].iloc[0]
    assert adjusted["upper"].iloc[0] > independent["upper"].iloc[0]
    assert adjusted["method"].iloc[0] == "Dobson, with confidence adjusted for non-independent events"
    w = rates.ESP2013.to_numpy()
    n = base["n"].to_numpy()
    var = (persons1 * (w / n) ** 2).sum() + 4 * (persons2 * (w / n) ** 2).sum()
    var /= w.sum() ** 2
    o = base["x"].sum()
    bl, _ = rates.byar_limits(o, 0.95)
    expected_lower = (adjusted["value"].iloc[0] / 1e5 + np.sqrt(var / o) * (bl - o)) * 1e5
    assert adjusted["lower"].iloc[0] == pytest.approx(expected_lower, rel=1e-12)


def test_dsr_rejects_incomplete_or_unknown_strata():
    """A group lacking a standard band, or a band not in the standard, raises (keys, not positions)."""
    data = _dsr_data()
    with pytest.raises(ValueError, match="lacks some of the 19 standard strata"):
        rates.dsr(data.iloc[1:])
    bad = data.copy()
    bad.loc[0, "age_band"] = "0-5"
    with pytest.raises(ValueError, match="not in the standard population"):
        rates.dsr(bad)
    with pytest.raises(ValueError, match="duplicated strata"):
        rates.dsr(pd.concat([data, data.iloc[:1]]))


def test_esp2013_constant():
    """ESP2013: 19 bands 0-4 … 90+, total 100,000, keyed by age band (§1.3)."""
    assert len(rates.ESP2013) == 19 and rates.ESP2013.sum() == 100_000
    assert rates.ESP2013.index.name == "age_band"
    assert rates.ESP2013["0-4"] == 5000 and rates.ESP2013["90+"] == 1000


# ---------------------------------------------------------------------------
# missing values and validation (§0)
# ---------------------------------------------------------------------------


def test_missing_input_gives_missing_output_not_zero():
    """Missing numerators or denominators give NaN value, limits and method (§0)."""
    out = rates.proportion([np.nan, 3, 3], [10, np.nan, 10])
    assert out.loc[:1, ["value", "lower", "upper"]].isna().all().all()
    assert out["method"].isna().tolist() == [True, True, False]
    rate = rates.crude_rate(pd.Series([np.nan, 4.0]), pd.Series([100.0, 100.0]))
    assert np.isnan(rate["value"].iloc[0]) and pd.isna(rate["method"].iloc[0])
    ratio = rates.ratio([None, 12], [10, None])
    assert ratio[["value", "lower", "upper"]].isna().all().all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rates.proportion([5, -1], [10, 10]), r"x must be >= 0; got -1.0 at position 1"),
        (lambda: rates.proportion([5, 1], [10, 0]), r"n must be > 0; got 0.0 at position 1"),
        (
            lambda: rates.proportion([5, 11], [10, 10]),
            r"x must be <= n for a proportion; got x=11.0 > n=10.0 at position 1",
        ),
        (
            lambda: rates.wilson_limits(
                pd.Series([1, 12], index=["RA1", "RB2"]), pd.Series([10, 10], index=["RA1", "RB2"])
            ),
            r"at position 1 \(index 'RB2'\)",
        ),
        (
            lambda: rates.proportion([1], [10], confidence=95),
            r"confidence must be a fraction in \(0, 1\].*got 95.*write 0.95",
        ),
        (lambda: rates.proportion([1], [10], confidence=0), r"confidence must be a fraction in \(0, 1\]"),
        (lambda: rates.crude_rate([1], [10], confidence=True), r"confidence must be a single number"),
        (lambda: rates.crude_rate([1, 2], [10, 10, 10]), r"incompatible lengths"),
        (lambda: rates.ratio([3], [0]), r"expected must be > 0; got 0.0 at position 0"),
        (lambda: rates.exact_poisson_limits([-2]), r"x must be >= 0"),
        (
            lambda: rates.crude_rate(pd.Series([1], index=["A"]), pd.Series([10], index=["B"])),
            r"different indexes; align them by key first",
        ),
        (lambda: rates.proportion([1], [10], multiplier=0), r"multiplier must be a positive number"),
    ],
)
def test_invalid_input_messages(call, message):
    """Invalid input raises ValueError naming the offending position and value (brief, §0)."""
    with pytest.raises(ValueError, match=message):
        call()
