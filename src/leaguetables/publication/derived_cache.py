"""Each metric's productivity opportunity and SPC kept between runs by content (the report notebook's parameter
``report_cache``; the run's process uses the same folder while the league notebook runs).

Both are computed per metric from that metric's data alone (:func:`leaguetables.statistics.productivity.
opportunities` and :func:`leaguetables.statistics.spc.run_spc` hand each metric's computation to a ``memo``), so
after one metric's data changed the others' are read back instead of computed again, and what the run's process
computed while the league notebook ran is read by the report notebook rather than computed a second time.

An entry's key is the SHA-256 of everything its computation reads (:func:`digest`): for the productivity opportunity,
the metric's definition, the methodology, the metric's result table, its rows of the observations (every quarter),
the register, the demographics and the quarters; for SPC, the metric's definition, the SPC settings, the metric's
history (trust, quarter, value, status) and the quarters charted. The spreadsheet's cells of each CSV table are kept
under the SHA-256 of the file's bytes (:class:`~leaguetables.publication.spreadsheet.SheetCache`). The folder is a
:class:`~leaguetables.run.sampling_cache.SamplingCache` (``.npz`` files, no pickle, salted with the code's hash, each
holding its key, checked on read; a run keeps the entries it used and those of the run before). An opportunity
frame is stored as Parquet, a metric's SPC results by column (:func:`_spc_arrays`): both read back exactly, so a figure
never depends on whether it came from the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leaguetables.run.sampling_cache import SamplingCache
from leaguetables.statistics.spc import RULES, SPCResult

FOLDER = "report"  # under <out>/.cache/<quarter>/, beside the league's "sampling"
PAYLOAD = "payload"
SPC_COLUMNS = ("trust_code", "quarter", "value", "status")  # what statistics.spc.series reads of a history
_KINDS = {"f": "float", "b": "boolean", "s": "string"}  # a spreadsheet cell's kind by its first letter


def digest(*parts: Any) -> str:
    """SHA-256 of ``parts``: a data frame by its columns, dtypes, length and every row's hash
    (``pandas.util.hash_pandas_object``), anything else by its JSON."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, pd.DataFrame):
            shape = [[str(c) for c in p.columns], [str(d) for d in p.dtypes], len(p)]
            h.update(json.dumps(shape).encode())
            h.update(pd.util.hash_pandas_object(p, index=False).to_numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def _frame_bytes(df: pd.DataFrame) -> np.ndarray:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return np.frombuffer(buf.getvalue(), np.uint8)


def _frame(payload: np.ndarray) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(payload.tobytes()))


_SPC_FLOATS = ("mean", "mr_bar", "lower", "upper", "near_lower", "near_upper")
_SPC_TEXT = ("direction", "n_points", "variation", "assurance", "target", "target_kind", "note")
_STATES = ("common_cause", "improvement", "concern", "missing")


def _spc_arrays(results: dict[str, SPCResult]) -> dict[str, np.ndarray]:
    """One metric's SPC results by column: the values and the limits as float arrays, each point's rules as a bit
    mask (:data:`RULES` order) and state as a code, the rest as JSON (floats written by ``repr``)."""
    rs = list(results.values())
    n, q = len(rs), len(rs[0].values) if rs else 0
    bits = {r: 1 << i for i, r in enumerate(RULES)}
    text = {"codes": list(results), "labels": rs[0].labels if rs else []}
    text |= {f: [getattr(r, f) for r in rs] for f in _SPC_TEXT}
    return {
        "values": np.array([r.values for r in rs], dtype=float).reshape(n, q),
        "limits": np.array([[getattr(r, f) for f in _SPC_FLOATS] for r in rs], dtype=float).reshape(n, 6),
        "rules": np.array([[sum(bits[x] for x in p) for p in r.point_rules] for r in rs], dtype=np.int8).reshape(n, q),
        "states": np.array([[_STATES.index(x) for x in r.point_state] for r in rs], dtype=np.int8).reshape(n, q),
        "text": np.frombuffer(json.dumps(text).encode(), np.uint8),
    }


