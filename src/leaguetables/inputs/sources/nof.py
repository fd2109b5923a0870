"""Adapter for NHS England's published NHS Oversight Framework (NOF) 2025/26 files.

Two CSVs per trust type (UTF-8 *with* byte-order mark, read with ``encoding="utf-8-sig"``):

* the data file, long: one row per quarter × trust × metric code — ``OF0xxx`` metric value, ``OF1xxx`` its
  1–4 score (``OF1080`` combined finance), ``OF40xx`` domain scores, ``OF41xx`` domain segments, ``OF5000``
  adjusted segment (its ``Rank`` is the league position), ``OF5002`` average metric score, ``OF5003``
  unadjusted segment, ``OF5004`` financial-deficit flag, ``OF5005`` final segment incl. 5 and ``OF5007``
  Recovery Support Programme flag (Q1–Q2 only);
* the league-table file of the latest quarter, with likely ranges written ``"1.2 to 1.89"``.

The files are read where they are (default ``../shared/data/real/nof_2025_26_q4_mhc`` beside the project);
they are never copied into the project. Quarters become ``YYYY-YY-QN`` and trust types the contract's codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import load_catalogue
from leaguetables.inputs.sources import demographics
from leaguetables.inputs.sources.common import DEMOGRAPHIC_COLUMNS, OBS_COLUMNS, TRUST_COLUMNS

__all__ = [
    "DEFAULT_REAL_DIR",
    "DEFAULT_NOF_DIR",
    "NOF_FOLDER",
    "FINANCE_METRICS",
    "COMBINED_FINANCE",
    "NofFiles",
    "find_nof_files",
    "find_all_nof_files",
    "read_all_nof_data",
    "NOF_FOLDERS",
    "parse_quarter",
    "parse_trust_type",
    "parse_range",
    "read_nof_data",
    "read_league_table",
    "metric_values",
    "metric_scores",
    "scores_for_average",
    "summary",
    "domain_results",
    "trust_register",
    "catalogue_observations",
]

#: ``../shared/data/real`` relative to the repository root.
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "real"
NOF_FOLDER = "nof_2025_26_q4_mhc"
DEFAULT_NOF_DIR = DEFAULT_REAL_DIR / NOF_FOLDER
#: Every folder of published NOF files the project knows, by trust type (acute: Q1 2025/26 only).
NOF_FOLDERS = {"acute": "nof_2025_26_q1_acute", "mental_health_community": NOF_FOLDER}

#: The two finance scores that enter the average once, as the combined score ``COMBINED_FINANCE``.
FINANCE_METRICS = ("OF1079", "OF1081")
COMBINED_FINANCE = "OF1080"
#: The three healthcare-associated infection scores, weighted one third each in the average (acute trusts).
INFECTION_SCORES = ("OF1020", "OF1048", "OF1088")

#: The columns that name the quarter and the trust, first in both of NHS England's published layouts.
TRUST_FIELDS = [
    "Quarter",
    "Region",
    "Trust_type",
    "Trust_subtype",
    "Trust_code",
    "Trust_name",
]
DATA_COLUMNS = [
    *TRUST_FIELDS,
    "Domain",
    "Sub-domain",
    "Metric_ID",
    "Metric_description",
    "Reporting_date",
    "Units",
    "Value",
    "Median_value",
    "Lower_quartile",
    "Upper_quartile",
    "Rank",
]
LEAGUE_COLUMNS = [
    *TRUST_FIELDS,
    "Average_score",
    "Likely_range_of_average_score",
    "Segment",
    "Trust_in_financial_deficit",
    "Rank",
    "Likely_range_of_rank",
]
TRUST_TYPES = {
    "acute trust": "acute",
    "mental health and community trust": "mental_health_community",
    "ambulance trust": "ambulance",
}


@dataclass(frozen=True)
class NofFiles:
    data: Path
    league_table: Path | None


def find_nof_files(directory: str | Path | None = None) -> NofFiles:
    """Locate the data CSV (``*trust-data.csv``) and league-table CSV (``*league-table.csv``).

    ``directory`` is the NOF folder itself or the real-data root holding ``nof_2025_26_q4_mhc``; default
    :data:`DEFAULT_NOF_DIR`. Raises ``FileNotFoundError`` naming the folder when the data CSV is absent.
    """
    d = Path(directory) if directory is not None else DEFAULT_NOF_DIR
    if d.is_dir() and not list(d.glob("*-data.csv")) and (d / NOF_FOLDER).is_dir():
        d = d / NOF_FOLDER
    data = sorted(d.glob("*-data.csv")) if d.is_dir() else []
    if not data:
        raise FileNotFoundError(f"no NOF data CSV (*-data.csv) in {d.resolve() if d.exists() else d}")
    if len(data) > 1:
        raise ValueError(f"several NOF data CSVs in {d}: {[p.name for p in data]}")
    league = sorted(d.glob("*league-table.csv"))
    return NofFiles(data=data[0], league_table=league[0] if league else None)


def find_all_nof_files(real_dir: str | Path | None = None) -> dict[str, NofFiles]:
    """The published NOF files of every trust type present under the real-data root (default
    :data:`DEFAULT_REAL_DIR`), keyed by trust type; types whose folder is absent are left out."""
    root = Path(real_dir) if real_dir is not None else DEFAULT_REAL_DIR
    out = {}
    for ttype, folder in NOF_FOLDERS.items():
        d = root / folder
        if d.is_dir() and list(d.glob("*-data.csv")):
            out[ttype] = find_nof_files(d)
    return out


def read_all_nof_data(files: dict[str, NofFiles]) -> pd.DataFrame:
    """The data files of several trust types stacked (each read with :func:`read_nof_data`)."""
    frames = [read_nof_data(f.data) for _, f in sorted(files.items())]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def parse_quarter(text: str) -> str:
    """``"Q4 2025/26"`` → ``"2025-26-Q4"``."""
    m = re.fullmatch(r"\s*Q([1-4])\s+(\d{4})/(\d{2})\s*", str(text))
    if not m:
        raise ValueError(f"unrecognised quarter {text!r} (expected like 'Q4 2025/26')")
    return f"{m.group(2)}-{m.group(3)}-Q{m.group(1)}"


def parse_trust_type(text: str) -> str:
    """NHS England's trust type label → the contract's code (``acute``, ``mental_health_community``,
    ``ambulance``)."""
    key = str(text).strip().lower()
    if key not in TRUST_TYPES:
        raise ValueError(f"unrecognised trust type {text!r}; known: {sorted(TRUST_TYPES)}")
    return TRUST_TYPES[key]


def parse_range(text) -> tuple[float, float]:
    """``"1.2 to 1.89"`` → ``(1.2, 1.89)``; missing → ``(nan, nan)``."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or pd.isna(text):
        return (np.nan, np.nan)
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d*)?)\s+to\s+(-?\d+(?:\.\d*)?)\s*", str(text))
    if not m:
        raise ValueError(f"unrecognised range {text!r} (expected like '1.2 to 1.89')")
    return (float(m.group(1)), float(m.group(2)))


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    df = pd.read_csv(path, encoding="utf-8-sig", dtype={"Trust_code": "string"})
    if "Quarter" not in df.columns and "Quarter" in columns and "Metric_ID" in df.columns:
        # the first (Q1 2025/26) release has no Quarter column: the quarter is the Reporting_date of the
        # summary rows (OF5000), which must name one quarter
        dates = set(df.loc[df["Metric_ID"].astype(str).str.strip() == "OF5000", "Reporting_date"].dropna())
        if len(dates) != 1:
            raise ValueError(
                f"{path}: no Quarter column and the OF5000 Reporting_date does not name one quarter ({sorted(dates)})"
            )
        df.insert(0, "Quarter", dates.pop())
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (found {list(df.columns)})")
    return df


