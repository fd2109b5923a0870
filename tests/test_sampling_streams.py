"""Per-metric random streams of the sampling bootstrap and the league's cache of each metric's replicates
(src/leaguetables/statistics/sampling.py: ``metric_rng``, ``sample_league(cache=…)``, ``change_test(cache=…)``;
src/leaguetables/run/sampling_cache.py).

Expected numbers: the stream words of a metric are the first 8 bytes of the SHA-256 of its id, worked here with
``hashlib`` (sha256(b"cdiff") begins 0e 5d ed 94 1a 46 6d 0d, read as two little-endian 32-bit words). The cache
tests check that a changed input is never answered from an entry made before the change: every input of an entry's
key is changed in turn, and the metrics it touches must miss while the others hit.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from ranked_catalogue import ranked_catalogue

from leaguetables.config import Catalogue
from leaguetables.run import sampling_cache
from leaguetables.statistics import sampling

Q_PREV, Q_NOW = "2025-26-Q3", "2025-26-Q4"
METRICS = ("m0", "m1", "m2")


def catalogue(standard: float | None = None) -> Catalogue:
    """m0 and m1 proportions, m2 a rate; ``standard``: a scoring standard of m0."""
    return ranked_catalogue(["proportion", "proportion", "rate"], standard)


def data(seed: int = 1, n_trusts: int = 16) -> SimpleNamespace:
    """Two quarters of binomial and Poisson counts of ``n_trusts`` acute trusts (drawn here; any data will do)."""
    rng = np.random.default_rng(seed)
    codes = [f"T{i:02d}" for i in range(n_trusts)]
    rows = []
    for q in (Q_PREV, Q_NOW):
        for mid in METRICS:
            n = np.round(rng.uniform(200, 2000, n_trusts))
            x = rng.binomial(n.astype(int), rng.uniform(0.2, 0.6, n_trusts))
            rows += [(q, c, mid, float(xi), float(ni)) for c, xi, ni in zip(codes, x, n)]
    obs = pd.DataFrame(rows, columns=["quarter", "trust_code", "metric_id", "numerator", "denominator"])
    obs = obs.assign(value=np.nan, category=None, suppressed=False)
    status = pd.DataFrame(
        [
            {"quarter": q, "trust_code": c, "deficit": False, "deficit_support": False, "improvement_programme": False}
            for q in (Q_PREV, Q_NOW)
            for c in codes
        ]
    )
    trusts = pd.DataFrame({"trust_code": codes, "trust_type": "acute"})
    return SimpleNamespace(trusts=trusts, observations=obs, status=status)


def qdata(inp, q: str = Q_NOW, cat: Catalogue | None = None) -> sampling.QuarterData:
    return sampling.quarter_data(inp, cat or catalogue(), q, segmentation_rule="quartiles_within_type")


def changed(inp, mid: str, q: str = Q_NOW, delta: float = 1.0) -> SimpleNamespace:
    """The inputs with the first trust's numerator of metric ``mid`` in quarter ``q`` moved by ``delta``."""
    obs = inp.observations.copy()
    i = obs.index[(obs["quarter"] == q) & (obs["metric_id"] == mid)][0]
    obs.loc[i, "numerator"] += delta
    return SimpleNamespace(trusts=inp.trusts, observations=obs, status=inp.status)


