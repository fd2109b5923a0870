"""The report page's export (``publication.notebook_html.export_html``): what a reader sees of an executed notebook."""

from __future__ import annotations

import nbformat
import pytest

from leaguetables.publication.notebook_html import export_html

pytestmark = pytest.mark.unit


def test_stderr_warnings_stay_in_the_notebook_and_never_reach_the_page(tmp_path):
    """A warning a kernel wrote to stderr (it names the machine's paths: the All-NaN warning once published with
    --source nof) is kept in the executed notebook, the audit trail, but not exported; stdout and display outputs
    are."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="/home/someone/report.py:511: RuntimeWarning: boom\n"),
        nbformat.v4.new_output("stream", name="stdout", text="written 3 tables\n"),
        nbformat.v4.new_output("display_data", data={"text/html": "<p>Key findings</p>"}),
    ]
    nb.cells = [cell]
    executed = tmp_path / "report.ipynb"
    nbformat.write(nb, executed)
    out = tmp_path / "index.html"
    export_html(executed, out, title="Test")
    page = out.read_text(encoding="utf-8")
    assert "<p>Key findings</p>" in page and "written 3 tables" in page
    assert "RuntimeWarning" not in page and "/home/someone" not in page
    assert "RuntimeWarning" in executed.read_text(encoding="utf-8")