def _spc(arrays: dict[str, np.ndarray]) -> dict[str, SPCResult]:
    text = json.loads(arrays["text"].tobytes())
    values, limits = arrays["values"], arrays["limits"]
    combos = [[r for i, r in enumerate(RULES) if m >> i & 1] for m in range(1 << len(RULES))]
    out = {}
    for i, code in enumerate(text["codes"]):
        floats = dict(zip(_SPC_FLOATS, limits[i].tolist()))
        out[code] = SPCResult(
            labels=list(text["labels"]),
            values=values[i],
            point_rules=[list(combos[m]) for m in arrays["rules"][i].tolist()],
            point_state=[_STATES[k] for k in arrays["states"][i].tolist()],
            **floats,
            **{f: text[f][i] for f in _SPC_TEXT},
        )
    return out


class DerivedCache:
    """The folder of entries (:class:`SamplingCache`) and the ``memo`` functions that read and fill it."""

    def __init__(self, folder: str | Path, salt: str | None = None) -> None:
        self.entries = SamplingCache(folder, salt)

    def _get_or_put(self, key: str, compute: Callable, encode: Callable, decode: Callable):
        got = self.entries.get(key)
        if got is not None and PAYLOAD in got:
            return decode(got[PAYLOAD])
        value = compute()
        self.entries.put(key, {PAYLOAD: encode(value)})
        return value

    def productivity_memo(self, data) -> Callable:
        """``memo`` for :func:`~leaguetables.statistics.productivity.opportunities` of the report data ``data``
        (a :class:`~leaguetables.publication.report.ReportData`): keyed on what one metric's rows read."""
        inputs, obs = data.inputs, data.inputs.observations
        common = digest(data.methodology.model_dump(mode="json"), inputs.trusts, inputs.demographics, inputs.quarters())

        def memo(metric, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
            key = digest(
                "productivity",
                common,
                metric.model_dump(mode="json"),
                data.metric_data[metric.id]["table"],
                obs.loc[obs["metric_id"] == metric.id],
            )
            return self._get_or_put(key, compute, _frame_bytes, _frame)

        return memo

    def spc_memo(self, settings) -> Callable:
        """``memo`` for :func:`~leaguetables.statistics.spc.run_spc` with the methodology's SPC ``settings``."""
        common = digest(None if settings is None else settings.model_dump(mode="json"))

        def memo(metric, history: pd.DataFrame, quarters: list[str], compute: Callable) -> dict[str, SPCResult]:
            cols = [c for c in SPC_COLUMNS if c in history.columns]
            key = digest("spc", common, metric.model_dump(mode="json"), history[cols], list(quarters))
            got = self.entries.get(key)
            if got is not None and {"values", "limits", "rules", "states", "text"} <= set(got):
                return _spc(got)
            results = compute()
            self.entries.put(key, _spc_arrays(results))
            return results

        return memo

    def sheet(self, key: str, compute: Callable[[], tuple[list[str], list[list[tuple]], str]]):
        """The spreadsheet's cells of a CSV file under ``key`` (the SHA-256 of its bytes,
        :class:`~leaguetables.publication.spreadsheet.SheetCache`): ``(header, rows, rows as content.xml)``, read
        back or ``compute()`` kept: the cells as JSON by column of the flat list (each cell's kind as one letter, its
        value, each row's length), the XML as its UTF-8 bytes."""
        got = self.entries.get(key)
        if got is not None and {"cells", "xml"} <= set(got):
            header, lengths, kinds, values = json.loads(got["cells"].tobytes())
            flat = list(zip(map(_KINDS.__getitem__, kinds), values))
            ends = np.cumsum(lengths).tolist()
            rows = [flat[e - n : e] for n, e in zip(lengths, ends)]
            return header, rows, got["xml"].tobytes().decode("utf-8")
        header, rows, body = compute()
        cells = [c for row in rows for c in row]
        if not {k for k, _ in cells} <= set(_KINDS.values()):  # not a CSV table's cells: not kept
            return header, rows, body
        plain = [header, [len(r) for r in rows], "".join(k[0] for k, _ in cells), [v for _, v in cells]]
        encoded = np.frombuffer(json.dumps(plain, separators=(",", ":")).encode(), np.uint8)
        self.entries.put(key, {"cells": encoded, "xml": np.frombuffer(body.encode("utf-8"), np.uint8)})
        return header, rows, body

    def close(self) -> None:
        """Keep the entries this run used and those of the run before; remove the rest."""
        self.entries.close()


def open_cache(folder: str | Path) -> DerivedCache | None:
    """The cache in ``folder`` (the report notebook's parameter ``report_cache``), or None when it is empty."""
    return DerivedCache(folder) if str(folder) else None
