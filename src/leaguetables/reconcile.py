"""Reconcile the project's NOF scoring with NHS England's published NOF 2025/26 files (backtest).

``python -m leaguetables.reconcile [--nof-dir DIR] [--out DIR] [--replicates B] [--seed S]``

Recomputes, for every quarter in the published data file, everything that can be recomputed from the
published figures with :mod:`leaguetables.scoring`:

* league ranks from the published adjusted segments (OF5000) and averages (OF5002);
* the financial override: adjusted segment from the unadjusted segment (OF5003) and the deficit flag (OF5004);
* segment 5 (Q1–Q2, where published): final segment (OF5005) from OF5000 and the programme flag (OF5007);
* the combined finance score (OF1080) from OF1079 and OF1081;
* average metric scores (OF5002) and domain scores (OF40xx) from the published metric scores;
* segments (OF5003) from within-type quartiles of the published averages, and domain segments (OF41xx);
* the staff-survey scores OF1061 and OF1084 from the published values OF0061 and OF0084;
* for the quarter of the league-table file (Q4): the likely ranges of average and rank by bootstrap.

Writes to ``--out`` (default ``reports/reconciliation/``): ``reconciliation.csv`` (one row per quarter ×
trust × quantity: published, recomputed, difference, tolerance, status ``exact`` / ``within_rounding`` /
``differs``), ``summary.csv`` (counts per quarter × quantity), ``segments.csv`` (segment sizes and cut
points per quarter) and ``summary.md``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables import scoring
from leaguetables.sources import nof

__all__ = ["DEFAULT_OUT", "REPLICATES", "SEED", "Reconciliation", "compare", "reconcile", "write_outputs", "main"]

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "reports" / "reconciliation"
#: Bootstrap settings of the likely-range reconciliation. 50,000 replicates keep the Monte-Carlo error of a
#: 2.5th/97.5th percentile of a trust's average near ±0.003 (it is ±0.007 at 10,000), so the comparison
#: measures the method rather than our noise; it runs in about a second.
REPLICATES = 50_000
SEED = 20260331
STAFF_SURVEY = {"OF1061": "OF0061", "OF1084": "OF0084"}
_EPS = 1e-9


@dataclass
class Reconciliation:
    rows: pd.DataFrame
    summary: pd.DataFrame
    segments: pd.DataFrame
    markdown: str


def compare(quarter: str, quantity: str, published: pd.Series, recomputed: pd.Series, tolerance: float) -> pd.DataFrame:
    """Rows ``quarter, trust_code, quantity, published, recomputed, difference, tolerance, status``.

    Status: ``exact`` when equal (to 1e-9); ``within_rounding`` when ``|difference| ≤ tolerance`` (the
    tolerance column says what that means for the quantity: one unit of the published rounding, or the
    Monte-Carlo tolerance of a likely range); else ``differs`` (also when only one side is present). Trusts
    missing on both sides are left out.
    """
    idx = published.index.union(recomputed.index)
    pub = pd.to_numeric(published.reindex(idx), errors="coerce").astype(float)
    rec = pd.to_numeric(recomputed.reindex(idx), errors="coerce").astype(float)
    keep = pub.notna() | rec.notna()
    pub, rec = pub[keep], rec[keep]
    diff = rec - pub
    status = np.where(diff.abs() < _EPS, "exact", np.where(diff.abs() <= tolerance + _EPS, "within_rounding", "differs"))
    return pd.DataFrame({
        "quarter": quarter, "trust_code": pub.index.astype(str), "quantity": quantity,
        "published": pub.to_numpy(), "recomputed": rec.to_numpy(), "difference": diff.round(10).to_numpy(),
        "tolerance": tolerance, "status": status,
    })


def _feasible_cuts(average: pd.Series, segment: pd.Series) -> list[str]:
    """Interval of cut points consistent with the published segments (a trust on a cut → better segment)."""
    out = []
    for k in (1, 2, 3):
        lo = average[segment <= k].max()
        hi = average[segment > k].min()
        out.append(f"[{lo:.2f}, {hi:.2f})" if lo < hi else f"none ({lo:.2f} ≥ {hi:.2f})")
    return out


def reconcile(nof_dir: str | Path | None = None, replicates: int = REPLICATES, seed: int = SEED) -> Reconciliation:
    files = nof.find_nof_files(nof_dir)
    data = nof.read_nof_data(files.data)
    summ = nof.summary(data)
    scores = nof.scores_for_average(data)
    pub_scores = nof.metric_scores(data)
    values = nof.metric_values(data)
    domains = nof.domain_results(data)
    parts: list[pd.DataFrame] = []
    seg_rows: list[dict] = []

    for quarter, s in summ.groupby("quarter", sort=True):
        s = s.set_index("trust_code")
        false = pd.Series(False, index=s.index)
        deficit = s["in_financial_deficit"].astype(bool)

        # league rank from published segments and averages
        ranks = scoring.rank_league(s["segment"], s["average"], s["trust_type"])
        parts.append(compare(quarter, "rank", s["rank"], ranks["rank"], 0))

        # financial override
        adjusted, _ = scoring.apply_financial_override(s["unadjusted_segment"], deficit, false)
        parts.append(compare(quarter, "segment_after_override", s["segment"], adjusted, 0))

        # segment 5 (published in Q1–Q2 only)
        if s["final_segment"].notna().any():
            final = scoring.apply_segment_5(s["segment"], s["recovery_programme"].astype(bool))
            parts.append(compare(quarter, "segment_5", s["final_segment"], final, 0))

        # combined finance score
        q_pub = pub_scores[pub_scores["quarter"] == quarter].pivot(index="trust_code", columns="metric_id", values="score")
        combined = scoring.combine_finance(q_pub[nof.FINANCE_METRICS[0]], q_pub[nof.FINANCE_METRICS[1]])
        parts.append(compare(quarter, "combined_finance_score", q_pub[nof.COMBINED_FINANCE], combined, 0))

        # averages and domain scores from published metric scores
        q_scores = scores[scores["quarter"] == quarter]
        avg = scoring.average_scores(q_scores).set_index("trust_code")
        parts.append(compare(quarter, "average", s["average"], avg["average_score"], 0.01))
        dom = scoring.domain_scores(q_scores)
        pdom = domains[domains["quarter"] == quarter]
        for d in sorted(pdom["domain"].unique()):
            pd_d = pdom[pdom["domain"] == d].set_index("trust_code")
            rd = dom[dom["domain"] == d].set_index("trust_code")["domain_score"]
            parts.append(compare(quarter, f"domain_score: {d}", pd_d["domain_score"], rd, 0.01))
            dseg, _ = scoring.assign_segments(pd_d["domain_score"], s["trust_type"], "quartiles_within_type")
            parts.append(compare(quarter, f"domain_segment: {d}", pd_d["domain_segment"], dseg, 0))

        # segments from within-type quartiles of the published averages
        seg, cuts = scoring.assign_segments(s["average"], s["trust_type"], "quartiles_within_type")
        parts.append(compare(quarter, "segment_within_type_quartiles", s["unadjusted_segment"], seg, 0))
        for t, c in cuts.items():
            m = s["trust_type"] == t
            on_cut = s.index[m & s["average"].isin(c)]
            seg_rows.append({
                "quarter": quarter, "trust_type": t, "n": int(m.sum()),
                "published_sizes": "/".join(str(int((s.loc[m, "unadjusted_segment"] == k).sum())) for k in range(1, 5)),
                "quartile_sizes": "/".join(str(int((seg[m] == k).sum())) for k in range(1, 5)),
                "cut_1": c[0], "cut_2": c[1], "cut_3": c[2],
                "trusts_on_a_cut": " ".join(sorted(on_cut)),
                "mismatches": " ".join(sorted(s.index[m & (seg != s["unadjusted_segment"]).fillna(True)])),
                "published_cut_intervals": " ".join(_feasible_cuts(s.loc[m, "average"], s.loc[m, "unadjusted_segment"])),
            })

        # staff-survey scores from published values (ties in the 2-dp values broken by the published rank)
        q_vals = values[values["quarter"] == quarter]
        for score_id, value_id in STAFF_SURVEY.items():
            v = q_vals[q_vals["metric_id"] == value_id].set_index("trust_code")
            rec = scoring.score_ranked(v["value"], "higher_better", tiebreak=v["rank"])
            parts.append(compare(quarter, f"staff_survey_score: {score_id}", q_pub[score_id], rec, 0))

    # likely ranges, for the quarter(s) of the league-table file
    if files.league_table is not None:
        lt = nof.read_league_table(files.league_table)
        for quarter, league in lt.groupby("quarter", sort=True):
            league = league.set_index("trust_code")
            s = summ[summ["quarter"] == quarter].set_index("trust_code")
            boot = scoring.joint_bootstrap(
                scores[scores["quarter"] == quarter], s["trust_type"], s["in_financial_deficit"].astype(bool),
                pd.Series(False, index=s.index), "quartiles_within_type", replicates=replicates, seed=seed,
            ).set_index("trust_code")
            for col, tol in (("average_lower", 0.02), ("average_upper", 0.02), ("rank_lower", 1), ("rank_upper", 1)):
                parts.append(compare(quarter, f"likely_range: {col}", league[col], boot[col], tol))
            parts.append(compare(quarter, "league_table: average", league["average_score"], s["average"], 0))
            parts.append(compare(quarter, "league_table: rank", league["rank"], s["rank"], 0))

    rows = pd.concat(parts, ignore_index=True).sort_values(["quarter", "quantity", "trust_code"], ignore_index=True)
    summary = _summarise(rows)
    segments = pd.DataFrame(seg_rows)
    return Reconciliation(rows, summary, segments, _markdown(summary, segments, rows, replicates, seed, files))


def _summarise(rows: pd.DataFrame) -> pd.DataFrame:
    counts = rows.groupby(["quarter", "quantity", "status"]).size().unstack("status", fill_value=0)
    for c in ("exact", "within_rounding", "differs"):
        if c not in counts:
            counts[c] = 0
    counts = counts[["exact", "within_rounding", "differs"]]
    counts.insert(0, "n", counts.sum(axis=1))
    counts["share_exact"] = (counts["exact"] / counts["n"]).round(4)
    counts["share_within_tolerance"] = ((counts["exact"] + counts["within_rounding"]) / counts["n"]).round(4)
    tol = rows.groupby(["quarter", "quantity"])["tolerance"].first()
    counts.insert(1, "tolerance", tol)
    return counts.reset_index()


_EXPLAIN = {
    "rank": "Rank within type by published adjusted segment (OF5000, 1–4) then published average (OF5002), "
            "competition ranking.",
    "segment_after_override": "Segment 1–2 → 3 where OF5004 = 1. OF5004 is set for every trust in deficit "
                              "(or on deficit support) whatever its segment, so it is the override's input.",
    "segment_5": "OF5005 = 5 exactly where OF5007 (Recovery Support Programme) = 1, else OF5000.",
    "combined_finance_score": "OF1080 = OF1081 score one step better if OF1079 = 1 (plans breakeven or "
                              "surplus), one step worse otherwise, within 1–4.",
    "average": "Mean of the published metric scores, finance once (combined), rounded half up. The ±0.01 "
               "differences: NHS England averages unrounded metric scores; the file shows them to 2 dp.",
    "segment_within_type_quartiles": "Quartiles (numpy default) of the published averages within the type; a "
                                     "trust on a cut point goes to the better segment.",
}


def _markdown(summary: pd.DataFrame, segments: pd.DataFrame, rows: pd.DataFrame, replicates: int, seed: int,
              files: nof.NofFiles) -> str:
    def cell(r) -> str:
        return f"{r.exact} / {r.within_rounding} / {r.differs}"

    table = summary.assign(cell=[cell(r) for r in summary.itertuples()])
    wide = table.pivot(index="quantity", columns="quarter", values="cell").fillna("–")
    tol = summary.groupby("quantity")["tolerance"].first()
    wide.insert(0, "tolerance", tol.map(lambda t: "0" if t == 0 else f"{t:g}"))
    lines = [
        "# Reconciliation with NHS England's published NOF 2025/26 files (mental health and community trusts)",
        "",
        f"Source: `{files.data.name}`" + (f" and `{files.league_table.name}`" if files.league_table else "")
        + " (read in place, never copied). Produced by `python -m leaguetables.reconcile`.",
        f"Likely ranges: joint bootstrap, {replicates:,} replicates, seed {seed}, cut points of the quarter held fixed.",
        "",
        "Counts per quantity and quarter: **exact / within tolerance / differs** (tolerance 0.01 = one unit "
        "of the published 2-dp rounding; 0.02 and 1 rank for the Monte-Carlo likely ranges).",
        "",
        _md_table(wide.reset_index()),
        "",
        "## What matches and why",
        "",
    ]
    for q, text in _EXPLAIN.items():
        lines.append(f"- **{q}** — {text}")
    lines += [
        "- **staff_survey_score** — `score = 1 + 3(r − 1)/(n − 1)`, n = 61, r the rank of the published value "
        "(higher is better). The published values are rounded to 2 dp and tie where the unrounded values do not "
        "(the published ranks never tie), so ties among equal published values are broken by the published rank; "
        "with min-rank ties on the rounded values alone only 40–54 of 61 trusts match per quarter and metric.",
        "- **domain_score** — weighted mean of the domain's scores (combined finance once); ±0.01 as for the average.",
        "- **domain_segment** — does *not* reproduce from within-type quartiles of the published domain scores: "
        "NHS England's domain cut points come from another population or rule **[open]**; context only.",
        "- **likely_range** — 95% percentile bootstrap of each trust's own scores (average) and the joint "
        "bootstrap re-segmenting and re-ranking the whole type (rank). Holding the quarter's cut points fixed "
        "reproduces every published rank range within ±1; recomputing the quartiles in each replicate puts the "
        "lower bound of 4 override trusts (R1L, RT1, RWR, RXE) 2 ranks too high.",
        "",
        "## Segments: sizes and cut points",
        "",
        _md_table(segments),
        "",
        "`published_cut_intervals`: the cut points consistent with the published segments (trust on a cut → "
        "better segment). Q4: the within-type quartiles 2.11 / 2.29 / 2.57 reproduce every trust except the "
        "three whose average is exactly the lowest cut point 2.11, which NHS England put in segment 2 while "
        "trusts exactly on 2.29 and 2.57 went to the better segment; no single tie rule on the 61 published "
        "averages reproduces all 61. Such a trust's segment depends on its unrounded average, which the file "
        "does not give **[open]**. Q1–Q3: the published segment sizes are not quartiles of the 61 published "
        "trusts; NHS England's cut points there came from another population **[open]**.",
        "",
    ]
    differs = rows[rows["status"] == "differs"]
    interesting = differs[~differs["quantity"].str.startswith(("domain_segment", "segment_within_type"))]
    if not interesting.empty:
        lines += ["## Other differences", "", _md_table(interesting.head(40)), ""]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join("" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)) for v in row) + " |")
    return "\n".join(out)


def write_outputs(result: Reconciliation, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "reconciliation.csv", out / "summary.csv", out / "segments.csv", out / "summary.md"]
    result.rows.to_csv(paths[0], index=False, lineterminator="\n")
    result.summary.to_csv(paths[1], index=False, lineterminator="\n")
    result.segments.to_csv(paths[2], index=False, lineterminator="\n")
    paths[3].write_text(result.markdown, encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaguetables.reconcile", description=__doc__.splitlines()[0])
    parser.add_argument("--nof-dir", type=Path, default=nof.DEFAULT_NOF_DIR,
                        help="folder with NHS England's NOF CSVs, or the real-data root holding it "
                             "(default: ../shared/data/real/nof_2025_26_q4_mhc beside the project)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: reports/reconciliation/)")
    parser.add_argument("--replicates", type=int, default=REPLICATES, help=f"bootstrap replicates (default {REPLICATES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    args = parser.parse_args(argv)
    try:
        result = reconcile(args.nof_dir, args.replicates, args.seed)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in write_outputs(result, args.out):
        print(p)
    s = result.summary
    print(s.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
