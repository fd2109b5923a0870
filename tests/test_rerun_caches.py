"""What a rerun reuses or makes early, checked against making it afresh: the spreadsheet's cells kept by the SHA-256
of a CSV file's bytes (``spreadsheet.SheetCache``), the trust profiles' SPC sections made before the league is read
(``profiles.spc_contexts``), the first difference of two files (``verify.first_difference``) and the kernel
started and warmed while a run validates its inputs (``kernels.NotebookWorker.warm_up``)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import nbformat
import pytest
from tiny_notebook import tiny_notebook

from leaguetables.publication import spreadsheet as ss
from leaguetables.run import engine, kernels, verify

CSV = 'trust_code,status,value,flag,note\nR1,ok,1.5,True,a & b\nR2,suppressed,,False,\nR3,ok,2,True,"<x> ""y"""\n'


def _naive_first_difference(a: bytes, b: bytes) -> int:
    return next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))


@pytest.mark.unit
def test_first_difference_is_the_first_differing_byte():
    """Block by block then byte by byte, the same index as a byte-by-byte scan: a difference at the start, inside,
    at either side of a block boundary, at the end, none (one file a prefix of the other, or both equal)."""
    rng = random.Random(13)
    base = bytes(rng.randrange(256) for _ in range(3 * 4096 + 17))
    cases = [(base, base), (base, base[:-1]), (base[:5000], base), (b"", base), (base, b"")]
    for i in (0, 1, 4095, 4096, 4097, 8191, 8192, len(base) - 1):
        changed = bytearray(base)
        changed[i] ^= 0xFF
        cases.append((base, bytes(changed)))
    for a, b in cases:
        assert verify.first_difference(a, b) == _naive_first_difference(a, b)
        assert verify.first_difference(a, b, block=7) == _naive_first_difference(a, b)


@pytest.mark.unit
def test_sheet_cache_reuses_cells_only_for_the_same_bytes(tmp_path):
    """A CSV file's cells and rows are reused for a file of the same bytes (wherever it is) and made again when the
    bytes change, even at the same path; either way the sheet is the one made without a cache."""
    first, copy = tmp_path / "t.csv", tmp_path / "copy.csv"
    first.write_text(CSV, encoding="utf-8")
    copy.write_text(CSV, encoding="utf-8")
    cache = ss.SheetCache()
    cache.add([first])
    assert cache.table(copy) is cache.table(first)  # the same bytes elsewhere: reused

    def same_as_fresh(path: Path) -> None:
        cached = ss.csv_sheet(path, "t", "title", ["line"], "tables/t.csv", cache)
        fresh = ss.csv_sheet(path, "t", "title", ["line"], "tables/t.csv")
        assert (cached.header, cached.rows, cached.rows_xml()) == (fresh.header, fresh.rows, fresh.rows_xml())
        assert ss.content_xml([cached]) == ss.content_xml([fresh])

    same_as_fresh(first)
    before = cache.table(first)
    first.write_text(CSV.replace("1.5", "1.75"), encoding="utf-8")  # the same path, other bytes: not reused
    assert cache.table(first) is not before
    assert ("float", "1.75") in cache.table(first)[1][0]
    same_as_fresh(first)


@pytest.mark.unit
def test_xml_escapes_as_before():
    """The fast path of xml() (nothing to change) gives what the escaping gives."""
    from xml.sax.saxutils import escape

    for text in ["plain", "1.5", "a & b", "<x>", 'say "y"', "tab\there", "bell\x07", "\ufffe", 3.25, None]:
        expected = escape(ss._XML_INVALID.sub("", str(text)), {'"': "&quot;"})
        assert ss.xml(text) == expected


