"""The notebook workers of a run: warm kernels reused from one notebook to the next (the default), or a fresh kernel
per notebook with papermill's default engine (``run_quarter.py --isolated``).

Starting a kernel and importing pandas, statsmodels and matplotlib costs seconds per notebook; a warm worker pays it
once and runs each notebook with the engine of :mod:`leaguetables.run.engine`, starting with a cell that resets
the namespace. Either way every notebook is executed from ``notebooks/`` with nothing but its parameters
(:func:`check_parameters`) and saved as its own executed notebook.
"""

from __future__ import annotations

import ast
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from leaguetables.config import PROJECT_ROOT, SAFE_ID
from leaguetables.errors import InputError, PipelineError
from leaguetables.inputs.contract import check_quarter
from leaguetables.run import kernel_server
from leaguetables.run.kernel_server import KERNEL_NAME, WARM_MODULES  # defined there: the server imports them too

# papermill (with this package's engine, leaguetables.run.engine, which imports it) is imported where a notebook is
# executed, not here: importing it costs ~0.2 s (~0.3-0.5 CPU-s) that a run restored from the cache, a no-op or a
# refused run never needs. Those function-level imports are marked "papermill: see the top of the module".

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
FAILED_DIR = ".failed"  # under the reports folder: the executed notebooks of the last failed run of a quarter
IPC_PREFIX = "ltk-"  # <tmp>/ltk-<pid>-<random>/: the kernel's IPC sockets (unix socket paths must be short)
#: notebook parameters that are paths (absolute, so that nothing depends on the kernel's working directory)
PATH_PARAMETERS = (
    "work_dir",
    "out_dir",
    "trusts",
    "observations",
    "demographics",
    "status",
    "run",
    "league",
    "sampling_cache",
    "report_cache",
)
PATH_LIST_PARAMETERS = ("metric_results", "revisions")  # comma-separated absolute paths (or empty)
START_TIMEOUT, EXECUTION_TIMEOUT, IOPUB_TIMEOUT = 120, 1200, 120  # seconds
#: the argument nbclient gives a kernel it starts (its ``ipython_hist_file`` default): no history file is written
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
WARM_POLL = 0.1  # seconds between checks of a warming kernel's channels (and of whether the run closed the worker)


class _Cancelled(Exception):
    """The run closed a worker whose kernel was still starting (:meth:`NotebookWorker.warm_up`)."""


class SessionKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, except that it signals the kernel's process group only when the kernel leads
    one.

    The kernel is started in its own session (``setsid`` between fork and exec), and jupyter_client records
    ``os.getpgid(kernel)`` as the group to signal when it interrupts or kills the kernel. A kernel killed after the fork
    but before its ``setsid`` (``run_quarter.py`` kills every child when it is stopped with SIGTERM or SIGHUP, and a
    kernel may be starting in another thread at that moment) is a zombie still in the caller's group: jupyter_client
    then records the caller's group and, shutting the dead kernel down, sends SIGINT and SIGKILL to it — killing the
    run, whatever started it (pytest, make, the shell) and everything else in that group, without a word. Here a
    group that the kernel does not lead is never recorded: the kernel alone is signalled (by ``Popen``, which does not
    signal a process it has already reaped).

    With ``kernel_server`` set (a socket path: :mod:`leaguetables.run.kernel_server`), the kernel is forked by that
    server when it is running and serves this code, and started as a process otherwise; a forked kernel leads its own
    session too, and its handle (:class:`~leaguetables.run.kernel_server.ForkedKernel`) is the provisioner's
    process: interrupt, restart, shutdown and kill reach it as they reach a started one."""

    kernel_server: str | None = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        forked = kernel_server.fork_kernel(self.kernel_server, kernel_cmd, kw) if self.kernel_server else None
        if forked is None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        else:
            provisioner = self.provisioner
            assert provisioner is not None
            provisioner.process, provisioner.pid, provisioner.pgid = forked, forked.pid, forked.pid  # type: ignore
            provisioner.cwd = kw.get("cwd") or os.getcwd()  # type: ignore[attr-defined]
            self._reconcile_connection_info(provisioner.connection_info)
        own_group_only(self.provisioner)

    _launch_kernel = _async_launch_kernel  # as AsyncKernelManager does


def own_group_only(provisioner) -> None:
    """Forget the process group a provisioner recorded for its kernel unless the kernel leads it (its pid is the
    group's id, as after its own ``setsid``): never the caller's group, which a kernel killed before its ``setsid``
    is still in."""
    pgid = getattr(provisioner, "pgid", None)
    if pgid is not None and pgid != getattr(provisioner, "pid", None):
        provisioner.pgid = None


def kernel_available() -> bool:
    return KERNEL_NAME in KernelSpecManager().find_kernel_specs()


def check_parameters(parameters: dict) -> str:
    """The parameters cell papermill will inject, checked to be nothing but ``name = <literal>`` lines whose
    literals are exactly the values given (so no value can inject code into a notebook). Returns the cell source."""
    from papermill.translators import PythonTranslator  # papermill: see the top of the module

    source = PythonTranslator.codify(parameters)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}") from None
    names = []
    for node in tree.body:
        ok = (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
        )
        if not ok or parameters.get(node.targets[0].id, object()) != node.value.value:
            raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}")
        names.append(node.targets[0].id)
    if names != list(parameters):
        raise InputError(f"notebook parameters cannot be passed safely: {parameters!r}")
    check_quarter(parameters["quarter"])
    if "metric_id" in parameters and not SAFE_ID.match(parameters["metric_id"]):
        raise InputError(f"metric id {parameters['metric_id']!r} is not safe")
    for key in PATH_PARAMETERS:
        if parameters.get(key) and not os.path.isabs(parameters[key]):
            raise InputError(f"notebook parameter {key} must be an absolute path")
    for key in PATH_LIST_PARAMETERS:
        if any(not os.path.isabs(p) for p in str(parameters.get(key, "")).split(",") if p):
            raise InputError(f"notebook parameter {key} must be absolute paths")
    return source


def remove_stale_ipc_dirs() -> list[str]:
    """Remove the kernel socket folders of runs that were killed (SIGKILL: no cleanup could run): only folders named
    ``ltk-<pid>-…`` whose process is gone and that hold nothing but a kernel's connection file and sockets."""
    removed = []
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(f"{IPC_PREFIX}*-*"):
        m = re.fullmatch(re.escape(IPC_PREFIX) + r"(\d+)-[A-Za-z0-9_]+", d.name)
        if not m or not d.is_dir() or d.is_symlink():
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue  # alive (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            names = [p.name for p in d.iterdir()]
        except OSError:
            continue
        if all(n == "kernel.json" or re.fullmatch(r"k-\d+", n) for n in names):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


def _failure(notebook: str, parameters: dict, out_path: Path, exc) -> PipelineError:
    return PipelineError(
        f"{notebook} failed for {parameters.get('metric_id', parameters.get('quarter'))}: "
        f"{exc.ename}: {exc.evalue} (see {FAILED_DIR}/{out_path.parent.parent.name}/"
        f"notebooks/{out_path.name})"
    )


#: The papermill settings of every notebook run, warm or isolated (see :meth:`NotebookWorker._papermill`).
PAPERMILL_SETTINGS = {
    "kernel_name": KERNEL_NAME,
    "progress_bar": False,
    "start_timeout": START_TIMEOUT,
    "execution_timeout": EXECUTION_TIMEOUT,
    # papermill's client raises when a cell's output has not all arrived 4 s (nbclient's default) after the kernel
    # replied: on a loaded machine that failed healthy runs (CellTimeoutError "Timeout waiting for IOPub output").
    # The wait ends as soon as the kernel reports itself idle, so a longer bound costs a healthy run nothing.
    "iopub_timeout": IOPUB_TIMEOUT,
    "log_output": False,
}


class NotebookWorker:
    """One warm Jupyter kernel (the project's named kernel) in its own thread, reused for several notebooks; each
    notebook after the first starts with :func:`leaguetables.run.engine.reset_cell`."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.km: AsyncKernelManager | None = None
        self.client: dict = {}  # the kernel client, reused from one notebook to the next (see run.engine)
        self.used = 0
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.cancelled = threading.Event()  # set by close(): a warm-up still running stops and shuts the kernel down
        self._last: dict = {}

    def submit(self, fn, *args) -> Future:
        return self.pool.submit(fn, *args)

    def _start(self) -> None:
        # IPC sockets (no open TCP ports); unix socket paths must be short, hence a fresh /tmp folder
        remove_stale_ipc_dirs()
        self.ipc_dir = tempfile.mkdtemp(prefix=f"{IPC_PREFIX}{os.getpid()}-")
        self.km = SessionKernelManager(kernel_name=KERNEL_NAME, transport="ipc")
        self.km.kernel_server = kernel_server.configured()  # a warm kernel may be forked (never an isolated one)
        self.km.connection_file = os.path.join(self.ipc_dir, "kernel.json")
        self.km.ip = os.path.join(self.ipc_dir, "k")

    def warm_up(self, modules: tuple[str, ...] = WARM_MODULES) -> Future:
        """Start the kernel and import ``modules`` in it, in the worker's thread, while the run does something else
        (the pipeline calls it once a stage is known to need a kernel): the first notebook then finds the kernel
        started and its libraries imported, as every later notebook of a warm worker does. Nothing enters the kernel's
        namespace (a silent ``importlib.import_module``, no history), so the notebook's outputs are those of a
        kernel that had not run it; a failed import is left for the notebook to report."""
        return self.pool.submit(self._warm_up, modules)

    def _warm_up(self, modules: tuple[str, ...]) -> None:
        try:
            self._start_and_import(modules)
        except Exception:  # noqa: BLE001 - _Cancelled, or a failure the first notebook meets and reports itself
            self._shutdown()

    def _start_and_import(self, modules: tuple[str, ...]) -> None:
        if self.km is None:
            self._start()
        assert self.km is not None
        # the IPC folder as working directory: the run's working folder does not exist yet (notebooks use absolute
        # paths only, so nothing depends on the kernel's working directory)
        run_sync(self.km.start_kernel)(extra_arguments=list(KERNEL_ARGUMENTS), cwd=self.ipc_dir)
        kc = self.km.client()
        # no heartbeat channel (its thread would make a socket after a cancelled warm-up closed the client): the
        # kernel's life is its process's, which the manager watches (KernelClient.is_alive)
        kc.start_channels(hb=False)
        self.client["kc"] = kc
        self._wait_until_ready(kc)
        kc.allow_stdin = False
        code = "".join(f"__import__('importlib').import_module({m!r})\n" for m in modules)
        msg_id = kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + START_TIMEOUT
        polls = 0
        while True:
            msg = self._reply(kc.get_shell_msg, WARM_POLL)
            if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                return
            polls += 1
            if polls % int(1 / WARM_POLL) == 0 and (not run_sync(kc.is_alive)() or time.monotonic() > deadline):
                raise PipelineError(f"Jupyter kernel {KERNEL_NAME!r} stopped while importing its libraries")

    def _reply(self, get, timeout: float) -> dict | None:
        """The next message of a channel within ``timeout`` seconds (None), kept as ``self._last``; raises
        :class:`_Cancelled` when the run has closed the worker meanwhile."""
        if self.cancelled.is_set():
            raise _Cancelled
        try:
            self._last = run_sync(get)(timeout=timeout)
        except queue.Empty:
            return None
        return self._last

    def _wait_until_ready(self, kc) -> None:
        """jupyter_client's ``wait_for_ready``: a kernel_info reply on the shell channel and a message on IOPub (its
        subscription connected), asked again every second; polled every :data:`WARM_POLL` seconds so that closing
        the worker (:meth:`close`) is never kept waiting."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            msg_id = kc.kernel_info()
            for _ in range(int(1 / WARM_POLL)):
                msg = self._reply(kc.get_shell_msg, WARM_POLL)
                if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                    break
            else:
                msg = None
            if msg is not None and msg["msg_type"] == "kernel_info_reply" and self._reply(kc.get_iopub_msg, 0.2):
                return
            if not run_sync(kc.is_alive)() or time.monotonic() > deadline:
                raise PipelineError(f"Jupyter kernel {KERNEL_NAME!r} did not start")

    def execute(self, notebook: str, out_path: Path, parameters: dict) -> float:
        from leaguetables.run import engine  # papermill: see the top of the module

        check_parameters(parameters)
        engine.check_registered()
        engine.use_absolute_local_io()
        t0 = time.perf_counter()
        if self.km is None:
            self._start()
        nb = nbformat.read(NOTEBOOK_DIR / notebook, as_version=4)
        if self.used:
            nb.cells.insert(0, engine.reset_cell())
        self.used += 1
        self._papermill(
            nb, notebook, out_path, parameters, km=self.km, engine_name=engine.ENGINE_NAME, client=self.client
        )
        return time.perf_counter() - t0

    def _papermill(self, source, notebook: str, out_path: Path, parameters: dict, **options) -> None:
        """``papermill.execute_notebook`` of ``source`` (the notebook ``notebook``, read or as a path) with the
        settings of every run (:data:`PAPERMILL_SETTINGS`; the run's folder as the kernel's working directory) and
        the worker's own ``options``; a failing notebook raises the one-line error of :func:`_failure`."""
        import papermill as pm  # papermill: see the top of the module

        try:
            pm.execute_notebook(
                source,
                str(out_path),
                parameters=parameters,
                resources={"metadata": {"path": str(self.cwd)}},
                **PAPERMILL_SETTINGS,
                **options,
            )
        except pm.PapermillExecutionError as exc:
            raise _failure(notebook, parameters, out_path, exc) from None

    def _shutdown(self) -> None:
        if self.km is None:
            return
        kc = self.client.pop("kc", None)
        if kc is not None:
            try:
                kc.stop_channels()
            except Exception:  # noqa: BLE001 - best effort
                pass
        try:
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - best effort: the process is gone either way
            pass
        self.km = None
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def close(self) -> None:
        self.cancelled.set()
        self.pool.submit(self._shutdown).result()
        self.pool.shutdown(wait=True)


