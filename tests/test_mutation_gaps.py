"""Tests that catch the one-line bugs an audit found the suite missed (issue 13), without ../shared.

Each test names the mutant it catches; ``scripts/mutation_gaps.py`` (``make mutation-gaps``) applies every mutant
and checks that its test fails. Where the expected numbers come from is said in each docstring: scipy's
distributions (closed forms), hand-worked bootstrap distributions, or the definition in
../shared/docs/statistical-methods.md and nof-methodology.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leaguetables.config import load_catalogue, load_methodology
from leaguetables.nof import league, scoring
from leaguetables.run.manifest import published_files
from leaguetables.run.verify import compare_folders, compare_tables, read_text_table
from leaguetables.statistics import expected, funnel, sampling


# ----------------------------------------------------------------------------------------- funnel flags at a limit
def test_a_value_on_a_funnel_limit_is_inside():
    """Mutants: ``rr > upper`` → ``>=`` and ``rr < lower`` → ``<=`` (statistics/funnel.py).

    Exact limits (statistical-methods.md §2.2) for 20 units with E = 20 and target 1: the unadjusted 99.8% limits
    are the Poisson(20) quantiles 8 and 35 (scipy: ppf(0.001) and ppf(0.999)) over E. A unit on a limit (O = 35 or
    8) is inside; one count beyond (36, 7) is flagged."""
    e = np.full(20, 20.0)
    o = e.copy()
    lo, hi = stats.poisson.ppf(0.001, 20.0), stats.poisson.ppf(0.999, 20.0)
    assert (lo, hi) == (8.0, 35.0)
    o[:4] = [hi, hi + 1, lo, lo - 1]
    units = funnel.robust_funnel(o, e, "SR", limits="exact", target=1.0).units
    assert units["upper_998"].iloc[0] == hi / 20 and units["lower_998"].iloc[0] == lo / 20
    assert units["rr"].iloc[0] == units["upper_998"].iloc[0] and units["rr"].iloc[2] == units["lower_998"].iloc[2]
    assert units["high_998"].iloc[:4].tolist() == [False, True, False, False]
    assert units["low_998"].iloc[:4].tolist() == [False, False, False, True]
    assert not units["outlier_998"].iloc[[0, 2]].any() and units["outlier_998"].iloc[[1, 3]].all()


# ---------------------------------------------------------------------------------------- O/E interval confidence
def _midp_tails(o: float, lower: float, upper: float) -> tuple[float, float]:
    """Mid-p tail probabilities at the limits (statistical-methods.md §6.2): P(X > O) + ½P(X = O) at the lower and
    P(X < O) + ½P(X = O) at the upper limit, X ~ Poisson (scipy)."""
    at_lower = stats.poisson.sf(o, lower) + 0.5 * stats.poisson.pmf(o, lower)
    at_upper = stats.poisson.cdf(o - 1, upper) + 0.5 * stats.poisson.pmf(o, upper)
    return float(at_lower), float(at_upper)


@pytest.mark.parametrize("confidence", [0.80, 0.95, 0.998])
def test_oe_interval_at_a_given_confidence_is_the_mid_p_interval_of_o_over_e(confidence):
    """Mutant: oe_interval's count interval computed at 95% whatever ``confidence`` (statistics/expected.py).

    With no variance for E or extra variance the O/E interval is the mid-p interval of O divided by E, so at the
    limits × E each mid-p tail is (1 − confidence)/2 (scipy's Poisson distribution). With a variance v of log E
    the half-widths add z²·v in quadrature, z the normal quantile of the same confidence."""
    o = np.array([3.0, 12.0, 40.0])
    e = np.array([5.0, 10.0, 44.0])
    lower, upper, method = expected.oe_interval(o, e, confidence=confidence)
    assert list(method) == ["MidP+delta"] * 3
    for k in range(3):
        tails = _midp_tails(o[k], lower[k] * e[k], upper[k] * e[k])
        assert tails == pytest.approx(((1 - confidence) / 2,) * 2, rel=1e-6)
    v = 0.01
    lo_v, up_v, _ = expected.oe_interval(o, e, confidence=confidence, var_log_expected=v)
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    d_lo, d_up = np.log(o / e) - np.log(lower), np.log(upper) - np.log(o / e)
    np.testing.assert_allclose(lo_v, o / e * np.exp(-np.sqrt(d_lo**2 + z**2 * v)), rtol=1e-12)
    np.testing.assert_allclose(up_v, o / e * np.exp(np.sqrt(d_up**2 + z**2 * v)), rtol=1e-12)


def _fit_frame(n_trusts: int = 30, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rng.uniform(4000, 6000, n_trusts)
    imd = rng.normal(25, 8, n_trusts)
    y = rng.poisson(n * 0.01 * np.exp(0.02 * (imd - 25))).astype(float)
    return pd.DataFrame({"trust_code": [f"T{i:02d}" for i in range(n_trusts)], "y": y, "n": n, "imd": imd})


@pytest.mark.parametrize("interval", ["delta", "o_only"])
def test_the_oe_interval_of_a_fit_follows_its_confidence(interval):
    """Mutant: ExpectedResults passing no ``confidence`` to the O/E interval (statistics/expected.py).

    The same data fitted at 95% and 99.8%: E and O/E are the same, the table records the confidence, and every
    99.8% interval strictly contains the 95% one (for O > 0). For the O-only interval (compatibility) the limits
    × E are exact Poisson limits below 10 events and Byar's from 10 at that confidence (§1.2), checked for the
    exact ones with scipy's chi-square quantiles."""
    df = _fit_frame()
    df.loc[0, "y"] = 4.0  # a small count: exact limits
    a = expected.ExpectedModel(df, "y", "n", "poisson", ["imd"], confidence=0.95, interval=interval).fit().table
    b = expected.ExpectedModel(df, "y", "n", "poisson", ["imd"], confidence=0.998, interval=interval).fit().table
    np.testing.assert_array_equal(a["expected"].to_numpy(), b["expected"].to_numpy())
    np.testing.assert_array_equal(a["oe"].to_numpy(), b["oe"].to_numpy())
    assert (a["confidence"] == 0.95).all() and (b["confidence"] == 0.998).all()
    pos = (a["observed"] > 0).to_numpy()
    assert (b["oe_lower"].to_numpy()[pos] < a["oe_lower"].to_numpy()[pos]).all()
    assert (b["oe_upper"].to_numpy()[pos] > a["oe_upper"].to_numpy()[pos]).all()
    if interval == "o_only":
        row = b.set_index("trust_code").loc["T00"]
        assert row["oe_lower"] * row["expected"] == pytest.approx(stats.chi2.ppf(0.001, 8) / 2, rel=1e-9)
        assert row["oe_upper"] * row["expected"] == pytest.approx(stats.chi2.ppf(0.999, 10) / 2, rel=1e-9)


# ------------------------------------------------------------------------------------------------- national rate
@pytest.mark.parametrize("with_denominator", [True, False])
def test_the_national_rate_is_pooled_over_the_fitted_trusts_only(with_denominator):
    """Mutants: the national rate (ΣO/Σn × multiplier) or mean count (no denominator) taken over every trust,
    the excluded ones included (statistics/expected.py).

    statistical-methods.md §5: adjusted value = O/E × the national rate of the fitted trusts. One trust with a
    missing covariate and a rate ten times the others' is excluded from the fit: the national rate is computed
    by hand from the other 29 trusts, and every adjusted value is O/E times it."""
    df = _fit_frame()
    df.loc[7, "imd"] = np.nan
    df.loc[7, "y"] = df.loc[7, "n"] * 0.1
    den = "n" if with_denominator else None
    res = expected.ExpectedModel(df, "y", den, "poisson", ["imd"], multiplier=1000 if with_denominator else 1).fit()
    fitted = df.drop(index=7)
    if with_denominator:
        national = fitted["y"].sum() / fitted["n"].sum() * 1000
    else:
        national = fitted["y"].sum() / len(fitted)
    assert res.fit_info["n_excluded"] == 1
    assert res.national_rate == pytest.approx(national, rel=1e-12)
    t = res.table.set_index("trust_code").drop(index="T07")
    np.testing.assert_allclose(t["adjusted_value"], t["oe"] * national, rtol=1e-12)


# -------------------------------------------------------------------------------------------- manifest and verify
def _quarter_folder(root, ods: bytes = b"PK ods") -> None:
    for rel, data in {
        "index.html": b"<html></html>",
        "methodology.html": b"<html>m</html>",
        "trusts/DEMO-A01.html": b"<html>a</html>",
        "tables/league_table.csv": b"trust_code\nA\n",
        "tables/league_tables_2025-26-Q4.ods": ods,
        "notebooks/report.ipynb": b"{}",
        "manifest.json": b"{}",
        "_work/context.json": b"{}",
        "review/screenshot.png": b"png",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_every_published_file_is_hashed_in_the_manifest_spreadsheet_included(tmp_path):
    """Mutant: the ``.ods`` spreadsheet left out of the published files (run/publish.py), so of the manifest's
    SHA-256 list and of --verify. Every file of a quarter is published except the working folder, review
    artefacts and the manifest itself; a rerun whose spreadsheet differs is a difference."""
    _quarter_folder(tmp_path / "a")
    rel = [p.relative_to(tmp_path / "a").as_posix() for p in published_files(tmp_path / "a")]
    assert rel == sorted(
        [
            "index.html",
            "methodology.html",
            "notebooks/report.ipynb",
            "tables/league_table.csv",
            "tables/league_tables_2025-26-Q4.ods",
            "trusts/DEMO-A01.html",
        ]
    )
    _quarter_folder(tmp_path / "b", ods=b"PK other")
    diff = compare_folders(tmp_path / "a", tmp_path / "b")
    assert [d.path for d in diff.differences] == ["tables/league_tables_2025-26-Q4.ods"]


def test_verify_lists_added_and_removed_rows(tmp_path):
    """Mutants: --verify not listing rows removed from or added to a table (run/verify.py). A rerun whose league
    table lost trust B and gained trust D is reported row by row, on the table's key."""
    old = "trust_code,segment,rank\nA,1,1\nB,2,2\nC,3,3\n"
    new = "trust_code,segment,rank\nA,1,1\nC,3,3\nD,2,2\n"
    for name, text in (("a", old), ("b", new)):
        (tmp_path / name / "tables").mkdir(parents=True)
        (tmp_path / name / "tables" / "league_table.csv").write_text(text, encoding="utf-8")
    a, b = (read_text_table(tmp_path / n / "tables" / "league_table.csv") for n in "ab")
    assert compare_tables(a, b) == ["row trust_code=B: removed", "row trust_code=D: added"]
    diff = compare_folders(tmp_path / "a", tmp_path / "b")
    assert len(diff.differences) == 1 and not diff.identical
    assert diff.differences[0].summary == "2 row(s) differ"
    assert diff.differences[0].details == ["row trust_code=B: removed", "row trust_code=D: added"]


# ------------------------------------------------------------------------------- bootstrap: override and level
def _long(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trust_code", "metric_id", "score"]).assign(weight=1.0)


def test_the_financial_override_applies_in_every_bootstrap_replicate(demo_inputs):
    """Mutants: the financial override left out of NHS England's likely-range bootstrap (nof/scoring.py) or of the
    sampling bootstrap (statistics/sampling.py). nof-methodology.md: a trust in segment 1 or 2 in deficit is
    moved to segment 3 — in every replicate, since the deficit flag is fixed.

    Hand-worked (joint bootstrap): A and B have the same scores (all 1, so segment 1 in every replicate), A is
    in deficit: P(segment 3) is 1 for A and P(segment 1) is 1 for B. Demo quarter (sampling): in no replicate
    is a trust in deficit in segment 1 or 2, on the vectorised path (the reference path would hide a bug in it)."""
    df = _long([(t, f"M{j}", v) for t, v in zip("ABCD", (1.0, 1.0, 3.0, 4.0)) for j in range(3)])
    typ = pd.Series("X", index=list("ABCD"))
    deficit = pd.Series([True, False, False, False], index=list("ABCD"))
    no = pd.Series(False, index=list("ABCD"))
    got = scoring.joint_bootstrap(
        df, typ, deficit, no, scoring.LeagueRules("fixed_thresholds", (1.5, 2.5, 3.5)), replicates=50, seed=1
    ).set_index("trust_code")
    assert got.loc["A", "p_segment_3"] == 1.0 and got.loc["B", "p_segment_1"] == 1.0

    cat, meth = load_catalogue("demo"), load_methodology("nof-2025-26")
    seg = meth.segmentation
    qd = sampling.quarter_data(
        demo_inputs,
        cat,
        demo_inputs.quarters()[-1],
        segmentation_rule=seg.rule,
        thresholds=seg.thresholds,
        combine_rules=league.combine_rules(cat),
        pool_types=seg.pool_types,
    )
    assert qd.in_deficit.any() and qd.override_from == (1, 2) and qd.override_to == 3
    values = sampling.draw_values(qd, 5, 40)
    reps = sampling.league_replicates(qd, values, check=0)
    assert reps.path == "vectorised"
    segments = reps.segment[:, qd.in_deficit]
    assert not np.isin(segments, qd.override_from).any()


def test_the_likely_range_has_the_level_it_is_labelled_with():
    """Mutant: the likely range's percentiles not those of its level — tail (1 − level)·100 instead of
    (1 − level)/2·100, a 90% range labelled 95% (nof/scoring.py).

    Hand-worked: scores 1 and 3 (k = 2) resample to a mean of 1, 2 or 3 with probability ¼, ½, ¼. A 60% range is
    the 20th to 80th percentile: 1 to 3; the mutant's 40th to 60th is 2 to 2. A 99% range is 1 to 3 as well."""
    df = _long([("A", "M1", 1.0), ("A", "M2", 3.0)])
    for level in (0.6, 0.99):
        got = scoring.likely_range_average(df, replicates=4000, seed=1, level=level).set_index("trust_code")
        assert got.loc["A"].tolist() == [1.0, 3.0], level


# -------------------------------------------------------------------------------- the mutants still apply
def test_every_mutant_of_make_mutation_gaps_still_applies(monkeypatch):
    """Each mutant's text occurs exactly once in its file and names tests of this module that exist: code that moved
    (a refactor rewrote ``scoring.joint_bootstrap``'s override line once) fails here, in ``make test``, rather than
    leaving ``make mutation-gaps`` to report it not applied."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("mutation_gaps", root / "scripts" / "mutation_gaps.py")
    assert spec is not None and spec.loader is not None
    gaps = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutation_gaps", gaps)  # its dataclass looks its module up there
    spec.loader.exec_module(gaps)
    names = set(globals())
    for m in gaps.MUTANTS:
        text = (gaps.SRC / m.path).read_text(encoding="utf-8")
        assert text.count(m.old) == 1, f"{m.id}: {m.old!r} occurs {text.count(m.old)} times in {m.path}"
        for node in m.tests:
            path, name = node.split("::")
            assert path == gaps.GAPS and name.split("[")[0] in names, (m.id, node)
