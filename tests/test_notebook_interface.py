"""Notebooks whose parameters are the whole interface (src/leaguetables/inputs/store.py, run/kernels.py,
run/engine.py).

* The validated inputs written as content-addressed files read back exactly as validated, and a file changed after
  it was written is refused (unit tests, demo data).
* A published metric notebook rerun with plain papermill (the ``papermill`` command, its default engine, a fresh
  kernel) from the parameters recorded in the executed notebook writes the published metric tables byte for byte;
  so do the league notebook and the report notebook (whose export is the published ``index.html`` byte for byte).
* What one notebook hands to the next (bundles: Parquet tables and JSON values) reads back exactly, and a file
  changed after it was written is refused.
* (A quarter published with ``--isolated`` — a fresh kernel per notebook, papermill's default engine — is
  byte-identical to the default run on one warm kernel, no state leaking from one notebook to the next: on the
  corpus base, test_rerun.test_isolated_run_is_byte_identical_to_the_default_run.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

RERUN_METRICS = ("cdiff", "cqc_safe")  # an adjusted metric (model and funnel tables) and a bracket metric


# ------------------------------------------------------------------------------------------------------ the store
def test_validated_inputs_read_back_exactly_as_validated(demo_inputs, tmp_path):
    """Every table of the demo inputs, written to the store and read back: same columns, dtypes, values (floats to
    the last bit) and Python types of the cells; a metric's file holds its rows up to the quarter."""
    from leaguetables.inputs import store

    quarter = demo_inputs.quarters()[-2]
    files = store.write_inputs(demo_inputs, tmp_path, quarter, ["cdiff", "ae_4hr"])
    for kind in ("trusts", "observations", "demographics", "status"):
        back = store.read_frame(kind, getattr(files, kind))
        want = getattr(demo_inputs, kind)
        pd.testing.assert_frame_equal(back, want, check_exact=True)
        for col in want.columns:
            assert back[col].map(type).equals(want[col].map(type)), (kind, col)
    inputs = store.read_inputs(**files.metric("cdiff"))
    obs = inputs.observations
    assert set(obs["metric_id"]) == {"cdiff"} and quarter in set(obs["quarter"])
    assert demo_inputs.quarters()[-1] not in set(obs["quarter"]), "no quarter after the run's"
    assert inputs.quarters() == [q for q in demo_inputs.quarters() if q <= quarter]
    assert inputs.status.empty and list(inputs.status.columns) == list(demo_inputs.status.columns)
    assert files.trusts.stem == store.write_frame(demo_inputs.trusts, tmp_path / "again").stem, "content-addressed"


def test_a_changed_input_file_is_refused(demo_inputs, tmp_path):
    """The name of a stored file is the SHA-256 of its bytes: a file edited after it was written is an InputError
    naming it; so is a file whose values break the contract even with a matching name."""
    import hashlib

    from leaguetables.errors import InputError
    from leaguetables.inputs import store

    path = store.write_frame(demo_inputs.demographics, tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(",0.", ",1.", 1), encoding="utf-8")
    with pytest.raises(InputError, match="SHA-256 is not its name") as exc:
        store.read_frame("demographics", path)
    assert str(path) in str(exc.value)
    bad = text.replace(",0.", ",7.", 1).encode("utf-8")  # a share of 7.x: fails the schema's 0-1 check
    renamed = tmp_path / f"{hashlib.sha256(bad).hexdigest()}.csv"
    renamed.write_bytes(bad)
    with pytest.raises(InputError, match="fails check"):
        store.read_frame("demographics", renamed)


# ------------------------------------------------------------------------------- rerun from the parameters alone
def _recorded_parameters(notebook: Path) -> dict:
    return json.loads(notebook.read_text(encoding="utf-8"))["metadata"]["papermill"]["parameters"]


