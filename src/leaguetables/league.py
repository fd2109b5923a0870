"""The league tables of a quarter from the metric results (run by ``notebooks/league_table.ipynb``).

Reads every metric's result table, builds the long table of NOF scores, and calls
:func:`leaguetables.scoring.build_league_table` twice: on scores of the raw values (NHS England's method, the
published league table) and on scores of the demographically adjusted values (the sensitivity analysis).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import scoring
from .config import Catalogue, Methodology
from .contract import QuarterInputs


@dataclass
class League:
    quarter: str
    table: pd.DataFrame  # one row per trust, raw scoring (the published league table)
    adjusted: pd.DataFrame  # the same on adjusted scores
    scores: pd.DataFrame  # long: trust_code, metric_id, score, score_adjusted, weight, combine_group, domain
    results: pd.DataFrame  # all metric result tables stacked
    sensitivity: pd.DataFrame  # per trust: segment/rank raw vs adjusted
    sensitivity_summary: dict
    cut_points: dict
    unscored: pd.DataFrame = None  # trusts with no scored metric this quarter: not segmented or ranked

    def __post_init__(self):
        if self.unscored is None:
            self.unscored = pd.DataFrame(columns=["trust_code", "trust_name", "trust_type"])


def load_metric_results(work_dir: Path | str) -> dict[str, dict]:
    out = {}
    for p in sorted((Path(work_dir) / "metrics").glob("*.pkl")):
        with open(p, "rb") as f:
            out[p.stem] = pickle.load(f)
    return out


def scores_long(results: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    meta = pd.DataFrame([{"metric_id": m.id, "weight": m.weight, "combine_group": m.combine_group,
                          "domain": m.domain} for m in catalogue.metrics])
    df = results[["trust_code", "metric_id", "score", "score_adjusted"]].merge(meta, on="metric_id", how="left")
    return df.sort_values(["trust_code", "metric_id"], kind="mergesort").reset_index(drop=True)


def _build(scores: pd.DataFrame, column: str, inputs: QuarterInputs, quarter: str, methodology: Methodology,
           catalogue: Catalogue):
    sc = scores.rename(columns={column: "score_used"})[["trust_code", "metric_id", "score_used", "weight",
                                                         "combine_group", "domain"]]
    sc = sc.rename(columns={"score_used": "score"}).dropna(subset=["score"])
    status = inputs.status.loc[inputs.status["quarter"] == quarter,
                               ["trust_code", "deficit", "deficit_support", "improvement_programme"]]
    status = inputs.trusts[["trust_code"]].merge(status, on="trust_code", how="left")
    # unknown finance status (no row, or empty flags): the override cannot be applied; published as [x]
    d, ds = (status[c].astype("boolean") for c in ("deficit", "deficit_support"))
    unknown = set(status.loc[~((d.fillna(False) | ds.fillna(False)) | (d.notna() & ds.notna())), "trust_code"])
    for c in ("deficit", "deficit_support", "improvement_programme"):
        status[c] = status[c].astype("boolean").fillna(False).astype(bool)
    if not methodology.financial_override.enabled:
        status = status.assign(deficit=False, deficit_support=False)
    seg = methodology.segmentation
    b = methodology.bootstrap
    # a trust with no scored metric cannot be segmented or ranked (NHS England segments only trusts with scores)
    trusts = inputs.trusts[inputs.trusts["trust_code"].isin(set(sc["trust_code"]))]
    status = status[status["trust_code"].isin(set(trusts["trust_code"]))]
    table = scoring.build_league_table(
        sc, trusts, status, segmentation_rule=seg.rule, thresholds=seg.thresholds,
        replicates=b.replicates, seed=b.seed, level=b.level, combine_rules=combine_rules(catalogue),
        from_segments=tuple(methodology.financial_override.from_segments),
        to_segment=methodology.financial_override.to_segment)
    if unknown:
        flag = table["in_financial_deficit"].astype(object)
        flag[table["trust_code"].isin(unknown)] = None
        table["in_financial_deficit"] = flag
    return table, table.attrs.get("cut_points", {})


def combine_rules(catalogue: Catalogue) -> dict:
    """The scoring functions of the catalogue's combine groups."""
    rules = {}
    for name, g in catalogue.combine_groups.items():
        if g.rule == "nof_finance":
            rules[name] = scoring.finance_rule(g.planned, g.variance)
    return rules


