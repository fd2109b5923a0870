"""Shared fixtures: the demo data (generated once per session into a temporary folder) and paths."""

from __future__ import annotations

import ast
import gc
import hashlib
import inspect
import json
import os
import re
import resource
import shutil
import tempfile
import textwrap
import time
from functools import cache
from pathlib import Path

import demo_stamp
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = (ROOT / ".." / "shared" / "data" / "real").resolve()


# ------------------------------------------------------------------------------------------------------- test groups
# Every test is in exactly one group, chosen at collection (README, "Tests"): ``e2e`` when it, a helper of its
# module that it calls, or a fixture it uses runs the pipeline end to end (run_quarter.py, pipeline.run/build),
# executes a notebook, drives the browser, starts Spark (a JVM) or reads a published-quarter fixture; ``unit``
# otherwise. A test can also be marked ``@pytest.mark.e2e`` or ``@pytest.mark.unit`` by hand, which wins.
E2E_SIGNS = re.compile(
    r"run_quarter"  # the command line, or a helper that runs it
    r"|\bpipeline\.(?:run|build)\b|pipeline import [^\n]*\b(?:run|build)\b"  # the pipeline in-process
    r"|\bimport papermill|\bpapermill\.|from papermill|execute_notebook|NotebookClient|\bnbclient\b"  # notebooks
    r"|\bworker\.execute\(|Worker\([^)]*\)\.execute\("  # a notebook executed by a kernel worker (run.kernels)
    r"|find_chromium|publication\.browser|publication import [^\n]*\bbrowser\b|playwright"  # the browser
    r"|\bpublished_quarters\b"  # the published demo quarters (conftest fixture)
    r"|local_spark_session"  # a Spark session (a JVM in local mode)
)


def assert_refused_edits(load, path: Path, cases) -> None:
    """Each ``(text, message)`` of ``cases`` written to ``path`` makes ``load(path)`` raise an InputError that
    matches ``message`` and names the file (the configuration loaders' one-line errors)."""
    from leaguetables.errors import InputError  # noqa: PLC0415 - conftest imports no project code at collection

    for text, message in cases:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message) as exc:
            load(path)
        assert str(path) in str(exc.value)


