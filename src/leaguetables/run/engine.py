"""The papermill engine of the pipeline's warm kernels, registered as papermill engine ``leaguetables`` through the
entry point in ``pyproject.toml`` (``[project.entry-points."papermill.engine"]``, which names
:mod:`leaguetables.run.papermill_entry`: papermill loads entry points while it is imported).

It differs from papermill's default engine (``nbclient``) in three ways, none of which changes what a notebook
computes:

* it writes the executed notebook once, at the end (the default engine rewrites the whole notebook before and after
  every cell, to follow long runs live: ~25 writes per metric notebook);
* it reuses a kernel client from one notebook to the next when the caller passes ``client`` (a dict holding it): a
  new client per notebook costs ~0.2 s waiting for its IOPub subscription to catch the kernel's status messages;
* it coalesces stream outputs (one output per stream per cell): how a ``print()`` is split into messages depends
  on the kernel's flush timing under load, and must not change the saved notebook.

A kernel that runs several notebooks starts each one after the first with :func:`reset_cell`: the namespace is
reset and the warning registries are cleared, so each notebook sees what a fresh kernel would
(``run_quarter.py --isolated`` runs every notebook on a fresh kernel with papermill's default engine, and gives
byte-identical outputs: ``tests/test_isolated.py``).
"""

from __future__ import annotations

import os

import nbformat
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.exceptions import PapermillException
from papermill.iorw import LocalHandler, papermill_io
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

from leaguetables.errors import PipelineError

ENGINE_NAME = "leaguetables"
RESET_CELL_ID = "kernel-reset"
RESET_SOURCE = (
    "# Added by run_quarter.py: this kernel is reused from the previous notebook of the run (to avoid a\n"
    "# process start and imports per notebook); its namespace is reset first. Outputs are not cached in\n"
    "# Out[] (nothing reads them), which spares the reset a full garbage collection; the warning\n"
    "# registries are cleared, so warnings an earlier notebook showed are shown again, as on a fresh\n"
    "# kernel.\n"
    "get_ipython().displayhook.do_full_cache = False\n"
    "get_ipython().reset(new_session=True, aggressive=False)\n"
    "__import__('leaguetables.run.notebook_env', fromlist=['_']).forget_shown_warnings()"
)


def reset_cell() -> nbformat.NotebookNode:
    """The first cell of a notebook run on a reused kernel (tagged ``remove-cell``; ignored by the comparisons)."""
    cell = nbformat.v4.new_code_cell(RESET_SOURCE)
    cell.id = RESET_CELL_ID
    cell.metadata["tags"] = ["remove-cell"]
    return cell


class _WriteOnceManager(NotebookExecutionManager):
    """Saves the notebook when it is complete, not before and after every cell."""

    _final = False

    def save(self, **kwargs):
        if self._final:
            super().save(**kwargs)

    def notebook_complete(self, **kwargs):
        self._final = True
        super().notebook_complete(**kwargs)


class WarmKernelEngine(NBClientEngine):
    """Papermill engine ``leaguetables`` (see the module docstring). Extra keyword arguments of
    ``papermill.execute_notebook``: ``km`` (a started or startable kernel manager, as for the default engine) and
    ``client`` (a dict: the kernel client is taken from ``client["kc"]`` when present and left there after)."""

    @classmethod
    def execute_notebook(
        cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False, autosave_cell_every=30, **kwargs
    ):
        nb_man = _WriteOnceManager(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, start_timeout=60, execution_timeout=None, client=None, **kwargs
    ):
        # as papermill's NBClientEngine, whose named log_output, stdout_file and stderr_file are passed on unchanged
        # here in kwargs (the client's settings of the same names)
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            coalesce_streams=True,
        )
        nbc = PapermillNotebookClient(nb_man, **final_kwargs)
        if client is not None and client.get("kc") is not None:
            nbc.kc = client["kc"]
        try:
            return nbc.execute()
        finally:
            if client is not None:
                client["kc"] = nbc.kc


def check_registered() -> None:
    """Raise :class:`PipelineError` (naming the fix) when the entry point of the engine is not installed."""
    try:
        papermill_engines.get_engine(ENGINE_NAME)
    except PapermillException:
        raise PipelineError(
            f"papermill engine {ENGINE_NAME!r} is not registered: the package's entry point "
            "is not installed (run `make setup`, or `pip install --no-deps -e .`)"
        ) from None


class AbsoluteLocalHandler(LocalHandler):
    """Papermill's local file handler reads and writes inside ``chdir(cwd)``: a change of the whole process's
    working directory, made from every notebook thread at once. The pipeline passes absolute paths only, so this
    handler opens them as they are and never changes directory (:func:`use_absolute_local_io`)."""

    def read(self, path):
        if not os.path.isabs(path):
            return super().read(path)  # a notebook passed as JSON text, or a caller outside the pipeline
        with open(path, encoding="utf-8") as f:
            return f.read()

    def listdir(self, path):
        return [os.path.join(path, fn) for fn in os.listdir(path)]

    def write(self, buf, path):
        if not os.path.isabs(path):
            raise ValueError(f"the pipeline writes notebooks to absolute paths only, not {path!r}")
        dirname = os.path.dirname(path)
        if not os.path.isdir(dirname):
            raise FileNotFoundError(f"output folder {dirname} doesn't exist.")
        with open(path, "w", encoding="utf-8") as f:
            f.write(buf)


def use_absolute_local_io() -> None:
    """Register :class:`AbsoluteLocalHandler` as papermill's handler of local paths (idempotent)."""
    if not isinstance(papermill_io.get_handler("/"), AbsoluteLocalHandler):
        papermill_io.register("local", AbsoluteLocalHandler())
