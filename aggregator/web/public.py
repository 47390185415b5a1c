"""Public pages: the posts, the digest archive, and the published files."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..outputs.templating import tag_label
from ..site import Filter
from ..text import normalise_tag
from .files import OutputFile, OutputFiles, conditional_file, media_type
from .support import (
    aggregator,
    anonymous,
    cached_page,
    checked_form,
    client,
    in_thread,
    limits,
    message,
    render,
    too_many,
)

PAGE_SIZE = 20
#: search words past this are not a search
MAX_QUERY = 200


def _page(request: Request) -> int:
    try:
        return min(10_000, max(1, int(request.query_params.get("page", "1"))))
    except ValueError:
        return 1


def _pages(request: Request, page: int, more: bool) -> dict[str, Any]:
    """Links to the newer and older pages, keeping the rest of the query."""

    def at(number: int) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        if number > 1:
            query["page"] = str(number)
        return request.url.path + ("?" + urlencode(query) if query else "")

    return {"newer": at(page - 1) if page > 1 else None, "older": at(page + 1) if more else None}


def _listing_context(request: Request, narrowed: Filter, **context: Any) -> dict[str, Any]:
    page = _page(request)
    posts, more = aggregator(request).browse(page, PAGE_SIZE, narrowed)
    return {"posts": posts, "page": page, **_pages(request, page, more), **context}


def _listing(request: Request, template: str, narrowed: Filter, **context: Any) -> Response:
    return render(request, template, **_listing_context(request, narrowed, **context))


async def home(request: Request) -> Response:
    """The posts. The first page, as everyone sees it, is answered from memory
    (`support.PageCache`): readers arrive all at once when a post is shared."""
    if not request.scope["query_string"] and anonymous(request):

        def context() -> dict[str, Any]:
            return _listing_context(request, Filter(), tag=None, tag_name="")

        return await cached_page(request, "home", "home.html", context)
    return await in_thread(_home, request)


def _home(request: Request) -> Response:
    raw = request.query_params.get("tag", "")[:MAX_QUERY]
    key = normalise_tag(raw) or None
    tags = aggregator(request).settings.event.tags
    return _listing(
        request, "home.html", Filter(tag=key), tag=key, tag_name=tag_label(raw, tags) if key else ""
    )


def contributors(request: Request) -> Response:
    return render(
        request, "contributors.html", contributors=aggregator(request).contributor_summaries()
    )


def contributor(request: Request) -> Response:
    found = aggregator(request).contributor_summary(request.path_params["id"])
    if found is None:
        return message(request, "Not found", "There is no such contributor.", 404)
    return _listing(request, "contributor.html", Filter(contributor_id=found.id), contributor=found)


def days(request: Request) -> Response:
    return render(request, "days.html", days=aggregator(request).days_with_posts())


def day(request: Request) -> Response:
    try:
        wanted = dt.date.fromisoformat(request.path_params["day"])
    except ValueError:
        return message(request, "Not found", "That is not a date (use YYYY-MM-DD).", 404)
    known = [d for d, _n in aggregator(request).days_with_posts()]
    earlier = [d for d in known if d < wanted]
    later = [d for d in known if d > wanted]
    return _listing(
        request,
        "day.html",
        Filter(day=wanted),
        day=wanted,
        previous_day=max(earlier, default=None),
        next_day=min(later, default=None),
    )


def search(request: Request) -> Response:
    query = " ".join(request.query_params.get("q", "").split())[:MAX_QUERY]
    if not query:
        return render(request, "search.html", query="", posts=[], newer=None, older=None)
    return _listing(request, "search.html", Filter(query=query), query=query)


def follow(request: Request) -> Response:
    return render(request, "follow.html")


async def output_file(request: Request) -> Response:
    name = request.path_params["name"]
    media = media_type(name)
    if media is None:
        return await in_thread(message, request, "Not found", "There is no such page.", 404)
    files: OutputFiles = request.app.state.files
    found = files.current(name)  # unchanged since it was read, checked, from this name
    if found is None:
        checked = await in_thread(_checked_file, request, name)
        if isinstance(checked, Response):
            return checked
        found = checked
    return conditional_file(request, found, media)


def _checked_file(request: Request, name: str) -> OutputFile | Response:
    """The output file `name`, read, if it is a file inside the output folder."""
    root = aggregator(request).settings.output_dir.resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        return message(request, "Not found", "There is no such page (yet).", 404)
    files: OutputFiles = request.app.state.files
    return files.read(name, path)


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
    Route("/contributors", contributors),
    Route("/contributors/{id:int}", contributor),
    Route("/days/", days),
    Route("/days/{day}", day),
    Route("/search", search),
    Route("/follow", follow),
    Route("/digests/", digest_archive),
    Route("/check", check, methods=["GET", "POST"]),
]
#: last: it answers every other path from the output folder
fallback = Route("/{name:path}", output_file)