@cache
def _own_sign(fn) -> tuple[bool, tuple]:
    """(an end-to-end sign in ``fn``'s own source, the functions of its module that it names)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False, ()
    for node in ast.walk(tree):  # the code only: no docstrings (nor comments, which unparse drops)
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    source = ast.unparse(tree)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    scope = getattr(fn, "__globals__", {})
    helpers = tuple(
        scope[n] for n in sorted(names) if inspect.isfunction(scope.get(n)) and scope[n].__module__ == fn.__module__
    )
    return bool(E2E_SIGNS.search(source)), helpers


def _runs_end_to_end(fn) -> bool:
    """Whether ``fn`` or a function of its own module that it names (transitively) shows an end-to-end sign."""
    seen, todo = set(), [fn]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        sign, helpers = _own_sign(f)
        if sign:
            return True
        todo += helpers
    return False


def _is_e2e(item: pytest.Item) -> bool:
    if item.get_closest_marker("e2e"):
        return True
    if item.get_closest_marker("unit") or not isinstance(item, pytest.Function):
        return False
    fns = [item.function]
    for defs in item._fixtureinfo.name2fixturedefs.values():  # every fixture the test uses, directly or not
        fns += [d.func for d in defs if d.baseid]  # not pytest's own (tmp_path, monkeypatch, …)
    return any(_runs_end_to_end(getattr(f, "__wrapped__", f)) for f in fns)


# ------------------------------------------------------------------------------------------- xdist: groups and order
# `make test` runs each group with ``-n 2 --dist loadgroup --no-loadscope-reorder``: tests are handed out one at a
# time in the order below, except that the tests of one xdist group run on one worker. A test joins a group when it
# uses an expensive shared fixture, so that the fixture is built once rather than on both workers (or built on one
# while the other waits for its lock): the published demo quarters (session) or a module-scoped fixture of its own
# module. A module that sets ``XDIST_SPREAD = True`` keeps its tests spread over both workers (its fixture is cheap
# beside its tests). Without xdist the groups do nothing; the order is the same.
PUBLISHED_GROUP = "published_quarters"

# The longest tests and groups first, so that the two workers finish together (measured with --durations; a test not
# named here keeps its collection order after these). Each entry is the start of a node id.
LONGEST_FIRST = (
    # end-to-end (CPU seconds of each test with the processes it waited for, measured per test in a `make test-e2e`
    # run (-n 2) on the shared 2-core machine under heavy load (load average 6-8), 2 December 2026, issue 13, after
    # its third cuts; greedy longest-first handed the first and third to one worker, the others to the other, and
    # both ended within 6 s of each other)
    f"@{PUBLISHED_GROUP}",  # ~120: two ten-metric runs side by side (~50), papermill reruns (~28), browser, ODS
    "tests/test_rerun.py",  # ~110 (one group: its module fixture, the first publication of its three scenarios, and
    # the --isolated run of it, ~30)
    "tests/test_out_folder.py",  # ~105 (one group: its module fixture, two small runs; ~28 small runs, most restored)
    "tests/test_run_honesty.py::test_quarters_run_concurrently",  # ~60: five small runs, three then two side by side
    "tests/test_real_quarter.py",  # ~52 (one group; real data, skips without it)
    "tests/test_nof_source.py",  # ~40 (one group; real data)
    "tests/test_records_spark.py",  # ~3 in the worker and ~27 in its JVM (counted since issue 13: add_unwaited_cpu)
    "tests/test_run_honesty.py",  # ~12 (one group: its module fixture, one in-process run)
    "tests/test_pipeline.py",
    # (then test_bad_inputs.py's refusals: ~44 through run_quarter.main in-process, ~0.1 each, and six through the
    # command, ~1.6 each: they fill the workers' ends)
    # unit (CPU seconds per test, -p no:xdist on the shared machine under load, 2 December 2026, after issue 13's third
    # unit-group cuts; the session's demo data, ~8 when pytest's cache does not hold them, are built by the first test
    # that needs them: test_records_generate.py's group or another)
    "tests/test_validate.py",  # ~12 (one group: the study, 2 + 1 replicates)
    "tests/test_imports.py",  # ~7 (one group: two fresh interpreters importing every module; the cycle check ~0.6)
    "tests/test_records_bad_inputs.py::test_bad_record_input_command_line",  # ~5 (two subprocesses)
    "tests/test_sampling.py::test_simulation_change_test_size_and_power",  # ~4
    "tests/test_records_draws.py::test_draws_are_poisson_and_bernoulli_as_the_truth_states",  # ~4 (real data)
    "tests/test_demo.py::test_true_values_are_the_mean_of_the_simulated_counts",  # ~4
    "tests/test_nof_reconcile.py",  # ~4.5 (one group: its module fixture; real data)
    "tests/test_records_generate.py",  # ~3 (one group: reads the session's demo data, which it may build)
    "tests/test_demo_recovery.py",  # ~2.5 (one group: its module fixture)
    "tests/test_sampling_quasi_poisson.py::test_simulation_rank_interval_coverage",  # ~2.5
    "tests/test_productivity.py::test_simulation_england_total_unbiased",  # ~2
    "tests/test_expected_uncertainty.py::test_simulated_coverage_of_true_oe",  # ~2
    "tests/test_expected.py::test_oe_interval_covers_one_about_95pc_over_30_simulated_datasets",  # ~1.7 (two)
    "tests/test_sampling.py",
    "tests/test_sampling_streams.py",
    "tests/test_funnel_robust.py",
    "tests/test_charts.py",
    "tests/test_records_bad_inputs.py",
)


def _xdist_group(item: pytest.Item) -> str | None:
    if not isinstance(item, pytest.Function):
        return None
    defs = [d for ds in item._fixtureinfo.name2fixturedefs.values() for d in ds]
    if any(d.argname == "published_quarters" for d in defs):
        return PUBLISHED_GROUP
    module_id = item.nodeid.split("::", 1)[0]
    if getattr(item.module, "XDIST_SPREAD", False):
        return None
    if any(d.scope in ("module", "class") and d.baseid == module_id for d in defs):
        return module_id
    return None


def _rank(item: pytest.Item) -> int:
    group = next((m.args[0] for m in item.iter_markers("xdist_group") if m.args), None)
    for i, start in enumerate(LONGEST_FIRST):
        if item.nodeid.startswith(start) or (start.startswith("@") and group == start[1:]):
            return i
    return len(LONGEST_FIRST)


# The groups are a function of the test files alone (their code, fixtures and marks), but reading every test's
# source costs each collecting process about a second: the answer is kept in pytest's cache under the SHA-256 of
# every .py file under tests/, and recomputed for any test the cache does not know.
E2E_CACHE_KEY = "leaguetables/e2e-groups"


def _tests_sha256() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _e2e_items(config, items) -> dict[str, bool]:
    """{node id: whether the test is end-to-end} (:func:`_is_e2e`), from the cache when the test files are the
    same as when it was written (without the cache provider, ``-p no:cacheprovider``, every time)."""
    cache = getattr(config, "cache", None)
    key = _tests_sha256()
    known = cache.get(E2E_CACHE_KEY, {}) if cache is not None else {}
    seen = known.get("groups", {}) if known.get("tests_sha256") == key else {}
    result = {item.nodeid: seen[item.nodeid] if item.nodeid in seen else _is_e2e(item) for item in items}
    if cache is not None and not result.items() <= seen.items():
        cache.set(E2E_CACHE_KEY, {"tests_sha256": key, "groups": {**seen, **result}})
    return result


@pytest.hookimpl(wrapper=True)  # before every other hook: -m selects by these marks
def pytest_collection_modifyitems(config, items):
    groups = {}
    e2e = _e2e_items(config, items)
    for item in items:
        if e2e[item.nodeid]:
            if not item.get_closest_marker("e2e"):
                item.add_marker(pytest.mark.e2e)
        elif not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.unit)
        group = _xdist_group(item)
        if group is not None and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
        marked = next((m.args[0] for m in item.iter_markers("xdist_group") if m.args), None)
        if marked is not None:
            groups[item.nodeid] = str(marked)
    items.sort(key=_rank)  # stable: the collection order within each rank
    shared = os.environ.get(GROUPS_ENV)
    if shared and hasattr(config, "workerinput"):  # an xdist worker: tell the controller (see GroupScheduling)
        tmp = Path(f"{shared}.{config.workerinput['workerid']}")
        tmp.write_text(json.dumps(groups), encoding="utf-8")
        tmp.replace(shared)
    return (yield)


def pytest_collection_finish(session):
    """Once the test modules (and the libraries they import: pandas, scipy, statsmodels, matplotlib, …) are loaded,
    their objects are moved out of the garbage collector's reach (``gc.freeze``): they live as long as the process,
    yet every full collection during the tests walked them all again — about 6% of a worker's CPU, halved (measured
    with gc.callbacks on five simulation-heavy modules, 2 December 2026, issue 13). Garbage made before is collected
    first; nothing a test makes is frozen."""
    gc.collect()
    gc.freeze()


# pytest-xdist 3.8's own loadgroup appends the group to ``item._nodeid``, which pytest 9 no longer reads (node ids
# are ``item._id``), so every test was scheduled alone. The workers write {node id: group} to a file named by
# GROUPS_ENV (set by the controller before it starts them) once they have collected, and the controller's scheduler
# reads it when it schedules (after every worker has collected).
GROUPS_ENV = "LEAGUETABLES_XDIST_GROUPS"


def pytest_configure(config):
    if config.getoption("dist", "no") == "loadgroup" and not hasattr(config, "workerinput"):
        folder = tempfile.mkdtemp(prefix="xdist-groups-")
        os.environ[GROUPS_ENV] = str(Path(folder) / "groups.json")
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown (and never called) under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist", "no") != "loadgroup" or GROUPS_ENV not in os.environ:
        return None
    from xdist.scheduler import LoadGroupScheduling  # here: xdist is only needed when it runs the tests

    class GroupScheduling(LoadGroupScheduling):
        """xdist's loadgroup with the groups read from the workers' file."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                path = Path(os.environ[GROUPS_ENV])
                self.groups = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return GroupScheduling(config, log)


