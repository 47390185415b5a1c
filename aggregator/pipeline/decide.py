"""Deciding: from a feed's bytes to the event posts it holds (parse -> match ->
sanitise -> dedupe keys). Pure functions over small records, no I/O.

`prepare_feed` is what a poll runs per changed feed, in worker processes for big
polls; this module imports only what that needs, so a worker starts quickly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import FeedError
from ..records import EntryData, ParsedFeed, PostIntent
from ..text import excerpt, html_to_text
from ..urls import canonical_url, link_key
from . import dedupe
from .match import EventRules
from .parse import parse_feed
from .sanitize import sanitize_html

if TYPE_CHECKING:
    from aiohttp import ClientResponse

#: entries read from one feed; a feed of thousands is cut here (newest first is the norm)
MAX_ENTRIES_PER_FEED = 1000


def _title_for(entry: EntryData, text: str) -> str:
    if entry.title:
        return entry.title[:500]
    if text:
        return excerpt(text, 12)[:200]
    return "Untitled post"


def decide_post(
    entry: EntryData, rules: EventRules, all_posts: bool, now: dt.datetime
) -> PostIntent | None:
    """The post to store for this entry, or None when it is not an event post."""
    when = entry.published or entry.updated
    if not rules.in_window(when or now):
        return None
    content = sanitize_html(entry.content_html or entry.summary_html, entry.base)
    text = html_to_text(content)
    if not rules.is_event_post(
        all_posts=all_posts, categories=entry.categories, title=entry.title, text=text, when=when
    ):
        return None
    canonical = canonical_url(entry.link)
    title = _title_for(entry, text)
    return PostIntent(
        entry_key=dedupe.entry_key(entry.entry_id, canonical, entry.title, when),
        canonical_link=canonical,
        link_key=link_key(canonical),
        fingerprint=dedupe.text_fingerprint(text),
        title=title,
        link=entry.link,
        author=entry.author,
        content_html=content,
        text=text,
        categories=entry.categories,
        published=entry.published,
        updated=entry.updated,
        content_hash=dedupe.content_hash(title, content, entry.categories, entry.updated),
    )


def decide_posts(
    parsed: ParsedFeed, rules: EventRules, all_posts: bool, now: dt.datetime
) -> list[PostIntent]:
    intents = []
    seen: set[str] = set()
    for entry in parsed.entries:
        intent = decide_post(entry, rules, all_posts, now)
        # a feed that repeats an id: the first occurrence (the newest, in feed order) wins
        if intent is not None and intent.entry_key not in seen:
            seen.add(intent.entry_key)
            intents.append(intent)
    return intents


def newest(entries: tuple[EntryData, ...], limit: int) -> tuple[EntryData, ...]:
    """The `limit` newest entries by date, in feed order. Several static-site generators
    list every post oldest first, so cutting by position would drop the newest (the
    event's) posts. Undated entries cannot be shown old: they count as newest, earlier
    ones first (most feeds list newest first)."""
    undated = dt.datetime.max.replace(tzinfo=dt.UTC)

    def age(index: int) -> tuple[dt.datetime, int]:
        entry = entries[index]
        return (entry.published or entry.updated or undated, -index)

    keep = sorted(range(len(entries)), key=age, reverse=True)[:limit]
    return tuple(entries[i] for i in sorted(keep))


@dataclass(frozen=True)
class PreparedFeed:
    """A fetched feed, parsed and decided (what `prepare_feed` hands back)."""

    title: str
    problem: str | None
    entries: int
    intents: list[PostIntent]
    #: the WebSub hub the feed names (`<link rel="hub">`), and its own address (rel=self)
    hub: str | None = None
    self_url: str | None = None


#: a feed's <link>/<atom:link> elements, in its first 64 KB (its head)
_LINK = re.compile(rb"<(?:[\w-]+:)?link\b[^>]*>", re.I)
_ATTR = re.compile(rb"""\b(rel|href)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def _hub_and_self(links: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(hub, self) from (rel, href) pairs: the first http(s) address named for each."""
    found: dict[str, str] = {}
    for rels, href in links:
        if href.startswith(("https://", "http://")):
            for rel in rels.lower().split():
                if rel in ("hub", "self"):
                    found.setdefault(rel, href)
    return found.get("hub"), found.get("self")


def hub_links(content: bytes) -> tuple[str | None, str | None]:
    """The hub and self links a feed names (W3C WebSub discovery), read from its head
    whatever the parser: (hub, self)."""
    links = []
    for tag in _LINK.findall(content[:65536]):
        attrs = {m[0].lower(): (m[1] or m[2]) for m in _ATTR.findall(tag)}
        href = html.unescape(attrs.get(b"href", b"").decode("utf-8", "replace")).strip()
        links.append((attrs.get(b"rel", b"").decode("utf-8", "replace"), href))
    return _hub_and_self(links)


def header_hub_links(response: ClientResponse) -> tuple[str | None, str | None]:
    """The WebSub hub and self addresses in the answer's `Link` headers: (hub, self).
    A header that cannot be read names neither: the feed is read as if it had none."""
    try:
        # parsed by aiohttp, relative addresses made absolute (by yarl, lazily: reading
        # a hostile address raises there, ValueError or IndexError or what else it may)
        links = [
            (" ".join(str(v) for k, v in link.items() if k.lower() == "rel"), str(link["url"]))
            for link in response.links.values()
        ]
    except Exception:  # an untrusted header: no hub, never a failed fetch
        return None, None
    return _hub_and_self(links)


def prepare_feed(
    content: bytes,
    url: str,
    content_type: str,
    rules: EventRules,
    all_posts: bool,
    now: dt.datetime,
) -> PreparedFeed | FeedError:
    """Parse and decide: pure, so it can run in another process. A feed that cannot be
    read comes back as its FeedError (returned, not raised, to cross process lines)."""
    try:
        parsed = parse_feed(content, url, content_type)
    except FeedError as e:
        return FeedError(e.reason)
    problem = parsed.problem
    entries = parsed.entries
    if len(entries) > MAX_ENTRIES_PER_FEED:
        problem = (
            f"the feed lists {len(entries):,} entries; only the newest "
            f"{MAX_ENTRIES_PER_FEED:,} are read"
        )
        parsed = dataclasses.replace(parsed, entries=newest(entries, MAX_ENTRIES_PER_FEED))
    intents = decide_posts(parsed, rules, all_posts, now)
    hub, self_url = hub_links(content)
    return PreparedFeed(parsed.title, problem, len(parsed.entries), intents, hub, self_url)
