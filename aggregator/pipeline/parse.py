"""Feed bytes -> ParsedFeed: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed 1.x here.

Well-formed UTF-8 feeds without xml:base and a few other features take the fast path
(`fastparse`, lxml-based) first; everything else, and anything it declines, goes to
feedparser.

feedparser's own HTML sanitising and URL resolution inside content are turned
off: `sanitize` does both with nh3, once, for every format. Untrusted bytes are
always handed to feedparser wrapped in BytesIO, since feedparser treats a plain
string as a URL or a file name to open.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import io
import json
import re
from typing import Any

import feedparser

from ..errors import FeedError
from ..records import EntryData, ParsedFeed
from ..text import html_to_text, one_line, strip_controls
from ..urls import absolute_url
from .fastparse import fast_parse
from .feedfields import categories_of, iso_date

# an internal DTD subset can declare entities ("billion laughs", external files);
# feeds never need one, so it is cut before any XML parser sees the bytes
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[.*?\]\s*>", re.S | re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_JSON_FEED_VERSION = "https://jsonfeed.org/version/"


def parse_feed(content: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Read a feed; raise FeedError when the bytes are not a feed at all."""
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.strip():
        raise FeedError("not a feed (the server sent an empty answer)")
    if head.startswith(b"{") or "json" in content_type.lower():
        return parse_json_feed(content, url)
    fast = fast_parse(content, url)
    if fast is not None:
        return fast
    problem = None
    if _ENTITY_DECL.search(content[:65536]):
        content = _DOCTYPE_SUBSET.sub(b"", content, count=1)
        problem = "the feed declares XML entities; they were ignored for safety"
        if _ENTITY_DECL.search(content[:65536]):
            raise FeedError("not a feed (it declares XML entities in a way that is refused)")
    parsed = feedparser.parse(
        io.BytesIO(content),
        response_headers={
            "content-location": url,
            "content-type": content_type or "application/xml",
        },
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    if not parsed.get("version") and not parsed.get("entries"):
        if _HTML_START.match(content[:4096]):
            raise FeedError("not a feed (got an HTML page)")
        raise FeedError("not a feed (could not read it as RSS, Atom or JSON Feed)")
    if parsed.bozo and problem is None:
        problem = _describe_bozo(parsed.get("bozo_exception"))
    feed = parsed.feed
    feed_author = one_line(feed.get("author", "") or "")
    entries = tuple(_entry(e, url, feed_author) for e in parsed.entries)
    return ParsedFeed(
        title=one_line(feed.get("title", "") or ""),
        link=absolute_url(feed.get("link"), url),
        entries=entries,
        problem=problem,
        generator=one_line(feed.get("generator", "") or ""),
    )


def _describe_bozo(exc: Any) -> str | None:
    if exc is None:
        return None
    name = type(exc).__name__
    if name == "CharacterEncodingOverride":
        return "the feed's declared character encoding was wrong; it was read as another"
    if name == "NonXMLContentType":
        return None  # a wrong Content-Type header is common and harmless
    message = one_line(str(exc))[:200]
    return f"the feed is not well-formed XML ({message}); what could be read was kept"


def _as_datetime(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(value), tz=dt.UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _text_of(detail: dict[str, Any] | None, fallback: str) -> str:
    if detail and detail.get("type") in ("text/html", "application/xhtml+xml"):
        return html_to_text(detail.get("value", ""))
    return one_line(fallback or "")


def _html_of(detail: dict[str, Any]) -> str:
    value = strip_controls(detail.get("value", "") or "")
    if detail.get("type") == "text/plain":
        return html.escape(value).replace("\n", "<br>")
    return value


def _entry(e: Any, feed_url: str, feed_author: str) -> EntryData:
    link = absolute_url(e.get("feedburner_origlink") or e.get("link"), feed_url)
    content_html, base = "", feed_url
    contents = e.get("content") or []
    if contents:
        best = next((c for c in contents if c.get("type") != "text/plain"), contents[0])
        content_html, base = _html_of(best), best.get("base") or feed_url
    summary_detail = e.get("summary_detail") or {}
    summary_html = _html_of(summary_detail) if summary_detail else ""
    if not content_html:
        base = summary_detail.get("base") or feed_url
    categories = categories_of(e.get("tags"))
    return EntryData(
        entry_id=one_line(e.get("id", "") or "") or None,
        link=link,
        title=_text_of(e.get("title_detail"), e.get("title", "")),
        author=one_line(e.get("author", "") or "") or feed_author,
        content_html=content_html,
        summary_html=summary_html,
        base=base,
        categories=categories,
        published=_as_datetime(e.get("published_parsed")),
        updated=_as_datetime(e.get("updated_parsed")),
    )


# ---- JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1) ----


def _json_str(value: Any) -> str:
    return strip_controls(value) if isinstance(value, str) else ""


def _json_author(obj: dict[str, Any]) -> str:
    authors = obj.get("authors") or ([obj["author"]] if isinstance(obj.get("author"), dict) else [])
    names = [one_line(_json_str(a.get("name"))) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n)


def parse_json_feed(content: bytes, url: str) -> ParsedFeed:
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise FeedError("not a feed (invalid JSON)") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
        _JSON_FEED_VERSION
    ):
        raise FeedError("not a feed (JSON, but not a JSON Feed)")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError("not a feed (JSON Feed without items)")
    feed_author = _json_author(data)
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        content_html = _json_str(item.get("content_html"))
        if not content_html and item.get("content_text"):
            content_html = html.escape(_json_str(item["content_text"])).replace("\n", "<br>")
        tags = item.get("tags")
        if not isinstance(tags, list):
            tags = []
        item_id = item.get("id")
        entries.append(
            EntryData(
                entry_id=one_line(str(item_id)) if item_id not in (None, "") else None,
                link=absolute_url(_json_str(item.get("url")) or None, url),
                title=one_line(_json_str(item.get("title"))),
                author=_json_author(item) or feed_author,
                content_html=content_html,
                summary_html=html.escape(_json_str(item.get("summary"))),
                base=url,
                categories=tuple(dict.fromkeys(one_line(t) for t in tags if isinstance(t, str))),
                published=iso_date(item.get("date_published")),
                updated=iso_date(item.get("date_modified")),
            )
        )
    return ParsedFeed(
        title=one_line(_json_str(data.get("title"))),
        link=absolute_url(_json_str(data.get("home_page_url")) or None, url),
        entries=tuple(entries),
    )
