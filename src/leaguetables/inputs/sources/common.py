"""Conventions shared by every adapter in ``leaguetables.inputs.sources``: quarter strings, the default
location of the real data and the files read from it, the contract's column layouts, the observation
helpers, and the list of metrics the adapters produce (``METRICS``).

The assembler of one quarter from the adapters is :mod:`leaguetables.inputs.sources.nhse`; this module imports
no adapter, so every adapter can import it (no import cycle).

Quarters are financial quarters written ``YYYY-YY-QN``: Q1 = April–June, Q2 = July–September,
Q3 = October–December, Q4 = January–March of the second calendar year (``2024-25-Q4`` =
January–March 2025).

Real data are never copied into the repository: they are read from ``raw_dir``, whose default
is ``../shared/data/real`` relative to the repository root (``DEFAULT_RAW_DIR``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import SourceMetric, load_source_metrics
from leaguetables.inputs.contract import OPTIONAL, SCHEMAS

# parents: [0] sources, [1] leaguetables, [2] src, [3] repository root (/work/main)
REPO_ROOT = Path(__file__).resolve().parents[4]
#: ``../shared/data/real`` relative to the repository root.
DEFAULT_RAW_DIR = REPO_ROOT.parent / "shared" / "data" / "real"

#: Files read by ``load_nhse_quarter``, relative to ``raw_dir``.
SOURCE_FILES: dict[str, str | tuple[str, ...]] = {
    "ae": "nhse_perf_2024_25/ae_monthly_provider_2024-04_2025-07.csv",
    "cancer": (
        "nhse_perf_2024_25/cancer_cwt_provider_detail_2024-04_2024-09.csv",
        "nhse_perf_2024_25/cancer_cwt_provider_detail_2024-10_2025-03.csv",
        "nhse_perf_2024_25/cancer_cwt_provider_detail_2025-04_2025-07.csv",
    ),
    "diagnostics": "nhse_perf_2024_25/diagnostics_dm01_provider_2024-08_2025-07.csv",
    "beds": "nhse_perf_2024_25/beds_kh03_provider_2024q2_2025q1.csv",
    "sickness": "nhse_perf_2024_25/sickness_absence_org_monthly_2024-04_2025-03.csv",
    "staff_survey": "nhse_perf_2024_25/staff_survey_nss2024_org_themes.csv",
    "rtt": "nhse_rtt_2026_04/rtt_provider_tfc_weekbands_2026_04.csv",
    "ods": "ods_trusts/ods_etr_nhs_trusts_2026-06.csv",
    "demographics": "trust_catchment_demographics",
}

# the contract's layouts (its schemas' columns; the observations without the optional ones)
OBS_COLUMNS = [c for c in SCHEMAS["observations"].columns if c not in OPTIONAL["observations"]]
TRUST_COLUMNS = list(SCHEMAS["trusts"].columns)
DEMOGRAPHIC_COLUMNS = list(SCHEMAS["demographics"].columns)
STATUS_COLUMNS = list(SCHEMAS["status"].columns)
TRUST_TYPES = ("acute", "mental_health_community", "ambulance")

STATUS_NOTE = (
    "Finance and status flags (deficit, deficit support, Provider Improvement Programme) are not "
    "published in these NHS England performance inputs: the flags are left empty (unknown), published as [x]; "
    "the financial override cannot be applied without them."
)

_QUARTER_RE = re.compile(r"^(\d{4})-(\d{2})-Q([1-4])$")
MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "JANUARY",
            "FEBRUARY",
            "MARCH",
            "APRIL",
            "MAY",
            "JUNE",
            "JULY",
            "AUGUST",
            "SEPTEMBER",
            "OCTOBER",
            "NOVEMBER",
            "DECEMBER",
        ],
        start=1,
    )
}


class NoDataForQuarter(LookupError):
    """A source file holds no data for the requested quarter (or snapshot month)."""


# ----------------------------------------------------------------------------------- metrics
#: The metrics the adapters produce, each with its quarterly rule (the lead copies these into the catalogue), from
#: ``config/sources/nhse-metrics.yaml``.
METRICS: dict[str, SourceMetric] = load_source_metrics("nhse-metrics")


# ---------------------------------------------------------------------------------- quarters
def parse_quarter(quarter: str) -> tuple[int, int]:
    """``"2024-25-Q4"`` → ``(2024, 4)`` (first calendar year of the financial year, quarter)."""
    m = _QUARTER_RE.match(str(quarter))
    if not m:
        raise ValueError(f"quarter must look like '2024-25-Q4', got {quarter!r}")
    year, yy, q = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if (year + 1) % 100 != yy:
        raise ValueError(f"quarter {quarter!r}: '{yy:02d}' does not follow {year}")
    return year, q


def quarter_months(quarter: str) -> list[pd.Timestamp]:
    """The three months (first day) of a financial quarter."""
    year, q = parse_quarter(quarter)
    first = pd.Timestamp(year=year, month=4, day=1) + pd.DateOffset(months=3 * (q - 1))
    return [first + pd.DateOffset(months=i) for i in range(3)]


def quarter_end(quarter: str) -> pd.Timestamp:
    """Last day of the quarter."""
    return quarter_months(quarter)[-1] + pd.offsets.MonthEnd(0)


def quarter_of(date) -> str:
    """Financial quarter containing ``date``."""
    ts = pd.Timestamp(date)
    year = ts.year if ts.month >= 4 else ts.year - 1
    q = (ts.month - 4) % 12 // 3 + 1
    return f"{year}-{(year + 1) % 100:02d}-Q{q}"


def parse_month(value) -> pd.Timestamp:
    """Month (first day) from the labels used in NHS England files.

    Accepts ISO dates (``2025-03-01``), ``dd/mm/yyyy``, ``MSitAE-MARCH-2025``,
    ``RTT-April-2026``, ``March 2025``, ``Mar-25``.
    """
    if isinstance(value, pd.Timestamp):
        return value.to_period("M").to_timestamp()
    text = str(value).strip()
    if re.match(r"^\d{4}-\d{2}(-\d{2})?", text):
        return pd.Timestamp(text[:7] + "-01")
    if re.match(r"^\d{1,2}/\d{1,2}/\d{4}$", text):
        return pd.to_datetime(text, dayfirst=True).to_period("M").to_timestamp()
    m = re.search(r"([A-Za-z]{3,9})[\s\-_]+(\d{2,4})\s*$", text)
    if m:
        name = m.group(1).upper()
        month = next((v for k, v in MONTHS.items() if k.startswith(name[:3])), None)
        if month is not None:
            year = int(m.group(2))
            year = year + 2000 if year < 100 else year
            return pd.Timestamp(year=year, month=month, day=1)
    raise ValueError(f"cannot read a month from {value!r}")


def parse_months(values: pd.Series) -> pd.Series:
    """``parse_month`` applied to a column (each distinct label parsed once)."""
    lookup = {v: parse_month(v) for v in pd.unique(values)}
    return values.map(lookup).astype("datetime64[ns]")


def snapshot_month(available: Iterable, quarter: str, allow_earlier: bool = False) -> pd.Timestamp:
    """Month standing for a quarter in a month-end snapshot series: the last month of the quarter.

    With ``allow_earlier=True`` the latest available month of the quarter is used when the last
    one is not published (e.g. the April 2026 RTT extract for 2026-27-Q1).
    """
    months = quarter_months(quarter)
    have = {parse_month(m) for m in available}
    if months[-1] in have:
        return months[-1]
    if allow_earlier:
        for m in reversed(months[:-1]):
            if m in have:
                return m
    raise NoDataForQuarter(
        f"no month-end snapshot for {quarter} (needs {months[-1]:%B %Y}; have "
        f"{', '.join(f'{m:%Y-%m}' for m in sorted(have)) or 'nothing'})"
    )


def months_in_quarter(periods: pd.Series, quarter: str, source: str) -> pd.Series:
    """Boolean mask of rows whose month lies in ``quarter``; raises if there are none."""
    mask = periods.isin(quarter_months(quarter))
    if not mask.any():
        have = sorted(pd.Series(periods.unique()).dropna())
        span = f"{have[0]:%Y-%m} to {have[-1]:%Y-%m}" if have else "nothing"
        raise NoDataForQuarter(f"{source}: no month of {quarter} in the data (have {span})")
    return mask


def quarter_rows(
    monthly: pd.DataFrame, quarter: str, source: str, successors: Mapping[str, str] | None
) -> pd.DataFrame:
    """The rows of a monthly table (``period``, ``org_code``) whose month lies in ``quarter`` (raises if none, naming
    ``source``), with ``trust_code``: the organisation's code mapped to its successor."""
    rows = monthly[months_in_quarter(monthly["period"], quarter, source)].copy()
    rows["trust_code"] = map_codes(rows["org_code"], successors)
    return rows


