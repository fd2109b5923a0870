"""The NOF 2026/27 method as configuration (issue 11, point 5): fixed thresholds whose values must carry a source,
floors relative to a trust's own baseline, organisation kinds; and the refusals that keep unsourced or illustrative
thresholds away from real data. Expected numbers are hand-worked in each docstring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaguetables.config import load_catalogue, load_methodology
from leaguetables.errors import InputError
from leaguetables.nof import scoring
from leaguetables.run.pipeline import RunOptions, prepare


def test_2026_27_configs_load_with_organisation_kinds():
    """Both 2026/27 methodologies score providers and ICBs; the real one has no thresholds (unsourced), the demo
    one illustrative thresholds with their source text."""
    real = load_methodology("nof-2026-27")
    demo = load_methodology("nof-2026-27-illustrative")
    assert real.organisation_kinds == demo.organisation_kinds == ["provider", "icb"]
    assert real.segmentation.unsourced and not real.segmentation.illustrative
    assert demo.segmentation.illustrative and demo.segmentation.thresholds == [2.0, 2.4, 2.8]
    assert load_methodology("nof-2025-26").organisation_kinds == ["provider", "icb"]  # ICBs: the project's own
    rf = load_catalogue("demo-2026-27").metric("rtt_18wk").scoring.relative_floor
    assert (rf.improvement, rf.at_least, rf.baseline_quarters_back) == (7.0, 65.0, 4)
    assert rf.source.startswith("Illustrative")


def test_relative_floor_hand_worked():
    """'+7 points or 65%, whichever is greater': baselines 50, 62, 70, missing → floors 65, 69, 77, 65. Values
    66, 68, 80, 64: b (68 < 69) and d (64 < 65) fail → 4.00; a and c are spread 1.00–3.00 (n = 2): c 1.00, a 3.00.
    Lower is better ('+3 points or 20%'): baseline 30 → min(27, 20) = 20; baseline 15 → 12."""
    base = pd.Series({"a": 50.0, "b": 62.0, "c": 70.0, "d": np.nan})
    floor = scoring.relative_floor(base, "higher_better", 7, 65)
    assert floor.tolist() == [65.0, 69.0, 77.0, 65.0]
    vals = pd.Series({"a": 66.0, "b": 68.0, "c": 80.0, "d": 64.0})
    assert scoring.score_ranked(vals, "higher_better", floor=floor).tolist() == [3.0, 4.0, 1.0, 4.0]
    low = scoring.relative_floor(pd.Series({"x": 30.0, "y": 15.0}), "lower_better", 3, 20)
    assert low.tolist() == [20.0, 12.0]


@pytest.mark.parametrize(
    "methodology, source, message",
    [
        ("nof-2026-27", "demo", "not published in any source"),
        ("nof-2026-27-illustrative", "nof", "illustrative, not NHS England's"),
        ("nof-2026-27-illustrative", "nhse", "illustrative, not NHS England's"),
    ],
)
def test_refusals_one_line(tmp_path, methodology, source, message):
    """No thresholds → refused for every source; illustrative thresholds → refused on real data. One line."""
    with pytest.raises(InputError, match=message) as exc:
        prepare(RunOptions(quarter="2025-26-Q1", source=source, methodology=methodology, out=tmp_path), tmp_path)
    assert "\n" not in str(exc.value)


def test_illustrative_notice_text():
    """The notice every page of an illustrative run carries names the values and says they are not NHS England's."""
    from leaguetables.publication.report import thresholds_notice

    text = thresholds_notice(load_methodology("nof-2026-27-illustrative"))
    assert text.startswith("Illustrative segment thresholds (2, 2.4, 2.8): not NHS England's.")
    assert thresholds_notice(load_methodology("nof-2025-26")) == ""
