"""Differences between two versions of a quarter's outputs: the published folder and a rerun.

Used by ``run_quarter.py --verify`` (rerun from the inputs recorded in the manifest and report every difference),
by every run before publishing over an existing quarter (identical → a no-op; different → refuse unless
``--revise``/``--force``) and by the revisions table.

What is compared:

* every published file (see :func:`leaguetables.run.publish.published_files`): CSV tables row by row, matched on their
  key columns (``trust_code``, ``metric_id``, …), naming the columns that differ with old → new values; other
  files byte for byte, with an excerpt around the first difference of a text file;
* executed notebooks (``notebooks/*.ipynb``) by their cell outputs only — printed text, HTML and images of each
  code cell, matched by cell id; not stderr (warnings and log lines) — because the rest of an executed notebook is
  volatile by nature (papermill timings, the kernel-reset cell that depends on which warm kernel ran it, execution
  counts, the staging paths in the injected parameters);
* ``manifest.json`` by what defines the run — parameters (not ``jobs``), methodology, configuration and input
  checksums — never by its timings or cache report. A different code version or environment is shown as a note,
  not counted as a difference: what counts is whether the outputs are the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leaguetables.run.manifest import published_files, read_manifest

KEY_COLUMNS = ("table", "trust_code", "Trust_code", "metric_id", "Metric_ID")  # always part of the key when present
EXTRA_KEYS = ("trust_type", "term", "quantity", "quarter")  # added, in order, only until the key is unique
MAX_ROWS = 12  # rows listed per table before "… and N more"
TEXT_SUFFIXES = {".html", ".htm", ".svg", ".json", ".md", ".txt", ".css", ".js", ".xml"}
IGNORED_CELL_IDS = {"kernel-reset"}


@dataclass
class Difference:
    path: str
    summary: str
    details: list[str] = field(default_factory=list)

    def lines(self, max_rows: int = MAX_ROWS) -> list[str]:
        out = [f"{self.path}: {self.summary}"]
        shown = self.details[:max_rows]
        out += [f"    {d}" for d in shown]
        if len(self.details) > len(shown):
            out.append(f"    … and {len(self.details) - len(shown)} more")
        return out


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def report(self, max_files: int = 40, max_rows: int = MAX_ROWS) -> str:
        lines = []
        for d in self.differences[:max_files]:
            lines += d.lines(max_rows)
        if len(self.differences) > max_files:
            lines.append(f"… and {len(self.differences) - max_files} more files")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------ CSV
def read_text_table(path: Path):
    """A CSV as text cells (no type conversion: what is compared is what is published)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return None


def table_key(a, b) -> list[str]:
    """Key columns present in both tables and unique in each; [] when none is (rows are then matched by number)."""
    keys = [c for c in KEY_COLUMNS if c in a.columns and c in b.columns]
    extra = [c for c in EXTRA_KEYS if c in a.columns and c in b.columns]
    while True:
        if keys and not a.duplicated(keys).any() and not b.duplicated(keys).any():
            return keys
        if not extra:
            return []  # no key, or no unique one: rows are matched by line number
        keys.append(extra.pop(0))


def _fmt(v: str) -> str:
    return "(empty)" if v == "" else v


def compare_tables(old, new) -> list[str]:
    """Rows and columns that differ between two text tables: ``row trust_code=X: col old → new; …``."""
    details = []
    removed = [c for c in old.columns if c not in new.columns]
    added = [c for c in new.columns if c not in old.columns]
    if removed:
        details.append(f"columns removed: {removed}")
    if added:
        details.append(f"columns added: {added}")
    common = [c for c in old.columns if c in new.columns]
    keys = table_key(old, new)
    if keys:
        o = old.set_index(keys, drop=False)
        n = new.set_index(keys, drop=False)
        label = lambda k: ", ".join(f"{c}={v}" for c, v in zip(keys, k if isinstance(k, tuple) else (k,)))  # noqa: E731
    else:
        o, n = old.copy(), new.copy()
        o.index = range(2, len(o) + 2)  # line numbers in the file (the header is line 1)
        n.index = range(2, len(n) + 2)
        label = lambda k: f"line {k}"  # noqa: E731
    o_keys, n_keys = list(o.index), set(n.index)
    for k in o_keys:
        if k not in n_keys:
            details.append(f"row {label(k)}: removed")
    o_set = set(o_keys)
    for k in n.index:
        if k not in o_set:
            details.append(f"row {label(k)}: added")
    both = [k for k in o_keys if k in n_keys]
    if both:
        oc, nc = o.loc[both, common], n.loc[both, common]
        diff = oc.to_numpy() != nc.to_numpy()
        for i in [i for i in range(len(both)) if diff[i].any()]:
            cells = [f"{c} {_fmt(oc.iat[i, j])} → {_fmt(nc.iat[i, j])}" for j, c in enumerate(common) if diff[i, j]]
            details.append(f"row {label(both[i])}: " + "; ".join(cells))
    return details


