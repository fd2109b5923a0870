"""Tests for leaguetables.statistics.peers ("Similar 10", nof-methodology.md, end).

Each test's docstring says where its expected numbers come from (hand-worked arithmetic or a
property of the method).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from leaguetables.statistics.peers import PeerError, peer_position, similar_peers


def _five():
    """Hand-worked 5-trust example.

    v1 = 0, 1, 4, 9, 16: mean 6, SD √43.5 = 6.595 → cap 38.98 (no value capped); √ → 0, 1, 2, 3, 4;
    mean 2, SD √2.5 → z = (−2, −1, 0, 1, 2)/√2.5, so (z_i − z_j)² = (i − j)²/2.5.
    v2 = 4, 4, 4, 1, 1: mean 2.8, SD √2.7 → cap 11 (none capped); √ → 2, 2, 2, 1, 1; mean 1.6,
    SD √0.3 → a 2-vs-1 difference gives (z_i − z_j)² = 1/0.3.
    With weights v1: 1, v2: 2: d = (i − j)²/2.5 + 2·[v2 differs]/0.3, e.g.
    d(A,B) = 0.4, d(A,C) = 1.6, d(A,D) = 3.6 + 6.6667 = 10.2667, d(A,E) = 6.4 + 6.6667 = 13.0667,
    d(C,D) = 0.4 + 6.6667 = 7.0667, d(D,E) = 0.4.
    """
    return pd.DataFrame(
        {"v1": [0.0, 1, 4, 9, 16], "v2": [4.0, 4, 4, 1, 1]},
        index=pd.Index(list("ABCDE"), name="trust_code"),
    )


def _dist(p: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(t, q): d for t, q, d in zip(p["trust_code"], p["peer_code"], p["distance"])}


def test_hand_worked_five_trusts_two_weighted_variables():
    """Hand-worked (see _five): distances and peer order for A, C and D with weights v1: 1, v2: 2."""
    p = similar_peers(_five(), {"v1": 1, "v2": 2}, k=4)
    assert list(p.columns) == ["trust_code", "peer_code", "distance", "peer_rank"]
    d = _dist(p)
    assert d[("A", "B")] == pytest.approx(0.4)
    assert d[("A", "C")] == pytest.approx(1.6)
    assert d[("A", "D")] == pytest.approx(3.6 + 2 / 0.3)
    assert d[("A", "E")] == pytest.approx(6.4 + 2 / 0.3)
    assert d[("C", "D")] == pytest.approx(0.4 + 2 / 0.3)
    assert d[("D", "E")] == pytest.approx(0.4)
    assert p.loc[p["trust_code"] == "A", "peer_code"].tolist() == ["B", "C", "D", "E"]
    assert p.loc[p["trust_code"] == "D", "peer_code"].tolist() == ["E", "C", "B", "A"]
    assert p.loc[p["trust_code"] == "A", "peer_rank"].tolist() == [1, 2, 3, 4]
    # trust_code as a column gives the same result
    pd.testing.assert_frame_equal(p, similar_peers(_five().reset_index(), {"v1": 1, "v2": 2}, k=4))


def test_ties_broken_by_trust_code():
    """Hand-worked with v1 only (d = (i − j)²/2.5): C's neighbours B and D tie at 0.4 and A and E tie
    at 1.6; ties go to the lower trust code, so C's 3 peers are B, D, A."""
    p = similar_peers(_five(), {"v1": 1}, k=3)
    c = p[p["trust_code"] == "C"]
    assert c["peer_code"].tolist() == ["B", "D", "A"]
    assert c["distance"].to_numpy() == pytest.approx([0.4, 0.4, 1.6])


def test_tie_is_not_decided_by_floating_point_noise():
    """Values 0.01, 0.04, 0.09 have square roots 0.1, 0.2, 0.3, so B is equally far from A and C in
    exact arithmetic; in floating point d(B,A) = 1.0000000000000004 > d(B,C) = 0.9999999999999996.
    The documented rounding (10 dp) makes it a tie, broken by code: A first."""
    d = pd.DataFrame({"x": [0.01, 0.04, 0.09]}, index=list("ABC"))
    b = similar_peers(d, {"x": 1}, k=2).query("trust_code == 'B'")
    assert b["peer_code"].tolist() == ["A", "C"]


def test_cap_at_mean_plus_5_sd_hand_worked_30_trusts():
    """Hand-worked: 28 zeros, one 1 and one 100 (n = 30). Mean 101/30 = 3.36667, SD (ddof=1)
    √((10001 − 101²/30)/29) = 18.25203, cap = mean + 5 SD = 94.62684 < 100 → the 100 is capped.
    Square roots: 0 (×28), 1, √94.62684 = 9.72763; their SD = 1.77910; so
    d(T28, T29) = ((9.72763 − 1)/1.77910)² = 24.06534 (uncapped it would be 24.22482)."""
    x = pd.DataFrame({"x": [0.0] * 28 + [1.0, 100.0]}, index=[f"T{i:02d}" for i in range(30)])
    p = similar_peers(x, {"x": 1.0}, k=29, include_identical=True)
    d = _dist(p)
    assert d[("T28", "T29")] == pytest.approx(24.06534, rel=1e-6)
    assert d[("T28", "T29")] != pytest.approx(24.22482, rel=1e-4)


