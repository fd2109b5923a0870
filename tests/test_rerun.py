"""Reruns of a published quarter: no-op, --verify, refusal, --revise (revisions table), --force, atomic publishing
under kill -9, and escaping of a hostile trust name in every published page.

One small quarter (four metrics covering the three trust types) is published once per module and copied for the
tests that change it; the runs are shared through module-scoped fixtures to keep the file fast.
"""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUARTER = "2025-26-Q4"
METRICS = "ae_4hr,cdiff,cqc_safe,amb_cat2_mean"
HOSTILE_CODE = "DEMO-A001"
HOSTILE_NAME = "<script>alert('pwned')</script> Corwick & <b>Holworth</b> \"Demo\" Trust"
CHANGED_CODE = "DEMO-A002"  # its cdiff numerator is changed by the tests that revise an input

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rerun")]


def run_quarter(*args: str, data: Path | None = None, out: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "run_quarter.py"), QUARTER, "--out", str(out), "--no-progress", *args]
    if data is not None:
        cmd += ["--data", str(data), "--metrics", METRICS]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rewrite_csv(path: Path, edit) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    for r in rows[1:]:
        edit(dict(zip(header, r)), r, header)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def change_cdiff(data: Path, delta: int) -> tuple[str, str]:
    """Add ``delta`` to CHANGED_CODE's cdiff numerator this quarter; return (old, new) as written."""
    seen = []

    def edit(d, r, header):
        if d["quarter"] == QUARTER and d["trust_code"] == CHANGED_CODE and d["metric_id"] == "cdiff":
            j = header.index("numerator")
            old = r[j]
            r[j] = f"{float(old) + delta:g}"
            seen.append((old, r[j]))

    _rewrite_csv(data / "observations.csv", edit)
    assert len(seen) == 1
    return seen[0]


@pytest.fixture(scope="module")
def data(demo_dir, tmp_path_factory) -> Path:
    """The demo data with a trust name full of HTML and JavaScript (valid input: it must be escaped, not refused)."""
    folder = tmp_path_factory.mktemp("data") / "a"
    shutil.copytree(demo_dir, folder)

    def edit(d, r, header):
        if d["trust_code"] == HOSTILE_CODE:
            r[header.index("trust_name")] = HOSTILE_NAME

    _rewrite_csv(folder / "trusts.csv", edit)
    return folder