def read_each(paths: Path | str | Iterable[Path | str], read_one: Callable[[Path | str], pd.DataFrame]) -> pd.DataFrame:
    """``read_one`` of one file or of each of several files, stacked in order (index renumbered)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return pd.concat([read_one(p) for p in paths], ignore_index=True)


# ------------------------------------------------------------------------ parsing utilities
_SUPPRESSION_MARKS = {"*", "**", ":", "c", "x", "[c]", "[x]", "[z]"}
_NOT_APPLICABLE_MARKS = {"-", "–", "—", "n/a", "na", ".", ""}


def norm_name(text: str) -> str:
    """Lower-case a column label and collapse white space (for matching renamed columns)."""
    return re.sub(r"\s+", " ", str(text).replace("\ufeff", "").strip().lower())


def to_number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numeric values and a suppression mask from a published column.

    ``*`` (and the ONS ``[c]``/``[x]`` marks) → NaN, suppressed; ``-`` / blank (not applicable)
    → NaN, not suppressed; thousands separators and ``%`` signs are removed.
    """
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
        return values, pd.Series(False, index=series.index)
    text = series.astype("string").str.strip().str.replace(",", "", regex=False)
    lowered = text.str.lower()
    suppressed = lowered.isin(_SUPPRESSION_MARKS).fillna(False).astype(bool)
    text = text.str.rstrip("%")
    values = pd.to_numeric(
        text.where(~lowered.isin(_SUPPRESSION_MARKS | _NOT_APPLICABLE_MARKS)), errors="coerce"
    ).astype("float64")
    return values, suppressed


