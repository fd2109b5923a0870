"""The run's default folders and its sources: what ``run_quarter.py`` needs to parse its arguments, importable
without the pipeline (whose libraries cost ~1.5 s to import; a no-op rerun never needs them)."""

from __future__ import annotations

from leaguetables.config import PROJECT_ROOT

DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo"
DEFAULT_REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
DEFAULT_OUT = PROJECT_ROOT / "reports"
SOURCES = ("demo", "nhse", "nof", "files")
