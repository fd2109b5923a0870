"""Record-level indicators at national scale: DuckDB against plain pandas, in one run.

    .venv/bin/python benchmarks/bench_record_level.py [--extract DIR] [--generate] [--quarter 2025-26-Q4]
        [--threads 2] [--memory-limit 3GB] [--pandas-fractions 0.025,0.1,0.25,0.5,1]

1. The national synthetic extract (``python -m leaguetables.inputs.records.generate --scale national``, the natgen
   generator: ≈ 21 M APC episodes, 27 M A&E and 11 M outpatient attendances over a financial year, hive-partitioned
   Parquet, one file per ICB and quarter) is generated once into ``--extract`` when it is missing or ``--generate``
   is given (timed).
2. DuckDB (``threads`` and ``memory_limit`` set): the contract's validation of every row of the three datasets, then
   every indicator of the quarter (``indicators.compute_indicators``: SQL counts, SHMI models, ICB standardisation);
   validation and indicators are timed apart (wall and CPU). On the full synthetic extract (``truth/`` present) the
   truth recovery of the same indicators is printed after the timing.
3. pandas: the same work in plain pandas — the contract's validation of every row (``pandas_contract``: the same
   checks and one-line errors, vectorised over each column's distinct values; the key and patient id row by row),
   then the same indicators (``pandas_reference``; like the SQL, only the quarter's patients' episodes go into the
   spells; the same Python for the models and standardisation) — on growing fractions of the extract (whole ICB
   files). Reading the files, the checks and the indicators are timed apart. pandas stops at the first fraction
   whose peak memory passes ``--peak-limit-mb`` or that fails; with ``--pandas-past-limit`` it goes on past the budget
   (to see how the ratio grows) while the machine's available memory (``MemAvailable``) is at least
   ``--min-free-gb`` and 1.3 times the memory the last fraction's peak implies, and stops otherwise. DuckDB is run on the
   same fractions for the speed ratios: validation and indicators on both sides (the whole run), and the indicators
   alone on both sides (pandas: reading the files and the indicators; DuckDB: the indicators, which read the
   Parquet files again).

Every measurement runs in a fresh child process, which reports its wall time, CPU time, peak resident memory
(``resource.getrusage``) and the machine's 1-minute load average at its end. Prints a table and writes it to ``benchmarks/results/record_level.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXTRACT = Path("/tmp/records-national")
QUARTER = "2025-26-Q4"


# ------------------------------------------------------------------------------------------------ child processes
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (user + system, every thread): on a shared machine the wall time depends on the
    other jobs, the CPU time much less; on 2 free cores the wall time is at least half of it."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_duckdb(root: Path, quarter: str, threads: int, memory: str) -> dict:
    from leaguetables.inputs.records import contract, indicators, recovery

    t0, c0 = time.perf_counter(), _cpu_s()
    with tempfile.TemporaryDirectory(prefix="rec-duckdb-") as tmp:
        con = contract.connect(
            threads=threads, memory_limit=memory, database=Path(tmp) / "records.duckdb", temp_directory=tmp
        )
        records = contract.load_records(root, con=con)
        t1, c1 = time.perf_counter(), _cpu_s()
        ind = indicators.compute_indicators(records, quarter)
        t2, c2 = time.perf_counter(), _cpu_s()
        con.close()
    out = {
        "rows": records.rows,
        "validate_s": t1 - t0,
        "validate_cpu_s": c1 - c0,
        "indicators_s": t2 - t1,
        "indicators_cpu_s": c2 - c1,
        "wall_s": t2 - t0,
        "cpu_s": c2 - c0,
        "peak_mb": _peak_mb(),
        "observations": len(ind.observations),
        "load": os.getloadavg()[0],
    }
    if (root / "truth" / "ratios.csv").is_file() and (root / "registers").is_dir():  # after the timing: the study
        out["recovery"] = recovery.recovery(root, ind).to_dict("records")
    return out


def child_pandas(root: Path, quarter: str) -> dict:
    from leaguetables.inputs.records import contract, indicators, pandas_contract, pandas_reference, settings

    t0, c0 = time.perf_counter(), _cpu_s()
    raw = {name: pandas_contract.read_dataset(root, contract.DATASETS[name]) for name in ("apc", "op", "ae")}
    t1, c1 = time.perf_counter(), _cpu_s()
    tables = {name: pandas_contract.check_dataset(contract.DATASETS[name], *raw.pop(name)) for name in list(raw)}
    rows = {name: len(frame) for name, frame in tables.items()}
    # the indicators need only the contract columns (DuckDB's views carry the file and row too but never read them)
    tables = {name: frame.drop(columns=["source_file", "source_row"]) for name, frame in tables.items()}
    t2, c2 = time.perf_counter(), _cpu_s()
    cfg = settings.load_record_settings()
    residence, population = indicators.geography_for(root, cfg)
    counts = pandas_reference.run_counts_pandas(tables["apc"], tables["op"], tables["ae"], quarter, cfg, residence)
    ind = indicators.indicators_from_counts(quarter, counts, cfg, population)
    t3, c3 = time.perf_counter(), _cpu_s()
    return {
        "rows": rows,
        "read_s": t1 - t0,
        "read_cpu_s": c1 - c0,
        "validate_s": t2 - t1,
        "validate_cpu_s": c2 - c1,
        "indicators_s": t3 - t2,
        "indicators_cpu_s": c3 - c2,
        "wall_s": t3 - t0,
        "cpu_s": c3 - c0,
        "peak_mb": _peak_mb(),
        "observations": len(ind.observations),
        "load": os.getloadavg()[0],
    }


# ------------------------------------------------------------------------------------------------------- parent
def subset(extract: Path, fraction: float, into: Path) -> Path:
    """A view of the extract holding the files of the first ``fraction`` of its ICBs (symbolic links)."""
    if fraction >= 1:
        return extract
    icbs = sorted({p.stem for p in (extract / "apc").rglob("*.parquet")})
    keep = set(icbs[: max(1, round(fraction * len(icbs)))])
    for name in ("apc", "op", "ae"):
        for p in (extract / name).rglob("*.parquet"):
            if p.stem in keep:
                target = into / p.relative_to(extract)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(p)
    (into / "geography").symlink_to(extract / "geography")
    return into


def run_child(mode: str, root: Path, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--extract",
        str(root),
        "--quarter",
        args.quarter,
        "--threads",
        str(args.threads),
        "--memory-limit",
        args.memory_limit,
        "--peak-limit-mb",
        str(args.peak_limit_mb),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode < 0:
        return {"failed": f"killed by signal {-proc.returncode}", "returncode": proc.returncode}
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln] or proc.stderr.strip().splitlines()
        return {"failed": (errors or ["failed"])[-1][:200], "returncode": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(extract: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "leaguetables.inputs.records.generate", "--scale", "national", "--out", str(extract)],
        check=True,
    )
    return time.perf_counter() - t0


def available_gb() -> float:
    """The machine's available memory (``MemAvailable`` of /proc/meminfo), in GB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _row(engine: str, fraction: float, res: dict) -> dict:
    rows = res.get("rows", {})
    apc = rows.get("apc", 0)
    total = sum(rows.values()) if rows else 0
    wall = res.get("wall_s")

    def r(key: str, digits: int = 1) -> float | None:
        return round(res[key], digits) if key in res else None

    return {
        "engine": engine,
        "fraction": fraction,
        "apc_rows": apc,
        "all_rows": total,
        "wall_s": r("wall_s"),
        "cpu_s": r("cpu_s"),
        "read_s": r("read_s"),
        "read_cpu_s": r("read_cpu_s"),
        "validate_s": r("validate_s"),
        "validate_cpu_s": r("validate_cpu_s"),
        "indicators_s": r("indicators_s"),
        "indicators_cpu_s": r("indicators_cpu_s"),
        "peak_mb": round(res.get("peak_mb", 0)),
        "rows_per_s": round(total / wall) if wall else None,
        "rows_per_cpu_s": round(total / res["cpu_s"]) if res.get("cpu_s") else None,
        "load_1min": r("load"),
        "failed": res.get("failed", ""),
    }


