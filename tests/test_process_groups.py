"""A run never signals the process group of whatever started it (the silent deaths of ``make test``).

``run_quarter.py`` stopped with SIGTERM or SIGHUP kills its children (the notebook kernels). A kernel being started in
another thread at that moment can be killed between its fork and its ``setsid``: it dies still in the caller's
process group, and jupyter_client records ``os.getpgid(kernel)`` — the caller's group — as the kernel's. Shutting the
dead kernel down then sends SIGINT and SIGKILL to that group: the run, pytest's worker, pytest, make and the shell
that started make all vanished without a word (traced with strace: ``kill(-<pytest's group>, SIGKILL)`` from a thread
of run_quarter.py). :class:`leaguetables.run.kernels.SessionKernelManager` signals a kernel's group only when the
kernel leads it.

The race is made deterministic here: the kernel launcher is replaced by one returning what the real one returns in
that case (a dead child still in the caller's group). Each case runs in a process of its own session, so that a group
kill takes that process and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from leaguetables.run import kernels

# the caller's side: start a kernel whose fork was killed before its setsid, then shut it down as a stopped run does
KILLED_BEFORE_SETSID = textwrap.dedent(
    """
    import asyncio, importlib, os, signal, subprocess, sys
    from jupyter_client.provisioning import local_provisioner

    module, name = sys.argv[1].rsplit(":", 1)
    manager = getattr(importlib.import_module(module), name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a group kill shows as SIGKILL (SIGINT comes first)

    def launch(cmd, **kw):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in this process's group
        os.kill(proc.pid, signal.SIGKILL)  # killed before it could make its own session
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped (a zombie keeps its group)
        return proc

    local_provisioner.launch_kernel = launch

    async def main():
        km = manager(kernel_name="python3")
        await km.start_kernel()
        await km.shutdown_kernel(now=True)

    asyncio.run(main())
    print("survived")
    """
)


def _start_and_shut_down(manager: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_SETSID, manager],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own group: a group kill cannot reach pytest
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)},  # the connection file
    )


def test_jupyter_clients_manager_kills_the_callers_group_when_a_kernel_dies_before_its_setsid(tmp_path):
    """The control: with jupyter_client's own manager the scenario is lethal to the caller (so the test below can
    fail). If a later jupyter_client stops recording a group the kernel does not lead, this fails and
    SessionKernelManager can go."""
    proc = _start_and_shut_down("jupyter_client.manager:AsyncKernelManager", tmp_path)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-2000:])


def test_a_kernel_killed_before_its_setsid_never_gets_the_callers_group_signalled(tmp_path):
    proc = _start_and_shut_down("leaguetables.run.kernels:SessionKernelManager", tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "survived", (proc.returncode, proc.stderr[-2000:])


def test_own_group_only_keeps_a_group_the_kernel_leads():
    class Provisioner:
        def __init__(self, pid, pgid):
            self.pid, self.pgid = pid, pgid

    leads, inside = Provisioner(4242, 4242), Provisioner(4242, os.getpgrp())
    kernels.own_group_only(leads)
    kernels.own_group_only(inside)
    assert leads.pgid == 4242 and inside.pgid is None


@pytest.mark.unit  # papermill's entry point is replaced: nothing is executed
def test_both_kinds_of_worker_use_the_session_kernel_manager(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels.tempfile, "tempdir", str(tmp_path))
    warm = kernels.NotebookWorker(tmp_path)
    warm._start()
    assert type(warm.km) is kernels.SessionKernelManager
    warm.pool.shutdown()
    seen = {}
    import papermill  # noqa: E402 - kernels imports it where a notebook is executed (as here)

    from leaguetables.run import engine

    monkeypatch.setattr(engine, "use_absolute_local_io", lambda: None)  # papermill's handlers untouched
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: seen.update(kw))
    kernels.IsolatedWorker(tmp_path).execute("report.ipynb", tmp_path / "out.ipynb", {"quarter": "2025-26-Q4"})
    assert seen["kernel_manager_class"] is kernels.SessionKernelManager
