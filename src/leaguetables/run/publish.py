"""Publication: tables in NHS England's layouts, the HTML export, the manifest and atomic publishing.

Determinism: CSVs are written sorted, with ``\\n`` line ends and a fixed float format; the HTML is exported from the
executed report notebook with a fixed template and no timestamps; run times live only in ``manifest.json``.

Atomic publishing: a quarter is built in ``<out>/.staging-<quarter>/`` under an exclusive lock
(``<out>/.lock-<quarter>``, released by the kernel when the process dies) and moved into place by
:func:`publish` only when everything has succeeded. Replacing a published quarter is one atomic exchange of the two
folders (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), journalled in
``<out>/.publishing-<quarter>.json`` so that :func:`recover` can finish the job after a kill: at every moment
``<out>/<quarter>/`` is either the previous complete version or the new complete one. The previous version is kept
under ``<out>/.superseded/<quarter>.<n>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from leaguetables.config import PROJECT_ROOT, TRUST_TYPE_LABELS, file_sha256
from leaguetables.inputs.contract import quarter_key, quarter_label

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
MANIFEST_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill", "nbconvert",
                     "nbclient", "nbformat", "ipykernel", "pandera", "pydantic", "PyYAML", "odfpy", "Jinja2")
UNPUBLISHED = {"_work", "review"}  # top-level folders of a quarter that are not part of the publication
VOLATILE = {"manifest.json"}  # differs between identical runs (timings); compared separately
STAGING_PREFIX = ".staging-"
SUPERSEDED_DIR = ".superseded"
CODE_PATHS = ("src", "notebooks", "config", "requirements.lock", "pyproject.toml")  # what the outputs depend on
MONTHS = {1: "Jun", 2: "Sep", 3: "Dec", 4: "Mar"}


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting with these as a formula
_NUMERIC_TEXT = re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?( to -?\d+(\.\d+)?)?", re.IGNORECASE)
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_cell(value):
    """Text that is safe in a spreadsheet cell (OWASP, CSV injection): a string beginning with ``=``, ``+``, ``-``,
    ``@``, tab or carriage return is prefixed with a single quote, so that Excel, LibreOffice and Google Sheets
    show it as text instead of evaluating it (``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``). Numbers written as text by the
    project (``-1.6``, ``-1.6 to 2.00``) are left alone; control and bidirectional-override characters (refused in
    the inputs) are removed as a last line of defence. Anything that is not a string is returned unchanged."""
    if not isinstance(value, str):
        return value
    value = _UNSAFE_TEXT.sub("", value)
    if value.startswith(FORMULA_START) and not _NUMERIC_TEXT.fullmatch(value):
        return "'" + value
    return value


def published_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame as it may be published: ±infinity (a figure that could not be computed, e.g. a log of zero events)
    becomes empty — ``[x]`` in the spreadsheet — and every text cell is made spreadsheet-safe (:func:`safe_cell`).
    Returns the frame and the number of non-finite values blanked per column."""
    out = df.copy()
    blanked = {}
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_float_dtype(col.dtype):
            bad = np.isinf(col.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                blanked[str(c)] = int(bad.sum())
                out[c] = col.mask(bad)
        elif pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype):
            vals = col.to_numpy(dtype=object)
            bad = np.array([isinstance(v, float) and bool(np.isinf(v)) for v in vals], dtype=bool).reshape(-1)
            if bad.any():
                blanked[str(c)] = int(bad.sum())
            out[c] = pd.Series([None if b else safe_cell(v) for v, b in zip(vals, bad)], index=out.index,
                               dtype=object)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out, blanked


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Deterministic CSV: UTF-8, ``\\n`` line ends, 10 significant digits, no index; no non-finite number and no
    cell a spreadsheet would evaluate (:func:`published_frame`). A value blanked for being non-finite is reported
    as a warning (a one-line note in run_quarter.py's output)."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    df, blanked = published_frame(df)
    for col, n in blanked.items():
        warnings.warn(f"{path.name}: {n} value(s) of {col} could not be computed (not finite); published as "
                      "empty ([x] in the spreadsheet)", stacklevel=2)
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g", encoding="utf-8")


def _range(lo, hi, fmt="{:.2f}") -> str:
    """``1.25 to 2.00`` (two decimals, as the HTML prints it); empty when either end is missing or not finite."""
    if pd.isna(lo) or pd.isna(hi) or not (np.isfinite(lo) and np.isfinite(hi)):
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
        "Trust_in_financial_deficit": ["[x]" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                                       else "Yes" if bool(v) else "No" for v in t["in_financial_deficit"]],
        "Rank": t["rank"].astype("Int64").to_numpy(),
        "Likely_range_of_rank": [_range(a, b, "{:.0f}") for a, b in zip(t["rank_lower"], t["rank_upper"])],
    })