def test_negative_values_are_shifted_to_zero_before_square_root():
    """Documented choice: a variable with negative values is shifted by −min before the square root,
    so (−2, 0, 2, 7, 14) gives exactly the distances of (0, 2, 4, 9, 16) (the cap commutes with a
    shift, because mean + 5 SD shifts with the data)."""
    idx = list("ABCDE")
    neg = pd.DataFrame({"x": [-2.0, 0, 2, 7, 14]}, index=idx)
    pos = pd.DataFrame({"x": [0.0, 2, 4, 9, 16]}, index=idx)
    a = similar_peers(neg, {"x": 1}, k=4)
    b = similar_peers(pos, {"x": 1}, k=4)
    pd.testing.assert_frame_equal(a, b)
    assert np.isfinite(a["distance"]).all()


def test_distances_symmetric_and_k_respected():
    """Properties: d(i, j) = d(j, i) (a weighted sum of squared differences); every trust gets exactly
    k peers, or all n − 1 others when k ≥ n; the trust itself is never its own peer; peer ranks 1..k
    in increasing distance. Data: seed 3, 20 trusts, 4 demographic variables."""
    rng = np.random.default_rng(3)
    demo = pd.DataFrame(
        {
            "population": rng.lognormal(13, 0.4, 20),
            "share_65plus": rng.uniform(0.1, 0.3, 20),
            "imd_score": rng.gamma(4, 6, 20),
            "rural_share": rng.beta(1, 3, 20),
        },
        index=pd.Index([f"R{i:02d}" for i in range(20)], name="trust_code"),
    )
    w = {"population": 1, "share_65plus": 2, "imd_score": 1.5, "rural_share": 0.5}
    full = similar_peers(demo, w, k=50)
    assert full.groupby("trust_code").size().eq(19).all()
    d = _dist(full)
    for (t, q), v in d.items():
        assert d[(q, t)] == pytest.approx(v, rel=1e-12)
    assert not (full["trust_code"] == full["peer_code"]).any()
    p = similar_peers(demo, w, k=10)
    assert p.groupby("trust_code").size().eq(10).all()
    for _, g in p.groupby("trust_code"):
        assert g["peer_rank"].tolist() == list(range(1, 11))
        assert g["distance"].is_monotonic_increasing
        # the 10 peers are the 10 nearest of the full list
        t = g["trust_code"].iloc[0]
        assert g["peer_code"].tolist() == full.loc[full["trust_code"] == t, "peer_code"].tolist()[:10]


def test_within_group_restriction_equals_separate_runs():
    """Documented: with within=, peers come only from the same group, and standardisation is done
    within each group, so the result equals running each group separately and concatenating."""
    rng = np.random.default_rng(9)
    codes = [f"T{i:02d}" for i in range(11)]
    demo = pd.DataFrame({"a": rng.normal(10, 2, 11), "b": rng.uniform(0, 1, 11)}, index=codes)
    grp = pd.Series(["acute"] * 6 + ["ambulance"] * 5, index=codes)
    p = similar_peers(demo, {"a": 1, "b": 1}, k=10, within=grp)
    assert (grp.loc[p["trust_code"]].to_numpy() == grp.loc[p["peer_code"]].to_numpy()).all()
    assert p.groupby("trust_code").size().to_dict() == {c: (5 if grp[c] == "acute" else 4) for c in codes}
    sep = pd.concat(
        [similar_peers(demo.loc[grp == g], {"a": 1, "b": 1}, k=10) for g in ["acute", "ambulance"]],
        ignore_index=True,
    ).sort_values(["trust_code", "peer_rank"], ignore_index=True)
    pd.testing.assert_frame_equal(p, sep)


def test_identical_profiles_are_not_peers_unless_asked():
    """Method wording: the k smallest *non-zero* distances. F duplicates A's demographics (distance 0):
    not A's peer by default; with include_identical=True F is A's first peer at distance 0."""
    demo = pd.concat([_five(), _five().loc[["A"]].rename(index={"A": "F"})])
    p = similar_peers(demo, {"v1": 1, "v2": 2}, k=2)
    assert "F" not in p.loc[p["trust_code"] == "A", "peer_code"].tolist()
    q = similar_peers(demo, {"v1": 1, "v2": 2}, k=2, include_identical=True)
    a = q[q["trust_code"] == "A"]
    assert a["peer_code"].iloc[0] == "F" and a["distance"].iloc[0] == 0.0


