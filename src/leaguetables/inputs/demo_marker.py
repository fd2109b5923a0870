"""The demo data's provenance file: how a run tells the synthetic demo from the user's own files without importing
the demo generator (whose record-level modules pull in SciPy: ~0.7 s on every run, a no-op rerun included)."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_MARKER = "demo-source.json"  # written beside the demo's contract files: their provenance, for the labels


def is_demo_data(folder: Path) -> bool:
    """True when ``folder`` was written by :func:`leaguetables.inputs.demo.write` (the synthetic demo), by its
    provenance file."""
    try:
        return json.loads((Path(folder) / DEMO_MARKER).read_text(encoding="utf-8")).get("source") == "demo"
    except (OSError, ValueError, AttributeError):
        return False


def default_source(data: Path | None) -> str:
    """The source when ``--source`` is not given: the demo without ``--data``; with ``--data``, ``demo`` only for a
    folder the demo generator wrote (its ``demo-source.json``), else ``files`` (the user's own data — never labelled
    synthetic)."""
    if data is None or is_demo_data(Path(data)):
        return "demo"
    return "files"
