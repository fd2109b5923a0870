"""A no-op rerun found before anything heavy is imported: the up-to-date check of a published quarter.

A published quarter's manifest records ``rerun_key`` (:func:`rerun_key`): a SHA-256 over everything its outputs
are a function of — the run's options (quarter, source, data folder, ``--metrics``, the methodology and catalogue
arguments), the bytes of every file at the top of the data folder (the four contract files, the demo's provenance),
the code (:func:`leaguetables.run.cache.code_hash`: ``src/leaguetables/`` with its templates, ``requirements.lock``,
the Python version), the notebooks, the configuration folder (and any ``.yaml`` given by path) and the git state
the pages show. The pipeline is deterministic (the same inputs give the same bytes: ``tests/test_rerun.py``,
``tests/test_notebook_interface.py``), so a rerun whose key is the recorded one, over a published quarter whose
files still have the checksums its manifest records, would publish exactly those bytes: :func:`unchanged` says so
without validating the inputs, restoring the stages from the cache or importing pandas, pandera or papermill
(~0.4 s instead of ~2.5 s). Anything else takes the pipeline's full path, whose no-op compares every file: another
key, a published file changed since, an unfinished publish or a killed run's staging folder, a quarter with
revisions, a manifest without the key, ``--revise``/``--force``/``--no-cache``/``--verify``, a source derived from
``--raw``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from leaguetables.config import PROJECT_ROOT, file_sha256
from leaguetables.run.cache import code_hash, sha256_json, tree_hash
from leaguetables.run.defaults import DEFAULT_DEMO_DATA
from leaguetables.run.manifest import git_state, published_files

FIELD = "rerun_key"  # the manifest's field
SOURCES = ("demo", "files")  # sources read from a data folder as they are (not derived from --raw)


def data_folder(source: str, data: Path | str | None) -> Path:
    """The data folder a run of ``source`` reads (absolute)."""
    return Path(os.path.abspath(data if data is not None else DEFAULT_DEMO_DATA))


def _config_arg(value: str | None) -> str | None:
    """A methodology or catalogue argument as the pipeline passes it on: an id, or a ``.yaml`` path made absolute."""
    if value is None:
        return None
    return os.path.abspath(value) if Path(str(value)).suffix in (".yaml", ".yml") else str(value)


def rerun_key(
    quarter: str,
    source: str,
    data_dir: Path,
    metrics: list[str] | None,
    methodology: str,
    catalogue: str | None,
) -> str:
    """The key of a run (see the module docstring): the same arguments, files, code and configuration give the
    same key."""
    configs = (_config_arg(methodology), _config_arg(catalogue))
    files = {p.name: file_sha256(p) for p in sorted(Path(data_dir).iterdir()) if p.is_file()}
    by_path = {v: file_sha256(Path(v)) for v in configs if v is not None and Path(v).is_file()}
    git = git_state()
    git.pop("head", None)
    return sha256_json(
        {
            "quarter": quarter,
            "source": source,
            "data": str(data_dir),
            "metrics": list(metrics) if metrics else None,
            "methodology": configs[0],
            "catalogue": configs[1],
            "inputs": files,
            "code": code_hash(),
            "notebooks": tree_hash(PROJECT_ROOT / "notebooks"),
            "config": tree_hash(PROJECT_ROOT / "config"),
            "config_files": by_path,
            "git": git,
        }
    )


def unchanged(out_root: Path, quarter: str, key: str) -> bool:
    """True when the published ``quarter`` under ``out_root`` was made by a run of key ``key`` and its files are
    those its manifest records (nothing to do); False whenever the pipeline's full path must decide."""
    out_root = Path(out_root)
    target = out_root / quarter
    if (out_root / f".publishing-{quarter}.json").exists() or any(out_root.glob(f".staging-{quarter}*")):
        return False  # an unfinished publish to recover, or a killed run's staging folder to remove
    if (target / "tables" / "revisions.csv").exists():
        return False  # a revised quarter: its revisions are recomputed against it
    try:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get(FIELD) != key:
        return False
    outputs = {p.relative_to(target).as_posix(): file_sha256(p) for p in published_files(target)}
    return outputs == manifest.get("outputs")
