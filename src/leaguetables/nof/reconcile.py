"""Reconcile the project's NOF scoring with NHS England's published NOF 2025/26 files (backtest).

``python -m leaguetables.nof.reconcile [--nof-dir DIR] [--out DIR] [--replicates B] [--seed S]``

Recomputes, for every quarter in the published data file, everything that can be recomputed from the
published figures with :mod:`leaguetables.nof.scoring`:

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

from leaguetables.config import load_catalogue
from leaguetables.inputs.sources import nof
from leaguetables.nof import scoring
from leaguetables.statistics.metrics import STATUS_OK, _scores

__all__ = ["DEFAULT_OUT", "REPLICATES", "SEED", "Reconciliation", "compare", "reconcile", "write_outputs", "main"]

DEFAULT_OUT = Path(__file__).resolve().parents[3] / "reports" / "reconciliation"
#: Bootstrap settings of the likely-range reconciliation. 50,000 replicates keep the Monte-Carlo error of a
#: 2.5th/97.5th percentile of a trust's average near ±0.003 (it is ±0.007 at 10,000), so the comparison
#: measures the method rather than our noise; it runs in about a second.
REPLICATES = 50_000
SEED = 20260331
#: The catalogue of NHS England's metrics whose rules the reconciliation applies (config/catalogues/).
CATALOGUE = "nof-2025-26"
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
    status = np.where(
        diff.abs() < _EPS, "exact", np.where(diff.abs() <= tolerance + _EPS, "within_rounding", "differs")
    )
    return pd.DataFrame(
        {
            "quarter": quarter,
            "trust_code": pub.index.astype(str),
            "quantity": quantity,
            "published": pub.to_numpy(),
            "recomputed": rec.to_numpy(),
            "difference": diff.round(10).to_numpy(),
            "tolerance": tolerance,
            "status": status,
        }
    )


def _feasible_cuts(average: pd.Series, segment: pd.Series) -> list[str]:
    """Interval of cut points consistent with the published segments (a trust on a cut → better segment)."""
    out = []
    for k in (1, 2, 3):
        lo = average[segment <= k].max()
        hi = average[segment > k].min()
        out.append(f"[{lo:.2f}, {hi:.2f})" if lo < hi else f"none ({lo:.2f} ≥ {hi:.2f})")
    return out


def _trust_types(s: pd.DataFrame) -> pd.Series:
    return s["trust_type"]


def _files(nof_dir) -> dict[str, nof.NofFiles]:
    """The published files to reconcile: one NOF folder (``nof_dir`` holding a ``*-data.csv``), or every
    trust type found under a real-data root (default ``../shared/data/real``: acute Q1 + MH Q1–Q4)."""
    if nof_dir is not None:
        d = Path(nof_dir)
        if d.is_dir() and list(d.glob("*-data.csv")):
            f = nof.find_nof_files(d)
            types = nof.read_nof_data(f.data)["trust_type"].unique().tolist()
            return {types[0] if len(types) == 1 else "mixed": f}
        found = nof.find_all_nof_files(d) if d.is_dir() else {}
        if not found:
            nof.find_nof_files(d)  # raises FileNotFoundError naming the folder
        return found
    found = nof.find_all_nof_files()
    if not found:
        nof.find_nof_files(nof.DEFAULT_NOF_DIR)
    return found


def recompute_scores(obs: pd.DataFrame, catalogue) -> pd.DataFrame:
    """Every metric score recomputed from NHS England's published values with the catalogue's rules
    (:func:`leaguetables.statistics.metrics._scores`: comparator population, standard, floor, bands; ties in the 2-dp
    values broken by the published within-type Rank). Bracket metrics (score only published) are skipped.
    Returns ``trust_code, trust_type, metric_id, nof_score_id, score``."""
    out = []
    for m in catalogue.metrics:
        if m.statistic == "bracket" or m.scoring.method == "none":
            continue
        df = obs[obs["metric_id"] == m.id].reset_index(drop=True).copy()
        if df.empty:
            continue
        df["status"] = STATUS_OK
        score = _scores(df, m, "value")
        out.append(
            pd.DataFrame(
                {
                    "trust_code": df["trust_code"],
                    "trust_type": df["trust_type"],
                    "metric_id": m.id,
                    "nof_score_id": "OF1" + m.nof_id[3:],
                    "score": score.to_numpy(float),
                }
            )
        )
    return pd.concat(out, ignore_index=True)


def _with_type(rows: pd.DataFrame, trust_type: pd.Series) -> pd.DataFrame:
    """``rows`` (of :func:`compare`) with the trust type of each row's trust."""
    return rows.assign(trust_type=rows["trust_code"].map(trust_type))