def _competition_rank(values: pd.Series, higher_better: bool) -> pd.Series:
    return (-values if higher_better else values).rank(method="min")


def _nof_row(codes, code: str, ttype: str, quarter: str) -> dict:
    """Metric_ID, Metric_description, Domain, Sub-domain, Units and Reporting_date of an NHS England code."""
    from leaguetables.nof.codes import reporting_date as nof_date
    from leaguetables.nof.codes import units as nof_units

    e = codes.get(code)
    return {"Metric_ID": code, "Metric_description": e.description, "Domain": e.domain, "Sub-domain": e.sub_domain,
            "Units": nof_units(e, ttype), "Reporting_date": nof_date(e, quarter, ttype)}


def nhse_long_table(league, catalogue, trusts: pd.DataFrame, quarter: str, codes=None) -> pd.DataFrame:
    """The long data table in NHS England's layout, with NHS England's own codes and labels only.

    Rows: metric values (``OF0xxx``) and scores (``OF1xxx``) of every catalogue metric whose ``nof_id`` is an
    NHS England code in the registry (:mod:`leaguetables.nof.codes`); the combined-finance score (the combine
    group's ``nof_id``, ``OF1080``); domain scores and segments (``OF40xx``/``OF41xx``); ``OF5000`` adjusted
    segment 1–4 (its Rank = league position), ``OF5002`` average, ``OF5003`` unadjusted segment, ``OF5004``
    the deficit flag (1 = in deficit or on deficit support: the override's *input*, as NHS England publishes
    it), ``OF5005`` final segment 1–5 and ``OF5007`` Recovery Support Programme flag. Metric_description,
    Domain, Sub-domain, Units and Reporting_date come from the registry, so the file joins NHS England's
    published file row for row. Metrics without an NHS England code are *not* written here: they are in the
    project's own tables (``tables/metrics/<metric>.csv``).
    """
    from leaguetables.nof.codes import load_nof_codes

    codes = codes if codes is not None else load_nof_codes()
    info = trusts.set_index("trust_code")
    rows = []
    res = league.results
    for m in catalogue.metrics:
        sub = res.loc[res["metric_id"] == m.id]
        if sub.empty or not m.nof_id:
            continue
        value_code, score_code = m.nof_id, "OF1" + m.nof_id[3:]
        has_value = codes.get(value_code) is not None
        has_score = m.scoring.method != "none" and codes.get(score_code) is not None
        if not (has_value or has_score):
            continue
        for ttype, g in sub.groupby("trust_type", sort=True):
            vals = g["value"]
            q1, med, q3 = (vals.quantile([0.25, 0.5, 0.75]).to_numpy() if vals.notna().any()
                           else (np.nan, np.nan, np.nan))
            rank = _competition_rank(vals, m.direction == "higher_better")
            for (_, r), rk in zip(g.iterrows(), rank):
                # NHS England lists a trust under a metric only when it has a figure
                if has_value and m.statistic != "bracket" and pd.notna(r["value"]):
                    row = _nof_row(codes, value_code, ttype, quarter)
                    if m.unit == "count":  # e.g. OF0048/OF0088 published as a count for small specialist trusts
                        row["Units"] = "count"
                    rows.append({"Trust_code": r["trust_code"], **row,
                                 "Value": r["value"], "Median_value": med, "Lower_quartile": q1,
                                 "Upper_quartile": q3, "Rank": rk})
                if has_score and pd.notna(r["score"]):
                    rows.append({"Trust_code": r["trust_code"], **_nof_row(codes, score_code, ttype, quarter),
                                 "Value": r["score"], "Median_value": np.nan, "Lower_quartile": np.nan,
                                 "Upper_quartile": np.nan, "Rank": rk if has_value else np.nan})
    t = league.table
    ttypes = t.set_index("trust_code")["trust_type"]
    # combined finance (the combine group's NHS England code)
    scores = getattr(league, "scores", None)
    if scores is not None and len(scores):
        from leaguetables.nof.league import combine_rules
        from leaguetables.nof.scoring import combine_scores
        for name, g in catalogue.combine_groups.items():
            if not g.nof_id or codes.get(g.nof_id) is None:
                continue
            sc = scores.dropna(subset=["score"])
            units = combine_scores(sc[["trust_code", "metric_id", "score", "weight", "combine_group", "domain"]],
                                   combine_rules(catalogue))
            for _, r in units[units["metric_id"] == name].iterrows():
                if r["trust_code"] in ttypes.index:
                    rows.append({"Trust_code": r["trust_code"],
                                 **_nof_row(codes, g.nof_id, ttypes[r["trust_code"]], quarter),
                                 "Value": r["score"], "Median_value": np.nan, "Lower_quartile": np.nan,
                                 "Upper_quartile": np.nan, "Rank": np.nan})
    # domain scores and segments
    by_desc = {e.description: c for c, e in codes.codes.items()}
    dom_cols = [c for c in t.columns if c.startswith("domain_score_")]
    domain_names = {}
    for m in catalogue.metrics:
        domain_names[_slug(m.domain)] = m.domain
    for col in dom_cols:
        slug = col[len("domain_score_"):]
        name = domain_names.get(slug)
        for kind, prefix in (("score", "domain_score_"), ("segment", "domain_segment_")):
            code = by_desc.get(f"{name} domain {kind}") if name else None
            if code is None or f"{prefix}{slug}" not in t.columns:
                continue
            for _, r in t.iterrows():
                v = r[f"{prefix}{slug}"]
                if pd.isna(v):
                    continue
                rows.append({"Trust_code": r["trust_code"], **_nof_row(codes, code, r["trust_type"], quarter),
                             "Value": v, "Median_value": np.nan, "Lower_quartile": np.nan,
                             "Upper_quartile": np.nan, "Rank": np.nan})
    # OF5000 is the segment after the financial override (1–4): segment 5 is a judgement published in OF5005
    moved = t["unadjusted_segment"].astype("Int64").mask(t["financial_override"].astype(bool),
                                                          t.attrs.get("to_segment", 3))
    adjusted = t["segment"].astype("Int64").where(t["segment"].astype("Int64") != 5, moved)
    deficit = t["in_financial_deficit"]
    unknown_finance = deficit.isna()  # no finance status in the inputs: [x], never a default
    summary = {
        "OF5000": adjusted,
        "OF5002": t["average_score"],
        "OF5003": t["unadjusted_segment"].astype("Int64"),
        "OF5004": pd.Series([("[x]" if u else int(bool(d))) for u, d in zip(unknown_finance, deficit)],
                            index=t.index, dtype=object),
        "OF5005": t["segment"].astype("Int64"),
        "OF5007": (t["segment"].astype("Int64") == 5).fillna(False).astype(int),
    }
    for code, values in summary.items():
        if codes.get(code) is None:
            continue
        for (_, r), v in zip(t.iterrows(), values):
            rows.append({"Trust_code": r["trust_code"], **_nof_row(codes, code, r["trust_type"], quarter),
                         "Value": v, "Median_value": np.nan, "Lower_quartile": np.nan, "Upper_quartile": np.nan,
                         "Rank": r["rank"] if code == "OF5000" else np.nan})
    long = pd.DataFrame(rows)
    long.insert(0, "Quarter", quarter_label(quarter))
    long.insert(1, "Region", long["Trust_code"].map(info["region"]))
    long.insert(2, "Trust_type", long["Trust_code"].map(info["trust_type"]).map(TRUST_TYPE_LABELS))
    long.insert(3, "Trust_subtype", long["Trust_code"].map(info["trust_subtype"]))
    long.insert(5, "Trust_name", long["Trust_code"].map(info["trust_name"]))
    long = long[NHSE_LONG_COLUMNS]
    long = long.sort_values(["Trust_type", "Trust_code", "Metric_ID"], kind="mergesort").reset_index(drop=True)
    return long