def read_nof_data(path: str | Path) -> pd.DataFrame:
    """The long data CSV with snake_case columns, ``quarter`` as ``YYYY-YY-QN`` and ``trust_type`` coded.

    Columns: ``quarter, region, trust_type, trust_subtype, trust_code, trust_name, domain, sub_domain,
    metric_id, metric_description, reporting_date, units, value, median_value, lower_quartile,
    upper_quartile, rank``. Duplicate quarter × trust × metric rows raise ``ValueError``.
    """
    raw = _read_csv(Path(path), DATA_COLUMNS)
    df = pd.DataFrame(
        {
            **_trust_fields(raw),
            "domain": raw["Domain"],
            "sub_domain": raw["Sub-domain"],
            "metric_id": raw["Metric_ID"].str.strip(),
            "metric_description": raw["Metric_description"],
            "reporting_date": raw["Reporting_date"],
            "units": raw["Units"],
            "value": pd.to_numeric(raw["Value"], errors="raise").astype(float),
            "median_value": pd.to_numeric(raw["Median_value"], errors="raise").astype(float),
            "lower_quartile": pd.to_numeric(raw["Lower_quartile"], errors="raise").astype(float),
            "upper_quartile": pd.to_numeric(raw["Upper_quartile"], errors="raise").astype(float),
            "rank": pd.to_numeric(raw["Rank"], errors="raise").astype(float),
        }
    )
    dup = df.duplicated(["quarter", "trust_code", "metric_id"])
    if dup.any():
        first = df.loc[dup, ["quarter", "trust_code", "metric_id"]].iloc[0].tolist()
        raise ValueError(
            f"{path}: duplicate quarter × trust × metric rows, e.g. {first} (row {int(np.flatnonzero(dup)[0]) + 2})"
        )
    return df


