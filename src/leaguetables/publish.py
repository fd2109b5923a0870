"""Publication: tables in NHS England's layouts, the HTML export, the manifest and atomic publishing.

Determinism: CSVs are written sorted, with ``\\n`` line ends and a fixed float format; the HTML is exported from the
executed report notebook with a fixed template and no timestamps; run times live only in ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .config import PROJECT_ROOT, TRUST_TYPE_LABELS, file_sha256
from .contract import quarter_key, quarter_label

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MANIFEST_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill", "nbconvert",
                     "nbclient", "nbformat", "ipykernel", "pandera", "pydantic", "PyYAML", "odfpy", "Jinja2")
UNPUBLISHED = {"_work"}
VOLATILE = {"manifest.json"}  # differs between identical runs (timings); compared separately
MONTHS = {1: "Jun", 2: "Sep", 3: "Dec", 4: "Mar"}


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: UTF-8, ``\\n`` line ends, 10 significant digits, no index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g", encoding="utf-8")


def _range(lo, hi, fmt="{:g}") -> str:
    if pd.isna(lo) or pd.isna(hi):
        return ""
    return f"{fmt.format(lo)} to {fmt.format(hi)}"


def reporting_date(quarter: str) -> str:
    year, q = quarter_key(quarter)
    yy = (year + 1) % 100 if q == 4 else year % 100
    return f"{MONTHS[q]}-{yy:02d}"


def nhse_league_table(table: pd.DataFrame, quarter: str) -> pd.DataFrame:
    """The league table in NHS England's published column layout (nof-methodology.md)."""
    t = table.sort_values(["trust_type", "rank", "trust_code"], kind="mergesort")
    return pd.DataFrame({
        "Quarter": quarter_label(quarter),
        "Region": t["region"].to_numpy(),
        "Trust_type": t["trust_type"].map(TRUST_TYPE_LABELS).to_numpy(),
        "Trust_subtype": t["trust_subtype"].to_numpy(),
        "Trust_code": t["trust_code"].to_numpy(),
        "Trust_name": t["trust_name"].to_numpy(),
        "Average_score": t["average_score"].round(2).to_numpy(),
        "Likely_range_of_average_score": [_range(a, b) for a, b in zip(t["average_lower"], t["average_upper"])],
        "Segment": t["segment"].astype("Int64").to_numpy(),
        "Trust_in_financial_deficit": np.where(t["in_financial_deficit"].to_numpy(bool), "Yes", "No"),
        "Rank": t["rank"].astype("Int64").to_numpy(),
        "Likely_range_of_rank": [_range(a, b, "{:.0f}") for a, b in zip(t["rank_lower"], t["rank_upper"])],
    })


def _competition_rank(values: pd.Series, higher_better: bool) -> pd.Series:
    return (-values if higher_better else values).rank(method="min")


def nhse_long_table(league, catalogue, trusts: pd.DataFrame, quarter: str) -> pd.DataFrame:
    """The long data table in NHS England's layout: metric values (OF0xxx), scores (OF1xxx), OF5000–OF5004."""
    info = trusts.set_index("trust_code")
    rows = []
    res = league.results
    for m in catalogue.metrics:
        sub = res.loc[res["metric_id"] == m.id]
        if sub.empty:
            continue
        code = m.nof_id or m.id
        score_code = ("OF1" + m.nof_id[3:]) if m.nof_id else f"{m.id}_score"
        for ttype, g in sub.groupby("trust_type", sort=True):
            vals = g["value"]
            q1, med, q3 = (vals.quantile([0.25, 0.5, 0.75]).to_numpy() if vals.notna().any()
                           else (np.nan, np.nan, np.nan))
            rank = _competition_rank(vals, m.direction == "higher_better")
            for (_, r), rk in zip(g.iterrows(), rank):
                base = {"Trust_code": r["trust_code"], "Domain": m.domain, "Sub-domain": m.sub_domain}
                if m.statistic == "bracket":
                    value = r["category"] if isinstance(r["category"], str) else np.nan
                else:
                    value = r["value"]
                rows.append({**base, "Metric_ID": code, "Metric_description": m.name, "Units": m.unit,
                             "Value": value, "Median_value": med, "Lower_quartile": q1, "Upper_quartile": q3,
                             "Rank": rk})
                if m.scoring.method != "none":
                    rows.append({**base, "Metric_ID": score_code, "Metric_description": m.name, "Units": "score",
                                 "Value": r["score"], "Median_value": np.nan, "Lower_quartile": np.nan,
                                 "Upper_quartile": np.nan, "Rank": np.nan})
    t = league.table
    for code, desc, col in (("OF5000", "Adjusted segment", "segment"), ("OF5002", "Average metric score",
                            "average_score"), ("OF5003", "Unadjusted segment", "unadjusted_segment"),
                            ("OF5004", "Financial override", "financial_override")):
        for _, r in t.iterrows():
            value = r[col]
            if col == "financial_override":
                value = "Yes" if bool(value) else "No"
            rows.append({"Trust_code": r["trust_code"], "Domain": "Overall", "Sub-domain": "Overall",
                         "Metric_ID": code, "Metric_description": desc, "Units": "score" if code == "OF5002" else "",
                         "Value": value, "Median_value": np.nan, "Lower_quartile": np.nan, "Upper_quartile": np.nan,
                         "Rank": r["rank"] if code == "OF5000" else np.nan})
    long = pd.DataFrame(rows)
    long.insert(0, "Quarter", quarter_label(quarter))
    long.insert(1, "Region", long["Trust_code"].map(info["region"]))
    long.insert(2, "Trust_type", long["Trust_code"].map(info["trust_type"]).map(TRUST_TYPE_LABELS))
    long.insert(3, "Trust_subtype", long["Trust_code"].map(info["trust_subtype"]))
    long.insert(5, "Trust_name", long["Trust_code"].map(info["trust_name"]))
    long.insert(long.columns.get_loc("Units"), "Reporting_date", reporting_date(quarter))
    long = long.sort_values(["Trust_type", "Trust_code", "Metric_ID"], kind="mergesort").reset_index(drop=True)
    return long