def reconcile(
    nof_dir: str | Path | None = None, replicates: int = REPLICATES, seed: int = SEED, catalogue: str = CATALOGUE
) -> Reconciliation:
    """Reconcile every quarter of the published files found (see :func:`_files`), all trust types of a quarter
    together: comparator populations pooled as configured, segment cut points from the pooled averages of the
    types present (the within-type quartiles kept as a comparison)."""
    cat = load_catalogue(catalogue)
    found = _files(nof_dir)
    data = nof.read_all_nof_data(found)
    league_files = [f.league_table for f in found.values() if f.league_table is not None]
    summ = nof.summary(data)
    scores = nof.scores_for_average(data)
    published = {
        "scores": scores,
        "metric_scores": nof.metric_scores(data),
        "domains": nof.domain_results(data),
        "observations": nof.catalogue_observations(data, cat),
    }
    parts: list[pd.DataFrame] = []
    seg_rows: list[dict] = []
    for quarter, s in summ.groupby("quarter", sort=True):
        q_parts, q_segments = _reconcile_quarter(quarter, s.set_index("trust_code"), cat, published)
        parts += q_parts
        seg_rows += q_segments
    for lt_path in league_files:  # likely ranges, for the quarter(s) of the league-table file(s)
        parts += _likely_range_parts(lt_path, summ, scores, replicates, seed)
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[
        [
            "quarter",
            "trust_type",
            "trust_code",
            "quantity",
            "published",
            "recomputed",
            "difference",
            "tolerance",
            "status",
        ]
    ]
    rows = rows.sort_values(["quarter", "trust_type", "quantity", "trust_code"], ignore_index=True)
    summary = _summarise(rows)
    segments = pd.DataFrame(seg_rows)
    return Reconciliation(rows, summary, segments, _markdown(summary, segments, rows, replicates, seed, found))


def _reconcile_quarter(
    quarter: str, s: pd.DataFrame, cat, published: dict[str, pd.DataFrame]
) -> tuple[list[pd.DataFrame], list[dict]]:
    """The comparisons of one quarter (ranks, segments, scores, averages, domains) and its segment rows."""
    tt = s["trust_type"]
    present = sorted(tt.unique())
    parts: list[pd.DataFrame] = []

    def add(quantity, published_values, recomputed, tol):
        parts.append(_with_type(compare(quarter, quantity, published_values, recomputed, tol), tt))

    false = pd.Series(False, index=s.index)
    ranks = scoring.rank_league(s["segment"], s["average"], tt)
    add("rank", s["rank"], ranks["rank"], 0)
    adjusted, _ = scoring.apply_financial_override(
        s["unadjusted_segment"], s["in_financial_deficit"].astype(bool), false
    )
    add("segment_after_override", s["segment"], adjusted, 0)
    if s["final_segment"].notna().any():
        final = scoring.apply_segment_5(s["segment"], s["recovery_programme"].astype(bool))
        add("segment_5", s["final_segment"], final, 0)

    pub_scores = published["metric_scores"]
    q_pub = pub_scores[pub_scores["quarter"] == quarter].pivot(index="trust_code", columns="metric_id", values="score")
    combined = scoring.combine_finance(
        q_pub[nof.FINANCE_METRICS[0]], q_pub[nof.FINANCE_METRICS[1]], lookup=cat.combine_groups["finance"].lookup
    )
    add("combined_finance_score", q_pub[nof.COMBINED_FINANCE], combined, 0)

    # every metric score from the published values (pooled comparator populations where configured)
    obs_all = published["observations"]
    rec_scores = recompute_scores(obs_all[obs_all["quarter"] == quarter], cat)
    for sid, g in rec_scores.groupby("nof_score_id", sort=True):
        g = g.set_index("trust_code")
        add(f"score: {sid}", q_pub[sid].reindex(g.index), g["score"], 0)
    scores, domains = published["scores"], published["domains"]
    _add_averages_and_domains(
        add, s, tt, present, scores[scores["quarter"] == quarter], rec_scores, domains[domains["quarter"] == quarter]
    )
    return parts, _segment_rule_rows(add, quarter, s, tt, present)


