"""Public pages: the posts, the digest archive, and the published files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..outputs.syndication import FORMATS
from ..text import excerpt
from .support import (
    aggregator,
    checked_form,
    client,
    conditional_file,
    in_thread,
    limits,
    message,
    render,
    too_many,
)

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


#: a URL is at most this long here (browsers and servers stop near it too)
MAX_URL = 2000


async def check(request: Request) -> Response:
    """ "Is my post in?": the public face of `aggregator explain` (never an organiser's
    private detail, such as why a post was hidden)."""
    if request.method != "POST":
        return render(request, "check.html", answer=None)
    data = await checked_form(request)
    if not await limits(request).check_by_client.allow(request, client(request)):
        return too_many(request)
    url = data.get("url", "").strip()
    if not url or len(url) > MAX_URL:
        return render(
            request, "check.html", status=400, answer=None, error="Give a post's address."
        )
    answer = await in_thread(aggregator(request).explain, url)
    return render(request, "check.html", answer=answer, url=url)


def digest_archive(request: Request) -> Response:
    digests = [(d.date, d.post_count) for d in aggregator(request).digest_archive()]
    return render(request, "digests.html", digests=digests)


routes = [
    Route("/", home),
    Route("/digests/", digest_archive),
    Route("/check", check, methods=["GET", "POST"]),
]
#: last: it answers every other path from the output folder
fallback = Route("/{name:path}", output_file)