NHSE_LONG_COLUMNS = ["Quarter", "Region", "Trust_type", "Trust_subtype", "Trust_code", "Trust_name", "Domain",
                     "Sub-domain", "Metric_ID", "Metric_description", "Reporting_date", "Units", "Value",
                     "Median_value", "Lower_quartile", "Upper_quartile", "Rank"]


def _slug(text: str) -> str:
    from leaguetables.nof.scoring import _slug as slug
    return slug(text)


# ------------------------------------------------------------------------------------------------------ HTML export
def export_html(executed: Path, out_html: Path, title: str, site_label: str = "Not an official statistic",
                search_data: str = "") -> None:
    """Export an executed notebook to clean, offline, deterministic HTML (no code, no prompts, no CDN).
    ``search_data``: the search box's list of trusts (JSON, :func:`leaguetables.publication.finder.search_json`)."""
    import nbformat
    from traitlets.config import Config

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = title
    nb.metadata["site_label"] = site_label
    if search_data:
        nb.metadata["lt_search_data"] = search_data
    # the kernel-reset cell exists only when the notebook ran on a reused kernel: never part of the page, and it
    # must not shift the numbering of the cells below
    nb.cells = [c for c in nb.cells if c.get("id") != "kernel-reset"]
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
    exporter = _exporter_class()(config=c)
    body, _ = exporter.from_notebook_node(nb, resources={"language_code": "en"})
    out_html.write_text(body, encoding="utf-8")


