"""Write the outputs: feed.atom, rss.xml and feed.json (`syndication`), index.html
(Jinja2), contributors.opml.

Each file is written whole or not at all (`files.write_atomic`), so a reader (or a
web server) never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..storage.posts import PostView
from .files import write_atomic
from .opml import OpmlEntry, render_opml
from .syndication import FORMATS, render_atom, render_json, render_rss
from .templating import templates

__all__ = ["render_atom", "render_index", "write_outputs"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageDigest:
    date: dt.date
    href: str
    post_count: int


def archived(output_dir: Path, digests: list[tuple[dt.date, int]]) -> list[PageDigest]:
    """The digests (date, posts) whose archived copy is in the output folder."""
    folder = output_dir / "digests"
    return [
        PageDigest(date, f"digests/{date.isoformat()}.html", count)
        for date, count in digests
        if (folder / f"{date.isoformat()}.html").exists()
    ]


#: posts on each page of the published site (index.html, page-2.html, …)
PAGE_SIZE = 20


def page_name(number: int) -> str:
    return "index.html" if number == 1 else f"page-{number}.html"


def _render(name: str, settings: Settings, now: dt.datetime, **context: object) -> bytes:
    page = (
        templates()
        .get_template(name)
        .render(
            event=settings.event,
            static=True,
            generated=now.astimezone(settings.event.tz),
            **context,
        )
    )
    return page.encode("utf-8")


def render_index(
    settings: Settings,
    posts: list[PostView],
    now: dt.datetime,
    digests: list[PageDigest] | None = None,
) -> dict[str, bytes]:
    """The published page, `PAGE_SIZE` posts a page, newest first: file name -> HTML."""
    chunks = [posts[i : i + PAGE_SIZE] for i in range(0, len(posts), PAGE_SIZE)] or [[]]
    return {
        page_name(n): _render(
            "index.html",
            settings,
            now,
            posts=chunk,
            page=n,
            newer=page_name(n - 1) if n > 1 else None,
            older=page_name(n + 1) if n < len(chunks) else None,
            digests=digests or [],
        )
        for n, chunk in enumerate(chunks, start=1)
    }


def write_outputs(
    settings: Settings,
    posts: list[PostView],
    feeds: list[OpmlEntry],
    now: dt.datetime,
    digests: list[PageDigest] | None = None,
) -> list[Path]:
    out = settings.output_dir
    files = {
        "feed.atom": render_atom(settings, posts, now),
        "rss.xml": render_rss(settings, posts, now),
        "feed.json": render_json(settings, posts, now),
        **render_index(settings, posts, now, digests),
        "follow.html": _render("follow.html", settings, now),
        "contributors.opml": render_opml(f"{settings.event.name}: contributors", feeds, now),
    }
    changed = set()
    for name, data in files.items():
        path = out / name
        if not path.is_file() or path.read_bytes() != data:  # else its validators stay
            write_atomic(path, data)
            changed.add(name)
    for stale in out.glob("page-*.html"):  # pages past the last one, from when there were more
        if stale.name not in files:
            stale.unlink(missing_ok=True)
    if settings.publish.hub and "feed.atom" in changed:
        ping_hub(settings.publish.hub, [settings.event.site_url + n for n in FORMATS])
    return [out / name for name in files]


def ping_hub(hub: str, topics: list[str]) -> bool:
    """Tell a WebSub hub that the feeds changed (a publish ping: `hub.mode=publish` and
    each `hub.url`), so that readers subscribed there get the new posts at once. A hub
    that does not answer is logged, not an error: the feeds are published either way."""
    form = urllib.parse.urlencode([("hub.mode", "publish")] + [("hub.url", t) for t in topics])
    request = urllib.request.Request(
        hub,
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read(1024)
    except (OSError, ValueError) as e:
        log.warning("the hub %s did not take the ping: %s", hub, e)
        return False
    return True
