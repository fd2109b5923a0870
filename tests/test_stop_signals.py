"""A run stopped by a signal stops, even when the exception its handler raised was lost.

A Python signal handler runs between two bytecodes of whatever the main thread executes; when that is a callback
whose exceptions Python ignores — the weakref callback of importlib's module locks, run by any import — the
exception the handler raised is printed as "Exception ignored" and lost (a run sent SIGTERM once went on, published
and exited 0; a script sending SIGTERM at random moments of an input validation lost it in 1 of 80 trials). The handlers therefore record the signal
(:func:`leaguetables.errors.stop`), and every checkpoint of a run, and publishing, raise it again.
"""

from __future__ import annotations

import os
import signal
import sys
import weakref

import pytest

from leaguetables import errors
from leaguetables.errors import Terminated
from leaguetables.run import publish

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import run_quarter  # noqa: E402  # the command's handlers


@pytest.fixture(autouse=True)
def no_stop_recorded():
    errors._STOPPED.clear()
    yield
    errors._STOPPED.clear()


def test_a_lost_sigterm_stops_the_run_at_its_next_checkpoint():
    with pytest.raises(Terminated) as exc:
        try:
            raise errors.stop(signal.SIGTERM)
        except BaseException:  # noqa: BLE001 - what a library that swallows the handler's exception does
            pass
        publish.checkpoint("metrics")
    assert exc.value.signum == signal.SIGTERM


def test_a_lost_stop_publishes_nothing(tmp_path):
    """``publish`` refuses before it touches anything: the published version and the staged one are left as they
    were (the caller's cleanup removes the staging folder)."""
    target, staging = tmp_path / "2025-26-Q4", tmp_path / ".staging-2025-26-Q4"
    for folder, text in ((target, "published"), (staging, "new")):
        folder.mkdir()
        (folder / "index.html").write_text(text)
    errors.stop(signal.SIGHUP)
    with pytest.raises(Terminated):
        publish.publish(staging, target)
    assert (target / "index.html").read_text() == "published"
    assert (staging / "index.html").read_text() == "new"
    assert not (tmp_path / ".superseded").exists()


def test_without_a_signal_checkpoints_pass():
    publish.checkpoint("metrics")  # the negative control of the tests above


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_commands_ctrl_c_handler_records_an_interrupt_python_ignored():
    """Ctrl-C through ``run_quarter.py``'s own SIGINT handler, arriving while a weakref callback runs (as importlib's
    module-lock callback does): Python ignores the ``KeyboardInterrupt`` the handler raised there and carries on;
    the next checkpoint raises it again — ``KeyboardInterrupt`` (reported as "interrupted"), not
    :class:`Terminated`."""

    class Referent:
        pass

    def callback(_ref):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at a bytecode boundary of this (the main) thread, inside here
            pass

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        run_quarter.install_signal_handlers()
        obj = Referent()
        ref = weakref.ref(obj, callback)
        del obj  # the callback runs now; the interrupt raised inside it does not propagate
        assert ref() is None and errors._STOPPED == [signal.SIGINT]  # reached: the interrupt was lost
        with pytest.raises(KeyboardInterrupt) as exc:
            publish.checkpoint("league")
        assert not isinstance(exc.value, Terminated)
    finally:
        for s, h in before.items():
            signal.signal(s, h)