# ------------------------------------------------------------------------------------------------------ notebooks
def notebook_outputs(path: Path) -> dict[str, str] | None:
    """``{cell id: hash of its outputs}`` (text, HTML and images; not execution counts or metadata)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    out = {}
    for i, cell in enumerate(nb.get("cells", [])):
        cid = cell.get("id") or f"cell-{i}"
        if cell.get("cell_type") != "code" or cid in IGNORED_CELL_IDS:
            continue
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        parts: list[tuple] = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                if o.get("name") == "stderr":
                    continue  # warnings and log messages: not results (and some show once per kernel process)
                parts.append(("stream", o.get("name"), "".join(o.get("text", ""))))
            elif o.get("output_type") in ("display_data", "execute_result"):
                data = o.get("data", {})
                parts.append(
                    (
                        "data",
                        {
                            k: ("".join(v) if isinstance(v, list) else v)
                            for k, v in sorted(data.items())
                            if k != "application/vnd.jupyter.widget-view+json"
                        },
                    )
                )
            elif o.get("output_type") == "error":
                parts.append(("error", o.get("ename"), o.get("evalue")))
        out[cid] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return out


def compare_notebooks(old: Path, new: Path) -> list[str]:
    a, b = notebook_outputs(old), notebook_outputs(new)
    if a is None or b is None:
        return ["not a readable notebook"]
    details = []
    for cid in sorted(set(a) | set(b)):
        if cid not in b:
            details.append(f"cell {cid}: removed")
        elif cid not in a:
            details.append(f"cell {cid}: added")
        elif a[cid] != b[cid]:
            details.append(f"cell {cid}: outputs differ")
    return details


# ------------------------------------------------------------------------------------------------------- manifest
def manifest_defining(m: dict) -> dict:
    params = {k: v for k, v in m.get("parameters", {}).items() if k not in ("jobs", "data", "raw")}
    return {
        "parameters": params,
        "methodology": m.get("methodology"),
        "config": {k: v.get("sha256") for k, v in m.get("config", {}).items()},
        "inputs": {k: v.get("sha256") for k, v in m.get("inputs", {}).items()},
    }


def compare_manifests(old: dict | None, new: dict | None) -> tuple[list[str], list[str]]:
    """(differences, notes) between two manifests, ignoring timings and the cache report."""
    if old is None or new is None:
        return (["manifest.json missing or unreadable"] if (old is None) != (new is None) else []), []
    a, b = manifest_defining(old), manifest_defining(new)
    details = []
    for section in a:
        sa, sb = a[section] or {}, b[section] or {}
        for k in sorted(set(sa) | set(sb)):
            if sa.get(k) != sb.get(k):
                details.append(f"{section}.{k}: {sa.get(k)} → {sb.get(k)}")
    notes = []
    ga, gb = old.get("code", {}), new.get("code", {})
    if ga.get("version") != gb.get("version") or ga.get("git", {}).get("sha") != gb.get("git", {}).get("sha"):
        notes.append(
            f"code version {ga.get('version')} (git {str(ga.get('git', {}).get('sha'))[:12]}) → "
            f"{gb.get('version')} (git {str(gb.get('git', {}).get('sha'))[:12]})"
        )
    ea, eb = old.get("environment", {}), new.get("environment", {})
    pa, pb = ea.get("packages", {}), eb.get("packages", {})
    changed = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    if ea.get("python") != eb.get("python") or changed:
        notes.append(
            "environment differs: "
            + ", ".join(
                ([f"python {ea.get('python')} → {eb.get('python')}"] if ea.get("python") != eb.get("python") else [])
                + [f"{k} {pa.get(k)} → {pb.get(k)}" for k in changed]
            )
        )
    return details, notes


# ---------------------------------------------------------------------------------------------------------- files
def first_difference(a: bytes, b: bytes, block: int = 4096) -> int:
    """The index of the first byte where ``a`` and ``b`` differ (the shorter's length when one is a prefix of the
    other): whole blocks compared in C first, then byte by byte in the first block that differs."""
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start : start + block] == b[start : start + block]:
        start += block
    return next((k for k in range(start, min(start + block, n)) if a[k] != b[k]), n)


def _text_excerpt(a: bytes, b: bytes) -> str:
    i = first_difference(a, b)
    line = a[:i].count(b"\n") + 1
    lo = max(0, i - 60)
    ea = a[lo : i + 60].decode("utf-8", "replace").replace("\n", "⏎")
    eb = b[lo : i + 60].decode("utf-8", "replace").replace("\n", "⏎")
    return f"first difference at line {line}: …{ea}… → …{eb}…"


def compare_files(old: Path, new: Path, rel: str) -> Difference | None:
    a, b = old.read_bytes(), new.read_bytes()
    if rel.startswith("notebooks/") and rel.endswith(".ipynb"):
        details = compare_notebooks(old, new)
        return Difference(rel, "cell outputs differ", details) if details else None
    if a == b:
        return None
    if rel.endswith(".csv"):
        ta, tb = read_text_table(old), read_text_table(new)
        if ta is not None and tb is not None:
            details = compare_tables(ta, tb)
            if details:
                return Difference(rel, f"{len(details)} row(s) differ", details)
            return Difference(rel, "differs in layout only (quoting, line ends or column order)")
    if Path(rel).suffix in TEXT_SUFFIXES:
        return Difference(rel, "differs", [_text_excerpt(a, b)])
    return Difference(rel, f"differs (binary; {len(a):,} → {len(b):,} bytes)")


def first_changed(published: Path, rerun: Path) -> Comparison | None:
    """Whether a rerun changes a published quarter, for a run that publishes it whatever the differences are
    (``--force``, ``--revise``): a comparison holding the first file found that only one of them has or whose bytes
    differ (the tables first, the executed notebooks skipped: their bytes differ between identical runs), or None
    when no such file differs — :func:`compare_folders` then decides, so the outcome is the one it gives. Reading
    stops at the first difference rather than comparing every file table by table."""
    published, rerun = Path(published), Path(rerun)
    old = {p.relative_to(published).as_posix(): p for p in published_files(published)}
    new = {p.relative_to(rerun).as_posix(): p for p in published_files(rerun)}
    only = sorted(set(old) ^ set(new))
    if only:
        return Comparison(
            [Difference(only[0], "only in the published version" if only[0] in old else "only in the rerun")]
        )
    for rel in sorted(old, key=lambda r: (not r.startswith("tables/"), r)):
        if rel.startswith("notebooks/") and rel.endswith(".ipynb"):
            continue
        a, b = old[rel], new[rel]
        if a.stat().st_size != b.stat().st_size or a.read_bytes() != b.read_bytes():
            return Comparison([Difference(rel, "differs")])
    return None


def compare_folders(published: Path, rerun: Path) -> Comparison:
    """Every difference between a published quarter and a rerun of it (see the module docstring)."""
    published, rerun = Path(published), Path(rerun)
    old = {p.relative_to(published).as_posix(): p for p in published_files(published)}
    new = {p.relative_to(rerun).as_posix(): p for p in published_files(rerun)}
    result = Comparison()
    for rel in sorted(set(old) | set(new)):
        if rel not in new:
            result.differences.append(Difference(rel, "only in the published version"))
        elif rel not in old:
            result.differences.append(Difference(rel, "only in the rerun"))
        else:
            d = compare_files(old[rel], new[rel], rel)
            if d is not None:
                result.differences.append(d)
    details, notes = compare_manifests(read_manifest(published), read_manifest(rerun))
    if details:
        result.differences.append(Difference("manifest.json", "the run is defined differently", details))
    result.notes += notes
    # tables first (the most informative), then the rest
    result.differences.sort(key=lambda d: (not d.path.startswith("tables/"), d.path))
    return result