def _add_averages_and_domains(
    add,
    s: pd.DataFrame,
    tt: pd.Series,
    present: list[str],
    q_scores: pd.DataFrame,
    rec_scores: pd.DataFrame,
    pdom: pd.DataFrame,
) -> None:
    """Averages from the published (and from the recomputed) metric scores; domain scores and segments."""
    avg = scoring.average_scores(q_scores).set_index("trust_code")
    add("average", s["average"], avg["average_score"], 0.01)
    # ... and from the recomputed scores where recomputed (published scores for the rest)
    rs = rec_scores.dropna(subset=["score"]).set_index(["trust_code", "nof_score_id"])["score"]
    mixed = q_scores.copy()
    key = list(zip(mixed["trust_code"], mixed["metric_id"]))
    mixed["score"] = [rs.get(k, v) for k, v in zip(key, mixed["score"])]
    avg2 = scoring.average_scores(mixed).set_index("trust_code")
    add("average_from_recomputed_scores", s["average"], avg2["average_score"], 0.01)
    dom = scoring.domain_scores(q_scores)
    for d in sorted(pdom["domain"].unique()):
        pd_d = pdom[pdom["domain"] == d].set_index("trust_code")
        rd = dom[dom["domain"] == d].set_index("trust_code")["domain_score"]
        add(f"domain_score: {d}", pd_d["domain_score"], rd, 0.01)
        dseg, _ = scoring.assign_segments(pd_d["domain_score"], tt, "quartiles_within_type")
        add(f"domain_segment: {d}", pd_d["domain_segment"], dseg, 0)
        dseg_p, _ = scoring.assign_segments(pd_d["domain_score"], tt, "quartiles_pooled", pool_types=present)
        add(f"domain_segment_pooled: {d}", pd_d["domain_segment"], dseg_p, 0)


def _segment_rule_rows(add, quarter: str, s: pd.DataFrame, tt: pd.Series, present: list[str]) -> list[dict]:
    """Segments by pooled quartiles of the types present (NHS England's rule) and, for comparison, within type:
    the comparisons, and one row of sizes and cut points per rule and type."""
    seg_p, cuts_p = scoring.assign_segments(s["average"], tt, "quartiles_pooled", pool_types=present)
    add("segment_pooled_quartiles", s["unadjusted_segment"], seg_p, 0)
    seg, cuts = scoring.assign_segments(s["average"], tt, "quartiles_within_type")
    add("segment_within_type_quartiles", s["unadjusted_segment"], seg, 0)
    population = scoring.segmentation_population(tt, s["average"], "quartiles_pooled", present)
    seg_rows = []
    for rule, sg, cc in (("quartiles_pooled", seg_p, cuts_p), ("quartiles_within_type", seg, cuts)):
        for t, c in cc.items():
            m = tt == t
            on_cut = s.index[m & s["average"].isin(c)]
            seg_rows.append(
                {
                    "quarter": quarter,
                    "trust_type": t,
                    "rule": rule,
                    "population": population if rule == "quartiles_pooled" else f"{t} ({int(m.sum())} trusts)",
                    "n": int(m.sum()),
                    "published_sizes": "/".join(
                        str(int((s.loc[m, "unadjusted_segment"] == k).sum())) for k in range(1, 5)
                    ),
                    "quartile_sizes": "/".join(str(int((sg[m] == k).sum())) for k in range(1, 5)),
                    "cut_1": round(c[0], 4),
                    "cut_2": round(c[1], 4),
                    "cut_3": round(c[2], 4),
                    "trusts_on_a_cut": " ".join(sorted(on_cut)),
                    "matched": int((sg[m] == s.loc[m, "unadjusted_segment"]).fillna(False).sum()),
                    "mismatches": " ".join(sorted(s.index[m & (sg != s["unadjusted_segment"]).fillna(True)])),
                    "published_cut_intervals": " ".join(
                        _feasible_cuts(s.loc[m, "average"], s.loc[m, "unadjusted_segment"])
                    ),
                }
            )
    return seg_rows


