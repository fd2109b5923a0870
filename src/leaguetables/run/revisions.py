"""Revisions: what changed when a published quarter is rerun with revised inputs (``run_quarter.py --revise``).

The revisions of a quarter are always counted from its **first publication**: ``tables/revisions.csv`` lists every
figure of the league table (``tables/league_table_full.csv``) and of the metric tables
(``tables/metrics/<metric>.csv``) that differs from what was first published, as text exactly as published:

    quarter, table, trust_code, metric_id, quantity, previous, revised

``table`` is the file under ``tables/`` without ``.csv`` (``league_table_full``, ``metrics/cdiff``); ``quantity``
the column (value, score, segment, rank, …), or ``(row)`` for a trust that appears or disappears (``previous`` /
``revised`` are then ``present`` / ``absent``). Each revised table gains a text column ``revision``: ``[r]``
followed by the revised quantities of the row, empty for rows not revised — numeric columns never carry marks.

Because the table records the previous value of every revised figure, the first publication can be rebuilt from the
latest one (:func:`baseline`); a second ``--revise`` therefore lists changes since the first publication, not since
the last revision, and rerunning a revised quarter with the same inputs reproduces it byte for byte (a no-op).

The revisions are computed between the league and report notebooks, so the report can show them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leaguetables.csv_output import write_csv

COLUMNS = ["quarter", "table", "trust_code", "metric_id", "quantity", "previous", "revised"]
REVISION_COLUMN = "revision"
ROW = "(row)"
PRESENT, ABSENT = "present", "absent"
FILE = "revisions.csv"


def revised_tables(folder: Path) -> dict[str, Path]:
    """``{table name: path}`` of the tables whose revisions are tracked, in a quarter's folder."""
    tables = Path(folder) / "tables"
    out = {}
    if (tables / "league_table_full.csv").is_file():
        out["league_table_full"] = tables / "league_table_full.csv"
    for p in sorted((tables / "metrics").glob("*.csv")):
        with open(p, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split(",")
        if "trust_code" in header and "metric_id" in header and "trust_type" in header and "value" in header:
            out[f"metrics/{p.stem}"] = p  # a metric's result table (not its model, fit or funnel tables)
    return out


def _keys(name: str) -> list[str]:
    return ["trust_code"] if name == "league_table_full" else ["trust_code", "metric_id"]


def _metric(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("metrics/") else ""


def read_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")
    return df.drop(columns=[REVISION_COLUMN], errors="ignore")


def read_revisions(folder: Path) -> pd.DataFrame | None:
    path = Path(folder) / "tables" / FILE
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")


def baseline(published: Path) -> dict[str, pd.DataFrame]:
    """The tracked tables as first published: the published tables with the recorded previous values put back."""
    tables = {name: read_table(path) for name, path in revised_tables(published).items()}
    revs = read_revisions(published)
    if revs is None or revs.empty:
        return tables
    for name, g in revs.groupby("table", sort=True):
        if name not in tables:
            continue
        keys = _keys(name)
        df = tables[name]
        index = {tuple(r): i for i, r in enumerate(df[keys].itertuples(index=False, name=None))}
        rows = g[g["quantity"] == ROW]
        cells = g[g["quantity"] != ROW]
        readd = []
        for r in rows.itertuples(index=False):
            key = (r.trust_code,) if len(keys) == 1 else (r.trust_code, r.metric_id)
            if r.previous == ABSENT and key in index:  # added by a revision: not in the first publication
                df = df.drop(index=df.index[index[key]])
            elif r.previous == PRESENT and key not in index:  # removed by a revision: rebuild it from its cells
                row = {c: "" for c in df.columns}
                row.update(dict(zip(keys, key)))
                mine = cells[(cells["trust_code"] == r.trust_code) & (cells["metric_id"] == r.metric_id)]
                row.update({q: p for q, p in zip(mine["quantity"], mine["previous"]) if q in df.columns})
                readd.append(row)
        df = df.reset_index(drop=True)
        if readd:
            df = pd.concat([df, pd.DataFrame(readd, columns=df.columns)], ignore_index=True)
            df = df.sort_values(keys, kind="mergesort").reset_index(drop=True)
        index = {tuple(r): i for i, r in enumerate(df[keys].itertuples(index=False, name=None))}
        for r in cells.itertuples(index=False):
            key = (r.trust_code,) if len(keys) == 1 else (r.trust_code, r.metric_id)
            if key in index and r.quantity in df.columns:
                df.iat[index[key], df.columns.get_loc(r.quantity)] = r.previous
        tables[name] = df
    return tables


def diff_tables(quarter: str, name: str, old: pd.DataFrame, new: pd.DataFrame) -> list[dict]:
    keys = _keys(name)
    metric = _metric(name)
    out = []
    o = old.set_index(keys, drop=False)
    n = new.set_index(keys, drop=False)
    cols = [c for c in old.columns if c in new.columns and c not in keys]

    def rec(key, quantity, prev, rev):
        key = key if isinstance(key, tuple) else (key,)
        return {
            "quarter": quarter,
            "table": name,
            "trust_code": key[0],
            "metric_id": key[1] if len(key) > 1 else metric,
            "quantity": quantity,
            "previous": prev,
            "revised": rev,
        }

    n_index = set(n.index)
    o_index = set(o.index)
    for k in o.index:
        if k not in n_index:
            out.append(rec(k, ROW, PRESENT, ABSENT))
            row = o.loc[k]
            out += [rec(k, c, row[c], "") for c in cols if row[c] != ""]
    for k in n.index:
        if k not in o_index:
            out.append(rec(k, ROW, ABSENT, PRESENT))
    both = [k for k in o.index if k in n_index]
    if both and cols:
        oc, nc = o.loc[both, cols].to_numpy(), n.loc[both, cols].to_numpy()
        diff = oc != nc
        for i, j in zip(*diff.nonzero()):
            out.append(rec(both[i], cols[j], oc[i, j], nc[i, j]))
    return out


def _table_record(quarter: str, name: str, previous: str, revised: str) -> dict:
    """A revision record for a whole table that appeared (``previous`` absent) or went (``revised`` absent)."""
    return {
        "quarter": quarter,
        "table": name,
        "trust_code": "",
        "metric_id": _metric(name),
        "quantity": "(table)",
        "previous": previous,
        "revised": revised,
    }


def compute(quarter: str, published: Path, staging: Path) -> pd.DataFrame:
    """Every tracked figure of ``staging`` that differs from the first publication of ``published``."""
    base = baseline(published)
    staged = {name: read_table(path) for name, path in revised_tables(staging).items()}
    records = []
    for name in sorted(set(base) & set(staged)):
        records += diff_tables(quarter, name, base[name], staged[name])
    for name in sorted(set(staged) - set(base)):  # a metric first published in this revision
        records.append(_table_record(quarter, name, previous=ABSENT, revised=PRESENT))
    for name in sorted(set(base) - set(staged)):
        records.append(_table_record(quarter, name, previous=PRESENT, revised=ABSENT))
    df = pd.DataFrame(records, columns=COLUMNS)
    return df.sort_values(["table", "trust_code", "metric_id", "quantity"], kind="mergesort").reset_index(drop=True)


def write(revisions: pd.DataFrame, staging: Path) -> list[str]:
    """Write ``tables/revisions.csv`` and mark the revised rows ``[r]`` in the revised tables; return what was
    written (relative paths)."""
    staging = Path(staging)
    written: list[str] = []
    if revisions.empty:
        return written
    write_csv(revisions[COLUMNS], staging / "tables" / FILE)
    written.append(f"tables/{FILE}")
    paths = revised_tables(staging)
    cells = revisions[revisions["trust_code"] != ""]
    for name, g in cells.groupby("table", sort=True):
        if name not in paths:
            continue
        keys = _keys(name)
        df = read_table(paths[name])
        marks: dict[tuple, list] = {}
        for r in g.itertuples(index=False):
            key = (r.trust_code,) if len(keys) == 1 else (r.trust_code, r.metric_id)
            marks.setdefault(key, []).append(r.quantity)
        col = [
            ("[r] " + "; ".join(sorted(set(marks[k])))) if k in marks else ""
            for k in df[keys].itertuples(index=False, name=None)
        ]
        df[REVISION_COLUMN] = col
        write_csv(df, paths[name])
        written.append(paths[name].relative_to(staging).as_posix())
    return written