# ------------------------------------------------------------------------------------------------------ HTML export
def export_html(executed: Path, out_html: Path, title: str) -> None:
    """Export an executed notebook to clean, offline, deterministic HTML (no code, no prompts, no CDN)."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = title
    for i, cell in enumerate(nb.cells):  # stable ids: the template writes them into the page
        cell["id"] = f"cell-{i}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"injected-parameters", "parameters", "remove-cell"}
    c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    c.HTMLExporter.preprocessors = ["nbconvert.preprocessors.TagRemovePreprocessor"]
    c.HTMLExporter.exclude_input = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.exclude_anchor_links = True
    c.HTMLExporter.embed_images = True
    c.HTMLExporter.extra_template_basedirs = [str(TEMPLATE_DIR)]
    c.HTMLExporter.template_name = "leaguetables"
    exporter = HTMLExporter(config=c)
    body, _ = exporter.from_notebook_node(nb, resources={"language_code": "en"})
    out_html.write_text(body, encoding="utf-8")


# --------------------------------------------------------------------------------------------------------- manifest
def git_state() -> dict:
    def _git(*args):
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha or "unknown", "dirty": bool(dirty) if dirty is not None else None}


def package_versions() -> dict:
    out = {}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _published_files(folder: Path) -> list[Path]:
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in UNPUBLISHED and str(rel) not in VOLATILE:
            files.append(p)
    return files


def write_manifest(prep, staging: Path, timings: dict) -> dict:
    from . import __version__

    opts = prep.options
    inputs = {str(k): {"path": str(Path(v).resolve()), "sha256": file_sha256(Path(v))}
              for k, v in sorted(prep.inputs.files.items())}
    config_files = {
        "methodology": PROJECT_ROOT / "config" / "methodology" / f"{prep.methodology.id}.yaml",
        "catalogue": PROJECT_ROOT / "config" / "catalogues" / f"{prep.catalogue.id}.yaml",
    }
    manifest = {
        "quarter": opts.quarter,
        "code": {"version": __version__, "git": git_state()},
        "parameters": {"source": opts.source, "data": str(Path(prep.data_dir).resolve()), "jobs": opts.jobs,
                       "metrics": prep.metric_ids, "methodology": prep.methodology.id,
                       "catalogue": prep.catalogue.id},
        "methodology": {"id": prep.methodology.id, "version": prep.methodology.version,
                        "catalogue": prep.catalogue.id, "catalogue_version": prep.catalogue.version,
                        "bootstrap_replicates": prep.methodology.bootstrap.replicates,
                        "bootstrap_seed": prep.methodology.bootstrap.seed},
        "config": {k: {"path": str(v.relative_to(PROJECT_ROOT)), "sha256": file_sha256(v)}
                   for k, v in config_files.items() if v.exists()},
        "inputs": inputs,
        "outputs": {str(p.relative_to(staging)): file_sha256(p) for p in _published_files(staging)},
        "environment": {"python": platform.python_version(), "executable": sys.executable,
                        "kernel": "leaguetables", "packages": package_versions()},
        "timings_seconds": timings,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def publish(staging: Path, target: Path) -> Path:
    """Move a complete staging folder into place atomically; the previous version is kept under .superseded/."""
    work = staging / "_work"
    if work.exists():
        shutil.rmtree(work)
    if target.exists():
        archive = target.parent / ".superseded"
        archive.mkdir(exist_ok=True)
        n = len(list(archive.glob(f"{target.name}.*"))) + 1
        os.replace(target, archive / f"{target.name}.{n}")
    os.replace(staging, target)
    return target


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
