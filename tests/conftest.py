"""Shared fixtures: the demo data (generated once per session into a temporary folder) and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = (ROOT / ".." / "shared" / "data" / "real").resolve()


def real_data_or_skip(*parts: str) -> Path:
    """The path of a folder of ../shared/data/real, or skip the test with the reason."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (tests that read ../shared/data/real skip)")
    return path


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from leaguetables import demo

    return demo.write(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_inputs(demo_dir):
    from leaguetables.config import load_catalogue
    from leaguetables.contract import load_inputs

    return load_inputs(demo_dir, load_catalogue("demo"))