# ------------------------------------------------------------------------------------------------ time and CPU
# The summary ends with the run's wall time and CPU seconds (user + system of pytest, its xdist workers and every
# process they waited for: run_quarter.py, notebook kernels, browsers), and per worker its CPU seconds and when it
# finished its last test — which worker finished last, and whether the two were balanced (`make test` prints it for
# each group). Measurements, not assertions: no test depends on them.
_CLOCK: dict = {"start": time.time(), "workers": {}}


# CPU seconds of child processes no test waits for, which getrusage never sees: the Spark driver's JVM (it lives until
# its pytest process exits), read from /proc by the fixture that started it just before it stops (add_unwaited_cpu)
_UNWAITED = {"cpu": 0.0}


def add_unwaited_cpu(pid: int) -> None:
    """Count the CPU seconds (user + system, with those of its waited-for children) process ``pid`` has used so far,
    a child no test waits for (Linux's /proc; elsewhere nothing is counted)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return
    _UNWAITED["cpu"] += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def _cpu_seconds(children: bool = True) -> float:
    """CPU seconds (user + system) of this process and (``children``) of the child processes it has waited for, or
    whose CPU a fixture counted (:func:`add_unwaited_cpu`)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + (kids.ru_utime + kids.ru_stime + _UNWAITED["cpu"] if children else 0.0)


