"""Errors that are reported to the user as one line (exit code 2), never as a traceback."""

from __future__ import annotations

from signal import SIGINT


class InputError(Exception):
    """Bad input: the message names the file, and the row and column where there is one."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column = file, row, column
        parts = []
        if file is not None:
            parts.append(str(file))
        if row is not None:
            parts.append(f"row {row}")
        if column is not None:
            parts.append(f"column {column!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PipelineError(Exception):
    """A stage of the pipeline failed; nothing was published."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled like Ctrl-C (staging folder removed, kernels stopped, nothing published)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_STOPPED: list[int] = []  # the signals that stopped this run, in order (run_quarter.py's handlers record them)


def stop(signum: int) -> KeyboardInterrupt:
    """Record that a signal stopped the run and return the exception its handler raises: :class:`Terminated`, or
    ``KeyboardInterrupt`` for SIGINT (Ctrl-C). Recorded because the raise alone can be lost: a Python signal handler
    runs between two bytecodes of whatever the main thread executes, and where that is a callback whose exceptions
    Python ignores (a weakref callback: importlib's module locks have one, so any import can run it) the exception is
    printed as "Exception ignored" and the run goes on and publishes (1 of 80 SIGTERMs sent at random moments of an
    input validation). :func:`raise_if_stopped`, called at every checkpoint of a run and before it
    publishes, raises it again."""
    _STOPPED.append(signum)
    return _stop_exception(signum)


def _stop_exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == SIGINT else Terminated(signum)


def raise_if_stopped() -> None:
    """Raise the exception of the first signal that stopped the run (:func:`stop`), if one did."""
    if _STOPPED:
        raise _stop_exception(_STOPPED[0])