def sensitivity(raw: pd.DataFrame, adj: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Raw vs adjusted league: segment and rank per trust, Spearman rank correlation per type."""
    keep = ["trust_code", "trust_name", "trust_type", "average_score", "segment", "rank"]
    df = raw[keep].merge(adj[["trust_code", "average_score", "segment", "rank"]], on="trust_code",
                         suffixes=("", "_adjusted"))
    df["segment_change"] = df["segment_adjusted"] - df["segment"]
    df["rank_change"] = df["rank_adjusted"] - df["rank"]
    summary = {}
    for t, g in df.groupby("trust_type", sort=True):
        rho = sps.spearmanr(g["average_score"], g["average_score_adjusted"]).statistic if len(g) > 2 else np.nan
        summary[t] = {"spearman_average": float(rho), "n": int(len(g)),
                      "segment_changed": int((g["segment_change"] != 0).sum())}
    df = df.sort_values(["trust_type", "rank", "trust_code"], kind="mergesort").reset_index(drop=True)
    return df, summary


def build_league(work_dir: Path | str, inputs: QuarterInputs, methodology: Methodology, catalogue: Catalogue,
                 quarter: str) -> League:
    loaded = load_metric_results(work_dir)
    results = pd.concat([v["table"] for v in loaded.values()], ignore_index=True)
    scores = scores_long(results, catalogue)
    table, cuts = _build(scores, "score", inputs, quarter, methodology, catalogue)
    adjusted, _ = _build(scores, "score_adjusted", inputs, quarter, methodology, catalogue)
    sens, summary = sensitivity(table, adjusted)
    unscored = inputs.trusts.loc[~inputs.trusts["trust_code"].isin(set(table["trust_code"])),
                                 ["trust_code", "trust_name", "trust_type"]].reset_index(drop=True)
    return League(quarter, table, adjusted, scores, results, sens, summary, cuts, unscored)


MOVEMENT_COLUMNS = ["trust_code", "previous_segment", "previous_rank", "previous_rank_lower", "previous_rank_upper",
                    "segment_change", "rank_change", "beyond_likely_range", "movement_label"]


def movement(table: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Change in segment and rank since the previous quarter, and whether the new rank is beyond the previous
    quarter's likely range of rank.

    One row per trust present in both quarters (of the same type), sorted as ``table``. ``segment_change`` and
    ``rank_change`` are this quarter minus last (negative = a better segment or rank); ``beyond_likely_range`` is
    true when this quarter's rank lies outside last quarter's ``rank_lower``–``rank_upper`` (a trust moving within
    it may have moved by chance). ``previous`` is last quarter's published ``league_table_full.csv``.

    Hand-worked: last quarter rank 5 with likely range 3 to 8; this quarter rank 9 → rank_change 4, beyond (9 > 8);
    rank 8 → within (the range is inclusive).
    """
    if previous is None or previous.empty:
        return pd.DataFrame(columns=MOVEMENT_COLUMNS)
    prev = previous.drop_duplicates("trust_code").set_index("trust_code")
    df = table[["trust_code", "trust_type", "segment", "rank"]].copy()
    keep = df["trust_code"].isin(prev.index)
    if "trust_type" in prev.columns:  # a trust that changed type is not comparable
        keep &= df["trust_code"].map(prev["trust_type"]).eq(df["trust_type"])
    df = df[keep]
    df["previous_segment"] = df["trust_code"].map(prev["segment"]).astype("Int64")
    df["previous_rank"] = df["trust_code"].map(prev["rank"]).astype("Int64")
    df["previous_rank_lower"] = df["trust_code"].map(prev["rank_lower"])
    df["previous_rank_upper"] = df["trust_code"].map(prev["rank_upper"])
    df["segment_change"] = (df["segment"].astype("Int64") - df["previous_segment"]).astype("Int64")
    df["rank_change"] = (df["rank"].astype("Int64") - df["previous_rank"]).astype("Int64")
    lo, hi = df["previous_rank_lower"], df["previous_rank_upper"]
    df["beyond_likely_range"] = ((df["rank"] < lo) | (df["rank"] > hi)).fillna(False).astype(bool)

    def label(r) -> str:
        seg = ("segment unchanged" if r.segment_change == 0 else
               f"segment {int(r.previous_segment)} to {int(r.segment)}")
        ch = int(r.rank_change)
        rk = ("rank unchanged" if ch == 0 else
              f"{'up' if ch < 0 else 'down'} {abs(ch)} place{'s' if abs(ch) != 1 else ''} "
              f"(rank {int(r.previous_rank)} to {int(r.rank)})")
        beyond = "beyond" if r.beyond_likely_range else "within"
        rng = "" if pd.isna(r.previous_rank_lower) else f" {r.previous_rank_lower:.0f} to {r.previous_rank_upper:.0f}"
        return f"{seg}; {rk}; {beyond} last quarter's likely range of rank{rng}"

    df["movement_label"] = [label(r) for r in df.itertuples(index=False)]
    return df[MOVEMENT_COLUMNS].reset_index(drop=True)


def write_league(lg: League, inputs: QuarterInputs, catalogue: Catalogue, quarter: str, out_dir, work_dir) -> list:
    """Write the published league tables and keep the League object for the report notebook."""
    from .contract import previous_quarter
    from .publish import nhse_league_table, nhse_long_table, write_csv

    tables = Path(out_dir) / "tables"
    prev_path = Path(out_dir).parent / previous_quarter(quarter) / "tables" / "league_table_full.csv"
    previous = pd.read_csv(prev_path, dtype={"trust_code": str}) if prev_path.exists() else None
    lg_move = movement(lg.table, previous)
    written = {
        "league_table.csv": nhse_league_table(lg.table, quarter),
        "league_table_full.csv": lg.table,
        "nof_data_long.csv": nhse_long_table(lg, catalogue, inputs.trusts, quarter),
        "league_table_adjusted.csv": lg.adjusted,
        "sensitivity.csv": lg.sensitivity,
        "movement.csv": lg_move,
    }
    for name, df in written.items():
        write_csv(df, tables / name)
    with open(Path(work_dir) / "league.pkl", "wb") as f:
        pickle.dump({"league": lg, "movement": lg_move}, f, protocol=pickle.HIGHEST_PROTOCOL)
    return sorted(f"tables/{n}" for n in written)
