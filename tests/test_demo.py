"""The synthetic demo: deterministic, fictional, complete, and valid against the data contract."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import assert_refused_edits

from leaguetables.config import CONFIG_DIR, load_demo_models
from leaguetables.inputs import demo
from leaguetables.inputs.records import geography


def test_demo_is_deterministic_for_a_seed():
    a, b = demo.generate(7), demo.generate(7)
    for k in a:
        pd.testing.assert_frame_equal(a[k], b[k])
    assert not demo.generate(8)["observations"].equals(a["observations"])


def test_demo_trusts_are_obviously_fictional_and_counted(demo_inputs):
    t = demo_inputs.trusts
    icbs = {"icb": 42} if geography.available() else {}  # the record-level part needs the real geography
    assert t["trust_type"].value_counts().to_dict() == {
        "acute": 134,
        "mental_health_community": 61,
        "ambulance": 10,
        **icbs,
    }
    assert t["trust_code"].str.fullmatch(r"DEMO-([AMB]\d{3}|I\d{2})").all(), "codes cannot collide with ODS (hyphen)"
    assert t["trust_name"].str.contains(" Demo ").all()
    assert not t["trust_name"].str.contains(r"\bNHS\b").any()


def test_demo_has_sixteen_quarters_all_metrics_suppressed_missing_and_deficits(demo_inputs):
    obs = demo_inputs.observations
    assert demo_inputs.quarters() == demo.QUARTERS
    assert obs["metric_id"].nunique() >= 20
    assert obs["suppressed"].sum() > 0
    expected_rows = sum(
        1 for m in demo.load_catalogue("demo").metrics for t in demo_inputs.trusts["trust_type"] if t in m.trust_types
    ) * len(demo.QUARTERS)
    assert len(obs) < expected_rows, "a few rows are missing (not submitted)"
    st = demo_inputs.status
    assert st["deficit"].mean() > 0.1 and st["improvement_programme"].sum() > 0


def test_demo_truth_is_saved(demo_dir):
    coef = pd.read_csv(demo_dir / "truth" / "coefficients.csv")
    assert {"metric_id", "trust_type", "term", "value"} <= set(coef.columns)
    assert set(coef.loc[coef["metric_id"] == "ae_4hr", "term"]) >= {"Intercept", "imd_score", "share_65plus"}
    eff = pd.read_csv(demo_dir / "truth" / "trust_effects.csv")
    assert eff["trust_code"].str.match(r"DEMO-").all()
    assert "fixed seed" in (demo_dir / "README.md").read_text() or re.search(
        r"--seed \d+", (demo_dir / "README.md").read_text()
    )


def test_demo_has_enough_quarters_for_spc_and_keeps_the_report_quarters():
    assert len(demo.QUARTERS) >= 15
    assert demo.QUARTERS[-2:] == ["2025-26-Q3", "2025-26-Q4"]
    assert demo.QUARTERS == sorted(demo.QUARTERS)


def test_standard_quarters_are_byte_identical_to_the_eight_quarter_demo():
    """Known answer: the SHA-256 of observations.csv and status.csv written by the original eight-quarter generator
    (``python -m leaguetables.inputs.demo`` at commit 88f640b, seed 20240401). The extra quarters come from a second random
    stream, so every demo figure of 2024-25-Q1 … 2025-26-Q4 (and every test that uses them) is unchanged."""
    d = demo.generate()
    want = {
        "observations": "2ee617c20b08e1ac169ccab3a9b9b301c3df547d88c62c55db8f06e9d3ce0ff7",
        "status": "8ebe4cb0b9ed62522bbaaadb58e53296854f5b41fe4653b061e7f7b840a1af8c",
    }
    for k, sha in want.items():
        df = d[k][d[k]["quarter"].isin(demo.STANDARD_QUARTERS)]
        data = df.to_csv(index=False, lineterminator="\n", float_format="%.10g").encode()
        assert hashlib.sha256(data).hexdigest() == sha, k


def test_noise_seed_redraws_only_the_sampling_noise():
    a, b = demo.generate(11, noise_seed=1), demo.generate(11, noise_seed=2)
    for k in ("trusts", "demographics", "status", "truth/values", "truth/trust_effects"):
        pd.testing.assert_frame_equal(a[k], b[k])
    oa, ob = a["observations"], b["observations"]
    pd.testing.assert_series_equal(oa["value"], ob["value"])  # reported values are part of the truth
    pd.testing.assert_series_equal(oa["denominator"], ob["denominator"])
    assert (oa["numerator"] != ob["numerator"]).mean() > 0.5


def test_true_values_are_the_mean_of_the_simulated_counts():
    """Simulation test of the saved truth: over 20 noise seeds the mean numerator of every trust-metric equals
    ``truth/values.true_numerator`` (binomial and Poisson are unbiased; the gamma mixing has mean 1), and
    ``true_oe = true_numerator / true_expected``. Standardised mean differences beyond 6 (a 6-SD miss of the mean
    of 20 draws), or a mean difference beyond 0.1 SD over the ~2,200 trust-metrics, would mean the truth and the
    data disagree. (40 seeds until issue 13: with 20 the largest |z| is 4.9 and the mean z −0.05; a truth 0.5% off
    the simulated counts gives a mean z of ±2.1, 1% off ±4.)"""
    q = "2025-26-Q4"
    runs = [demo.generate(3, noise_seed=s) for s in range(20)]
    tv = runs[0]["truth/values"]
    tv = tv[(tv["quarter"] == q) & tv["true_numerator"].notna()].set_index(["trust_code", "metric_id"])
    np.testing.assert_allclose(tv["true_oe"], tv["true_numerator"] / tv["true_expected"], rtol=1e-12)
    xs = pd.concat(
        [
            r["observations"][r["observations"]["quarter"] == q].set_index(["trust_code", "metric_id"])["numerator"]
            for r in runs
        ],
        axis=1,
    )
    xs = xs.loc[xs.index.intersection(tv.index)].dropna()
    m = tv.loc[xs.index, "true_numerator"]
    z = (xs.mean(axis=1) - m) / (xs.std(axis=1, ddof=1).clip(lower=0.5) / np.sqrt(xs.shape[1]))
    assert len(z) > 2000
    assert z.abs().max() < 6 and abs(z.mean()) < 0.1, (z.abs().max(), z.mean())


def test_funnel_scale_outliers_are_three_sds_of_the_trusts_own_funnel():
    """Funnel scale: the planted effect is k·√(between-trust variance + within-trust variance / pooled quarters).
    Checked against the truth the generator saves, for a Poisson metric (within variance 1/E*, E* the true
    expected count of the last quarter — the generator uses the quarter's expected activity, without the ±5%
    season and activity noise, hence the 6% tolerance) pooled over 4 quarters, and a binomial one (1/(n·p·(1−p)))."""
    code_c, code_a = "DEMO-A003", "DEMO-A002"
    d = demo.generate(
        11,
        noise_seed=1,
        outliers=[("cdiff", code_c, -3.0), ("ae_4hr", code_a, 3.0)],
        outlier_scale="funnel",
        outlier_quarters={"cdiff": 4},
    )
    eff = d["truth/trust_effects"].set_index(["metric_id", "trust_code"])["effect"]
    last = d["truth/values"]
    last = last[last["quarter"] == demo.QUARTERS[-1]].set_index(["metric_id", "trust_code"])
    e_star = last.loc[("cdiff", code_c), "true_expected"]
    want_c = -3 * np.sqrt(demo.SPEC["cdiff"]["sd"] ** 2 + 1 / e_star / 4)
    assert eff[("cdiff", code_c)] == pytest.approx(want_c, rel=0.06)
    assert abs(eff[("cdiff", code_c)]) > 3 * demo.SPEC["cdiff"]["sd"] * 1.2  # rare: sampling variation dominates
    n, e = last.loc[("ae_4hr", code_a), ["denominator", "true_expected"]]
    p0 = e / n
    want_a = 3 * np.sqrt(demo.SPEC["ae_4hr"]["sd"] ** 2 + 1 / (n * p0 * (1 - p0)))
    assert eff[("ae_4hr", code_a)] == pytest.approx(want_a, rel=0.06)
    scen = d["truth/scenario"].set_index("argument")["value"]
    assert scen["outlier_scale"] == "funnel" and scen["outlier_quarters"] == "cdiff=4"
    with pytest.raises(ValueError, match="outlier_scale"):
        demo.generate(11, outliers=[("cdiff", code_c, 3.0)], outlier_scale="total")


def test_scenarios_plant_outliers_changes_and_over_adjustment():
    d = demo.generate(11, noise_seed=1, outliers=[("ae_4hr", "DEMO-A002", 3.0), ("cdiff", "DEMO-A003", -3.0)])
    eff = d["truth/trust_effects"].set_index(["metric_id", "trust_code"])["effect"]
    assert eff[("ae_4hr", "DEMO-A002")] == pytest.approx(3 * demo.SPEC["ae_4hr"]["sd"])
    assert eff[("cdiff", "DEMO-A003")] == pytest.approx(-3 * demo.SPEC["cdiff"]["sd"])
    assert len(d["truth/planted"]) == 2

    pair = ("2025-26-Q3", "2025-26-Q4")
    h = demo.generate(11, noise_seed=1, change_quarters=pair, hold_quarters=True, change=[("DEMO-A001", 2.0)])
    tv = h["truth/values"].set_index(["quarter", "trust_code", "metric_id"])
    before, after = tv.loc[pair[0]], tv.loc[pair[1]]
    moved = (after["true_value"] - before["true_value"]).abs() > 1e-9
    assert set(moved[moved].index.get_level_values("trust_code")) == {"DEMO-A001"}
    for m in ("ae_4hr", "rtt_18wk"):  # better: a higher share within the standard
        assert after.loc[("DEMO-A001", m), "true_value"] > before.loc[("DEMO-A001", m), "true_value"]
    assert after.loc[("DEMO-A001", "ae_12hr"), "true_value"] < before.loc[("DEMO-A001", "ae_12hr"), "true_value"]
    obs = h["observations"].set_index(["quarter", "trust_code", "metric_id"])
    ob, oa = obs.loc[pair[0]], obs.loc[pair[1]]
    assert ob.index.equals(oa.index) and ob["suppressed"].equals(oa["suppressed"])
    pd.testing.assert_series_equal(ob["denominator"], oa["denominator"])
    st = h["status"].set_index(["quarter", "trust_code"])
    assert st.loc[pair[0]].equals(st.loc[pair[1]])

    o = demo.generate(11, quality_deprivation_r=0.5, deprivation_effect=False)
    coef = o["truth/coefficients"]
    assert (coef.loc[coef["term"] == "imd_score", "value"] == 0).all()
    e = o["truth/trust_effects"].merge(o["demographics"], on="trust_code").merge(o["trusts"], on="trust_code")
    e = e[(e["trust_type"] == "acute") & (e["metric_id"] == "rtt_18wk")]  # q = 0.6: corr ≈ -0.6 × 0.5
    assert np.corrcoef(e["effect"], e["imd_score"])[0, 1] < -0.15
    with pytest.raises(ValueError):
        demo.generate(11, change=[("DEMO-A001", 2.0)])


def test_metric_models_are_read_strictly_from_their_file(tmp_path):
    """``config/demo/metric-models.yaml`` holds the generator's parameters (a Poisson ``rate`` becomes the intercept
    log ``rate``: MRSA 1.6 per 100,000 bed days); a metric without a parameter its kind needs, or with an unknown
    one, is one error naming the file."""
    assert demo.SPEC["mrsa"]["alpha"] == np.log(1.6e-5) and "rate" not in demo.SPEC["mrsa"]
    assert demo.SPEC["ae_4hr"]["beta"] == {
        "share_65plus": -0.10,
        "share_85plus": -0.08,
        "imd_score": -0.12,
        "rural_share": 0.05,
    }
    assert set(demo.SPEC) == set(load_demo_models())
    good = (CONFIG_DIR / "demo" / "metric-models.yaml").read_text(encoding="utf-8")
    cases = [
        (good.replace("mrsa: {kind: poisson, rate: 1.6e-5, ", "mrsa: {kind: poisson, "), "poisson metric needs rate"),
        (good.replace("cqc_safe: {kind: bracket, q: 0.7}", "cqc_safe: {kind: bracket, q: 0.7, z: 1}"), "z"),
        (good.replace("q: 0.7}", "q: 1.7}"), "less than or equal to 1"),
    ]
    assert_refused_edits(load_demo_models, tmp_path / "models.yaml", cases)


def test_a_stamped_demo_folder_is_used_only_as_stamped(tmp_path):
    """``demo_stamp.made_with`` (the tests' use of the Makefile's ``data/demo``): true for a folder exactly as
    stamped, false once a file is edited, added or removed, for another fingerprint, for data of another seed, and
    without a stamp. The expected answers follow from the rule itself (no reference figures)."""
    import demo_stamp

    folder = tmp_path / "demo"
    folder.mkdir()
    marker = folder / demo.DEMO_MARKER
    marker.write_text(json.dumps({"source": "demo", "seed": demo.DEFAULT_SEED}), encoding="utf-8")
    (folder / "observations.csv").write_text("quarter,metric_id\n", encoding="utf-8")
    fp = demo_stamp.fingerprint()
    assert not demo_stamp.made_with(folder, fp)  # no stamp yet
    demo_stamp.write_stamp(folder)
    assert demo_stamp.made_with(folder, fp)
    assert not demo_stamp.made_with(folder, "0" * 64)
    (folder / "observations.csv").write_text("quarter,metric_id\nx,y\n", encoding="utf-8")
    assert not demo_stamp.made_with(folder, fp)
    (folder / "observations.csv").write_text("quarter,metric_id\n", encoding="utf-8")
    assert demo_stamp.made_with(folder, fp)
    (folder / "extra.csv").write_text("", encoding="utf-8")
    assert not demo_stamp.made_with(folder, fp)
    (folder / "extra.csv").unlink()
    marker.write_text(json.dumps({"source": "demo", "seed": demo.DEFAULT_SEED + 1}), encoding="utf-8")
    demo_stamp.write_stamp(folder)
    assert not demo_stamp.made_with(folder, fp)