@pytest.fixture(scope="module")
def published(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    proc = run_quarter(data=data, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "executed 4 of 4 metric notebooks" in proc.stdout
    return out


def test_noop_rerun_reuses_everything_and_changes_nothing(published, data):
    before = tree(published)
    t0 = time.perf_counter()
    proc = run_quarter(data=data, out=published)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"unchanged: {published / QUARTER} is identical to this run")
    assert "reused everything from the cache: 4 metric notebooks, league, report, publication" in proc.stdout
    assert tree(published) == before, "a no-op rerun writes nothing (the manifest keeps the first run's timings)"
    assert not list(published.glob(".staging-*"))
    assert seconds < 30, f"no-op rerun took {seconds:.1f} s"


def test_hostile_trust_name_is_escaped_in_every_page(published):
    pages = sorted((published / QUARTER).rglob("*.html"))
    assert len(pages) > 3
    assert "&lt;script&gt;alert(" in (published / QUARTER / "index.html").read_text(encoding="utf-8")
    profile = next(p for p in pages if p.name.startswith(HOSTILE_CODE))
    assert "&lt;script&gt;alert(" in profile.read_text(encoding="utf-8")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(" not in text and "<b>Holworth</b>" not in text, page.name
    table = pd.read_csv(published / QUARTER / "tables" / "league_table_full.csv").set_index("trust_code")
    assert table.loc[HOSTILE_CODE, "trust_name"] == HOSTILE_NAME, "kept as data in the tables"


def test_verify_passes_on_an_untouched_quarter(published):
    proc = run_quarter("--verify", out=published)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"verified: {published / QUARTER} is reproduced exactly")
    assert not list(published.glob(".staging-*"))


def test_verify_fails_after_an_input_value_changes(published, data):
    original = (data / "observations.csv").read_bytes()
    before = tree(published / QUARTER)
    try:
        old, new = change_cdiff(data, 10)
        proc = run_quarter("--verify", out=published)
    finally:
        (data / "observations.csv").write_bytes(original)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert f"{data / 'observations.csv'} has changed since publication" in err
    assert "tables/metrics/cdiff.csv" in err
    line = next(x for x in err.splitlines() if f"row trust_code={CHANGED_CODE}, metric_id=cdiff:" in x)
    assert f"numerator {old} → {new}" in line
    assert tree(published / QUARTER) == before, "--verify never publishes"


@pytest.fixture(scope="module")
def revised(published, data, tmp_path_factory):
    """A copy of the published folder (with its cache) and revised data: the refused, revised and forced reruns."""
    base = tmp_path_factory.mktemp("revised")
    out = base / "reports"
    shutil.copytree(published, out)
    data_b = base / "data-b"
    shutil.copytree(data, data_b)
    old, new = change_cdiff(data_b, 10)
    first = tree(out / QUARTER)
    refused = run_quarter(data=data_b, out=out)
    after_refusal = tree(out / QUARTER)
    revise = run_quarter("--revise", data=data_b, out=out)
    return {"out": out, "data_b": data_b, "old": old, "new": new, "first": first, "refused": refused,
            "after_refusal": after_refusal, "revise": revise}


def test_a_changed_rerun_is_refused_naming_what_differs(revised):
    proc = revised["refused"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"refused: this run would change the published {QUARTER}")
    assert "--revise" in proc.stderr and "--force" in proc.stderr
    assert "tables/metrics/cdiff.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert revised["after_refusal"] == revised["first"], "the published quarter is untouched"


def test_revise_publishes_a_revisions_table_and_marks(revised):
    proc, out = revised["revise"], revised["out"]
    assert proc.returncode == 0, proc.stderr
    assert "revised figures listed in tables/revisions.csv" in proc.stdout
    folder = out / QUARTER
    revs = pd.read_csv(folder / "tables" / "revisions.csv", dtype=str, keep_default_na=False)
    assert list(revs.columns) == ["quarter", "table", "trust_code", "metric_id", "quantity", "previous", "revised"]
    hit = revs[(revs["table"] == "metrics/cdiff") & (revs["trust_code"] == CHANGED_CODE)
               & (revs["quantity"] == "numerator")]
    assert hit[["previous", "revised"]].values.tolist() == [[revised["old"], revised["new"]]]
    assert {"value", "score"} <= set(revs.loc[revs["trust_code"] == CHANGED_CODE, "quantity"])
    assert (revs["quarter"] == QUARTER).all()
    cdiff = pd.read_csv(folder / "tables" / "metrics" / "cdiff.csv").set_index("trust_code")
    assert cdiff.loc[CHANGED_CODE, "revision"].startswith("[r] ") and "numerator" in cdiff.loc[CHANGED_CODE, "revision"]
    assert pd.api.types.is_float_dtype(cdiff["numerator"]) and pd.api.types.is_float_dtype(cdiff["value"]), \
        "no marks in numeric columns"
    unrevised = set(cdiff.index) - set(revs.loc[revs["table"] == "metrics/cdiff", "trust_code"])
    assert cdiff.loc[sorted(unrevised), "revision"].isna().all()
    league = pd.read_csv(folder / "tables" / "league_table_full.csv")
    assert "revision" in league.columns
    assert "tables/revisions.csv" in (folder / "index.html").read_text(encoding="utf-8"), "the report shows them"
    superseded = tree(out / ".superseded" / f"{QUARTER}.1")
    assert superseded == revised["first"], "the superseded version is kept, byte for byte"


def test_rerun_of_a_revised_quarter_is_a_noop(revised):
    out = revised["out"]
    before = tree(out / QUARTER)
    proc = run_quarter(data=revised["data_b"], out=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unchanged:"), proc.stdout
    assert tree(out / QUARTER) == before


def test_killed_runs_leave_the_published_quarter_intact_then_force_replaces(revised, data):
    """kill -9 of the whole process group at random points of a run that would replace the quarter (--force, no
    cache): the published quarter stays byte-identical and no partial quarter appears. Then the same --force run,
    to completion: it cleans up the killed runs' staging, replaces the quarter and keeps the superseded copy."""
    import psutil

    out = revised["out"]
    before = tree(out / QUARTER)
    quarters_before = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    cmd = [sys.executable, str(ROOT / "run_quarter.py"), QUARTER, "--out", str(out), "--no-progress", "--data",
           str(data), "--metrics", METRICS, "--force"]
    finished = False
    for seed in (1, 2, 3, 4):
        delay = random.Random(seed).uniform(0.5, 12.0)
        proc = subprocess.Popen([*cmd, "--no-cache"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(delay)
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        for k in kids:  # the kernels run in sessions of their own
            try:
                k.kill()
            except psutil.NoSuchProcess:
                pass
        after = tree(out / QUARTER)
        if proc.returncode == 0:  # it finished before the kill: the new version, complete
            finished = True
            before = after
            continue
        assert after == before, f"seed {seed} (killed after {delay:.1f} s): the published quarter changed"
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == quarters_before
    n = len(list((out / ".superseded").iterdir()))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not list(out.glob(".staging-*")) and not list(out.glob(".publishing-*")), "stale staging cleaned up"
    def published_part(t):  # executed notebooks carry run metadata; the manifest run times
        return {k: v for k, v in t.items() if not k.startswith("notebooks/") and k != "manifest.json"}

    assert published_part(tree(out / QUARTER)) == published_part(revised["first"]), "back to the first version"
    assert not (out / QUARTER / "tables" / "revisions.csv").exists()
    if not finished:
        assert "the previous version is kept under .superseded/" in proc.stdout
        assert tree(out / ".superseded" / f"{QUARTER}.{n + 1}") == before


# ------------------------------------------------------------------------------- atomic publishing, in-process
def _version(folder: Path, text: str) -> Path:
    (folder / "tables").mkdir(parents=True)
    (folder / "index.html").write_text(text, encoding="utf-8")
    (folder / "tables" / "t.csv").write_text(text, encoding="utf-8")
    (folder / "manifest.json").write_text(f'{{"v": "{text}"}}', encoding="utf-8")
    return folder


@pytest.mark.parametrize("exchange", [True, False])
def test_publish_interrupted_between_its_steps_is_recovered(tmp_path, monkeypatch, exchange):
    from leaguetables import publish

    out = tmp_path / "reports"
    target = _version(out / QUARTER, "v1")
    staging = _version(publish.staging_path(out, QUARTER), "v2")
    real_rename = os.rename
    calls = []

    def dying_rename(a, b):
        calls.append((a, b))
        if len(calls) == (1 if exchange else 2):
            raise SystemExit("killed")  # the process dies between the two steps
        return real_rename(a, b)

    if not exchange:
        monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    monkeypatch.setattr(publish.os, "rename", dying_rename)
    with pytest.raises(SystemExit):
        publish.publish(staging, target)
    monkeypatch.setattr(publish.os, "rename", real_rename)
    assert (out / f".publishing-{QUARTER}.json").exists()
    if exchange:
        assert (target / "index.html").read_text() == "v2", "the exchange is atomic: the new version is in place"
    else:
        assert not target.exists()
    publish.cleanup_stale(out)
    assert (target / "index.html").read_text() == "v2"
    assert (out / ".superseded" / f"{QUARTER}.1" / "index.html").read_text() == "v1"
    assert not staging.exists() and not (out / f".publishing-{QUARTER}.json").exists()


def test_stale_staging_of_a_live_run_is_left_alone(tmp_path):
    from leaguetables import publish

    out = tmp_path / "reports"
    out.mkdir()
    live = _version(publish.staging_path(out, QUARTER), "live")
    stale = _version(publish.staging_path(out, "2025-26-Q3"), "stale")
    with publish.quarter_lock(out, QUARTER):  # a run of Q4 in progress
        publish.cleanup_stale(out)
        assert live.exists() and not stale.exists()
        with pytest.raises(publish.LockBusy):
            with publish.quarter_lock(out, QUARTER):
                pass