@pytest.mark.slow
@pytest.mark.parametrize("metric_id", RERUN_METRICS)
def test_published_metric_notebook_reruns_with_plain_papermill(published_quarters, tmp_path, metric_id):
    """``papermill notebooks/metric.ipynb out.ipynb -p …`` with the parameters recorded in the published executed
    notebook (only the two output folders changed) writes tables/metrics/<id>*.csv byte for byte as published."""
    folder = published_quarters[0]
    params = _recorded_parameters(folder / "notebooks" / f"metric_{metric_id}.ipynb")
    assert {"methodology", "catalogue", "trusts", "observations", "demographics", "quarters"} <= set(params)
    assert "context" not in json.dumps(params)
    params |= {"out_dir": str(tmp_path / "out"), "work_dir": str(tmp_path / "work")}
    _papermill("metric.ipynb", params, tmp_path)
    published = sorted(
        p.name
        for p in (folder / "tables" / "metrics").glob(f"{metric_id}*.csv")
        if p.name == f"{metric_id}.csv" or p.name.startswith(f"{metric_id}_")
    )
    rerun = sorted(p.name for p in (tmp_path / "out" / "tables" / "metrics").glob("*.csv"))
    assert rerun == published and f"{metric_id}.csv" in rerun
    for name in published:
        assert (tmp_path / "out" / "tables" / "metrics" / name).read_bytes() == (
            folder / "tables" / "metrics" / name
        ).read_bytes(), name


LEAGUE_TABLES = (
    "league_table.csv",
    "league_table_full.csv",
    "league_table_adjusted.csv",
    "nof_data_long.csv",
    "sensitivity.csv",
    "movement.csv",
    "rankability.csv",
)


@pytest.mark.slow
def test_published_league_notebook_reruns_with_plain_papermill(published_quarters, tmp_path):
    """``papermill notebooks/league_table.ipynb out.ipynb -p …`` with the parameters recorded in the published
    executed league notebook (only the two output folders changed: an empty working folder) writes the published
    league tables byte for byte. The metric notebooks' results are a parameter (``metric_results``: Parquet files in
    the store, named by their SHA-256), not files of the run's working folder."""
    folder = published_quarters[0]
    params = _recorded_parameters(folder / "notebooks" / "league_table.ipynb")
    assert {"methodology", "catalogue", "trusts", "observations", "demographics", "status", "metric_results"} <= set(
        params
    )
    results = [Path(p) for p in params["metric_results"].split(",")]
    assert len(results) == len(list((folder / "notebooks").glob("metric_*.ipynb")))
    assert all(p.is_file() and p.suffix == ".parquet" and p.parent.name == ".inputs" for p in results)
    params |= {"out_dir": str(tmp_path / "out"), "work_dir": str(tmp_path / "work")}
    (tmp_path / "work").mkdir()
    _papermill("league_table.ipynb", params, tmp_path)
    for name in LEAGUE_TABLES:
        assert (tmp_path / "out" / "tables" / name).read_bytes() == (folder / "tables" / name).read_bytes(), name


REPORT_INPUTS = ("run", "league", "metric_results", "revisions")  # what the earlier stages wrote, in the store


@pytest.mark.slow
def test_published_report_notebook_reruns_with_plain_papermill(published_quarters, tmp_path):
    """``papermill notebooks/report.ipynb out.ipynb -p …`` with the parameters recorded in the published executed
    report notebook (only ``out_dir`` changed; the notebook has no working folder) writes the report's tables byte
    for byte, and its export (``documents.export_index``) is the published ``index.html`` byte for byte. The run's
    description, the league and the metric results are parameters: files in the store named by their SHA-256 (a
    JSON bundle names the Parquet tables it holds), not files of the run's working folder."""
    from leaguetables.inputs import bundles
    from leaguetables.publication import documents
    from leaguetables.publication.report import ReportData
    from leaguetables.run import notebook_env

    folder = published_quarters[0]
    params = _recorded_parameters(folder / "notebooks" / "report.ipynb")
    assert {"trusts", "observations", "demographics", "status", *REPORT_INPUTS} <= set(params)
    assert "work_dir" not in params and params["revisions"] == ""
    given = [Path(params["run"]), Path(params["league"]), *map(Path, params["metric_results"].split(","))]
    assert len(given) == 2 + len(list((folder / "notebooks").glob("metric_*.ipynb")))
    stored = given + [f for p in given[1:] for f in bundles.files_of(p)]
    assert all(p.is_file() and p.parent.name == ".inputs" and p.suffix in (".json", ".parquet") for p in stored)
    params["out_dir"] = str(tmp_path / "out")
    _papermill("report.ipynb", params, tmp_path)
    for name in ("productivity.csv", "spc.csv"):
        assert (tmp_path / "out" / "tables" / name).read_bytes() == (folder / "tables" / name).read_bytes(), name
    inputs, methodology, catalogue = notebook_env.load(
        params["methodology"], params["catalogue"], params["trusts"], params["observations"], params["demographics"]
    )
    data = ReportData.load(
        params["out_dir"], inputs, methodology, catalogue, params["quarter"], *(params[k] for k in REPORT_INPUTS)
    )
    documents.export_index(tmp_path / "out.ipynb", tmp_path / "index.html", data)
    assert (tmp_path / "index.html").read_bytes() == (folder / "index.html").read_bytes()


