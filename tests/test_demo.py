"""The synthetic demo: deterministic, fictional, complete, and valid against the data contract."""

from __future__ import annotations

import re

import pandas as pd

from leaguetables import demo


def test_demo_is_deterministic_for_a_seed():
    a, b = demo.generate(7), demo.generate(7)
    for k in a:
        pd.testing.assert_frame_equal(a[k], b[k])
    assert not demo.generate(8)["observations"].equals(a["observations"])


def test_demo_trusts_are_obviously_fictional_and_counted(demo_inputs):
    t = demo_inputs.trusts
    assert t["trust_type"].value_counts().to_dict() == {"acute": 134, "mental_health_community": 61, "ambulance": 10}
    assert t["trust_code"].str.fullmatch(r"DEMO-[AMB]\d{3}").all(), "codes cannot collide with ODS (hyphen)"
    assert t["trust_name"].str.contains(" Demo ").all()
    assert not t["trust_name"].str.contains(r"\bNHS\b").any()


def test_demo_has_eight_quarters_all_metrics_suppressed_missing_and_deficits(demo_inputs):
    obs = demo_inputs.observations
    assert demo_inputs.quarters() == demo.QUARTERS
    assert obs["metric_id"].nunique() >= 20
    assert obs["suppressed"].sum() > 0
    expected_rows = sum(1 for m in demo.load_catalogue("demo").metrics for t in demo_inputs.trusts["trust_type"]
                        if t in m.trust_types) * len(demo.QUARTERS)
    assert len(obs) < expected_rows, "a few rows are missing (not submitted)"
    st = demo_inputs.status
    assert st["deficit"].mean() > 0.1 and st["improvement_programme"].sum() > 0


def test_demo_truth_is_saved(demo_dir):
    coef = pd.read_csv(demo_dir / "truth" / "coefficients.csv")
    assert {"metric_id", "trust_type", "term", "value"} <= set(coef.columns)
    assert set(coef.loc[coef["metric_id"] == "ae_4hr", "term"]) >= {"Intercept", "imd_score", "share_65plus"}
    eff = pd.read_csv(demo_dir / "truth" / "trust_effects.csv")
    assert eff["trust_code"].str.match(r"DEMO-").all()
    assert "fixed seed" in (demo_dir / "README.md").read_text() or re.search(r"--seed \d+", (demo_dir / "README.md").read_text())
