"""One version everywhere: the package's ``__version__`` (written into every manifest and page footer), the
``pyproject.toml`` version and the newest CHANGELOG entry (0.3.0 was released with ``__version__`` still 0.2.0)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import leaguetables

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_package_pyproject_and_changelog_agree_on_the_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert newest is not None
    assert leaguetables.__version__ == pyproject == newest.group(1)