def _likely_range_parts(
    lt_path, summ: pd.DataFrame, scores: pd.DataFrame, replicates: int, seed: int
) -> list[pd.DataFrame]:
    """Published likely ranges (and league-table average and rank) against the joint bootstrap."""
    parts = []
    lt = nof.read_league_table(lt_path)
    for quarter, league in lt.groupby("quarter", sort=True):
        league = league.set_index("trust_code")
        s = summ[summ["quarter"] == quarter].set_index("trust_code")
        tt = s["trust_type"]
        present = sorted(tt.unique())
        boot = scoring.joint_bootstrap(
            scores[scores["quarter"] == quarter],
            tt,
            s["in_financial_deficit"].astype(bool),
            pd.Series(False, index=s.index),
            scoring.LeagueRules("quartiles_pooled", pool_types=present),
            replicates=replicates,
            seed=seed,
        ).set_index("trust_code")
        for col, tol in (("average_lower", 0.02), ("average_upper", 0.02), ("rank_lower", 1), ("rank_upper", 1)):
            parts.append(
                _with_type(
                    compare(quarter, f"likely_range: {col}", league[col], boot[col].reindex(league.index), tol), tt
                )
            )
        for col, pub in (("average", league["average_score"]), ("rank", league["rank"])):
            parts.append(_with_type(compare(quarter, f"league_table: {col}", pub, s[col].reindex(league.index), 0), tt))
    return parts


def _summarise(rows: pd.DataFrame) -> pd.DataFrame:
    counts = rows.groupby(["quarter", "trust_type", "quantity", "status"]).size().unstack("status", fill_value=0)
    for c in ("exact", "within_rounding", "differs"):
        if c not in counts:
            counts[c] = 0
    counts = counts[["exact", "within_rounding", "differs"]]
    counts.insert(0, "n", counts.sum(axis=1))
    counts["share_exact"] = (counts["exact"] / counts["n"]).round(4)
    counts["share_within_tolerance"] = ((counts["exact"] + counts["within_rounding"]) / counts["n"]).round(4)
    tol = rows.groupby(["quarter", "trust_type", "quantity"])["tolerance"].first()
    counts.insert(1, "tolerance", tol)
    return counts.reset_index()


