"""The fixed cost of one small run of ``run_quarter.py``, as the end-to-end tests make them (issue 13).

    .venv/bin/python benchmarks/bench_small_run.py [--repeat 3]

The runs of the end-to-end tests are small: the six-trust corpus base (``tests/bad_inputs/base``), three metrics,
one notebook kernel (``--jobs 1``). Their cost is mostly what does not scale with the data — interpreter starts,
imports in the run's process and in its kernel, the kernel's start — so this measures, ``--repeat`` times each
(interleaved, so that the machine's load falls on all alike), the CPU seconds of the whole process tree (the run and
every process it waited for, its kernel included: ``getrusage(RUSAGE_CHILDREN)``) and the wall time of:

1. **cold**: the small run into an empty reports folder (every stage executed);
2. **restored**: the same run again with ``--force`` (every stage restored from the cache, the outputs compared
   with the published quarter: nothing to publish), as the kill and recovery tests of tests/test_out_folder.py make;
3. **refused**: a run refused by the contract (a column missing from trusts.csv): exit 2, one line, as
   tests/test_bad_inputs.py's command cases make.

Each kind is measured without a kernel server (every kernel started, as the runs of a plain command) and with one
(``leaguetables.run.kernel_server``, as the test session's runs: the kernel forked from it; its CPU, counted by the
server, added to the run's; the server's own start, ~3 CPU-s once per session, not included).

Not a test: wall times on a shared machine vary with its load (printed); CPU times vary less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from small_run import BASE, METRICS, ROOT, run_quarter_command  # noqa: E402  # the end-to-end tests' command

from leaguetables.run import kernel_server  # noqa: E402

QUARTER = "2025-26-Q4"


def command(data: Path, out: Path, *extra: str) -> list[str]:
    return run_quarter_command(QUARTER, data, out, *extra)


def measure(cmd: list[str], expect: int) -> tuple[float, float]:
    """(CPU seconds of the process tree, wall seconds) of one command, checked to exit with ``expect``."""
    before, t0 = kernel_server.children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, not {expect}:\n{proc.stderr[-2000:]}")
    return kernel_server.children_cpu_seconds() - before, wall


def one_round(tmp: Path, i: int) -> dict[str, tuple[float, float]]:
    out = tmp / f"reports-{i}"
    bad = tmp / f"bad-{i}"
    shutil.copytree(BASE, bad)
    trusts = bad / "trusts.csv"
    lines = trusts.read_text(encoding="utf-8").splitlines()
    trusts.write_text("\n".join(",".join(r.split(",")[:-1]) for r in lines) + "\n", encoding="utf-8")
    return {
        "cold": measure(command(BASE, out), 0),
        "restored": measure(command(BASE, out, "--force"), 0),
        "refused": measure(command(bad, tmp / f"refused-{i}"), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind (median reported)")
    args = ap.parse_args(argv)
    rounds: dict[str, list] = {"without a kernel server": [], "with a kernel server": []}
    os.environ.pop(kernel_server.ENV, None)
    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        path = os.path.join(tmp, "k.sock")
        kernel_server.start(path)
        try:
            for i in range(args.repeat):  # interleaved: the machine's load falls on both alike
                rounds["without a kernel server"].append(one_round(Path(tmp), 2 * i))
                os.environ[kernel_server.ENV] = path
                rounds["with a kernel server"].append(one_round(Path(tmp), 2 * i + 1))
                os.environ.pop(kernel_server.ENV)
        finally:
            kernel_server.stop(path)
    print(f"small run: {QUARTER}, tests/bad_inputs/base (six trusts), --metrics {METRICS} --jobs 1")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    for label, measured in rounds.items():
        print(f"{label}:\n{'run':10s} {'CPU-s (median)':>15s} {'wall s (median)':>16s}   CPU-s of each")
        for kind in ("cold", "restored", "refused"):
            cpu = [r[kind][0] for r in measured]
            wall = [r[kind][1] for r in measured]
            each = ", ".join(f"{c:.2f}" for c in cpu)
            print(f"{kind:10s} {statistics.median(cpu):15.2f} {statistics.median(wall):16.2f}   {each}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