class DictCache:
    """An in-memory :class:`sampling.MetricCache` that counts its hits and misses."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, np.ndarray]] = {}
        self.hits = self.misses = 0

    def get(self, key):
        if key in self.entries:
            self.hits += 1
            return self.entries[key]
        self.misses += 1
        return None

    def put(self, key, arrays):
        self.entries[key] = {k: np.array(v) for k, v in arrays.items()}

    def count(self) -> tuple[int, int]:
        out = (self.hits, self.misses)
        self.hits = self.misses = 0
        return out


# ------------------------------------------------------------------------------------------------ streams
def test_metric_words_are_the_first_bytes_of_the_sha256_of_the_id():
    """sha256(b"cdiff") = 0e5ded94 1a466d0d …: words 0x94ed5d0e = 2498583822 and 0x0d6d461a = 225265178."""
    assert hashlib.sha256(b"cdiff").hexdigest().startswith("0e5ded941a466d0d")
    assert sampling.metric_words("cdiff") == (2498583822, 225265178)


def test_streams_differ_by_metric_and_purpose_and_from_the_zero_padded_ones():
    """Five-word seeds [seed, 3, purpose, w0, w1]: distinct for every metric and purpose, and none equal to the
    single-word stream of the same seed (the stream of every draw before 0.7), which numpy pads to [seed, 0, 0, 0]."""
    first = {
        (mid, p): sampling.metric_rng(7, mid, p).integers(1 << 62)
        for mid in METRICS
        for p in (sampling.DRAWS, sampling.NULL)
    }
    first[("seed", None)] = np.random.default_rng(7).integers(1 << 62)
    first[("seed, 3", None)] = np.random.default_rng([7, 3]).integers(1 << 62)
    assert len(set(first.values())) == len(first)
    assert sampling.metric_rng(7, "m0", 0).integers(1 << 62) == first[("m0", 0)], "a stream is a function of its name"
    with pytest.raises(ValueError, match="32-bit"):
        sampling.metric_rng(1 << 32, "m0", 0)


def test_one_metrics_change_leaves_the_other_metrics_draws_as_they_were():
    """The league's draws and the change test's null draws of metric m1 and m2 are the same, bit for bit, after
    m0's data changed (each metric has its own stream); m0's are not."""
    inp, inp2 = data(), changed(data(), "m0")
    a, b = sampling.draw_values(qdata(inp), 11, 50), sampling.draw_values(qdata(inp2), 11, 50)
    for mid in ("m1", "m2"):
        np.testing.assert_array_equal(a[mid], b[mid])
    assert not np.array_equal(a["m0"], b["m0"])
    na = sampling.null_values(qdata(inp, Q_PREV), qdata(inp), 12, 50)
    nb = sampling.null_values(qdata(inp2, Q_PREV), qdata(inp2), 12, 50)
    for qi in (0, 1):
        for mid in ("m1", "m2"):
            np.testing.assert_array_equal(na[qi][mid], nb[qi][mid])
        assert not np.array_equal(na[qi]["m0"], nb[qi]["m0"]), "both quarters of m0 move with its position"


# ------------------------------------------------------------------------------------------------ cache keys
def _league(inp, cache, seed=5, replicates=40, shrinkage=True, check=2, cat=None):
    summ, reps = sampling.sample_league(
        qdata(inp, cat=cat), replicates, seed, shrinkage=shrinkage, check=check, cache=cache
    )
    return summ, reps


def test_sample_league_with_a_cache_equals_without_and_reuses_only_what_did_not_change():
    """The cache changes nothing in the result; a second run reuses every metric; changing one metric's data, the
    seed, the number of replicates, shrinkage, the checked replicates or a metric's scoring rule makes exactly the
    entries that depend on it miss (the metrics it does not touch still hit), and the result is again the one
    computed without a cache."""
    inp = data()
    cache = DictCache()
    plain, _ = _league(inp, None)
    summ, _ = _league(inp, cache)
    pd.testing.assert_frame_equal(summ, plain)
    assert cache.count() == (0, 3)
    summ, reps = _league(inp, cache)
    pd.testing.assert_frame_equal(summ, plain)
    assert cache.count() == (3, 0) and reps.path == "vectorised"
    variants = {
        "one metric's data": ({"inp": changed(inp, "m1")}, (2, 1)),
        "another quarter's data only": ({"inp": changed(inp, "m1", Q_PREV)}, (3, 0)),
        "seed": ({"seed": 6}, (0, 3)),
        "replicates": ({"replicates": 41}, (0, 3)),
        "shrinkage": ({"shrinkage": False}, (0, 3)),
        "check": ({"check": 3}, (0, 3)),
        "a metric's scoring rule": ({"cat": catalogue(standard=40.0)}, (2, 1)),
    }
    for name, (kw, expected) in variants.items():
        args = {"inp": inp} | kw
        inp_v = args.pop("inp")
        summ, _ = _league(inp_v, cache, **args)
        assert cache.count() == expected, name
        pd.testing.assert_frame_equal(summ, _league(inp_v, None, **args)[0], obj=name)


def test_change_test_with_a_cache_equals_without_and_misses_when_either_quarter_changed():
    """The null draws of a metric depend on both quarters' data of that metric: a change in either quarter makes
    that metric (only) miss; the seed makes every metric miss. Results equal those without a cache."""
    inp = data(2)
    cache = DictCache()

    def test(inp, seed=9):
        return sampling.change_test(qdata(inp, Q_PREV), qdata(inp), 40, seed, check=2, cache=cache)

    plain = sampling.change_test(qdata(inp, Q_PREV), qdata(inp), 40, 9, check=2)
    pd.testing.assert_frame_equal(test(inp), plain)
    assert cache.count() == (0, 3)
    pd.testing.assert_frame_equal(test(inp), plain)
    assert cache.count() == (3, 0)
    for q in (Q_PREV, Q_NOW):
        inp2 = changed(inp, "m2", q, 5.0)
        pd.testing.assert_frame_equal(
            test(inp2), sampling.change_test(qdata(inp2, Q_PREV), qdata(inp2), 40, 9, check=2), obj=q
        )
        assert cache.count() == (2, 1), q
    test(inp, seed=10)
    assert cache.count() == (0, 3)


def test_adjusted_factor_is_part_of_the_key():
    """On the adjusted basis a trust's value is scaled by its adjustment factor: a changed factor of one metric (its
    expected value refitted) is a different entry, though the counts are the same."""
    inp = data(3)
    cache = DictCache()
    qd = qdata(inp)
    sampling.sample_league(qd, 30, 1, check=1, cache=cache)
    assert cache.count() == (0, 3)
    qd.metrics[2].frame.loc[0, "factor"] = 1.1
    sampling.sample_league(qd, 30, 1, check=1, cache=cache)
    assert cache.count() == (2, 1)


# ------------------------------------------------------------------------------------------------ the folder
def test_folder_round_trips_exactly_and_refuses_damaged_or_foreign_entries(tmp_path):
    """Scores in hundredths (stored as int16) and other floats (stored as they are) come back bit for bit, NaN
    included; a truncated file, an entry written by other code (another salt) or under another key is a miss."""
    c = sampling_cache.SamplingCache(tmp_path, salt="code-a")
    scores = np.array([[1.0, 2.37, np.nan], [4.0, 3.5, 1.01]])
    other = np.array([[0.1 + 0.2, np.nan, 1e-300]])
    signed = np.array([0.5, -0.0, 1.0])  # hundredths, but −0.0 (equal to 0.0, not the same bits) is not one
    c.put("k", {"scores": scores, "values": other, "signed": signed})
    got = c.get("k")
    assert got is not None
    for name, a in (("scores", scores), ("values", other), ("signed", signed)):
        assert got[name].dtype == np.float64 and got[name].tobytes() == a.tobytes(), name
    assert sampling_cache._cents(scores) is not None and sampling_cache._cents(other) is None
    assert sampling_cache._cents(signed) is None
    assert c.get("k2") is None
    assert sampling_cache.SamplingCache(tmp_path, salt="code-b").get("k") is None
    path = tmp_path / c._name("k")
    path.write_bytes(path.read_bytes()[:100])
    assert c.get("k") is None


def test_folder_keeps_the_entries_of_this_run_and_the_run_before(tmp_path):
    """close() keeps what this run used and what the run before used; older entries go."""
    for run, keys in enumerate((["a", "b"], ["b", "c"], ["c", "d"])):
        with sampling_cache.open_cache(tmp_path) as c:
            assert c is not None
            for k in keys:
                if c.get(k) is None:
                    c.put(k, {"x": np.arange(3.0) + run})
    c = sampling_cache.SamplingCache(tmp_path)
    present = {k for k in "abcd" if (tmp_path / c._name(k)).exists()}
    assert present == {"b", "c", "d"}, "run 3 used c and d, run 2 b and c; a, used by run 1 only, is gone"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".npz") == [sampling_cache.RUNS_FILE]
    with sampling_cache.open_cache("") as none:
        assert none is None


def test_row_quartiles_equal_nanpercentile_bit_for_bit():
    """The pooled cut points of every replicate: the fast path (the same columns NaN in every row) gives exactly
    ``numpy.nanpercentile``'s numbers, and rows with NaNs in different columns go to ``nanpercentile`` itself."""
    rng = np.random.default_rng(3)
    a = np.round(rng.uniform(1, 4, (500, 40)), 2)
    a[:, [3, 17]] = np.nan
    expected = np.nanpercentile(a, [25, 50, 75], axis=1)
    np.testing.assert_array_equal(sampling._row_quartiles(a), expected)
    a[7, 5] = np.nan
    np.testing.assert_array_equal(sampling._row_quartiles(a), np.nanpercentile(a, [25, 50, 75], axis=1))
