"""The reports folder is the project's only where the project says so (issue 12).

* ``--out`` at a file, an unwritable folder, or a folder holding names the pipeline writes that it did not create:
  refused with one line, exit 2, nothing changed;
* a folder full of unrelated files: none of them is read, changed or removed when a run succeeds, fails, is
  refused, is killed with SIGKILL at each named stage (``publish.STAGES``, deterministic through
  ``LEAGUETABLES_KILL_AT``) or is stopped with SIGTERM/SIGHUP;
* after a kill at any stage the published quarter is complete — the previous version or the new one, every file
  as its manifest lists it — and the next run recovers.

Runs use the six-trust corpus base (``tests/bad_inputs/base``) and three metrics: a few seconds each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_run import BASE, METRICS, ROOT, run_quarter_command

from leaguetables.config import file_sha256
from leaguetables.run.publish import OWNER_MARKER, STAGES

QUARTER = "2025-26-Q4"
FOREIGN = {  # a user's files, some with names close to the pipeline's own
    "notes.txt": "my notes\n",
    ".staging-2025-26-Q4.backup/keep.txt": "a backup the user made\n",
    ".failed/mine/keep.txt": "not the pipeline's\n",
    ".superseded/README": "user file in the archive folder\n",
    ".cache/mine.txt": "user file in the cache folder\n",
    "2025-26-Q4.old/index.html": "<p>an old copy</p>\n",
    "2025-26-Q4-draft.csv": "a,b\n1,2\n",
}


def _run(data: Path, out: Path, *extra: str, env: dict | None = None, tmp: Path | None = None):
    e = {**os.environ, **(env or {})}
    if tmp is not None:
        e["TMPDIR"] = str(tmp)
    cmd = run_quarter_command(QUARTER, data, out, *extra)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=e)


def _snapshot(folder: Path, names) -> dict:
    return {n: (folder / n).read_bytes() if (folder / n).is_file() else None for n in names}


def _plant(out: Path) -> None:
    for rel, text in FOREIGN.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")


def _complete(folder: Path) -> str:
    """The folder is one complete publication: every file its manifest lists, with that checksum. Returns the
    manifest's checksum (which version it is)."""
    from leaguetables.run.manifest import published_files

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    listed = manifest["outputs"]
    have = {p.relative_to(folder).as_posix(): file_sha256(p) for p in published_files(folder)}
    assert have == listed, f"{folder} is not a complete publication"
    return file_sha256(folder / "manifest.json")


def _data_v2(tmp: Path) -> Path:
    """The base data with one count changed (a second version of the quarter)."""
    data = tmp / "data2"
    shutil.copytree(BASE, data)
    path = data / "observations.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    rows[29][rows[0].index("numerator")] = "15"  # line 30: DEMO-A001 cdiff in 2025-26-Q4
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return data


