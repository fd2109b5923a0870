"""The published documents of a quarter, built after the report notebook has run: the report HTML (exported from
the executed notebook by nbconvert) and, beside it, the documents built from the same computed tables."""

from __future__ import annotations

from pathlib import Path

from .contract import quarter_label, quarter_period
from .publish import export_html


def build_publication(prep, staging: Path, work: Path) -> dict:
    """Write the published documents into ``staging``; return timings in seconds per document."""
    import time

    timings = {}
    t0 = time.perf_counter()
    quarter = prep.options.quarter
    title = f"NHS trust league tables: {quarter_label(quarter)} ({quarter_period(quarter)})"
    export_html(staging / "notebooks" / "report.ipynb", staging / "index.html", title)
    timings["report_html"] = round(time.perf_counter() - t0, 3)
    return timings