def test_missing_values_raise_or_are_excluded_and_listed():
    """Documented: a missing weighted variable raises PeerError naming the trust; with
    on_missing="exclude" the trust has no peers, is nobody's peer, and is listed in attrs["excluded"]."""
    demo = _five()
    demo.loc["C", "v2"] = np.nan
    with pytest.raises(PeerError, match=r"C \(missing v2\)"):
        similar_peers(demo, {"v1": 1, "v2": 1})
    p = similar_peers(demo, {"v1": 1, "v2": 1}, on_missing="exclude")
    assert "C" not in set(p["trust_code"]) | set(p["peer_code"])
    assert p.attrs["excluded"] == {"C": "missing v2"}
    # an unweighted column with missing values does not matter
    assert len(similar_peers(demo, {"v1": 1})) == 5 * 4


def test_bad_arguments_raise_peer_error():
    """Documented argument checks: unknown column, negative or all-zero weights, k < 1."""
    with pytest.raises(PeerError, match="no column"):
        similar_peers(_five(), {"nope": 1})
    with pytest.raises(PeerError, match="non-negative"):
        similar_peers(_five(), {"v1": -1})
    with pytest.raises(PeerError, match="non-negative"):
        similar_peers(_five(), {"v1": 0})
    with pytest.raises(PeerError, match="k must"):
        similar_peers(_five(), {"v1": 1}, k=0)


def test_peer_position_hand_worked():
    """Hand-worked on A–E with all 4 others as peers. Values A 5, B 4, C 4, D 2, E 1, higher is better:
    A is 1st; B and C tie for 2nd (ties share the better rank); D 4th; E 5th. Quartiles by §1.5
    with N = 5, nq = 4: floor(5 − ceil((6 − rank)/1.25)) → ranks 1, 2, 2, 4, 5 give 1, 1, 1, 3, 4.
    Peer medians (others only): A median(4, 4, 2, 1) = 3; D median(5, 4, 4, 1) = 4.
    Lower is better reverses the ranks: E 1st, D 2nd, B and C 3rd, A 5th."""
    peers = similar_peers(_five(), {"v1": 1}, k=4)
    vals = pd.Series({"A": 5.0, "B": 4.0, "C": 4.0, "D": 2.0, "E": 1.0})
    pos = peer_position(vals, peers, "higher_better").set_index("trust_code")
    assert pos["peer_rank"].tolist() == [1, 2, 2, 4, 5]
    assert pos["peer_quartile"].tolist() == [1, 1, 1, 3, 4]
    assert pos.at["A", "peer_median"] == 3.0 and pos.at["D", "peer_median"] == 4.0
    assert pos["peer_n"].eq(4).all() and pos["group_n"].eq(5).all()
    low = peer_position(vals, peers, "lower_better").set_index("trust_code")
    assert low["peer_rank"].tolist() == [5, 3, 3, 2, 1]
    # check the §1.5 formula for one case by hand: rank 4 of 5 → floor(5 − ceil(2/1.25)) = 5 − 2 = 3
    assert math.floor(5 - math.ceil((6 - 4) / 1.25)) == 3


def test_peer_position_missing_values():
    """Documented: a peer with a missing value is left out (peer_n counts peers with values); a trust
    whose own value is missing has a peer median but no rank or quartile."""
    peers = similar_peers(_five(), {"v1": 1}, k=4)
    vals = pd.Series({"A": np.nan, "B": 4.0, "C": 3.0, "D": 2.0, "E": 1.0})
    pos = peer_position(vals, peers, "higher_better").set_index("trust_code")
    assert pd.isna(pos.at["A", "peer_rank"]) and pd.isna(pos.at["A", "peer_quartile"])
    assert pos.at["A", "peer_median"] == 2.5
    assert pos.at["B", "peer_n"] == 3 and pos.at["B", "peer_rank"] == 1
    with pytest.raises(PeerError, match="direction"):
        peer_position(vals, peers, "sideways")


def test_providers_and_icbs_are_never_each_others_peers_and_icbs_change_no_provider_peer():
    """metrics.peer_table finds each kind's peers on its own: with ICBs (no ethnicity figure) added to the demo's
    register, every provider keeps exactly the peers it had without them, and an ICB's peers are ICBs."""
    from leaguetables.config import load_methodology
    from leaguetables.statistics import metrics

    rng = np.random.default_rng(5)
    cols = ["population", "share_65plus", "share_85plus", "imd_score", "rural_share", "ethnic_minority_share"]
    demo = pd.DataFrame(rng.uniform(0.01, 0.3, size=(30, 6)), columns=cols)
    demo["trust_code"] = [f"P{i:02d}" for i in range(18)] + [f"I{i:02d}" for i in range(12)]
    demo.loc[18:, "ethnic_minority_share"] = np.nan
    trusts = pd.DataFrame({"trust_code": demo["trust_code"], "trust_type": ["acute"] * 18 + ["icb"] * 12})
    meth = load_methodology("nof-2025-26")
    both = metrics.peer_table(demo, trusts, meth)
    alone = metrics.peer_table(demo.iloc[:18], trusts.iloc[:18], meth)
    prov = both[both["trust_code"].str.startswith("P")].reset_index(drop=True)
    pd.testing.assert_frame_equal(prov, alone.reset_index(drop=True))
    icb = both[both["trust_code"].str.startswith("I")]
    assert len(icb) == 12 * 10 and icb["peer_code"].str.startswith("I").all()
