"""Errors that are reported to the user as one line (exit code 2), never as a traceback."""

from __future__ import annotations


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
