"""A kernel server: one process that has imported ipykernel and the libraries of a warm kernel
(:data:`WARM_MODULES`) once, and forks a Jupyter kernel per request (opt-in).

Starting a kernel process and importing pandas, statsmodels, scipy, matplotlib and ipykernel costs ~2.5–3.5 CPU-s per
kernel; a kernel forked from the server has them imported already. A run uses a server only when the environment
variable :data:`ENV` names its socket (``LEAGUETABLES_KERNEL_SERVER=/tmp/lt.sock``); without it nothing changes, and
no process outlives the command that started it. ``--isolated`` runs never use it.

    python -m leaguetables.run.kernel_server start [PATH] [--idle SECONDS]   # detached; exits after SECONDS idle
    python -m leaguetables.run.kernel_server status [PATH]
    python -m leaguetables.run.kernel_server stop [PATH]

A forked kernel is the kernel ``python -m ipykernel_launcher -f <connection file> …`` would be (the same argv, working
folder, environment, standard output and error — passed over the socket —, stdin at end of file), in its own session,
and exits when the run that asked for it does (as ipykernel's parent poller makes a started kernel do). The server
records at its start the project's :func:`~leaguetables.run.cache.code_hash`, ``sys.executable``, the kernel spec's
argv and the environment variables read when libraries are imported (:func:`server_key`); it forks a kernel only
for a client whose key is the same, so that no kernel ever runs code other than the run's own (a client whose
sources changed since the server started is refused, and starts its kernel as a process, as without a server).
The client's side is :class:`ForkedKernel`: a ``Popen``-like handle of the forked kernel (poll, wait, send_signal,
kill), which jupyter_client's provisioner uses as its process, and :func:`kill_forked`, which a stopped run calls
(the kernels are not its children).
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import contextlib
import importlib
import importlib.util
import io
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from leaguetables.run.cache import code_hash, current_code_hash

KERNEL_NAME = "leaguetables"  # the project's Jupyter kernel (`make setup` registers it)
#: what a warm kernel imports before its first notebook (:meth:`NotebookWorker.warm_up`): the modules the metric,
#: league and report notebooks import, in that order (a warm kernel would have imported them for its first notebook)
WARM_MODULES = (
    "leaguetables.run.notebook_env",
    "leaguetables.statistics.metrics",
    "leaguetables.publication.figures",
    "leaguetables.nof.league",
    "leaguetables.publication.report",
)
ENV = "LEAGUETABLES_KERNEL_SERVER"  # the socket path of the server a run uses (unset: none)
DEFAULT_IDLE = 600  # seconds without a request after which the server exits
START_TIMEOUT = 120  # seconds `start` waits for the server to answer
#: the environment variables read while libraries are imported (thread pools, hash seed, paths, locale, plotting
#: backend): a client whose values differ from the server's gets no forked kernel
KEY_ENV_PREFIXES: tuple[str, ...] = ("PYTHON", "OMP_", "OPENBLAS_", "MKL_", "NUMEXPR_", "VECLIB_", "MPL", "LC_")
KEY_ENV_PREFIXES += ("LANG", "TZ", "JUPYTER", "IPYTHON")
MAX_MESSAGE = 1 << 22
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel sets MPLBACKEND to (init_gui_pylab)


def default_path() -> str:
    return os.path.join(tempfile.gettempdir(), f"leaguetables-kernels-{os.getuid()}.sock")


#: the server needs Linux: pidfds (a forked kernel's handle and its watch of the run) and SO_PEERCRED
SUPPORTED = hasattr(os, "pidfd_open") and hasattr(socket, "SO_PEERCRED")


def configured() -> str | None:
    """The socket path of the kernel server runs use (:data:`ENV`), or None (also where the server is not
    :data:`SUPPORTED`: every kernel is then started)."""
    return (os.environ.get(ENV) or None) if SUPPORTED else None


def server_key(argv: list[str], env: dict[str, str], fresh: bool = False) -> dict:
    """What a forked kernel must share with the kernel a client would start: the code, the interpreter, the kernel
    spec's command (up to the connection file) and the environment variables read at import. ``fresh``: the code
    hash of the sources as they are now (~5 ms), not the value this process computed first (a kernel started now
    would import them now)."""
    prefix = argv[: argv.index("-f")] if "-f" in argv else list(argv)
    return {
        "code": current_code_hash() if fresh else code_hash(),
        "executable": sys.executable,
        "argv": prefix,
        "env": {k: v for k, v in sorted(env.items()) if k.startswith(KEY_ENV_PREFIXES)},
    }


def _kernel_spec_argv() -> list[str]:
    return KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv


# ------------------------------------------------------------------------------------------------------- messages
def _send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode() + b"\n"
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def _receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, max_fds) if max_fds else (sock.recv(65536), [], 0, 0)
    while data and not data.endswith(b"\n") and len(data) < MAX_MESSAGE:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    if not data.endswith(b"\n"):
        for fd in fds:
            os.close(fd)
        raise ConnectionError("incomplete message")
    return json.loads(data), fds


def request(
    path: str, message: dict, fds: Sequence[int] = (), max_fds: int = 0, timeout: float = 30
) -> tuple[dict, list[int]]:
    """Send ``message`` (with the file descriptors ``fds``) to the server at ``path``; its reply and the descriptors
    it sent. Raises OSError when there is no server (or it does not answer within ``timeout`` seconds), or when the
    socket's other end is another user's process (nothing is sent to it: not the environment, not our output)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        _check_peer(sock)
        _send(sock, message, fds)
        return _receive(sock, max_fds)