_NOTEBOOK_AREA = re.compile(r'class="[^"]*(?<![\w-])jp-Notebook(?![\w-])')
_IMG_NO_ALT = re.compile(r"<img(?![^>]*\balt=)([^>]*)>")
_EXPORTER: list = []


def _exporter_class():
    """nbconvert's HTMLExporter without its final BeautifulSoup pass.

    ``HTMLExporter.from_notebook_node`` re-parses and re-serialises the whole page with BeautifulSoup only to give
    ``<img>`` elements without ``alt`` a placeholder and to make the inputs and outputs inside a ``.jp-Notebook``
    element focusable. The report has neither (figures are inline SVG with ``<title>``/``<desc>``; the template has
    no ``.jp-Notebook`` element), and the pass costs ~3 s on a 1.4 MB report — most of the export. Same work
    without the re-parse: a placeholder ``alt`` added by a regular expression; a page that does contain a
    ``.jp-Notebook`` element goes through nbconvert's own pass unchanged.
    """
    if _EXPORTER:
        return _EXPORTER[0]
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class _Exporter(HTMLExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                     resources=resources)
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            if _NOTEBOOK_AREA.search(html):
                return super().from_notebook_node(nb, resources, **kw)
            html = _IMG_NO_ALT.sub(r'<img alt="No description has been provided for this image"\1>', html)
            return html, resources

    _EXPORTER.append(_Exporter)
    return _Exporter


# --------------------------------------------------------------------------------------------------------- manifest
def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict:
    """The commit of the code that produced the outputs, for the provenance shown in the published pages.

    ``sha`` is the last commit that changed the code, notebooks, configuration or locked environment
    (:data:`CODE_PATHS`), not ``HEAD``: a commit that touches only documentation or tests leaves every published
    page byte-identical, so a rerun stays a no-op. ``dirty`` is true when those paths have uncommitted changes.
    """
    head = _git("rev-parse", "HEAD")
    code = _git("log", "-1", "--format=%H", "--", *CODE_PATHS)
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"sha": code or head or "unknown", "head": head or "unknown",
            "dirty": bool(dirty) if dirty is not None else None}


def package_versions() -> dict:
    from leaguetables.run.notebook_env import versions

    return versions(MANIFEST_PACKAGES)


def published_files(folder: Path) -> list[Path]:
    """The files of a quarter's folder that are part of the publication (sorted): everything but the working
    folder, review artefacts and the manifest."""
    files = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in UNPUBLISHED and str(rel) not in VOLATILE:
            files.append(p)
    return files


_published_files = published_files  # the former private name