_TOTAL_CODES = {"", "-", "TOTAL", "ENGLAND", "NATIONAL", "ALL", "E92000001", "NAN", "<NA>"}


def is_total_row(codes: pd.Series, names: pd.Series | None = None) -> pd.Series:
    """National / total rows of a provider table (``TOTAL``, ``England``, blank code)."""
    c = codes.astype("string").fillna("").str.strip().str.upper()
    mask = c.isin(_TOTAL_CODES) | c.str.startswith("TOTAL")
    if names is not None:
        n = names.astype("string").fillna("").str.strip().str.upper()
        mask |= n.isin({"TOTAL", "ENGLAND", "ENGLAND TOTAL", "NATIONAL TOTAL"}) | n.str.startswith("TOTAL")
    return mask.fillna(False).astype(bool)


def map_codes(codes: pd.Series, successors: Mapping[str, str] | None) -> pd.Series:
    """Replace predecessor codes by their successor (identity when ``successors`` is empty)."""
    codes = codes.astype("string").str.strip().str.upper()
    if not successors:
        return codes
    mapped = codes.map(dict(successors))
    return mapped.where(mapped.notna(), codes).astype("string")


def sum_by(
    df: pd.DataFrame,
    keys: list[str] | str,
    values: list[str],
    any_flags: Iterable[str] = (),
    all_flags: Iterable[str] = (),
    first: Iterable[str] = (),
) -> pd.DataFrame:
    """Group ``df`` by ``keys``: ``values`` summed (NaN when all missing), flags combined with
    any/all, ``first`` columns taken from the first row."""
    g = df.groupby(keys, sort=True)
    out = g[list(values)].sum(min_count=1)
    for col in any_flags:
        out[col] = g[col].any()
    for col in all_flags:
        out[col] = g[col].all()
    for col in first:
        out[col] = g[col].first()
    return out.reset_index()