def _check_peer(sock: socket.socket) -> None:
    """Raise PermissionError unless the process at the other end of ``sock`` runs as this process's user (a forked
    kernel runs whatever code its connection file's holder sends it: the server forks for its own user only, and a
    client talks to its own user's server only)."""
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        raise PermissionError(f"the kernel server socket's other end runs as user {uid}, not {os.getuid()}")


# --------------------------------------------------------------------------------------------------- client side
#: the kernels this process had forked and has not seen exit: a stopped run kills them (:func:`kill_forked`)
_FORKED: dict[int, ForkedKernel] = {}


class ForkedKernel:
    """A ``subprocess.Popen``-like handle of a kernel the server forked (not this process's child): its pidfd tells
    when it has exited (the exit status is not ours to read: 0, or minus the signal this handle sent)."""

    stdin = stdout = stderr = None
    args: list[str] = []

    def __init__(self, pid: int, pidfd: int):
        self.pid, self._pidfd = pid, pidfd
        self.returncode: int | None = None
        self._signal = 0
        _FORKED[pid] = self

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._exited()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
            self._exited()
        assert self.returncode is not None
        return self.returncode

    def _exited(self) -> None:
        """The kernel has exited: wait (briefly) until the server has reaped it, so that its pid is gone, as it is
        after ``Popen.wait``; then forget it."""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and _is_zombie(self.pid):
            time.sleep(0.002)
        self.returncode = -self._signal if self._signal else 0
        _FORKED.pop(self.pid, None)
        with contextlib.suppress(OSError):
            os.close(self._pidfd)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)
                if signum in (signal.SIGKILL, signal.SIGTERM):
                    self._signal = signum

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def kill_forked() -> None:
    """Kill (SIGKILL) the process group of every kernel this process had forked and that is still running: each
    leads its own session, so its group is its pid (called from a signal handler: no lock, no allocation worth
    naming)."""
    for pid, kernel in list(_FORKED.items()):
        if kernel.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def fork_kernel(path: str, cmd: list[str], kw: dict) -> ForkedKernel | None:
    """A kernel forked by the server at ``path`` for the launch ``cmd`` and Popen arguments ``kw`` that
    jupyter_client would start (env, cwd, stdout, stderr); None when there is no server, it is stale (another code
    hash, interpreter, kernel spec or import-time environment) or it refuses — the caller then starts the kernel."""
    env = dict(kw.get("env") or os.environ)
    env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher sets it
    message = {
        "op": "fork",
        "key": server_key(cmd, env, fresh=True),
        "argv": cmd,
        "env": env,
        "cwd": os.fspath(kw.get("cwd") or os.getcwd()),
        "parent": os.getpid(),
        "umask": _umask(),
    }
    fds = [_fileno(kw.get("stdout"), 1), _fileno(kw.get("stderr"), 2)]
    try:
        reply, got = request(path, message, fds, max_fds=1)
    except (OSError, ValueError):
        return None
    if "pid" not in reply or len(got) != 1:
        for fd in got:
            os.close(fd)
        return None
    return ForkedKernel(reply["pid"], got[0])


