"""Write the outputs: feed.atom (feedgen), index.html (Jinja2), contributors.opml.

Each file is written whole or not at all (`files.write_atomic`), so a reader (or a
web server) never sees half a file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from feedgen.feed import FeedGenerator

from ..config import Settings
from ..storage.posts import PostView
from ..text import excerpt
from .files import write_atomic
from .opml import OpmlEntry, render_opml
from .templating import templates


def atom_id(entry_key: str) -> str:
    """The entry's original id (or its link); a stable URN for entries that had neither."""
    kind, _, value = entry_key.partition(":")
    if kind in ("id", "link"):
        return value
    return f"urn:sha256:{value}"


def render_atom(settings: Settings, posts: list[PostView], now: dt.datetime) -> bytes:
    site = settings.event.site_url
    fg = FeedGenerator()
    fg.id(site)
    fg.title(settings.event.name)
    fg.subtitle(f"Posts written for {settings.event.name}")
    fg.link(href=site + "feed.atom", rel="self", type="application/atom+xml")
    fg.link(href=site, rel="alternate", type="text/html")
    fg.generator("event-aggregator")
    fg.language("en")
    newest = max((p.updated or p.published or p.first_seen for p in posts), default=now)
    fg.updated(newest)
    # feedgen prepends entries: add the oldest first so the file reads newest first
    for post in reversed(posts):
        fe = fg.add_entry()
        fe.id(atom_id(post.entry_id))
        fe.title(post.title)
        if post.link:
            fe.link(href=post.link, rel="alternate", type="text/html")
        fe.author(name=post.contributor)
        for category in post.categories:
            fe.category(term=category)
        fe.content(post.content or post.title, type="html")
        if post.text:
            fe.summary(excerpt(post.text, 60))
        fe.published(post.published or post.first_seen)
        fe.updated(post.updated or post.published or post.first_seen)
        fe.source(url=post.feed_url, title=post.feed_title or post.contributor)
    return fg.atom_str(pretty=True)


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


def render_index(
    settings: Settings,
    posts: list[PostView],
    now: dt.datetime,
    digests: list[PageDigest] | None = None,
) -> bytes:
    tz = settings.event.tz
    page = (
        templates()
        .get_template("index.html")
        .render(
            event=settings.event,
            posts=posts,
            local=lambda d: d.astimezone(tz) if d else None,
            excerpt=excerpt,
            generated=now.astimezone(tz),
            digests=digests or [],
        )
    )
    return page.encode("utf-8")


def write_outputs(
    settings: Settings,
    posts: list[PostView],
    feeds: list[OpmlEntry],
    now: dt.datetime,
    digests: list[PageDigest] | None = None,
) -> list[Path]:
    out = settings.output_dir
    paths = [out / "feed.atom", out / "index.html", out / "contributors.opml"]
    write_atomic(paths[0], render_atom(settings, posts, now))
    write_atomic(paths[1], render_index(settings, posts, now, digests))
    write_atomic(paths[2], render_opml(f"{settings.event.name}: contributors", feeds, now))
    return paths
