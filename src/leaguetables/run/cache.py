"""Incremental runs: a content-addressed cache of what each stage of a quarter produced.

A stage (one metric notebook, the league notebook, the report notebook, the published documents) is re-executed
only when something it depends on has changed. Its **key** is a SHA-256 over a JSON description of everything it
reads, made of content hashes, never of paths or times:

* the code: every file under ``src/leaguetables/`` (templates included), ``requirements.lock`` and the Python
  version (:func:`code_hash`), and the stage's notebook file;
* the methodology and the metric catalogue, as the validated objects (so a comment or reformatting of the YAML
  does not count, a changed threshold does);
* the data the stage reads, hashed from the *validated* frames (:func:`frame_hash`): for a metric, its own
  observations up to the quarter, the trust register, demographics and the quarter's status rows; the league and
  report stages are keyed on the keys of the stages before them plus what else they read (the previous quarter's
  published league table, the staged tables, the input file checksums shown in the footer, the git state shown in
  the provenance).

An entry stores the files the stage wrote (relative to the staging folder, under ``files/``) with their SHA-256;
a hit copies them back, checked, so the downstream stages see exactly what the executed stage produced. Entries
live in ``<out>/.cache/<quarter>/<stage>/<key>/`` and are written atomically (temporary folder, then rename); the
two most recently used entries of each stage are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from leaguetables.config import PROJECT_ROOT, file_sha256

CACHE_DIR = ".cache"
KEEP = 2  # entries kept per stage (the current one and the one before)
SRC_DIR = PROJECT_ROOT / "src" / "leaguetables"
LOCK_FILE = PROJECT_ROOT / "requirements.lock"


def sha256_json(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def frame_hash(df) -> str:
    """Content hash of a DataFrame: column names, dtypes and values (floats in full precision), row order as is."""
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, df.columns)), [str(t) for t in df.dtypes]]).encode())
    h.update(df.to_csv(index=False, lineterminator="\n", float_format="%.17g").encode("utf-8"))
    return h.hexdigest()


def tree_hash(root: Path, exclude: tuple[str, ...] = ("__pycache__",), suffixes: tuple[str, ...] | None = None) -> str:
    """Hash of every file under ``root`` (relative path and content), skipping folders named in ``exclude``."""
    h = hashlib.sha256()
    root = Path(root)
    if not root.exists():
        return "absent"
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part in exclude for part in rel.parts) or p.suffix in (".pyc",):
            continue
        if suffixes is not None and p.suffix not in suffixes:
            continue
        h.update(str(rel).encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return h.hexdigest()


_CODE: dict[str, str] = {}


def code_hash() -> str:
    """The code and locked environment the outputs depend on: ``src/leaguetables/`` (with the templates),
    ``requirements.lock``, the interpreter version. Computed once per process (:func:`current_code_hash`)."""
    if "code" not in _CODE:
        _CODE["code"] = current_code_hash()
    return _CODE["code"]


def current_code_hash() -> str:
    """:func:`code_hash` of the files as they are now (the kernel server compares it with its own at each request:
    the sources may have changed since this process first computed it)."""
    lock = file_sha256(LOCK_FILE) if LOCK_FILE.exists() else "absent"
    return sha256_json({"src": tree_hash(SRC_DIR), "lock": lock, "python": platform.python_version()})


def file_or_absent(path: Path) -> str:
    path = Path(path)
    return file_sha256(path) if path.is_file() else "absent"


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (top-level folders in ``skip`` left out)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root)
            if rel.parts[0] in skip:
                continue
            out[rel.as_posix()] = file_sha256(p)
    return out


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files new or modified between two snapshots (what a stage wrote)."""
    return sorted(k for k, v in after.items() if before.get(k) != v)


@dataclass
class CacheReport:
    """What a run reused and what it executed, for the summary line and the manifest."""

    reused: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "reused": sorted(self.reused),
            "executed": sorted(self.executed),
            "keys": dict(sorted(self.keys.items())),
        }


class StageCache:
    """Stores and restores the files a stage wrote into the staging folder, by content key."""

    def __init__(self, out_root: Path, quarter: str, enabled: bool = True):
        self.root = Path(out_root) / CACHE_DIR / quarter
        self.enabled = enabled

    def _entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> dict | None:
        if not self.enabled:
            return None
        meta_path = self._entry(stage, key) / "entry.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or not isinstance(meta.get("files"), dict):
            return None
        return meta

    def restore(self, stage: str, key: str, staging: Path) -> list[str] | None:
        """Copy a cached stage's files into ``staging``; None (a miss) when the entry is absent or damaged."""
        meta = self.lookup(stage, key)
        if meta is None:
            return None
        entry = self._entry(stage, key) / "files"
        staging = Path(staging)
        for rel, digest in meta["files"].items():
            src = entry / rel
            if not src.is_file() or file_sha256(src) != digest:
                return None  # damaged entry: treat as a miss (the stage runs again and overwrites it)
        for rel in meta["files"]:
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / rel, dst)
        now = time.time()
        os.utime(self._entry(stage, key) / "entry.json", (now, now))
        return sorted(meta["files"])

    def store(self, stage: str, key: str, staging: Path, files: list[str], describe: dict | None = None) -> None:
        if not self.enabled:
            return
        staging = Path(staging)
        final = self._entry(stage, key)
        tmp = self.root / stage / f".tmp-{key[:16]}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "files").mkdir(parents=True)
        digests = {}
        for rel in sorted(files):
            src = staging / rel
            dst = tmp / "files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            digests[rel] = file_sha256(dst)
        (tmp / "entry.json").write_text(
            json.dumps(
                {"key": key, "stage": stage, "files": digests, "depends_on": describe or {}}, indent=1, sort_keys=True
            ),
            encoding="utf-8",
        )
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        self.prune(stage)

    def prune(self, stage: str) -> None:
        folder = self.root / stage
        entries = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".tmp-")]
        entries.sort(
            key=lambda p: (p / "entry.json").stat().st_mtime if (p / "entry.json").exists() else 0, reverse=True
        )
        for p in entries[KEEP:]:
            shutil.rmtree(p, ignore_errors=True)

    def clean_tmp(self) -> None:
        """Remove half-written entries left by killed runs (call with the quarter's lock held)."""
        if self.root.exists():
            for p in self.root.glob("*/.tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