# ------------------------------------------------------------------------------------------------------ refusals
def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "reports"
    f.write_text("not a folder\n")
    proc = _run(BASE, f)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: --out {f} is a file, not a folder"
    assert f.read_text() == "not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_out_is_refused(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = _run(BASE, out)
    finally:
        out.chmod(0o755)
    assert proc.returncode == 2 and "cannot be written" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_out_holding_foreign_entries_in_the_namespace_is_refused(tmp_path):
    out = tmp_path / "theirs"
    _plant(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = _run(BASE, out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a reports folder of this project" in lines[0] and "Traceback" not in proc.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and not (out / OWNER_MARKER).exists()


def test_claim_out_in_process(tmp_path):
    from leaguetables.errors import InputError
    from leaguetables.run.publish import claim_out

    new = claim_out(tmp_path / "new" / "reports")
    assert (new / OWNER_MARKER).is_file()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "holiday.jpg").write_bytes(b"\xff\xd8")
    claim_out(plain)  # unrelated files only: adopted, the files untouched
    assert (plain / "holiday.jpg").read_bytes() == b"\xff\xd8" and (plain / OWNER_MARKER).is_file()
    for name in (".cache", ".failed", ".superseded", ".staging-2025-26-Q4", "2025-26-Q4", ".lock-x"):
        d = tmp_path / f"case{name}"
        (d / name).mkdir(parents=True)
        with pytest.raises(InputError, match="is not a reports folder of this project"):
            claim_out(d)
        assert not (d / OWNER_MARKER).exists()


def test_cleanup_removes_only_the_exact_staging_name(tmp_path):
    from leaguetables.run.publish import cleanup_stale

    (tmp_path / ".staging-2025-26-Q4").mkdir()
    (tmp_path / ".staging-2025-26-Q4.backup").mkdir()
    (tmp_path / ".staging-2025-26-Q4x").mkdir()
    (tmp_path / ".staging-notes").mkdir()
    notes = cleanup_stale(tmp_path)
    assert notes == ["removed stale .staging-2025-26-Q4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock-2025-26-Q4",
        ".staging-2025-26-Q4.backup",
        ".staging-2025-26-Q4x",
        ".staging-notes",
    ]


def test_a_journal_naming_foreign_paths_is_never_acted_on(tmp_path):
    from leaguetables.run.publish import journal_path, recover

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("precious")
    journal_path(tmp_path, QUARTER).write_text(
        json.dumps({"staging": str(victim), "target": str(tmp_path / "elsewhere"), "archive": str(tmp_path / "x.1")})
    )
    assert "outside its quarter" in recover(tmp_path, QUARTER)
    assert (victim / "file").read_text() == "precious" and not (tmp_path / "elsewhere").exists()


# ------------------------------------------------------------------------------------ success, failure, kill
@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A reports folder with the quarter published once (version 1) and a user's files planted beside it."""
    tmp = tmp_path_factory.mktemp("outfolder")
    out = tmp / "reports"
    proc = _run(BASE, out)
    assert proc.returncode == 0, proc.stderr
    # the second version's stages in the cache too (built in another folder), so the runs below restore them
    proc = _run(_data_v2(tmp), tmp / "v2")
    assert proc.returncode == 0, proc.stderr
    shutil.copytree(tmp / "v2" / ".cache", out / ".cache", dirs_exist_ok=True)
    _plant(out)
    return tmp, out, _complete(out / QUARTER)


def _foreign_intact(out: Path) -> None:
    for rel, text in FOREIGN.items():
        assert (out / rel).read_text(encoding="utf-8") == text, f"{rel} was changed"


def test_success_failure_and_refusal_leave_foreign_files_alone(published, tmp_path):
    tmp, out, v1 = published
    v2data = _data_v2(tmp_path)
    proc = _run(v2data, out)  # would change the published quarter: refused (exit 1)
    assert proc.returncode == 1 and proc.stderr.startswith("refused:"), proc.stderr
    _foreign_intact(out)
    assert _complete(out / QUARTER) == v1
    for stage in ("staging", "metrics", "league", "report", "publication"):
        proc = _run(v2data, out, "--force", env={"LEAGUETABLES_FAIL_AT": stage})
        assert proc.returncode == 1 and f"stage {stage} failed" in proc.stderr, proc.stderr
        _foreign_intact(out)
        assert _complete(out / QUARTER) == v1
        assert (out / ".failed" / f".staging-{QUARTER}").is_dir()  # the pipeline's own entry, replaced each time
    proc = _run(BASE, out)  # same inputs as the published version: nothing to do
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged"), proc.stderr
    _foreign_intact(out)
    assert not (out / f".staging-{QUARTER}").exists()


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_at_each_stage(stage, published, tmp_path):
    """SIGKILL at the named stage of a run replacing the published quarter (--force, changed inputs): the published
    quarter is afterwards one complete version (the previous one, or the new one once the exchange has happened),
    every foreign file is intact, and the next run recovers and finishes."""
    tmp, out, v1 = published
    work = tmp_path / "copy"
    shutil.copytree(out, work, symlinks=True)  # each stage on its own copy of the published folder
    v2data = _data_v2(tmp_path)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    # kernels run (and leave socket folders when killed) only where a stage executes: --no-cache for one of them
    no_cache = ("--no-cache",) if stage in ("metric-started", "metric-done", "metrics") else ()
    proc = _run(v2data, work, "--force", *no_cache, env={"LEAGUETABLES_KILL_AT": stage}, tmp=private_tmp)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _foreign_intact(work)
    version = _complete(work / QUARTER)
    late = STAGES.index(stage) >= STAGES.index("publish-exchanged")
    assert (version != v1) == late, "the published quarter changes only once the exchange has happened"
    proc = _run(v2data, work, "--force", tmp=private_tmp)
    assert proc.returncode == 0, proc.stderr
    assert not list(private_tmp.glob("ltk-*")), "the killed run's kernel socket folder was not cleaned up"
    if no_cache:
        assert proc.stdout.startswith("published"), proc.stdout
    _foreign_intact(work)
    assert _complete(work / QUARTER) != v1
    assert not (work / f".staging-{QUARTER}").exists()
    assert not (work / f".publishing-{QUARTER}.json").exists()
    archived = sorted((work / ".superseded").glob(f"{QUARTER}.*"))
    assert archived and _complete(archived[0]) == v1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_handled_like_ctrl_c(sig, published, tmp_path):
    """Stopped while the metric notebooks run: exit 128+signal, one line, no staging folder, no kernel socket
    folder left in TMPDIR, the published quarter and every foreign file intact."""
    tmp, out, v1 = published
    work = tmp_path / "copy"
    shutil.copytree(out, work, symlinks=True)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    cmd = [
        sys.executable,
        str(ROOT / "run_quarter.py"),
        QUARTER,
        "--source",
        "files",
        "--data",
        str(_data_v2(tmp_path)),
        "--catalogue",
        "demo",
        "--out",
        str(work),
        "--metrics",
        METRICS,
        "--force",
        "--no-cache",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(private_tmp)},
        start_new_session=True,  # a signal the run sent to its own group would fail this test, not kill pytest
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(private_tmp.glob("ltk-*")):
        time.sleep(0.05)  # a kernel has been started: the run is inside the metric stage
    assert list(private_tmp.glob("ltk-*")), "the run never started a kernel"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == f"terminated ({signal.Signals(sig).name}): nothing was published"
    assert "Traceback" not in err
    assert not (work / f".staging-{QUARTER}").exists()
    assert not list(private_tmp.glob("ltk-*")), "kernel socket folders left behind"
    _foreign_intact(work)
    assert _complete(work / QUARTER) == v1