def make_observations(frame: pd.DataFrame, quarter: str, metric_id: str) -> pd.DataFrame:
    """Put a frame with ``trust_code`` and some of numerator/denominator/value/category/suppressed
    into the contract layout (``OBS_COLUMNS``), sorted by trust code."""
    n = len(frame)
    out = pd.DataFrame(index=range(n))
    out["quarter"] = pd.Series([quarter] * n, dtype="str")
    out["trust_code"] = frame["trust_code"].astype("str").to_numpy()
    out["metric_id"] = pd.Series([metric_id] * n, dtype="str")
    for col in ("numerator", "denominator", "value"):
        out[col] = frame[col].astype("float64").to_numpy() if col in frame else np.full(n, np.nan)
    out["category"] = (
        frame["category"].astype("str").to_numpy() if "category" in frame else pd.Series([None] * n, dtype="str")
    )
    out["suppressed"] = (
        frame["suppressed"].fillna(False).astype(bool).to_numpy() if "suppressed" in frame else np.zeros(n, dtype=bool)
    )
    return out.sort_values("trust_code", kind="stable").reset_index(drop=True)


def empty_observations() -> pd.DataFrame:
    return make_observations(pd.DataFrame({"trust_code": pd.Series([], dtype="str")}), "", "")


def ratio_observations(
    agg: pd.DataFrame, quarter: str, metric_id: str, numerator: str, denominator: str, suppressed: str | None = None
) -> pd.DataFrame:
    """Observations of a proportion from aggregated counts.

    Rows with a zero or missing denominator (metric not applicable: no activity) or a missing
    numerator (column absent from the file) are dropped, unless the source suppressed them (kept
    with NaN counts and ``suppressed=True``).
    """
    supp = agg[suppressed].fillna(False).astype(bool) if suppressed else pd.Series(False, index=agg.index)
    frame = pd.DataFrame(
        {
            "trust_code": agg["trust_code"],
            "numerator": agg[numerator].astype("float64"),
            "denominator": agg[denominator].astype("float64"),
            "suppressed": supp,
        }
    )
    frame.loc[supp, ["numerator", "denominator"]] = np.nan
    keep = supp | ((frame["denominator"] > 0) & frame["numerator"].notna())
    return make_observations(frame[keep], quarter, metric_id)


