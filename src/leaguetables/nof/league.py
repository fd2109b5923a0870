"""The league tables of a quarter from the metric results (run by ``notebooks/league_table.ipynb``).

Reads every metric's result table, builds the long table of NOF scores, and calls
:func:`leaguetables.nof.scoring.build_league_table` twice: on scores of the raw values (NHS England's method, the
published league table) and on scores of the demographically adjusted values (the sensitivity analysis).

Both tables keep NHS England's likely ranges (``average_lower``, ``average_upper``, ``rank_lower``,
``rank_upper``: a bootstrap of each trust's own metric scores, which reproduces NHS England's published columns)
and, with ``uncertainty.method: parametric_data``, gain the calibrated figures of
:mod:`leaguetables.statistics.sampling` (a parametric bootstrap of the data): ``rank_median``, ``rank_interval_lower``,
``rank_interval_upper``, ``average_interval_lower``, ``average_interval_upper`` and ``p_segment_1..4`` (the
probability of each segment; NHS England-style segment shares from the score bootstrap are kept as
``nof_p_segment_1..4``). :func:`movement` tests the change since the previous quarter from a joint simulation
of both quarters' data (:func:`leaguetables.statistics.sampling.change_test`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from leaguetables.config import ICB_TYPES, Catalogue, Methodology
from leaguetables.csv_output import write_csv
from leaguetables.inputs.contract import QuarterInputs, previous_quarter
from leaguetables.nof import scoring
from leaguetables.nof.layout import nhse_league_table, nhse_long_table
from leaguetables.nof.league_files import League, write_league_bundle
from leaguetables.nof.league_files import read_metric_tables as read_metric_tables  # the league notebook's
from leaguetables.statistics import sampling


def scores_long(results: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    meta = pd.DataFrame(
        [
            {"metric_id": m.id, "weight": m.weight, "combine_group": m.combine_group, "domain": m.domain}
            for m in catalogue.metrics
        ]
    )
    df = results[["trust_code", "metric_id", "score", "score_adjusted"]].merge(meta, on="metric_id", how="left")
    return df.sort_values(["trust_code", "metric_id"], kind="mergesort").reset_index(drop=True)


def _quarter_data(
    inputs: QuarterInputs,
    quarter: str,
    methodology: Methodology,
    catalogue: Catalogue,
    basis: str = "raw",
    results: pd.DataFrame | None = None,
    metric_ids=None,
    cache: sampling.MetricCache | None = None,
    observed: dict | None = None,
) -> sampling.QuarterData:
    seg = methodology.segmentation
    return sampling.quarter_data(
        inputs,
        catalogue,
        quarter,
        segmentation_rule=seg.rule,
        thresholds=seg.thresholds,
        override=methodology.financial_override.enabled,
        basis=basis,
        results=results,
        confidence=methodology.confidence_levels[0],
        combine_rules=combine_rules(catalogue),
        metric_ids=metric_ids,
        adjusted_standards=methodology.expected.adjusted_standards,
        pool_types=seg.pool_types,
        override_segments=(
            tuple(methodology.financial_override.from_segments),
            methodology.financial_override.to_segment,
        ),
        cache=cache,
        observed=observed,
    )


def add_calibrated(
    table: pd.DataFrame,
    qd: sampling.QuarterData,
    methodology: Methodology,
    cache: sampling.MetricCache | None = None,
) -> pd.DataFrame:
    """Add the calibrated columns of :mod:`leaguetables.statistics.sampling` to a league table (see the module docstring).

    NHS England-style segment shares of the score bootstrap move to ``nof_p_segment_1..4``. ``cache``: where each
    metric's replicates are kept between runs (:func:`leaguetables.statistics.sampling.sample_league`)."""
    u = methodology.uncertainty
    summ, reps = sampling.sample_league(
        qd, u.replicates, u.seed, u.level, u.shrinkage, u.check_replicates, rule=u.rank_interval, cache=cache
    )
    levels = summ.attrs["rank_interval_levels"]
    obs = sampling.observed_league(qd).set_index("trust_code")
    ranks = table.set_index("trust_code")["rank"].astype("Float64").to_numpy(float, na_value=np.nan)
    again = obs["rank"].reindex(table["trust_code"]).to_numpy(float)
    if not np.array_equal(ranks, again, equal_nan=True):
        raise RuntimeError(
            f"sampling ({qd.basis}): the observed data do not reproduce the league table's ranks; "
            "the simulated league would not describe the published one"
        )
    summ = summ.set_index("trust_code").reindex(table["trust_code"])
    # a type none of whose metrics has a sampling model (all reported as single values) gets no calibrated figures:
    # they would be exact only because every figure is taken as exact
    simulated_types = {t for md in qd.metrics for t in md.frame.loc[md.simulated, "trust_type"]}
    none = ~table["trust_type"].isin(simulated_types).to_numpy()
    summ.loc[none] = np.nan
    out = table.copy()
    for k in range(1, 5):
        out[f"nof_p_segment_{k}"] = out[f"p_segment_{k}"]
    for col in summ.columns:  # sampling.summarise's: rank_median, the rank and average intervals, p_segment_1..4
        vals = summ[col].to_numpy()
        integer = col in ("rank_median", "rank_interval_lower", "rank_interval_upper")
        out[col] = pd.array(vals, dtype="Int64") if integer else vals.astype(float)
    out.attrs.update(table.attrs)
    out.attrs["uncertainty"] = {
        "method": u.method,
        "replicates": u.replicates,
        "seed": u.seed,
        "level": u.level,
        "shrinkage": u.shrinkage,
        "path": reps.path,
        "rank_interval": u.rank_interval,
        "rank_interval_levels": levels,
    }
    return out


def _build(
    scores: pd.DataFrame,
    column: str,
    inputs: QuarterInputs,
    quarter: str,
    methodology: Methodology,
    catalogue: Catalogue,
):
    sc = scores.rename(columns={column: "score_used"})[
        ["trust_code", "metric_id", "score_used", "weight", "combine_group", "domain"]
    ]
    sc = sc.rename(columns={"score_used": "score"}).dropna(subset=["score"])
    status = inputs.status.loc[
        inputs.status["quarter"] == quarter, ["trust_code", "deficit", "deficit_support", "improvement_programme"]
    ]
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
        sc,
        trusts,
        status,
        segmentation_rule=seg.rule,
        thresholds=seg.thresholds,
        replicates=b.replicates,
        seed=b.seed,
        level=b.level,
        combine_rules=combine_rules(catalogue),
        pool_types=seg.pool_types,
        from_segments=tuple(methodology.financial_override.from_segments),
        to_segment=methodology.financial_override.to_segment,
    )
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
            assert g.planned is not None and g.variance is not None  # required by config for nof_finance
            rules[name] = scoring.finance_rule(g.planned, g.variance, lookup=g.lookup)
    return rules


def sensitivity(raw: pd.DataFrame, adj: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Raw vs adjusted league: segment and rank per trust, Spearman rank correlation per type."""
    keep = ["trust_code", "trust_name", "trust_type", "average_score", "segment", "rank"]
    df = raw[keep].merge(
        adj[["trust_code", "average_score", "segment", "rank"]], on="trust_code", suffixes=("", "_adjusted")
    )
    df["segment_change"] = df["segment_adjusted"] - df["segment"]
    df["rank_change"] = df["rank_adjusted"] - df["rank"]
    summary = {}
    for t, g in df.groupby("trust_type", sort=True):
        rho = sps.spearmanr(g["average_score"], g["average_score_adjusted"]).statistic if len(g) > 2 else np.nan
        summary[t] = {
            "spearman_average": float(rho),
            "n": int(len(g)),
            "segment_changed": int((g["segment_change"] != 0).sum()),
        }
    df = df.sort_values(["trust_type", "rank", "trust_code"], kind="mergesort").reset_index(drop=True)
    return df, summary


def build_league(
    tables: dict[str, pd.DataFrame],
    inputs: QuarterInputs,
    methodology: Methodology,
    catalogue: Catalogue,
    quarter: str,
    cache: sampling.MetricCache | None = None,
) -> League:
    """The league of the quarter from the metric result tables (``{metric_id: table}``, stacked in id order;
    :func:`read_metric_tables`). Providers and integrated care boards are different kinds of organisation: each
    kind is scored, segmented and simulated on its own (:func:`_kinds`), so adding the ICBs changes no provider's
    figure (each metric's replicates are drawn from its own stream, from its own rows) and the tables are joined.
    ``cache`` keeps each metric's replicates between runs (:mod:`leaguetables.run.sampling_cache`); the league is the
    same with or without it."""
    results = pd.concat([tables[m] for m in sorted(tables)], ignore_index=True)
    scores = scores_long(results, catalogue)
    setting = _Setting(methodology, catalogue, quarter, cache)
    parts: list[League] = []
    for part in _kinds(inputs):
        codes = set(part.trusts["trust_code"])
        mine = results[results["trust_code"].isin(codes)]
        if parts and mine.empty:  # no metric of this run applies to them: listed as unscored
            parts[0].unscored = pd.concat(
                [parts[0].unscored, part.trusts[["trust_code", "trust_name", "trust_type"]]], ignore_index=True
            )
            continue
        mine_scores = scores[scores["trust_code"].isin(codes)]
        parts.append(_league_of(mine, mine_scores, part, setting))
    return parts[0] if len(parts) == 1 else _join(parts)


def _kinds(inputs: QuarterInputs) -> list[QuarterInputs]:
    """The inputs of each kind of organisation: providers, then ICBs (when there are any)."""
    icb = inputs.trusts["trust_type"].isin(ICB_TYPES)
    if not icb.any():
        return [inputs]
    return [
        _only(inputs, set(inputs.trusts.loc[~icb, "trust_code"])),
        _only(inputs, set(inputs.trusts.loc[icb, "trust_code"])),
    ]


def _only(inputs: QuarterInputs, codes: set) -> QuarterInputs:
    def keep(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["trust_code"].isin(codes)]

    return replace(
        inputs,
        trusts=keep(inputs.trusts),
        observations=keep(inputs.observations),
        demographics=keep(inputs.demographics),
        status=keep(inputs.status),
    )


@dataclass(frozen=True)
class _Setting:
    """What the league of every kind of organisation is built under (:func:`build_league`'s arguments)."""

    methodology: Methodology
    catalogue: Catalogue
    quarter: str
    cache: sampling.MetricCache | None


def _league_of(results: pd.DataFrame, scores: pd.DataFrame, inputs: QuarterInputs, setting: _Setting) -> League:
    methodology, catalogue, quarter, cache = setting.methodology, setting.catalogue, setting.quarter, setting.cache
    table, cuts = _build(scores, "score", inputs, quarter, methodology, catalogue)
    adjusted, _ = _build(scores, "score_adjusted", inputs, quarter, methodology, catalogue)
    u = methodology.uncertainty
    rankab, change, prev_q = None, None, None
    if u.method == "parametric_data":
        run = set(results["metric_id"])  # the metrics of this run (a run may score a subset of the catalogue)
        observed: dict = {}  # each metric's observed table, made once for both bases
        qd = _quarter_data(
            inputs, quarter, methodology, catalogue, "raw", metric_ids=run, cache=cache, observed=observed
        )
        table = add_calibrated(table, qd, methodology, cache)
        qd_adjusted = _quarter_data(
            inputs, quarter, methodology, catalogue, "adjusted", results, metric_ids=run, cache=cache, observed=observed
        )
        adjusted = add_calibrated(adjusted, qd_adjusted, methodology, cache)
        rankab = sampling.rankability(qd)
        prev_q = previous_quarter(quarter)
        if u.change_test and prev_q in inputs.quarters():
            prev = _quarter_data(inputs, prev_q, methodology, catalogue, "raw", metric_ids=run, cache=cache)
            change = sampling.change_test(prev, qd, u.replicates, u.seed + 1, u.level, u.check_replicates, cache)
    sens, summary = sensitivity(table, adjusted)
    unscored = inputs.trusts.loc[
        ~inputs.trusts["trust_code"].isin(set(table["trust_code"])), ["trust_code", "trust_name", "trust_type"]
    ].reset_index(drop=True)
    return League(
        quarter,
        table,
        adjusted,
        scores,
        results,
        sens,
        summary,
        cuts,
        unscored,
        rankab,
        change,
        prev_q if change is not None else None,
    )


def _join(parts: list[League]) -> League:
    """One league from the leagues of each kind of organisation (providers first; their tables' attributes)."""

    def cat(name: str, attrs: bool = False) -> pd.DataFrame | None:
        frames = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        if not frames:
            return None
        out = pd.concat(frames, ignore_index=True)
        if attrs:
            out.attrs = dict(frames[0].attrs)
            out.attrs["cut_points"] = {k: v for f in frames for k, v in f.attrs.get("cut_points", {}).items()}
        return out

    first = parts[0]
    return League(
        first.quarter,
        cat("table", True),
        cat("adjusted", True),
        cat("scores"),
        cat("results"),
        cat("sensitivity"),
        {k: v for p in parts for k, v in p.sensitivity_summary.items()},
        {k: v for p in parts for k, v in p.cut_points.items()},
        cat("unscored"),
        cat("rankability"),
        cat("change"),
        next((p.previous_quarter for p in parts if p.previous_quarter), None),
    )


MOVEMENT_COLUMNS = [*sampling.CHANGE_COLUMNS, "movement_label"]  # the change beyond chance, then its label


def movement(table: pd.DataFrame, change: pd.DataFrame | None) -> pd.DataFrame:
    """Change in segment and rank since the previous quarter, and whether it is larger than chance alone gives.

    ``change`` is :func:`leaguetables.statistics.sampling.change_test` of the previous and this quarter (both computed from
    the inputs' observations, not from last quarter's published file). One row per trust present in both
    quarters (of the same type), sorted as ``table``. Segments are segments 1–4 after the financial override
    (segment 5, a judgement, is not tested); ``segment_change`` and ``rank_change`` are this quarter minus last
    (negative = better). ``rank_change_p_value``: two-sided mid-p value of the rank change against its
    distribution when no trust's performance changed; ``change_beyond_chance``: p < 1 − level;
    ``p_segment_change_by_chance``: the probability that the trust changes segment by chance alone.

    Hand-worked label: segment 3 → 2, rank 40 → 12, p = 0.004 → "segment 3 to 2; up 28 places (rank 40 to 12);
    beyond chance (p = 0.004)".
    """
    if change is None or change.empty:
        return pd.DataFrame(columns=MOVEMENT_COLUMNS)
    ch = change.set_index("trust_code")
    df = table[["trust_code"]].copy()
    df = df[df["trust_code"].isin(ch.index)]
    for col in MOVEMENT_COLUMNS[1:-1]:
        df[col] = df["trust_code"].map(ch[col])
    for col in ("previous_segment", "previous_rank", "segment_change", "rank_change"):
        df[col] = df[col].astype("Int64")
    df["change_beyond_chance"] = df["change_beyond_chance"].astype(bool)

    def label(r) -> str:
        now_seg = int(r.previous_segment) + int(r.segment_change)
        seg = "segment unchanged" if r.segment_change == 0 else f"segment {int(r.previous_segment)} to {now_seg}"
        ch_ = int(r.rank_change)
        rk = (
            "rank unchanged"
            if ch_ == 0
            else f"{'up' if ch_ < 0 else 'down'} {abs(ch_)} place{'s' if abs(ch_) != 1 else ''} "
            f"(rank {int(r.previous_rank)} to {int(r.previous_rank) + ch_})"
        )
        verdict = "beyond chance" if r.change_beyond_chance else "within chance"
        return f"{seg}; {rk}; {verdict} (p = {_p(r.rank_change_p_value)})"

    df["movement_label"] = [label(r) for r in df.itertuples(index=False)]
    return df[MOVEMENT_COLUMNS].reset_index(drop=True)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def write_league(lg: League, inputs: QuarterInputs, catalogue: Catalogue, quarter: str, out_dir, work_dir) -> list:
    """Write the published league tables and keep the League object for the report notebook."""
    tables = Path(out_dir) / "tables"
    lg_move = movement(lg.table, lg.change)
    written = {
        "league_table.csv": nhse_league_table(lg.table, quarter),
        "league_table_full.csv": lg.table,
        "nof_data_long.csv": nhse_long_table(
            lg, catalogue, inputs.trusts, quarter, combine_rules=combine_rules(catalogue)
        ),
        "league_table_adjusted.csv": lg.adjusted,
        "sensitivity.csv": lg.sensitivity,
        "movement.csv": lg_move,
        "rankability.csv": lg.rankability,
    }
    for name, df in written.items():
        write_csv(df, tables / name)
    write_league_bundle(lg, lg_move, Path(work_dir) / "league")
    return sorted(f"tables/{n}" for n in written)
