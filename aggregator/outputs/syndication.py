"""The combined feed in each reader's format, with the same entries: Atom 1.0
(`feed.atom`) and RSS 2.0 (`rss.xml`, for RSS-to-email services) by feedgen, and JSON
Feed 1.1 (`feed.json`), which is plain JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from feedgen.feed import FeedGenerator

from ..config import Settings
from ..storage.posts import PostView
from ..text import excerpt

#: every format's address under site_url, and its media type
FORMATS = {
    "feed.atom": "application/atom+xml",
    "rss.xml": "application/rss+xml",
    "feed.json": "application/feed+json",
}


def atom_id(entry_key: str) -> str:
    """The entry's original id (or its link); a stable URN for entries that had neither."""
    kind, _, value = entry_key.partition(":")
    if kind in ("id", "link"):
        return value
    return f"urn:sha256:{value}"


def _dates(post: PostView) -> tuple[dt.datetime, dt.datetime]:
    published = post.published or post.first_seen
    return published, post.updated or published


def _generator(settings: Settings, posts: list[PostView], now: dt.datetime, own: str) -> Any:
    site = settings.event.site_url
    fg = FeedGenerator()
    fg.load_extension("dc")  # RSS names an author by email only: dc:creator names people
    fg.id(site)
    fg.title(settings.event.name)
    fg.subtitle(f"Posts written for {settings.event.name}")
    fg.description(f"Posts written for {settings.event.name}")
    fg.link(href=site + own, rel="self", type=FORMATS[own])
    if settings.publish.hub:  # WebSub: where readers subscribe to be pushed new posts
        fg.link(href=settings.publish.hub, rel="hub")
    fg.link(href=site, rel="alternate", type="text/html")
    fg.generator("event-aggregator")
    fg.language("en")
    newest = max((_dates(p)[1] for p in posts), default=now)
    fg.updated(newest)
    fg.lastBuildDate(newest)  # not the time of writing: unchanged posts, unchanged file
    # feedgen prepends entries: add the oldest first so the file reads newest first
    for post in reversed(posts):
        published, updated = _dates(post)
        fe = fg.add_entry()
        fe.id(atom_id(post.entry_id))
        fe.guid(atom_id(post.entry_id), permalink=False)
        fe.title(post.title)
        if post.link:
            fe.link(href=post.link, rel="alternate", type="text/html")
        fe.author(name=post.contributor)
        fe.dc.dc_creator(post.contributor)
        for category in post.categories:
            fe.category(term=category)
        fe.content(post.content or post.title, type="html")
        if post.text:  # Atom's summary, RSS's description (the content is content:encoded)
            fe.description(excerpt(post.text, 60), isSummary=True)
        fe.published(published)
        fe.updated(updated)
        if not post.feed_url.startswith("manual:"):  # a post added by hand has no feed
            fe.source(url=post.feed_url, title=post.feed_title or post.contributor)
    return fg


def render_atom(settings: Settings, posts: list[PostView], now: dt.datetime) -> bytes:
    data: bytes = _generator(settings, posts, now, "feed.atom").atom_str(pretty=True)
    return data


def render_rss(settings: Settings, posts: list[PostView], now: dt.datetime) -> bytes:
    data: bytes = _generator(settings, posts, now, "rss.xml").rss_str(pretty=True)
    return data


def render_json(settings: Settings, posts: list[PostView], now: dt.datetime) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    site = settings.event.site_url
    items = []
    for post in posts:
        published, updated = _dates(post)
        item: dict[str, Any] = {
            "id": atom_id(post.entry_id),
            "title": post.title,
            "content_html": post.content or post.title,
            "date_published": published.isoformat(),
            "date_modified": updated.isoformat(),
            "authors": [{"name": post.contributor}],
        }
        if post.link:
            item["url"] = post.link
        if post.text:
            item["summary"] = excerpt(post.text, 60)
        if post.categories:
            item["tags"] = list(post.categories)
        items.append(item)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": settings.event.name,
        "home_page_url": site,
        "feed_url": site + "feed.json",
        "description": f"Posts written for {settings.event.name}",
        "language": "en",
        "items": items,
    }
    if settings.publish.hub:
        feed["hubs"] = [{"type": "WebSub", "url": settings.publish.hub}]
    return json.dumps(feed, ensure_ascii=False, indent=1).encode("utf-8")