def write_manifest(prep, staging: Path, timings: dict, cache: dict | None = None) -> dict:
    from leaguetables import __version__

    opts = prep.options
    inputs = {str(k): {"path": str(Path(v).resolve()), "sha256": file_sha256(Path(v))}
              for k, v in sorted(prep.inputs.files.items())}
    config_files = {"methodology": getattr(prep, "methodology_path", None)
                    or PROJECT_ROOT / "config" / "methodology" / f"{prep.methodology.id}.yaml",
                    "catalogue": getattr(prep, "catalogue_path", None)
                    or PROJECT_ROOT / "config" / "catalogues" / f"{prep.catalogue.id}.yaml"}

    def _rel(p: Path) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(PROJECT_ROOT)) if p.is_relative_to(PROJECT_ROOT) else str(p)

    manifest = {
        "quarter": opts.quarter,
        "code": {"version": __version__, "git": git_state()},
        "parameters": {"source": opts.source, "data": str(Path(prep.data_dir).resolve()), "jobs": opts.jobs,
                       "metrics": prep.metric_ids, "methodology": prep.methodology.id,
                       "catalogue": prep.catalogue.id,
                       # what to pass to run_quarter.py to rerun exactly this (used by --verify)
                       "methodology_arg": str(opts.methodology),
                       "catalogue_arg": None if opts.catalogue is None else str(opts.catalogue),
                       "raw": str(Path(opts.raw).resolve()) if opts.source == "nhse" else None,
                       "metrics_arg": list(opts.metrics) if opts.metrics else None,
                       # a --metrics run leaving out metrics with data: marked in the title and banner too
                       "partial": bool(getattr(prep, "omitted", None)),
                       "omitted_metrics": list(getattr(prep, "omitted", None) or [])},
        "methodology": {"id": prep.methodology.id, "version": prep.methodology.version,
                        "catalogue": prep.catalogue.id, "catalogue_version": prep.catalogue.version,
                        "bootstrap_replicates": prep.methodology.bootstrap.replicates,
                        "bootstrap_seed": prep.methodology.bootstrap.seed},
        "config": {k: {"path": _rel(v), "sha256": file_sha256(Path(v))}
                   for k, v in config_files.items() if Path(v).exists()},
        "inputs": inputs,
        "outputs": {str(p.relative_to(staging)): file_sha256(p) for p in published_files(staging)},
        "environment": {"python": platform.python_version(), "executable": sys.executable,
                        "kernel": "leaguetables", "packages": package_versions()},
        "timings_seconds": timings,
        "cache": cache or {},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ atomic publishing
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


KILL_ENV = "LEAGUETABLES_KILL_AT"  # tests: the named stage at which the process kills itself (SIGKILL)
FAIL_ENV = "LEAGUETABLES_FAIL_AT"  # tests: the named stage at which the run fails (PipelineError)
STAGES = ("validated", "claimed", "staging", "metrics", "league", "report", "publication", "manifest",
          "publish-journal", "publish-exchanged", "published")


def checkpoint(stage: str) -> None:
    """A named stage of a run. When the environment variable :data:`KILL_ENV` names it, the process kills itself
    there with SIGKILL (no cleanup of any kind: the test of what a ``kill -9`` at that moment leaves behind)."""
    assert stage in STAGES, stage
    if os.environ.get(KILL_ENV) == stage:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_ENV) == stage:
        from leaguetables.errors import PipelineError

        raise PipelineError(f"stage {stage} failed ({FAIL_ENV} is set)")


def journal_path(out_root: Path, quarter: str) -> Path:
    return Path(out_root) / f".publishing-{quarter}.json"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def superseded_path(out_root: Path, quarter: str) -> Path:
    """The next free ``<out>/.superseded/<quarter>.<n>`` (n = 1 + the highest number already used)."""
    archive = Path(out_root) / SUPERSEDED_DIR
    archive.mkdir(exist_ok=True)
    used = [int(m.group(1)) for p in archive.iterdir()
            if (m := re.fullmatch(re.escape(quarter) + r"\.(\d+)", p.name))]
    return archive / f"{quarter}.{max(used, default=0) + 1}"


def _manifest_sha(folder: Path) -> str | None:
    path = Path(folder) / "manifest.json"
    return file_sha256(path) if path.is_file() else None


