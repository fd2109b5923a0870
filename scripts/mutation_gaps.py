"""Apply each known one-line bug (a mutant) to the source, run the tests that must catch it, and restore the file.

The mutants are the bugs an audit of the tests found uncaught (issue 13): each is a plausible one-line slip in
the statistics, the manifest or ``--verify``. A mutant is *caught* when its tests fail with it applied (pytest
exit code 1) and pass without it. ``make mutation-gaps`` runs them all; the exit code is 1 if any mutant is
missed, its test fails on the unmutated code, or its text is no longer in the source (the code moved: update
the mutant here).

    python scripts/mutation_gaps.py                      # every mutant against its tests
    python scripts/mutation_gaps.py funnel-flag-at-limit  # one mutant
    python scripts/mutation_gaps.py --tests FILE…         # every mutant against other tests (e.g. the old suite)
    python scripts/mutation_gaps.py --list

The mutants are applied to a temporary copy of the project (src, tests, config, notebooks), never to the working
tree, so other runs and commits in it are not affected; the copy's tests run with ``PYTHONPATH`` pointing at the
copy's ``src`` and without bytecode files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "leaguetables"
GAPS = "tests/test_mutation_gaps.py"


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # relative to src/leaguetables
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail with the mutant applied
    what: str


MUTANTS = (
    Mutant(
        "funnel-flag-at-limit",
        "statistics/funnel.py",
        "high, low = rr > upper, rr < lower",
        "high, low = rr >= upper, rr < lower",
        (f"{GAPS}::test_a_value_on_a_funnel_limit_is_inside",),
        "funnel flag `>` → `>=` at the upper limit",
    ),
    Mutant(
        "funnel-flag-at-lower-limit",
        "statistics/funnel.py",
        "high, low = rr > upper, rr < lower",
        "high, low = rr > upper, rr <= lower",
        (f"{GAPS}::test_a_value_on_a_funnel_limit_is_inside",),
        "funnel flag `<` → `<=` at the lower limit",
    ),
    Mutant(
        "oe-confidence-not-passed",
        "statistics/expected.py",
        "confidence=m.confidence,\n                var_log_expected=se_log_e**2,",
        "var_log_expected=se_log_e**2,",
        (f"{GAPS}::test_the_oe_interval_of_a_fit_follows_its_confidence",),
        "ExpectedResults' O/E interval ignoring its confidence argument (the default 95% used)",
    ),
    Mutant(
        "oe-interval-count-at-95",
        "statistics/expected.py",
        "lp, upp = poisson_midp_limits(o[valid], confidence)",
        "lp, upp = poisson_midp_limits(o[valid])",
        (f"{GAPS}::test_oe_interval_at_a_given_confidence_is_the_mid_p_interval_of_o_over_e",),
        "oe_interval's count interval ignoring the confidence argument",
    ),
    Mutant(
        "national-rate-all-trusts",
        "statistics/expected.py",
        "return sum_o / float(m.denominator_by_trust.reindex(pd.Index(m.ok_trusts)).sum()) * m.multiplier",
        "return sum_o / float(m.denominator_by_trust.sum()) * m.multiplier",
        (f"{GAPS}::test_the_national_rate_is_pooled_over_the_fitted_trusts_only",),
        "the national rate (adjusted values) including the trusts excluded from the fit",
    ),
    Mutant(
        "national-count-all-trusts",
        "statistics/expected.py",
        "return sum_o / len(m.ok_trusts)",
        "return sum_o / len(m.trusts)",
        (f"{GAPS}::test_the_national_rate_is_pooled_over_the_fitted_trusts_only",),
        "the national mean count (no denominator) including the excluded trusts",
    ),
    Mutant(
        "manifest-without-ods",
        "run/manifest.py",
        "if p.is_file() and rel.parts[0] not in UNPUBLISHED and str(rel) not in VOLATILE:",
        'if p.is_file() and rel.parts[0] not in UNPUBLISHED and str(rel) not in VOLATILE and p.suffix != ".ods":',
        (f"{GAPS}::test_every_published_file_is_hashed_in_the_manifest_spreadsheet_included",),
        "`.ods` left out of the published files (manifest hashes, --verify)",
    ),
    Mutant(
        "verify-ignores-removed-rows",
        "run/verify.py",
        'details.append(f"row {label(k)}: removed")',
        "pass",
        (f"{GAPS}::test_verify_lists_added_and_removed_rows",),
        "--verify ignoring removed rows",
    ),
    Mutant(
        "verify-ignores-added-rows",
        "run/verify.py",
        'details.append(f"row {label(k)}: added")',
        "pass",
        (f"{GAPS}::test_verify_lists_added_and_removed_rows",),
        "--verify ignoring added rows",
    ),
    Mutant(
        "override-not-in-likely-ranges",
        "nof/scoring.py",
        "moved = _overridden(seg, in_deficit[cols][None, :], rules.from_segments)",
        "moved = _overridden(seg, in_deficit[cols][None, :], rules.from_segments) & False",
        (f"{GAPS}::test_the_financial_override_applies_in_every_bootstrap_replicate",),
        "the financial override left out of NHS England's likely-range bootstrap (scoring.joint_bootstrap)",
    ),
    Mutant(
        "override-not-in-sampling",
        "statistics/sampling.py",
        "sg = np.where(np.isin(sg, qd.override_from) & qd.in_deficit[cols][None, :], qd.override_to, sg)",
        "sg = np.where(np.isin(sg, qd.override_from) & qd.in_deficit[cols][None, :] & False, qd.override_to, sg)",
        (f"{GAPS}::test_the_financial_override_applies_in_every_bootstrap_replicate",),
        "the financial override left out of the sampling bootstrap (rank intervals, P(segment))",
    ),
    Mutant(
        "likely-range-level",
        "nof/scoring.py",
        "tail = (1 - level) / 2 * 100",
        "tail = (1 - level) * 100",
        (f"{GAPS}::test_the_likely_range_has_the_level_it_is_labelled_with",),
        "the likely range's percentiles not those of its labelled level (a 90% range labelled 95%)",
    ),
)


COPIED = ("src", "tests", "config", "notebooks", "run_quarter.py", "pyproject.toml", "requirements.lock")


def project_copy(dest: Path) -> Path:
    """A copy of what the tests read (no .venv, reports, data or caches) under ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def _pytest(copy: Path, args: list[str]) -> int:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(copy / "src")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider", "--no-header"]
    cmd += ["-o", "addopts=", *args]
    return subprocess.run(cmd, cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def run_mutant(copy: Path, m: Mutant, tests: list[str] | None = None) -> str:
    """``caught``, ``MISSED``, ``NOT APPLIED`` (text not found once) or ``ERROR`` (pytest could not run)."""
    path = copy / "src" / "leaguetables" / m.path
    original = path.read_bytes()
    text = original.decode("utf-8")
    if text.count(m.old) != 1:
        return f"NOT APPLIED ({m.old!r} occurs {text.count(m.old)} times in {m.path})"
    try:
        path.write_bytes(text.replace(m.old, m.new).encode("utf-8"))
        rc = _pytest(copy, list(tests or m.tests))
    finally:
        path.write_bytes(original)
    return {0: "MISSED", 1: "caught"}.get(rc, f"ERROR (pytest exit {rc})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    ap.add_argument("--tests", nargs="+", help="run these tests against every mutant instead of each one's own")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.ids or m.id in args.ids]
    if args.list or not chosen:
        for m in MUTANTS:
            print(f"{m.id:32} {m.path:26} {m.what}")
        return 0 if args.list else 2
    baseline = sorted({t for m in chosen for t in (args.tests or m.tests)})
    with tempfile.TemporaryDirectory(prefix="mutation-gaps-") as tmp:
        copy = project_copy(Path(tmp))
        if _pytest(copy, baseline) != 0:
            print(f"the tests fail without any mutant: {' '.join(baseline)}", file=sys.stderr)
            return 1
        bad = 0
        for m in chosen:
            result = run_mutant(copy, m, args.tests)
            bad += result != "caught"
            print(f"{result:8} {m.id:32} {m.what}", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} mutants caught")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