def _trust_fields(raw: pd.DataFrame) -> dict[str, pd.Series]:
    """The quarter and trust columns (:data:`TRUST_FIELDS`) of either published layout, parsed and renamed."""
    return {
        "quarter": raw["Quarter"].map(parse_quarter),
        "region": raw["Region"],
        "trust_type": raw["Trust_type"].map(parse_trust_type),
        "trust_subtype": raw["Trust_subtype"],
        "trust_code": raw["Trust_code"].str.strip(),
        "trust_name": raw["Trust_name"],
    }


def read_league_table(path: str | Path) -> pd.DataFrame:
    """The league-table CSV: ``quarter, region, trust_type, trust_subtype, trust_code, trust_name,
    average_score, average_lower, average_upper, segment, in_financial_deficit, rank, rank_lower,
    rank_upper`` (ranges parsed from ``"a to b"``; segment and ranks as nullable integers)."""
    raw = _read_csv(Path(path), LEAGUE_COLUMNS)
    avg_rng = [parse_range(x) for x in raw["Likely_range_of_average_score"]]
    rank_rng = [parse_range(x) for x in raw["Likely_range_of_rank"]]
    deficit = raw["Trust_in_financial_deficit"].str.strip().str.lower()
    if not deficit.isin(["yes", "no"]).all():
        raise ValueError(f"{path}: Trust_in_financial_deficit must be Yes/No, got {sorted(set(deficit))}")
    return pd.DataFrame(
        {
            **_trust_fields(raw),
            "average_score": pd.to_numeric(raw["Average_score"]).astype(float),
            "average_lower": [a for a, _ in avg_rng],
            "average_upper": [b for _, b in avg_rng],
            "segment": pd.to_numeric(raw["Segment"]).astype("Int64"),
            "in_financial_deficit": deficit.eq("yes").astype(bool),
            "rank": pd.to_numeric(raw["Rank"]).astype("Int64"),
            "rank_lower": pd.Series([a for a, _ in rank_rng]).astype("Int64"),
            "rank_upper": pd.Series([b for _, b in rank_rng]).astype("Int64"),
        }
    )


def _codes(data: pd.DataFrame, pattern: str) -> pd.DataFrame:
    return data[data["metric_id"].str.fullmatch(pattern)]


def metric_values(data: pd.DataFrame) -> pd.DataFrame:
    """Published metric values (``OF0xxx``): ``quarter, trust_code, metric_id, value, rank`` (the rank among
    the trusts in the file), plus ``domain``, ``units``, ``median_value``, quartiles."""
    cols = [
        "quarter",
        "trust_code",
        "metric_id",
        "value",
        "rank",
        "domain",
        "units",
        "median_value",
        "lower_quartile",
        "upper_quartile",
    ]
    return _codes(data, r"OF0\d{3}")[cols].reset_index(drop=True)


def metric_scores(data: pd.DataFrame) -> pd.DataFrame:
    """Published metric scores (``OF1xxx``, including the combined finance score ``OF1080``):
    ``quarter, trust_code, metric_id, score, domain``."""
    df = _codes(data, r"OF1\d{3}")[["quarter", "trust_code", "metric_id", "value", "domain"]]
    return df.rename(columns={"value": "score"}).reset_index(drop=True)


def scores_for_average(data: pd.DataFrame) -> pd.DataFrame:
    """The published metric scores in the scoring contract (``quarter, trust_code, metric_id, score, weight,
    combine_group, domain``): every ``OF1xxx`` score except the combined ``OF1080``, with ``OF1079`` and
    ``OF1081`` in combination group ``"finance"`` (which :func:`leaguetables.nof.scoring.combine_scores`
    turns into the combined score). Weight 1, except the infection scores OF1020/OF1048/OF1088 at 1/3 each."""
    df = metric_scores(data)
    df = df[df["metric_id"] != COMBINED_FINANCE].copy()
    df["weight"] = np.where(df["metric_id"].isin(INFECTION_SCORES), 1 / 3, 1.0)
    df["combine_group"] = (
        df["metric_id"]
        .where(df["metric_id"].isin(FINANCE_METRICS))
        .map(lambda m: "finance" if isinstance(m, str) else None)
        .astype("object")
    )
    return df[["quarter", "trust_code", "metric_id", "score", "weight", "combine_group", "domain"]].reset_index(
        drop=True
    )