def publish(staging: Path, target: Path) -> Path:
    """Move a complete staging folder into place atomically; the previous version is kept under .superseded/.

    Call with the quarter's lock held (:func:`quarter_lock`). ``target`` is at every moment either the previous
    complete version or the new complete one; a kill part-way is finished by :func:`recover` on the next run.
    """
    staging, target = Path(staging), Path(target)
    work = staging / "_work"
    if work.exists():
        shutil.rmtree(work)
    out_root = target.parent
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(out_root)
        return target
    archive = superseded_path(out_root, target.name)
    journal = journal_path(out_root, target.name)
    _write_atomic(journal, json.dumps({"staging": str(staging), "target": str(target), "archive": str(archive),
                                       "new_manifest": _manifest_sha(staging)}, indent=1))
    checkpoint("publish-journal")
    if _exchange(staging, target):  # target is now the new version, staging the previous one
        checkpoint("publish-exchanged")
        os.rename(staging, archive)
    else:  # two renames: recover() rolls forward if killed between them
        os.rename(target, archive)
        checkpoint("publish-exchanged")
        os.rename(staging, target)
    _fsync_dir(out_root)
    journal.unlink()
    return target


def recover(out_root: Path, quarter: str) -> str | None:
    """Finish a publication of ``quarter`` interrupted by a kill (call with the quarter's lock held).

    Returns what was done, or None when there was nothing to recover.
    """
    journal = journal_path(out_root, quarter)
    if not journal.exists():
        return None
    try:
        info = json.loads(journal.read_text(encoding="utf-8"))
        staging, target, archive = Path(info["staging"]), Path(info["target"]), Path(info["archive"])
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink()
        return "removed an unreadable publishing journal"
    root = Path(out_root).resolve()
    if (staging.resolve() != staging_path(root, quarter).resolve() or target.resolve() != (root / quarter).resolve()
            or archive.resolve().parent != (root / SUPERSEDED_DIR).resolve()
            or not re.fullmatch(re.escape(quarter) + r"\.\d+", archive.name)):
        journal.unlink()  # not a journal this project wrote for this folder: its paths are never acted on
        return "removed a publishing journal naming paths outside its quarter"
    done = None
    if staging.exists() and target.exists():
        if _manifest_sha(staging) != info.get("new_manifest"):
            # the exchange happened: staging holds the previous version, which is archived as planned
            archive.parent.mkdir(exist_ok=True)
            os.rename(staging, archive if not archive.exists() else superseded_path(out_root, quarter))
            done = f"archived the previous version of {quarter} after an interrupted publication"
        # else the exchange never happened: the published version is untouched; staging is stale
    elif staging.exists() and not target.exists():
        os.rename(staging, target)  # killed between the two renames: roll forward
        done = f"finished an interrupted publication of {quarter}"
    elif not target.exists() and archive.exists():
        os.rename(archive, target)
        done = f"restored {quarter} from {archive.name} after an interrupted publication"
    _fsync_dir(Path(out_root))
    journal.unlink()
    return done


class LockBusy(Exception):
    """Another process holds the quarter's lock."""


