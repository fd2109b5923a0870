"""What every notebook loads first: its configuration and validated inputs, from its parameters alone; and the
provenance of the interpreter.

A notebook is given the ids (or ``.yaml`` paths) of the methodology and catalogue configs and the paths of the
validated inputs the pipeline wrote as content-addressed files (:mod:`leaguetables.inputs.store`); :func:`load`
reads and validates them, so ``papermill notebooks/metric.ipynb out.ipynb -p metric_id … -p observations …``
reruns a notebook with nothing else.
"""

from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path

from leaguetables.config import Catalogue, Methodology, load_catalogue, load_methodology
from leaguetables.inputs.contract import QuarterInputs
from leaguetables.inputs.store import read_inputs, read_verified
from leaguetables.run.manifest import STACK_PACKAGES, versions

PROVENANCE_PACKAGES = ("leaguetables", *STACK_PACKAGES, "pandera")


def provenance() -> dict:
    """Interpreter and package versions of the running kernel (shown and recorded in each executed notebook)."""
    return {
        "sys.executable": sys.executable,
        "python": platform.python_version(),
        "packages": versions(PROVENANCE_PACKAGES),
    }


def load(
    methodology: str,
    catalogue: str,
    trusts: str,
    observations: str,
    demographics: str,
    status: str = "",
    quarters: str = "",
    checksums: dict[str, str] | None = None,
) -> tuple[QuarterInputs, Methodology, Catalogue]:
    """``(inputs, methodology, catalogue)`` of a notebook, from its parameters: the configs loaded and validated by
    id or path, the inputs read from their files and validated (:func:`leaguetables.inputs.store.read_inputs`)."""
    inputs = read_inputs(trusts, observations, demographics, status, quarters=quarters, checksums=checksums)
    return inputs, load_methodology(methodology), load_catalogue(catalogue)


def forget_shown_warnings() -> None:
    """Show again the warnings this process has already shown, as a fresh kernel would (run first on a reused
    kernel). Entering and leaving :class:`warnings.catch_warnings` restores the filters as they were and
    invalidates every module's record of the warnings it has shown (public API; no private attribute)."""
    with warnings.catch_warnings():
        pass


def load_run(run: str | Path) -> dict:
    """The run's description (``run.json``, kept in the store under its SHA-256: the report notebook's parameter
    ``run``), checked against its name."""
    return json.loads(read_verified(run, "run description"))
