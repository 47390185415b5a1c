"""The one Jinja environment for the page, the digest emails and the web app.

Autoescaping is on for HTML and XML; templates live in `aggregator/templates/`
(`web/` for the web app, with shared macros in `macros.html`).
"""

from __future__ import annotations

import jinja2

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("aggregator", "templates"),
    autoescape=jinja2.select_autoescape(["html", "xml"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def templates() -> jinja2.Environment:
    return _env