class IsolatedWorker(NotebookWorker):
    """A fresh kernel for every notebook, with papermill's default engine (``nbclient``): plain
    ``papermill.execute_notebook`` on the notebook file, as a statistician rerunning one notebook would."""

    def execute(self, notebook: str, out_path: Path, parameters: dict) -> float:
        from leaguetables.run import engine  # papermill: see the top of the module

        check_parameters(parameters)
        engine.use_absolute_local_io()  # papermill's handler changes directory around every read (see there)
        t0 = time.perf_counter()
        self._papermill(
            str(NOTEBOOK_DIR / notebook),
            notebook,
            out_path,
            parameters,
            kernel_manager_class=SessionKernelManager,  # never signals this process's group (see there)
            coalesce_streams=True,  # as the warm engine does (run/engine.py): the same executed notebooks
        )
        return time.perf_counter() - t0


class Workers:
    """Up to ``jobs`` workers, started only when a stage has to be executed (a no-op run starts none, and does not
    look for the kernel)."""

    def __init__(self, jobs: int, cwd: Path, isolated: bool = False):
        self.jobs, self.cwd = jobs, cwd
        self.kind = IsolatedWorker if isolated else NotebookWorker
        self.workers: list[NotebookWorker] = []

    def warm_up(self) -> Future | None:
        """Start the first worker's kernel and its imports now (:meth:`NotebookWorker.warm_up`), unless workers are
        isolated (a fresh kernel per notebook) or the kernel is not registered (:meth:`get` says so when a notebook
        has to run)."""
        if self.kind is not NotebookWorker or self.workers or not kernel_available():
            return None
        self.workers.append(NotebookWorker(self.cwd))
        return self.workers[0].warm_up()

    def get(self, n: int) -> list[NotebookWorker]:
        if not self.workers and not kernel_available():
            raise PipelineError(f"Jupyter kernel {KERNEL_NAME!r} is not registered; run `make setup`")
        while len(self.workers) < min(n, self.jobs):
            self.workers.append(self.kind(self.cwd))
        return self.workers[:n]

    def run_one(self, notebook: str, out_path: Path, parameters: dict) -> float:
        w = self.get(1)[0]
        return w.submit(w.execute, notebook, out_path, parameters).result()

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []
