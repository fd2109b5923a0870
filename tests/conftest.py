"""Shared fixtures: the demo data (generated once per session into a temporary folder) and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = (ROOT / ".." / "shared" / "data" / "real").resolve()


def real_data_or_skip(*parts: str) -> Path:
    """The path of a folder of ../shared/data/real, or skip the test with the reason."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (tests that read ../shared/data/real skip)")
    return path


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from leaguetables.inputs import demo

    return demo.write(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_inputs(demo_dir):
    from leaguetables.config import load_catalogue
    from leaguetables.inputs.contract import load_inputs

    return load_inputs(demo_dir, load_catalogue("demo"))


# ------------------------------------------------------------------------------------------- published demo quarters
PUBLISHED_PREVIOUS, PUBLISHED_QUARTER = "2025-26-Q3", "2025-26-Q4"
# all three trust types, adjusted metrics (coefficients), a bracket metric, the finance group, and two costed
# efficiency metrics (productivity opportunity): one acute only, one for every type
PUBLISHED_METRICS = ("ae_4hr,cdiff,staff_engagement,cqc_safe,finance_plan,finance_variance,mh_crisis_24h,"
                     "amb_cat2_mean,los_emergency,sickness_absence")


def _run_quarter(quarter: str, demo_dir: Path, out: Path, *extra: str):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, str(ROOT / "run_quarter.py"), quarter, "--data", str(demo_dir), "--out",
                             str(out), "--metrics", PUBLISHED_METRICS, "--no-progress", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def published_quarters(demo_dir, tmp_path_factory, worker_id) -> tuple[Path, Path]:
    """``(first, second)``: the folders of the same demo quarter published twice, each beside the same published
    previous quarter (so with movement): the first on warm kernels (the default), the second with ``--isolated`` (a
    fresh kernel per notebook, papermill's default engine). Built once per test session and shared by the xdist workers (the first
    worker builds under a lock file in the session's shared temporary folder, the others reuse it): the publication
    and browser tests read these folders and never write into them."""
    import fcntl
    import shutil

    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    base = root / "published-quarters"
    done = base / "complete"
    with open(root / "published-quarters.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(base, ignore_errors=True)
            a, b = base / "a", base / "b"
            a.mkdir(parents=True)
            b.mkdir()
            for proc in [_run_quarter(PUBLISHED_PREVIOUS, demo_dir, a)]:
                _, err = proc.communicate(timeout=900)
                assert proc.returncode == 0, err
            shutil.copytree(a / PUBLISHED_PREVIOUS, b / PUBLISHED_PREVIOUS)
            procs = [_run_quarter(PUBLISHED_QUARTER, demo_dir, a),
                     _run_quarter(PUBLISHED_QUARTER, demo_dir, b, "--isolated")]
            for proc in procs:  # independent: run side by side
                _, err = proc.communicate(timeout=900)
                assert proc.returncode == 0, err
            done.touch()
    return base / "a" / PUBLISHED_QUARTER, base / "b" / PUBLISHED_QUARTER