# ------------------------------------------------------------------------------------------------- kernel server
# The session's runs fork their warm kernels from one kernel server (leaguetables.run.kernel_server), started by the
# controller (or the only process, without xdist) before any worker and stopped at the end; the environment variable
# names its socket, so every run_quarter.py subprocess and in-process run of either worker uses it. A server holding
# other code than a run's is not used (the run starts its kernel), so a session never tests stale code.
# The unit group (-m unit) executes no notebook and starts none. LEAGUETABLES_TEST_KERNEL_SERVER=0 runs the session
# without one (every kernel started, as without the variable).
# The server is no one's child: its CPU seconds, with those of the kernels it forked, are its reply to `stop`, added
# to the session's total and shown apart from the workers'.
TEST_SERVER_ENV = "LEAGUETABLES_TEST_KERNEL_SERVER"


def _start_kernel_server(config) -> None:
    from leaguetables.run import kernel_server

    if os.environ.get(TEST_SERVER_ENV, "1") == "0" or config.getoption("markexpr", "") == "unit":  # no notebook
        os.environ.pop(kernel_server.ENV, None)
        return
    folder = tempfile.mkdtemp(prefix="ltks-")
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    path = os.path.join(folder, "kernels.sock")
    try:
        kernel_server.start(path, idle=900)  # gone 15 min after a killed session
    except (OSError, RuntimeError, ValueError) as exc:  # the session runs without it (every kernel started)
        print(f"note: no kernel server for this session: {exc}")
        os.environ.pop(kernel_server.ENV, None)
        return
    os.environ[kernel_server.ENV] = path
    _CLOCK["server"] = path


def _stop_kernel_server() -> None:
    from leaguetables.run import kernel_server

    path = _CLOCK.pop("server", None)
    if path is not None:
        reply = kernel_server.stop(path) or {}
        _CLOCK["server_cpu"], _CLOCK["server_forked"] = reply.get("cpu", 0.0), reply.get("forked", 0)


def pytest_sessionstart(session):
    _CLOCK["start"] = time.time()
    if not hasattr(session.config, "workerinput"):  # not an xdist worker: the controller, or the only process
        _start_kernel_server(session.config)


def pytest_sessionfinish(session):
    out = getattr(session.config, "workeroutput", None)
    if out is not None:  # an xdist worker: its CPU seconds go back to the controller
        out["cpu_seconds"] = _cpu_seconds()
    else:
        _stop_kernel_server()