def _umask() -> int:
    """This process's umask (read from /proc: setting it to read it would race with the run's other threads)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    return 0o022  # pragma: no cover - Linux before 4.7


def _fileno(stream, default: int) -> int:
    if stream is None:
        return default
    return stream if isinstance(stream, int) else stream.fileno()


# --------------------------------------------------------------------------------------------------- server side
class Server:
    """The server's state: its socket, key and children (run by :func:`serve`)."""

    def __init__(self, path: str, idle: float, key: dict):
        self.path, self.idle, self.key = path, idle, key
        self.last = time.monotonic()
        self.children: set[int] = set()
        self.served: dict[str, int] = {}  # {client pid: kernels forked for it} (status: which runs used the server)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stopping = False

    def reap(self, *_args) -> None:
        """Reap every child that has exited (SIGCHLD's handler, and after each request): no zombies."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def loop(self) -> None:
        self.listener.settimeout(1.0)
        while not self.stopping and time.monotonic() - self.last < self.idle:
            try:
                conn, _addr = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                self.last = time.monotonic()
                try:
                    self.handle(conn)
                except (OSError, ValueError) as exc:
                    print(f"kernel server: request failed: {exc}", file=sys.stderr, flush=True)
            self.reap()

    def handle(self, conn: socket.socket) -> None:
        _check_peer(conn)
        message, fds = _receive(conn, max_fds=2)
        try:
            op = message.get("op")
            if op == "status":
                _send(
                    conn,
                    {
                        "pid": os.getpid(),
                        "key": self.key,
                        "children": len(self.children),
                        "served": self.served,
                        "cpu": self.cpu_seconds(wait=False),
                    },
                )
            elif op == "stop":
                self.stopping = True
                _send(conn, {"cpu": self.cpu_seconds(), "forked": sum(self.served.values())})
            elif op == "fork" and message.get("key") != self.key:
                _send(conn, {"refused": "stale: another code hash, interpreter, kernel spec or environment"})
            elif op == "fork" and len(fds) == 2:
                self.fork(conn, message, fds)
            else:
                _send(conn, {"refused": f"unknown request {op!r}"})
        finally:
            for fd in fds:
                os.close(fd)

    def cpu_seconds(self, wait: bool = True) -> float:
        """CPU seconds of the server and of the kernels it forked and reaped (``wait``: every one, once exited)."""
        deadline = time.monotonic() + (5 if wait else 0)
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def fork(self, conn: socket.socket, message: dict, fds: list[int]) -> None:
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _child(self, conn, message, fds, ready_w)  # never returns
        self.children.add(pid)
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            ok = ready.read(1) == b"1"  # the child has made its session and entered its folder (or died)
        if not ok:
            _send(conn, {"refused": "the forked kernel could not start"})
            return
        pidfd = os.pidfd_open(pid)
        client = str(message.get("parent"))
        self.served[client] = self.served.get(client, 0) + 1
        try:
            _send(conn, {"pid": pid}, [pidfd])
        finally:
            os.close(pidfd)


def _child(server: Server, conn: socket.socket, message: dict, fds: list[int], ready: int) -> None:
    """In the forked child: become the kernel ``python -m ipykernel_launcher <argv>`` would start, then exit."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM):  # the server's; the others are the interpreter's, as at a start
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        server.listener.close()
        conn.close()
        os.chdir(message["cwd"])
        os.umask(message["umask"])
        stdin, writer = os.pipe()  # a pipe at its end, as jupyter_client's launcher gives a kernel
        os.close(writer)
        for fd, target in ((stdin, 0), (fds[0], 1), (fds[1], 2)):
            os.dup2(fd, target)
        for fd in {stdin, *fds} - {0, 1, 2}:
            os.close(fd)
        os.environ.clear()
        os.environ.update(message["env"])
        launcher = importlib.util.find_spec("ipykernel_launcher")
        argv = message["argv"]
        sys.argv = [(launcher and launcher.origin) or "ipykernel_launcher", *argv[argv.index("-f") :]]
        _watch_parent(message["parent"])
        _forget_this_module()
        os.write(ready, b"1")
        os.close(ready)
        code = _run_kernel()
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        with contextlib.suppress(BaseException):
            sys.excepthook(*sys.exc_info())
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what a kernel process's interpreter runs at its exit
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _forget_this_module() -> None:
    """A started kernel has not imported this module: the forked one forgets it (its functions still run here)."""
    sys.modules.pop(__name__, None)
    package = sys.modules.get(__name__.rpartition(".")[0])
    if package is not None and hasattr(package, "kernel_server"):
        delattr(package, "kernel_server")


