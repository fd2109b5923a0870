"""Reruns of a published quarter: no-op, --verify, refusal, --revise (revisions table), --force, atomic publishing
under kill -9, and escaping of a hostile trust name in every published page.

A small quarter is published once for the module (``first_publication``) — the six-trust corpus base
(``tests/bad_inputs/base``: three acute, two mental health and community, one ambulance trust over two quarters), one
trust name full of HTML, with four metrics covering the three trust types — and each scenario reruns it step by step
in its own copy of that reports folder (cache included: its entries are keyed by content, not by path); the
in-process tests of publish/recover are fast.
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
from pathlib import Path

import pandas as pd
import pytest
from small_run import run_quarter_command

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "tests" / "bad_inputs" / "base"
QUARTER = "2025-26-Q4"
METRICS = "ae_4hr,cdiff,cqc_safe,amb_cat2_mean"
HOSTILE_CODE = "DEMO-A001"
HOSTILE_NAME = "<script>alert('pwned')</script> Corwick & <b>Holworth</b> \"Demo\" Trust"
CHANGED_CODE = "DEMO-A002"  # its cdiff numerator is changed by the tests that revise an input (17 in the base)

pytestmark = pytest.mark.slow


def run_quarter(*args: str, data: Path | None = None, out: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # one notebook kernel (--jobs 1): a second one costs a start-up and changes nothing these tests look at
    cmd = [
        sys.executable,
        str(ROOT / "run_quarter.py"),
        QUARTER,
        "--out",
        str(out),
        "--jobs",
        "1",
        "--no-progress",
        *args,
    ]
    if data is not None:
        cmd += ["--source", "files", "--data", str(data), "--catalogue", "demo", "--metrics", METRICS]
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


def hostile_data(folder: Path) -> Path:
    """The base data with a trust name full of HTML and JavaScript (valid input: it must be escaped, not refused)."""
    shutil.copytree(BASE, folder)

    def edit(d, r, header):
        if d["trust_code"] == HOSTILE_CODE:
            r[header.index("trust_name")] = HOSTILE_NAME

    _rewrite_csv(folder / "trusts.csv", edit)
    return folder


def publish_first(data: Path, out: Path) -> dict[str, bytes]:
    proc = run_quarter(data=data, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "executed 4 of 4 metric notebooks" in proc.stdout
    return tree(out / QUARTER)


@pytest.fixture(scope="module")
def first_publication(tmp_path_factory) -> tuple[Path, Path, dict[str, bytes]]:
    """``(data, reports folder, the published quarter's files)``: the base data with a hostile trust name
    (:func:`hostile_data`) published once into an empty reports folder. The scenarios copy the reports folder
    (:func:`copy_reports`) and read the data folder, never write it (check_verify_fails_after_an_input_value_changes
    puts its one edit back): the manifest records its path, which --verify and the up-to-date check read. The
    module's tests that use it run on one xdist worker, one after the other (tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("rerun")
    data = hostile_data(tmp / "data")
    out = tmp / "reports"
    return data, out, publish_first(data, out)


def copy_reports(first_publication, tmp_path: Path) -> Path:
    """A copy of the first publication's reports folder (published quarter, cache, store), for one scenario."""
    out = tmp_path / "reports"
    shutil.copytree(first_publication[1], out, symlinks=True)
    assert tree(out / QUARTER) == first_publication[2]
    return out


# The reruns form scenarios, each a sequence of steps on its own copy of the first publication.
def test_published_quarter_noop_escaping_and_verify(first_publication, tmp_path):
    data = first_publication[0]
    out = copy_reports(first_publication, tmp_path)
    check_noop_rerun_reuses_everything_and_changes_nothing(out, data)
    check_hostile_trust_name_is_escaped_in_every_page(out)
    check_verify_fails_after_an_input_value_changes(out, data)
    # check_verify_passes: on the quarter test_one_metric_changed_rerun_equals_a_cold_run republishes (since issue
    # 13; there its cold rerun is also what the republished quarter is compared with)


def test_changed_quarter_refused_revised_killed_and_forced(first_publication, tmp_path):
    data, _, first = first_publication
    out = copy_reports(first_publication, tmp_path)
    data_b = tmp_path / "data-b"
    shutil.copytree(data, data_b)
    old, new = change_cdiff(
        data_b, -10
    )  # 17 → 7 C. difficile cases: from the worst of the three acute trusts to the best
    check_a_changed_rerun_is_refused_naming_what_differs(out, data_b, first)
    check_revise_publishes_a_revisions_table_and_marks(out, data_b, first, old, new)
    check_rerun_of_a_revised_quarter_is_a_noop(out, data_b)
    check_killed_runs_leave_the_published_quarter_intact_then_force_replaces(out, data, first)


def test_one_metric_changed_rerun_equals_a_cold_run(first_publication, tmp_path):
    """After one metric's data changed, the rerun (--force) executes that metric's notebook and the later stages and
    reuses the other metric notebooks from the cache; what it publishes — every table, every HTML page, the
    spreadsheet — is byte-identical to a cold run of the changed data. The cold run is ``--verify``'s (it reruns every
    stage without the cache into a scratch folder and compares: every published file byte for byte but the executed
    notebooks, compared by their cell outputs, and the manifest, by what defines the run), which passes (exit 0,
    nothing left behind): one cold run for both claims, not a cold run into an empty folder beside a --verify of the
    untouched quarter (until issue 13)."""
    data = tmp_path / "data"
    shutil.copytree(first_publication[0], data)
    out = copy_reports(first_publication, tmp_path)
    change_cdiff(data, -10)
    proc = run_quarter("--force", data=data, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "executed 1 of 4 metric notebooks" in proc.stdout and "reused 3 metric notebooks" in proc.stdout
    published = tree(out / QUARTER)
    assert "index.html" in published and "tables/league_table_full.csv" in published
    assert any(k.startswith("notebooks/") for k in published) and "manifest.json" in published
    check_verify_passes_on_an_untouched_quarter(out)
    assert tree(out / QUARTER) == published, "--verify never publishes"


def _manifest_defining(folder: Path) -> dict:
    """The manifest without run times, the cache report and the checksums of the executed notebooks."""
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    m.pop("timings_seconds")
    m.pop("cache")
    m["outputs"] = {k: v for k, v in m["outputs"].items() if not k.startswith("notebooks/")}
    return m


def test_isolated_run_is_byte_identical_to_the_default_run(first_publication, tmp_path):
    """The first publication's inputs run again with ``--isolated`` (a fresh kernel per notebook, papermill's default
    engine) into an empty reports folder publish what the default run published on one warm kernel (``--jobs 1``:
    the four metric notebooks — a proportion, an adjusted rate with its model, a bracket metric, a mean: the three
    trust types —, then the league and the report, each after the others on the same kernel, its namespace reset):
    no state leaks from one notebook to the next. Every published file byte for byte, the manifest apart from run
    times and the cache report (no field says how it was run), the executed notebooks cell by cell (both engines
    coalesce each cell's streams); the default run's notebooks after the first ran on a reused kernel (reset cells),
    the isolated run's on fresh ones (none). (Made on the session's ten-metric demo quarter, a second run of it with
    --isolated at ~66 CPU-s, until issue 13's third round; that pair is now two warm runs, the second with its twelve
    notebooks on one kernel: the determinism proof of test_pipeline and test_publication, and a check of the same
    kind — one notebook's leftovers would change another's outputs — across the ten metrics' kinds.)"""
    from leaguetables.run.manifest import published_files
    from leaguetables.run.verify import compare_notebooks

    data, first_out, first = first_publication
    out = tmp_path / "isolated"
    proc = run_quarter("--isolated", data=data, out=out)
    assert proc.returncode == 0, proc.stderr
    default, isolated = first_out / QUARTER, out / QUARTER
    assert _manifest_defining(default) == _manifest_defining(isolated)
    notebooks = sorted((default / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == len(METRICS.split(",")) + 2
    resets = [p.name for p in notebooks if "kernel-reset" in p.read_text(encoding="utf-8")]
    assert len(resets) == len(notebooks) - 1, f"one kernel for every notebook of the default run: {resets}"
    assert not any("kernel-reset" in p.read_text(encoding="utf-8") for p in (isolated / "notebooks").glob("*"))
    files = [p.relative_to(default).as_posix() for p in published_files(default)]
    assert files == [p.relative_to(isolated).as_posix() for p in published_files(isolated)]
    different = [f for f in files if not f.startswith("notebooks/") and first[f] != (isolated / f).read_bytes()]
    assert not different, f"published files differ (--isolated vs warm): {different}"
    differing = {p.name: compare_notebooks(p, isolated / "notebooks" / p.name) for p in notebooks}
    differing = {k: v for k, v in differing.items() if v}
    assert not differing, f"executed notebooks' outputs differ (--isolated vs warm): {differing}"


def check_noop_rerun_reuses_everything_and_changes_nothing(out: Path, data: Path) -> None:
    """A no-op rerun is found up to date from the key its manifest records (run/uptodate.py), before the pipeline
    runs; without that key (a quarter published by an earlier version) the pipeline reuses every stage from the
    cache and finds the files identical. Either way nothing is written."""
    before = tree(out)
    proc = run_quarter(data=data, out=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"unchanged: {out / QUARTER / 'index.html'} is identical to this run")
    assert "up to date: its manifest records these inputs, code and configuration" in proc.stdout
    assert tree(out) == before, "a no-op rerun writes nothing (the manifest keeps the first run's timings)"
    manifest = out / QUARTER / "manifest.json"
    recorded = manifest.read_bytes()
    manifest.write_bytes(recorded.replace(b'"rerun_key": "', b'"rerun_key": "0', 1))  # not this run's key
    proc = run_quarter(data=data, out=out)
    manifest.write_bytes(recorded)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"unchanged: {out / QUARTER / 'index.html'} is identical to this run")
    assert "reused everything from the cache: 4 metric notebooks, league, report, publication" in proc.stdout
    assert tree(out) == before
    assert not list(out.glob(".staging-*"))


def check_hostile_trust_name_is_escaped_in_every_page(out: Path) -> None:
    pages = sorted((out / QUARTER).rglob("*.html"))
    assert len(pages) > 3
    assert "&lt;script&gt;alert(" in (out / QUARTER / "index.html").read_text(encoding="utf-8")
    profile = next(p for p in pages if p.name.startswith(HOSTILE_CODE))
    assert "&lt;script&gt;alert(" in profile.read_text(encoding="utf-8")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(" not in text and "<b>Holworth</b>" not in text, page.name
    table = pd.read_csv(out / QUARTER / "tables" / "league_table_full.csv").set_index("trust_code")
    assert table.loc[HOSTILE_CODE, "trust_name"] == HOSTILE_NAME, "kept as data in the tables"


def check_verify_passes_on_an_untouched_quarter(out: Path) -> None:
    """--verify reruns the quarter from the inputs its manifest records, without the cache, and finds every
    published file the same (byte for byte; the executed notebooks by their cell outputs; the manifest by what
    defines the run)."""
    proc = run_quarter("--verify", out=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"verified: {out / QUARTER} is reproduced exactly")
    assert not list(out.glob(".staging-*"))


def check_verify_fails_after_an_input_value_changes(out: Path, data: Path) -> None:
    original = (data / "observations.csv").read_bytes()
    before = tree(out / QUARTER)
    try:
        old, new = change_cdiff(data, 10)
        proc = run_quarter("--verify", out=out)
    finally:
        (data / "observations.csv").write_bytes(original)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert f"{data / 'observations.csv'} has changed since publication" in err
    assert "tables/metrics/cdiff.csv" in err
    line = next(x for x in err.splitlines() if f"row trust_code={CHANGED_CODE}, metric_id=cdiff:" in x)
    assert f"numerator {old} → {new}" in line
    assert tree(out / QUARTER) == before, "--verify never publishes"


def check_a_changed_rerun_is_refused_naming_what_differs(out: Path, data_b: Path, first: dict) -> None:
    proc = run_quarter(data=data_b, out=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"refused: this run would change the published {QUARTER}")
    assert "--revise" in proc.stderr and "--force" in proc.stderr
    assert "tables/metrics/cdiff.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(out / QUARTER) == first, "the published quarter is untouched"


def check_revise_publishes_a_revisions_table_and_marks(
    out: Path, data_b: Path, first: dict, old: str, new: str
) -> None:
    proc = run_quarter("--revise", data=data_b, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "revised figures listed in tables/revisions.csv" in proc.stdout
    folder = out / QUARTER
    revs = pd.read_csv(folder / "tables" / "revisions.csv", dtype=str, keep_default_na=False)
    assert list(revs.columns) == ["quarter", "table", "trust_code", "metric_id", "quantity", "previous", "revised"]
    hit = revs[
        (revs["table"] == "metrics/cdiff") & (revs["trust_code"] == CHANGED_CODE) & (revs["quantity"] == "numerator")
    ]
    assert hit[["previous", "revised"]].values.tolist() == [[old, new]]
    assert {"value", "score"} <= set(revs.loc[revs["trust_code"] == CHANGED_CODE, "quantity"])
    assert (revs["quarter"] == QUARTER).all()
    cdiff = pd.read_csv(folder / "tables" / "metrics" / "cdiff.csv").set_index("trust_code")
    assert cdiff.loc[CHANGED_CODE, "revision"].startswith("[r] ") and "numerator" in cdiff.loc[CHANGED_CODE, "revision"]
    # numbers read back as numbers (the base's counts are whole, with none missing: integers)
    assert pd.api.types.is_numeric_dtype(cdiff["numerator"]) and pd.api.types.is_float_dtype(cdiff["value"]), (
        "no marks in numeric columns"
    )
    unrevised = set(cdiff.index) - set(revs.loc[revs["table"] == "metrics/cdiff", "trust_code"])
    assert cdiff.loc[sorted(unrevised), "revision"].isna().all()
    league = pd.read_csv(folder / "tables" / "league_table_full.csv")
    assert "revision" in league.columns
    assert "tables/revisions.csv" in (folder / "index.html").read_text(encoding="utf-8"), "the report shows them"
    assert tree(out / ".superseded" / f"{QUARTER}.1") == first, "the superseded version is kept, byte for byte"


def check_rerun_of_a_revised_quarter_is_a_noop(out: Path, data_b: Path) -> None:
    before = tree(out / QUARTER)
    proc = run_quarter(data=data_b, out=out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unchanged:"), proc.stdout
    assert tree(out / QUARTER) == before


def check_killed_runs_leave_the_published_quarter_intact_then_force_replaces(
    out: Path, data: Path, first: dict
) -> None:
    """kill -9 at named stages of a run that would replace the quarter (--force; the process kills itself
    with SIGKILL at the stage named by LEAGUETABLES_KILL_AT, see publish.checkpoint): in the middle of the metric
    notebooks (one finished, the others running: --no-cache, so that they run) and in the middle of publishing
    (journal written, nothing exchanged yet: the stages before it restored from the cache, as they are the same with
    or without it; it publishes, and so reaches the journal, because its outputs differ from the revised quarter). The published quarter stays byte-identical and no partial quarter appears. Then the same --force
    run, to completion: it cleans up the killed runs' staging, replaces the quarter and keeps the superseded copy.
    (tests/test_out_folder.py kills at every named stage.)"""
    before = tree(out / QUARTER)
    quarters_before = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    cmd = run_quarter_command(QUARTER, data, out, "--force", metrics=METRICS, jobs=None)
    for stage, no_cache in (("metric-done", ["--no-cache"]), ("publish-journal", [])):
        proc = subprocess.run(
            [*cmd, *no_cache],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "LEAGUETABLES_KILL_AT": stage},
        )
        assert proc.returncode == -signal.SIGKILL, f"{stage}: {proc.stderr[-2000:]}"
        assert tree(out / QUARTER) == before, f"killed at {stage}: the published quarter changed"
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == quarters_before
    n = len(list((out / ".superseded").iterdir()))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not list(out.glob(".staging-*")) and not list(out.glob(".publishing-*")), "stale staging cleaned up"

    def published_part(t):  # executed notebooks carry run metadata; the manifest run times
        return {k: v for k, v in t.items() if not k.startswith("notebooks/") and k != "manifest.json"}

    assert published_part(tree(out / QUARTER)) == published_part(first), "back to the first version"
    assert not (out / QUARTER / "tables" / "revisions.csv").exists()
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
    from leaguetables.run import publish

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
    from leaguetables.run import publish

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