def pytest_runtest_logreport(report):
    node = getattr(report, "node", None)  # set by xdist on the controller: the worker that ran the test
    if node is not None and report.when == "teardown":
        w = _CLOCK["workers"].setdefault(node.gateway.id, {"tests": 0})
        w["tests"] += 1
        w["last"] = time.time()


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_testnodedown(node, error):
    w = _CLOCK["workers"].setdefault(node.gateway.id, {"tests": 0})
    w["cpu"] = getattr(node, "workeroutput", {}).get("cpu_seconds")


def pytest_terminal_summary(terminalreporter):
    workers = _CLOCK["workers"]
    # the controller's own CPU and the workers' reports (not the controller's children: the workers, counted once)
    cpu = _cpu_seconds(children=not workers) + sum(w.get("cpu") or 0.0 for w in workers.values())
    server = _CLOCK.get("server_cpu")
    line = f"time: {time.time() - _CLOCK['start']:.0f} s wall, {cpu + (server or 0.0):.0f} CPU-s"
    for wid, w in sorted(workers.items()):
        last = f", last test ended at {w['last'] - _CLOCK['start']:.0f} s" if "last" in w else ""
        line += f"; {wid}: {w['tests']} tests, {w.get('cpu') or 0:.0f} CPU-s{last}"
    if server is not None:
        line += f"; kernel server: {_CLOCK.get('server_forked', 0)} kernels forked, {server:.0f} CPU-s with theirs"
    terminalreporter.write_line(line)


def real_data_or_skip(*parts: str) -> Path:
    """The path of a folder of ../shared/data/real, or skip the test with the reason."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (tests that read ../shared/data/real skip)")
    return path


def _shared_root(tmp_path_factory) -> Path:
    """The session's temporary folder shared by the xdist workers (each worker's own is a subfolder of it). Not
    xdist's ``worker_id`` fixture, which does not exist under ``-p no:xdist``."""
    worker = "PYTEST_XDIST_WORKER" in os.environ
    return tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()


def _cached_demo(config, folder: Path) -> None:
    """Write the demo data into ``folder``: copied from pytest's cache (``.pytest_cache``) when a session has already
    made them for this :func:`demo_stamp.fingerprint` — the unit and end-to-end groups of ``make test``, and each
    rerun of a group, make them once —, or from ``data/demo`` when this code made it there
    (:func:`demo_stamp.made_with`: ``make test`` on a fresh clone), else generated (~9 CPU-s); kept in pytest's
    cache (only the latest)."""
    from leaguetables.inputs import demo

    fp = demo_stamp.fingerprint()
    store = config.cache.mkdir("leaguetables-demo") if getattr(config, "cache", None) is not None else None
    kept = store / fp if store is not None else None
    if kept is not None and kept.is_dir():
        shutil.copytree(kept, folder, dirs_exist_ok=True)
        return
    if demo_stamp.made_with(demo_stamp.DEMO, fp):
        shutil.copytree(demo_stamp.DEMO, folder, dirs_exist_ok=True)
    else:
        demo.write(folder)
    if kept is None:
        return
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
    shutil.copytree(folder, tmp, dirs_exist_ok=True)
    for old in store.iterdir():
        if old.is_dir() and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(kept)  # atomic: a session reading the store sees the whole folder or none
    except OSError:  # another session kept the same data meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, pytestconfig) -> Path:
    """The demo data (fixed seed), written once per test session and shared by the xdist workers (the first worker
    writes it under a lock file, the others reuse it; :func:`_cached_demo` copies the previous session's when nothing
    they depend on changed). Tests read it and never write into it (they copy it)."""
    import fcntl

    root = _shared_root(tmp_path_factory)
    folder, done = root / "demo-data", root / "demo-data.complete"
    with open(root / "demo-data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            _cached_demo(pytestconfig, folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def demo_inputs(demo_dir):
    from leaguetables.config import load_catalogue
    from leaguetables.inputs.contract import load_inputs

    return load_inputs(demo_dir, load_catalogue("demo"))


# ------------------------------------------------------------------------------------------- published demo quarters
PUBLISHED_QUARTER = "2025-26-Q4"
# all three trust types, adjusted metrics (coefficients), a bracket metric, the finance group, and two costed
# efficiency metrics (productivity opportunity): one acute only, one for every type
PUBLISHED_METRICS = (
    "ae_4hr,cdiff,staff_engagement,cqc_safe,finance_plan,finance_variance,mh_crisis_24h,"
    "amb_cat2_mean,los_emergency,sickness_absence"
)


def _run_quarter(quarter: str, demo_dir: Path, out: Path, *extra: str, kernel_server: bool = True):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if kernel_server or k != "LEAGUETABLES_KERNEL_SERVER"}

    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_quarter.py"),
            quarter,
            "--data",
            str(demo_dir),
            "--out",
            str(out),
            "--metrics",
            PUBLISHED_METRICS,
            "--no-progress",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="session")
