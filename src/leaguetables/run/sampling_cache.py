"""The league notebook's cache of each metric's replicates, kept between runs (notebook parameter ``sampling_cache``).

Each metric's replicates are drawn from their own random stream (:func:`leaguetables.statistics.sampling.metric_rng`)
and depend on nothing but that metric's data and the settings, so after one metric's data changed the others' can be
reused. :func:`leaguetables.statistics.sampling.sample_league` and
:func:`~leaguetables.statistics.sampling.change_test` key every entry on its content (the metric's definition and
rows, the seed, the number of replicates, the other settings); this class adds the code (:func:`cache.code_hash`:
``src/leaguetables/``, the lock file, the Python version), so an entry is never read by other code than wrote it.

An entry is one ``.npz`` file (``numpy.savez``, no pickle) named by the SHA-256 of its key, written atomically
(temporary file, then rename) and holding its own key, checked on read; a damaged or foreign file is a miss. Score
matrices whose values are all whole hundredths (NOF scores are 2-dp) are stored as int16 hundredths when that
round-trips exactly, a quarter of the size. Entries live in ``<out>/.cache/<quarter>/sampling/``; a run keeps the
entries it used and those of the run before (``runs.json``), and removes the rest when it closes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from leaguetables.run.cache import code_hash

RUNS_FILE = "runs.json"
KEY_ARRAY = "__key__"
CENTS = "__cents__"  # suffix of an array stored as int16 hundredths
NAN_CENTS = np.iinfo(np.int16).min


def _cents(a: np.ndarray) -> np.ndarray | None:
    """``a`` as int16 hundredths (NaN as :data:`NAN_CENTS`) when that gives back exactly ``a`` — the same bits: not
    when ``a`` holds −0.0, which equals 0.0 but is not it —, else None."""
    if a.dtype != np.float64 or a.size == 0:
        return None
    nan = np.isnan(a)
    scaled = np.round(np.where(nan, 0.0, a) * 100.0)
    if np.abs(scaled).max() >= 32_000:
        return None
    c = np.where(nan, NAN_CENTS, scaled).astype(np.int16)
    return c if _from_cents(c).tobytes() == np.ascontiguousarray(a).tobytes() else None


def _from_cents(c: np.ndarray) -> np.ndarray:
    return np.where(c == NAN_CENTS, np.nan, c / 100.0)


class SamplingCache:
    """A folder of entries by content key (:class:`leaguetables.statistics.sampling.MetricCache`)."""

    def __init__(self, folder: str | Path, salt: str | None = None) -> None:
        self.folder = Path(folder)
        self.salt = code_hash() if salt is None else salt
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def _name(self, key: str) -> str:
        return hashlib.sha256(f"{self.salt}\0{key}".encode()).hexdigest() + ".npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        name = self._name(key)
        try:
            with np.load(self.folder / name, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            self.misses += 1
            return None
        if bytes(arrays.pop(KEY_ARRAY, np.zeros(0, np.uint8))).decode("utf-8", "replace") != f"{self.salt}\0{key}":
            self.misses += 1
            return None
        self.used.add(name)
        self.hits += 1
        return {k.removesuffix(CENTS): _from_cents(v) if k.endswith(CENTS) else v for k, v in arrays.items()}

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        name = self._name(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, np.ndarray] = {KEY_ARRAY: np.frombuffer(f"{self.salt}\0{key}".encode(), np.uint8)}
        for k, a in arrays.items():
            a = np.asarray(a)
            c = _cents(a)
            out[k + CENTS if c is not None else k] = c if c is not None else np.ascontiguousarray(a)
        tmp = self.folder / f".tmp-{name}-{os.getpid()}"
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)  # type: ignore[arg-type]  # numpy stubs: the arrays are keyword arguments
        os.replace(tmp, self.folder / name)
        self.used.add(name)

    def close(self) -> None:
        """Keep the entries this run used and those the run before used; remove every other file."""
        if not self.folder.is_dir():
            return
        runs = self.folder / RUNS_FILE
        try:
            before = set(json.loads(runs.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            before = set()
        keep = self.used | before
        for p in self.folder.iterdir():
            if p.is_file() and p.name != RUNS_FILE and p.name not in keep:
                p.unlink(missing_ok=True)
        tmp = self.folder / f".tmp-{RUNS_FILE}-{os.getpid()}"
        tmp.write_text(json.dumps(sorted(self.used)), encoding="utf-8")
        os.replace(tmp, runs)


@contextlib.contextmanager
def open_cache(folder: str | Path) -> Iterator[SamplingCache | None]:
    """The cache in ``folder`` for one league (closed, so pruned, at the end), or None when ``folder`` is empty."""
    if not str(folder):
        yield None
        return
    cache = SamplingCache(folder)
    try:
        yield cache
    finally:
        cache.close()