def test_profiles_spc_sections_made_early_are_those_made_per_page(published_quarters):
    """The SPC sections of every trust profile and the profiles' index (``profiles.ProfileIndex``) made before the
    league is read (as the pipeline makes them while the league notebook runs) are those a profile makes for itself:
    the pages render to the same bytes."""
    from leaguetables.publication import pages, profiles
    from leaguetables.publication.report import ReportData
    from leaguetables.run import notebook_env

    folder = published_quarters[0]
    nb = json.loads((folder / "notebooks" / "report.ipynb").read_text(encoding="utf-8"))
    p = nb["metadata"]["papermill"]["parameters"]
    inputs, methodology, catalogue = notebook_env.load(
        p["methodology"], p["catalogue"], p["trusts"], p["observations"], p["demographics"]
    )
    keys = ("run", "league", "metric_results", "revisions")
    data = ReportData.load(str(folder), inputs, methodology, catalogue, p["quarter"], *(p[k] for k in keys))
    template = pages.environment().get_template("profile.html.j2")
    codes = list(data.league.table["trust_code"])
    builder = profiles.ProfileBuilder(data)  # one builder: its provenance (the git state) is read once
    per_page = [template.render(**builder.context(c)) for c in codes]
    data.profile_spc = profiles.spc_contexts(data)
    assert set(codes) <= set(data.profile_spc)
    early = [template.render(**builder.context(c)) for c in codes]
    assert early == per_page
    assert all(builder._spc(c, t) is data.profile_spc[c] for c, t in zip(codes, data.league.table["trust_type"]))
    data.profile_index = profiles.ProfileIndex(data)  # the index of what the league does not change, made early
    indexed = profiles.ProfileBuilder(data)
    assert indexed.history is data.profile_index.history and indexed.league is not builder.league
    assert [template.render(**indexed.context(c)) for c in codes] == per_page


def _kernel_pid(worker: kernels.NotebookWorker) -> int:
    return worker.km.provisioner.pid  # type: ignore[union-attr]


def test_a_warm_kernel_runs_its_first_notebook_as_a_fresh_one(tmp_path):
    """A worker warmed before its first notebook runs it as a worker that was not: nothing of the warm-up in its
    namespace, history or outputs (no reset cell, the same execution counts); closing a worker whose warm-up is
    still running stops the kernel and removes its socket folder."""
    if not kernels.kernel_available():
        pytest.skip("the project's Jupyter kernel is not registered (make setup)")
    code = "print(sorted(k for k in globals() if not k.startswith('_')), len(In), len(Out))"
    source = tiny_notebook(tmp_path / "nb.ipynb", 'quarter = ""\nx = 1', code)
    outputs = []
    for warm in (True, False):
        worker = kernels.NotebookWorker(tmp_path)
        if warm:
            worker.warm_up(("json", "leaguetables.run.notebook_env")).result()
            assert worker.km is not None and worker.km.has_kernel
        out = tmp_path / f"out-{warm}.ipynb"
        worker.execute(str(source), out, {"quarter": "2025-26-Q4", "x": 2})
        pid = _kernel_pid(worker)
        worker.close()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        cells = nbformat.read(out, as_version=4).cells
        outputs.append([(c.source, c.get("execution_count"), c.get("outputs")) for c in cells])  # ids are random
    assert outputs[0] == outputs[1]
    assert "json" not in outputs[0][-1][2][0]["text"] and "x" in outputs[0][-1][2][0]["text"]

    stopped = kernels.NotebookWorker(tmp_path)
    stopped.warm_up()
    stopped.close()  # at once, the warm-up still running
    assert stopped.km is None and not Path(stopped.ipc_dir).exists()


def test_notebook_client_waits_for_late_output_on_a_loaded_machine(monkeypatch):
    """Every notebook run (warm or isolated: :data:`kernels.PAPERMILL_SETTINGS`) gives nbclient an IOPub timeout far
    above its 4 s default: papermill's client raises on that timeout, and under a load average of ~12 healthy runs
    failed with "Timeout waiting for IOPub output" (seen in the end-to-end group, 1 December 2026)."""
    seen = {}

    class Client:
        def __init__(self, nb_man, **kwargs):
            seen.update(kwargs)
            self.kc = None

        def execute(self):
            return None

    monkeypatch.setattr(engine, "PapermillNotebookClient", Client)
    settings = {k: v for k, v in kernels.PAPERMILL_SETTINGS.items() if k not in ("kernel_name", "progress_bar")}
    engine.WarmKernelEngine.execute_managed_notebook(object(), kernels.KERNEL_NAME, **settings)
    assert seen["iopub_timeout"] == kernels.IOPUB_TIMEOUT >= 60
    assert seen["timeout"] == kernels.EXECUTION_TIMEOUT and seen["startup_timeout"] == kernels.START_TIMEOUT