def summary(data: pd.DataFrame) -> pd.DataFrame:
    """One row per quarter × trust with the published summary: ``average`` (OF5002), ``unadjusted_segment``
    (OF5003), ``segment`` (OF5000, adjusted 1–4), ``in_financial_deficit`` (OF5004 — set for every trust in
    deficit or on deficit support whatever its segment, so it is the override's *input*), ``final_segment``
    (OF5005, incl. 5; Q1–Q2 only), ``recovery_programme`` (OF5007; Q1–Q2 only), ``rank`` (Rank of
    OF5000), plus the register columns."""
    reg = trust_register(data)
    s = _codes(data, r"OF500[0-7]")
    wide = s.pivot(index=["quarter", "trust_code"], columns="metric_id", values="value")
    missing = [c for c in ("OF5000", "OF5002", "OF5003", "OF5004") if c not in wide.columns]
    if missing:
        raise ValueError(f"NOF data has no summary rows {missing}")
    rank = s[s["metric_id"] == "OF5000"].set_index(["quarter", "trust_code"])["rank"]
    out = pd.DataFrame(index=wide.index)
    out["average"] = wide["OF5002"]
    out["unadjusted_segment"] = wide["OF5003"].astype("Int64")
    out["segment"] = wide["OF5000"].astype("Int64")
    out["in_financial_deficit"] = wide["OF5004"].astype("boolean")
    out["final_segment"] = (wide["OF5005"] if "OF5005" in wide else pd.Series(np.nan, index=wide.index)).astype("Int64")
    out["recovery_programme"] = (wide["OF5007"] if "OF5007" in wide else pd.Series(np.nan, index=wide.index)).astype(
        "boolean"
    )
    out["rank"] = rank.reindex(out.index).astype("Int64")
    out = out.reset_index().merge(reg, on=["quarter", "trust_code"], how="left")
    first = ["quarter", "trust_code", "trust_name", "trust_type", "trust_subtype", "region"]
    return out[first + [c for c in out.columns if c not in first]].sort_values(
        ["quarter", "trust_code"], ignore_index=True
    )


def domain_results(data: pd.DataFrame) -> pd.DataFrame:
    """Published domain scores (``OF40xx``) and segments (``OF41xx``): ``quarter, trust_code, domain,
    domain_score, domain_segment``."""
    sc = _codes(data, r"OF40\d{2}")[["quarter", "trust_code", "domain", "value"]].rename(
        columns={"value": "domain_score"}
    )
    sg = _codes(data, r"OF41\d{2}")[["quarter", "trust_code", "domain", "value"]].rename(
        columns={"value": "domain_segment"}
    )
    out = sc.merge(sg, on=["quarter", "trust_code", "domain"], how="outer")
    out["domain_segment"] = out["domain_segment"].astype("Int64")
    return out.sort_values(["quarter", "trust_code", "domain"], ignore_index=True)


def trust_register(data: pd.DataFrame) -> pd.DataFrame:
    """``quarter, trust_code, trust_name, trust_type, trust_subtype, region`` per quarter × trust."""
    cols = ["quarter", "trust_code", "trust_name", "trust_type", "trust_subtype", "region"]
    return (
        data[cols].drop_duplicates(["quarter", "trust_code"]).sort_values(["quarter", "trust_code"], ignore_index=True)
    )


