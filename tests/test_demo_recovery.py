"""The pipeline's demographic models recover the effects the demo data were drawn from (truth saved beside the
data by leaguetables.inputs.demo): a simulation test where the truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables import validate
from leaguetables.config import load_catalogue, load_methodology
from leaguetables.statistics import metrics

QUARTERS = ("2025-26-Q4", "2025-26-Q3")


@pytest.fixture(scope="module")
def fitted(demo_inputs):
    """compute_metric of every adjusted metric in two quarters, without the peer columns and the history of earlier
    quarters (not read here; about half of compute_metric's time), as the simulation study runs it."""
    cat, meth = load_catalogue("demo"), load_methodology("nof-2025-26")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics, "_peers", validate._no_peers)
        mp.setattr(metrics, "history", validate._no_history)
        return {
            (m.id, q): metrics.compute_metric(demo_inputs, m, q, meth)
            for m in cat.metrics
            if m.adjustment
            for q in QUARTERS
        }


def test_true_coefficients_lie_in_their_95pc_intervals(fitted, demo_dir):
    """Source of the expected values: data/demo/truth/coefficients.csv, the coefficients per SD of each covariate
    within trust type used to draw the counts. With 95% intervals about 1 in 20 may miss; we require 85%."""
    truth = pd.read_csv(demo_dir / "truth" / "coefficients.csv")
    hits = []
    for (mid, _), res in fitted.items():
        for ttype, model in res.models.items():
            coef = model.coefficients.set_index("term")
            tr = truth[(truth["metric_id"] == mid) & (truth["trust_type"] == ttype)].set_index("term")["value"]
            for term in res.metric.adjustment.covariates:
                true = float(tr.get(term, 0.0))  # a covariate with no effect has true coefficient 0
                hits.append(coef.loc[term, "lower"] <= true <= coef.loc[term, "upper"])
    assert len(hits) >= 40
    assert np.mean(hits) >= 0.85, f"coverage {np.mean(hits):.2f} of {len(hits)} coefficients"


def test_observed_over_expected_tracks_the_true_trust_effect(fitted, demo_dir):
    """Source: data/demo/truth/trust_effects.csv. For A&E 4-hour (logit scale trust effect, SD 0.30) the log O/E
    of each trust should rank trusts as their true effects do."""
    effects = pd.read_csv(demo_dir / "truth" / "trust_effects.csv")
    eff = effects[effects["metric_id"] == "ae_4hr"].set_index("trust_code")["effect"]
    t = fitted[("ae_4hr", "2025-26-Q4")].table.dropna(subset=["oe"]).set_index("trust_code")
    rho = pd.Series(np.log(t["oe"])).corr(eff.reindex(t.index), method="spearman")
    assert rho > 0.8, rho
