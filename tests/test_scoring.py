"""Unit tests of the NOF scoring rules (src/leaguetables/nof/scoring.py) on small hand-worked tables.

Each test's docstring says where its expected numbers come from. "Hand-worked" means computed by hand from the
rule in ../shared/docs/nof-methodology.md; the working is in the docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_series_equal

from leaguetables.nof import scoring as sc


def s(values: dict, dtype=float, name=None) -> pd.Series:
    return pd.Series(values, dtype=dtype, name=name)


# --------------------------------------------------------------------------------------------------------
# rounding
# --------------------------------------------------------------------------------------------------------
def test_round_half_up_treats_decimal_halves_as_halves():
    """Hand-worked: 1.075 → 1.08 and 2.555 → 2.56 (both stored just below the half); 2.545 → 2.55 and
    0.125 → 0.13 (numpy.round rounds these halves to even: 2.54, 0.12); −0.125 → −0.13 (away from zero);
    1.074999 → 1.07."""
    assert sc.round_half_up(1.075) == 1.08
    assert sc.round_half_up(2.555) == 2.56
    assert sc.round_half_up(2.545) == 2.55
    assert sc.round_half_up(-0.125) == -0.13
    assert sc.round_half_up(1.074999) == 1.07
    assert sc.round_half_up(0.125) == 0.13
    assert np.round(2.545, 2) == 2.54 and np.round(0.125, 2) == 0.12  # numpy's behaviour, not used
    np.testing.assert_array_equal(sc.round_half_up(np.array([1.005, np.nan, 3.0])), [1.01, np.nan, 3.0])
    assert sc.round_half_up(12.5, 0) == 13.0


# --------------------------------------------------------------------------------------------------------
# score_ranked
# --------------------------------------------------------------------------------------------------------
def test_ranked_spreads_between_bookends_higher_better():
    """Hand-worked: n = 5, score = 1 + 3(r − 1)/4: ranks 1..5 → 1.00, 1.75, 2.50, 3.25, 4.00."""
    v = s({"A": 50, "B": 40, "C": 30, "D": 20, "E": 10})
    expected = s({"A": 1.0, "B": 1.75, "C": 2.5, "D": 3.25, "E": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better"), expected)


def test_ranked_lower_better_reverses_order():
    """Hand-worked: same values, lower is better: E (10) rank 1 → 1.00 … A (50) rank 5 → 4.00."""
    v = s({"A": 50, "B": 40, "C": 30, "D": 20, "E": 10})
    expected = s({"A": 4.0, "B": 3.25, "C": 2.5, "D": 1.75, "E": 1.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "lower_better"), expected)


def test_ranked_ties_take_best_score_of_cluster():
    """Hand-worked: values 50, 40, 40, 30, 10 → min ranks 1, 2, 2, 4, 5 → 1.00, 1.75, 1.75, 3.25, 4.00."""
    v = s({"A": 50, "B": 40, "C": 40, "D": 30, "E": 10})
    expected = s({"A": 1.0, "B": 1.75, "C": 1.75, "D": 3.25, "E": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better"), expected)


def test_ranked_rounds_to_two_dp_half_up():
    """Hand-worked: n = 8 → step 3/7: rank 2 → 1.428… → 1.43, rank 3 → 1.857… → 1.86. n = 41 → step 3/40 =
    0.075: rank 2 → 1.075 → 1.08 (half up), rank 4 → 1.225 → 1.23."""
    v8 = pd.Series(np.arange(8, 0, -1, dtype=float), index=[f"T{i}" for i in range(8)])
    got = sc.score_ranked(v8, "higher_better")
    assert got["T1"] == 1.43 and got["T2"] == 1.86 and got["T7"] == 4.0
    v41 = pd.Series(np.arange(41, 0, -1, dtype=float), index=[f"T{i:02d}" for i in range(41)])
    got = sc.score_ranked(v41, "higher_better")
    assert got["T01"] == 1.08 and got["T03"] == 1.23


def test_ranked_standard_met_scores_one_rest_spread_two_to_four():
    """Hand-worked: standard 78, higher better. 90, 80, 78 meet it → 1.00 (78 exactly meets it); the others
    70, 60, 50 (n = 3) spread 2.00–4.00 → 2.00, 3.00, 4.00."""
    v = s({"A": 90, "B": 80, "C": 78, "D": 70, "E": 60, "F": 50})
    expected = s({"A": 1.0, "B": 1.0, "C": 1.0, "D": 2.0, "E": 3.0, "F": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better", standard=78), expected)


def test_ranked_standard_lower_better():
    """Hand-worked: lower is better, standard 5 (e.g. % waiting > 12 h): 2 and 5 meet it → 1.00; 6, 9, 12
    spread 2.00, 3.00, 4.00."""
    v = s({"A": 2, "B": 5, "C": 6, "D": 9, "E": 12})
    expected = s({"A": 1.0, "B": 1.0, "C": 2.0, "D": 3.0, "E": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "lower_better", standard=5), expected)


def test_ranked_floor_failed_scores_four_rest_spread_one_to_three():
    """Hand-worked: floor 10, higher better. 5 fails it → 4.00; 30, 20, 15 (n = 3) spread 1.00–3.00 → 1.00,
    2.00, 3.00. The published OF1057 (UCR, below 70% → 4.00) is this shape."""
    v = s({"A": 30, "B": 20, "C": 15, "D": 5})
    expected = s({"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better", floor=10), expected)


def test_ranked_floor_per_trust_baseline():
    """Hand-worked: "improve on baseline", higher better, floor = each trust's baseline. A 12 ≥ 10 and B 9 ≥ 8
    pass; C 7 < 9 fails → 4.00; A, B (n = 2) spread 1.00, 3.00."""
    v = s({"A": 12, "B": 9, "C": 7})
    baseline = s({"A": 10, "B": 8, "C": 9})
    expected = s({"A": 1.0, "B": 3.0, "C": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better", floor=baseline), expected)


def test_ranked_standard_and_floor_spread_two_to_three():
    """Hand-worked: standard 90 and floor 50: 95 → 1.00, 40 → 4.00, 80/70/60 (n = 3) spread 2.00–3.00 →
    2.00, 2.50, 3.00."""
    v = s({"A": 95, "B": 80, "C": 70, "D": 60, "E": 40})
    expected = s({"A": 1.0, "B": 2.0, "C": 2.5, "D": 3.0, "E": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better", standard=90, floor=50), expected)


def test_ranked_missing_values_are_excluded():
    """Hand-worked: B missing → NaN and not counted; A, C, D (n = 3) → 1.00, 2.50, 4.00."""
    v = s({"A": 50, "B": np.nan, "C": 30, "D": 10})
    expected = s({"A": 1.0, "B": np.nan, "C": 2.5, "D": 4.0}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better"), expected)


def test_ranked_comparator_population_larger_than_scored():
    """Hand-worked: A 50 and B 30 scored; C 40, D 20, E 10 are comparators. Population n = 5: A rank 1 →
    1.00, B rank 3 → 2.50 (published OF0016 fits n = 47 for 45 trusts shown: the same mechanism). A code in
    both (A = 99 as comparator) is taken from ``values``."""
    v = s({"A": 50, "B": 30})
    comp = s({"C": 40, "D": 20, "E": 10, "A": 99})
    expected = s({"A": 1.0, "B": 2.5}, name="score")
    assert_series_equal(sc.score_ranked(v, "higher_better", comparator_values=comp), expected)


def test_ranked_single_trust_all_equal_empty():
    """Defined edge cases (hand-worked): one trust → best bookend 1.00 (2.00 when it misses a standard); all
    values equal → all rank 1 → 1.00; empty input → empty float Series; all missing → all NaN."""
    assert_series_equal(sc.score_ranked(s({"A": 3.0}), "higher_better"), s({"A": 1.0}, name="score"))
    assert sc.score_ranked(s({"A": 3.0}), "higher_better", standard=5)["A"] == 2.0
    eq = sc.score_ranked(s({"A": 7, "B": 7, "C": 7}), "lower_better")
    assert eq.tolist() == [1.0, 1.0, 1.0]
    empty = sc.score_ranked(pd.Series([], dtype=float), "higher_better")
    assert empty.empty and empty.dtype == float
    assert sc.score_ranked(s({"A": np.nan, "B": np.nan}), "higher_better").isna().all()


def test_ranked_tiebreak_orders_values_tied_after_rounding():
    """Published file, Q4 2025/26 OF0061: RLY and RT5 both show 6.93 but have ranks 12 and 13 and scores 1.55
    and 1.60 (NHS England ranks unrounded values). Hand-worked small case: 7.0, 6.9, 6.9, 6.8 with tiebreak
    ranks 1–4 → 1.00, 2.00, 3.00, 4.00; without tiebreak → 1.00, 2.00, 2.00, 4.00."""
    v = s({"A": 7.0, "B": 6.9, "C": 6.9, "D": 6.8})
    tb = s({"A": 1, "B": 2, "C": 3, "D": 4})
    assert sc.score_ranked(v, "higher_better", tiebreak=tb).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert sc.score_ranked(v, "higher_better").tolist() == [1.0, 2.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="tiebreak has no value"):
        sc.score_ranked(v, "higher_better", tiebreak=tb.drop("D"))


def test_ranked_rejects_bad_direction_and_duplicates():
    """Validation: unknown direction and duplicate codes raise ValueError with the reason."""
    with pytest.raises(ValueError, match="direction must be one of"):
        sc.score_ranked(s({"A": 1.0}), "up")
    with pytest.raises(ValueError, match="duplicate"):
        sc.score_ranked(pd.Series([1.0, 2.0], index=["A", "A"]), "higher_better")


def test_score_bracket_maps_categories():
    """Manual: CQC safe rating Outstanding 1, Good 2, Requires improvement 3, Inadequate 4; missing → NaN;
    a category outside the mapping raises."""
    cqc = {"Outstanding": 1, "Good": 2, "Requires improvement": 3, "Inadequate": 4}
    cats = pd.Series({"A": "Good", "B": "Inadequate", "C": None, "D": "Outstanding"})
    expected = s({"A": 2.0, "B": 4.0, "C": np.nan, "D": 1.0}, name="score")
    assert_series_equal(sc.score_bracket(cats, cqc), expected)
    with pytest.raises(ValueError, match="not in the bracket mapping: \\['Excellent'\\]"):
        sc.score_bracket(pd.Series({"A": "Excellent"}), cqc)


# --------------------------------------------------------------------------------------------------------
# combination, averages, domains
# --------------------------------------------------------------------------------------------------------
def test_combine_finance_reproduces_published_matrix():
    """Published file, Q1–Q4 2025/26, all 244 trust-quarters: (OF1079, OF1081) → OF1080 observed as
    (1,1)→1, (1,2)→1, (1,3)→2, (1,4)→3, (2,1)→2, (3,1)→2, (3,2)→3, (3,4)→4, (4,1)→2, (4,2)→3, (4,4)→4.
    One component missing → the other (open choice); both missing → NaN."""
    pairs = [
        (1, 1, 1),
        (1, 2, 1),
        (1, 3, 2),
        (1, 4, 3),
        (2, 1, 2),
        (3, 1, 2),
        (3, 2, 3),
        (3, 4, 4),
        (4, 1, 2),
        (4, 2, 3),
        (4, 4, 4),
        (np.nan, 3, 3),
        (2, np.nan, 2),
        (np.nan, np.nan, np.nan),
    ]
    idx = [f"T{i}" for i in range(len(pairs))]
    got = sc.combine_finance(
        pd.Series([p[0] for p in pairs], index=idx, dtype=float),
        pd.Series([p[1] for p in pairs], index=idx, dtype=float),
    )
    assert_series_equal(got, pd.Series([p[2] for p in pairs], index=idx, dtype=float, name="score"))


def _long(rows):
    return pd.DataFrame(rows, columns=["trust_code", "metric_id", "score", "weight", "combine_group", "domain"])


def test_average_one_third_weights():
    """Hand-worked: infection metrics 1, 2, 3 at weight 1/3 and a fourth metric 4.00 at weight 1:
    Σw·s = (1 + 2 + 3)/3 + 4 = 6, Σw = 2 → 3.00; n_scored 4, weight_total 2."""
    third = 1 / 3
    df = _long(
        [
            ("A", "MRSA", 1, third, None, "Safety"),
            ("A", "ECOLI", 2, third, None, "Safety"),
            ("A", "CDIFF", 3, third, None, "Safety"),
            ("A", "RTT", 4, 1, None, "Access"),
        ]
    )
    got = sc.average_scores(df).iloc[0]
    assert got["average_score"] == 3.0 and got["n_scored"] == 4
    assert got["weight_total"] == pytest.approx(2.0)


def test_average_finance_enters_once_and_missing_excluded():
    """Hand-worked: OF1079 = 1, OF1081 = 4 combine to 3 (combine_finance); with RTT 2.00 and a missing
    metric (NaN) and a "score 0" metric both excluded, the average is (3 + 2)/2 = 2.50 over n_scored 2."""
    df = _long(
        [
            ("A", "OF1079", 1, 1, "finance", "Finance"),
            ("A", "OF1081", 4, 1, "finance", "Finance"),
            ("A", "RTT", 2, 1, None, "Access"),
            ("A", "X", np.nan, 1, None, "Access"),
            ("A", "Y", 0, 1, None, "Access"),
        ]
    )
    got = sc.average_scores(df).iloc[0]
    assert got["average_score"] == 2.5 and got["n_scored"] == 2
    units = sc.combine_scores(df)
    assert units["metric_id"].tolist() == ["RTT", "finance"] and units["score"].tolist() == [2.0, 3.0]


def test_average_rounding_and_single_metric():
    """Hand-worked: A scores 1.00 and 1.01 → 1.005 → 1.01 (half up; unrounded 1.005 kept); B 2.33, 2.34,
    2.34 → 2.33667 → 2.34; C has one scored metric 3.21 → 3.21 with n_scored 1; D only missing → no row."""
    df = _long(
        [
            ("A", "M1", 1.00, 1, None, "X"),
            ("A", "M2", 1.01, 1, None, "X"),
            ("B", "M1", 2.33, 1, None, "X"),
            ("B", "M2", 2.34, 1, None, "X"),
            ("B", "M3", 2.34, 1, None, "X"),
            ("C", "M1", 3.21, 1, None, "X"),
            ("D", "M1", np.nan, 1, None, "X"),
        ]
    )
    got = sc.average_scores(df).set_index("trust_code")
    assert got["average_score"].to_dict() == {"A": 1.01, "B": 2.34, "C": 3.21}
    assert got.loc["A", "average_unrounded"] == pytest.approx(1.005)
    assert got.loc["C", "n_scored"] == 1


def test_domain_scores_combined_finance_counts_once():
    """Hand-worked: Finance domain = combined finance (1,2 → 1) and productivity 2.00 → 1.50; Access = 3.00."""
    df = _long(
        [
            ("A", "OF1079", 1, 1, "finance", "Finance"),
            ("A", "OF1081", 2, 1, "finance", "Finance"),
            ("A", "OF1086", 2, 1, None, "Finance"),
            ("A", "RTT", 3, 1, None, "Access"),
        ]
    )
    got = sc.domain_scores(df).set_index("domain")
    assert got["domain_score"].to_dict() == {"Access": 3.0, "Finance": 1.5}
    assert got.loc["Finance", "n_scored"] == 2


def test_scores_validation():
    """Validation: scores outside [1, 4] and duplicate trust × metric rows raise ValueError."""
    with pytest.raises(ValueError, match="must lie in \\[1, 4\\]"):
        sc.average_scores(_long([("A", "M", 4.5, 1, None, "X")]))
    with pytest.raises(ValueError, match="duplicate"):
        sc.average_scores(_long([("A", "M", 2, 1, None, "X"), ("A", "M", 3, 1, None, "X")]))


# --------------------------------------------------------------------------------------------------------
# segments, override, segment 5
# --------------------------------------------------------------------------------------------------------
def test_segments_quartiles_within_type_cut_point_goes_to_better_segment():
    """Hand-worked: type X averages 1.1 … 1.5 → numpy percentiles 1.2 / 1.3 / 1.4; 1.2 and 1.3 and 1.4 lie on
    cut points and go to the better segment → 1, 1, 2, 3, 4. Type Y (1, 2, 3, 4) → cuts 1.75 / 2.5 / 3.25 →
    1, 2, 3, 4, computed separately from X."""
    avg = s({"a": 1.1, "b": 1.2, "c": 1.3, "d": 1.4, "e": 1.5, "f": 1.0, "g": 2.0, "h": 3.0, "i": 4.0})
    typ = pd.Series({k: ("X" if k in "abcde" else "Y") for k in avg.index})
    seg, cuts = sc.assign_segments(avg, typ, "quartiles_within_type")
    assert seg.tolist() == [1, 1, 2, 3, 4, 1, 2, 3, 4]
    assert cuts["X"] == pytest.approx((1.2, 1.3, 1.4)) and cuts["Y"] == pytest.approx((1.75, 2.5, 3.25))


def test_segments_empty_type_and_missing_average():
    """Defined behaviour (hand-worked): a type whose trusts have no average gets NaN cut points and no
    segments; a missing average in a populated type gets no segment and does not move the cut points
    (X: 1, 2, 3 → cuts 1.5 / 2 / 2.5 → 1.0 → 1, 2.0 on the cut → 2, 3.0 → 4)."""
    avg = s({"a": 1.0, "b": 2.0, "c": 3.0, "d": np.nan, "e": np.nan})
    typ = pd.Series({"a": "X", "b": "X", "c": "X", "d": "X", "e": "Z"})
    seg, cuts = sc.assign_segments(avg, typ, "quartiles_within_type")
    assert seg.tolist()[:3] == [1, 2, 4] and seg.isna().tolist() == [False, False, False, True, True]
    assert cuts["X"] == pytest.approx((1.5, 2.0, 2.5)) and np.isnan(cuts["Z"]).all()


def test_segments_over_population_and_fixed_thresholds():
    """Hand-worked: population 1, 2, 3, 4, 5 → cuts 2 / 3 / 4 → trusts 2.0, 2.5, 4.0, 4.5 → 1, 2, 3, 4.
    Fixed thresholds (2026/27 style) 1.8 / 2.2 / 2.6 → 1.8 → 1, 2.0 → 2, 2.6 → 3, 3.0 → 4; per-type
    thresholds use each type's own."""
    typ = pd.Series({"a": "X", "b": "X", "c": "X", "d": "X"})
    seg, cuts = sc.assign_segments(
        s({"a": 2.0, "b": 2.5, "c": 4.0, "d": 4.5}),
        typ,
        "quartiles_over_population",
        population_average=pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    assert seg.tolist() == [1, 2, 3, 4] and cuts["X"] == (2.0, 3.0, 4.0)
    seg, _ = sc.assign_segments(
        s({"a": 1.8, "b": 2.0, "c": 2.6, "d": 3.0}), typ, "fixed_thresholds", thresholds=(1.8, 2.2, 2.6)
    )
    assert seg.tolist() == [1, 2, 3, 4]
    typ2 = pd.Series({"a": "X", "b": "Y"})
    seg, cuts = sc.assign_segments(
        s({"a": 2.0, "b": 2.0}), typ2, "fixed_thresholds", thresholds={"X": (2.0, 2.5, 3.0), "Y": (1.0, 1.5, 1.9)}
    )
    assert seg.tolist() == [1, 4]
    with pytest.raises(ValueError, match="needs thresholds"):
        sc.assign_segments(s({"a": 2.0}), typ2, "fixed_thresholds")
    with pytest.raises(ValueError, match="segmentation rule must be one of"):
        sc.assign_segments(s({"a": 2.0}), typ2, "deciles")


def test_financial_override():
    """Manual rule, hand-worked: segments 1, 2, 3, 4, 1, 2 with deficit Y, N, Y, Y, N, N and support N, Y, N,
    N, N, N → 3, 3, 3, 4, 1, 2; the override moved A and B only (published OF5004 is also set for C, D: it is
    the deficit flag, not the move)."""
    seg = pd.Series([1, 2, 3, 4, 1, 2], index=list("ABCDEF"), dtype="Int64")
    deficit = pd.Series([True, False, True, True, False, False], index=list("ABCDEF"))
    support = pd.Series([False, True, False, False, False, False], index=list("ABCDEF"))
    adj, moved = sc.apply_financial_override(seg, deficit, support)
    assert adj.tolist() == [3, 3, 3, 4, 1, 2]
    assert moved.tolist() == [True, True, False, False, False, False]
    assert seg.tolist() == [1, 2, 3, 4, 1, 2]  # unadjusted kept
    with pytest.raises(ValueError, match="deficit is missing"):
        sc.apply_financial_override(seg, deficit.drop("F"), support)


def test_segment_5_from_flag_only():
    """Manual: segment 5 is an input flag, never computed. Published Q1 2025/26: RW1 has OF5000 = 3 and
    OF5007 = 1 → OF5005 = 5; RHA 4 → 5. Hand-worked: 3 (flag) → 5, 4 (no flag) → 4."""
    seg = pd.Series([3, 4, 4], index=["RW1", "RHA", "X"], dtype="Int64")
    flag = pd.Series([True, True, False], index=["RW1", "RHA", "X"])
    assert sc.apply_segment_5(seg, flag).tolist() == [5, 5, 4]


# --------------------------------------------------------------------------------------------------------
# league rank
# --------------------------------------------------------------------------------------------------------
def test_rank_league_competition_ranks_segment_first():
    """Hand-worked, type X: (segment, average) A (1, 2.10), B (1, 2.20), C (1, 2.20), D (2, 1.90) — D's better
    average does not beat segment 1 — E (3, 2.00) → ranks 1, 2, 2, 4, 5 of 5. Type Y ranked separately: F
    (2, 2.5) → 1 of 2, G (4, 2.0) → 2 of 2. H has no average → not ranked."""
    seg = pd.Series({"A": 1, "B": 1, "C": 1, "D": 2, "E": 3, "F": 2, "G": 4, "H": 1}, dtype="Int64")
    avg = s({"A": 2.10, "B": 2.20, "C": 2.20, "D": 1.90, "E": 2.00, "F": 2.5, "G": 2.0, "H": np.nan})
    typ = pd.Series({k: ("Y" if k in "FG" else "X") for k in seg.index})
    got = sc.rank_league(seg, avg, typ)
    assert got["rank"].tolist()[:7] == [1, 2, 2, 4, 5, 1, 2] and pd.isna(got.loc["H", "rank"])
    assert got.loc["C", "rank_label"] == "2 of 5" and got.loc["G", "rank_label"] == "2 of 2"
    assert got.loc["A", "rank_of"] == 5


# --------------------------------------------------------------------------------------------------------
# likely ranges
# --------------------------------------------------------------------------------------------------------
def test_likely_range_two_scores_hand_worked():
    """Hand-worked: scores 1 and 4 (k = 2) → resampled mean is 1, 2.5 or 4 with probability ¼, ½, ¼, so the
    2.5th and 97.5th percentiles are 1.00 and 4.00. A single scored metric (2.22) or all-equal scores give a
    zero-width range at that value."""
    df = _long(
        [
            ("A", "M1", 1, 1, None, "X"),
            ("A", "M2", 4, 1, None, "X"),
            ("B", "M1", 2.22, 1, None, "X"),
            ("C", "M1", 3, 1, None, "X"),
            ("C", "M2", 3, 1, None, "X"),
        ]
    )
    got = sc.likely_range_average(df, replicates=4000, seed=1).set_index("trust_code")
    assert got.loc["A"].tolist() == [1.0, 4.0]
    assert got.loc["B"].tolist() == [2.22, 2.22] and got.loc["C"].tolist() == [3.0, 3.0]


def _demo_scores(n_trusts=12, k=8, seed=3):
    rng = np.random.default_rng(seed)
    rows = [
        (f"T{i:02d}", f"M{j}", round(float(rng.uniform(1, 4)), 2), 1.0, None, "X")
        for i in range(n_trusts)
        for j in range(k)
    ]
    return _long(rows)


def test_bootstrap_deterministic_and_consistent():
    """Seeded: two runs with the same seed are identical; joint_bootstrap's average ranges equal
    likely_range_average's (same draws); p_segment_1..4 sum to 1; rank ranges lie within 1..n; the published
    average lies inside its 95% range for these uniform scores."""
    df = _demo_scores()
    typ = pd.Series("X", index=sorted(df["trust_code"].unique()))
    no = pd.Series(False, index=typ.index)
    a1 = sc.likely_range_average(df, 1500, seed=7)
    a2 = sc.likely_range_average(df, 1500, seed=7)
    pd.testing.assert_frame_equal(a1, a2)
    j1 = sc.joint_bootstrap(df, typ, no, no, sc.LeagueRules("quartiles_within_type"), replicates=1500, seed=7)
    j2 = sc.joint_bootstrap(df, typ, no, no, sc.LeagueRules("quartiles_within_type"), replicates=1500, seed=7)
    pd.testing.assert_frame_equal(j1, j2)
    pd.testing.assert_frame_equal(j1[["trust_code", "average_lower", "average_upper"]], a1)
    p = j1[[f"p_segment_{k}" for k in range(1, 5)]].sum(axis=1)
    np.testing.assert_allclose(p, 1.0)
    assert (j1["rank_lower"] >= 1).all() and (j1["rank_upper"] <= 12).all()
    avg = sc.average_scores(df).set_index("trust_code")["average_score"]
    j = j1.set_index("trust_code")
    assert ((j["average_lower"] <= avg) & (avg <= j["average_upper"])).all()


def test_joint_bootstrap_no_variation_and_override():
    """Hand-worked: four trusts whose metric scores are all equal never vary: averages 1, 2, 3, 4 → cuts
    1.75 / 2.5 / 3.25 → segments 1, 2, 3, 4; A is in deficit → adjusted 3, so ranks B 1 (seg 2), A 2 (seg 3,
    avg 1.0), C 3 (seg 3, 3.0), D 4. Every replicate is identical: rank ranges are those ranks and
    P(segment) is 1 for A's adjusted segment 3."""
    df = _long([(t, f"M{j}", v, 1, None, "X") for t, v in zip("ABCD", (1.0, 2.0, 3.0, 4.0)) for j in range(3)])
    typ = pd.Series("X", index=list("ABCD"))
    deficit = pd.Series([True, False, False, False], index=list("ABCD"))
    no = pd.Series(False, index=list("ABCD"))
    got = sc.joint_bootstrap(
        df, typ, deficit, no, sc.LeagueRules("quartiles_within_type"), replicates=200, seed=1
    ).set_index("trust_code")
    assert got["rank_lower"].tolist() == [2, 1, 3, 4] and got["rank_upper"].tolist() == [2, 1, 3, 4]
    assert got.loc["A", "p_segment_3"] == 1.0 and got.loc["B", "p_segment_2"] == 1.0


def test_joint_bootstrap_fixed_vs_recomputed_cuts():
    """Hand-worked with fixed thresholds 1.5 / 2.5 / 3.5: recompute_cuts changes nothing (thresholds are
    fixed by definition); with within-type quartiles both modes run and give valid probabilities."""
    df = _demo_scores(n_trusts=8, k=6)
    typ = pd.Series("X", index=sorted(df["trust_code"].unique()))
    no = pd.Series(False, index=typ.index)
    a = sc.joint_bootstrap(df, typ, no, no, sc.LeagueRules("fixed_thresholds", (1.5, 2.5, 3.5)), replicates=500, seed=2)
    b = sc.joint_bootstrap(
        df,
        typ,
        no,
        no,
        sc.LeagueRules("fixed_thresholds", (1.5, 2.5, 3.5)),
        replicates=500,
        seed=2,
        recompute_cuts=True,
    )
    pd.testing.assert_frame_equal(a, b)
    c = sc.joint_bootstrap(
        df, typ, no, no, sc.LeagueRules("quartiles_within_type"), replicates=500, seed=2, recompute_cuts=True
    )
    np.testing.assert_allclose(c[[f"p_segment_{k}" for k in range(1, 5)]].sum(axis=1), 1.0)


# --------------------------------------------------------------------------------------------------------
# build_league_table
# --------------------------------------------------------------------------------------------------------
def test_build_league_table_end_to_end():
    """Hand-worked: type X, trusts A–E with constant scores 1.0, 1.5, 2.0, 2.5, 3.0 (→ cuts 1.5 / 2.0 / 2.5 →
    segments 1, 1, 2, 3, 4); B in deficit → 3; E in the improvement programme → segment 5 but still ranked
    by its adjusted segment 4. Ranks: A 1, C 2, B 3 (seg 3, 1.5), D 4 (seg 3, 2.5), E 5. Type Y has a trust
    with no scores (empty type): no average, segment or rank, n_scored 0."""
    df = _long([(t, f"M{j}", v, 1, None, "Dom") for t, v in zip("ABCDE", (1.0, 1.5, 2.0, 2.5, 3.0)) for j in range(2)])
    trusts = pd.DataFrame(
        {
            "trust_code": list("ABCDEF"),
            "trust_name": [f"Trust {c}" for c in "ABCDEF"],
            "trust_type": ["X"] * 5 + ["Y"],
            "trust_subtype": "s",
            "region": "r",
        }
    )
    status = pd.DataFrame(
        {
            "trust_code": list("ABCDEF"),
            "deficit": [False, True, False, False, False, False],
            "deficit_support": False,
            "improvement_programme": [False, False, False, False, True, False],
        }
    )
    out = sc.build_league_table(df, trusts, status, "quartiles_within_type", replicates=300, seed=5)
    assert out["trust_code"].tolist() == ["A", "C", "B", "D", "E", "F"]
    o = out.set_index("trust_code")
    assert o["unadjusted_segment"].tolist()[:5] == [1, 2, 1, 3, 4]
    assert o.loc["B", "financial_override"] and o.loc["B", "segment"] == 3 and o.loc["B", "in_financial_deficit"]
    assert o.loc["E", "segment"] == 5 and o.loc["E", "rank_label"] == "5 of 5"
    assert o.loc["C", "rank"] == 2 and o.loc["B", "rank"] == 3
    assert pd.isna(o.loc["F", "average_score"]) and pd.isna(o.loc["F", "rank"]) and o.loc["F", "n_scored"] == 0
    assert o.loc["A", "domain_score_dom"] == 1.0
    assert out.attrs["cut_points"]["X"] == pytest.approx((1.5, 2.0, 2.5)) and out.attrs["seed"] == 5
    required = {
        "trust_code",
        "trust_name",
        "trust_type",
        "trust_subtype",
        "region",
        "n_scored",
        "average_score",
        "average_unrounded",
        "average_lower",
        "average_upper",
        "unadjusted_segment",
        "financial_override",
        "segment",
        "segmentation_rule",
        "rank",
        "rank_of",
        "rank_label",
        "rank_lower",
        "rank_upper",
        "p_segment_1",
        "p_segment_2",
        "p_segment_3",
        "p_segment_4",
    }
    assert required <= set(out.columns)
    with pytest.raises(ValueError, match="deficit is missing"):
        sc.build_league_table(df, trusts, status.iloc[:5], "quartiles_within_type", replicates=10, seed=5)


# --------------------------------------------------------------------------------------------------------
# issue 11: pooled cut points, pooled ranking with a within-type tiebreak, finance lookup and bands
# --------------------------------------------------------------------------------------------------------
def test_pooled_quartiles_one_set_of_cut_points_for_every_type():
    """Hand-worked: averages X: 1, 2, 3, 4 and Y: 5, 6, 7, 8 pooled (8 values): numpy quartiles 2.75 / 4.5 /
    6.25 for both types → X 1, 1, 2, 2 and Y 3, 3, 4, 4; within type each would be 1, 2, 3, 4. With
    pool_types=["X"] the cut points are X's own quartiles 1.75 / 2.5 / 3.25 for both types: X 1, 2, 3, 4, Y all 4."""
    avg = pd.Series([1, 2, 3, 4, 5, 6, 7, 8], index=list("abcdefgh"), dtype=float)
    typ = pd.Series(["X"] * 4 + ["Y"] * 4, index=avg.index)
    seg, cuts = sc.assign_segments(avg, typ, "quartiles_pooled")
    assert cuts["X"] == cuts["Y"] == pytest.approx((2.75, 4.5, 6.25))
    assert seg.tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    seg, cuts = sc.assign_segments(avg, typ, "quartiles_pooled", pool_types=["X"])
    assert cuts["Y"] == pytest.approx((1.75, 2.5, 3.25)) and seg.tolist() == [1, 2, 3, 4, 4, 4, 4, 4]
    within, _ = sc.assign_segments(avg, typ, "quartiles_within_type")
    assert within.tolist() == [1, 2, 3, 4] * 2
    assert "pooled averages of X + Y (8 trusts)" == sc.segmentation_population(typ, avg, "quartiles_pooled")


def test_pooled_rank_with_within_type_tiebreak():
    """Hand-worked, higher is better, published 2-dp values tie: a (X, 5.0, rank 1), b (X, 5.0, rank 2),
    c (Y, 5.0, rank 1), d (Y, 4.0). Ranks: a 1, b 2 (after a in X), c 1 (ties with a across types), d 4.
    n = 4 → scores 1.00, 2.00, 1.00, 4.00."""
    v = pd.Series({"a": 5.0, "b": 5.0, "c": 5.0, "d": 4.0})
    tb = pd.Series({"a": 1, "b": 2, "c": 1, "d": 2})
    grp = pd.Series({"a": "X", "b": "X", "c": "Y", "d": "Y"})
    got = sc.score_ranked(v, "higher_better", tiebreak=tb, tiebreak_group=grp)
    assert got.tolist() == [1.0, 2.0, 1.0, 4.0]


def test_finance_lookup_nhs_england_table():
    """NHS England's combined-finance table (published acute Q1 2025/26: (2,2) → 2 and (3,3) → 3, cells the
    earlier step rule put at 3 and 4). lookup=False keeps the step rule for comparison."""
    p = pd.Series([2.0, 3.0, 1.0, 4.0], index=list("abcd"))
    v = pd.Series([2.0, 3.0, 4.0, 1.0], index=list("abcd"))
    assert sc.combine_finance(p, v).tolist() == [2.0, 3.0, 3.0, 2.0]
    assert sc.combine_finance(p, v, lookup=False).tolist() == [3.0, 4.0, 3.0, 2.0]
    with pytest.raises(ValueError, match="4×4"):
        sc.combine_finance(p, v, lookup=[[1, 2], [3, 4]])


def test_finance_bands_with_strict_bound():
    """NHS England's OF0079 bands: ≥ 0 → 1, (−1, 0) → 2, [−2, −1] → 3, < −2 → 4 (published files: −1.00 → 3,
    −0.99 → 2)."""
    from leaguetables.statistics.metrics import score_bands

    bands = [(0.0, 1), (-1.0, 2, ">"), (-2.0, 3), (None, 4)]
    got = score_bands(np.array([0.0, 3.7, -0.01, -0.99, -1.0, -2.0, -2.01, np.nan]), bands)
    assert got[:7].tolist() == [1, 1, 2, 2, 3, 3, 4] and np.isnan(got[7])
    up = [(0.0, 1, "<="), (1.0, 2, "<="), (2.0, 3, "<="), (None, 4)]  # infection counts 0, 1, 2, 3+
    assert score_bands(np.array([0.0, 1.0, 2.0, 3.0, 7.0]), up).tolist() == [1, 2, 3, 4, 4]


def test_icbs_are_segmented_among_icbs_under_pooled_quartiles():
    """Hand-worked: providers X: 1, 2, 3, 4 pooled (quartiles 1.75 / 2.5 / 3.25) and ICBs 5, 6, 7, 8 with their own
    quartiles 5.75 / 6.5 / 7.25 (an ICB is never pooled with providers, whatever pool_types says): X 1, 2, 3, 4 and
    the ICBs 1, 2, 3, 4, not all 4 as the providers' cut points would give."""
    avg = pd.Series([1, 2, 3, 4, 5, 6, 7, 8], index=list("abcdefgh"), dtype=float)
    typ = pd.Series(["X"] * 4 + ["icb"] * 4, index=avg.index)
    for pool in (None, ["X", "icb"]):
        seg, cuts = sc.assign_segments(avg, typ, "quartiles_pooled", pool_types=pool)
        assert cuts["X"] == pytest.approx((1.75, 2.5, 3.25)) and cuts["icb"] == pytest.approx((5.75, 6.5, 7.25))
        assert seg.tolist() == [1, 2, 3, 4] * 2
    assert (
        sc.segmentation_population(typ, avg, "quartiles_pooled", ["X"])
        == "pooled averages of X (4 trusts); icb: averages of their own type"
    )


# --------------------------------------------------------------------------------------------------------
# the rewritten cores (rank_league, the finance rule, a group's domain): their frames, missing values and errors
# --------------------------------------------------------------------------------------------------------
def test_rank_league_unranked_trusts_and_column_types():
    """Hand-worked: type X, (segment, average) A (2, 2.00), B (1, 2.40), C (no segment), D (1, 2.40), E (no type):
    B and D tie on (1, 2.40) → 1 and 1, A → 3 of 3; C and E are not ranked (rank, rank_of and label missing).
    ``rank``/``rank_of`` are nullable integers and ``rank_label`` a string column, indexed like the segments."""
    seg = pd.Series({"A": 2, "B": 1, "C": pd.NA, "D": 1, "E": 1}, dtype="Int64")
    avg = s({"A": 2.0, "B": 2.4, "C": 1.0, "D": 2.4, "E": 1.5})
    typ = pd.Series({"A": "X", "B": "X", "C": "X", "D": "X", "E": None}, dtype=object)
    got = sc.rank_league(seg, avg, typ)
    assert list(got.index) == list("ABCDE") and list(got.columns) == ["rank", "rank_of", "rank_label"]
    assert str(got["rank"].dtype) == "Int64" and str(got["rank_of"].dtype) == "Int64"
    assert isinstance(got["rank_label"].dtype, pd.StringDtype)
    assert got["rank"].tolist()[:2] == [3, 1] and got.loc["D", "rank"] == 1
    assert got.loc["A", "rank_label"] == "3 of 3" and got.loc["B", "rank_of"] == 3
    for k in "CE":
        assert got.loc[k, ["rank", "rank_of", "rank_label"]].isna().all()


def test_finance_rule_one_component_missing_and_duplicates():
    """Hand-worked with NHS England's lookup: A planned 2, variance 4 → 4; B planned only (3) → 3; C variance only
    (1) → 1; the result is indexed by every trust code of the rows, sorted. Two rows of one trust and metric are
    refused."""
    rule = sc.finance_rule("P", "V")
    rows = _long(
        [
            ("C", "V", 1, 1, "finance", "F"),
            ("A", "P", 2, 1, "finance", "F"),
            ("B", "P", 3, 1, "finance", "F"),
            ("A", "V", 4, 1, "finance", "F"),
        ]
    )
    got = rule(rows)
    assert list(got.index) == ["A", "B", "C"] and got.tolist() == [4.0, 3.0, 1.0]
    with pytest.raises(ValueError, match="duplicate"):
        rule(pd.concat([rows, rows.iloc[:1]], ignore_index=True))
    with pytest.raises(ValueError, match=r"integers 1–4 for a lookup; got \['A'\]"):
        rule(rows.assign(score=[1, 2.5, 3, 4]))


def test_group_domain_first_known_domain_and_error_names_trusts():
    """A combination group's domain per trust: the known one (A), missing where every row lacks one (B); a trust whose
    rows name two domains is refused, the trusts named in code order (C, D)."""
    rows = _long(
        [
            ("A", "P", 1, 1, "finance", None),
            ("A", "V", 1, 1, "finance", "Finance"),
            ("B", "P", 2, 1, "finance", None),
        ]
    )
    got = sc._group_domain(rows, "finance")
    assert list(got.index) == ["A", "B"] and got["A"] == "Finance" and pd.isna(got["B"])
    bad = _long(
        [
            ("D", "P", 1, 1, "finance", "Finance"),
            ("D", "V", 1, 1, "finance", "Access"),
            ("C", "P", 1, 1, "finance", "Finance"),
            ("C", "V", 1, 1, "finance", "Other"),
        ]
    )
    with pytest.raises(ValueError, match=r"spans several domains for \['C', 'D'\]"):
        sc._group_domain(bad, "finance")
