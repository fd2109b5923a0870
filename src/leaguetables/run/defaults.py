"""The run's default folders and its sources: what ``run_quarter.py`` needs to parse its arguments, importable
without the pipeline (whose libraries cost ~1.5 s to import; a no-op rerun never needs them), and the checks of
the arguments alone, so that a wrong one is refused before those libraries are imported."""

from __future__ import annotations

from leaguetables.config import PROJECT_ROOT, SAFE_ID, Catalogue, load_catalogue, load_methodology
from leaguetables.errors import InputError
from leaguetables.quarters import check_quarter

DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo"
DEFAULT_REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
DEFAULT_OUT = PROJECT_ROOT / "reports"
SOURCES = ("demo", "nhse", "nof", "files")
SOURCE_CATALOGUE = {"demo": "demo", "nhse": "nhse-acute", "nof": "nof-2025-26", "files": None}


def check_metric_ids(metrics: list[str] | None, catalogue: Catalogue) -> None:
    """Every metric id that ``--metrics`` names is in the run's catalogue."""
    unknown = [m for m in metrics or [] if m not in catalogue.ids]
    if unknown:
        raise InputError(f"--metrics: unknown metric(s) {unknown}; the catalogue {catalogue.id!r} has {catalogue.ids}")


def check_arguments(
    quarter: str, source: str, metrics: list[str] | None, methodology: str, catalogue: str | None
) -> None:
    """What can be refused from the arguments alone, in a fraction of a second: the quarter's form and, when
    ``--metrics`` names metric ids, that each is in the run's catalogue. ``run_quarter.py`` calls it before it
    imports the pipeline, which checks the same again (``pipeline.prepare``, before it reads any data); an id that
    is not a metric id at all is left to the pipeline's own message."""
    check_quarter(quarter)
    if metrics and all(SAFE_ID.match(m) for m in metrics):
        name = catalogue or SOURCE_CATALOGUE.get(source) or load_methodology(methodology).catalogue
        check_metric_ids(metrics, load_catalogue(name))