def _run_kernel() -> int:
    """ipykernel_launcher's ``app.launch_new_instance()`` (its argv is ``sys.argv``), that is traitlets'
    ``launch_instance`` (instance, initialize, start); the exit status.

    The app's ``parent_handle`` (its default read from ``JPY_PARENT_PID`` when ipykernel was imported, in the server:
    none) is set to 1, which means "started by a client" without ipykernel's parent poller: without it the kernel
    would print the banner of a kernel started by hand (``ipython kernel``) on its standard output, and the poller
    would compare the run's pid with this process's parent (the server); :func:`_watch_parent` watches the run.
    Between initialize and start, the warning filters are put in a started kernel's order (:func:`_filters_as_started`)."""
    kernelapp = sys.modules["ipykernel.kernelapp"]
    try:
        app = kernelapp.IPKernelApp.instance(parent_handle=1)
        app.initialize()
        _filters_as_started()
        app.start()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _filters_as_started() -> None:
    """The warning filters in the order of a started kernel. A kernel's shell adds filters when it is made (ipykernel
    one for Trio's signal handling), in front; in a started kernel the warm modules are imported after that, and
    add theirs in front of those. Here the imports came first, so the shell's filters are moved behind the imports'
    (the filters are the same either way; their order is what a warning is matched against)."""
    filters, forked, kernel = warnings.filters, _FILTERS["fork"], _FILTERS["kernel"]
    added, imported = len(filters) - len(forked), len(forked) - len(kernel)
    if added <= 0 or imported < 0 or filters[added:] != forked or forked[imported:] != kernel:
        return  # not as expected: left as it is (tests/test_kernel_server.py compares the two kernels' filters)
    filters[:] = [*forked[:imported], *filters[:added], *kernel]  # type: ignore[index]  # a list at run time
    warnings._filters_mutated()  # type: ignore[attr-defined]  # as warnings.filterwarnings does after a change


#: the server's warning filters: "kernel", once ipykernel was imported (what a started kernel has when its shell is
#: made), "fork", once the warm modules were imported too (what a forked kernel starts with)
_FILTERS: dict[str, list] = {"kernel": [], "fork": []}
#: how `start` runs the server: ipykernel imported first, its warning filters noted, then this module (the package's
#: own filter is then added after ipykernel's, as in a kernel that imports it); the current folder out of sys.path
SERVE_CODE = (
    "import runpy, sys\n"  # runpy: imported by `python -m`, as ipykernel_launcher is run
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "import warnings, ipykernel.kernelapp\n"
    "filters = list(warnings.filters)\n"
    "from leaguetables.run import kernel_server\n"
    "sys.exit(kernel_server.main(sys.argv[1:], filters))\n"
)


def _watch_parent(parent: int) -> None:
    """Exit when the process that asked for this kernel has exited (ipykernel's ParentPollerUnix does so for a
    kernel started as a child: its parent is the server here)."""
    try:
        pidfd = os.pidfd_open(parent)
    except OSError:
        os._exit(1)

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class _KernelShell:
    """What ``get_ipython()`` is, to a library imported in a kernel: a shell with a ``kernel`` (pandas reads it at
    import, ``pandas.core.config_init.is_terminal``: ``display.max_columns`` is 20 in a kernel, 0 in a terminal)."""

    kernel = None


@contextlib.contextmanager
def _as_in_a_kernel():
    """While the warm modules are imported: ``get_ipython()`` answers as in a kernel (:class:`_KernelShell`) and the
    standard streams have the encoding of ipykernel's (``OutStream.encoding``, "UTF-8": pandas' ``display.encoding``
    is read from it at import). What a library reads at import must be what it reads in a started kernel: the
    state of a forked kernel is compared with a started one's in tests/test_kernel_server.py."""
    streams = sys.stdout, sys.stderr
    stand_in = io.TextIOWrapper(io.BytesIO(), encoding="UTF-8")
    builtins.get_ipython = _KernelShell  # type: ignore[attr-defined]
    sys.stdout = sys.stderr = stand_in
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams
        del builtins.get_ipython  # type: ignore[attr-defined]


def _import_warm(kernel_filters: list | None) -> dict:
    """Import what a kernel imports (ipykernel's kernel app, :data:`WARM_MODULES`), as the kernel would: with the
    current folder out of ``sys.path`` (ipykernel_launcher's first step) and matplotlib's backend variable set as
    ipykernel sets it before any user code; the server's key, the same before and after (refuses to serve
    otherwise: the sources changed meanwhile)."""
    if sys.path and (sys.path[0] in ("", os.getcwd())):
        del sys.path[0]
    key = server_key(_kernel_spec_argv(), dict(os.environ))
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    importlib.import_module("ipykernel.kernelapp")
    _FILTERS["kernel"] = list(warnings.filters) if kernel_filters is None else kernel_filters
    with _as_in_a_kernel():
        for module in WARM_MODULES:  # the point of the server: imported once, here
            importlib.import_module(module)
    _FILTERS["fork"] = list(warnings.filters)
    if current_code_hash() != key["code"]:
        raise SystemExit("kernel server: the sources changed while it was starting")
    if threading.active_count() != 1:
        raise SystemExit("kernel server: a thread was started at import; forking would not be safe")
    return key