_EXPLAIN = {
    "rank": "Rank within type by published adjusted segment (OF5000, 1–4) then published average (OF5002), "
    "competition ranking.",
    "segment_after_override": "Segment 1–2 → 3 where OF5004 = 1. OF5004 is the deficit flag (in deficit or on "
    "deficit support, whatever the segment: 12 of the 99 flagged acute trusts plan "
    "breakeven or better), i.e. the override's input, not 'override applied'.",
    "segment_5": "OF5005 = 5 exactly where OF5007 (Recovery Support Programme) = 1, else OF5000 (acute Q1: 14 "
    "trusts, one of them unadjusted segment 2).",
    "combined_finance_score": "OF1080 from NHS England's 4×4 lookup (rows OF1079, columns OF1081: "
    "1 1 2 3 / 2 2 3 4 / 2 3 3 4 / 2 3 4 4), catalogue combine group 'finance'.",
    "score": "Every metric score from the published values with the catalogue `nof-2025-26`: the spread formula "
    "with the metric's standard or floor, ranked in its comparator population (pooled over the types "
    "reporting it where configured), ties in the 2-dp values broken by the published within-type Rank "
    "(NHS England ranks unrounded values); finance by bands; infection counts 0/1/2/3+ → 1/2/3/4.",
    "average": "Mean of the published metric scores (infections 1/3 each, finance once as OF1080), rounded half "
    "up. The ±0.01 differences: NHS England averages unrounded metric scores; the file shows them to 2 dp "
    "(REM: the published scores average exactly 2.805, published 2.80).",
    "average_from_recomputed_scores": "As 'average', with each recomputed score in place of the published one "
    "(sickness absence, ranked without the absent ambulance trusts, moves most).",
    "segment_pooled_quartiles": "NHS England's rule: quartiles (numpy default) of the pooled published averages "
    "of every type in the quarter; a trust on a cut point goes to the better segment.",
    "segment_within_type_quartiles": "The former rule, kept for comparison: quartiles of the published averages "
    "within the type.",
}

_NOT_REPRODUCED = [
    "**Sickness absence OF1082** is ranked over about 205 trusts including the 10 ambulance trusts, whose values "
    "are not in any file we have: every acute and MH trust's rank and n are shifted (4 of 134 acute, 3 of 61 MH "
    "exact). Likewise **OF1086** relative difference in costs (MH + ambulance, n ≈ 70) and **OF1028** conveyance "
    "(R1F Isle of Wight, ranked among ambulance trusts). OF1017 (R1F) matches by the 1-trust formula only.",
    "**OF1005** community 52-week waits, Q1: 3 trusts (RH5, RTF acute; RRE MH) tie on the published 2-dp value "
    "with a trust of the other type (0.01, 0.46), which the within-type Rank cannot order — NHS England ranked "
    "the unrounded values.",
    "**Q2–Q4 pooled metrics** (OF1005, OF1016, OF1041, OF1057, OF1063) are ranked by NHS England over acute + MH "
    "trusts; no acute file exists for Q2–Q4, so the MH scores there cannot be reproduced (n and ranks unknown). "
    "Within-type metrics (staff survey OF1061/OF1084, finance bands OF1079/OF1081) reproduce 100% in every quarter.",
    "**MH Q1 RW1** has the average 2.33, exactly the pooled cut point; NHS England put it in segment 3 (its "
    "unrounded average is above the cut), while the 2-dp data cannot say so.",
    "**Q2–Q4 segments**: only the MH file exists for these quarters, so the pooled quartiles fall back to the MH "
    "trusts alone (57, 53 and 58 of 61 match); the published sizes show the cut points came from the pooled "
    "population with acute (and ambulance) trusts, which we do not have for those quarters.",
]


def _markdown(
    summary: pd.DataFrame, segments: pd.DataFrame, rows: pd.DataFrame, replicates: int, seed: int, files: dict
) -> str:
    def cell(r) -> str:
        return f"{r.exact} / {r.within_rounding} / {r.differs}"

    short = {"acute": "acute", "mental_health_community": "MH"}
    table = summary.assign(
        cell=[cell(r) for r in summary.itertuples()],
        column=[f"{q[-2:]} {short.get(t, t)}" for q, t in zip(summary["quarter"], summary["trust_type"])],
    )
    table["quantity"] = table["quantity"].where(~table["quantity"].str.startswith("score: "), table["quantity"])
    wide = table.pivot(index="quantity", columns="column", values="cell").fillna("–")
    tol = summary.groupby("quantity")["tolerance"].first()
    wide.insert(0, "tolerance", tol.map(lambda t: "0" if t == 0 else f"{t:g}"))
    names = []
    for _t, f in sorted(files.items()):
        names.append(f"`{f.data.name}`" + (f" and `{f.league_table.name}`" if f.league_table else ""))
    lines = [
        "# Reconciliation with NHS England's published NOF 2025/26 files (acute Q1; mental health and community Q1–Q4)",
        "",
        "Source: " + "; ".join(names) + " (read in place, never copied). Produced by "
        "`python -m leaguetables.nof.reconcile`; the scoring rules are the catalogue `config/catalogues/nof-2025-26.yaml`.",
        "All trust types of a quarter are reconciled together: pooled comparator populations and pooled segment "
        "cut points use every type present (Q1: acute + MH, 195 trusts; Q2–Q4: MH only — no acute file; no "
        "ambulance file in any quarter).",
        f"Likely ranges: joint bootstrap, {replicates:,} replicates, seed {seed}, cut points of the quarter held fixed.",
        "",
        "Counts per quantity, quarter and trust type: **exact / within tolerance / differs** (tolerance 0.01 = one "
        "unit of the published 2-dp rounding; 0.02 and 1 rank for the Monte-Carlo likely ranges).",
        "",
        _md_table(wide.reset_index()),
        "",
        "## What matches and why",
        "",
    ]
    for q, text in _EXPLAIN.items():
        lines.append(f"- **{q}** — {text}")
    lines += [
        "- **domain_score** — weighted mean of the domain's scores (combined finance once); ±0.01 as for the average.",
        "- **domain_segment** — within-type quartiles of the published domain scores; **domain_segment_pooled** — "
        "pooled quartiles (closer, not exact: NHS England's domain cut points are not settled **[open]**); "
        "context only, they do not feed the overall segment.",
        "- **likely_range** — 95% percentile bootstrap of each trust's own scores (average) and the joint "
        "bootstrap re-segmenting and re-ranking the whole type (rank), cut points held fixed.",
        "",
        "## What does not reproduce, and why",
        "",
    ]
    lines += [f"- {t}" for t in _NOT_REPRODUCED]
    lines += [
        "",
        "## Segments: sizes and cut points (pooled rule, and within type for comparison)",
        "",
        _md_table(segments),
        "",
        "`published_cut_intervals`: the cut points consistent with the published segments (trust on a cut → "
        "better segment). Q1: acute [2.05, 2.08) [2.31, 2.34) [2.60, 2.61) and MH [2.04, 2.06) [2.32, 2.33) "
        "[2.60, 2.65) intersect at 2.05 / 2.32–2.33 / 2.60 — the pooled quartiles 2.05 / 2.33 / 2.60; within-type "
        "quartiles (acute median 2.365, MH median 2.30) fall outside both. Q4 (MH only): within-type quartiles "
        "2.11 / 2.29 / 2.57 match 58 of 61, the three on 2.11 (RPG, RWX, RX3) published in segment 2 **[open]**.",
        "",
    ]
    differs = rows[rows["status"] == "differs"]
    interesting = differs[
        ~differs["quantity"].str.startswith(
            (
                "domain_segment",
                "segment_within_type",
                "score: OF1082",
                "score: OF1086",
                "score: OF1005",
                "average_from_recomputed",
            )
        )
    ]
    if not interesting.empty:
        lines += ["## Other differences", "", _md_table(interesting.head(60)), ""]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        out.append(
            "| " + " | ".join("" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)) for v in row) + " |"
        )
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
    parser = argparse.ArgumentParser(prog="python -m leaguetables.nof.reconcile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nof-dir",
        type=Path,
        default=None,
        help="one folder of NHS England's NOF CSVs, or a real-data root holding several "
        "(default: ../shared/data/real beside the project: acute Q1 2025/26 and mental "
        "health and community Q1–Q4 2025/26 together)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: reports/reconciliation/)"
    )
    parser.add_argument(
        "--replicates", type=int, default=REPLICATES, help=f"bootstrap replicates (default {REPLICATES})"
    )
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
