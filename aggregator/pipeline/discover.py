"""Find a blog's feed from its homepage, and the platform's feed of one event label.

Order: the page is itself a feed; the page's `<link rel="alternate">` feeds
(posts before comments); then common paths of blogging platforms. Every
candidate is fetched and parsed before it is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from ..errors import DiscoveryError, FeedError
from ..records import ParsedFeed
from .fetch import FeedClient, FetchLimits, HostGate, fetch
from .parse import parse_feed

_FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
}
COMMON_PATHS = (
    "/feed/",
    "/feeds/posts/default",
    "/atom.xml",
    "/rss.xml",
    "/index.xml",
    "/feed.xml",
    "/rss/",
    "/feed.json",
    "/blog-feed.xml",
    "/?format=rss",
)


@dataclass(frozen=True)
class FoundFeed:
    url: str
    parsed: ParsedFeed


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str, str]] = []  # (href, type, title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        elif tag == "link":
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").lower().split(";")[0].strip()
            if "alternate" in rels and kind in _FEED_TYPES and values.get("href"):
                self.links.append((values["href"], kind, values.get("title", "")))


def feed_links(page: str, page_url: str) -> list[str]:
    """Feed URLs a page advertises, absolute, posts feeds before comments feeds."""
    collector = _LinkCollector()
    try:
        collector.feed(page)
        collector.close()
    except (AssertionError, ValueError):
        pass
    base = urljoin(page_url, collector.base) if collector.base else page_url
    found: list[str] = []
    for href, _kind, _title in collector.links:
        url = urljoin(base, href.strip())
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found.append(url)

    def is_comments(url: str) -> bool:
        titles = [t for h, _k, t in collector.links if urljoin(base, h.strip()) == url]
        return "comment" in url.lower() or any("comment" in t.lower() for t in titles)

    return sorted(found, key=is_comments)


def _site_root(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _slug(tag: str) -> str:
    return re.sub(r"[^\w]+", "-", tag.casefold().lstrip("#")).strip("-")


def label_feed_candidates(feed_url: str, generator: str, tags: list[str]) -> list[str]:
    """Feeds of one label on platforms that offer them (Blogger, WordPress)."""
    root = _site_root(feed_url)
    lowered = (feed_url + " " + generator).lower()
    candidates: list[str] = []
    for tag in tags:
        label = tag.lstrip("#").strip()
        if not label:
            continue
        if "blogger" in lowered or "/feeds/posts/default" in lowered or "blogspot." in lowered:
            candidates.append(f"{root}/feeds/posts/default/-/{quote(label, safe='')}")
        if "wordpress" in lowered or feed_url.rstrip("/").endswith("/feed"):
            slug = quote(_slug(label), safe="-")
            candidates += [f"{root}/tag/{slug}/feed/", f"{root}/category/{slug}/feed/"]
    return list(dict.fromkeys(candidates))


async def _try_feed(
    client: FeedClient, url: str, limits: FetchLimits, gate: HostGate
) -> FoundFeed | None:
    try:
        result = await fetch(client, url, limits, gate=gate)
        return FoundFeed(
            result.moved_to or result.url,
            parse_feed(result.content, result.url, result.content_type),
        )
    except FeedError:
        return None


async def discover(
    client: FeedClient, homepage: str, limits: FetchLimits, gate: HostGate
) -> FoundFeed:
    """The blog's main feed, or DiscoveryError saying what was tried."""
    try:
        page = await fetch(client, homepage, limits, gate=gate)
    except FeedError as e:
        raise DiscoveryError(f"cannot read {homepage}: {e.reason}") from None
    page_url = page.url
    try:
        return FoundFeed(
            page.moved_to or page_url, parse_feed(page.content, page_url, page.content_type)
        )
    except FeedError:
        pass
    text = page.content.decode(_charset(page.content_type), errors="replace")
    for url in feed_links(text, page_url):
        found = await _try_feed(client, url, limits, gate)
        if found:
            return found
    root = _site_root(page_url)
    for path in COMMON_PATHS:
        found = await _try_feed(client, root + path, limits, gate)
        if found:
            return found
    raise DiscoveryError(
        f"no feed found at {homepage}: the page links to no readable feed and none of the "
        "usual feed addresses answered; give the feed address with --feed"
    )


async def find_label_feeds(
    client: FeedClient,
    main: FoundFeed,
    generator: str,
    tags: list[str],
    limits: FetchLimits,
    gate: HostGate,
) -> list[FoundFeed]:
    found = []
    for url in label_feed_candidates(main.url, generator, tags):
        if url == main.url:
            continue
        feed = await _try_feed(client, url, limits, gate)
        if feed:
            found.append(feed)
    return found


def _charset(content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type or "", re.I)
    if match:
        try:
            "".encode(match.group(1))
            return match.group(1)
        except LookupError:
            pass
    return "utf-8"
