"""The object papermill's entry point names (``[project.entry-points."papermill.engine"]`` in ``pyproject.toml``).

Papermill loads its engines' entry points while it is being imported, and the engine
(:class:`leaguetables.run.engine.WarmKernelEngine`) subclasses papermill's: pointing the entry point at it would make
``import leaguetables.run.engine`` (before papermill) an import cycle. This module imports nothing; the class it
exports hands every attribute papermill asks for (``execute_notebook``, ``nb_kernel_name``, ``nb_language``) to the
real engine, imported on first use.
"""

from __future__ import annotations


class _Deferred(type):
    def __getattr__(cls, name: str):
        # a function-local import: it breaks the import cycle with papermill described in the module docstring
        from leaguetables.run.engine import WarmKernelEngine as engine

        return getattr(engine, name)


class WarmKernelEngine(metaclass=_Deferred):
    """Papermill engine ``leaguetables``: :class:`leaguetables.run.engine.WarmKernelEngine`, resolved on use."""