def published_quarters(demo_dir, tmp_path_factory) -> tuple[Path, Path]:
    """``(first, second)``: the folders of the same demo quarter published twice, side by side, each into its own
    empty reports folder, both on warm kernels: two independent processes (each its own hash seed, its own kernels,
    no cache shared), the determinism proof of test_pipeline and test_publication. The first with the default
    options (two kernels), the second with ``--jobs 1``: its twelve notebooks one after the other on one kernel, the
    namespace reset before each, so that a state left by one notebook (of any of the ten metrics' kinds, the league
    or the report) that changed another's outputs would differ from the first run's other order; the number of
    kernels is no part of what a run publishes (nor of the manifest's defining part). The first asks the session's
    kernel server for its kernels (forked, with the libraries imported), the second starts its kernel as a process
    (as every run without ``LEAGUETABLES_KERNEL_SERVER``): the proof that a forked kernel computes what a started
    one does, and the default path's end-to-end test. Until issue 13's third round the second ran with ``--isolated`` (a fresh kernel per notebook:
    ~66 CPU-s against ~26) for test_notebook_interface's proof that no state leaks between notebooks, which is now
    made on a small run on one kernel (test_rerun.test_isolated_run_is_byte_identical_to_the_default_run: the four
    metric notebooks of different kinds, the league and the report). Movement since the previous quarter is computed
    from the inputs, so no previous quarter is published beside them (until issue 13 the demo Q3 was, a third
    ten-metric run, for one cross-check: the movement table against the previous quarter's published league table,
    now made on the corpus base by
    test_run_honesty.test_quarters_run_concurrently_read_no_other_quarters_outputs_and_verify).
    Built once per test session and shared by the xdist workers (the first worker builds under a lock file in the
    session's shared temporary folder, the others reuse it): the publication and browser tests read these folders
    and never write into them."""
    import fcntl
    import shutil

    root = _shared_root(tmp_path_factory)
    base = root / "published-quarters"
    done = base / "complete"
    with open(root / "published-quarters.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(base, ignore_errors=True)
            a, b = base / "a", base / "b"
            a.mkdir(parents=True)
            b.mkdir()
            procs = {  # independent: side by side; the first's kernels forked by the session's kernel server
                "a": _run_quarter(PUBLISHED_QUARTER, demo_dir, a),
                "b": _run_quarter(PUBLISHED_QUARTER, demo_dir, b, "--jobs", "1", kernel_server=False),
            }
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=900)
                assert proc.returncode == 0, err
                (base / f"{name}.stdout").write_text(out, encoding="utf-8")
            (base / "forked.json").write_text(json.dumps(_forked_kernels(procs)), encoding="utf-8")
            done.touch()
    return base / "a" / PUBLISHED_QUARTER, base / "b" / PUBLISHED_QUARTER


def _forked_kernels(procs: dict) -> dict | None:
    """{run name: the number of kernels the session's kernel server forked for it}, or None without a server."""
    from leaguetables.run import kernel_server

    path = os.environ.get(kernel_server.ENV)
    known = kernel_server.status(path) if path else None
    if known is None:
        return None
    return {name: known["served"].get(str(proc.pid), 0) for name, proc in procs.items()}


@pytest.fixture(scope="session")
def published_stdout(published_quarters) -> str:
    """What run_quarter.py printed when it published the first folder of ``published_quarters``."""
    return (published_quarters[0].parents[1] / "a.stdout").read_text(encoding="utf-8")
