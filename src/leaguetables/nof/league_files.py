"""The league's files: what the league notebook writes and the report reads (the League object, the metric
notebooks' results), with pandas and the store only, so that the run's own process (the publication stage) reads
them without importing the statistics (scipy, statsmodels)."""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from leaguetables.errors import InputError
from leaguetables.inputs import bundles, store

RANKABILITY_COLUMNS = ["metric_id", "trust_type", "n_trusts", "mean_rate", "tau2", "median_se2", "rankability"]


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
    rankability: pd.DataFrame = None  # per metric and trust type: τ², median se², ρ (sampling.rankability)
    change: pd.DataFrame = None  # test of change since the previous quarter (sampling.change_test), or None
    previous_quarter: str | None = None

    def __post_init__(self):
        if self.unscored is None:
            self.unscored = pd.DataFrame(columns=["trust_code", "trust_name", "trust_type"])
        if self.rankability is None:
            self.rankability = pd.DataFrame(columns=RANKABILITY_COLUMNS)


def read_metric_results(paths: str) -> dict[str, dict]:
    """What the metric notebooks wrote for the report, from the report notebook's parameter ``metric_results``:
    comma-separated bundles in the store (:mod:`leaguetables.inputs.bundles`, every file checked against its name),
    by metric id in id order. Each is a dict: ``table``, ``history``, ``model_summary``, ``coefficients``,
    ``funnel_summary`` (tables), ``notes``, ``model_errors``, ``model_text``."""
    out: dict[str, dict] = {}
    for path in [p for p in paths.split(",") if p]:
        frames, values = bundles.read_bundle(path, "metric results")
        mid = values.pop("metric_id")
        if mid in out:
            raise InputError(f"metric results: metric {mid} given twice", file=path)
        out[mid] = frames | values
    return dict(sorted(out.items()))


def read_metric_tables(paths: str) -> dict[str, pd.DataFrame]:
    """The metric notebooks' result tables from the league notebook's parameter ``metric_results``: comma-separated
    Parquet files named by the SHA-256 of their bytes (checked; :class:`InputError` naming a changed file), by
    metric id in id order (the order the league stacks them in)."""
    tables: dict[str, pd.DataFrame] = {}
    for path in [p for p in paths.split(",") if p]:
        table = pd.read_parquet(io.BytesIO(store.read_verified(path, "metric result table")))
        ids = sorted(set(table["metric_id"]))
        if len(ids) != 1 or ids[0] in tables:
            raise InputError(f"metric result table: one table per metric expected, found {ids}", file=path)
        tables[ids[0]] = table
    return dict(sorted(tables.items()))


_LEAGUE_VALUES = ("quarter", "sensitivity_summary", "cut_points", "previous_quarter")


def write_league_bundle(lg: League, lg_move: pd.DataFrame, folder: Path) -> Path:
    """The league and its movement for the report (``<folder>/league.bundle.json`` and its tables: a bundle the
    pipeline keeps in the store and names in the report notebook's parameter ``league``)."""
    frames = {f.name: getattr(lg, f.name) for f in fields(lg) if f.name not in _LEAGUE_VALUES}
    values = {name: getattr(lg, name) for name in _LEAGUE_VALUES}
    return bundles.write_bundle(frames | {"movement": lg_move}, values, folder, "league")


def read_league(path: str | Path) -> tuple[League, pd.DataFrame]:
    """``(league, movement)`` from the bundle :func:`write_league_bundle` wrote, kept in the store (checked)."""
    frames, values = bundles.read_bundle(path, "league")
    movement_ = frames.pop("movement")
    parts: dict[str, Any] = {**frames, **values}
    return League(**parts), movement_