@pytest.mark.unit
def test_inputs_changed_only_when_a_contract_file_differs_from_the_published_record(tmp_path):
    """The kernel starts before validation (``pipeline.inputs_changed``) exactly when a file the published quarter's
    manifest records has other bytes now (changed, or gone); not for the recorded bytes, a quarter never published,
    a manifest without the record or a source derived from --raw."""
    from leaguetables.config import file_sha256
    from leaguetables.run.pipeline import RunOptions, inputs_changed

    data, out = tmp_path / "data", tmp_path / "reports"
    data.mkdir()
    for name in ("trusts", "observations"):
        (data / f"{name}.csv").write_text(f"{name}\n1\n", encoding="utf-8")
    opts = RunOptions("2025-26-Q4", source="files", data=data, out=out)
    assert not inputs_changed(opts)  # never published
    folder = out / "2025-26-Q4"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}", encoding="utf-8")
    assert not inputs_changed(opts)  # no record of the inputs
    record = {
        n: {"path": str(data / f"{n}.csv"), "sha256": file_sha256(data / f"{n}.csv")}
        for n in ("trusts", "observations")
    }
    (folder / "manifest.json").write_text(json.dumps({"inputs": record}), encoding="utf-8")
    assert not inputs_changed(opts)  # the recorded bytes
    (data / "observations.csv").write_text("observations\n2\n", encoding="utf-8")
    assert inputs_changed(opts)
    assert not inputs_changed(RunOptions("2025-26-Q4", source="nhse", data=data, out=out))
    (data / "observations.csv").write_text("observations\n1\n", encoding="utf-8")
    assert not inputs_changed(opts)
    (data / "trusts.csv").unlink()
    assert inputs_changed(opts)


@pytest.mark.unit
def test_first_changed_agrees_with_the_full_comparison(tmp_path):
    """``verify.first_changed`` (the check of a --force or --revise run) finds a difference exactly when
    ``compare_folders`` does, bar a difference in the executed notebooks, which it leaves to ``compare_folders``:
    a table or page with other bytes, a file only one side has; nothing for identical files."""
    old, new = tmp_path / "old", tmp_path / "new"
    files = {"tables/league_table.csv": "a,b\n1,2\n", "index.html": "<p>x</p>", "trusts/R1.html": "<p>r1</p>"}
    for root in (old, new):
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
    assert verify.first_changed(old, new) is None and verify.compare_folders(old, new).identical
    (new / "trusts" / "R1.html").write_text("<p>r2</p>", encoding="utf-8")  # the same size, other bytes
    quick = verify.first_changed(old, new)
    assert quick is not None and [d.path for d in quick.differences] == ["trusts/R1.html"]
    assert not verify.compare_folders(old, new).identical
    (new / "tables" / "league_table.csv").write_text("a,b\n1,3\n", encoding="utf-8")
    assert [d.path for d in verify.first_changed(old, new).differences] == ["tables/league_table.csv"]  # tables first
    (new / "trusts" / "R1.html").write_text("<p>r1</p>", encoding="utf-8")
    (new / "tables" / "league_table.csv").write_text(files["tables/league_table.csv"], encoding="utf-8")
    (new / "methodology.html").write_text("<p>m</p>", encoding="utf-8")
    assert [d.path for d in verify.first_changed(old, new).differences] == ["methodology.html"]
    (new / "methodology.html").unlink()
    (old / "regions").mkdir()
    (old / "regions" / "london.html").write_text("<p>l</p>", encoding="utf-8")
    assert verify.first_changed(old, new).differences[0].summary == "only in the published version"
