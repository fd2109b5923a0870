"""The manifest of a published quarter (``manifest.json``: code version and commit, parameters, configuration,
input and output hashes, environment, timings) and the git state shown in the published pages."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from leaguetables import __version__
from leaguetables.config import PROJECT_ROOT, file_sha256

#: The packages the figures are computed and rendered with: recorded in the manifest and in every executed notebook.
STACK_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill", "nbconvert")
MANIFEST_PACKAGES = (
    *STACK_PACKAGES,
    "nbclient",
    "nbformat",
    "ipykernel",
    "pandera",
    "pydantic",
    "PyYAML",
    "odfpy",
    "Jinja2",
)
UNPUBLISHED = {"_work", "review"}  # top-level folders of a quarter that are not part of the publication
VOLATILE = {"manifest.json"}  # differs between identical runs (timings); compared separately
CODE_PATHS = ("src", "notebooks", "config", "requirements.lock", "pyproject.toml")  # what the outputs depend on


def versions(names) -> dict[str, str | None]:
    """Installed version of each distribution name (``None`` when it is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict:
    """The commit of the code that produced the outputs, for the provenance shown in the published pages.

    ``sha`` is the last commit that changed the code, notebooks, configuration or locked environment
    (:data:`CODE_PATHS`), not ``HEAD``: a commit that touches only documentation or tests leaves every published
    page byte-identical, so a rerun stays a no-op. ``dirty`` is true when those paths have uncommitted changes.
    """
    head = _git("rev-parse", "HEAD")
    code = _git("log", "-1", "--format=%H", "--", *CODE_PATHS)
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {
        "sha": code or head or "unknown",
        "head": head or "unknown",
        "dirty": bool(dirty) if dirty is not None else None,
    }


def package_versions() -> dict:
    return versions(MANIFEST_PACKAGES)


def published_files(folder: Path) -> list[Path]:
    """The files of a quarter's folder that are part of the publication (sorted): everything but the working
    folder, review artefacts and the manifest."""
    files = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in UNPUBLISHED and str(rel) not in VOLATILE:
            files.append(p)
    return files


def write_manifest(prep, staging: Path, timings: dict, cache: dict | None = None) -> dict:
    opts = prep.options
    inputs = {
        str(k): {"path": str(Path(v).resolve()), "sha256": file_sha256(Path(v))}
        for k, v in sorted(prep.inputs.files.items())
    }
    config_files = {
        "methodology": getattr(prep, "methodology_path", None)
        or PROJECT_ROOT / "config" / "methodology" / f"{prep.methodology.id}.yaml",
        "catalogue": getattr(prep, "catalogue_path", None)
        or PROJECT_ROOT / "config" / "catalogues" / f"{prep.catalogue.id}.yaml",
    }

    def _rel(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(PROJECT_ROOT)) if p.is_relative_to(PROJECT_ROOT) else str(p)

    manifest = {
        "quarter": opts.quarter,
        "code": {"version": __version__, "git": git_state()},
        "parameters": {
            "source": opts.source,
            "data": str(Path(prep.data_dir).resolve()),
            "jobs": opts.jobs,
            "metrics": prep.metric_ids,
            "methodology": prep.methodology.id,
            "catalogue": prep.catalogue.id,
            # what to pass to run_quarter.py to rerun exactly this (used by --verify)
            "methodology_arg": str(opts.methodology),
            "catalogue_arg": None if opts.catalogue is None else str(opts.catalogue),
            "raw": str(Path(opts.raw).resolve()) if opts.source == "nhse" else None,
            "metrics_arg": list(opts.metrics) if opts.metrics else None,
            # a --metrics run leaving out metrics with data: marked in the title and banner too
            "partial": bool(getattr(prep, "omitted", None)),
            "omitted_metrics": list(getattr(prep, "omitted", None) or []),
        },
        "methodology": {
            "id": prep.methodology.id,
            "version": prep.methodology.version,
            "catalogue": prep.catalogue.id,
            "catalogue_version": prep.catalogue.version,
            "bootstrap_replicates": prep.methodology.bootstrap.replicates,
            "bootstrap_seed": prep.methodology.bootstrap.seed,
        },
        "config": {
            k: {"path": _rel(v), "sha256": file_sha256(Path(v))} for k, v in config_files.items() if Path(v).exists()
        },
        "inputs": inputs,
        "outputs": {str(p.relative_to(staging)): file_sha256(p) for p in published_files(staging)},
        "environment": {
            "python": platform.python_version(),
            "executable": sys.executable,
            "kernel": "leaguetables",
            "packages": package_versions(),
        },
        "timings_seconds": timings,
        "cache": cache or {},
        # the up-to-date check of a rerun (leaguetables.run.uptodate): the key of the run that made these outputs
        "rerun_key": getattr(opts, "rerun_key", None),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