def catalogue_observations(data: pd.DataFrame, catalogue) -> pd.DataFrame:
    """NHS England's published values as observations of the ``nof-2025-26`` catalogue's metrics.

    One row per quarter × trust × catalogue metric: ``quarter, trust_code, trust_type, metric_id, value,
    category, tiebreak`` where ``tiebreak`` is NHS England's published ``Rank`` (within type, from the
    unrounded values) — scoring ranks the 2-dp ``value`` and breaks its ties with it. A metric whose id ends in
    ``_count`` takes the rows of its code published as a count (``Units`` = ``count``: OF0048/OF0088 for small
    specialist trusts) and its plain sibling takes the others (a metric without a ``_count`` sibling, e.g.
    MRSA OF0020, takes all its rows). Bracket metrics (``statistic: bracket``, only a
    score published, e.g. OF1067 CQC safe) take the published score as the category ``"score k"``.
    """
    frames = []
    for m in catalogue.metrics:
        if not m.nof_id:
            continue
        if m.statistic == "bracket":
            rows = data[data["metric_id"] == "OF1" + m.nof_id[3:]]
            rows = rows[rows["value"].notna()]
            value, category, tiebreak = np.nan, "score " + rows["value"].round().astype(int).astype(str), np.nan
        else:
            rows = data[data["metric_id"] == m.nof_id]
            is_count = rows["units"].astype(str).str.strip().str.lower() == "count"
            if m.id.endswith("_count"):
                rows = rows[is_count]
            elif (m.id + "_count") in catalogue.ids:
                rows = rows[~is_count]
            value, category, tiebreak = rows["value"], None, rows["rank"]
        frames.append(
            pd.DataFrame(
                {
                    "quarter": rows["quarter"],
                    "trust_code": rows["trust_code"],
                    "trust_type": rows["trust_type"],
                    "metric_id": m.id,
                    "value": value,
                    "category": category,
                    "tiebreak": tiebreak,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out = out[out["trust_type"].isin(set().union(*[set(m.trust_types) for m in catalogue.metrics]))]
    return out.sort_values(["quarter", "metric_id", "trust_code"], ignore_index=True)


class NoNofData(LookupError):
    """No published NOF file covers the quarter."""


#: What status.csv cannot say from the published files.
NOF_STATUS_NOTE = (
    "Deficit flag from NHS England's OF5004 (in deficit or on deficit support; deficit support is "
    "not published separately, so deficit_support is false); Recovery Support Programme (segment 5) "
    "from OF5007, published for Q1–Q2 only (false where not published)."
)


def load_nof_quarter(quarter: str, real_dir: str | Path | None = None, catalogue=None) -> dict[str, pd.DataFrame]:
    """The four contract tables of one quarter built from NHS England's published NOF files of every trust type
    available (``run_quarter.py QUARTER --source nof``): Q1 2025/26 acute (134) + mental health and community
    (61); Q2–Q4 2025/26 mental health and community only.

    * ``trusts`` — the register of the files (region as published; Q1 acute says 'North East');
    * ``observations`` — :func:`catalogue_observations` of the catalogue (default ``nof-2025-26``): published
      values (2 dp) with the published within-type Rank as ``tiebreak``; bracket-only scores as categories;
    * ``demographics`` — OHID catchment covariates where the real-data root has them (acute trusts), else empty;
    * ``status`` — ``deficit`` = OF5004, ``improvement_programme`` = OF5007 (see :data:`NOF_STATUS_NOTE`).

    Raises :class:`NoNofData` when no published file covers the quarter.
    """
    root = Path(real_dir) if real_dir is not None else DEFAULT_REAL_DIR
    cat = catalogue if catalogue is not None else load_catalogue("nof-2025-26")
    found = find_all_nof_files(root)
    if not found:
        raise NoNofData(f"no published NOF data file under {root} (expected {sorted(NOF_FOLDERS.values())})")
    data = read_all_nof_data(found)
    data = data[data["quarter"] == quarter]
    if data.empty:
        raise NoNofData(f"no published NOF file covers {quarter} (types found: {sorted(found)})")
    reg = trust_register(data).drop(columns="quarter")
    trusts = reg[TRUST_COLUMNS].copy()
    trusts["trust_subtype"] = trusts["trust_subtype"].fillna("")
    obs = catalogue_observations(data, cat)
    obs = obs.assign(numerator=np.nan, denominator=np.nan, suppressed=False)
    obs["category"] = obs["category"].astype(object).where(obs["category"].notna(), None)
    obs = obs[[*OBS_COLUMNS, "tiebreak"]]
    obs = obs[obs["value"].notna() | obs["category"].notna()]
    s = summary(data)
    status = pd.DataFrame(
        {
            "quarter": quarter,
            "trust_code": s["trust_code"].to_numpy(),
            "deficit": s["in_financial_deficit"].fillna(False).astype(bool).to_numpy(),
            "deficit_support": False,
            "improvement_programme": s["recovery_programme"].fillna(False).astype(bool).to_numpy(),
        }
    )
    status.attrs["note"] = NOF_STATUS_NOTE
    demo_dir = root / "trust_catchment_demographics"
    cols = DEMOGRAPHIC_COLUMNS
    if demo_dir.is_dir():
        demo = demographics.trust_demographics(trusts["trust_code"], None, demo_dir)
    else:
        demo = pd.DataFrame({"trust_code": trusts["trust_code"]}).reindex(columns=cols)
    return {
        "trusts": trusts.sort_values("trust_code", ignore_index=True),
        "observations": obs.sort_values(["metric_id", "trust_code"], ignore_index=True),
        "demographics": demo[cols],
        "status": status.sort_values("trust_code", ignore_index=True),
    }
