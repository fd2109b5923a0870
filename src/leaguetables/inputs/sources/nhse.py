"""NHS England publications → the data contract of one quarter.

This module assembles one quarter from the adapters (the conventions they share — quarter strings, the
default location of the real data, the observation layout, the metric list — are in
:mod:`leaguetables.inputs.sources.common`):

>>> data = load_nhse_quarter("2024-25-Q4")            # doctest: +SKIP
>>> sorted(data)                                      # doctest: +SKIP
['demographics', 'observations', 'status', 'trusts']

Command line (writes ``trusts.csv``, ``observations.csv``, ``demographics.csv``,
``status.csv``)::

    python -m leaguetables.inputs.sources.nhse 2024-25-Q4 --raw ../shared/data/real --out DIR

Quarters are financial quarters written ``YYYY-YY-QN``: Q1 = April–June, Q2 = July–September,
Q3 = October–December, Q4 = January–March of the second calendar year (``2024-25-Q4`` =
January–March 2025).

Real data are never copied into the repository: they are read from ``raw_dir``, whose default
is ``../shared/data/real`` relative to the repository root (``DEFAULT_RAW_DIR``).

Quarter assembly (``load_nhse_quarter``)
----------------------------------------
1. ODS register → trusts open at the quarter end; trust type from the NHS Staff Survey
   benchmarking group, else the sickness-absence organisation type.
2. Successor map as at the quarter end: organisations closed on or before the quarter end are
   mapped to their successor; every adapter sums numerators and denominators (or
   respondent-weights mean scores) of predecessors into the successor *before* building ratios.
3. Acute trusts are restricted (``type1_only=True``) to those with type 1 A&E attendances in
   the quarter (121 trusts in 2024-25-Q4).
4. Observations from the adapters (one documented quarterly rule per metric, see ``METRICS``
   and ``docs/sources.md``); demographics from OHID catchments (``demographics.py``); status
   flags all False (``STATUS_NOTE``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from leaguetables.inputs.sources import ae, beds, cancer, demographics, diagnostics, ods, rtt, sickness, staff_survey
from leaguetables.inputs.sources.common import (
    DEFAULT_RAW_DIR,
    DEMOGRAPHIC_COLUMNS,
    OBS_COLUMNS,
    STATUS_COLUMNS,
    STATUS_NOTE,
    TRUST_COLUMNS,
    TRUST_TYPES,
    NoDataForQuarter,
    check_raw_dir,
    coverage_table,
    empty_observations,
    parse_quarter,
    quarter_end,
    source_file,
    source_path,
)


def load_nhse_quarter(
    quarter: str,
    raw_dir: Path | str = DEFAULT_RAW_DIR,
    trust_types: Iterable[str] = ("acute",),
    *,
    type1_only: bool = True,
) -> dict[str, pd.DataFrame]:
    """The four contract tables of one quarter from NHS England's published files.

    Returns ``{"trusts", "observations", "demographics", "status"}``. Acute trusts are limited
    to those with type 1 A&E attendances in the quarter when ``type1_only`` (121 in
    2024-25-Q4). Metrics whose source has no data for the quarter are skipped with a warning
    (e.g. RTT, whose only extract is April 2026). ``status`` carries ``STATUS_NOTE`` in
    ``status.attrs["note"]``.
    """
    parse_quarter(quarter)
    trust_types = tuple(trust_types)
    unknown = set(trust_types) - set(TRUST_TYPES)
    if unknown:
        raise ValueError(f"unknown trust types {sorted(unknown)}; use {TRUST_TYPES}")
    raw_dir = check_raw_dir(raw_dir)
    as_of = quarter_end(quarter)

    register = ods.read_ods(source_file(raw_dir, "ods"))
    successors = ods.successor_map(register, as_of)
    nss = staff_survey.read_nss(source_file(raw_dir, "staff_survey"))
    sick = sickness.read_sickness(source_path(raw_dir, "sickness"))
    ae_monthly = ae.read_ae(source_path(raw_dir, "ae"))

    names = sickness.latest_names(sick, as_of)
    trusts = ods.build_trusts(
        register,
        as_of,
        types=[staff_survey.organisation_types(nss), sickness.organisation_types(sick)],
        names=[names, staff_survey.organisation_names(nss)],
    )
    trusts = trusts[trusts["trust_type"].isin(trust_types)]
    if type1_only and "acute" in trust_types:
        type1 = ae.type1_providers(ae_monthly, quarter, successors)
        trusts = trusts[(trusts["trust_type"] != "acute") | trusts["trust_code"].isin(type1)]
    trusts = trusts.sort_values("trust_code").reset_index(drop=True)

    builders = [
        ("ae", lambda: ae.ae_observations(ae_monthly, quarter, successors)),
        (
            "cancer",
            lambda: cancer.cancer_observations(cancer.read_cwt(source_path(raw_dir, "cancer")), quarter, successors),
        ),
        (
            "diagnostics",
            lambda: diagnostics.dm01_observations(
                diagnostics.read_dm01(source_path(raw_dir, "diagnostics")), quarter, successors
            ),
        ),
        ("beds", lambda: beds.kh03_observations(beds.read_kh03(source_file(raw_dir, "beds")), quarter, successors)),
        ("sickness", lambda: sickness.sickness_observations(sick, quarter, successors)),
        ("staff_survey", lambda: staff_survey.nss_observations(nss, quarter, successors)),
        ("rtt", lambda: rtt.rtt_observations(rtt.read_rtt(source_file(raw_dir, "rtt")), quarter, successors)),
    ]
    parts = []
    for name, build in builders:
        try:
            parts.append(build())
        except NoDataForQuarter as exc:
            warnings.warn(f"{name}: skipped for {quarter}: {exc}", stacklevel=2)
    observations = pd.concat(parts, ignore_index=True) if parts else empty_observations()
    observations = observations[observations["trust_code"].isin(trusts["trust_code"])]
    observations = observations.sort_values(["metric_id", "trust_code"], kind="stable").reset_index(drop=True)

    demo = demographics.trust_demographics(trusts["trust_code"], successors, source_file(raw_dir, "demographics"))

    n = len(trusts)
    status = pd.DataFrame(
        {
            "quarter": pd.Series([quarter] * n, dtype="str"),
            "trust_code": trusts["trust_code"].astype("str").to_numpy(),
            # not in these inputs: unknown (empty in status.csv, [x] where published), never a default of False
            "deficit": pd.array([pd.NA] * n, dtype="boolean"),
            "deficit_support": pd.array([pd.NA] * n, dtype="boolean"),
            "improvement_programme": pd.array([pd.NA] * n, dtype="boolean"),
        }
    )
    status.attrs["note"] = STATUS_NOTE
    return {
        "trusts": trusts[TRUST_COLUMNS],
        "observations": observations[OBS_COLUMNS],
        "demographics": demo[DEMOGRAPHIC_COLUMNS],
        "status": status[STATUS_COLUMNS],
    }


def write_quarter(data: Mapping[str, pd.DataFrame], out_dir: Path | str) -> list[Path]:
    """Write the four contract CSVs (``trusts``, ``observations``, ``demographics``, ``status``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in ("trusts", "observations", "demographics", "status"):
        path = out_dir / f"{key}.csv"
        data[key].to_csv(path, index=False)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m leaguetables.inputs.sources.nhse",
        description="Build the four data-contract CSVs of one quarter from NHS England's published files.",
    )
    parser.add_argument("quarter", help="financial quarter, e.g. 2024-25-Q4")
    parser.add_argument(
        "--raw", type=Path, default=DEFAULT_RAW_DIR, help=f"folder of the real data (default: {DEFAULT_RAW_DIR})"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--trust-types", default="acute", help="comma-separated trust types (acute, mental_health_community, ambulance)"
    )
    parser.add_argument("--all-acute", action="store_true", help="keep acute trusts without a type 1 A&E department")
    args = parser.parse_args(argv)
    types = tuple(t.strip() for t in args.trust_types.split(",") if t.strip())
    data = load_nhse_quarter(args.quarter, args.raw, types, type1_only=not args.all_acute)
    paths = write_quarter(data, args.out)
    cov = coverage_table(data["observations"], data["trusts"], sorted(data["observations"]["metric_id"].unique()))
    print(f"{args.quarter}: {len(data['trusts'])} trusts, {len(data['observations'])} observations")
    print(cov[["metric_id", "covered", "missing", "suppressed", "excluded"]].to_string(index=False))
    print(f"note: {STATUS_NOTE}", file=sys.stderr)
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