def test_a_changed_bundle_file_is_refused(tmp_path):
    """A bundle's tables and values read back exactly (dtypes, None and NaN in object columns, attrs with tuples);
    a table of a kept bundle edited after it was written is an InputError naming the file."""
    import numpy as np

    from leaguetables.errors import InputError
    from leaguetables.inputs import bundles

    df = pd.DataFrame({"a": [1.0, np.nan, 1 / 3], "b": pd.Series(["x", None, np.nan], dtype=object)})
    df["c"] = pd.array([1, None, 3], dtype="Int64")
    df.attrs = {"cut_points": {"acute": (2.11, 2.44)}}
    path = bundles.write_bundle({"t": df, "empty": pd.DataFrame(), "none": None}, {"k": (1, 2)}, tmp_path, "x")
    kept = bundles.keep_bundle(path, tmp_path / "store")
    frames, values = bundles.read_bundle(kept, "test bundle")
    pd.testing.assert_frame_equal(frames["t"], df, check_exact=True)
    assert frames["t"]["b"].map(type).tolist() == [str, type(None), float]
    assert frames["t"].attrs == df.attrs and values == {"k": (1, 2)}
    assert frames["empty"].empty and frames["none"] is None
    (table,) = bundles.files_of(kept)
    table.write_bytes(table.read_bytes() + b"\0")
    with pytest.raises(InputError, match="SHA-256 is not its name") as exc:
        bundles.read_bundle(kept, "test bundle")
    assert str(table) in str(exc.value)


def _papermill(notebook: str, params: dict, tmp_path: Path) -> None:
    """Run ``notebooks/<notebook>`` with the ``papermill`` command (its default engine, a fresh kernel)."""
    args = [a for k, v in params.items() for a in ("-p", k, str(v))]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "notebooks" / notebook),
            str(tmp_path / "out.ipynb"),
            *args,
            "--no-progress-bar",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------------- the engine
def test_the_warm_kernel_engine_is_registered_through_its_entry_point():
    """papermill finds engine ``leaguetables`` through the package's entry point (pyproject.toml), not through a
    registration made by the pipeline at run time; the entry point resolves to run.engine's class on use, and the
    engine module can be imported before papermill (no import cycle through the entry point)."""
    from importlib.metadata import entry_points

    from leaguetables.run.engine import ENGINE_NAME, WarmKernelEngine

    (ep,) = [e for e in entry_points(group="papermill.engine") if e.name == ENGINE_NAME]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import leaguetables.run.engine as e; e.check_registered(); "
            "from papermill.engines import papermill_engines as p; "
            "print(p.get_engine('leaguetables').execute_notebook.__self__.__module__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "leaguetables.run.engine"
    assert ep.load().execute_notebook.__self__ is WarmKernelEngine


def test_a_reused_kernel_shows_warnings_again_as_a_fresh_one_would():
    """The reset cell's forget_shown_warnings(): a warning already shown once (action "default") is shown again
    after it, as on a fresh kernel — through warnings.catch_warnings, no private attribute."""
    import warnings

    from leaguetables.run.notebook_env import forget_shown_warnings

    def warn():
        warnings.warn("shown once per location", UserWarning, stacklevel=1)

    shown = []
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *a, **k: shown.append(str(message))
        warn()
        warn()
        assert len(shown) == 1, "the default action shows a warning once per location"
        forget_shown_warnings()
        warn()
    assert len(shown) == 2
    source = (ROOT / "src" / "leaguetables" / "run" / "engine.py").read_text(encoding="utf-8")
    assert "_filters_mutated" not in source
