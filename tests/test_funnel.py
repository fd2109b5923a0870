"""Tests of leaguetables.statistics.funnel: PHE and Spiegelhalter funnels against the reference packages, identities,
a seeded simulation, quirks/compatibility options, banding and validation.

Known-answer sources (each test's docstring names its own):

- PHEindicatormethods, github.com/ukhsa-collaboration/PHEindicatormethods, ``tests/testthat/``:
  ``testdata_funnel_prop_outputs.csv`` (commit 63894a99103ffc9e0a3e8a15644200a3abb95669),
  ``testdata_funnel_prop_inputs.csv`` (commit 3352ce5d861197880cae0ccb329a0ce50424bfda),
  ``testdata_funnel_ratio_outputs.csv`` (commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac),
  ``testdata_funnel_ratio_inputs.csv`` (commit b79d64484b69e14cf3c70c2748c34e0ba68c53a2),
  ``testdata_funnel_rate_input_funnels.csv`` (commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac),
  ``testdata_funnel_rate_outputs.csv`` (commit 39d5df1f793223db24173db8971ba3c2f834b8d8),
  ``testdata_funnel_rate_dsr_inputs.csv`` (commit 5adcb8c43562e1a897d509350306a5fed2514480).
- FunnelPlotR, github.com/nhs-r-community/FunnelPlotR: ``tests/testthat/test-classes_methods.R`` (φ = 2.948033)
  and the README/vignette medpar example (Pearson χ²/df 6.24; 9 of 54 hospitals flagged), with the medpar data in
  ``tests/fixtures/medpar.csv`` (source in ``tests/fixtures/README.md``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from leaguetables.statistics import funnel
from leaguetables.statistics import rates

FIXTURES = Path(__file__).parent / "fixtures"

LABEL = {"HI3": "High (0.001)", "HI2": "High (0.025)", "LO3": "Low (0.001)", "LO2": "Low (0.025)",
         "NS": "Not significant", "NA": "Not applicable for events less than 10 for dsrs"}


# ---------------------------------------------------------------------------
# PHE proportions (§2.1)
# ---------------------------------------------------------------------------

# testdata_funnel_prop_outputs.csv: Population, Lower2s0025limit, Upper2s0025limit, Lower3s0001limit,
# Upper3s0001limit; Baseline 80.642448 (percentages, PHE cap at 100)
PROP_OUTPUT_ROWS = np.array([
    [1, 3.204264, 100, 0, 100],
    [2, 25.885383, 100, 0, 100],
    [3, 35.933491, 100, 10.150815, 100],
    [16, 61.282902, 100, 50.118675, 100],
    [18, 62.390093, 98.894803, 51.864359, 100],
    [41, 68.548635, 92.73626, 61.574398, 99.710497],
    [1008, 78.203374, 83.081521, 76.796814, 84.488082],
    [110000, 80.408963, 80.875933, 80.274317, 81.010578],
])
PROP_BASELINE = 0.80642448


def test_phe_proportion_limits_match_PHEindicatormethods_testdata_funnel_prop_outputs():
    """PHEindicatormethods testdata_funnel_prop_outputs.csv (commit 63894a99103ffc9e0a3e8a15644200a3abb95669).

    Inverse-Wilson limits at p0 = Baseline/100, multiplier 100, compat="PHE" (cap at 100); rel 1e-6 (§2.1).
    The file's values carry 8 significant digits, so rows are compared to 1e-6 relative (absolute 1e-6 at 0).
    """
    n = PROP_OUTPUT_ROWS[:, 0]
    lo2, hi2 = funnel.phe_proportion_limits(PROP_BASELINE, n, 0.95, multiplier=100, compat="PHE")
    lo3, hi3 = funnel.phe_proportion_limits(PROP_BASELINE, n, 0.998, multiplier=100, compat="PHE")
    np.testing.assert_allclose(lo2, PROP_OUTPUT_ROWS[:, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hi2, PROP_OUTPUT_ROWS[:, 2], rtol=1e-6)
    np.testing.assert_allclose(lo3, PROP_OUTPUT_ROWS[:, 3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hi3, PROP_OUTPUT_ROWS[:, 4], rtol=1e-6)


def test_phe_funnel_grid_matches_PHEindicatormethods_population_column():
    """The Population column of testdata_funnel_prop_outputs.csv (commit 63894a9…): PHE's 100-point grid (§2.5).

    Inputs range 16,386 to 102,950 (max > 2·min, so the axis starts at 1) and the axis ends at 110,000.
    """
    grid = funnel.phe_funnel_grid([16386, 41980, 102950], statistic="proportion")
    assert len(grid) == 100
    assert grid[:20].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 22, 24, 27]
    assert grid[-5:].tolist() == [72486, 80452, 89294, 99108, 110000]


@pytest.mark.parametrize("p0", [0.02, 0.3, 0.80642448, 0.97])
@pytest.mark.parametrize("confidence", [0.95, 0.998])
def test_inverse_wilson_identity(p0, confidence):
    """Identity (§2.1): WilsonUpper(lower·n, n) = p0 and WilsonLower(upper·n, n) = p0 where the limit is in [0, 1]."""
    n = np.array([5.0, 17, 50, 333, 1000, 25000])
    lower, upper = funnel.phe_proportion_limits(p0, n, confidence)
    ok_lo = (lower > 0) & (lower < 1)
    ok_hi = (upper > 0) & (upper < 1)
    _, wilson_upper = rates.wilson_limits(lower[ok_lo] * n[ok_lo], n[ok_lo], confidence)
    wilson_lower, _ = rates.wilson_limits(upper[ok_hi] * n[ok_hi], n[ok_hi], confidence)
    np.testing.assert_allclose(wilson_upper, p0, rtol=1e-12)
    np.testing.assert_allclose(wilson_lower, p0, rtol=1e-12)


def test_phe_proportion_cap_recommended_versus_PHE_quirk():
    """PHE caps the upper limit at 100 whatever the multiplier (§2.1 quirk); the default caps at 1 × multiplier."""
    _, upper_default = funnel.phe_proportion_limits(0.9, [3, 5000], 0.998, multiplier=1)
    _, upper_phe = funnel.phe_proportion_limits(0.9, [3, 5000], 0.998, multiplier=1, compat="PHE")
    assert upper_default[0] == 1.0 and upper_phe[0] > 1.0
    assert upper_default[1] == upper_phe[1] < 1.0


PROP_INPUT_ROWS = [  # testdata_funnel_prop_inputs.csv: Area, numerator, denominator, significance
    ("New Forest PCT", 35078.488, 41980, "High (0.001)"),
    ("Norwich PCT", 24803.6256, 31824, "Low (0.001)"),
    ("South Gloucestershire PCT", 50050.7443, 61921, "Not significant"),
    ("West Norfolk PCT", 26789.238, 33012, "High (0.025)"),
    ("North Devon PCT", 30277.5312, 37828, "Low (0.025)"),
    ("Hartlepool PCT", 17321.4088, 21587, "Not significant"),
    ("North Tees PCT", 36850.0492, 45449, "High (0.025)"),
    ("Heywood and Middleton PCT", 14493.3552, 17964, "Not significant"),
    ("Castle Point and Rochford PCT", 32352.2484, 40787, "Low (0.001)"),
    ("Fylde PCT", 13551.222, 16386, "High (0.001)"),
    ("Sutton and Merton PCT", 81412.86, 102950, "Low (0.001)"),
]


def test_phe_significance_proportions_match_PHEindicatormethods_testdata_funnel_prop_inputs():
    """PHEindicatormethods testdata_funnel_prop_inputs.csv (commit 3352ce5d861197880cae0ccb329a0ce50424bfda).

    Rows copied with PHE's labels; the pooled average of the whole file is the Baseline of the outputs file
    (80.642448%), passed as the target (§2.4).
    """
    df = pd.DataFrame(PROP_INPUT_ROWS, columns=["area", "x", "n", "significance"]).set_index("area")
    got = funnel.phe_significance(df["x"], df["n"], target=PROP_BASELINE)
    assert got.index.equals(df.index)
    assert got.tolist() == df["significance"].tolist()


# ---------------------------------------------------------------------------
# PHE ratios (§2.2)
# ---------------------------------------------------------------------------

# testdata_funnel_ratio_outputs.csv: O, lower_2s_count, lower_2s_isr, upper_2s_count, upper_2s_isr,
# lower_3s_count, lower_3s_isr, upper_3s_count, upper_3s_isr
RATIO_OUTPUT_ROWS = np.array([
    [1, -0.820519779, 17.94802207, 38.49774946, 3949.774946, -0.891697652, 10.83023482, 998.4532721, 99945.32721],
    [2, -0.723171418, 27.6828582, 7.257315569, 825.7315569, -0.821887662, 17.81123382, 43.05093268, 4405.093268],
    [10, -0.456236795, 54.3763205, 1.085337156, 208.5337156, -0.585646331, 41.43536693, 2.37778507, 337.778507],
    [100, -0.17781286, 82.21871402, 0.229044681, 122.9044681, -0.258843765, 74.11562345, 0.390406755, 139.0406755],
    [716, -0.070639465, 92.93605352, 0.077488421, 107.7488421, -0.107903929, 89.20960712, 0.125516964, 112.5516964],
])


def test_phe_ratio_limits_match_PHEindicatormethods_testdata_funnel_ratio_outputs():
    """PHEindicatormethods testdata_funnel_ratio_outputs.csv (commit 8ac28e54249d9b01d586b19d1d1b39f5af3d49ac).

    Closed-form exact Poisson limits vs PHE's bisection, ratio_type "isr" (× 100) and "count" (O/E − 1), at rel
    1e-4 (§2.2, §9.9).  For "count" the comparison is on O/E, i.e. value + 1.
    """
    o = RATIO_OUTPUT_ROWS[:, 0]
    for conf, cols in ((0.95, (1, 2, 3, 4)), (0.998, (5, 6, 7, 8))):
        isr = funnel.phe_ratio_limits(o, conf, ratio_type="isr")
        count = funnel.phe_ratio_limits(o, conf, ratio_type="count")
        np.testing.assert_allclose(count["lower"] + 1, RATIO_OUTPUT_ROWS[:, cols[0]] + 1, rtol=1e-4)
        np.testing.assert_allclose(isr["lower"], RATIO_OUTPUT_ROWS[:, cols[1]], rtol=1e-4)
        np.testing.assert_allclose(count["upper"] + 1, RATIO_OUTPUT_ROWS[:, cols[2]] + 1, rtol=1e-4)
        np.testing.assert_allclose(isr["upper"], RATIO_OUTPUT_ROWS[:, cols[3]], rtol=1e-4)


def test_phe_ratio_grid_matches_PHEindicatormethods_observed_events_column():
    """Observed_events of testdata_funnel_ratio_outputs.csv (commit 8ac28e5…): the ratio grid (offset j − 1, §2.5).

    The inputs' expected counts run from 4.293052052 to 706.7669173.
    """
    grid = funnel.phe_funnel_grid([4.293052052, 706.7669173], statistic="ratio")
    assert grid[:36].tolist() == list(range(1, 34)) + [35, 37, 39]
    assert grid[-5:].tolist() == [596, 624, 653, 684, 716]


RATIO_INPUT_ROWS = [  # testdata_funnel_ratio_inputs.csv: obs, expected, significance
    (8, 6.239860227, "Not significant"),
    (151, 106.4429719, "High (0.001)"),
    (159, 232.9329036, "Low (0.001)"),
    (150, 119.5695496, "High (0.025)"),
    (0, 240.6273499, "Low (0.001)"),
    (101, 126.2973615, "Low (0.025)"),
    (16, 36.38844667, "Low (0.001)"),
    (6, 4.293052052, "Not significant"),
    (27, 26.73002673, "Not significant"),
    (25, 55.01760563, "Low (0.001)"),
    (35, 56.15273544, "Low (0.025)"),
    (74, 52.09066592, "High (0.025)"),
    (87, 45.27241505, "High (0.001)"),
    (893, 706.7669173, "High (0.001)"),
    (241, 288.6919023, "Low (0.025)"),
]


def test_phe_significance_ratios_match_PHEindicatormethods_testdata_funnel_ratio_inputs():
    """PHEindicatormethods testdata_funnel_ratio_inputs.csv (commit b79d64484b69e14cf3c70c2748c34e0ba68c53a2).

    Labels from each unit's own exact (O < 10, including O = 0) or Byar (O >= 10) interval of O/E against 1
    (§2.4).
    """
    df = pd.DataFrame(RATIO_INPUT_ROWS, columns=["obs", "expected", "significance"])
    got = funnel.phe_significance(df["obs"], df["expected"], statistic="ratio")
    assert got.tolist() == df["significance"].tolist()


# ---------------------------------------------------------------------------
# PHE rates (§2.3)
# ---------------------------------------------------------------------------

# testdata_funnel_rate_input_funnels.csv (commit 8ac28e5…): ev, rate (DSR per 100,000)
RATE_EV = [414, 462, 178, 525, 194, 937, 817, 117, 298, 228, 243, 13, 373, 664, 601, 602, 767, 708, 90, 952, 347,
           648, 988, 354, 839, 25, 518, 425, 648, 765, 210, 931, 589, 592, 554, 870, 372, 843, 142, 543, 489, 620,
           774, 904, 936, 841, 22, 922, 955, 308]
RATE_RATE = [184, 102, 83, 118, 121, 125, 112, 190, 146, 140, 87, 70, 90, 139, 109, 65, 165, 143, 55, 135, 135, 88,
             167, 99, 83, 53, 62, 118, 176, 101, 71, 138, 74, 84, 161, 79, 189, 170, 159, 113, 191, 116, 200, 171,
             128, 134, 185, 100, 123, 155]
# testdata_funnel_rate_outputs.csv (commit 39d5df1…): Events, lower_2s_population_1_year, lower_2s_limit,
# upper_2s_population_1_year, upper_2s_limit, lower_3s_population_1_year, lower_3s_limit,
# upper_3s_population_1_year, upper_3s_limit
RATE_OUTPUT_ROWS = np.array([
    [1, 1598.675694, 20.85059119, 7.264481402, 4588.535848, 2649.348525, 12.58170943, 0.287087625, 116108.569],
    [2, 2072.984403, 32.15975314, 69.49732367, 959.2695538, 3221.906682, 20.69168143, 13.02722321, 5117.48863],
    [10, 5276.757672, 63.17010446, 1375.943768, 242.2579623, 6924.776769, 48.13632908, 849.4639547, 392.4043292],
    [219, 71734.45144, 101.7642131, 54790.4422, 133.2349166, 77097.79244, 94.68494192, 50529.04461, 144.4713641],
    [1360, 411529.9259, 110.158048, 369759.5622, 122.6021934, 424043.2424, 106.9073359, 358342.3275, 126.5084525],
])


def test_phe_rate_limits_match_PHEindicatormethods_testdata_funnel_rate_outputs():
    """PHEindicatormethods testdata_funnel_rate_outputs.csv (commit 39d5df1f793223db24173db8971ba3c2f834b8d8).

    DSR funnel, multiplier 100,000, years_of_data = 3, inputs from testdata_funnel_rate_input_funnels.csv
    (commit 8ac28e5…); baseline 116.1720835; rel 1e-4 (bisection, §2.3, §9.9).
    """
    events = RATE_OUTPUT_ROWS[:, 0]
    for conf, cols in ((0.95, (1, 2, 3, 4)), (0.998, (5, 6, 7, 8))):
        out = funnel.phe_rate_limits(RATE_EV, RATE_RATE, multiplier=1e5, rate_type="dsr", confidence=conf,
                                     years_of_data=3, events=events)
        np.testing.assert_allclose(out["lower_population"], RATE_OUTPUT_ROWS[:, cols[0]], rtol=1e-4)
        np.testing.assert_allclose(out["lower"], RATE_OUTPUT_ROWS[:, cols[1]], rtol=1e-4)
        np.testing.assert_allclose(out["upper_population"], RATE_OUTPUT_ROWS[:, cols[2]], rtol=1e-4)
        np.testing.assert_allclose(out["upper"], RATE_OUTPUT_ROWS[:, cols[3]], rtol=1e-4)
        np.testing.assert_allclose(out["baseline"], 116.1720835, rtol=1e-9)
    grid = funnel.phe_rate_limits(RATE_EV, RATE_RATE, multiplier=1e5, rate_type="dsr", years_of_data=3)
    assert grid.index[:3].tolist() == [1, 2, 3] and grid.index[-2:].tolist() == [1289, 1360]


# testdata_funnel_rate_dsr_inputs.csv (commit 5adcb8c…): count, rate_dsr, pop, rate_crude_per_100000,
# dsr_per_100000_with_0, crude_per_100000_with_0 (all 40 rows: the average depends on every row)
RATE_SIG_ROWS = """2419,907.6174266,264102,915.9339952,HI3,HI3
2337,948.5620216,259711,899.8463677,HI3,HI3
2291,799.9690496,289247,792.056616,HI3,HI3
2242,852.5637927,265029,845.9451607,HI3,HI3
2218,868.5358183,284649,779.2052668,HI3,HI3
2159,769.6242217,293578,735.409329,HI3,HI3
2130,752.3254955,286718,742.8902266,HI2,HI3
2111,710.2689402,307381,686.7698394,NS,NS
2105,815.3530325,274145,767.8418355,HI3,HI3
2083,717.7035916,297424,700.3469794,NS,HI2
2078,755.8016993,272628,762.2107781,HI3,HI3
2062,825.9742848,269656,764.6779601,HI3,HI3
2061,702.2972468,294692,699.3742619,NS,HI2
2033,785.6210132,277710,732.0586223,HI3,HI3
2033,743.6763018,259213,784.2970839,HI2,HI3
2010,781.8323058,285516,703.9885681,HI3,HI2
2004,772.6781064,269449,743.7400027,HI3,HI3
2002,652.3391553,290888,688.2373972,LO3,NS
1977,648.4969973,287112,688.5814595,LO3,NS
1944,727.5777428,286492,678.5529788,NS,NS
1932,625.6551186,287012,673.1425864,LO3,NS
1922,688.5582424,291277,659.8529922,NS,NS
1912,662.4465438,289859,659.631062,LO2,NS
1881,627.1624732,289653,649.3977276,LO3,NS
1844,657.1114147,282519,652.6994645,LO2,NS
1835,724.8456714,274220,669.1707388,NS,NS
1833,659.7820553,280271,654.009869,LO2,NS
1825,654.7053631,284206,642.1398563,LO3,NS
1816,624.4435507,274508,661.5472045,LO3,NS
1809,646.7588823,288384,627.2886152,LO3,LO2
1798,703.1689982,287072,626.3237097,NS,LO2
1754,567.9922764,282744,620.3491498,LO3,LO3
1746,617.7750715,289208,603.7177395,LO3,LO3
1709,610.8327232,287736,593.9472294,LO3,LO3
1694,608.5089462,296175,571.9591458,LO3,LO3
1688,662.3775859,303255,556.6272609,LO2,LO3
1649,667.6454503,285959,576.6560941,LO2,LO3
1553,604.1141693,274661,565.4242867,LO3,LO3
1332,469.5645784,281425,473.3054988,LO3,LO3
0,,297820,0,NA,LO3"""


def test_phe_significance_rates_match_PHEindicatormethods_testdata_funnel_rate_dsr_inputs():
    """PHEindicatormethods testdata_funnel_rate_dsr_inputs.csv (commit 5adcb8c43562e1a897d509350306a5fed2514480).

    DSR and crude rates per 100,000 with a 0-event row: den_derived, the average, Byar limits of each unit, and
    "Not applicable …" for DSRs with fewer than 10 events (§2.3, §2.4).
    """
    df = pd.read_csv(io.StringIO(RATE_SIG_ROWS), header=None, keep_default_na=False, na_values=[""],
                     names=["count", "dsr", "pop", "crude", "sig_dsr", "sig_crude"])
    dsr = funnel.phe_significance(df["count"], df["pop"], statistic="rate", rate=df["dsr"], rate_type="dsr",
                                  multiplier=1e5)
    crude = funnel.phe_significance(df["count"], df["pop"], statistic="rate", rate=df["crude"],
                                    rate_type="crude", multiplier=1e5)
    assert dsr.tolist() == df["sig_dsr"].map(LABEL).tolist()
    assert crude.tolist() == df["sig_crude"].map(LABEL).tolist()


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
    model = smf.glm("los ~ hmo + died + age80 + C(type)", data=medpar, family=sm.families.Poisson(),
                    missing="raise").fit()
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


def test_outlier_on_limit_counts_as_inside():
    """A value exactly on a limit is inside (§3.4, §9.11): flags use strict comparisons."""
    high, low = funnel.outside_limits([1.0, 2.0, 0.5, 0.49], [0.5, 0.5, 0.5, 0.5], [2.0, 1.9, 2.0, 2.0])
    assert high.tolist() == [False, True, False, False]
    assert low.tolist() == [False, False, False, True]


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
    expected_cols = {"precision", "target"} | {f"{s}_{lvl}{a}" for s in ("lower", "upper")
                                                for lvl in ("95", "998") for a in ("", "_adj")}
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
        (lambda: funnel.spiegelhalter(pd.Series([5, 12], index=["RA1", "RB2"]),
                                      pd.Series([10, 10], index=["RA1", "RB2"]), data_type="PR"),
         r"numerator must be <= denominator.*position 1 \('RB2'\)"),
        (lambda: funnel.phe_proportion_limits(0.5, [10], 95), r"confidence must be a fraction"),
        (lambda: funnel.phe_proportion_limits(1.5, [10], 0.95), r"p0 must be a proportion"),
        (lambda: funnel.phe_ratio_limits([1], 0.95, ratio_type="smr"), r"ratio_type must be"),
        (lambda: funnel.phe_significance([5], [3]), r"numerator must be <= denominator"),
        (lambda: funnel.phe_significance([0, 5], statistic="rate", rate=[0, 10], rate_type="crude",
                                         multiplier=1e5), r"crude rates with 0 events need the denominator"),
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
