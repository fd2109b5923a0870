"""Atomic publishing of a quarter, its lock and the reports folder the pipeline owns.

A quarter is built in ``<out>/.staging-<quarter>/`` under an exclusive lock
(``<out>/.lock-<quarter>``, released by the kernel when the process dies) and moved into place by
:func:`publish` only when everything has succeeded. Replacing a published quarter is one atomic exchange of the two
folders (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), journalled in
``<out>/.publishing-<quarter>.json`` so that :func:`recover` can finish the job after a kill: at every moment
``<out>/<quarter>/`` is either the previous complete version or the new complete one. The previous version is kept
under ``<out>/.superseded/<quarter>.<n>``.

The published files themselves: CSVs in :mod:`leaguetables.csv_output` (and NHS England's layouts in
:mod:`leaguetables.nof.layout`), the notebook HTML export in :mod:`leaguetables.publication.notebook_html`, the
manifest in :mod:`leaguetables.run.manifest`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from leaguetables.config import file_sha256
from leaguetables.errors import InputError, PipelineError, raise_if_stopped
from leaguetables.run.manifest import read_manifest

STAGING_PREFIX = ".staging-"
SUPERSEDED_DIR = ".superseded"


# ------------------------------------------------------------------------------------------------ atomic publishing
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


KILL_ENV = "LEAGUETABLES_KILL_AT"  # tests: the named stage at which the process kills itself (SIGKILL)
FAIL_ENV = "LEAGUETABLES_FAIL_AT"  # tests: the named stage at which the run fails (PipelineError)
STAGES = (
    "validated",
    "claimed",
    "staging",
    "metric-started",
    "metric-done",
    "metrics",
    "league",
    "report",
    "publication",
    "manifest",
    "publish-journal",
    "publish-exchanged",
    "published",
)


def checkpoint(stage: str) -> None:
    """A named stage of a run. When the environment variable :data:`KILL_ENV` names it, the process kills itself
    there with SIGKILL (no cleanup of any kind: the test of what a ``kill -9`` at that moment leaves behind). A run
    stopped by a signal whose exception was lost stops here (:func:`leaguetables.errors.raise_if_stopped`)."""
    assert stage in STAGES, stage
    raise_if_stopped()
    if os.environ.get(KILL_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_ENV) == stage:
        raise PipelineError(f"stage {stage} failed ({FAIL_ENV} is set)")


def journal_path(out_root: Path, quarter: str) -> Path:
    return Path(out_root) / f".publishing-{quarter}.json"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def superseded_path(out_root: Path, quarter: str) -> Path:
    """The next free ``<out>/.superseded/<quarter>.<n>`` (n = 1 + the highest number already used)."""
    archive = Path(out_root) / SUPERSEDED_DIR
    archive.mkdir(exist_ok=True)
    used = [int(m.group(1)) for p in archive.iterdir() if (m := re.fullmatch(re.escape(quarter) + r"\.(\d+)", p.name))]
    return archive / f"{quarter}.{max(used, default=0) + 1}"


def _manifest_sha(folder: Path) -> str | None:
    path = Path(folder) / "manifest.json"
    return file_sha256(path) if path.is_file() else None


def publish(staging: Path, target: Path) -> Path:
    """Move a complete staging folder into place atomically; the previous version is kept under .superseded/.

    Call with the quarter's lock held (:func:`quarter_lock`). ``target`` is at every moment either the previous
    complete version or the new complete one; a kill part-way is finished by :func:`recover` on the next run. A run
    stopped by a signal (even one whose exception was lost) publishes nothing (:func:`raise_if_stopped`).
    """
    raise_if_stopped()
    staging, target = Path(staging), Path(target)
    work = staging / "_work"
    if work.exists():
        shutil.rmtree(work)
    out_root = target.parent
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(out_root)
        return target
    archive = superseded_path(out_root, target.name)
    journal = journal_path(out_root, target.name)
    _write_atomic(
        journal,
        json.dumps(
            {
                "staging": str(staging),
                "target": str(target),
                "archive": str(archive),
                "new_manifest": _manifest_sha(staging),
            },
            indent=1,
        ),
    )
    checkpoint("publish-journal")
    if _exchange(staging, target):  # target is now the new version, staging the previous one
        checkpoint("publish-exchanged")
        os.rename(staging, archive)
    else:  # two renames: recover() rolls forward if killed between them
        os.rename(target, archive)
        checkpoint("publish-exchanged")
        os.rename(staging, target)
    _fsync_dir(out_root)
    journal.unlink()
    return target


def recover(out_root: Path, quarter: str) -> str | None:
    """Finish a publication of ``quarter`` interrupted by a kill (call with the quarter's lock held).

    Returns what was done, or None when there was nothing to recover.
    """
    journal = journal_path(out_root, quarter)
    if not journal.exists():
        return None
    try:
        info = json.loads(journal.read_text(encoding="utf-8"))
        staging, target, archive = Path(info["staging"]), Path(info["target"]), Path(info["archive"])
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink()
        return "removed an unreadable publishing journal"
    root = Path(out_root).resolve()
    if (
        staging.resolve() != staging_path(root, quarter).resolve()
        or target.resolve() != (root / quarter).resolve()
        or archive.resolve().parent != (root / SUPERSEDED_DIR).resolve()
        or not re.fullmatch(re.escape(quarter) + r"\.\d+", archive.name)
    ):
        journal.unlink()  # not a journal this project wrote for this folder: its paths are never acted on
        return "removed a publishing journal naming paths outside its quarter"
    done = None
    if staging.exists() and target.exists():
        if _manifest_sha(staging) != info.get("new_manifest"):
            # the exchange happened: staging holds the previous version, which is archived as planned
            archive.parent.mkdir(exist_ok=True)
            os.rename(staging, archive if not archive.exists() else superseded_path(out_root, quarter))
            done = f"archived the previous version of {quarter} after an interrupted publication"
        # else the exchange never happened: the published version is untouched; staging is stale
    elif staging.exists() and not target.exists():
        os.rename(staging, target)  # killed between the two renames: roll forward
        done = f"finished an interrupted publication of {quarter}"
    elif not target.exists() and archive.exists():
        os.rename(archive, target)
        done = f"restored {quarter} from {archive.name} after an interrupted publication"
    _fsync_dir(Path(out_root))
    journal.unlink()
    return done


class LockBusy(Exception):
    """Another process holds the quarter's lock."""


@contextlib.contextmanager
def quarter_lock(out_root: Path, quarter: str):
    """Exclusive, non-blocking lock of one quarter's folder; the kernel releases it if the process dies."""
    fd = os.open(Path(out_root) / f".lock-{quarter}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(quarter) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def staging_path(out_root: Path, quarter: str) -> Path:
    return Path(out_root) / f"{STAGING_PREFIX}{quarter}"


def _staging_quarter(name: str) -> str | None:
    """The quarter of a staging folder's name — only the exact name the pipeline creates (``.staging-<quarter>``):
    ``.staging-2025-26-Q4.backup`` is somebody else's folder and is never touched."""
    m = re.fullmatch(re.escape(STAGING_PREFIX) + r"(\d{4}-\d{2}-Q[1-4])", name)
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------------- the output folder
OWNER_MARKER = ".leaguetables-reports"  # a reports folder the project created or adopted holds this file
QUARTER_NAME = re.compile(r"\d{4}-\d{2}-Q[1-4]")
# the names the pipeline creates directly under the reports folder (its namespace); nothing else is ever touched
_NAMESPACE = re.compile(
    r"\.staging-.*|\.lock-.*|\.publishing-.*|\.cache|\.inputs|\.failed|\.superseded|"
    + re.escape(OWNER_MARKER)
    + r"|\d{4}-\d{2}-Q[1-4].*"
)


def _is_own_quarter(path: Path) -> bool:
    """A quarter folder published by this project before the marker existed: its manifest says so."""
    m = read_manifest(path) if path.is_dir() else None
    if not m:
        return False
    return m.get("quarter") == path.name and isinstance(m.get("code"), dict) and "outputs" in m


def foreign_entries(out_root: Path) -> list[str]:
    """Entries of ``out_root`` in the pipeline's namespace that the pipeline did not create (without the marker)."""
    out = []
    for p in sorted(Path(out_root).iterdir()):
        if not _NAMESPACE.fullmatch(p.name):
            continue  # not a name the pipeline uses: never read, changed or removed
        if QUARTER_NAME.fullmatch(p.name) and _is_own_quarter(p):
            continue
        out.append(p.name)
    return out


def claim_out(out_root: Path) -> Path:
    """Make ``out_root`` the project's reports folder, or refuse it (:class:`InputError`, one line).

    * a new folder is created with the marker file :data:`OWNER_MARKER`; a folder with the marker is the project's;
    * an existing folder without the marker is adopted (the marker written) only when nothing in it uses a name the
      pipeline creates (``<quarter>/``, ``.staging-*``, ``.cache``, ``.inputs``, ``.failed``, ``.superseded``,
      ``.lock-*``, ``.publishing-*``) — except quarter folders whose manifest shows this project published them. Other files in
      it are never read, changed or removed;
    * a path that is a file, or a folder that cannot be written, is refused.
    """
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"--out {out_root} is a file, not a folder")
    marker = out_root / OWNER_MARKER
    try:
        if not out_root.exists():
            out_root.mkdir(parents=True)
        elif not marker.is_file():
            foreign = foreign_entries(out_root)
            if foreign:
                raise InputError(
                    f"--out {out_root} is not a reports folder of this project (no {OWNER_MARKER} "
                    f"file) and already holds {', '.join(repr(f) for f in foreign[:5])}"
                    f"{' …' if len(foreign) > 5 else ''}, names the pipeline would write; choose a new "
                    "or empty folder (nothing was changed)"
                )
        if not os.access(out_root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        if not marker.is_file():
            _write_atomic(
                marker,
                json.dumps(
                    {
                        "created_by": "leaguetables run_quarter.py",
                        "note": (
                            "This folder holds NHS trust league tables published by run_quarter.py. The pipeline creates, "
                            "replaces and removes only the entries it owns here: <quarter>/, .staging-<quarter>, "
                            ".publishing-<quarter>.json, .lock-<quarter>, .cache/, .inputs/, .failed/.staging-<quarter>, "
                            ".superseded/; "
                            "anything else is left alone."
                        ),
                    },
                    indent=1,
                )
                + "\n",
            )
        probe = out_root / f".lock-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"--out {out_root} cannot be written ({exc.strerror or exc})") from None
    return out_root


def cleanup_stale(out_root: Path, own_quarter: str | None = None) -> list[str]:
    """Recover interrupted publications and remove staging folders left by killed runs.

    A staging folder is stale when no live run holds its quarter's lock. The caller holds the lock of
    ``own_quarter`` (its own staging folder is stale by definition: the caller is about to recreate it).
    """
    out_root = Path(out_root)
    done = []
    quarters = {q for p in out_root.glob(f"{STAGING_PREFIX}*") if (q := _staging_quarter(p.name))}
    quarters |= {
        m.group(1)
        for p in out_root.glob(".publishing-*.json")
        if (m := re.fullmatch(r"\.publishing-(\d{4}-\d{2}-Q[1-4])\.json", p.name))
    }
    for quarter in sorted(quarters):
        if not re.fullmatch(r"\d{4}-\d{2}-Q[1-4]", quarter):
            continue

        def _clean(q=quarter):
            note = recover(out_root, q)
            if note:
                done.append(note)
            p = staging_path(out_root, q)  # the exact name only: never .staging-<q>.backup or the like
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed stale {p.name}")

        if quarter == own_quarter:
            _clean()
            continue
        try:
            with quarter_lock(out_root, quarter):
                _clean()
        except LockBusy:
            continue  # a live run of that quarter: leave its staging folder alone
    return done
