"""Public pages: the posts, the digest archive, and the published files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..outputs.syndication import FORMATS
from ..text import excerpt
from .support import aggregator, conditional_file, message, render

PAGE_SIZE = 20
_OUTPUTS = {**FORMATS, "contributors.opml": "text/x-opml"}


def home(request: Request) -> Response:
    agg = aggregator(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    posts, more = agg.posts_page(page, PAGE_SIZE)
    tz = agg.settings.event.tz
    return render(
        request,
        "home.html",
        posts=posts,
        page=page,
        more=more,
        local=lambda d: d.astimezone(tz),
        excerpt=excerpt,
    )


def output_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name.startswith("digests/") and name.endswith(".html"):
        media = "text/html; charset=utf-8"
    elif name in _OUTPUTS:
        media = _OUTPUTS[name]
    else:
        return message(request, "Not found", "There is no such page.", 404)
    root = aggregator(request).settings.output_dir.resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        return message(request, "Not found", "There is no such page (yet).", 404)
    return conditional_file(request, path, media)


def digest_archive(request: Request) -> Response:
    digests = [(d.date, d.post_count) for d in aggregator(request).digest_archive()]
    return render(request, "digests.html", digests=digests)


routes = [
    Route("/", home),
    Route("/digests/", digest_archive),
]
#: last: it answers every other path from the output folder
fallback = Route("/{name:path}", output_file)
