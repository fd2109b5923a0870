"""The one HTML system of the publication: a Jinja2 environment for every page and every section of the front page.

Pages (trust profiles, methodology, metric, area and index pages) extend ``templates/pages/base.html.j2``; the
sections of the front page (``templates/pages/report/*.html.j2``) are rendered by :func:`section` and shown by the
report notebook, whose nbconvert template includes the same stylesheet, skip link, header, footer and shared slots
(``templates/leaguetables``), so a reader moving from the report to a profile sees one publication. Autoescaping is on: every data-derived string is escaped
unless the code wraps it in :class:`markupsafe.Markup` after escaping its parts itself (sparklines, links).
Pages are written with ``\\n`` line ends and no timestamps, so the same data always give the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(TEMPLATE_DIR / "pages"), str(TEMPLATE_DIR / "leaguetables")]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


def compile_templates() -> int:
    """Compile every page template (``templates/pages``) into the environment now, ~0.4 CPU-s that the first render
    of each would otherwise spend (the pipeline does this while the league notebook runs); return how many."""
    env = environment()
    names = sorted(p.relative_to(TEMPLATE_DIR / "pages").as_posix() for p in (TEMPLATE_DIR / "pages").rglob("*.j2"))
    for name in names:
        env.get_template(name)
    return len(names)


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def section(name: str, context: dict) -> Markup:
    """A section of the front page (``templates/pages/report/<name>.html.j2``) rendered with ``context``."""
    return Markup(render(f"report/{name}.html.j2", **context))


def write(path: Path, text: str) -> int:
    """Write a page (UTF-8, ``\\n`` line ends); return its size in bytes."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)
