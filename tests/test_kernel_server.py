"""The kernel server (leaguetables.run.kernel_server): started detached, answering status, stopped or idle-exited
with its socket removed; a kernel it forks runs code in its own session, is killed by the run's stop handling and is
reaped (no zombie, no orphan); a client whose code hash differs from the server's is refused and starts its kernel
as a process (a mutant is never tested on a server holding the unmutated code).

Each test starts a server of its own on a socket under its temporary folder (the session's, named by
``LEAGUETABLES_KERNEL_SERVER``, is left alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from tiny_notebook import tiny_notebook

from leaguetables.run import cache, kernel_server, kernels

pytestmark = [
    pytest.mark.e2e,  # each test starts a server (~3 CPU-s: ipykernel and the warm modules imported) or a kernel
    pytest.mark.skipif(not kernels.kernel_available(), reason="the project's Jupyter kernel is not registered"),
]


def _gone(pid: int, seconds: float = 20) -> bool:
    """Whether process ``pid`` no longer exists (neither running nor a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that leave it running (each checks that it holds no child of theirs after)."""
    path = str(tmp_path_factory.mktemp("server") / "k.sock")
    known = kernel_server.start(path, idle=300)
    yield path, known["pid"]
    kernel_server.stop(path)
    _gone(known["pid"])


def test_start_status_stop_leave_no_process_and_no_socket(tmp_path):
    """`start` on the command line returns at once with its output captured (the detached server holds none of the
    caller's pipes) and the server is nobody's child; `status` answers with its key, which is this checkout's;
    `stop` on the command line reports its CPU seconds and the kernels it forked, and the process and its socket are
    gone."""
    path = str(tmp_path / "k.sock")
    command = [sys.executable, "-m", "leaguetables.run.kernel_server"]
    started = subprocess.run([*command, "start", path], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0 and started.stdout.startswith("kernel server "), started.stderr
    known = kernel_server.status(path)
    assert known is not None and known["children"] == 0 and known["cpu"] > 0
    pid = known["pid"]
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()  # not our child
    assert known["key"] == kernel_server.server_key(kernel_server._kernel_spec_argv(), dict(os.environ))
    listed = subprocess.run([*command, "status", path], capture_output=True, text=True, timeout=60)
    assert "0 kernels running, 0 forked; usable by this checkout: True" in listed.stdout, listed.stdout + listed.stderr
    assert os.stat(path).st_mode & 0o777 == 0o600  # the server forks for its own user only
    stopped = subprocess.run([*command, "stop", path], capture_output=True, text=True, timeout=60)
    m = re.fullmatch(r"stopped the kernel server at \S+ \((\d+\.\d) CPU-s, 0 kernels forked\)\n", stopped.stdout)
    assert stopped.returncode == 0 and m and float(m.group(1)) > 0, stopped.stdout + stopped.stderr
    assert _gone(pid) and not os.path.exists(path)
    assert kernel_server.status(path) is None and kernel_server.stop(path) is None


def test_an_idle_server_exits_and_removes_its_socket(tmp_path):
    path = str(tmp_path / "k.sock")
    pid = kernel_server.start(path, idle=1)["pid"]
    assert _gone(pid, 30), "the server did not exit after 1 s without a request"
    assert not os.path.exists(path)


def test_sigterm_stops_the_server(tmp_path):
    path = str(tmp_path / "k.sock")
    pid = kernel_server.start(path, idle=300)["pid"]
    os.kill(pid, signal.SIGTERM)
    assert _gone(pid) and not os.path.exists(path)


def _notebook(tmp_path: Path) -> Path:
    code = "import os\nprint(os.getpid(), os.getppid(), os.getsid(0), os.getcwd())"
    return tiny_notebook(tmp_path / "nb.ipynb", 'quarter = ""', code)


def test_a_forked_kernel_runs_a_notebook_in_its_own_session_and_is_reaped(server, tmp_path, monkeypatch):
    """A warm worker with the server configured gets a forked kernel (the server's child, leading its own session,
    in the worker's folder) that runs a notebook; closed, it is gone — reaped by the server, not a zombie."""
    path, server_pid = server
    monkeypatch.setenv(kernel_server.ENV, path)
    worker = kernels.NotebookWorker(tmp_path)
    worker.warm_up(("json",)).result()
    assert worker.km is not None and isinstance(worker.km.provisioner.process, kernel_server.ForkedKernel)
    out = tmp_path / "out.ipynb"
    worker.execute(str(_notebook(tmp_path)), out, {"quarter": "2025-26-Q4"})
    pid = worker.km.provisioner.pid
    worker.close()
    printed = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"].split()
    assert [int(x) for x in printed[:3]] == [pid, server_pid, pid]
    with pytest.raises(ProcessLookupError):  # at once, as after Popen.wait: the handle waits for the server's reap
        os.kill(pid, 0)
    assert kernel_server.status(path)["children"] == 0


def _wait_for_reply(kc, msg_id: str) -> dict:
    while True:
        msg = run_sync(kc.get_shell_msg)(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def test_interrupt_restart_and_shutdown_reach_a_forked_kernel(server, tmp_path, monkeypatch):
    """jupyter_client's interrupt (SIGINT to the kernel's group), restart (the kernel killed, another forked) and
    shutdown go through the forked kernel's handle as through a started kernel's process."""
    path, _ = server
    monkeypatch.setenv(kernel_server.ENV, path)
    worker = kernels.NotebookWorker(tmp_path)
    try:
        worker.warm_up(("json",)).result()
        km, kc = worker.km, worker.client["kc"]
        assert km is not None and isinstance(km.provisioner.process, kernel_server.ForkedKernel)
        msg_id = kc.execute("import time\ntime.sleep(60)")
        time.sleep(1)
        run_sync(km.interrupt_kernel)()
        reply = _wait_for_reply(kc, msg_id)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        first = km.provisioner.pid
        run_sync(km.restart_kernel)(now=True)
        assert isinstance(km.provisioner.process, kernel_server.ForkedKernel) and km.provisioner.pid != first
        assert _gone(first, 5), "the restarted kernel's first process is still there"
        second = km.provisioner.pid
    finally:
        worker.close()
    assert _gone(second, 5) and kernel_server.status(path)["children"] == 0


def test_an_isolated_worker_never_uses_the_server(server, tmp_path, monkeypatch):
    """``--isolated``: a fresh kernel per notebook, started by papermill's default engine — never a forked one."""
    path, _ = server
    monkeypatch.setenv(kernel_server.ENV, path)
    before = kernel_server.status(path)["served"].get(str(os.getpid()), 0)
    out = tmp_path / "out.ipynb"
    kernels.IsolatedWorker(tmp_path).execute(str(_notebook(tmp_path)), out, {"quarter": "2025-26-Q4"})
    printed = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"].split()
    assert int(printed[1]) == os.getpid()  # the kernel's parent: this process, which started it
    assert kernel_server.status(path)["served"].get(str(os.getpid()), 0) == before


def test_a_client_whose_sources_changed_is_refused_and_starts_its_kernel(server, tmp_path, monkeypatch):
    """The server serves only the code it imported: once the sources differ from those it started with (here a copy
    of src/leaguetables with one comment added, as `make mutation-gaps` applies a mutant or a developer edits a
    file), a client — even one that computed its code hash before the edit — is refused, and its worker starts the
    kernel as a process, which imports the sources as they are; the client's own code hash (its manifest's and
    caches') is left as it was."""
    path, _ = server
    monkeypatch.setenv(kernel_server.ENV, path)
    kept = cache.code_hash()
    edited = tmp_path / "leaguetables"
    shutil.copytree(cache.SRC_DIR, edited, ignore=shutil.ignore_patterns("__pycache__"))
    with open(edited / "statistics" / "funnel.py", "a", encoding="utf-8") as f:
        f.write("# a mutant\n")
    monkeypatch.setattr(cache, "SRC_DIR", edited)
    key = kernel_server.server_key(kernel_server._kernel_spec_argv(), dict(os.environ), fresh=True)
    assert key["code"] != kernel_server.status(path)["key"]["code"] and cache.code_hash() == kept
    reply, fds = kernel_server.request(path, {"op": "fork", "key": key, "argv": [], "env": {}}, [1, 2], max_fds=1)
    assert "refused" in reply and not fds
    worker = kernels.NotebookWorker(tmp_path)
    try:
        worker.warm_up(("json",)).result()
        assert worker.km is not None and isinstance(worker.km.provisioner.process, subprocess.Popen)
    finally:
        worker.close()
    assert kernel_server.status(path)["children"] == 0


# a run's process, as far as its kernels go: a warm worker's kernel forked by the server, and run_quarter.py's signal
# handlers; it prints the kernel's pid and waits to be stopped
STOPPED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import run_quarter
    from leaguetables.run import kernels

    run_quarter.install_signal_handlers()
    worker = kernels.NotebookWorker(Path(sys.argv[2]))
    worker.warm_up(("json",)).result()
    print(type(worker.km.provisioner.process).__name__, worker.km.provisioner.pid, flush=True)
    time.sleep(120)
    """
)


def _run_with_a_forked_kernel(path: str, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """:data:`STOPPED_RUN` in its own session with the server at ``path``, once its kernel was forked: the process
    and the kernel's pid."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", STOPPED_RUN, str(root), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, kernel_server.ENV: path},
        start_new_session=True,
    )
    kind, pid = proc.stdout.readline().split()
    assert kind == "ForkedKernel"
    return proc, int(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_run_kills_its_forked_kernel(sig, server, tmp_path):
    """SIGTERM or SIGHUP to a run kills its kernel even though the kernel is the server's child, not the run's
    (run_quarter._stop_children): no orphan kernel, no zombie."""
    path, _ = server
    proc, pid = _run_with_a_forked_kernel(path, tmp_path)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig or proc.returncode == 1  # the run's exception, raised in its sleep
    assert _gone(pid), "the forked kernel outlived its stopped run"
    assert kernel_server.status(path)["children"] == 0


def test_a_forked_kernel_exits_with_the_run_that_asked_for_it(server, tmp_path):
    """A run killed with SIGKILL (no handler runs) leaves no kernel behind: the forked kernel watches the run's
    process and exits with it, as ipykernel's parent poller makes a started kernel do."""
    path, _ = server
    proc, pid = _run_with_a_forked_kernel(path, tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert _gone(pid), "the forked kernel outlived its killed run"


# what a kernel's state is, once its warm modules are imported (as the first notebook of a run finds it): everything a
# library may read or set at import, and what the interpreter and the kernel app set at their start
KERNEL_STATE = textwrap.dedent(
    """
    import gc, json, locale, logging, os, resource, signal, sys, threading, warnings
    import matplotlib as mpl, numpy as np, pandas as pd
    def _fds():  # the open files and pipes (a file's path, or "pipe") and the paths unix sockets are bound to (the
        # kernel's own, in its connection file's folder, as one name: how many are open depends on its clients'
        # connections); not ZeroMQ's anonymous sockets and anon inodes, whose number depends on its threads' timing
        import psutil
        kinds, ipc = [], os.path.dirname(sys.argv[2])
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # the listing's own descriptor, closed
                continue
            if not target.startswith(("socket:", "anon_inode:")):
                kinds.append(target.split(":")[0].split("[")[0])
        bound = [c.laddr for c in psutil.Process().net_connections(kind="unix") if c.laddr]
        return sorted(kinds) + sorted({"kernel's sockets" if os.path.dirname(a) == ipc else a for a in bound})
    def _state():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns about its deprecated options when they are read
            options = {k: repr(pd.get_option(k)) for k in sorted(pd._config.config._registered_options)}
        loggers = {n: repr(getattr(g, "level", None)) for n, g in sorted(logging.Logger.manager.loggerDict.items())}
        return {
            "pandas": options, "rc": {k: repr(v) for k, v in mpl.rcParams.items()},
            "events": {k: [getattr(f, "__qualname__", repr(f)) for f in v] for k, v in get_ipython().events.callbacks.items()},
            "hooks": [repr(sys.displayhook)[:40], repr(sys.excepthook)[:40]], "warnings": [repr(f) for f in warnings.filters],
            "numpy": [repr(np.get_printoptions()), repr(np.geterr())], "modules": sorted(sys.modules),
            "env": {k: v for k, v in os.environ.items() if k != "LEAGUETABLES_KERNEL_SERVER"},
            "path": sys.path, "flags": repr(sys.flags), "argv": sys.argv[:2] + sys.argv[3:],
            "loggers": loggers, "root": [logging.root.level, [type(h).__name__ for h in logging.root.handlers]],
            "threads": threading.active_count(), "gc": [gc.isenabled(), gc.get_threshold()],
            "signals": {s.name: repr(signal.getsignal(s)) for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)},
            "locale": locale.setlocale(locale.LC_ALL), "encodings": [sys.stdout.encoding, sys.getfilesystemencoding()],
            "umask": os.umask(0o022), "session": os.getsid(0) == os.getpid(), "fds": _fds(),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE), "limits": [sys.getrecursionlimit(), sys.getswitchinterval()],
            "namespace": sorted(k for k in globals() if not k.startswith("_")), "builtins": sorted(dir(__builtins__)),
        }
    print(json.dumps(_state()))
    """
)


def _kernel_state(tmp_path: Path) -> tuple[str, dict]:
    """(the kind of the kernel's process handle, :data:`KERNEL_STATE`) of a warm worker's kernel, warmed as a run
    warms it (:data:`kernels.WARM_MODULES`)."""
    worker = kernels.NotebookWorker(tmp_path)
    try:
        worker.warm_up().result()
        assert worker.km is not None
        kind = type(worker.km.provisioner.process).__name__
        kc = worker.client["kc"]
        msg_id, text = kc.execute(KERNEL_STATE), ""
        while True:
            msg = run_sync(kc.get_iopub_msg)(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            assert msg["msg_type"] != "error", msg["content"]
            text += msg["content"]["text"] if msg["msg_type"] == "stream" else ""
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        worker.close()
    return kind, json.loads(text)


def test_a_forked_kernel_is_in_the_state_of_a_started_one(server, tmp_path, monkeypatch):
    """A kernel forked by the server, once warmed, is in the state of a kernel started as a process and warmed the
    same way: pandas' options and matplotlib's settings (read at import: pandas' display.max_columns is 20 in a
    kernel and 0 in a terminal, which showed in the executed notebooks' tables before the server imported as in a
    kernel), the warning filters in their order, the modules imported, the shell's event hooks, environment,
    sys.path, flags, signal handlers, loggers, locale, umask, open files and pipes, bound sockets (the server's
    listening socket is not inherited), threads' number, the namespace. Apart: the connection file (each kernel its
    own) and the server's variable in the environment; anonymous sockets and anon inodes are not compared (ZeroMQ's,
    their number varies with timing; the forked kernel's pidfd of its run is one)."""
    monkeypatch.setenv(kernel_server.ENV, server[0])
    forked_kind, forked = _kernel_state(tmp_path)
    monkeypatch.delenv(kernel_server.ENV)
    started_kind, started = _kernel_state(tmp_path)
    assert (forked_kind, started_kind) == ("ForkedKernel", "Popen")
    different = {k: (forked[k], started[k]) for k in started if forked[k] != started[k]}
    assert not different, json.dumps(different)[:4000]


def test_a_server_of_another_user_is_not_used(server, monkeypatch):
    """A client talks only to a server running as its own user (SO_PEERCRED; the socket is its user's alone): as
    another user, here by its uid, it sends nothing and starts its kernel as a process."""
    path, _ = server
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    assert kernel_server.status(path) is None
    assert kernel_server.fork_kernel(path, ["python", "-f", "k.json"], {"env": {}}) is None
