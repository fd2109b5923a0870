"""A notebook of two cells for the project's kernel — a ``parameters`` cell and one code cell — written for the tests
that execute a notebook through a kernel worker (tests/test_rerun_caches.py, tests/test_kernel_server.py)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from leaguetables.run import kernels


def tiny_notebook(path: Path, parameters: str, code: str) -> Path:
    """Write the notebook (``parameters``: the source of its tagged parameters cell; ``code``: its second cell) to
    ``path`` and return ``path``."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": kernels.KERNEL_NAME, "language": "python", "display_name": "Python"}}
    )
    nb.cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code),
    ]
    nbformat.write(nb, path)
    return path
