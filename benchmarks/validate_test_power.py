"""Whether tests/test_validate.py's reduced study still fails on the wrong methods its bounds guard.

The unit test runs :func:`leaguetables.validate.run_study` with a few replicates and judges the figures against
bounds looser than the study's targets. This script runs the same reduced study with the project's methodology
and with each wrong method (a methodology setting that reproduces the statistic issue 10 found wrong), and prints
every figure beside the test's bound: the correct methodology must pass every bound, and each wrong method must
fail the bound that guards it.

    python benchmarks/validate_test_power.py                      # the test's sizes (tests/test_validate.py)
    python benchmarks/validate_test_power.py --standard 4 --change 2

The wrong methods (``WRONG``):

* ``oe_o_only``: O/E intervals from O alone around a fixed-effects E (no uncertainty of E, no extra within-trust
  variance) — guarded by ``test_oe_intervals_cover_the_true_oe`` (coverage ≥ 80%).
* ``funnel_spiegelhalter``: the SHMI / FunnelPlotR funnel of one quarter — guarded by
  ``test_funnels_flag_near_their_nominal_rate_with_no_true_outliers`` (2–10% at 95%, ≤ 1.5% at 99.8%).
* ``likely_ranges``: no sampling bootstrap (``uncertainty.method: none``): NHS England's likely ranges, segment
  shares and "beyond last quarter's likely range" — guarded by ``test_rank_intervals_cover_the_true_rank_near_95_
  percent`` (85–99.5%), ``test_segment_probabilities_near_the_bayes_oracle`` (Brier ≤ 1.6 × the oracle's) and
  ``test_change_test_has_a_real_size`` (0.5–12%).
* ``nhs_shares``: the sampling bootstrap runs (so the Bayes oracle is computed) but the league publishes NHS
  England's likely ranges and segment shares (``validate._rank_columns`` replaced) — the Brier ratio against the
  Bayes oracle of ``test_segment_probabilities_near_the_bayes_oracle`` (≤ 1.6) and the rank coverage (≤ 99.5%).
  (``likely_ranges`` has no Bayes oracle: the test's ``oracle ==`` assertion fails there, not its ratio.)
* ``productivity_single_quarter``: Better Care, Better Value's single-quarter observed O/E — guarded by
  ``test_productivity_total_is_close_to_the_truth`` (within ±20%).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from leaguetables import validate
from leaguetables.config import Methodology, load_catalogue, load_methodology


def _wrong(meth: Methodology, name: str) -> Methodology:
    if name == "oe_o_only":
        e = meth.expected.model_copy(update={"interval": "o_only", "model": "fixed", "within_variance": "sampling"})
        return meth.model_copy(update={"expected": e})
    if name == "funnel_spiegelhalter":
        f = meth.funnel.model_copy(update={"method": "spiegelhalter", "pool_quarters": 1})
        return meth.model_copy(update={"funnel": f})
    if name == "likely_ranges":
        return meth.model_copy(update={"uncertainty": meth.uncertainty.model_copy(update={"method": "none"})})
    if name == "productivity_single_quarter":
        p = meth.productivity.model_copy(update={"pool_quarters": 1, "estimate": "observed"})
        return meth.model_copy(update={"productivity": p})
    return meth


WRONG = {  # wrong method: the scenarios its figures need
    "correct": ("standard", "no_change"),
    "oe_o_only": ("standard",),
    "funnel_spiegelhalter": ("standard",),
    "likely_ranges": ("standard", "no_change"),
    "nhs_shares": ("standard",),
    "productivity_single_quarter": ("standard",),
}


def _nhs_columns(table: pd.DataFrame) -> tuple[str, str, list[str], str]:
    return "rank_lower", "rank_upper", [f"nof_p_segment_{k}" for k in range(1, 5)], "NHS England likely range"


def _bounds(t: dict[str, pd.DataFrame]) -> list[tuple[str, str, bool]]:
    """(figure, value, within the test's bound) for each bound of tests/test_validate.py."""
    out = []
    oe = t["oe_coverage"]
    judged = oe[oe["trust_type"].isin(["acute", "mental_health_community"])]
    low = float(judged["coverage"].min())
    out.append(("O/E coverage, lowest judged (≥ 0.80)", f"{low:.3f} of {len(judged)}", low >= 0.80))
    ft = t["funnel_rates"]
    for r in ft[ft["funnels"] > 0].itertuples():
        ok = 0.02 <= r.false_flag_95 <= 0.10 and r.false_flag_998 <= 0.015
        out.append(
            (f"funnel {r.data_type} false flags 95% / 99.8%", f"{r.false_flag_95:.3f} / {r.false_flag_998:.4f}", ok)
        )
    deg = int(t["degenerate_funnels"]["degenerate"].sum())
    out.append(("degenerate funnels (0)", str(deg), deg == 0))
    rc = t["rank_coverage"].set_index("trust_type")
    if "all" in rc.index:
        cov = float(rc.loc["all", "coverage"])
        out.append(("rank coverage (0.85–0.995)", f"{cov:.3f}", 0.85 <= cov <= 0.995))
        b = t["brier"].set_index("trust_type").loc["all"]
        out.append((f"Brier ratio to the oracle (≤ 1.6; {b['oracle']})", f"{b['ratio']:.3f}", b["ratio"] <= 1.6))
    ch = t["change_test"]
    if not ch.empty:
        size = float(ch.loc[ch["measure"].str.startswith("size") & (ch["trust_type"] == "all"), "rate"].iloc[0])
        out.append(("change-test size (0.005–0.12)", f"{size:.4f}", 0.005 <= size <= 0.12))
    pr = t["productivity"]
    bias = float(pr.loc[pr["metric_id"] == "(all)", "relative_bias"].iloc[0])
    out.append(("productivity relative bias (±0.20)", f"{bias:+.3f}", abs(bias) <= 0.20))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--standard", type=int, default=2, help="standard replicates (the test's: 2)")
    ap.add_argument("--change", type=int, default=1, help="no-change replicates (the test's: 1)")
    ap.add_argument("--sampling", type=int, default=200, help="sampling bootstrap replicates (the test's: 200)")
    ap.add_argument("--only", nargs="*", default=list(WRONG), choices=list(WRONG))
    a = ap.parse_args()
    base, cat = load_methodology("nof-2025-26"), load_catalogue("demo")
    base = base.model_copy(update={"uncertainty": base.uncertainty.model_copy(update={"check_replicates": 1})})
    v = base.validation.model_copy(
        update={"replicates": a.standard, "change_replicates": a.change, "sampling_replicates": a.sampling}
    )
    for name in a.only:
        meth = _wrong(base, name)
        c0 = time.process_time()
        published = validate._rank_columns
        if name == "nhs_shares":
            validate._rank_columns = _nhs_columns
        try:
            raw = validate.run_study(meth, cat, v, scenarios=WRONG[name], workers=1)
        finally:
            validate._rank_columns = published
        tables = validate.summarise(raw, meth, cat, v)
        print(f"{name} ({time.process_time() - c0:.0f} CPU-s, {a.standard} standard, {a.change} no-change)")
        for figure, value, ok in _bounds(tables):
            print(f"  {'pass' if ok else 'FAIL'}  {figure}: {value}")


if __name__ == "__main__":
    main()