def serve(path: str, idle: float, kernel_filters: list | None = None) -> None:
    """Run the server on the unix socket ``path`` until ``stop``, SIGTERM or ``idle`` seconds without a request
    (``kernel_filters``: the warning filters once ipykernel was imported, :data:`SERVE_CODE`)."""
    key = _import_warm(kernel_filters)
    server = Server(path, idle, key)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    mask = os.umask(0o177)  # the socket is its user's alone (srw-------), from its creation
    try:
        server.listener.bind(path)
    finally:
        os.umask(mask)
    server.listener.listen(16)
    signal.signal(signal.SIGCHLD, server.reap)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "stopping", True))
    try:
        server.loop()
    finally:
        server.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# ----------------------------------------------------------------------------------------------------- commands
def children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for children and, when runs use a kernel server (:data:`ENV`), of that
    server with the kernels it forked (not this process's children): what the benchmarks count as a run's."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    known = status(path) if (path := configured()) else None
    return r.ru_utime + r.ru_stime + (known["cpu"] if known else 0.0)


def status(path: str) -> dict | None:
    """The server's reply to ``status`` (pid, key, children), or None when none answers at ``path``."""
    try:
        return request(path, {"op": "status"}, timeout=5)[0]
    except (OSError, ValueError):
        return None


def start(path: str, idle: float = DEFAULT_IDLE) -> dict:
    """Start a detached server at ``path`` and wait until it answers; its status. It runs the kernel spec's
    interpreter with its flags, in its own session, forked once more (no one's child: ``serve --detach``), its output
    to ``path.log``, nothing of the caller's held open (a caller capturing this process's output does not wait
    for it)."""
    if not SUPPORTED:
        raise RuntimeError("the kernel server needs Linux (pidfds and SO_PEERCRED)")
    if (known := status(path)) is not None:
        return known
    argv = _kernel_spec_argv()
    interpreter = argv[: argv.index("-m")] if "-m" in argv else [sys.executable]
    with open(f"{path}.log", "ab") as log:
        started = subprocess.run(
            [*interpreter, "-c", SERVE_CODE, "serve", path, "--idle", str(idle), "--detach"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            check=False,
        )
    if started.returncode != 0:
        raise RuntimeError(f"the kernel server did not start (see {path}.log)")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (known := status(path)) is not None:
            return known
        time.sleep(0.05)
    raise RuntimeError(f"the kernel server did not start (see {path}.log)")


def stop(path: str) -> dict | None:
    """Stop the server at ``path``: its reply (``cpu``: its CPU seconds with those of the kernels it forked, once they
    have exited; ``forked``: how many it forked), or None when none answered."""
    try:
        return request(path, {"op": "stop"}, timeout=30)[0]
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None, kernel_filters: list | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaguetables.run.kernel_server", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("start", "stop", "status", "serve"))
    ap.add_argument("path", nargs="?", default=None, help=f"socket path (default: ${ENV}, else {default_path()})")
    ap.add_argument("--idle", type=float, default=DEFAULT_IDLE, help="exit after this many seconds without a request")
    ap.add_argument("--detach", action="store_true", help="serve: fork, and serve from the child (start uses it)")
    args = ap.parse_args(argv)
    path = args.path or configured() or default_path()
    if args.command == "serve":
        if args.detach and os.fork():
            os._exit(0)  # the server is then no one's child: its CPU and exit are not its starter's to wait for
        serve(path, args.idle, kernel_filters)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # nothing to finalise (its socket is removed): not seconds of pandas and matplotlib teardown
    if args.command == "start":
        print(f"kernel server {start(path, args.idle)['pid']} at {path}")
        return 0
    if args.command == "stop":
        reply = stop(path)
        if reply is None:
            print(f"no kernel server at {path}")
            return 1
        print(f"stopped the kernel server at {path} ({reply['cpu']:.1f} CPU-s, {reply['forked']} kernels forked)")
        return 0
    known = status(path)
    if known is None:
        print(f"no kernel server at {path}")
        return 1
    usable = known["key"] == server_key(_kernel_spec_argv(), dict(os.environ))
    forked = sum(known["served"].values())
    print(
        f"kernel server {known['pid']} at {path}: {known['children']} kernels running, {forked} forked; "
        f"usable by this checkout: {usable}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
