"""Each metric's productivity opportunity and SPC kept between runs by content (publication/derived_cache.py, the
report notebook's parameter ``report_cache``).

* What is read back from the cache is what was computed: the same tables (``tables/productivity.csv`` and
  ``tables/spc.csv`` byte for byte, the frames to the last bit and dtype) and the same SPC results, whether the
  entries were written by this process or found from an earlier one.
* A changed input invalidates its metric's entry only: one metric's history or result table changed, that metric
  is computed again (and gives what an uncached computation of the changed data gives), every other is read back.
* An entry is never read by other code (the salt) nor under another key.

The whole-run claim — a rerun after one metric changed (the cache warm) publishes what a cold run without the cache
publishes — is tests/test_rerun.py's ``test_one_metric_changed_rerun_equals_a_cold_run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leaguetables.publication import derived_cache
from leaguetables.publication.report import ReportData
from leaguetables.run import notebook_env
from leaguetables.statistics.spc import SPCResult


def _load(folder: Path, cache: str = "") -> ReportData:
    nb = json.loads((folder / "notebooks" / "report.ipynb").read_text(encoding="utf-8"))
    p = nb["metadata"]["papermill"]["parameters"]
    inputs, methodology, catalogue = notebook_env.load(
        p["methodology"], p["catalogue"], p["trusts"], p["observations"], p["demographics"]
    )
    return ReportData.load(
        str(folder), inputs, methodology, catalogue, p["quarter"], p["run"], p["league"], p["metric_results"],
        p["revisions"], cache=cache,
    )  # fmt: skip


def _same_spc(a: dict[str, dict[str, SPCResult]], b: dict[str, dict[str, SPCResult]]) -> None:
    assert list(a) == list(b)
    for mid in a:
        assert list(a[mid]) == list(b[mid]), mid
        for code, r in a[mid].items():
            s = b[mid][code]
            assert r.values.tobytes() == s.values.tobytes() and r.values.dtype == s.values.dtype  # −0.0 kept
            for f in ("labels", "direction", "n_points", "point_rules", "point_state", "variation", "assurance"):
                assert getattr(r, f) == getattr(s, f), (mid, code, f)
            for f in ("mean", "mr_bar", "lower", "upper", "near_lower", "near_upper", "target"):
                x, y = getattr(r, f), getattr(s, f)
                assert repr(x) == repr(y) and type(x) is type(y), (mid, code, f)
            assert (r.target_kind, r.note) == (s.target_kind, s.note)


def _tables(data: ReportData, folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in data.write_tables(folder)}


def test_cached_productivity_and_spc_are_those_computed(published_quarters, tmp_path):
    """Computed without the cache, computed into it (every entry a miss) and read back from it by a fresh process's
    worth of objects (every entry a hit): the same frames, SPC results and table bytes."""
    folder = published_quarters[0]
    plain = _load(folder)
    want = _tables(plain, tmp_path / "plain")
    first = _load(folder, str(tmp_path / "cache"))
    assert _tables(first, tmp_path / "first") == want
    n_metrics = len(first.spc[0]) + first.productivity["metric_id"].nunique()
    assert first.cache.entries.misses == n_metrics and first.cache.entries.hits == 0
    again = _load(folder, str(tmp_path / "cache"))
    assert _tables(again, tmp_path / "again") == want
    assert again.cache.entries.hits == n_metrics and again.cache.entries.misses == 0
    pd.testing.assert_frame_equal(again.productivity, plain.productivity, check_exact=True)
    for col in plain.productivity.columns:
        assert again.productivity[col].map(type).equals(plain.productivity[col].map(type)), col
    _same_spc(again.spc[0], plain.spc[0])
    assert again.spc[1] == plain.spc[1]


def _costed(data: ReportData) -> str:
    return next(m.id for m in data.metrics_run if m.unit_cost is not None)


def test_a_changed_metric_is_computed_again_and_only_it(published_quarters, tmp_path):
    """One costed metric's result table and history changed (one trust's value this quarter): its productivity and
    SPC entries miss and give what the changed data give without the cache; every other metric's entries are read
    back."""
    folder = published_quarters[0]
    cache = str(tmp_path / "cache")
    warm = _load(folder, cache)
    warm.productivity, warm.spc  # noqa: B018 - fills the cache
    n_spc, n_prod = len(warm.spc[0]), warm.productivity["metric_id"].nunique()

    def changed(data: ReportData, mid: str) -> ReportData:
        d = dict(data.metric_data[mid])
        table, history = d["table"].copy(), d["history"].copy()
        code = table.loc[table["status"] == "ok", "trust_code"].iloc[0]
        table.loc[table["trust_code"] == code, "value"] *= 1.5
        last = history["quarter"].max()
        history.loc[(history["trust_code"] == code) & (history["quarter"] == last), "value"] *= 1.5
        data.metric_data = {**data.metric_data, mid: {**d, "table": table, "history": history}}
        return data

    mid = _costed(warm)
    cached = changed(_load(folder, cache), mid)
    plain = changed(_load(folder), mid)
    pd.testing.assert_frame_equal(cached.productivity, plain.productivity, check_exact=True)
    _same_spc(cached.spc[0], plain.spc[0])
    assert cached.cache.entries.misses == 2, "the changed metric's productivity and SPC"
    assert cached.cache.entries.hits == n_spc + n_prod - 2
    assert not cached.spc_table().equals(warm.spc_table()), "the change reaches the figures"


@pytest.mark.unit
def test_an_entry_is_read_only_by_its_code_and_under_its_key(tmp_path):
    """The same key under another salt (other code) or another key under the same salt is a miss: computed again."""
    calls: list[int] = []

    def compute() -> pd.DataFrame:
        calls.append(1)
        return pd.DataFrame({"a": [1.0, np.nan, 0.1 + 0.2], "b": ["x", None, "z"]})

    def get(salt: str, key: str) -> pd.DataFrame:
        cache = derived_cache.DerivedCache(tmp_path, salt)
        return cache._get_or_put(key, compute, derived_cache._frame_bytes, derived_cache._frame)

    first = get("code-1", "k")
    pd.testing.assert_frame_equal(get("code-1", "k"), first, check_exact=True)
    assert len(calls) == 1
    get("code-2", "k")
    get("code-1", "other")
    assert len(calls) == 3
    assert derived_cache.digest(first) != derived_cache.digest(first.assign(a=[1.0, np.nan, 0.3]))
    assert derived_cache.digest(first, "x") != derived_cache.digest(first, "y")


def test_spreadsheet_cells_kept_between_runs_are_those_made(published_quarters, tmp_path):
    """The spreadsheet's cells of every published CSV table, made without a store, made into one (misses) and read
    back by a fresh cache (hits): the same header, cells (types included) and content.xml rows; a file of other
    bytes is a miss."""
    from leaguetables.publication.spreadsheet import SheetCache

    csvs = sorted((published_quarters[0] / "tables").rglob("*.csv"))
    want = [SheetCache().table(p) for p in csvs]
    store = derived_cache.DerivedCache(tmp_path / "cache")
    assert [SheetCache(store).table(p) for p in csvs] == want
    assert store.entries.misses == len({p.read_bytes() for p in csvs}) and store.entries.hits == 0
    again = derived_cache.DerivedCache(tmp_path / "cache")
    got = [SheetCache(again).table(p) for p in csvs]
    assert got == want and again.entries.hits == store.entries.misses
    assert all(type(c) is tuple for t in got for row in t[1] for c in row)
    assert [[type(v) for c in row for v in c] for t in got for row in t[1]] == [
        [type(v) for c in row for v in c] for t in want for row in t[1]
    ]
    changed = tmp_path / "changed.csv"
    changed.write_bytes(csvs[0].read_bytes().replace(b"\n", b"\r\n", 1))
    SheetCache(again).table(changed)
    assert again.entries.misses == 1