@contextlib.contextmanager
def quarter_lock(out_root: Path, quarter: str):
    """Exclusive, non-blocking lock of one quarter's folder; the kernel releases it if the process dies."""
    import fcntl

    fd = os.open(Path(out_root) / f".lock-{quarter}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(quarter) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def staging_path(out_root: Path, quarter: str) -> Path:
    return Path(out_root) / f"{STAGING_PREFIX}{quarter}"


def _staging_quarter(name: str) -> str | None:
    """The quarter of a staging folder's name — only the exact name the pipeline creates (``.staging-<quarter>``):
    ``.staging-2025-26-Q4.backup`` is somebody else's folder and is never touched."""
    m = re.fullmatch(re.escape(STAGING_PREFIX) + r"(\d{4}-\d{2}-Q[1-4])", name)
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------------- the output folder
OWNER_MARKER = ".leaguetables-reports"  # a reports folder the project created or adopted holds this file
QUARTER_NAME = re.compile(r"\d{4}-\d{2}-Q[1-4]")
# the names the pipeline creates directly under the reports folder (its namespace); nothing else is ever touched
_NAMESPACE = re.compile(r"\.staging-.*|\.lock-.*|\.publishing-.*|\.cache|\.failed|\.superseded|"
                        + re.escape(OWNER_MARKER) + r"|\d{4}-\d{2}-Q[1-4].*")


def _is_own_quarter(path: Path) -> bool:
    """A quarter folder published by this project before the marker existed: its manifest says so."""
    m = read_manifest(path) if path.is_dir() else None
    return bool(m) and m.get("quarter") == path.name and isinstance(m.get("code"), dict) and "outputs" in m


def foreign_entries(out_root: Path) -> list[str]:
    """Entries of ``out_root`` in the pipeline's namespace that the pipeline did not create (without the marker)."""
    out = []
    for p in sorted(Path(out_root).iterdir()):
        if not _NAMESPACE.fullmatch(p.name):
            continue  # not a name the pipeline uses: never read, changed or removed
        if QUARTER_NAME.fullmatch(p.name) and _is_own_quarter(p):
            continue
        out.append(p.name)
    return out


def claim_out(out_root: Path) -> Path:
    """Make ``out_root`` the project's reports folder, or refuse it (:class:`InputError`, one line).

    * a new folder is created with the marker file :data:`OWNER_MARKER`; a folder with the marker is the project's;
    * an existing folder without the marker is adopted (the marker written) only when nothing in it uses a name the
      pipeline creates (``<quarter>/``, ``.staging-*``, ``.cache``, ``.failed``, ``.superseded``, ``.lock-*``,
      ``.publishing-*``) — except quarter folders whose manifest shows this project published them. Other files in
      it are never read, changed or removed;
    * a path that is a file, or a folder that cannot be written, is refused.
    """
    from leaguetables.errors import InputError

    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"--out {out_root} is a file, not a folder")
    marker = out_root / OWNER_MARKER
    try:
        if not out_root.exists():
            out_root.mkdir(parents=True)
        elif not marker.is_file():
            foreign = foreign_entries(out_root)
            if foreign:
                raise InputError(f"--out {out_root} is not a reports folder of this project (no {OWNER_MARKER} "
                                 f"file) and already holds {', '.join(repr(f) for f in foreign[:5])}"
                                 f"{' …' if len(foreign) > 5 else ''}, names the pipeline would write; choose a new "
                                 "or empty folder (nothing was changed)")
        if not os.access(out_root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        if not marker.is_file():
            _write_atomic(marker, json.dumps({"created_by": "leaguetables run_quarter.py", "note": (
                "This folder holds NHS trust league tables published by run_quarter.py. The pipeline creates, "
                "replaces and removes only the entries it owns here: <quarter>/, .staging-<quarter>, "
                ".publishing-<quarter>.json, .lock-<quarter>, .cache/, .failed/.staging-<quarter>, .superseded/; "
                "anything else is left alone.")}, indent=1) + "\n")
        probe = out_root / f".lock-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"--out {out_root} cannot be written ({exc.strerror or exc})") from None
    return out_root


def cleanup_stale(out_root: Path, own_quarter: str | None = None) -> list[str]:
    """Recover interrupted publications and remove staging folders left by killed runs.

    A staging folder is stale when no live run holds its quarter's lock. The caller holds the lock of
    ``own_quarter`` (its own staging folder is stale by definition: the caller is about to recreate it).
    """
    out_root = Path(out_root)
    done = []
    quarters = {q for p in out_root.glob(f"{STAGING_PREFIX}*") if (q := _staging_quarter(p.name))}
    quarters |= {m.group(1) for p in out_root.glob(".publishing-*.json")
                 if (m := re.fullmatch(r"\.publishing-(\d{4}-\d{2}-Q[1-4])\.json", p.name))}
    for quarter in sorted(quarters):
        if not re.fullmatch(r"\d{4}-\d{2}-Q[1-4]", quarter):
            continue

        def _clean(q=quarter):
            note = recover(out_root, q)
            if note:
                done.append(note)
            p = staging_path(out_root, q)  # the exact name only: never .staging-<q>.backup or the like
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed stale {p.name}")

        if quarter == own_quarter:
            _clean()
            continue
        try:
            with quarter_lock(out_root, quarter):
                _clean()
        except LockBusy:
            continue  # a live run of that quarter: leave its staging folder alone
    return done


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