def _speed_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per fraction both engines finished: pandas' wall and CPU time over DuckDB's, like for like — the whole run
    (validation and indicators on both sides) and the indicators alone on both sides (pandas: reading the files and
    the indicators; DuckDB: the indicators, which read the Parquet files themselves)."""
    ok = table[table["failed"] == ""]
    duck = ok[ok["engine"] == "duckdb"].set_index("fraction")
    pand = ok[ok["engine"] == "pandas"].set_index("fraction")
    both = duck.index.intersection(pand.index)
    d, p = duck.loc[both], pand.loc[both]
    p_ind_wall = p["read_s"].fillna(0) + p["indicators_s"]
    p_ind_cpu = p["read_cpu_s"].fillna(0) + p["indicators_cpu_s"]
    return pd.DataFrame(
        {
            "fraction": both,
            "wall_ratio": (p["wall_s"] / d["wall_s"]).round(2).to_numpy(),
            "cpu_ratio": (p["cpu_s"] / d["cpu_s"]).round(2).to_numpy(),
            "indicators_wall_ratio": (p_ind_wall / d["indicators_s"]).round(2).to_numpy(),
            "indicators_cpu_ratio": (p_ind_cpu / d["indicators_cpu_s"]).round(2).to_numpy(),
        }
    )


def _pandas_may_run(args: argparse.Namespace, fraction: float, last: tuple[float, float] | None) -> str:
    """'' when pandas may run on ``fraction``, else why not: past the memory budget only with --pandas-past-limit,
    and only while the machine has --min-free-gb available and 1.3 times what the last fraction's peak implies."""
    if last is None or last[1] <= args.peak_limit_mb:
        return ""
    if not args.pandas_past_limit:
        return f"peak {last[1]:.0f} MB at fraction {last[0]} > {args.peak_limit_mb:.0f} MB"
    need = max(args.min_free_gb, 1.3 * last[1] / 1024 * fraction / last[0])
    free = available_gb()
    return "" if free >= need else f"only {free:.1f} GB available (needs {need:.1f} GB)"


