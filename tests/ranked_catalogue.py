"""A small synthetic metric catalogue for the sampling tests (``test_sampling.py``, ``test_sampling_streams.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from leaguetables.config import Catalogue


def ranked_catalogue(statistics: Sequence[str], standard: float | None = None) -> Catalogue:
    """Acute metrics ``m0``, ``m1``, … of the given statistics (percentages or rates per 100), scored by rank,
    alternately higher and lower better; ``standard``: a scoring standard of ``m0``."""
    ms = [
        {
            "id": f"m{j}",
            "name": f"M{j}",
            "description": "d",
            "domain": "D",
            "sub_domain": "S",
            "unit": "%",
            "trust_types": ["acute"],
            "direction": "higher_better" if j % 2 == 0 else "lower_better",
            "statistic": statistic,
            "multiplier": 100,
            "scoring": {"method": "ranked", **({"standard": standard} if standard is not None and j == 0 else {})},
            "source": "test",
        }
        for j, statistic in enumerate(statistics)
    ]
    return Catalogue.model_validate({"id": "t", "version": "1.0.0", "description": "t", "metrics": ms})