# --------------------------------------------------------------------------------- coverage
def coverage_table(observations: pd.DataFrame, trusts: pd.DataFrame, metrics) -> pd.DataFrame:
    """Per metric: trusts covered, missing, suppressed, excluded — and why.

    ``metrics``: metric ids (iterable of str), objects with ``id`` and ``statistic`` (or a catalogue
    with ``.metrics``), a mapping id → ``Metric``/dict, or a frame with a ``metric_id`` (or ``id``)
    column and optionally ``statistic``.

    * covered — register trusts with a usable row (numerator/denominator for counts, value for
      means);
    * suppressed — rows flagged ``suppressed`` by the source;
    * excluded — rows present but unusable (no denominator, denominator ≤ 0, numerator >
      denominator for a proportion, no value), each with its reason; rows for codes not in the
      register are counted in ``not_in_register``;
    * missing — register trusts with no row at all (codes listed).
    """
    if isinstance(metrics, pd.DataFrame):
        id_col = "metric_id" if "metric_id" in metrics else "id"
        stats = dict(zip(metrics[id_col], metrics["statistic"] if "statistic" in metrics else [None] * len(metrics)))
    elif isinstance(metrics, Mapping):
        stats = {}
        for k, v in metrics.items():
            stat = getattr(v, "statistic", None) if not isinstance(v, Mapping) else v.get("statistic")
            stats[k] = stat
    else:
        metrics = getattr(metrics, "metrics", metrics)  # a catalogue object with .metrics
        stats = {}
        for m in metrics:
            if isinstance(m, str):
                stats[m] = METRICS[m].statistic if m in METRICS else None
            else:  # catalogue / Metric objects with .id and .statistic
                stats[m.id] = getattr(m, "statistic", None)

    register = set(trusts["trust_code"].astype(str))
    rows = []
    for metric_id, stat in stats.items():
        obs = observations[observations["metric_id"] == metric_id]
        in_reg = obs[obs["trust_code"].astype(str).isin(register)]
        not_in_reg = sorted(set(obs["trust_code"].astype(str)) - register)
        supp = in_reg["suppressed"].fillna(False).astype(bool)
        num, den, val = in_reg["numerator"], in_reg["denominator"], in_reg["value"]
        reasons = pd.Series("", index=in_reg.index, dtype="str")
        if stat == "bracket":
            reasons[~supp & in_reg["category"].isna()] = "no category"
        elif stat in ("mean", "value") or (stat is None and num.isna().all() and val.notna().any()):
            reasons[~supp & val.isna()] = "no value"
        else:
            reasons[~supp & den.isna()] = "no denominator"
            reasons[~supp & den.notna() & (den <= 0)] = "denominator <= 0"
            reasons[~supp & num.isna() & den.notna()] = "no numerator"
            if stat in (None, "proportion"):
                reasons[~supp & (num > den)] = "numerator > denominator"
            reasons[~supp & (num < 0)] = "negative numerator"
        excluded = in_reg[(reasons != "") & ~supp]
        covered = in_reg[(reasons == "") & ~supp]
        missing = sorted(register - set(in_reg["trust_code"].astype(str)))
        why = "; ".join(
            f"{r}: {', '.join(sorted(excluded.loc[reasons[excluded.index] == r, 'trust_code']))}"
            for r in sorted(set(reasons[excluded.index]))
        )
        rows.append(
            {
                "metric_id": metric_id,
                "trusts": len(register),
                "covered": covered["trust_code"].nunique(),
                "suppressed": int(supp.sum()),
                "excluded": len(excluded),
                "missing": len(missing),
                "not_in_register": len(not_in_reg),
                "excluded_why": why,
                "missing_codes": ", ".join(missing),
                "suppressed_codes": ", ".join(sorted(in_reg.loc[supp, "trust_code"].astype(str))),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- assembly
def source_path(raw_dir: Path | str, key: str) -> Path | tuple[Path, ...]:
    rel = SOURCE_FILES[key]
    base = Path(raw_dir)
    return tuple(base / r for r in rel) if isinstance(rel, tuple) else base / rel


def source_file(raw_dir: Path | str, key: str) -> Path:
    """The file of a source published as one file (:func:`source_path` for those published in parts)."""
    path = source_path(raw_dir, key)
    if isinstance(path, tuple):
        raise TypeError(f"source {key!r} is published in {len(path)} files: use source_path")
    return path


def check_raw_dir(raw_dir: Path | str) -> Path:
    """Raise ``FileNotFoundError`` naming the missing inputs."""
    raw_dir = Path(raw_dir)
    missing = []
    for key in SOURCE_FILES:
        paths = source_path(raw_dir, key)
        for p in paths if isinstance(paths, tuple) else (paths,):
            if not p.exists():
                missing.append(str(p))
    if missing:
        raise FileNotFoundError(
            f"real NHS England data not found under {raw_dir} (default ../shared/data/real "
            f"relative to the repository root); missing: {', '.join(missing)}"
        )
    return raw_dir


def read_renamed(path, canonical) -> pd.DataFrame:
    """A published CSV read as text (BOM removed), each column renamed by ``canonical(label)`` (a name, or ``None``
    to keep the label); the first column with a canonical name keeps it, later ones keep their labels."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    names: dict[str, str] = {}
    for col in raw.columns:
        key = canonical(col)
        if key and key not in names.values():
            names[col] = key
    return raw.rename(columns=names)
