"""Import helpers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_module(name: str) -> Iterator[None]:
    """Within the block, ``import name`` raises ModuleNotFoundError without importing anything (a ``None`` entry in
    ``sys.modules``, Python's documented way to block an import); afterwards it imports as usual. Does nothing when
    the module is already imported."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
