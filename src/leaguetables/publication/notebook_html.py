"""An executed notebook exported to clean, offline, deterministic HTML with the project's nbconvert template."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets.config import Config

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"


def export_html(
    executed: Path, out_html: Path, title: str, site_label: str = "Not an official statistic", search_data: str = ""
) -> None:
    """Export an executed notebook to clean, offline, deterministic HTML (no code, no prompts, no CDN).
    ``search_data``: the search box's list of trusts (JSON, :func:`leaguetables.publication.finder.search_json`)."""
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

    class _Exporter(HTMLExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            if _NOTEBOOK_AREA.search(html):
                return super().from_notebook_node(nb, resources, **kw)
            html = _IMG_NO_ALT.sub(r'<img alt="No description has been provided for this image"\1>', html)
            return html, resources

    _EXPORTER.append(_Exporter)
    return _Exporter