def parent(args: argparse.Namespace) -> int:
    extract = args.extract
    if args.generate or not (extract / "apc").is_dir():
        if extract.exists():
            shutil.rmtree(extract)
        print(f"generated the national extract in {generate(extract):.0f} s", flush=True)
    results: list[dict] = []
    last: tuple[float, float] | None = None  # (fraction, pandas' peak MB)
    for fraction in sorted(float(f) for f in args.pandas_fractions.split(",")):
        why = _pandas_may_run(args, fraction, last)
        if why:
            print(f"pandas stops before fraction {fraction}: {why}", flush=True)
            break
        with tempfile.TemporaryDirectory(prefix="rec-bench-") as tmp:
            root = subset(extract, fraction, Path(tmp))
            duck = run_child("duckdb", root, args)
            results.append(_row("duckdb", fraction, duck))
            print(results[-1], flush=True)
            pand = run_child("pandas", root, args)
            results.append(_row("pandas", fraction, pand))
            print(results[-1], flush=True)
        if "failed" in pand:
            print(f"pandas stops at fraction {fraction}: {pand['failed']}", flush=True)
            break
        last = (fraction, pand.get("peak_mb", 0.0))
    if not any(r["engine"] == "duckdb" and r["fraction"] >= 1 for r in results):
        national = run_child("duckdb", extract, args)
        results.append(_row("duckdb", 1.0, national))
        print(results[-1], flush=True)
        if "recovery" in national:
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print("truth recovery (the national quarter's indicators against truth/ratios.csv):")
                print(pd.DataFrame(national["recovery"]).to_string(index=False), flush=True)
    table = pd.DataFrame(results)
    speed = _speed_ratios(table)
    if not speed.empty:
        print(
            "pandas time / DuckDB time on the same fraction (whole run: validation + indicators on both sides; "
            "indicators: reading + indicators for pandas, indicators for DuckDB):"
        )
        print(speed.to_string(index=False))
    out = ROOT / "benchmarks" / "results" / "record_level.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", type=Path, default=DEFAULT_EXTRACT)
    ap.add_argument("--generate", action="store_true", help="regenerate the national extract")
    ap.add_argument("--quarter", default=QUARTER)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--memory-limit",
        default="2500MB",
        help="DuckDB's memory limit (default 2500MB: the process then stays under 3 GB)",
    )
    ap.add_argument(
        "--peak-limit-mb",
        type=float,
        default=3072,
        help="pandas stops at the first fraction whose peak resident memory passes this",
    )
    ap.add_argument("--pandas-fractions", default="0.025,0.1,0.25,0.5,1")
    ap.add_argument(
        "--pandas-past-limit",
        action="store_true",
        help="run pandas on larger fractions after one passes --peak-limit-mb (memory permitting)",
    )
    ap.add_argument(
        "--min-free-gb",
        type=float,
        default=14,
        help="with --pandas-past-limit: the available memory needed before pandas runs past the budget",
    )
    ap.add_argument("--child", choices=("duckdb", "pandas"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "duckdb":
        print(json.dumps(child_duckdb(args.extract, args.quarter, args.threads, args.memory_limit)))
        return 0
    if args.child == "pandas":
        print(json.dumps(child_pandas(args.extract, args.quarter)))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
